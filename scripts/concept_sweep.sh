#!/usr/bin/env bash
# The concept-count sweep of issue 20: the concept-title recipe (recipes/concept_titles) at 800, ~8k and ~30k training
# concepts, each pretrained for the same steps and probed by the same ladder (rungs b and c say whether the model
# generalises to untrained concepts and whether real images reach it). Pretraining is the plain format
# (pretrain_plain.yaml), four times cheaper a step than the recipe's default chat format; the points compare with
# each other.
#   800:  800 pair titles                                   (the does-it-see experiment's scale)
#   8k:   every pair title outside the held-out pairs       (recipes/concept_titles as shipped)
#   30k:  those + the ImageNet-21k concept bank's lemmas    (pkg://imagenet21k, unicorn_hf/synthesis/concepts.py)
# Usage: [SEED=0] bash scripts/concept_sweep.sh [800] [8k] [30k]   (default: all three; finished stages are skipped)
# SEED seeds the pretraining and the ladder's candidates; text and transfer are shared by every seed, and a seed
# other than 0 writes its pretrain/ and ladder/ under <point>/seed-<SEED>/.
# Needs outputs/tiny/encoder (make quickstart). Writes outputs/concept_titles/sweep/<point>/{text,transfer,pretrain,
# ladder}; 8k shares the recipe's own text and transfer (outputs/concept_titles/) and trains in outputs/concept_titles/plain.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
SEED=${SEED:-0}
points=("$@"); [ ${#points[@]} -eq 0 ] && points=(800 8k 30k)
recipe=recipes/concept_titles
for point in "${points[@]}"; do
  case "$point" in
    800) extra=(--num_pairs 800) ;;
    8k) extra=() ;;
    30k) extra=(--concept_bank pkg://imagenet21k --concept_label_format lemma) ;;
    *) echo "unknown sweep point $point (800, 8k, 30k)" >&2; exit 2 ;;
  esac
  out=outputs/concept_titles/sweep/$point; run=$out
  # 8k is the recipe's own text and transfer (its quickstart.yaml writes the same), pretrain_plain.yaml's output folder
  [ "$point" = 8k ] && { out=outputs/concept_titles; run=outputs/concept_titles/plain; }
  [ "$SEED" = 0 ] || run=$run/seed-$SEED
  start=$SECONDS
  [ -f "$out/text/pair_text.json" ] || $PY recipes/pair_text.py --config $recipe/pair_text.yaml --output_dir "$out/text" "${extra[@]}"
  [ -f "$out/transfer/transfer_stats.json" ] || $PY recipes/transfer.py --config $recipe/transfer.yaml \
    --captions_path "$out/text" --instructions_path "$out/text" --output_dir "$out/transfer"
  [ -f "$run/pretrain/model.safetensors" ] || $PY -m accelerate.commands.launch --config_file accelerate_configs/cpu.yaml \
    recipes/pretrain.py --config $recipe/pretrain_plain.yaml --dataset_name "$out/transfer" --output_dir "$run/pretrain" \
    --seed "$SEED"
  [ -f "$run/ladder/ladder.json" ] || $PY recipes/ladder.py --config $recipe/ladder.yaml \
    --model_name_or_path "$run/pretrain" --output_dir "$run/ladder" --seed "$SEED"
  echo "sweep point $point, seed $SEED: $((SECONDS - start)) s -> $run/ladder/ladder.md"
  cat "$run/ladder/ladder.md"
done
# Every finished point of this seed side by side, each ladder's own numbers (unicorn_hf.experiments.ladder_compare):
# outputs/concept_titles/sweep/[seed-N/]comparison.{json,md}
ladders=()
for point in 800 8k 30k; do
  run=outputs/concept_titles/sweep/$point; [ "$point" = 8k ] && run=outputs/concept_titles/plain
  [ "$SEED" = 0 ] || run=$run/seed-$SEED
  if [ -f "$run/ladder/ladder.json" ]; then ladders+=("$point=$run/ladder/ladder.json"); fi
done
compared=outputs/concept_titles/sweep; [ "$SEED" = 0 ] || compared=$compared/seed-$SEED
$PY -m unicorn_hf.experiments.ladder_compare --output_dir "$compared" --ladders "${ladders[@]}"
