"""Paired text/image encoders behind one small interface.

    encoder = load_encoder("ViT-B-32", pretrained="laion2b_s34b_b79k", device="cuda", dtype="float16", batch_size=256)
    u = encoder.encode_text(["a photo of a cat"])  # [N, D] float32, L2-normalised
    w = encoder.encode_image([pil_image])  # [N, D] float32, L2-normalised

- `spec.py`: `EncoderSpec`, what an encoder is and its id (written there, never parsed back), and content
  fingerprints;
- `base.py`: `PairedEncoder`, the interface every stage uses (batching, inference mode, L2 normalisation);
- one file per backend: `open_clip_encoder.py`, `hf_clip_encoder.py`, `llm2clip_encoder.py`;
- `loading.py`: `load_encoder` (a spec string) and `load_encoder_from_spec` (a stored `EncoderSpec`);
- `image_tower.py`: the encoder's image tower as a transformers module that a checkpoint carries.
"""

from unicorn_hf.encoders.base import PairedEncoder, resolve_dtype
from unicorn_hf.encoders.hf_clip_encoder import HFClipEncoder
from unicorn_hf.encoders.llm2clip_encoder import LLM2ClipEncoder
from unicorn_hf.encoders.loading import load_encoder, load_encoder_for, load_encoder_from_spec
from unicorn_hf.encoders.open_clip_encoder import MODEL_CONFIGS, OpenClipEncoder, text_tower_in_folder
from unicorn_hf.encoders.spec import (
    HF_PREFIX,
    LLM2CLIP_PREFIX,
    LOCAL_DIR_PREFIX,
    EncoderSpec,
    fingerprint_files,
    fingerprint_hf_folder,
    fingerprint_open_clip_folder,
)


__all__ = [
    "HF_PREFIX",
    "LLM2CLIP_PREFIX",
    "LOCAL_DIR_PREFIX",
    "MODEL_CONFIGS",
    "EncoderSpec",
    "HFClipEncoder",
    "LLM2ClipEncoder",
    "OpenClipEncoder",
    "PairedEncoder",
    "fingerprint_files",
    "fingerprint_hf_folder",
    "fingerprint_open_clip_folder",
    "load_encoder",
    "load_encoder_for",
    "load_encoder_from_spec",
    "resolve_dtype",
    "text_tower_in_folder",
]
