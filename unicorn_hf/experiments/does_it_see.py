"""The does-it-see experiment, stage by stage; every stage is resumable and recorded.

    shared/                 (depends on split_seed only: reused by every seed's run)
      splits.json           pair ids per split (eval, pool, vlm_train, encoder_train), disjoint
      encoder/              the LiT encoder trained on encoder_train only (recipes/train_encoder.py's code)
      image_embeds.safetensors   raw image embeddings of eval, pool and vlm_train
      pool_images/          the unlabeled pool as an image folder (transfer's `image_mean_source`)
      captions/             stage 1 (recipes/synthesize_captions.py) on vlm_train captions
    seed-N/
      text/                 captions (raw seeds + LLM-expanded) and templated dialogues: the same text for every arm
      <arm>/transfer|pretrain|sft   each arm's stage-3 data and checkpoints (recipes/transfer.py, pretrain.py, sft.py)
      <arm>/<budget>/pretrain|sft   the same arm under a named training budget (`budget`, e.g. gpu), same data
      questions.json, encoder_zero_shot.json, <arm>/scores.json, results.json, results.md, results.png
      <budget>/results.*    the report of a named training budget

Each stage script runs as its own process with an effective YAML written next to its output (base recipe YAML +
the arm's overrides), exactly as a user would run it (`unicorn_hf.stages.runner`'s script registry and child
processes); a finished stage leaves `.stage_done.json` (`unicorn_hf.stages.markers`) and is skipped on re-runs.
A stage runs only when something not yet finished needs it: a run whose data stages are all finished (a copy of
`shared/` without the encoder's weights, the text and transfer folders, questions.json and the zero-shot scores)
trains and scores on a machine that has neither the encoder nor the Debian image packages, e.g. a GPU box.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sys
import time
from pathlib import Path

import numpy as np
import torch
import yaml

from unicorn_hf.data_contract import CAPTIONS_COLUMNS, CAPTIONS_CONFIG, IMAGE_EMBEDS
from unicorn_hf.encoders import load_encoder
from unicorn_hf.evaluation.inference import UnicornImageQA
from unicorn_hf.experiments.config import Arm, ExperimentArguments, Plan
from unicorn_hf.experiments.oracle import (
    PairImages,
    cached_pair_images,
    encode_pair_images,
    training_pair_ids,
    write_image_oracle,
)
from unicorn_hf.experiments.probes import caption_nll, training_dialogue_probe
from unicorn_hf.experiments.questions import Question, QuestionTemplates, evaluation_questions
from unicorn_hf.experiments.report import write_report
from unicorn_hf.experiments.scoring import correctness, most_frequent_answer, score_checkpoint, zero_shot_answers
from unicorn_hf.experiments.splits import PairSplits, split_pairs_by_id
from unicorn_hf.lit.pairs import Pair, UnreadableImageError, collect_pairs
from unicorn_hf.lit.recipe import parse_config
from unicorn_hf.lit.train import build_default_encoder
from unicorn_hf.modeling import UnicornForConditionalGeneration, UnicornProcessor
from unicorn_hf.stages.markers import changed_settings, is_finished, read_marker, write_marker
from unicorn_hf.stages.runner import STAGE_SCRIPTS, run_command
from unicorn_hf.synthesis.pair_text import pair_text_rows, write_text_folder
from unicorn_hf.utils.hub import load_dataset_folder
from unicorn_hf.utils.paths import portable_record


logger = logging.getLogger(__name__)


def _fingerprint(*parts) -> str:
    """A key of what a cached result depends on; a checkpoint folder counts by its weights' size and mtime."""

    def describe(part):
        if isinstance(part, Path):
            weights = part / "model.safetensors"
            return [str(part), *(weights.stat()[6:9] if weights.is_file() else [])]
        return part

    return hashlib.sha256(json.dumps([describe(p) for p in parts], default=str).encode()).hexdigest()[:16]


def _is_readable(pair: Pair) -> bool:
    try:
        pair.load()
    except UnreadableImageError as error:
        logger.warning("Unreadable image of %s: %s", pair.id, error)
        return False
    return True


class Timer:
    """Wall seconds per named stage, logged as each ends."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    def run(self, name: str, function, *args, **kwargs):
        start = time.perf_counter()
        result = function(*args, **kwargs)
        self.seconds[name] = round(time.perf_counter() - start, 1)
        logger.info("stage %s: %.1f s", name, self.seconds[name])
        return result


class Experiment:
    """Runs every stage of the experiment for one seed (see the module docstring for the layout)."""

    def __init__(self, args: ExperimentArguments):
        self.args = args
        self.plan = Plan.load(args.plan).select(args.arms)
        self.root = Path(args.output_dir)
        self.shared = self.root / "shared"
        self.run_dir = self.root / f"seed-{args.seed}"
        self.report_dir = self.run_dir / args.budget if args.budget else self.run_dir
        self.templates = QuestionTemplates(args.mc_question, args.mc_suffix, args.yes_no_question, args.yes_no_suffix)
        self.timer = Timer()
        self._pairs: dict[str, Pair] | None = None
        self._encoder_dir: Path | None = None
        self._encoder = None

    # ---- subprocess stages --------------------------------------------------------------------------------------
    def run_stage(self, stage: str, base_yaml: str, overrides: dict, output_dir: Path) -> Path:
        """Run `recipes/<script> --config <effective yaml>` unless `output_dir` is marked done."""
        config = yaml.safe_load(Path(base_yaml).read_text()) or {}
        config.update(overrides)
        config["output_dir"] = str(output_dir)
        if stage in ("pretrain", "sft") and self.args.max_steps is not None:
            config["max_steps"] = self.args.max_steps
        # The marker holds no path of this machine. Paths are taken relative to the experiment's own folder
        # (`<output_dir>` there means `output_dir` of the experiment YAML), never named by content: a later budget
        # compares these records on a machine where the encoder folder may be absent, and must find them unchanged.
        recorded = portable_record(config, self.root)
        if is_finished(output_dir):
            changed = changed_settings(read_marker(output_dir), recorded)
            if changed is not None:
                raise ValueError(
                    f"{output_dir} was finished with other settings ({changed}): results would mix two "
                    "configurations. Use another output_dir, or delete that folder to redo it."
                )
            logger.info("%s: finished earlier in %s", stage, output_dir)
            return output_dir
        effective = output_dir.parent / f"{output_dir.name}.yaml"
        effective.parent.mkdir(parents=True, exist_ok=True)
        effective.write_text(yaml.safe_dump(config, sort_keys=False))
        script = Path(self.args.recipes_dir) / STAGE_SCRIPTS[stage]
        command = [self.args.python or sys.executable, str(script), "--config", str(effective)]
        logger.info("running %s", " ".join(command))
        seconds = run_command(stage, command)
        record = {"command": portable_record(command, self.root), "seconds": round(seconds, 1)}
        write_marker(output_dir, record, recorded)
        return output_dir

    # ---- shared: pairs, splits, encoder, image embeddings ---------------------------------------------------------
    def pairs(self) -> dict[str, Pair]:
        if self._pairs is None:
            model_args, _, _ = parse_config(self.args.encoder_config)
            found, drops = collect_pairs(self.args.sources, None, self.args.split_seed, model_args.image_size)
            logger.info("pairs: %s", drops.summary())
            self._pairs = {pair.id: pair for pair in found}
        return self._pairs

    def splits(self) -> PairSplits:
        path = self.shared / "splits.json"
        args = self.args
        requested = {"split_seed": args.split_seed, "num_eval": args.num_eval, "num_pool": args.num_pool,
                     "num_vlm_train": args.num_vlm_train, "max_encoder_train": args.max_encoder_train}  # fmt: skip
        requested_path = self.shared / "splits_requested.json"
        if path.is_file():
            splits = PairSplits.load(path)
            made_with = (
                json.loads(requested_path.read_text()) if requested_path.is_file() else {"split_seed": splits.seed}
            )
            if any(made_with.get(key) != value for key, value in requested.items()):
                raise ValueError(
                    f"{path} was made with {made_with}, not {requested}: the encoder and every arm depend on it. "
                    "Use another output_dir."
                )
            return splits
        splits = split_pairs_by_id(
            list(self.pairs().values()), args.split_seed, args.num_eval, args.num_pool, args.num_vlm_train,
            args.max_encoder_train, readable=_is_readable,
        )  # fmt: skip
        if splits.unreadable:
            logger.warning("%d pair(s) left out, their image cannot be read: %s", len(splits.unreadable),
                           splits.unreadable[:5])  # fmt: skip
        splits.save(path)
        requested_path.write_text(json.dumps(requested) + "\n")
        (self.shared / "encoder_pair_ids.json").write_text(json.dumps(splits.ids["encoder_train"]) + "\n")
        return splits

    def encoder_dir(self) -> Path:
        """The shared encoder folder: trained on first use (timed once, as stage `encoder`), then reused."""
        if self._encoder_dir is None:
            ids_file = self.shared / "encoder_pair_ids.json"
            self._encoder_dir = self.timer.run(
                "encoder", build_default_encoder, self.shared / "encoder", self.args.encoder_config,
                seed=self.args.split_seed, pair_ids_file=str(ids_file),
            )  # fmt: skip
        return self._encoder_dir

    def load_encoder(self):
        """The shared encoder, loaded once per run (image embeddings and zero-shot both use it)."""
        if self._encoder is None:
            encoder_yaml = yaml.safe_load(Path(self.args.encoder_config).read_text())
            self._encoder = load_encoder(
                f"local-dir:{self.encoder_dir()}", device="cpu", dtype="float32",
                batch_size=encoder_yaml["feature_batch_size"],
            )  # fmt: skip
        return self._encoder

    def image_embeddings(self, splits: PairSplits) -> dict[str, torch.Tensor]:
        """Raw (L2-normalised, unshifted) image embeddings [D] of every eval and vlm_train pair, by id, cached in
        `shared/` (the pool's mean is taken by stage 3 from `pool_images/`, as a user's transfer would)."""
        ids = [pair_id for name in ("eval", "vlm_train") for pair_id in splits.ids[name]]
        cached = cached_pair_images(self.shared, ids)  # a finished run needs neither the encoder nor the images
        if cached is not None:
            return cached.embeds
        images = encode_pair_images(self.load_encoder(), self.pairs(), ids, cache_dir=self.shared)
        if images.unreadable:  # the splits keep readable pairs only (`_is_readable`)
            raise ValueError(f"{len(images.unreadable)} split pair(s) became unreadable, first {images.unreadable[0]}")
        return images.embeds

    def pool_images(self, splits: PairSplits) -> Path:
        """The unlabeled pool as PNG files: what a user would point transfer's `image_mean_source` at."""
        folder = self.shared / "pool_images"
        if is_finished(folder):
            return folder
        folder.mkdir(parents=True, exist_ok=True)
        pairs = self.pairs()
        for index, pair_id in enumerate(splits.ids["pool"]):
            pairs[pair_id].load().save(folder / f"{index:05d}.png")
        write_marker(folder, {"num_images": len(splits.ids["pool"])})
        return folder

    # ---- text data (the same for every arm) -----------------------------------------------------------------------
    def expanded_captions(self, splits: PairSplits) -> Path | None:
        """Stage 1 on the first `num_expanded_captions` training captions (the caption recipe's LLM and prompt);
        None when that number is 0 (raw captions only)."""
        if self.args.num_expanded_captions == 0:
            return None
        seeds_file = self.shared / "vlm_train_seeds.jsonl"
        if not is_finished(
            self.shared / "captions"
        ):  # finished: no pairs needed (run_stage still checks its settings)
            pairs = self.pairs()
            chosen = splits.ids["vlm_train"][: self.args.num_expanded_captions]
            seeds_file.write_text(
                "".join(json.dumps({"caption": pairs[i].caption, "pair_id": i}) + "\n" for i in chosen)
            )
        source = {"name": "pairs", "kind": "captions", "path": str(seeds_file), "column": "caption", "max_seeds": None}
        return self.run_stage(
            "captions", self.args.captions_config, {"seed_sources": [source]}, self.shared / "captions"
        )

    def text_data(self, splits: PairSplits, captions_dir: Path | None) -> Path:
        """Hub-ready folder with configs `captions` (raw seeds + expansions) and `instructions` (dialogues)."""
        folder = self.run_dir / "text"
        if is_finished(folder):
            return folder
        pairs = self.pairs()
        train = [pairs[pair_id] for pair_id in splits.ids["vlm_train"]]
        captions, dialogues, pair_of_row = pair_text_rows(
            train, self.templates, self.args.num_options, self.args.dialogues_per_pair, self.args.seed, "<image>"
        )
        if captions_dir is not None:  # stage-1 expansions keep their own ids; their seed names the pair
            by_caption = {pair.caption: pair.id for pair in train}
            for row in load_dataset_folder(captions_dir, CAPTIONS_CONFIG):
                pair_of_row[row["id"]] = by_caption[row["seed"]]
                captions.append({key: row[key] for key in CAPTIONS_COLUMNS})
        body = (
            "# does-it-see training text\n\nCaptions of the experiment's `vlm_train` pairs (raw seeds and stage-1 "
            f"expansions: {len(captions)} rows) and templated one-question dialogues ({len(dialogues)} rows). "
            "Made by `unicorn_hf.experiments.does_it_see`."
        )
        write_text_folder(folder, captions, dialogues, pair_of_row, body)
        write_marker(folder, {"captions": len(captions), "dialogues": len(dialogues)})
        return folder

    # ---- arms -------------------------------------------------------------------------------------------------------
    def transfer(self, arm: Arm, text_dir: Path, pool_dir: Path) -> Path:
        overrides = {
            "encoder": f"local-dir:{self.shared / 'encoder'}", "pretrained": None, "init_seed": None,
            "captions_path": str(text_dir), "instructions_path": str(text_dir), "seed": self.args.seed,
            **arm.transfer,
        }  # fmt: skip
        if overrides.get("image_mean_source") == "pool":
            overrides["image_mean_source"] = str(pool_dir)
        out = self.run_dir / arm.name / ("text_transfer" if arm.embeddings == "image" else "transfer")
        if not is_finished(out):
            self.encoder_dir()
        out = self.run_stage("transfer", self.args.transfer_config, overrides, out)
        if arm.embeddings == "image":
            return self.image_oracle_data(out, text_dir)
        return out

    def image_oracle_data(self, text_transfer: Path, text_dir: Path) -> Path:
        """The same rows with each caption's embedding replaced by its pair's real image embedding
        (`unicorn_hf.experiments.oracle.write_image_oracle`: the paper's shift within the image modality)."""
        out = text_transfer.parent / "transfer"
        if is_finished(out):
            return out
        pair_of_row, _ = training_pair_ids(text_dir)
        write_image_oracle(text_transfer, pair_of_row, PairImages(self.image_embeddings(self.splits()), []), out)
        write_marker(out)
        return out

    def arm_dir(self, arm: Arm) -> Path:
        """Where the arm's checkpoints, scores and probes go: `seed-N/<arm>`, or `seed-N/<arm>/<budget>`."""
        return self.run_dir / arm.name / (self.args.budget or "")

    def train_arm(self, arm: Arm, transfer_dir: Path) -> Path:
        arm_dir = self.arm_dir(arm)
        pretrain = self.run_stage(
            "pretrain", self.args.pretrain_config,
            {"dataset_name": str(transfer_dir), "seed": self.args.seed, **arm.pretrain}, arm_dir / "pretrain",
        )  # fmt: skip
        return self.run_stage(
            "sft", self.args.sft_config,
            {"dataset_name": str(transfer_dir), "model_name_or_path": str(pretrain), "seed": self.args.seed,
             **arm.sft},
            arm_dir / "sft",
        )  # fmt: skip

    # ---- evaluation -------------------------------------------------------------------------------------------------
    def questions(self, splits: PairSplits) -> list[Question]:
        path = self.run_dir / "questions.json"
        if path.is_file():  # made by an earlier invocation of this seed: reused, so every budget sees the same ones
            questions = [Question(**{**row, "options": tuple(row["options"])}) for row in json.loads(path.read_text())]
            asked = sorted({question.pair_id for question in questions})
            if asked != sorted(splits.ids["eval"]):
                raise ValueError(f"{path} asks about other images than the eval split of {self.shared}/splits.json: "
                                 "delete it to make the questions again.")  # fmt: skip
            return questions
        pairs = self.pairs()
        questions = evaluation_questions(
            [pairs[pair_id] for pair_id in splits.ids["eval"]], self.args.num_options, self.templates, self.args.seed
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps([question.to_dict() for question in questions], indent=0) + "\n")
        return questions

    def evaluate_arm(self, arm: Arm, sft_dir: Path, questions: list[Question], raw_by_id: dict) -> dict:
        path = self.arm_dir(arm) / "scores.json"
        key = _fingerprint([q.to_dict() for q in questions], [vars(mode) for mode in arm.evaluate], sft_dir)
        if path.is_file() and (cached := json.loads(path.read_text())).get("key") == key:
            return cached["scores"]
        raw = torch.stack([raw_by_id[question.pair_id] for question in questions])  # [Q, D]
        scores = score_checkpoint(
            str(sft_dir), questions, raw, arm.evaluate, self.args.eval_batch_size, self.args.max_new_tokens,
            self.args.seed, device=self.args.eval_device,
        )  # fmt: skip
        for name, score in scores.items():
            logger.info("%s/%s: likelihood %.3f generation %.3f", arm.name, name, np.mean(score["likelihood"]),
                        np.mean(score["generation"]))  # fmt: skip
        path.write_text(json.dumps({"key": key, "scores": scores}) + "\n")
        return scores

    def probe_arm(self, arm: Arm, transfer_dir: Path, num_rows: int) -> dict:
        """`unicorn_hf.experiments.probes` on the arm's first `num_rows` training rows: pretraining caption NLL and
        SFT multiple-choice (and yes/no) accuracy, each with the own, a shuffled and no embedding."""
        path = self.arm_dir(arm) / "probes.json"
        key = _fingerprint(num_rows, self.args.seed, self.arm_dir(arm) / "sft", transfer_dir)
        if path.is_file() and (cached := json.loads(path.read_text())).get("key") == key:
            return cached["probes"]
        probes = {}
        for stage in ("pretrain", "sft"):
            folder = self.arm_dir(arm) / stage
            model = UnicornForConditionalGeneration.from_pretrained(folder, dtype=torch.float32)
            model = model.to(self.args.eval_device).eval()
            processor = UnicornProcessor.from_pretrained(folder)
            if stage == "pretrain":
                rows = load_dataset_folder(transfer_dir, CAPTIONS_CONFIG)
                rows = rows.select(range(min(num_rows, len(rows))))
                embeds = torch.tensor(np.asarray(rows[IMAGE_EMBEDS], dtype=np.float32))  # [N, D]
                probes[stage] = caption_nll(model, processor, rows["caption"], embeds, self.args.seed)
            else:  # the first `num_rows` mc dialogues, and as many yes/no ones (stage 2's QA rows are passed over)
                qa = UnicornImageQA(model, processor, encoder=None)  # embeddings given: no image to encode
                probes[stage] = training_dialogue_probe(
                    qa, str(transfer_dir), num_rows, self.args.eval_batch_size, self.args.seed, self.args.num_options
                )
        logger.info("%s probes: %s", arm.name, probes)
        path.write_text(json.dumps({"key": key, "probes": probes}, indent=1) + "\n")
        return probes

    def zero_shot(self, questions: list[Question], raw_by_id: dict) -> dict:
        path = self.run_dir / "encoder_zero_shot.json"
        key = _fingerprint([q.to_dict() for q in questions], self.plan.zero_shot_prompts)
        if path.is_file() and (cached := json.loads(path.read_text())).get("key") == key:
            return cached["scores"]
        encoder = self.load_encoder()
        pairs = self.pairs()
        prompts = self.plan.zero_shot_prompts

        def prompt_for_title(pair_id: str, title: str) -> str:
            return prompts[pairs[pair_id].source].format(title=title)

        raw = torch.stack([raw_by_id[question.pair_id] for question in questions])  # [Q, D]
        answers = zero_shot_answers(raw, questions, encoder.encode_text, prompt_for_title)
        scores = {"encoder_zero_shot": {"likelihood": correctness(answers, questions).tolist()}}
        path.write_text(json.dumps({"key": key, "scores": scores}) + "\n")
        return scores

    # ---- the whole run ----------------------------------------------------------------------------------------------
    def run(self) -> dict:
        splits = self.timer.run("splits", self.splits)
        raw_by_id = self.timer.run("image_embeddings", self.image_embeddings, splits)
        pool_dir = self.timer.run("pool_images", self.pool_images, splits)
        captions_dir = self.timer.run("stage1_captions", self.expanded_captions, splits)
        text_dir = self.timer.run("text_data", self.text_data, splits, captions_dir)
        questions = self.questions(splits)
        scores = {"encoder": self.timer.run("encoder_zero_shot", self.zero_shot, questions, raw_by_id)}
        scores["baseline"] = {"most_frequent_answer": {"likelihood": most_frequent_answer(questions).tolist()}}
        probes = {}
        for arm in self.plan.arms:
            transfer_dir = self.timer.run(f"{arm.name}/transfer", self.transfer, arm, text_dir, pool_dir)
            sft_dir = self.timer.run(f"{arm.name}/train", self.train_arm, arm, transfer_dir)
            scores[arm.name] = self.timer.run(
                f"{arm.name}/evaluate", self.evaluate_arm, arm, sft_dir, questions, raw_by_id
            )
            probes[arm.name] = self.timer.run(
                f"{arm.name}/probes", self.probe_arm, arm, transfer_dir, self.args.probe_rows
            )
        return write_report(
            self.args, self.plan, splits, questions, scores, self.timer.seconds, self.report_dir, probes=probes,
            budget=self.args.budget,
        )  # fmt: skip
