"""Stage 2: captions -> MC / QA / reasoning dialogues as chat `messages` (config `instructions`).

Round 0 sends every caption's task prompt. A reply that does not parse or validate is, for up to `max_repairs`
rounds, sent back together with the error (`repair_prompt`); what still fails is dropped with its reason and kept
in `rejects.jsonl` for inspection. Each round is its own cached distilabel pipeline (`pipelines.run_pipeline`), so an
interrupted run resumes: finished rounds come back from the cache and the interrupted one generates its missing rows.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections import Counter
from pathlib import Path

from jinja2 import StrictUndefined, Template

from unicorn_hf.data_contract import INSTRUCTIONS_COLUMN_DESCRIPTIONS, INSTRUCTIONS_CONFIG
from unicorn_hf.synthesis.cards import (
    CACHE_DIRNAME,
    arguments_dict,
    card_body,
    drops_markdown,
    push_stage_folder,
    stats_markdown,
    write_stage_folder,
)
from unicorn_hf.synthesis.config import InstructionArguments, LLMArguments, OutputArguments, TaskConfig
from unicorn_hf.synthesis.dialogues import assign_tasks, check_messages, to_messages
from unicorn_hf.synthesis.json_recovery import DialogueParseError
from unicorn_hf.synthesis.llms import build_llm, check_backend, generation_kwargs, model_identity, step_resources
from unicorn_hf.synthesis.parsing import parse_dialogue
from unicorn_hf.synthesis.pipelines import build_chat_pipeline, reset_cache, run_pipeline
from unicorn_hf.synthesis.prompt_files import load_prompt, prompt_path
from unicorn_hf.utils.drops import DropLog
from unicorn_hf.utils.hub import load_dataset_folder
from unicorn_hf.utils.paths import portable_path
from unicorn_hf.utils.preflight import check_reference


logger = logging.getLogger(__name__)


def load_captions(args: InstructionArguments) -> list[dict]:
    """`id` and `caption` of the stage-1 dataset, with clear errors for a wrong folder or layout."""
    check_reference(args.captions_dataset, field="captions_dataset", kind="dataset",
                    hint="run stage 1 (recipes/synthesize_captions.py) first or fix `captions_dataset`")  # fmt: skip
    try:
        dataset = load_dataset_folder(args.captions_dataset, args.captions_config)
    except (FileNotFoundError, ValueError) as error:
        raise FileNotFoundError(
            f"Cannot load config {args.captions_config!r} of {args.captions_dataset!r}: run stage 1 "
            f"(recipes/synthesize_captions.py) first or fix `captions_dataset` ({error})"
        ) from error
    missing = {"id", "caption"} - set(dataset.column_names)
    if missing:
        raise KeyError(f"{args.captions_dataset}: column(s) {sorted(missing)} missing (has {dataset.column_names})")
    if len(dataset) == 0:
        raise ValueError(f"{args.captions_dataset} has no captions")
    return dataset.select_columns(["id", "caption"]).to_list()


def reply_to_messages(task: TaskConfig, reply: str | None, args: InstructionArguments) -> list[dict]:
    """The `messages` of one LLM reply, or `DialogueParseError` with the drop reason (the acceptance criterion)."""
    turns = parse_dialogue(task.name, reply, task.min_turns, task.max_turns)
    messages = to_messages(task.name, turns, args.image_token, args.mc_answer_hint)
    try:
        check_messages(messages, args.image_token)
    except ValueError as contract_error:  # a last guard: never write a row that breaks the contract
        raise DialogueParseError("invalid_messages", str(contract_error)) from contract_error
    return messages


def first_conversation(task: TaskConfig, template: Template, caption: str) -> list[dict[str, str]]:
    """Round 0's chat for one caption: the task prompt (plus the task's reply prefill, if any)."""
    prompt = template.render(caption=caption, min_turns=task.min_turns, max_turns=task.max_turns)
    return task_conversation(task, [{"role": "user", "content": prompt}])


def task_conversation(task: TaskConfig, messages: list[dict[str, str]]) -> list[dict[str, str]]:
    """`messages` plus the task's reply prefill, if it has one, as a trailing assistant message."""
    if task.response_prefix:
        return [*messages, {"role": "assistant", "content": task.response_prefix}]
    return messages


def repair_conversation(
    task: TaskConfig, prompt: dict, reply: str | None, error: DialogueParseError, repair: Template
) -> list[dict[str, str]]:
    """The next round's chat for a failed reply: the model sees its reply and what is wrong with it."""
    if reply is None:  # the backend failed: ask again with the original prompt
        return task_conversation(task, [prompt])
    return task_conversation(
        task,
        [
            prompt,
            {"role": "assistant", "content": reply},
            {"role": "user", "content": repair.render(error=str(error))},
        ],
    )


def _round_rows(pending: list[dict]) -> list[dict]:
    """Rows for one distilabel run: only what the pipeline needs, so the cache key is the conversation."""
    return [{"id": row["id"], "messages": row["conversation"]} for row in pending]


def synthesize_instructions(args: InstructionArguments, llm_args: LLMArguments, out_args: OutputArguments) -> dict:
    """Run stage 2 end to end and write the Hub-ready folder; returns the summary."""
    start = time.perf_counter()
    captions = load_captions(args)
    tasks = {task.name: task for task in args.tasks}
    templates = {name: Template(load_prompt(task.prompt), undefined=StrictUndefined) for name, task in tasks.items()}
    repair = Template(load_prompt(args.repair_prompt), undefined=StrictUndefined) if args.max_repairs else None
    check_backend(llm_args)
    prefilled = [task.name for task in args.tasks if task.response_prefix]
    if prefilled and llm_args.backend != "transformers":
        # A trailing assistant message would be rendered as a finished turn by vLLM and OpenAI-style servers.
        logger.warning("Backend %r cannot continue a reply prefill: response_prefix of %s is not used (json_mode "
                       "is the equivalent for backend 'openai')", llm_args.backend, prefilled)  # fmt: skip
        tasks = {name: dataclasses.replace(task, response_prefix=None) for name, task in tasks.items()}

    selection = assign_tasks([row["id"] for row in captions], args.tasks, args.num_dialogues, args.assignment_seed)
    drops = DropLog(stage="instructions", rows_in=len(selection))
    pending = []
    for row in captions:
        if row["id"] in selection:
            task = tasks[selection[row["id"]]]
            conversation = first_conversation(task, templates[task.name], row["caption"])
            pending.append({**row, "task": task.name, "conversation": conversation})
    logger.info("Dialogues to write: %s of %d captions", dict(Counter(r["task"] for r in pending)), len(captions))

    gen = generation_kwargs(llm_args)
    cache_dir = Path(out_args.output_dir) / CACHE_DIRNAME
    if out_args.overwrite:
        reset_cache(cache_dir)
    accepted: dict[str, dict] = {}
    rejects, pipeline_yamls, rounds = [], [], []
    for round_index in range(args.max_repairs + 1):
        if not pending:
            break
        generated, pipeline_yaml = run_pipeline(
            lambda name: build_chat_pipeline(
                build_llm(llm_args),  # a fresh LLM per pipeline: a distilabel step owns (and unloads) its LLM
                name=name,
                cache_dir=cache_dir,
                input_batch_size=llm_args.input_batch_size,
                resources=step_resources(llm_args),
            ),
            _round_rows(pending),
            name_prefix="unicorn-instructions",
            settings=(model_identity(llm_args), gen),
            cache_dir=cache_dir,
            batch_size=llm_args.input_batch_size,
            ray=out_args.ray,
            ray_address=out_args.ray_address,
        )
        pipeline_yamls.append(pipeline_yaml)
        replies = {row["id"]: row.get("generation") for row in generated}
        failed = []
        for row in pending:
            task = tasks[row["task"]]
            reply = replies.get(row["id"])
            try:
                accepted[row["id"]] = {**row, "messages": reply_to_messages(task, reply, args)}
            except DialogueParseError as error:
                rejects.append({"id": row["id"], "task": task.name, "round": round_index, "reason": error.reason,
                                "error": str(error), "generation": reply})  # fmt: skip
                failed.append((row, reply, error))
        rounds.append({"round": round_index, "sent": len(pending), "accepted": len(pending) - len(failed)})
        logger.info("Round %d: %d sent, %d parsed and valid", round_index, len(pending), len(pending) - len(failed))
        if round_index == args.max_repairs:
            for row, _, error in failed:
                drops.drop(f"{error.reason}", row["id"])
            break
        pending = []
        for row, reply, error in failed:
            conversation = repair_conversation(tasks[row["task"]], row["conversation"][0], reply, error, repair)
            pending.append({**row, "conversation": conversation})

    rows = [
        {"id": row["id"], "task": row["task"], "caption": row["caption"], "messages": row["messages"],
         "model_name": llm_args.model_name_or_path}
        for row in sorted(accepted.values(), key=lambda row: row["id"])
    ]  # fmt: skip
    total = drops.rows_in
    stats = {
        "rows": len(rows),
        **{f"rows_{name}": sum(row["task"] == name for row in rows) for name in tasks},
        "mean_turns": round(sum(len(row["messages"]) // 2 for row in rows) / max(1, len(rows)), 2),
        "json_acceptance_first_pass": round(rounds[0]["accepted"] / max(1, total), 4) if rounds else 0.0,
        "json_acceptance_final": round(len(rows) / max(1, total), 4),
        "rounds": rounds,
    }
    output_dir = Path(out_args.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    with (output_dir / "rejects.jsonl").open("w") as handle:
        for reject in rejects:
            handle.write(json.dumps(reject, ensure_ascii=False) + "\n")
    if not rows:
        (output_dir / "drops.json").write_text(json.dumps([drops.to_dict()], indent=2) + "\n")
        raise RuntimeError(
            f"Stage 2 kept no dialogue ({drops.summary()}); the replies are in {output_dir / 'rejects.jsonl'}"
        )

    identity = model_identity(llm_args)
    prompts = {prompt_path(task.prompt).name: load_prompt(task.prompt) + "\n" for task in args.tasks}
    if args.max_repairs:
        prompts[prompt_path(args.repair_prompt).name] = load_prompt(args.repair_prompt) + "\n"
    generation = {
        "model": identity,
        "generation_kwargs": gen,
        "wall_time_s": round(time.perf_counter() - start, 1),
        "arguments": arguments_dict(args, llm_args, out_args),
    }
    body = card_body(
        title="Unicorn instructions",
        summary=(
            f"{len(rows)} multi-turn instruction dialogues about synthetic images, written by "
            f"`{identity['model_name_or_path']}` (revision `{identity['revision']}`, backend `{identity['backend']}`) "
            f"from the captions in `{portable_path(args.captions_dataset, output_dir)}`. Every reply was parsed as "
            "JSON and validated with pydantic; failures were sent back for repair or dropped with their reason "
            "(`rejects.jsonl`)."
        ),
        columns=INSTRUCTIONS_COLUMN_DESCRIPTIONS,
        sections={
            "Statistics": stats_markdown({k: v for k, v in stats.items() if k != "rounds"}),
            "Rows in, rows out, drop reasons": drops_markdown([drops]),
            "Generation": f"Prompts in `prompts/` ({', '.join(sorted(prompts))}); settings `{gen}`; "
            f"repair rounds {args.max_repairs}; per round: {rounds}; the executed distilabel pipeline is "
            "`pipeline.yaml`, all arguments are in `generation.json`.",
        },
        config_name=INSTRUCTIONS_CONFIG,
    )
    summary = write_stage_folder(
        out_args.output_dir,
        INSTRUCTIONS_CONFIG,
        rows,
        [drops],
        stats,
        body,
        generation,
        prompts=prompts,
        pipeline_yamls=pipeline_yamls,
        max_shard_rows=out_args.max_shard_rows,
        tags=["synthetic", "distilabel", "visual-question-answering", "unicorn"],
    )
    if out_args.push_to_hub:
        push_stage_folder(out_args.output_dir, out_args.hub_dataset_id, out_args.hub_private)
    return summary
