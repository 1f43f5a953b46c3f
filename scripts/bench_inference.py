"""Why is a masked forward sometimes a few ms slower than the dense one? Four forwards compared.

    python scripts/bench_inference.py --model minilm --batch-size 32 --seq-len 14 --processes 5

`bench_step.py`'s (d) times the masked model as scoring runs it: `MaskedEncoder.fixed` swaps
freshly allocated tensors w0 * m in for the parameters, so the masked forward runs the same
kernels on the same shapes as the dense one. Yet in some processes it is 2-5 ms slower (issue 5,
docs/performance.md). The same work can differ in two ways only, and this script separates them
by timing, in one process and in rotation (the order shifting every repeat, so that drift in the
machine's speed hits all alike):

    dense             the pretrained parameters, as loaded
    dense_copy        fresh copies of the same values, swapped in by `fixed`: new memory, same numbers
    masked            w0 * m swapped in by `fixed` (what scoring and bench_step's (d) run)
    masked_in_place   w0 * m written into the parameters' own memory: the dense memory, new numbers

If dense_copy is as slow as masked, the cost is where the tensors live, not what they hold; if
masked_in_place is as slow as masked, it is the numbers (e.g. denormal activations). Prints each
forward's median time and its speed relative to dense (dense time / its time; >= 0.98 is issue 5's
target for masked), per process and, with --processes N, the median, min and max over N fresh processes.
The mask is a random half of the maskable weights (s = 0.5), as keep_top of random scores.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import torch
from omegaconf import OmegaConf

from prune_cli.backbone import load_backbone
from prune_cli.config import compose
from prune_cli.errors import at_least, script_entry
from prune_cli.masking import MaskedEncoder, keep_top, select_maskable

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_step import MODEL_CHOICES, build_model, run_processes, single_process_argv  # noqa: E402  (bench_step's model choices and process runs)

VARIANTS = ("dense", "dense_copy", "masked", "masked_in_place")


@contextmanager
def written_in_place(encoder: MaskedEncoder, weights: dict[str, torch.Tensor]) -> Iterator[None]:
    """Copy `weights` into the parameters' own storage for the block, then copy the originals back."""
    params = encoder.base_weights()  # the parameters themselves, not copies
    saved = {name: params[name].detach().clone() for name in weights}
    try:
        with torch.no_grad():
            for name, tensor in weights.items():
                params[name].copy_(tensor)
        yield
    finally:
        with torch.no_grad():
            for name, tensor in saved.items():
                params[name].copy_(tensor)


def measure(args: argparse.Namespace) -> dict[str, float]:
    """Median forward time of each variant in this process."""
    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        cfg = OmegaConf.to_container(compose([f"model.name_or_path={build_model(args.model, Path(tmp))}"]), resolve=True)
        raw, _ = load_backbone(cfg["model"])
    encoder = MaskedEncoder(raw, select_maskable(raw, cfg["mask"]["include"], cfg["mask"]["exclude"]))
    generator = torch.Generator().manual_seed(0)
    batch = {
        "input_ids": torch.randint(5, raw.config.vocab_size, (args.batch_size, args.seq_len), generator=generator),
        "token_type_ids": torch.zeros(args.batch_size, args.seq_len, dtype=torch.long),
        "attention_mask": torch.ones(args.batch_size, args.seq_len, dtype=torch.long),
    }
    base = encoder.base_weights()
    scores = {name: torch.rand(base[name].shape, generator=generator) for name in encoder.maskable}
    with torch.no_grad():
        masked = encoder.masked_weights(keep_top(scores, 0.5))
        copies = {name: base[name].detach().clone() for name in encoder.maskable}

    def installed(variant: str):
        if variant == "dense_copy":
            return encoder.fixed(copies)
        if variant == "masked":
            return encoder.fixed(masked)
        if variant == "masked_in_place":
            return written_in_place(encoder, masked)
        return encoder.fixed(None)

    times: dict[str, list[float]] = {variant: [] for variant in VARIANTS}
    with torch.no_grad():
        for i in range(args.warmup + args.repeats):
            for variant in VARIANTS[i % len(VARIANTS):] + VARIANTS[: i % len(VARIANTS)]:
                with installed(variant):
                    start = time.perf_counter()
                    encoder(batch)
                    elapsed = time.perf_counter() - start
                if i >= args.warmup:
                    times[variant].append(elapsed)
    medians = {variant: statistics.median(values) for variant, values in times.items()}
    result = {f"{variant}_s": round(value, 6) for variant, value in medians.items()}
    result.update({f"{variant}_speed_vs_dense": round(medians["dense"] / medians[variant], 4) for variant in VARIANTS[1:]})
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=MODEL_CHOICES, default="minilm")
    parser.add_argument("--batch-size", type=at_least(1), default=32)
    parser.add_argument("--seq-len", type=at_least(1), default=14)
    parser.add_argument("--warmup", type=at_least(0), default=3)
    parser.add_argument("--repeats", type=at_least(1), default=30)
    parser.add_argument("--threads", type=at_least(0), default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--processes", type=at_least(1), default=1, help="run the measurement in N fresh processes")
    args = parser.parse_args()
    if args.processes <= 1:
        print(json.dumps(measure(args)))
        return
    run_processes(single_process_argv(args), args.processes, script=__file__,
                  keys=tuple(f"{variant}_speed_vs_dense" for variant in VARIANTS[1:]))


if __name__ == "__main__":
    script_entry(main)
