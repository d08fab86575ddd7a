"""The modality transfer rule (`unicorn_hf.modeling.modality_transfer`): every method against a hand computation, the
training side equal to what the model applies, train-time noise only in train mode, checkpoints that repeat their
method in `pipeline()` (also as remote code with unicorn_hf blocked), and bad settings refused before heavy work."""

from __future__ import annotations

import math
import subprocess
import sys
import textwrap

import pytest
import torch
import torch.nn.functional as F

from unicorn_fixtures.folder_pipeline import BLOCK_UNICORN_HF, pipeline_answer
from unicorn_fixtures.hf_clip import EMBED_DIM, write_tiny_hf_clip
from unicorn_hf.encoders import load_encoder
from unicorn_hf.evaluation.inference import UnicornImageQA
from unicorn_hf.modeling.modality_transfer import (
    TRANSFER_METHODS,
    TransferSettings,
    add_training_noise,
    project_onto_memory,
    realign_first_step,
    realign_scale,
    transfer_image,
    transfer_text,
)
from unicorn_hf.training.builder import build_from_text_model, set_modality_transfer
from unicorn_hf.training.image_tower import attach_encoder_image_tower
from unicorn_hf.transfer.config import TransferArguments
from unicorn_hf.transfer.statistics import TransferStatistics
from unicorn_hf.utils.assets import photographs


# Two unit vectors in 2-d and hand-picked means, so every formula can be checked with pencil and paper.
U = torch.tensor([[1.0, 0.0], [0.6, 0.8]])
TEXT_MEAN = torch.tensor([0.8, 0.4])  # U.mean(0)
IMAGE_MEAN = torch.tensor([0.0, 0.6])


def n(x: torch.Tensor) -> torch.Tensor:
    return x / x.norm(dim=-1, keepdim=True)


def test_none_mean_shift_capdec_and_c3_by_hand():
    stats = {"text_mean": TEXT_MEAN, "image_mean": IMAGE_MEAN}
    assert torch.equal(transfer_text(U, TransferSettings(method="none"), stats), U)
    shift = TransferSettings(method="mean_shift", renormalize=False)
    torch.testing.assert_close(transfer_text(U, shift, stats), torch.tensor([[0.2, -0.4], [-0.2, 0.4]]))
    torch.testing.assert_close(transfer_image(U, shift, stats, IMAGE_MEAN), torch.tensor([[1.0, -0.6], [0.6, 0.2]]))
    renormalised = TransferSettings(method="mean_shift", renormalize=True)
    r = math.sqrt(0.2)
    torch.testing.assert_close(transfer_text(U, renormalised, stats), torch.tensor([[0.2, -0.4], [-0.2, 0.4]]) / r)
    ideal = TransferSettings(method="mean_shift", renormalize=False, add_image_mean=True)
    torch.testing.assert_close(transfer_text(U, ideal, stats), torch.tensor([[0.2, 0.2], [-0.2, 1.0]]))
    torch.testing.assert_close(transfer_image(U, ideal, stats), U)  # images as they come
    # CapDec: n(u) (already unit) and n(x) at inference.
    capdec = TransferSettings(method="capdec", noise_std=0.1)
    torch.testing.assert_close(transfer_text(2 * U, capdec, stats), U)
    torch.testing.assert_close(transfer_image(3 * U, capdec, stats), U)
    # C3: n(n(u) - mu_T) on both sides, with each side's own mean: [0.2, -0.4] / sqrt(0.2) and [1.0, -0.6] / |.|.
    c3 = TransferSettings(method="c3", noise_std=0.1)
    torch.testing.assert_close(transfer_text(U, c3, stats)[0], torch.tensor([0.2, -0.4]) / r)
    torch.testing.assert_close(
        transfer_image(U, c3, stats, IMAGE_MEAN)[0], torch.tensor([1.0, -0.6]) / math.sqrt(1.36)
    )


def test_realign_by_hand():
    # tr(Sigma_T) = 1 - |mu_T|^2 = 0.2, tr(Sigma_I) = 1 - 0.36 = 0.64: s = sqrt(3.2).
    scale = realign_scale(TEXT_MEAN, IMAGE_MEAN)
    assert scale == pytest.approx(math.sqrt(3.2), rel=1e-6)
    first = realign_first_step(U, TEXT_MEAN, IMAGE_MEAN, scale)  # n(s (u - mu_T) + mu_I)
    torch.testing.assert_close(first[0], n(torch.tensor([0.2, -0.4]) * math.sqrt(3.2) + IMAGE_MEAN))
    mean_hat = first.mean(0)
    stats = {"text_mean": TEXT_MEAN, "image_mean": IMAGE_MEAN, "realign_mean": mean_hat,
             "realign_scale": torch.tensor(scale)}  # fmt: skip
    realign = TransferSettings(method="realign")
    torch.testing.assert_close(transfer_text(U, realign, stats), n(first - mean_hat + IMAGE_MEAN))
    torch.testing.assert_close(transfer_image(2 * U, realign, stats), U)  # images as they come, unit norm


def test_memory_projection_by_hand_and_a_memory_row_returns_itself_at_small_temperature():
    memory = F.normalize(torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]]), dim=-1)
    # x = [1, 0]: similarities [1, 0, 0.6]; at tau = 1 the weights are softmax([1, 0, 0.6]).
    weights = torch.softmax(torch.tensor([1.0, 0.0, 0.6]), dim=-1)
    expected = n(weights @ memory)
    torch.testing.assert_close(project_onto_memory(torch.tensor([[1.0, 0.0]]), memory, 1.0)[0], expected)
    torch.testing.assert_close(project_onto_memory(memory, memory, 1e-3), memory)
    # DeCap as a method: text side n(u), image side the projection; on top of the mean shift it takes the text side.
    decap = TransferSettings(method="memory_projection", memory_size=3, memory_temperature=1e-3)
    stats = {"text_mean": TEXT_MEAN, "memory": memory}
    torch.testing.assert_close(transfer_image(memory[1:2] * 2, decap, stats), memory[1:2])
    on_shift = TransferSettings(method="mean_shift", renormalize=False, memory_size=3, memory_temperature=1e-3,
                                project_images_onto_memory=True)  # fmt: skip
    torch.testing.assert_close(transfer_image(memory[:1], on_shift, stats), memory[:1] - TEXT_MEAN)


def test_noise_is_fresh_unit_norm_and_only_for_the_noise_methods():
    v = F.normalize(torch.randn(64, 8), dim=-1)
    capdec = TransferSettings(method="capdec", noise_std=0.1)
    torch.manual_seed(0)
    first, second = add_training_noise(v, capdec), add_training_noise(v, capdec)
    assert not torch.equal(first, second)  # drawn afresh in every call (CapDec's and C3's per-step noise)
    torch.testing.assert_close(first.norm(dim=-1), torch.ones(64))
    spread = (first - v).norm(dim=-1).mean()
    assert 0.1 < spread < 0.5  # sigma = 0.1 in 8 dimensions: |eps| ~ 0.1 * sqrt(8) = 0.28 before re-normalising
    assert add_training_noise(v, TransferSettings(method="mean_shift", renormalize=True)) is v


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"method": "shift"}, r"`method`='shift' is unknown; expected one of \('none', 'mean_shift'"),
        ({"method": "mean_shift"}, "`renormalize` must be true or false for method 'mean_shift'"),
        ({"method": "capdec"}, "'capdec' needs `noise_std` > 0"),
        ({"method": "c3", "noise_std": -1.0}, "'c3' needs `noise_std` > 0"),
        ({"method": "none", "noise_std": 0.1}, "`noise_std`=0.1 is set but method 'none' adds no noise"),
        ({"method": "capdec", "noise_std": 0.1, "renormalize": False}, "method 'capdec' fixes it to True"),
        ({"method": "memory_projection", "memory_temperature": 0.01}, "but `memory_size` is 0"),
        ({"method": "memory_projection", "memory_size": 4}, "needs `memory_temperature` > 0"),
        ({"method": "realign", "add_image_mean": True}, "`add_image_mean` is a 'mean_shift' option"),
        ({"method": "none", "memory_sise": 4}, r"unknown keys \['memory_sise'\]"),
    ],
)
def test_bad_settings_name_the_field(settings, message):
    with pytest.raises(ValueError, match=message):
        TransferSettings.from_dict(settings)


def _transfer_args(**overrides) -> TransferArguments:
    args = {"captions_path": "does-not-exist", "output_dir": "never-written", "shard_size": 8, "method": "mean_shift",
            "renormalize": True}  # fmt: skip
    return TransferArguments(**{**args, **overrides})


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"method": "memory_projection", "renormalize": None}, "but `memory_size` is 0"),
        ({"method": "realign", "renormalize": None}, "method 'realign' .* needs `image_mean_source`"),
        ({"method": "c3", "renormalize": None, "noise_std": 0.126}, "method 'c3' .* needs `image_mean_source`"),
        ({"method": "decap"}, "`method`='decap' is unknown"),
        ({"memory_size": 16}, "memory_size and memory_source go together"),
        ({"memory_size": 16, "memory_source": "captions"}, "`seed` is not"),
        (
            {"memory_size": 0, "memory_source": "captions", "seed": 0},
            "must be positive, got 0; for no memory",
        ),
        ({"memory_size": 16, "memory_source": "no/such/titles.txt", "seed": 0}, "'no/such/titles.txt' is neither"),
        ({"method": "none"}, "leave it unset .* or pass `--renormalize false`"),
    ],
)
def test_the_transfer_stage_refuses_bad_settings_before_any_heavy_work(overrides, message):
    with pytest.raises(ValueError, match=message):
        _transfer_args(**overrides)  # the inputs do not exist: nothing is read before this check


# --- checkpoints repeat their method ------------------------------------------------------------------------------

NUM_IMAGE_TOKENS = 2
MEMORY_SIZE = 5
METHOD_SETTINGS = {
    "none": {"method": "none"},
    "mean_shift": {"method": "mean_shift", "renormalize": True},
    "capdec": {"method": "capdec", "noise_std": 0.126},
    "c3": {"method": "c3", "noise_std": 0.126},
    "realign": {"method": "realign"},
    "memory_projection": {"method": "memory_projection", "memory_size": MEMORY_SIZE, "memory_temperature": 0.01},
}


def test_every_method_has_a_checkpoint_case():
    assert set(METHOD_SETTINGS) == set(TRANSFER_METHODS)


@pytest.fixture(scope="module")
def encoder(tmp_path_factory):
    folder = write_tiny_hf_clip(tmp_path_factory.mktemp("tiny-hf-clip"))
    return load_encoder(f"hf:{folder}", device="cpu", dtype="float32", batch_size=4)


@pytest.fixture(scope="module")
def images():
    return [image for _, image in photographs()[:3]]


def _statistics(encoder, images, settings: dict) -> TransferStatistics:
    """Statistics as the transfer stage makes them, over a few captions and the photographs as unlabeled images."""
    captions = ["a cat on a sofa", "a red bus in a street", "a bowl of fruit", "a coffee cup", "an astronaut"]
    u = encoder.encode_text(captions)  # [5, D]
    text_mean, image_mean = u.mean(0), encoder.encode_image(images).mean(0)
    scale = realign_scale(text_mean, image_mean)
    return TransferStatistics(
        encoder_id=encoder.id, dim=encoder.dim, text_mean=text_mean, num_rows=len(captions), normalized_input=True,
        settings=TransferSettings.from_dict(settings), image_mean=image_mean, num_images=len(images),
        realign_mean=realign_first_step(u, text_mean, image_mean, scale).mean(0), realign_scale=scale,
        memory=F.normalize(u, dim=-1) if settings.get("memory_size") else None,
    )  # fmt: skip


@pytest.fixture(scope="module", params=sorted(METHOD_SETTINGS))
def method_checkpoint(request, tmp_path_factory, tiny_lm_path, encoder, images):
    """A tiny Unicorn that stores each method's statistics, saved with the encoder's image tower."""
    settings = METHOD_SETTINGS[request.param]
    stats = _statistics(encoder, images, settings)
    torch.manual_seed(0)
    model, processor = build_from_text_model(
        tiny_lm_path, embed_dim=EMBED_DIM, projector_type="mlp2x_gelu", num_image_tokens=NUM_IMAGE_TOKENS,
        encoder_id=encoder.id, encoder=encoder.spec.to_dict(), modality_transfer=stats.settings.to_dict(),
    )  # fmt: skip
    set_modality_transfer(model, **stats.model_kwargs())
    mean = "image" if request.param in ("mean_shift", "c3") else "none"
    attach_encoder_image_tower(model, processor, encoder, mean=mean)
    folder = tmp_path_factory.mktemp(request.param) / "sft"
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return request.param, folder, model.eval(), processor, stats


def test_the_model_applies_what_the_transfer_stage_stored(method_checkpoint, encoder, images):
    """Training side: a caption's embedding through the model's text rule equals the stored training vector; image
    side: the model's and the statistics' image rule agree, before and after a save/load round trip."""
    from transformers import AutoModelForImageTextToText

    method, folder, model, _, stats = method_checkpoint
    u = encoder.encode_text(["a cat on a sofa", "a red bus in a street"])
    x = encoder.encode_image(images)
    reloaded = AutoModelForImageTextToText.from_pretrained(folder)
    assert reloaded.config.modality_transfer == stats.settings.to_dict()
    for candidate in (model, reloaded):
        torch.testing.assert_close(candidate.transfer_texts(u), stats.embed_text(u))
        torch.testing.assert_close(candidate.transfer_images(x), stats.embed_image(x), atol=1e-6, rtol=0)
    if method == "memory_projection":  # its image side lands on the memory: a memory row returns itself
        torch.testing.assert_close(reloaded.transfer_images(stats.memory[:2]), stats.memory[:2], atol=1e-4, rtol=0)


def test_noise_is_added_in_train_mode_only(method_checkpoint):
    method, _, model, _, stats = method_checkpoint
    image_embeds = stats.embed_text(stats.text_mean[None].repeat(2, 1))  # [2, D]
    eval_features = model.get_image_features(image_embeds=image_embeds).last_hidden_state
    model.train()
    try:
        train_features = model.get_image_features(image_embeds=image_embeds).last_hidden_state
    finally:
        model.eval()
    assert torch.equal(model.get_image_features(image_embeds=image_embeds).last_hidden_state, eval_features)
    assert torch.equal(train_features, eval_features) == (method not in ("capdec", "c3"))


def test_pipeline_answers_through_the_method(method_checkpoint, encoder, images):
    """`pipeline("image-text-to-text")` on the folder alone equals the project's path through the same rule."""
    _, folder, model, processor, _ = method_checkpoint
    _, logits = pipeline_answer(folder, images[0], "What is shown?", max_new_tokens=3)
    qa = UnicornImageQA(model, processor, encoder)
    embeds = qa.transfer(qa.encode_images(images[:1]), qa.resolve_mean("image"))  # [1, D]
    inputs = processor(text=[qa.format_prompt("What is shown?")], image_embeds=embeds)
    with torch.no_grad():
        expected = model(**inputs).logits[0, -1].float()
    torch.testing.assert_close(logits, expected, atol=1e-4, rtol=0)


REMOTE_SCRIPT = BLOCK_UNICORN_HF + textwrap.dedent(
    """
    import json, torch
    from PIL import Image
    from transformers import pipeline

    folder, embeds, image = sys.argv[1], torch.tensor(json.loads(sys.argv[2])), Image.open(sys.argv[3])
    pipe = pipeline("image-text-to-text", model=folder, trust_remote_code=True)
    messages = [{"role": "user", "content": [{"type": "image", "image": image}, {"type": "text", "text": "What?"}]}]
    inputs = pipe.processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=True, return_dict=True)
    with torch.no_grad():
        logits = pipe.model(**inputs).logits[0, -1].float()
    print(json.dumps({"transfer": pipe.model.transfer_images(embeds).tolist(), "logits": logits[:64].tolist()}))
    """
)


def test_remote_code_repeats_the_method_with_unicorn_hf_blocked(method_checkpoint, encoder, images, tmp_path):
    """With unicorn_hf not importable, the folder's own code (modality_transfer.py beside modeling_unicorn.py)
    applies the method: the image side and `pipeline()`'s first-token logits equal the package's."""
    import json
    import shutil

    method, folder, model, _, _ = method_checkpoint
    copy = tmp_path / "remote"
    shutil.copytree(folder, copy)
    config = json.loads((copy / "config.json").read_text())
    assert (copy / "modality_transfer.py").is_file() and config["modality_transfer"]["method"] == method
    images[0].save(tmp_path / "photo.png")
    x = encoder.encode_image(images[:2])
    result = subprocess.run(
        [sys.executable, "-c", REMOTE_SCRIPT, str(copy), json.dumps(x.tolist()), str(tmp_path / "photo.png")],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    remote = json.loads(result.stdout.strip().splitlines()[-1])
    torch.testing.assert_close(torch.tensor(remote["transfer"]), model.transfer_images(x), atol=1e-6, rtol=0)
    _, logits = pipeline_answer(folder, images[0], "What?", max_new_tokens=1)
    torch.testing.assert_close(torch.tensor(remote["logits"]), logits[:64], atol=1e-4, rtol=0)


def test_a_memory_of_another_width_or_size_is_refused(tiny_lm_path, encoder, images):
    stats = _statistics(encoder, images, METHOD_SETTINGS["memory_projection"])
    model, _ = build_from_text_model(
        tiny_lm_path, embed_dim=EMBED_DIM, projector_type="linear", num_image_tokens=1, encoder_id=encoder.id
    )
    wide = {**stats.model_kwargs(), "memory": torch.zeros(MEMORY_SIZE, EMBED_DIM + 1)}
    with pytest.raises(ValueError, match=rf"memory has shape \({MEMORY_SIZE}, {EMBED_DIM + 1}\), expected"):
        set_modality_transfer(model, **wide)
    with pytest.raises(ValueError, match=r"needs \['memory'\]"):
        set_modality_transfer(model, **{**stats.model_kwargs(), "memory": None})
    with pytest.raises(ValueError, match=r"memory has shape \(3, .*\), expected \(5, .*\) for"):
        TransferStatistics(**{**vars(stats), "memory": stats.memory[:3]})
