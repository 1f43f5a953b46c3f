"""One compiled CPU loop for the pass adapt-by-pruning makes over theta after every step.

Why: after each optimiser step, Alg. 1 pushes every theta down by gamma (Eq. 7), records which
ones have ever been pruned (for the recovery analysis and the `no_recovery` ablation) and counts
the share of theta <= 0 (the stop test). With ATen that is four passes over all of theta per step
(add, compare, or, count: ~24 ms on MiniLM's 22.5M theta on the 2-core CPU; the compare into bool
alone takes ~12 ms, since ATen does not vectorise it). One C loop does it in ~7 ms, with the same
result to the last bit: it is the same float subtraction and the same comparisons, in one pass.

The loop is compiled once per machine with the system C compiler (`cc`, or `$CC`) into a cache
(`$PRUNE_CLI_CACHE`, else `$XDG_CACHE_HOME/prune-cli`, else `~/.cache/prune-cli`) and loaded with
ctypes, so the package stays pure Python and pip never needs a torch build environment. It runs
on `torch.get_num_threads()` Python threads, each on its share of theta (ctypes releases the GIL),
rather than with OpenMP: a second OpenMP runtime beside torch's would spin and steal its cores.
Where the loop cannot be used (no compiler, a GPU tensor, not contiguous float32, or
`PRUNE_CLI_NATIVE=0`), `available_for` says so and the caller takes its ATen path.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import logging
import os
import platform
import shutil
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Sequence

import torch

log = logging.getLogger(__name__)

SOURCE = r"""
#include <stdint.h>

/* theta -= gamma; ever |= (theta <= 0); returns how many theta <= 0.
   With forbid: a theta that was ever pruned is also held at or below `floor` (clamp(max=floor)),
   and the count is taken after that, as the ATen path does. */
int64_t prune_cli_push_track(float *theta, uint8_t *ever, int64_t n, float gamma, int forbid, float floor) {
    int64_t count = 0;
    if (!forbid) {
        for (int64_t i = 0; i < n; i++) {
            float t = theta[i] - gamma;
            uint8_t negative = t <= 0.0f;
            theta[i] = t;
            ever[i] |= negative;
            count += negative;
        }
        return count;
    }
    for (int64_t i = 0; i < n; i++) {
        float t = theta[i] - gamma;
        uint8_t was = ever[i] | (uint8_t)(t <= 0.0f);
        ever[i] = was;
        if (was && t > floor) t = floor;
        theta[i] = t;
        count += t <= 0.0f;
    }
    return count;
}
"""
# No fast-math and no contraction: the loop must round exactly as ATen's ops do.
CFLAGS = ["-O3", "-fPIC", "-shared", "-ffp-contract=off", "-fno-fast-math"]


def cache_dir() -> Path:
    explicit = os.environ.get("PRUNE_CLI_CACHE")
    if explicit:
        return Path(explicit)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "prune-cli"


def _compile(compiler: str) -> Path:
    """The shared library for this source, flags and machine, built once (atomically) per cache."""
    key = hashlib.sha256("\0".join([SOURCE, *CFLAGS, compiler, platform.machine()]).encode()).hexdigest()[:16]
    folder = cache_dir() / "native"
    library = folder / f"push_track-{key}.so"
    if library.exists():
        return library
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder) as tmp:
        source, built = Path(tmp) / "push_track.c", Path(tmp) / "push_track.so"
        source.write_text(SOURCE)
        subprocess.run([compiler, *CFLAGS, str(source), "-o", str(built)], check=True, capture_output=True, timeout=120)
        os.replace(built, library)  # a concurrent build writes the same bytes; either wins
    return library


@functools.cache
def _library() -> ctypes.CDLL | None:
    """The compiled loop, or None (logged once) where it cannot be had on this machine."""
    if os.environ.get("PRUNE_CLI_NATIVE", "1") == "0":
        return None
    compiler = shutil.which(os.environ.get("CC", "cc"))
    if compiler is None:
        log.info("no C compiler found; theta bookkeeping uses ATen ops (slower on a CPU, same results)")
        return None
    try:
        library = ctypes.CDLL(str(_compile(compiler)))
    except (OSError, subprocess.SubprocessError) as error:
        log.info("could not build the native theta loop (%s); using ATen ops (same results)", error)
        return None
    library.prune_cli_push_track.restype = ctypes.c_int64
    library.prune_cli_push_track.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64, ctypes.c_float,
                                             ctypes.c_int, ctypes.c_float]
    return library


@functools.cache
def _pool(lanes: int, pid: int) -> ThreadPoolExecutor:
    """Worker threads, per process: a forked child must not reuse its parent's (dead) threads."""
    return ThreadPoolExecutor(max_workers=lanes, thread_name_prefix="prune-cli-native")


def available_for(thetas: Sequence[torch.Tensor], evers: Sequence[torch.Tensor]) -> bool:
    """Whether `push_and_track` can run on these tensors (else use the ATen path)."""
    return all(
        t.device.type == "cpu" and t.dtype == torch.float32 and t.is_contiguous()
        and e.device.type == "cpu" and e.dtype == torch.bool and e.is_contiguous() and e.shape == t.shape
        for t, e in zip(thetas, evers)
    ) and _library() is not None


def push_and_track(thetas: Sequence[torch.Tensor], evers: Sequence[torch.Tensor], gamma: float,
                   forbid_recovery: bool, floor: float) -> int:
    """In place: theta -= gamma; ever |= theta <= 0 (with forbid_recovery, ever-pruned theta
    clamped to <= floor); returns the number of theta <= 0. Call only where `available_for`."""
    library = _library()
    assert library is not None
    lanes = max(1, torch.get_num_threads())
    jobs = []  # (theta address, ever address, length): every tensor cut into `lanes` slices
    for theta, ever in zip(thetas, evers):
        n = theta.numel()
        for lane in range(lanes):
            start, stop = n * lane // lanes, n * (lane + 1) // lanes
            if stop > start:
                jobs.append((theta.data_ptr() + 4 * start, ever.data_ptr() + start, stop - start))

    def run(share: list[tuple[int, int, int]]) -> int:
        return sum(library.prune_cli_push_track(t, e, n, gamma, int(forbid_recovery), floor) for t, e, n in share)

    count = run(jobs) if lanes == 1 else sum(_pool(lanes, os.getpid()).map(run, [jobs[i::lanes] for i in range(lanes)]))
    bump = getattr(torch.autograd.graph, "increment_version", None)  # torch >= 2.4
    if bump is not None:
        bump(list(thetas))  # written behind autograd's back: say so
    return count
