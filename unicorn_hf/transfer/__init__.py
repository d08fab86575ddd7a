"""Stage 3, modality representation transfer: paired encoders, mean-shift statistics, the sharded transfer stage and
modality-gap diagnostics (`recipes/transfer.py`)."""

from unicorn_hf.encoders import PairedEncoder, load_encoder
from unicorn_hf.transfer.statistics import TransferStatistics


__all__ = ["PairedEncoder", "TransferStatistics", "load_encoder"]
