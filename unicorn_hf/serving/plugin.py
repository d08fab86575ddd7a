"""vLLM plugin: teaches vLLM the Unicorn architecture (`UnicornForConditionalGeneration`).

Declared in setup.cfg as the `vllm.general_plugins` entry point `unicorn = unicorn_hf.serving.plugin:register`, so
`vllm serve <checkpoint>` and `vllm.LLM(<checkpoint>)` find it once `unicorn-hf` is installed beside vLLM. vLLM calls
`register()` in every process it starts (API server, engine core, workers) before it reads the model's config.
"""

from __future__ import annotations

import logging


logger = logging.getLogger(__name__)

ARCHITECTURE = "UnicornForConditionalGeneration"  # `architectures` in a trained checkpoint's config.json
MODEL_CLASS = "unicorn_hf.serving.vllm_unicorn:UnicornForConditionalGeneration"


def register() -> None:
    """Register Unicorn's config/processor with transformers' Auto classes and its vLLM model with vLLM.

    The model class is given as a lazy `module:Class` string (vLLM imports it only when a Unicorn checkpoint is
    loaded), as vLLM's plugin documentation recommends, so that this plugin costs nothing to other models.
    """
    from vllm import ModelRegistry  # vLLM calls this plugin; importing unicorn_hf alone must not need vLLM

    import unicorn_hf.modeling  # noqa: F401  (AutoConfig / AutoProcessor know "unicorn" from here on)

    ModelRegistry.register_model(ARCHITECTURE, MODEL_CLASS)
    logger.debug("Registered %s with vLLM as %s", ARCHITECTURE, MODEL_CLASS)
