"""scripts/bench_inference.py: the four forwards it compares must be the ones its docstring names (issue 5)."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
import torch
from conftest import load_script

from prune_cli.backbone import load_backbone
from prune_cli.config import compose
from prune_cli.masking import MaskedEncoder, keep_top, select_maskable


@pytest.fixture(scope="module")
def bench():
    return load_script("bench_inference")


def tiny_encoder(tiny_model_dir: Path) -> MaskedEncoder:
    raw, _ = load_backbone({"name_or_path": str(tiny_model_dir)})
    mask_cfg = compose([]).mask
    return MaskedEncoder(raw, select_maskable(raw, list(mask_cfg.include), list(mask_cfg.exclude)))


def test_written_in_place_uses_the_parameters_own_memory_and_puts_the_originals_back(bench, tiny_model_dir: Path):
    encoder = tiny_encoder(tiny_model_dir)
    params = dict(encoder.encoder.named_parameters())
    before = {name: (params[name].data_ptr(), params[name].detach().clone()) for name in encoder.maskable}
    masked = encoder.masked_weights(keep_top({n: torch.rand(params[n].shape) for n in encoder.maskable}, 0.5))
    with bench.written_in_place(encoder, masked):
        for name in encoder.maskable:
            assert params[name].data_ptr() == before[name][0]  # the dense memory ...
            assert torch.equal(params[name], masked[name])  # ... holding the masked numbers
    for name in encoder.maskable:
        assert params[name].data_ptr() == before[name][0]
        assert torch.equal(params[name], before[name][1])  # bit for bit


def test_measure_times_each_forward_against_dense(bench, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = argparse.Namespace(model="tiny", batch_size=2, seq_len=5, warmup=1, repeats=2, threads=1)
    row = bench.measure(args)
    assert set(row) == {f"{v}_s" for v in bench.VARIANTS} | {f"{v}_speed_vs_dense" for v in bench.VARIANTS[1:]}
    for variant in bench.VARIANTS[1:]:
        assert row[f"{variant}_speed_vs_dense"] == pytest.approx(row["dense_s"] / row[f"{variant}_s"], rel=1e-2)
