#!/usr/bin/env bash
# Every modality transfer method from recipe YAML through transfer, pretraining, SFT and pipeline() on the tiny
# recipe: the tiny YAMLs with `--method` (and what the method needs) overridden, one output folder per method, then
# transformers' pipeline("image-text-to-text") on each SFT folder alone answers a real photograph. Not part of CI
# (~2-4 min per method on 2 cores); run after `make quickstart` (it reads outputs/tiny/text and outputs/tiny/encoder).
# Usage: bash scripts/transfer_methods_check.sh [method ...]   (default: all six)
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1
OUT=${OUT:-outputs/transfer_methods}
methods=("$@")
[ ${#methods[@]} -gt 0 ] || methods=(none mean_shift capdec c3 realign memory_projection)
for method in "${methods[@]}"; do
  case "$method" in
    mean_shift) extra=(--renormalize true); tower_mean=image ;;
    none) extra=(--renormalize false); tower_mean=none ;;  # the methods' own fixed re-normalisation (a CLI has no null)
    capdec) extra=(--renormalize true --noise_std 0.126); tower_mean=none ;;
    c3) extra=(--renormalize true --noise_std 0.126); tower_mean=image ;;
    *) extra=(--renormalize true); tower_mean=none ;;
  esac
  dir="$OUT/$method"
  echo "== $method"
  python recipes/transfer.py --config recipes/tiny/transfer.yaml --method "$method" "${extra[@]}" \
    --output_dir "$dir/transfer" --diagnostics false
  accelerate launch --config_file accelerate_configs/cpu.yaml recipes/pretrain.py --config recipes/tiny/pretrain.yaml \
    --dataset_name "$dir/transfer" --output_dir "$dir/pretrain"
  accelerate launch --config_file accelerate_configs/cpu.yaml recipes/sft.py --config recipes/tiny/sft.yaml \
    --model_name_or_path "$dir/pretrain" --dataset_name "$dir/transfer" --output_dir "$dir/sft" \
    --image_tower_mean "$tower_mean"
  python - "$dir/sft" "$method" <<'EOF'
import json
import sys

from skimage import data
from PIL import Image
from transformers import pipeline

folder, method = sys.argv[1], sys.argv[2]
config = json.load(open(f"{folder}/config.json"))
assert config["modality_transfer"]["method"] == method, config["modality_transfer"]
pipe = pipeline("image-text-to-text", model=folder, trust_remote_code=True)
messages = [{"role": "user", "content": [{"type": "image", "image": Image.fromarray(data.chelsea())},
                                         {"type": "text", "text": "What is shown?"}]}]
reply = pipe(text=messages, generate_kwargs={"max_new_tokens": 8, "do_sample": False}, return_full_text=False)
print(f"{method}: {config['modality_transfer']} -> {reply[0]['generated_text']!r}")
EOF
done
