"""Text made from real image-text pairs without an LLM: their captions as-is and templated dialogues about them.

The packaged pairs (`unicorn_hf.lit.pairs`) name what each picture shows ("grinning face", "soft blue couch").
Their captions are stage-1-shaped rows (`model_name: seed`) and `unicorn_hf.experiments.questions` asks two
one-question dialogues about each (4-way "what is shown"; a yes/no presence question) in the instructions contract.
Only the text is used: the images stay unseen, so held-out pairs can test whether the model reads real images.
"""

from __future__ import annotations

import json
import logging
import random
from dataclasses import asdict, dataclass, field
from pathlib import Path

from datasets import Dataset

from unicorn_hf.data_contract import (
    CAPTIONS_COLUMNS,
    CAPTIONS_CONFIG,
    CONFIG_NAMES,
    INSTRUCTIONS_COLUMNS,
    INSTRUCTIONS_CONFIG,
)
from unicorn_hf.experiments.questions import QuestionTemplates, group_by_source, training_dialogues
from unicorn_hf.experiments.splits import hash_rank
from unicorn_hf.lit.pairs import Pair, collect_pairs
from unicorn_hf.lit.recipe import parse_config, trained_encoder_pairs
from unicorn_hf.synthesis.concepts import concept_bank, concept_label
from unicorn_hf.synthesis.seeds import seed_id
from unicorn_hf.utils.hub import configs_metadata, load_dataset_folder, write_card, write_dataset_config


logger = logging.getLogger(__name__)

TEXT_RECORD = "pair_text.json"  # beside the training text: its question templates and option count (read by sees)

SEED_SOURCE = "pair_caption"
CONCEPT_SOURCE = "concept_bank"
PAIR_SCOPES = ("encoder_train", "all_but_held_out")
PAIR_IDS_FILE = "pair_ids.json"  # row id -> pair id, for arms that need the pair's image (the oracle)


def pair_text_rows(
    pairs: list[Pair],
    templates: QuestionTemplates,
    num_options: int,
    dialogues_per_pair: int,
    seed: int,
    image_token: str,
    caption_form: str = "caption",
) -> tuple[list[dict], list[dict], dict[str, str]]:
    """(caption rows, dialogue rows, row id -> pair id) for `pairs`; each dialogue keeps its caption's id.

    `caption_form` says what a caption row holds: the pair's `caption`, or its bare `title` (title-length targets:
    cheap pretraining steps, and the text that candidate-likelihood probes rank). Raises `ValueError` when a pair has
    no title (nothing to ask about).
    """
    rng = random.Random(seed)
    by_source = group_by_source(pairs)
    captions, dialogues, pair_of_row = [], [], {}
    for pair in pairs:
        if not pair.title:
            raise ValueError(f"pair {pair.id} has no title: a templated question needs to name what is shown")
        text = getattr(pair, caption_form)
        row_id = seed_id(SEED_SOURCE, pair.caption)
        pair_of_row[row_id] = pair.id
        captions.append(
            {"id": row_id, "seed": pair.caption, "seed_source": SEED_SOURCE, "caption": text, "model_name": "seed"}
        )
    for _ in range(dialogues_per_pair):
        for pair, caption in zip(pairs, captions, strict=True):
            for task, messages in training_dialogues(pair, by_source, num_options, templates, image_token, rng):
                dialogues.append(
                    {"id": caption["id"], "task": task, "caption": caption["caption"], "messages": messages,
                     "model_name": "template"}
                )  # fmt: skip
    return captions, dialogues, pair_of_row


def write_text_folder(
    folder: str | Path, captions: list[dict], dialogues: list[dict], pair_of_row: dict[str, str], body: str
) -> Path:
    """A Hub-ready folder with configs `captions` and `instructions` (stage 3 reads it like stages 1-2's output)."""
    folder = Path(folder)
    write_dataset_config(Dataset.from_list(captions), folder, CAPTIONS_CONFIG)
    write_dataset_config(Dataset.from_list(dialogues), folder, INSTRUCTIONS_CONFIG)
    write_card(folder, {"configs": configs_metadata(list(CONFIG_NAMES))}, body)
    (folder / PAIR_IDS_FILE).write_text(json.dumps(pair_of_row, indent=0) + "\n")
    return folder


@dataclass
class PairTextArguments:
    """`recipes/pair_text.py`: stages 1-2's text plus templated text about the encoder's training pairs."""

    captions_path: str | None = field(metadata={"help": "Stage-1 folder to carry over; null: none."})
    instructions_path: str | None = field(metadata={"help": "Stage-2 folder to carry over; null: none."})
    encoder_config: str = field(metadata={"help": "The encoder's recipe YAML: which pairs it collected."})
    encoder_dir: str = field(metadata={"help": "The trained encoder: its held-out pairs are never used here."})
    num_pairs: int | None = field(metadata={"help": "Pairs whose text is added (null: every one in `pair_scope`)."})
    num_options: int = field(metadata={"help": "Options per multiple-choice question."})
    mc_question: str = field(metadata={"help": "Multiple-choice question, before the options."})
    mc_suffix: str = field(metadata={"help": "Instruction after the options (LLaVA-1.5's MC prompt)."})
    yes_no_question: str = field(metadata={"help": "Presence question with a {title} slot."})
    yes_no_suffix: str = field(metadata={"help": "Instruction after a yes/no question (LLaVA-1.5's POPE prompt)."})
    dialogues_per_pair: int = field(
        metadata={"help": "Templated (mc, yes/no) dialogue pairs per pair (fresh distractors each)."}
    )
    image_token: str = field(metadata={"help": "The image placeholder of the first user turn."})
    seed: int = field(metadata={"help": "Seed of the pair sample and the questions."})
    output_dir: str = field(metadata={"help": "Hub-ready folder with configs `captions` and `instructions`."})
    pair_scope: str = field(
        default="encoder_train",
        metadata={
            "help": "`encoder_train`: the encoder's training pairs; `all_but_held_out`: every pair of the encoder's "
            "sources (no per-source cap) except its held-out ones: concept-scale text, whose images stay unused."
        },
    )
    caption_form: str = field(
        default="caption",
        metadata={"help": "The `caption` column: the pair's `caption` ('an emoji of X') or its bare `title` ('X')."},
    )
    concept_bank: str | None = field(
        default=None,
        metadata={
            "help": "Also a caption row per concept of this bank (`pkg://imagenet21k`, "
            "unicorn_hf/synthesis/concepts.py) in `concept_label_format`: text-only concepts with no image and no "
            "dialogue. A held-out title or a pair's title is not repeated (counted)."
        },
    )
    concept_label_format: str | None = field(
        default=None, metadata={"help": "`lemma` ('crane') or `lemma_gloss`; required with `concept_bank`."}
    )
    max_concepts: int | None = field(
        default=None, metadata={"help": "A seeded subsample of the bank's concepts (null: every one)."}
    )

    def __post_init__(self) -> None:
        if self.pair_scope not in PAIR_SCOPES:
            raise ValueError(f"`pair_scope` must be one of {PAIR_SCOPES}, got {self.pair_scope!r}")
        if self.caption_form not in ("caption", "title"):
            raise ValueError(f"`caption_form` must be 'caption' or 'title', got {self.caption_form!r}")
        if (self.concept_bank is None) != (self.concept_label_format is None):
            raise ValueError("`concept_bank` and `concept_label_format` go together: set both or neither")


def concept_caption_rows(
    args: PairTextArguments, held_out_titles: set[str], pair_titles: set[str], dropped: dict[str, int]
) -> list[dict]:
    """One caption row per concept of `args.concept_bank` (seeded subsample of `max_concepts`), leaving out labels
    that are a held-out title (casefolded: the ladder's rung b must stay untrained), a training pair's title or an
    earlier concept's; counts what it leaves out in `dropped`."""
    concepts, drops = concept_bank(args.concept_bank)
    logger.info("concept bank %s: %s", args.concept_bank, drops.summary())
    concepts = sorted(concepts, key=lambda concept: hash_rank(args.seed, concept.synset))
    rows, seen = [], set(pair_titles)
    for concept in concepts:
        if args.max_concepts is not None and len(rows) == args.max_concepts:
            break
        label = concept_label(concept, args.concept_label_format)
        key = label.casefold()
        if key in held_out_titles or key in seen:
            reason = "concept_is_a_held_out_title" if key in held_out_titles else "concept_label_repeated"
            dropped[reason] = dropped.get(reason, 0) + 1
            continue
        seen.add(key)
        rows.append({"id": seed_id(CONCEPT_SOURCE, concept.synset), "seed": label, "seed_source": CONCEPT_SOURCE,
                     "caption": label, "model_name": "seed"})  # fmt: skip
    logger.info("concept bank: %d caption rows", len(rows))
    return rows


def every_pair_of(encoder_config: str) -> list[Pair]:
    """Every pair of the encoder recipe's sources, de-duplicated, without its per-source cap (same ids)."""
    model_args, data_args, training_args = parse_config(encoder_config)
    pairs, drops = collect_pairs(data_args.sources, None, training_args.seed, model_args.image_size)
    logger.info("every pair of %s: %s", data_args.sources, drops.summary())
    return pairs


def run_pair_text(args: PairTextArguments) -> Path:
    """Write `output_dir`: stages 1-2's rows (unchanged) followed by the pairs' captions and dialogues."""
    pairs, held_out_ids = trained_encoder_pairs(args.encoder_config, args.encoder_dir)
    if args.pair_scope == "all_but_held_out":
        pairs = every_pair_of(args.encoder_config)
    by_id = {pair.id: pair for pair in pairs}
    held_out = set(held_out_ids)
    # A held-out pair's title in the training text would make its concept a trained one (rung b of the ladder asks
    # about concepts never trained on): such pairs are left out and counted.
    held_out_titles = {by_id[pair_id].title.casefold() for pair_id in held_out_ids if pair_id in by_id}
    titled = [pair for pair in pairs if pair.id not in held_out and pair.title]
    candidates = [pair for pair in titled if pair.title.casefold() not in held_out_titles]
    dropped = {"title_of_a_held_out_pair": len(titled) - len(candidates)}
    logger.info("pair text: %d candidate pairs (%s left out)", len(candidates), dropped)
    candidates.sort(key=lambda pair: hash_rank(args.seed, pair.id))
    num_pairs = len(candidates) if args.num_pairs is None else args.num_pairs
    if len(candidates) < num_pairs:
        raise ValueError(f"{len(candidates)} titled training pairs in {args.encoder_dir}, {num_pairs} asked for")
    chosen = candidates[:num_pairs]
    templates = QuestionTemplates(args.mc_question, args.mc_suffix, args.yes_no_question, args.yes_no_suffix)
    captions, dialogues, pair_of_row = pair_text_rows(
        chosen, templates, args.num_options, args.dialogues_per_pair, args.seed, args.image_token, args.caption_form
    )
    concept_rows = []
    if args.concept_bank is not None:
        pair_titles = {pair.title.casefold() for pair in chosen}
        concept_rows = concept_caption_rows(args, held_out_titles, pair_titles, dropped)
        captions += concept_rows
    carried = {"captions": 0, "instructions": 0}
    if args.captions_path is not None:
        rows = (
            load_dataset_folder(args.captions_path, CAPTIONS_CONFIG).select_columns(list(CAPTIONS_COLUMNS)).to_list()
        )
        captions, carried["captions"] = rows + captions, len(rows)
    if args.instructions_path is not None:
        columns = list(INSTRUCTIONS_COLUMNS)
        rows = load_dataset_folder(args.instructions_path, INSTRUCTIONS_CONFIG).select_columns(columns).to_list()
        dialogues, carried["instructions"] = rows + dialogues, len(rows)
    body = (
        f"# Training text\n\n{carried['captions']} stage-1 captions and {carried['instructions']} stage-2 dialogues, "
        f"followed by the {args.caption_form}s of {len(chosen)} real image-text pairs ({args.pair_scope}; their "
        f"images are not used) and {2 * len(chosen) * args.dialogues_per_pair} templated one-question dialogues about "
        f"them (per pair, a {args.num_options}-way 'what is shown' question and a yes/no presence question)."
    )
    if concept_rows:
        body += f" Then {len(concept_rows)} concept labels of {args.concept_bank} (captions only)."
    folder = write_text_folder(args.output_dir, captions, dialogues, pair_of_row, body)
    record = {
        "concepts": len(concept_rows),
        "templates": asdict(templates), "num_options": args.num_options, "pairs": len(chosen),
        "pair_scope": args.pair_scope, "caption_form": args.caption_form, "dropped": dropped, **carried,
    }  # fmt: skip
    (folder / TEXT_RECORD).write_text(json.dumps(record, indent=1) + "\n")
    return folder
