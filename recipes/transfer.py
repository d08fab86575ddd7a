"""Stage 3 of Unicorn: modality representation transfer.

Embeds every caption of the stage-1 dataset (and, through the caption id, every stage-2 dialogue) with a paired
text/image encoder, subtracts the caption mean and stores the result as an `image_embeds` float16 column, with the
transfer statistics, drop counts and modality-gap diagnostics in a Hub-ready folder.

Usage (CPU, tiny recipe):

    python recipes/transfer.py --config recipes/tiny/transfer.yaml

Paper scale (one GPU; any field can be overridden on the command line):

    python recipes/transfer.py --config recipes/unicorn-8b/transfer.yaml --encoder_batch_size 512
"""

from __future__ import annotations

from trl import TrlParser

from unicorn_hf.transfer.config import EncoderArguments, TransferArguments
from unicorn_hf.transfer.pipeline import run_transfer
from unicorn_hf.utils.logging import setup_logging
from unicorn_hf.utils.preflight import check_encoder_spec, check_reference


def make_parser() -> TrlParser:
    return TrlParser((EncoderArguments, TransferArguments))


def main(encoder_args: EncoderArguments, transfer_args: TransferArguments) -> None:
    setup_logging()
    check_encoder_spec(encoder_args.encoder)
    for field in ("captions_path", "instructions_path"):
        check_reference(getattr(transfer_args, field), field=field, kind="dataset")
    run_transfer(encoder_args, transfer_args)


if __name__ == "__main__":
    main(*make_parser().parse_args_and_config())
