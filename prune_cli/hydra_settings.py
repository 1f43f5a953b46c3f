"""Hydra's own settings for a launch (`hydra.*`: the config subfolder and the sweep's job folders,
logging, the launcher, the sweeper, callbacks), checked before Hydra creates or writes anything.

Hydra reads these only as it launches: a value it cannot use failed there, in Hydra's traceback,
after the sweep folder was made (or after the whole training, for the config subfolder). The
settings of our own config are checked in `config`; these are the ones a user may also set."""

from __future__ import annotations

import importlib
import inspect
import logging
from pathlib import Path
from typing import Sequence

from omegaconf import DictConfig, OmegaConf

from prune_cli import rundir
from prune_cli.config import BASIC_SWEEPER, check_interpolations
from prune_cli.errors import UserError, first_line

# Where Hydra keeps each run's config (config.yaml's `hydra.output_subdir`): every reader of a run looks there
PACKAGED_OUTPUT_SUBDIR = "${config_subdir:${hydra.runtime.output_dir}}"
# The handler of config.yaml's job_logging that writes each run's log, and where: in its run directory, as rundir.LOG
RUN_LOG_HANDLER = "file"
PACKAGED_RUN_LOG = f"${{hydra.runtime.output_dir}}/{rundir.LOG}"

# Hydra's settings it never resolves here: its help texts (prune-cli's CLI answers --help) and its
# record of the command line (`hydra.overrides`, `hydra.job.override_dirname`: the overrides as typed, `${...}` and all)
NEVER_RESOLVED = ("help", "hydra_help", "overrides", "job.override_dirname")

# The packages Hydra instantiates a launcher or sweeper from (its `Plugins` refuses any other `_target_`)
PLUGIN_PACKAGES = ("hydra_plugins.", "hydra._internal.core_plugins.")
JOBLIB_PLUGIN = "hydra_plugins.hydra_joblib_launcher"

# prune-cli's own Hydra callback (configs/config.yaml), which a launch must keep
OWN_CALLBACK, OWN_CALLBACK_TARGET = "sweep_watch", "prune_cli.hydra_entry.SweepWatch"


def check_launch_settings(settings: DictConfig) -> None:
    """Every check of Hydra's settings a new launch makes (`adapt`, `adapt -m`)."""
    check_hydra_interpolations(settings)
    refuse_unsupported_hydra_settings(settings)
    for part in ("launcher", "sweeper"):
        check_plugin(settings, part)
    check_callbacks(settings)
    for part in ("job_logging", "hydra_logging"):
        check_logging(settings, part)


def check_hydra_interpolations(settings: DictConfig) -> None:
    """Each `${...}` in Hydra's settings resolves: `hydra.verbose=${oops}` passed the dry run and
    failed in OmegaConf's traceback as the run started, and an experiment's grid
    (`hydra.sweeper.params.sparsity: ${oops}`) as its jobs were listed. Values Hydra fills in as a
    job starts (`${hydra.job.num}` in the sweep subfolder) stand."""
    check_interpolations(settings, written_under="hydra.", filled_by_the_job=True, unread=NEVER_RESOLVED)


def refuse_unsupported_hydra_settings(settings: DictConfig) -> None:
    """Hydra settings that would break a run or its folder, refused before Hydra writes anything.

    `hydra.job.chdir=true` moved the job into its run directory, so a relative `data.dir=glue` or
    `--model ./my-bert`, checked from the folder the run was launched in, was then looked for
    inside the run directory, and the run failed there. `hydra.output_subdir=null` (or another
    name) ran the whole training and left a folder no command could read ("missing
    .hydra/config.yaml"). `hydra/job_logging=disabled` (or stdout) left the handler that writes
    run.log without its class, and Hydra failed in a traceback as the job started."""
    chdir = OmegaConf.to_container(settings.job, resolve=False).get("chdir")  # as written: ${hydra.job.num} would differ by job
    if chdir not in (None, False):
        raise UserError(f"hydra.job.chdir={str(chdir).lower()} is not supported: prune-cli writes each run's files into its run directory by path, "
                        "and reads relative paths (data.dir, --model) from the folder it is launched in; drop it")
    subdir = OmegaConf.to_container(settings, resolve=False).get("output_subdir")
    if subdir != PACKAGED_OUTPUT_SUBDIR:
        raise UserError(f"hydra.output_subdir={_written(subdir)} is not supported: every prune-cli command reads a "
                        "run's config from its .hydra folder, which this setting moves or drops; leave it unset")
    handlers = OmegaConf.to_container(settings.job_logging, resolve=False).get("handlers") or {}
    if "class" not in (handlers.get(RUN_LOG_HANDLER) or {}):
        choice = _choice(settings, "hydra/job_logging")
        raise UserError(f"hydra/job_logging={choice} is not supported: prune-cli's config completes the default's handler that writes "
                        "each run's run.log, which other choices leave out; leave it unset "
                        "(to quiet the terminal alone: +hydra.job_logging.handlers.console.level=WARNING)")
    filename = handlers[RUN_LOG_HANDLER].get("filename")
    if filename != PACKAGED_RUN_LOG:
        raise UserError(f"hydra.job_logging.handlers.{RUN_LOG_HANDLER}.filename={_written(filename)} is not supported: it is where each run writes its "
                        f"{rundir.LOG}, in its run directory ({PACKAGED_RUN_LOG}); leave it unset")
    verbose = settings.get("verbose")
    if not (isinstance(verbose, (bool, str)) or (OmegaConf.is_list(verbose) and all(isinstance(name, str) for name in verbose))):
        raise UserError(f"hydra.verbose={_written(verbose)} is not supported: Hydra takes true, false, a logger's "
                        "name (hydra.verbose=prune_cli) or a list of them (hydra.verbose=[prune_cli,hydra])")


def check_plugin(settings: DictConfig, part: str) -> None:
    """The launcher's or sweeper's settings (`hydra.launcher`, `hydra.sweeper`) are ones its class
    takes, as Hydra will instantiate it with them.

    `+hydra.launcher.n_jobs=2` with the basic launcher (joblib's setting, under another launcher)
    passed every check, made the sweep folder, then failed in Hydra's traceback ("got an
    unexpected keyword argument 'n_jobs'"); `hydra.sweeper=null` ended the checks in a traceback of
    ours, and a `_target_` outside Hydra's plugins failed as the sweep began."""
    group = f"hydra/{part}"
    node = settings.get(part)
    if not isinstance(node, DictConfig):
        raise UserError(f"hydra.{part}={_written(node)} leaves Hydra without a {part}; "
                        f"choose one with {group}=NAME ({_installed(group)}) or leave it unset")
    target = str(node.get("_target_"))
    if not target.startswith(PLUGIN_PACKAGES):
        raise UserError(f"hydra.{part}._target_={target} is not a Hydra plugin (Hydra takes a {part} only from "
                        f"{' or '.join(PLUGIN_PACKAGES)}); choose one with {group}=NAME ({_installed(group)})")
    try:
        plugin = _locate(target)
    except Exception as exc:  # noqa: BLE001 - an import error of any kind, or Hydra's own
        raise UserError(f"hydra.{part}._target_={target} cannot be imported ({first_line(exc).rstrip(':')}); "
                        f"choose one with {group}=NAME ({_installed(group)})") from None
    batch = node.get("max_batch_size")
    if target == BASIC_SWEEPER and batch is not None and not (isinstance(batch, int) and not isinstance(batch, bool) and batch > 0):
        raise UserError(f"hydra.sweeper.max_batch_size={batch} must be a whole number > 0 (the jobs launched at once), or null for all")
    if plugin.__module__.startswith(JOBLIB_PLUGIN):
        _check_joblib(node)
    taken = inspect.signature(plugin).parameters
    if any(parameter.kind is inspect.Parameter.VAR_KEYWORD for parameter in taken.values()):
        return  # it takes any setting (joblib's passes them on to joblib, checked above)
    unknown = [key for key in node if not str(key).startswith("_") and key not in taken]
    if unknown:
        choice = _choice(settings, group)
        takes = ", ".join(taken) or "no settings"
        raise UserError(f"hydra.{part}.{unknown[0]} is not a setting of the {choice} {part} ({plugin.__name__} takes {takes}); "
                        f"drop it, or choose a {part} that has it with {group}=NAME ({_installed(group)})")


def check_callbacks(settings: DictConfig) -> None:
    """Hydra's callbacks (`hydra.callbacks`): prune-cli's own is kept, and each one the user adds
    names something that can be imported, as Hydra will instantiate each as the launch begins.

    Without `sweep_watch` (`hydra.callbacks.sweep_watch=null`, or deleted) a sweep ran unheld, so a
    second `adapt --resume` of it could run beside it, and without its folder recorded; a callback
    whose `_target_` cannot be imported ended the launch in Hydra's traceback."""
    callbacks = OmegaConf.to_container(settings, resolve=False).get("callbacks") or {}
    ours = (callbacks.get(OWN_CALLBACK) or {}) if isinstance(callbacks, dict) else {}
    if not isinstance(ours, dict) or ours.get("_target_") != OWN_CALLBACK_TARGET:
        raise UserError(f"hydra.callbacks.{OWN_CALLBACK} is prune-cli's own callback (it holds a sweep's folder while the sweep runs and "
                        "records where it is); leave it as it is, and add your own beside it: +hydra.callbacks.NAME={_target_: ...}")
    for name, callback in callbacks.items():
        target = callback.get("_target_") if isinstance(callback, dict) else None
        if target is None:
            raise UserError(f"hydra.callbacks.{name} names no _target_; a callback is a mapping with the class Hydra makes it from: "
                            f"+hydra.callbacks.{name}={{_target_: my_package.MyCallback}}")
        try:
            _locate(str(target))
        except Exception as exc:  # noqa: BLE001 - an import error of any kind, or Hydra's own
            raise UserError(f"hydra.callbacks.{name}._target_={target} cannot be imported ({first_line(exc).rstrip(':')}); "
                            "name a class your Python can import, or drop the callback") from None


def check_logging(settings: DictConfig, part: str) -> None:
    """The logging set-ups Hydra applies (`hydra.job_logging`, `hydra.hydra_logging`: Python's
    `logging.config.dictConfig` schema) name what `dictConfig` can make: a level it knows
    (`level=warning`, lower case, is not one), a handler class that imports, and handlers and
    formatters that are defined. Hydra applied them only once it had made the run directory, so
    a slip there ended in its traceback and left the empty folder behind."""
    node = OmegaConf.to_container(settings[part], resolve=False)
    if not node:
        return  # Hydra's `none` option: it configures nothing
    if node.get("version") != 1:
        raise UserError(f"hydra.{part}.version={node.get('version')} is not supported: logging's dictConfig knows version 1 only")
    handlers, formatters = node.get("handlers") or {}, node.get("formatters") or {}
    places = {f"handlers.{name}": handler for name, handler in handlers.items()}
    places.update({"root": node.get("root") or {}}, **{f"loggers.{name}": logger for name, logger in (node.get("loggers") or {}).items()})
    for place, entry in places.items():
        if not isinstance(entry, dict):
            raise UserError(f"hydra.{part}.{place}={entry} is not a mapping of logging settings (level, handlers, ...)")
        level = entry.get("level")
        if level is not None and not isinstance(level, int) and not isinstance(logging.getLevelName(str(level)), int):
            raise UserError(f"hydra.{part}.{place}.level={level} is not a logging level; use DEBUG, INFO, WARNING, ERROR or "
                            "CRITICAL (upper case) or a number")
        for handler in entry.get("handlers") or []:
            if handler not in handlers:
                raise UserError(f"hydra.{part}.{place}.handlers names '{handler}', which hydra.{part}.handlers does not define "
                                f"(it has: {', '.join(handlers) or 'none'})")
    for name, formatter in formatters.items():
        _check_formatter(part, name, formatter)
    for name, handler in handlers.items():
        formatter = handler.get("formatter")
        if formatter is not None and formatter not in formatters:
            raise UserError(f"hydra.{part}.handlers.{name}.formatter={formatter} is not defined in hydra.{part}.formatters "
                            f"(it has: {', '.join(formatters) or 'none'})")
        if "class" in handler:
            try:
                made_by = _locate(str(handler["class"]))
            except Exception as exc:  # noqa: BLE001 - an import error of any kind, or Hydra's own
                raise UserError(f"hydra.{part}.handlers.{name}.class={handler['class']} cannot be imported "
                                f"({first_line(exc).rstrip(':')}); name a logging handler class, such as logging.StreamHandler") from None
            if not (isinstance(made_by, type) and issubclass(made_by, logging.Handler)):
                raise UserError(f"hydra.{part}.handlers.{name}.class={handler['class']} is not a logging handler class; "
                                "name one, such as logging.StreamHandler")


def _check_formatter(part: str, name: str, formatter: object) -> None:
    """A formatter of a logging set-up is one `logging.Formatter` takes (`format=abc` has no
    field, and logging refuses it); one its own factory makes (`()`) is that factory's business."""
    if not isinstance(formatter, dict):
        raise UserError(f"hydra.{part}.formatters.{name}={formatter} is not a mapping of formatter settings (format, datefmt, ...)")
    if "()" in formatter:
        return
    try:
        logging.Formatter(formatter.get("format"), formatter.get("datefmt"), formatter.get("style", "%"), validate=formatter.get("validate", True))
    except (TypeError, ValueError) as exc:
        raise UserError(f"hydra.{part}.formatters.{name} is not a format logging takes: {first_line(exc)}") from None


def check_job_folders(settings: DictConfig, jobs: Sequence[Sequence[str]], configs: Sequence[DictConfig],
                      same_run: Sequence[str | None]) -> None:
    """Before a sweep starts: the folders `hydra.sweep.subdir` gives its jobs are inside the sweep
    folder and one per job, but for jobs that run the very same thing (equal `same_run` keys, not
    None: a dense reference at each sparsity, whose repeats are skipped).

    A subdir without what tells two jobs apart (`hydra.sweep.subdir=abc`) sent them to one folder:
    the first ran, the second failed there as its turn came; an absolute one (`/abs`) or one
    that climbs out (`../up`) wrote runs where `report` of the sweep does not look.
    A subdir that reads what Hydra sets only as a job starts (`${hydra.job.override_dirname}`)
    is left to that check, as the job starts."""
    from prune_cli.config import varying_overrides

    raw = OmegaConf.to_container(settings.sweep, resolve=False).get("subdir")
    sweep_dir = Path(str(settings.sweep.dir))
    seen: dict[Path, int] = {}
    for number, cfg in enumerate(configs):
        sub = _job_subdir(raw, cfg, number)
        if sub is None:
            return
        if sub.is_absolute() or ".." in sub.parts:
            raise UserError(f"hydra.sweep.subdir={raw} puts job {number}'s folder at {sub}, outside the sweep folder {sweep_dir}, "
                            "which is where the sweep's runs are read from (`prune-cli report`); give a path within it (no leading / or ..)")
        if sub in seen and (same_run[number] is None or same_run[number] != same_run[seen[sub]]):
            apart = " and ".join(" ".join(varying_overrides(jobs[n], jobs)) or f"job {n}" for n in (seen[sub], number))
            raise UserError(f"hydra.sweep.subdir={raw} gives jobs {seen[sub]} and {number} ({apart}) the same folder {sub}; "
                            "include what tells them apart, such as the job's number (${hydra.job.num}), or leave it unset")
        seen.setdefault(sub, number)


def _job_subdir(raw: object, cfg: DictConfig, number: int) -> Path | None:
    """`hydra.sweep.subdir` resolved as Hydra resolves it for job `number` of config `cfg`; None
    where it reads a setting Hydra gives only as the job starts."""
    probe = OmegaConf.create(OmegaConf.to_container(cfg, resolve=False))
    probe.hydra = {"job": {"num": number}}
    probe.job_subdir = raw
    try:
        return Path(str(OmegaConf.select(probe, "job_subdir", throw_on_resolution_failure=True)))
    except Exception:  # noqa: BLE001 - a job-time value (hydra.job.id, override_dirname): not known before the job
        return None


def _check_joblib(node: DictConfig) -> None:
    """joblib's launcher hands its settings to `joblib.Parallel` only as the sweep starts: `n_jobs=0`
    or `prefer=xyz` made the sweep folder, then ended in joblib's traceback. The same checks,
    joblib's own, run here on the settings the launcher will pass: its backend is always loky, and
    it turns the text it types some settings as into numbers (`batch_size=3`) with its own function."""
    from joblib import Parallel, effective_n_jobs

    try:
        from hydra_plugins.hydra_joblib_launcher._core import process_joblib_cfg
    except ImportError:  # another version of the plugin: its own checks as the sweep starts
        return
    settings = {key: value for key, value in OmegaConf.to_container(node, resolve=True).items() if not str(key).startswith("_")}
    settings["backend"] = "loky"
    process_joblib_cfg(settings)
    try:
        Parallel(**settings)
        effective_n_jobs(settings.get("n_jobs"))
    except (TypeError, ValueError) as exc:
        raise UserError(f"hydra.launcher (joblib): {first_line(exc)}; see joblib.Parallel's settings, or drop the setting") from None


def _locate(path: str) -> object:
    """What a dotted path names (`hydra_plugins.x.Launcher`, `logging.StreamHandler`): its longest
    part that is a module, imported, then the rest as attributes. Hydra's own helpers
    (`hydra.utils.get_class`) would do it too, but log an error of their own before raising, and
    the refusal is to be the one line said."""
    parts = path.split(".")
    for cut in range(len(parts), 0, -1):
        module = ".".join(parts[:cut])
        try:
            found = importlib.import_module(module)
        except ModuleNotFoundError as missing:
            if missing.name is not None and module != missing.name and not module.startswith(f"{missing.name}."):
                raise  # the module is there, and something it imports is not
            continue
        for part in parts[cut:]:
            found = getattr(found, part)
        return found
    raise ModuleNotFoundError(f"No module named '{parts[0]}'")


def _written(value: object) -> str:
    """A setting's value as a command line writes it (null, not None)."""
    return "null" if value is None else str(value)


def _choice(settings: DictConfig, group: str) -> str | None:
    """The option of a Hydra group this launch composed (`basic` for hydra/launcher)."""
    return OmegaConf.select(settings, "runtime.choices", default={}).get(group)


def _installed(group: str) -> str:
    """The options of a Hydra group that this install has (its plugins register them as Hydra
    starts), as `installed: basic, joblib`."""
    from hydra.core.config_store import ConfigStore

    options = sorted(name.removesuffix(".yaml") for name in ConfigStore.instance().list(group))
    return f"installed: {', '.join(options)}" if options else "none installed"
