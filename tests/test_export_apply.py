"""`prune-cli export` (a plain-transformers folder scoring like `evaluate`) and `apply` / TaskBank
(one base model, masks switched in place)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import FIXTURE_GLUE, read_metrics, run_cli, tiny_overrides

from prune_cli import export, rundir


def _run(in_tmp: Path, tiny_model_dir: Path, *args: str, name: str) -> Path:
    result = run_cli("adapt", *args, *tiny_overrides(tiny_model_dir, steps=12), f"hydra.run.dir={name}")
    assert result.exit_code == 0, result.output
    return in_tmp / name


@pytest.mark.parametrize(("task", "method", "pooling"), [("stsb", "adapt_by_pruning", "cls"), ("sst2", "magnitude", "cls"),
                                                       ("mrpc", "finetune", "cls"), ("sst2", "adapt_by_pruning", "mean")])
def test_exported_folder_loads_in_plain_transformers_and_scores_like_evaluate(in_tmp: Path, tiny_model_dir: Path, task: str, method: str, pooling: str):
    run_dir = _run(in_tmp, tiny_model_dir, "--task", task, "--method", method, f"head.pooling={pooling}", name="run")
    result = run_cli("export", str(run_dir), "--out", str(in_tmp / "hf"), "--check", "--data-dir", str(FIXTURE_GLUE))
    assert result.exit_code == 0, result.output
    modeling = (in_tmp / "hf" / export.MODELING_FILE).read_text()
    assert "from prune_cli" not in modeling and "import prune_cli" not in modeling

    from transformers import AutoModel, AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained(str(in_tmp / "hf"), trust_remote_code=True).eval()
    tokenizer = AutoTokenizer.from_pretrained(str(in_tmp / "hf"))
    # The raw outputs equal prune-cli's own forward pass on the run's weights.
    from prune_cli.runner import load_encoder, restore

    cfg = rundir.load_config(run_dir)
    encoder, base_hash, _ = load_encoder(cfg, torch.device("cpu"))
    weights, head = restore(run_dir, cfg, encoder, base_hash, torch.device("cpu"))
    texts = (["a fine film", "the plot"], ["a bad film", "plot twist ."]) if task != "sst2" else (["a fine film", "the plot is thin"], None)
    batch = tokenizer(texts[0], texts[1], return_tensors="pt", padding=True)
    with torch.no_grad(), encoder.fixed(weights):
        ours = head(encoder(dict(batch)), batch["attention_mask"])
        theirs = model(**batch).logits
    assert head.pooling == pooling == model.config.prune_cli_pooling
    assert torch.allclose(ours, theirs, atol=1e-5)
    assert read_metrics(run_dir)["metrics"] == export.score_exported(in_tmp / "hf", run_dir, str(FIXTURE_GLUE))
    # the baked encoder is a plain BertModel too, zeros where the mask pruned
    plain = AutoModel.from_pretrained(str(in_tmp / "hf"))
    if method != "finetune":
        zeros = sum(int((p == 0).sum()) for n, p in plain.named_parameters() if n.endswith("weight") and p.dim() == 2)
        assert zeros >= read_metrics(run_dir)["num_maskable"] * 0.49


def test_export_never_overwrites_a_folder(in_tmp: Path, tiny_model_dir: Path):
    run_dir = _run(in_tmp, tiny_model_dir, name="run")
    (in_tmp / "taken").mkdir()
    (in_tmp / "taken" / "keep.txt").write_text("mine")
    result = run_cli("export", str(run_dir), "--out", str(in_tmp / "taken"))
    assert result.exit_code == 2 and "never overwriting" in result.output
    assert (in_tmp / "taken" / "keep.txt").read_text() == "mine"


def test_task_bank_switches_masks_over_one_base(in_tmp: Path, tiny_model_dir: Path):
    from prune_cli.api import TaskBank

    sst2 = _run(in_tmp, tiny_model_dir, "--task", "sst2", name="a")
    stsb = _run(in_tmp, tiny_model_dir, "--task", "stsb", "--sparsity", "0.9", name="b")
    bank = TaskBank(device="cpu")
    assert bank.add(sst2) == "sst2" and bank.add(stsb) == "stsb"
    base_before = {n: p.clone() for n, p in bank.encoder.encoder.named_parameters()}
    first = bank.predict("stsb", [("a man plays", "a man is playing")])
    bank.predict("sst2", ["a fine film"])
    again = bank.predict("stsb", [("a man plays", "a man is playing")])
    assert first == again, "switching back gives the same answer"
    assert all(torch.equal(p, base_before[n]) for n, p in bank.encoder.encoder.named_parameters()), "the base stays untouched"
    # agrees with the run's own scoring path
    from prune_cli.runner import restore

    weights, head = restore(stsb, bank.tasks["stsb"].cfg, bank.encoder, bank.base_hash, torch.device("cpu"))
    batch = bank.tokenizer(["a man plays"], ["a man is playing"], return_tensors="pt")
    with torch.no_grad(), bank.encoder.fixed(weights):
        assert np.isclose(float(head(bank.encoder(dict(batch)))[0, 0]), first[0], atol=1e-5)
    footprint = bank.footprint("stsb")
    assert footprint.task_bytes * 5 < footprint.finetuned_copy_bytes


def test_apply_prints_predictions_and_bytes(in_tmp: Path, tiny_model_dir: Path):
    sst2 = _run(in_tmp, tiny_model_dir, "--task", "sst2", name="a")
    stsb = _run(in_tmp, tiny_model_dir, "--task", "stsb", name="b")
    result = run_cli("apply", str(sst2), str(stsb), "--text", "a fine film", "--text", "a man plays ||| a man is playing", "--device", "cpu")
    assert result.exit_code == 0, result.output
    assert "fine-tuned copy" in result.output and "mask switched" in result.output


def test_apply_refuses_a_mask_for_another_base(in_tmp: Path, tiny_model_dir: Path):
    from prune_cli import mask_format

    sst2 = _run(in_tmp, tiny_model_dir, "--task", "sst2", name="a")
    stsb = _run(in_tmp, tiny_model_dir, "--task", "stsb", name="b")
    loaded = mask_format.read_mask(stsb / rundir.MASK)
    mask_format.save_mask(stsb / rundir.MASK, loaded.masks, {**loaded.manifest, "base_weights_hash": "0" * 64})
    result = run_cli("apply", str(sst2), str(stsb), "--text", "x")
    assert result.exit_code == 2 and "was learned on base weights" in result.output
