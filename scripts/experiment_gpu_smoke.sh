#!/usr/bin/env bash
# A CPU smoke test of the GPU budget (recipes/concept_titles/experiment_gpu.yaml): each of its seed-0 YAMLs runs
# unchanged but for a few overrides that make it small and keep it on the CPU (2 training steps, 8 held-out images,
# --device cpu), then the seeds' comparison. It checks that the YAMLs parse, their stages chain and every output
# appears; no figure it prints means anything. ~8 min on 2 cores.
# Needs the data stages: outputs/tiny/encoder and outputs/concept_titles/{text,transfer} (make experiment makes them).
# Usage: bash scripts/experiment_gpu_smoke.sh [OUT]   (default OUT: a fresh temporary folder)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
gpu=recipes/concept_titles/gpu
out=${1:-$(mktemp -d)}
launch=("$PY" -m accelerate.commands.launch --config_file accelerate_configs/cpu.yaml)
small=(--device cpu --num_images 8 --bootstrap_resamples 50)
"${launch[@]}" recipes/pretrain.py --config $gpu/pretrain.yaml --max_steps 2 --output_dir "$out/pretrain"
$PY recipes/ladder.py --config $gpu/ladder.yaml --model_name_or_path "$out/pretrain" --output_dir "$out/ladder" \
  "${small[@]}"
"${launch[@]}" recipes/sft.py --config $gpu/sft.yaml --max_steps 2 --model_name_or_path "$out/pretrain" \
  --output_dir "$out/sft"
$PY recipes/ladder.py --config $gpu/sft_ladder.yaml --model_name_or_path "$out/sft" --output_dir "$out/sft_ladder" \
  --training_probe_rows 8 "${small[@]}"
$PY recipes/ladder_compare.py --ladders "seed 0=$out/ladder/ladder.json" "again=$out/ladder/ladder.json" \
  --output_dir "$out/compare"
for made in pretrain/model.safetensors ladder/ladder.json sft/model.safetensors sft_ladder/ladder.json \
  compare/comparison.png; do
  [ -s "$out/$made" ] || { echo "smoke: $out/$made was not written" >&2; exit 1; }
done
echo "GPU budget smoke on CPU passed: $out"
