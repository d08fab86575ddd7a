"""Accounting for rows that a stage drops, so that nothing vanishes silently.

Every stage owns one `DropLog`; each dropped row is recorded with a short machine-readable reason (e.g.
`"empty_caption"`, `"invalid_json"`) and an example id. The counts go into the dataset card and the run summary.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path


DROPS_FILE = "drops.json"  # a stage's {config: DropLog.to_dict()} beside its data


@dataclass
class DropLog:
    """Counts of rows in, rows kept and rows dropped per reason for one stage."""

    stage: str
    rows_in: int = 0
    dropped: Counter = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)
    max_examples: int = 5

    def drop(self, reason: str, row_id: str | None = None, count: int = 1) -> None:
        self.dropped[reason] += count
        if row_id is not None:
            bucket = self.examples.setdefault(reason, [])
            if len(bucket) < self.max_examples:
                bucket.append(str(row_id))

    @property
    def rows_dropped(self) -> int:
        return sum(self.dropped.values())

    @property
    def rows_out(self) -> int:
        return self.rows_in - self.rows_dropped

    def merge(self, other: DropLog) -> None:
        self.rows_in += other.rows_in
        self.dropped.update(other.dropped)
        for reason, ids in other.examples.items():
            bucket = self.examples.setdefault(reason, [])
            bucket.extend(ids[: max(0, self.max_examples - len(bucket))])

    def to_dict(self) -> dict:
        return {
            "stage": self.stage,
            "rows_in": self.rows_in,
            "rows_out": self.rows_out,
            "dropped": dict(sorted(self.dropped.items())),
            "examples": self.examples,
        }

    @classmethod
    def from_dict(cls, data: dict) -> DropLog:
        log = cls(stage=data["stage"], rows_in=data["rows_in"], examples=dict(data.get("examples", {})))
        log.dropped.update(data.get("dropped", {}))
        return log

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> DropLog:
        return cls.from_dict(json.loads(Path(path).read_text()))

    def summary(self) -> str:
        reasons = ", ".join(f"{reason}={n}" for reason, n in sorted(self.dropped.items())) or "none"
        return f"{self.stage}: {self.rows_in} in, {self.rows_out} out, dropped: {reasons}"
