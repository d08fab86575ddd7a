#!/bin/bash
# Multi-node training on Slurm: one `accelerate launch` per node, each starting one process per GPU.
#
#   sbatch --nodes=2 scripts/slurm/train.sh pretrain unicorn-8b zero2
#   sbatch --nodes=2 scripts/slurm/train.sh sft unicorn-8b zero3 --learning_rate 2e-5   # extra args go to the script
#
# Arguments: <stage: pretrain|sft> <recipe folder under recipes/> <accelerate config: ddp|zero2|zero3|fsdp> [overrides]
# The global batch grows with the node count (per device x accumulation x GPUs); to keep the paper's 256 / 64,
# divide gradient_accumulation_steps or per_device_train_batch_size accordingly in the overrides.
#SBATCH --job-name=unicorn-train
#SBATCH --ntasks-per-node=1          # one launcher per node; accelerate starts the per-GPU processes
#SBATCH --gres=gpu:8
#SBATCH --cpus-per-task=96
#SBATCH --exclusive
#SBATCH --output=logs/%x-%j.out
#SBATCH --error=logs/%x-%j.err

set -euo pipefail

STAGE=${1:?stage: pretrain or sft}
RECIPE=${2:?recipe folder, e.g. unicorn-8b}
ACCELERATE_CONFIG=${3:?accelerate config: ddp, zero2, zero3 or fsdp}
shift 3
OPTIONAL_ARGS=("$@")

# Run from the repository root with its virtual environment (adapt to your cluster's module system).
cd "${SLURM_SUBMIT_DIR:-$(pwd)}"
mkdir -p logs
if [ -f .venv/bin/activate ]; then source .venv/bin/activate; fi

GPUS_PER_NODE=$(nvidia-smi --list-gpus | wc -l)
NUM_NODES=${SLURM_NNODES:-1}
WORLD_SIZE=$((NUM_NODES * GPUS_PER_NODE))
MASTER_ADDR=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)
MASTER_PORT=${MASTER_PORT:-29500}
export NUM_NODES  # recorded in unicorn_training.json (hardware.num_nodes)

echo "Stage ${STAGE}, recipe ${RECIPE}, ${ACCELERATE_CONFIG}: ${NUM_NODES} node(s) x ${GPUS_PER_NODE} GPU(s) = ${WORLD_SIZE}"

# `srun` starts one launcher per node; SLURM_PROCID gives each its machine rank. Single quotes: expanded per node.
srun --kill-on-bad-exit=1 bash -c 'accelerate launch \
    --config_file accelerate_configs/'"${ACCELERATE_CONFIG}"'.yaml \
    --num_machines '"${NUM_NODES}"' \
    --num_processes '"${WORLD_SIZE}"' \
    --machine_rank $SLURM_PROCID \
    --main_process_ip '"${MASTER_ADDR}"' \
    --main_process_port '"${MASTER_PORT}"' \
    --rdzv_backend c10d \
    recipes/'"${STAGE}"'.py --config recipes/'"${RECIPE}"'/'"${STAGE}"'.yaml '"${OPTIONAL_ARGS[*]:-}"
