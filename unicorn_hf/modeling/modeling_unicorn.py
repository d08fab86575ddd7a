"""Unicorn: a LLaVA-style VLM whose "image" input is one embedding vector per sample.

Training never sees pixels: stage 3 turns each caption into a CLIP-style text embedding u, shifted by the mean of
all caption embeddings (v = u - text_mean). At inference a real image goes through the paired image encoder and is
shifted by an image mean. The projector maps v into the LLM's hidden size and the result is copied into the
`<image>` positions of the prompt (LLaVA's `masked_scatter`, with a count check).

Self-contained (imports only torch, transformers and its sibling files) so that `push_to_hub` ships it as remote
code and a checkpoint loads with `trust_remote_code=True` where `unicorn_hf` is not installed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn
from transformers import AutoModelForCausalLM, GenerationMixin, PreTrainedModel
from transformers import initialization as init
from transformers.activations import ACT2FN
from transformers.modeling_outputs import CausalLMOutputWithPast

from .configuration_unicorn import UnicornConfig, projector_depth


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


class UnicornModalityStatistics(nn.Module):
    """The means used by the modality shift, kept as persistent buffers so that they travel in the checkpoint."""

    def __init__(self, config: UnicornConfig):
        super().__init__()
        self.register_buffer("text_mean", torch.zeros(config.embed_dim), persistent=True)  # [D]
        self.register_buffer("image_mean", torch.zeros(config.embed_dim), persistent=True)  # [D]


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
    _no_split_modules = []  # the wrapped LM adds its own decoder layers

    def _init_weights(self, module: nn.Module) -> None:
        if isinstance(module, UnicornModalityStatistics):
            init.zeros_(module.text_mean)
            init.zeros_(module.image_mean)
        elif isinstance(module, nn.Linear):
            std = getattr(self.config.text_config, "initializer_range", None) or 0.02
            init.normal_(module.weight, mean=0.0, std=std)
            if module.bias is not None:
                init.zeros_(module.bias)
        else:
            super()._init_weights(module)


class UnicornForConditionalGeneration(UnicornPreTrainedModel, GenerationMixin):
    """Projector + causal LM. `image_embeds` [B, D] (or [B, k, D]) fill the `<image>` positions of `input_ids`."""

    def __init__(self, config: UnicornConfig):
        super().__init__(config)
        self.projector = UnicornProjector(config)
        self.modality_statistics = UnicornModalityStatistics(config)
        self.language_model = AutoModelForCausalLM.from_config(config.text_config)
        self.post_init()
        if self._auto_class is not None:
            # `register_for_auto_class` records one Auto class; users load with AutoModel too, so map both.
            auto_map = dict(getattr(config, "auto_map", None) or {})
            for auto_class in ("AutoModel", "AutoModelForImageTextToText"):
                auto_map.setdefault(auto_class, f"modeling_unicorn.{type(self).__name__}")
            config.auto_map = auto_map

    # ---- plumbing delegated to the wrapped LM -------------------------------------------------------------------
    def get_input_embeddings(self) -> nn.Module:
        return self.language_model.get_input_embeddings()

    def set_input_embeddings(self, value: nn.Module) -> None:
        self.language_model.set_input_embeddings(value)

    def get_output_embeddings(self) -> nn.Module:
        return self.language_model.get_output_embeddings()

    def set_output_embeddings(self, new_embeddings: nn.Module) -> None:
        self.language_model.set_output_embeddings(new_embeddings)

    def get_decoder(self) -> nn.Module:
        return self.language_model.get_decoder()

    # ---- image embeddings ---------------------------------------------------------------------------------------
    def check_image_embeds(self, image_embeds: torch.Tensor) -> None:
        """Raise a clear error on a wrong shape, a wrong width or non-finite values."""
        if image_embeds.dim() not in (2, 3):
            raise ValueError(
                "image_embeds must be [batch, embed_dim] or [batch, k, embed_dim], "
                f"got shape {tuple(image_embeds.shape)}."
            )
        if image_embeds.shape[-1] != self.config.embed_dim:
            raise ValueError(
                f"image_embeds have width {image_embeds.shape[-1]} but the model expects embed_dim="
                f"{self.config.embed_dim} (encoder {self.config.encoder_id!r}); were they made by another encoder?"
            )
        if not torch.isfinite(image_embeds).all():
            bad_rows = (~torch.isfinite(image_embeds)).flatten(1).any(-1).nonzero().flatten().tolist()
            raise ValueError(f"image_embeds contain NaN or inf in batch rows {bad_rows}.")

    def get_image_features(self, image_embeds: torch.Tensor) -> torch.Tensor:
        """[B, D] or [B, k, D] -> [B, num_image_tokens, H]; one projected vector is copied to every image token."""
        self.check_image_embeds(image_embeds)
        if image_embeds.dim() == 2:
            image_embeds = image_embeds.unsqueeze(1)  # [B, 1, D]
        projector_dtype = self.projector.layers[0].weight.dtype
        features = self.projector(image_embeds.to(projector_dtype))  # [B, k, H]
        num_vectors, num_tokens = features.shape[1], self.config.num_image_tokens
        if num_vectors == num_tokens:
            return features
        if num_vectors == 1:
            return features.expand(-1, num_tokens, -1)  # [B, N, H] (the paper copies one vector into 576 tokens)
        raise ValueError(
            f"image_embeds carry {num_vectors} vectors per sample; expected 1 or num_image_tokens={num_tokens}."
        )

    def get_placeholder_mask(self, input_ids: torch.LongTensor, image_features: torch.Tensor) -> torch.BoolTensor:
        """Boolean mask [B, T] of `<image>` positions, after checking it matches the image features row by row."""
        image_token_mask = input_ids == self.config.image_token_id  # [B, T]
        tokens_per_row = image_token_mask.sum(-1)  # [B]
        expected = image_features.shape[1]
        if input_ids.shape[0] != image_features.shape[0] or bool((tokens_per_row != expected).any()):
            raise ValueError(
                f"Image features and image tokens do not match: {input_ids.shape[0]} sequence(s) with "
                f"{tokens_per_row.tolist()} <image> token(s) each, but {image_features.shape[0]} embedding(s) that "
                f"fill {expected} token(s) each. Expand every <image> to num_image_tokens="
                f"{self.config.num_image_tokens} copies (UnicornProcessor does) and pass one embedding per sequence."
            )
        return image_token_mask

    def shift_embeddings(self, raw_embeds: torch.Tensor, mean: str | torch.Tensor = "text") -> torch.Tensor:
        """Apply the modality shift used in training: v = u - mean, then optionally re-normalise.

        `mean` is "text" (the training caption mean), "image" (a stored image mean) or a [D] tensor, e.g. the mean
        of the evaluation set's own image embeddings as in the paper.
        """
        if isinstance(mean, str):
            if mean == "image" and not self.config.has_image_mean:
                raise ValueError("This checkpoint stores no image_mean; use mean='text' or pass a tensor.")
            mean = {"text": self.modality_statistics.text_mean, "image": self.modality_statistics.image_mean}[mean]
        shifted = raw_embeds.float() - mean.to(raw_embeds.device, torch.float32)  # [N, D]
        if self.config.renormalize_after_shift:
            shifted = torch.nn.functional.normalize(shifted, dim=-1)
        return shifted

    def set_modality_statistics(
        self,
        text_mean: torch.Tensor,
        image_mean: torch.Tensor | None = None,
        encoder_id: str | None = None,
        renormalize_after_shift: bool | None = None,
    ) -> None:
        """Copy the transfer statistics into the model so that inference repeats the training shift."""
        for name, tensor in (("text_mean", text_mean), ("image_mean", image_mean)):
            if tensor is not None and tuple(tensor.shape) != (self.config.embed_dim,):
                raise ValueError(f"{name} has shape {tuple(tensor.shape)}, expected ({self.config.embed_dim},).")
        if encoder_id is not None and self.config.encoder_id not in (None, encoder_id):
            raise ValueError(
                f"Statistics come from encoder {encoder_id!r} but the model was built for {self.config.encoder_id!r}."
            )
        stats = self.modality_statistics
        stats.text_mean.copy_(text_mean.to(stats.text_mean))
        if image_mean is not None:
            stats.image_mean.copy_(image_mean.to(stats.image_mean))
            self.config.has_image_mean = True
        if encoder_id is not None:
            self.config.encoder_id = encoder_id
        if renormalize_after_shift is not None:
            self.config.renormalize_after_shift = renormalize_after_shift

    def make_image_embedder(
        self, encode_images: Callable[[Sequence], torch.Tensor], mean: str | torch.Tensor = "image"
    ) -> Callable[[Sequence], torch.Tensor]:
        """Wrap an image encoder (list of PIL images -> [N, D]) into the training space, for `UnicornProcessor`."""

        def embed(images: Sequence) -> torch.Tensor:
            return self.shift_embeddings(encode_images(images), mean=mean)

        return embed

    # ---- forward / generate -------------------------------------------------------------------------------------
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        image_embeds: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        **kwargs,
    ) -> CausalLMOutputWithPast:
        r"""
        image_embeds (`torch.Tensor` of shape `(batch_size, embed_dim)` or `(batch_size, k, embed_dim)`, *optional*):
            Shifted encoder embeddings, one per sequence; they replace the `<image>` tokens of `input_ids`.
        labels (`torch.LongTensor` of shape `(batch_size, sequence_length)`, *optional*):
            Next-token targets; positions holding `<image>` are never scored.
        Other keyword arguments (cache, position ids, `logits_to_keep`, ...) go to the wrapped language model.
        """
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("Pass exactly one of input_ids or inputs_embeds.")
        if inputs_embeds is None:
            inputs_embeds = self.get_input_embeddings()(input_ids)  # [B, T, H]
        if image_embeds is not None:
            if input_ids is None:
                raise ValueError("image_embeds need input_ids to locate the <image> tokens.")
            image_features = self.get_image_features(image_embeds).to(inputs_embeds.dtype)  # [B, N, H]
            image_mask = self.get_placeholder_mask(input_ids, image_features)  # [B, T]
            inputs_embeds = inputs_embeds.masked_scatter(image_mask.unsqueeze(-1), image_features)
        if labels is not None and input_ids is not None:
            labels = labels.masked_fill(input_ids == self.config.image_token_id, -100)
        return self.language_model(inputs_embeds=inputs_embeds, attention_mask=attention_mask, labels=labels, **kwargs)

    def prepare_inputs_for_generation(self, *args, image_embeds=None, is_first_iteration=False, **kwargs):
        model_inputs = super().prepare_inputs_for_generation(*args, is_first_iteration=is_first_iteration, **kwargs)
        # Image embeddings enter at prefill only: later steps read them from the KV cache. Without a cache every step
        # re-runs the full sequence, so it needs them again.
        if is_first_iteration or not kwargs.get("use_cache", True):
            model_inputs["image_embeds"] = image_embeds
        return model_inputs

    # ---- construction from an existing LLM -----------------------------------------------------------------------
    @classmethod
    def from_text_model(
        cls,
        text_model: PreTrainedModel,
        image_token_id: int,
        embed_dim: int,
        projector_type: str,
        num_image_tokens: int,
        encoder_id: str | None = None,
        renormalize_after_shift: bool = False,
    ) -> UnicornForConditionalGeneration:
        """Wrap an already loaded causal LM (whose vocabulary holds `<image>`) without copying or re-initialising it.

        `unicorn_hf.modeling.builder.build_from_text_model` loads the LM and tokenizer, adds the token and calls this.
        """
        config = UnicornConfig(
            text_config=text_model.config,
            embed_dim=embed_dim,
            projector_type=projector_type,
            num_image_tokens=num_image_tokens,
            image_token_id=image_token_id,
            encoder_id=encoder_id,
            renormalize_after_shift=renormalize_after_shift,
        )
        with torch.device("meta"):  # skip a random init of a full LLM that is replaced right away
            model = cls(config)
        model.language_model = text_model
        parameter = next(text_model.parameters())
        for module in (model.projector, model.modality_statistics):
            module.to_empty(device=parameter.device)
            module.apply(model._init_weights)
        model.projector.to(parameter.dtype)
        model.generation_config = text_model.generation_config
        return model


__all__ = ["UnicornForConditionalGeneration", "UnicornPreTrainedModel"]
