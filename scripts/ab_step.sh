#!/usr/bin/env bash
# A/B of the training step: scripts/bench_step.py on this checkout ("new") against an older
# prune_cli ("old"), in fresh processes that alternate new, old, new, old, ... The machine drifts
# from one process to the next (on a GPU a fine-tuning step ran at 24 to 34 ms in five minutes), so
# one side's processes run between the other's, never all of one side first. The same
# bench_step.py (this checkout's) times both, so its flags must be ones the old code accepts.
#   bash scripts/ab_step.sh OLD OUT_DIR [bench_step.py arguments...]
# OLD: a commit of this repository (its prune_cli/ and configs/ are taken with `git archive`), or a
# folder that holds an older checkout's prune_cli/ and configs/ (where there is no .git, e.g. a
# GPU machine that gets a copy of the working tree). PROCESSES (default 3): processes per side.
# Writes each process's output to OUT_DIR/{new,old}_N.txt and prints, per side, the median and
# every value of the step ratios, step times, peak memory and checkpoint costs.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd); root=$(dirname "$here")
old=${1:?usage: bash scripts/ab_step.sh OLD OUT_DIR [bench_step.py arguments...]}
out=${2:?usage: bash scripts/ab_step.sh OLD OUT_DIR [bench_step.py arguments...]}
shift 2
mkdir -p "$out"
if [ -d "$old" ]; then
  old_tree=$(cd "$old" && pwd)
else
  old_tree="$out/old-tree"; rm -rf "$old_tree"; mkdir -p "$old_tree"
  git -C "$root" archive "$old" prune_cli configs 2>/dev/null | tar -x -C "$old_tree" 2>/dev/null \
    || { echo "ab_step: $old is neither a folder nor a commit of this repository with prune_cli/ and configs/" >&2; exit 2; }
fi
[ -f "$old_tree/prune_cli/__init__.py" ] || { echo "ab_step: $old_tree has no prune_cli/" >&2; exit 2; }
for tree in "$root" "$old_tree"; do  # say which code each side imports: a stale install must not stand in for either
  (cd / && PYTHONPATH="$tree${PYTHONPATH:+:$PYTHONPATH}" python -c "import prune_cli; print('imports', prune_cli.__file__)")
done
failed=0
for i in $(seq 1 "${PROCESSES:-3}"); do
  for side in new old; do
    tree=$root; [ "$side" = old ] && tree=$old_tree
    echo "== $side $i: bench_step.py $*"
    PYTHONPATH="$tree${PYTHONPATH:+:$PYTHONPATH}" python "$here/bench_step.py" "$@" > "$out/${side}_$i.txt" 2>&1 || { echo "== $side $i FAILED"; tail -3 "$out/${side}_$i.txt"; failed=1; }
    grep -E "^  (b/a|c/b|d  )" "$out/${side}_$i.txt"
  done
done
python - "$out" <<'PY'
import glob, json, statistics, sys
keys = ("adapt_over_finetune", "naive_over_adapt", "masked_inference_speed_vs_dense", "a_finetune_s", "b_adapt_s",
        "a_peak_mib", "b_peak_mib", "e_checkpoint_s", "e_checkpoint_write_s", "e_checkpoint_in_all_s")
for side in ("new", "old"):
    rows = []
    for name in sorted(glob.glob(f"{sys.argv[1]}/{side}_*.txt")):
        lines = [line for line in open(name) if line.startswith("{")]
        if lines:
            rows.append(json.loads(lines[-1]))
    for key in keys:
        values = [row[key] for row in rows if isinstance(row.get(key), (int, float))]
        if values:
            print(f"{side} {key:32s} median {statistics.median(values):.4f}  all {[round(v, 4) for v in values]}")
PY
exit $failed
