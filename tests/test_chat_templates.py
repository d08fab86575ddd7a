"""Every chat template the project writes takes message content as a plain string (the training data) and as
structured parts (what `pipeline("image-text-to-text")` and `processor.apply_chat_template` send), as LLaVA's do:
an image part becomes `<image>`, parts are joined by a newline. Checked on the real templates' rendered text."""

from __future__ import annotations

import pytest
import yaml
from jinja2 import TemplateError
from transformers import AutoTokenizer

from unicorn_hf.modeling import UnicornProcessor
from unicorn_hf.modeling.processing_unicorn import STRUCTURED_CONTENT_MARKER, accept_structured_content
from unicorn_hf.training.builder import build_from_text_model


QUESTION = "What is shown?"
STRUCTURED = [{"type": "image"}, {"type": "text", "text": QUESTION}]
SMOLLM2_SYSTEM = "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
EXPERIMENT_SFT_YAML = "recipes/experiments/does_it_see/sft.yaml"


def conversation(content, system=None, answer=None):
    messages = [{"role": "system", "content": system}] if system is not None else []
    messages.append({"role": "user", "content": content})
    if answer is not None:
        messages.append({"role": "assistant", "content": answer})
    return messages


def structured(text: str) -> list[dict]:
    return [{"type": "text", "text": text}]


@pytest.fixture(scope="module")
def smollm2_tokenizer(smollm2_path):
    return AutoTokenizer.from_pretrained(smollm2_path)


def render(tokenizer, template, messages, **kwargs):
    return tokenizer.apply_chat_template(messages, chat_template=template, tokenize=False, **kwargs)


def experiment_template() -> str:
    with open(EXPERIMENT_SFT_YAML) as handle:
        return yaml.safe_load(handle)["chat_template"]


def templates(tokenizer) -> dict[str, str]:
    """The templates the project writes: SmolLM2's own ChatML (the tiny recipe, with its default system turn) and the
    experiment's inline ChatML without it."""
    return {"smollm2": tokenizer.chat_template, "experiment": experiment_template()}


@pytest.mark.parametrize("name", ["smollm2", "experiment"])
def test_structured_content_renders_as_the_training_string(smollm2_tokenizer, name):
    template = accept_structured_content(templates(smollm2_tokenizer)[name], "<image>")
    as_string = render(smollm2_tokenizer, template, conversation(f"<image>\n{QUESTION}"), add_generation_prompt=True)
    as_parts = render(smollm2_tokenizer, template, conversation(STRUCTURED), add_generation_prompt=True)
    assert as_parts == as_string
    default_system = SMOLLM2_SYSTEM if name == "smollm2" else ""
    assert as_parts == f"{default_system}<|im_start|>user\n<image>\n{QUESTION}<|im_end|>\n<|im_start|>assistant\n"


@pytest.mark.parametrize("name", ["smollm2", "experiment"])
def test_a_structured_system_prompt_and_answer(smollm2_tokenizer, name):
    template = accept_structured_content(templates(smollm2_tokenizer)[name], "<image>")
    by_parts = conversation(STRUCTURED, system=structured("Be brief."), answer=structured("A cat."))
    by_strings = conversation(f"<image>\n{QUESTION}", system="Be brief.", answer="A cat.")
    text = render(smollm2_tokenizer, template, by_parts)
    assert text == render(smollm2_tokenizer, template, by_strings)
    # a system turn of the user's replaces SmolLM2's default one in both templates
    assert text == (
        "<|im_start|>system\nBe brief.<|im_end|>\n"
        f"<|im_start|>user\n<image>\n{QUESTION}<|im_end|>\n<|im_start|>assistant\nA cat.<|im_end|>\n"
    )


@pytest.mark.parametrize("name", ["smollm2", "experiment"])
def test_plain_strings_render_exactly_as_the_unwrapped_template(smollm2_tokenizer, name):
    """The training data is plain strings: the prelude must not change a single character of their rendering."""
    original = templates(smollm2_tokenizer)[name]
    wrapped = accept_structured_content(original, "<image>")
    for messages in (
        conversation(f"<image>\n{QUESTION}", answer="A cat."),
        conversation(f"<image>\n{QUESTION}", system="Be brief.", answer="A cat."),
        [*conversation(f"<image>\n{QUESTION}", answer="A."), {"role": "user", "content": "Sure?"}],
    ):
        for generation_prompt in (False, True):
            assert render(smollm2_tokenizer, wrapped, messages, add_generation_prompt=generation_prompt) == render(
                smollm2_tokenizer, original, messages, add_generation_prompt=generation_prompt
            )


def test_the_prelude_is_added_once_and_keeps_a_leading_newline():
    wrapped = accept_structured_content("{{ messages[0]['content'] }}", "<image>")
    assert wrapped.startswith(STRUCTURED_CONTENT_MARKER) and wrapped.count(STRUCTURED_CONTENT_MARKER) == 1
    assert accept_structured_content(wrapped, "<image>") == wrapped
    from transformers.utils.chat_template_utils import render_jinja_template

    leading = accept_structured_content("\n[{{ messages[0]['content'] }}]", "<img>")
    rendered, _ = render_jinja_template(conversations=[conversation(STRUCTURED)], chat_template=leading)
    assert rendered == [f"\n[<img>\n{QUESTION}]"]


def test_an_unknown_part_type_is_named(smollm2_tokenizer):
    template = accept_structured_content(smollm2_tokenizer.chat_template, "<image>")
    with pytest.raises(TemplateError, match="image and text content parts, not video"):
        render(smollm2_tokenizer, template, conversation([{"type": "video"}, {"type": "text", "text": "Q"}]))


def test_the_processor_holds_and_saves_structured_templates(tiny_lm_path, tmp_path):
    """The processor's template and its tokenizer's both accept parts, on disk too; `apply_chat_template` with parts
    gives the ids of the string prompt."""
    _, processor = build_from_text_model(tiny_lm_path, embed_dim=8, projector_type="linear", num_image_tokens=2)
    assert processor.chat_template.startswith(STRUCTURED_CONTENT_MARKER)
    assert processor.tokenizer.chat_template.startswith(STRUCTURED_CONTENT_MARKER)
    processor.save_pretrained(tmp_path)
    saved = "".join(path.read_text() for path in tmp_path.glob("chat_template*"))
    assert saved.count(STRUCTURED_CONTENT_MARKER) >= 1
    loaded = UnicornProcessor.from_pretrained(tmp_path)
    assert loaded.chat_template == processor.chat_template
    prompt = loaded.apply_chat_template(conversation(STRUCTURED), add_generation_prompt=True, tokenize=False)
    assert prompt == render(loaded.tokenizer, None, conversation(f"<image>\n{QUESTION}"), add_generation_prompt=True)
    assert prompt.endswith(f"<|im_start|>user\n<image>\n{QUESTION}<|im_end|>\n<|im_start|>assistant\n")


# ------------------------------------------------------------------------------------------------ issue 22, case 6
LLAMA3_STYLE_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}<|start|>{{ m['role'] }} {{ m['content'] }}<|end|>{% endfor %}"
    "{% if add_generation_prompt %}<|start|>assistant {% endif %}"
)


@pytest.fixture(scope="module")
def bos_adding_tokenizer():
    """A word-level tokenizer that puts a BOS in front of every text (as Llama-3's does) and a chat template that
    writes one too (as Llama-3's does)."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    words = ["<unk>", "<s>", "</s>", "<image>", "<|start|>", "<|end|>", "user", "assistant", "what", "is", "shown",
             "?", "a", "boat", "."]  # fmt: skip
    backend = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    backend.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, bos_token="<s>", eos_token="</s>",
                                        unk_token="<unk>", pad_token="</s>",
                                        additional_special_tokens=["<image>", "<|start|>", "<|end|>"])  # fmt: skip
    tokenizer.chat_template = LLAMA3_STYLE_TEMPLATE
    assert tokenizer("a boat")["input_ids"][0] == tokenizer.bos_token_id
    return tokenizer


def test_a_template_that_writes_the_bos_gets_one_bos_as_in_training(bos_adding_tokenizer):
    import torch

    from unicorn_hf.training.data import tokenize_dialogue

    tokenizer, bos = bos_adding_tokenizer, bos_adding_tokenizer.bos_token_id
    processor = UnicornProcessor(tokenizer=tokenizer, num_image_tokens=1)
    user = {"role": "user", "content": "<image> what is shown ?"}
    prompt = tokenizer.apply_chat_template([user], tokenize=False, add_generation_prompt=True)
    assert tokenizer(prompt)["input_ids"][:2] == [bos, bos]  # the tokenizer alone doubles it
    ids = processor(text=prompt, image_embeds=torch.zeros(1, 4))["input_ids"][0].tolist()
    assert ids.count(bos) == 1 and ids[0] == bos
    # Training tokenises the same rendered dialogue: its prompt part is exactly what the processor gives.
    row = {"id": "r0", "image_embeds": [0.0] * 4,
           "messages": [user, {"role": "assistant", "content": "a boat ."}]}  # fmt: skip
    trained = tokenize_dialogue(row, tokenizer, "<image>", processor.image_token_id, 1, None, 4, None)
    assert trained["input_ids"][: len(ids)] == ids
    # A text without the BOS still gets the tokenizer's; an explicit setting is obeyed.
    plain = processor(text="<image> what is shown ?", image_embeds=torch.zeros(1, 4))["input_ids"][0].tolist()
    assert plain.count(bos) == 1 and plain[0] == bos
    forced = processor(text=prompt, image_embeds=torch.zeros(1, 4), add_special_tokens=True)["input_ids"][0]
    assert forced.tolist()[:2] == [bos, bos]


def test_a_batch_that_mixes_template_and_plain_prompts_is_refused(bos_adding_tokenizer):
    import torch

    processor = UnicornProcessor(tokenizer=bos_adding_tokenizer, num_image_tokens=1)
    prompt = bos_adding_tokenizer.apply_chat_template([{"role": "user", "content": "<image> what is shown ?"}],
                                                      tokenize=False, add_generation_prompt=True)  # fmt: skip
    with pytest.raises(ValueError, match=r"text\[0\] starts with the BOS token '<s>' .* but text\[1\] does not"):
        processor(text=[prompt, "<image> what ?"], image_embeds=torch.zeros(2, 4), padding=True)


def test_smollm2_prompts_are_tokenized_as_before(smollm2_path):
    """SmolLM2 adds no BOS: with or without the template, the processor's ids are the tokenizer's own."""
    import torch
    from tokenizers import AddedToken

    tokenizer = AutoTokenizer.from_pretrained(smollm2_path)  # its own copy: the processor wraps its template
    tokenizer.add_tokens([AddedToken("<image>", special=True, normalized=False)], special_tokens=True)
    processor = UnicornProcessor(tokenizer=tokenizer, num_image_tokens=1)
    prompt = tokenizer.apply_chat_template([{"role": "user", "content": "<image>\nWhat?"}], tokenize=False,
                                           add_generation_prompt=True)  # fmt: skip
    for text in (prompt, "<image>\nWhat?"):
        ids = processor(text=text, image_embeds=torch.zeros(1, 4))["input_ids"][0].tolist()
        assert ids == tokenizer(text)["input_ids"]
