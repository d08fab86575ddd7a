"""Post-filters of generated captions; every dropped row is counted in the `DropLog` with its reason.

Order matters for the accounting: a row is dropped for the first reason that applies (no output, empty,
truncated, refusal, length, exact duplicate, near duplicate), so each row is counted once.
"""

from __future__ import annotations

import logging
import re

from datasketch import MinHash, MinHashLSH

from unicorn_hf.synthesis.config import CaptionArguments
from unicorn_hf.synthesis.seeds import normalize_text
from unicorn_hf.synthesis.stats import words
from unicorn_hf.utils.drops import DropLog


logger = logging.getLogger(__name__)

# Phrases that mark a refusal or a meta-answer instead of a caption; matched at the start of the reply only, so a
# caption that merely contains "sorry" is kept.
_REFUSAL = re.compile(
    r"^\s*(?:i'?m sorry|i am sorry|sorry,|i cannot|i can'?t|i'm unable|i am unable|as an ai|i apologi[sz]e"
    r"|unfortunately, i|i do not have|i don'?t have (?:access|the ability))",
    re.IGNORECASE,
)
_SENTENCE_END = re.compile(r"[.!?][\"')\]]*(?=\s|$)")
_PREAMBLE = re.compile(r"^\s*(?:detailed caption|caption|description)\s*:\s*", re.IGNORECASE)


def is_refusal(text: str) -> bool:
    return bool(_REFUSAL.match(text))


def trim_to_sentence(text: str) -> str:
    """Cut a truncated generation after its last complete sentence ("" when there is none)."""
    ends = list(_SENTENCE_END.finditer(text))
    return text[: ends[-1].end()].strip() if ends else ""


def clean_caption(text: str) -> str:
    """Strip a leading "Detailed caption:" echo of the prompt and collapse whitespace."""
    return " ".join(_PREAMBLE.sub("", text).split())


def filter_captions(rows: list[dict], args: CaptionArguments, max_new_tokens: int, drops: DropLog) -> list[dict]:
    """Keep the usable captions of `rows` (dicts with `id`, `generation`, `output_tokens`); returns the kept rows
    with a `caption` column. `output_tokens >= max_new_tokens` marks a generation cut by the length cap."""
    kept, seen = [], {}
    for row in rows:
        text = row.get("generation")
        if text is None:
            drops.drop("no_generation", row["id"])  # the backend failed for this row (distilabel logs the error)
            continue
        text = clean_caption(text)
        if not text:
            drops.drop("empty_generation", row["id"])
            continue
        if row.get("output_tokens") is not None and row["output_tokens"] >= max_new_tokens:
            if args.truncated == "drop":
                drops.drop("truncated", row["id"])
                continue
            text = trim_to_sentence(text)
            if not text:
                drops.drop("truncated_no_full_sentence", row["id"])
                continue
        if is_refusal(text):
            drops.drop("refusal", row["id"])
            continue
        num_words = len(words(text))
        if args.min_words is not None and num_words < args.min_words:
            drops.drop("too_short", row["id"])
            continue
        if args.max_words is not None and num_words > args.max_words:
            drops.drop("too_long", row["id"])
            continue
        key = normalize_text(text)
        if key in seen:
            drops.drop("duplicate_caption", row["id"])
            continue
        seen[key] = row["id"]
        kept.append({**row, "caption": text})
    if args.near_duplicate_threshold is not None:
        kept = drop_near_duplicates(kept, args, drops)
    return kept


def drop_near_duplicates(rows: list[dict], args: CaptionArguments, drops: DropLog) -> list[dict]:
    """MinHash-LSH near-duplicate removal over word n-gram shingles (the first of a near-duplicate group stays).

    The same algorithm as distilabel's `MinHashDedup` (datasketch MinHash + LSH), run here on the rows that passed
    the other filters so that each drop has a single reason and no extra tokenizer download (nltk) is needed.
    """
    lsh = MinHashLSH(threshold=args.near_duplicate_threshold, num_perm=args.minhash_num_perm)
    shingles = []
    for row in rows:
        tokens = words(row["caption"])
        grams = {
            " ".join(tokens[i : i + args.minhash_ngram]) for i in range(max(1, len(tokens) - args.minhash_ngram + 1))
        }
        shingles.append([gram.encode() for gram in grams])
    kept = []
    for row, minhash in zip(rows, MinHash.bulk(shingles, num_perm=args.minhash_num_perm), strict=True):
        if lsh.query(minhash):
            drops.drop("near_duplicate_caption", row["id"])
            continue
        lsh.insert(row["id"], minhash)
        kept.append(row)
    logger.info("Near-duplicate filter (Jaccard >= %s): %d -> %d", args.near_duplicate_threshold, len(rows), len(kept))
    return kept
