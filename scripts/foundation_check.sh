#!/usr/bin/env bash
# Issue 2's acceptance checks on real data, re-runnable:
#   GLUE_DIR=../shared/glue bash scripts/foundation_check.sh [out_dir]
# 1. the README main job on SST-2 and the same on STS-B (defaults, s = 0.5): wall time, sparsity,
#    dev metric, frozen base (one JSON line each, from scripts/bench_adapt.py);
# 2. `prune-cli evaluate --check` on both run dirs (prints recomputed vs stored metrics, and fails
#    unless they are equal);
# 3. a multirun over two sparsities (a short budget) and its run dirs.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# the sweep below runs in its own folder: a relative GLUE_DIR must not be read from there
if [ -n "${GLUE_DIR:-}" ]; then GLUE_DIR=$(cd "$GLUE_DIR" && pwd); export GLUE_DIR; fi
out=${1:-$(mktemp -d "${TMPDIR:-/tmp}/prune-cli-check.XXXXXX")}
for task in sst2 stsb; do
  python "$here/bench_adapt.py" --task "$task" --keep "$out/$task"
done
for metrics in "$out"/sst2/outputs/*/*/*/*/metrics.json "$out"/stsb/outputs/*/*/*/*/metrics.json; do
  prune-cli evaluate --check "$(dirname "$metrics")"
done
mkdir -p "$out/sweep"
(cd "$out/sweep" && prune-cli adapt -m --task sst2 --sparsity 0.5,0.9 data.max_train_samples=2000 trainer.max_steps=60 trainer.progress=false)
find "$out/sweep/outputs" -name metrics.json -o -name multirun.yaml | sort
