"""Unicorn in vLLM: a trained checkpoint served by `vllm serve` / `vllm.LLM`, token-equal to transformers.

Built as vLLM's own LLaVA (`vllm/model_executor/models/llava.py`): a multimodal processor that expands the one
`<image>` token of a prompt into `num_image_tokens` placeholders, and a model that implements vLLM's
`SupportsMultiModal` (`embed_multimodal` gives the features that vLLM's `embed_input_ids` scatters into the
placeholders) around vLLM's own registered text model (Llama for SmolLM2 / Llama-3) as `language_model`.

What differs from LLaVA, and why:

- The image side (projector, modality statistics, carried image tower) is the transformers `UnicornModel` itself,
  built without its text backbone (`build_image_side`): the rule that maps a pixel image into the training space and
  the projection into the LLM's hidden size stay in one place, `unicorn_hf/modeling/modeling_unicorn.py`, so vLLM
  repeats exactly what training and `pipeline("image-text-to-text")` do. It is small (a [D] -> [H] MLP and a frozen
  encoder tower), so it is replicated rather than sharded under tensor parallelism.
- `image_embeds` sent by a client are the paired encoder's embedding ALREADY mapped into the training space (the
  client applies the encoder and the checkpoint's transfer rule, as `UnicornImageQA` does): [1, embed_dim] per image
  (or [num_image_tokens, embed_dim]), not LLaVA's post-projector features; the parser checks width `embed_dim`.
- Pixels (an `image_url`) go through the checkpoint's own `UnicornProcessor` (its image processor) and then
  `UnicornModel.embed_pixels` (tower + transfer rule), at exactly one call site: `UnicornForConditionalGeneration
  .embed_pixels`. A checkpoint without a tower refuses pixels in the processor, with a message naming the cause.
- Every request is validated before it reaches the engine (an error raised inside the engine would take the
  server down): one image at most (`get_supported_mm_limits`), embeddings of the right width and finite.
- `<image>` is never generated (`compute_logits` masks it), as the transformers model's `suppress_tokens` does.

vLLM's Transformers backend was not used: it feeds the HF processor's `pixel_values` only, while a Unicorn
checkpoint must also take pre-projector `image_embeds` of width `embed_dim` (its main input, the one every checkpoint
accepts), and it would run the Llama backbone through transformers' modules instead of vLLM's.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence

import torch
from accelerate import init_empty_weights
from torch import nn
from transformers import BatchFeature
from vllm.config import VllmConfig
from vllm.config.multimodal import MultiModalDummyOptions
from vllm.inputs import MultiModalDataDict
from vllm.model_executor.models.interfaces import MultiModalEmbeddings, SupportsMultiModal, SupportsPP
from vllm.model_executor.models.utils import init_vllm_registered_model, maybe_prefix
from vllm.multimodal import MULTIMODAL_REGISTRY
from vllm.multimodal.inputs import MultiModalFieldConfig, MultiModalKwargsItems
from vllm.multimodal.parse import MultiModalDataItems, MultiModalDataParser
from vllm.multimodal.processing import (
    BaseDummyInputsBuilder,
    BaseMultiModalProcessor,
    BaseProcessingInfo,
    PromptReplacement,
    PromptUpdate,
)
from vllm.sequence import IntermediateTensors

from unicorn_hf.modeling.configuration_unicorn import UnicornConfig
from unicorn_hf.modeling.modeling_unicorn import UnicornModel


logger = logging.getLogger(__name__)

IMAGE_TOKEN = "<image>"  # UnicornProcessor's placeholder; the chat template renders an image part as this
LANGUAGE_MODEL_PREFIX = "language_model."  # on disk: language_model.model.* (backbone), language_model.lm_head.*
IN_MEMORY_PREFIX = "model."  # transformers' UnicornForConditionalGeneration.model: the UnicornModel
DEFAULT_IMAGE_SIZE = 224


# ---- the image side: transformers' UnicornModel without its text backbone ----------------------------------------
def build_image_side(config: UnicornConfig) -> UnicornModel:
    """The transformers `UnicornModel` with every part except the text backbone (which vLLM runs).

    Built with its parameters on the meta device (the backbone is never allocated), then the backbone is dropped and
    the remaining parameters are allocated empty on the current default device and dtype (vLLM sets both), to be
    filled by `UnicornForConditionalGeneration.load_weights`. Buffers are built for real, so that the non-persistent
    ones a checkpoint does not hold (e.g. CLIP's `position_ids`) keep their computed values.

    Returns:
        `UnicornModel` holding `projector` ([..., embed_dim] -> [..., hidden_size]), `modality_statistics` and,
        where the checkpoint carries one, `vision_tower`; no `language_model`. Its state-dict names are the
        checkpoint's own (`projector.*`, `modality_statistics.*`, `vision_tower.*`).
    """
    with init_empty_weights(include_buffers=False):
        image_side = UnicornModel(config)
    del image_side.language_model
    for module in image_side.modules():
        for name, parameter in list(module._parameters.items()):
            if parameter is not None and parameter.is_meta:
                module._parameters[name] = nn.Parameter(
                    torch.empty(parameter.shape, dtype=parameter.dtype), requires_grad=False
                )
    return image_side.requires_grad_(False).eval()


# ---- processing: prompts, images and embeddings -> model inputs --------------------------------------------------
class UnicornProcessingInfo(BaseProcessingInfo):
    """What vLLM needs to know about the checkpoint's inputs: one image per prompt, `num_image_tokens` positions."""

    def get_hf_config(self) -> UnicornConfig:
        return self.ctx.get_hf_config()

    def get_image_processor(self):
        """The carried tower's image processor (from the checkpoint's `preprocessor_config.json`), or None."""
        return getattr(self.get_hf_processor(), "image_processor", None)

    def get_supported_mm_limits(self) -> Mapping[str, int | None]:
        return {"image": 1}  # the model was trained with exactly one <image> per dialogue

    def get_supported_mm_processor_kwargs(self) -> dict[str, set[str]]:
        return {"text_kwargs": set(), "images_kwargs": set()}  # nothing to tune per request

    def get_mm_max_tokens_per_item(self, seq_len: int, mm_counts: Mapping[str, int]) -> Mapping[str, int]:
        return {"image": self.get_hf_config().num_image_tokens}

    def get_data_parser(self) -> MultiModalDataParser:
        # vLLM's default checks embeddings against the LLM's hidden size (LLaVA's post-projector features);
        # Unicorn's `image_embeds` are pre-projector vectors of the paired encoder's width.
        return MultiModalDataParser(
            expected_hidden_size=self.get_hf_config().embed_dim,
            allow_missing_mm_embeddings=self.allow_missing_mm_embeddings,
        )

    def get_image_size(self) -> tuple[int, int]:
        """(width, height) the image processor resizes to, for vLLM's profiling run."""
        image_processor = self.get_image_processor()
        data_config = getattr(image_processor, "data_config", None) or {}
        if "input_size" in data_config:  # timm: (C, H, W)
            _, height, width = data_config["input_size"]
            return int(width), int(height)
        for attribute in ("crop_size", "size"):
            size = getattr(image_processor, attribute, None)
            if isinstance(size, Mapping) and "height" in size and "width" in size:
                return int(size["width"]), int(size["height"])
            if isinstance(size, Mapping) and "shortest_edge" in size:
                return int(size["shortest_edge"]), int(size["shortest_edge"])
        return DEFAULT_IMAGE_SIZE, DEFAULT_IMAGE_SIZE


class UnicornDummyInputsBuilder(BaseDummyInputsBuilder[UnicornProcessingInfo]):
    """Profiling inputs: a blank image where the checkpoint carries a tower, else a zero embedding."""

    def get_dummy_text(self, mm_counts: Mapping[str, int]) -> str:
        return IMAGE_TOKEN * mm_counts.get("image", 0)

    def get_dummy_mm_data(
        self, seq_len: int, mm_counts: Mapping[str, int], mm_options: MultiModalDummyOptions | None = None
    ) -> MultiModalDataDict:
        num_images = mm_counts.get("image", 0)
        if num_images == 0:
            return {}
        if self.info.get_image_processor() is None:
            return {"image": torch.zeros(num_images, 1, self.info.get_hf_config().embed_dim)}  # [N, 1, D]
        width, height = self.info.get_image_size()
        overrides = mm_options.get("image") if mm_options else None
        return {
            "image": self._get_dummy_images(width=width, height=height, num_images=num_images, overrides=overrides)
        }


class UnicornMultiModalProcessor(BaseMultiModalProcessor[UnicornProcessingInfo]):
    """Images -> `pixel_values` through the checkpoint's own `UnicornProcessor`; `image_embeds` pass through after
    checks; the prompt's `<image>` token becomes `num_image_tokens` placeholders (what `UnicornProcessor` does)."""

    def _call_hf_processor(self, hf_data: Mapping[str, object], hf_kwargs: Mapping[str, object]) -> BatchFeature:
        images = list(hf_data.get("images") or [])
        processor = self.info.get_hf_processor()
        if getattr(processor, "image_processor", None) is None:
            raise ValueError(
                f"This Unicorn checkpoint ({self.info.model_id}) carries no image tower, so it cannot take images "
                "(image_url): send `image_embeds` instead, the paired encoder's embedding mapped into the training "
                f"space with the checkpoint's transfer rule ([1, {self.info.get_hf_config().embed_dim}] per image; "
                "see unicorn_hf.evaluation.inference.UnicornImageQA), and start the server with --enable-mm-embeds."
            )
        # The same call as `pipeline("image-text-to-text")` makes: one `<image>` prompt per image.
        outputs = processor(text=[IMAGE_TOKEN] * len(images), images=images, return_tensors="pt")
        return BatchFeature({"pixel_values": outputs["pixel_values"]})  # [N, 3, H, W]

    def _postprocess_hf_mm_data(
        self,
        mm_inputs: Mapping[str, object],
        hf_processor_mm_kwargs: Mapping[str, object],
        processed_data: BatchFeature,
    ) -> BatchFeature:
        if "image_embeds" in processed_data:
            check_image_embeds(processed_data["image_embeds"], self.info.get_hf_config())
        return processed_data

    def _get_mm_fields_config(
        self, hf_inputs: BatchFeature, hf_processor_mm_kwargs: Mapping[str, object]
    ) -> Mapping[str, MultiModalFieldConfig]:
        return {
            "pixel_values": MultiModalFieldConfig.batched("image"),
            "image_embeds": MultiModalFieldConfig.batched("image"),
        }

    def _get_prompt_updates(
        self,
        mm_items: MultiModalDataItems,
        hf_processor_mm_kwargs: Mapping[str, object],
        out_mm_kwargs: MultiModalKwargsItems,
    ) -> Sequence[PromptUpdate]:
        config = self.info.get_hf_config()
        return [
            PromptReplacement(
                modality="image",
                target=[config.image_token_id],
                replacement=[config.image_token_id] * config.num_image_tokens,
            )
        ]


def check_image_embeds(image_embeds: torch.Tensor | Sequence[torch.Tensor], config: UnicornConfig) -> None:
    """Refuse, before the engine sees them, embeddings the model would reject: each item [k, embed_dim] with k = 1
    or `num_image_tokens`, finite. (vLLM's parser has already checked the width against `embed_dim`.)"""
    for index, item in enumerate(image_embeds):  # [N, k, D] or a list of [k, D]
        if item.dim() != 2 or item.shape[-1] != config.embed_dim or item.shape[0] not in (1, config.num_image_tokens):
            raise ValueError(
                f"image_embeds[{index}] has shape {tuple(item.shape)}; this checkpoint takes [1, {config.embed_dim}] "
                f"(or [{config.num_image_tokens}, {config.embed_dim}]) per image: the paired encoder "
                f"{config.encoder_id!r}'s embedding after the checkpoint's transfer rule."
            )
        if not bool(torch.isfinite(item).all()):
            raise ValueError(f"image_embeds[{index}] contains NaN or inf.")


# ---- the model ----------------------------------------------------------------------------------------------------
@MULTIMODAL_REGISTRY.register_processor(
    UnicornMultiModalProcessor, info=UnicornProcessingInfo, dummy_inputs=UnicornDummyInputsBuilder
)
class UnicornForConditionalGeneration(nn.Module, SupportsMultiModal, SupportsPP):
    """vLLM model for `architectures: ["UnicornForConditionalGeneration"]`.

    `unicorn`: the transformers `UnicornModel` without backbone (`build_image_side`); `language_model`: vLLM's
    registered causal LM for `config.text_config` (e.g. `LlamaForCausalLM`), whose weight names are those of the
    checkpoint's `language_model.*`.
    """

    @classmethod
    def get_placeholder_str(cls, modality: str, i: int) -> str | None:
        if modality.startswith("image"):
            return IMAGE_TOKEN
        raise ValueError(f"Unicorn takes images only, not {modality!r}.")

    def __init__(self, *, vllm_config: VllmConfig, prefix: str = "") -> None:
        super().__init__()
        config: UnicornConfig = vllm_config.model_config.hf_config
        self.config = config
        self.configure_mm_token_handling(
            vocab_size=config.text_config.vocab_size, mm_token_ids=[config.image_token_id]
        )
        if not getattr(config.text_config, "architectures", None):
            raise ValueError(
                "config.text_config.architectures is empty: vLLM needs it to pick the text model (e.g. "
                '["LlamaForCausalLM"]); add it to the checkpoint\'s config.json.'
            )
        with self._mark_tower_model(vllm_config, "image"):
            self.unicorn = build_image_side(config)
        with self._mark_language_model(vllm_config):
            self.language_model = init_vllm_registered_model(
                vllm_config=vllm_config, hf_config=config.text_config, prefix=maybe_prefix(prefix, "language_model")
            )
        self.make_empty_intermediate_tensors = self.language_model.make_empty_intermediate_tensors

    # ---- image inputs -------------------------------------------------------------------------------------------
    def embed_pixels(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """[N, 3, H, W] -> [N, embed_dim] in the training space: the checkpoint's tower and transfer rule, as
        transformers applies them (`UnicornModel.embed_pixels`). The one place the vLLM path maps pixels."""
        return self.unicorn.embed_pixels(pixel_values)

    def embed_multimodal(self, **kwargs: object) -> MultiModalEmbeddings:
        """`image_embeds` ([N, k, D] or N x [k, D], training space) or `pixel_values` ([N, 3, H, W]) ->
        [N, num_image_tokens, H]: what fills each image's placeholders, in the order of the prompt's images."""
        pixel_values = kwargs.pop("pixel_values", None)
        image_embeds = kwargs.pop("image_embeds", None)
        if pixel_values is None and image_embeds is None:
            return []
        if pixel_values is not None:
            if isinstance(pixel_values, (list, tuple)):
                pixel_values = torch.stack(list(pixel_values))
            image_embeds = self.embed_pixels(pixel_values)  # [N, D]
        elif isinstance(image_embeds, (list, tuple)):
            return [self._project(item.unsqueeze(0))[0] for item in image_embeds]  # N x [T, H]
        return self._project(image_embeds)

    def _project(self, image_embeds: torch.Tensor) -> torch.Tensor:
        """[N, D] or [N, k, D] -> [N, num_image_tokens, H] through transformers' `get_image_features`."""
        return self.unicorn.get_image_features(image_embeds=image_embeds, return_dict=True).pooler_output

    # ---- text ---------------------------------------------------------------------------------------------------
    def forward(
        self,
        input_ids: torch.Tensor | None,
        positions: torch.Tensor,
        intermediate_tensors: IntermediateTensors | None = None,
        inputs_embeds: torch.Tensor | None = None,
        **kwargs: object,
    ) -> torch.Tensor | IntermediateTensors:
        """input_ids [T] (flattened batch, image placeholders included), positions [T] -> hidden states [T, H]; image
        features arrive already merged into `inputs_embeds` [T, H] (vLLM calls `embed_input_ids`)."""
        if intermediate_tensors is not None:
            inputs_embeds = None
        return self.language_model.model(input_ids, positions, intermediate_tensors, inputs_embeds=inputs_embeds)

    def compute_logits(self, hidden_states: torch.Tensor) -> torch.Tensor | None:
        """[T, H] -> [T, V]; `<image>` is masked out: a placeholder, never an answer (transformers suppresses it)."""
        logits = self.language_model.compute_logits(hidden_states)
        if logits is not None:
            logits[..., self.config.image_token_id] = float("-inf")
        return logits

    # ---- weights ------------------------------------------------------------------------------------------------
    def load_weights(self, weights: Iterable[tuple[str, torch.Tensor]]) -> set[str]:
        """Route the checkpoint's entries by their on-disk names (see `CHECKPOINT_RENAMINGS` in modeling_unicorn.py):
        `language_model.*` to vLLM's text model (names unchanged below that prefix), every other entry (the
        projector, every `modality_statistics.*` buffer, every `vision_tower.*` weight) to the transformers image side
        under the same name. An entry that matches nothing, or a part left unfilled, is an error naming it."""
        image_side = dict(self.unicorn.named_parameters()) | dict(self.unicorn.named_buffers())
        expected = set(self.unicorn.state_dict())  # parameters + persistent buffers, checkpoint names
        filled: set[str] = set()

        def language_model_weights() -> Iterator[tuple[str, torch.Tensor]]:
            for name, tensor in weights:
                if name.startswith(LANGUAGE_MODEL_PREFIX):
                    yield name[len(LANGUAGE_MODEL_PREFIX) :], tensor
                    continue
                # A carried tower may also be stored under transformers' in-memory name (`model.vision_tower.*`,
                # the target of CHECKPOINT_RENAMINGS): the quickstart's SFT folder holds it so.
                name = name.removeprefix(IN_MEMORY_PREFIX)
                if name in expected:
                    target = image_side[name]
                    if tuple(target.shape) != tuple(tensor.shape):
                        raise ValueError(
                            f"Checkpoint entry {name!r} has shape {tuple(tensor.shape)}, the model built from "
                            f"config.json expects {tuple(target.shape)}."
                        )
                    target.data.copy_(tensor)
                    filled.add(name)
                else:
                    raise ValueError(
                        f"Checkpoint entry {name!r} belongs to no part of the Unicorn model (expected "
                        f"{LANGUAGE_MODEL_PREFIX}* or one of the image side's entries: projector.*, "
                        "modality_statistics.*, vision_tower.*); is config.json from the same checkpoint?"
                    )

        loaded = {LANGUAGE_MODEL_PREFIX + name for name in self.language_model.load_weights(language_model_weights())}
        if missing := sorted(expected - filled):
            raise ValueError(f"The checkpoint lacks {len(missing)} entries of the Unicorn image side: {missing[:8]}")
        return loaded | {f"unicorn.{name}" for name in filled}


__all__ = ["UnicornForConditionalGeneration", "build_image_side", "check_image_embeds"]
