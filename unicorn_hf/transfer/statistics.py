"""Modality transfer statistics: the settings and tensors of the rule that moves caption embeddings to where image
embeddings will be, for one encoder.

Unicorn trains on caption embeddings in place of image embeddings. A CLIP-style space has a *modality gap*: text and
image embeddings sit in two narrow cones around different centres. The rule that bridges it (the paper's mean shift
v = u - mu_T, or CapDec, C3, ReAlign, DeCap's memory projection) is written once, in
`unicorn_hf.modeling.modality_transfer` (table, formulas and sources there); this module holds what the transfer stage
measured for it and applies its text side (`embed_text`) and image side (`embed_image`) through those same functions.
The training stages copy everything here into the model (`UnicornForConditionalGeneration.set_modality_transfer`),
so inference repeats training exactly.

Saved beside the data as `transfer_stats.safetensors` (tensors) + `transfer_stats.json` (everything else). This module
is the one contract of those files: the transfer stage writes them, the training stages read them
(`TransferStatistics.load`), and a Hub dataset is fetched by `STATS_FILES`.

- `transfer_stats.safetensors`: `text_mean` [D] float32; optional `image_mean` [D], `realign_mean` [D] (ReAlign's
  mu_hat), `memory` [K, D] (unit-norm caption embeddings for memory projection);
- `transfer_stats.json`: `encoder_id` (str), `encoder` (the structured `EncoderSpec` dict), `dim` (int, = D),
  `modality_transfer` (the `TransferSettings` dict), `num_rows`, `normalized_input`, optional `num_images`,
  `realign_scale`, `memory_source`. Files written before `modality_transfer` existed (`center`,
  `renormalize_after_shift`, `add_image_mean`) are read as the mean shift they describe.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from unicorn_hf.modeling.modality_transfer import (
    IMAGE_MEAN_METHODS,
    NEEDS_IMAGE_MEAN,
    TransferSettings,
    transfer_image,
    transfer_text,
)


STATS_TENSORS = "transfer_stats.safetensors"
STATS_JSON = "transfer_stats.json"
STATS_FILES = (STATS_JSON, STATS_TENSORS)
_TENSOR_FIELDS = ("text_mean", "image_mean", "realign_mean", "memory")
_REQUIRED_JSON = ("encoder_id", "dim")
_NOT_SAVED = ("source",)


@dataclass
class TransferStatistics:
    """Settings and tensors of the modality transfer, for one encoder.

    `text_mean` / `image_mean` are means of the encoder outputs (L2-normalised when `normalized_input`), kept in
    float32; `memory` [K, D] is a subsample of the training captions' (or another named text set's) unit-norm
    embeddings.

    Raises:
        ValueError: a tensor of the wrong shape or with non-finite values (named), or settings whose method needs a
            tensor that is missing (`c3`/`realign` without `image_mean`, a memory of another size than
            `memory_size`, `realign` without its mu_hat and scale).
    """

    encoder_id: str
    dim: int
    text_mean: torch.Tensor  # [D] float32
    num_rows: int | None  # captions that entered `text_mean`
    normalized_input: bool  # encoder outputs were L2-normalised before the mean was taken
    settings: TransferSettings
    image_mean: torch.Tensor | None = None  # [D] float32, from unlabeled images
    num_images: int | None = None  # images that entered `image_mean`
    realign_mean: torch.Tensor | None = None  # [D] ReAlign's mu_hat
    realign_scale: float | None = None  # ReAlign's s
    memory: torch.Tensor | None = None  # [K, D] unit-norm text embeddings
    memory_source: str | None = None  # which texts the memory holds (e.g. "captions")
    encoder: dict | None = None  # `EncoderSpec.to_dict()`: the encoder, structured and without machine paths
    source: str | None = None  # where these were read from, as the caller named it (not saved)

    def __post_init__(self) -> None:
        self.text_mean = self._check_tensor("text_mean", self.text_mean, (self.dim,))
        if self.image_mean is not None:
            self.image_mean = self._check_tensor("image_mean", self.image_mean, (self.dim,))
        if self.realign_mean is not None:
            self.realign_mean = self._check_tensor("realign_mean", self.realign_mean, (self.dim,))
        method = self.settings.method
        if self.memory is not None:
            self.memory = self._check_tensor("memory", self.memory, (self.settings.memory_size, self.dim))
        elif self.settings.memory_size:
            raise ValueError(f"memory_size={self.settings.memory_size} but no memory of {self.encoder_id!r} is given")
        needs_image_mean = method in NEEDS_IMAGE_MEAN or self.settings.add_image_mean
        if needs_image_mean and self.image_mean is None:
            raise ValueError(
                f"modality transfer method {method!r} (add_image_mean={self.settings.add_image_mean}) needs an "
                "image_mean: set the transfer stage's `image_mean_source` to unlabeled images."
            )
        if method == "realign" and (self.realign_mean is None or self.realign_scale is None):
            raise ValueError("modality transfer method 'realign' needs realign_mean and realign_scale")

    def _check_tensor(self, name: str, value: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
        value = torch.as_tensor(value, dtype=torch.float32)
        if tuple(value.shape) != shape:
            raise ValueError(f"{name} has shape {tuple(value.shape)}, expected {shape} for {self.encoder_id!r}")
        if not torch.isfinite(value).all():
            raise ValueError(f"{name} of {self.encoder_id!r} holds non-finite values")
        return value.contiguous()

    @property
    def method(self) -> str:
        return self.settings.method

    def tensors(self) -> dict[str, torch.Tensor | None]:
        """The tensors of the rule, as `unicorn_hf.modeling.modality_transfer` takes them."""
        scale = None if self.realign_scale is None else torch.tensor(self.realign_scale)
        return {"text_mean": self.text_mean, "image_mean": self.image_mean, "realign_mean": self.realign_mean,
                "realign_scale": scale, "memory": self.memory}  # fmt: skip

    # --- the transfer rule (written in unicorn_hf.modeling.modality_transfer) --------------------------------------

    def embed_text(self, u: torch.Tensor) -> torch.Tensor:
        """Text side (training data, without the noise that the model adds in train mode): u [N, D] -> [N, D]."""
        return transfer_text(u, self.settings, self.tensors())

    def embed_image(self, u: torch.Tensor, image_mean: torch.Tensor | None = None) -> torch.Tensor:
        """Image side: u [N, D] -> [N, D]. `image_mean` overrides the stored one for the methods that subtract one
        (e.g. the mean of an evaluation set's images, as in the paper's code).

        Raises:
            ValueError: `mean_shift` / `c3` with neither a stored nor a given image mean.
        """
        settings = self.settings
        subtracts = settings.method in IMAGE_MEAN_METHODS and not settings.add_image_mean
        if subtracts and not settings.projects_images:
            image_mean = self.image_mean if image_mean is None else image_mean
            if image_mean is None:
                raise ValueError(
                    f"statistics of {self.encoder_id!r} have no image_mean: estimate one from unlabeled images "
                    "(transfer `image_mean_source`) or pass `image_mean` explicitly"
                )
        return transfer_image(u, settings, self.tensors(), image_mean=image_mean)

    def with_settings(self, settings: TransferSettings) -> TransferStatistics:
        """The same tensors under other settings (e.g. memory projection switched on), for diagnostics."""
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        return TransferStatistics(**{**values, "settings": settings})

    # --- persistence -------------------------------------------------------------------------------------------

    def to_json_dict(self) -> dict:
        skip = (*_TENSOR_FIELDS, *_NOT_SAVED, "settings")
        data = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in skip}
        data["modality_transfer"] = self.settings.to_dict()
        data["text_mean_norm"] = float(self.text_mean.norm())
        if self.image_mean is not None:
            data["image_mean_norm"] = float(self.image_mean.norm())
        return data

    def save(self, folder: str | Path) -> tuple[Path, Path]:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        tensors = {name: getattr(self, name) for name in _TENSOR_FIELDS if getattr(self, name) is not None}
        metadata = {"encoder_id": self.encoder_id, "dim": str(self.dim)}
        save_file(tensors, str(folder / STATS_TENSORS), metadata=metadata)
        (folder / STATS_JSON).write_text(json.dumps(self.to_json_dict(), indent=2) + "\n")
        return folder / STATS_TENSORS, folder / STATS_JSON

    @classmethod
    def load(cls, folder: str | Path, source: str | None = None) -> TransferStatistics:
        """Read the two files; `source` is how the caller names them (a dataset id, a folder as given), recorded in
        training metadata instead of `folder`, which may be a cache path of this machine."""
        folder = Path(folder)
        for name in STATS_FILES:
            if not (folder / name).is_file():
                raise FileNotFoundError(
                    f"{folder / name} is missing: not a transfer statistics folder. The training stages read the "
                    "statistics that stage 3 (transfer) writes beside the data; point `statistics_path` (or "
                    "`dataset_name`) at the transfer output."
                )
        data = json.loads((folder / STATS_JSON).read_text())
        for key in _REQUIRED_JSON:
            if key not in data:
                raise ValueError(f"{folder / STATS_JSON} has no {key!r} field (keys: {sorted(data)}).")
        tensors = load_file(str(folder / STATS_TENSORS))
        if "text_mean" not in tensors:
            raise ValueError(f"{folder / STATS_TENSORS} has no 'text_mean' tensor (keys: {sorted(tensors)}).")
        settings = cls._settings_from_json(data, folder / STATS_JSON)
        known = {f.name for f in fields(cls)} - set(_TENSOR_FIELDS) - set(_NOT_SAVED) - {"settings"}
        data = {"num_rows": None, "normalized_input": True, **{k: v for k, v in data.items() if k in known}}
        tensors = {name: tensors[name].float() for name in _TENSOR_FIELDS if name in tensors}
        return cls(**data, **tensors, settings=settings, source=source if source is not None else str(folder))

    @staticmethod
    def _settings_from_json(data: dict, where: Path) -> TransferSettings:
        """`modality_transfer`, or the mean-shift flags of files written before it existed."""
        if "modality_transfer" in data:
            return TransferSettings.from_dict(data["modality_transfer"])
        if "renormalize_after_shift" not in data:
            raise ValueError(
                f"{where} has neither 'modality_transfer' nor 'renormalize_after_shift' (keys: {sorted(data)})."
            )
        if data.get("noise_std") is not None:
            raise ValueError(
                f"{where} was written with the stored-noise ablation of an older version, which the model cannot "
                "repeat; re-run the transfer stage (--overwrite) with method: capdec or c3."
            )
        if not data.get("center", True):
            return TransferSettings(method="none")
        return TransferSettings(
            method="mean_shift",
            renormalize=bool(data["renormalize_after_shift"]),
            add_image_mean=bool(data.get("add_image_mean", False)),
        )

    @staticmethod
    def exists(folder: str | Path) -> bool:
        return (Path(folder) / STATS_JSON).is_file()

    def check_compatible(self, encoder_id: str, dim: int, where: str | Path) -> None:
        """Refuse to mix embeddings of two encoders (or widths) in one dataset."""
        if self.dim != dim:
            raise ValueError(
                f"{Path(where) / STATS_JSON}: statistics are {self.dim}-d but encoder {encoder_id!r} gives {dim}-d "
                "embeddings; use a fresh output_dir or --overwrite"
            )
        if self.encoder_id != encoder_id:
            raise ValueError(
                f"{Path(where) / STATS_JSON}: embeddings of encoder {self.encoder_id!r} are already there, refusing "
                f"to mix in {encoder_id!r}; use a fresh output_dir or --overwrite"
            )

    def check_matches(self, embed_dim: int | None, encoder_id: str | None, what: str) -> None:
        """Raise if `what` (a YAML, a model config) names another encoder or width than these statistics."""
        if embed_dim is not None and embed_dim != self.dim:
            raise ValueError(
                f"{what} says embed_dim={embed_dim} but the dataset's embeddings ({self.source}) are {self.dim} wide "
                f"(encoder {self.encoder_id!r}); the model must be trained on the encoder it was built for."
            )
        if encoder_id is not None and encoder_id != self.encoder_id:
            raise ValueError(
                f"{what} names encoder {encoder_id!r} but the dataset ({self.source}) was embedded with "
                f"{self.encoder_id!r}."
            )

    def to_dict(self) -> dict:
        """The summary a training stage records (`unicorn_training.json`)."""
        return {
            "encoder_id": self.encoder_id,
            "encoder": self.encoder,
            "dim": self.dim,
            "modality_transfer": self.settings.to_dict(),
            "has_image_mean": self.image_mean is not None,
            "num_rows": self.num_rows,
            "num_images": self.num_images,
            "memory_source": self.memory_source,
            "source": self.source,
        }

    def model_kwargs(self) -> dict:
        """What `UnicornForConditionalGeneration.set_modality_transfer` takes, so a model repeats this rule."""
        return {
            "text_mean": self.text_mean,
            "image_mean": self.image_mean,
            "settings": self.settings,
            "realign_mean": self.realign_mean,
            "realign_scale": self.realign_scale,
            "memory": self.memory,
            "encoder_id": self.encoder_id,
            "encoder": self.encoder,
        }
