"""scripts/vocab_coverage.py: the unseen-vocabulary figures docs/results.md quotes for unseen_tokens_first."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from conftest import FIXTURE_GLUE

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "vocab_coverage.py"


def load_script():
    spec = importlib.util.spec_from_file_location("vocab_coverage", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_bert_base_shape_is_counted_from_shapes_alone():
    script = load_script()
    total = script.bert_base_maskable(30522, ["^embeddings\\.\\w+_embeddings\\.weight$", "^encoder\\..*\\.weight$"], ["LayerNorm", "\\.bias$"])
    # word + position + token-type embeddings, then 12 layers of Q, K, V, O and the two FFN matrices
    assert total == (30522 + 512 + 2) * 768 + 12 * (4 * 768 * 768 + 2 * 768 * 3072)
    assert script.BERT_BASE_SHAPE["hidden_size"] == 768  # the width the unseen rows' share is counted with


def test_counts_match_the_training_split_and_the_dev_examples(tiny_model_dir: Path):
    from prune_cli.config import compose
    from prune_cli.runner import prepare

    script = load_script()
    # two training sentences: some dev sentences then use words the training split lacks
    overrides = ["task=sst2", f"data.dir={FIXTURE_GLUE}", f"model.name_or_path={tiny_model_dir}", "data.max_train_samples=2"]
    figures = script.coverage(overrides)
    prepared = prepare(compose([*overrides, "trainer.device=cpu"]), with_train=True)
    used = {int(i) for ids in prepared.train.fields["input_ids"] for i in ids}
    assert figures["train_ids"] == len(used) and figures["unseen_rows"] == figures["vocab"] - len(used)
    assert figures["share_model"] == pytest.approx(figures["unseen_rows"] * 32 / prepared.encoder.num_maskable)
    dev = [ids for split in prepared.dev.values() for ids in split.fields["input_ids"]]
    assert figures["dev_examples"] == len(dev)
    assert figures["dev_examples_with_one"] == sum(any(int(i) not in used for i in ids) for ids in dev)
    assert figures["dev_examples_with_one"] > 0 and 0 < figures["dev_token_share_unseen"] < 1
