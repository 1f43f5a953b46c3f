"""The compiled theta loop gives the ATen path's results bit for bit, and steps aside cleanly."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from conftest import run_cli, tiny_overrides
from safetensors.torch import load_file

from prune_cli import native
from prune_cli.methods.adapt_by_pruning import push_and_track_aten

needs_compiler = pytest.mark.skipif(shutil.which("cc") is None, reason="no C compiler (cc) on this machine: the ATen path runs instead")


def awkward_thetas(seed: int, gamma: float) -> list[torch.Tensor]:
    """theta around zero at the scale of gamma, with exact +0.0, -0.0 and theta == gamma in it."""
    generator = torch.Generator().manual_seed(seed)
    shapes = [(7, 5), (64, 33), (1, 1), (129,)]
    thetas = [torch.randn(shape, generator=generator) * 20 * gamma for shape in shapes]
    flat = thetas[1].view(-1)
    flat[:4] = torch.tensor([0.0, -0.0, gamma, -gamma])
    return thetas


@needs_compiler
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("forbid", [False, True])
@pytest.mark.parametrize("gamma", [2e-7, 3.3e-6, 1e-3])
def test_native_loop_matches_aten_bit_for_bit(threads: int, forbid: bool, gamma: float):
    torch.set_num_threads(threads)
    ours = awkward_thetas(0, gamma)  # one tensor per weight; the ATen path takes them as one flat buffer
    reference = torch.cat([t.reshape(-1) for t in ours])
    ours_ever = [t <= 0 for t in ours]
    reference_ever = reference <= 0
    negative = torch.empty_like(reference_ever)
    assert native.available_for(ours, ours_ever)
    floor = -20.0 / 1e5
    for step in range(5):
        if step == 2:  # some pruned weights come back (recovery), unless forbidden
            for theta in [*ours, reference]:
                theta.abs_()
        counted = native.push_and_track(ours, ours_ever, gamma, forbid, floor)
        assert counted == push_and_track_aten(reference, reference_ever, negative, gamma, forbid, floor)
        flat_ours = torch.cat([t.reshape(-1) for t in ours])
        assert torch.equal(flat_ours.view(torch.int32), reference.view(torch.int32)), "theta differs in some bit"
        assert torch.equal(torch.cat([e.reshape(-1) for e in ours_ever]), reference_ever)


def test_native_steps_aside_where_it_cannot_run(monkeypatch: pytest.MonkeyPatch):
    theta = torch.zeros(4, 6)
    assert not native.available_for([theta.t()], [theta.t() <= 0]), "a non-contiguous theta takes the ATen path"
    assert not native.available_for([theta.double()], [theta <= 0]), "only float32 is compiled"
    native._library.cache_clear()
    monkeypatch.setenv("PRUNE_CLI_NATIVE", "0")
    try:
        assert not native.available_for([theta], [theta <= 0]), "PRUNE_CLI_NATIVE=0 switches it off"
    finally:
        native._library.cache_clear()


def test_missing_compiler_falls_back_quietly(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    native._library.cache_clear()
    monkeypatch.setenv("PRUNE_CLI_CACHE", str(tmp_path))
    monkeypatch.setenv("CC", "no-such-compiler-here")
    try:
        assert native._library() is None
    finally:
        native._library.cache_clear()


@needs_compiler
def test_library_is_built_once_into_the_cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    native._library.cache_clear()
    monkeypatch.setenv("PRUNE_CLI_CACHE", str(tmp_path))
    try:
        assert native._library() is not None
        built = list((tmp_path / "native").iterdir())
        assert len(built) == 1 and built[0].suffix == ".so", "one library, no leftovers from the build"
    finally:
        native._library.cache_clear()


@needs_compiler
def test_adapt_learns_the_same_mask_with_and_without_the_native_loop(in_tmp: Path, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch):
    args = ("adapt", "--task", "sst2", "--sparsity", "0.5", *tiny_overrides(tiny_model_dir, steps=8))
    masks, histories = [], []
    for setting in ("1", "0"):
        native._library.cache_clear()
        monkeypatch.setenv("PRUNE_CLI_NATIVE", setting)
        assert (native._library() is not None) == (setting == "1")
        out = in_tmp / f"native-{setting}"
        result = run_cli(*args, f"hydra.run.dir={out}")
        assert result.exit_code == 0, result.output
        masks.append(load_file(out / "mask.safetensors"))
        histories.append([{k: v for k, v in json.loads(line).items() if k in ("step", "loss", "sparsity", "gamma")}
                          for line in (out / "history.jsonl").read_text().splitlines()])
    native._library.cache_clear()
    assert masks[0].keys() == masks[1].keys()
    assert all(torch.equal(masks[0][k], masks[1][k]) for k in masks[0])
    assert histories[0] == histories[1] and len(histories[0]) >= 8, "same losses, sparsities and pushes step by step"
