"""scripts/bench_mask_forward.py: the shapes it times and its bit-identity check (issue 5)."""

from __future__ import annotations

import pytest
import torch

from conftest import load_script


@pytest.fixture(scope="module")
def bench():
    return load_script("bench_mask_forward")


def test_minilm_shapes_are_its_encoder_linear_weights(bench):
    shapes = bench.linear_shapes(6, 384, 1536)
    assert len(shapes) == 36
    assert sum(r * c for r, c in shapes) == 10_616_832  # MiniLM-L6's non-embedding maskable weights


METHOD = {"init": "normal", "init_mean": 0.01, "init_std": 0.03}


def test_half_pruned_theta_is_half_nonpositive(bench):
    base = torch.randn(40, 50)
    theta = bench.theta_like(base, METHOD, True, torch.Generator().manual_seed(0))
    assert int((theta <= 0).sum()) >= 1000
    assert int((bench.theta_like(base, METHOD, False, torch.Generator().manual_seed(0)) <= 0).sum()) < 1000
    magnitude = bench.theta_like(base, {**METHOD, "init": "magnitude"}, False, torch.Generator().manual_seed(0))
    along_magnitude = magnitude.flatten()[base.abs().flatten().argsort()]
    assert bool((magnitude > 0).all()) and bool((along_magnitude.diff() >= 0).all())  # the default init's order


def test_measure_times_both_kernels_and_finds_them_identical(bench):
    generator = torch.Generator().manual_seed(0)
    shapes = bench.linear_shapes(1, 8, 16)
    bases = [torch.randn(s, generator=generator) for s in shapes]
    thetas = [bench.theta_like(b, METHOD, True, generator) for b in bases]
    row = bench.measure(thetas, bases, repeats=3, warmup=1)
    assert row["bit_identical"] is True
    assert row["plain_ms"] > 0 and row["clamped_ms"] > 0
    assert row["plain_over_clamped"] == pytest.approx(row["plain_ms"] / row["clamped_ms"])


def test_measure_notices_a_kernel_that_differs(bench, monkeypatch):
    # a plain kernel with a smaller t_l computes another mask
    monkeypatch.setattr(bench, "plain_forward", lambda theta, base, out: torch.mul(theta, 10.0, out=out).sigmoid_().mul_(base))
    generator = torch.Generator().manual_seed(0)
    shapes = bench.linear_shapes(1, 8, 16)
    bases = [torch.ones(s) for s in shapes]
    thetas = [bench.theta_like(b, METHOD, False, generator) for b in bases]
    assert bench.measure(thetas, bases, repeats=1, warmup=0)["bit_identical"] is False
