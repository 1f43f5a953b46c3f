"""Adapt by pruning (Gao, Colombo & Wang 2021, Alg. 1): learn theta, keep every weight frozen.

Per step, with m = sigma(t_l * theta) in the forward pass:
    theta <- theta - alpha * grad~_theta  - gamma_i * 1        (Eq. 5 with Eq. 4's gradient, Eq. 7)
    p     <- p     - beta  * grad_p                              (Eq. 6)
Pruning stops when the share of theta <= 0 reaches the target s (Alg. 1); the mask is then
1[theta > 0]. The head keeps training on the frozen mask for whatever budget is left.

Optional hold at s (`hold_fraction`, not in the paper): Alg. 1 stops learning theta the step the
target is reached, about halfway through the default budget, so the mask sees half of SST-2's
examples; a second epoch, which gives it all of them, was the one budget change that moved it
(docs/results.md, "Updates or examples?"). With a hold, theta goes on learning at sparsity s
until (prune_fraction + hold_fraction) of the budget: every step the adaptive push takes the
pruned share back to s, so each weight the task brings back (recovery) pushes out the weakest
kept one. The final mask is then the exact-s threshold of theta, as without a hold.
`hold_theta_lr` (also not in the paper) gives theta a learning rate of its own while held: the
paper's smaller alpha with the hold was the recipe that closed SST-2's gap, but the same small
alpha during the ramp loses STS-B at s = 0.9, so the two phases can be given different rates.

Optional head warm-up (`head_warmup_fraction`, not in the paper): the first share of the budget
trains only the head on the dense frozen encoder (every weight kept, as theta_0 says), so that
the first pruning decisions follow the gradient of a head that already reads the task rather than
of a random one. Those steps cost a head step each; the pruning ramp then runs from the end of the
warm-up to `prune_fraction` of the budget.

Optional vocabulary prior (`unseen_tokens_first`, not in the paper): the word-embedding rows of
token ids that never occur in the training split start with theta_0 shrunk a thousandfold, so the
gamma push reaches them first (before everything but the weights the task itself pushes down). The
task's gradient never reaches those rows (Adam leaves a theta with zero gradient where it is), so
without the prior the mask prunes them at the same rate as everything else, in magnitude order.
They count towards s like any other weight; `unseen_token_share` in the run's metrics says how
much of s they took.

Optional encoder dropout (`encoder_dropout`, not in the paper): the model's own dropout is on
during the mask-learning forward passes only (scoring and head training stay in eval mode), a
regulariser for tasks whose training set a mask over millions of weights can simply fit.

How we land on *exactly* s: the gamma push brings the share of theta <= 0 up to s; the final mask
then keeps the round((1 - s) * N) largest theta (a global threshold, which at that point differs
from theta > 0 by at most a few weights). Requested and realized sparsity are both recorded.

gamma schedules:
* constant: gamma_i = gamma (the paper). With the paper's 2e-7 the target may not be reached in a
  short budget; then the final threshold does the rest and `reached_by_gamma` says so.
* adaptive: every `gamma_update_every` steps, gamma_i is raised to the smallest uniform push that
  would put the scheduled sparsity (cubic ramp to s from the end of the head warm-up to
  `prune_fraction` of the budget, as in Zhu & Gupta) below zero by the next update (by the next
  step once the ramp is over, so that the last hair of the target, which theta's own updates keep
  undoing, does not drag on), never below `gamma`. It is still Eq. 7, with gamma chosen so the budget is met.
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from typing import Any, Iterator, Mapping

import numpy as np
import torch

from prune_cli import native
from prune_cli.batching import Encoded
from prune_cli.config import unit_fraction
from prune_cli.errors import UserError
from prune_cli.masking import MaskedEncoder, StepBuffers, keep_top, multi_tensor_masking, theta_masked_weight, theta_masked_weights
from prune_cli.methods.base import MethodResult
from prune_cli.methods.loops import HeadTrainer, fit_head
from prune_cli.training import ADAM_BETAS, BatchStream, RunContext, linear_schedule, loss_fn, make_optimizer

THETA_INITS = ("normal", "magnitude")  # method.init: initial_theta
GAMMA_SCHEDULES = ("constant", "adaptive")  # method.gamma_schedule: the paper's fixed push, or the cubic ramp
QUANTILE_SAMPLE = 1 << 20  # theta entries sampled to estimate the push gamma needs
UNSEEN_ROW_SHRINK = 1e-3  # unseen_tokens_first: theta_0 of a never-seen token's row, relative to its own


def cubic_target(step: int, ramp_steps: int, final: float) -> float:
    """Zhu & Gupta's schedule: fast pruning early, gentle near the end."""
    progress = min(1.0, step / max(1, ramp_steps))
    return final * (1.0 - (1.0 - progress) ** 3)


def initial_theta(weight: torch.Tensor, cfg: Mapping[str, Any], generator: torch.Generator) -> torch.Tensor:
    """theta_0, positive everywhere so that every weight is kept at the start.

    * normal (the paper): N(init_mean, init_std^2), independent of the weight.
    * magnitude: init_mean * |w| / mean|w| within the tensor. Where the task gradient says little,
      the order of theta is then the magnitude order instead of noise: a random half of MiniLM's
      weights leaves SST-2 at chance, a magnitude half does not.
    """
    if cfg.get("init", "normal") == "magnitude":
        magnitude = weight.detach().abs().float().cpu()
        return magnitude.mul_(cfg["init_mean"] / magnitude.mean().clamp_min(1e-12))
    return torch.randn(tuple(weight.shape), generator=generator).mul_(cfg["init_std"]).add_(cfg["init_mean"])


def theta_betas(cfg: Mapping[str, Any]) -> tuple[float, float]:
    """Adam's (beta1, beta2) for theta: torch's, with beta1 from `method.theta_beta1` where set.

    beta1 sets how many batches theta's step averages (about 2 / (1 - beta1)). The mask's
    gradient per weight is mostly batch noise, and Adam's normalised step moves theta by that
    noise as much as by the signal; a longer average (0.99) was the ablation for that reading,
    and it did not pay (docs/results.md, "theta's Adam average"). A scalar, not a list, so that
    the override needs no quoting in any shell. Only Adam and AdamW read it.
    """
    raw = cfg.get("theta_beta1")
    if raw is None:
        return ADAM_BETAS
    return unit_fraction("method.theta_beta1", raw, "method.theta_beta1=0.99", "averages theta's gradient over ~200 batches"), ADAM_BETAS[1]


def unseen_token_rows(train: Encoded, num_rows: int) -> torch.Tensor:
    """True for each word-embedding row whose token id never occurs in the training split.

    Padding is not in the split's rows (batches pad later), so the padding row counts as unseen;
    attention never reads it.
    """
    unseen = torch.ones(num_rows, dtype=torch.bool)
    seen = np.unique(np.concatenate(train.fields["input_ids"])) if len(train) else np.zeros(0, dtype=np.int64)
    unseen[torch.from_numpy(seen[seen < num_rows])] = False
    return unseen


def quantile_by_selection(sample: torch.Tensor, q: float) -> float:
    """`torch.quantile(sample, q)` (linear interpolation) to the last bit, without its full sort.

    torch.quantile sorts all 1M sampled theta (~115 ms on the 2-core CPU, once per
    `gamma_update_every` steps: ~6 ms a step on average); selecting the two order statistics it
    interpolates between takes ~11 ms. The rank and the weight are formed in the sample's dtype
    and interpolated with `lerp`, exactly as torch.quantile does (tests/test_methods.py
    checks equality). theta has no NaN, so torch.quantile's NaN rule does not arise.
    """
    values = sample.detach().reshape(-1).cpu()
    rank = torch.tensor(q, dtype=values.dtype) * (values.numel() - 1)
    below, above = int(rank), int(torch.ceil(rank))
    chosen = np.partition(values.numpy(), [below, above])
    low, high = torch.tensor(chosen[below]), torch.tensor(chosen[above])
    return float(low.lerp(high, rank - below))


@torch.no_grad()
def push_and_track_aten(theta: torch.Tensor, ever: torch.Tensor, negative: torch.Tensor,
                        gamma: float, forbid_recovery: bool, floor: float) -> int:
    """`native.push_and_track` in ATen ops (any device), on all of theta at once (`ThetaState`'s
    flat buffer): theta -= gamma; ever |= theta <= 0 (with forbid_recovery, ever-pruned theta
    clamped to <= floor); returns the number of theta <= 0. `negative` is a bool buffer shaped
    like theta, reused every step (see StepBuffers). One tensor, not one per weight: on a GPU
    each op is a kernel launch, and a step there is bound by launches (docs/performance.md)."""
    theta.sub_(gamma)
    torch.le(theta, 0, out=negative)
    ever |= negative
    if forbid_recovery:
        theta.copy_(torch.where(ever, theta.clamp(max=floor), theta))
        torch.le(theta, 0, out=negative)
    # count_nonzero: .sum() would first copy the bools to int64; one read of the total per step
    return int(torch.count_nonzero(negative))


class ThetaState:
    """theta per maskable weight, plus the bookkeeping for recovery and the no_recovery ablation.

    All of theta lives in one flat buffer, and each weight's theta (an `nn.Parameter`, what the
    optimiser and the checkpoints see) is a view into it; `ever_pruned` likewise. The per-step
    sweep (Eq. 7's push, recovery bookkeeping, the stop count) and the sample for the push's
    quantile then run over one tensor: on a GPU, where a step is bound by kernel launches, that is
    a handful of launches instead of a handful per weight (75 weights in BERT-base). The values
    are those of one tensor per weight, to the bit: the same ops on the same numbers.
    """

    def __init__(self, encoder: MaskedEncoder, cfg: Mapping[str, Any], generator: torch.Generator, device: torch.device,
                 unseen_rows: tuple[str, torch.Tensor] | None = None):
        """`unseen_rows`: (word-embedding name, True per row the training split never uses), whose
        theta_0 is shrunk so that the gamma push prunes those rows first (`unseen_tokens_first`)."""
        self.names = encoder.maskable
        self.shapes = [encoder.shapes[n] for n in self.names]
        initial = {n: initial_theta(encoder.base_weight(n), cfg, generator) for n in self.names}
        if unseen_rows is not None:
            name, unseen = unseen_rows
            initial[name][unseen] *= UNSEEN_ROW_SHRINK
        self.total = sum(t.numel() for t in initial.values())
        self.flat = torch.empty(self.total, dtype=torch.float32, device=device)
        self.theta = [torch.nn.Parameter(view) for view in self._views(self.flat)]
        with torch.no_grad():
            for theta, name in zip(self.theta, self.names):
                theta.copy_(initial.pop(name))  # freed as it goes: never two whole copies of theta at once
        self.ever_flat = self.flat <= 0
        self.ever_pruned = self._views(self.ever_flat)
        self._native = native.available_for([self.flat], [self.ever_flat])
        # the ATen path's bools, reused every step (see StepBuffers); the native loop needs none
        self._negative = None if self._native else torch.empty_like(self.ever_flat)
        # The fixed sample, its draws grouped by weight in the model's order, as when theta was one
        # tensor per weight: the push's quantile does not depend on the order, but the float sum
        # behind the sample's share of theta <= 0 does, to the last bit.
        flat_index = torch.randint(0, self.total, (min(QUANTILE_SAMPLE, self.total),), generator=generator)
        grouped, offset = [], 0
        for theta in self.theta:
            grouped.append(flat_index[(flat_index >= offset) & (flat_index < offset + theta.numel())])
            offset += theta.numel()
        self.sample_index = torch.cat(grouped).to(device)

    def _views(self, flat: torch.Tensor) -> list[torch.Tensor]:
        """`flat` cut into one view per maskable weight, shaped like it, in the model's order."""
        sizes = [math.prod(shape) for shape in self.shapes]
        return [piece.view(shape) for piece, shape in zip(flat.split(sizes), self.shapes)]

    @torch.no_grad()
    def push_and_track(self, gamma: float, forbid_recovery: bool, floor: float) -> float:
        """Eq. 7's uniform push, recovery bookkeeping, and the share of theta <= 0, in one sweep.

        On a CPU one compiled loop does all of it (`prune_cli.native`: same bits, a third of the
        time); elsewhere, or without a C compiler, the ATen ops of `push_and_track_aten`.
        """
        if self._native:
            # (it tells autograd that `flat` changed; the views share its version counter)
            pruned = native.push_and_track([self.flat], [self.ever_flat], gamma, forbid_recovery, floor)
        else:
            pruned = push_and_track_aten(self.flat, self.ever_flat, self._negative, gamma, forbid_recovery, floor)
        return pruned / self.total

    def sample(self) -> torch.Tensor:
        """The same fixed sample of theta every call (its indices are drawn once, at the start)."""
        return self.flat[self.sample_index].float()

    def sample_bias(self, exact_pruned_share: float, sample: torch.Tensor | None = None) -> float:
        """How far the fixed sample's share of theta <= 0 is from the exact share, measured on the
        same theta."""
        sample = self.sample() if sample is None else sample
        return float((sample <= 0).float().mean()) - exact_pruned_share

    def push_for(self, share: float, exact_pruned_share: float, bias: float | None = None, may_lift: bool = False) -> float:
        """The uniform push that takes the share of theta <= 0 to `share`, from a fixed sample.

        It is the sample's `share` quantile, with the target shifted by how far the sample's own
        pruned share is from the exact one: otherwise, once the sample says "reached" while the
        model is a hair short, the push drops to the floor and pruning stalls for the rest of
        the budget. By default the bias is measured now, against `exact_pruned_share`, the share
        before this step's update of theta, so it also cancels whatever that update revived.
        Holding s must undo that too, so it passes a `bias` measured right after the last push
        (`sample_bias`), when the sample and the exact share saw the same theta.
        `may_lift`: a negative push (theta raised) where the share is above `share`; Eq. 7 only
        ever pushes down, but holding s means holding it from both sides.
        """
        sample = self.sample()
        bias = self.sample_bias(exact_pruned_share, sample) if bias is None else bias
        push = quantile_by_selection(sample, min(1.0, max(0.0, share + bias)))
        return push if may_lift else max(0.0, push)

    def by_name(self) -> dict[str, torch.Tensor]:
        return {n: t.detach() for n, t in zip(self.names, self.theta)}


def token_table_name(encoder: MaskedEncoder) -> str | None:
    """The maskable word-embedding matrix, if its rows can be gathered per batch (padding row 0)."""
    table = encoder.encoder.get_input_embeddings()
    if not isinstance(table, torch.nn.Embedding) or table.padding_idx not in (None, 0):
        return None
    name = next((n for n, p in encoder.encoder.named_parameters() if p is table.weight), None)
    return name if name in encoder.maskable else None


class MaskLearner:
    """One optimiser step of Alg. 1 at a time: Eq. 5 (theta), Eq. 6 (head), Eq. 7 (gamma push).

    The method's loop and `scripts/bench_step.py` both drive this class, so the benchmark times
    exactly the code that runs.
    """

    def __init__(self, ctx: RunContext, heads: HeadTrainer):
        self.cfg = cfg = ctx.cfg["method"]
        self.ctx, self.heads = ctx, heads
        self.target = float(ctx.cfg["sparsity"])
        total = ctx.budget.total_steps
        self.token_table = token_table_name(ctx.encoder)
        self.unseen_rows: torch.Tensor | None = None
        if cfg.get("unseen_tokens_first", False):
            if self.token_table is None:
                raise UserError("method.unseen_tokens_first=true needs the word-embedding matrix among the maskable weights (mask.include)")
            self.unseen_rows = unseen_token_rows(ctx.train, ctx.encoder.base_weight(self.token_table).shape[0])
        unseen = None if self.unseen_rows is None else (self.token_table, self.unseen_rows)
        self.state = ThetaState(ctx.encoder, cfg, torch.Generator().manual_seed(ctx.seed), ctx.device, unseen)
        self.start = int(float(cfg.get("head_warmup_fraction", 0.0)) * total)  # the first pruning step
        self.ramp = max(self.start + 1, int(cfg["prune_fraction"] * total))  # the step the ramp reaches s
        hold_fraction = float(cfg.get("hold_fraction", 0.0))
        self.hold = hold_fraction > 0.0
        # the step theta stops learning at the latest once s is reached (Alg. 1: as soon as it is)
        self.learn_end = max(self.ramp, int((float(cfg["prune_fraction"]) + hold_fraction) * total))
        held_lr = cfg.get("hold_theta_lr")
        self.held_lr = None if held_lr is None else float(held_lr)  # alpha while held at s (None: theta_lr)
        self.optimizer = make_optimizer(self.state.theta, cfg["theta_optimizer"], cfg["theta_lr"], momentum=cfg.get("theta_momentum", 0.0),
                                        betas=theta_betas(cfg))
        # alpha's schedule counts this learner's own steps: warm-up over a share of the budget, and
        # (theta_lr_decay) a linear decay that reaches zero where theta stops learning (the ramp's
        # end, or the hold's), not at the end of the budget, which the head has to itself
        self.scheduler = linear_schedule(self.optimizer, int(float(cfg.get("warmup_fraction", 0.0)) * total), self.learn_end - self.start,
                                         decay=cfg.get("theta_lr_decay", False))
        self.criterion = loss_fn(ctx.regression)
        self.base = ctx.encoder.base_weights()
        self.t_large, self.t_small = float(cfg["t_large"]), float(cfg["t_small"])
        self.every = max(1, int(cfg["gamma_update_every"]))
        self.floor = -20.0 / self.t_large  # a forbidden theta stays where sigma(t_l * theta) is ~0
        self.gamma = float(cfg["gamma"])
        self.encoder_dropout = bool(cfg.get("encoder_dropout", False))
        self.pruned_share = 0.0
        self.stop_step = total  # the step after which pruning stopped (Alg. 1), set by `prune`
        self.reached_step: int | None = None  # the step after which the share of theta <= 0 first reached s
        self._hold_bias = 0.0  # holding s: the sample's bias, measured after the last push (see push_for)
        self.reached_by_gamma = False
        self._token_buffer: torch.Tensor | None = None
        # every theta but the word embeddings' (whose rows change every batch, `_token_rows`): in
        # multi-tensor kernels (a GPU), or one at a time into memory reused every step (a CPU)
        # (aligned lists, made once: the step is a hot path)
        self._whole = [n for n in self.state.names if n != self.token_table]
        by_name = dict(zip(self.state.names, self.state.theta))
        self._whole_thetas = [by_name[n] for n in self._whole]
        self._whole_bases = [self.base[n] for n in self._whole]
        self._token_theta = None if self.token_table is None else by_name[self.token_table]
        self._step_buffers = None if multi_tensor_masking(ctx.device) else {
            n: StepBuffers.like(t, base) for n, t, base in zip(self._whole, self._whole_thetas, self._whole_bases)}

    @property
    def holding(self) -> bool:
        """Whether theta is being held at s: a hold was asked for and s has been reached (the
        push then targets s every step, and its bias is measured after each push)."""
        return self.hold and self.reached_step is not None

    def _token_rows(self, theta: torch.Tensor, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The word-embedding mask for only the rows this batch uses, and input ids into them.

        A batch of SST-2 touches a few hundred of the 30k vocabulary rows (about half of all
        maskable weights); every other row's effective weight and theta-gradient is unused or
        zero. Same values, same gradients, a fraction of the elementwise work. Row 0 is always
        the padding token, so the embedding's padding_idx (0) still means padding.
        """
        ids = batch["input_ids"]
        rows, local = torch.unique(torch.cat([ids.new_zeros(1), ids.reshape(-1)]), return_inverse=True)
        theta_rows = theta.detach()[rows].requires_grad_(True)
        self._token_pending = (theta, rows, theta_rows)
        weight = theta_masked_weight(self.base[self.token_table][rows], theta_rows, self.t_large, self.t_small)
        return weight, {**batch, "input_ids": local[1:].view_as(ids)}

    def _token_grad(self) -> None:
        """theta.grad for the word embeddings: the used rows' gradients in a persistent zero buffer.

        Autograd would allocate and zero a full-size gradient every step (a 47 MB tensor on
        MiniLM, re-faulted from the OS each time); only the rows written last step need clearing.
        """
        theta, rows, theta_rows = self._token_pending
        if self._token_buffer is None:
            self._token_buffer = torch.zeros_like(theta)
        else:
            self._token_buffer.index_fill_(0, self._token_rows_last, 0.0)
        self._token_buffer.index_copy_(0, rows, theta_rows.grad)
        theta.grad = self._token_buffer
        self._token_rows_last = rows

    def state_dict(self, with_optimizer: bool = True) -> dict[str, Any]:
        """theta and its bookkeeping; the optimiser too while pruning (not needed once it stops)."""
        state: dict[str, Any] = {
            "theta": [t.detach() for t in self.state.theta], "ever_pruned": self.state.ever_pruned,
            "gamma": self.gamma, "pruned_share": self.pruned_share,
            "stop_step": self.stop_step, "reached_by_gamma": self.reached_by_gamma, "reached_step": self.reached_step,
        }
        if with_optimizer:
            state.update(optimizer=self.optimizer.state_dict(), scheduler=self.scheduler.state_dict())
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        with torch.no_grad():
            for theta, saved in zip(self.state.theta, state["theta"]):
                theta.copy_(saved)
            for ever, saved in zip(self.state.ever_pruned, state["ever_pruned"]):
                ever.copy_(saved)
        self.gamma, self.pruned_share = state["gamma"], state["pruned_share"]
        self.stop_step, self.reached_by_gamma = state["stop_step"], state["reached_by_gamma"]
        self.reached_step = state.get("reached_step")  # absent from checkpoints written before hold_fraction
        if self.holding:  # measured on the same theta as before the kill
            self._hold_bias = self.state.sample_bias(self.pruned_share)
        if "optimizer" in state:
            self.optimizer.load_state_dict(state["optimizer"])
            self.scheduler.load_state_dict(state["scheduler"])

    @contextmanager
    def _held_alpha(self) -> Iterator[None]:
        """While held at s with `hold_theta_lr` set, theta's optimiser step uses that rate in place of
        theta_lr, times the same schedule factor (warm-up, decay). The scheduler's own rate is put
        back afterwards, so its state, and a resumed run's, never holds the swapped rate."""
        if self.held_lr is None or not self.holding:
            yield
            return
        groups = self.optimizer.param_groups
        scheduled = [group["lr"] for group in groups]
        base = float(self.cfg["theta_lr"])
        for group in groups:
            group["lr"] = self.held_lr * (group["lr"] / base)  # the factor is exactly 1.0 without a schedule
        try:
            yield
        finally:
            for group, lr in zip(groups, scheduled):
                group["lr"] = lr

    def step(self, step: int, batch: dict[str, torch.Tensor]) -> float:
        """Returns the loss; afterwards `pruned_share` is the share of theta <= 0."""
        state = self.state
        weights = {}
        if self.token_table is not None:
            weights[self.token_table], batch = self._token_rows(self._token_theta, batch)
        if self._step_buffers is None:
            weights.update(zip(self._whole, theta_masked_weights(self._whole_bases, self._whole_thetas, self.t_large, self.t_small)))
        else:
            for name, theta, base in zip(self._whole, self._whole_thetas, self._whole_bases):
                weights[name] = theta_masked_weight(base, theta, self.t_large, self.t_small, self._step_buffers.get(name))
        with self.ctx.autocast(), self.ctx.encoder.dropout(self.encoder_dropout):
            loss = self.criterion(self.heads.head(self.ctx.encoder(batch, weights), batch.get("attention_mask")), batch["labels"])
        self.ctx.precision.backward(loss)
        if self.token_table is not None:
            self._token_grad()
        self.heads.step()
        with self._held_alpha():
            self.ctx.precision.step(self.optimizer)
        self.optimizer.zero_grad(set_to_none=True)
        self.scheduler.step()
        self.ctx.precision.update()
        if self.holding:
            # holding s: every step, the push that takes the share of theta <= 0 back to s at once,
            # down or (where the ramp's last push overshot, or theta fell by itself) up
            self.gamma = state.push_for(self.target, self.pruned_share, self._hold_bias, may_lift=True)
        elif self.cfg["gamma_schedule"] == "adaptive" and (step - self.start) % self.every == 0:
            wanted = cubic_target(step - self.start + self.every, self.ramp - self.start, self.target)
            # spread over the steps to the next update; past the ramp's end, close the gap at once
            spread = self.every if step + self.every <= self.ramp else max(1, self.ramp - step)
            self.gamma = max(float(self.cfg["gamma"]), state.push_for(wanted, self.pruned_share) / spread)
        self.pruned_share = state.push_and_track(self.gamma, self.cfg["no_recovery"], self.floor)
        if self.reached_step is None and self.pruned_share >= self.target:
            self.reached_step = step + 1
        if self.holding:
            self._hold_bias = state.sample_bias(self.pruned_share)
        return float(loss.detach())


def prune(ctx: RunContext, learner: MaskLearner, batches: BatchStream) -> None:
    """Alg. 1's loop: prune until the share of theta <= 0 reaches s (or the budget ends); with a
    hold, go on learning theta at s until `learn_end`."""
    total = ctx.budget.total_steps
    first_step = learner.start
    point = ctx.checkpoints.take("prune")
    if point is not None:
        learner.load_state_dict(point.state["learner"])
        learner.heads.load_state_dict(point.state["heads"])
        batches.skip_to(point.state["batches_served"])
        first_step = point.steps_done

    def snapshot() -> dict[str, Any]:
        return {"learner": learner.state_dict(), "heads": learner.heads.state_dict(), "batches_served": batches.served}

    for step in range(first_step, total):
        loss = learner.step(step, next(batches))
        ctx.report_step({"phase": "prune", "step": step + 1, "total": total, "loss": loss, "sparsity": learner.pruned_share, "gamma": learner.gamma},
                        model=lambda: (learner.heads.head, ctx.encoder.masked_weights({n: t > 0 for n, t in learner.state.by_name().items()})))
        if learner.reached_step is not None and (not learner.hold or step + 1 >= learner.learn_end):
            learner.stop_step, learner.reached_by_gamma = step + 1, True
            return
        ctx.checkpoints.maybe_save("prune", step + 1, snapshot)
    learner.stop_step = total


def run(ctx: RunContext) -> MethodResult:
    total = ctx.budget.total_steps
    heads = HeadTrainer(ctx, total)
    learner = MaskLearner(ctx, heads)
    batches = ctx.batches()
    resumed = ctx.checkpoints.pending
    if resumed is None or resumed.phase == "warmup":  # a later phase's checkpoint carries the warm head
        fit_head(ctx, heads, None, learner.start, batches, "warmup")
    if resumed is not None and resumed.phase == "head":  # pruning had already stopped before the kill
        learner.load_state_dict(resumed.state["carry"]["learner"])
    else:
        prune(ctx, learner, batches)

    state = learner.state
    if learner.cfg["no_recovery"] and learner.pruned_share > learner.target:
        # Alg. 1's own mask 1[theta > 0]: the exact-s threshold would revive a few pruned weights
        # to undo the last step's overshoot, which is exactly what this ablation forbids.
        masks = {n: t > 0 for n, t in state.by_name().items()}
    else:
        masks = keep_top(state.by_name(), learner.target)
    # The rest of the budget trains the same head (same optimiser and schedule) on the frozen mask.
    fit_head(ctx, heads, ctx.encoder.masked_weights(masks), total - learner.stop_step, batches, "head", learner.stop_step,
             learner.target, carry=lambda: {"learner": learner.state_dict(with_optimizer=False)})
    kept = sum(int(m.sum()) for m in masks.values())
    recovered = sum(int((masks[n] & ever).sum()) for n, ever in zip(state.names, state.ever_pruned))
    extra: dict[str, Any] = {}
    if learner.hold:
        extra["target_reached_step"] = learner.reached_step  # where the hold at s began
    if learner.unseen_rows is not None:
        table = masks[learner.token_table]
        unseen = learner.unseen_rows.to(table.device)
        # how much of s the never-seen rows took, and whether any of them survived
        extra["unseen_token_share"] = int(unseen.sum()) * table.shape[1] / state.total
        extra["unseen_token_weights_kept"] = int(table[unseen].sum())
    return MethodResult(
        masks=masks,
        head=heads.head,
        extra={
            "pruning_steps": learner.stop_step,
            "reached_by_gamma": learner.reached_by_gamma,
            "theta_pruned_share_at_stop": learner.pruned_share,
            "recovered_share": recovered / max(kept, 1),
            **extra,
        },
    )
