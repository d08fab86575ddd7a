"""The data contract's names: the dataset configs every stage writes and reads, their columns, and `image_embeds`.

One vocabulary everywhere (CONTRIBUTING.md, "Data"):
- config `captions`: `id, seed, seed_source, caption, model_name` (+ `image_embeds` after stage 3);
- config `instructions`: `id, task` (`mc|qa|reasoning`), `caption, messages` (the first user turn holds exactly one
  `<image>`), `model_name` (+ `image_embeds`);
- `image_embeds`: one fixed-length float16 vector per row. No column is ever named `image`/`images`: TRL switches to
  its PIL image pipeline on those names.
"""

from __future__ import annotations


CAPTIONS_CONFIG = "captions"
INSTRUCTIONS_CONFIG = "instructions"
CONFIG_NAMES = (CAPTIONS_CONFIG, INSTRUCTIONS_CONFIG)

# The columns stages 1 and 2 write, in order, with what each holds (the dataset cards list them so).
CAPTIONS_COLUMN_DESCRIPTIONS = {
    "id": "stable id derived from the seed (source name + hash of the normalised seed text)",
    "seed": "the sparse caption seed (an open-domain caption or a label in a template)",
    "seed_source": "name of the seed source in the recipe",
    "caption": "the detailed caption written by the LLM",
    "model_name": "the LLM that wrote the caption",
}
INSTRUCTIONS_COLUMN_DESCRIPTIONS = {
    "id": "id of the caption (and of its seed) the dialogue was made from",
    "task": "mc (multiple choice, answer = bare letter) | qa (open questions) | reasoning (step-by-step answers)",
    "caption": "the stage-1 caption the dialogue is about",
    "messages": "[{role, content}]; the first user turn starts with the single `<image>` placeholder",
    "model_name": "the LLM that wrote the dialogue",
}
CAPTIONS_COLUMNS = tuple(CAPTIONS_COLUMN_DESCRIPTIONS)  # id, seed, seed_source, caption, model_name
INSTRUCTIONS_COLUMNS = tuple(INSTRUCTIONS_COLUMN_DESCRIPTIONS)  # id, task, caption, messages, model_name
TASKS = ("mc", "qa", "reasoning")

IMAGE_EMBEDS = "image_embeds"  # the stage-3 column, and the model's keyword argument of the same name
FIXED_WIDTH_COLUMNS = (IMAGE_EMBEDS,)  # one vector per row, the same length in every row of a config
FORBIDDEN_COLUMNS = ("image", "images")


def option_key(text: object) -> str:
    """A multiple-choice option as dialogues and benchmarks compare it: without case, whitespace or a final full stop
    ("(6, 2)" == "(6,2)", "Cat." == "cat")."""
    return "".join(str(text).lower().split()).rstrip(".")
