#!/usr/bin/env bash
# Issue 7's grid on the tasks with local data, then the report:
#   GLUE_DIR=../shared/glue bash scripts/reproduce.sh [runs_root] [report_dir]
# Every pruning method at s in {0.5, 0.7, 0.9}, plus the fine-tuning and feature-extraction
# references, seeds 1-3, all on the same budget (configs/trainer/cpu.yaml: 2000 steps or 5 epochs,
# whichever comes first). TASKS / SEEDS / SPARSITIES / METHODS in the environment narrow it.
#
# Safe to stop and re-run: a finished run (metrics.json) is skipped, a killed one continues from
# its checkpoint with `prune-cli adapt --resume`, so the grid can be spread over several sittings.
# Runs go in a fixed order, most informative first (adapt-by-pruning and fine-tuning at s=0.5).
set -uo pipefail
root=${1:-outputs/reproduce}
report=${2:-docs/results}
cli=${PRUNE_CLI:-prune-cli}
tasks=${TASKS:-sst2 stsb mrpc cola}
seeds=${SEEDS:-1 2 3}
sparsities=${SPARSITIES:-0.5 0.9 0.7}
methods=${METHODS:-adapt_by_pruning magnitude random gmp imp}

run_one() {  # task method sparsity seed
  local dir="$root/$1/$2/s$3/seed$4"
  if [ -f "$dir/metrics.json" ]; then return 0; fi
  echo "$(date +%T) $1 $2 s=$3 seed=$4 -> $dir"
  if [ -f "$dir/.hydra/config.yaml" ]; then
    $cli adapt --resume "$dir"
  else
    $cli adapt --task "$1" --method "$2" --sparsity "$3" --seed "$4" trainer.progress=false hydra.run.dir="$dir"
  fi || echo "$(date +%T) FAILED: $dir" >&2
}

for task in $tasks; do
  for seed in $seeds; do
    run_one "$task" finetune 0.0 "$seed"
    for s in $sparsities; do
      for method in $methods; do run_one "$task" "$method" "$s" "$seed"; done
    done
    run_one "$task" feature_extraction 0.0 "$seed"
  done
done
mkdir -p "$report"
$cli report "$root" --out "$report"
