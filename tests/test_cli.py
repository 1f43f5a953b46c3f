"""The CLI is a thin map from options to Hydra overrides; extra words pass through untouched."""

from __future__ import annotations

import pytest
from conftest import run_cli

from prune_cli.config import options_to_overrides


def test_options_become_overrides():
    assert options_to_overrides("sst2", "0.5", "adapt_by_pruning", None, "3") == [
        "task=sst2", "method=adapt_by_pruning", "sparsity=0.5", "seed=3",
    ]


def test_model_option_picks_group_or_path():
    assert options_to_overrides(None, None, None, "bert-base-uncased", None) == ["model=bert-base-uncased"]
    assert options_to_overrides(None, None, None, "minilm", None) == ["model=minilm"]
    assert options_to_overrides(None, None, None, "/models/my-bert", None) == ["model.name_or_path=/models/my-bert"]


def test_comma_lists_stay_sweeps():
    assert options_to_overrides("sst2,mrpc", "0.5,0.9", None, None, "1,2,3") == [
        "task=sst2,mrpc", "sparsity=0.5,0.9", "seed=1,2,3",
    ]


def test_show_config_passes_extra_overrides_through():
    result = run_cli("show-config", "--task", "cola", "method.t_small=0.5", "trainer.max_steps=7")
    assert result.exit_code == 0, result.output
    assert "name: cola" in result.output
    assert "t_small: 0.5" in result.output
    assert "max_steps: 7" in result.output


def test_show_config_checks_a_config_without_importing_scikit_learn_or_scipy():
    """The config checks read the metric names (`metrics.METRICS`); importing scikit-learn and SciPy
    with them was half of `show-config`'s four seconds (and `adapt --dry-run`'s). They load where a
    metric is first computed, which still works."""
    import subprocess
    import sys

    script = ("import sys; from prune_cli.cli import app; from typer.testing import CliRunner; "
              "result = CliRunner().invoke(app, ['show-config', '--task', 'mrpc']); assert result.exit_code == 0, result.output; "
              "print(sorted(m for m in ('sklearn', 'scipy', 'scipy.stats') if m in sys.modules)); "
              "from prune_cli.metrics import task_metrics; import numpy as np; "
              "print(task_metrics(['f1', 'spearmanr'], np.array([1, 0, 1]), np.array([1, 1, 1])))")
    lines = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout.splitlines()
    assert lines == ["[]", "{'f1': 0.8, 'spearmanr': 0.0}"]


def test_show_config_of_a_sweep_asks_for_one_value():
    """It said "add -m/--multirun to sweep over them", and show-config refuses -m: it prints one config."""
    from conftest import assert_one_line_error

    assert_one_line_error(run_cli("show-config", "--seed", "1,2"),
                          "'seed=1,2' lists several values; one config is composed here: give one value (`prune-cli adapt -m` sweeps over several)")
    assert_one_line_error(run_cli("adapt", "--seed", "1,2"), "'seed=1,2' lists several values; add -m/--multirun to sweep over them")


def test_show_config_bad_task_is_one_line_error():
    result = run_cli("show-config", "--task", "nope")
    assert result.exit_code == 2
    assert "unknown task 'nope'" in result.output
    assert "Traceback" not in result.output


def test_version_names_what_a_result_depends_on():
    import torch
    import transformers

    import prune_cli

    result = run_cli("--version")
    assert result.exit_code == 0, result.output
    assert f"prune_cli {prune_cli.__version__}" in result.output
    assert f"torch {torch.__version__}" in result.output and f"transformers {transformers.__version__}" in result.output


def test_a_path_in_an_error_is_shown_as_typed(tmp_path):
    """rich read '[red]' in a folder's name as a colour and dropped it: the error named another path."""
    result = run_cli("evaluate", str(tmp_path / "[red]runs" / "[/]x"))
    assert result.exit_code == 2 and f"{tmp_path}/[red]runs/[/]x is not a directory" in result.output


def test_an_option_given_twice_is_refused_not_overwritten():
    """Click kept the last of an option given twice and said nothing: `--sparsity 0.9 --sparsity 0.7`
    composed sparsity 0.7, where `sparsity=0.9 sparsity=0.7` as overrides is refused."""
    from conftest import assert_one_line_error

    result = run_cli("show-config", "--sparsity", "0.9", "--sparsity=0.7")
    assert_one_line_error(result, "--sparsity is given twice ('0.9', then '0.7'); give it once")
    assert "sweep" not in result.output  # show-config composes one config
    assert_one_line_error(run_cli("adapt", "--task", "sst2", "--seed", "1", "--task", "mrpc", "--task", "cola"),
                          "--task is given 3 times ('sst2', then 'mrpc', then 'cola'); give it once; "
                          "to sweep them, give one comma list with -m: --task sst2,mrpc,cola -m")
    result = run_cli("adapt", "--model", "minilm", "--model", "tiny")
    assert_one_line_error(result, "--model is given twice ('minilm', then 'tiny'); give it once")
    assert "sweep" not in result.output  # --model sweeps no comma list
    assert_one_line_error(run_cli("report", "runs", "--out", "a", "--out", "b"), "--out is given twice ('a', then 'b')")


def test_flags_and_repeatable_options_may_repeat(tmp_path):
    result = run_cli("show-config", "--debug", "--debug", "--task", "cola")
    assert result.exit_code == 0 and "name: cola" in result.output, result.output
    result = run_cli("apply", str(tmp_path / "no-run"), "--text", "a", "--text", "b")  # two inputs, refused only for the run
    assert result.exit_code == 2 and "is given" not in result.output and "no-run" in result.output, result.output


def test_every_command_refuses_an_option_given_twice():
    """A command added later without cls=StrictOptions would keep the last value again."""
    import typer
    from typer.core import TyperGroup

    from prune_cli.cli import StrictOptions, app

    def commands(group: TyperGroup):
        for command in group.commands.values():
            yield from commands(command) if isinstance(command, TyperGroup) else [command]

    found = list(commands(typer.main.get_command(app)))
    assert len(found) >= 11
    assert all(isinstance(command, StrictOptions) for command in found), [c.name for c in found if not isinstance(c, StrictOptions)]


@pytest.mark.parametrize(("args", "message"), [
    # as a path, '' is the current folder: report and analyze wrote their files there
    (["report", "--out="], "--out is given an empty value; give one, or drop --out for its default"),
    (["analyze", "topology", "run", "--out", ""], "--out is given an empty value; give one, or drop --out for its default"),
    # it tried to load '.' as a model ("Unrecognized model in .")
    (["adapt", "--model", ""], "--model is given an empty value; give one, or drop --model for its default"),
    (["adapt", "--resume="], "--resume is given an empty value; give one, or drop --resume for its default"),
    (["export", "run", "--out", ""], "--out is given an empty value; give one"),
])
def test_an_empty_option_value_is_refused(tmp_path, monkeypatch: pytest.MonkeyPatch, args: list[str], message: str):
    """An empty value is most often an unset shell variable (`--out "$OUT"`)."""
    from conftest import assert_one_line_error

    monkeypatch.chdir(tmp_path)
    result = run_cli(*args)
    assert_one_line_error(result, message)
    assert ("for its default" in result.output) == ("for its default" in message)  # export's --out has no default
    assert list(tmp_path.iterdir()) == []


def test_each_command_summary_is_one_line():
    """Typer's command list prints a command's first paragraph as written, line breaks kept
    (rich markup mode), so a summary wrapped in the source broke mid-sentence in `prune-cli --help`
    ("per-task plots (per task and" / "backbone where ..."). Details go in a later paragraph."""
    import inspect

    import typer

    from prune_cli.cli import app

    def commands(group, prefix: str = ""):  # Typer's own Click groups: any object with .commands
        for name, command in group.commands.items():
            yield prefix + name, command
            if hasattr(command, "commands"):
                yield from commands(command, prefix + name + " ")

    root = typer.main.get_command(app)
    listed = list(commands(root))
    assert {"adapt", "report", "analyze topology"} <= {name for name, _ in listed}
    for name, command in listed:
        summary = inspect.cleandoc(command.help or "").split("\n\n")[0]
        assert summary and "\n" not in summary, f"`prune-cli {name}`'s summary spans lines: {summary!r}"
