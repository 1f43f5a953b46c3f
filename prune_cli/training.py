"""Pieces every method's loop shares: device/precision, losses, optimisers, schedules, scoring.

Methods differ in *what* they train (theta, head, weights); how a batch becomes a loss, how a
model is scored on dev, and how learning rates are scheduled is the same for all of them, so it
lives here once.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator, Mapping

import numpy as np
import torch
from torch import nn

from prune_cli import batching, checkpointing, rundir
from prune_cli.batching import Encoded
from prune_cli.checkpointing import Checkpointer
from prune_cli.errors import UserError
from prune_cli.head import LayerMixHead
from prune_cli.masking import MaskedEncoder
from prune_cli.metrics import task_metrics

log = logging.getLogger(__name__)
MAIN_SPLIT = "dev"  # the dev split whose metrics carry no suffix (MNLI's mismatched one is "mm")
PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


NAME_A_DEVICE = "use auto or cpu (trainer.device=... for adapt, --device for a command that reads a finished run)"


def pick_device(requested: str, fix: str = NAME_A_DEVICE) -> torch.device:
    """'auto' means CUDA when present, else CPU; an explicit device must exist, else `fix` says
    what to do (a stopped run, which goes on with its own settings, is told something else).

    Only the CPU and CUDA are supported (the code paths tested on both); anything else, or a GPU
    index past the visible ones, is a one-line error rather than torch's traceback mid-run.
    """
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(requested)
    except (RuntimeError, TypeError):
        device = None
    if device is None or device.type not in ("cpu", "cuda"):
        raise UserError(f"trainer.device={requested!r} is not supported; use auto, cpu, cuda or cuda:N")
    if device.type == "cuda":
        visible = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if visible == 0:
            raise UserError(f"trainer.device={requested} but no CUDA GPU is visible; {fix}")
        if device.index is not None and device.index >= visible:
            raise UserError(f"trainer.device={requested} but only {visible} CUDA GPU(s) are visible (cuda:0 to cuda:{visible - 1}); {fix}")
    return device


def check_precision(precision: str) -> None:
    if precision not in PRECISIONS:
        raise UserError(f"trainer.precision={precision!r}; choose one of {sorted(PRECISIONS)} "
                        "(trainer.precision=... for adapt, --precision for a command that reads a finished run)")


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    check_precision(precision)
    dtype = PRECISIONS[precision]
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


class Precision:
    """How a training step runs in `trainer.precision`: its autocast, and for fp16 loss scaling.

    theta learns from very small gradients (Eq. 4's are 1e-8 to 1e-6 per weight on MiniLM), and
    an unscaled fp16 backward pass rounds small numbers (under 6e-5, fp16's smallest normal one)
    coarsely or to zero on the way: three steps of theta on MiniLM end 0.34% off fp32's without
    the scale and 0.03% with it (scripts/precision_check.py). A GradScaler scales the loss before
    backward, unscales each optimiser's gradients before its step, and skips a step whose
    gradients overflowed. bf16 has fp32's range and needs none; for fp32 and bf16 the
    scaler is disabled and each call below is the plain one, so those runs are bit-identical to
    runs made before it existed. Every loop calls `backward`, `step` per optimiser, then `update`.
    """

    def __init__(self, device: torch.device, name: str, loss_scaling: bool = True):
        """`loss_scaling=False` only to measure what the scale buys (scripts/precision_check.py)."""
        autocast(device, name)  # the one check of the name
        if name == "fp16" and device.type == "cpu":
            log.warning("trainer.precision=fp16 on the CPU: most CPUs emulate fp16 arithmetic, far slower than fp32; "
                        "use fp32, or bf16 on a CPU with bf16 instructions")
        self.device, self.name = device, name
        self.scaler = torch.amp.GradScaler(device.type, enabled=name == "fp16" and loss_scaling)

    def autocast(self) -> contextlib.AbstractContextManager:
        return autocast(self.device, self.name)

    def backward(self, loss: torch.Tensor) -> None:
        self.scaler.scale(loss).backward()

    def step(self, optimizer: torch.optim.Optimizer) -> None:
        """optimizer.step() on unscaled gradients, or no step if they overflowed."""
        self.scaler.step(optimizer)

    def update(self) -> None:
        """Once per training step, after every optimiser has stepped: adapt the loss scale."""
        self.scaler.update()


@dataclass
class Budget:
    """How many optimiser steps a run takes, whichever of max_steps / epochs decides it."""

    total_steps: int
    steps_per_epoch: int


def plan_budget(trainer: Mapping[str, Any], num_train: int) -> Budget:
    """At most `epochs` passes over the data and at most `max_steps` steps (either may be null).

    One setting then suits small and large tasks: SST-2 stops at max_steps, STS-B after its epochs.
    """
    per_epoch = max(1, math.ceil(num_train / trainer["batch_size"]))
    limits = []
    if trainer.get("max_steps"):
        limits.append(int(trainer["max_steps"]))
    if trainer.get("epochs"):
        limits.append(max(1, int(round(float(trainer["epochs"]) * per_epoch))))
    if not limits:
        raise UserError("trainer.max_steps and trainer.epochs are both unset; set at least one")
    return Budget(total_steps=min(limits), steps_per_epoch=per_epoch)


class BatchStream:
    """Endless, length-bucketed training batches whose position can be saved and restored.

    The order is a pure function of the seed, so resuming needs only the number of batches
    served: `skip_to(n)` replays the index order (cheap: no tokens are collated) up to batch n.
    """

    def __init__(self, encoded: Encoded, batch_size: int, seed: int, device: torch.device):
        self.encoded, self.batch_size, self.seed, self.device = encoded, batch_size, seed, device
        self.skip_to(0)

    def _index_batches(self) -> Iterator[np.ndarray]:
        rng = np.random.default_rng(self.seed)
        while True:
            yield from batching.training_batches(self.encoded, self.batch_size, rng)

    def skip_to(self, served: int) -> None:
        self._indices = self._index_batches()
        for _ in range(served):
            next(self._indices)
        self.served = served

    def __iter__(self) -> "BatchStream":
        return self

    def __next__(self) -> dict[str, torch.Tensor]:
        batch = batching.collate(self.encoded, next(self._indices))
        self.served += 1
        return to_device(batch, self.device)


def to_device(batch: Mapping[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}


def loss_fn(regression: bool) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    if regression:
        return lambda out, y: nn.functional.mse_loss(out.squeeze(-1).float(), y)
    return lambda out, y: nn.functional.cross_entropy(out.float(), y)


OPTIMIZERS = ("adam", "adamw", "sgd")  # head.optimizer, method.optimizer, method.theta_optimizer
ADAM_BETAS = (0.9, 0.999)  # torch's defaults, and every run's unless a config says otherwise


def make_optimizer(params: Iterable[nn.Parameter], name: str, lr: float, weight_decay: float = 0.0, momentum: float = 0.0,
                   betas: tuple[float, float] = ADAM_BETAS) -> torch.optim.Optimizer:
    params = list(params)
    # fused Adam: one pass over theta/m/v instead of several (theta is as large as the model)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, betas=betas, weight_decay=weight_decay, fused=True)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, betas=betas, weight_decay=weight_decay, fused=True)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, weight_decay=weight_decay, momentum=momentum, foreach=True)
    raise UserError(f"optimizer {name!r} is not known; choose one of: {', '.join(OPTIMIZERS)}")


def linear_schedule(optimizer: torch.optim.Optimizer, warmup_steps: int, total_steps: int, decay: bool = True):
    """Linear warm-up, then linear decay to zero (or constant when decay is off)."""

    def factor(step: int) -> float:
        if warmup_steps and step < warmup_steps:
            return (step + 1) / warmup_steps
        if not decay:
            return 1.0
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup_steps))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def new_head(encoder: MaskedEncoder, num_outputs: int, head_cfg: Mapping[str, Any]) -> LayerMixHead:
    config = encoder.encoder.config
    return LayerMixHead(
        hidden_size=config.hidden_size,
        num_hidden_states=config.num_hidden_layers + 1,
        num_outputs=num_outputs,
        dropout=float(head_cfg.get("dropout", 0.0)),
        pooling=str(head_cfg.get("pooling", "cls")),
    )


# The model a loop is training, as it stands: its head, and the encoder weights to score it with
# (None: those installed already, or the pretrained ones). A thunk: the weights are built only when scored.
CurrentModel = Callable[[], tuple[nn.Module, Mapping[str, torch.Tensor] | None]]


@dataclass
class RunClock:
    """Wall-clock seconds a run has spent in its method's loops, and how many of them went to
    scoring along the way (`trainer.eval_every`), counted across a resume.

    Checkpoints save it (`Checkpointer.track`) and a resume carries it on from there, so a resumed
    run's step records and its `train_seconds` are those of the steps it kept: what the run cost,
    comparable with a run never stopped (the steps a killed run took after its last checkpoint are
    taken again and counted once). Before, each attempt's clock started at 0: a resumed run timed
    only its tail, and `report` had to leave it out of the cost table."""

    started: float = field(default_factory=time.perf_counter)
    carried: float | None = None  # the seconds a checkpoint carried into this attempt (None: it started at step 0)
    scoring: float = 0.0

    def seconds(self) -> float:
        return (self.carried or 0.0) + time.perf_counter() - self.started

    def training_seconds(self) -> float:
        return self.seconds() - self.scoring

    def state_dict(self) -> dict[str, float]:
        return {"seconds": self.seconds(), "scoring_seconds": self.scoring}

    def load_state_dict(self, state: Mapping[str, float]) -> None:
        self.carried, self.scoring, self.started = float(state["seconds"]), float(state["scoring_seconds"]), time.perf_counter()


@dataclass
class RunContext:
    """Everything a method needs, built once by the runner."""

    cfg: Mapping[str, Any]
    task: Mapping[str, Any]
    encoder: MaskedEncoder
    train: Encoded
    dev: dict[str, Encoded]
    device: torch.device
    budget: Budget
    seed: int
    num_outputs: int
    regression: bool
    on_step: Callable[[dict[str, float]], None] = field(default=lambda record: None)
    checkpoints: Checkpointer = field(default_factory=checkpointing.disabled)
    base_hash: str = ""  # the loaded base weights' hash, which another run's mask is checked against ("": not computed yet)
    precision: Precision = field(init=False)
    clock: RunClock = field(default_factory=RunClock)  # the run's seconds, and those spent scoring along the way (not training)
    _warned_non_finite: bool = field(default=False, init=False)

    def __post_init__(self) -> None:
        self.precision = Precision(self.device, self.cfg["trainer"]["precision"])
        # fp16's loss scale changes as a run goes, so a resumed run must start from the saved one
        self.checkpoints.track("grad_scaler", self.precision.scaler)
        self.checkpoints.track("clock", self.clock)

    def autocast(self) -> contextlib.AbstractContextManager:
        return self.precision.autocast()

    def report_step(self, record: dict[str, float], model: CurrentModel | None = None) -> None:
        """Every method's loop reports each step here: a loss that is not finite ends the run.

        `model` gives the model as it stands after the step (its head, and the encoder weights to
        score with: None for those installed already), asked for only at the steps where
        `trainer.eval_every` scores the dev set(s) into the record (`scores_at`). Scoring reads no
        random numbers and changes no state, so a run trains bit-identically with or without it.

        As fairseq does: without loss scaling a nan or inf loss leaves nan in the gradients, Adam's
        moments and then the parameters for good, so the run stops at once instead of training on
        and scoring a diverged model. With fp16's loss scaling the scaler skips that step and
        lowers its scale, so the run goes on, with a warning the first time; a model that never
        recovers is caught where it is scored (`predict`)."""
        loss = record["loss"]
        if not math.isfinite(loss):
            where = f"{record.get('phase', 'training')} step {record['step']} of {record['total']}"
            if not self.precision.scaler.is_enabled():
                raise UserError(f"training diverged: the loss is {loss} at {where}; lower the learning rates ({learning_rates(self.cfg)})")
            if not self._warned_non_finite:
                log.warning("the loss is %s at %s; fp16's loss scaling skips the step (lower the learning rates if it goes on: %s)",
                            loss, where, learning_rates(self.cfg))
                self._warned_non_finite = True
        if model is not None and self.scores_at(record["step"]):
            started = time.perf_counter()
            head, weights = model()
            record.update(score(self.encoder, head, weights, self.dev, self.task, self.cfg["trainer"], self.device))
            self.clock.scoring += time.perf_counter() - started
        self.on_step(record)

    def scores_at(self, step: int) -> bool:
        """Whether the model is scored after `step` of a phase (every `trainer.eval_every` steps; 0 or a
        config made before the key: never, only at the end)."""
        every = int(self.cfg["trainer"].get("eval_every") or 0)
        return every > 0 and step % every == 0

    def batches(self) -> BatchStream:
        """A fresh stream from the run's seed: every loop that starts one sees the same order."""
        return BatchStream(self.train, self.cfg["trainer"]["batch_size"], self.seed, self.device)


def learning_rates(cfg: Mapping[str, Any]) -> str:
    """The run's learning-rate settings as key=value (head.lr, and the method's own), for an error
    that asks for lower ones."""
    rates = [f"{group}.{key}={value:g}" for group in ("head", "method") for key, value in (cfg.get(group) or {}).items()
             if key.endswith("lr") and isinstance(value, (int, float)) and not isinstance(value, bool)]
    return ", ".join(rates)


@torch.no_grad()
def predict(
    encoder: MaskedEncoder,
    head: nn.Module,
    weights: Mapping[str, torch.Tensor] | None,
    encoded: Encoded,
    batch_size: int,
    device: torch.device,
    precision: str,
) -> np.ndarray:
    """Predictions in dataset order (class ids, or scores for regression)."""
    head.eval()
    outputs: list[tuple[np.ndarray, np.ndarray]] = []
    with encoder.fixed(weights):
        for indices, batch in batching.iterate(encoded, batching.eval_batches(encoded, batch_size)):
            with autocast(device, precision):
                batch = to_device(batch, device)
                out = head(encoder(batch), batch.get("attention_mask")).float().cpu()
            outputs.append((indices, out.numpy()))
    head.train()
    order = np.concatenate([i for i, _ in outputs])
    values = np.concatenate([o for _, o in outputs])
    non_finite = int((~np.isfinite(values)).any(axis=1).sum())
    if non_finite:  # argmax would read a nan row as class 0, and a score from it would look like any other
        raise UserError(f"the model's outputs are not finite for {non_finite} of {len(values)} rows, in {precision}: it diverged in "
                        "training, or overflows in this precision; nothing is scored or predicted from them")
    result = np.empty_like(values)
    result[order] = values
    return result[:, 0] if result.shape[1] == 1 else result.argmax(axis=1)


def score(
    encoder: MaskedEncoder,
    head: nn.Module,
    weights: Mapping[str, torch.Tensor] | None,
    dev: Mapping[str, Encoded],
    task: Mapping[str, Any],
    trainer: Mapping[str, Any],
    device: torch.device,
) -> dict[str, float]:
    """GLUE metrics for every dev split, keyed `eval_<metric>[_<split>]`."""
    results: dict[str, float] = {}
    for split, encoded in dev.items():
        predictions = predict(encoder, head, weights, encoded, trainer["eval_batch_size"], device, trainer["precision"])
        results.update(split_metrics(task, split, predictions, encoded.labels.numpy()))
    return results


def metric_key(name: str, split: str) -> str:
    """How metrics.json names metric `name` on split `split`: `eval_<metric>[_<split>]`, with no
    suffix for MAIN_SPLIT, so a held-out run's figures (`eval_accuracy_holdout`) never pass for dev's."""
    return f"{rundir.FIGURE_PREFIX}{name}" if split == MAIN_SPLIT else f"{rundir.FIGURE_PREFIX}{name}_{split}"


def split_metrics(task: Mapping[str, Any], split: str, predictions: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """GLUE metrics of one split to score on, keyed by `metric_key`."""
    return {metric_key(name, split): value for name, value in task_metrics(task["metrics"], predictions, labels).items()}
