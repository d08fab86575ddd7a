"""Run a synthesis recipe (`captions` or `instructions`) as a user would, with `EchoLLM` in place of its backend.

    python tests/helpers/synthesis_stage.py captions --config recipes/tiny/captions.yaml --output_dir /tmp/x

The interruption tests start this in its own process group and kill or interrupt it. The LLM is configured from the
environment: ECHO_DELAY_S (seconds per batch), ECHO_CALLS (file the worker appends every prompt to), ECHO_REPLY
(fixed reply; default a caption-like paragraph per prompt).
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path


REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests"))  # `unicorn_fixtures`, which distilabel re-imports by module path
SCRIPTS = {"captions": "synthesize_captions", "instructions": "synthesize_instructions"}


def main(stage: str, argv: list[str]) -> None:
    from unicorn_fixtures.echo_llm import EchoLLM
    from unicorn_hf.synthesis import captions, instructions

    def build_llm(args):
        return EchoLLM(
            delay_s=float(os.environ.get("ECHO_DELAY_S", "0")),
            calls_file=os.environ.get("ECHO_CALLS"),
            reply=os.environ.get("ECHO_REPLY"),
            generation_kwargs={"max_new_tokens": args.max_new_tokens},
        )

    module = {"captions": captions, "instructions": instructions}[stage]
    module.build_llm = build_llm
    module.check_backend = lambda args: None
    spec = importlib.util.spec_from_file_location(SCRIPTS[stage], REPO / "recipes" / f"{SCRIPTS[stage]}.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    script.main(*script.make_parser().parse_args_and_config(argv))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
