"""Training loops the methods share: fit a head on fixed weights, fine-tune weights under a mask.

Every method reduces to these two loops plus its own mask logic, so "retrain a fresh head on the
pretrained weights x mask" (the paper's fair scoring) means exactly the same thing for random,
magnitude, gmp and imp, and fine-tuning means the same thing for finetune, gmp and imp.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

import torch
from torch import nn

from prune_cli.masking import sparsity as measured
from prune_cli.training import BatchStream, RunContext, linear_schedule, loss_fn, make_optimizer, new_head

Weights = Mapping[str, torch.Tensor]
Masks = dict[str, torch.Tensor]


def fresh_head(ctx: RunContext) -> nn.Module:
    """A head initialised from the run's seed, so every retrained head starts the same."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(ctx.seed)
        return new_head(ctx.encoder, ctx.num_outputs, ctx.cfg["head"]).to(ctx.device)


class HeadTrainer:
    """A head with its optimiser and schedule (head.* in the config)."""

    def __init__(self, ctx: RunContext, total_steps: int, head: nn.Module | None = None):
        cfg = ctx.cfg["head"]
        self.precision = ctx.precision
        self.head = head if head is not None else fresh_head(ctx)
        self.optimizer = make_optimizer(self.head.parameters(), cfg["optimizer"], cfg["lr"], cfg.get("weight_decay", 0.0))
        self.scheduler = linear_schedule(self.optimizer, 0, total_steps, decay=cfg.get("lr_decay", True))

    def step(self) -> None:
        """The head's share of a training step; the loop calls `precision.update()` after it."""
        self.precision.step(self.optimizer)
        self.optimizer.zero_grad(set_to_none=True)
        self.scheduler.step()

    def state_dict(self) -> dict:
        return {"head": self.head.state_dict(), "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.head.load_state_dict(state["head"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])


def on_device(ctx: RunContext, masks: Masks | None) -> Masks | None:
    """Masks read on the CPU (back from a checkpoint, or another run's mask file) moved to the run's device."""
    return {n: m.to(ctx.device) for n, m in masks.items()} if masks is not None else None


def retrain_steps(ctx: RunContext) -> int:
    return int(ctx.cfg["head"].get("retrain_steps") or ctx.budget.total_steps)


Carry = Callable[[], dict[str, Any]]  # what earlier phases produced, saved with a checkpoint


def fit_head(
    ctx: RunContext,
    trainer: HeadTrainer,
    weights: Weights | None,
    steps: int,
    batches: BatchStream | None = None,
    phase: str = "head",
    first_step: int = 0,
    sparsity: float = 0.0,
    carry: Carry | None = None,
) -> nn.Module:
    """Train the head for `steps` on a frozen encoder running with `weights` (no encoder graph).

    Steps are numbered from `first_step` (adapt-by-pruning's head phase follows its prune phase).
    """
    criterion = loss_fn(ctx.regression)
    batches = batches if batches is not None else ctx.batches()
    total = first_step + steps
    point = ctx.checkpoints.take(phase)
    if point is not None:
        trainer.load_state_dict(point.state["trainer"])
        batches.skip_to(point.state["batches_served"])
        first_step = point.steps_done

    def snapshot() -> dict[str, Any]:
        return {"trainer": trainer.state_dict(), "batches_served": batches.served, "carry": carry() if carry else {}}

    with ctx.encoder.fixed(weights):
        for step in range(first_step, total):
            batch = next(batches)
            with ctx.autocast():
                with torch.no_grad():
                    hidden = ctx.encoder(batch)
                loss = criterion(trainer.head(hidden, batch.get("attention_mask")), batch["labels"])
            ctx.precision.backward(loss)
            trainer.step()
            ctx.precision.update()
            ctx.report_step({"phase": phase, "step": step + 1, "total": total, "loss": float(loss.detach()), "sparsity": sparsity},
                            model=lambda: (trainer.head, None))  # `weights` are installed for the whole loop
            ctx.checkpoints.maybe_save(phase, step + 1, snapshot)
    return trainer.head


def retrain_head(ctx: RunContext, masks: Masks | None, carry: Carry | None = None) -> nn.Module:
    """The paper's fair scoring: a fresh head on pretrained weights x mask, same budget and seed."""
    steps = retrain_steps(ctx)
    weights = ctx.encoder.masked_weights(masks) if masks is not None else None
    return fit_head(ctx, HeadTrainer(ctx, steps), weights, steps, phase="head", sparsity=measured(masks) if masks else 0.0, carry=carry)


def pretrained_params(ctx: RunContext) -> dict[str, torch.Tensor]:
    """Trainable copies of every encoder parameter at its pretrained value (a rewind point)."""
    return {n: p.detach().clone().requires_grad_(True) for n, p in ctx.encoder.encoder.named_parameters()}


def effective(ctx: RunContext, params: Weights, masks: Masks | None) -> dict[str, torch.Tensor]:
    """All encoder weights for a forward pass: trained `params`, the maskable ones times the mask."""
    if not masks:
        return dict(params)
    return {**params, **ctx.encoder.masked_weights(masks, source=params)}


PruneHook = Callable[[int, Weights, Masks | None], Masks | None]


class WeightTrainer:
    """Fine-tuning one step at a time: every encoder weight (from pretrained values) and a head.

    `finetune` and `scripts/bench_step.py` both drive this class.
    """

    def __init__(self, ctx: RunContext, steps: int):
        cfg = ctx.cfg["method"]
        self.ctx = ctx
        self.params = pretrained_params(ctx)
        self.optimizer = make_optimizer(self.params.values(), cfg.get("optimizer", "adamw"), cfg["lr"], cfg.get("weight_decay", 0.0))
        self.scheduler = linear_schedule(self.optimizer, int(cfg.get("warmup_fraction", 0.0) * steps), steps)
        self.heads = HeadTrainer(ctx, steps)
        self.criterion = loss_fn(ctx.regression)

    def step(self, batch: dict[str, torch.Tensor], masks: Masks | None) -> float:
        with self.ctx.autocast():
            hidden = self.ctx.encoder(batch, effective(self.ctx, self.params, masks))
            loss = self.criterion(self.heads.head(hidden, batch.get("attention_mask")), batch["labels"])
        self.ctx.precision.backward(loss)
        self.ctx.precision.step(self.optimizer)
        self.optimizer.zero_grad(set_to_none=True)
        self.scheduler.step()
        self.heads.step()
        self.ctx.precision.update()
        return float(loss.detach())

    def state_dict(self) -> dict:
        return {"params": {n: p.detach() for n, p in self.params.items()}, "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(), "heads": self.heads.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        with torch.no_grad():
            for name, param in self.params.items():
                param.copy_(state["params"][name])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.heads.load_state_dict(state["heads"])


def finetune(
    ctx: RunContext,
    steps: int,
    masks: Masks | None = None,
    prune_hook: PruneHook | None = None,
    phase: str = "finetune",
    carry: Carry | None = None,
) -> tuple[dict[str, torch.Tensor], nn.Module, Masks | None]:
    """Fine-tune all encoder weights (starting from pretrained values) and a fresh head.

    `prune_hook(step, params, masks)` may return new masks before a step (gmp). Returns the
    trained weights (not yet masked), the head, and the final masks.
    """
    trainer = WeightTrainer(ctx, steps)
    batches = ctx.batches()
    first_step = 0
    point = ctx.checkpoints.take(phase)
    if point is not None:
        trainer.load_state_dict(point.state["trainer"])
        batches.skip_to(point.state["batches_served"])
        masks, first_step = on_device(ctx, point.state["masks"]), point.steps_done
    current = measured(masks) if masks else 0.0
    for step in range(first_step, steps):
        if prune_hook is not None:
            updated = prune_hook(step, trainer.params, masks)
            if updated is not None:
                masks, current = updated, measured(updated)
        loss = trainer.step(next(batches), masks)
        ctx.report_step({"phase": phase, "step": step + 1, "total": steps, "loss": loss, "sparsity": current},
                        model=lambda: (trainer.heads.head, effective(ctx, trainer.params, masks)))
        ctx.checkpoints.maybe_save(phase, step + 1, lambda: {
            "trainer": trainer.state_dict(), "batches_served": batches.served, "masks": masks, "carry": carry() if carry else {},
        })
    return {n: p.detach() for n, p in trainer.params.items()}, trainer.heads.head, masks


def magnitude_scores(params: Weights, names: list[str], masks: Masks | None) -> dict[str, torch.Tensor]:
    """|w| with already-pruned weights at -1, so a pruned weight is never revived by magnitude."""
    scores = {}
    for n in names:
        magnitude = params[n].detach().abs().float()
        scores[n] = magnitude if masks is None else torch.where(masks[n], magnitude, torch.full_like(magnitude, -1.0))
    return scores
