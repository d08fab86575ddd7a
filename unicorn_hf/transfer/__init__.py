"""Stage 3, modality representation transfer: the sharded transfer stage (`pipeline.py`: pass 1 `encoding.py`,
passes 2-3 `writing.py`), its statistics (`statistics.py`, `method_statistics.py`), card and modality-gap diagnostics
(`recipes/transfer.py`). The paired encoders it uses are `unicorn_hf.encoders`."""
