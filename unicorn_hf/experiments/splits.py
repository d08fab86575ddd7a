"""Disjoint splits of the packaged image-text pairs by id, written down so that every stage reads the same ones.

The experiment needs four disjoint sets of real pairs (`unicorn_hf.lit.pairs`):

    eval           images the VLM is questioned about; never seen by the encoder or the VLM
    pool           unlabeled images whose mean embedding is stored (no test-set statistics at inference)
    vlm_train      the VLM's training items: their captions as text; their images only for the image oracle
    encoder_train  what the LiT encoder's projections are trained on (the rest, up to a cap)

Order is a hash of (seed, id), so a split does not move when other pairs are added or removed.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from unicorn_hf.lit.pairs import Pair


def hash_rank(seed: int, pair_id: str) -> str:
    """A stable sort key of a pair: where it lands does not depend on which other pairs exist."""
    return hashlib.sha256(f"{seed}:{pair_id}".encode()).hexdigest()


@dataclass
class PairSplits:
    """Pair ids per split; `sizes` are what was asked for, the lists what was possible."""

    seed: int
    ids: dict[str, list[str]]
    unreadable: list[str] = field(default_factory=list)  # dealt to a split but whose image cannot be read: in none

    def check_disjoint(self) -> None:
        """Raise `ValueError` naming the split pair and an example id when a pair sits in two splits."""
        names = list(self.ids)
        for i, first in enumerate(names):
            for second in names[i + 1 :]:
                shared = set(self.ids[first]) & set(self.ids[second])
                if shared:
                    raise ValueError(f"splits {first!r} and {second!r} share {len(shared)} id(s), e.g. {min(shared)}")

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        counts = {name: len(ids) for name, ids in self.ids.items()} | {"unreadable": len(self.unreadable)}
        data = {"seed": self.seed, "counts": counts, "ids": self.ids, "unreadable": self.unreadable}
        path.write_text(json.dumps(data, indent=1) + "\n")
        return path

    @classmethod
    def load(cls, path: str | Path) -> PairSplits:
        data = json.loads(Path(path).read_text())
        splits = cls(seed=data["seed"], ids=data["ids"], unreadable=data.get("unreadable", []))
        splits.check_disjoint()
        return splits


def split_pairs_by_id(
    pairs: list[Pair],
    seed: int,
    num_eval: int,
    num_pool: int,
    num_vlm_train: int,
    max_encoder_train: int | None,
    readable: Callable[[Pair], bool] | None = None,
) -> PairSplits:
    """Deal `pairs` into the four splits in hash order of their ids: eval first, then pool, vlm_train, encoder_train.

    Pairs without a title (nothing to ask about) go to encoder_train only. A pair dealt to eval, pool or vlm_train
    whose image `readable` rejects (an SVG the renderer fails on) is recorded in `unreadable` and left out of every
    split, so those splits can come out smaller than asked; the encoder split does not move. Raises `ValueError`
    when there are not enough titled pairs for the three fixed-size splits.
    """
    ordered = sorted(pairs, key=lambda pair: hash_rank(seed, pair.id))
    titled = [pair for pair in ordered if pair.title]
    wanted = num_eval + num_pool + num_vlm_train
    if len(titled) < wanted:
        raise ValueError(f"{len(titled)} titled pairs, but eval + pool + vlm_train ask for {wanted}")
    bounds = {
        "eval": (0, num_eval),
        "pool": (num_eval, num_eval + num_pool),
        "vlm_train": (num_eval + num_pool, wanted),
    }
    ids = {name: [pair.id for pair in titled[start:end]] for name, (start, end) in bounds.items()}
    taken = {pair_id for chosen in ids.values() for pair_id in chosen}
    rest = [pair.id for pair in ordered if pair.id not in taken]
    unreadable = []
    if readable is not None:
        by_id = {pair.id: pair for pair in titled[:wanted]}
        unreadable = [pair_id for pair_id in sorted(taken) if not readable(by_id[pair_id])]
        ids = {name: [pair_id for pair_id in chosen if pair_id not in unreadable] for name, chosen in ids.items()}
    ids["encoder_train"] = rest if max_encoder_train is None else rest[:max_encoder_train]
    splits = PairSplits(seed=seed, ids=ids, unreadable=unreadable)
    splits.check_disjoint()
    return splits
