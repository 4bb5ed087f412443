#!/usr/bin/env bash
# The GPU tables of docs/benchmarks.md in one run (one GPU, MNIST under $HWR_DATA_DIR):
#   HWR_DATA_DIR=... bash scripts/gpu_benchmark.sh [out_dir]
# Each part writes its markdown as soon as it finishes, so a run cut short keeps what it
# measured. About 10 minutes on an H100-class GPU, most of it the speedrun seeds and the
# compiled arms (compilation happens in the untimed warm-up steps).
#
#   bash scripts/gpu_benchmark.sh --smoke [out_dir]
# runs every part on the CPU with a tiny network and a few steps each (a minute or two), so the
# script itself is checked where no GPU is (tests/test_speed.py runs it): its numbers mean nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
SMOKE=0
if [ "${1:-}" = "--smoke" ]; then SMOKE=1; shift; fi
OUT_DIR="${1:-outputs/benchmark}"
PY="${PYTHON:-python3}"
mkdir -p "$OUT_DIR"

if [ "$SMOKE" = 1 ]; then
  DEVICE=cpu
  # a tiny CNN in fp32 (bf16 is emulated on most CPUs), a few steps per part
  TINY=(model.net.channels=[8,16] model.net.head=[32] trainer.precision=32-true)
  STEPS=(--steps 2 --warmup 1 --rounds 1)
  SPEEDRUN=(--rounds 1 --seeds 1 --speedrun-max-steps 2 --speedrun-every 1 --extra "${TINY[@]}")
  RUN=(trainer.accelerator=cpu trainer.max_epochs=1 +trainer.limit_train_batches=2 +trainer.limit_val_batches=1
       +trainer.limit_test_batches=1 "${TINY[@]}")
else
  DEVICE=cuda
  TINY=()
  STEPS=(--steps 300 --warmup 20)
  SPEEDRUN=(--rounds 2)
  RUN=()
fi
bench() { "$PY" scripts/benchmark.py --device "$DEVICE" "$@"; }
extra() { if [ ${#TINY[@]} -gt 0 ]; then echo --extra "${TINY[@]}"; fi; }

# 1. eager step time at batch 128: plain loop vs hwr (target <= 1.10x), logging overhead
bench --parts train --arms plain hwr hwr_quiet hwr_on_host "${STEPS[@]}" $( [ "$SMOKE" = 1 ] || echo --rounds 3 ) \
  $(extra) --markdown "$OUT_DIR/gpu_train_eager.md"
# 2. compiled vs compiled (target <= 1.15x) and the gpu_fast preset, eager and with CUDA graphs
bench --parts train --arms plain_compile_ro hwr_compile_ro plain_gpu_fast hwr_gpu_fast \
  plain_gpu_fast_ro hwr_gpu_fast_ro "${STEPS[@]}" $( [ "$SMOKE" = 1 ] || echo --rounds 2 ) \
  $(extra) --markdown "$OUT_DIR/gpu_train_compiled.md"
# 3. the speedrun: 5 seeds in one process, then the whole command; and start-up
bench --parts speedrun startup "${SPEEDRUN[@]}" --markdown "$OUT_DIR/gpu_speedrun.md"
# 4. experiment=mnist_cnn, the whole command, as shipped and with trainer=gpu_fast
for extra in "" "trainer=gpu_fast"; do
  start=$(date +%s%N)
  "$PY" train.py experiment=mnist_cnn $extra ${RUN[@]+"${RUN[@]}"} "hydra.run.dir=$OUT_DIR/mnist_cnn${extra:+_gpu_fast}" \
    callbacks.progress_bar=null > "$OUT_DIR/mnist_cnn${extra:+_gpu_fast}.log" 2>&1
  ms=$(( ($(date +%s%N) - start) / 1000000 ))
  echo "- \`python train.py experiment=mnist_cnn $extra\`: $ms ms wall, metrics in $OUT_DIR/mnist_cnn${extra:+_gpu_fast}/metrics.json" \
    | tee -a "$OUT_DIR/gpu_mnist_cnn.md"
done
