"""`prune-cli report` aggregates over seeds and lists failed/incomplete runs instead of hiding them."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from conftest import run_cli

from prune_cli import __version__, report, rundir


def fake_run(root: Path, name: str, method: str, sparsity: float, seed: int, value: float | None, failed: str | None = None,
             tag: str | None = None, overrides: list[str] | None = None, seconds: float | None = None, resumed: bool | object = False,
             threads: int | None = None, steps: int | None = None, batch_size: int | None = None,
             model: str | None = None, version: str = __version__, hold: tuple[float, float | None] | None = None,
             made_on: tuple[str, str] | None = None, rows: tuple[str, str] | None = None,
             trained: tuple[str, str] | None = None) -> Path:
    """A run dir as prune-cli writes one. `version` is the prune-cli that recorded it, and `hold` the
    (hold_fraction, hold_theta_lr) of its resolved config: today's default's for adapt_by_pruning unless
    given (None in a run made before the keys existed: then pass version="0.1.0" and hold=()), and
    `made_on` the (base weights, tokenizer) hashes it recorded (none: a run made before they were), and
    `rows` and `trained` the (fingerprint, source) of the dev rows it was scored on and the rows it was
    trained on (none: recorded before they were)."""
    run_dir = root / name
    (run_dir / ".hydra").mkdir(parents=True)
    if hold is None and method == "adapt_by_pruning":
        hold = (0.4, 2.0e-5)
    method_section = (f"method:\n  name: {method}\n  hold_fraction: {hold[0]}\n  hold_theta_lr: {'null' if hold[1] is None else hold[1]}\n"
                      if hold else f"method:\n  name: {method}\n")
    (run_dir / ".hydra" / "config.yaml").write_text("seed: 1\n" + method_section + (f"trainer:\n  batch_size: {batch_size}\n" if batch_size else ""))
    (run_dir / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides or []))
    if failed:
        (run_dir / "failed.json").write_text(json.dumps({"error": failed}))
    elif value is not None:
        (run_dir / "metrics.json").write_text(json.dumps({
            "task": "sst2", "method": method, "seed": seed, "sparsity_requested": sparsity, "sparsity_realized": sparsity,
            "main_metric": "eval_accuracy", "main_metric_value": value, "metrics": {"eval_accuracy": value},
            "algorithm": "adapt_by_pruning" if method.startswith("adapt_by_pruning") else method, "tag": tag,
            "versions": {"prune_cli": version},
            **({"train_seconds": seconds} if seconds is not None else {}),
            **({"threads": threads} if threads is not None else {}),
            **({"steps": steps} if steps is not None else {}),
            **({"model": model} if model is not None else {}),
            **({"base_weights_hash_before": made_on[0], "tokenizer_hash": made_on[1]} if made_on is not None else {}),
            **({"scored_on": {"dev": {"source": rows[1], "rows": 872, "split_rows": 872, "rows_sha256": rows[0]}}} if rows else {}),
            **({"trained_on": {"source": trained[1], "rows": 67349, "rows_sha256": trained[0]}} if trained else {}),
            # resumed=True: from a checkpoint that kept no clock; any other value: the seconds_before it carried
            "resumed_from": {"phase": "prune", "steps_done": 8, **({} if resumed is True else {"seconds_before": resumed})} if resumed is not False else None,
        }))
    return run_dir


def partial_sweep(root: Path) -> None:
    fake_run(root, "a", "adapt_by_pruning", 0.5, 1, 0.80)
    fake_run(root, "b", "adapt_by_pruning", 0.5, 2, 0.84)
    fake_run(root, "c", "random", 0.5, 1, 0.55)
    fake_run(root, "d", "random", 0.9, 1, None, failed="out of memory")
    fake_run(root, "e", "magnitude", 0.9, 1, None)  # killed: no metrics.json
    fake_run(root, "f", "finetune", 0.0, 1, 0.90)


def markdown_tables(text: str) -> list[list[list[str]]]:
    """Each table of a Markdown text as GitHub reads it (markdown-it, which rich brings): its rows' cells."""
    from markdown_it import MarkdownIt

    tables: list[list[list[str]]] = []
    in_cell = False
    for token in MarkdownIt("commonmark").enable("table").parse(text):
        if token.type == "table_open":
            tables.append([])
        elif token.type == "tr_open":
            tables[-1].append([])
        elif token.type in ("th_open", "td_open"):
            tables[-1][-1].append("")
            in_cell = True
        elif token.type in ("th_close", "td_close"):
            in_cell = False
        elif token.type == "inline" and in_cell:
            tables[-1][-1][-1] = token.content
    return tables


def test_a_bar_in_a_name_or_a_recipe_stays_in_its_cell_of_report_md(tmp_path: Path):
    """A `|` ends a Markdown table cell, inside a code span too: a regex's alternation in a recipe's
    changes (`mask.include=['query|key']`) or a name with one split the row into more cells than its
    header has, moving each figure after it into the wrong column (where GitHub drops the surplus,
    the score was lost from view)."""
    fake_run(tmp_path, "a", "a|b", 0.5, 1, 0.61, seconds=10.0)
    fake_run(tmp_path, "b", "adapt_by_pruning", 0.5, 1, 0.80)
    fake_run(tmp_path, "c", "adapt_by_pruning", 0.5, 1, 0.70, tag="qk", overrides=["tag=qk", "mask.include=['query|key']"])
    assert run_cli("report", str(tmp_path), "--out", str(tmp_path / "out")).exit_code == 0
    tables = markdown_tables((tmp_path / "out" / "report.md").read_text())
    rows = {row[0]: row for table in tables for row in table}
    assert rows["a|b"][1].startswith("0.6100") and rows["adapt_by_pruning"][1].startswith("0.8000")
    assert rows["adapt_by_pruning (qk)"][1:4] == ["`mask.include=['query|key']`", "0.7000", "1"]
    assert all(len(row) == len(table[0]) for table in tables for row in table)


def test_the_terminal_table_shows_each_sparsity_as_requested(tmp_path: Path):
    """The terminal's table rounded the requested sparsity to two places: 0.9999 read "1.00" (every
    weight pruned), and 0.95 and 0.955 could not be told apart; report.md already wrote s=0.9999."""
    from rich.console import Console

    from prune_cli import report

    for name, level in (("a", 0.9999), ("b", 0.95), ("c", 0.955)):
        fake_run(tmp_path, name, "random", level, 1, 0.5)
    groups, _, _ = report.build(tmp_path)
    console = Console(width=200, record=True)
    console.print(report.rich_table(groups))
    sparsities = [line.split("│")[3].strip() for line in console.export_text().splitlines() if line.startswith("│")]
    assert sparsities == ["0.95", "0.955", "0.9999"]


def test_groups_average_over_seeds(tmp_path: Path):
    partial_sweep(tmp_path)
    groups, found, written = report.build(tmp_path)
    assert written == [tmp_path / "report.csv", tmp_path / "report.md", tmp_path / "report_sst2.png"]  # what `report` lists
    assert all(path.is_file() for path in written)
    by_key = {(g.method, g.sparsity): g for g in groups}
    ours = by_key[("adapt_by_pruning", 0.5)]
    assert len(ours.values) == 2 and abs(ours.mean - 0.82) < 1e-12 and abs(ours.std - 0.028284271) < 1e-6
    assert len(found.failed) == 1 and found.failed[0][1] == "out of memory"
    assert [p.name for p in found.incomplete] == ["e"]


def test_a_diverged_run_with_a_nan_score_is_listed_as_failed_not_averaged(tmp_path: Path):
    """A nan main metric (a diverged run, finished before prune-cli stopped those) would make its
    cell's mean nan and hide the seeds beside it."""
    fake_run(tmp_path, "a", "adapt_by_pruning", 0.5, 1, 0.80)
    fake_run(tmp_path, "b", "adapt_by_pruning", 0.5, 2, float("nan"))
    groups, found, _ = report.build(tmp_path)
    assert [(g.method, g.values) for g in groups] == [("adapt_by_pruning", (0.80,))]
    assert found.failed == [(tmp_path / "b", "its eval_accuracy is nan: the run diverged")]
    [row] = list(csv.DictReader((tmp_path / "report.csv").open()))
    assert (row["mean"], row["n"]) == ("0.800000", "1")


@pytest.mark.parametrize(("edit", "reason"), [
    (lambda record: record.clear(), "has no 'task'; it was edited or truncated"),
    (lambda record: record.pop("sparsity_requested"), "has no 'sparsity_requested'"),
    (lambda record: record.update(main_metric_value="0.84"), "has 'main_metric_value': '0.84', not a number"),
    (lambda record: record.update(main_metric_value=True), "has 'main_metric_value': True, not a number"),
    (lambda record: record.update(seed="two"), "has 'seed': 'two', not a whole number"),
    (lambda record: record.update(method=["adapt_by_pruning"]), "has 'method': ['adapt_by_pruning'], not text"),
], ids=["emptied", "field deleted", "number as text", "number as boolean", "seed as text", "method as list"])
def test_a_record_edited_by_hand_is_listed_with_what_is_wrong_and_the_report_goes_on(tmp_path: Path, edit, reason: str):
    """A metrics.json with a field deleted or of another kind stopped `report` with a traceback (KeyError,
    ValueError) and no report at all; now that run is listed as incomplete, saying why."""
    fake_run(tmp_path, "a", "adapt_by_pruning", 0.5, 1, 0.80)
    edited = fake_run(tmp_path, "b", "adapt_by_pruning", 0.5, 2, 0.84)
    record = json.loads((edited / "metrics.json").read_text())
    edit(record)
    (edited / "metrics.json").write_text(json.dumps(record))
    result = run_cli("report", str(tmp_path))
    assert result.exit_code == 0, result.output
    assert f"incomplete {edited}: {edited / 'metrics.json'} {reason}" in " ".join(result.output.split())
    assert f"- incomplete: `{edited}`: {edited / 'metrics.json'} {reason}" in (tmp_path / "report.md").read_text()
    [row] = list(csv.DictReader((tmp_path / "report.csv").open()))
    assert (row["mean"], row["n"]) == ("0.800000", "1")


@pytest.mark.parametrize(("edit", "reason"), [
    (lambda text: text + "trainer: [1]\n", "has 'trainer': [1], not a mapping; it was edited"),
    (lambda text: text + "data:\n  holdout: ${nowhere}\n", "has a value under 'data.holdout' that cannot be resolved (Interpolation key 'nowhere' not found)"),
    (lambda text: text.replace("method:\n", "method: ${nowhere}\nold_method:\n", 1), "has a value under 'method' that cannot be resolved"),
], ids=["section a list", "unresolvable interpolation", "unresolvable section"])
def test_a_config_edited_by_hand_is_listed_with_what_is_wrong_and_the_report_goes_on(tmp_path: Path, edit, reason: str):
    """A run config the report cannot read stopped it with OmegaConf's traceback, or (unreadable YAML)
    filed the run under a recipe guessed without it."""
    fake_run(tmp_path, "a", "adapt_by_pruning", 0.5, 1, 0.80)
    edited = fake_run(tmp_path, "b", "adapt_by_pruning", 0.5, 2, 0.84)
    config = edited / ".hydra" / "config.yaml"
    config.write_text(edit(config.read_text()))
    result = run_cli("report", str(tmp_path))
    assert result.exit_code == 0, result.output
    assert f"incomplete {edited}: {config} {reason}" in " ".join(result.output.split())
    [row] = list(csv.DictReader((tmp_path / "report.csv").open()))
    assert (row["mean"], row["n"]) == ("0.800000", "1")


def test_report_cli_writes_csv_markdown_and_plot(tmp_path: Path):
    partial_sweep(tmp_path)
    (tmp_path / "e" / rundir.CHECKPOINT).mkdir()
    (tmp_path / "e" / rundir.CHECKPOINT_PROGRESS).write_text(json.dumps({"phase": "prune", "steps_done": 120}))
    result = run_cli("report", str(tmp_path))
    assert result.exit_code == 0, result.output
    resume = (f"incomplete {tmp_path / 'e'}: no metrics.json: stopped or killed; it holds a checkpoint after step 120 of "
              f"phase 'prune'; `prune-cli adapt --resume {tmp_path / 'e'}` continues from there")
    assert resume in result.output, result.output
    csv_text = (tmp_path / "report.csv").read_text()
    assert "sst2,adapt_by_pruning,,0.5,0.500000,eval_accuracy,0.820000" in csv_text
    markdown = (tmp_path / "report.md").read_text()
    assert "failed: `" in markdown and "out of memory" in markdown
    assert f"- incomplete: `{tmp_path / 'e'}`: no metrics.json: stopped or killed; it holds a checkpoint after step 120" in markdown
    assert "0.9000 (n=1)" in markdown  # finetune as the reference column: one seed, so no "± std"
    assert "0.8200 ± 0.0283 (n=2" in markdown
    assert "sst2,finetune,,0.0,0.000000,eval_accuracy,0.900000,,1," in csv_text, "one seed's std is empty, not 0"
    assert "- vs fine-tuning: s=0.5: -8.0 (n=2 vs 1)" in markdown
    assert "- vs the best pruning baseline: s=0.5: +27.0 over random (not run: gmp, imp, magnitude)" in markdown
    assert (tmp_path / "report_sst2.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_no_margins_heading_without_anything_to_compare(tmp_path: Path):
    fake_run(tmp_path, "a", "adapt_by_pruning", 0.5, 1, 0.80)
    report.build(tmp_path)
    markdown = (tmp_path / "report.md").read_text()
    assert "| adapt_by_pruning | 0.8000 (n=1, realized 0.5000) |" in markdown
    assert "Margins of" not in markdown


@pytest.mark.parametrize("methods", [[("finetune", 0.0)], [("finetune", 0.0), ("adapt_by_pruning", 0.5), ("random", 0.9)]],
                         ids=["references-only", "grid"])
def test_the_task_table_has_as_many_cells_in_every_row_as_in_its_header(tmp_path: Path, methods: list[tuple[str, float]]):
    """A runs root with only the references (a fine-tuning remake, as docs/results/sst2-rows) once got a header
    cell too many, which no Markdown renderer reads as a table."""
    for i, (method, sparsity) in enumerate(methods):
        fake_run(tmp_path, str(i), method, sparsity, 1, 0.8)
    report.build(tmp_path)
    lines = (tmp_path / "report.md").read_text().splitlines()
    start = lines.index(next(line for line in lines if line.startswith("| method |")))
    table = lines[start:start + 2 + len(methods)]
    assert [line.count("|") for line in table] == [table[1].count("|")] * len(table), table
    assert table[0] == "| method | " + "".join(f"s={s:g} | " for s in sorted({s for m, s in methods if m != "finetune"})) + "reference |"


def test_cost_section_times_runs_timed_whole_only(tmp_path: Path):
    """A run resumed from a checkpoint that kept the clock is timed whole (its train_seconds counts
    the steps before the checkpoint too); one resumed from an older checkpoint timed its tail only,
    and counts as its group's mean."""
    fake_run(tmp_path, "a", "adapt_by_pruning", 0.5, 1, 0.80, seconds=100.0)
    fake_run(tmp_path, "b", "adapt_by_pruning", 0.5, 2, 0.84, seconds=300.0)
    fake_run(tmp_path, "c", "adapt_by_pruning", 0.5, 3, 0.82, seconds=5.0, resumed=True)  # timed its tail only
    fake_run(tmp_path, "d", "adapt_by_pruning", 0.5, 4, 0.82, seconds=500.0, resumed=420.5)  # timed whole
    fake_run(tmp_path, "e", "adapt_by_pruning", 0.5, 5, 0.82, seconds=7.0, resumed="420")  # an edited record: not a number
    report.build(tmp_path)
    markdown = (tmp_path / "report.md").read_text()
    assert "| sst2 | adapt_by_pruning | ? | 5 | 300 |" in markdown
    assert "Training time of the 5 runs above: about 0.4 h" in markdown


def test_cost_section_says_which_runs_ran_in_lanes(tmp_path: Path):
    fake_run(tmp_path, "a", "adapt_by_pruning", 0.5, 1, 0.80, seconds=100.0, threads=2)
    fake_run(tmp_path, "b", "adapt_by_pruning", 0.5, 2, 0.84, seconds=300.0, threads=1)
    fake_run(tmp_path, "c", "random", 0.5, 1, 0.55, seconds=50.0, threads=1)
    fake_run(tmp_path, "d", "magnitude", 0.5, 1, 0.70, seconds=60.0, threads=1)
    fake_run(tmp_path, "e", "magnitude", 0.5, 2, 0.71, seconds=80.0)  # made before metrics.json had the field
    report.build(tmp_path)
    markdown = (tmp_path / "report.md").read_text()
    assert "| sst2 | adapt_by_pruning | 1/2 | 2 | 200 |" in markdown
    assert "| sst2 | magnitude | 1/? | 2 | 70 |" in markdown
    assert "| sst2 | random | 1 | 1 | 50 |" in markdown
    assert "ran side by side" in markdown
    assert "Threads `?`: not recorded" in markdown  # the magnitude row has one


def test_cost_section_explains_an_unrecorded_thread_count_only_where_the_table_shows_one(tmp_path: Path):
    fake_run(tmp_path, "a", "adapt_by_pruning", 0.5, 1, 0.80, seconds=100.0, threads=2)
    report.build(tmp_path)
    markdown = (tmp_path / "report.md").read_text()
    assert "| sst2 | adapt_by_pruning | 2 | 1 | 100 |" in markdown and "`?`" not in markdown


def test_report_on_a_folder_without_runs_is_a_clear_error(tmp_path: Path):
    result = run_cli("report", str(tmp_path))
    assert result.exit_code == 2 and "no run directories" in result.output


def test_a_head_change_is_also_compared_with_fine_tuning_that_made_the_same_head_change(tmp_path: Path):
    partial_sweep(tmp_path)  # untagged fine-tuning: 0.90 on seed 1
    fake_run(tmp_path, "g", "adapt_by_pruning", 0.5, 1, 0.86, tag="longer-mean",
             overrides=["tag=longer-mean", "head.pooling=mean", "method.prune_fraction=0.8"])
    fake_run(tmp_path, "h", "adapt_by_pruning", 0.5, 1, 0.83, tag="mean-only", overrides=["tag=mean-only", "head.pooling=mean"])
    fake_run(tmp_path, "i", "adapt_by_pruning", 0.5, 1, 0.81, tag="max", overrides=["tag=max", "head.pooling=max"])
    fake_run(tmp_path, "k", "adapt_by_pruning", 0.5, 1, 0.79, tag="slow-head", overrides=["tag=slow-head", "head.lr=2e-5"])
    fake_run(tmp_path, "j", "finetune", 0.0, 1, 0.88, tag="mean-finetune",
             overrides=["method=finetune", "tag=mean-finetune", "head.pooling=mean"])
    report.build(tmp_path)
    ablations = (tmp_path / "report.md").read_text().split("## Ablations")[1]
    # 0.86 - 0.88 against the mean-pooling fine-tuning; 0.86 - 0.90 against the default one
    assert "| adapt_by_pruning (longer-mean) | `head.pooling=mean method.prune_fraction=0.8` | 0.8600 | 1 | +6.0 (1) | -4.0 (1) | -2.0 (1) |" in ablations
    assert "| adapt_by_pruning (mean-only) | `head.pooling=mean` | 0.8300 | 1 | +3.0 (1) | -7.0 (1) | -5.0 (1) |" in ablations
    # no fine-tuning run with a max-pooling head: said, not hidden
    assert "| adapt_by_pruning (max) | `head.pooling=max` | 0.8100 | 1 | +1.0 (1) | -9.0 (1) | not run |" in ablations
    # the head's training rate is recipe, not readout: compared with the default fine-tuning only
    assert "| adapt_by_pruning (slow-head) | `head.lr=2e-5` | 0.7900 | 1 | -1.0 (1) | -11.0 (1) |  |" in ablations


def test_a_budget_change_is_compared_with_fine_tuning_on_the_same_budget(tmp_path: Path):
    fake_run(tmp_path, "a", "adapt_by_pruning", 0.5, 1, 0.80, steps=2000)
    fake_run(tmp_path, "f", "finetune", 0.0, 1, 0.90, steps=2000)
    fake_run(tmp_path, "g", "adapt_by_pruning", 0.5, 1, 0.85, tag="longer", overrides=["tag=longer", "trainer.max_steps=4000"],
             steps=4000)
    fake_run(tmp_path, "h", "finetune", 0.0, 1, 0.91, tag="longer-finetune",
             overrides=["method=finetune", "tag=longer-finetune", "trainer.max_steps=4000"], steps=4000)
    fake_run(tmp_path, "i", "adapt_by_pruning", 0.5, 1, 0.70, tag="restated", overrides=["tag=restated", "trainer.max_steps=2000"],
             steps=2000)
    fake_run(tmp_path, "j", "adapt_by_pruning", 0.5, 1, 0.82, tag="mid", overrides=["tag=mid", "trainer.max_steps=3000"], steps=3000)
    report.build(tmp_path)
    ablations = (tmp_path / "report.md").read_text().split("## Ablations")[1]
    # 0.85 - 0.91 against fine-tuning on the same 4000 steps; 0.85 - 0.90 against the default one
    assert "| adapt_by_pruning (longer) | `trainer.max_steps=4000` | 0.8500 | 1 | +5.0 (1) | -5.0 (1) | -6.0 (1) |" in ablations
    # restating the default budget is no budget change: the default fine-tuning is the reference
    assert "| adapt_by_pruning (restated) | `trainer.max_steps=2000` | 0.7000 | 1 | -10.0 (1) | -20.0 (1) |  |" in ablations
    # no fine-tuning run on 3000 steps: said, not hidden
    assert "| adapt_by_pruning (mid) | `trainer.max_steps=3000` | 0.8200 | 1 | +2.0 (1) | -8.0 (1) | not run |" in ablations


def test_the_same_steps_on_another_batch_size_is_another_budget(tmp_path: Path):
    """4000 steps of 16 examples are the default budget's examples in twice the updates, not 4000 steps of 32:
    each recipe is compared with the fine-tuning that read the same batches, whichever is found first."""
    fake_run(tmp_path, "a", "adapt_by_pruning", 0.5, 1, 0.80, steps=2000, batch_size=32)
    fake_run(tmp_path, "f", "finetune", 0.0, 1, 0.90, steps=2000, batch_size=32)
    for name, batch, ours, theirs in (("batch-16", 16, 0.81, 0.93), ("steps-4000", 32, 0.85, 0.91)):
        budget = [f"trainer.batch_size={batch}"] * (batch != 32) + ["trainer.max_steps=4000"]
        fake_run(tmp_path, name, "adapt_by_pruning", 0.5, 1, ours, tag=name, overrides=[f"tag={name}", *budget], steps=4000,
                 batch_size=batch)
        fake_run(tmp_path, f"{name}-finetune", "finetune", 0.0, 1, theirs, tag=f"{name}-finetune",
                 overrides=["method=finetune", f"tag={name}-finetune", *budget], steps=4000, batch_size=batch)
    fake_run(tmp_path, "restated", "adapt_by_pruning", 0.5, 1, 0.70, tag="restated",
             overrides=["tag=restated", "trainer.batch_size=32"], steps=2000, batch_size=32)
    report.build(tmp_path)
    ablations = (tmp_path / "report.md").read_text().split("## Ablations")[1]
    # 0.81 - 0.93 and 0.85 - 0.91: each against its own budget's fine-tuning, not the other's
    assert "| adapt_by_pruning (batch-16) | `trainer.batch_size=16 trainer.max_steps=4000` | 0.8100 | 1 | +1.0 (1) | -9.0 (1) | -12.0 (1) |" in ablations
    assert "| adapt_by_pruning (steps-4000) | `trainer.max_steps=4000` | 0.8500 | 1 | +5.0 (1) | -5.0 (1) | -6.0 (1) |" in ablations
    # restating the default batch is no budget change: the default fine-tuning is the reference
    assert "| adapt_by_pruning (restated) | `trainer.batch_size=32` | 0.7000 | 1 | -10.0 (1) | -20.0 (1) |  |" in ablations


def test_tagged_runs_form_the_ablation_table_against_the_default_recipe(tmp_path: Path):
    partial_sweep(tmp_path)
    fake_run(tmp_path, "g", "adapt_by_pruning", 0.5, 1, 0.78, tag="paper-init",
             overrides=["task=sst2", "sparsity=0.5", "seed=1", "tag=paper-init", "method.init=normal", "trainer.progress=false"])
    fake_run(tmp_path, "h", "adapt_by_pruning", 0.5, 2, 0.76, tag="paper-init",
             overrides=["task=sst2", "seed=2", "tag=paper-init", "method.init=normal"])
    fake_run(tmp_path, "i", "adapt_by_pruning_paper", 0.5, 1, 0.70, tag="paper-recipe",
             overrides=["method=adapt_by_pruning_paper", "tag=paper-recipe", "trainer.batch_size=32"])
    groups, _, _ = report.build(tmp_path)
    untagged = [g for g in groups if g.method == "adapt_by_pruning" and not g.tag]
    assert [g.values for g in untagged] == [(0.80, 0.84)]  # tagged runs are not pooled with the default
    markdown = (tmp_path / "report.md").read_text()
    main_table = markdown.split("## Ablations")[0]
    assert "paper-init" not in main_table and "paper-recipe" not in main_table
    ablations = markdown.split("## Ablations")[1]
    # the fine-tuning column: against fine-tuning (seed 1 only, 0.90), paired the same way; no head change, so
    # the same-head column is empty
    assert "| adapt_by_pruning (default) |  | 0.8200 ± 0.0283 | 2 |  | -10.0 (1) |  |" in ablations
    # paired by seed: (0.78 - 0.80 + 0.76 - 0.84) / 2; seed 1 only: 0.70 - 0.80
    assert "| adapt_by_pruning (paper-init) | `method.init=normal` | 0.7700 ± 0.0141 | 2 | -5.0 (1, 2) | -12.0 (1) |  |" in ablations
    assert "| adapt_by_pruning_paper (paper-recipe) | `trainer.batch_size=32` | 0.7000 | 1 | -10.0 (1) | -20.0 (1) |  |" in ablations


def test_fine_tuning_on_fresh_seeds_with_no_change_extends_the_reference_but_not_the_grid(tmp_path: Path):
    """A recipe rerun on fresh seeds is paired with fine-tuning on every seed it has: tagged fine-tuning runs that
    change nothing are the default recipe on more seeds. The grid's table still averages the untagged runs alone."""
    fake_run(tmp_path, "a", "adapt_by_pruning", 0.5, 1, 0.80)
    fake_run(tmp_path, "f1", "finetune", 0.0, 1, 0.90)
    fake_run(tmp_path, "f2", "finetune", 0.0, 2, 0.94, tag="fresh", overrides=["method=finetune", "tag=fresh", "trainer.num_threads=1"])
    fake_run(tmp_path, "f3", "finetune", 0.0, 3, 0.50, tag="other", overrides=["method=finetune", "tag=other", "head.lr=1e-3"])
    for seed, value in ((1, 0.86), (2, 0.88), (3, 0.70)):
        fake_run(tmp_path, f"g{seed}", "adapt_by_pruning", 0.5, seed, value, tag="longer",
                 overrides=["tag=longer", "method.prune_fraction=0.8"])
    groups, _, _ = report.build(tmp_path)
    assert [g.values for g in groups if g.method == "finetune" and not g.tag] == [(0.90,)]
    ablations = (tmp_path / "report.md").read_text().split("## Ablations")[1]
    # seeds 1 and 2: (0.86 - 0.90 + 0.88 - 0.94) / 2; seed 3's fine-tuning changed its recipe, so it is no reference
    assert "| adapt_by_pruning (longer) | `method.prune_fraction=0.8` | 0.8133 ± 0.0987 | 3 | +6.0 (1) | -5.0 (1, 2) |  |" in ablations
    assert "| finetune (fresh) | none (the default recipe) | 0.9400 | 1 |" in ablations and "``" not in ablations


def test_a_seed_run_twice_is_one_sample_not_two(tmp_path: Path):
    """Two runs of seed 1 are not two seeds: counted as such, two identical dense references (a
    sweep's copies, or the same command run again) would show n = 2 and a spread of 0."""
    fake_run(tmp_path, "a", "adapt_by_pruning", 0.5, 1, 0.80, seconds=10.0)
    fake_run(tmp_path, "b", "adapt_by_pruning", 0.5, 1, 0.84, seconds=10.0)
    fake_run(tmp_path, "c", "adapt_by_pruning", 0.5, 2, 0.90, seconds=10.0)
    fake_run(tmp_path, "d", "finetune", 0.5, 7, 0.91, seconds=10.0)
    fake_run(tmp_path, "e", "finetune", 0.9, 7, 0.91, seconds=10.0)
    groups, _, _ = report.build(tmp_path)
    ours, tuned = groups
    assert ours.seeds == (1, 2) and ours.values == pytest.approx((0.82, 0.90)) and ours.repeats == 1 and ours.runs == 3
    assert tuned.values == (0.91,) and tuned.measured_std is None and tuned.repeats == 1
    assert report.seeds_cell(ours) == "2 (+1 repeat)"
    markdown = (tmp_path / "report.md").read_text()
    assert "0.8600 ± 0.0566 (n=2, realized 0.5000)" in markdown and "0.9100 (n=1)" in markdown
    assert "averaged into that seed, not counted as seeds: adapt_by_pruning s=0.5 (1), finetune s=0 (1)" in markdown
    assert "Training time of the 5 runs above" in markdown  # the cost counts every run


@pytest.mark.parametrize("content", [b"- trainer.max_steps=2\n- note=caf\xe9\n", b"5\n", b"trainer.max_steps: 2\n", b"- [unclosed\n"],
                         ids=["not UTF-8", "a number", "a mapping", "not YAML"])
def test_an_unreadable_overrides_record_is_an_unknown_recipe(tmp_path: Path, content: bytes):
    """Hydra writes overrides.yaml as a list of strings. One edited into something else (saved as
    Latin-1, a number) was a traceback (UnicodeDecodeError, TypeError) that stopped the whole report;
    now, like a missing one, it is a run whose recipe is unknown ("?"), and the report goes on."""
    run_dir = fake_run(tmp_path, "a", "adapt_by_pruning", 0.5, 1, 0.80)
    fake_run(tmp_path, "b", "adapt_by_pruning", 0.5, 2, 0.84, overrides=["seed=2"])
    (run_dir / ".hydra" / "overrides.yaml").write_bytes(content)
    assert report.recorded_overrides(run_dir) is None
    result = run_cli("report", str(tmp_path))
    assert result.exit_code == 0 and "Traceback" not in result.output, result.output
    assert "adapt_by_pruning s=0.5 (none: 1 run; `?`: 1 run)" in (tmp_path / "report.md").read_text()


def test_a_cell_whose_untagged_runs_differ_in_recipe_says_so(tmp_path: Path):
    """A 2-step smoke run left in outputs/ beside the real runs would be averaged into the cell as
    another seed: the report names such a cell and the recipes it mixes, in report.md and on screen."""
    fake_run(tmp_path, "a", "adapt_by_pruning", 0.5, 1, 0.80, overrides=["task=sst2", "seed=1"])
    fake_run(tmp_path, "b", "adapt_by_pruning", 0.5, 2, 0.84, overrides=["task=sst2", "seed=2", "trainer.num_threads=1"])
    fake_run(tmp_path, "c", "adapt_by_pruning", 0.5, 3, 0.51, overrides=["seed=3", "trainer.max_steps=2"])
    fake_run(tmp_path, "d", "random", 0.5, 1, 0.55, overrides=["seed=1", "model=minilm"])  # the model names, not changes, a run
    fake_run(tmp_path, "e", "random", 0.5, 2, 0.56)
    fake_run(tmp_path, "f", "adapt_by_pruning", 0.5, 4, 0.70, tag="smoke", overrides=["trainer.max_steps=2"])
    fake_run(tmp_path, "g", "adapt_by_pruning", 0.5, 5, 0.71, tag="smoke", overrides=["trainer.max_steps=3"])
    result = run_cli("report", str(tmp_path))
    assert result.exit_code == 0, result.output
    note = ("Cells that average runs of different recipes (their overrides differ; tag the odd ones with `tag=<name>` "
            "or move them out): adapt_by_pruning s=0.5 (none: 2 runs; `trainer.max_steps=2`: 1 run)")
    markdown = (tmp_path / "report.md").read_text()
    assert note in markdown and markdown.count("Cells that average runs of different recipes") == 1
    assert "mixes recipes: sst2 adapt_by_pruning s=0.5 (none: 2 runs; `trainer.max_steps=2`: 1 run)" in " ".join(result.output.split())
    assert "random s=0.5" not in markdown.split("Cells that average")[1].split("\n")[0]


def test_a_table_whose_runs_were_scored_on_different_rows_says_so(tmp_path: Path):
    """A dev file corrected between the fine-tuning reference and the pruning runs (or runs reading two
    copies of a task) gave a table whose margins compared different data, without a word. The same
    rows read from another folder are the same data."""
    fake_run(tmp_path, "a", "adapt_by_pruning", 0.5, 1, 0.80, rows=("a" * 64, "glue/SST-2/dev.tsv"))
    fake_run(tmp_path, "b", "adapt_by_pruning", 0.5, 2, 0.84, rows=("a" * 64, "copy/SST-2/dev.tsv"))
    fake_run(tmp_path, "c", "finetune", 0.0, 1, 0.90, rows=("a" * 64, "glue/SST-2/dev.tsv"))
    fake_run(tmp_path, "d", "random", 0.5, 1, 0.55)  # recorded before rows were fingerprinted: nothing to compare
    result = run_cli("report", str(tmp_path))
    assert result.exit_code == 0 and "mixes data" not in result.output, result.output
    assert "different sets of rows" not in (tmp_path / "report.md").read_text()

    fake_run(tmp_path, "e", "finetune", 0.0, 2, 0.70, rows=("b" * 64, "glue/SST-2/dev.tsv"))
    result = run_cli("report", str(tmp_path))
    assert result.exit_code == 0, result.output
    assert "mixes data: sst2's runs were scored on 2 different sets of rows (report.md says which)" in " ".join(result.output.split())
    assert ("The runs of this table were scored on 2 different sets of rows (a data file changed between runs, or runs read "
            f"different copies), so its cells compare different data: 3 runs on 872 rows of glue/SST-2/dev.tsv (dev:{'a' * 12}); "
            f"1 run on 872 rows of glue/SST-2/dev.tsv (dev:{'b' * 12}).") in (tmp_path / "report.md").read_text()
    assert "were trained on" not in (tmp_path / "report.md").read_text()


def test_a_table_whose_runs_were_trained_on_different_rows_says_so(tmp_path: Path):
    """The training side of the same: a reference fine-tuned after a train file was corrected."""
    fake_run(tmp_path, "a", "adapt_by_pruning", 0.5, 1, 0.80, trained=("c" * 64, "glue/SST-2/train.tsv"))
    fake_run(tmp_path, "b", "finetune", 0.0, 1, 0.90, trained=("d" * 64, "glue/SST-2/train.tsv"))
    result = run_cli("report", str(tmp_path))
    assert result.exit_code == 0, result.output
    assert "mixes data: sst2's runs were trained on 2 different sets of rows" in " ".join(result.output.split())
    markdown = (tmp_path / "report.md").read_text()
    assert (f"The runs of this table were trained on 2 different sets of rows (a data file changed between runs, or runs read "
            f"different copies), so its cells compare different data: 1 run on 67349 rows of glue/SST-2/train.tsv (train:{'c' * 12}); "
            f"1 run on 67349 rows of glue/SST-2/train.tsv (train:{'d' * 12}).") in markdown
    assert "were scored on" not in markdown


def test_runs_of_two_backbones_are_never_averaged_or_compared_together(tmp_path: Path):
    """MiniLM's and BERT-base's seed 1 are two results, not one seed run twice: each backbone gets its
    own tables, margins, ablation pairing and plot, named `<task>@<backbone>`."""
    minilm, bert = "packaged:all-MiniLM-L6-v2", "bert-base-uncased"
    fake_run(tmp_path, "a", "adapt_by_pruning", 0.5, 1, 0.80, model=minilm)
    fake_run(tmp_path, "b", "finetune", 0.0, 1, 0.86, model=minilm)
    fake_run(tmp_path, "c", "adapt_by_pruning", 0.5, 1, 0.90, model=bert)
    fake_run(tmp_path, "d", "finetune", 0.0, 1, 0.92, model=bert)
    fake_run(tmp_path, "e", "adapt_by_pruning", 0.5, 1, 0.91, model=bert, tag="longer", overrides=["method.prune_fraction=0.8"])
    groups, _, written = report.build(tmp_path)
    cells = {(g.task, g.method, g.tag): g.values for g in groups}
    assert cells == {("sst2@all-MiniLM-L6-v2", "adapt_by_pruning", ""): (0.80,), ("sst2@all-MiniLM-L6-v2", "finetune", ""): (0.86,),
                     ("sst2@bert-base-uncased", "adapt_by_pruning", ""): (0.90,), ("sst2@bert-base-uncased", "finetune", ""): (0.92,),
                     ("sst2@bert-base-uncased", "adapt_by_pruning", "longer"): (0.91,)}
    assert all(g.repeats == 0 for g in groups)
    assert [p.name for p in written[2:]] == ["report_sst2@all-MiniLM-L6-v2.png", "report_sst2@bert-base-uncased.png"]
    markdown = (tmp_path / "report.md").read_text()
    assert "Backbones: `packaged:all-MiniLM-L6-v2` (2 runs), `bert-base-uncased` (3 runs)" in markdown
    assert "## sst2@all-MiniLM-L6-v2 (eval_accuracy, dev)" in markdown and "## sst2@bert-base-uncased (eval_accuracy, dev)" in markdown
    assert markdown.count("- vs fine-tuning: s=0.5: -6.0 (n=1 vs 1)") == 1  # MiniLM against MiniLM's fine-tuning
    assert markdown.count("- vs fine-tuning: s=0.5: -2.0 (n=1 vs 1)") == 1  # BERT-base against its own
    assert "### sst2@bert-base-uncased, s=0.5" in markdown
    assert "| adapt_by_pruning (longer) | `method.prune_fraction=0.8` | 0.9100 | 1 | +1.0 (1) | -1.0 (1) |  |" in markdown
    assert "sst2@bert-base-uncased,adapt_by_pruning,,0.5," in (tmp_path / "report.csv").read_text()


def test_runs_under_one_model_name_made_on_different_weights_or_tokenizers_are_never_averaged(tmp_path: Path):
    """The backbone was the model's name as typed: runs of `bert-base-uncased` before and after the hub
    moved it to a new revision (or of a folder replaced between two runs) were averaged into one cell
    as two seeds of one experiment. Runs recorded before the hashes existed stay under the name."""
    bert, first, second = "bert-base-uncased", ("1a2b3c4d" * 8, "aa" * 32), ("9f8e7d6c" * 8, "aa" * 32)
    fake_run(tmp_path, "a", "adapt_by_pruning", 0.5, 1, 0.80, model=bert, made_on=first)
    fake_run(tmp_path, "b", "adapt_by_pruning", 0.5, 2, 0.82, model=bert, made_on=first)
    fake_run(tmp_path, "c", "adapt_by_pruning", 0.5, 3, 0.70, model=bert, made_on=second)
    fake_run(tmp_path, "d", "adapt_by_pruning", 0.5, 4, 0.75, model=bert, made_on=(first[0], "bb" * 32))  # only its tokenizer differs
    groups, _, _ = report.build(tmp_path)
    cells = {g.task: g.values for g in groups}
    assert cells == {"sst2@bert-base-uncased (weights 1a2b3c4d, tokenizer aaaaaaaa)": (0.80, 0.82),
                     "sst2@bert-base-uncased (weights 9f8e7d6c, tokenizer aaaaaaaa)": (0.70,),
                     "sst2@bert-base-uncased (weights 1a2b3c4d, tokenizer bbbbbbbb)": (0.75,)}
    assert "`bert-base-uncased (weights 9f8e7d6c, tokenizer aaaaaaaa)` (1 run)" in (tmp_path / "report.md").read_text()

    other = tmp_path / "weights-only"
    fake_run(other, "a", "adapt_by_pruning", 0.5, 1, 0.80, model=bert, made_on=first)
    fake_run(other, "c", "adapt_by_pruning", 0.5, 3, 0.70, model=bert, made_on=second)
    fake_run(other, "e", "adapt_by_pruning", 0.5, 5, 0.60, model=bert)  # recorded before the hashes: under the name alone
    assert sorted(g.task for g in report.build(other)[0]) == ["sst2@bert-base-uncased", "sst2@bert-base-uncased (weights 1a2b3c4d)",
                                                            "sst2@bert-base-uncased (weights 9f8e7d6c)"]
    same = tmp_path / "one-model"
    fake_run(same, "a", "adapt_by_pruning", 0.5, 1, 0.80, model=bert, made_on=first)
    fake_run(same, "b", "adapt_by_pruning", 0.5, 2, 0.82, model=bert, made_on=first)
    assert [(g.task, g.values) for g in report.build(same)[0]] == [("sst2", (0.80, 0.82))]


def test_one_model_recorded_under_two_names_is_one_backbone_named_by_its_hub_name(tmp_path: Path):
    """The packaged MiniLM typed as `packaged:...` for fine-tuning and as its folder for pruning made two
    backbones, each table without the other's runs: no margin over fine-tuning, two plots. The same
    weights and tokenizer are one model; its hub (or packaged) name names it, and the others are listed."""
    minilm, folder, made_on = "packaged:all-MiniLM-L6-v2", "/opt/models/all-MiniLM-L6-v2", ("1a2b3c4d" * 8, "aa" * 32)
    fake_run(tmp_path, "a", "adapt_by_pruning", 0.5, 1, 0.80, model=folder, made_on=made_on)
    fake_run(tmp_path, "b", "adapt_by_pruning", 0.5, 2, 0.82, model=folder, made_on=made_on)
    fake_run(tmp_path, "c", "finetune", 0.0, 1, 0.86, model=minilm, made_on=made_on)
    groups, _, written = report.build(tmp_path)
    assert [(g.task, g.method, g.values) for g in groups] == [("sst2", "adapt_by_pruning", (0.80, 0.82)), ("sst2", "finetune", (0.86,))]
    markdown = (tmp_path / "report.md").read_text()
    assert f"Backbone of every run: `{minilm}` (also recorded as `{folder}`)." in markdown
    assert "- vs fine-tuning: s=0.5: -5.0 (n=2 vs 1)" in markdown
    assert [p.name for p in written[2:]] == ["report_sst2.png"]


def test_a_report_of_one_backbone_names_it_once_and_keeps_plain_task_tables(tmp_path: Path):
    fake_run(tmp_path, "a", "adapt_by_pruning", 0.5, 1, 0.80, model="/models/my bert/")
    fake_run(tmp_path, "b", "adapt_by_pruning", 0.5, 2, 0.82, model="/models/my bert/")
    groups, _, written = report.build(tmp_path)
    assert [g.task for g in groups] == ["sst2"] and written[2].name == "report_sst2.png"
    assert "Backbone of every run: `/models/my bert/`." in (tmp_path / "report.md").read_text()


def test_a_backbone_named_by_a_path_gets_a_plot_file_name_without_its_slashes(tmp_path: Path):
    fake_run(tmp_path, "a", "adapt_by_pruning", 0.5, 1, 0.80, model="/models/my bert/")
    fake_run(tmp_path, "b", "adapt_by_pruning", 0.5, 1, 0.82, model="google/bert_uncased_L-2_H-128_A-2")
    groups, _, written = report.build(tmp_path)
    assert sorted(g.task for g in groups) == ["sst2@/models/my bert/", "sst2@google/bert_uncased_L-2_H-128_A-2"]
    assert sorted(p.name for p in written[2:]) == ["report_sst2@_models_my_bert_.png", "report_sst2@google_bert_uncased_L-2_H-128_A-2.png"]
    assert all(p.parent == tmp_path and p.is_file() for p in written)


def test_paired_gap_pairs_shared_seeds_only_in_points():
    """The one pairing behind the report's Δ and the compare/pair scripts: seeds both sides have,
    ascending, first − second × 100, with the seeds' own standard error."""
    gap = report.paired_gap({3: 0.80, 1: 0.90, 2: 0.85, 7: 0.1}, {1: 0.88, 2: 0.86, 3: 0.78, 5: 0.9})
    assert gap.seeds == (1, 2, 3)
    assert gap.points == pytest.approx((2.0, -1.0, 2.0))
    assert gap.mean == pytest.approx(1.0) and gap.ahead == 2
    assert gap.sd == pytest.approx(3 ** 0.5) and gap.standard_error == pytest.approx(1.0)  # sd of (2, -1, 2): sqrt(3)
    assert gap.per_seed() == "+2.00, -1.00, +2.00"
    single = report.paired_gap({1: 0.5}, {1: 0.4, 2: 0.3})
    assert single.sd is None and single.standard_error is None and single.mean == pytest.approx(10.0)
    assert report.paired_gap({1: 0.5}, {2: 0.5}).seeds == ()


def test_runs_made_before_the_default_changed_are_reported_under_the_recipe_they_ran(tmp_path: Path):
    """0.2.0 changed adapt_by_pruning's default (prune_cli/recipes.py). A run recorded before, untagged, ran
    the recipe now named adapt_by_pruning_stop_at_s, and its ablations were made on that recipe, so they are
    compared with it; a tagged run whose overrides typed today's default is today's default, averaged into
    its cell with a note; today's untagged runs are the default."""
    old = {"version": "0.1.0", "hold": ()}  # before the hold keys existed
    fake_run(tmp_path, "old1", "adapt_by_pruning", 0.5, 1, 0.80, **old)
    fake_run(tmp_path, "old2", "adapt_by_pruning", 0.5, 2, 0.84, **old)
    fake_run(tmp_path, "mean1", "adapt_by_pruning", 0.5, 1, 0.82, tag="mean-pooling", overrides=["tag=mean-pooling", "head.pooling=mean"], **old)
    for seed, value in ((1, 0.86), (2, 0.88)):
        fake_run(tmp_path, f"split{seed}", "adapt_by_pruning", 0.5, seed, value, tag="split", version="0.1.0", hold=(0.4, 2.0e-5),
                 overrides=["tag=split", "method.hold_fraction=0.4", "method.hold_theta_lr=2e-5", "trainer.num_threads=1"])
    fake_run(tmp_path, "new3", "adapt_by_pruning", 0.5, 3, 0.90)
    fake_run(tmp_path, "held", "adapt_by_pruning", 0.5, 1, 0.85, tag="alpha-throughout", hold=(0.4, None),
             overrides=["tag=alpha-throughout", "method.hold_theta_lr=null"])
    fake_run(tmp_path, "ft", "finetune", 0.0, 1, 0.90)
    groups, _, _ = report.build(tmp_path)
    untagged = {g.method: g for g in groups if not g.tag}
    assert untagged["adapt_by_pruning_stop_at_s"].values == (0.80, 0.84)
    assert untagged["adapt_by_pruning"].by_seed() == {1: 0.86, 2: 0.88, 3: 0.90}
    assert untagged["adapt_by_pruning"].folded == (("split", 2),) and not untagged["adapt_by_pruning"].recipes
    markdown = (tmp_path / "report.md").read_text()
    main_table, ablations = markdown.split("## Ablations")
    assert "| adapt_by_pruning_stop_at_s | 0.8200 ± 0.0283 (n=2, realized 0.5000) |" in main_table
    assert "Tagged runs averaged into a cell, their overrides only restating its recipe (`prune_cli/recipes.py`): " \
           "adapt_by_pruning s=0.5 (`split`: 2 runs)." in main_table
    assert "- vs fine-tuning: s=0.5: -2.0 (n=3 vs 1)" in main_table  # the margins are today's default's
    # each ablation against the recipe it changed: 0.82 - 0.80 on seed 1, and 0.85 - 0.86
    assert "| adapt_by_pruning_stop_at_s (untagged) |  | 0.8200 ± 0.0283 | 2 |  | -10.0 (1) |  |" in ablations
    assert "| adapt_by_pruning_stop_at_s (mean-pooling) | `head.pooling=mean` | 0.8200 | 1 | +2.0 (1) |" in ablations
    assert "| adapt_by_pruning (default) |  | 0.8800 ± 0.0200 | 3 |  | -4.0 (1) |  |" in ablations
    assert "| adapt_by_pruning (alpha-throughout) | `method.hold_theta_lr=null` | 0.8500 | 1 | -1.0 (1) |" in ablations
    assert "split" not in ablations


def test_a_report_with_no_complete_run_lists_the_others_and_no_empty_sections(tmp_path: Path):
    """A folder of runs that all stopped or failed (a sweep's first minutes) said "Backbones: . Each
    has its own tables" and showed a Cost section over "the 0 runs above" with an empty table."""
    fake_run(tmp_path, "d", "random", 0.9, 1, None, failed="out of memory")
    fake_run(tmp_path, "e", "magnitude", 0.9, 1, None)
    result = run_cli("report", str(tmp_path))
    assert result.exit_code == 0, result.output
    markdown = (tmp_path / "report.md").read_text()
    assert markdown.startswith("# prune-cli report\n\n0 complete runs, 1 failed, 1 incomplete.\n\n## Runs without results\n"), markdown
    assert "Backbone" not in markdown and "## Cost" not in markdown
