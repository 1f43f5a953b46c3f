"""How much of the maskable weight no task gradient can reach: word-embedding rows the training split never uses.

    GLUE_DIR=../shared/glue python scripts/vocab_coverage.py [--tasks sst2 stsb mrpc cola] [OVERRIDE ...]

Why: the mask learner's theta for a row the training split never contains gets no gradient, so
it falls only by gamma's uniform push and the mask prunes those rows at the global rate (about
s of them, docs/analyses.md). `method.unseen_tokens_first` starts them pruned-first. This prints,
per task, what that prior is worth and what it costs: the unseen rows' share of the maskable
weights of the run's model and of a BERT-base-shaped encoder with the same vocabulary (counted on
PyTorch's meta device, so nothing is allocated or downloaded), and how many dev tokens and dev
examples read such a row (their embedding is zero once those rows are pruned).
"""

from __future__ import annotations

import argparse

import torch

from prune_cli.backbone import BERT_BASE_SHAPE
from prune_cli.config import compose, split_tasks_and_overrides
from prune_cli.errors import script_entry
from prune_cli.masking import select_maskable
from prune_cli.methods.adapt_by_pruning import token_table_name, unseen_token_rows
from prune_cli.runner import prepare


def bert_base_maskable(vocab_size: int, include: list[str], exclude: list[str]) -> int:
    """The maskable weights of a BERT-base-shaped encoder, from shapes alone."""
    from transformers import BertConfig, BertModel

    with torch.device("meta"):
        model = BertModel(BertConfig(vocab_size=vocab_size, **BERT_BASE_SHAPE), add_pooling_layer=False)
    params = dict(model.named_parameters())
    return sum(params[n].numel() for n in select_maskable(model, include, exclude))


def coverage(overrides: list[str]) -> dict[str, float | int]:
    """The figures for one task's composed config (`task=...`, any other override)."""
    cfg = compose([*overrides, "trainer.device=cpu"])
    prepared = prepare(cfg, with_train=True)
    encoder = prepared.encoder
    table = token_table_name(encoder)
    rows, width = encoder.base_weight(table).shape
    unseen = unseen_token_rows(prepared.train, rows)
    unseen_rows = int(unseen.sum())
    base_total = bert_base_maskable(rows, list(cfg.mask.include), list(cfg.mask.exclude))
    dev = [ids for split in prepared.dev.values() for ids in split.fields["input_ids"]]
    unseen_np = unseen.numpy()  # once, not once per dev example
    hits = [int(unseen_np[ids].sum()) for ids in dev]
    tokens = sum(len(ids) for ids in dev)
    return {
        "vocab": rows, "train_ids": rows - unseen_rows, "unseen_rows": unseen_rows,
        "share_model": unseen_rows * width / encoder.num_maskable,
        "share_bert_base_shape": unseen_rows * BERT_BASE_SHAPE["hidden_size"] / base_total,
        "dev_token_share_unseen": sum(hits) / tokens,
        "dev_examples_with_one": sum(h > 0 for h in hits), "dev_examples": len(hits),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", default=["sst2", "stsb", "mrpc", "cola"])
    parser.add_argument("overrides", nargs="*", help="config overrides, e.g. model=minilm (the default) or data.dir=...")
    args = parser.parse_args()
    tasks, overrides = split_tasks_and_overrides(args.tasks, args.overrides)
    print(f"{'task':6s} {'vocab':>6s} {'train ids':>9s} {'unseen rows':>11s} {'share (model)':>13s} {'share (bert-base shape)':>23s} "
          f"{'dev tokens unseen':>17s} {'dev examples with one':>21s}")
    for task in tasks:
        c = coverage([f"task={task}", *overrides])
        print(f"{task:6s} {c['vocab']:6d} {c['train_ids']:9d} {c['unseen_rows']:11d} {c['share_model']:13.3f} "
              f"{c['share_bert_base_shape']:23.3f} {c['dev_token_share_unseen']:17.3%} {c['dev_examples_with_one']:>11d} of {c['dev_examples']}")


if __name__ == "__main__":
    script_entry(main)
