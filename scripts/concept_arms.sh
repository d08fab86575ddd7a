#!/usr/bin/env bash
# The trained transfer arms of issue 20 on the concept-title text (recipes/concept_titles): each arm is the reference
# recipe with one change, the transfer method of its stage 3, then the same pretraining (the plain format,
# pretrain_plain.yaml, four times cheaper a step than the chat format) and the same probe ladder.
#   none:    the raw text embeddings (the gap left open)
#   capdec:  Gaussian noise on the text side in every step (CapDec, sigma 0.126 = sqrt(0.016), its default)
#   c3:      mean shift + the same noise (C3)
#   realign: ReAlign (unicorn_hf/modeling/modality_transfer.py)
#   image_oracle: the same titles with their pairs' real image embeddings (recipes/image_oracle.py): what LLaVA-style
#            training reaches, the ceiling of the text arms; its ladder's image rules are the training images' mean
#            (as trained) and the evaluated set's own mean (it stores no text memory to project onto)
# The reference arm (mean_shift) is the sweep's 8k point (outputs/concept_titles/plain/{pretrain,ladder}); memory projection
# and the mean variants are inference-only rules of each arm's checkpoint (arms_ladder.yaml), not arms of their own.
# Usage: bash scripts/concept_arms.sh [none] [capdec] [c3] [realign] [image_oracle]   (default: all; finished stages skipped)
# Needs outputs/tiny/encoder and outputs/concept_titles/text (make quickstart; bash scripts/concept_sweep.sh 8k).
# Writes outputs/concept_titles/arms/<arm>/{transfer,pretrain,ladder} (~19 min an arm on 2 idle cores) and
# outputs/concept_titles/arms/comparison.{json,md} (unicorn_hf.experiments.ladder_compare).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
recipe=recipes/concept_titles
text=outputs/concept_titles/text
[ -f "$text/pair_text.json" ] || { echo "no $text/pair_text.json: run bash scripts/concept_sweep.sh 8k first" >&2; exit 2; }
arms=("$@"); [ ${#arms[@]} -eq 0 ] && arms=(none capdec c3 realign image_oracle)
for arm in "${arms[@]}"; do
  case "$arm" in
    none) extra=(--method none --renormalize false) ;;   # transfer.yaml's renormalize is mean_shift's
    realign) extra=(--method realign) ;;
    capdec | c3) extra=(--method "$arm" --noise_std 0.126) ;;
    image_oracle) extra=() ;;
    *) echo "unknown arm $arm (none, capdec, c3, realign, image_oracle)" >&2; exit 2 ;;
  esac
  out=outputs/concept_titles/arms/$arm
  rules=()
  start=$SECONDS
  if [ "$arm" = image_oracle ]; then   # the reference arm's rows (outputs/concept_titles/transfer), real images instead
    [ -f "$out/transfer/transfer_stats.json" ] || $PY recipes/image_oracle.py --config $recipe/image_oracle.yaml \
      --text_dir $text --output_dir "$out/transfer"
    rules=(--image_rules '[{"name": "as_trained", "image_mean": "image"}, {"name": "eval_mean", "image_mean": "eval"}]')
  else
    [ -f "$out/transfer/transfer_stats.json" ] || $PY recipes/transfer.py --config $recipe/transfer.yaml \
      --captions_path $text --instructions_path $text --output_dir "$out/transfer" "${extra[@]}"
  fi
  [ -f "$out/pretrain/model.safetensors" ] || $PY -m accelerate.commands.launch --config_file accelerate_configs/cpu.yaml \
    recipes/pretrain.py --config $recipe/pretrain_plain.yaml --dataset_name "$out/transfer" --output_dir "$out/pretrain"
  [ -f "$out/ladder/ladder.json" ] || $PY recipes/ladder.py --config $recipe/arms_ladder.yaml \
    --model_name_or_path "$out/pretrain" --output_dir "$out/ladder" "${rules[@]}"
  echo "arm $arm: $((SECONDS - start)) s -> $out/ladder/ladder.md"
  cat "$out/ladder/ladder.md"
done
# Every finished arm side by side, each ladder's own numbers (the reference arm when the sweep's 8k point is there):
# outputs/concept_titles/arms/comparison.{json,md}
ladders=()
if [ -f outputs/concept_titles/plain/ladder/ladder.json ]; then
  ladders+=(mean_shift=outputs/concept_titles/plain/ladder/ladder.json)
fi
for arm in none capdec c3 realign image_oracle; do
  if [ -f "outputs/concept_titles/arms/$arm/ladder/ladder.json" ]; then
    ladders+=("$arm=outputs/concept_titles/arms/$arm/ladder/ladder.json")
  fi
done
$PY -m unicorn_hf.experiments.ladder_compare --output_dir outputs/concept_titles/arms --ladders "${ladders[@]}"
cat outputs/concept_titles/arms/comparison.md
