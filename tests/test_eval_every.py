"""`trainer.eval_every`: the dev figures along a run (a learning curve, or score against sparsity
as adapt-by-pruning prunes), scored into history.jsonl without changing what the run learns."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from conftest import read_metrics, run_cli, tiny_overrides

from prune_cli import rundir

EVERY = 2
STEPS = 6


def _history(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / rundir.HISTORY).read_text().splitlines()]


def _scores(record: dict) -> dict:
    return {key: value for key, value in record.items() if key.startswith("eval_")}


@pytest.mark.parametrize("method", ["adapt_by_pruning", "finetune", "gmp", "imp", "random"])
def test_eval_every_scores_the_model_as_it_trains_and_changes_nothing_it_learns(in_tmp: Path, tiny_model_dir: Path, method: str):
    """Every `EVERY` steps of each phase the record holds the dev figures (STS-B's correlations move
    with any change of weights or head, where the tiny model's SST-2 accuracy sits at 0.5), and the
    last step's are the run's own metrics.json figures: the model scored is the one being trained.
    The result files are byte for byte those of the same run without it."""
    runs = {}
    for every in (0, EVERY):
        name = f"every{every}"
        args = ["--task", "stsb", "--method", method, *tiny_overrides(tiny_model_dir, f"trainer.eval_every={every}", steps=STEPS),
                f"hydra.run.dir={name}"]
        if method == "gmp":
            args.append("method.prune_every=2")
        result = run_cli("adapt", *args)
        assert result.exit_code == 0, result.output
        runs[every] = in_tmp / name

    algorithm = read_metrics(runs[0])["algorithm"]
    for file in (*rundir.scored_with(algorithm), rundir.HEAD):
        assert (runs[0] / file).read_bytes() == (runs[EVERY] / file).read_bytes(), f"{file} differs"
    plain, scored = _history(runs[0]), _history(runs[EVERY])
    assert len(plain) == len(scored)
    for before, after in zip(plain, scored):
        figures = _scores(after)
        assert not _scores(before)
        assert {k: v for k, v in after.items() if k not in figures and k != "seconds"} == {k: v for k, v in before.items() if k != "seconds"}
        if after["step"] % EVERY == 0:
            assert set(figures) == {"eval_pearson", "eval_spearmanr"} and all(math.isfinite(v) for v in figures.values()), after
        else:
            assert not figures, after
    assert _scores(scored[-1]) == read_metrics(runs[EVERY])["metrics"]
    assert read_metrics(runs[EVERY])["metrics"] == read_metrics(runs[0])["metrics"]
    # the scoring's time is its own figure, left out of train_seconds (report's cost table): a run costs the same with or without
    assert read_metrics(runs[EVERY])["eval_every_seconds"] > 0 and "eval_every_seconds" not in read_metrics(runs[0])
    phases = {record["phase"] for record in scored if _scores(record)}
    if method == "adapt_by_pruning":
        assert "prune" in phases, "scored while the mask is being learned, at the sparsity each record gives"
    assert f"step {EVERY}/" in (runs[EVERY] / rundir.LOG).read_text()


def test_the_prune_phase_is_scored_with_the_mask_it_has_reached(in_tmp: Path, tiny_model_dir: Path):
    """While adapt-by-pruning prunes, the model scored is w0 x 1[theta > 0] with the head as it stands.
    Checked where the last prune step's mask and head are the run's final ones: Alg. 1 alone (no
    hold), no_recovery (whose final mask is 1[theta > 0] itself) and a head learning rate too small
    to move a weight, so that step's figures must be metrics.json's (a scored model with every weight
    kept, or with the mask at s, gives others)."""
    result = run_cli("adapt", "--task", "stsb", "--method", "adapt_by_pruning_stop_at_s", "method.no_recovery=true", "head.lr=1e-30",
                     *tiny_overrides(tiny_model_dir, "trainer.eval_every=1", steps=8), "hydra.run.dir=run")
    assert result.exit_code == 0, result.output
    metrics = read_metrics(in_tmp / "run")
    prune_steps = [record for record in _history(in_tmp / "run") if record["phase"] == "prune"]
    assert len(prune_steps) == metrics["method_details"]["pruning_steps"] < 8, "the head phase follows"
    last = prune_steps[-1]
    assert last["sparsity"] > metrics["sparsity_requested"], "1[theta > 0] is sparser than s: the final mask is it"
    assert _scores(last) == metrics["metrics"]
    assert _scores(prune_steps[0]) != metrics["metrics"], "the first step's mask is another"


def test_eval_every_scores_the_held_out_rows_a_run_is_scored_on(in_tmp: Path, tiny_model_dir: Path):
    """With data.holdout the figures along the run are those of the held-out rows, keyed as metrics.json
    keys them (`eval_accuracy_holdout`): choosing a recipe by them never reads dev."""
    result = run_cli("adapt", "--task", "sst2", *tiny_overrides(tiny_model_dir, "data.holdout=6", f"trainer.eval_every={EVERY}"),
                     "hydra.run.dir=run")
    assert result.exit_code == 0, result.output
    keys = {key for record in _history(in_tmp / "run") for key in _scores(record)}
    assert keys == set(read_metrics(in_tmp / "run")["metrics"]) == {"eval_accuracy_holdout"}


def test_a_negative_eval_every_is_refused(in_tmp: Path, tiny_model_dir: Path):
    from conftest import assert_one_line_error

    assert_one_line_error(run_cli("adapt", *tiny_overrides(tiny_model_dir, "trainer.eval_every=-1")),
                          "trainer.eval_every=-1 must be an integer >= 0")


def test_analyze_curve_reads_each_runs_scored_steps_back(in_tmp: Path, tiny_model_dir: Path):
    """`analyze curve` lists, writes (curve.csv, long form) and plots (curve.png) every scored step of
    each run, from its history alone: the figures are the records', the last one the run's own."""
    for task, method, every in (("stsb", "adapt_by_pruning", 2), ("sst2", "imp", 1)):
        result = run_cli("adapt", "--task", task, "--method", method, *tiny_overrides(tiny_model_dir, f"trainer.eval_every={every}"),
                         f"hydra.run.dir={task}")
        assert result.exit_code == 0, result.output
    runs = [in_tmp / "stsb", in_tmp / "sst2"]
    result = run_cli("analyze", "curve", *map(str, runs), "--out", str(in_tmp / "curve"))
    assert result.exit_code == 0, result.output
    assert (in_tmp / "curve" / "curve.png").stat().st_size > 0
    import csv

    with (in_tmp / "curve" / "curve.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    for run_dir, label in zip(runs, ("stsb/adapt_by_pruning/s0.5/seed42", "sst2/imp/s0.5/seed42")):
        expected = [(record["phase"], str(record["step"]), str(run_step), metric, f"{value:.6f}")
                    for run_step, record in enumerate(_history(run_dir), start=1) for metric, value in _scores(record).items()]
        assert [(r["phase"], r["step"], r["run_step"], r["metric"], r["value"]) for r in rows if r["run"] == label] == expected
        record = read_metrics(run_dir)
        assert _scores(_history(run_dir)[-1])[record["main_metric"]] == record["main_metric_value"], "the last point is the run's figure"
    assert {r["metric"] for r in rows} == {"eval_pearson", "eval_spearmanr", "eval_accuracy"}
    assert "the dev score along each run" in result.output
    # IMP's rounds and its head phase each count their steps from 1; run_step goes on across them
    imp_points = [(r["phase"], int(r["step"]), int(r["run_step"])) for r in rows if r["run"] == "sst2/imp/s0.5/seed42"]
    assert len({phase for phase, _, _ in imp_points}) > 1 and [s for _, _, s in imp_points] == sorted({s for _, _, s in imp_points})
    assert any(step < run_step for _, step, run_step in imp_points)


def test_analyze_curve_refuses_a_run_scored_at_its_end_only_and_a_broken_history(in_tmp: Path, tiny_model_dir: Path):
    from conftest import assert_one_line_error, forget_digests

    assert run_cli("adapt", *tiny_overrides(tiny_model_dir), "hydra.run.dir=run").exit_code == 0
    assert_one_line_error(run_cli("analyze", "curve", "run"),
                          "run was scored at its end only: its history.jsonl holds no eval_accuracy", "trainer.eval_every=N")
    history = in_tmp / "run" / rundir.HISTORY
    lines = history.read_text().splitlines()
    history.write_text("\n".join(lines[:-1]) + "\n")  # the last step lost: the record's digest names the file
    assert_one_line_error(run_cli("analyze", "curve", "run"), f"run/{rundir.HISTORY} is not the file this run wrote")
    forget_digests(in_tmp / "run")  # a run recorded before history.jsonl had a digest: each line is checked
    history.write_text("\n".join([lines[0], lines[1][: len(lines[1]) // 2], *lines[2:]]) + "\n")  # a line cut short
    assert_one_line_error(run_cli("analyze", "curve", "run"), f"run/{rundir.HISTORY}, line 2, is not JSON", "cut short")
    history.write_text("\n".join([lines[0], json.dumps({"phase": "prune", "step": "2"}), *lines[2:]]) + "\n")
    assert_one_line_error(run_cli("analyze", "curve", "run"), f"run/{rundir.HISTORY}, line 2, is not a step's record")
    edited = {**json.loads(lines[1]), "eval_accuracy": "high"}  # a figure written as text
    history.write_text("\n".join([lines[0], json.dumps(edited), *lines[2:]]) + "\n")
    assert_one_line_error(run_cli("analyze", "curve", "run"), f"run/{rundir.HISTORY}, line 2, has 'eval_accuracy': 'high', not a number")


def test_the_progress_bar_shows_the_last_scored_figures_with_their_step(monkeypatch: pytest.MonkeyPatch):
    """On a terminal the bar keeps the last dev figures beside the loss, with the step they are from."""
    import io

    from rich.console import Console

    from prune_cli import display

    screen = io.StringIO()
    monkeypatch.setattr(display, "error_console", Console(file=screen, force_terminal=True, width=200, color_system=None))
    with display.step_progress(4, "sst2 adapt_by_pruning") as show:
        show({"phase": "prune", "step": 1, "total": 4, "loss": 0.5, "sparsity": 0.1})
        show({"phase": "prune", "step": 2, "total": 4, "loss": 0.4, "sparsity": 0.2, "eval_accuracy": 0.75})
        show({"phase": "prune", "step": 3, "total": 4, "loss": 0.3, "sparsity": 0.3})
    last = screen.getvalue().rsplit("\r", 1)[-1]
    assert "3/4 loss 0.3000  sparsity 0.300  (step 2)  eval_accuracy 0.7500" in last, last


def test_the_curve_plot_gives_each_main_metric_its_own_row_and_scale(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Runs judged by different metrics (SST-2's accuracy, CoLA's Matthews correlation) shared one y
    axis, on which CoLA's curve near 0.1 was a flat line under SST-2's near 0.8."""
    from prune_cli import curves, plots

    drawn = []
    monkeypatch.setattr(plots, "save_png", lambda figure, path: drawn.append(figure))

    def curve(label: str, metric: str, values: list[float]) -> curves.Curve:
        return curves.Curve(label, metric, [curves.Point(label, "prune", i, i, i / 10, {metric: v}) for i, v in enumerate(values, start=1)])

    curves.plot([curve("sst2/a", "eval_accuracy", [0.80, 0.85]), curve("cola/a", "eval_matthews_correlation", [0.05, 0.10]),
                 curve("sst2/b", "eval_accuracy", [0.70, 0.75])], tmp_path / "curve.png")
    axes = drawn[0].axes
    assert [a.get_ylabel() for a in axes[::2]] == ["eval_accuracy", "eval_matthews_correlation"]
    assert [len(a.get_lines()) for a in axes] == [2, 2, 1, 1]
    assert axes[2].get_ylim()[1] < 0.5 < axes[0].get_ylim()[0], "each metric on its own scale"


def test_analyze_curve_follows_the_figure_metric_names(in_tmp: Path, tiny_model_dir: Path):
    """STS-B is judged by Spearman, MRPC by F1: `--metric pearson` (or eval_pearson) follows another
    figure the run scored; one it never scored is a one-line error naming those it did."""
    from conftest import assert_one_line_error

    args = ["--task", "stsb", *tiny_overrides(tiny_model_dir, f"trainer.eval_every={EVERY}", steps=STEPS), "hydra.run.dir=run"]
    assert run_cli("adapt", *args).exit_code == 0
    pearson = [record["eval_pearson"] for record in _history(in_tmp / "run") if "eval_pearson" in record]
    for metric in ("pearson", "eval_pearson"):
        result = run_cli("analyze", "curve", "run", "--metric", metric, "--out", metric)
        assert result.exit_code == 0, result.output
        assert "the dev score along each run (eval_pearson)" in result.output
        assert [f"{value:.4f}" for value in pearson] == [line.split()[-2] for line in result.output.splitlines()
                                                         if "│ prune" in line or "│ head" in line]
    assert_one_line_error(run_cli("analyze", "curve", "run", "--metric", "f1"),
                          "run's history.jsonl holds no eval_f1; the figures it scored along the way are eval_pearson, eval_spearmanr")
