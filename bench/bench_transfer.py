"""Benchmark of stage 3 (modality transfer): overhead over the bare encoder, and memory versus dataset size.

    python bench/bench_transfer.py            # small: 4k captions for throughput, 1k vs 5k for memory (~4 min, CPU)
    python bench/bench_transfer.py --full     # the issue's sizes: 10k for throughput, 10k vs 100k for memory

1. Throughput: the whole transfer (read shards, encode, stash, mean, shift, float16 parquet, instruction join, card)
   against the bare `encoder.encode_text` on the same captions in the same shards and batches. Target >= 0.9.
2. Peak memory (max RSS of a fresh process that runs the transfer) at two dataset sizes with the same shard size.
   Target: flat within 10% (ratio <= 1.10).

Captions are synthetic (ImageNet class names in templates, 20-90 words, some beyond CLIP's 77 tokens) and the encoder
is the tiny random-init `unicorn-tiny-clip` open_clip model, so the numbers measure the pipeline, not a real encoder:
with a real encoder on a GPU the forward pass is a larger share and the ratio only gets closer to 1.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path


ENCODER = "unicorn-tiny-clip"
FILLER = (
    "on", "in", "with", "near", "under", "behind", "a", "the", "of", "and",
    "small", "large", "old", "red", "blue", "green", "wooden", "metal", "bright", "dark",
)  # fmt: skip


def make_inputs(folder: Path, rows: int, seed: int = 0) -> tuple[Path, Path]:
    """Stage-1/2 shaped datasets: `rows` captions and one dialogue for every second caption."""
    from datasets import Dataset

    from unicorn_hf.utils.assets import imagenet_classnames
    from unicorn_hf.utils.hub import configs_metadata, write_card, write_dataset_config

    rng = random.Random(seed)
    labels = imagenet_classnames()
    captions = []
    for _ in range(rows):
        words = [rng.choice(FILLER if rng.random() < 0.6 else labels) for _ in range(rng.randint(20, 90))]
        captions.append("a photo of " + " ".join(words) + ".")
    ids = [f"c{i:07d}" for i in range(rows)]
    captions_dir, instructions_dir = folder / "captions", folder / "instructions"
    data = {"id": ids, "seed": ids, "seed_source": ["bench"] * rows, "caption": captions, "model_name": ["m"] * rows}
    write_dataset_config(Dataset.from_dict(data), captions_dir, "captions")
    write_card(captions_dir, {"configs": configs_metadata(["captions"])}, "# bench captions")
    half = range(0, rows, 2)
    dialogue = [{"role": "user", "content": "<image>\nDescribe it."}, {"role": "assistant", "content": "It is."}]
    data = {
        "id": [ids[i] for i in half],
        "task": ["qa"] * len(half),
        "caption": [captions[i] for i in half],
        "messages": [dialogue] * len(half),
        "model_name": ["m"] * len(half),
    }
    write_dataset_config(Dataset.from_dict(data), instructions_dir, "instructions")
    write_card(instructions_dir, {"configs": configs_metadata(["instructions"])}, "# bench instructions")
    return captions_dir, instructions_dir


def _arguments(inputs: tuple[Path, Path], out: Path, batch_size: int, shard_size: int):
    from unicorn_hf.transfer.config import EncoderArguments, TransferArguments

    encoder_args = EncoderArguments(
        encoder=ENCODER, pretrained=None, encoder_device="cpu", encoder_dtype="float32",
        encoder_batch_size=batch_size, init_seed=0,
    )  # fmt: skip
    transfer_args = TransferArguments(
        captions_path=str(inputs[0]), instructions_path=str(inputs[1]), output_dir=str(out), shard_size=shard_size,
        method="mean_shift", renormalize=True, diagnostics=False,
    )  # fmt: skip
    return encoder_args, transfer_args


def throughput(folder: Path, rows: int, batch_size: int, shard_size: int) -> dict:
    from unicorn_hf.encoders import load_encoder
    from unicorn_hf.transfer.pipeline import run_transfer
    from unicorn_hf.transfer.sources import ShardedSource

    inputs = make_inputs(folder / f"inputs-{rows}", rows)
    source = ShardedSource(str(inputs[0]), "captions")
    captions = [text for table in source.shards(shard_size, ["caption"]) for text in table["caption"].to_pylist()]
    encoder = load_encoder(ENCODER, device="cpu", dtype="float32", batch_size=batch_size, init_seed=0)
    encoder.encode_text(captions[:batch_size])  # warm-up: allocator, tokenizer cache

    start = time.perf_counter()
    for index in range(0, rows, shard_size):
        encoder.encode_text(captions[index : index + shard_size])
    bare = time.perf_counter() - start

    # The same loaded encoder: both sides exclude the one-off model load and count everything else.
    start = time.perf_counter()
    run_transfer(*_arguments(inputs, folder / "out-throughput", batch_size, shard_size), encoder=encoder)
    full = time.perf_counter() - start
    return {"rows": rows, "bare_s": bare, "full_s": full, "ratio": bare / full}


_CHILD = """
import json, sys
sys.path.insert(0, "bench")
from bench_transfer import _arguments
from unicorn_hf.transfer.pipeline import run_transfer

def peak_kib():
    status = dict(line.split(":", 1) for line in open("/proc/self/status").read().splitlines())
    return int(status["VmHWM"].split()[0])

# VmHWM, not ru_maxrss: a child's ru_maxrss also counts the RSS it inherited from the forking parent before exec.
imports = peak_kib()
with open("/proc/self/clear_refs", "w") as handle:  # reset the peak mark: from here on it covers the transfer alone
    handle.write("5")
run_transfer(*_arguments(({captions!r}, {instructions!r}), {out!r}, {batch_size}, {shard_size}))
transfer = peak_kib()
print(json.dumps({{"process": max(imports, transfer), "transfer": transfer}}))
"""


def peak_memory(folder: Path, sizes: list[int], batch_size: int, shard_size: int) -> dict:
    """Peak RSS (MiB) of a fresh process per size: whole process, and the transfer alone (from after imports)."""
    peaks = {}
    for rows in sizes:
        captions, instructions = make_inputs(folder / f"inputs-{rows}", rows)
        code = _CHILD.format(
            captions=str(captions), instructions=str(instructions), out=str(folder / f"out-{rows}"),
            batch_size=batch_size, shard_size=shard_size,
        )  # fmt: skip
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise RuntimeError(f"transfer of {rows} rows failed:\n{result.stderr[-3000:]}")
        peaks[rows] = {k: v / 1024 for k, v in json.loads(result.stdout.strip().splitlines()[-1]).items()}  # KiB
    small, large = sizes
    return {
        "peak_mib": peaks,
        "ratio": peaks[large]["process"] / peaks[small]["process"],
        "transfer_ratio": peaks[large]["transfer"] / peaks[small]["transfer"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="10k captions for throughput, 10k vs 100k for memory")
    parser.add_argument("--rows", type=int, default=None, help="captions for the throughput run")
    parser.add_argument("--memory-sizes", type=int, nargs=2, default=None, help="two dataset sizes")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--shard-size", type=int, default=1000)
    parser.add_argument("--skip-memory", action="store_true")
    args = parser.parse_args()
    rows = args.rows or (10_000 if args.full else 4_000)
    sizes = args.memory_sizes or ([10_000, 100_000] if args.full else [1_000, 5_000])

    import torch

    from unicorn_hf.utils.logging import setup_logging

    setup_logging("WARNING")
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory(prefix="bench_transfer_") as tmp:
        result = {"throughput": throughput(Path(tmp), rows, args.batch_size, args.shard_size)}
        if not args.skip_memory:
            result["memory"] = peak_memory(Path(tmp), sizes, args.batch_size, args.shard_size)
    t = result["throughput"]
    print(f"throughput  {t['rows']} captions: bare encoder {t['bare_s']:.1f}s, full transfer {t['full_s']:.1f}s "
          f"-> ratio {t['ratio']:.3f} (target >= 0.9)")  # fmt: skip
    if "memory" in result:
        m = result["memory"]
        (small, a), (large, b) = m["peak_mib"].items()
        print(f"peak memory {small} captions {a['process']:.0f} MiB, {large} captions {b['process']:.0f} MiB "
              f"-> ratio {m['ratio']:.3f} (target <= 1.10)")  # fmt: skip
        print(f"  transfer alone (RSS peak after imports): {a['transfer']:.0f} MiB vs {b['transfer']:.0f} MiB "
              f"-> ratio {m['transfer_ratio']:.3f}")  # fmt: skip
    print(json.dumps(result))


if __name__ == "__main__":
    main()
