"""`recipes/ladder.py`: the probe ladder (`unicorn_hf.experiments.ladder`) of one pretraining checkpoint on the
paired encoder's held-out pairs, with bootstrap intervals and paired differences; writes `ladder.json`,
`ladder.md` and `ladder.png`.

Arms that differ only at inference (the mean variants of the mean shift, memory projection on any checkpoint that
carries a memory) share the checkpoint: they are the `image_rules` of one run.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from unicorn_hf.experiments.bootstrap import accuracy_interval, paired_difference
from unicorn_hf.experiments.ladder import ImageRule, encoder_rung, ladder_items, rung_inputs, score_rungs
from unicorn_hf.paths import portable_record


logger = logging.getLogger(__name__)

LADDER_FILE = "ladder.json"
LADDER_TABLE = "ladder.md"
LADDER_PLOT = "ladder.png"
BLIND_REFERENCES = ("blind/shuffled", "blind/zero")


@dataclass
class LadderArguments:
    model_name_or_path: str = field(metadata={"help": "The checkpoint to probe (a pretraining output)."})
    encoder_config: str = field(metadata={"help": "The encoder's recipe YAML: which pairs it collected."})
    encoder_dir: str = field(metadata={"help": "The trained encoder folder (holds held_out_ids.json)."})
    num_images: int = field(metadata={"help": "Held-out pairs probed (the first ones of the encoder's order)."})
    num_candidates: int = field(metadata={"help": "Candidate titles per item (the right one + distractors)."})
    text_form: str = field(metadata={"help": "Rung b's text of a pair: `title` or `caption` (as it trained)."})
    image_rules: list[ImageRule] = field(
        metadata={"help": "Rung c's rules: {name, image_mean: eval|image|text|none, project_onto_memory}."}
    )
    zero_shot_prompts: dict = field(metadata={"help": "Rung a: source -> the encoder's caption form, `{title}`."})
    batch_size: int = field(metadata={"help": "Rows (item x candidate) per forward pass."})
    bootstrap_resamples: int = field(metadata={"help": "Bootstrap resamples of the items."})
    confidence: float = field(metadata={"help": "Two-sided confidence of the intervals, e.g. 0.95."})
    seed: int = field(metadata={"help": "Seed of the candidates, the shuffled control and the bootstrap."})
    output_dir: str = field(metadata={"help": "ladder.json and ladder.md are written here."})

    def __post_init__(self) -> None:
        from unicorn_hf.synthesis.config import _from_mapping

        if not self.image_rules:
            raise ValueError("`image_rules` is empty: rung c needs at least one rule (e.g. {name: pool_mean})")
        self.image_rules = [
            _from_mapping(ImageRule, rule, f"image_rules[{index}]") for index, rule in enumerate(self.image_rules)
        ]
        if self.text_form not in ("title", "caption"):
            raise ValueError(f"`text_form` must be 'title' or 'caption', got {self.text_form!r}")


def summarize(credit: dict[str, dict[str, list[float]]], resamples: int, confidence: float, seed: int) -> dict:
    """Per rung and scoring (`raw`, `calibrated`): accuracy with its interval, and paired differences against the
    blind controls and against rung b (`text`)."""
    summary = {}
    for rung, scored in credit.items():
        entry = {}
        for scoring in ("raw", "calibrated"):
            if scoring not in scored:
                continue
            values = scored[scoring]
            row = {"accuracy": accuracy_interval(values, resamples, confidence, seed)}
            for reference in (*BLIND_REFERENCES, "text"):
                if reference != rung and reference in credit and scoring in credit[reference]:
                    row[f"minus_{reference}"] = paired_difference(
                        values, credit[reference][scoring], resamples, confidence, seed
                    )
            entry[scoring] = row
        summary[rung] = entry
    return summary


def _cell(stat: dict | None, key: str = "accuracy") -> str:
    if stat is None:
        return ""
    value = stat[key] if key in stat else stat["difference"]
    sign = "+" if key == "difference" else ""
    return f"{value * 100:{sign}.1f} [{stat['low'] * 100:{sign}.1f}, {stat['high'] * 100:{sign}.1f}]"


def ladder_table(summary: dict, chance: float) -> str:
    """The ladder as a markdown table: % with 95% intervals; differences in points."""
    lines = [
        "| rung | raw | calibrated | calibrated - shuffled | calibrated - zero | calibrated - text (b) |",
        "|---|---|---|---|---|---|",
    ]
    for rung, entry in summary.items():
        raw, calibrated = entry.get("raw", {}), entry.get("calibrated", {})
        lines.append(
            f"| {rung} | {_cell(raw.get('accuracy'))} | {_cell(calibrated.get('accuracy'))} | "
            f"{_cell(calibrated.get('minus_blind/shuffled'), 'difference')} | "
            f"{_cell(calibrated.get('minus_blind/zero'), 'difference')} | "
            f"{_cell(calibrated.get('minus_text'), 'difference')} |"
        )
    return "\n".join(lines) + f"\n\nChance: {chance * 100:.1f}%.\n"


def plot_ladder(summary: dict, chance: float, path: Path) -> None:
    """Horizontal bars per rung: calibrated accuracy (raw where a rung has no calibration) with its interval, and
    the chance line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(summary)
    stats = [summary[name].get("calibrated", summary[name]["raw"])["accuracy"] for name in names]
    values = [100 * stat["accuracy"] for stat in stats]
    lows = [value - 100 * stat["low"] for value, stat in zip(values, stats, strict=True)]
    highs = [100 * stat["high"] - value for value, stat in zip(values, stats, strict=True)]
    colors = ["tab:gray" if n == "encoder" else "tab:red" if n.startswith("blind/") else "tab:blue" for n in names]
    figure, axis = plt.subplots(figsize=(7, 0.4 * len(names) + 1.2))
    axis.barh(names, values, xerr=[lows, highs], color=colors, alpha=0.8)
    axis.axvline(100 * chance, color="black", linestyle="--", linewidth=1, label="chance")
    axis.set_xlabel("held-out items ranked right, %\n(candidate likelihood, calibrated; encoder: cosine)")
    axis.invert_yaxis()
    axis.legend(loc="lower right")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def run_ladder(args: LadderArguments) -> dict:
    """Score every rung; write and return `ladder.json` (also `ladder.md` and `ladder.png`)."""
    from unicorn_hf.experiments.sees import held_out_pairs
    from unicorn_hf.modeling import UnicornForConditionalGeneration, UnicornProcessor
    from unicorn_hf.training.metadata import package_versions
    from unicorn_hf.transfer.encoders import load_encoder

    start = time.perf_counter()
    pairs = held_out_pairs(args.encoder_config, args.encoder_dir, args.num_images)
    items = ladder_items(pairs, args.num_candidates, args.text_form, args.seed)
    encoder = load_encoder(f"local-dir:{args.encoder_dir}", device="cpu", dtype="float32", batch_size=64)
    raw_images = encoder.encode_image([pair.load() for pair in pairs])  # [N, D]
    raw_text = encoder.encode_text([item.text for item in items])  # [N, D]
    unknown = sorted({item.source for item in items} - set(args.zero_shot_prompts))
    if unknown:
        raise ValueError(f"`zero_shot_prompts` has no prompt for source(s) {unknown}")
    credit = {"encoder": {"raw": encoder_rung(raw_images, items, encoder.encode_text, args.zero_shot_prompts)}}

    model = UnicornForConditionalGeneration.from_pretrained(args.model_name_or_path, dtype=torch.float32).eval()
    processor = UnicornProcessor.from_pretrained(args.model_name_or_path)
    inputs = rung_inputs(model, raw_text, raw_images, args.image_rules, args.seed)
    scored = score_rungs(
        model, processor, inputs, items, args.batch_size, progress=lambda name: logger.info("ladder rung %s", name)
    )
    for name, values in scored.items():
        credit[name] = {"raw": values["raw"], "calibrated": values["calibrated"]}
    summary = summarize(credit, args.bootstrap_resamples, args.confidence, args.seed)
    chance = 1 / args.num_candidates
    results = {
        "question": "Where is the image lost? The same held-out items, rung by rung (unicorn_hf.experiments.ladder).",
        "arguments": portable_record(asdict(args), args.output_dir),
        "modality_transfer": model.config.modality_transfer,
        "num_items": len(items),
        "chance": chance,
        "summary": summary,
        "per_item": {"pair_ids": [item.pair_id for item in items], "credit": credit},
        "seconds": round(time.perf_counter() - start, 1),
        "versions": package_versions(),
    }
    output_dir = Path(args.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / LADDER_FILE).write_text(json.dumps(results, indent=1) + "\n")
    (output_dir / LADDER_TABLE).write_text(ladder_table(summary, chance))
    plot_ladder(summary, chance, output_dir / LADDER_PLOT)
    for rung, entry in summary.items():
        best = entry.get("calibrated", entry["raw"])["accuracy"]
        logger.info("%-24s %.3f [%.3f, %.3f]", rung, best["accuracy"], best["low"], best["high"])
    return results
