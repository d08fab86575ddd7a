"""The probe ladder as people read it: the markdown table (`ladder.md`, the model card's "Does it see?" section),
the plot (`ladder.png`) and the one-line summaries, from the `summary` of `unicorn_hf.experiments.ladder_run`."""

from __future__ import annotations

from collections import Counter
from pathlib import Path


# The table's columns per ladder form: (header, scoring, statistic); the first scoring named is the one plotted.
CANDIDATE_COLUMNS = (
    ("raw", "raw", "accuracy"),
    ("calibrated", "calibrated", "accuracy"),
    ("calibrated - shuffled", "calibrated", "minus_blind/shuffled"),
    ("calibrated - zero", "calibrated", "minus_blind/zero"),
    ("calibrated - text (b)", "calibrated", "minus_text"),
)
QUESTION_COLUMNS = (
    ("mc", "mc", "accuracy"),
    ("mc - shuffled", "mc", "minus_blind/shuffled"),
    ("mc - zero", "mc", "minus_blind/zero"),
    ("mc - text (b)", "mc", "minus_text"),
    ("mc cloze", "mc_cloze", "accuracy"),
    ("mc cloze calibrated", "mc_cloze_calibrated", "accuracy"),
    ("mc cloze calibrated - shuffled", "mc_cloze_calibrated", "minus_blind/shuffled"),
    ("mc cloze calibrated - zero", "mc_cloze_calibrated", "minus_blind/zero"),
    ("mc cloze calibrated - text (b)", "mc_cloze_calibrated", "minus_text"),
    ("yes/no", "yes_no", "accuracy"),
    ("yes/no - shuffled", "yes_no", "minus_blind/shuffled"),
    ("yes/no - zero", "yes_no", "minus_blind/zero"),
    ("yes/no - text (b)", "yes_no", "minus_text"),
    ("mc generated", "mc_generation", "accuracy"),
    ("yes/no generated", "yes_no_generation", "accuracy"),
)


def interval_cell(stat: dict | None, key: str = "accuracy") -> str:
    if stat is None:
        return ""
    value = stat[key] if key in stat else stat["difference"]
    sign = "+" if key == "difference" else ""
    return f"{value * 100:{sign}.1f} [{stat['low'] * 100:{sign}.1f}, {stat['high'] * 100:{sign}.1f}]"


def _chance_line(chance: float | dict[str, float]) -> str:
    if isinstance(chance, dict):
        levels = ", ".join(f"{name.replace('_', '/')} {value * 100:.1f}%" for name, value in chance.items())
        return f"Chance: {levels}."
    return f"Chance: {chance * 100:.1f}%."


def ladder_table(
    summary: dict, chance: float | dict[str, float], training_dialogues: dict | None = None,
    concentration: dict | None = None,
) -> str:  # fmt: skip
    """The ladder as a markdown table: % with 95% intervals; differences in points. The columns follow the scorings
    present: candidate likelihood (pretraining) or the SFT questions. chance: one value, or one per scoring;
    `training_dialogues` (`probes.training_dialogue_probe`'s result) and `concentration` (`answer_concentration`)
    add their lines under the table."""
    columns = QUESTION_COLUMNS if any("mc" in entry for entry in summary.values()) else CANDIDATE_COLUMNS
    # only the columns some rung has (the cloze ones are optional)
    columns = [c for c in columns if any(c[2] in entry.get(c[1], {}) for entry in summary.values())]
    lines = ["| rung | " + " | ".join(header for header, _, _ in columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for rung, entry in summary.items():
        cells = []
        for _, scoring, statistic in columns:
            stat = entry.get(scoring, {}).get(statistic)
            cells.append(interval_cell(stat, "accuracy" if statistic == "accuracy" else "difference"))
        lines.append(f"| {rung} | " + " | ".join(cells) + " |")
    notes = [_chance_line(chance)]
    if "encoder" in summary:
        notes.append("The encoder row answers by cosine similarity between the image and each candidate's caption.")
    if training_dialogues:
        notes.append(training_dialogue_line(training_dialogues))
    if concentration:
        notes.append(
            "Most frequent first-token answer per rung: "
            + "; ".join(
                f"{rung} " + ", ".join(f"{kind} {v['answer']} {100 * v['share']:.0f}%" for kind, v in kinds.items())
                for rung, kinds in concentration.items()
            )
            + "."
        )
    return "\n".join(lines) + "\n\n" + "\n".join(notes) + "\n"


def answer_concentration(chosen: dict[str, dict[str, list[str]]]) -> dict[str, dict[str, dict]]:
    """Per rung and question kind, the answer the first token chose most often and its share of the questions
    (`question_rungs`' chosen answers): 1.0 means one constant answer whatever the input."""
    result = {}
    for rung, kinds in chosen.items():
        result[rung] = {}
        for kind, answers in kinds.items():
            answer, count = Counter(answers).most_common(1)[0]
            result[rung][kind] = {"answer": answer, "share": count / len(answers)}
    return result


def training_dialogue_line(probe: dict) -> str:
    """One sentence of `probes.training_dialogue_probe`'s result: accuracy with the own / a shuffled / a zero
    embedding per scoring present (first answer token, and the cloze scorings when probed), next to chance."""
    parts = []
    for scoring, label in (("", "letter"), ("_cloze", "cloze"), ("_cloze_calibrated", "cloze calibrated")):
        keys = [f"accuracy{scoring}_{control}" for control in ("own", "shuffled", "zero")]
        if all(key in probe for key in keys):
            parts.append(f"{label} " + " / ".join(f"{100 * probe[key]:.1f}%" for key in keys))
    line = (
        f"Training dialogues (first turn, {probe['rows']} rows), with their own / a shuffled / a zero embedding: "
        f"{'; '.join(parts)}; chance {100 * probe['chance']:.1f}%."
    )
    if "yes_no" in probe:
        yes_no = probe["yes_no"]
        controls = ("own", "shuffled", "zero")
        accuracies = " / ".join(f"{100 * yes_no[f'accuracy_{control}']:.1f}%" for control in controls)
        line += f" Yes/no first turns ({yes_no['rows']} rows): {accuracies}; chance {100 * yes_no['chance']:.1f}%."
    return line


PLOT_PANELS = {
    "calibrated": "held-out items ranked right, %\n(candidate likelihood, calibrated; encoder: cosine)",
    "mc": "4-way multiple choice right, %\n(first answer token; encoder: cosine)",
    "mc_cloze_calibrated": "4-way multiple choice right, %\n(cloze formulation, calibrated; encoder: cosine)",
    "yes_no": "yes/no right, %\n(first answer token; encoder: cosine)",
}


def plot_ladder(summary: dict, chance: float | dict[str, float], path: Path) -> None:
    """Horizontal bars per rung with their intervals and the chance line; one panel per headline scoring present
    (`calibrated` after pretraining, `mc` and `yes_no` after SFT; a rung without it, the encoder, shows `raw`)."""
    import matplotlib  # here: the Agg backend must be chosen before pyplot loads (files only, no display)

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(summary)
    panels = [scoring for scoring in PLOT_PANELS if any(scoring in entry for entry in summary.values())]
    figure, axes = plt.subplots(1, len(panels), figsize=(7 * len(panels), 0.4 * len(names) + 1.2), squeeze=False)
    colors = ["tab:gray" if n == "encoder" else "tab:red" if n.startswith("blind/") else "tab:blue" for n in names]
    for axis, scoring in zip(axes[0], panels, strict=True):
        stats = [_panel_stat(summary[name], scoring)["accuracy"] for name in names]
        values = [100 * stat["accuracy"] for stat in stats]
        lows = [value - 100 * stat["low"] for value, stat in zip(values, stats, strict=True)]
        highs = [100 * stat["high"] - value for value, stat in zip(values, stats, strict=True)]
        axis.barh(names, values, xerr=[lows, highs], color=colors, alpha=0.8)
        level = chance.get(scoring, chance.get("mc")) if isinstance(chance, dict) else chance
        axis.axvline(100 * level, color="black", linestyle="--", linewidth=1, label="chance")
        axis.set_xlabel(PLOT_PANELS[scoring])
        axis.invert_yaxis()
        axis.legend(loc="best")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def _panel_stat(entry: dict, scoring: str) -> dict:
    """A rung's statistics in a plot panel: the panel's scoring, else the rung's closest one (the encoder answers
    mc by cosine, whatever the model's mc scoring; after pretraining it has `raw` only)."""
    for name in (scoring, "mc" if scoring.startswith("mc") else None, "raw"):
        if name in entry:
            return entry[name]
    raise KeyError(f"no {scoring!r} statistics in the rung {sorted(entry)}")
