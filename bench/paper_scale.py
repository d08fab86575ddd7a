"""Expected cost and time of the Unicorn-8B recipe at paper scale, from measured per-sample figures.

    make quickstart                       # writes the tiny caption and dialogue folders measured here
    python bench/paper_scale.py --config recipes/unicorn-8b/scale.yaml

Measured here: tokens per caption word and per dialogue turn (real SmolLM2 generations, its BPE tokenizer), the
prompt lengths of our prompt files, the pipeline overhead and the stage-2 JSON acceptance (bench/results). Taken
from the paper: data sizes, 12 days of synthesis, $0.0003 per sample, ~27 h of training on 8xA100. Assumed: GPU
peak FLOP/s and MFU (the YAML says which). Training and encoding FLOPs use the standard dense-transformer counts:
2N per token forward, 4N backward (2N when the weights are frozen: only activation gradients flow).
"""

from __future__ import annotations

import statistics
import sys
from dataclasses import dataclass, field
from pathlib import Path

from jinja2 import Template
from transformers import AutoTokenizer
from trl import TrlParser


REPO = Path(__file__).resolve().parents[1]
SECONDS_PER_HOUR, SECONDS_PER_DAY = 3600, 86400


@dataclass
class ScaleArguments:
    num_captions: int = field(metadata={"help": "Captions synthesized at paper scale."})
    caption_words: float = field(metadata={"help": "Mean words per caption."})
    num_dialogues: int = field(metadata={"help": "Dialogues kept at paper scale."})
    dialogue_turns: float = field(metadata={"help": "Mean question/answer pairs per dialogue."})
    synthesis_days: float = field(metadata={"help": "Paper: wall time of all data synthesis."})
    api_cost_per_sample_usd: float = field(metadata={"help": "Paper: API cost per synthesized sample."})
    llm_params: float = field(metadata={"help": "Parameters of the VLM's language model."})
    text_encoder_params: float = field(metadata={"help": "Parameters of the stage-3 text encoder."})
    num_image_tokens: int = field(metadata={"help": "Positions the projected image vector fills."})
    training_hours: float = field(metadata={"help": "Paper: pretraining + SFT wall time."})
    num_gpus: int = field(metadata={"help": "GPUs of the paper's training run."})
    gpu_peak_flops: float = field(metadata={"help": "Assumed dense bf16 peak FLOP/s per GPU."})
    mfu: float = field(metadata={"help": "Assumed model FLOPs utilisation."})
    gradient_checkpointing: bool = field(metadata={"help": "Recompute activations: one more forward per step."})
    pipeline_over_direct_throughput: float = field(metadata={"help": "Measured by bench/bench_synthesis.py."})
    json_acceptance_small_model: float = field(metadata={"help": "Measured by bench/bench_synthesis.py."})
    captions_dataset: str = field(metadata={"help": "A stage-1 output folder to measure tokens per word on."})
    instructions_dataset: str = field(metadata={"help": "A stage-2 output folder to measure tokens per turn on."})
    tokenizer: str = field(metadata={"help": "Tokenizer for the token counts (`pkg://` allowed)."})


def make_parser() -> TrlParser:
    return TrlParser((ScaleArguments,))


def measure(args: ScaleArguments) -> dict[str, float]:
    """Per-sample token figures from real generations and the real prompt files."""
    from unicorn_hf.synthesis.prompt_files import load_prompt
    from unicorn_hf.utils.assets import resolve_model_path
    from unicorn_hf.utils.hub import load_dataset_folder

    tokenizer = AutoTokenizer.from_pretrained(resolve_model_path(args.tokenizer))

    def count(text: str) -> int:
        return len(tokenizer(text, add_special_tokens=False)["input_ids"])

    caption_rows = load_dataset_folder(REPO / args.captions_dataset, "captions")
    captions = caption_rows["caption"]
    tokens_per_word = sum(map(count, captions)) / sum(len(caption.split()) for caption in captions)
    dialogues = load_dataset_folder(REPO / args.instructions_dataset, "instructions")["messages"]
    # One question/answer pair = a user and an assistant message (the `<image>` token and hint included).
    tokens_per_turn = statistics.mean(
        sum(count(message["content"]) for message in messages) / (len(messages) // 2) for messages in dialogues
    )
    caption_tokens = tokens_per_word * args.caption_words
    seed_tokens = statistics.mean(map(count, caption_rows["seed"]))
    caption_prompt = count(Template(load_prompt("detailed_caption.txt")).render(seed="")) + seed_tokens
    dialogue_prompt = statistics.mean(
        count(Template(load_prompt(f"instructions_{task}.txt")).render(caption="", min_turns=6, max_turns=8))
        for task in ("mc", "qa", "reasoning")
    )
    return {
        "captions_measured": len(captions),
        "dialogues_measured": len(dialogues),
        "tokens_per_word": tokens_per_word,
        "tokens_per_turn": tokens_per_turn,
        "caption_tokens": caption_tokens,
        "caption_prompt_tokens": caption_prompt,  # template + the mean seed
        "dialogue_prompt_tokens": dialogue_prompt + caption_tokens,  # template + the caption
        "dialogue_tokens": tokens_per_turn * args.dialogue_turns,
    }


def estimate(args: ScaleArguments, measured: dict[str, float]) -> list[tuple[str, str, str]]:
    """(quantity, value, basis) rows."""
    samples = args.num_captions + args.num_dialogues
    caption_out = args.num_captions * measured["caption_tokens"]
    dialogue_out = args.num_dialogues * measured["dialogue_tokens"]
    requests_small = args.num_dialogues / args.json_acceptance_small_model
    implied_tps = (caption_out + dialogue_out) / (args.synthesis_days * SECONDS_PER_DAY)
    cluster_flops = args.num_gpus * args.gpu_peak_flops * args.mfu
    recompute = 2 if args.gradient_checkpointing else 0  # one more forward: 2N per token
    # Stage 3: a forward of the text tower over every caption (+ its special tokens, ignored).
    transfer_flops = 2 * args.text_encoder_params * caption_out
    # Pretraining: frozen LLM, trainable projector at the input: forward 2N + activation gradients 2N per token.
    pretrain_tokens = args.num_captions * (args.num_image_tokens + measured["caption_tokens"])
    pretrain_flops = (4 + recompute) * args.llm_params * pretrain_tokens
    # SFT: all weights train: 6N per token.
    sft_tokens = args.num_dialogues * (args.num_image_tokens + measured["dialogue_tokens"])
    sft_flops = (6 + recompute) * args.llm_params * sft_tokens
    hours = {name: flops / cluster_flops / SECONDS_PER_HOUR for name, flops in
             (("transfer", transfer_flops), ("pretrain", pretrain_flops), ("sft", sft_flops))}  # fmt: skip
    gpu = f"{args.num_gpus} GPUs x {args.gpu_peak_flops / 1e12:.0f} TFLOP/s x MFU {args.mfu:.2f} (assumed)"
    return [
        ("tokens per caption word / per dialogue turn",
         f"{measured['tokens_per_word']:.2f} / {measured['tokens_per_turn']:.0f}",
         f"measured on {measured['captions_measured']:.0f} captions, {measured['dialogues_measured']:.0f} dialogues"),
        ("generated tokens: captions + dialogues", f"{caption_out / 1e6:.0f}M + {dialogue_out / 1e6:.0f}M",
         f"{args.caption_words:.0f} words x tokens/word; {args.dialogue_turns:g} turns x tokens/turn"),
        ("prompt tokens: captions + dialogues",
         f"{args.num_captions * measured['caption_prompt_tokens'] / 1e6:.0f}M + "
         f"{args.num_dialogues * measured['dialogue_prompt_tokens'] / 1e6:.0f}M", "our prompt files, measured"),
        ("API cost, paper's rate", f"${samples * args.api_cost_per_sample_usd:,.0f}",
         f"{samples / 1e6:.2f}M samples x ${args.api_cost_per_sample_usd}"),
        ("stage-2 requests at the 135M model's acceptance",
         f"{requests_small / 1e6:.2f}M (x{1 / args.json_acceptance_small_model:.1f})",
         "a 72B model accepts far more; this bounds the retry cost"),
        ("synthesis throughput implied by the paper", f"{implied_tps:,.0f} generated tokens/s",
         f"all generated tokens / {args.synthesis_days:g} days"),
        ("distilabel pipeline overhead", f"{(1 / args.pipeline_over_direct_throughput - 1) * 100:+.0f}% wall time",
         "bench_synthesis: pipeline vs direct backend calls"),
        ("stage 3 transfer (LLM2CLIP text tower)", f"{hours['transfer']:.1f} h", gpu),
        ("pretraining (frozen LLM, projector)", f"{hours['pretrain']:.1f} h",
         f"{pretrain_tokens / 1e9:.2f}B tokens incl. {args.num_image_tokens} image positions"),
        ("SFT (full)", f"{hours['sft']:.1f} h", f"{sft_tokens / 1e9:.2f}B tokens"),
        ("training total vs paper", f"{hours['pretrain'] + hours['sft']:.1f} h vs {args.training_hours:g} h",
         "the gap is the MFU assumption plus padding and data loading the FLOP count ignores"),
    ]  # fmt: skip


def main(args: ScaleArguments) -> None:
    from unicorn_hf.utils.logging import setup_logging

    setup_logging("WARNING")
    for name in (args.captions_dataset, args.instructions_dataset):
        if not (REPO / name).is_dir():
            raise FileNotFoundError(f"{name} does not exist: run `make quickstart` first (it writes the tiny folders)")
    rows = estimate(args, measure(args))
    lines = ["| quantity | estimate | basis |", "|---|---|---|", *(f"| {a} | {b} | {c} |" for a, b, c in rows)]
    sys.stdout.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main(*make_parser().parse_args_and_config())
