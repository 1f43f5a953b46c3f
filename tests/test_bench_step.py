"""The multi-process summary of scripts/bench_step.py (issue 5): what its documented figures rest on."""

from __future__ import annotations

import math

import pytest

from conftest import load_script


@pytest.fixture(scope="module")
def bench():
    return load_script("bench_step")


def test_summary_is_median_min_max_over_processes_and_skips_missing_naive(bench):
    runs = [
        {"adapt_over_finetune": 1.20, "naive_over_adapt": math.nan, "masked_inference_speed_vs_dense": 1.0},
        {"adapt_over_finetune": 1.00, "naive_over_adapt": 2.5, "masked_inference_speed_vs_dense": 0.9},
        {"adapt_over_finetune": 1.05, "naive_over_adapt": 3.0, "masked_inference_speed_vs_dense": 1.1},
    ]
    summary = bench.summarize(runs)
    assert summary["adapt_over_finetune"] == {"median": 1.05, "min": 1.00, "max": 1.20, "n": 3}
    assert summary["naive_over_adapt"] == {"median": 2.75, "min": 2.5, "max": 3.0, "n": 2}
    assert bench.summarize([{"adapt_over_finetune": 1.0, "naive_over_adapt": math.nan}]).keys() == {"adapt_over_finetune"}


def test_each_process_gets_the_same_options_without_processes(bench):
    parser = bench.build_parser()
    args = parser.parse_args(["--model", "tiny", "--seq-len", "14", "--skip-naive", "--processes", "4"])
    child = parser.parse_args(bench.single_process_argv(args))
    assert vars(child) == {**vars(args), "processes": 1}
    plain = parser.parse_args(["--processes", "2"])
    assert "--skip-naive" not in bench.single_process_argv(plain)
