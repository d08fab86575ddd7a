"""Checks an entry script runs before any heavy work: every model or dataset it names exists, and a Unicorn
checkpoint's `config.json` holds every field the model is built from.

Without them a mistyped path fails late and blames the wrong thing: `outputs/nope` is also a valid Hub id, so
transformers reports "We couldn't connect to 'https://huggingface.co'" without naming the path, and a
`config.json` that lost `num_image_tokens` or `text_config` loads with the class defaults (576 image tokens; a
Llama-7B-sized LLM that is allocated before the weights fail to fit).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from huggingface_hub import HfApi, constants
from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError, RevisionNotFoundError
from huggingface_hub.file_download import repo_folder_name
from huggingface_hub.utils import HFValidationError, validate_repo_id
from transformers import AutoConfig, PreTrainedConfig

from unicorn_hf.modeling import UnicornConfig


logger = logging.getLogger(__name__)

# Seconds one Hub lookup may take: long enough for a slow link, short enough that a typo fails fast.
HUB_LOOKUP_TIMEOUT_S = 10.0
# Fields of a Unicorn config.json whose class default would silently change the model (`save_pretrained` always
# writes them). `tie_word_embeddings` is not one: the wrapped LLM's own config decides it.
REQUIRED_CONFIG_FIELDS = (
    "model_type",
    "text_config",
    "embed_dim",
    "projector_type",
    "num_image_tokens",
    "image_token_id",
    "encoder_id",
    "modality_transfer",
    "has_image_mean",
)
# Fields of `text_config` that size the LLM: without them its config class builds its default (often 7B) model.
REQUIRED_TEXT_FIELDS = ("vocab_size", "hidden_size", "num_hidden_layers")


class ReferenceNotFoundError(FileNotFoundError):
    """A model or dataset reference that is neither a local folder nor a Hub repo that can be reached."""


def check_reference(
    value: str | Path | None,
    *,
    field: str,
    kind: str,
    revision: str | None = None,
    hint: str | None = None,
) -> None:
    """Raise `ReferenceNotFoundError` (naming `field` and `value`) unless `value` is a local folder, a packaged
    model (`pkg://`), or a Hub `kind` ("model" | "dataset") repo that exists. A Hub lookup takes at most
    `HUB_LOOKUP_TIMEOUT_S`; offline (HF_HUB_OFFLINE) only the local Hub cache counts. `hint` is appended."""
    if value is None or str(value).startswith("pkg://"):
        return  # pkg:// models are resolved (or refused) by `unicorn_hf.utils.assets.resolve_model_path`
    text = str(value)
    path = Path(text).expanduser()
    if path.is_dir():
        return
    suffix = f"; {hint}" if hint else ""
    if path.exists():
        raise ReferenceNotFoundError(f"{field}={text!r} is a file; a {kind} folder or Hub id is expected{suffix}")

    try:
        validate_repo_id(text)
    except HFValidationError:
        raise ReferenceNotFoundError(
            f"{field}={text!r}: no such folder ({path.resolve()}), and not a Hub id either{suffix}"
        ) from None
    _check_hub_repo(text, field=field, kind=kind, revision=revision, suffix=suffix)


def _check_hub_repo(repo_id: str, *, field: str, kind: str, revision: str | None, suffix: str) -> None:
    neither = f"{field}={repo_id!r} is neither a local folder nor a Hub {kind} repo that can be reached"
    if constants.is_offline_mode():
        cached = Path(constants.HF_HUB_CACHE) / repo_folder_name(repo_id=repo_id, repo_type=kind)
        if not cached.is_dir():
            raise ReferenceNotFoundError(
                f"{neither}: there is no folder {Path(repo_id).resolve()}, and HF_HUB_OFFLINE is set while the "
                f"local Hub cache ({constants.HF_HUB_CACHE}) holds no such {kind}{suffix}"
            )
        return
    try:
        HfApi().repo_info(repo_id, repo_type=kind, revision=revision, timeout=HUB_LOOKUP_TIMEOUT_S)
    except GatedRepoError:
        return  # it exists; loading it says what access is missing
    except RevisionNotFoundError as error:
        raise ReferenceNotFoundError(
            f"{field}={repo_id!r}: the Hub {kind} has no revision {revision!r}{suffix}"
        ) from (error)
    except RepositoryNotFoundError as error:
        raise ReferenceNotFoundError(
            f"{neither}: there is no folder {Path(repo_id).resolve()}, and the Hub has no {kind} {repo_id!r} (or it "
            f"is private and HF_TOKEN cannot read it){suffix}"
        ) from error
    except Exception as error:  # DNS, refused connection, timeout, proxy: the network failed, not the id
        raise ReferenceNotFoundError(
            f"{neither}: there is no folder {Path(repo_id).resolve()}, and the Hub did not answer within "
            f"{HUB_LOOKUP_TIMEOUT_S:.0f} s ({type(error).__name__}: {error}). Fix the path, or the network (offline, "
            f"set HF_HUB_OFFLINE=1 to use the local cache){suffix}"
        ) from error


def check_unicorn_config(path_or_repo: str | Path, *, field: str = "model_name_or_path", revision: str | None = None):
    """Raise `ValueError` naming the file and the field when a Unicorn checkpoint's `config.json` lacks a field the
    model is built from (see `REQUIRED_CONFIG_FIELDS`), is not a Unicorn config, or does not size its LLM; warn
    about keys the config class does not know (they still load). Call after `check_reference`."""
    local = Path(path_or_repo)
    if local.is_dir():
        source = local / "config.json"
        if not source.is_file():
            raise FileNotFoundError(
                f"{field}={str(path_or_repo)!r} has no config.json: it is not a model checkpoint (the output folder "
                "of recipes/pretrain.py or recipes/sft.py)"
            )
        try:
            config = json.loads(source.read_text())
        except json.JSONDecodeError as error:
            raise ValueError(f"{source} is not valid JSON ({error})") from error
    else:
        source = f"config.json of {path_or_repo}"
        config, _ = PreTrainedConfig.get_config_dict(str(path_or_repo), revision=revision)
    if config.get("model_type") not in (None, UnicornConfig.model_type):
        raise ValueError(f"{source}: model_type is {config['model_type']!r}, not a Unicorn checkpoint ('unicorn')")
    missing = [name for name in REQUIRED_CONFIG_FIELDS if name not in config]
    if missing:
        raise ValueError(
            f"{source} lacks {', '.join(missing)}: a Unicorn checkpoint's config.json holds every one of "
            f"{', '.join(REQUIRED_CONFIG_FIELDS)} (save_pretrained writes them); without them the model would load "
            "with class defaults that do not match its weights. Restore the field(s), e.g. from the checkpoint the "
            "folder was copied from."
        )
    text_config = config["text_config"]
    if not isinstance(text_config, dict) or "model_type" not in text_config:
        raise ValueError(
            f"{source}: text_config must be the LLM's config (a mapping with model_type), got {text_config!r}"
        )
    try:
        text_class = AutoConfig.for_model(text_config["model_type"]).__class__
    except ValueError as error:
        raise ValueError(
            f"{source}: text_config.model_type {text_config['model_type']!r} is unknown ({error})"
        ) from error
    aliases = getattr(text_class, "attribute_map", {}) or {}
    missing_text = [
        name for name in REQUIRED_TEXT_FIELDS if name not in text_config and aliases.get(name) not in text_config
    ]
    if missing_text:
        raise ValueError(
            f"{source}: text_config lacks {', '.join(missing_text)}; without them {text_class.__name__} would build "
            "its default-sized LLM instead of this checkpoint's"
        )
    known = set(getattr(UnicornConfig, "__annotations__", {})) | set(PreTrainedConfig().to_dict())
    known |= {"auto_map", "tie_word_embeddings", "torch_dtype"}
    if unknown := sorted(set(config) - known):
        logger.warning("%s has key(s) the Unicorn config does not know: %s; they are loaded as plain attributes",
                       source, ", ".join(unknown))  # fmt: skip


def check_encoder_spec(spec: str | None, *, field: str = "encoder") -> None:
    """`check_reference` for the folder or Hub id inside a `load_encoder` spec (`local-dir:`, `hf-hub:`, `hf:`,
    `llm2clip:`); an open_clip model name (`ViT-L-14`) is left to open_clip."""
    if spec is None:
        return
    if spec.startswith("local-dir:"):
        folder = spec[len("local-dir:") :]
        if not Path(folder).expanduser().is_dir():
            raise ReferenceNotFoundError(f"{field}={spec!r}: no such folder ({Path(folder).expanduser().resolve()})")
        return
    for prefix in ("hf-hub:", "hf:", "llm2clip:"):
        if spec.startswith(prefix):
            check_reference(spec[len(prefix) :], field=field, kind="model")
            return
