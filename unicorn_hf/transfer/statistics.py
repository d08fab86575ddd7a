"""Modality transfer statistics: the means that move caption embeddings to where image embeddings will be.

Unicorn trains on caption embeddings in place of image embeddings. A CLIP-style space has a *modality gap*: text and
image embeddings sit in two narrow cones around different centres. Subtracting the mean of each modality removes
most of that gap, so the rule used in training and at inference is

    training  (caption u_T):  v = u_T - mu_T            (paper; `shift(u, text_mean)`)
    inference (image   u_V):  v = u_V - mu_V            (`shift(u, image_mean)`)

optionally re-normalised to unit length after the shift (the paper's text re-normalises, its released code does not).
The ideal form maps captions straight into the image cone, v = u_T - mu_T + mu_V = `shift(u, text_mean - image_mean)`;
images are then used as they come. `embed_text` / `embed_image` implement the convention recorded in these
statistics, so the trained model (which copies `text_mean` / `image_mean` into buffers) repeats training exactly.

Saved beside the data as `transfer_stats.safetensors` (tensors) + `transfer_stats.json` (everything else). This module
is the one contract of those files: the transfer stage writes them, the training stages read them (through
`unicorn_hf.training.data.load_modality_statistics`, which is `TransferStatistics.load`), and a Hub dataset is
fetched by `STATS_FILES`.

- `transfer_stats.safetensors`: `text_mean` [D] float32, optional `image_mean` [D];
- `transfer_stats.json`: `encoder_id` (str), `encoder` (the structured `EncoderSpec` dict; absent in files written
  before it existed), `dim` (int, = D), `renormalize_after_shift` (bool), `num_rows`, `normalized_input`, `center`
  (default true), `add_image_mean` (default false), optional `num_images`, `noise_std`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file


STATS_TENSORS = "transfer_stats.safetensors"
STATS_JSON = "transfer_stats.json"
STATS_FILES = (STATS_JSON, STATS_TENSORS)
_TENSOR_FIELDS = ("text_mean", "image_mean")
_REQUIRED_JSON = ("encoder_id", "dim", "renormalize_after_shift")
_NOT_SAVED = ("source",)


@dataclass
class TransferStatistics:
    """Means and flags that define the modality transfer, for one encoder.

    `text_mean` / `image_mean` are means of the encoder outputs (L2-normalised when `normalized_input`), kept in
    float32. `center=False` with `noise_std` set is the Gaussian-noise baseline (no mean shift; CapDec/C3-style):
    the noise is added once to the stored training embeddings and never at inference.
    """

    encoder_id: str
    dim: int
    text_mean: torch.Tensor  # [D] float32
    num_rows: int | None  # captions that entered `text_mean`
    normalized_input: bool  # encoder outputs were L2-normalised before the mean was taken
    renormalize_after_shift: bool
    center: bool = True  # subtract the modality means at all (False: noise-only baseline)
    image_mean: torch.Tensor | None = None  # [D] float32, from unlabeled images
    add_image_mean: bool = False  # training uses the ideal form u - mu_T + mu_V; images are then used unshifted
    num_images: int | None = None  # images that entered `image_mean`
    noise_std: float | None = None  # Gaussian-noise ablation added to the stored training embeddings
    encoder: dict | None = None  # `EncoderSpec.to_dict()`: the encoder, structured and without machine paths
    source: str | None = None  # where these were read from, as the caller named it (not saved)

    def __post_init__(self) -> None:
        self.text_mean = self._check_vector("text_mean", self.text_mean)
        if self.image_mean is not None:
            self.image_mean = self._check_vector("image_mean", self.image_mean)
        if self.add_image_mean and self.image_mean is None:
            raise ValueError("add_image_mean=True needs an image_mean (estimate it from unlabeled images)")

    def _check_vector(self, name: str, value: torch.Tensor) -> torch.Tensor:
        value = torch.as_tensor(value, dtype=torch.float32)
        if value.shape != (self.dim,):
            raise ValueError(f"{name} has shape {tuple(value.shape)}, expected ({self.dim},) for {self.encoder_id!r}")
        if not torch.isfinite(value).all():
            raise ValueError(f"{name} of {self.encoder_id!r} holds non-finite values")
        return value.contiguous()

    # --- the transfer rule -------------------------------------------------------------------------------------

    def shift(self, u: torch.Tensor, mean: torch.Tensor | None = None) -> torch.Tensor:
        """v = u - mean (default `text_mean`), then L2-normalised if `renormalize_after_shift`. Pure: [..., D]."""
        mean = self.text_mean if mean is None else mean
        if u.shape[-1] != self.dim or mean.shape[-1] != self.dim:
            raise ValueError(f"width mismatch: u {tuple(u.shape)}, mean {tuple(mean.shape)}, statistics {self.dim}-d")
        v = u.float() - mean.to(u.device, torch.float32)  # [..., D]
        if self.renormalize_after_shift:
            v = torch.nn.functional.normalize(v, dim=-1)
        return v

    def embed_text(self, u: torch.Tensor) -> torch.Tensor:
        """Training embedding of caption embeddings u [N, D] (without the noise ablation, which is stored data)."""
        if not self.center:
            return u.float()
        if self.add_image_mean:
            return self.shift(u, self.text_mean - self.image_mean)  # u - mu_T + mu_V
        return self.shift(u, self.text_mean)

    def embed_image(self, u: torch.Tensor, image_mean: torch.Tensor | None = None) -> torch.Tensor:
        """Inference embedding of image embeddings u [N, D]; `image_mean` overrides the stored one (e.g. the mean of
        an evaluation set's images, as in the paper's code)."""
        if not self.center or self.add_image_mean:
            return u.float()
        image_mean = self.image_mean if image_mean is None else image_mean
        if image_mean is None:
            raise ValueError(
                f"statistics of {self.encoder_id!r} have no image_mean: estimate one from unlabeled images "
                "(transfer `image_mean_source`) or pass `image_mean` explicitly"
            )
        return self.shift(u, image_mean)

    # --- persistence -------------------------------------------------------------------------------------------

    def to_json_dict(self) -> dict:
        skip = (*_TENSOR_FIELDS, *_NOT_SAVED)
        data = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in skip}
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
        known = {f.name for f in fields(cls)} - set(_TENSOR_FIELDS) - set(_NOT_SAVED)
        data = {"num_rows": None, "normalized_input": True, **{k: v for k, v in data.items() if k in known}}
        tensors = {name: tensors[name].float() for name in _TENSOR_FIELDS if name in tensors}
        return cls(**data, **tensors, source=source if source is not None else str(folder))

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
            "renormalize_after_shift": self.renormalize_after_shift,
            "has_image_mean": self.image_mean is not None,
            "num_rows": self.num_rows,
            "center": self.center,
            "add_image_mean": self.add_image_mean,
            "source": self.source,
        }
