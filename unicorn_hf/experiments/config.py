"""Arguments of the does-it-see experiment (`recipes/experiments/does_it_see/experiment.yaml`).

Every value lives in the YAML; the arms (what differs between training runs) live in the plan file it names.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml

from unicorn_hf.evaluation.inference import MEAN_MODES


EVALUATION_INPUTS = ("images", "zero", "shuffled")  # the real images, or the blind controls


@dataclass
class ExperimentArguments:
    output_dir: str = field(metadata={"help": "Everything is written here: shared/ (data, encoder), seed-N/ (arms)."})
    seed: int = field(metadata={"help": "Seed of the VLM training runs, the questions and the noise arm."})
    split_seed: int = field(metadata={"help": "Seed of the pair splits and the encoder (shared by every run)."})
    sources: list[str] = field(metadata={"help": "Pair sources (unicorn_hf.lit.pairs): emoji, openclipart."})
    num_eval: int = field(metadata={"help": "Evaluation images (one mc + one yes/no question each)."})
    num_pool: int = field(metadata={"help": "Unlabeled images whose mean embedding is stored for inference."})
    num_vlm_train: int = field(metadata={"help": "Pairs whose captions (text only) train the VLM."})
    max_encoder_train: int | None = field(metadata={"help": "Cap on the encoder's pairs (None: all the rest)."})
    num_options: int = field(metadata={"help": "Options per multiple-choice question."})
    mc_question: str = field(metadata={"help": "Multiple-choice question, before the options."})
    mc_suffix: str = field(metadata={"help": "Instruction after the options (LLaVA-1.5's MC prompt)."})
    yes_no_question: str = field(metadata={"help": "Presence question with a {title} slot."})
    yes_no_suffix: str = field(metadata={"help": "Instruction after a yes/no question (LLaVA-1.5's POPE prompt)."})
    dialogues_per_pair: int = field(metadata={"help": "Templated (mc, yes/no) dialogue pairs per training pair."})
    num_expanded_captions: int = field(metadata={"help": "Training captions also expanded by the stage-1 LLM."})
    encoder_config: str = field(metadata={"help": "Encoder recipe YAML (recipes/train_encoder.py schema)."})
    captions_config: str = field(metadata={"help": "Stage-1 YAML (recipes/synthesize_captions.py schema)."})
    transfer_config: str = field(metadata={"help": "Stage-3 YAML (recipes/transfer.py schema)."})
    pretrain_config: str = field(metadata={"help": "Pretraining YAML (recipes/pretrain.py schema)."})
    sft_config: str = field(metadata={"help": "SFT YAML (recipes/sft.py schema)."})
    plan: str = field(metadata={"help": "YAML with the arms, the reference arm and the zero-shot prompts."})
    eval_batch_size: int = field(metadata={"help": "Questions per generate call."})
    max_new_tokens: int = field(metadata={"help": "Generated tokens per answer (letters and yes/no are short)."})
    probe_rows: int = field(metadata={"help": "Training rows of each arm probed for embedding use (probes.py)."})
    bootstrap_resamples: int = field(metadata={"help": "Bootstrap resamples of the questions."})
    confidence: float = field(metadata={"help": "Two-sided confidence of the intervals, e.g. 0.95."})
    max_steps: int | None = field(
        default=None, metadata={"help": "Overrides every training stage's max_steps (smoke runs); None: the YAMLs'."}
    )
    budget: str | None = field(
        default=None,
        metadata={
            "help": "Name of another training budget (e.g. `gpu`: its own pretrain/sft YAMLs). Its checkpoints, "
            "scores and probes go to seed-N/<arm>/<budget>/ and its report to seed-N/<budget>/; the data stages "
            "(splits, encoder, text, transfer) are shared with the default budget. None: the default layout."
        },
    )
    arms: list[str] | None = field(
        default=None, metadata={"help": "Train and score only these arms of the plan (None: every arm)."}
    )
    eval_device: str = field(default="cpu", metadata={"help": "Device of the scoring and the probes (cpu, cuda)."})
    recipes_dir: str = field(default="recipes", metadata={"help": "Folder of the stage scripts."})
    python: str | None = field(default=None, metadata={"help": "Interpreter for the stages (None: this one)."})


@dataclass
class EvaluationMode:
    """How one trained arm is questioned: which image mean is subtracted, or blind inputs."""

    name: str
    mean: str = "eval"  # eval | image | text | none (see unicorn_hf.evaluation.inference.MEAN_MODES)
    inputs: str = "images"  # images | zero | shuffled (blind controls)


@dataclass
class Arm:
    """One training run: how its `image_embeds` are made, stage overrides, and its evaluation modes."""

    name: str
    description: str
    embeddings: str  # "text" (the caption embedding, transferred) or "image" (the oracle: the pair's real image)
    transfer: dict
    pretrain: dict
    sft: dict
    evaluate: list[EvaluationMode]


@dataclass
class Plan:
    arms: list[Arm]
    reference: str  # "<arm>/<mode>": every paired difference is against it
    zero_shot_prompts: dict[str, str]  # source -> prompt with a {title} slot

    @classmethod
    def load(cls, path: str | Path) -> Plan:
        """Parse the plan YAML; raises `ValueError` naming the file and field on a malformed entry."""
        data = yaml.safe_load(Path(path).read_text()) or {}
        for key in ("arms", "reference", "zero_shot_prompts"):
            if key not in data:
                raise ValueError(f"{path}: missing top-level field {key!r}")
        arms = []
        for index, raw in enumerate(data["arms"]):
            try:
                modes = [EvaluationMode(**mode) for mode in raw.pop("evaluate")]
                arm = Arm(evaluate=modes, **{"transfer": {}, "pretrain": {}, "sft": {}, **raw})
            except (TypeError, KeyError) as error:
                raise ValueError(f"{path}: arms[{index}] is malformed ({error})") from error
            if arm.embeddings not in ("text", "image"):
                raise ValueError(f"{path}: arms[{index}].embeddings must be 'text' or 'image', got {arm.embeddings!r}")
            for mode in modes:
                if mode.mean not in MEAN_MODES or mode.inputs not in EVALUATION_INPUTS:
                    raise ValueError(f"{path}: arms[{index}] evaluate {mode.name!r}: bad mean/inputs {mode}")
            arms.append(arm)
        names = [f"{arm.name}/{mode.name}" for arm in arms for mode in arm.evaluate]
        if data["reference"] not in names:
            raise ValueError(f"{path}: reference {data['reference']!r} is none of {names}")
        return cls(arms=arms, reference=data["reference"], zero_shot_prompts=data["zero_shot_prompts"])

    def select(self, names: list[str] | None) -> Plan:
        """The plan restricted to the arms `names` (None: all); raises `ValueError` on an unknown name or when the
        reference arm is left out (every paired difference is against it)."""
        if names is None:
            return self
        known = [arm.name for arm in self.arms]
        if unknown := sorted(set(names) - set(known)):
            raise ValueError(f"arms {unknown} are not in the plan ({known})")
        if self.reference.split("/")[0] not in names:
            raise ValueError(f"arms {names} leave out the reference arm of {self.reference!r}")
        return Plan([arm for arm in self.arms if arm.name in names], self.reference, self.zero_shot_prompts)
