"""Unicorn: a LLaVA-style VLM whose "image" input is one embedding vector per sample.

Training never sees pixels: stage 3 turns each caption into a CLIP-style text embedding u and moves it by the text
side of a modality transfer rule (the paper's mean shift v = u - text_mean, or another method of
`modality_transfer.py`). At inference a real image goes through the paired image encoder and the image side of the
same rule, whose settings (`config.modality_transfer`) and tensors (`modality_statistics.*`) the checkpoint carries.
The projector maps v into the LLM's hidden size and the result is copied into the `<image>` positions of the prompt
(LLaVA's `masked_scatter`, after a compile-safe count check).

Built as transformers' LLaVA is (`modeling_llava.py`):

- `UnicornModel`: projector + modality transfer + the text backbone (`AutoModel`, no LM head), and optionally the
  frozen image tower of the paired encoder (as LLaVA carries `vision_tower`), so that `pixel_values` work and
  `pipeline("image-text-to-text", model=folder)` needs nothing else; returns hidden states. It is the `base_model`
  (`base_model_prefix = "model"`), which is what TRL's fused LM head runs.
- `UnicornForConditionalGeneration`: `self.model` + `self.lm_head` + `self.loss_function`, with `logits_to_keep`,
  cache, `position_ids` and `inputs_embeds` declared so that every generation mode of transformers works.

On disk the weights keep the layout of the first Unicorn checkpoints (`language_model.model.*`,
`language_model.lm_head.*`, `projector.*`, `modality_statistics.*`, and `vision_tower.*` where one is carried): a
checkpoint conversion mapping renames them to the module tree above at load and back at save, as transformers does
for LLaVA's Hub checkpoints.

Self-contained (imports only torch, transformers and its sibling files) so that `push_to_hub` ships it as remote
code and a checkpoint loads with `trust_remote_code=True` where `unicorn_hf` is not installed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import transformers
from torch import nn
from transformers import AutoModel, GenerationMixin, PreTrainedModel
from transformers import initialization as init
from transformers.activations import ACT2FN
from transformers.cache_utils import Cache
from transformers.conversion_mapping import register_checkpoint_conversion_mapping
from transformers.core_model_loading import WeightRenaming
from transformers.modeling_outputs import (
    BaseModelOutputWithPooling,
    MultimodalBaseModelOutputWithPast,
    MultimodalCausalLMOutputWithPast,
)
from transformers.modeling_utils import slice_logits_to_keep
from transformers.processing_utils import Unpack
from transformers.utils import TransformersKwargs, logging, torch_compilable_check
from transformers.utils.deprecation import deprecate_kwarg
from transformers.utils.generic import can_return_tuple

from .configuration_unicorn import (
    VISION_TOWERS,
    UnicornConfig,
    projector_depth,
)
from .modality_transfer import IMAGE_MEAN_METHODS, UnicornModalityTransfer


logger = logging.get_logger(__name__)

# The first checkpoints held the whole causal LM under `language_model` (its backbone under `.model`, its head under
# `.lm_head`) and the projector and statistics at the top. transformers applies these renamings at load and their
# reverse at save (`revert_weight_conversion`), so the on-disk layout stays that one and old checkpoints load as is.
# The most specific pattern comes first: `language_model.lm_head` must not be caught by `language_model.model`.
CHECKPOINT_RENAMINGS = (
    (r"^language_model\.lm_head", "lm_head"),
    (r"^language_model\.model", "model.language_model"),
    (r"^projector", "model.projector"),
    (r"^modality_statistics", "model.modality_statistics"),
    (r"^vision_tower", "model.vision_tower"),
)


def checkpoint_conversion_mapping() -> list[WeightRenaming]:
    """The renamings above as transformers' `WeightRenaming`s (a fresh list: transformers mutates their state)."""
    return [WeightRenaming(source_patterns=source, target_patterns=target) for source, target in CHECKPOINT_RENAMINGS]


# Registered by model type so that `from_pretrained`/`save_pretrained` apply it, for the installed package and for the
# remote-code copy alike (transformers only applies user-registered mappings to custom-code models).
register_checkpoint_conversion_mapping(UnicornConfig.model_type, checkpoint_conversion_mapping(), overwrite=True)


@dataclass
class UnicornModelOutputWithPast(MultimodalBaseModelOutputWithPast):
    r"""
    Output of [`UnicornModel`]: the text backbone's `last_hidden_state` [B, T, H], `cache`, optional
    `hidden_states`/`attentions`, and `image_outputs` (the [`UnicornModel.get_image_features`] output, or None).
    """


@dataclass
class UnicornCausalLMOutputWithPast(MultimodalCausalLMOutputWithPast):
    r"""
    Output of [`UnicornForConditionalGeneration`]: `loss`, `logits` [B, T', V] (T' set by `logits_to_keep`), `cache`,
    optional `hidden_states`/`attentions`, and `image_outputs`.
    """


class UnicornProjector(nn.Module):
    """`linear` or `mlp<N>x_gelu`: [..., embed_dim] -> [..., hidden_size]; `mlp2x_gelu` is LLaVA-1.5's projector."""

    def __init__(self, config: UnicornConfig):
        super().__init__()
        hidden_size = config.text_config.hidden_size
        depth = projector_depth(config.projector_type)
        self.layers = nn.ModuleList(
            [nn.Linear(config.embed_dim if i == 0 else hidden_size, hidden_size) for i in range(depth)]
        )
        self.act = ACT2FN["gelu"]

    def forward(self, image_embeds: torch.Tensor) -> torch.Tensor:
        hidden_states = self.layers[0](image_embeds)
        for layer in self.layers[1:]:
            hidden_states = layer(self.act(hidden_states))
        return hidden_states


class UnicornPreTrainedModel(PreTrainedModel):
    config: UnicornConfig
    config_class = UnicornConfig
    base_model_prefix = "model"
    input_modalities = ("image", "text")
    supports_gradient_checkpointing = True
    _supports_flash_attn = True
    _supports_sdpa = True
    _supports_flex_attn = True
    _supports_attention_backend = True
    _can_compile_fullgraph = True

    def _init_weights(self, module: nn.Module) -> None:
        if isinstance(module, UnicornModalityTransfer):
            for name, buffer in module.named_buffers(recurse=False):
                (init.ones_ if name == "realign_scale" else init.zeros_)(buffer)
        elif isinstance(module, nn.Linear):  # the projector and the LM head; the backbone initialises its own
            std = getattr(self.config.text_config, "initializer_range", None) or 0.02
            init.normal_(module.weight, mean=0.0, std=std)
            if module.bias is not None:
                init.zeros_(module.bias)
        else:
            super()._init_weights(module)


def _check_image_embeds(image_embeds: torch.Tensor, config: UnicornConfig) -> None:
    """Shape errors are static (plain raises); the NaN/inf check is data-dependent, so it is compile-safe."""
    if image_embeds.dim() not in (2, 3):
        raise ValueError(
            f"image_embeds must be [batch, embed_dim] or [batch, k, embed_dim], got shape {tuple(image_embeds.shape)}."
        )
    if image_embeds.shape[-1] != config.embed_dim:
        raise ValueError(
            f"image_embeds have width {image_embeds.shape[-1]} but the model expects embed_dim={config.embed_dim} "
            f"(encoder {config.encoder_id!r}); were they made by another encoder?"
        )
    finite = torch.isfinite(image_embeds)  # [B, (k,) D]

    def message() -> str:  # only built when the check fails (eager), never traced
        bad_rows = (~finite).flatten(1).any(-1).nonzero().flatten().tolist()
        return f"image_embeds contain NaN or inf in batch rows {bad_rows}."

    torch_compilable_check(finite.all(), message)


def build_vision_tower(vision_config) -> PreTrainedModel:
    """The transformers model that maps pixels into the encoder's joint space (`VISION_TOWERS`), frozen."""
    class_name = VISION_TOWERS[vision_config.model_type][0]
    tower = getattr(transformers, class_name)._from_config(vision_config)
    return tower.requires_grad_(False).eval()


# Which class each Auto class loads, as for LLaVA: `AutoModel` is the backbone, the Image-Text-to-Text one generates.
AUTO_MAP = {
    "AutoModel": "modeling_unicorn.UnicornModel",
    "AutoModelForImageTextToText": "modeling_unicorn.UnicornForConditionalGeneration",
}


def _record_auto_map(model: PreTrainedModel) -> None:
    """`register_for_auto_class` makes `save_pretrained` record only the saved class's own Auto class; a remote-code
    checkpoint needs both, whichever of the two was saved."""
    if model._auto_class is not None:
        model.config.auto_map = {**dict(getattr(model.config, "auto_map", None) or {}), **AUTO_MAP}


class UnicornModel(UnicornPreTrainedModel):
    """Projector + modality transfer + text backbone. `image_embeds` [B, D] fill the `<image>` positions; returns
    the backbone's hidden states (no LM head), like `LlavaModel`."""

    def __init__(self, config: UnicornConfig):
        super().__init__(config)
        self.projector = UnicornProjector(config)
        self.modality_statistics = UnicornModalityTransfer(config)  # checkpoint keys `modality_statistics.*`
        self.language_model = AutoModel.from_config(config.text_config)
        if config.vision_config is not None:
            self.vision_tower = build_vision_tower(config.vision_config)
        self.post_init()
        _record_auto_map(self)

    def get_input_embeddings(self) -> nn.Module:
        return self.language_model.get_input_embeddings()

    def set_input_embeddings(self, value: nn.Module) -> None:
        self.language_model.set_input_embeddings(value)

    # ---- image embeddings ---------------------------------------------------------------------------------------
    @can_return_tuple
    def get_image_features(
        self,
        image_embeds: torch.Tensor | None = None,
        pixel_values: torch.Tensor | None = None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> BaseModelOutputWithPooling:
        """Project embeddings of the training space (after the modality transfer) into the LM's hidden size.

        Args:
            image_embeds: [B, D] (one vector per image, the paper's setting) or [B, k, D] with k = 1 or
                `num_image_tokens`, already transferred (as in the training data). In train mode the noise methods
                (CapDec, C3) add their fresh noise here, as a regulariser; never in eval mode.
            pixel_values: [B, 3, H, W] for the image tower the checkpoint carries, instead of `image_embeds`: the
                tower's embedding is L2-normalised and moved by the image side of the rule first (`embed_pixels`).

        Returns:
            `BaseModelOutputWithPooling` with `last_hidden_state` [B, k, H] (the projected vectors) and
            `pooler_output` [B, num_image_tokens, H] (what fills the `<image>` positions: the paper copies one vector
            into all 576 tokens).
        """
        if (image_embeds is None) == (pixel_values is None):
            raise ValueError("Pass exactly one of image_embeds and pixel_values.")
        if pixel_values is not None:
            image_embeds = self.embed_pixels(pixel_values)  # [B, D]
        _check_image_embeds(image_embeds, self.config)
        if self.training:
            image_embeds = self.modality_statistics.add_training_noise(image_embeds)
        if image_embeds.dim() == 2:
            image_embeds = image_embeds.unsqueeze(1)  # [B, 1, D]
        projector_dtype = self.projector.layers[0].weight.dtype
        projected = self.projector(image_embeds.to(projector_dtype))  # [B, k, H]
        num_vectors, num_tokens = projected.shape[1], self.config.num_image_tokens
        if num_vectors == num_tokens:
            features = projected
        elif num_vectors == 1:
            features = projected.expand(-1, num_tokens, -1)  # [B, N, H]
        else:
            raise ValueError(
                f"image_embeds carry {num_vectors} vectors per sample; expected 1 or num_image_tokens={num_tokens}."
            )
        return BaseModelOutputWithPooling(last_hidden_state=projected, pooler_output=features)

    def embed_pixels(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """[B, 3, H, W] -> [B, D] in the training space: the carried image tower (frozen), L2-normalised as every
        paired encoder's output is, then the image side of the modality transfer (with the image mean named by
        `config.image_tower_mean`, for the methods that subtract one)."""
        tower = getattr(self, "vision_tower", None)
        if tower is None:
            raise ValueError(
                "This checkpoint carries no image tower, so it takes `image_embeds`, not `pixel_values`: embed the "
                "images with the paired encoder its config names (`config.encoder`), move them with "
                "`model.transfer_images(raw_embeds)` and pass the result as `image_embeds` [B, D]; or use a "
                "checkpoint that carries its tower (`config.vision_config` set)."
            )
        output_field = VISION_TOWERS[self.config.vision_config.model_type][1]
        tower_dtype = next(tower.parameters()).dtype
        raw = getattr(tower(pixel_values=pixel_values.to(tower_dtype)), output_field)  # [B, D]
        raw = torch.nn.functional.normalize(raw.float(), dim=-1)
        return self.transfer_images(raw, image_mean=self.config.image_tower_mean)

    def get_placeholder_mask(
        self, input_ids: torch.LongTensor | None, inputs_embeds: torch.Tensor, image_features: torch.Tensor
    ) -> torch.BoolTensor:
        """Boolean mask [B, T, 1] of the `<image>` positions, after a compile-safe check that they match the features.

        As in LLaVA the check is on the totals: as many `<image>` positions as feature vectors. The features fill the
        positions in (row, position) order, so a batch may mix prompts with and without an image (the processor allows
        it), and `generate`'s chunked prefill may hand over the rows of one chunk as one flattened [1, n, H] block.
        With `inputs_embeds` only, the positions are those holding the `<image>` token's own embedding.
        """
        if input_ids is None:
            image_token_embedding = self.get_input_embeddings()(
                torch.full((), self.config.image_token_id, dtype=torch.long, device=inputs_embeds.device)
            )  # [H]
            image_mask = (inputs_embeds == image_token_embedding).all(-1)  # [B, T]
        else:
            image_mask = input_ids == self.config.image_token_id  # [B, T]
        num_features = image_features.shape[0] * image_features.shape[1]

        def message() -> str:  # eager only: the per-row counts say what is wrong
            return (
                f"Image features and image tokens do not match: {image_mask.shape[0]} sequence(s) with "
                f"{image_mask.sum(-1).tolist()} <image> token(s) each, but {image_features.shape[0]} embedding(s) "
                f"that fill {image_features.shape[1]} token(s) each. Expand every <image> to num_image_tokens="
                f"{self.config.num_image_tokens} copies (UnicornProcessor does) and pass one embedding per prompt "
                "that holds <image>."
            )

        torch_compilable_check(image_mask.sum() == num_features, message)
        return image_mask.unsqueeze(-1).to(inputs_embeds.device)  # [B, T, 1]

    # ---- forward ------------------------------------------------------------------------------------------------
    @can_return_tuple
    @deprecate_kwarg("past_key_values", "5.40.0", new_name="cache")
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        image_embeds: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        cache: Cache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        use_cache: bool | None = None,
        mm_encoder_outputs: dict[str, BaseModelOutputWithPooling] | None = None,
        pixel_values: torch.Tensor | None = None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> UnicornModelOutputWithPast:
        r"""
        image_embeds (`torch.Tensor` of shape `(num_images, embed_dim)` or `(num_images, k, embed_dim)`, *optional*):
            Encoder embeddings after the modality transfer, one per prompt holding `<image>`; they replace its
            `<image>` tokens.
        mm_encoder_outputs (`dict[str, BaseModelOutputWithPooling]`, *optional*):
            Pre-computed `{"image": get_image_features(...)}`, used instead of `image_embeds`.
        pixel_values (`torch.Tensor` of shape `(num_images, 3, height, width)`, *optional*):
            Images for the carried image tower (see `get_image_features`), instead of `image_embeds`.
        """
        if (input_ids is None) ^ (inputs_embeds is not None):
            raise ValueError("You must specify exactly one of input_ids or inputs_embeds")
        inputs = {"image_embeds": image_embeds, "pixel_values": pixel_values, "mm_encoder_outputs": mm_encoder_outputs}
        given = [name for name, value in inputs.items() if value is not None]
        if len(given) > 1:
            raise ValueError(f"Pass one image input, not {given}.")
        if inputs_embeds is None:
            inputs_embeds = self.get_input_embeddings()(input_ids)  # [B, T, H]

        image_outputs = (mm_encoder_outputs or {}).get("image")
        if image_outputs is None and (image_embeds is not None or pixel_values is not None):
            image_outputs = self.get_image_features(image_embeds, pixel_values=pixel_values, return_dict=True)
        if image_outputs is not None:
            image_features = image_outputs.pooler_output.to(inputs_embeds.device, inputs_embeds.dtype)  # [N, n, H]
            image_mask = self.get_placeholder_mask(input_ids, inputs_embeds, image_features)  # [B, T, 1]
            inputs_embeds = inputs_embeds.masked_scatter(image_mask, image_features)

        outputs = self.language_model(
            attention_mask=attention_mask,
            position_ids=position_ids,
            cache=cache,
            inputs_embeds=inputs_embeds,
            use_cache=use_cache,
            **kwargs,
        )
        return UnicornModelOutputWithPast(
            last_hidden_state=outputs.last_hidden_state,
            cache=outputs.cache,
            hidden_states=outputs.hidden_states,
            attentions=outputs.attentions,
            image_outputs=image_outputs,
        )

    # ---- the modality transfer ----------------------------------------------------------------------------------
    def transfer_images(
        self, raw_embeds: torch.Tensor, image_mean: str | torch.Tensor | None = "image"
    ) -> torch.Tensor:
        """Image side of the rule the model was trained with: paired-encoder image embeddings [N, D] -> [N, D].

        `image_mean` is what `mean_shift` / `c3` subtract: "image" (the stored mean of unlabeled images), "text" (the
        caption mean: leaves the modality gap), "none"/None, or a [D] tensor (e.g. the evaluated set's own mean, as
        in the paper's code). Methods that subtract no image mean ignore the default and refuse any other value.
        """
        if self.config.modality_transfer["method"] not in IMAGE_MEAN_METHODS and image_mean in ("image", "none"):
            image_mean = None
        return self.modality_statistics.transfer_images(raw_embeds, image_mean=image_mean)

    def transfer_texts(self, raw_text_embeds: torch.Tensor) -> torch.Tensor:
        """Text side (without the train-time noise): caption embeddings [N, D] -> [N, D], what the transfer stage
        stored as `image_embeds` (probes of held-out concepts feed their captions through this)."""
        return self.modality_statistics.transfer_texts(raw_text_embeds)


class UnicornForConditionalGeneration(UnicornPreTrainedModel, GenerationMixin):
    """`UnicornModel` + LM head. `image_embeds` [B, D] (or [B, k, D]) fill the `<image>` positions of `input_ids`."""

    _tp_plan = {"lm_head": "colwise_gather_output"}

    def __init__(self, config: UnicornConfig):
        super().__init__(config)
        self.model = UnicornModel(config)
        self.lm_head = nn.Linear(config.text_config.hidden_size, config.text_config.vocab_size, bias=False)
        # LLaVA hard-codes `model.language_model.embed_tokens`; the backbone here is any causal LM (GPT-2 calls its
        # embeddings `wte`), so the tied key is looked up on the built backbone.
        self._tied_weights_keys = {"lm_head.weight": f"{self._input_embeddings_name()}.weight"}
        self.post_init()
        _record_auto_map(self)
        self._suppress_image_token()

    def _input_embeddings_name(self) -> str:
        embeddings = self.model.get_input_embeddings()
        return next(name for name, module in self.named_modules() if module is embeddings)

    def _suppress_image_token(self) -> None:
        """`<image>` is an input placeholder, never an answer: keep `generate` from emitting it. An undertrained model
        can, and without a cache the next step would then re-read it as an image position and fail the count check."""
        image_token_id = self.config.image_token_id
        suppressed = list(self.generation_config.suppress_tokens or [])
        if image_token_id is not None and image_token_id not in suppressed:
            self.generation_config.suppress_tokens = [*suppressed, image_token_id]

    def get_output_embeddings(self) -> nn.Module:
        return self.lm_head

    def set_output_embeddings(self, new_embeddings: nn.Module) -> None:
        self.lm_head = new_embeddings

    # Short names for the parts (the recipes freeze and unfreeze them by these).
    @property
    def language_model(self) -> nn.Module:
        """The text backbone (no LM head: that is `lm_head`)."""
        return self.model.language_model

    @property
    def projector(self) -> UnicornProjector:
        return self.model.projector

    @property
    def modality_statistics(self) -> UnicornModalityTransfer:
        return self.model.modality_statistics

    def get_image_features(
        self,
        image_embeds: torch.Tensor | None = None,
        pixel_values: torch.Tensor | None = None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> BaseModelOutputWithPooling:
        return self.model.get_image_features(image_embeds, pixel_values=pixel_values, **kwargs)

    @property
    def vision_tower(self) -> PreTrainedModel | None:
        return getattr(self.model, "vision_tower", None)

    def transfer_images(
        self, raw_embeds: torch.Tensor, image_mean: str | torch.Tensor | None = "image"
    ) -> torch.Tensor:
        return self.model.transfer_images(raw_embeds, image_mean=image_mean)

    def transfer_texts(self, raw_text_embeds: torch.Tensor) -> torch.Tensor:
        return self.model.transfer_texts(raw_text_embeds)

    transfer_images.__doc__ = UnicornModel.transfer_images.__doc__
    transfer_texts.__doc__ = UnicornModel.transfer_texts.__doc__

    # ---- forward / generate -------------------------------------------------------------------------------------
    @can_return_tuple
    @deprecate_kwarg("past_key_values", "5.40.0", new_name="cache")
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        image_embeds: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        cache: Cache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        use_cache: bool | None = None,
        logits_to_keep: int | torch.Tensor = 0,
        mm_encoder_outputs: dict[str, BaseModelOutputWithPooling] | None = None,
        pixel_values: torch.Tensor | None = None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> UnicornCausalLMOutputWithPast:
        r"""
        image_embeds (`torch.Tensor` of shape `(num_images, embed_dim)` or `(num_images, k, embed_dim)`, *optional*):
            Encoder embeddings after the modality transfer, one per prompt holding `<image>`; they replace its
            `<image>` tokens.
        labels (`torch.LongTensor` of shape `(batch_size, sequence_length)`, *optional*):
            Next-token targets; `<image>` positions are never scored. Pre-shifted `shift_labels` (sequence and
            context parallelism pass them in `kwargs`) are masked the same way.
        logits_to_keep (`int` or `torch.Tensor`):
            Which positions reach the LM head: 0 = all, an int = the last ones (`generate` passes 1), a boolean
            [B, T] mask = the `True` positions, flattened (see `transformers.modeling_utils.slice_logits_to_keep`).
        mm_encoder_outputs (`dict[str, BaseModelOutputWithPooling]`, *optional*):
            Pre-computed `{"image": get_image_features(...)}`, used instead of `image_embeds`.
        pixel_values (`torch.Tensor` of shape `(num_images, 3, height, width)`, *optional*):
            Images for the image tower the checkpoint carries (`config.vision_config`), instead of `image_embeds`.

        Example:

        ```python
        >>> image_embeds = model.transfer_images(encoder.encode_image([pil_image]))  # [1, embed_dim]
        >>> inputs = processor(text=["<image>\nWhat is shown?"], image_embeds=image_embeds)
        >>> model.generate(**inputs, max_new_tokens=16)
        ```
        """
        outputs = self.model(
            input_ids=input_ids,
            image_embeds=image_embeds,
            attention_mask=attention_mask,
            position_ids=position_ids,
            cache=cache,
            inputs_embeds=inputs_embeds,
            use_cache=use_cache,
            mm_encoder_outputs=mm_encoder_outputs,
            pixel_values=pixel_values,
            **kwargs,
        )
        hidden_states = slice_logits_to_keep(outputs.last_hidden_state, logits_to_keep)  # [B, T', H] or [N, H]
        logits = self.lm_head(hidden_states)  # [B, T', V] or [N, V]

        loss = None
        shift_labels = kwargs.pop("shift_labels", None)
        if labels is not None or shift_labels is not None:
            labels, shift_labels = self.mask_image_targets(input_ids, labels, shift_labels)
            loss = self.loss_function(
                logits=logits,
                labels=labels,
                shift_labels=shift_labels,
                vocab_size=self.config.text_config.vocab_size,
                **kwargs,
            )
        return UnicornCausalLMOutputWithPast(
            loss=loss,
            logits=logits,
            cache=outputs.cache,
            hidden_states=outputs.hidden_states,
            attentions=outputs.attentions,
            image_outputs=outputs.image_outputs,
        )

    def mask_image_targets(
        self,
        input_ids: torch.LongTensor | None,
        labels: torch.LongTensor | None,
        shift_labels: torch.LongTensor | None,
    ) -> tuple[torch.LongTensor | None, torch.LongTensor | None]:
        """-100 wherever a target is an `<image>` position: `labels` [B, T] where `input_ids` holds `<image>` (or the
        label itself is the token), pre-shifted `shift_labels` [B, T] where the target token is `<image>` (under
        sequence parallelism the next input token may live on another rank, but its id is the target's)."""
        image_token_id = self.config.image_token_id
        if labels is not None:
            is_image = labels == image_token_id  # [B, T]
            if input_ids is not None and input_ids.shape == labels.shape:
                is_image = is_image | (input_ids == image_token_id)
            labels = labels.masked_fill(is_image, -100)
        if shift_labels is not None:
            shift_labels = shift_labels.masked_fill(shift_labels == image_token_id, -100)
        return labels, shift_labels

    def _prepare_multimodal_encoder_kwargs_for_generation(self, model_kwargs: dict) -> dict:
        """Project `image_embeds` once, before the prefill, into `mm_encoder_outputs["image"]`.

        This is the path `generate` takes for LLaVA's `pixel_values`: the encoded images are then expanded for beams
        and samples, sliced for chunked prefill and passed at prefill only (later steps read them from the cache).
        Without this, `generate` drops `image_embeds` as an argument of `get_image_features` that is not pixels.
        """
        image_embeds = model_kwargs.pop("image_embeds", None)
        if image_embeds is not None:
            encoded = dict(model_kwargs.get("mm_encoder_outputs") or {})
            if encoded.get("image") is not None:
                raise ValueError("You cannot pass both image_embeds and mm_encoder_outputs['image'].")
            encoded["image"] = self.model.get_image_features(image_embeds, return_dict=True)
            model_kwargs["mm_encoder_outputs"] = encoded
        return super()._prepare_multimodal_encoder_kwargs_for_generation(model_kwargs)

    def prepare_inputs_for_generation(
        self,
        input_ids: torch.LongTensor,
        next_sequence_length: int | None = None,
        cache: Cache | None = None,
        attention_mask: torch.LongTensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        is_first_iteration: bool | None = False,
        image_embeds: torch.Tensor | None = None,
        **kwargs,
    ) -> dict:
        """Image inputs enter at prefill only (later steps read them from the cache); without a cache every step
        re-runs the whole sequence, so they go with every step.

        A prefill that continues a cache already holding the prompt (`generate` called again with `past_key_values`
        and the image) has no `<image>` token left to fill, so the image inputs are dropped there.
        """
        model_inputs = super().prepare_inputs_for_generation(
            input_ids,
            next_sequence_length=next_sequence_length,
            cache=cache,
            attention_mask=attention_mask,
            inputs_embeds=inputs_embeds,
            is_first_iteration=is_first_iteration,
            **kwargs,
        )
        # `image_embeds` arrive here only from callers that skip `generate`'s encoding step above.
        if image_embeds is not None and (is_first_iteration or not kwargs.get("use_cache", True)):
            model_inputs["image_embeds"] = image_embeds
        step_ids = model_inputs.get("input_ids")
        continues_cache = is_first_iteration and cache is not None and cache.get_seq_length() > 0
        if continues_cache and step_ids is not None and not bool((step_ids == self.config.image_token_id).any()):
            model_inputs.pop("image_embeds", None)
            model_inputs.pop("mm_encoder_outputs", None)
        return model_inputs

    # ---- encoders -------------------------------------------------------------------------------------------------
    def make_image_embedder(
        self, encode_images: Callable[[Sequence], torch.Tensor], mean: str | torch.Tensor | None = "image"
    ) -> Callable[[Sequence], torch.Tensor]:
        """Wrap an image encoder (list of PIL images -> [N, D]) into the training space, for `UnicornProcessor`."""

        def embed(images: Sequence) -> torch.Tensor:
            return self.transfer_images(encode_images(images), image_mean=mean)

        return embed


__all__ = ["UnicornForConditionalGeneration", "UnicornModel", "UnicornPreTrainedModel"]
