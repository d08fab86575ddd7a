"""Several probe ladders side by side: one row per ladder (a transfer arm, a sweep point, a seed), one column per rung.

Each cell is a rung's accuracy with its 95% interval and its paired difference against `blind/shuffled`, as the
ladders themselves computed them (`ladder.json`, written by `recipes/ladder.py`); nothing is re-scored here, so the
table holds exactly the numbers of each ladder. Ladders of different checkpoints are not paired with each other:
their differences from one another are not tested.

    python -m unicorn_hf.experiments.ladder_compare --output_dir outputs/concept_titles/arms \
        --ladders mean_shift=outputs/concept_titles/plain/ladder/ladder.json none=outputs/concept_titles/arms/none/...
    python recipes/ladder_compare.py --config recipes/concept_titles/ladder_compare_plain.yaml   # the same, from YAML
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

from trl import TrlParser

from unicorn_hf.experiments.ladder_report import interval_cell
from unicorn_hf.utils.logging import setup_logging


logger = logging.getLogger(__name__)

REFERENCE = "blind/shuffled"  # the blind control every cell is paired against
SCORINGS = ("calibrated", "raw")


def _rungs(ladders: dict[str, dict]) -> list[str]:
    """The rungs of all ladders in their first-seen order, without the encoder (one value, the same for every arm
    that shares the encoder and items) and the constant blind inputs (zero and null score chance by construction)."""
    skipped = {"encoder", "blind/zero", "blind/null"}
    rungs: list[str] = []
    for ladder in ladders.values():
        rungs += [rung for rung in ladder["summary"] if rung not in skipped and rung not in rungs]
    return rungs


def comparison_table(ladders: dict[str, dict], scoring: str = "calibrated") -> str:
    """Markdown: one row per ladder (name -> the parsed `ladder.json`), one column per rung; accuracy in % with its
    interval, then the paired difference against `blind/shuffled` in points. Raises `ValueError` naming a ladder
    that lacks `scoring` (e.g. an SFT ladder, which scores questions, next to candidate ladders)."""
    for name, ladder in ladders.items():
        if scoring not in ladder.get("scorings", []):
            raise ValueError(f"ladder {name!r} has no {scoring!r} scoring (it has {ladder.get('scorings')})")
    rungs = _rungs(ladders)
    lines = ["| ladder | " + " | ".join(rungs) + " |", "|---" * (len(rungs) + 1) + "|"]
    for name, ladder in ladders.items():
        cells = []
        for rung in rungs:
            entry = ladder["summary"].get(rung, {}).get(scoring)
            if entry is None:
                cells.append("")
                continue
            cell = interval_cell(entry["accuracy"])
            if rung != REFERENCE:
                cell += ", " + interval_cell(entry[f"minus_{REFERENCE}"], "difference")
            cells.append(cell)
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    items = sorted({ladder["num_items"] for ladder in ladders.values()})
    note = (
        f"{scoring.capitalize()} candidate likelihood, % [95% interval], then the paired difference against "
        f"{REFERENCE} in points; {'/'.join(map(str, items))} held-out items. Rows are different checkpoints: their "
        "differences from one another are not tested."
    )
    return "\n".join(lines) + "\n\n" + note + "\n"


def read_ladder(name: str, path: Path) -> dict:
    """A `ladder.json` (or the ladder folder holding it), checked to be one. Raises `FileNotFoundError` or
    `ValueError` naming the ladder and the path."""
    path = Path(path)
    if path.is_dir():
        path = path / "ladder.json"
    if not path.is_file():
        raise FileNotFoundError(f"ladder {name!r}: {path} does not exist (run recipes/ladder.py first)")
    ladder = json.loads(path.read_text())
    missing = [key for key in ("summary", "scorings", "num_items") if key not in ladder]
    if missing:
        raise ValueError(f"ladder {name!r}: {path} is not a ladder.json of recipes/ladder.py (no {missing})")
    return ladder


def compare_ladders(ladder_paths: dict[str, Path], output_dir: Path) -> dict:
    """Read each `ladder.json` (`read_ladder`), write `comparison.json` (the rows' summaries and where they came
    from), `comparison.md` (`comparison_table` for each scoring) and `comparison.png` to `output_dir`; returns the
    JSON record. Nothing is written when a ladder is missing or of another kind."""
    ladders = {name: read_ladder(name, path) for name, path in ladder_paths.items()}
    tables = [f"## {scoring}\n\n{comparison_table(ladders, scoring)}" for scoring in SCORINGS]  # raises first
    record = {
        "ladders": {name: str(path) for name, path in ladder_paths.items()},
        "summary": {name: ladder["summary"] for name, ladder in ladders.items()},
        "num_items": {name: ladder["num_items"] for name, ladder in ladders.items()},
    }
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / "comparison.json").write_text(json.dumps(record, indent=2) + "\n")
    (output_dir / "comparison.md").write_text("# Probe ladders side by side\n\n" + "\n".join(tables))
    plot_comparison(ladders, output_dir / "comparison.png")
    count = f"{len(ladders)} ladder{'s' if len(ladders) != 1 else ''}"
    logger.info("compared %s -> %s (and .json, .png)", count, output_dir / "comparison.md")
    return record


def plot_comparison(ladders: dict[str, dict], path: Path, scoring: str = "calibrated") -> None:
    """One group of horizontal bars per rung (the rungs of `comparison_table`), one bar per ladder, each with its own
    (unpaired) 95% interval, and the chance line of the first ladder (candidate ladders: 1 / candidates)."""
    import matplotlib  # here: the Agg backend must be chosen before pyplot loads (files only, no display)

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rungs = _rungs(ladders)
    height = 0.8 / len(ladders)  # the bars of one rung share 0.8 of a row
    figure, axis = plt.subplots(figsize=(8, 0.45 * len(rungs) * max(1.0, len(ladders) / 2) + 1.2))
    for index, (name, ladder) in enumerate(ladders.items()):
        rows = [(position, ladder["summary"][rung][scoring]["accuracy"]) for position, rung in enumerate(rungs)
                if scoring in ladder["summary"].get(rung, {})]  # fmt: skip
        positions = [position + (index - (len(ladders) - 1) / 2) * height for position, _ in rows]
        values = [100 * stat["accuracy"] for _, stat in rows]
        errors = [[value - 100 * stat["low"] for value, (_, stat) in zip(values, rows, strict=True)],
                  [100 * stat["high"] - value for value, (_, stat) in zip(values, rows, strict=True)]]  # fmt: skip
        axis.barh(positions, values, height=height, xerr=errors, label=name, alpha=0.85)
    chance = next(iter(ladders.values())).get("chance")
    if isinstance(chance, float):
        axis.axvline(100 * chance, color="black", linestyle="--", linewidth=1, label="chance")
    axis.set_yticks(range(len(rungs)), rungs)
    axis.invert_yaxis()
    # The bars' intervals are each rung's own; the paired differences against shuffled (comparison.md) are narrower.
    axis.set_xlabel(
        f"{scoring} candidate likelihood accuracy (%)\nunpaired 95% intervals; paired differences: comparison.md"
    )
    axis.legend(loc="best", fontsize="small")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def _named_path(text: str) -> tuple[str, Path]:
    name, sep, path = text.partition("=")
    if not sep or not name or not path:
        raise ValueError(f"expected NAME=PATH/TO/ladder.json, got {text!r}")
    return name, Path(path)


@dataclass
class LadderCompareArguments:
    ladders: list[str] = field(metadata={"help": "NAME=path/to/ladder.json per ladder, in the table's row order."})
    output_dir: str = field(metadata={"help": "Where comparison.{json,md,png} go."})

    def __post_init__(self) -> None:
        if not isinstance(self.ladders, list) or not all(isinstance(text, str) for text in self.ladders):
            raise ValueError(f"`ladders` must be a list of 'NAME=path/to/ladder.json' strings, got {self.ladders!r}")
        named = [_named_path(text) for text in self.ladders]  # raises naming a malformed entry
        duplicates = sorted({name for name, _ in named if [n for n, _ in named].count(name) > 1})
        if duplicates:
            raise ValueError(f"`ladders` names {duplicates} more than once; each row needs its own name")


def make_parser():
    """`--ladders NAME=PATH ... --output_dir D`, or `--config` a YAML with those keys (recipes/ladder_compare.py)."""
    return TrlParser((LadderCompareArguments,))


def run_comparison(args: LadderCompareArguments) -> dict:
    return compare_ladders(dict(map(_named_path, args.ladders)), Path(args.output_dir))


def main(argv: list[str] | None = None) -> dict:
    (args,) = make_parser().parse_args_and_config(args=argv)
    setup_logging()
    return run_comparison(args)


if __name__ == "__main__":
    main()
