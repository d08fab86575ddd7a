"""The concept bank's label texts one per line, for a transfer `memory_source` (DeCap's memory of text embeddings):

    python -m unicorn_hf.synthesis.concept_texts --output concepts.txt --label_format lemma_gloss

The bare labels (`unicorn_hf.synthesis.concepts`), or each label in prompt templates as stage 1's `labels` seeds
write it (`unicorn_hf.synthesis.seeds.label_seeds`).
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Iterable, Iterator
from pathlib import Path

from unicorn_hf.synthesis.concepts import LABEL_FORMATS, concept_bank, concept_label
from unicorn_hf.synthesis.config import SeedSourceConfig
from unicorn_hf.synthesis.seeds import label_seeds
from unicorn_hf.utils.logging import setup_logging


logger = logging.getLogger(__name__)


def concept_texts(
    label_format: str,
    templates: str | None = None,
    templates_per_label: int | None = None,
    template_seed: int | None = None,
    path: str = "pkg://imagenet21k",
) -> Iterator[str]:
    """The bank's label texts in `label_format`, one per concept; with `templates`, each label rendered into
    `templates_per_label` templates drawn as stage 1 draws them, i.e. the exact seed texts of a
    `kind: labels, path: pkg://imagenet21k` seed source with the same settings."""
    if templates is None:
        if templates_per_label is not None or template_seed is not None:
            raise ValueError("templates_per_label and template_seed need `templates`")
        concepts, _ = concept_bank(path)
        for concept in concepts:
            yield concept_label(concept, label_format)
        return
    source = SeedSourceConfig(
        name="concepts",
        kind="labels",
        path=path,
        label_format=label_format,
        templates=templates,
        templates_per_label=templates_per_label,
        template_seed=template_seed,
    )
    yield from label_seeds(source)


def write_concept_texts(output: str | Path, texts: Iterable[str]) -> int:
    """Write `texts` one per line (UTF-8), first occurrence of each only, for a `memory_source: <text file>`.

    Returns the number of lines written; repeated texts (e.g. homonyms in `lemma` format) are counted and logged.
    """
    output = Path(output)
    texts = list(texts)
    unique = list(dict.fromkeys(texts))
    if bad := [text for text in unique if not text.strip() or "\n" in text or "\r" in text]:
        raise ValueError(f"{len(bad)} texts are empty or span lines, e.g. {bad[0]!r}: they cannot be one per line")
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text("".join(f"{text}\n" for text in unique), encoding="utf-8")
    logger.info("Wrote %d texts to %s (%d repeats written once)", len(unique), output, len(texts) - len(unique))
    return len(unique)


def main(argv: list[str] | None = None) -> int:
    """`python -m unicorn_hf.synthesis.concept_texts --output concepts.txt --label_format lemma_gloss [...]`."""
    setup_logging()
    parser = argparse.ArgumentParser(
        prog="python -m unicorn_hf.synthesis.concept_texts",
        description="Write the ImageNet-21k concept bank's label texts one per line (a transfer `memory_source`).",
    )
    parser.add_argument("--output", required=True, help="Text file to write.")
    parser.add_argument("--label_format", required=True, choices=sorted(LABEL_FORMATS))
    parser.add_argument("--templates", default=None, help="e.g. pkg://clip-openai; absent: the bare labels.")
    parser.add_argument("--templates_per_label", type=int, default=None, help="With --templates (paper: 10).")
    parser.add_argument("--template_seed", type=int, default=None, help="With --templates.")
    args = parser.parse_args(argv)
    texts = concept_texts(args.label_format, args.templates, args.templates_per_label, args.template_seed)
    return write_concept_texts(args.output, texts)


if __name__ == "__main__":
    main()
