"""SFT's last step (`image_tower_encoder` / `image_tower_mean`): the saved checkpoint is reloaded, given the transfer
encoder's image tower and image processor, and saved again, so that it answers about real images from its folder
alone. A tiny random Unicorn over the tiny timm open_clip encoder; the quickstart checks the real one."""

from __future__ import annotations

import json

import pytest
import torch

from unicorn_fixtures.folder_pipeline import pipeline_answer, project_answer
from unicorn_fixtures.timm_clip import EMBED_DIM, write_tiny_timm_open_clip
from unicorn_hf.encoders import load_encoder
from unicorn_hf.encoders.image_tower import TowerNotCarriable
from unicorn_hf.evaluation.inference import UnicornImageQA
from unicorn_hf.training.builder import build_from_text_model, set_modality_transfer
from unicorn_hf.training.config import UnicornModelConfig
from unicorn_hf.training.image_tower import carry_image_tower, prepare_image_tower
from unicorn_hf.utils.assets import photographs


@pytest.fixture(scope="module")
def encoder_dir(tmp_path_factory):
    return write_tiny_timm_open_clip(tmp_path_factory.mktemp("timm-clip") / "clip")


@pytest.fixture(scope="module")
def image():
    return photographs()[3][1]  # scikit-image's cat


def saved_checkpoint(folder, tiny_lm_path, encoder, image_mean: bool = True):
    """What the trainer saves: a Unicorn checkpoint over `encoder`'s embeddings, without a tower."""
    torch.manual_seed(0)
    model, processor = build_from_text_model(
        tiny_lm_path, embed_dim=EMBED_DIM, projector_type="mlp2x_gelu", num_image_tokens=2,
        encoder_id=encoder.id, encoder=encoder.spec.to_dict(),
    )  # fmt: skip
    set_modality_transfer(model, torch.randn(EMBED_DIM) * 0.1, torch.randn(EMBED_DIM) * 0.1 if image_mean else None)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return model.eval(), processor


def test_the_saved_checkpoint_gets_the_tower_and_answers_from_its_folder(tmp_path, tiny_lm_path, encoder_dir, image):
    encoder = load_encoder(f"local-dir:{encoder_dir}", device="cpu", dtype="float32", batch_size=4)
    folder = tmp_path / "sft"
    model, processor = saved_checkpoint(folder, tiny_lm_path, encoder)
    carried = prepare_image_tower(
        f"local-dir:{encoder_dir}", "image", encoder_id=encoder.id, has_image_mean=True, method="mean_shift"
    )
    record = carry_image_tower(folder, carried)
    assert record == {"class": "TimmWrapperForImageClassification", "image_processor": "TimmWrapperImageProcessor",
                      "encoder_id": encoder.id, "mean": "image"}  # fmt: skip
    config = json.loads((folder / "config.json").read_text())
    assert config["image_tower_mean"] == "image" and config["vision_config"]["model_type"] == "timm_wrapper"
    assert str(tmp_path) not in (folder / "config.json").read_text() + (folder / "processor_config.json").read_text()

    pipeline_text, pipeline_logits = pipeline_answer(folder, image, "What?", max_new_tokens=4)
    answer, logits = project_answer(UnicornImageQA(model, processor, encoder), image, "What?", max_new_tokens=4)
    assert pipeline_text == answer
    torch.testing.assert_close(pipeline_logits, logits, atol=1e-4, rtol=0)


def test_an_encoder_that_cannot_be_carried_fails_before_training_with_the_ways_out(tmp_path, tiny_lm_path):
    folder = write_tiny_timm_open_clip(tmp_path / "clip", proj="mlp")
    encoder = load_encoder(f"local-dir:{folder}", device="cpu", dtype="float32", batch_size=4)
    with pytest.raises(TowerNotCarriable, match=r"Ways out.*<checkpoint>/encoder"):
        prepare_image_tower(
            f"local-dir:{folder}", "image", encoder_id=encoder.id, has_image_mean=True, method="mean_shift"
        )


def test_the_fields_are_checked_before_anything_loads(encoder_dir):
    with pytest.raises(ValueError, match="image_mean_source"):
        prepare_image_tower(f"local-dir:{encoder_dir}", "image", encoder_id=None, has_image_mean=False, method="c3")
    with pytest.raises(ValueError, match=r"method 'capdec' subtracts no image mean .*: use image_tower_mean: none"):
        prepare_image_tower(f"local-dir:{encoder_dir}", "image", encoder_id=None, has_image_mean=True, method="capdec")
    with pytest.raises(ValueError, match="image_tower_mean must be one of"):
        prepare_image_tower(
            f"local-dir:{encoder_dir}", None, encoder_id=None, has_image_mean=True, method="mean_shift"
        )
    with pytest.raises(ValueError, match="transfer stage's encoder"):
        prepare_image_tower(
            f"local-dir:{encoder_dir}", "text", encoder_id="open_clip:other", has_image_mean=True, method="mean_shift"
        )
    with pytest.raises(ValueError, match="image_tower_encoder"):
        UnicornModelConfig(image_tower_mean="image")
