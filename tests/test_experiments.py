"""Named experiments and launchers compose (the shipped YAML is exercised, not just present)."""

from __future__ import annotations

import pytest

from prune_cli.config import compose, launch_settings
from prune_cli.errors import UserError
from prune_cli.hydra_settings import check_launch_settings


@pytest.mark.parametrize("experiment", ["paper_fig2", "paper_fig2_refs", "paper_fig2_cpu", "paper_fig2_cpu_refs"])
def test_experiment_configs_compose_to_a_multirun_grid(experiment: str):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    from prune_cli.config import CONFIG_DIR, register_resolvers

    register_resolvers()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = hydra_compose("config", overrides=[f"+experiment={experiment}", "task=stsb"], return_hydra_config=True)
    assert cfg.task.name == "stsb"
    assert str(cfg.hydra.mode) == "RunMode.MULTIRUN"
    params = cfg.hydra.sweeper.params
    methods = params.method.split(",")
    assert set(methods) <= {"adapt_by_pruning", "random", "magnitude", "gmp", "imp", "finetune", "feature_extraction"}
    if experiment.endswith("refs"):
        assert cfg.sparsity == 0.0
    else:
        assert all(0 < float(s) < 1 for s in params.sparsity.split(","))


def test_joblib_launcher_composes_and_passes_the_launch_checks():
    """With settings joblib's launcher types as text and turns into numbers itself (batch_size=3,
    max_nbytes=100): the check that runs joblib's own validation on them must convert them as the
    launcher does, or it would refuse what runs."""
    settings = launch_settings(["hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "hydra.launcher.batch_size=3",
                                "hydra.launcher.max_nbytes=100", "hydra.launcher.pre_dispatch=4"])
    assert settings.launcher.n_jobs == 2 and "joblib" in settings.launcher._target_.lower()
    check_launch_settings(settings)


def test_compose_helper_accepts_experiments():
    assert compose(["+experiment=paper_fig2_cpu", "task=mrpc"]).task.name == "mrpc"


@pytest.mark.parametrize(("launcher", "package"), [("submitit_slurm", "hydra_plugins.hydra_submitit_launcher"),
                                                  ("submitit_local", "hydra_plugins.hydra_submitit_launcher"),
                                                  ("ray", "hydra_plugins.hydra_ray_launcher")])
def test_cluster_launchers_compose(launcher: str, package: str):
    import importlib.util

    if importlib.util.find_spec(package) is None:
        pytest.skip(f"{package} is not installed (pip install {package.split('.')[1].replace('_', '-')}); "
                    "the ray launcher is not a dev dependency because it pulls in Ray itself")
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    from prune_cli.config import CONFIG_DIR, register_resolvers

    register_resolvers()
    extra = ["hydra.launcher.partition=gpu", "hydra.launcher.gpus_per_node=1"] if launcher == "submitit_slurm" else []
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = hydra_compose("config", overrides=[f"hydra/launcher={launcher}", "trainer=gpu", *extra], return_hydra_config=True)
    assert launcher.split("_")[0] in cfg.hydra.launcher._target_.lower()
    assert cfg.trainer.name == "gpu"
    check_launch_settings(cfg.hydra)  # their settings are ones their classes take


def test_a_callback_of_ones_own_beside_prune_clis_passes_the_launch_checks():
    settings = launch_settings(["+hydra.callbacks.log_returns={_target_:hydra.experimental.callbacks.LogJobReturnCallback}"])
    assert set(settings.callbacks) == {"sweep_watch", "log_returns"}
    check_launch_settings(settings)


def test_the_logging_settings_a_user_writes_pass_the_launch_checks():
    """The terminal quieted as the refusal of hydra/job_logging=disabled advises, a logger of
    one's own, a level as a number: what dictConfig takes passes."""
    check_launch_settings(launch_settings(["+hydra.job_logging.handlers.console.level=WARNING", "+hydra.job_logging.loggers.prune_cli.level=DEBUG",
                                           "hydra.job_logging.root.level=10", "hydra/hydra_logging=disabled",
                                           "hydra.job_logging.formatters.simple.format='%(levelname)s %(message)s'",
                                           "hydra.verbose=[prune_cli,hydra]"]))
    check_launch_settings(launch_settings(["hydra/hydra_logging=none", "hydra.verbose=prune_cli"]))


@pytest.mark.parametrize("override", ["hydra.launcher._target_=hydra_plugins.nope.Launcher", "+hydra.callbacks.mine._target_=nope.Callback",
                                      "hydra.job_logging.handlers.console.class=nope.Handler"])
def test_a_target_that_does_not_import_is_refused_with_nothing_else_said(override: str, caplog: pytest.LogCaptureFixture):
    """Hydra's get_class logged an error of its own ("Error getting class at ...", three lines)
    before the one-line refusal; the checks import without it."""
    settings = launch_settings([override])
    with caplog.at_level("DEBUG"), pytest.raises(UserError, match="cannot be imported"):
        check_launch_settings(settings)
    assert [record.getMessage() for record in caplog.records] == []
