"""prune_cli/recipes.py: which named recipe a run was made with, across 0.2.0's change of
adapt_by_pruning's default (Alg. 1's stop at s, now `adapt_by_pruning_stop_at_s`, to the hold at s with
the paper's alpha while held)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from prune_cli import __version__, config, recipes

CHANGE = recipes.change_of("adapt_by_pruning")
OLD = "0.1.0"


def stored(hold: tuple[float, float | None] | None):
    """A resolved config as a run stores it; None: one made before the hold keys existed."""
    method = {"name": "adapt_by_pruning"}
    if hold is not None:
        method.update(hold_fraction=hold[0], hold_theta_lr=hold[1])
    return OmegaConf.create({"method": method})


def test_the_shipped_configs_are_the_two_sides_of_the_change():
    """The change's record must match the configs, or every report would misname runs."""
    for method, values in (("adapt_by_pruning", CHANGE.after), ("adapt_by_pruning_stop_at_s", CHANGE.before)):
        composed = config.compose([f"method={method}"])
        assert composed.method.name == method and composed.method.algorithm == "adapt_by_pruning"
        assert {key: composed.method[key] for key in values} == dict(values)
    default = config.compose([])
    stop = config.compose(["method=adapt_by_pruning_stop_at_s"])
    differing = {key for key in default.method if key != "name" and default.method[key] != stop.method[key]}
    assert differing == set(CHANGE.before), "the named config keeps the earlier default: it differs in the changed keys alone"
    assert recipes.default_method() == "adapt_by_pruning"
    assert tuple(int(p) for p in __version__.split(".")) >= (0, 2, 0)


@pytest.mark.parametrize(("method", "hold", "version", "named"), [
    ("adapt_by_pruning", None, OLD, "adapt_by_pruning_stop_at_s"),           # the old grid: keys absent
    ("adapt_by_pruning", (0.0, None), OLD, "adapt_by_pruning_stop_at_s"),
    ("adapt_by_pruning", (0.4, 2e-5), OLD, "adapt_by_pruning"),               # the split alpha typed as overrides
    ("adapt_by_pruning", (0.4, None), OLD, "adapt_by_pruning_stop_at_s"),     # an ablation on the old default
    ("adapt_by_pruning", (0.4, 2e-5), __version__, "adapt_by_pruning"),       # today's default
    ("adapt_by_pruning", (0.4, None), __version__, "adapt_by_pruning"),       # an ablation on today's default
    ("adapt_by_pruning", (0.0, None), __version__, "adapt_by_pruning_stop_at_s"),
    ("adapt_by_pruning_stop_at_s", (0.4, None), __version__, "adapt_by_pruning_stop_at_s"),
    ("adapt_by_pruning_stop_at_s", (0.4, 2e-5), __version__, "adapt_by_pruning"),
    ("adapt_by_pruning", None, None, "adapt_by_pruning_stop_at_s"),           # stopped: no metrics.json
    ("magnitude", None, OLD, "magnitude"),
    ("adapt_by_pruning_paper", (0.0, None), OLD, "adapt_by_pruning_paper"),
])
def test_a_run_is_named_by_the_recipe_it_was_made_with(method, hold, version, named):
    conf = stored(hold)
    if method != "adapt_by_pruning":
        conf.method.name = method
    assert recipes.named_recipe_of_run(method, conf, version) == named


def test_a_call_is_named_from_its_overrides_alone():
    assert recipes.named_recipe_of_call(["task=sst2"], "adapt_by_pruning") == "adapt_by_pruning"
    assert recipes.named_recipe_of_call(["method=adapt_by_pruning_stop_at_s"], "adapt_by_pruning") == "adapt_by_pruning_stop_at_s"
    assert recipes.named_recipe_of_call(["method=adapt_by_pruning_stop_at_s", "method.hold_fraction=0.4", "method.hold_theta_lr=2e-5"],
                                        "adapt_by_pruning") == "adapt_by_pruning"
    assert recipes.named_recipe_of_call(["method.hold_fraction=0", "method.hold_theta_lr=null"], "adapt_by_pruning") == "adapt_by_pruning_stop_at_s"
    assert recipes.named_recipe_of_call(["method=finetune"], "adapt_by_pruning") == "finetune"


def test_overrides_that_restate_the_named_recipe_are_dropped_and_the_method_is_named():
    typed = ["task=sst2", "method.hold_fraction=0.4", "method.hold_theta_lr=2e-5", "tag=x"]
    assert recipes.recipe_overrides("adapt_by_pruning", "adapt_by_pruning", typed) == ["task=sst2", "tag=x", "method=adapt_by_pruning"]
    # on the earlier default the same values are the ablation itself
    assert recipes.recipe_overrides("adapt_by_pruning", "adapt_by_pruning_stop_at_s", ["method=adapt_by_pruning", "method.hold_fraction=0.4"]) == [
        "method.hold_fraction=0.4", "method=adapt_by_pruning_stop_at_s"]
    assert recipes.recipe_overrides("magnitude", "magnitude", ["method=magnitude", "seed=1"]) == ["method=magnitude", "seed=1"]


def test_the_module_entry_makes_an_old_run_and_a_pinned_call_compare_equal(tmp_path: Path, monkeypatch, capsys):
    """What reproduce.sh compares: a grid run made before 0.2.0 (`method=adapt_by_pruning`, no hold keys)
    and the call that pins the recorded default; and the split-alpha tag against a call that types it on
    the named earlier default."""
    run = tmp_path / "run"
    (run / ".hydra").mkdir(parents=True)
    (run / ".hydra" / "config.yaml").write_text("method:\n  name: adapt_by_pruning\n")
    (run / "metrics.json").write_text(json.dumps({"versions": {"prune_cli": OLD}}))

    def entry(lines: list[str], *args: str) -> list[str]:
        monkeypatch.setattr("sys.stdin", io.StringIO("".join(f"{line}\n" for line in lines)))
        assert recipes.main(list(args)) == 0
        return sorted(capsys.readouterr().out.split())

    assert entry(["task=sst2", "method=adapt_by_pruning"], str(run)) == entry(["task=sst2", "method=adapt_by_pruning_stop_at_s"])
    assert entry(["task=sst2", "method=adapt_by_pruning"], str(run)) != entry(["task=sst2", "method=adapt_by_pruning"])
    (run / ".hydra" / "config.yaml").write_text("method:\n  name: adapt_by_pruning\n  hold_fraction: 0.4\n  hold_theta_lr: 2.0e-05\n")
    split = ["task=sst2", "method.hold_fraction=0.4", "method.hold_theta_lr=2e-5"]
    assert entry(split, str(run)) == entry(["method=adapt_by_pruning_stop_at_s", *split]) == entry(["task=sst2"])


def test_a_run_whose_config_names_no_method_is_read_as_the_method_it_typed(tmp_path: Path, monkeypatch, capsys):
    """A stored config without method.name (hand-made or trimmed) falls back to the typed method, as a call
    does, not to the root default: a transfer run stays a transfer run."""
    run = tmp_path / "run"
    (run / ".hydra").mkdir(parents=True)
    (run / ".hydra" / "config.yaml").write_text("seed: 1\n")
    typed = ["task=mrpc", "method=transfer", "method.mask_run=runs/stsb/ablation/x/seed1"]
    monkeypatch.setattr("sys.stdin", io.StringIO("".join(f"{line}\n" for line in typed)))
    assert recipes.main([str(run)]) == 0
    assert sorted(capsys.readouterr().out.split()) == sorted(typed)


@pytest.mark.parametrize("checkpointed_by", [__version__, None])
def test_a_stopped_run_is_named_by_the_prune_cli_its_checkpoint_records(tmp_path: Path, monkeypatch, capsys, checkpointed_by: str | None):
    """A stopped run has no metrics.json yet. An ablation on today's default with the hold keys at neither
    recipe's values is the call that made it only if its checkpoint says it was made since the change;
    without that record it is read as made before (every run made before the change was one)."""
    run = tmp_path / "stopped"
    (run / ".hydra").mkdir(parents=True)
    (run / ".hydra" / "config.yaml").write_text("method:\n  name: adapt_by_pruning\n  hold_fraction: 0.3\n  hold_theta_lr: 2.0e-05\n")
    (run / "checkpoint").mkdir()
    progress = {"phase": "prune", "steps_done": 40} | ({"versions": {"prune_cli": checkpointed_by}} if checkpointed_by else {})
    (run / "checkpoint" / "progress.json").write_text(json.dumps(progress))
    assert recipes.rundir.recorded_prune_cli_version(run) == checkpointed_by

    def entry(lines: list[str], *args: str) -> list[str]:
        monkeypatch.setattr("sys.stdin", io.StringIO("".join(f"{line}\n" for line in lines)))
        assert recipes.main(list(args)) == 0
        return sorted(capsys.readouterr().out.split())

    typed = ["task=sst2", "method=adapt_by_pruning", "method.hold_fraction=0.3"]
    assert (entry(typed, str(run)) == entry(typed)) == (checkpointed_by is not None)
    named = "adapt_by_pruning" if checkpointed_by else "adapt_by_pruning_stop_at_s"
    assert f"method={named}" in entry(typed, str(run))
