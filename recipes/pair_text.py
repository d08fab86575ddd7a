"""Training text about real image-text pairs: their captions and templated dialogues, appended to stages 1-2's.

The encoder's training pairs name what each picture shows; their captions and one-question dialogues about them
(4-way "what is shown"; yes/no presence, asked alone so that the text cannot answer it) join the LLM-written captions
and dialogues, so the model learns to answer from the embedding. Their images are never used, and the encoder's
held-out pairs stay unseen for `recipes/sees.py`.

Usage (tiny recipe, after stages 1-2):

    python recipes/pair_text.py --config recipes/tiny/pair_text.yaml
"""

from __future__ import annotations

from trl import TrlParser

from unicorn_hf.synthesis.pair_text import PairTextArguments, run_pair_text
from unicorn_hf.utils.logging import setup_logging
from unicorn_hf.utils.preflight import check_reference


def make_parser() -> TrlParser:
    return TrlParser((PairTextArguments,))


def main(args: PairTextArguments) -> None:
    setup_logging()
    for field in ("captions_path", "instructions_path"):
        check_reference(getattr(args, field), field=field, kind="dataset")
    run_pair_text(args)


if __name__ == "__main__":
    main(*make_parser().parse_args_and_config())
