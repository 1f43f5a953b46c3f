"""The one place where the CLI (and `prune_cli.api.adapt`) hands over to Hydra.

Hydra's Compose API gives up multirun, run directories and job logging, so runs go through a real
`@hydra.main` function. The CLI turns its options into override strings and calls that function
with `sys.argv` set to exactly those overrides for the duration of one call. Nothing else in the
code reads or writes `sys.argv`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from prune_cli import backbone, data, display, folder_lock, rundir, runner, stopping
from prune_cli.config import (BASIC_SWEEPER, CONFIG_DIR, CONFIG_NAME, SWEEP_NOT_HERE_ONE_RUN, SWEEP_WITH_MULTIRUN, USER_CONFIG_ENV, check_jobs,
                              check_overrides, check_run_dir, check_sweep_dir, claim_new_folder, compose, config_path_folders, config_path_now,
                              config_sweeps, hydra_value, launch_settings, register_resolvers, searchpath_overrides, sweep_jobs, varying_overrides)
from prune_cli.errors import RunInterrupted, UserError
from prune_cli.hydra_settings import check_hydra_interpolations, check_job_folders, check_launch_settings

log = logging.getLogger(__name__)
failed_jobs: dict[str, str] = {}  # failed sweep job's run dir -> where its reason is (in-process launchers)
finished_runs: list[Path] = []  # run dirs of the jobs that finished (in-process launchers)
sweep_dirs: list[str] = []  # the sweep folder, recorded where the sweep is launched (SweepWatch)
_sweep_held: list[Callable[[], None]] = []  # gives the sweep folder back (folder_lock) when the sweep ends
# A sweep's Ctrl-C or SIGTERM. Jobs in worker processes (joblib) get the signal too (one process
# group); the launcher must outlive them, since dying at once it would kill them mid-step. So a
# stopped job does not raise (joblib would end the sweep at the first one, killing the other
# workers mid-save): it shows its line where it ran and returns, every job after it returns at
# once, and the launcher, which recorded the signal itself, ends the command when all have.
SWEEP_STOPS = "the sweep's running jobs stop after their current step, with a checkpoint, and no new job starts"


class SweepWatch(Callback):
    """Hydra callback (`hydra.callbacks` in configs/config.yaml): records a sweep's folder in the
    process that launches it. Jobs in worker processes (joblib, SLURM) cannot report back, so
    the launching process reads their failures, and names the folder to continue, from there.
    That process holds the folder (`folder_lock`) until the sweep ends, taken before Hydra writes
    anything there: `adapt --resume` of a sweep still running is refused, not run a second time."""

    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        folder = str(config.hydra.sweep.dir)
        sweep_dirs[:] = [folder]
        try:
            Path(folder).mkdir(parents=True, exist_ok=True)  # as Hydra's launcher does next; it must exist to be held
        except OSError:
            return  # Hydra's own mkdir says why, as before
        try:
            _sweep_held.append(folder_lock.hold(Path(folder), rundir.sweep_in_use(Path(folder))))
        except folder_lock.FolderInUse as in_use:
            raise _CarriedUserError(in_use, Path(folder)) from None


class _CarriedUserError(BaseException):
    """Hydra reports any Exception from a job itself (several lines, exit 1); a BaseException
    passes through untouched, so the CLI can show the UserError as its usual single line."""

    def __init__(self, error: UserError, run_dir: Path):
        super().__init__(str(error))
        self.error = error
        self.run_dir = run_dir


def run_adapt(overrides: Sequence[str], multirun: bool, one_run: bool = False) -> list[Path]:
    """`adapt`, for the CLI and for Python alike: check the overrides, compose the run (every
    job of a sweep: a bad one fails here, in one line, before any starts), make sure the run
    directory is new, launch; returns the run dirs that finished (a joblib sweep's jobs run in
    worker processes, so they are not listed). An experiment that sets `hydra.mode: MULTIRUN`
    is a sweep without -m; `one_run` (Python's `api.adapt`, which returns one run) refuses it."""
    checked = _check_launch(overrides, multirun, one_run)
    if checked.multirun:
        folder = claim_new_folder(str(checked.settings.sweep.dir), "hydra.sweep.dir")
        return _finished(launch_adapt(_naming(overrides, "hydra.sweep.dir", folder), True))
    run_dir = Path(claim_new_folder(str(checked.settings.run.dir), "hydra.run.dir"))
    with folder_lock.held(run_dir, rundir.run_in_use(run_dir)):  # taken before Hydra writes there; the run takes it again
        rundir.ensure_fresh(run_dir)  # a folder named outright may have been run into since it was checked
        return _finished(launch_adapt(_naming(overrides, "hydra.run.dir", str(run_dir)), False, checked.existed))


def _naming(overrides: Sequence[str], key: str, folder: str) -> list[str]:
    """The overrides with Hydra's `key` (hydra.run.dir, hydra.sweep.dir) set to the folder this
    process claimed for the launch (`claim_new_folder`), in place of any the command gave: Hydra
    then writes there, and not in a folder it would pick again."""
    return [*(o for o in overrides if rundir.override_key(o) != key), f"{key}={hydra_value(folder)}"]


@dataclass(frozen=True)
class _Checked:
    """What `adapt` knows once every check before the launch has passed."""

    multirun: bool
    jobs: list[list[str]]  # each job's overrides (one run: the command's own)
    configs: list[DictConfig]  # each job's composed config
    settings: DictConfig  # Hydra's own settings for the launch (its folders, its sweeper)
    existed: Path | None  # one run: the nearest folder on its path that is there now


PLAN_COLUMNS = ("task", "method", "sparsity", "seed")  # the settings a plan's table gives columns of their own (display.plan_table)


# What a plan says becomes of a job, as its last line counts them (`cli.show_plan`)
OUTCOMES = {"run": "to run", "resume": "to resume", "skipped": "skipped (repeats)", "kept": "kept (finished)", "fail": "to fail",
            "in use": "running elsewhere"}


@dataclass(frozen=True)
class PlannedJob:
    """One job `adapt` would run (`adapt --dry-run`)."""

    number: int | None  # its number in the sweep (None: one run)
    settings: str  # its overrides that tell it from the sweep's other jobs, less those a plan shows in columns of their own
    cfg: DictConfig
    outcome: str  # what the command would do with it, one of OUTCOMES
    action: str  # the same, in words for its row: "runs", "skipped, as job 2", "resumes after step 200 of phase 'prune'", ...
    train_rows: int | None = None  # the rows it trains on (None: data a dry run does not read, `rows_to_train`)

    @property
    def runs(self) -> bool:
        """Whether it would train (run, run again or resume)."""
        return self.outcome in ("run", "resume")


@dataclass(frozen=True)
class Plan:
    """What `adapt` would run, without running it: every check passed, nothing written."""

    jobs: list[PlannedJob]
    folder: str  # the run directory, or the sweep folder, as it would be named if launched now
    sweep: bool
    jobs_known: bool  # False where a sweeper other than Hydra's basic one picks its jobs as it goes
    inputs: list[tuple[str, str, bool]]  # (what, where it would be read from, whether it is there), each once

    def missing(self) -> list[tuple[str, str, bool]]:
        """The inputs a job would stop on: a data or model folder that is not there."""
        return [entry for entry in self.inputs if not entry[2]]


def plan_adapt(overrides: Sequence[str], multirun: bool) -> Plan:
    """`adapt --dry-run`: every check `adapt` makes before it launches (the overrides, every job
    of a sweep composed and checked, the run or sweep folder new and writable), then the jobs it
    would run, and which dense references a sweep over sparsities skips as repeats
    (`reference_key`, the key the running sweep claims them by)."""
    checked = _check_launch(overrides, multirun)
    if not checked.multirun:
        jobs = [PlannedJob(None, "", checked.configs[0], "run", "runs", rows_to_train(checked.configs[0], {}))]
        return Plan(jobs, str(checked.settings.run.dir), False, True, _inputs(jobs))
    return _plan_sweep(checked.jobs, checked.configs, checked.settings, lambda number, cfg: None)


def plan_resume(folder: Path) -> Plan:
    """`adapt --resume FOLDER --dry-run`: what `adapt --resume` would do with a stopped run or sweep."""
    if rundir.is_sweep_dir(folder):
        return plan_continued_sweep(folder)
    cfg = runner.resumable_config(folder)
    jobs = [PlannedJob(None, "", cfg, "resume", rundir.continued_from(folder), rows_to_train(cfg, {}))]
    return Plan(jobs, str(folder), False, True, _inputs(jobs))


def plan_continued_sweep(sweep_dir: Path) -> Plan:
    """`adapt --resume SWEEP --dry-run`: the checks `adapt --resume SWEEP` makes, then what it would
    do with each job, as `_adapt_main` decides it: a finished job is kept, a stopped or failed one
    resumes from its checkpoint or runs again, one that never started runs."""
    _, _, launched, settings, jobs, configs = _check_continued(sweep_dir)
    sweep = sweep_dir.absolute()
    if folder_lock.held_elsewhere(sweep):  # as the continued sweep itself is refused (SweepWatch)
        raise folder_lock.FolderInUse(rundir.sweep_in_use(sweep_dir))
    folders = rundir.job_folders(sweep)

    def state(number: int, cfg: DictConfig) -> tuple[str, str] | None:
        folder = folders.get(number)
        if folder is None or not folder.is_dir():
            return None
        if folder_lock.held_elsewhere(folder):
            return "in use", "not run: another process is running it"
        earlier = rundir.earlier_attempt(folder, cfg)  # as `_adapt_main` reads it
        if earlier is None:  # stopped before its first checkpoint, or failed before any result
            return "run", "runs again from step 0"
        if earlier == rundir.ANOTHER_RUN:
            return "fail", f"fails: its folder {folder} holds a run of other settings"
        if earlier == rundir.FINISHED:
            return "kept", "kept: finished"
        return "resume", rundir.continued_from(folder)

    with _working_dir(launched):  # relative data and model paths, as the sweep's jobs read them
        return _plan_sweep(jobs, configs, settings, state, sweep, str(sweep))


def _plan_sweep(jobs: Sequence[Sequence[str]], configs: Sequence[DictConfig], settings: DictConfig,
                state: Callable[[int, DictConfig], tuple[str, str] | None], claimed_in: Path | None = None,
                folder: str | None = None) -> Plan:
    """A sweep's jobs with what would happen to each, in `_adapt_main`'s order: skipped where another
    job runs the same dense reference (the claim recorded in `claimed_in`, a continued sweep's
    folder, where there is one: a parallel launcher's jobs claim in the order they start), else
    `state`'s answer for a job that has run before, else runs."""
    first_of: dict[str, int] = {}
    planned, rows_read = [], {}
    for number, (job, cfg) in enumerate(zip(jobs, configs)):
        key = reference_key(cfg)
        if key is not None and key not in first_of:
            claimed = rundir.sweep_run_claimant(claimed_in, key) if claimed_in is not None else None
            first_of[key] = number if claimed is None else claimed
        first = first_of[key] if key is not None else number
        outcome, action = ("skipped", f"skipped, as job {first}") if first != number else state(number, cfg) or ("run", "runs")
        other = [entry for entry in varying_overrides(job, jobs) if rundir.override_key(entry) not in PLAN_COLUMNS]
        planned.append(PlannedJob(number, " ".join(other), cfg, outcome, action, rows_to_train(cfg, rows_read)))
    return Plan(planned, folder or str(settings.sweep.dir), True, settings.sweeper.get("_target_") == BASIC_SWEEPER, _inputs(planned))


def rows_to_train(cfg: DictConfig, read: dict[str, int]) -> int | None:
    """How many rows a job would train on, read as the run reads them (`data.load_task_data`, then
    `data.max_train_samples`), where they are in a local GLUE folder; None for data on the hub (a
    dry run downloads nothing) or a folder that is not there (the plan names it). Reading them
    gives a dry run the steps a budget of epochs comes to, and stops it on a file the runs would
    stop on (a malformed row, a missing train.tsv) before the sweep is queued. `read` keeps each
    task's count once for the jobs of a sweep."""
    task, data_cfg = OmegaConf.to_container(cfg.task, resolve=True), OmegaConf.to_container(cfg.data, resolve=True)
    glue_dir = data.task_glue_dir(task, data_cfg)
    if glue_dir is None or not (glue_dir / task["glue_dir"]).is_dir():
        return None
    key = json.dumps([task, data_cfg, str(glue_dir)], sort_keys=True, default=str)  # resolve_glue_dir's path is absolute
    if key not in read:
        read[key] = len(data.load_task_data(task, data_cfg).train.first(cfg.data.max_train_samples))
    return read[key]


def _inputs(jobs: Sequence[PlannedJob]) -> list[tuple[str, str, bool]]:
    """Each job's data and model, where they would be read from (`data.data_source`,
    `backbone.model_source`), each distinct one once, in the jobs' order; the data with the rows
    its jobs train on, where a dry run reads them (`rows_to_train`)."""
    seen: dict[tuple[str, str], bool] = {}
    rows: dict[tuple[str, str], set[int]] = {}
    for job in jobs:
        task = OmegaConf.to_container(job.cfg.task, resolve=True)
        where, there = data.data_source(task, OmegaConf.to_container(job.cfg.data, resolve=True))
        seen.setdefault((f"{task['name']} data", where), there)
        if job.train_rows is not None:
            rows.setdefault((f"{task['name']} data", where), set()).add(job.train_rows)
        where, there = backbone.model_source(OmegaConf.to_container(job.cfg.model, resolve=True))
        seen.setdefault(("model", where), there)
    return [(what, where + _rows_said(rows.get((what, where))), there) for (what, where), there in seen.items()]


def _rows_said(counts: set[int] | None) -> str:
    """What a data line adds: its jobs' training rows (" (3,668 training rows)"), or their range where
    the jobs cut the split differently (data.max_train_samples); nothing where none was read."""
    if not counts:
        return ""
    low, high = min(counts), max(counts)
    return f" ({low:,} training rows)" if low == high else f" ({low:,}–{high:,} training rows, as the jobs cut them)"


def _check_launch(overrides: Sequence[str], multirun: bool, one_run: bool = False) -> _Checked:
    """Every check `adapt` makes before Hydra creates or writes anything."""
    check_overrides(overrides, multirun=True)
    settings = launch_settings(overrides)
    check_launch_settings(settings)
    multirun = multirun or config_sweeps(settings)
    if multirun and one_run:
        raise UserError("these overrides make a sweep (an experiment's grid), and this call runs one run: "
                        "run the sweep with `prune-cli adapt`, or loop over single runs")
    check_overrides(overrides, multirun, SWEEP_NOT_HERE_ONE_RUN if one_run else SWEEP_WITH_MULTIRUN)
    if multirun:
        jobs, configs = _check_sweep(overrides, settings)
        check_sweep_dir(settings)
        check_job_folders(settings, jobs, configs, [reference_key(cfg) for cfg in configs])
        return _Checked(True, jobs, configs, settings, None)
    cfg = compose(overrides)
    return _Checked(False, [list(overrides)], [cfg], settings, check_run_dir(settings))


def continue_sweep(sweep_dir: Path) -> list[Path]:
    """`adapt --resume SWEEP_DIR`: the sweep Hydra recorded there, run again into the same folder.
    Its jobs get the same folders (settings and job number), and each goes on from where it is
    (`_adapt_main`): a finished job stays as it is, a stopped one (or a failed one that left a
    checkpoint) resumes from its checkpoint, any other failed one or one that never started runs.
    Relative paths in the sweep's overrides are read from the folder it was launched in, as when
    it started."""
    overrides, hydra_overrides, launched, *_ = _check_continued(sweep_dir)
    sweep = sweep_dir.absolute()
    with _working_dir(launched):
        return _finished(launch_adapt([*hydra_overrides, *overrides, f"hydra.sweep.dir={hydra_value(str(sweep))}"], multirun=True))


def _check_continued(sweep_dir: Path) -> tuple[list[str], list[str], Path | None, DictConfig, list[list[str]], list[DictConfig]]:
    """Every check `adapt --resume SWEEP` makes before it launches: the sweep's record read, its
    folder writable, every job composed and checked where the sweep was launched (its model still
    there). Returns the sweep's overrides, its Hydra overrides, the folder it was launched from,
    Hydra's settings, and the jobs' overrides and configs."""
    record = rundir.load_sweep(sweep_dir)
    overrides, hydra_overrides, launched = record.overrides, record.hydra_overrides, record.launched
    refused = rundir.write_refused(sweep_dir)  # Hydra rewrites multirun.yaml there first, in a traceback of its own
    if refused is not None:
        raise UserError(f"cannot write to sweep folder {sweep_dir} ({refused.strerror}); continuing the sweep writes its runs there")
    with _working_dir(launched), _saying_config_path(record.config_path):
        check_overrides(overrides, multirun=True)
        settings = launch_settings([*hydra_overrides, *overrides])  # as the continued sweep is launched
        check_hydra_interpolations(settings)  # an experiment's grid, read again from its file
        _require_same_grid(sweep_dir, record.grid, rundir.sweep_grid(settings))
        jobs, configs = _check_sweep(overrides, settings, _model_still_there(sweep_dir))
        return overrides, hydra_overrides, launched, settings, jobs, configs


@contextlib.contextmanager
def _saying_config_path(launched_with: str | None):
    """A continued sweep's refusal also says which config folders of the user's the sweep was
    launched with, where they are not the ones set now: continued in a new shell without
    $PRUNE_CLI_CONFIG_PATH, a sweep of the user's experiment was told only "unknown experiment"."""
    try:
        yield
    except UserError as error:
        then = config_path_folders(launched_with)
        now = config_path_now()
        if now == then:
            raise
        launched = f"{USER_CONFIG_ENV}={then}" if then else f"{USER_CONFIG_ENV} unset"
        raise UserError(f"{error}; the sweep was launched with {launched}, and it is {now or 'unset'} now: "
                        "set it as it was to continue the sweep") from None


def _require_same_grid(sweep_dir: Path, recorded: dict, now: dict) -> None:
    """A continued sweep runs the sweep that was launched. Its command line is replayed from the
    record, but an experiment's grid is read again from its file: an edited file
    (`sparsity: 0.5,0.9` become `0.5,0.7,0.9`) silently added jobs, or renumbered them so that a
    finished job's folder was taken for another job's and failed it."""
    for key, then in recorded.items():
        if now.get(key) != then:
            raise UserError(f"{key} is now {now.get(key)}, and was {then} when the sweep in {sweep_dir} was launched (its experiment "
                            "file, or the config that set it, changed since): continuing runs the sweep that was launched; put the "
                            "file back as it was, or launch a new sweep for the new grid")


def _model_still_there(sweep_dir: Path) -> Callable[[DictConfig], None]:
    """A check that a continued sweep's job still finds its model folder (read from the folder the
    sweep was launched in), whether an override, an experiment file or a model option of the
    user's named it, and its device; else what to do, which is not what a new run is told ("pass
    a Hugging Face model name or a local folder", "use auto or cpu"): a sweep goes on with the
    settings it was launched with."""
    def check(cfg: DictConfig) -> None:
        model = backbone.model_name(cfg.model)
        runner.require_base_model_here(sweep_dir, model, runner.moved_model_way_back(model, "to continue the sweep"))
        runner.require_device_here(cfg, f"continue the sweep {sweep_dir}")
    return check


def _check_sweep(overrides: Sequence[str], settings: DictConfig, continued_model_check: Callable[[DictConfig], None] | None = None
                 ) -> tuple[list[list[str]], list[DictConfig]]:
    """Every job of the sweep composed and checked before any starts (a status line while it takes);
    a continued sweep's jobs also find their model (`_model_still_there`). Returns the jobs' overrides and configs."""
    jobs = sweep_jobs(overrides, settings)
    with display.checking(f"checking the settings of the sweep's {display.counted(len(jobs), 'job')}"):
        return jobs, check_jobs(jobs, continued_model_check, continuing=continued_model_check is not None)


@contextlib.contextmanager
def _working_dir(folder: Path | None):
    """Run in `folder` (when there is one), then come back."""
    before = Path.cwd()
    if folder is not None:
        os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(before)


def _finished(failed: list[str]) -> list[Path]:
    """The sweep's finished runs, or a one-line error naming its failed jobs."""
    if failed:
        raise UserError(f"{len(failed)} sweep job(s) failed: {', '.join(failed)}")
    return list(finished_runs)


def launch_adapt(overrides: Sequence[str], multirun: bool, existed: Path | None = None) -> list[str]:
    """Run `adapt` through Hydra; returns the run dirs of jobs that failed in a sweep.

    A single run refused for bad input has its directory removed if it holds only Hydra's start
    (`rundir.discard_unstarted`, below `existed`, the nearest folder that was there before). A
    sweep's failed jobs keep theirs: their failed.json says why, beside the jobs that finished.
    """
    register_resolvers()
    failed_jobs.clear()
    finished_runs.clear()
    sweep_dirs.clear()
    stopping.stopped_sweep = None
    saved = sys.argv
    sys.argv = ["prune-cli", *searchpath_overrides(), *overrides, *(["--multirun"] if multirun else [])]
    try:
        with stopping.deferred(SWEEP_STOPS) if multirun else contextlib.nullcontext():
            _adapt_main()
            asked = stopping.requested or (stopping.stopped_sweep[1] if stopping.stopped_sweep else None)
        if multirun and asked is not None:
            folder = sweep_dirs[0] if sweep_dirs else "<its folder, which holds multirun.yaml>"
            raise RunInterrupted(f"the sweep stopped: `prune-cli adapt --resume {folder}` continues it (finished jobs are kept, "
                                 "stopped ones resume, the rest run); jobs that had not started did not run", asked)
        if multirun and sweep_dirs:  # jobs that ran in worker processes recorded their failures only on disk
            for record in sorted(Path(sweep_dirs[0]).absolute().rglob(rundir.FAILED)):
                failed_jobs.setdefault(str(record.parent), f"reason in its {rundir.FAILED}")
            for label, where in rundir.folder_clashes(Path(sweep_dirs[0]).absolute()).items():
                failed_jobs.setdefault(label, where)
    except _CarriedUserError as carried:
        if existed is not None and not isinstance(carried.error, folder_lock.FolderInUse):  # never another process's folder
            rundir.discard_unstarted(carried.run_dir, existed)
        raise carried.error from None
    finally:
        sys.argv = saved
        while _sweep_held:
            _sweep_held.pop()()
    return [f"{run_dir} ({where})" for run_dir, where in failed_jobs.items()]


@hydra.main(config_path=str(CONFIG_DIR), config_name=CONFIG_NAME, version_base="1.3")
def _adapt_main(cfg: DictConfig) -> float | None:
    hydra_cfg = HydraConfig.get()
    run_dir = Path(hydra_cfg.runtime.output_dir)
    in_sweep = hydra_cfg.mode == RunMode.MULTIRUN
    sweep_dir = str(hydra_cfg.sweep.dir)
    stopped_here = stopping.stopped_sweep is not None and stopping.stopped_sweep[0] == sweep_dir
    job_num = hydra_cfg.job.num if in_sweep else None
    # whose folder this is (claimed first in the config_subdir resolver): a job never removes
    # a folder another job of the sweep has, which may be running and hold only Hydra's start
    owner = rundir.claim_job_folder(Path(sweep_dir).absolute(), run_dir, job_num) if in_sweep else None
    if in_sweep and (stopping.requested is not None or stopped_here):
        if owner is None:
            rundir.discard_unstarted(run_dir, Path(sweep_dir))  # the sweep was stopped: this job never starts
        return None
    first = repeated_reference(cfg, Path(sweep_dir), run_dir, job_num) if in_sweep else None
    if first is not None:
        if owner is None:
            rundir.discard_unstarted(run_dir, Path(sweep_dir))
        display.skipped_job(f"sweep job {job_num}: {cfg.method.name} ignores sparsity, and this sweep runs it "
                            f"with the same settings in {first}")
        return None
    if not in_sweep:
        return _run_job(cfg, run_dir, None, sweep_dir)  # check_run_dir has made sure the folder holds no run
    if owner is not None:
        _folder_clash(run_dir, job_num, sweep_dir, f"its folder {run_dir} is {owner}'s: hydra.sweep.subdir leaves out "
                                                   "what tells the two jobs apart")
        return None
    rundir.folder_clash_record(Path(sweep_dir).absolute(), job_num).unlink(missing_ok=True)  # an earlier attempt's
    earlier = rundir.earlier_attempt(run_dir, cfg)
    if earlier == rundir.FINISHED:  # this very job, in a sweep continued with --resume
        display.skipped_job(f"sweep job {job_num}: finished already, in {run_dir}")
        finished_runs.append(run_dir)
        return None
    if earlier == rundir.STOPPED:
        return _run_job(rundir.load_config(run_dir), run_dir, job_num, sweep_dir, resume=True)
    if earlier is None:
        (run_dir / rundir.FAILED).unlink(missing_ok=True)  # an earlier attempt's, in a continued sweep: this one runs afresh
    # a folder of ours that holds a run no job of this sweep claimed (one from before folders were
    # claimed, or a subdir that reaches outside the sweep folder) fails in runner.adapt
    return _run_job(cfg, run_dir, job_num, sweep_dir, shared=earlier == rundir.ANOTHER_RUN)


def _run_job(cfg: DictConfig, run_dir: Path, job_num: int | None, sweep_dir: str, resume: bool = False,
             shared: bool = False) -> float | None:
    """One run: a single run's stop or failure goes up to the CLI; a sweep job's is shown and
    recorded (job_num set), so that the other jobs go on."""
    in_sweep = job_num is not None
    try:
        score = runner.adapt(cfg, run_dir, resume)
        finished_runs.append(run_dir)
        return score
    except RunInterrupted as interrupted:
        if not in_sweep:
            raise
        stopping.stopped_sweep = (sweep_dir, interrupted.signum)
        display.stopped_job(f"sweep job {job_num}: {interrupted.detail}")
        return None
    except Exception as exc:  # noqa: BLE001 - every failure is shown or recorded, none is hidden
        if not in_sweep:
            if isinstance(exc, UserError):
                raise _CarriedUserError(exc, run_dir) from None
            raise
        # In a sweep one bad job must not stop the others: record why it failed and move on.
        reason = str(exc) if isinstance(exc, UserError) else f"{type(exc).__name__}: {exc}"
        if isinstance(exc, folder_lock.FolderInUse):  # another process's run in progress: nothing written there
            _folder_clash(run_dir, job_num, sweep_dir, reason, rundir.IN_USE)
        elif shared:  # a failed.json there would list the other job's run as failed
            _folder_clash(run_dir, job_num, sweep_dir, reason)
        else:
            display.fail(f"job {job_num} ({run_dir}): {reason}")
            try:
                rundir.write_json(run_dir / rundir.FAILED, {"error": reason, "traceback": traceback.format_exc()})
                failed_jobs[str(run_dir)] = f"reason in its {rundir.FAILED}"
            except OSError as unwritten:  # the disk that failed the job: the sweep's last line gives the reason instead
                failed_jobs[str(run_dir)] = f"{reason}; its {rundir.FAILED} could not be written: {unwritten.strerror}"
        return None


def _folder_clash(run_dir: Path, job_num: int, sweep_dir: str, reason: str, why: str = rundir.ANOTHER_JOBS) -> None:
    """A sweep job sent to a folder that holds, or is, another job's run (or that another process
    holds: `why`): shown, and recorded in the sweep folder (never in the run's own), where the
    launching process finds it."""
    display.fail(f"job {job_num} ({run_dir}): {reason}")
    label, where = rundir.record_folder_clash(Path(sweep_dir).absolute(), job_num, run_dir, reason, why)
    failed_jobs[label] = where


def repeated_reference(cfg: DictConfig, sweep_dir: Path, run_dir: Path, job_num: int) -> Path | None:
    """For a dense reference (fine-tuning, feature extraction) in a sweep, the run dir of an
    earlier job of the sweep that runs the very same thing, if any. Such a method ignores
    sparsity, so `--method finetune,adapt_by_pruning --sparsity 0.5,0.7,0.9` would otherwise
    fine-tune three times with one seed: three times the cost for one result, which a report
    would once have shown as three seeds with no spread. Each job claims its config with
    sparsity left out; the first claim runs, the others are skipped."""
    key = reference_key(cfg)
    return None if key is None else rundir.claim_sweep_run(sweep_dir, key, run_dir, job_num)


def reference_key(cfg: DictConfig) -> str | None:
    """A dense reference's config with sparsity left out, as a short hash (None for a method that
    prunes): two jobs of a sweep with the same key run the very same thing."""
    from prune_cli.methods import DENSE

    if cfg.method.algorithm not in DENSE:
        return None
    same = OmegaConf.to_container(cfg, resolve=False)
    same.pop("sparsity", None)
    return hashlib.sha256(json.dumps(same, sort_keys=True, default=str).encode()).hexdigest()[:16]
