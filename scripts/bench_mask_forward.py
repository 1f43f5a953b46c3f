"""The forward mask w0 * sigma(t_l * theta): the clamped kernel adapt-by-pruning uses, against the
plain one, on the encoder Linear weights of a BERT shape (MiniLM-L6 by default).

    python scripts/bench_mask_forward.py --threads 2

Why: on a CPU, `sigmoid` runs about half as fast wherever exp(-x) lands among the subnormal
numbers, and t_l * theta (t_l = 1e5) spreads over thousands, so many entries hit that slow path.
`prune_cli.masking.ThetaMaskedWeight` clamps the argument to [SIGMOID_ZERO_AT, SIGMOID_ONE_AT],
where sigmoid is already exactly 0 or 1, so every mask stays bit-identical. This times both on
theta as `adapt` initialises it (`initial_theta` with the default method config) and half pruned
(that theta with half of its entries moved into [-3e-3, 0], as after the pruning ramp), checks
that the outputs are identical bit for bit, and prints the plain/clamped time ratio (> 1: the
clamp is faster). Ends with one JSON line. Each is the median of --repeats passes over all
tensors, both kernels in alternation.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch
from omegaconf import OmegaConf

from prune_cli.config import compose
from prune_cli.errors import at_least, script_entry
from prune_cli.masking import StepBuffers, theta_masked_weight
from prune_cli.methods.adapt_by_pruning import initial_theta

T_LARGE = 1e5


def linear_shapes(layers: int, hidden: int, intermediate: int) -> list[tuple[int, int]]:
    """The encoder Linear weights of a BERT: query, key, value, attention output, FFN in and out."""
    return [(hidden, hidden)] * 4 * layers + [(intermediate, hidden), (hidden, intermediate)] * layers


def theta_like(base: torch.Tensor, method_cfg: dict, pruned_half: bool, generator: torch.Generator) -> torch.Tensor:
    """theta_0 for `base` as adapt-by-pruning draws it; with pruned_half, half of it moved below 0."""
    theta = initial_theta(base, method_cfg, generator)
    if pruned_half:
        flat = theta.view(-1)
        half = flat.numel() // 2
        flat[:half] = torch.rand(half, generator=generator).mul_(-3e-3)
    return theta


def plain_forward(theta: torch.Tensor, base: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """The same passes as ThetaMaskedWeight.forward, without the clamp."""
    return torch.mul(theta, T_LARGE, out=out).sigmoid_().mul_(base)


def clamped_forward(theta: torch.Tensor, base: torch.Tensor, buffers: StepBuffers) -> torch.Tensor:
    return theta_masked_weight(base, theta, T_LARGE, 1.0, buffers)


def measure(thetas: list[torch.Tensor], bases: list[torch.Tensor], repeats: int, warmup: int) -> dict[str, float | bool]:
    buffers = [StepBuffers.like(t, b) for t, b in zip(thetas, bases)]
    plain_out = [torch.empty_like(b) for b in bases]
    kernels = {
        "plain": lambda: [plain_forward(t, b, o) for t, b, o in zip(thetas, bases, plain_out)],
        "clamped": lambda: [clamped_forward(t, b, s) for t, b, s in zip(thetas, bases, buffers)],
    }
    times: dict[str, list[float]] = {name: [] for name in kernels}
    for i in range(warmup + repeats):
        for name, kernel in (kernels.items() if i % 2 == 0 else reversed(kernels.items())):
            start = time.perf_counter()
            kernel()
            if i >= warmup:
                times[name].append(time.perf_counter() - start)
    identical = all(torch.equal(s.weight.view(torch.int32), o.view(torch.int32)) for s, o in zip(buffers, plain_out))
    plain, clamped = statistics.median(times["plain"]), statistics.median(times["clamped"])
    return {"plain_ms": plain * 1e3, "clamped_ms": clamped * 1e3, "plain_over_clamped": plain / clamped, "bit_identical": identical}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--layers", type=at_least(1), default=6)
    parser.add_argument("--hidden", type=at_least(1), default=384)
    parser.add_argument("--intermediate", type=at_least(1), default=1536)
    parser.add_argument("--repeats", type=at_least(1), default=21)
    parser.add_argument("--warmup", type=at_least(0), default=3)
    parser.add_argument("--threads", type=at_least(0), default=0, help="torch threads (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    shapes = linear_shapes(args.layers, args.hidden, args.intermediate)
    generator = torch.Generator().manual_seed(0)
    bases = [torch.randn(s, generator=generator).mul_(0.05) for s in shapes]
    result: dict[str, object] = {"numel": sum(b.numel() for b in bases), "threads": torch.get_num_threads()}
    print(f"{result['numel']:,} theta in {len(shapes)} tensors, {result['threads']} threads")
    method_cfg = OmegaConf.to_container(compose([]).method, resolve=True)
    for label, pruned_half in (("init", False), ("half_pruned", True)):
        thetas = [theta_like(b, method_cfg, pruned_half, generator) for b in bases]
        row = measure(thetas, bases, args.repeats, args.warmup)
        result[label] = row
        print(f"  theta {label:12s} plain {row['plain_ms']:6.1f} ms  clamped {row['clamped_ms']:6.1f} ms  "
              f"plain/clamped {row['plain_over_clamped']:.2f}  bit-identical {row['bit_identical']}")
    print(json.dumps(result))


if __name__ == "__main__":
    script_entry(main)
