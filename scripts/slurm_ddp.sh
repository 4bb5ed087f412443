#!/bin/bash
# Multi-node DDP with SLURM: 2 nodes x 4 GPUs, one process per GPU.
#   sbatch scripts/slurm_ddp.sh experiment=emnist_cnn
# srun starts every process itself, so Lightning detects SLURM and does not spawn more;
# all of them get the same run folder (named after the job), and only global rank 0
# writes config_tree.log, git.json, the report and metrics.json into it.
#SBATCH --job-name=hwr-ddp
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=4
#SBATCH --gpus-per-node=4
#SBATCH --cpus-per-task=8
#SBATCH --time=02:00:00
#SBATCH --output=outputs/slurm-%j.out
set -euo pipefail
srun uv run --frozen train.py trainer=ddp trainer.num_nodes="$SLURM_JOB_NUM_NODES" \
  trainer.devices="$SLURM_NTASKS_PER_NODE" \
  "hydra.run.dir=outputs/ddp/runs/slurm-$SLURM_JOB_ID" "$@"
