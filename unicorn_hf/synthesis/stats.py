"""Corpus statistics of a caption set, as reported in the paper's appendix (words per caption, lexical diversity)."""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable


_WORD = re.compile(r"\w+(?:'\w+)?")


def words(text: str) -> list[str]:
    """Lower-cased word tokens (apostrophes kept inside words: "man's")."""
    return _WORD.findall(text.lower())


def text_statistics(texts: Iterable[str]) -> dict[str, float | int]:
    """rows, mean/min/max words per text, type-token ratio and unigram entropy (bits) over the whole corpus."""
    lengths, counts = [], Counter()
    for text in texts:
        tokens = words(text)
        lengths.append(len(tokens))
        counts.update(tokens)
    total = sum(counts.values())
    if not lengths or total == 0:
        return {"rows": len(lengths), "mean_words": 0.0, "min_words": 0, "max_words": 0, "vocab": 0,
                "type_token_ratio": 0.0, "token_entropy_bits": 0.0}  # fmt: skip
    entropy = -sum(count / total * math.log2(count / total) for count in counts.values())
    return {
        "rows": len(lengths),
        "mean_words": round(total / len(lengths), 2),
        "min_words": min(lengths),
        "max_words": max(lengths),
        "vocab": len(counts),
        "type_token_ratio": round(len(counts) / total, 4),
        "token_entropy_bits": round(entropy, 4),
    }
