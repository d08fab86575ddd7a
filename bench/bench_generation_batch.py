"""Stage-1 generation throughput against the batch size, measured side by side in one process.

    python bench/bench_generation_batch.py --captions_config recipes/tiny/captions.yaml --batch_sizes 6 8 16 32

The same stage-1 prompts (the recipe's prompt on its seeds, repeated up to `--num_prompts`) go through the recipe's
backend called directly (`llm.generate_outputs`, model loaded once) at each batch size, `--max_new_tokens` at most
each; the table gives generated tokens/s and the ratio to the first batch size. It sizes `input_batch_size` in
the YAMLs: the does-it-see experiment's stage 1 runs batch 32 where the tiny recipe runs 6.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from jinja2 import Template


REPO = Path(__file__).resolve().parents[1]
os.environ.setdefault("DISTILABEL_LOG_LEVEL", "WARNING")
sys.path.insert(0, str(REPO / "recipes"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--captions_config", default="recipes/tiny/captions.yaml")
    parser.add_argument("--batch_sizes", type=int, nargs="+", default=[6, 8, 16, 32])
    parser.add_argument("--num_prompts", type=int, default=64, help="Prompts per batch size (a multiple of each).")
    parser.add_argument("--max_new_tokens", type=int, default=48)
    cli = parser.parse_args()

    import synthesize_captions

    from unicorn_hf.synthesis.llms import build_llm, generation_kwargs
    from unicorn_hf.synthesis.prompt_files import load_prompt
    from unicorn_hf.synthesis.seeds import load_seeds
    from unicorn_hf.utils.logging import setup_logging

    setup_logging("WARNING")
    seed_args, caption_args, llm_args, _ = synthesize_captions.make_parser().parse_args_and_config(
        ["--config", cli.captions_config, "--max_new_tokens", str(cli.max_new_tokens)]
    )
    seeds = load_seeds(seed_args)[0]
    template = Template(load_prompt(caption_args.prompt))
    chats = [[{"role": "user", "content": template.render(seed=row["seed"])}] for row in seeds]
    chats = (chats * (cli.num_prompts // len(chats) + 1))[: cli.num_prompts]
    gen = generation_kwargs(llm_args)
    llm = build_llm(llm_args)
    llm.load()
    llm.generate_outputs(inputs=chats[:2], **gen)  # warm-up: first-call allocations stay out of the table
    rows = []
    for batch_size in cli.batch_sizes:
        start, tokens = time.perf_counter(), 0
        for offset in range(0, len(chats), batch_size):
            outputs = llm.generate_outputs(inputs=chats[offset : offset + batch_size], **gen)
            tokens += sum(sum(output["statistics"].get("output_tokens", [0])) for output in outputs)
        seconds = time.perf_counter() - start
        rows.append((batch_size, tokens, seconds, tokens / seconds))
    base = rows[0][3]
    print(f"model={llm_args.model_name_or_path} backend={llm_args.backend} prompts={len(chats)} "
          f"new_tokens={cli.max_new_tokens} threads={os.cpu_count()}")  # fmt: skip
    print(f"{'batch':>6} {'tokens':>7} {'seconds':>8} {'tokens/s':>9} {'vs batch ' + str(rows[0][0]):>12}")
    for batch_size, tokens, seconds, rate in rows:
        print(f"{batch_size:>6} {tokens:>7} {seconds:>8.1f} {rate:>9.1f} {rate / base:>11.2f}x")


if __name__ == "__main__":
    main()
