"""Time one training step of each kind on the same model, batch and sequence length.

    python scripts/bench_step.py --model minilm --batch-size 32 --seq-len 16

(a) dense fine-tuning step      (prune_cli.methods.loops.WeightTrainer, AdamW on all weights)
(b) adapt-by-pruning step       (prune_cli.methods.adapt_by_pruning.MaskLearner, the real code)
(c) naive reference             (the paper code's approach: deep-copy the model and rebuild the
                                 masked weights as plain tensors every step)
(d) inference, masked vs dense  (mask applied once through the shared masking mechanism; the two
                                 are timed in alternation, 3x --repeats each)
(e) one resume checkpoint       (a pruning step's full state saved as `adapt` saves it: e_checkpoint_s is
                                 what the training thread pays, copying it to host buffers;
                                 e_checkpoint_write_s the serialising and fsync'd write that then run
                                 beside training; e_checkpoint_in_all_s what one save costs the
                                 pruning steps run beside that write, blocking half included)
(b') with --aten-too            (b) again, with the theta push and bookkeeping done by ATen ops
                                 instead of the compiled loop (prune_cli.native), in the same round
                                 robin: what that loop saves, measured against its own baseline

All in one process, after warm-up, median of --repeats. The kinds take turns, and each turn runs
one untimed step before the timed one: a training run repeats one kind of step, while the first
step after another kind pays for that kind's memory churn (on a CPU, freed blocks go back to the
OS and are page-faulted in again), which is not the cost of either step. Prints each time, peak
memory (CUDA allocator peak on a GPU; on a CPU the process's peak RSS, reset before each
measurement via /proc/self/clear_refs) and the ratios b/a, c/b and dense/masked inference time,
as text and one JSON line. With --processes N the whole measurement runs in N fresh processes
one after the other, and the median, min and max of each ratio over them is printed too: on a
shared CPU the ratio moves more between processes than between repeats within one (memory
placement), so one process's figure is not reproducible on its own. Models: tiny (2x32), minilm
(the packaged all-MiniLM-L6-v2), minilm-shape (its dimensions, random weights: the same timing
where the package is not installed, e.g. on a GPU machine) or bert-base-shape (BERT-base
dimensions, random weights: no download needed). --precision bf16 or fp16 runs every kind under that autocast, as
`trainer.precision` runs a training run ((a) and (b) through the run's own code, fp16 with its
loss scale); fp32 by default. On a GPU, bf16 is what `trainer=gpu` trains in.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Iterator

import torch
from omegaconf import OmegaConf

from prune_cli import native
from prune_cli.backbone import BERT_BASE_SHAPE, PACKAGED_MINILM, load_backbone
from prune_cli.checkpointing import Checkpointer
from prune_cli.config import compose
from prune_cli.errors import at_least, script_entry
from prune_cli.masking import MaskedEncoder, keep_top, select_maskable
from prune_cli.methods.adapt_by_pruning import MaskLearner
from prune_cli.methods.loops import HeadTrainer, WeightTrainer
from prune_cli.training import PRECISIONS, Budget, RunContext, autocast, loss_fn, pick_device

SHAPES = {
    "tiny": dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=48),
    "minilm-shape": dict(hidden_size=384, num_hidden_layers=6, num_attention_heads=12, intermediate_size=1536),
    "bert-base-shape": BERT_BASE_SHAPE,
}
MODEL_CHOICES = ("tiny", "minilm", *(name for name in SHAPES if name != "tiny"))


def build_model(name: str, folder: Path, tokenizer: str | None = None) -> str:
    """Return a name_or_path for load_backbone; random-weight shapes are saved to `folder`.

    Step timings need only token ids, so by default the vocabulary is made up (30522 entries, as
    BERT's); `tokenizer` (a folder or hub name) gives the model that tokenizer instead, for an
    end-to-end run on real text (scripts/shaped_model.py).
    """
    if name == "minilm":
        return PACKAGED_MINILM
    from transformers import AutoTokenizer, BertConfig, BertModel, BertTokenizerFast

    if tokenizer is None:
        vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [f"w{i}" for i in range(30517)]
        (folder / "vocab.txt").write_text("\n".join(vocab) + "\n")
        tokens = BertTokenizerFast(vocab=str(folder / "vocab.txt"))
    else:
        tokens = AutoTokenizer.from_pretrained(tokenizer)
    tokens.save_pretrained(folder)
    torch.manual_seed(0)
    BertModel(BertConfig(vocab_size=len(tokens), **SHAPES[name])).save_pretrained(folder)
    return str(folder)


def peak_reset(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    else:
        try:
            Path("/proc/self/clear_refs").write_text("5")
        except OSError:
            pass


def peak_mib(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def timed(fn: Callable[[], object], device: torch.device, warmup: int, repeats: int) -> tuple[float, float]:
    for _ in range(warmup):
        fn()
    peak_reset(device)
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times), peak_mib(device)


def checkpoint_costs(checkpoints: Checkpointer, snapshot: Callable[[], dict], repeats: int) -> tuple[float, float]:
    """Median seconds of (e) over `repeats` saves after one untimed: what `save` blocks the training
    thread for, and how long its background write then takes. Each save starts once the previous
    write has landed, as at `adapt`'s cadence (hundreds of steps apart), so neither includes the other."""
    blocking, writing = [], []
    for _ in range(1 + repeats):
        checkpoints.wait()
        start = time.perf_counter()
        checkpoints.save("prune", 1, snapshot())
        saved = time.perf_counter()
        checkpoints.wait()
        blocking.append(saved - start)
        writing.append(time.perf_counter() - saved)
    return statistics.median(blocking[1:]), statistics.median(writing[1:])


def checkpoint_cost_in_all(checkpoints: Checkpointer, snapshot: Callable[[], dict], step: Callable[[], object],
                           device: torch.device, steps: int, repeats: int) -> float:
    """What one save costs training in all: `steps` training steps with a save before them (and
    its write waited for after them, as the next save would) minus the same steps without, median
    of `repeats` such pairs taken in turn. Beside the blocking half it counts what the background
    write takes from the steps running beside it (cores, and the GIL for any Python it runs)."""
    def run(save: bool) -> float:
        checkpoints.wait()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        if save:
            checkpoints.save("prune", 1, snapshot())
        for _ in range(steps):
            step()
        checkpoints.wait()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return time.perf_counter() - start

    run(True)
    differences = [run(True) - run(False) for _ in range(repeats)]
    return statistics.median(differences)


def timed_round_robin(steps: dict[str, Callable[[], object]], device: torch.device, warmup: int, repeats: int,
                      settle: int = 1) -> dict[str, float]:
    """Median time of each step kind, measured one step of each in turn (order rotating), each
    timed step preceded by `settle` untimed steps of the same kind (see the module docstring)."""
    names = list(steps)
    times: dict[str, list[float]] = {name: [] for name in names}
    for i in range(warmup + repeats):
        for name in names[i % len(names):] + names[: i % len(names)]:
            for _ in range(settle):
                steps[name]()
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            start = time.perf_counter()
            steps[name]()
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            if i >= warmup:
                times[name].append(time.perf_counter() - start)
    return {f"{name}_s": statistics.median(values) for name, values in times.items()}


def timed_alternating(encoder: MaskedEncoder, batch, masked: dict, device: torch.device, warmup: int, repeats: int,
                      precision: str = "fp32") -> tuple[float, float]:
    """Median dense and masked forward times, measured in alternation (ABBA...), so that drift in
    the machine's speed (other load, clocks) hits both alike: the two run the same matmuls."""
    times: dict[bool, list[float]] = {False: [], True: []}
    for i in range(warmup + repeats):
        for use_mask in ((False, True) if i % 2 == 0 else (True, False)):
            with encoder.fixed(masked if use_mask else None), autocast(device, precision):
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                start = time.perf_counter()
                encoder(batch)
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                if i >= warmup:
                    times[use_mask].append(time.perf_counter() - start)
    return statistics.median(times[False]), statistics.median(times[True])


RATIOS = ("adapt_over_finetune", "naive_over_adapt", "masked_inference_speed_vs_dense", "native_over_aten")


def summarize(runs: list[dict[str, float]], keys: tuple[str, ...] = RATIOS) -> dict[str, dict[str, float]]:
    """Median, min and max of each ratio over the processes (NaN-free ones only, e.g. no --skip-naive)."""
    summary = {}
    for key in keys:
        values = [run[key] for run in runs if key in run and not math.isnan(run[key])]
        if values:
            summary[key] = {"median": statistics.median(values), "min": min(values), "max": max(values), "n": len(values)}
    return summary


def single_process_argv(args: argparse.Namespace) -> list[str]:
    """The command line of one measuring process: the same options, without --processes."""
    argv = []
    for key, value in vars(args).items():
        option = "--" + key.replace("_", "-")
        if key == "processes" or value is False:
            continue
        argv += [option] if value is True else [option, str(value)]
    return argv


def run_processes(argv: list[str], processes: int, script: str = __file__, keys: tuple[str, ...] = RATIOS) -> None:
    """Re-run `script` (this one unless another benchmark passes itself) `processes` times in fresh
    processes, each printing its figures as a last JSON line; print each one's `keys` and the summary."""
    runs = []
    for index in range(processes):
        out = subprocess.run([sys.executable, script, *argv], check=True, capture_output=True, text=True).stdout
        runs.append(json.loads(out.strip().splitlines()[-1]))
        print(f"process {index + 1}/{processes}: " + "  ".join(f"{key}={runs[-1][key]:.3f}" for key in keys), flush=True)
    summary = summarize(runs, keys)
    for key, stats in summary.items():
        print(f"  {key:32s} median {stats['median']:.3f}  (min {stats['min']:.3f}, max {stats['max']:.3f}, {stats['n']} processes)")
    print(json.dumps({"processes": runs, "summary": summary}))


@contextlib.contextmanager
def aten_bookkeeping() -> Iterator[None]:
    """Learners built inside take the ATen path for the theta push and bookkeeping."""
    saved = os.environ.get("PRUNE_CLI_NATIVE")
    os.environ["PRUNE_CLI_NATIVE"] = "0"
    native._library.cache_clear()
    try:
        yield
    finally:
        if saved is None:
            del os.environ["PRUNE_CLI_NATIVE"]
        else:
            os.environ["PRUNE_CLI_NATIVE"] = saved
        native._library.cache_clear()


def naive_step(encoder: MaskedEncoder, theta: dict, head, optimizer, batch, criterion, t_large: float, precision: str = "fp32") -> None:
    """The paper code's approach: a fresh deep copy of the model, masked weights rebuilt, per step
    (its forward pass under the same autocast as ours; being a timing reference, no loss scale)."""
    model = copy.deepcopy(encoder.encoder)
    masks = {n: torch.sigmoid(t * t_large).detach().requires_grad_(True) for n, t in theta.items()}
    for name, mask in masks.items():
        module_name, _, attr = name.rpartition(".")
        module = model.get_submodule(module_name)
        weight = getattr(module, attr).detach()
        delattr(module, attr)
        setattr(module, attr, weight * mask)
    inputs = {k: v for k, v in batch.items() if k != "labels"}
    with autocast(batch["labels"].device, precision):
        loss = criterion(head(model(**inputs, output_hidden_states=True).hidden_states), batch["labels"])
    loss.backward()
    with torch.no_grad():
        for name, t in theta.items():
            soft = torch.sigmoid(t)
            t.grad = masks[name].grad * soft * (1 - soft)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", choices=MODEL_CHOICES, default="minilm")
    parser.add_argument("--batch-size", type=at_least(1), default=32)
    parser.add_argument("--seq-len", type=at_least(1), default=16, help="tokens per row (SST-2 training batches as adapt pads them: mean 13.9, see scripts/batch_lengths.py)")
    parser.add_argument("--repeats", type=at_least(1), default=10)
    parser.add_argument("--warmup", type=at_least(0), default=3)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", choices=sorted(PRECISIONS), default="fp32", help="trainer.precision of every kind (default fp32)")
    parser.add_argument("--skip-naive", action="store_true", help="skip (c), e.g. for bert-base-shape on a small machine")
    parser.add_argument("--processes", type=at_least(1), default=1, help="repeat the whole measurement in this many fresh processes and summarise the ratios")
    parser.add_argument("--checkpoint-steps", type=at_least(0), default=0, metavar="STEPS",
                        help="pruning steps (e)'s in-all cost runs beside a checkpoint's write (0: enough to outlast it, 1.5x its measured time)")
    parser.add_argument("--threads", type=at_least(0), default=0, help="torch intra-op threads (0: torch's default, one per core)")
    parser.add_argument("--aten-too", action="store_true",
                        help="also time (b) with the theta bookkeeping in ATen ops (PRUNE_CLI_NATIVE=0), in the same round robin")
    parser.add_argument("--profile", type=at_least(0), default=0, metavar="STEPS",
                        help="instead of timing, profile this many steps of (a) and (b) after warm-up and print each one's "
                             "costliest ops (torch.profiler, self CPU time per step): where b's extra time goes")
    return parser


def profile_steps(steps: dict[str, Callable[[], object]], device: torch.device, warmup: int, count: int, rows: int = 20) -> None:
    """Self time per step of each op, costliest first, for each step kind, after its wall time
    without the profiler: what the ops do not account for is Python and framework overhead."""
    from torch.profiler import ProfilerActivity, profile

    for kind, step in steps.items():
        wall_s, _ = timed(step, device, warmup, count)
        print(f"== {kind}: {wall_s * 1e3:.1f} ms wall per step (median of {count}, not profiled)")
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(count):
                step()
        events = sorted(prof.key_averages(), key=lambda event: event.self_cpu_time_total, reverse=True)
        total_ms = sum(event.self_cpu_time_total for event in events) / 1e3 / count
        print(f"   {total_ms:.1f} ms of it in ops (self CPU time per step over {count} profiled steps):")
        for event in events[:rows]:
            print(f"  {event.self_cpu_time_total / 1e3 / count:8.2f} ms  {event.count // count:5d} calls  {event.key}")


def main() -> None:
    args = build_parser().parse_args()
    if args.processes > 1:
        run_processes(single_process_argv(args), args.processes)
        return
    if args.threads:
        torch.set_num_threads(args.threads)

    device = pick_device(args.device)
    with tempfile.TemporaryDirectory() as tmp:
        name_or_path = build_model(args.model, Path(tmp))
        settings = [f"model.name_or_path={name_or_path}", f"trainer.batch_size={args.batch_size}", f"trainer.precision={args.precision}"]
        composed = compose(settings)
        cfg = OmegaConf.to_container(composed, resolve=True)
        # every kind's method config is composed here, with this model: the folder is gone below
        finetune_method = compose([*settings, "method=finetune"]).method
        ours_method = OmegaConf.to_container(composed.method)
        raw, _ = load_backbone(cfg["model"])
    encoder = MaskedEncoder(raw.to(device), select_maskable(raw, cfg["mask"]["include"], cfg["mask"]["exclude"]))
    generator = torch.Generator().manual_seed(0)
    vocab = raw.config.vocab_size
    batch = {
        "input_ids": torch.randint(5, vocab, (args.batch_size, args.seq_len), generator=generator),
        "token_type_ids": torch.zeros(args.batch_size, args.seq_len, dtype=torch.long),
        "attention_mask": torch.ones(args.batch_size, args.seq_len, dtype=torch.long),
        "labels": torch.randint(0, 2, (args.batch_size,), generator=generator),
    }
    batch = {k: v.to(device) for k, v in batch.items()}

    def context(method: dict) -> RunContext:
        plain = {**cfg, "method": method}
        return RunContext(cfg=plain, task=plain["task"], encoder=encoder, train=None, dev={}, device=device,
                          budget=Budget(total_steps=10_000, steps_per_epoch=10_000), seed=0, num_outputs=2, regression=False)

    results: dict[str, float] = {}
    kinds = ["a_finetune", "b_adapt"] + ([] if args.skip_naive else ["c_naive"]) + (["b_adapt_aten"] if args.aten_too else [])

    def build(kind: str) -> tuple[Callable[[], object], MaskLearner | None]:
        """One step function of the given kind, with its own trainer and optimiser state."""
        if kind == "a_finetune":
            finetune = WeightTrainer(context(finetune_method), steps=10_000)
            return (lambda: finetune.step(batch, None)), None
        ours_ctx = context(ours_method)
        learner = MaskLearner(ours_ctx, HeadTrainer(ours_ctx, 10_000))
        if kind == "b_adapt":
            counter = iter(range(10**9))
            return (lambda: learner.step(next(counter), batch)), learner
        if kind == "b_adapt_aten":
            with aten_bookkeeping():
                aten_learner = MaskLearner(ours_ctx, HeadTrainer(ours_ctx, 10_000))
            aten_counter = iter(range(10**9))
            return (lambda: aten_learner.step(next(aten_counter), batch)), aten_learner
        theta = {n: t for n, t in zip(learner.state.names, learner.state.theta)}
        naive_opt = torch.optim.Adam(list(theta.values()), lr=2e-4)
        return (lambda: naive_step(encoder, theta, learner.heads.head, naive_opt, batch, loss_fn(False), 1e5, args.precision)), learner

    # Peak memory of each kind on its own, then the times in round robin: one step of each kind
    # in turn, the order rotating, so that drift in the machine's speed (other load, clocks) hits
    # every kind alike.
    for kind in kinds:
        step, _ = build(kind)
        results[f"{'b_aten' if kind == 'b_adapt_aten' else kind[0]}_peak_mib"] = timed(step, device, 1, 2)[1]
        del step, _
    if args.profile:
        steps = {kind: build(kind)[0] for kind in ("a_finetune", "b_adapt")}
        profile_steps(steps, device, args.warmup, args.profile)
        return
    built = {kind: build(kind) for kind in kinds}
    results.update(timed_round_robin({kind: step for kind, (step, _) in built.items()}, device, args.warmup, args.repeats))
    learner = built["b_adapt"][1]
    assert learner is not None

    # (e) one resume checkpoint of a pruning step's full state (theta, Adam moments, head), as `adapt` writes it
    with tempfile.TemporaryDirectory() as folder:
        checkpoints = Checkpointer(Path(folder), 1, {}, [])

        def snapshot() -> dict:
            return {"learner": learner.state_dict(), "heads": learner.heads.state_dict(), "batches_served": 0}

        results["e_checkpoint_s"], results["e_checkpoint_write_s"] = checkpoint_costs(checkpoints, snapshot, repeats=3)
        results["e_checkpoint_mib"] = (Path(folder) / "checkpoint" / "state.pt").stat().st_size / 2**20
        steps = args.checkpoint_steps or max(3, math.ceil(1.5 * results["e_checkpoint_write_s"] / results["b_adapt_s"]))
        results["e_checkpoint_in_all_s"] = checkpoint_cost_in_all(checkpoints, snapshot, built["b_adapt"][0], device, steps, repeats=3)
        results["e_checkpoint_in_all_steps"] = steps
    masks = keep_top(learner.state.by_name(), 0.5)
    del built, learner

    with torch.no_grad():
        masked = encoder.masked_weights(masks)
        results["d_dense_s"], results["d_masked_s"] = timed_alternating(encoder, batch, masked, device, args.warmup, 3 * args.repeats,
                                                                        args.precision)
        with autocast(device, args.precision):
            results["d_dense_peak_mib"] = timed(lambda: encoder(batch), device, 1, 1)[1]
        with encoder.fixed(masked), autocast(device, args.precision):  # how scoring runs a masked model
            results["d_masked_peak_mib"] = timed(lambda: encoder(batch), device, 1, 1)[1]

    ratios = {
        "adapt_over_finetune": results["b_adapt_s"] / results["a_finetune_s"],
        "naive_over_adapt": results.get("c_naive_s", float("nan")) / results["b_adapt_s"],
        "masked_inference_speed_vs_dense": results["d_dense_s"] / results["d_masked_s"],
        "native_over_aten": results["b_adapt_s"] / results.get("b_adapt_aten_s", float("nan")),
    }
    print(f"model={args.model} device={device} precision={args.precision} batch={args.batch_size} seq_len={args.seq_len} "
          f"threads={torch.get_num_threads()}")
    for key, value in results.items():
        print(f"  {key:22s} {value:10.4f}")
    print(f"  b/a  adapt-by-pruning step / dense fine-tuning step = {ratios['adapt_over_finetune']:.3f}  (target <= 1.10)")
    print(f"  c/b  naive reference step / adapt-by-pruning step  = {ratios['naive_over_adapt']:.3f}  (target >= 2)")
    print(f"  d    masked inference speed / dense inference speed = {ratios['masked_inference_speed_vs_dense']:.3f}  (target >= 0.98)")
    if args.aten_too:
        print(f"  b/b' adapt step / the same with ATen bookkeeping    = {ratios['native_over_aten']:.3f}")
    print(json.dumps({"model": args.model, "device": str(device), "precision": args.precision, "batch_size": args.batch_size, "seq_len": args.seq_len,
                      "threads": torch.get_num_threads(), **{k: round(v, 5) for k, v in {**results, **ratios}.items()}}))
    sys.stdout.flush()


if __name__ == "__main__":
    script_entry(main)
