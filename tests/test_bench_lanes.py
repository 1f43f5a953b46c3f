"""scripts/bench_lanes.py's throughput arithmetic (issue 5's lane figures rest on it)."""

from __future__ import annotations

import pytest

from conftest import load_script


@pytest.fixture(scope="module")
def lanes():
    return load_script("bench_lanes")


def test_throughput_ratio_counts_steps_per_second_of_all_lanes(lanes):
    assert lanes.throughput_ratio(0.3, [0.6, 0.6]) == pytest.approx(1.0)  # twice as slow, twice as many: a wash
    assert lanes.throughput_ratio(0.3, [0.5, 0.5]) == pytest.approx(1.2)
    assert lanes.throughput_ratio(0.3, [0.3]) == pytest.approx(1.0)
    assert lanes.throughput_ratio(0.2, [0.8, 0.8]) == pytest.approx(0.5)  # lanes can lose, and it shows


def test_the_last_json_line_is_the_result(lanes):
    assert lanes.last_json('model=tiny\n  a 1.0\n{"a_finetune_s": 0.5}\n') == {"a_finetune_s": 0.5}
