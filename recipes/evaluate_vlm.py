"""Stage 5: evaluate a Unicorn checkpoint on real images and write the results into a model card.

Each benchmark's images go through the image encoder recorded in the model config (or `encoder`), are shifted by
each image-mean mode of `mean_modes` (eval = the benchmark's own image mean as in the paper, image = the stored
image_mean, text = the training caption mean), and the model answers; answers are extracted (yes/no, option
letters) and scored with the `evaluate` modules shipped in `unicorn_hf/evaluation/metrics`.

CPU recipe (offline fixtures built from scikit-image photographs; after recipes/sft.py):

    python recipes/evaluate_vlm.py --config recipes/tiny/evaluate.yaml

Paper scale (the real benchmarks from the Hub), also writing the card into the checkpoint folder and pushing it:

    python recipes/evaluate_vlm.py --config recipes/unicorn-8b/evaluate.yaml --update_model_card --push_to_hub

Writes `<output_dir>/results.json`, `<output_dir>/predictions/<benchmark>/<mean mode>.jsonl` (every generation,
the extracted answer and whether it is right) and, for a local checkpoint, `<output_dir>/model_card/README.md` (the
checkpoint's card with these results in its `model-index`). `--update_model_card` also copies that card into the
checkpoint folder, the one write outside `output_dir`; `--push_to_hub` pushes it to `hub_model_id`. A re-run
re-scores stored predictions instead of generating again (`--overwrite` generates anew).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import torch
from transformers import set_seed
from trl import TrlParser

from unicorn_hf.cards import write_stage_card
from unicorn_hf.evaluation.config import EvalArguments, EvalDataArguments, EvalModelArguments
from unicorn_hf.evaluation.inference import MEAN_MODES
from unicorn_hf.evaluation.run import run_evaluation
from unicorn_hf.utils.logging import setup_logging
from unicorn_hf.utils.preflight import check_encoder_spec, check_reference, check_unicorn_config


logger = logging.getLogger(__name__)


def make_parser() -> TrlParser:
    return TrlParser((EvalModelArguments, EvalDataArguments, EvalArguments))


def main(model_args: EvalModelArguments, data_args: EvalDataArguments, args: EvalArguments) -> dict:
    setup_logging()
    for mode in args.mean_modes:
        if mode not in MEAN_MODES:
            raise ValueError(f"mean_modes holds {mode!r}; expected any of {MEAN_MODES}")
    if args.push_to_hub and not args.hub_model_id:
        raise ValueError("--push_to_hub pushes the model card to `hub_model_id`: set it (e.g. <user>/unicorn-8b).")
    if model_args.num_threads is not None:
        torch.set_num_threads(model_args.num_threads)
    set_seed(data_args.seed)
    # The checkpoint and the encoder exist and the checkpoint's config is whole, before any model loads.
    check_reference(model_args.model_name_or_path, field="model_name_or_path", kind="model")
    check_unicorn_config(model_args.model_name_or_path)
    check_encoder_spec(model_args.encoder)
    for name, script in (("sees_results", "sees.py"), ("ladder_results", "ladder.py")):
        path = getattr(args, name)
        if path and not Path(path).is_file():
            raise FileNotFoundError(
                f"{name}={path!r}: no such file; run recipes/{script} first (the quickstart does) or set {name}: null"
            )
    checkpoint = Path(model_args.model_name_or_path)
    if (args.update_model_card or args.push_to_hub) and not checkpoint.is_dir():
        raise ValueError(
            f"--update_model_card / --push_to_hub need a local checkpoint folder; {checkpoint} is not one."
        )
    summary = run_evaluation(model_args, data_args, args)

    # The checkpoint's card with these results is written under output_dir; only --update_model_card also writes it
    # into the checkpoint folder (outside output_dir: the user asks for it by name).
    if checkpoint.is_dir():
        sees = json.loads(Path(args.sees_results).read_text()) if args.sees_results else None
        ladder = json.loads(Path(args.ladder_results).read_text()) if args.ladder_results else None
        write_stage_card(checkpoint, Path(args.output_dir), summary, into_checkpoint=args.update_model_card,
                         push=args.push_to_hub, repo_id=args.hub_model_id, template_path=args.model_card_template,
                         sees=sees, ladder=ladder)  # fmt: skip
    return summary


if __name__ == "__main__":
    main(*make_parser().parse_args_and_config())
