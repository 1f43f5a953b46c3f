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
    from prune_cli.api import evaluate

    assert OmegaConf.load(run_dir / rundir.CONFIG).trainer.precision == precision  # evaluate scores in it too

    assert evaluate(run_dir).metrics == metrics["metrics"]


def test_evaluate_rescores_a_run_in_another_precision_and_refuses_an_unknown_one(in_tmp: Path, tiny_model_dir: Path):
    """A run trained in fp16 on a GPU is re-scored on a CPU (which emulates fp16) in fp32 or bf16."""
    from prune_cli.api import evaluate

    assert run_cli("adapt", "--task", "stsb", *tiny_overrides(tiny_model_dir, "trainer.precision=fp16")).exit_code == 0
    run_dir = only_run_dir(in_tmp / "outputs")
    stored = read_metrics(run_dir)["metrics"]
    assert evaluate(run_dir).metrics == stored
    rescored = evaluate(run_dir, precision="fp32").metrics
    assert rescored.keys() == stored.keys() and rescored != stored  # fp32 arithmetic: not the fp16 digits
    # near, not equal: the fixture's 12 dev pairs get near-tied scores from the tiny random model, and fp16's
    # rounding reorders some, which moves a correlation over 12 pairs by several hundredths (0.07 here)
    assert all(abs(rescored[k] - stored[k]) < 0.15 for k in stored)
    result = run_cli("evaluate", str(run_dir), "--precision", "fp8")
    assert result.exit_code == 2 and "trainer.precision='fp8'" in result.output and "Traceback" not in result.output


@pytest.mark.parametrize("method", ["adapt_by_pruning", "finetune", "gmp"])
def test_a_diverging_run_stops_at_the_first_non_finite_loss_with_one_line(in_tmp: Path, tiny_model_dir: Path, method: str):
    """Without loss scaling a nan or inf loss poisons the parameters for good: the run stops at
    that step and names the learning rates, instead of training on and scoring a diverged model."""
    from conftest import assert_one_line_error

    result = run_cli("adapt", "--task", "stsb", "--method", method, *tiny_overrides(tiny_model_dir, "head.lr=1e30"))
    assert_one_line_error(result, "training diverged: the loss is", "step 2 of 6; lower the learning rates (head.lr=1e+30")
    assert not (in_tmp / "outputs").exists() or not list((in_tmp / "outputs").rglob("metrics.json"))


def test_fp16_skips_a_non_finite_loss_with_one_warning_and_fp32_stops(tiny_model_dir: Path, caplog: pytest.LogCaptureFixture):
    """fp16's loss scaling skips a step whose gradients are not finite, so there the run goes on."""
    from omegaconf import OmegaConf

    from prune_cli.config import compose
    from prune_cli.errors import UserError

    method = OmegaConf.to_container(compose([]).method)
    record = {"phase": "prune", "step": 3, "total": 6, "loss": float("nan"), "sparsity": 0.0}
    fp16 = tiny_context(tiny_model_dir, 0.5, method, precision="fp16")
    seen: list[dict] = []
    fp16.on_step = seen.append
    fp16.report_step(record)
    fp16.report_step({**record, "step": 4})
    assert [r["step"] for r in seen] == [3, 4]
    warnings = [r.getMessage() for r in caplog.records if "fp16's loss scaling skips the step" in r.getMessage()]
    assert len(warnings) == 1 and "the loss is nan at prune step 3 of 6" in warnings[0]
    for precision in ("fp32", "bf16"):
        with pytest.raises(UserError, match="training diverged: the loss is nan at prune step 3 of 6"):
            tiny_context(tiny_model_dir, 0.5, method, precision=precision).report_step(record)


@pytest.mark.parametrize("regression", [False, True])
def test_outputs_that_are_not_finite_are_never_scored(tiny_model_dir: Path, regression: bool):
    """argmax reads a nan row as class 0, so a diverged classifier would get an ordinary-looking
    accuracy; scoring refuses it (and so do evaluate, predict and apply, which read the same path)."""
    import torch

    from prune_cli.errors import UserError
    from prune_cli.training import predict

    ctx = tiny_context(tiny_model_dir, 0.5, {})
    outputs = 1 if regression else 2

    class ZeroHead(torch.nn.Module):
        """Zeros for every row, and nan in the first one when `nan_first_row`."""

        def __init__(self, nan_first_row: bool):
            super().__init__()
            self.nan_first_row = nan_first_row

        def forward(self, hidden, attention_mask):
            out = torch.zeros(attention_mask.shape[0], outputs)
            out[0, 0] = float("nan") if self.nan_first_row else 0.0
            return out

    encoded = ctx.dev["dev"]
    with pytest.raises(UserError, match=rf"^the model's outputs are not finite for 1 of {len(encoded)} rows, in fp32: it diverged"):
        predict(ctx.encoder, ZeroHead(nan_first_row=True), None, encoded, len(encoded), ctx.device, "fp32")
    assert len(predict(ctx.encoder, ZeroHead(nan_first_row=False), None, encoded, len(encoded), ctx.device, "fp32")) == len(encoded)
