#!/usr/bin/env bash
# Every figure in docs/performance.md, in one go (~15 minutes on 2 cores):
#   GLUE_DIR=../shared/glue bash scripts/bench_all.sh > bench.txt
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
echo "== SST-2's padded training batches as adapt serves them (needs GLUE_DIR)"
if [ -n "${GLUE_DIR:-}" ]; then python "$here/batch_lengths.py" --task sst2; else echo "GLUE_DIR not set: skipped"; fi
echo "== targets: MiniLM-L6, batch 32, SST-2 lengths (14 tokens: the mean padded batch above; and 16)"
python "$here/bench_step.py" --model minilm --batch-size 32 --seq-len 14 --processes 5
python "$here/bench_step.py" --model minilm --batch-size 32 --seq-len 16
echo "== grid lanes: two one-thread runs side by side vs one two-thread run (MiniLM-L6, batch 32, 14 tokens)"
python "$here/bench_lanes.py" --model minilm --batch-size 32 --seq-len 14 --lanes 2
echo "== the forward mask, clamped vs plain (10.6M encoder theta of MiniLM-L6), 2 threads and 1"
python "$here/bench_mask_forward.py" --threads 2
python "$here/bench_mask_forward.py" --threads 1
echo "== model size: tiny and bert-base shape (random weights), batch 32, 16 tokens"
python "$here/bench_step.py" --model tiny --batch-size 32 --seq-len 16
python "$here/bench_step.py" --model bert-base-shape --batch-size 32 --seq-len 16 --repeats 5 --warmup 2
echo "== sequence length: MiniLM-L6, batch 32, 64 and 128 tokens"
python "$here/bench_step.py" --model minilm --batch-size 32 --seq-len 64 --repeats 5
python "$here/bench_step.py" --model minilm --batch-size 32 --seq-len 128 --repeats 5
