"""The paper's baselines, and `transfer` (another run's mask), all on the shared masking mechanism and loops.

Scoring is the paper's (§4.1): every pruning method is scored with the surviving weights at their
*pretrained* values and a freshly trained head (same budget, same seed). gmp and imp also report
their own fine-tuned score, under `finetuned_eval_*` in method_details.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch

from prune_cli import mask_format, rundir
from prune_cli.backbone import base_weights_hash
from prune_cli.errors import UserError
from prune_cli.masking import keep_top
from prune_cli.methods.adapt_by_pruning import cubic_target
from prune_cli.methods.base import MethodResult
from prune_cli.methods.loops import effective, finetune, magnitude_scores, on_device, retrain_head
from prune_cli.training import RunContext, score

MAGNITUDE_SCOPES = ("global", "per_layer")  # method.scope of `magnitude`


def _target(ctx: RunContext) -> float:
    return float(ctx.cfg["sparsity"])


def random_mask(ctx: RunContext) -> MethodResult:
    """Rnd: each weight kept with probability 1 - s, with the count made exact by ranking noise."""
    generator = torch.Generator().manual_seed(ctx.seed)
    noise = {n: torch.rand(ctx.encoder.shapes[n], generator=generator).to(ctx.device) for n in ctx.encoder.maskable}
    masks = keep_top(noise, _target(ctx))
    return MethodResult(masks=masks, head=retrain_head(ctx, masks))


def magnitude(ctx: RunContext) -> MethodResult:
    """One-shot magnitude pruning of the pretrained weights, globally or per tensor."""
    base = ctx.encoder.base_weights()
    target = _target(ctx)
    if ctx.cfg["method"].get("scope", "global") == "per_layer":
        masks = {}
        for name in ctx.encoder.maskable:
            masks.update(keep_top({name: base[name].abs()}, target))
    else:
        masks = keep_top({n: w.abs() for n, w in base.items()}, target)
    return MethodResult(masks=masks, head=retrain_head(ctx, masks))


def _finetuned_scores(ctx: RunContext, params, head, masks) -> dict[str, float]:
    metrics = score(ctx.encoder, head, effective(ctx, params, masks), ctx.dev, ctx.task, ctx.cfg["trainer"], ctx.device)
    return {f"finetuned_{k}": v for k, v in metrics.items()}


def gmp(ctx: RunContext) -> MethodResult:
    """Zhu & Gupta (2018): fine-tune, pruning by magnitude on a cubic schedule every few steps."""
    cfg = ctx.cfg["method"]
    steps = ctx.budget.total_steps
    target = _target(ctx)
    start = int(cfg["start_fraction"] * steps)
    end = max(start + 1, int(cfg["end_fraction"] * steps))
    every = max(1, int(cfg["prune_every"]))
    names = ctx.encoder.maskable

    def hook(step: int, params, masks):
        due = step >= start and ((step - start) % every == 0 or step == end)
        if not due or step > end:
            return None
        level = cubic_target(step - start, end - start, target)
        return keep_top(magnitude_scores(params, names, masks), level)

    resumed = ctx.checkpoints.pending
    if resumed is not None and resumed.phase == "head":  # fine-tuning had finished before the kill
        masks, extra = on_device(ctx, resumed.state["carry"]["masks"]), resumed.state["carry"]["extra"]
    else:
        params, head, masks = finetune(ctx, steps, prune_hook=hook, phase="gmp")
        masks = keep_top(magnitude_scores(params, names, masks), target)  # exact s, whatever the schedule did
        extra = _finetuned_scores(ctx, params, head, masks)
    head = retrain_head(ctx, masks, carry=lambda: {"masks": masks, "extra": extra})
    return MethodResult(masks=masks, head=head, extra=extra)


# IMP's rounds at most: each fine-tunes the model and keeps its mask for the run's files, so a tiny
# method.rate (1e-12: some 7e11 rounds) grew the list of levels until the process was killed for
# memory. The paper's 20% reaches s = 0.9 in 11 rounds; 50 rounds at 20% prune 99.999%.
MAX_IMP_ROUNDS = 50


def imp_rounds(target: float, rate: float) -> float:
    """How many rounds pruning `rate` of the remaining weights takes to reach `target` (< 1), unrounded."""
    return math.log1p(-target) / math.log1p(-rate)


def imp_levels(target: float, rate: float) -> list[float]:
    """Sparsity after each IMP round: prune `rate` of the remaining weights, stop exactly at target.
    Refused beyond MAX_IMP_ROUNDS, counted before the rounds are listed."""
    if target > 0 and imp_rounds(target, rate) > MAX_IMP_ROUNDS + 1:
        raise UserError(f"method.rate={rate:g} takes {math.ceil(imp_rounds(target, rate))} IMP rounds to reach sparsity {target:g} "
                        f"(each a fine-tuning, its mask kept); give a rate that takes at most {MAX_IMP_ROUNDS} "
                        f"(the paper's 0.2 takes {math.ceil(imp_rounds(target, 0.2))})")
    levels, kept = [], 1.0
    while not levels or levels[-1] < target - 1e-12:
        kept *= 1.0 - rate
        levels.append(min(target, 1.0 - kept))
    return levels


def imp(ctx: RunContext) -> MethodResult:
    """Lottery tickets (Frankle & Carbin; Chen et al. 2020): train, prune 20%, rewind, repeat."""
    cfg = ctx.cfg["method"]
    levels = imp_levels(_target(ctx), float(cfg["rate"])) if _target(ctx) > 0 else [0.0]
    round_steps = int(cfg.get("round_steps") or max(1, ctx.budget.total_steps // len(levels)))
    names = ctx.encoder.maskable
    phases = [f"imp round {number}/{len(levels)}" for number in range(1, len(levels) + 1)]
    masks, earlier, extra, first_round = None, [], {}, 0
    resumed = ctx.checkpoints.pending
    if resumed is not None:  # rounds before the checkpoint's phase are done: take their results
        carry = resumed.state["carry"]
        first_round = phases.index(resumed.phase) if resumed.phase in phases else len(levels)
        masks, extra = on_device(ctx, carry.get("masks")), carry.get("extra", {})
        earlier = [(level, mask_format.pack_masks(kept)) for level, kept in carry["earlier"]]
    for number in range(first_round, len(levels)):
        params, head, _ = finetune(ctx, round_steps, masks=masks, phase=phases[number],
                                   carry=lambda: {"masks": masks, "earlier": earlier})
        masks = keep_top(magnitude_scores(params, names, masks), levels[number])
        earlier.append((levels[number], mask_format.pack_masks(masks)))  # at one bit per weight, on the host
        if number == len(levels) - 1:
            extra = {"rounds": len(levels), "round_steps": round_steps, **_finetuned_scores(ctx, params, head, masks)}
    head = retrain_head(ctx, masks, carry=lambda: {"masks": masks, "earlier": earlier, "extra": extra})
    return MethodResult(masks=masks, head=head, extra=extra, earlier_masks=earlier[:-1])


def transfer(ctx: RunContext) -> MethodResult:
    """Another run's mask (`method.mask_run`, checked against these base weights) with a fresh head
    trained on this task: does a sub-network found on one task read another? The source run's
    identity goes into method_details, so the run says where its mask came from. A mask file
    serves too: an imp round's ticket (its round is recorded as mask_imp_round)."""
    source = Path(str(ctx.cfg["method"]["mask_run"])).expanduser()
    loaded = mask_format.load_mask(rundir.require_mask_or_file(source, "method=transfer"), ctx.encoder.shapes,
                                   ctx.base_hash or base_weights_hash(ctx.encoder.encoder))
    masks = on_device(ctx, loaded.masks)
    extra = {"mask_run": str(source.resolve()), "mask_sparsity": mask_format.manifest_sparsity(loaded.manifest)}
    extra.update({f"mask_{key}": loaded.manifest[key] for key in ("task", "method", "seed", "tag", "imp_round")
                  if loaded.manifest.get(key) is not None})
    return MethodResult(masks=masks, head=retrain_head(ctx, masks), extra=extra)


def full_finetune(ctx: RunContext) -> MethodResult:
    """Dense reference: every weight and the head trained; scored on the fine-tuned weights."""
    params, head, _ = finetune(ctx, ctx.budget.total_steps, phase="finetune")
    return MethodResult(masks=None, head=head, weights=params)


def feature_extraction(ctx: RunContext) -> MethodResult:
    """Frozen encoder, head only: the lower reference line."""
    return MethodResult(masks=None, head=retrain_head(ctx, None))
