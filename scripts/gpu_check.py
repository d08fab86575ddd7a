"""GPU check: bf16 pretrain and SFT steps of the SmolLM2-135M-based Unicorn model with sdpa, tokens/s, model FLOPs
utilisation, and loss parity against CPU fp32. Minutes, not hours. Run through `scripts/gpu_check.sh`, which puts the
project's wheels (carried with the checkout) next to a Python that has only torch.

    bash scripts/gpu_check.sh                       # on the GPU machine
    python scripts/gpu_check.py --smoke --device cpu   # the mechanics on a CPU, a 2-layer small-vocab model

What runs, per stage (pretrain: projector trains, the LLM is frozen; SFT: everything trains):

1. parity: the same weights and batch, loss in CPU fp32 against the device in bf16 autocast (what `bf16: true` does
   in the recipes) before any update; |relative difference| must stay under `--tolerance` (default 1%, the size of
   bf16 rounding over a 30-layer forward: a wrong mask, position or image merge moves the loss far more);
2. throughput: `--steps` optimizer steps after `--warmup`, timed with CUDA synchronisation: tokens/s and MFU =
   model FLOPs per second / the device's dense bf16 peak (`GPU_PEAK_TFLOPS` overrides the built-in table).

The model is the SmolLM2-135M-Instruct architecture (the quickstart's LLM) at random init: its weights (270 MB in
bf16) do not fit the 64 MiB a checkout may carry, and neither speed nor parity depends on trained values. The batch
is the paper's layout: `<image>` copied into 576 positions, then text; labels mask the prompt and the image, as the
training collator does (the collator itself needs TRL and datasets, which this check does without).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

import torch


sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the checkout's unicorn_hf (not installed there)

from transformers import LlamaConfig

from unicorn_hf.modeling import UnicornConfig, UnicornForConditionalGeneration


logger = logging.getLogger("gpu_check")

# SmolLM2-135M-Instruct (HuggingFaceTB/SmolLM2-135M-Instruct config.json), plus one added `<image>` token.
SMOLLM2_135M = {
    "vocab_size": 49152 + 1,
    "hidden_size": 576,
    "intermediate_size": 1536,
    "num_hidden_layers": 30,
    "num_attention_heads": 9,
    "num_key_value_heads": 3,
    "max_position_embeddings": 8192,
    "rope_theta": 100000.0,
    "rms_norm_eps": 1e-5,
    "tie_word_embeddings": True,
    "bos_token_id": 1,
    "eos_token_id": 2,
    "pad_token_id": 2,
}
SMOKE = {"num_hidden_layers": 2, "vocab_size": 1024 + 1}  # --smoke: the mechanics in seconds on a CPU
# Dense bf16 tensor-core peaks (TFLOP/s, no sparsity) from the vendors' data sheets, matched on the device name.
PEAK_BF16_TFLOPS = {
    "H200": 989.0,
    "H100 SXM": 989.0,
    "H100 NVL": 835.0,
    "H100 PCIe": 756.0,
    "H100": 756.0,
    "A100": 312.0,
    "L40S": 362.0,
    "L4": 121.0,
    "A10G": 70.0,
    "A10": 125.0,
    "RTX 4090": 165.0,
}


def build_model(args) -> UnicornForConditionalGeneration:
    text = {**SMOLLM2_135M, **(SMOKE if args.smoke else {})}
    config = UnicornConfig(
        text_config=LlamaConfig(**text),
        embed_dim=args.embed_dim,
        projector_type="mlp2x_gelu",
        num_image_tokens=args.num_image_tokens,
        image_token_id=text["vocab_size"] - 1,
    )
    config._attn_implementation = "sdpa"
    torch.manual_seed(args.seed)
    return UnicornForConditionalGeneration(config).float()


def make_batch(args, config: UnicornConfig, generator: torch.Generator) -> dict[str, torch.Tensor]:
    """[B, T] ids: BOS, `num_image_tokens` x `<image>`, a prompt, an answer; labels on the answer only."""
    vocab = config.text_config.vocab_size - 1  # never draw `<image>` itself as text
    prompt, answer = args.prompt_tokens, args.answer_tokens
    text = torch.randint(3, vocab, (args.batch_size, prompt + answer), generator=generator)  # [B, P + A]
    image = torch.full((args.batch_size, config.num_image_tokens), config.image_token_id)  # [B, N]
    bos = torch.ones(args.batch_size, 1, dtype=torch.long)
    input_ids = torch.cat([bos, image, text], dim=1)  # [B, T]
    labels = input_ids.clone()
    labels[:, : 1 + config.num_image_tokens + prompt] = -100  # BOS, image and prompt are never scored
    return {
        "input_ids": input_ids,
        "attention_mask": torch.ones_like(input_ids),
        "labels": labels,
        "image_embeds": torch.nn.functional.normalize(
            torch.randn(args.batch_size, config.embed_dim, generator=generator), dim=-1
        ),  # [B, D]
    }


def set_stage(model: UnicornForConditionalGeneration, stage: str) -> list[torch.nn.Parameter]:
    model.requires_grad_(False)
    model.projector.requires_grad_(True)
    if stage == "sft":
        model.language_model.requires_grad_(True)
        model.lm_head.requires_grad_(True)
    return [p for p in model.parameters() if p.requires_grad]


def flops_per_token(model: UnicornForConditionalGeneration, seq_len: int, stage: str) -> float:
    """Training FLOPs per token (PaLM's 6N + 12·L·d·T when all weights train; 4N + 8·L·d·T when the LLM is frozen:
    forward plus the backward through activations, without weight gradients). N counts the matmul weights, the LM
    head once (tied to the embeddings, whose lookup costs nothing)."""
    text = model.config.text_config
    head = text.vocab_size * text.hidden_size
    backbone = sum(p.numel() for n, p in model.language_model.named_parameters() if "embed_tokens" not in n)
    projector = sum(p.numel() for p in model.projector.parameters())
    attention = text.num_hidden_layers * text.hidden_size * seq_len
    frozen_llm = 4 * (backbone + head) + 8 * attention
    if stage == "pretrain":
        return frozen_llm + 6 * projector / seq_len  # one projector pass per sequence
    return 6 * (backbone + head) + 12 * attention + 6 * projector / seq_len


def device_peak_tflops(device: torch.device) -> float | None:
    import os

    if os.environ.get("GPU_PEAK_TFLOPS"):
        return float(os.environ["GPU_PEAK_TFLOPS"])
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((peak for key, peak in PEAK_BF16_TFLOPS.items() if key in name), None)


def loss_of(model, batch, device: torch.device, bf16: bool) -> float:
    batch = {k: v.to(device) for k, v in batch.items()}
    with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
        return float(model(**batch, use_cache=False).loss)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run_stage(stage: str, args, device: torch.device) -> dict:
    model = build_model(args)
    generator = torch.Generator().manual_seed(args.seed + (stage == "sft"))
    parity_batch = make_batch(argparse.Namespace(**{**vars(args), "batch_size": args.parity_batch_size}),
                              model.config, generator)  # fmt: skip
    cpu_loss = loss_of(model.eval(), parity_batch, torch.device("cpu"), bf16=False)
    model.to(device)
    device_loss = loss_of(model, parity_batch, device, bf16=True)
    relative = abs(device_loss - cpu_loss) / abs(cpu_loss)

    trainable = set_stage(model.train(), stage)
    optimizer = torch.optim.AdamW(trainable, lr=args.learning_rate, fused=device.type == "cuda")
    batches = [make_batch(args, model.config, generator) for _ in range(args.warmup + args.steps)]
    tokens = batches[0]["input_ids"].numel()
    losses, times = [], []
    for index, batch in enumerate(batches):
        batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
        synchronize(device)
        start = time.perf_counter()
        with torch.autocast(device.type, dtype=torch.bfloat16):
            loss = model(**batch, use_cache=False).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        synchronize(device)
        if index >= args.warmup:
            times.append(time.perf_counter() - start)
        losses.append(float(loss.detach()))
    seconds = sorted(times)[len(times) // 2]  # median step
    seq_len = batches[0]["input_ids"].shape[1]
    achieved = flops_per_token(model, seq_len, stage) * tokens / seconds
    peak = device_peak_tflops(device)
    return {
        "stage": stage,
        "trainable_parameters": sum(p.numel() for p in trainable),
        "batch": list(batches[0]["input_ids"].shape),
        "cpu_fp32_loss": round(cpu_loss, 5),
        "device_bf16_loss": round(device_loss, 5),
        "relative_difference": relative,
        "parity_ok": relative <= args.tolerance,
        "step_seconds_median": seconds,
        "tokens_per_second": tokens / seconds,
        "model_tflops_per_second": achieved / 1e12,
        "mfu": None if peak is None else achieved / (peak * 1e12),
        "losses": [round(x, 4) for x in losses],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--smoke", action="store_true", help=f"{SMOKE}: the mechanics, not numbers")
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--parity_batch_size", type=int, default=2)
    parser.add_argument("--num_image_tokens", type=int, default=576, help="the paper's copies of the image vector")
    parser.add_argument("--embed_dim", type=int, default=1280, help="the paper's LLM2CLIP width")
    parser.add_argument("--prompt_tokens", type=int, default=64)
    parser.add_argument("--answer_tokens", type=int, default=192)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--learning_rate", type=float, default=1e-5)
    parser.add_argument("--tolerance", type=float, default=0.01, help="max |relative| loss difference bf16 vs fp32")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", help="also write the results as JSON here")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        logger.error("No CUDA device: run on a GPU machine, or --device cpu --smoke for the mechanics.")
        return 2
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    logger.info("device %s, torch %s, sdpa, bf16 autocast", name, torch.__version__)
    results = [run_stage(stage, args, device) for stage in ("pretrain", "sft")]
    for r in results:
        mfu = "n/a (unknown peak: set GPU_PEAK_TFLOPS)" if r["mfu"] is None else f"{100 * r['mfu']:.1f}%"
        logger.info(
            "%-8s batch %s: %.0f tokens/s, %.1f model TFLOP/s, MFU %s; loss CPU fp32 %.4f vs bf16 %.4f "
            "(rel. diff %.2e, tolerance %.0e: %s)",
            r["stage"], r["batch"], r["tokens_per_second"], r["model_tflops_per_second"], mfu, r["cpu_fp32_loss"],
            r["device_bf16_loss"], r["relative_difference"], args.tolerance, "OK" if r["parity_ok"] else "FAIL",
        )  # fmt: skip
    if args.output:
        output = Path(args.output)
        output.parent.mkdir(parents=True, exist_ok=True)  # .gpu_check/ exists only where `prepare` ran
        output.write_text(json.dumps({"device": name, "args": vars(args), "results": results}, indent=2))
    return 0 if all(r["parity_ok"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
