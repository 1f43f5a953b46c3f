#!/usr/bin/env bash
# Copy the small, self-describing part of every finished run under a runs root (metrics.json and
# Hydra's config/overrides; no masks or heads) into docs/results/runs, then regenerate the report
# from that copy, so docs/results can be rebuilt from what is in the repository:
#   bash scripts/collect_results.sh [runs_root] [results_dir]
#   prune-cli report docs/results/runs --out docs/results      # what the second step runs
set -euo pipefail
root=${1:-outputs/reproduce}
results=${2:-docs/results}
cli=${PRUNE_CLI:-prune-cli}
find "$root" -name metrics.json -print0 | while IFS= read -r -d '' metrics; do
  run=$(dirname "$metrics")
  dest="$results/runs/${run#"$root"/}"
  mkdir -p "$dest/.hydra"
  cp "$metrics" "$dest/"
  cp "$run/.hydra/config.yaml" "$run/.hydra/overrides.yaml" "$dest/.hydra/"
done
$cli report "$results/runs" --out "$results"
