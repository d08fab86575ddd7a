"""An offline, deterministic distilabel LLM for the synthesis tests (interruption, resume, secrets).

distilabel re-imports every LLM of a cached pipeline by its module path (`unicorn_fixtures.echo_llm`), so the
process that runs a recipe with it (`tests/helpers/synthesis_stage.py`) puts `tests/` on `sys.path` first.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import time
from typing import Any

from distilabel.models.llms import LLM
from distilabel.models.llms.utils import prepare_output


# Words of the generated text: a per-prompt random draw, so that two captions are never near duplicates.
_VOCABULARY = (
    "red blue green white black wooden metal glass stone small large round square bright dark old new tall short",
    "table chair window door tree street car bus dog cat person child woman man boat river hill cloud sky lamp",
    "road wall roof garden field shelf book cup plate bottle bag bench sign fence bridge tower market beach",
)


class EchoLLM(LLM):
    """Replies to every chat with a deterministic caption-like paragraph (or `reply` when set).

    `delay_s` sleeps once per batch so that a test can interrupt a run between batches; every prompt the LLM is
    asked to answer is appended to `calls_file` (one JSON line per prompt, from the step's worker process), so a
    test can count what a re-run generated again.
    """

    delay_s: float = 0.0
    calls_file: str | None = None
    reply: str | None = None
    num_words: int = 24

    @property
    def model_name(self) -> str:
        return "echo"

    def load(self) -> None:
        super().load()

    def generate(  # type: ignore[override]
        self, inputs: list[list[dict[str, Any]]], num_generations: int = 1, max_new_tokens: int = 128
    ) -> list[dict]:
        """One reply per chat; `max_new_tokens` caps the reply's words (distilabel passes generation_kwargs)."""
        time.sleep(self.delay_s)
        outputs = []
        for chat in inputs:
            prompt = chat[-1]["content"] if chat[-1]["role"] == "user" else chat[0]["content"]
            if self.calls_file:
                with open(self.calls_file, "a") as handle:
                    handle.write(json.dumps({"pid": os.getpid(), "prompt": prompt}) + "\n")
            text = self.reply if self.reply is not None else _paragraph(prompt, min(self.num_words, max_new_tokens))
            texts = [text] * num_generations
            tokens = {"input_tokens": [len(prompt.split())], "output_tokens": [len(text.split())]}
            outputs.append(prepare_output(texts, **{key: value * num_generations for key, value in tokens.items()}))
        return outputs


def _paragraph(prompt: str, num_words: int) -> str:
    """A sentence of `num_words` words drawn with a seed taken from the prompt."""
    draw = random.Random(hashlib.sha1(prompt.encode()).hexdigest())
    vocabulary = " ".join(_VOCABULARY).split()
    words = [draw.choice(vocabulary) for _ in range(num_words)]
    return "The photo shows " + " ".join(words) + "."
