"""`data.holdout`: training rows set aside and scored on instead of dev, so that a recipe can be
chosen without touching the dev set its final figure is read on. Every reader of a run (evaluate,
predict, export, report) must score it on the same rows and never call those figures dev's."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from conftest import FIXTURE_GLUE, assert_one_line_error, only_run_dir, read_metrics, run_cli, tiny_overrides
from omegaconf import OmegaConf

from prune_cli import api, data, metrics
from prune_cli.config import CONFIG_DIR
from prune_cli.errors import UserError

SST2 = OmegaConf.to_container(OmegaConf.load(CONFIG_DIR / "task" / "sst2.yaml"))
FIXTURE = {"dir": str(FIXTURE_GLUE)}


def rows(examples: data.Examples) -> list[tuple]:
    return list(zip(examples.texts, examples.labels))


def test_held_out_rows_leave_the_training_set_and_replace_dev():
    full = data.load_task_data(SST2, FIXTURE)
    split = data.load_task_data(SST2, {**FIXTURE, "holdout": 8})
    assert list(split.dev) == [data.HOLDOUT]
    held, rest = rows(split.dev[data.HOLDOUT]), rows(split.train)
    assert (len(held), len(rest)) == (8, 16)
    assert not set(held) & set(rest)
    order = rows(full.train)
    assert sorted(held + rest, key=order.index) == order  # nothing lost, nothing made up
    assert held == sorted(held, key=order.index) and rest == sorted(rest, key=order.index)  # file order kept
    assert "held out: 8 rows" in split.dev[data.HOLDOUT].source


def test_the_same_rows_whatever_reads_them_and_other_rows_for_another_holdout_seed():
    trained = data.load_task_data(SST2, {**FIXTURE, "holdout": 8})
    rescored = data.load_task_data(SST2, {**FIXTURE, "holdout": 8}, with_train=False)
    assert rows(rescored.dev[data.HOLDOUT]) == rows(trained.dev[data.HOLDOUT])
    assert len(rescored.train) == 0
    other = data.load_task_data(SST2, {**FIXTURE, "holdout": 8, "holdout_seed": 1})
    assert rows(other.dev[data.HOLDOUT]) != rows(trained.dev[data.HOLDOUT])


def test_no_piece_of_a_held_out_row_is_trained_on():
    """SST-2's training rows are phrases of parsed sentences: a held-out sentence must not be learnt
    from its own phrases, nor a held-out phrase from the sentence around it."""
    sentences = ["a fine film about love", "the plot is dull and slow", "warm and witty", "an utter mess of a movie"]
    phrases = ["a fine film", "about love", "the plot", "dull and slow", "warm", "witty", "an utter mess", "a movie"]
    texts = [(t,) for t in sentences + phrases]
    train = data.Examples(texts, [1, 0, 1, 0, 1, 0, 0, 0, 1, 1, 0, 0], "phrases.tsv")
    for seed in range(10):
        rest, held = data.hold_out(train, 2, seed, "phrases")
        inside = [r for (r,) in rest.texts for (h,) in held.texts if r in h]
        assert not inside, (seed, inside)
        assert all(h in sentences for (h,) in held.texts)  # never a piece of a longer row
        assert len(rest) + len(held) + sum(p in h for p in phrases for (h,) in held.texts) == len(train)
    with pytest.raises(UserError, match="only 4 training rows .* are neither repeated nor part of another row"):
        data.hold_out(train, 5, 0, "phrases")
    repeated = data.Examples([("same question", "same answer")] * 3 + [("one of a kind", "alone")], [1, 1, 1, 0], "pairs.tsv")
    with pytest.raises(UserError, match="only 1 training rows .* are neither repeated nor part of another row"):
        data.hold_out(repeated, 2, 0, "pairs")  # a repeated pair is trained on in its twin


def test_occurs_elsewhere_is_count_above_one_on_the_joined_rows():
    """The rule the draw has always used (`str.count` over the rows joined by newlines, above 1),
    stopped at the second match: so runs made before the faster check hold out the same rows."""
    texts = ["aaa", "aa", "a fine film", "fine", "film film", "fi", "a fine film", "", "x\ty", "y"]
    everything = "\n" + "\n".join(texts) + "\n"
    occurs_elsewhere = data.occurs_elsewhere_in(texts)
    for text in texts + ["a", "aaaa", "absent", "\n"]:
        assert occurs_elsewhere(text) == (everything.count(text) > 1), text


def test_holding_out_every_training_row_is_refused():
    with pytest.raises(UserError, match=r"data.holdout=24 would leave no training examples .*has 24"):
        data.load_task_data(SST2, {**FIXTURE, "holdout": 24})
    with pytest.raises(UserError, match=r"data.holdout=25, but only 24 training rows"):
        data.load_task_data(SST2, {**FIXTURE, "holdout": 25})


def test_a_held_out_run_is_scored_on_its_rows_by_every_reader(in_tmp: Path, tiny_model_dir: Path):
    result = run_cli("adapt", "--task", "sst2", "--sparsity", "0.5", *tiny_overrides(tiny_model_dir, "data.holdout=8"))
    assert result.exit_code == 0, result.output
    assert "held-out metrics" in result.output and "dev metrics" not in result.output
    run = only_run_dir(in_tmp / "outputs")
    stored = read_metrics(run)
    assert stored["main_metric"] == "eval_accuracy_holdout"
    assert list(stored["metrics"]) == ["eval_accuracy_holdout"]
    assert stored["train_examples"] == 16
    assert stored["scored_on"][data.HOLDOUT]["rows"] == 8

    rescored = run_cli("evaluate", str(run))
    assert rescored.exit_code == 0 and "held-out metrics" in rescored.output, rescored.output
    assert api.evaluate(run).metrics == stored["metrics"]

    predicted = run_cli("predict", str(run), "--split", "dev", "--out", str(in_tmp / "rows"))
    assert predicted.exit_code == 0, predicted.output
    with (in_tmp / "rows" / "SST-2-holdout.tsv").open() as handle:
        table = list(csv.DictReader(handle, delimiter="\t"))
    held = data.load_task_data(SST2, {**FIXTURE, "holdout": 8}).dev[data.HOLDOUT]
    assert [int(r["label"]) for r in table] == held.labels
    recomputed = metrics.task_metrics(["accuracy"], [int(r["prediction"]) for r in table], [int(r["label"]) for r in table])
    assert recomputed["accuracy"] == stored["metrics"]["eval_accuracy_holdout"]

    exported = run_cli("export", str(run), "--out", str(in_tmp / "model"), "--check")
    assert exported.exit_code == 0, exported.output
    card = (in_tmp / "model" / "README.md").read_text()
    assert "## Held-out scores" in card and "Scored on 8 examples held out of the training split" in card
    assert "model-index" not in card  # the hub would list these as the dev split's scores


def test_the_report_never_pools_held_out_figures_with_dev_ones(in_tmp: Path, tiny_model_dir: Path):
    for extra in ("data.holdout=8", "data.holdout=null", "data.holdout=8 data.holdout_seed=2"):
        result = run_cli("adapt", "--task", "sst2", "--sparsity", "0.5", *tiny_overrides(tiny_model_dir, *extra.split()))
        assert result.exit_code == 0, result.output
    built = run_cli("report", "outputs")
    assert built.exit_code == 0, built.output
    markdown = (in_tmp / "outputs" / "report.md").read_text()
    assert "## sst2 (eval_accuracy, dev)" in markdown
    assert "## sst2-holdout8 (eval_accuracy_holdout, held-out training rows)" in markdown
    assert "## sst2-holdout8-seed2 (eval_accuracy_holdout, held-out training rows)" in markdown  # other rows: their own table
    cells = (in_tmp / "outputs" / "report.csv").read_text().splitlines()[1:]
    assert sorted(line.split(",")[0] for line in cells) == ["sst2", "sst2-holdout8", "sst2-holdout8-seed2"]


@pytest.mark.parametrize(("override", "fragments"), [
    ("data.holdout=0", ["data.holdout"]),
    ("data.holdout=24", ["data.holdout=24 would leave no training examples"]),
    ("data.holdout_seed=-1", ["data.holdout_seed"]),
])
def test_a_holdout_that_cannot_work_is_a_one_line_error_and_leaves_no_run(in_tmp: Path, tiny_model_dir: Path,
                                                                          override: str, fragments: list[str]):
    result = run_cli("adapt", "--task", "sst2", "--sparsity", "0.5", *tiny_overrides(tiny_model_dir, override))
    assert_one_line_error(result, *fragments)
    assert not list(in_tmp.rglob(".hydra")) and not list(in_tmp.rglob("metrics.json"))
