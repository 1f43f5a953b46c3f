#!/usr/bin/env bash
# Every figure in docs/performance.md, in one go (~10 minutes on 2 cores):
#   bash scripts/bench_all.sh > bench.txt
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
echo "== targets: MiniLM-L6, batch 32, SST-2 lengths (16 tokens)"
python "$here/bench_step.py" --model minilm --batch-size 32 --seq-len 16
echo "== model size: tiny and bert-base shape (random weights), batch 32, 16 tokens"
python "$here/bench_step.py" --model tiny --batch-size 32 --seq-len 16
python "$here/bench_step.py" --model bert-base-shape --batch-size 32 --seq-len 16 --repeats 5 --warmup 2
echo "== sequence length: MiniLM-L6, batch 32, 64 and 128 tokens"
python "$here/bench_step.py" --model minilm --batch-size 32 --seq-len 64 --repeats 5
python "$here/bench_step.py" --model minilm --batch-size 32 --seq-len 128 --repeats 5
