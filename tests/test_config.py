"""Every shipped config composes, and bad choices fail at composition with one clear line."""

from __future__ import annotations

import pytest

from prune_cli.config import check_overrides, compose, group_options
from prune_cli.errors import UserError
from prune_cli.methods import METHODS

GLUE_TASKS = ["cola", "mnli", "mrpc", "qnli", "qqp", "rte", "sst2", "stsb"]


def test_all_eight_glue_tasks_are_configured():
    assert group_options("task") == GLUE_TASKS


def test_method_registry_matches_method_configs():
    algorithms = {compose([f"method={name}"]).method.algorithm for name in group_options("method")}
    assert algorithms == set(METHODS)


def test_paper_recipe_sets_its_own_budget_and_head_but_command_line_wins():
    paper = compose(["method=adapt_by_pruning_paper"])
    assert (paper.head.lr, paper.trainer.batch_size, paper.trainer.max_steps) == (2e-5, 8, None)
    assert paper.method.gamma_schedule == "constant" and paper.method.theta_lr == 2e-5
    assert compose(["method=adapt_by_pruning_paper", "trainer.max_steps=10"]).trainer.max_steps == 10


@pytest.mark.parametrize("task", GLUE_TASKS)
@pytest.mark.parametrize("method", group_options("method"))
def test_every_task_and_method_composes(task: str, method: str):
    cfg = compose([f"task={task}", f"method={method}"])
    assert cfg.task.name == task
    assert cfg.method.name == method
    assert cfg.task.main_metric in cfg.task.metrics
    assert set(cfg.task.tsv.dev_files) == set(cfg.task.hub.dev_splits)
    assert "dev" in cfg.task.tsv.dev_files


def test_scientific_notation_values_are_floats():
    cfg = compose([])
    assert isinstance(cfg.method.t_large, float) and cfg.method.t_large == 1e5
    assert isinstance(cfg.method.gamma, float)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["task=sst3"], "unknown task 'sst3'; choose from: cola, mnli"),
        (["method=magic"], "unknown method 'magic'"),
        (["model=gpt9"], "unknown model 'gpt9'"),
        (["sparsity=1.0"], "outside [0, 1)"),
        (["sparsity=-0.1"], "outside [0, 1)"),
        (["sparsity=half"], "is not a number"),
        (["sparsity=0.5,0.9"], "add -m/--multirun"),
        (["task=="], "invalid override"),
    ],
)
def test_bad_values_fail_at_composition(overrides: list[str], message: str):
    with pytest.raises(UserError) as err:
        compose(overrides)
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_sweep_values_are_each_checked_under_multirun():
    check_overrides(["task=sst2,mrpc", "sparsity=0.5,0.9"], multirun=True)
    with pytest.raises(UserError, match="unknown task 'nope'"):
        check_overrides(["task=sst2,nope"], multirun=True)
    with pytest.raises(UserError, match="outside"):
        check_overrides(["sparsity=0.5,1.5"], multirun=True)


def test_budget_is_whichever_limit_comes_first():
    from prune_cli.training import plan_budget

    assert plan_budget({"batch_size": 32, "max_steps": 2000, "epochs": 5}, 67349).total_steps == 2000  # SST-2
    assert plan_budget({"batch_size": 32, "max_steps": 2000, "epochs": 5}, 5749).total_steps == 900  # STS-B
    assert plan_budget({"batch_size": 8, "max_steps": None, "epochs": 3}, 100).total_steps == 39
    assert plan_budget({"batch_size": 8, "max_steps": 7, "epochs": None}, 100).total_steps == 7
    with pytest.raises(UserError, match="both unset"):
        plan_budget({"batch_size": 8, "max_steps": None, "epochs": None}, 100)
