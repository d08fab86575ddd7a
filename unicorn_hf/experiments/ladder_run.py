"""`recipes/ladder.py`: the probe ladder (`unicorn_hf.experiments.ladder`) of one checkpoint on the paired encoder's
held-out pairs, with bootstrap intervals and paired differences; writes `ladder.json`, `ladder.md` and `ladder.png`.

A pretraining checkpoint is scored by candidate likelihood (`raw`, `calibrated`); an SFT checkpoint (`questions_path`
set) is asked the multiple-choice and yes/no questions (`mc`, `yes_no` by the first answer token, `*_generation` by
the greedy reply), and its training dialogues can be probed blind (`training_dialogues_path`). With
`title_in_prompt`, the same questions are also asked with the title written as words and no image (rung
`title_in_prompt`): the LM's own ceiling on the format, whatever the projector delivers.

Arms that differ only at inference (the mean variants of the mean shift, memory projection on any checkpoint that
carries a memory) share the checkpoint: they are the `image_rules` of one run.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from unicorn_hf.cards import write_stage_card
from unicorn_hf.encoders import load_encoder
from unicorn_hf.evaluation.sees import held_out_pairs, load_text_record
from unicorn_hf.experiments.bootstrap import accuracy_interval, paired_difference
from unicorn_hf.experiments.ladder import (
    QUESTION_KINDS,
    ImageRule,
    encoder_question_rung,
    encoder_rung,
    ladder_items,
    question_rungs,
    rung_inputs,
    score_rungs,
)
from unicorn_hf.experiments.ladder_report import PLOT_PANELS, answer_concentration, ladder_table, plot_ladder
from unicorn_hf.experiments.probes import training_dialogue_probe
from unicorn_hf.experiments.questions import QuestionTemplates, evaluation_questions, title_in_prompt_questions
from unicorn_hf.experiments.scoring import load_image_qa
from unicorn_hf.synthesis.config import _from_mapping
from unicorn_hf.synthesis.pair_text import TEXT_RECORD
from unicorn_hf.training.metadata import package_versions, pretraining_caption_prompt, read_previous
from unicorn_hf.utils.paths import portable_record


logger = logging.getLogger(__name__)

LADDER_FILE = "ladder.json"
LADDER_TABLE = "ladder.md"
LADDER_PLOT = "ladder.png"
BLIND_REFERENCES = ("blind/shuffled", "blind/zero")
TITLE_IN_PROMPT_RUNG = "title_in_prompt"  # the SFT questions with the title written in the prompt, zero embedding
CANDIDATE_SCORINGS = ("raw", "calibrated")
CLOZE_SCORINGS = ("mc_cloze", "mc_cloze_calibrated")


def _command_line_rules(given: ImageRule | dict) -> list[ImageRule | dict]:
    """On the command line (`--image_rules '{"name": "m", "project_onto_memory": true}'`) the parser builds
    `ImageRule(name=<the JSON text>)`; read such a name as the JSON rule (or list of rules) it is, so that it is not
    scored as a rule of that name with the defaults. Raises `ValueError` naming text that is not valid JSON."""
    if not isinstance(given, ImageRule) or not given.name.lstrip().startswith(("{", "[")):
        return [given]
    try:
        parsed = json.loads(given.name)
    except json.JSONDecodeError as error:
        raise ValueError(f"image_rules: {given.name!r} looks like JSON but does not parse: {error}") from error
    return parsed if isinstance(parsed, list) else [parsed]


@dataclass
class LadderArguments:
    model_name_or_path: str = field(
        metadata={"help": "The checkpoint to probe: a pretraining output, or an SFT one with `questions_path`."}
    )
    encoder_config: str = field(metadata={"help": "The encoder's recipe YAML: which pairs it collected."})
    encoder_dir: str = field(metadata={"help": "The trained encoder folder (holds held_out_ids.json)."})
    num_images: int = field(metadata={"help": "Held-out pairs probed (the first ones of the encoder's order)."})
    num_candidates: int = field(metadata={"help": "Candidate titles per item (the right one + distractors)."})
    text_form: str = field(metadata={"help": "Rung b's text of a pair: `title` or `caption` (as it trained)."})
    image_rules: list[ImageRule] = field(
        metadata={
            "help": "Rung c's rules: {name, image_mean: eval|image|text|none, project_onto_memory}. On the command "
            'line give each rule as JSON (\'{"name": "m", "project_onto_memory": true}\'): a bare word is a rule '
            "of that name with the defaults (the stored image mean)."
        }
    )
    zero_shot_prompts: dict = field(metadata={"help": "Rung a: source -> the encoder's caption form, `{title}`."})
    batch_size: int = field(metadata={"help": "Rows (item x candidate) per forward pass."})
    bootstrap_resamples: int = field(metadata={"help": "Bootstrap resamples of the items."})
    confidence: float = field(metadata={"help": "Two-sided confidence of the intervals, e.g. 0.95."})
    seed: int = field(metadata={"help": "Seed of the candidates, the shuffled control and the bootstrap."})
    output_dir: str = field(metadata={"help": "ladder.json and ladder.md are written here."})
    device: str = field(default="cpu", metadata={"help": "Where the encoder and the model run: cpu, cuda, cuda:1."})
    update_model_card: bool = field(
        default=False,
        metadata={
            "help": "Also write the card with this ladder into the checkpoint folder (README.md); it is always "
            "written to <output_dir>/model_card/README.md."
        },
    )
    questions_path: str | None = field(
        default=None,
        metadata={
            "help": "For an SFT checkpoint: the pair_text output it trained on (pair_text.json: the question "
            "templates). The rungs are then asked the held-out pairs' mc and yes/no questions instead of ranked by "
            "candidate likelihood."
        },
    )
    max_new_tokens: int | None = field(default=None, metadata={"help": "Generated tokens per answer (SFT ladder)."})
    training_dialogues_path: str | None = field(
        default=None,
        metadata={"help": "SFT ladder: the stage-3 folder it was fine-tuned on, probed blind (vs chance)."},
    )
    training_probe_rows: int = field(default=0, metadata={"help": "Training dialogues probed (0: none)."})
    title_in_prompt: str | None = field(
        default=None,
        metadata={
            "help": "SFT ladder: also ask every question with the pair's title written as words before it (this "
            "template, with a {title} slot, e.g. 'The image shows {title}.') and a zero embedding: rung "
            "`title_in_prompt`, what the LM answers when the content is handed to it as text (the ceiling of any "
            "projector with this LM and format). An empty string turns it off."
        },
    )
    mc_cloze: bool = field(
        default=False,
        metadata={
            "help": "SFT ladder: also score the mc questions in the cloze formulation (each option as the reply to "
            "the bare question, raw and calibrated; unicorn_hf.experiments.cloze), on the held-out items and the "
            "probed training dialogues."
        },
    )

    def __post_init__(self) -> None:
        if not self.image_rules:
            raise ValueError("`image_rules` is empty: rung c needs at least one rule (e.g. {name: pool_mean})")
        self.image_rules = [
            _from_mapping(ImageRule, rule, f"image_rules[{index}]")
            for index, rule in enumerate(rule for given in self.image_rules for rule in _command_line_rules(given))
        ]
        if self.text_form not in ("title", "caption"):
            raise ValueError(f"`text_form` must be 'title' or 'caption', got {self.text_form!r}")
        if self.questions_path is not None and not self.max_new_tokens:
            raise ValueError("`questions_path` is set (an SFT ladder): `max_new_tokens` must be a positive integer")
        if self.training_probe_rows and self.questions_path is None:
            raise ValueError("`training_probe_rows` probes SFT dialogues: set `questions_path` too (an SFT ladder)")
        if self.title_in_prompt == "":  # `--title_in_prompt ""` turns off a rung the YAML sets
            self.title_in_prompt = None
        if self.title_in_prompt is not None:
            if self.questions_path is None:
                raise ValueError("`title_in_prompt` asks the SFT questions: set `questions_path` too (an SFT ladder)")
            try:
                filled = self.title_in_prompt.format(title="")
            except (KeyError, IndexError, ValueError) as error:
                raise ValueError(
                    f"`title_in_prompt` {self.title_in_prompt!r}: the only slot allowed is {{title}} ({error!r})"
                ) from error
            if filled == self.title_in_prompt:
                raise ValueError(f"`title_in_prompt` {self.title_in_prompt!r} has no {{title}} slot")
        if self.mc_cloze and self.questions_path is None:
            raise ValueError("`mc_cloze` scores SFT questions: set `questions_path` too (an SFT ladder)")
        if bool(self.training_dialogues_path) != (self.training_probe_rows > 0):
            raise ValueError(
                "`training_dialogues_path` and `training_probe_rows` go together: set both (a folder and a positive "
                f"count) or neither; got {self.training_dialogues_path!r} and {self.training_probe_rows}"
            )

    @property
    def scorings(self) -> tuple[str, ...]:
        """The per-item credits of each rung: candidate likelihood, or the SFT questions by kind."""
        if self.questions_path is None:
            return CANDIDATE_SCORINGS
        names = tuple(name for kind in QUESTION_KINDS for name in (kind, f"{kind}_generation"))
        return names + (CLOZE_SCORINGS if self.mc_cloze else ())


def summarize(credit: dict[str, dict[str, list[float]]], resamples: int, confidence: float, seed: int) -> dict:
    """Per rung and scoring (e.g. `raw`, `calibrated`; `mc`, `yes_no`): accuracy with its interval, and paired
    differences against the blind controls and against rung b (`text`) where those have the same scoring."""
    summary = {}
    for rung, scored in credit.items():
        entry = {}
        for scoring, values in scored.items():
            row = {"accuracy": accuracy_interval(values, resamples, confidence, seed)}
            for reference in (*BLIND_REFERENCES, "text"):
                if reference != rung and reference in credit and scoring in credit[reference]:
                    row[f"minus_{reference}"] = paired_difference(
                        values, credit[reference][scoring], resamples, confidence, seed
                    )
            entry[scoring] = row
        summary[rung] = entry
    return summary


def write_ladder_card(args: LadderArguments, ladder: dict) -> Path | None:
    """The checkpoint's model card with this ladder in its "Does it see?" section (and the evaluation results its
    README.md already lists), written to `<output_dir>/model_card/README.md`; also into the checkpoint folder when
    `update_model_card`. Returns the card's path, None for a checkpoint that is not a local folder."""
    checkpoint = Path(args.model_name_or_path)
    if not checkpoint.is_dir():
        logger.info("%s is not a local folder: no model card written", checkpoint)
        return None
    return write_stage_card(checkpoint, args.output_dir, {}, into_checkpoint=args.update_model_card, ladder=ladder)


def run_ladder(args: LadderArguments) -> dict:
    """Score every rung; write and return `ladder.json` (also `ladder.md` and `ladder.png`)."""
    if args.update_model_card and not Path(args.model_name_or_path).is_dir():
        raise ValueError(f"update_model_card needs a local checkpoint folder; {args.model_name_or_path} is not one.")
    start = time.perf_counter()
    # Every input is checked before the encoder and the model load.
    record = _question_record(args) if args.questions_path is not None else None
    if args.training_dialogues_path and not Path(args.training_dialogues_path).is_dir():
        raise FileNotFoundError(
            f"training_dialogues_path={args.training_dialogues_path!r}: no such folder; give the stage-3 (transfer) "
            "folder the model was fine-tuned on"
        )
    pairs = held_out_pairs(args.encoder_config, args.encoder_dir, args.num_images)
    items = ladder_items(pairs, args.num_candidates, args.text_form, args.seed)
    encoder = load_encoder(f"local-dir:{args.encoder_dir}", device=args.device, dtype="float32", batch_size=64)
    raw_images = encoder.encode_image([pair.load() for pair in pairs])  # [N, D]
    raw_text = encoder.encode_text([item.text for item in items])  # [N, D]
    unknown = sorted({item.source for item in items} - set(args.zero_shot_prompts))
    if unknown:
        raise ValueError(f"`zero_shot_prompts` has no prompt for source(s) {unknown}")

    qa = load_image_qa(args.model_name_or_path, device=args.device)
    device = qa.model.device  # the transfer rules use the checkpoint's statistics (buffers on its device)
    inputs = rung_inputs(qa.model, raw_text.to(device), raw_images.to(device), args.image_rules, args.seed)
    inputs = {name: embeds.cpu() for name, embeds in inputs.items()}  # [N, D] each; scoring moves batches itself
    progress = lambda name: logger.info("ladder rung %s", name)  # noqa: E731
    extra: dict = {}
    per_item_extra: dict = {}
    if args.questions_path is None:  # pretraining: candidate likelihood
        credit = {"encoder": {"raw": encoder_rung(raw_images, items, encoder.encode_text, args.zero_shot_prompts)}}
        # The checkpoint's own pretraining format: plain, or the caption as the reply to its `caption_prompt`.
        caption_prompt = pretraining_caption_prompt(read_previous(args.model_name_or_path))
        extra["caption_prompt"] = caption_prompt
        logger.info("candidate format: %s", "plain" if caption_prompt is None else f"reply to {caption_prompt!r}")
        scored = score_rungs(qa.model, qa.processor, inputs, items, args.batch_size, progress, caption_prompt)
        credit |= {
            name: {scoring: values[scoring] for scoring in CANDIDATE_SCORINGS} for name, values in scored.items()
        }
        chance: float | dict[str, float] = 1 / args.num_candidates
    else:  # SFT: the held-out pairs' questions
        templates, num_options = QuestionTemplates(**record["templates"]), record["num_options"]
        questions = evaluation_questions(pairs, num_options, templates, args.seed)
        pair_ids = [pair.id for pair in pairs]
        source_of = {pair.id: pair.source for pair in pairs}

        def prompt_for_title(pair_id: str, title: str) -> str:
            return args.zero_shot_prompts[source_of[pair_id]].format(title=title)

        credit = {"encoder": encoder_question_rung(raw_images, pair_ids, questions, encoder.encode_text,
                                                   prompt_for_title)}  # fmt: skip
        cloze_question = templates.mc_question if args.mc_cloze else None
        rung_credit, chosen = question_rungs(
            qa, inputs, pair_ids, questions, args.batch_size, args.max_new_tokens, progress, cloze_question
        )
        credit |= rung_credit
        if args.title_in_prompt is not None:  # no cloze here: the bare cloze question would drop the written title
            told = title_in_prompt_questions(questions, {pair.id: pair.title for pair in pairs}, args.title_in_prompt)
            zero = {TITLE_IN_PROMPT_RUNG: inputs["blind/zero"]}  # the content-free input: only the text differs
            told_credit, told_chosen = question_rungs(
                qa, zero, pair_ids, told, args.batch_size, args.max_new_tokens, progress
            )
            credit |= told_credit
            chosen |= told_chosen
        per_item_extra["chosen_by_first_token"] = chosen
        extra["answer_concentration"] = answer_concentration(chosen)
        chance = {"mc": 1 / num_options, "yes_no": 0.5}
        extra["training_dialogues"] = training_dialogue_probe(
            qa,
            args.training_dialogues_path,
            args.training_probe_rows,
            args.batch_size,
            args.seed,
            num_options,
            cloze_question,
        )
    summary = summarize(credit, args.bootstrap_resamples, args.confidence, args.seed)
    results = {
        "question": "Where is the image lost? The same held-out items, rung by rung (unicorn_hf.experiments.ladder).",
        "arguments": portable_record(asdict(args), args.output_dir),
        "modality_transfer": qa.model.config.modality_transfer,
        "num_items": len(items),
        "scorings": list(args.scorings),
        "chance": chance,
        "summary": summary,
        **extra,
        "per_item": {"pair_ids": [item.pair_id for item in items], "credit": credit, **per_item_extra},
        "seconds": round(time.perf_counter() - start, 1),
        "versions": package_versions(),
    }
    output_dir = Path(args.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / LADDER_FILE).write_text(json.dumps(results, indent=1) + "\n")
    heading = f"# Probe ladder of {args.model_name_or_path}\n\n{len(items)} held-out pairs.\n\n"
    table = ladder_table(summary, chance, extra.get("training_dialogues"), extra.get("answer_concentration"))
    (output_dir / LADDER_TABLE).write_text(heading + table)
    plot_ladder(summary, chance, output_dir / LADDER_PLOT)
    write_ladder_card(args, results)
    headline = next(scoring for scoring in (*PLOT_PANELS, "raw") if scoring in args.scorings or scoring == "raw")
    for rung, entry in summary.items():
        best = (entry.get(headline) or entry["raw"])["accuracy"]
        logger.info("%-24s %s %.3f [%.3f, %.3f]", rung, headline, best["accuracy"], best["low"], best["high"])
    return results


def _question_record(args: LadderArguments) -> dict:
    """The SFT ladder's question wording: `questions_path`/pair_text.json, the record of the text the checkpoint
    trained on. Raises `FileNotFoundError` naming the missing record and `ValueError` when its option count differs
    from `num_candidates`."""
    record = load_text_record(args.questions_path, "questions_path")
    if record["num_options"] != args.num_candidates:
        raise ValueError(
            f"{Path(args.questions_path) / TEXT_RECORD}: the model trained on {record['num_options']}-way questions, "
            f"`num_candidates` is {args.num_candidates}; make them equal"
        )
    return record
