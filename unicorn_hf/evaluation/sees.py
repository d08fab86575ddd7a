"""Does a checkpoint look at the image? Its answers about held-out real images, sighted against blind.

The held-out pairs of the paired encoder (`held_out_ids.json` beside it: images neither the encoder nor the VLM saw)
are asked the templated questions the VLM was trained on (`unicorn_hf.experiments.questions`), once with the real
image embeddings (shifted by the evaluated images' own mean, the paper's protocol), once with no image (zero
embeddings) and once with another question's image (shuffled). The paired bootstrap difference sighted - blind is
the evidence: its interval excludes 0 only when the answers depend on the image.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from unicorn_hf.encoders import load_encoder
from unicorn_hf.experiments.bootstrap import accuracy_interval, paired_difference
from unicorn_hf.experiments.config import EvaluationMode
from unicorn_hf.experiments.probes import training_dialogue_probe
from unicorn_hf.experiments.questions import QuestionTemplates, evaluation_questions
from unicorn_hf.experiments.scoring import load_image_qa, score_modes
from unicorn_hf.lit.recipe import trained_encoder_pairs
from unicorn_hf.synthesis.pair_text import TEXT_RECORD
from unicorn_hf.training.metadata import package_versions
from unicorn_hf.utils.paths import portable_record


logger = logging.getLogger(__name__)

RESULTS_FILE = "results.json"
MODES = (
    EvaluationMode("sighted", mean="eval", inputs="images"),
    EvaluationMode("blind_zero", mean="eval", inputs="zero"),
    EvaluationMode("blind_shuffled", mean="eval", inputs="shuffled"),
)


@dataclass
class SeesArguments:
    model_name_or_path: str = field(metadata={"help": "The checkpoint to question (e.g. the SFT output)."})
    encoder_config: str = field(metadata={"help": "The encoder's recipe YAML: which pairs it collected."})
    encoder_dir: str = field(metadata={"help": "The trained encoder folder (holds held_out_ids.json)."})
    text_path: str = field(metadata={"help": "The pair_text output the model trained on (question templates)."})
    num_images: int = field(metadata={"help": "Held-out images asked about (an mc and a yes/no question each)."})
    batch_size: int = field(metadata={"help": "Questions per generate call."})
    max_new_tokens: int = field(metadata={"help": "Generated tokens per answer."})
    bootstrap_resamples: int = field(metadata={"help": "Bootstrap resamples of the questions."})
    confidence: float = field(metadata={"help": "Two-sided confidence of the intervals."})
    seed: int = field(metadata={"help": "Seed of the questions and the shuffled control."})
    output_dir: str = field(metadata={"help": "results.json is written here."})
    training_dialogues_path: str | None = field(
        default=None,
        metadata={
            "help": "The stage-3 folder the model was fine-tuned on: its first `training_probe_rows` dialogues are "
            "answered with their own, a shuffled and a zero embedding (can the training text be answered blind?)."
        },
    )
    training_probe_rows: int = field(default=0, metadata={"help": "Training dialogues probed (0: none)."})
    project_images_onto_memory: bool = field(
        default=False,
        metadata={
            "help": "Project the held-out images onto the checkpoint's text memory first (DeCap; an inference-only "
            "arm of the same checkpoint: it must carry a memory)."
        },
    )


def held_out_pairs(encoder_config: str, encoder_dir: str, num_images: int):
    """The first `num_images` titled pairs the encoder held out (never trained on), in its own order."""
    pairs, held_out_ids = trained_encoder_pairs(encoder_config, encoder_dir)
    by_id = {pair.id: pair for pair in pairs}
    titled = [by_id[pair_id] for pair_id in held_out_ids if pair_id in by_id and by_id[pair_id].title]
    if len(titled) < num_images:
        raise ValueError(f"{encoder_dir}: {len(titled)} titled held-out pairs, {num_images} asked for")
    return titled[:num_images]


def load_text_record(text_path: str, field_name: str) -> dict:
    """`<text_path>/pair_text.json`: the question templates and option count of the text a checkpoint trained on.
    Raises `FileNotFoundError` naming the argument `field_name` and the missing file."""
    record_path = Path(text_path) / TEXT_RECORD
    if not record_path.is_file():
        raise FileNotFoundError(
            f"{field_name}: {record_path} is missing; give the pair_text output the checkpoint trained on "
            "(recipes/pair_text.py writes it)"
        )
    return json.loads(record_path.read_text())


def run_sees(args: SeesArguments) -> dict:
    """Score the checkpoint sighted and blind; write and return `results.json` (also its `headline`)."""
    start = time.perf_counter()
    record = load_text_record(args.text_path, "text_path")
    templates = QuestionTemplates(**record["templates"])
    pairs = held_out_pairs(args.encoder_config, args.encoder_dir, args.num_images)
    questions = evaluation_questions(pairs, record["num_options"], templates, args.seed)
    encoder = load_encoder(f"local-dir:{args.encoder_dir}", device="cpu", dtype="float32", batch_size=args.batch_size)
    raw_by_id = dict(zip([p.id for p in pairs], encoder.encode_image([p.load() for p in pairs]), strict=True))
    raw = torch.stack([raw_by_id[question.pair_id] for question in questions])  # [Q, D]
    overrides = {"project_images_onto_memory": True} if args.project_images_onto_memory else None
    qa = load_image_qa(args.model_name_or_path, transfer_overrides=overrides)
    scores = score_modes(qa, questions, raw, MODES, args.batch_size, args.max_new_tokens, args.seed)
    summary = {}
    for mode in MODES:
        correct = scores[mode.name]["likelihood"]
        entry = {"likelihood": accuracy_interval(correct, args.bootstrap_resamples, args.confidence, args.seed)}
        entry["generation"] = accuracy_interval(
            scores[mode.name]["generation"], args.bootstrap_resamples, args.confidence, args.seed
        )
        if mode.name != "sighted":
            entry["sighted_minus_this"] = paired_difference(
                scores["sighted"]["likelihood"], correct, args.bootstrap_resamples, args.confidence, args.seed
            )
        summary[mode.name] = entry
    gap = summary["blind_zero"]["sighted_minus_this"]
    results = {
        "question": "Does the model answer from the image? Held-out real images, sighted against blind.",
        "arguments": portable_record(asdict(args), args.output_dir),
        "num_images": len(pairs),
        "num_questions": len(questions),
        "summary": summary,
        "sees_image": gap["low"] > 0,
        "headline": {
            "sighted accuracy": summary["sighted"]["likelihood"]["accuracy"],
            "blind accuracy": summary["blind_zero"]["likelihood"]["accuracy"],
            "sighted - blind": gap["difference"],
            "sighted - blind low": gap["low"],
            "sighted - blind high": gap["high"],
        },
        "replies_sample": {name: scores[name]["replies_sample"] for name in scores},
        "training_dialogues": training_dialogue_probe(
            qa,
            args.training_dialogues_path,
            args.training_probe_rows,
            args.batch_size,
            args.seed,
            record["num_options"],
        ),
        "seconds": round(time.perf_counter() - start, 1),
        "versions": package_versions(),
    }
    output_dir = Path(args.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / RESULTS_FILE).write_text(json.dumps(results, indent=1) + "\n")
    logger.info(
        "sighted %.3f vs blind %.3f: difference %+.3f [%+.3f, %+.3f] -> %s",
        summary["sighted"]["likelihood"]["accuracy"], summary["blind_zero"]["likelihood"]["accuracy"],
        gap["difference"], gap["low"], gap["high"], "sees the image" if results["sees_image"] else "not shown",
    )  # fmt: skip
    return results
