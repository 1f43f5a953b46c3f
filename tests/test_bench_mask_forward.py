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


def test_half_pruned_theta_is_half_nonpositive(bench):
    theta = bench.theta_like((40, 50), True, torch.Generator().manual_seed(0))
    assert int((theta <= 0).sum()) >= 1000
    assert int((bench.theta_like((40, 50), False, torch.Generator().manual_seed(0)) <= 0).sum()) < 1000


def test_measure_times_both_kernels_and_finds_them_identical(bench):
    generator = torch.Generator().manual_seed(0)
    shapes = bench.linear_shapes(1, 8, 16)
    thetas = [bench.theta_like(s, True, generator) for s in shapes]
    bases = [torch.randn(s, generator=generator) for s in shapes]
    row = bench.measure(thetas, bases, repeats=3, warmup=1)
    assert row["bit_identical"] is True
    assert row["plain_ms"] > 0 and row["clamped_ms"] > 0
    assert row["plain_over_clamped"] == pytest.approx(row["plain_ms"] / row["clamped_ms"])


def test_measure_notices_a_kernel_that_differs(bench, monkeypatch):
    # a plain kernel with a smaller t_l computes another mask
    monkeypatch.setattr(bench, "plain_forward", lambda theta, base, out: torch.mul(theta, 10.0, out=out).sigmoid_().mul_(base))
    generator = torch.Generator().manual_seed(0)
    shapes = bench.linear_shapes(1, 8, 16)
    thetas = [bench.theta_like(s, False, generator) for s in shapes]
    bases = [torch.ones(s) for s in shapes]
    assert bench.measure(thetas, bases, repeats=1, warmup=0)["bit_identical"] is False
