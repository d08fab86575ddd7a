"""The benchmark loop of stage 5: a checkpoint answers every benchmark under every image-mean mode, and the
evaluation summary (`results.json`) that `recipes/evaluate_vlm.py` writes and the model card reads.

Each benchmark's images go through the image encoder recorded in the model config (or `encoder`), are moved by the
checkpoint's modality transfer with each image-mean mode of `mean_modes` (`MEAN_MODE_DESCRIPTIONS`), and the model
answers; answers are extracted (yes/no, option letters) and scored with the `evaluate` modules shipped in
`unicorn_hf/evaluation/metrics`. Predictions are stored per benchmark and mode; a re-run re-scores them instead of
generating again (`overwrite` generates anew).
"""

from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path

import torch

from unicorn_hf.evaluation.benchmarks import build_question_text, load_benchmark
from unicorn_hf.evaluation.config import EvalArguments, EvalDataArguments, EvalModelArguments
from unicorn_hf.evaluation.inference import MEAN_MODE_DESCRIPTIONS, UnicornImageQA
from unicorn_hf.evaluation.scorers import score
from unicorn_hf.training.metadata import package_versions
from unicorn_hf.utils.paths import portable_command, portable_record


logger = logging.getLogger(__name__)
RESULTS_FILE = "results.json"
_PACKAGES = ("unicorn-hf", "torch", "transformers", "open_clip_torch", "evaluate", "datasets", "huggingface_hub")


def _read_jsonl(path: Path) -> list[dict] | None:
    """Stored predictions, or None (generate again) when the file cannot be read."""
    try:
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        logger.warning("%s is unreadable (%s): generating these predictions again", path, error)
        return None


def _write_jsonl(path: Path, records: list[dict]) -> None:
    """Write through a temporary file and rename it: a run killed mid-write never leaves half a predictions file
    that the next run would re-score."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text("".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records))
    partial.replace(path)


def evaluate_benchmark(qa: UnicornImageQA, name: str, data_args: EvalDataArguments, args: EvalArguments) -> list[dict]:
    """All mean modes of one benchmark: one result dict per mode (or a `skipped` entry with the reason)."""
    revision = (data_args.benchmark_revisions or {}).get(name)
    spec, examples = load_benchmark(
        name, data_args.benchmark_source, max_samples=data_args.max_samples, revision=revision, seed=data_args.seed
    )
    # Encode every distinct image once: POPE asks 6 questions per image, MME 2, MMBench one per option rotation
    # (its rotated copies share the image: `image_id` names the question).
    unique: dict[str, int] = {}
    distinct_images = []
    for example in examples:
        if example.image_id not in unique:
            unique[example.image_id] = len(unique)
            distinct_images.append(example.image)
    index = torch.tensor([unique[example.image_id] for example in examples])  # [N] -> row of raw
    raw = None  # [U, D], computed only if some mode must generate
    questions = [build_question_text(e, args.yes_no_suffix, args.mc_suffix) for e in examples]

    results = []
    for mode in args.mean_modes:
        base = {
            "benchmark": name,
            "display_name": spec.display_name,
            "hub_id": spec.hub_id,
            "hub_config": spec.hub_config,
            "split": spec.split,
            "revision": revision,
            "source": data_args.benchmark_source,
            "kind": spec.kind,
            "main_metric": spec.main_metric,
            "card_metrics": list(spec.metric_types),
            "mean_mode": mode,
            "mean_description": MEAN_MODE_DESCRIPTIONS[mode],
            "num_examples": len(examples),
            "num_images": len(unique),
        }
        first_mode = args.mean_modes[0]
        if not qa.subtracts_image_mean and mode != first_mode:
            method = qa.model.config.modality_transfer["method"]
            reason = f"transfer method {method!r} subtracts no image mean: same embeddings as mode {first_mode!r}"
            logger.info("%s: skipping mean mode %r: %s", spec.display_name, mode, reason)
            results.append({**base, "skipped": reason})
            continue
        if mode == "image" and qa.subtracts_image_mean and not qa.model.config.has_image_mean:
            reason = "checkpoint stores no image_mean (has_image_mean=False)"
            logger.warning("%s: skipping mean mode 'image': %s", spec.display_name, reason)
            results.append({**base, "skipped": reason})
            continue
        path = Path(args.output_dir) / "predictions" / name / f"{mode}.jsonl"
        ids = [e.id for e in examples]
        stored = _read_jsonl(path) if path.is_file() and not args.overwrite else None
        if stored is not None and [r["id"] for r in stored] == ids:
            logger.info("%s [%s]: re-scoring %d stored predictions from %s", spec.display_name, mode, len(ids), path)
            generations = [r["generation"] for r in stored]
        else:
            if raw is None:
                raw = qa.encode_images(distinct_images)  # [U, D]
            shifted = qa.transfer(raw, qa.resolve_mean(mode, raw))[index]  # [N, D]
            generations = qa.generate_from_embeds(
                shifted,
                questions,
                batch_size=args.batch_size,
                max_new_tokens=args.max_new_tokens,
                do_sample=args.do_sample,
            )
        metrics, records = score(spec.kind, examples, generations)
        for record, question in zip(records, questions, strict=True):
            record["prompt"] = question
        _write_jsonl(path, records)
        logger.info("%s [mean=%s]: %s", spec.display_name, mode, json.dumps(metrics))
        results.append({**base, "metrics": metrics, "predictions": str(path)})
    return results


def headline(results: list[dict]) -> dict[str, float]:
    """`<benchmark>/<main metric>[mean=<mode>]` for every scored entry: the numbers a summary shows first."""
    return {
        f"{r['benchmark']}/{r['main_metric']}[mean={r['mean_mode']}]": r["metrics"][r["main_metric"]]
        for r in results
        if "metrics" in r
    }


def run_evaluation(model_args: EvalModelArguments, data_args: EvalDataArguments, args: EvalArguments) -> dict:
    """Load the checkpoint and its encoder, evaluate every benchmark of `data_args.benchmarks`, and write the summary
    to `<output_dir>/results.json` (paths as `unicorn_hf.utils.paths.portable_record` writes them). Returns it."""
    output_dir = Path(args.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()

    qa = UnicornImageQA.from_pretrained(
        model_args.model_name_or_path,
        device=model_args.device,
        dtype=model_args.dtype,
        encoder_batch_size=model_args.encoder_batch_size,
        encoder=model_args.encoder,
        encoder_kwargs=model_args.encoder_kwargs,
        prompt_template=args.prompt_template,
    )
    results = [r for name in data_args.benchmarks for r in evaluate_benchmark(qa, name, data_args, args)]
    summary = {
        "headline": headline(results),
        "model": model_args.model_name_or_path,
        "encoder_id": qa.encoder.id,
        "model_encoder_id": qa.model.config.encoder_id,
        "benchmark_source": data_args.benchmark_source,
        "seed": data_args.seed,
        "max_samples": data_args.max_samples,
        "generation": {
            "max_new_tokens": args.max_new_tokens,
            "do_sample": args.do_sample,
            "batch_size": args.batch_size,
        },
        "prompt_template": args.prompt_template,
        "yes_no_suffix": args.yes_no_suffix,
        "mc_suffix": args.mc_suffix,
        "results": results,
        "versions": package_versions(_PACKAGES),
        "device": model_args.device,
        "dtype": model_args.dtype,
        "command": f"python {portable_command(sys.argv, output_dir)}",
        "runtime_s": round(time.perf_counter() - start, 1),
    }
    summary = portable_record(summary, output_dir)  # the checkpoint and prediction files, as a record names them
    (output_dir / RESULTS_FILE).write_text(json.dumps(summary, indent=2) + "\n")
    logger.info("Wrote %s: %s", output_dir / RESULTS_FILE, json.dumps(summary["headline"]))

    return summary
