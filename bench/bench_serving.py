"""Serving throughput: vLLM against transformers `generate` on the same Unicorn checkpoint and prompts, side by side.

    # CPU (the serve-check venv, see scripts/serve_check.sh):
    .venv-vllm/bin/python bench/bench_serving.py --model outputs/tiny/sft --device cpu
    # GPU machine (a venv with CUDA vLLM + `pip install --no-deps -e .`):
    python bench/bench_serving.py --model outputs/tiny/sft --device cuda --dtype bfloat16 --num_prompts 256

The same `--num_prompts` (image, question) requests, real photographs through the checkpoint's own processor and
tower, are answered at each batch size: transformers `model.generate` on left-padded batches of that size, and
`vllm.LLM.generate` handed the same batches (vLLM schedules each batch continuously inside). Every request generates
exactly `--max_new_tokens` tokens (vLLM `ignore_eos`, transformers `min_new_tokens`), greedy, so both do the same work.
The table gives generated tokens/s and requests/s of each engine and vLLM's speed-up; it is written to
bench/results/serving_<device>.md (+ .json).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import time
from pathlib import Path


REPO = Path(__file__).resolve().parents[1]
logger = logging.getLogger("bench_serving")


def batches(items: list, size: int) -> list[list]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def bench_transformers(model, processor, requests: list[dict], batch_size: int, max_new_tokens: int) -> dict:
    """Generated tokens and seconds for `requests` in batches of `batch_size` through `model.generate`."""
    import torch

    tokens, start = 0, time.perf_counter()
    for batch in batches(requests, batch_size):
        inputs = processor(
            text=[r["prompt"] for r in batch], images=[r["image"] for r in batch], padding=True, return_tensors="pt"
        ).to(model.device)
        with torch.inference_mode():
            output = model.generate(
                **inputs, do_sample=False, max_new_tokens=max_new_tokens, min_new_tokens=max_new_tokens
            )  # [b, T + max_new_tokens]
        tokens += (output.shape[1] - inputs["input_ids"].shape[1]) * output.shape[0]
    return {"tokens": tokens, "seconds": time.perf_counter() - start}


def bench_vllm(llm, requests: list[dict], batch_size: int, max_new_tokens: int) -> dict:
    """Generated tokens and seconds for `requests` handed to `LLM.generate` in batches of `batch_size`."""
    from vllm import SamplingParams

    params = SamplingParams(temperature=0.0, max_tokens=max_new_tokens, ignore_eos=True)
    tokens, start = 0, time.perf_counter()
    for batch in batches(requests, batch_size):
        prompts = [{"prompt": r["prompt"], "multi_modal_data": {"image": r["image"]}} for r in batch]
        outputs = llm.generate(prompts, params, use_tqdm=False)
        tokens += sum(len(o.outputs[0].token_ids) for o in outputs)
    return {"tokens": tokens, "seconds": time.perf_counter() - start}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="outputs/tiny/sft", help="A trained Unicorn folder (with image tower).")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    parser.add_argument("--batch_sizes", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--num_prompts", type=int, default=32, help="Requests per batch size (a multiple of each).")
    parser.add_argument("--max_new_tokens", type=int, default=32)
    parser.add_argument("--output", default=None, help="Default: bench/results/serving_<device>.md")
    cli = parser.parse_args()

    import torch
    import vllm
    from transformers import AutoModelForImageTextToText, AutoProcessor
    from vllm import LLM

    from unicorn_hf.serving.reference import question_image_pairs
    from unicorn_hf.utils.logging import setup_logging

    setup_logging("INFO")
    dtype = getattr(torch, cli.dtype)
    processor = AutoProcessor.from_pretrained(cli.model)
    processor.tokenizer.padding_side = "left"  # decoder-only batches
    pairs = question_image_pairs(cli.num_prompts)
    requests = [
        {
            "prompt": processor.apply_chat_template(pair.messages(), add_generation_prompt=True, tokenize=False),
            "image": pair.image,
        }
        for pair in pairs
    ]
    model = AutoModelForImageTextToText.from_pretrained(cli.model, dtype=dtype).to(cli.device).eval()
    # skip_mm_profiling: the profiling run encodes hundreds of dummy images (minutes on a CPU) for a one-image model
    llm = LLM(model=cli.model, dtype=cli.dtype, max_model_len=2048, skip_mm_profiling=True, seed=0)
    # warm-up of both (first-call allocations, vLLM's compiled graphs) stays out of the table
    bench_transformers(model, processor, requests[:2], 2, 4)
    bench_vllm(llm, requests[:2], 2, 4)

    rows = []
    for batch_size in cli.batch_sizes:
        hf = bench_transformers(model, processor, requests, batch_size, cli.max_new_tokens)
        vl = bench_vllm(llm, requests, batch_size, cli.max_new_tokens)
        row = {"batch_size": batch_size, "requests": len(requests)}
        for name, result in (("transformers", hf), ("vllm", vl)):
            row[f"{name}_tokens_per_s"] = result["tokens"] / result["seconds"]
            row[f"{name}_requests_per_s"] = len(requests) / result["seconds"]
            row[f"{name}_seconds"] = result["seconds"]
        row["vllm_speedup"] = row["vllm_tokens_per_s"] / row["transformers_tokens_per_s"]
        rows.append(row)
        logger.info("batch %d: %s", batch_size, {k: round(v, 2) for k, v in row.items()})

    env = {
        "model": cli.model,
        "device": cli.device,
        "dtype": cli.dtype,
        "max_new_tokens": cli.max_new_tokens,
        "vllm": vllm.__version__,
        "torch": torch.__version__,
        "cpu_count": os.cpu_count(),
        "machine": platform.processor() or platform.machine(),
        "gpu": torch.cuda.get_device_name() if cli.device == "cuda" else None,
    }
    lines = [
        f"# Serving throughput: vLLM vs transformers generate ({cli.device}, {cli.dtype})",
        "",
        f"`python bench/bench_serving.py --model {cli.model} --device {cli.device} --dtype {cli.dtype} "
        f"--max_new_tokens {cli.max_new_tokens} --num_prompts {cli.num_prompts}`; "
        f"{len(requests)} (image, question) requests per batch size, {cli.max_new_tokens} generated tokens each, "
        f"greedy. Environment: {json.dumps(env)}",
        "",
        "| batch | transformers tok/s | vLLM tok/s | transformers req/s | vLLM req/s | vLLM speed-up |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['batch_size']} | {r['transformers_tokens_per_s']:.1f} | {r['vllm_tokens_per_s']:.1f} | "
            f"{r['transformers_requests_per_s']:.2f} | {r['vllm_requests_per_s']:.2f} | {r['vllm_speedup']:.2f}x |"
        )
    table = "\n".join(lines) + "\n"
    output = Path(cli.output or REPO / "bench" / "results" / f"serving_{cli.device}.md")
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(table)
    output.with_suffix(".json").write_text(json.dumps({"environment": env, "rows": rows}, indent=2) + "\n")
    logger.info("wrote %s\n%s", output, table)


if __name__ == "__main__":
    main()
