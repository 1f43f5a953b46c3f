#!/usr/bin/env bash
# The GPU figures of docs/performance.md ("On a GPU"), in one go (~5 minutes on one H200):
#   GLUE_DIR=../shared/glue bash scripts/gpu_timing.sh OUT_DIR
# 1. bench_step.py at MiniLM-L6's and BERT-base's shapes (random weights), batch 32, 16 tokens,
#    in bf16 (trainer=gpu's precision) and fp32: the step ratios of issue 5 on a GPU.
# 2. SST-2 end to end (scripts/bench_adapt.py: tokenising, training, scoring) with a BERT-base-shaped
#    model (random weights, the real uncased tokenizer: scripts/shaped_model.py) on trainer=gpu,
#    ours and dense fine-tuning on the same budget of STEPS steps: examples per second of each.
# The weights are random, so the scores are meaningless; the quality figures stay on the real
# MiniLM weights. Each part has its own time limit; a failed part does not stop the others, and the
# script exits 1 at the end if any failed.
# Settings (environment): DEVICE (cuda), STEPS (1000), SHAPES ("bert-base-shape minilm-shape"),
# PRECISIONS ("bf16 fp32"), REPEATS (10), E2E_SHAPE (the shape of part 2: bert-base-shape; none
# skips it), TOKENIZER (the packaged MiniLM's; any folder or hub name).
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${1:?usage: GLUE_DIR=../shared/glue bash scripts/gpu_timing.sh OUT_DIR}
device=${DEVICE:-cuda}; steps=${STEPS:-1000}; repeats=${REPEATS:-10}
mkdir -p "$out"
failed=0
part() {  # part NAME SECONDS COMMAND...: run with a time limit, output to the screen and OUT_DIR/NAME.txt
  local name=$1 limit=$2; shift 2
  echo "== $name: $*"
  timeout "$limit" "$@" 2>&1 | tee "$out/$name.txt"
  local rc=${PIPESTATUS[0]}
  [ "$rc" = 0 ] || { echo "== $name FAILED (exit $rc)"; failed=1; }
}
part environment 60 python -c "
import platform, torch, transformers
print('python', platform.python_version(), 'torch', torch.__version__, 'cuda', torch.version.cuda, 'transformers', transformers.__version__)
print('device', torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no CUDA device')"
for shape in ${SHAPES:-bert-base-shape minilm-shape}; do
  for precision in ${PRECISIONS:-bf16 fp32}; do
    part "step_${shape}_${precision}" 150 python "$here/bench_step.py" --model "$shape" --device "$device" \
      --precision "$precision" --batch-size 32 --seq-len 16 --repeats "$repeats" --warmup 3
  done
  [ "$shape" = "${E2E_SHAPE:-bert-base-shape}" ] || continue
  model="$out/model-$shape"
  [ -d "$model" ] || part "make_$shape" 120 python "$here/shaped_model.py" "$shape" "$model" ${TOKENIZER:+--tokenizer "$TOKENIZER"}
  for method in adapt_by_pruning finetune; do
    part "sst2_${shape}_${method}" 300 python "$here/bench_adapt.py" --keep "$out/runs-$method" model.name_or_path="$(cd "$model" && pwd)" \
      trainer=gpu trainer.device="$device" trainer.max_steps="$steps" trainer.log_every=200 method="$method"
  done
done
exit $failed
