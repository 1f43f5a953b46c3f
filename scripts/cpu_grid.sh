#!/usr/bin/env bash
# Issue 3's CPU-sized Figure-2 slice on one task, then the report, in one command:
#   GLUE_DIR=../shared/glue bash scripts/cpu_grid.sh [task] [max_steps] [out_dir]
# Every method at s in {0.5, 0.9} plus the fine-tuning / feature-extraction references, seed 1,
# all on the same budget (trainer.max_steps). Results: <out_dir>/report.{md,csv}, report_<task>.png.
set -euo pipefail
task=${1:-sst2}
steps=${2:-400}
out=${3:-docs/cpu-grid}
root=$(mktemp -d "${TMPDIR:-/tmp}/prune-cli-grid.XXXXXX")
common=(task="$task" trainer.max_steps="$steps" trainer.progress=false)
prune-cli adapt +experiment=paper_fig2_cpu "${common[@]}" hydra.sweep.dir="$root/sweep"
prune-cli adapt +experiment=paper_fig2_cpu_refs "${common[@]}" hydra.sweep.dir="$root/refs"
mkdir -p "$out"
prune-cli report "$root" --out "$out"
echo "runs kept in $root"
