"""Arguments of the transfer stage (`recipes/transfer.py`). Hyper-parameters have no defaults here: they live in
`recipes/<recipe>/transfer.yaml`; `None` switches an option off."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class EncoderArguments:
    """Which paired encoder embeds the captions (see `unicorn_hf.transfer.encoders.load_encoder`)."""

    encoder: str = field(
        metadata={
            "help": "open_clip model name (`ViT-L-14`, `unicorn-tiny-clip`), `local-dir:/path` (open_clip folder), "
            "`hf:<id-or-path>` (transformers CLIP/SigLIP) or `llm2clip:<id-or-path>` (the paper's encoder)."
        }
    )
    pretrained: str | None = field(
        metadata={"help": "open_clip pretrained tag or checkpoint file; null = random init (mechanics only)."}
    )
    encoder_device: str = field(metadata={"help": "torch device of the encoder: cpu, cuda, cuda:1, ..."})
    encoder_dtype: str = field(metadata={"help": "float32, float16 or bfloat16."})
    encoder_batch_size: int = field(metadata={"help": "Captions (or images) per forward pass."})
    init_seed: int | None = field(
        default=None, metadata={"help": "Seed of a random-init encoder (required when it has no weights)."}
    )
    llm2clip_text_model: str | None = field(
        default=None, metadata={"help": "LLM2CLIP only: the LLM2Vec caption encoder (hub id or path)."}
    )
    llm2clip_image_processor: str | None = field(
        default=None, metadata={"help": "LLM2CLIP only: the CLIP image processor (hub id or path)."}
    )
    llm2clip_max_length: int | None = field(default=None, metadata={"help": "LLM2CLIP only: caption tokens read."})

    def backend_kwargs(self) -> dict:
        if not self.encoder.startswith("llm2clip:"):
            return {}
        missing = [name for name in ("llm2clip_text_model", "llm2clip_image_processor", "llm2clip_max_length")
                   if getattr(self, name) is None]  # fmt: skip
        if missing:
            raise ValueError(f"encoder {self.encoder!r} needs {missing}")
        return {
            "text_model": self.llm2clip_text_model,
            "image_processor": self.llm2clip_image_processor,
            "max_length": self.llm2clip_max_length,
        }


@dataclass
class TransferArguments:
    """Data in and out, the transfer rule, streaming and diagnostics."""

    captions_path: str = field(metadata={"help": "Stage-1 output folder or Hub id (config `captions`)."})
    output_dir: str = field(metadata={"help": "Folder written: configs `captions` (+ `instructions`), card, stats."})
    shard_size: int = field(metadata={"help": "Rows per output parquet shard; the unit of resumption and memory."})
    center: bool = field(metadata={"help": "Subtract the caption mean (paper). False: the noise-only baseline."})
    renormalize_after_shift: bool = field(
        metadata={"help": "L2-normalise after the shift (paper text: true; paper code: false)."}
    )
    instructions_path: str | None = field(
        default=None, metadata={"help": "Stage-2 output folder or Hub id (config `instructions`); null = none."}
    )
    captions_config: str = field(default="captions", metadata={"help": "Config name of the captions dataset."})
    instructions_config: str = field(default="instructions", metadata={"help": "Config name of the instructions."})
    image_mean_source: str | None = field(
        default=None,
        metadata={
            "help": "Unlabeled images for `image_mean`: an image folder, a dataset folder / Hub id (with "
            "`image_mean_column`), or a packaged set: `pkg://unscored-photographs` (`unicorn_hf.assets`)."
        },
    )
    image_mean_column: str | None = field(
        default=None, metadata={"help": "Image column when `image_mean_source` is a dataset (not an image folder)."}
    )
    image_mean_max_images: int | None = field(default=None, metadata={"help": "Cap on images read; null = all."})
    add_image_mean: bool = field(
        default=False, metadata={"help": "Store u - mu_T + mu_V (the ideal form) instead of u - mu_T."}
    )
    noise_std: float | None = field(
        default=None, metadata={"help": "Gaussian-noise ablation: add N(0, std^2) to every stored embedding."}
    )
    seed: int | None = field(default=None, metadata={"help": "Seed of the noise ablation (required with it)."})
    diagnostics: bool = field(
        default=True, metadata={"help": "Modality-gap diagnostics on the packaged paired photographs."}
    )
    overwrite: bool = field(default=False, metadata={"help": "Discard an earlier (finished or partial) output."})

    def __post_init__(self) -> None:
        if self.shard_size <= 0:
            raise ValueError(f"shard_size must be positive, got {self.shard_size}")
        if self.noise_std is not None and (self.noise_std <= 0 or self.seed is None):
            raise ValueError("noise_std needs a positive value and a `seed`")
        # center=false without noise_std stores the raw caption embeddings: the paper's "no alignment" baseline.
        if self.add_image_mean and (self.image_mean_source is None or not self.center):
            raise ValueError("add_image_mean needs center=true and an `image_mean_source`")
        if self.image_mean_column is not None and self.image_mean_source is None:
            raise ValueError("image_mean_column is set but image_mean_source is not")
