"""The one masking mechanism every method shares.

A method never edits the pretrained model. It hands `MaskedEncoder` a dict of *effective weights*
(name -> tensor) for the maskable parameters, and the encoder runs with those tensors swapped in
through `torch.func.functional_call`: no copy of the model, no per-step module surgery. What a
method puts in the dict is its own business:

* adapt-by-pruning: `w0 * sigma(t_l theta)` with the paper's gradient (Eq. 4), `ThetaMaskedWeight`
  (one weight; on a CPU) or `ThetaMaskedWeights` (all at once, in multi-tensor kernels; on a GPU);
* a fixed binary mask (random, magnitude, evaluation): `w0 * m`, computed once and reused;
* methods that also move weights (gmp, imp, finetune): `w * m` with trainable `w`.

Which parameters are maskable is configured by regular expressions on parameter names (default:
embedding matrices and every encoder Linear weight; never LayerNorm, biases or the head).
"""

from __future__ import annotations

import os
import re
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator, Mapping, Sequence

import torch
from torch import nn
from torch.func import functional_call

from prune_cli.errors import UserError

# sigmoid(x) of a float32 is exactly 0.0 for every x <= -100 and exactly 1.0 for every x >= 30, so
# clamping t_l * theta to [-100, 30] leaves every mask bit-identical (checked over all 2^32 float32
# values on the development CPU; tests/test_masking.py checks a sweep on any machine). It matters on
# a CPU: where exp(-x) lands among the subnormal numbers (x near 100 or 500, -200, ...) the
# vectorised sigmoid takes microcode assists and runs about half as fast, and t_l * theta spreads
# over thousands, so the unclamped forward pass of MiniLM paid ~5 ms a step for nothing.
SIGMOID_ZERO_AT, SIGMOID_ONE_AT = -100.0, 30.0


def select_maskable(encoder: nn.Module, include: Sequence[str], exclude: Sequence[str]) -> list[str]:
    """Names of the parameters to mask, in the model's own order."""
    include_re = [re.compile(p) for p in include]
    exclude_re = [re.compile(p) for p in exclude]
    included = [name for name, param in encoder.named_parameters() if param.dim() >= 2 and any(r.search(name) for r in include_re)]
    if not included:
        raise UserError(f"mask.include={list(include)} matches no weight matrix of this model; check the patterns")
    names = [name for name in included if not any(r.search(name) for r in exclude_re)]
    if not names:
        raise UserError(f"mask.exclude={list(exclude)} removes every weight matrix mask.include={list(include)} matches; "
                        "nothing would be masked: check the patterns")
    return names


@dataclass
class StepBuffers:
    """Memory one theta reuses every step: its effective weight and its gradient.

    On a CPU a fresh full-size tensor per step is not free: the allocator hands such blocks back
    to the OS when they are freed, so every step page-faults them in again, which on MiniLM costs
    more than the arithmetic of the elementwise passes themselves (~20 ms per 43 MB). A step's graph
    is freed by its backward pass before the next forward writes here, so reuse is safe.
    """

    weight: torch.Tensor
    grad: torch.Tensor

    @classmethod
    def like(cls, theta: torch.Tensor, base: torch.Tensor) -> "StepBuffers":
        return cls(weight=torch.empty_like(base), grad=torch.empty_like(theta, memory_format=torch.contiguous_format))


class ThetaMaskedWeight(torch.autograd.Function):
    """w0 * sigma(t_l * theta) forward; Eq. 4's gradient for theta backward.

    Forward: the effective weight w0 * m with m = sigma(t_l theta) (a step 1[theta > 0] for
    large t_l; its argument clamped where sigmoid is already exactly 0 or 1, see SIGMOID_ZERO_AT).
    Backward (Eq. 4 of the paper):
        grad_theta = grad_m * t_s * sigma(t_s theta) * (1 - sigma(t_s theta)),  grad_m = grad_w * w0.
    Using the large t_l in the backward pass would make the gradient vanish almost everywhere.
    Fused and in place: a full-size temporary per op would cost more than the matmuls on a CPU.
    With `StepBuffers` the weight and the gradient are written into the same memory every step, and
    the gradient is installed as `theta.grad` directly (autograd would copy a buffer it does not own).
    """

    @staticmethod
    def forward(ctx, theta: torch.Tensor, base: torch.Tensor, t_large: float, t_small: float, buffers: StepBuffers | None) -> torch.Tensor:
        ctx.save_for_backward(theta, base)
        ctx.t_small, ctx.buffers = t_small, buffers
        ctx.theta = theta if buffers is not None else None
        out = torch.mul(theta, t_large, out=None if buffers is None else buffers.weight)
        out.clamp_(SIGMOID_ZERO_AT, SIGMOID_ONE_AT).sigmoid_().mul_(base)
        return out if buffers is None else out.detach()

    @staticmethod
    def backward(ctx, grad_weight: torch.Tensor):
        theta, base = ctx.saved_tensors
        out = None if ctx.buffers is None else ctx.buffers.grad
        grad = torch.sigmoid(theta, out=out) if ctx.t_small == 1.0 else torch.mul(theta, ctx.t_small, out=out).sigmoid_()
        grad.addcmul_(grad, grad, value=-1.0)  # sigma(1 - sigma), in place
        grad.mul_(grad_weight).mul_(base)
        if ctx.t_small != 1.0:
            grad.mul_(ctx.t_small)
        if out is None:
            return grad, None, None, None, None
        if ctx.theta.grad is not None:
            raise RuntimeError("a theta with StepBuffers takes one backward pass per step; clear theta.grad between steps")
        ctx.theta.grad = grad
        return None, None, None, None, None


def theta_masked_weight(base: torch.Tensor, theta: torch.Tensor, t_large: float, t_small: float,
                        buffers: StepBuffers | None = None) -> torch.Tensor:
    """The effective weight adapt-by-pruning trains through (see `ThetaMaskedWeight`)."""
    return ThetaMaskedWeight.apply(theta, base, t_large, t_small, buffers)


class ThetaMaskedWeights(torch.autograd.Function):
    """`ThetaMaskedWeight` for many weights at once, in multi-tensor (`torch._foreach_*`) kernels.

    The same ops on the same numbers, so the same bits (tests/test_masking.py checks it). On a GPU
    a pruning step is bound by kernel launches, not arithmetic (docs/performance.md, "On a GPU"):
    one weight at a time costs four launches per weight in each direction, 600 a step for
    BERT-base's 75, where a multi-tensor kernel covers dozens of weights per launch. On a CPU the
    foreach ops are a loop over the weights that allocates fresh outputs; there the per-weight
    Function, writing into `StepBuffers`, is the faster (`multi_tensor_masking`).
    Inputs: t_large, t_small, the number n of weights, then n thetas and n base weights.
    """

    @staticmethod
    def forward(ctx, t_large: float, t_small: float, count: int, *tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
        thetas, bases = tensors[:count], tensors[count:]
        ctx.save_for_backward(*tensors)
        ctx.t_small, ctx.count = t_small, count
        ctx.set_materialize_grads(False)  # an unread weight's theta gets no gradient, as with one node per weight
        out = torch._foreach_mul(thetas, t_large)
        torch._foreach_clamp_min_(out, SIGMOID_ZERO_AT)
        torch._foreach_clamp_max_(out, SIGMOID_ONE_AT)
        torch._foreach_sigmoid_(out)
        torch._foreach_mul_(out, list(bases))
        return tuple(out)

    @staticmethod
    def backward(ctx, *grad_weights: torch.Tensor | None):
        saved, count = ctx.saved_tensors, ctx.count
        used = [i for i, g in enumerate(grad_weights) if g is not None]  # a weight the loss never read has none
        if not used:
            return (None,) * (3 + 2 * count)
        thetas = [saved[i] for i in used]
        if ctx.t_small == 1.0:
            grads = torch._foreach_sigmoid(thetas)
        else:
            grads = torch._foreach_mul(thetas, ctx.t_small)
            torch._foreach_sigmoid_(grads)
        torch._foreach_addcmul_(grads, grads, grads, value=-1.0)  # sigma(1 - sigma), in place
        torch._foreach_mul_(grads, [grad_weights[i] for i in used])
        torch._foreach_mul_(grads, [saved[count + i] for i in used])
        if ctx.t_small != 1.0:
            torch._foreach_mul_(grads, ctx.t_small)
        theta_grads: list[torch.Tensor | None] = [None] * count
        for i, grad in zip(used, grads):
            theta_grads[i] = grad
        return (None, None, None, *theta_grads, *([None] * count))


def theta_masked_weights(bases: Sequence[torch.Tensor], thetas: Sequence[torch.Tensor], t_large: float, t_small: float) -> list[torch.Tensor]:
    """The effective weights of many thetas at once (see `ThetaMaskedWeights`), in their order."""
    if not thetas:
        return []
    return list(ThetaMaskedWeights.apply(t_large, t_small, len(thetas), *thetas, *bases))


def multi_tensor_masking(device: torch.device) -> bool:
    """Whether adapt-by-pruning computes its effective weights in multi-tensor kernels.

    Yes off the CPU (a GPU step is bound by launches), no on it (memory reuse matters more there;
    see `ThetaMaskedWeights`). `PRUNE_CLI_MULTI_TENSOR=0` or `=1` overrides, so that a benchmark can
    time both on one machine; either gives the same bits.
    """
    forced = os.environ.get("PRUNE_CLI_MULTI_TENSOR")
    if forced in ("0", "1"):
        return forced == "1"
    return device.type != "cpu"


class MaskedEncoder(nn.Module):
    """A frozen encoder plus the names of its maskable weights; runs with substituted weights."""

    def __init__(self, encoder: nn.Module, maskable: Sequence[str]):
        super().__init__()
        self.encoder = encoder
        self.maskable = list(maskable)
        params = dict(encoder.named_parameters())
        self.shapes = {n: tuple(params[n].shape) for n in self.maskable}

    def base_weight(self, name: str) -> torch.Tensor:
        return self.encoder.get_parameter(name)

    def base_weights(self) -> dict[str, torch.Tensor]:
        return {n: self.base_weight(n) for n in self.maskable}

    @property
    def num_maskable(self) -> int:
        return sum(int(torch.Size(s).numel()) for s in self.shapes.values())

    def forward(self, batch: Mapping[str, torch.Tensor], weights: Mapping[str, torch.Tensor] | None = None):
        inputs = {k: v for k, v in batch.items() if k != "labels"}
        if not weights:
            return self.encoder(**inputs, output_hidden_states=True).hidden_states
        out = functional_call(self.encoder, dict(weights), args=(), kwargs={**inputs, "output_hidden_states": True}, strict=False)
        return out.hidden_states

    @contextmanager
    def fixed(self, weights: Mapping[str, torch.Tensor] | None) -> Iterator["MaskedEncoder"]:
        """Install fixed effective weights for many forward passes, then put the originals back.

        `forward(batch, weights)` swaps tensors on every call, which costs as much as a small
        model's forward pass; when the weights do not change (scoring, head-only training) they are
        swapped in once here, so a masked forward is exactly a dense forward.
        """
        if not weights:
            yield self
            return
        saved: list[tuple[nn.Module, str, nn.Parameter]] = []
        try:
            for name, tensor in weights.items():
                module_name, _, attr = name.rpartition(".")
                module = self.encoder.get_submodule(module_name)
                saved.append((module, attr, module._parameters[attr]))
                module._parameters[attr] = nn.Parameter(tensor.detach(), requires_grad=False)
            yield self
        finally:
            for module, attr, original in saved:
                module._parameters[attr] = original

    @contextmanager
    def dropout(self, active: bool) -> Iterator["MaskedEncoder"]:
        """Inside the block, run the encoder with its own dropout (its config's rates); eval mode after.

        The encoder is in eval mode everywhere else: scoring, head training and every baseline. A
        recipe may turn the model's dropout on while it learns a mask, as a regulariser: on a small
        training set (MRPC) the mask alone can fit the training labels (docs/results.md).
        """
        if not active:
            yield self
            return
        self.encoder.train()
        try:
            yield self
        finally:
            self.encoder.eval()

    def masked_weights(self, masks: Mapping[str, torch.Tensor], source: Mapping[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
        """Effective weights `source * mask` (source defaults to the frozen pretrained weights)."""
        src = source if source is not None else self.base_weights()
        return {n: src[n] * masks[n].to(src[n].dtype) for n in self.maskable}


def sparsity(masks: Mapping[str, torch.Tensor]) -> float:
    """Share of zeros over all maskable weights (measured, never the requested value)."""
    total = sum(m.numel() for m in masks.values())
    zeros = sum(int((m == 0).sum()) for m in masks.values())
    return zeros / max(total, 1)


def keep_top(scores: Mapping[str, torch.Tensor], target_sparsity: float) -> dict[str, torch.Tensor]:
    """Binary masks that prune exactly round(s * N) weights: those with the lowest scores, globally.

    Ties are broken by position (a stable sort), so the result is deterministic and the count exact.
    """
    names = list(scores)
    flat = torch.cat([scores[n].detach().reshape(-1).float() for n in names])
    n_prune = int(round(target_sparsity * flat.numel()))
    keep = torch.ones(flat.numel(), dtype=torch.bool, device=flat.device)
    if n_prune > 0:
        order = torch.sort(flat, stable=True).indices
        keep[order[:n_prune]] = False
    masks, offset = {}, 0
    for n in names:
        size = scores[n].numel()
        masks[n] = keep[offset : offset + size].view(scores[n].shape).clone()
        offset += size
    return masks
