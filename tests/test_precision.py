"""Reduced precision: bf16 and fp16 autocast train every method on any device, and fp16 scales
the loss so that the mask's tiny gradients survive the fp16 backward pass."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import load_script, only_run_dir, read_metrics, run_cli, tiny_context, tiny_overrides


def test_fp16_loss_scaling_keeps_the_mask_learning_close_to_fp32(tiny_model_dir: Path):
    """Without the loss scale, fp16 rounds the small weight gradients theta learns from (Eq. 4)
    coarsely or to zero, and theta's steps drift from fp32's; with it they stay close.
    scripts/precision_check.py makes the same measurement on any model and device."""
    check = load_script("precision_check")
    overrides = tiny_overrides(tiny_model_dir)
    reference = check.theta_change(overrides, "fp32")
    scaled = check.distance(check.theta_change(overrides, "fp16"), reference)
    unscaled = check.distance(check.theta_change(overrides, "fp16", loss_scaling=False), reference)
    assert 0 < scaled["relative_error"] < unscaled["relative_error"] / 2
    assert scaled["share_moved_differently"] < unscaled["share_moved_differently"]


def test_precision_check_script_prints_every_variant_against_fp32(tiny_model_dir: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch):
    check = load_script("precision_check")
    monkeypatch.setattr("sys.argv", ["precision_check.py", "--steps", "2", *tiny_overrides(tiny_model_dir)])
    check.main()
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["steps"] == 2 and set(result["against_fp32"]) == {"bf16", "fp16", "fp16 without loss scale"}
    assert all(0 < v["relative_error"] < 1 for v in result["against_fp32"].values())


def test_the_loss_scale_is_on_for_fp16_only(tiny_model_dir: Path):
    from omegaconf import OmegaConf

    from prune_cli.config import compose

    method = OmegaConf.to_container(compose([]).method)
    enabled = {p: tiny_context(tiny_model_dir, 0.5, method, precision=p).precision.scaler.is_enabled() for p in ("fp32", "bf16", "fp16")}
    assert enabled == {"fp32": False, "bf16": False, "fp16": True}


@pytest.mark.parametrize(("method", "precision"), [("adapt_by_pruning", "fp16"), ("adapt_by_pruning", "bf16"), ("imp", "fp16"), ("finetune", "fp16")])
def test_reduced_precision_runs_end_to_end_and_evaluate_reproduces_it(in_tmp: Path, tiny_model_dir: Path, method: str, precision: str):
    """Every training loop (mask learning, weight training, head fitting) under autocast, on the CPU."""
    sparsity = "0.0" if method == "finetune" else "0.5"
    result = run_cli("adapt", "--task", "sst2", "--method", method, "--sparsity", sparsity,
                     *tiny_overrides(tiny_model_dir, f"trainer.precision={precision}", steps=8))
    assert result.exit_code == 0, result.output
    run_dir = only_run_dir(in_tmp / "outputs")
    metrics = read_metrics(run_dir)
    assert abs(metrics["sparsity_realized"] - float(sparsity)) <= 0.001
    assert metrics["base_weights_unchanged"]
    from omegaconf import OmegaConf

    from prune_cli import rundir
    from prune_cli.runner import evaluate

    assert OmegaConf.load(run_dir / rundir.CONFIG).trainer.precision == precision  # evaluate scores in it too

    assert evaluate(run_dir) == metrics["metrics"]


def test_evaluate_rescores_a_run_in_another_precision_and_refuses_an_unknown_one(in_tmp: Path, tiny_model_dir: Path):
    """A run trained in fp16 on a GPU is re-scored on a CPU (which emulates fp16) in fp32 or bf16."""
    from prune_cli.runner import evaluate

    assert run_cli("adapt", "--task", "stsb", *tiny_overrides(tiny_model_dir, "trainer.precision=fp16")).exit_code == 0
    run_dir = only_run_dir(in_tmp / "outputs")
    stored = read_metrics(run_dir)["metrics"]
    assert evaluate(run_dir) == stored
    rescored = evaluate(run_dir, precision="fp32")
    assert rescored.keys() == stored.keys() and rescored != stored  # fp32 arithmetic: not the fp16 digits
    # near, not equal: the fixture's 12 dev pairs get near-tied scores from the tiny random model, and fp16's
    # rounding reorders some, which moves a correlation over 12 pairs by several hundredths (0.07 here)
    assert all(abs(rescored[k] - stored[k]) < 0.15 for k in stored)
    result = run_cli("evaluate", str(run_dir), "--precision", "fp8")
    assert result.exit_code == 2 and "trainer.precision='fp8'" in result.output and "Traceback" not in result.output
