"""The logging and environment Hydra gave a run's job, given again to `adapt --resume` of that run.

A sweep's stopped jobs go on through Hydra, which sets each job up from the settings the sweep
recorded. A single run goes on without Hydra (`runner.resume`), so it used to log to its run.log
alone, in a fixed format: the terminal showed none of the resumed run's lines (its warnings
included) for all its minutes, and a format, a console level, `hydra.verbose` or
`hydra.job.env_set` given at launch was dropped halfway through the run. Hydra records those
settings in the run's `.hydra/hydra.yaml`; they are applied here as Hydra applied them, with
Hydra's own functions (`configure_log`, `env_override`), and run.log goes on where it stopped."""

from __future__ import annotations

import logging
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from hydra.core.utils import configure_log, env_override, setup_globals
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from prune_cli import rundir
from prune_cli.errors import UserError, first_line
from prune_cli.hydra_settings import RUN_LOG_HANDLER

log = logging.getLogger(__name__)


@contextmanager
def as_launched(run_dir: Path) -> Iterator[None]:
    """Run the block with the run's logging (terminal and run.log, appended to) and environment
    variables set as Hydra set them when it launched the run; afterwards the process's logging is
    as it was, and the run's log file closed (the Python API and tests go on in the same process)."""
    settings = _recorded_settings(run_dir)
    environment = _environment(run_dir, settings)  # refused before the logging changes (and by `recorded_environment`, earlier)
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        problem = _configure_logging(run_dir, settings)
        if problem:
            log.warning("the run's recorded logging set-up could not be applied (%s); logging as Hydra does by default", problem)
        with env_override(environment):
            yield
    finally:
        for handler in root.handlers[:]:
            if handler not in handlers:
                root.removeHandler(handler)
                handler.close()
        for handler in handlers:
            if handler not in root.handlers:
                root.addHandler(handler)
        root.setLevel(level)


def recorded_environment(run_dir: Path) -> dict[str, str]:
    """The variables the run's job had set (`hydra.job.env_set`), or a one-line refusal where the
    record holds one that cannot be resolved: a check `adapt --resume` (and its dry run) makes
    before the run is taken up."""
    return _environment(run_dir, _recorded_settings(run_dir))


def _recorded_settings(run_dir: Path) -> DictConfig | None:
    """The run's hydra.yaml, its `${hydra:...}` values settled from the record itself and Hydra's
    other resolvers (`${now:...}`) known, as they were in the Hydra app that launched it."""
    settings = rundir.recorded_hydra_settings(run_dir)
    if settings is not None:
        setup_globals()
        rundir.settle_hydra_interpolations(settings, run_dir)
    return settings


def _configure_logging(run_dir: Path, settings: DictConfig | None) -> str | None:
    """The run's `hydra.job_logging` and `hydra.verbose`, with run.log written in the folder the run is
    resumed from (it may have moved since) and appended to; Hydra's default where the record has
    none that can be applied, and why not (None once applied)."""
    if settings is None:
        problem = None  # an older or hand-made folder without hydra.yaml: the default, said by nothing
    else:
        try:
            job_logging = settings.hydra.job_logging
            file_handler = job_logging.handlers[RUN_LOG_HANDLER]
            file_handler.filename = str(run_dir / rundir.LOG)
            file_handler.mode = "a"
            configure_log(job_logging, settings.hydra.verbose)
            return None
        except Exception as exc:  # noqa: BLE001 - a record edited by hand, or a value only Hydra's app resolves
            problem = first_line(exc)
    _default_logging(run_dir)
    return problem


def _default_logging(run_dir: Path) -> None:
    """Hydra's default job logging (the terminal, at INFO, as `configure_log` sets it up without a
    set-up), and run.log in the same format."""
    configure_log(None)
    root = logging.getLogger()
    run_log = logging.FileHandler(run_dir / rundir.LOG, mode="a")
    run_log.setFormatter(root.handlers[-1].formatter)  # the terminal handler configure_log has just added
    root.addHandler(run_log)


def _environment(run_dir: Path, settings: DictConfig | None) -> dict[str, str]:
    """The variables the run's job had set (`hydra.job.env_set`), as strings (os.environ takes no
    other). One that cannot be resolved is refused, not dropped: the run may depend on it."""
    env_set = OmegaConf.select(settings, "hydra.job.env_set", default=None) if settings is not None else None
    if not isinstance(env_set, DictConfig):
        return {}
    try:
        return {str(name): str(value) for name, value in OmegaConf.to_container(env_set, resolve=True).items()}
    except OmegaConfBaseException as exc:
        raise UserError(f"{run_dir / rundir.HYDRA_SETTINGS} has a value that cannot be resolved here ('{getattr(exc, 'full_key', '')}': "
                        f"{first_line(exc)}); the run's job had it set (hydra.job.env_set), so it is not resumed without it") from None
