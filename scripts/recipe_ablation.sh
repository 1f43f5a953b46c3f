#!/usr/bin/env bash
# The runs behind the default adapt_by_pruning recipe (README, "Recipe"), SST-2, s = 0.5, seed 42:
#   sgd_lr300      theta by plain SGD (alpha = 300), paper init, 600 steps (480 pruning)
#   normal_lr2e-4  Adam 2e-4, the paper's theta_0 ~ N(0.01, 0.001^2), 600 steps (480 pruning)
#   mag_lr2e-4     Adam 2e-4, magnitude theta_0, 600 steps (480 pruning)
#   mag_lr2e-4_2k  Adam 2e-4, magnitude theta_0, the default 2000 steps
#   stop_at_s      the default before 0.2.0 (Adam 5e-5, magnitude theta_0, 2000 steps, theta stops at s)
#   default        today's defaults (the same, but theta goes on learning at s to 90% of the budget,
#                  at the paper's alpha = 2e-5 while held): the README's main job
# Every row but the last names method=adapt_by_pruning_stop_at_s, the recipe each one changed.
#   GLUE_DIR=../shared/glue bash scripts/recipe_ablation.sh [out_dir]     (~50 min on 2 cores)
set -euo pipefail
out=${1:-$(mktemp -d "${TMPDIR:-/tmp}/prune-cli-recipe.XXXXXX")}
short=(trainer.max_steps=600 method.prune_fraction=0.8)
run() { local name=$1; shift; prune-cli adapt --task sst2 --sparsity 0.5 trainer.progress=false hydra.run.dir="$out/$name" "$@"; }
stop=method=adapt_by_pruning_stop_at_s
run sgd_lr300 $stop "${short[@]}" method.init=normal method.theta_optimizer=sgd method.theta_lr=300
run normal_lr2e-4 $stop "${short[@]}" method.init=normal method.theta_lr=2e-4
run mag_lr2e-4 $stop "${short[@]}" method.theta_lr=2e-4
run mag_lr2e-4_2k $stop method.theta_lr=2e-4
run stop_at_s $stop
run default
for d in "$out"/*/; do python -c "import json,sys; m=json.load(open(sys.argv[1]+'metrics.json')); print(sys.argv[2], round(m['main_metric_value'], 4))" "$d" "$(basename "$d")"; done
