"""The Unicorn model, registered with the transformers Auto classes at import.

`register_for_auto_class` makes `save_pretrained` copy the three flat modeling files next to the weights and write
`auto_map`, so a pushed checkpoint loads with `trust_remote_code=True` where this package is not installed.
"""

from transformers import AutoConfig, AutoModel, AutoModelForImageTextToText, AutoProcessor

from .configuration_unicorn import UnicornConfig
from .modeling_unicorn import UnicornForConditionalGeneration, UnicornPreTrainedModel
from .processing_unicorn import UnicornProcessor


AutoConfig.register(UnicornConfig.model_type, UnicornConfig, exist_ok=True)
AutoModel.register(UnicornConfig, UnicornForConditionalGeneration, exist_ok=True)
AutoModelForImageTextToText.register(UnicornConfig, UnicornForConditionalGeneration, exist_ok=True)
AutoProcessor.register(UnicornConfig, UnicornProcessor, exist_ok=True)

UnicornConfig.register_for_auto_class()
UnicornForConditionalGeneration.register_for_auto_class("AutoModel")
UnicornForConditionalGeneration.register_for_auto_class("AutoModelForImageTextToText")
UnicornProcessor.register_for_auto_class("AutoProcessor")

__all__ = ["UnicornConfig", "UnicornForConditionalGeneration", "UnicornPreTrainedModel", "UnicornProcessor"]
