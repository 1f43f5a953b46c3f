"""Are the masks special? The paper's Table 3 checks, each followed by training only a fresh head.

* shuffle: every maskable tensor's mask is permuted at random, so each tensor (hence each layer
  and component) keeps exactly as many weights, but not the same ones;
* re-init: the kept weights are rescaled, w0 * N(1, sigma) elementwise (sigma = 0.01 in the
  paper), with the mask unchanged.

The control is the original mask with a fresh head trained the same way (same steps, same seed),
so a drop measures the change to the sub-network, not a difference in head training. The
run's own score (head trained alongside the mask) is shown too.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf
from rich.table import Table

from prune_cli import plots, rundir, runner
from prune_cli.methods.loops import HeadTrainer, fit_head
from prune_cli.training import pick_device, plan_budget, score


@dataclass(frozen=True)
class Sensitivity:
    metric: str
    run_score: float
    scores: dict[str, float]  # variant -> main metric with a freshly trained head
    steps: int


def shuffled(masks: dict[str, torch.Tensor], generator: torch.Generator) -> dict[str, torch.Tensor]:
    """Each tensor's mask permuted within the tensor: same count per tensor, other positions."""
    out = {}
    for name, mask in masks.items():
        flat = mask.reshape(-1)
        order = torch.randperm(flat.numel(), generator=generator).to(flat.device)
        out[name] = flat[order].view_as(mask)
    return out


def rescaled(base: dict[str, torch.Tensor], sigma: float, generator: torch.Generator) -> dict[str, torch.Tensor]:
    """w0 * N(1, sigma), elementwise."""
    return {n: w * torch.randn(tuple(w.shape), generator=generator).mul_(sigma).add_(1.0).to(w.device) for n, w in base.items()}


def require_analysable(run_dir: Path, data_dir: str | None = None, device: str | None = None,
                       model: str | None = None) -> tuple[DictConfig, dict]:
    """What `analyse` reads from a run (its config, with the command's GLUE folder and device, and
    its metrics), checked in well under a second, so that a list of runs stops on a broken one (or
    a device this machine lacks) before minutes of head training on the others."""
    rundir.require_mask(run_dir, "sensitivity")
    cfg = runner.stored_config(run_dir, data_dir, device, model=model)
    pick_device(str(cfg.trainer.device))
    return cfg, rundir.load_run_record(run_dir)


def analyse(run_dir: Path, steps: int | None = None, sigmas: tuple[float, ...] = (0.01,), seed: int | None = None,
            data_dir: str | None = None, device: str | None = None, model: str | None = None) -> Sensitivity:
    """`data_dir`, `device` and `model` override the run's own, as `evaluate --data-dir --device --model` do."""
    cfg, stored = require_analysable(run_dir, data_dir, device, model)  # before the model and data are loaded
    if steps is not None:
        cfg.head.retrain_steps = int(steps)
    cfg.trainer.progress = False
    runner.seed_everything(int(cfg.seed))
    prepared = runner.prepare(cfg, with_train=True)
    masks = runner.load_run_mask(run_dir, prepared.encoder, prepared.base_hash, prepared.device)
    runner.require_made_on(run_dir, prepared.tokenizer, prepared.base_hash)
    assert masks is not None, "require_mask found the mask file above"
    plain = OmegaConf.to_container(cfg, resolve=True)
    ctx = runner.make_context(plain, prepared, plan_budget(plain["trainer"], len(prepared.train)))
    head_steps = int(plain["head"].get("retrain_steps") or ctx.budget.total_steps)
    generator = torch.Generator().manual_seed(int(seed if seed is not None else cfg.seed))
    base = prepared.encoder.base_weights()
    variants = {
        "original mask": masks,
        "shuffled mask": shuffled(masks, generator),
    }
    weights = {name: prepared.encoder.masked_weights(m) for name, m in variants.items()}
    for sigma in sigmas:
        name = f"re-init (sigma={sigma:g})"
        if name not in weights:  # a sigma given twice is trained once, not twice with one row kept
            weights[name] = prepared.encoder.masked_weights(masks, source=rescaled(base, sigma, generator))
    key = runner.main_metric_key(cfg)
    scores = {}
    for name, effective in weights.items():
        head = fit_head(ctx, HeadTrainer(ctx, head_steps), effective, head_steps)
        scores[name] = score(prepared.encoder, head, effective, prepared.dev, plain["task"], plain["trainer"], prepared.device)[key]
    return Sensitivity(metric=key, run_score=float(stored["main_metric_value"]), scores=scores, steps=head_steps)


def table(result: Sensitivity, label: str) -> Table:
    control = result.scores["original mask"]
    out = Table(title=f"sensitivity of {label} ({result.metric}, fresh head, {result.steps} steps)")
    for column in ("variant", result.metric, "vs original mask"):
        out.add_column(column, justify="left" if column == "variant" else "right")
    out.add_row("the run itself (head trained with the mask)", f"{result.run_score:.4f}", "")
    for name, value in result.scores.items():
        out.add_row(name, f"{value:.4f}", "" if name == "original mask" else f"{value - control:+.4f}")
    return out


def to_csv(results: dict[str, Sensitivity]) -> str:
    rows = []
    for label, r in results.items():
        rows.append([label, "the run itself", r.metric, f"{r.run_score:.6f}", ""])
        rows += [[label, name, r.metric, f"{value:.6f}", r.steps] for name, value in r.scores.items()]
    return rundir.csv_text(["run", "variant", "metric", "value", "steps"], rows)


def plot(results: dict[str, Sensitivity], path: Path) -> None:
    plt = plots.pyplot()
    figure, axis = plt.subplots(figsize=(2.2 + 1.6 * len(results), 3.4), dpi=120)
    variants = list(next(iter(results.values())).scores)
    width = 0.8 / len(variants)
    for i, variant in enumerate(variants):
        axis.bar([r + i * width for r in range(len(results))], [s.scores[variant] for s in results.values()], width=width, label=variant)
    axis.set_xticks([r + 0.4 - width / 2 for r in range(len(results))], list(results), fontsize=6)
    axis.set_ylabel(next(iter(results.values())).metric)
    axis.legend(fontsize=7)
    plots.save_png(figure, path)
