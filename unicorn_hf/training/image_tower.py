"""SFT's last step: put the paired encoder's frozen image tower and image processor into the saved checkpoint, so that
`pipeline("image-text-to-text", model=output_dir)` takes real images with nothing else installed.

Training never touches pixels: the tower is converted before training (an encoder that cannot be carried fails
then, with the ways out, not after hours of training) and attached after the trainer has saved, by reloading that
checkpoint on the main process, attaching, and saving again. The trainer's own save (DeepSpeed, FSDP, LoRA merge)
is therefore untouched.

    image_tower_encoder: local-dir:outputs/tiny/encoder   # the encoder the transfer stage used (same content)
    image_tower_mean: image                              # mean_shift / c3: the stored image_mean; others: none
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch

from unicorn_hf.encoders import load_encoder
from unicorn_hf.encoders.image_tower import image_tower_from_encoder
from unicorn_hf.modeling import UnicornForConditionalGeneration, UnicornProcessor
from unicorn_hf.modeling.modality_transfer import IMAGE_MEAN_CHOICES, IMAGE_MEAN_METHODS
from unicorn_hf.training.builder import attach_image_tower


logger = logging.getLogger(__name__)


@dataclass
class CarriedTower:
    """A converted, frozen image tower with its image processor, ready to be attached to a saved checkpoint."""

    tower: torch.nn.Module
    image_processor: object
    mean: str
    encoder_id: str


def prepare_image_tower(
    encoder_spec: str, mean: str | None, *, encoder_id: str | None, has_image_mean: bool, method: str
):
    """Load `encoder_spec` (a transfer `encoder` spec) on the CPU and convert its image side; checks first that it is
    the encoder the training data was embedded with and that the image mean `mean` fits the transfer `method`.

    Raises `TowerNotCarriable` (naming the ways out) when no transformers class holds the tower faithfully.
    """
    if mean not in IMAGE_MEAN_CHOICES:
        raise ValueError(
            f"image_tower_mean must be one of {IMAGE_MEAN_CHOICES} with image_tower_encoder set, got {mean!r}"
        )
    if method not in IMAGE_MEAN_METHODS and mean != "none":
        raise ValueError(
            f"image_tower_mean: {mean}, but the modality transfer method {method!r} subtracts no image mean (only "
            f"{IMAGE_MEAN_METHODS} do): use image_tower_mean: none."
        )
    if mean == "image" and not has_image_mean:
        raise ValueError(
            "image_tower_mean: image, but the transfer statistics hold no image_mean: set the transfer stage's "
            "`image_mean_source` (e.g. pkg://unscored-photographs), or use image_tower_mean: text."
        )
    encoder = load_encoder(encoder_spec, device="cpu", dtype="float32", batch_size=None)
    if encoder_id is not None and encoder.id != encoder_id:
        raise ValueError(
            f"image_tower_encoder {encoder_spec!r} is {encoder.id!r}, but the training data was embedded by "
            f"{encoder_id!r}: the carried tower must be the transfer stage's encoder."
        )
    tower, image_processor = image_tower_from_encoder(encoder)
    logger.info("Image tower to carry: %s (%s), shift %r", type(tower).__name__, encoder.id, mean)
    return CarriedTower(tower=tower, image_processor=image_processor, mean=mean, encoder_id=encoder.id)


def attach_tower(
    model: UnicornForConditionalGeneration,
    processor: UnicornProcessor,
    tower: torch.nn.Module,
    image_processor,
    mean: str | torch.Tensor,
    encoder_id: str,
) -> None:
    """Put a converted tower (in the model's dtype) into `model` and its image processor into `processor` (save both
    afterwards). Raises `ValueError` when the model was trained on another encoder's embeddings than `encoder_id`;
    `mean` as in `unicorn_hf.training.builder.attach_image_tower`."""
    if model.config.encoder_id != encoder_id:
        raise ValueError(f"The model was trained on {model.config.encoder_id!r} embeddings, not {encoder_id!r}.")
    attach_image_tower(model, tower.to(model.dtype), mean=mean)
    processor.image_processor = image_processor


def attach_encoder_image_tower(
    model: UnicornForConditionalGeneration, processor: UnicornProcessor, encoder, mean: str | torch.Tensor
) -> None:
    """Make a checkpoint work from its folder alone: the paired `encoder`'s image tower, converted
    (`unicorn_hf.encoders.image_tower.image_tower_from_encoder`), in the model and its image processor in the
    processor (save both afterwards). Raises `TowerNotCarriable` or `ValueError` as those two do."""
    tower, image_processor = image_tower_from_encoder(encoder)
    attach_tower(model, processor, tower, image_processor, mean, encoder.id)


def carry_image_tower(folder: str | Path, carried: CarriedTower) -> dict:
    """Reload the checkpoint in `folder`, attach the tower (in the checkpoint's dtype) and the image processor, and
    save both back into `folder`. Returns what the run's metadata records about it (no machine path)."""
    folder = str(folder)
    model = UnicornForConditionalGeneration.from_pretrained(folder, dtype="auto")
    processor = UnicornProcessor.from_pretrained(folder)
    attach_tower(model, processor, carried.tower, carried.image_processor, carried.mean, carried.encoder_id)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    logger.info("Saved %s with its image tower: pipeline('image-text-to-text', model=%r) takes images", folder, folder)
    return {
        "class": type(carried.tower).__name__,
        "image_processor": type(carried.image_processor).__name__,
        "encoder_id": carried.encoder_id,
        "mean": carried.mean,
    }


__all__ = ["CarriedTower", "attach_encoder_image_tower", "attach_tower", "carry_image_tower", "prepare_image_tower"]
