"""How long the training batches of a task really are, as `adapt` serves them.

    GLUE_DIR=../shared/glue python scripts/batch_lengths.py [--task sst2] [--batch-size 32] [--batches 2000]

Tokenises the training split with the configured model's tokenizer and draws batches from the
same length-sorted pools the training loop uses (`prune_cli.batching.training_batches`), then
prints the padded length per batch (mean, median, 10th/90th percentile) as one JSON line. This is
the "SST-2 lengths" that `scripts/bench_step.py --seq-len` stands for.
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import transformers
from omegaconf import OmegaConf

from prune_cli import batching, data
from prune_cli.backbone import resolve_model_path
from prune_cli.config import compose
from prune_cli.errors import at_least, script_entry
from prune_cli.runner import encode_split


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", default="sst2")
    parser.add_argument("--batch-size", type=at_least(1), default=32)
    parser.add_argument("--batches", type=at_least(1), default=2000, help="batches drawn (the default budget is 2000 steps)")
    parser.add_argument("--seed", type=at_least(0), default=1)
    args = parser.parse_args()
    cfg = compose([f"task={args.task}"])
    task = OmegaConf.to_container(cfg.task, resolve=True)
    splits = data.load_task_data(task, OmegaConf.to_container(cfg.data, resolve=True), with_train=True)
    tokenizer = transformers.AutoTokenizer.from_pretrained(resolve_model_path(cfg.model.name_or_path))
    encoded = encode_split(cfg, splits.train, tokenizer, None)
    rng = np.random.default_rng(args.seed)
    lengths: list[int] = []
    while len(lengths) < args.batches:
        lengths += [int(encoded.lengths[b].max()) for b in batching.training_batches(encoded, args.batch_size, rng)]
    padded = np.asarray(lengths[: args.batches])
    print(json.dumps({
        "task": args.task, "batch_size": args.batch_size, "batches": len(padded),
        "row_tokens_mean": round(float(encoded.lengths.mean()), 2),
        "padded_batch_tokens_mean": round(float(padded.mean()), 2), "median": float(np.median(padded)),
        "p10": float(np.percentile(padded, 10)), "p90": float(np.percentile(padded, 90)),
    }))


if __name__ == "__main__":
    script_entry(main)
