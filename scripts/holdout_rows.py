"""Why `data.holdout` draws whole rows only: how much of a plain random draw of training rows the
rest of the training split already contains, against the draw `prune_cli.data.hold_out` makes.

    GLUE_DIR=../shared/glue python scripts/holdout_rows.py [--tasks sst2 cola mrpc stsb] [--size 872] [--seed 0]

SST-2's training rows are the phrases of parsed sentences, while its dev rows are whole sentences.
A held-out row that sits inside a training row has been trained on, label and all, so a plain
random draw would score a recipe on rows it partly learnt, and on rows shaped unlike dev's. This
prints, per task: the share of a plain random draw (same size and seed) found inside another
training row, the mean words per row of that draw, of the draw `hold_out` makes, and of dev, and
how many training rows `hold_out` drops because they sit inside a held-out row, and how long its
draw took (every command that reads a held-out run draws again).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np
from omegaconf import OmegaConf

from prune_cli import data
from prune_cli.config import compose, split_tasks_and_overrides
from prune_cli.errors import at_least, script_entry


def figures(task: dict, data_cfg: dict, size: int, seed: int) -> dict[str, float | int]:
    """The comparison for one task: a plain random draw against `data.hold_out`'s."""
    full = data.load_task_data(task, {**data_cfg, "holdout": None})
    texts = [data.row_text(t) for t in full.train.texts]
    occurs_elsewhere = data.occurs_elsewhere_in(texts)
    plain = np.random.RandomState(seed).permutation(len(texts))[:size]
    inside = sum(occurs_elsewhere(texts[i]) for i in plain)
    started = time.perf_counter()
    rest, held = data.hold_out(full.train, size, seed, task["name"])
    seconds = time.perf_counter() - started
    words = lambda rows: statistics.fmean(len(data.row_text(t).split()) for t in rows)  # noqa: E731
    return {
        "train_rows": len(texts),
        "plain_draw_inside_another_row": inside / size,
        "plain_draw_words": words(full.train.texts[i] for i in plain),
        "hold_out_words": words(held.texts),
        "dev_words": words(full.dev["dev"].texts),
        "hold_out_rows_dropped": len(texts) - size - len(rest),
        "rows_left_to_train_on": len(rest),
        "hold_out_seconds": round(seconds, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", nargs="+", default=["sst2", "cola", "mrpc", "stsb"])
    parser.add_argument("--size", type=at_least(1), default=872, help="rows held out (872: SST-2's dev size)")
    parser.add_argument("--seed", type=at_least(0), default=0, help="data.holdout_seed")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides (data.dir=...)")
    args = parser.parse_args()
    tasks, overrides = split_tasks_and_overrides(args.tasks, args.overrides)
    for name in tasks:
        cfg = compose([f"task={name}", *overrides])
        task = OmegaConf.to_container(cfg.task, resolve=True)
        result = figures(task, OmegaConf.to_container(cfg.data, resolve=True), args.size, args.seed)
        print(json.dumps({"task": name, "size": args.size, "seed": args.seed, **result}))


if __name__ == "__main__":
    script_entry(main)
