"""An open_clip encoder with a timm image trunk (the quickstart's shape) lives inside a transformers checkpoint: the
trunk in `TimmWrapperForImageClassification`, open_clip's linear head as timm's classifier, open_clip's preprocessing
as `TimmWrapperImageProcessor`. The carried tower gives open_clip's `encode_image` on real photographs, and the saved
folder answers `pipeline("image-text-to-text")` with structured chat messages, remote code included."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest
import torch
import yaml
from transformers import AutoModelForImageTextToText, AutoProcessor, pipeline

from unicorn_fixtures.folder_pipeline import BLOCK_UNICORN_HF, save_with_image_tower
from unicorn_fixtures.timm_clip import EMBED_DIM, write_tiny_timm_open_clip
from unicorn_hf.encoders import load_encoder
from unicorn_hf.encoders.image_tower import TowerNotCarriable, image_tower_from_encoder
from unicorn_hf.evaluation.inference import UnicornImageQA
from unicorn_hf.utils.assets import photographs


NUM_IMAGE_TOKENS = 3
QUESTION = "What is shown?"
GREEDY = {"max_new_tokens": 5, "do_sample": False}


def messages_about(image=None) -> list[dict]:
    """One user turn as the pipeline and `apply_chat_template` take it: structured parts, the image first."""
    image_part = {"type": "image"} if image is None else {"type": "image", "image": image}
    return [{"role": "user", "content": [image_part, {"type": "text", "text": QUESTION}]}]


@pytest.fixture(scope="module")
def images():
    return [image for _, image in photographs()[:5]]


def timm_encoder(folder):
    return load_encoder(f"local-dir:{folder}", device="cpu", dtype="float32", batch_size=8)


def carried_embeddings(encoder, images) -> torch.Tensor:
    """The converted tower + image processor, L2-normalised as the encoder's output is: [N, D]."""
    tower, image_processor = image_tower_from_encoder(encoder)
    pixel_values = image_processor(images=[image.convert("RGB") for image in images])["pixel_values"]  # [N, 3, H, W]
    with torch.no_grad():
        return torch.nn.functional.normalize(tower(pixel_values=pixel_values).logits, dim=-1)


@pytest.mark.parametrize("proj", ["linear", None])  # open_clip's head, or the trunk's own classifier
def test_the_carried_timm_tower_equals_open_clip_encode_image(tmp_path, images, proj):
    encoder = timm_encoder(write_tiny_timm_open_clip(tmp_path / "clip", proj=proj))
    torch.testing.assert_close(carried_embeddings(encoder, images), encoder.encode_image(images), atol=1e-6, rtol=0)


def test_the_quickstart_encoders_real_trunk_is_carried_faithfully(tmp_path, images):
    """The quickstart's towers (packaged EfficientNet-Lite0 weights, MiniLM), its YAML's shape; the projections are
    untrained here, which does not matter for equality."""
    from unicorn_hf.lit.config import EncoderModelArguments
    from unicorn_hf.lit.model import build_pretrained_encoder, save_encoder

    with open("recipes/tiny/encoder.yaml") as handle:
        recipe = yaml.safe_load(handle)
    model_args = EncoderModelArguments(**{name: recipe[name] for name in EncoderModelArguments.__dataclass_fields__})
    torch.manual_seed(0)
    model, config = build_pretrained_encoder(model_args)
    encoder = timm_encoder(save_encoder(model, config, model_args, tmp_path / "encoder"))
    torch.testing.assert_close(carried_embeddings(encoder, images), encoder.encode_image(images), atol=1e-5, rtol=0)


@pytest.mark.parametrize(("proj", "reason"), [("mlp", r"\['mlp'\].*timm_proj: linear"), ("none", "no projection")])
def test_a_head_timm_cannot_hold_is_refused_with_the_ways_out(tmp_path, proj, reason):
    folder = write_tiny_timm_open_clip(tmp_path / "clip", proj=proj)
    encoder = load_encoder(f"local-dir:{folder}", device="cpu", dtype="float32", batch_size=8)
    with pytest.raises(TowerNotCarriable, match=rf"{reason}.*Ways out.*<checkpoint>/encoder.*timm_proj: linear"):
        image_tower_from_encoder(encoder)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, tiny_lm_path, images):
    """A random-init tiny Unicorn over the tiny timm encoder, saved with the tower and the stored image mean."""
    encoder = timm_encoder(write_tiny_timm_open_clip(tmp_path_factory.mktemp("timm-clip") / "clip"))
    folder = tmp_path_factory.mktemp("unicorn") / "sft"
    model, processor = save_with_image_tower(folder, tiny_lm_path, encoder, images, EMBED_DIM, NUM_IMAGE_TOKENS)
    return folder, model, processor, encoder


def embeds_path_tokens(model, processor, encoder, image) -> list[int]:
    """The project's own path (open_clip in Python, the stored image mean, `image_embeds`, string prompt)."""
    qa = UnicornImageQA(model, processor, encoder)
    inputs = processor(text=[qa.format_prompt(QUESTION)], image_embeds=qa.transfer(qa.encode_images([image]), "image"))
    return model.generate(**inputs, **GREEDY)[0, inputs["input_ids"].shape[1] :].tolist()


def test_the_folder_round_trips_the_tower_and_its_processor(checkpoint, images):
    folder, model, processor, encoder = checkpoint
    loaded = AutoModelForImageTextToText.from_pretrained(folder)
    assert loaded.config.vision_config.model_type == "timm_wrapper" and loaded.config.vision_config.num_labels == 16
    for (name, tensor), (loaded_name, loaded_tensor) in zip(
        model.state_dict().items(), loaded.state_dict().items(), strict=True
    ):
        assert name == loaded_name and torch.equal(tensor, loaded_tensor), name
    auto = AutoProcessor.from_pretrained(folder)
    assert type(auto.image_processor).__name__ == "TimmWrapperImageProcessor"
    prompt = auto.apply_chat_template(messages_about(), add_generation_prompt=True, tokenize=False)
    inputs = auto(images=images[:1], text=[prompt])
    shifted = model.transfer_images(encoder.encode_image(images[:1]), image_mean="image")  # [1, D]
    with torch.no_grad():
        torch.testing.assert_close(
            loaded(**inputs).logits, model(**processor(text=[prompt], image_embeds=shifted)).logits, atol=1e-5, rtol=0
        )


def test_pipeline_with_structured_messages_from_the_folder_alone(checkpoint, images):
    folder, model, processor, encoder = checkpoint
    pipe = pipeline("image-text-to-text", model=str(folder))
    result = pipe(text=messages_about(images[1]), generate_kwargs=GREEDY, return_full_text=False)
    expected = embeds_path_tokens(model, processor, encoder, images[1])
    assert result[0]["generated_text"] == processor.tokenizer.decode(expected, skip_special_tokens=True)


REMOTE_PIPELINE = BLOCK_UNICORN_HF + textwrap.dedent(
    """
    import json
    from PIL import Image
    from transformers import AutoProcessor, pipeline

    messages = [{"role": "user", "content": [{"type": "image", "image": Image.open(sys.argv[2])},
                                             {"type": "text", "text": sys.argv[3]}]}]
    pipe = pipeline("image-text-to-text", model=sys.argv[1], trust_remote_code=True)
    result = pipe(text=messages, generate_kwargs={"max_new_tokens": 5, "do_sample": False}, return_full_text=False)
    inputs = AutoProcessor.from_pretrained(sys.argv[1], trust_remote_code=True).apply_chat_template(
        messages, add_generation_prompt=True, tokenize=True, return_dict=True)
    assert "unicorn_hf" not in sys.modules
    print(type(pipe.model).__module__, type(pipe.model.vision_tower).__name__, tuple(inputs["pixel_values"].shape))
    print("GENERATED:" + json.dumps(result[0]["generated_text"]))
    """
)


def test_remote_code_pipeline_with_the_timm_tower_without_the_package(checkpoint, images, tmp_path):
    folder, model, processor, encoder = checkpoint
    image_path = tmp_path / "image.png"
    images[2].save(image_path)
    result = subprocess.run(
        [sys.executable, "-c", REMOTE_PIPELINE, str(folder), str(image_path), QUESTION],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert "transformers_modules" in result.stdout and "TimmWrapperForImageClassification" in result.stdout
    assert "(1, 3, 64, 64)" in result.stdout
    from PIL import Image

    expected = embeds_path_tokens(model, processor, encoder, Image.open(image_path))
    generated = json.loads(result.stdout.split("GENERATED:", 1)[1])
    assert generated == processor.tokenizer.decode(expected, skip_special_tokens=True)
