"""Train the LiT-style encoder: contrastive loss on the projections of two locked, packaged towers.

pairs (packages) -> split -> cached tower features -> ClipLoss on the heads -> held-out report -> open_clip folder
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import asdict
from pathlib import Path

import open_clip
import torch
from open_clip.loss import ClipLoss
from open_clip.model import CustomTextCLIP
from open_clip.tokenizer import HFTokenizer
from tqdm.auto import tqdm

from unicorn_hf.lit.card import write_encoder_card
from unicorn_hf.lit.config import EncoderDataArguments, EncoderModelArguments, EncoderTrainingArguments
from unicorn_hf.lit.evaluation import evaluate_pairs
from unicorn_hf.lit.features import cached_features, embed_image_features, embed_text_features
from unicorn_hf.lit.model import (
    CONFIG_FILE,
    WEIGHTS_FILE,
    build_pretrained_encoder,
    load_encoder_folder,
    save_encoder,
    trainable_parameters,
)
from unicorn_hf.lit.pairs import collect_pairs, photograph_pairs, restrict_pairs, split_pairs
from unicorn_hf.lit.pretrained_towers import resolve
from unicorn_hf.lit.recipe import HELD_OUT_IDS_FILE, parse_config
from unicorn_hf.utils.drops import DropLog


logger = logging.getLogger(__name__)

METRICS_FILE = "metrics.json"
FEATURES_VERSION = 2  # bump when the feature computation changes, so stale caches are recomputed
RECALL_KS = (1, 5)  # the reported cut-offs (a report format, not a tuned value)
_MAX_LOGIT_SCALE = math.log(100)  # CLIP's clamp: temperature never below 0.01


def encoder_is_trained(output_dir: str | Path) -> bool:
    folder = Path(output_dir)
    return all((folder / name).is_file() for name in (CONFIG_FILE, WEIGHTS_FILE, METRICS_FILE))


def fit_projections(
    model: CustomTextCLIP,
    image_feats: torch.Tensor,
    text_feats: torch.Tensor,
    training_args: EncoderTrainingArguments,
) -> list[float]:
    """Contrastive training of the image head, the text projection and the logit scale on cached features."""
    params = trainable_parameters(model)
    # No weight decay on the logit scale and biases (as open_clip's training script does).
    decay = [param for name, param in params.items() if param.ndim >= 2]
    no_decay = [param for name, param in params.items() if param.ndim < 2]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": training_args.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=training_args.learning_rate,
    )
    steps_per_epoch = math.ceil(len(image_feats) / training_args.train_batch_size)
    total_steps = steps_per_epoch * training_args.num_train_epochs
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=training_args.learning_rate, total_steps=total_steps, anneal_strategy="cos"
    )
    loss_fn = ClipLoss()
    generator = torch.Generator().manual_seed(training_args.seed)
    model.visual.head.train()
    model.text.proj.train()
    losses = []
    for _ in tqdm(range(training_args.num_train_epochs), desc="train projections", unit="epoch"):
        order = torch.randperm(len(image_feats), generator=generator)
        epoch_loss = 0.0
        for start in range(0, len(order), training_args.train_batch_size):
            index = order[start : start + training_args.train_batch_size]
            if len(index) < 2:  # a contrastive batch needs negatives
                continue
            image_embeds = embed_image_features(model, image_feats[index])  # [B, D]
            text_embeds = embed_text_features(model, text_feats[index])  # [B, D]
            loss = loss_fn(image_embeds, text_embeds, model.logit_scale.exp())
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            with torch.no_grad():
                model.logit_scale.clamp_(0, _MAX_LOGIT_SCALE)
            epoch_loss += loss.item() * len(index)
        losses.append(epoch_loss / len(order))
    model.eval()
    logger.info("Contrastive loss: first epoch %.4f, last epoch %.4f", losses[0], losses[-1])
    return losses


@torch.no_grad()
def _embed(model: CustomTextCLIP, image_feats: torch.Tensor, text_feats: torch.Tensor):
    return embed_image_features(model, image_feats), embed_text_features(model, text_feats)


@torch.no_grad()
def _check_reload(folder: Path, pairs, image_embeds: torch.Tensor, text_embeds: torch.Tensor) -> float:
    """Encode a few held-out pairs through the *saved* folder with plain open_clip; must match training's path."""
    model, preprocess, tokenizer = load_encoder_folder(folder)
    pixels = torch.stack([preprocess(pair.load()) for pair in pairs])  # [n, 3, S, S]
    reloaded_images = model.encode_image(pixels, normalize=True)  # [n, D]
    reloaded_texts = model.encode_text(tokenizer([pair.caption for pair in pairs]), normalize=True)  # [n, D]
    error = max((reloaded_images - image_embeds).abs().max().item(), (reloaded_texts - text_embeds).abs().max().item())
    if error > 1e-4:  # float32 round-off only; anything larger means a tower was rebuilt differently
        raise RuntimeError(f"Reloaded encoder {folder} disagrees with the trained one (max |diff| = {error:.2e})")
    return error


def train_encoder(
    model_args: EncoderModelArguments, data_args: EncoderDataArguments, training_args: EncoderTrainingArguments
) -> Path:
    """Run the whole recipe; returns the open_clip `local-dir:` folder. Skips work already finished."""
    output_dir = Path(training_args.output_dir)
    if encoder_is_trained(output_dir) and not training_args.overwrite:
        logger.info("Encoder already trained in %s (pass --overwrite to retrain)", output_dir)
        return output_dir
    if training_args.num_threads is not None:
        torch.set_num_threads(training_args.num_threads)
    torch.manual_seed(training_args.seed)
    timings: dict[str, float] = {}
    start = time.perf_counter()

    pairs, drops = collect_pairs(
        data_args.sources, data_args.max_pairs_per_source, training_args.seed, model_args.image_size
    )
    if data_args.pair_ids_file is not None:
        pairs = restrict_pairs(pairs, data_args.pair_ids_file, drops)
    train_pairs, eval_pairs = split_pairs(pairs, data_args.eval_fraction, training_args.seed)
    logger.info("%s; %d train / %d held-out pairs", drops.summary(), len(train_pairs), len(eval_pairs))

    model, config = build_pretrained_encoder(model_args)
    preprocess_cfg = config["preprocess_cfg"]
    preprocess = open_clip.image_transform(
        preprocess_cfg["size"],
        is_train=False,
        mean=preprocess_cfg["mean"],
        std=preprocess_cfg["std"],
        interpolation=preprocess_cfg["interpolation"],
        resize_mode=preprocess_cfg["resize_mode"],
    )
    tokenizer = HFTokenizer(str(resolve(model_args.text_tower)), context_length=model_args.context_length)
    cache = output_dir / "feature_cache"
    fingerprint = json.dumps({"model": asdict(model_args), "features_version": FEATURES_VERSION}, sort_keys=True)
    batch = training_args.feature_batch_size
    train_ids, train_images, train_texts = cached_features(
        cache / "train.safetensors",
        fingerprint,
        model,
        preprocess,
        tokenizer,
        train_pairs,
        batch,
        drops,
        "tower features (train)",
    )
    eval_ids, eval_images, eval_texts = cached_features(
        cache / "eval.safetensors",
        fingerprint,
        model,
        preprocess,
        tokenizer,
        eval_pairs,
        batch,
        drops,
        "tower features (eval)",
    )
    timings["data_and_features_s"] = time.perf_counter() - start

    start = time.perf_counter()
    losses = fit_projections(model, train_images, train_texts, training_args)
    timings["training_s"] = time.perf_counter() - start

    start = time.perf_counter()
    train_image_embeds, train_text_embeds = _embed(model, train_images, train_texts)
    image_mean, text_mean = train_image_embeds.mean(0), train_text_embeds.mean(0)  # [D], from training pairs only
    eval_image_embeds, eval_text_embeds = _embed(model, eval_images, eval_texts)
    by_id = {pair.id: pair for pair in pairs}
    sources = sorted({by_id[pair_id].source for pair_id in eval_ids})
    results = {"held_out": evaluate_pairs(eval_image_embeds, eval_text_embeds, image_mean, text_mean, RECALL_KS)}
    for source in sources:
        rows = torch.tensor([by_id[pair_id].source == source for pair_id in eval_ids])
        results[f"held_out/{source}"] = evaluate_pairs(
            eval_image_embeds[rows], eval_text_embeds[rows], image_mean, text_mean, RECALL_KS
        )
    if data_args.eval_photographs:
        photo_drops = DropLog(stage="encoder_photographs")
        _, photo_images, photo_texts = cached_features(
            cache / "photographs.safetensors",
            fingerprint,
            model,
            preprocess,
            tokenizer,
            photograph_pairs(),
            batch,
            photo_drops,
            "tower features (photographs)",
        )
        photo_images, photo_texts = _embed(model, photo_images, photo_texts)
        results["photographs"] = evaluate_pairs(photo_images, photo_texts, image_mean, text_mean, RECALL_KS)
    timings["evaluation_s"] = time.perf_counter() - start

    save_encoder(model, config, model_args, output_dir)
    check_rows = list(range(min(4, len(eval_ids))))  # a handful is enough to catch a mis-built tower
    reload_error = _check_reload(
        output_dir,
        [by_id[eval_ids[row]] for row in check_rows],
        eval_image_embeds[check_rows],
        eval_text_embeds[check_rows],
    )
    metrics = {
        "results": results,
        "train_pairs": len(train_ids),
        "held_out_pairs": len(eval_ids),
        "train_loss_first_epoch": losses[0],
        "train_loss_last_epoch": losses[-1],
        "logit_scale": model.logit_scale.exp().item(),
        "reload_max_abs_diff": reload_error,
        "timings": timings,
        "torch_threads": torch.get_num_threads(),
    }
    drops.save(output_dir / "drops.json")
    (output_dir / HELD_OUT_IDS_FILE).write_text(json.dumps(eval_ids, indent=0) + "\n")
    write_encoder_card(output_dir, model_args, data_args, training_args, metrics, drops)
    (output_dir / METRICS_FILE).write_text(json.dumps(metrics, indent=2) + "\n")  # last: marks the run finished
    logger.info("Held-out results: %s", json.dumps(results["held_out"], indent=1))
    return output_dir


def build_default_encoder(output_dir: str | Path, config_path: str | Path, **overrides) -> Path:
    """Train the encoder once with a recipe YAML (e.g. `recipes/tiny/encoder.yaml`) and cache it in `output_dir`.

    Later calls return the finished folder at once. `overrides` replace YAML fields (e.g. `max_pairs_per_source`).
    The folder loads with `open_clip.create_model_and_transforms(f"local-dir:{folder}")`.
    """
    model_args, data_args, training_args = parse_config(config_path, output_dir=str(output_dir), **overrides)
    return train_encoder(model_args, data_args, training_args)
