"""results.json, a markdown table and a plot from the per-question scores of every arm."""

from __future__ import annotations

import json
import logging
import platform
from dataclasses import asdict
from pathlib import Path

import numpy as np

from unicorn_hf.experiments.bootstrap import accuracy_interval, paired_difference
from unicorn_hf.experiments.config import ExperimentArguments, Plan
from unicorn_hf.experiments.ladder_report import interval_cell
from unicorn_hf.experiments.questions import Question
from unicorn_hf.experiments.splits import PairSplits
from unicorn_hf.training.metadata import package_versions


logger = logging.getLogger(__name__)

KINDS = ("all", "mc", "yes_no")
METHODS = ("likelihood", "generation")


def _rows(questions: list[Question], kind: str) -> np.ndarray:
    return np.array([kind == "all" or question.kind == kind for question in questions])


def summarize(
    scores: dict, questions: list[Question], reference: str, num_resamples: int, confidence: float, seed: int
) -> dict:
    """Per `<arm>/<mode>`, method and question kind: accuracy with its interval and the paired difference against
    `reference` (same questions, same resamples)."""
    ref_arm, ref_mode = reference.split("/")
    summary: dict = {}
    for arm, modes in scores.items():
        for mode, per_method in modes.items():
            name = f"{arm}/{mode}"
            entry = summary.setdefault(name, {})
            for method in METHODS:
                if method not in per_method:
                    continue
                correct = np.asarray(per_method[method])
                reference_correct = np.asarray(scores[ref_arm][ref_mode][method])
                entry[method] = {}
                for kind in KINDS:
                    rows = _rows(questions, kind)
                    result = accuracy_interval(correct[rows], num_resamples, confidence, seed)
                    if name != reference:
                        result["vs_reference"] = paired_difference(
                            correct[rows], reference_correct[rows], num_resamples, confidence, seed
                        )
                    entry[method][kind] = result
            if "unparsed" in per_method:
                entry["unparsed"] = per_method["unparsed"]
    return summary


def _diff(result: dict) -> str:
    if "vs_reference" not in result:
        return "reference"
    diff = result["vs_reference"]
    mark = "" if diff["low"] <= 0 <= diff["high"] else " *"
    return interval_cell(diff, "difference") + mark


def markdown_table(summary: dict, descriptions: dict[str, str], reference: str, confidence: float) -> str:
    """One row per arm/mode: likelihood accuracy (all, mc, yes/no), the paired difference, generation accuracy."""
    level = round(100 * confidence)
    lines = [
        f"| arm / evaluation | what it is | likelihood: all | mc (4-way) | yes/no | all vs `{reference}` | "
        "generation: all |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, entry in summary.items():
        like = entry["likelihood"]
        generation = interval_cell(entry["generation"]["all"]) if "generation" in entry else "-"
        lines.append(
            f"| `{name}` | {descriptions.get(name, '')} | {interval_cell(like['all'])} | "
            f"{interval_cell(like['mc'])} | {interval_cell(like['yes_no'])} | {_diff(like['all'])} | {generation} |"
        )
    lines.append("")
    lines.append(
        f"Accuracy in % with {level}% percentile-bootstrap intervals over questions; the difference is paired (same "
        f"questions and resamples); `*`: its {level}% interval excludes 0. A model that ignores the image can reach "
        "the constant-answer baseline (a random guess: 25% mc, 50% yes/no)."
    )
    return "\n".join(lines)


def probes_table(probes: dict) -> str:
    """Per arm: does it read its embedding on its own training rows (no modality gap there)?"""
    lines = [
        "| arm | pretraining caption NLL: own / shuffled / zero | own beats shuffled | "
        "SFT training-mc accuracy: own / shuffled / zero | SFT training yes/no: own / shuffled / zero |",
        "|---|---|---|---|---|",
    ]

    def accuracies(probe: dict | None) -> str:
        if not probe:
            return "-"
        return " / ".join(f"{100 * probe[f'accuracy_{control}']:.1f}" for control in ("own", "shuffled", "zero"))

    for arm, probe in probes.items():
        nll, sft = probe["pretrain"], probe["sft"]
        lines.append(
            f"| `{arm}` | {nll['nll_own']:.3f} / {nll['nll_shuffled']:.3f} / {nll['nll_zero']:.3f} | "
            f"{100 * nll['own_better_than_shuffled']:.0f}% | {accuracies(sft)} | {accuracies(sft.get('yes_no'))} |"
        )
    lines += [
        "",
        "Probes on each arm's own training rows (unicorn_hf/experiments/probes.py): where own = shuffled the arm "
        "never learned to read its embedding, so no result on real images can be expected from it.",
    ]
    return "\n".join(lines)


def plot(summary: dict, path: Path) -> None:
    """Horizontal bars of likelihood accuracy (all questions) with their intervals."""
    import matplotlib  # here: the Agg backend must be chosen before pyplot loads (files only, no display)

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(summary)
    values = [100 * summary[name]["likelihood"]["all"]["accuracy"] for name in names]
    lows = [values[i] - 100 * summary[n]["likelihood"]["all"]["low"] for i, n in enumerate(names)]
    highs = [100 * summary[n]["likelihood"]["all"]["high"] - values[i] for i, n in enumerate(names)]
    figure, axis = plt.subplots(figsize=(7, 0.4 * len(names) + 1.2))
    axis.barh(names, values, xerr=[lows, highs], color="tab:blue", alpha=0.8)
    axis.set_xlabel("accuracy on held-out real images, %  (first-answer-token likelihood)")
    axis.invert_yaxis()
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def write_report(
    args: ExperimentArguments,
    plan: Plan,
    splits: PairSplits,
    questions: list[Question],
    scores: dict,
    timings: dict,
    run_dir: Path,
    probes: dict | None = None,
    budget: str | None = None,
) -> dict:
    """Write results.json, results.md and results.png into `run_dir`; returns the results dict. `probes`: per arm,
    `unicorn_hf.experiments.probes` on its training rows (a second table). `budget`: the training budget's name when
    `run_dir` is `seed-N/<budget>` (its table over seeds is `results-<budget>.md` beside the seed folders)."""
    summary = summarize(scores, questions, plan.reference, args.bootstrap_resamples, args.confidence, args.seed)
    descriptions = {
        "encoder/encoder_zero_shot": "the encoder alone, zero-shot: what its embeddings carry (not a bound)",
        "baseline/most_frequent_answer": "a constant answer per question type, the most frequent right one",
    }
    for arm in plan.arms:
        for mode in arm.evaluate:
            descriptions[f"{arm.name}/{mode.name}"] = f"{arm.description}; mean={mode.mean}, inputs={mode.inputs}"
    table = markdown_table(summary, descriptions, plan.reference, args.confidence)
    if probes:
        table += "\n\n" + probes_table(probes)
    results = {
        "question": "Does a VLM trained only on text answer from real images it never saw?",
        "arguments": asdict(args),
        "plan": {"reference": plan.reference, "arms": [asdict(arm) for arm in plan.arms]},
        "splits": {name: len(ids) for name, ids in splits.ids.items()},
        "num_questions": {kind: int(_rows(questions, kind).sum()) for kind in KINDS},
        "summary": summary,
        "probes": probes or {},
        "timings_s": timings,
        "this_invocation_s": round(sum(timings.values()), 1),  # stages skipped as finished count 0
        "machine": {"platform": platform.platform(), "processor": platform.machine()},
        "versions": package_versions(),
    }
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    (run_dir / "results.md").write_text(table + "\n")
    plot(summary, run_dir / "results.png")
    logger.info("\n%s", table)
    root = run_dir.parent.parent if budget else run_dir.parent
    combined = combined_table(root, budget)
    if combined is not None:
        (root / (f"results-{budget}.md" if budget else "results.md")).write_text(combined + "\n")
    return results


def combined_table(root: Path, budget: str | None = None) -> str | None:
    """One table over every finished `seed-*/results.json` (`seed-*/<budget>/results.json` for a named training
    budget) under `root`: per arm/mode, each seed's likelihood accuracy on all questions and its paired difference
    against the reference. None when no seed finished."""
    pattern = f"seed-*/{budget}/results.json" if budget else "seed-*/results.json"
    seed_dirs = {path: path.parent.parent if budget else path.parent for path in root.glob(pattern)}
    runs = sorted(seed_dirs, key=lambda path: int(seed_dirs[path].name.split("-")[1]))
    if not runs:
        return None
    results = {seed_dirs[path].name: json.loads(path.read_text()) for path in runs}
    first = next(iter(results.values()))
    reference = first["plan"]["reference"]
    header = "| arm / evaluation | " + " | ".join(
        f"{seed}: accuracy | {seed}: vs `{reference}`" for seed in results
    ) + " |"  # fmt: skip
    lines = [header, "|---|" + "---|---|" * len(results)]
    for name in first["summary"]:
        cells = []
        for result in results.values():
            entry = result["summary"].get(name)
            if entry is None:
                cells += ["-", "-"]
                continue
            cells += [interval_cell(entry["likelihood"]["all"]), _diff(entry["likelihood"]["all"])]
        lines.append(f"| `{name}` | " + " | ".join(cells) + " |")
    minutes = ", ".join(
        f"{seed}: {result.get('this_invocation_s', 0) / 60:.0f} min" for seed, result in results.items()
    )
    questions = first["num_questions"]["all"]
    lines += [
        "",
        f"All {questions} questions, first-answer-token likelihood; wall time of each seed's last invocation "
        f"(finished stages count 0): {minutes}.",
    ]
    return "\n".join(lines)
