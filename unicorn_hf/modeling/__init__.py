"""The Unicorn model, registered with the transformers Auto classes at import (LLaVA's mapping).

`AutoModel` -> `UnicornModel` (projector + backbone, hidden states), `AutoModelForImageTextToText` ->
`UnicornForConditionalGeneration` (generates; what `pipeline("image-text-to-text")` loads).
`register_for_auto_class` makes `save_pretrained` copy the three flat modeling files next to the weights and write
`auto_map`, so a pushed checkpoint loads with `trust_remote_code=True` where this package is not installed.
"""

from transformers import AutoConfig, AutoModel, AutoModelForImageTextToText, AutoProcessor

from .configuration_unicorn import UnicornConfig
from .modeling_unicorn import UnicornForConditionalGeneration, UnicornModel, UnicornPreTrainedModel
from .processing_unicorn import UnicornProcessor


AutoConfig.register(UnicornConfig.model_type, UnicornConfig, exist_ok=True)
AutoModel.register(UnicornConfig, UnicornModel, exist_ok=True)
AutoModelForImageTextToText.register(UnicornConfig, UnicornForConditionalGeneration, exist_ok=True)
AutoProcessor.register(UnicornConfig, UnicornProcessor, exist_ok=True)

UnicornConfig.register_for_auto_class()
UnicornModel.register_for_auto_class("AutoModel")
UnicornForConditionalGeneration.register_for_auto_class("AutoModelForImageTextToText")
UnicornProcessor.register_for_auto_class("AutoProcessor")

__all__ = [
    "UnicornConfig",
    "UnicornForConditionalGeneration",
    "UnicornModel",
    "UnicornPreTrainedModel",
    "UnicornProcessor",
]
