"""Caption seeds: open-domain captions and fine-grained labels rendered into templates.

A seed row is `{"id", "seed", "seed_source"}`. The id is `<source name>-<sha1 of the normalised text>[:16]`, so it is
stable across runs, machines and source order, and every later stage keeps it; a concept bank's seed
(`pkg://imagenet21k`) also names its synset: `<source name>-<synset id>-<sha1>[:16]`. Duplicates (same normalised
text, across all sources) are removed and counted in the `DropLog`, as are seeds that fail the quality filter.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import random
import re
import unicodedata
from collections.abc import Iterator
from pathlib import Path

from datasets import load_dataset

from unicorn_hf.synthesis.concepts import CONCEPT_BANKS, concept_bank, concept_label
from unicorn_hf.synthesis.config import SeedArguments, SeedSourceConfig
from unicorn_hf.synthesis.prompt_files import prompt_path
from unicorn_hf.utils import assets
from unicorn_hf.utils.assets import clip_prompt_templates
from unicorn_hf.utils.drops import DropLog
from unicorn_hf.utils.paths import portable_path


logger = logging.getLogger(__name__)

PACKAGED_LABELS = {"pkg://imagenet": "imagenet_classnames"}
PACKAGED_TEMPLATES = {"pkg://clip-openai": "openai", "pkg://clip-simple": "simple"}
_LOCAL_SUFFIXES = (".jsonl", ".json", ".csv", ".txt")


def normalize_text(text: str) -> str:
    """Case-, accent-width- and whitespace-insensitive form used for duplicate detection and ids."""
    text = unicodedata.normalize("NFKC", text).lower()
    text = re.sub(r"[^\w\s]", " ", text)
    return " ".join(text.split())


def seed_id(source_name: str, text: str, key: str | None = None) -> str:
    """`<source>-<hash of the text>`, or `<source>-<key>-<hash>` with a stable key such as a synset id, so that a
    concept's seeds name it whatever the order of the bank or of the sources. The hash stays last (`max_seeds`
    samples in hash order)."""
    digest = hashlib.sha1(normalize_text(text).encode()).hexdigest()[:16]
    return f"{source_name}-{key}-{digest}" if key else f"{source_name}-{digest}"


def _read_local_rows(path: Path, column: str | None) -> Iterator[tuple[int, dict]]:
    """(row number, row) pairs of a local jsonl / json / csv / txt file; txt rows are `{"text": line}`."""
    if not path.is_file():
        raise FileNotFoundError(f"Seed file {path} does not exist")
    if path.suffix == ".txt":
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            if line.strip():
                yield number, {column or "text": line.strip()}
    elif path.suffix == ".csv":
        with path.open(newline="") as handle:
            yield from enumerate(csv.DictReader(handle), start=2)  # row 1 is the header
    elif path.suffix == ".jsonl":
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            if not line.strip():
                continue
            try:
                yield number, json.loads(line)
            except json.JSONDecodeError as error:
                raise ValueError(f"{path}:{number}: not a JSON object ({error.msg})") from error
    else:  # .json: a list of objects
        yield from enumerate(json.loads(path.read_text()), start=1)


def _column_values(source: SeedSourceConfig) -> Iterator[tuple[str, object, str | None]]:
    """(where, value of `source.column`, group key) for every row of the source, with clear errors."""
    path = Path(source.path)
    if path.suffix in _LOCAL_SUFFIXES and not path.is_dir():
        recorded = portable_path(path, Path.cwd())  # drop examples go into drops.json and the card
        column = source.column or "text"
        seen_any = False
        for number, row in _read_local_rows(path, source.column):
            seen_any = True
            if not isinstance(row, dict) or column not in row:
                found = sorted(row) if isinstance(row, dict) else type(row).__name__
                raise KeyError(f"{path}:{number}: seed column {column!r} is missing (row has {found})")
            group = str(row.get(source.group_column)) if source.group_column else None
            yield f"{recorded}:{number}", row[column], group
        if not seen_any:
            raise ValueError(f"Seed file {path} is empty (source {source.name!r})")
        return

    dataset = load_dataset(source.path, source.config_name, split=source.split)
    if not hasattr(dataset, "column_names"):  # a DatasetDict: split=None with several splits
        raise ValueError(f"{source.path} has splits {list(dataset)}; set `split` in seed source {source.name!r}")
    if source.column not in dataset.column_names:
        raise KeyError(
            f"{source.path}: seed column {source.column!r} is missing (columns: {dataset.column_names}); "
            f"set `column` of seed source {source.name!r}"
        )
    if len(dataset) == 0:
        raise ValueError(f"Seed dataset {source.path} is empty (source {source.name!r})")
    feature = dataset.features[source.column]
    if source.kind == "labels" and hasattr(feature, "names"):  # ClassLabel: the label set is in the features
        for index, name in enumerate(feature.names):
            yield f"{source.path}:{source.column}[{index}]", name, None
        return
    groups = dataset[source.group_column] if source.group_column else [None] * len(dataset)
    for index, (value, group) in enumerate(zip(dataset[source.column], groups, strict=True)):
        yield f"{source.path}[{index}]", value, None if group is None else str(group)


def load_labels(source: SeedSourceConfig) -> list[str]:
    """Distinct labels of a labels source, in first-seen order."""
    if source.path in CONCEPT_BANKS:
        labels = [label for _, label in _keyed_labels(source)]
    elif source.path in PACKAGED_LABELS:
        labels = getattr(assets, PACKAGED_LABELS[source.path])()
    else:
        labels = []
        for where, value, _ in _column_values(source):
            if not isinstance(value, str) or not value.strip():
                raise ValueError(f"{where}: expected a non-empty label string, got {value!r}")
            labels.append(value.strip())
    return list(dict.fromkeys(labels))


def load_templates(spec: str) -> list[str]:
    """Prompt templates with a `{label}` field: pkg://clip-openai | pkg://clip-simple | a .txt file, one per line
    (a path, or a file shipped in `unicorn_hf/synthesis/prompts/` such as `food_templates.txt`)."""
    if spec in PACKAGED_TEMPLATES:
        templates = clip_prompt_templates(PACKAGED_TEMPLATES[spec])
    else:
        path = prompt_path(spec)
        templates = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    if not templates:
        raise ValueError(f"No templates in {spec}")
    if bad := [template for template in templates if "{label}" not in template]:
        raise ValueError(f"Templates in {spec} must contain '{{label}}'; these do not: {bad[:3]}")
    return templates


def _keyed_labels(source: SeedSourceConfig, drops: DropLog | None = None) -> list[tuple[str | None, str]]:
    """(stable key, label) pairs of a labels source. A concept bank keys each label by its synset id (homonyms in
    `lemma` format share a label, not a key) and adds the lines of its files that gave no concept to `drops`;
    other sources have distinct labels and no key (None)."""
    if source.path not in CONCEPT_BANKS:
        return [(None, label) for label in load_labels(source)]
    concepts, concept_drops = concept_bank(source.path)
    if drops is not None:  # each such line is a row in and a row dropped, with its `concept_*` reason
        drops.rows_in += concept_drops.rows_dropped
        drops.merge(DropLog(stage=drops.stage, dropped=concept_drops.dropped, examples=concept_drops.examples))
    return [(concept.synset, concept_label(concept, source.label_format)) for concept in concepts]


def _keyed_label_seeds(source: SeedSourceConfig, drops: DropLog | None = None) -> Iterator[tuple[str | None, str]]:
    """(label key, seed text) pairs: `templates_per_label` distinct random templates per label, rendered.

    The draw is seeded per label key, else per label text (not by position), so adding a label does not change
    the others' seeds, and a concept draws the same templates in every `label_format`.
    """
    templates = load_templates(source.templates)
    per_label = min(source.templates_per_label, len(templates))  # the paper: 10 templates per label
    for key, label in _keyed_labels(source, drops):
        rng = random.Random(f"{source.template_seed}:{key or label}")
        for template in rng.sample(templates, per_label):
            yield key, template.replace("{label}", label)


def label_seeds(source: SeedSourceConfig) -> Iterator[str]:
    """`templates_per_label` distinct random templates per label, each rendered with the label (see
    `_keyed_label_seeds` for the draw)."""
    for _, text in _keyed_label_seeds(source):
        yield text


def _latin_ratio(text: str) -> float:
    letters = [char for char in text if char.isalpha()]
    if not letters:
        return 0.0
    return sum(unicodedata.name(char, "").startswith("LATIN") for char in letters) / len(letters)


def _caption_seeds(source: SeedSourceConfig, args: SeedArguments, drops: DropLog) -> Iterator[str]:
    """Open-domain caption seeds, one per group (image), passed through the quality filter."""
    seen_groups: set[str] = set()
    for where, value, group in _column_values(source):
        drops.rows_in += 1
        if isinstance(value, list):  # e.g. Flickr30k / COCO layouts with all captions of an image in one row
            value = value[0] if value else None
        if group is not None:
            if group in seen_groups:
                drops.drop("seed_same_image", where)
                continue
            seen_groups.add(group)
        if not isinstance(value, str) or not value.strip():
            drops.drop("seed_empty", where)
            continue
        words = len(value.split())
        if args.seed_min_words is not None and words < args.seed_min_words:
            drops.drop("seed_too_short", where)
        elif args.seed_max_words is not None and words > args.seed_max_words:
            drops.drop("seed_too_long", where)
        elif args.seed_min_latin_ratio is not None and _latin_ratio(value) < args.seed_min_latin_ratio:
            drops.drop("seed_not_latin", where)
        else:
            yield " ".join(value.split())


def load_seeds(args: SeedArguments) -> tuple[list[dict], DropLog]:
    """All seeds of all sources as `{"id", "seed", "seed_source"}` rows, de-duplicated, with their drop counts."""
    drops = DropLog(stage="seeds")
    rows: list[dict] = []
    seen: dict[str, str] = {}  # normalised text -> id of its first occurrence
    for source in args.seed_sources:
        if source.kind == "labels":
            texts: Iterator[tuple[str | None, str]] = _counted(_keyed_label_seeds(source, drops), drops)
        else:
            texts = ((None, text) for text in _caption_seeds(source, args, drops))
        candidates = []
        for label_key, text in texts:
            key = normalize_text(text)
            if key in seen:
                drops.drop("seed_duplicate", seen[key])
                continue
            seen[key] = seed_id(source.name, text, label_key)
            candidates.append({"id": seen[key], "seed": text, "seed_source": source.name})
        if source.max_seeds is not None and len(candidates) > source.max_seeds:
            # A hash-ordered subsample: stable across runs and spread over all labels, unlike "the first N".
            candidates.sort(key=lambda row: row["id"].rsplit("-", 1)[-1])
            for row in candidates[source.max_seeds :]:
                drops.drop("seed_not_sampled", row["id"])
            candidates = candidates[: source.max_seeds]
        rows.extend(candidates)
        logger.info("Seed source %r (%s, %s): %d seeds", source.name, source.kind, source.path, len(candidates))
    if not rows:
        raise ValueError(f"No seeds left from {[s.name for s in args.seed_sources]}: {drops.summary()}")
    logger.info(drops.summary())
    return rows, drops


def _counted(texts: Iterator[tuple[str | None, str]], drops: DropLog) -> Iterator[tuple[str | None, str]]:
    for text in texts:
        drops.rows_in += 1
        yield text
