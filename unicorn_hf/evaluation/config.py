"""Argument dataclasses of `recipes/evaluate_vlm.py`. No hyper-parameter literal: values live in the recipe YAMLs."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class EvalModelArguments:
    """The checkpoint to evaluate and the image encoder that feeds it."""

    model_name_or_path: str = field(
        metadata={"help": "A Unicorn checkpoint folder (e.g. outputs/tiny/sft) or Hub id."}
    )
    dtype: str = field(metadata={"help": "Model and encoder dtype: float32, bfloat16 or float16."})
    device: str = field(metadata={"help": "cpu, cuda, cuda:1, ..."})
    encoder_batch_size: int | None = field(metadata={"help": "Images per encoder forward pass (None: all at once)."})
    encoder: str | None = field(
        default=None,
        metadata={"help": "A `load_encoder` spec overriding the encoder recorded in the model config (encoder_id)."},
    )
    encoder_kwargs: dict | None = field(
        default=None,
        metadata={
            "help": "Extra `load_encoder` arguments with `encoder`: open_clip `pretrained` / `init_seed`, or "
            "LLM2CLIP's `text_model`, `image_processor`, `max_length`."
        },
    )
    num_threads: int | None = field(
        default=None, metadata={"help": "torch CPU threads (None: torch's default). 1 is fastest on busy CPUs."}
    )


@dataclass
class EvalDataArguments:
    """Which benchmarks, from where."""

    benchmarks: list[str] = field(
        metadata={"help": "Any of pope, scienceqa_img, mme, mmbench, mmstar (see unicorn_hf/evaluation/benchmarks)."}
    )
    benchmark_source: str = field(
        metadata={"help": "`hub`: the real benchmarks by Hub id; `fixture`: offline sets built from real photographs."}
    )
    seed: int = field(metadata={"help": "Seed of the fixtures (where answers sit among the options)."})
    max_samples: int | None = field(
        default=None, metadata={"help": "Keep the first N questions of each benchmark (None: all)."}
    )
    benchmark_revisions: dict[str, str] | None = field(
        default=None, metadata={"help": "Hub revision per benchmark name, e.g. {pope: <commit sha>} (None: main)."}
    )


@dataclass
class EvalArguments:
    """How to ask, how to shift, where to write."""

    output_dir: str = field(metadata={"help": "Results, predictions and logs go here (and only here)."})
    mean_modes: list[str] = field(
        metadata={"help": "Image-mean modes, each evaluated and named in the results: eval, image, text, none."}
    )
    batch_size: int = field(metadata={"help": "Prompts per generate call."})
    max_new_tokens: int = field(metadata={"help": "Generation budget per answer."})
    do_sample: bool = field(metadata={"help": "False: greedy decoding (the benchmarks' protocol)."})
    prompt_template: str = field(metadata={"help": "User turn around the question; holds `<image>` and `{question}`."})
    yes_no_suffix: str | None = field(
        metadata={"help": "Appended to yes/no questions that do not already ask for it."}
    )
    mc_suffix: str | None = field(metadata={"help": "Appended after multiple-choice options."})
    overwrite: bool = field(default=False, metadata={"help": "Generate again even where predictions exist."})
    update_model_card: bool = field(
        default=False,
        metadata={
            "help": "Also write the card with the results (always written to <output_dir>/model_card/README.md) into "
            "the checkpoint's own README.md: the one write outside output_dir."
        },
    )
    model_card_template: str | None = field(
        default=None, metadata={"help": "Jinja template of the card (None: model_cards/model_card.md of this repo)."}
    )
    sees_results: str | None = field(
        default=None,
        metadata={"help": "results.json of recipes/sees.py (sighted vs blind): added to the card's 'Does it see?'."},
    )
    ladder_results: str | None = field(
        default=None,
        metadata={"help": "ladder.json of recipes/ladder.py (the probe ladder): added to the card's 'Does it see?'."},
    )
    push_to_hub: bool = field(default=False, metadata={"help": "Push the card with the results to hub_model_id."})
    hub_model_id: str | None = field(default=None, metadata={"help": "Repo the card is pushed to / named after."})
