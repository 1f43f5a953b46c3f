#!/usr/bin/env bash
# Issue 4's figures on the real default model, in one command:
#   GLUE_DIR=../shared/glue bash scripts/analyses.sh [runs_root] [out_dir] [steps]
# Runs (seed 1, `steps` optimiser steps each): adapt-by-pruning, magnitude and adapt-by-pruning
# without connection recovery on SST-2 at s = 0.5 and 0.9, plus adapt-by-pruning on STS-B at 0.5
# (a second task for `apply`), and today's default recipe on SST-2 at 0.9 scored every 25 steps
# (`trainer.eval_every`). Then: mask bits per weight, export + plain-transformers check,
# apply over two tasks, and every `analyze` command. Finished runs are reused on a re-run.
set -euo pipefail
root=${1:-outputs/analyses}
out=${2:-docs/analyses}
steps=${3:-400}
cli=${PRUNE_CLI:-prune-cli}
export COLUMNS=${COLUMNS:-140}  # rich tables in the text files are not cut to 80 columns
mkdir -p "$out"

run() {  # name, then adapt options
  local dir="$root/$1"; shift
  [ -f "$dir/metrics.json" ] && return 0
  $cli adapt "$@" --seed 1 trainer.max_steps="$steps" trainer.progress=false hydra.run.dir="$dir"
}
# adapt-by-pruning as docs/analyses.md was made: the default recipe before 0.2.0, whose Alg. 1 stop at s
# is also what the paper's no-recovery ablation changes (today's default holds s, which needs recovery)
abp=adapt_by_pruning_stop_at_s
for s in 0.5 0.9; do
  run "sst2_abp_s$s" --task sst2 --method $abp --sparsity "$s"
  run "sst2_magnitude_s$s" --task sst2 --method magnitude --sparsity "$s"
  run "sst2_abp_no_recovery_s$s" --task sst2 --method $abp --sparsity "$s" method.no_recovery=true method.name=adapt_by_pruning_no_recovery
done
run stsb_abp_s0.5 --task stsb --method $abp --sparsity 0.5
# the dev score along a run of today's default recipe to s = 0.9, scored every 25 steps (analyze curve)
run sst2_default_curve_s0.9 --task sst2 --sparsity 0.9 trainer.eval_every=25

${PYTHON:-python} scripts/mask_size.py "$root"/sst2_* | tee "$out/mask_size.txt"
rm -rf "$root/export_sst2_abp_s0.5"
$cli export "$root/sst2_abp_s0.5" --out "$root/export_sst2_abp_s0.5" --check | tee "$out/export_check.txt"
$cli apply "$root/sst2_abp_s0.5" "$root/stsb_abp_s0.5" \
  --text "a gripping, beautifully acted film" --text "the plot is thin and the jokes fall flat" \
  --text "A man is playing a guitar. ||| A person plays an instrument." | tee "$out/apply.txt"
pairs=("$root/sst2_abp_s0.5" "$root/sst2_magnitude_s0.5" "$root/sst2_abp_s0.9" "$root/sst2_magnitude_s0.9")
$cli analyze topology "${pairs[@]}" --out "$out" | tee "$out/topology.txt"
$cli analyze overlap "${pairs[@]}" "$root/sst2_abp_no_recovery_s0.5" "$root/sst2_abp_no_recovery_s0.9" --out "$out" | tee "$out/overlap.txt"
$cli analyze recovery "$root"/sst2_abp_s* "$root"/sst2_abp_no_recovery_s* --out "$out" | tee "$out/recovery.txt"
$cli analyze sensitivity "${pairs[@]}" --steps "$steps" --sigma 0.01 --sigma 0.1 --sigma 0.5 --out "$out" | tee "$out/sensitivity.txt"
$cli analyze curve "$root/sst2_default_curve_s0.9" --out "$out" | tee "$out/curve.txt"
