#!/usr/bin/env bash
# The theta_0 comparison behind the default `method.init=magnitude` (README, "Recipe"):
# SST-2, s = 0.5, 600 steps (480 of them pruning), seed 42, the paper's N(0.01, 0.001^2) init vs
# the magnitude init; everything else at the defaults.
#   GLUE_DIR=../shared/glue bash scripts/init_ablation.sh [out_dir]
set -euo pipefail
out=${1:-$(mktemp -d "${TMPDIR:-/tmp}/prune-cli-init.XXXXXX")}
for init in normal magnitude; do
  prune-cli adapt --task sst2 --sparsity 0.5 trainer.max_steps=600 method.prune_fraction=0.8 \
    method.init="$init" trainer.progress=false hydra.run.dir="$out/$init"
done
prune-cli report "$out"
