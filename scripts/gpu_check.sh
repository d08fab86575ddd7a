#!/usr/bin/env bash
# GPU check: bf16 pretrain and SFT steps of the SmolLM2-135M-based Unicorn model with sdpa; prints tokens/s and model
# FLOPs utilisation, and fails unless the first loss of each stage matches CPU fp32 within 1% (scripts/gpu_check.py).
# A few minutes on one GPU. For a machine whose Python has only torch: the project's other wheels (~45 MiB, under the
# 64 MiB a checkout may carry) travel in .gpu_check/wheels and are unpacked next to it, nothing is fetched there.
#
#   bash scripts/gpu_check.sh prepare    # where a package index is reachable: the wheels -> .gpu_check/wheels
#   bash scripts/gpu_check.sh            # on the GPU machine, from the checkout root (extra args go to gpu_check.py)
#
# `prepare` downloads binary wheels for this machine's Python and platform; set GPU_PYTHON_VERSION (e.g. 3.12) and
# GPU_PLATFORM (e.g. manylinux_2_28_x86_64) when the GPU machine's differ. Versions: requirements/constraints-cpu.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
WHEELS=${GPU_CHECK_WHEELS:-.gpu_check/wheels}
SITE=${GPU_CHECK_SITE:-.gpu_check/site}
# transformers and what it imports at run time (torch is the machine's own); pinned as the test-suite runs them.
PACKAGES=(transformers huggingface_hub tokenizers safetensors numpy)

if [[ "${1:-}" == "prepare" ]]; then
  pins=()
  for package in "${PACKAGES[@]}"; do
    pins+=("$(grep -i -E "^${package//_/[-_]}==" requirements/constraints-cpu.txt)")
  done
  target=()
  [[ -n "${GPU_PYTHON_VERSION:-}" ]] && target+=(--python-version "$GPU_PYTHON_VERSION")
  [[ -n "${GPU_PLATFORM:-}" ]] && target+=(--platform "$GPU_PLATFORM")
  mkdir -p "$WHEELS"
  "$PYTHON" -m pip download --only-binary=:all: "${target[@]}" -d "$WHEELS" "${pins[@]}"
  du -sh "$WHEELS"
  exit 0
fi

if ! "$PYTHON" -c "import transformers" 2>/dev/null; then
  if [[ ! -d "$SITE" ]]; then
    if ! compgen -G "$WHEELS/*.whl" > /dev/null; then
      echo "No transformers here and no wheels in $WHEELS: run 'bash scripts/gpu_check.sh prepare' where an index is reachable" >&2
      exit 2
    fi
    "$PYTHON" -m pip install --quiet --no-index --no-deps --target "$SITE" "$WHEELS"/*.whl
  fi
  export PYTHONPATH="$PWD/$SITE${PYTHONPATH:+:$PYTHONPATH}"
fi
"$PYTHON" -c "import torch; assert torch.cuda.is_available(), 'no CUDA device visible'; print(torch.cuda.get_device_name(0))"
exec "$PYTHON" scripts/gpu_check.py --output .gpu_check/results.json "$@"
