"""How far reduced precision moves the mask's learning from fp32's, and what fp16's loss scale buys.

    python scripts/precision_check.py [--steps 3] [HYDRA_OVERRIDE ...]
    python scripts/precision_check.py task=sst2 data.dir=../shared/glue data.max_train_samples=512 trainer.device=cpu

Why: theta learns from very small gradients (Eq. 4's are 1e-8 to 1e-6 per weight on MiniLM),
and an unscaled fp16 backward pass rounds small numbers (under 6e-5, fp16's smallest normal
one) coarsely or to zero, so `trainer.precision=fp16` scales the loss (a GradScaler) and bf16,
which has fp32's range, does not. This runs the same adapt-by-pruning steps (same seed, batches, theta0
and head) in fp32, in bf16, and in fp16 with and without the loss scale, and prints how far each
one's change of theta is from fp32's: the relative error of the whole change, and the share of
theta's entries whose step differs by more than 1e-3 of the largest step. Run it on a new device
or model before trusting a reduced precision there: `trainer.device=cuda model=bert-base-uncased`.
The overrides are the ones `prune-cli adapt` takes (the config is composed the same way).
"""

from __future__ import annotations

import argparse
import json

import torch
from omegaconf import OmegaConf

from prune_cli.config import compose
from prune_cli.errors import at_least, script_entry
from prune_cli.methods.adapt_by_pruning import MaskLearner
from prune_cli.methods.loops import HeadTrainer
from prune_cli.runner import make_context, prepare
from prune_cli.training import Precision, plan_budget

# (trainer.precision, loss scale on): every reduced-precision variant, each read against fp32
VARIANTS = (("bf16", True), ("fp16", True), ("fp16", False))


def theta_change(overrides: list[str], precision: str, loss_scaling: bool = True, steps: int = 3) -> torch.Tensor:
    """theta after `steps` adapt-by-pruning steps minus theta0, all tensors flattened into one."""
    cfg = compose([*overrides, f"trainer.precision={precision}"])
    prepared = prepare(cfg, with_train=True)
    plain = OmegaConf.to_container(cfg, resolve=True)
    ctx = make_context(plain, prepared, plan_budget(plain["trainer"], len(prepared.train)))
    if not loss_scaling:  # the one variant the run's own Precision does not give
        ctx.precision = Precision(ctx.device, precision, loss_scaling=False)
    torch.manual_seed(ctx.seed)
    learner = MaskLearner(ctx, HeadTrainer(ctx, ctx.budget.total_steps))
    start = torch.cat([t.detach().flatten() for t in learner.state.theta]).cpu()
    batches = ctx.batches()
    for step in range(steps):
        learner.step(step, next(batches))
    return torch.cat([t.detach().flatten() for t in learner.state.theta]).cpu() - start


def distance(change: torch.Tensor, reference: torch.Tensor) -> dict[str, float]:
    """Relative error of the whole change, and the share of entries that moved differently."""
    gap = (change - reference).abs()
    return {
        "relative_error": float(gap.norm() / reference.norm()),
        "share_moved_differently": float((gap > 1e-3 * reference.abs().max()).float().mean()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=at_least(1), default=3, help="adapt-by-pruning steps per precision (default 3)")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides, as prune-cli adapt takes them")
    args = parser.parse_args()
    reference = theta_change(args.overrides, "fp32", steps=args.steps)
    results = {}
    for precision, scaled in VARIANTS:
        label = f"{precision}{'' if scaled or precision != 'fp16' else ' without loss scale'}"
        results[label] = distance(theta_change(args.overrides, precision, scaled, args.steps), reference)
        print(f"{label:<26} theta's change {results[label]['relative_error']:.2%} off fp32's; "
              f"{results[label]['share_moved_differently']:.1%} of its entries moved differently")
    print(json.dumps({"steps": args.steps, "overrides": args.overrides, "against_fp32": results}))


if __name__ == "__main__":
    script_entry(main)
