"""A checkpoint that works from its folder alone: the model carries the paired encoder's frozen image tower and the
shift (as LLaVA carries `vision_tower`), the processor its image processor, so `pipeline("image-text-to-text",
model=folder)` and `AutoProcessor(images=..., text=...)` need nothing else, remote code included. An open_clip-only
tower cannot be carried, and the error says what to do instead. Training never touches pixels."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
import torch
from safetensors import safe_open
from transformers import AutoModelForImageTextToText, AutoProcessor, pipeline

from unicorn_fixtures.evaluation import write_tiny_open_clip
from unicorn_fixtures.folder_pipeline import BLOCK_UNICORN_HF, save_with_image_tower
from unicorn_fixtures.hf_clip import EMBED_DIM, write_tiny_hf_clip
from unicorn_hf.encoders import load_encoder
from unicorn_hf.evaluation.inference import UnicornImageQA, image_tower_from_encoder
from unicorn_hf.training.builder import build_from_text_model
from unicorn_hf.utils.assets import photographs


NUM_IMAGE_TOKENS = 3
PROMPT = "<image>\nWhat is shown?"
GREEDY = {"max_new_tokens": 5, "do_sample": False}


@pytest.fixture(scope="module")
def encoder(tmp_path_factory):
    folder = write_tiny_hf_clip(tmp_path_factory.mktemp("tiny-hf-clip"))
    return load_encoder(f"hf:{folder}", device="cpu", dtype="float32", batch_size=4)


@pytest.fixture(scope="module")
def images():
    return [image for _, image in photographs()[:3]]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, tiny_lm_path, encoder, images):
    """A Unicorn checkpoint trained (here: built) on the tiny CLIP's embeddings, saved with its image tower."""
    folder = tmp_path_factory.mktemp("unicorn") / "sft"
    model, processor = save_with_image_tower(folder, tiny_lm_path, encoder, images, EMBED_DIM, NUM_IMAGE_TOKENS)
    return folder, model, processor


def embeds_path_generation(model, processor, encoder, image, prompt=PROMPT):
    """The project's own path (encoder in Python, shift, `image_embeds`): what the folder-alone path must equal."""
    qa = UnicornImageQA(model, processor, encoder)
    shifted = qa.transfer(qa.encode_images([image]), "image")  # [1, D]
    inputs = processor(text=[prompt], image_embeds=shifted)
    return model.generate(**inputs, **GREEDY)[0, inputs["input_ids"].shape[1] :]


def test_pipeline_from_the_folder_alone_equals_the_encoder_path(checkpoint, encoder, images):
    folder, model, processor = checkpoint
    pipe = pipeline("image-text-to-text", model=str(folder))
    assert pipe.model.vision_tower is not None and pipe.processor.image_processor is not None
    result = pipe(images=images[0], text=PROMPT, generate_kwargs=GREEDY, return_full_text=False)
    expected = embeds_path_generation(model, processor, encoder, images[0])
    assert result[0]["generated_text"] == processor.tokenizer.decode(expected, skip_special_tokens=True)


def test_auto_processor_gives_pixel_values_and_the_same_logits(checkpoint, encoder, images):
    folder, model, processor = checkpoint
    loaded = AutoModelForImageTextToText.from_pretrained(folder).eval()
    auto = AutoProcessor.from_pretrained(folder)
    auto.tokenizer.padding_side = processor.tokenizer.padding_side  # UnicornImageQA pads the shared one on the left
    inputs = auto(images=images[:2], text=[PROMPT, "<image> a photo"], padding=True)
    assert inputs["pixel_values"].shape[0] == 2 and "image_embeds" not in inputs
    shifted = model.transfer_images(encoder.encode_image(images[:2]), image_mean="image")  # [2, D]
    by_embeds = processor(text=[PROMPT, "<image> a photo"], image_embeds=shifted, padding=True)
    with torch.no_grad():
        torch.testing.assert_close(loaded(**inputs).logits, model(**by_embeds).logits, atol=1e-5, rtol=1e-4)
    # the tower travels under its own names on disk (frozen in training: test_training_never_touches_the_tower)
    with safe_open(str(folder / "model.safetensors"), "pt") as weights:
        keys = list(weights.keys())
    assert any(key.startswith("vision_tower.vision_model.") for key in keys)


REMOTE_PIPELINE = BLOCK_UNICORN_HF + textwrap.dedent(
    """
    from PIL import Image
    from transformers import pipeline

    pipe = pipeline("image-text-to-text", model=sys.argv[1], trust_remote_code=True)
    result = pipe(images=Image.open(sys.argv[2]), text=sys.argv[3], generate_kwargs={"max_new_tokens": 5,
                  "do_sample": False}, return_full_text=False)
    assert "unicorn_hf" not in sys.modules
    print(type(pipe.model).__module__)
    print("GENERATED:" + result[0]["generated_text"])
    """
)


def test_remote_code_pipeline_without_the_package(checkpoint, encoder, images, tmp_path):
    folder, model, processor = checkpoint
    image_path = tmp_path / "image.png"
    images[1].save(image_path)
    result = subprocess.run(
        [sys.executable, "-c", REMOTE_PIPELINE, str(folder), str(image_path), PROMPT],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert "transformers_modules" in result.stdout
    from PIL import Image

    expected = embeds_path_generation(model, processor, encoder, Image.open(image_path))
    generated = result.stdout.split("GENERATED:", 1)[1].rstrip("\n")
    assert generated == processor.tokenizer.decode(expected, skip_special_tokens=True)


def test_an_open_clip_tower_cannot_be_carried_and_the_error_names_the_way_out(tmp_path):
    folder = write_tiny_open_clip(tmp_path / "clip")
    open_clip_encoder = load_encoder(f"local-dir:{folder}", device="cpu", dtype="float32", batch_size=2, init_seed=0)
    with pytest.raises(ValueError, match=r"cannot live inside a transformers checkpoint.*Ways out.*encoder: hf:"):
        image_tower_from_encoder(open_clip_encoder)


def test_without_a_tower_pixels_are_refused_clearly(tiny_lm_path, images):
    model, processor = build_from_text_model(
        tiny_lm_path, embed_dim=EMBED_DIM, projector_type="linear", num_image_tokens=NUM_IMAGE_TOKENS
    )
    with pytest.raises(ValueError, match=r"no image processor.*image_embeds"):
        processor(text=[PROMPT], images=[images[0]])
    input_ids = processor(text=[PROMPT], image_embeds=torch.zeros(1, EMBED_DIM))["input_ids"]
    with pytest.raises(ValueError, match=r"carries no image tower.*transfer_images"):
        model(input_ids=input_ids, pixel_values=torch.zeros(1, 3, 32, 32))


def test_training_never_touches_the_tower(checkpoint):
    """The tower stays frozen whatever trains, and the training collator feeds embeddings, never pixels."""
    from unicorn_hf.training.collator import UnicornDataCollator
    from unicorn_hf.training.config import UnicornModelConfig
    from unicorn_hf.training.setup import set_trainable_parts

    folder, _, processor = checkpoint
    model = AutoModelForImageTextToText.from_pretrained(folder)
    set_trainable_parts(model, UnicornModelConfig(train_projector=True, train_language_model=True), "sft")
    assert all(p.requires_grad for p in model.language_model.parameters())
    assert not any(p.requires_grad for p in model.vision_tower.parameters())
    collator = UnicornDataCollator(processor.tokenizer.pad_token_id, processor.image_token_id, NUM_IMAGE_TOKENS)
    image = processor.image_token_id
    batch = collator([{"input_ids": [1, image, 5], "loss_mask": [0, 0, 1], "image_embeds": [0.0] * EMBED_DIM}])
    assert "pixel_values" not in batch and batch["image_embeds"].shape == (1, EMBED_DIM)
