"""The Unicorn model under transformers' own tooling: every generation mode, caches, padding, compile/export, TRL's
fused LM head. transformers' `ModelTesterMixin` / `GenerationTesterMixin` are not installed with the library, so the
checks they run for LLaVA are written out here, on tiny random-init Llama (RoPE) and GPT-2 (absolute positions) text
backbones. Each generation result is compared with an oracle that does not go through `generate`: a step-by-step
greedy loop of full forward passes with the image embeddings (so a mode that silently dropped the image would fail).

Issue 15's eight failing cases, with the test that now holds each:
1. continue from the returned cache ............ test_continue_from_cache_equals_one_generation
2. assisted decoding ........................... test_assisted_decoding_equals_greedy
3. left padding with absolute positions ........ test_left_padding_gives_the_unpadded_tokens[gpt2] (and [llama])
4. `logits_to_keep` at prefill ................. test_prefill_projects_only_the_last_position
5. `inputs_embeds` in forward and generate ..... test_inputs_embeds_forward_and_generate
6. `shift_labels` never score `<image>` ........ test_shift_labels_never_score_image_positions
7. export / compile(fullgraph) of the prefill .. test_export_and_fullgraph_compile_of_the_prefill
8. `base_model` for TRL's fused LM head ........ test_base_model_is_the_backbone_and_trl_fused_head_matches
"""

from __future__ import annotations

import copy

import pytest
import torch
from transformers import CompileConfig, GPT2Config, LlamaConfig, LlamaForCausalLM

from unicorn_hf import UnicornConfig, UnicornForConditionalGeneration, UnicornModel


IMAGE_TOKEN_ID = 63
EMBED_DIM = 16
NUM_IMAGE_TOKENS = 3
VOCAB = 64
PAD = 0
# Random-init weights at transformers' default scale (0.02) make a tiny LM repeat one token forever, and then every
# generation mode agrees for the wrong reason; a wider init gives varied continuations that an error would change.
INIT_RANGE = 0.5
GREEDY = {"do_sample": False, "pad_token_id": PAD, "eos_token_id": None}


def text_config(kind: str, num_layers: int = 2):
    if kind == "llama":
        return LlamaConfig(
            vocab_size=VOCAB,
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=num_layers,
            num_attention_heads=4,
            num_key_value_heads=2,
            max_position_embeddings=64,
            tie_word_embeddings=True,
            pad_token_id=PAD,
            bos_token_id=1,
            eos_token_id=2,
            initializer_range=INIT_RANGE,
        )
    return GPT2Config(
        vocab_size=VOCAB,
        n_embd=32,
        n_layer=num_layers,
        n_head=4,
        n_positions=64,
        pad_token_id=PAD,
        bos_token_id=1,
        eos_token_id=2,
        initializer_range=INIT_RANGE,
    )


def build(kind: str = "llama", num_layers: int = 2, seed: int = 0) -> UnicornForConditionalGeneration:
    config = UnicornConfig(
        text_config=text_config(kind, num_layers),
        embed_dim=EMBED_DIM,
        num_image_tokens=NUM_IMAGE_TOKENS,
        image_token_id=IMAGE_TOKEN_ID,
    )
    torch.manual_seed(seed)
    return UnicornForConditionalGeneration(config).eval()


@pytest.fixture(params=["llama", "gpt2"])
def model(request) -> UnicornForConditionalGeneration:
    return build(request.param)


def prompt(text: list[int]) -> list[int]:
    return [1, *[IMAGE_TOKEN_ID] * NUM_IMAGE_TOKENS, *text]


def batch(num_rows: int = 2, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """[B, T] prompts (BOS, the image tokens, 4 text tokens) and [B, D] image embeddings."""
    generator = torch.Generator().manual_seed(seed)
    input_ids = torch.tensor([prompt([5 + i, 6 + 2 * i, 7, 8]) for i in range(num_rows)])
    return input_ids, torch.randn(num_rows, EMBED_DIM, generator=generator) * 3


@torch.no_grad()
def reference_greedy(model, input_ids: torch.Tensor, image_embeds: torch.Tensor, steps: int) -> torch.Tensor:
    """Greedy decoding by full forward passes without a cache or `generate` ([B, T + steps])."""
    ids = input_ids
    for _ in range(steps):
        logits = model(input_ids=ids, image_embeds=image_embeds, use_cache=False).logits[:, -1]  # [B, V]
        logits[:, IMAGE_TOKEN_ID] = float("-inf")  # generate never emits the placeholder either
        ids = torch.cat([ids, logits.argmax(-1, keepdim=True)], dim=-1)
    return ids


# ---- every generation mode -----------------------------------------------------------------------------------------
def test_greedy_matches_step_by_step_forward_and_uses_the_image(model):
    input_ids, image_embeds = batch()
    expected = reference_greedy(model, input_ids, image_embeds, steps=6)
    for use_cache in (True, False):
        generated = model.generate(
            input_ids=input_ids, image_embeds=image_embeds, max_new_tokens=6, use_cache=use_cache, **GREEDY
        )
        torch.testing.assert_close(generated, expected)
    # the first step's logits are the image-conditioned ones, not those of the bare `<image>` token embeddings
    out = model.generate(
        input_ids=input_ids, image_embeds=image_embeds, max_new_tokens=1, output_logits=True,
        return_dict_in_generate=True, **GREEDY,
    )  # fmt: skip
    with torch.no_grad():
        with_image = model(input_ids=input_ids, image_embeds=image_embeds).logits[:, -1]
        without_image = model(input_ids=input_ids).logits[:, -1]
    torch.testing.assert_close(out.logits[0], with_image)
    assert not torch.allclose(out.logits[0], without_image, atol=1e-2)


def test_sampling_is_seeded_and_top1_sampling_is_greedy(model):
    input_ids, image_embeds = batch()
    runs = []
    for use_cache in (True, False):
        torch.manual_seed(7)
        runs.append(
            model.generate(
                input_ids=input_ids, image_embeds=image_embeds, max_new_tokens=6, do_sample=True,
                use_cache=use_cache, pad_token_id=PAD, eos_token_id=None,
            )
        )  # fmt: skip
    torch.testing.assert_close(runs[0], runs[1])
    top1 = model.generate(
        input_ids=input_ids, image_embeds=image_embeds, max_new_tokens=6, do_sample=True, top_k=1,
        pad_token_id=PAD, eos_token_id=None,
    )  # fmt: skip
    torch.testing.assert_close(top1, reference_greedy(model, input_ids, image_embeds, steps=6))
    # several samples per prompt: the image of row i conditions all of row i's samples
    many = model.generate(
        input_ids=input_ids, image_embeds=image_embeds, max_new_tokens=1, do_sample=True, num_return_sequences=3,
        output_logits=True, return_dict_in_generate=True, pad_token_id=PAD, eos_token_id=None,
    )  # fmt: skip
    with torch.no_grad():
        expected = model(input_ids=input_ids, image_embeds=image_embeds).logits[:, -1]  # [B, V]
    torch.testing.assert_close(many.logits[0], expected.repeat_interleave(3, dim=0))


def test_beam_search_uses_the_image_with_and_without_cache(model):
    input_ids, image_embeds = batch()
    kwargs = {"max_new_tokens": 5, "num_beams": 3, "num_return_sequences": 2, **GREEDY}
    cached = model.generate(input_ids=input_ids, image_embeds=image_embeds, use_cache=True, **kwargs)
    uncached = model.generate(input_ids=input_ids, image_embeds=image_embeds, use_cache=False, **kwargs)
    assert cached.shape == (4, input_ids.shape[1] + 5)
    torch.testing.assert_close(cached, uncached)
    # every beam of row i starts from row i's image-conditioned logits
    out = model.generate(
        input_ids=input_ids, image_embeds=image_embeds, max_new_tokens=1, num_beams=3, output_logits=True,
        return_dict_in_generate=True, **GREEDY,
    )  # fmt: skip
    with torch.no_grad():
        expected = model(input_ids=input_ids, image_embeds=image_embeds).logits[:, -1]
    torch.testing.assert_close(out.logits[0], expected.repeat_interleave(3, dim=0))
    # one beam is greedy search
    one_beam = model.generate(input_ids=input_ids, image_embeds=image_embeds, max_new_tokens=5, num_beams=1, **GREEDY)
    torch.testing.assert_close(one_beam, reference_greedy(model, input_ids, image_embeds, steps=5))


@pytest.mark.parametrize("assistant_kind", ["unicorn", "plain-llama"])
def test_assisted_decoding_equals_greedy(assistant_kind):
    """Issue 15, case 2: an assistant (a smaller Unicorn model, or a plain LM drafting from the `<image>` token ids)
    only proposes tokens; the result is the main model's greedy search."""
    model = build("llama")
    if assistant_kind == "unicorn":
        assistant = build("llama", num_layers=1, seed=1)
    else:
        torch.manual_seed(1)
        assistant = LlamaForCausalLM(text_config("llama", num_layers=1)).eval()
    input_ids, image_embeds = batch(num_rows=1)  # transformers' assisted decoding takes one prompt at a time
    assisted = model.generate(
        input_ids=input_ids, image_embeds=image_embeds, assistant_model=assistant, max_new_tokens=8, **GREEDY
    )
    torch.testing.assert_close(assisted, reference_greedy(model, input_ids, image_embeds, steps=8))


@pytest.mark.parametrize("kind", ["llama", "gpt2"])
def test_prompt_lookup_decoding_equals_greedy(kind):
    """Prompt lookup (assisted decoding that drafts from n-grams of the prompt) equals greedy search, also where the
    prompt's last token last appeared right before `<image>` (a chat template's "\\n" does), so the lookup's draft
    starts with placeholder ids that must never be read as image positions."""
    model = build(kind)
    _, image_embeds = batch(num_rows=1)
    input_ids = torch.tensor([[1, 5, *[IMAGE_TOKEN_ID] * NUM_IMAGE_TOKENS, 6, 7, 5]])
    looked_up = model.generate(
        input_ids=input_ids, image_embeds=image_embeds, prompt_lookup_num_tokens=3, max_new_tokens=10, **GREEDY
    )
    torch.testing.assert_close(looked_up, reference_greedy(model, input_ids, image_embeds, steps=10))


def test_contrastive_search_where_available():
    """transformers 5 moved contrastive search out of the library to the Hub (repository
    `transformers-community/contrastive-search`, loaded as `custom_generate` code): it runs only where that repository
    is cached, never offline from scratch."""
    model = build("llama")
    input_ids, image_embeds = batch(num_rows=1)
    try:
        generated = model.generate(
            input_ids=input_ids, image_embeds=image_embeds, max_new_tokens=4, penalty_alpha=0.6, top_k=4,
            trust_remote_code=True, **GREEDY,
        )  # fmt: skip
    except (OSError, ValueError) as error:  # offline: the Hub repository holding the decoding code is unreachable
        pytest.skip(f"contrastive search lives on the Hub in transformers 5 and is not cached here: {error!s:.200}")
    assert generated.shape == (1, input_ids.shape[1] + 4)


def test_continue_from_cache_equals_one_generation(model):
    """Issue 15, case 1: `generate` again from the returned sequences and cache continues exactly as one longer
    generation (the image is in the cache; the continuation passes no image)."""
    input_ids, image_embeds = batch()
    first = model.generate(
        input_ids=input_ids, image_embeds=image_embeds, max_new_tokens=3, return_dict_in_generate=True, **GREEDY
    )
    continued = model.generate(
        input_ids=first.sequences, past_key_values=copy.deepcopy(first.past_key_values), max_new_tokens=4, **GREEDY
    )
    expected = reference_greedy(model, input_ids, image_embeds, steps=7)
    torch.testing.assert_close(continued, expected)
    # Passing the image again is harmless: its tokens are already in the cache, so it is not re-scattered.
    # (Each continuation copies the cache: generate extends it in place.)
    again = model.generate(
        input_ids=first.sequences, past_key_values=copy.deepcopy(first.past_key_values), image_embeds=image_embeds,
        max_new_tokens=4, **GREEDY,
    )  # fmt: skip
    torch.testing.assert_close(again, expected)


def test_static_cache_and_compiled_decoding(model):
    """Static cache, then the same with the decoding step compiled with `fullgraph=True` (dynamo's `eager` backend:
    it proves the graph has no break; inductor's C++ build of each shape would take minutes on this CPU)."""
    input_ids, image_embeds = batch()
    expected = reference_greedy(model, input_ids, image_embeds, steps=5)
    static = model.generate(
        input_ids=input_ids, image_embeds=image_embeds, max_new_tokens=5, cache_implementation="static", **GREEDY
    )
    torch.testing.assert_close(static, expected)
    compile_config = CompileConfig(backend="eager", fullgraph=True)
    compile_config._compile_all_devices = True  # transformers compiles on accelerators only unless told
    torch._dynamo.reset()
    compiled = model.generate(
        input_ids=input_ids, image_embeds=image_embeds, max_new_tokens=5, cache_implementation="static",
        compile_config=compile_config, **GREEDY,
    )  # fmt: skip
    torch.testing.assert_close(compiled, expected)


def test_chunked_prefill_slices_the_image_features(model):
    """`prefill_chunk_size` splits the prompt; transformers hands each chunk the rows of the projected features that
    its `<image>` positions hold."""
    input_ids, image_embeds = batch()
    chunked = model.generate(
        input_ids=input_ids, image_embeds=image_embeds, max_new_tokens=4, prefill_chunk_size=2, **GREEDY
    )
    torch.testing.assert_close(chunked, reference_greedy(model, input_ids, image_embeds, steps=4))


@pytest.mark.parametrize("kind", ["gpt2", "llama"])
def test_left_padding_gives_the_unpadded_tokens(kind):
    """Issue 15, case 3: `forward` declares `position_ids`, so `generate` builds them from the attention mask and a
    left-padded row (absolute positions: GPT-2; rotary: Llama) gives the tokens of the same prompt alone."""
    model = build(kind)
    short, long_ = prompt([5, 6]), prompt([9, 6, 7, 8])
    image_embeds = batch()[1]
    padded = torch.tensor([[PAD] * (len(long_) - len(short)) + short, long_])  # [2, T]
    attention_mask = (torch.arange(len(long_)) >= len(long_) - len(short)).long().unsqueeze(0)
    attention_mask = torch.cat([attention_mask, torch.ones(1, len(long_), dtype=torch.long)])  # [2, T]
    out = model.generate(
        input_ids=padded, attention_mask=attention_mask, image_embeds=image_embeds, max_new_tokens=6,
        output_logits=True, return_dict_in_generate=True, **GREEDY,
    )  # fmt: skip
    for row, ids in enumerate((short, long_)):
        alone = model.generate(
            input_ids=torch.tensor([ids]), image_embeds=image_embeds[row : row + 1], max_new_tokens=6,
            output_logits=True, return_dict_in_generate=True, **GREEDY,
        )  # fmt: skip
        torch.testing.assert_close(out.sequences[row, -len(ids) - 6 :], alone.sequences[0])
        torch.testing.assert_close(out.logits[0][row], alone.logits[0][0], atol=1e-4, rtol=1e-4)


def test_prefill_projects_only_the_last_position(model):
    """Issue 15, case 4: `generate` passes `logits_to_keep=1`, so the prefill's LM head sees [B, 1, H], not
    [B, T, H]; a boolean mask keeps the marked positions only (what a trainer scoring a few positions passes)."""
    input_ids, image_embeds = batch()
    shapes = []
    hook = model.lm_head.register_forward_hook(lambda module, args, output: shapes.append(tuple(output.shape)))
    model.generate(input_ids=input_ids, image_embeds=image_embeds, max_new_tokens=3, **GREEDY)
    hook.remove()
    assert shapes == [(2, 1, VOCAB)] * 3
    with torch.no_grad():
        full = model(input_ids=input_ids, image_embeds=image_embeds).logits  # [B, T, V]
        last = model(input_ids=input_ids, image_embeds=image_embeds, logits_to_keep=1).logits  # [B, 1, V]
        keep = torch.zeros(input_ids.shape, dtype=torch.bool)
        keep[:, -3:-1] = True
        kept = model(input_ids=input_ids, image_embeds=image_embeds, logits_to_keep=keep).logits  # [4, V]
    torch.testing.assert_close(last, full[:, -1:])
    torch.testing.assert_close(kept, full[keep])


def test_inputs_embeds_forward_and_generate(model):
    """Issue 15, case 5: with `inputs_embeds` the `<image>` positions are those holding the token's own embedding
    (as in LLaVA); `generate(inputs_embeds=...)` works with and without an image."""
    input_ids, image_embeds = batch()
    embeds = model.get_input_embeddings()(input_ids).detach()  # [B, T, H]
    with torch.no_grad():
        torch.testing.assert_close(
            model(inputs_embeds=embeds, image_embeds=image_embeds).logits,
            model(input_ids=input_ids, image_embeds=image_embeds).logits,
        )
    from_embeds = model.generate(inputs_embeds=embeds, image_embeds=image_embeds, max_new_tokens=5, **GREEDY)
    expected = reference_greedy(model, input_ids, image_embeds, steps=5)[:, input_ids.shape[1] :]
    torch.testing.assert_close(from_embeds, expected)
    text_ids = torch.tensor([[1, 5, 6, 7], [1, 9, 6, 8]])  # no image at all
    text_only = model.generate(
        inputs_embeds=model.get_input_embeddings()(text_ids).detach(), max_new_tokens=4, **GREEDY
    )
    torch.testing.assert_close(text_only, model.generate(input_ids=text_ids, max_new_tokens=4, **GREEDY)[:, 4:])


def test_shift_labels_never_score_image_positions(model):
    """Issue 15, case 6: sequence/context parallelism pass pre-shifted `shift_labels`; a target that is `<image>` is
    masked there as in `labels`, so both give the loss of the text targets only."""
    input_ids, image_embeds = batch()
    labels = input_ids.clone()  # image positions deliberately left in
    shift_labels = torch.nn.functional.pad(labels[:, 1:], (0, 1), value=-100)  # [B, T]
    with torch.no_grad():
        from_labels = model(input_ids=input_ids, image_embeds=image_embeds, labels=labels).loss
        from_shift = model(input_ids=input_ids, image_embeds=image_embeds, shift_labels=shift_labels).loss
        logits = model(input_ids=input_ids, image_embeds=image_embeds).logits  # [B, T, V]
    targets = shift_labels.masked_fill(shift_labels == IMAGE_TOKEN_ID, -100)
    by_hand = torch.nn.functional.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=-100)
    torch.testing.assert_close(from_labels, by_hand)
    torch.testing.assert_close(from_shift, by_hand)
    scoring_images = torch.nn.functional.cross_entropy(logits.flatten(0, 1), shift_labels.flatten(), ignore_index=-100)
    assert not torch.allclose(scoring_images, by_hand)


def test_export_and_fullgraph_compile_of_the_prefill():
    """Issue 15, case 7: the NaN and count checks are `torch_compilable_check`s, so the prefill with `image_embeds`
    exports and compiles as one graph, and the exported program still refuses NaN embeddings at run time."""
    model = build("llama")
    input_ids, image_embeds = batch()
    kwargs = {"input_ids": input_ids, "image_embeds": image_embeds, "use_cache": False}
    with torch.no_grad():
        expected = model(**kwargs).logits
        torch._dynamo.reset()
        compiled = torch.compile(model, fullgraph=True, backend="eager")
        torch.testing.assert_close(compiled(**kwargs).logits, expected)
        exported = torch.export.export(model, args=(), kwargs=kwargs)
        torch.testing.assert_close(exported.module()(**kwargs).logits, expected)
        with pytest.raises(RuntimeError):
            exported.module()(**{**kwargs, "image_embeds": torch.full_like(image_embeds, float("nan"))})


def test_base_model_is_the_backbone_and_trl_fused_head_matches(model):
    """Issue 15, case 8: `base_model` is `UnicornModel` (image merge + backbone, hidden states), so TRL's fused LM
    head (which runs `model.base_model` and projects only the scored positions) sees the image and gives the model's
    own loss and token accuracy."""
    from trl.trainer.utils import add_fused_lm_head

    assert isinstance(model.base_model, UnicornModel) and model.base_model is model.model
    input_ids, image_embeds = batch()
    labels = input_ids.masked_fill(input_ids == IMAGE_TOKEN_ID, -100)
    labels[:, :5] = -100  # score the last text tokens only, as SFT scores the answer
    with torch.no_grad():
        hidden = model.base_model(input_ids=input_ids, image_embeds=image_embeds).last_hidden_state  # [B, T, H]
        own = model(input_ids=input_ids, image_embeds=image_embeds, labels=labels)
        torch.testing.assert_close(model.lm_head(hidden), own.logits)
        fused_model = copy.deepcopy(model)
        add_fused_lm_head(fused_model, outputs=("log_probs", "is_top1"))
        fused = fused_model(
            input_ids=input_ids, image_embeds=image_embeds, attention_mask=torch.ones_like(input_ids), labels=labels,
            fused_lm_head=True,
        )  # fmt: skip
    torch.testing.assert_close(fused.loss, own.loss)
    scored = labels[:, 1:] != -100
    correct = own.logits[:, :-1].argmax(-1) == labels[:, 1:]
    assert int(fused.is_top1.sum()) == int((correct & scored).sum())


# ---- model tests transformers runs for every VLM -----------------------------------------------------------------
def test_sdpa_matches_eager(model):
    input_ids, image_embeds = batch()
    eager = copy.deepcopy(model)
    eager.set_attn_implementation("eager")
    assert eager.language_model.config._attn_implementation == "eager"
    assert model.language_model.config._attn_implementation == "sdpa"
    attention_mask = torch.ones_like(input_ids)
    attention_mask[0, :1] = 0  # a padded row, so the mask path is exercised too
    with torch.no_grad():
        kwargs = {"input_ids": input_ids, "image_embeds": image_embeds, "attention_mask": attention_mask}
        real = attention_mask.bool()  # a fully masked (padding) query row is undefined in both: compare the rest
        torch.testing.assert_close(eager(**kwargs).logits[real], model(**kwargs).logits[real], atol=1e-5, rtol=1e-4)


def test_resize_token_embeddings_keeps_the_image_token(model):
    input_ids, image_embeds = batch()
    image_row = model.get_input_embeddings().weight[IMAGE_TOKEN_ID].detach().clone()
    with torch.no_grad():
        before = model(input_ids=input_ids, image_embeds=image_embeds).logits
    model.resize_token_embeddings(VOCAB + 8)
    assert model.config.text_config.vocab_size == VOCAB + 8 and model.config.image_token_id == IMAGE_TOKEN_ID
    assert model.lm_head.weight.shape[0] == VOCAB + 8
    torch.testing.assert_close(model.get_input_embeddings().weight[IMAGE_TOKEN_ID], image_row)
    with torch.no_grad():
        after = model(input_ids=input_ids, image_embeds=image_embeds).logits  # [B, T, V + 8]
    torch.testing.assert_close(after[..., :VOCAB], before)
    generated = model.generate(input_ids=input_ids, image_embeds=image_embeds, max_new_tokens=3, **GREEDY)
    assert generated.shape == (2, input_ids.shape[1] + 3)


def test_save_load_round_trip_keeps_generation(model, tmp_path):
    input_ids, image_embeds = batch()
    expected = model.generate(input_ids=input_ids, image_embeds=image_embeds, max_new_tokens=5, **GREEDY)
    model.save_pretrained(tmp_path)
    loaded = UnicornForConditionalGeneration.from_pretrained(tmp_path).eval()
    torch.testing.assert_close(
        loaded.generate(input_ids=input_ids, image_embeds=image_embeds, max_new_tokens=5, **GREEDY), expected
    )
    assert IMAGE_TOKEN_ID in loaded.generation_config.suppress_tokens


def test_mixed_batch_with_and_without_an_image():
    """The processor lets a batch mix prompts with and without `<image>`: the embeddings fill the image rows in
    order, and the text-only row is the plain LM's."""
    model = build("llama")
    with_image, text_only = prompt([5, 6, 7, 8]), [1, 5, 6, 7, 8, 9, 10, 11]
    input_ids = torch.tensor([with_image, text_only])
    image_embeds = batch(num_rows=1)[1]  # [1, D] for the one row holding <image>
    with torch.no_grad():
        logits = model(input_ids=input_ids, image_embeds=image_embeds).logits
        torch.testing.assert_close(logits[0], model(input_ids=input_ids[:1], image_embeds=image_embeds).logits[0])
        torch.testing.assert_close(logits[1], model(input_ids=input_ids[1:]).logits[0])


def test_hidden_states_attentions_and_tuple_outputs(model):
    """What transformers' common tests read: per-layer hidden states and (eager) attentions of the backbone, the
    image features, and `return_dict=False` tuples."""
    input_ids, image_embeds = batch()
    model.set_attn_implementation("eager")  # sdpa does not return attention weights
    layers = model.config.text_config.num_hidden_layers
    with torch.no_grad():
        out = model(input_ids=input_ids, image_embeds=image_embeds, output_hidden_states=True, output_attentions=True)
        as_tuple = model(input_ids=input_ids, image_embeds=image_embeds, return_dict=False)
    assert len(out.hidden_states) == layers + 1 and out.hidden_states[0].shape == (*input_ids.shape, 32)
    assert len(out.attentions) == layers and out.attentions[0].shape[-2:] == (input_ids.shape[1],) * 2
    assert out.image_outputs.pooler_output.shape == (2, NUM_IMAGE_TOKENS, 32)
    assert isinstance(as_tuple, tuple)
    torch.testing.assert_close(as_tuple[0], out.logits)
