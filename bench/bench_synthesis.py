"""Synthesis benchmark: distilabel pipeline overhead and the stage-2 JSON acceptance rate, measured in one run.

    python bench/bench_synthesis.py --captions_config recipes/tiny/captions.yaml \
        --instructions_config recipes/tiny/instructions.yaml --num_prompts 12

1. Throughput: the same stage-1 prompts through (a) the backend called directly (`llm.generate_outputs` in this
   process, same batch size) and (b) the distilabel pipeline (own process, queues, cache writes), generated tokens
   per second each, and the ratio pipeline / direct (1.0 = no overhead). Model loading is excluded from (a) and
   included in (b), as a user experiences it; the table shows both wall times.
2. JSON acceptance: stage-2 prompts of every task on the generated captions, generated directly and judged by stage
   2's own criterion (`reply_to_messages`: parse, validate, convert, contract check), first pass and after the
   recipe's repair rounds: accepted / sent per task and overall, plus the drop reasons. Every rejected reply is
   written to outputs/bench/synthesis_rejects.json (real malformed outputs for the parser's tests).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from jinja2 import StrictUndefined, Template


REPO = Path(__file__).resolve().parents[1]
os.environ.setdefault("DISTILABEL_LOG_LEVEL", "WARNING")  # keep the report to the table: no per-batch INFO lines
sys.path.insert(0, str(REPO / "recipes"))


def _tokens(outputs: list[dict]) -> int:
    return sum(sum(output["statistics"].get("output_tokens", [0])) for output in outputs)


def _generate(llm, chats: list[list[dict]], batch_size: int, kwargs: dict) -> list[dict]:
    outputs = []
    for start in range(0, len(chats), batch_size):
        outputs += llm.generate_outputs(inputs=chats[start : start + batch_size], **kwargs)
    return outputs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--captions_config", default="recipes/tiny/captions.yaml")
    parser.add_argument("--instructions_config", default="recipes/tiny/instructions.yaml")
    parser.add_argument("--num_prompts", type=int, default=12)
    parser.add_argument("--max_new_tokens", type=int, default=None, help="Override both YAMLs' max_new_tokens.")
    cli = parser.parse_args()

    import synthesize_captions
    import synthesize_instructions

    from unicorn_hf.synthesis.captions import output_tokens
    from unicorn_hf.synthesis.dialogues import assign_tasks
    from unicorn_hf.synthesis.instructions import first_conversation, repair_conversation, reply_to_messages
    from unicorn_hf.synthesis.json_recovery import DialogueParseError
    from unicorn_hf.synthesis.llms import build_llm, generation_kwargs
    from unicorn_hf.synthesis.pipelines import build_caption_pipeline, run_pipeline
    from unicorn_hf.synthesis.prompt_files import load_prompt
    from unicorn_hf.synthesis.seeds import load_seeds
    from unicorn_hf.utils.logging import setup_logging

    setup_logging("WARNING")
    override = ["--max_new_tokens", str(cli.max_new_tokens)] if cli.max_new_tokens else []
    seed_args, caption_args, llm_args, _ = synthesize_captions.make_parser().parse_args_and_config(
        ["--config", cli.captions_config, *override]
    )
    for source in seed_args.seed_sources:  # the tiny recipe samples 6 seeds; the bench wants `num_prompts`
        source.max_seeds = cli.num_prompts
    # A stable hash-ordered sample across sources (ids end in a content hash), so both seed kinds are represented.
    seeds = sorted(load_seeds(seed_args)[0], key=lambda row: row["id"].rsplit("-", 1)[-1])[: cli.num_prompts]
    template = load_prompt(caption_args.prompt)
    chats = [[{"role": "user", "content": Template(template).render(seed=row["seed"])}] for row in seeds]
    gen = generation_kwargs(llm_args)

    # (b) the distilabel pipeline on the same prompts, without cache. It runs first: distilabel forks its step
    # workers, and a child forked after this process has run torch's OpenMP pool deadlocks (libgomp is not
    # fork-safe), so no generation may happen in this process before the pipeline.
    with tempfile.TemporaryDirectory() as cache_dir:
        start = time.perf_counter()
        rows, _ = run_pipeline(
            lambda name: build_caption_pipeline(
                build_llm(llm_args), template, name, cache_dir, input_batch_size=llm_args.input_batch_size
            ),
            seeds,
            name_prefix="bench-captions",
            settings=(),
            cache_dir=cache_dir,
            batch_size=llm_args.input_batch_size,
        )
        pipeline_s = time.perf_counter() - start
    # (a) the backend directly
    llm = build_llm(llm_args)
    load_start = time.perf_counter()
    llm.load()
    load_s = time.perf_counter() - load_start
    start = time.perf_counter()
    direct = _generate(llm, chats, llm_args.input_batch_size, gen)
    direct_s = time.perf_counter() - start
    pipeline_tokens = sum(output_tokens(row) or 0 for row in rows)
    direct_tps, pipeline_tps = _tokens(direct) / direct_s, pipeline_tokens / pipeline_s

    # 2. stage-2 JSON acceptance: round 0 and the recipe's repair rounds
    instruction_args, llm2_args, _ = synthesize_instructions.make_parser().parse_args_and_config(
        ["--config", cli.instructions_config, *override]
    )
    captions = {row["id"]: out["generations"][0] or "" for row, out in zip(seeds, direct, strict=True)}
    assignment = assign_tasks(list(captions), instruction_args.tasks, None, instruction_args.assignment_seed)
    tasks = {task.name: task for task in instruction_args.tasks}
    order = sorted(assignment)
    templates = {name: Template(load_prompt(task.prompt), undefined=StrictUndefined) for name, task in tasks.items()}
    prompts = [first_conversation(tasks[assignment[i]], templates[assignment[i]], captions[i]) for i in order]
    llm2 = build_llm(llm2_args)
    llm2.load()
    gen2 = generation_kwargs(llm2_args)
    repair = Template(load_prompt(instruction_args.repair_prompt)) if instruction_args.max_repairs else None
    pending = [(row_id, chat) for row_id, chat in zip(order, prompts, strict=True)]
    sent = Counter(assignment[row_id] for row_id in order)
    accepted_per_round, reasons, samples = [], Counter(), []
    for round_index in range(instruction_args.max_repairs + 1):  # the same rounds as stage 2
        replies = _generate(llm2, [chat for _, chat in pending], llm2_args.input_batch_size, gen2)
        accepted, failed = Counter(), []
        for (row_id, chat), reply in zip(pending, replies, strict=True):
            task, text = tasks[assignment[row_id]], reply["generations"][0]
            try:
                reply_to_messages(task, text, instruction_args)
                accepted[task.name] += 1
            except DialogueParseError as error:
                failed.append((row_id, repair_conversation(task, chat[0], text, error, repair) if repair else chat))
                if round_index == instruction_args.max_repairs:
                    reasons[error.reason] += 1
                samples.append({"task": task.name, "round": round_index, "reason": error.reason, "generation": text})
        accepted_per_round.append(accepted)
        pending = failed
        if not pending:
            break
    first, final = accepted_per_round[0], sum(accepted_per_round, Counter())

    lines = [
        "| measurement | value |",
        "|---|---|",
        f"| model | {llm_args.model_name_or_path} ({llm_args.backend}, batch {llm_args.input_batch_size}) |",
        f"| prompts x max_new_tokens | {len(chats)} x {llm_args.max_new_tokens} |",
        f"| direct: load / generate wall (s) | {load_s:.1f} / {direct_s:.1f} |",
        f"| direct generated tokens/s | {direct_tps:.2f} |",
        f"| pipeline wall incl. load (s) | {pipeline_s:.1f} |",
        f"| pipeline generated tokens/s | {pipeline_tps:.2f} |",
        f"| **pipeline / direct throughput** | **{pipeline_tps / direct_tps:.2f}** |",
        *(
            f"| JSON acceptance {name}: first pass / after repair | {first[name]}/{sent[name]} / "
            f"{final[name]}/{sent[name]} |"
            for name in sorted(sent)
        ),
        f"| **JSON acceptance overall: first pass** | **{sum(first.values())}/{sum(sent.values())}** |",
        f"| **JSON acceptance overall: after {instruction_args.max_repairs} repair round(s)** | "
        f"**{sum(final.values())}/{sum(sent.values())}** |",
        f"| drop reasons after the last round | {dict(reasons)} |",
    ]
    sys.stdout.write("\n".join(lines) + "\n")
    rejects = REPO / "outputs" / "bench" / "synthesis_rejects.json"  # the unparsable replies, for inspection
    rejects.parent.mkdir(parents=True, exist_ok=True)
    rejects.write_text(json.dumps(samples, indent=2) + "\n")


if __name__ == "__main__":
    main()
