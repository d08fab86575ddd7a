"""The concept bank: every ImageNet-21k WordNet synset that timm ships offline, with its lemmas and its gloss.

Source: two tab-separated files inside the timm wheel (timm is a core dependency; nothing is copied into this repo),
read from `timm/data/_info/`:

- `imagenet_synset_to_lemma.txt`: `<synset id>\\t<lemma>, <lemma>, ...`, e.g. `n02084071\\tdog, domestic dog, Canis
  familiaris`. The first lemma is the concept's name, the others are its WordNet synonyms.
- `imagenet_synset_to_definition.txt`: `<synset id>\\t<gloss>`, the WordNet definition.

With timm 1.0.31 both files hold the same 21,844 synsets: the 21,843 of the ImageNet-21k (fall 2011) class list
(`imagenet21k_goog_synsets.txt`) plus `n04399382` (teddy bear), an ImageNet-1k class absent from that list.

In the paper, fine-grained class labels ("domain-specific knowledge seeds") are each put into 10 CLIP prompt
templates and expanded by the LLM into captions; this bank is a label source of that kind with ~22 times
ImageNet-1k's labels and no LLM cost of its own (stage 1's `kind: labels`, `path: pkg://imagenet21k`). The same
texts, written one per line (`python -m unicorn_hf.synthesis.concept_texts`), are a memory for the transfer stage's
`memory_source`.

What text a synset gives to a template's `{label}` is the seed source's `label_format` (no default here: the
recipe YAML sets it):

- `lemma`: the first lemma alone ("crane"). The CLIP zero-shot convention, but WordNet names are ambiguous:
  3,186 of the 21,844 synsets share their first lemma with another one (21,844 synsets, 20,102 distinct names;
  7 are called "queen", "crane" is both n02012849 the bird and n03126707 the machine), so their seeds collide
  (stage 1 drops 2,579 of 218,440 as duplicates with 10 CLIP templates) and the LLM cannot tell which is meant.
- `lemma_gloss`: "{lemma}, {gloss}" ("crane, large long-necked wading bird of marshes and plains in many parts of
  the world"). The gloss disambiguates homonyms (one collision left: two synsets of "gutta-percha tree" share
  their gloss) and tells the LLM what the concept is, which a caption seed needs. This is the
  recommended value (recipes/unicorn-8b/captions.yaml). Its cost: longer texts (gloss median 11 words, at most
  64); one label of the 21,844 is longer than a CLIP text encoder's 77 tokens (open_clip's tokenizer), which
  then cuts the end of its gloss.

Malformed lines, duplicate synset ids and synsets found in only one of the two files are not dropped silently:
each is counted in the bank's `DropLog` (a row is a line of either file) with its file name and line number, and
logged; a file with no valid line at all is an error that names it.
"""

from __future__ import annotations

import importlib.util
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from unicorn_hf.utils.drops import DropLog


logger = logging.getLogger(__name__)

LEMMA_FILE = "imagenet_synset_to_lemma.txt"
GLOSS_FILE = "imagenet_synset_to_definition.txt"
TIMM_INFO_SUBDIR = ("data", "_info")  # inside the installed timm package
SYNSET_ID = re.compile(r"n\d{8}")  # WordNet noun offset, as ImageNet names its classes
LINE_FORMAT = "`<synset id like n02084071>\\t<text>`"


@dataclass(frozen=True)
class Concept:
    """One WordNet synset of the bank."""

    synset: str  # WordNet offset id, e.g. "n02012849"; the stable key of the concept's seeds
    lemmas: tuple[str, ...]  # its names, the first is the concept's name, the rest synonyms
    gloss: str  # the WordNet definition

    @property
    def name(self) -> str:
        return self.lemmas[0]


# label_format -> the text a concept puts into a template's `{label}` (see the module docstring for the choice).
LABEL_FORMATS: dict[str, Callable[[Concept], str]] = {
    "lemma": lambda concept: concept.name,
    "lemma_gloss": lambda concept: f"{concept.name}, {concept.gloss}",
}


def concept_label(concept: Concept, label_format: str) -> str:
    """The label text of `concept` in `label_format` (a key of `LABEL_FORMATS`)."""
    if label_format not in LABEL_FORMATS:
        raise ValueError(f"Unknown concept label_format {label_format!r}; expected one of {sorted(LABEL_FORMATS)}")
    return LABEL_FORMATS[label_format](concept)


def timm_info_dir() -> Path:
    """timm's `data/_info` folder, which holds the ImageNet synset files."""
    spec = importlib.util.find_spec("timm")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(
            f"`timm` is needed for the concept bank (pkg://imagenet21k reads its {LEMMA_FILE} and {GLOSS_FILE}): "
            "pip install 'timm>=1.0.20,<2' (a core dependency of unicorn-hf)"
        )
    return Path(spec.submodule_search_locations[0]).joinpath(*TIMM_INFO_SUBDIR)


def _read_synset_file(path: Path, drops: DropLog) -> dict[str, tuple[str, str]]:
    """{synset id: (text, "file:line")} of one `<synset id>\\t<text>` file; bad lines are counted in `drops`."""
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} is missing: the concept bank reads timm's {path.name} ({LINE_FORMAT} per line); "
            "reinstall timm>=1.0.20"
        )
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise ValueError(f"{path} is not UTF-8 text ({error}); expected {LINE_FORMAT} per line") from error
    entries: dict[str, tuple[str, str]] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        drops.rows_in += 1
        where = f"{path.name}:{number}"
        synset, tab, value = line.partition("\t")
        synset, value = synset.strip(), value.strip()
        if not tab or not SYNSET_ID.fullmatch(synset) or not value or "\t" in value:
            drops.drop("concept_malformed_line", where)
        elif synset in entries:
            drops.drop("concept_duplicate_synset", f"{where} (first at {entries[synset][1]})")
        else:
            entries[synset] = (value, where)
    if not entries:
        raise ValueError(f"{path} has no valid line: expected {LINE_FORMAT} per line ({drops.summary()})")
    return entries


def imagenet21k_concepts(info_dir: str | Path | None = None) -> tuple[list[Concept], DropLog]:
    """The concept bank read from timm's `imagenet_synset_to_lemma.txt` and `imagenet_synset_to_definition.txt`.

    Returns the concepts in the lemma file's order (timm sorts it by synset id) and a `DropLog` whose rows are the
    non-empty lines of both files: a line is dropped as `concept_malformed_line`, `concept_duplicate_synset`
    (the first one is kept), `concept_lemma_without_gloss` or `concept_gloss_without_lemma`, so that
    `rows_out == 2 * len(concepts)`. `info_dir` replaces timm's folder (tests).
    """
    folder = Path(info_dir) if info_dir is not None else timm_info_dir()
    drops = DropLog(stage="concepts")
    lemma_entries = _read_synset_file(folder / LEMMA_FILE, drops)
    gloss_entries = _read_synset_file(folder / GLOSS_FILE, drops)
    concepts = []
    for synset, (lemma_text, where) in lemma_entries.items():
        lemmas = tuple(lemma.strip() for lemma in lemma_text.split(","))
        if synset not in gloss_entries:
            drops.drop("concept_lemma_without_gloss", where)
        elif not all(lemmas):  # an empty name between commas
            drops.drop("concept_malformed_line", where)
            drops.drop("concept_gloss_without_lemma", gloss_entries[synset][1])
        else:
            concepts.append(Concept(synset=synset, lemmas=lemmas, gloss=gloss_entries[synset][0]))
    for synset in [synset for synset in gloss_entries if synset not in lemma_entries]:  # in file order
        drops.drop("concept_gloss_without_lemma", gloss_entries[synset][1])
    if drops.rows_dropped:
        logger.warning("Concept bank %s: %s (examples: %s)", folder, drops.summary(), drops.examples)
    logger.info("Concept bank: %d synsets from %s", len(concepts), folder)
    return concepts, drops


# Packaged concept banks a labels seed source can name as its `path`.
CONCEPT_BANKS: dict[str, Callable[[], tuple[list[Concept], DropLog]]] = {"pkg://imagenet21k": imagenet21k_concepts}


def concept_bank(path: str) -> tuple[list[Concept], DropLog]:
    """`pkg://<name>` of `CONCEPT_BANKS` -> (concepts, their DropLog)."""
    if path not in CONCEPT_BANKS:
        raise ValueError(f"Unknown concept bank {path!r}; known: {sorted(CONCEPT_BANKS)}")
    return CONCEPT_BANKS[path]()
