"""Every chat template the project writes takes message content as a plain string (the training data) and as
structured parts (what `pipeline("image-text-to-text")` and `processor.apply_chat_template` send), as LLaVA's do:
an image part becomes `<image>`, parts are joined by a newline. Checked on the real templates' rendered text."""

from __future__ import annotations

import pytest
import yaml
from jinja2 import TemplateError
from transformers import AutoTokenizer

from unicorn_hf.modeling import UnicornProcessor
from unicorn_hf.modeling.builder import build_from_text_model
from unicorn_hf.modeling.processing_unicorn import STRUCTURED_CONTENT_MARKER, accept_structured_content


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
