#!/usr/bin/env bash
# Rebuild the model hwr ships (src/hwr/bundled/chars62.pt and its MODEL_CARD.md):
#   HWR_DATA_DIR=<folder with EMNIST/ and english/> bash scripts/train_bundled.sh [override ...]
# It trains `experiment=chars62_cnn` (on a GPU when there is one, else the CPU), then
# scripts/bundle_model.py cuts the best checkpoint to float16 weights, tests that copy with
# eval.py on the run's own test splits and on MNIST, and writes the card and its figures.
#
# BUNDLE_OUT=<folder> writes the model, card and figures there instead of into the package;
# BUNDLE_RUN=<folder> names the training's run folder (default outputs/bundled/<time>).
#
# The shipped model's EMNIST files were *carved*: the official EMNIST ByClass training files were
# not available, so its test split was cut 80/20 into training and test files. To do the same:
#   bash scripts/train_bundled.sh data.sources.emnist.data_dir=<folder with the carved EMNIST/>
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-uv run --frozen python}"
if $PY -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)"; then
  TRAINER=gpu
else
  TRAINER=cpu
fi
RUN="${BUNDLE_RUN:-outputs/bundled/$(date +%Y-%m-%d_%H-%M-%S)}"
echo "training experiment=chars62_cnn on trainer=$TRAINER into $RUN"
$PY train.py experiment=chars62_cnn trainer="$TRAINER" hydra.run.dir="$RUN" "$@"
$PY scripts/bundle_model.py "$RUN" ${BUNDLE_OUT:+--out "$BUNDLE_OUT"}
