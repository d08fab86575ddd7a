"""unicorn-hf: train vision-language models from text alone (Unicorn) on the Hugging Face stack.

Importing the package registers the Unicorn model with transformers' Auto classes.
"""

from .modeling import (
    UnicornConfig,
    UnicornForConditionalGeneration,
    UnicornModel,
    UnicornPreTrainedModel,
    UnicornProcessor,
)


__version__ = "0.1.0.dev0"

__all__ = [
    "UnicornConfig",
    "UnicornForConditionalGeneration",
    "UnicornModel",
    "UnicornPreTrainedModel",
    "UnicornProcessor",
]
