"""The modality transfer rule: how a caption's text embedding stands in for an image embedding in training (the text
side) and how a real image embedding is brought to the same place at inference (the image side).

This file is the one place the rule is written. The transfer stage calls the text side to write `image_embeds`
(`unicorn_hf.transfer.statistics.TransferStatistics`), and the model calls the image side (`UnicornModel
.transfer_images`, the carried image tower, `pipeline("image-text-to-text")`, evaluation). Its settings live in
`UnicornConfig.modality_transfer`, its tensors in the checkpoint's `modality_statistics.*` buffers, so a checkpoint
repeats at inference exactly what it was trained with. It imports only torch and the standard library: it ships as
remote code beside `modeling_unicorn.py`.

Inputs are the paired encoder's outputs, L2-normalised ([N, D]). n(.) is L2 normalisation, mu_T the mean of the
training captions' embeddings, mu_I the mean of unlabeled images' embeddings (never of a scored set), eps ~ N(0, I).

Text side (training) -> image side (inference), by method, with the code each follows:

- `none`: u -> x. Unicorn paper, Table 1 "no alignment".
- `mean_shift`: u - mu_T (then n(.) if `renormalize`) -> x - mu_I, the image mean stored, the evaluated set's own, or
  none. Unicorn paper, Sec. 3.3.
- `capdec`: n(u), then n(v + sigma eps) in every training step -> n(x). CapDec `train.py` `noise_injection` (L28-39)
  and `predictions_runner.py` L220-222.
- `c3`: n(n(u) - mu_T), then n(v + sigma eps) in every training step -> n(n(x) - mu_I). C3
  `image_captioning/src/datasets/dataset_coco.py` L194-208 (text) and L217-232 (image).
- `realign`: n(n(s (n(u) - mu_T) + mu_I) - mu_hat + mu_I) -> n(x). Yu-xm/Modality_Gap_Theory `embed_ReAlign.py`
  passes 1-4.
- `memory_projection`: n(u) -> n(softmax(n(x) M^T / tau) M). DeCap `inference_decap.ipynb`, cells 4-5.

- `mean_shift`: the paper's text re-normalises after the shift, its released code does not: `renormalize` chooses.
  `add_image_mean` trains on the "ideal" form u - mu_T + mu_I, so that images are used as they come.
- `capdec` / `c3`: the noise is drawn afresh in every training step (as in both sources; a regulariser like dropout),
  by the model in train mode, never at inference. The stored `image_embeds` are the noise-free text side. C3 adds its
  noise before the re-normalisation (n(n(u) - mu_T + sigma eps)); here it is added to the stored, already
  re-normalised vector, which equals C3's noise scaled by 1 / |n(u) - mu_T| per row (~1.1-1.5 for CLIP-like spaces).
  CapDec's README trains with variance 0.016 (sigma = 0.126); C3's default is the same.
- `realign`: s = sqrt(tr(Sigma_I) / tr(Sigma_T)) with tr(Sigma) = E|u - mu|^2 = 1 - |mu|^2 for unit vectors, and
  mu_hat the mean of n(s (n(u) - mu_T) + mu_I) over the training captions (embed_ReAlign.py passes 2-4). It needs
  only unpaired image statistics.
- `memory_projection` (DeCap, Li et al. 2023): M [K, D] is a memory of normalised text embeddings (training captions,
  subsampled) that travels in the checkpoint; tau = 0.01 in DeCap (`sim * 100`). Any other method can put the same
  projection in front of its image side (`project_images_onto_memory`): the projected image is then a convex
  combination of caption embeddings, so it goes through the method's *text* side (without noise).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

import torch
from torch import nn
from torch.nn import functional as F


TRANSFER_METHODS = ("none", "mean_shift", "capdec", "c3", "realign", "memory_projection")
NOISE_METHODS = ("capdec", "c3")  # train-time Gaussian noise on the text side
IMAGE_MEAN_METHODS = ("mean_shift", "c3")  # image sides that subtract an image mean
NEEDS_IMAGE_MEAN = ("c3", "realign")  # training side needs mu_I from unlabeled images
# Methods whose source fixes the re-normalisation; only `mean_shift` leaves it to `renormalize`.
FIXED_RENORMALIZE = {"none": False, "capdec": True, "c3": True, "realign": True, "memory_projection": True}
IMAGE_MEAN_CHOICES = ("image", "text", "none")  # named image means; a [D] tensor is allowed too (e.g. eval mean)


@dataclass(frozen=True)
class TransferSettings:
    """The settings of the rule (`UnicornConfig.modality_transfer`, `transfer_stats.json`), checked on creation.

    Raises:
        ValueError: naming the field and what was expected, for an unknown method, a missing noise scale, a memory
            option without a memory, or a setting that the method does not take.
    """

    method: str = "mean_shift"
    renormalize: bool | None = None  # mean_shift only; None = the method's fixed choice
    add_image_mean: bool = False  # mean_shift only: train on u - mu_T + mu_I
    noise_std: float | None = None  # capdec / c3: sigma of the train-time noise
    memory_size: int = 0  # rows of the text memory M carried in the checkpoint (0 = none)
    memory_temperature: float | None = None  # tau of the memory projection
    project_images_onto_memory: bool = False  # put the memory projection in front of the image side

    def __post_init__(self) -> None:
        method = self.method
        if method not in TRANSFER_METHODS:
            raise ValueError(f"modality transfer `method`={method!r} is unknown; expected one of {TRANSFER_METHODS}.")
        if method == "mean_shift":
            if self.renormalize is None:
                raise ValueError("modality transfer `renormalize` must be true or false for method 'mean_shift'.")
        elif self.renormalize is None:
            object.__setattr__(self, "renormalize", FIXED_RENORMALIZE[method])
        elif self.renormalize != FIXED_RENORMALIZE[method]:
            raise ValueError(
                f"modality transfer `renormalize`={self.renormalize} but method {method!r} fixes it to "
                f"{FIXED_RENORMALIZE[method]} (its source); leave it unset (null in a YAML) or pass "
                f"`--renormalize {str(FIXED_RENORMALIZE[method]).lower()}` on a recipe's command line."
            )
        if self.add_image_mean and method != "mean_shift":
            raise ValueError(f"modality transfer `add_image_mean` is a 'mean_shift' option, not one of {method!r}.")
        if method in NOISE_METHODS:
            if self.noise_std is None or not self.noise_std > 0:
                raise ValueError(
                    f"modality transfer method {method!r} needs `noise_std` > 0 (CapDec/C3: sqrt(0.016) = 0.126), "
                    f"got {self.noise_std!r}."
                )
        elif self.noise_std is not None:
            raise ValueError(
                f"modality transfer `noise_std`={self.noise_std} is set but method {method!r} adds no noise; the "
                f"noise methods are {NOISE_METHODS}."
            )
        if self.memory_size < 0:
            raise ValueError(f"modality transfer `memory_size` must be >= 0, got {self.memory_size}.")
        projects = method == "memory_projection" or self.project_images_onto_memory
        if projects and self.memory_size == 0:
            raise ValueError(
                f"modality transfer method {method!r} (project_images_onto_memory="
                f"{self.project_images_onto_memory}) projects images onto a text memory, but `memory_size` is 0: "
                "set the transfer stage's `memory_size` (and `memory_source`) so that a memory is stored."
            )
        if projects and (self.memory_temperature is None or not self.memory_temperature > 0):
            raise ValueError(
                f"modality transfer memory projection needs `memory_temperature` > 0 (DeCap: 0.01), got "
                f"{self.memory_temperature!r}."
            )

    @property
    def projects_images(self) -> bool:
        return self.method == "memory_projection" or self.project_images_onto_memory

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> TransferSettings:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(
                f"modality transfer settings hold unknown keys {unknown}; expected some of {sorted(known)}."
            )
        return cls(**data)


# --- the rule, as pure functions of tensors ----------------------------------------------------------------------


def _shift(u: torch.Tensor, mean: torch.Tensor, renormalize: bool) -> torch.Tensor:
    v = u.float() - mean.to(u.device, torch.float32)  # [..., D]
    return F.normalize(v, dim=-1) if renormalize else v


def _require(tensor: torch.Tensor | None, name: str, method: str) -> torch.Tensor:
    if tensor is None:
        raise ValueError(f"modality transfer method {method!r} needs `{name}`, which these statistics do not hold.")
    return tensor.to(torch.float32)


def realign_scale(text_mean: torch.Tensor, image_mean: torch.Tensor) -> float:
    """ReAlign's s = sqrt(tr(Sigma_I) / tr(Sigma_T)) for unit-norm embeddings, where tr(Sigma) = E|u - mu|^2 =
    1 - |mu|^2 (embed_ReAlign.py "Pass 2", with its 1e-10 guard). `text_mean`, `image_mean`: [D] means of unit
    vectors."""
    trace_text = 1.0 - float(text_mean.float().pow(2).sum())
    trace_image = 1.0 - float(image_mean.float().pow(2).sum())
    return math.sqrt(max(trace_image, 0.0) / (trace_text + 1e-10))


def realign_first_step(u: torch.Tensor, text_mean: torch.Tensor, image_mean: torch.Tensor, scale: float):
    """n(s (n(u) - mu_T) + mu_I): [N, D] -> [N, D]; its mean over the training captions is ReAlign's mu_hat."""
    moved = (F.normalize(u.float(), dim=-1) - text_mean.float()) * scale + image_mean.float()
    return F.normalize(moved, dim=-1)


def project_onto_memory(x: torch.Tensor, memory: torch.Tensor, temperature: float) -> torch.Tensor:
    """DeCap's projection: n(softmax(n(x) M^T / tau) M). x [N, D], memory M [K, D] (unit rows) -> [N, D]."""
    memory = memory.to(x.device, torch.float32)
    similarity = F.normalize(x.float(), dim=-1) @ memory.T  # [N, K]
    weights = torch.softmax(similarity / temperature, dim=-1)  # [N, K]
    return F.normalize(weights @ memory, dim=-1)  # [N, D]


def transfer_text(u: torch.Tensor, settings: TransferSettings, stats: dict[str, torch.Tensor | None]) -> torch.Tensor:
    """Text side, without the train-time noise: caption embeddings u [N, D] -> training `image_embeds` [N, D].

    `stats` holds `text_mean`, `image_mean` [D], `realign_mean` [D] and `realign_scale` [] (each or None).
    """
    method = settings.method
    if method == "none":
        return u.float()
    if method == "mean_shift":
        text_mean = _require(stats.get("text_mean"), "text_mean", method)
        if settings.add_image_mean:
            text_mean = text_mean - _require(stats.get("image_mean"), "image_mean", method)  # u - mu_T + mu_I
        return _shift(u, text_mean, settings.renormalize)
    if method in ("capdec", "memory_projection"):
        return F.normalize(u.float(), dim=-1)
    if method == "c3":
        return _shift(F.normalize(u.float(), dim=-1), _require(stats.get("text_mean"), "text_mean", method), True)
    # realign
    image_mean = _require(stats.get("image_mean"), "image_mean", method)
    scale = float(_require(stats.get("realign_scale"), "realign_scale", method))
    moved = realign_first_step(u, _require(stats.get("text_mean"), "text_mean", method), image_mean, scale)
    mean_hat = _require(stats.get("realign_mean"), "realign_mean", method).to(moved.device)
    return F.normalize(moved - mean_hat + image_mean.to(moved.device), dim=-1)


def add_training_noise(v: torch.Tensor, settings: TransferSettings) -> torch.Tensor:
    """n(v + sigma eps) for the noise methods (CapDec, C3), fresh in every call; other methods return v unchanged.
    v [N, D] or [N, k, D]; uses torch's global generator (seeded by the trainer)."""
    if settings.method not in NOISE_METHODS:
        return v
    noisy = v.float() + settings.noise_std * torch.randn_like(v, dtype=torch.float32)
    return F.normalize(noisy, dim=-1).to(v.dtype)


def transfer_image(
    x: torch.Tensor,
    settings: TransferSettings,
    stats: dict[str, torch.Tensor | None],
    image_mean: torch.Tensor | None = None,
) -> torch.Tensor:
    """Image side: the paired encoder's image embeddings x [N, D] -> [N, D] in the training space.

    `image_mean` [D] is what `mean_shift` / `c3` subtract (the stored mean, the evaluated set's own mean, or None for
    no shift: `mean_shift` then passes x through); other methods take none.

    Raises:
        ValueError: when `image_mean` is given to a method that subtracts none, or `c3` gets none.
    """
    method = settings.method
    if image_mean is not None and method not in IMAGE_MEAN_METHODS:
        raise ValueError(
            f"modality transfer method {method!r} subtracts no image mean at inference; only {IMAGE_MEAN_METHODS} do."
        )
    if settings.projects_images:
        memory = _require(stats.get("memory"), "memory", method)
        projected = project_onto_memory(x, memory, settings.memory_temperature)  # [N, D], in the text cone
        return transfer_text(projected, settings, stats)
    if method == "none":
        return x.float()
    if method == "mean_shift":
        if settings.add_image_mean or image_mean is None:
            return x.float()
        return _shift(x, image_mean, settings.renormalize)
    if method == "c3":
        if image_mean is None:
            raise ValueError("modality transfer method 'c3' subtracts an image mean at inference; none was given.")
        return _shift(F.normalize(x.float(), dim=-1), image_mean, True)
    return F.normalize(x.float(), dim=-1)  # capdec, realign: images as they come


# --- the rule as a module whose buffers travel in the checkpoint -------------------------------------------------


class UnicornModalityTransfer(nn.Module):
    """The rule's tensors as persistent buffers (checkpoint keys `modality_statistics.*`) and its two sides.

    Buffers: `text_mean`, `image_mean` [D] always; `realign_mean` [D] and `realign_scale` [] for `realign`; `memory`
    [memory_size, D] when a memory is carried. `settings` is `config.modality_transfer`, read on every call so that a
    changed config (e.g. switching memory projection on for an evaluation) takes effect.
    """

    def __init__(self, config) -> None:
        super().__init__()
        self.model_config = config  # the UnicornConfig (not `config`: transformers walks submodules' configs)
        settings = self.settings
        dim = config.embed_dim
        self.register_buffer("text_mean", torch.zeros(dim), persistent=True)  # [D]
        self.register_buffer("image_mean", torch.zeros(dim), persistent=True)  # [D]
        if settings.method == "realign":
            self.register_buffer("realign_mean", torch.zeros(dim), persistent=True)  # [D] mu_hat
            self.register_buffer("realign_scale", torch.ones(()), persistent=True)  # [] s
        if settings.memory_size:
            self.register_buffer("memory", torch.zeros(settings.memory_size, dim), persistent=True)  # [K, D]

    @property
    def settings(self) -> TransferSettings:
        return TransferSettings.from_dict(self.model_config.modality_transfer)

    def tensors(self) -> dict[str, torch.Tensor | None]:
        names = ("text_mean", "image_mean", "realign_mean", "realign_scale", "memory")
        tensors = {name: getattr(self, name, None) for name in names}
        if not self.model_config.has_image_mean:
            tensors["image_mean"] = None
        return tensors

    def resolve_image_mean(self, image_mean: str | torch.Tensor | None) -> torch.Tensor | None:
        """Named image mean -> [D] or None: "image" (stored), "text" (the caption mean: leaves the gap),
        "none"/None, or a [D] tensor as it is."""
        if image_mean is None or isinstance(image_mean, torch.Tensor):
            return image_mean
        if image_mean not in IMAGE_MEAN_CHOICES:
            raise ValueError(f"image_mean must be one of {IMAGE_MEAN_CHOICES} or a [D] tensor, got {image_mean!r}.")
        if image_mean == "none":
            return None
        if image_mean == "image" and not self.model_config.has_image_mean:
            raise ValueError("This checkpoint stores no image_mean; use image_mean='text', 'none' or a [D] tensor.")
        return getattr(self, f"{image_mean}_mean")

    def transfer_texts(self, u: torch.Tensor) -> torch.Tensor:
        """Text side (no noise): caption embeddings [N, D] -> [N, D], as the transfer stage stored them."""
        return transfer_text(u, self.settings, self.tensors())

    def transfer_images(self, x: torch.Tensor, image_mean: str | torch.Tensor | None = None) -> torch.Tensor:
        """Image side: [N, D] image embeddings -> [N, D] in the training space (see `transfer_image`)."""
        return transfer_image(x, self.settings, self.tensors(), image_mean=self.resolve_image_mean(image_mean))

    def add_training_noise(self, v: torch.Tensor) -> torch.Tensor:
        return add_training_noise(v, self.settings)


__all__ = [
    "IMAGE_MEAN_CHOICES",
    "IMAGE_MEAN_METHODS",
    "NOISE_METHODS",
    "TRANSFER_METHODS",
    "TransferSettings",
    "UnicornModalityTransfer",
    "add_training_noise",
    "project_onto_memory",
    "realign_first_step",
    "realign_scale",
    "transfer_image",
    "transfer_text",
]
