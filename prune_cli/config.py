"""Where the configs live (the package's, then the user's own folders), how to compose them
without a run, and what counts as a valid one.

Validation happens twice on purpose: `check_overrides` runs in the CLI before Hydra starts, so
a typo in a sweep costs nothing; `check_config` runs on every composed config, so raw
`key=value` overrides are caught too: before launch on every job a sweep expands to
(`sweep_jobs`, `check_jobs`), and again in each job as it starts (a mask run named by a
job may have changed in between).
"""

from __future__ import annotations

import decimal
import difflib
import functools
import itertools
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import yaml
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigAttributeError, ConfigKeyError, OmegaConfBaseException

from prune_cli.errors import NO_SPACE, UserError, first_line, not_utf8, yaml_problem

CONFIG_DIR = Path(__file__).resolve().parent / "configs"
CONFIG_NAME = "config"
USER_CONFIG_ENV = "PRUNE_CLI_CONFIG_PATH"


def user_config_dirs() -> tuple[Path, ...]:
    """Folders of the user's own options (`task/mytask.yaml`, `method/my_recipe.yaml`, ...), from
    $PRUNE_CLI_CONFIG_PATH (several joined by ':'), so a new task or recipe needs no edit of
    the package. Hydra searches them after the packaged configs: they add options, and a file
    with a packaged option's name does not replace it."""
    raw = os.environ.get(USER_CONFIG_ENV, "")
    folders = tuple(Path(part).expanduser().resolve() for part in raw.split(os.pathsep) if part.strip())
    for folder in folders:
        if not folder.is_dir():
            raise UserError(f"{USER_CONFIG_ENV} names {folder}, which is not a folder; it should hold "
                            "group folders such as task/ or method/ with your own .yaml options")
    return folders


def config_dirs() -> tuple[Path, ...]:
    return (CONFIG_DIR, *user_config_dirs())


def searchpath_overrides() -> list[str]:
    """The Hydra override that adds the user's config folders to the search path (none if unset)."""
    folders = user_config_dirs()
    return [f"hydra.searchpath=[{','.join(hydra_value(f'file://{folder}') for folder in folders)}]"] if folders else []


def config_path_now() -> str | None:
    """The $PRUNE_CLI_CONFIG_PATH value (folder[:folder]) of the folders searched now; None for none."""
    return os.pathsep.join(str(folder) for folder in user_config_dirs()) or None


def config_path_folders(searchpath: str | None) -> str | None:
    """The $PRUNE_CLI_CONFIG_PATH value (folder[:folder]) that a search path set by
    `searchpath_overrides` (its value, as a sweep's record keeps it) came from; None for none."""
    if searchpath is None:
        return None
    return os.pathsep.join(_searched_folders(parse_overrides([f"hydra.searchpath={searchpath}"])[0].value())) or None


def _searched_folders(searchpath: Any) -> list[str]:
    """The local folders (`file://` entries) of a `hydra.searchpath` value, as parsed."""
    entries = searchpath if isinstance(searchpath, list) else [searchpath]
    return [str(entry).removeprefix("file://") for entry in entries if str(entry).startswith("file://")]


def group_options(group: str) -> list[str]:
    return sorted({p.stem for folder in config_dirs() for p in (folder / group).glob("*.yaml")})


def config_groups() -> list[str]:
    """Every config group a `group=option` override can pick, `experiment` included."""
    return sorted({p.name for folder in config_dirs() if folder.is_dir() for p in folder.iterdir() if p.is_dir()})


def _dotted_keys(node: Any, prefix: str) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            dotted = f"{prefix}{key}"
            yield dotted
            yield from _dotted_keys(value, dotted + ".")


def key_sources() -> dict[str, tuple[str, ...]]:
    """Every dotted key any config file defines, as it appears in a composed config, with the
    choices that define it (`method=imp`, `+experiment=paper_fig2`, `config.yaml`).

    The union over all options of every group holds every key any composition can have, so an
    override of a key outside it can only be a typo. Hydra itself refuses `trainer.max_step=3`
    but suggests `+trainer.max_step=3`, which adds a key no code reads: the run would silently
    ignore the setting. These sources let both be refused with the nearest real key.
    """
    return _key_sources(config_dirs())


@functools.lru_cache(maxsize=4)
def _key_sources(folders: tuple[Path, ...]) -> dict[str, tuple[str, ...]]:
    sources: dict[str, list[str]] = {}
    for folder, path in ((folder, path) for folder in folders for path in sorted(folder.rglob("*.yaml"))):
        relative = path.relative_to(folder)
        group = relative.parts[0] if len(relative.parts) > 1 else None
        label = "config.yaml" if group is None else f"{'+' if group == 'experiment' else ''}{group}={path.stem}"
        for key in _file_keys(folders, group, path):
            sources.setdefault(key, []).append(label)
    return {key: tuple(labels) for key, labels in sources.items()}


def _file_keys(folders: tuple[Path, ...], group: str | None, path: Path, seen: frozenset[Path] = frozenset()) -> set[str]:
    """The dotted keys a config file gives a composed config: its own, and those of the options of
    its group that its defaults list starts from (`defaults: [adapt_by_pruning, _self_]` in
    method/adapt_by_pruning_stop_at_s.yaml), so a recipe built on another is listed as having the
    keys it inherits. Entries naming another group (`override /trainer: gpu`) choose an option of
    that group, whose keys are that option's, not this file's. `seen`: the files on the way here
    (a defaults loop, which Hydra refuses, stops here rather than recursing for ever)."""
    seen = seen | {path}
    try:
        text = path.read_text(encoding="utf-8")  # once: its first line says where its keys go, the whole is the config
    except UnicodeDecodeError as exc:
        raise UserError(f"config file {path} is {not_utf8(exc)}; mend or remove it") from None
    is_global = group is None or "@package _global_" in text.split("\n", 1)[0]
    content = _config_file_content(path, text)
    own = {k: v for k, v in content.items() if k not in ("defaults", "hydra")}
    keys = set(_dotted_keys(own, "") if is_global else _dotted_keys({group: own}, ""))
    for base in _base_options(content) if group is not None else []:
        base_path = _option_file(folders, group, base)
        if base_path is not None and base_path not in seen:
            keys |= _file_keys(folders, group, base_path, seen)
    return keys


def _config_file_content(path: Path, text: str) -> dict:
    """A config file's keys. Every file of every config folder is read for the key check, so one
    broken file of a user's own (`$PRUNE_CLI_CONFIG_PATH`) fails every command, even one that does
    not choose it: it is named in one line, where YAML's or OmegaConf's traceback was."""
    try:
        parsed = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise UserError(f"config file {path} is not valid YAML ({yaml_problem(exc)}); mend or remove it") from None
    if parsed is None:
        return {}
    if not isinstance(parsed, dict):
        raise UserError(f"config file {path} holds a YAML {type(parsed).__name__}, not a config (keys with values); mend or remove it")
    try:
        return OmegaConf.to_container(OmegaConf.create(text), resolve=False)
    except Exception as exc:  # OmegaConf's own grammar: an interpolation left open (`${oops`)
        raise UserError(f"config file {path} cannot be read by OmegaConf ({first_line(exc)}); mend or remove it") from None


def _option_file(folders: Sequence[Path], group: str, option: str) -> Path | None:
    """The file of a group's option: the first of the config folders that has one (the packaged
    configs come first, so a user's file of the same name does not replace a packaged option)."""
    return next((path for folder in folders if (path := folder / group / f"{option}.yaml").is_file()), None)


def _base_options(content: Any) -> list[str]:
    """The options of its own group that a group option's defaults list starts from
    (`defaults: [adapt_by_pruning, _self_]`); an entry choosing another group's option is a dict."""
    return [entry for entry in (content.get("defaults") or []) if isinstance(entry, str) and entry != "_self_"]


def unknown_key_error(key: str) -> UserError:
    """The one-line error for an override of a key the composed config does not have: a typo
    (with the nearest real key), or a setting of another option (with the options that have it)."""
    sources = key_sources()
    if key in sources:
        return UserError(f"config key '{key}' does not exist with these choices; it is a setting of {', '.join(sources[key])}")
    # the nearest key of the same group first: `model.name` means `model.name_or_path`, not `method.name`
    siblings = sorted(k for k in sources if k.rpartition(".")[0] == key.rpartition(".")[0])
    nearest = difflib.get_close_matches(key, siblings, n=1, cutoff=0.6) or difflib.get_close_matches(key, sorted(sources), n=1, cutoff=0.6)
    hint = f"; did you mean '{nearest[0]}'?" if nearest else ""
    return UserError(f"no config key '{key}'{hint} (`prune-cli show-config` prints every key)")


def nearest_option(typed: str, options: Sequence[str]) -> str | None:
    """The option meant by `--task SST2`, `sst-2` or `sts2`, `--model bert-base`: the one spelt the
    same but for case, dashes and underscores, else the only one that starts so (four letters or
    more), else the nearest by difflib; None where none is near."""
    def plain(name: str) -> str:
        return re.sub(r"[-_]", "", name.lower())
    same = [option for option in options if plain(option) == plain(typed)]
    longer = [option for option in options if len(plain(typed)) >= 4 and plain(option).startswith(plain(typed))]
    nearest = same or (longer if len(longer) == 1 else []) or difflib.get_close_matches(typed.lower(), list(options), n=1, cutoff=0.75)
    return nearest[0] if nearest else None


def check_added_keys(overrides: Sequence[str], cfg: DictConfig) -> None:
    """`+method.key=value` may add a setting the chosen method's file leaves out (the paper recipe
    has no `unseen_tokens_first`), but only one that some file gives to the same algorithm: any
    other would be added, never read, and the run would not do what was asked."""
    sources = key_sources()
    for override in parse_overrides(overrides):
        key = override.key_or_group
        if not (override.is_add() or override.is_force_add()) or not key.startswith("method.") or key not in sources:
            continue
        algorithms = {_method_algorithm(label) for label in sources[key]}
        if None not in algorithms and cfg.method.algorithm not in algorithms:
            raise UserError(f"'{override.input_line}' would never be read: {key} is a setting of "
                            f"{', '.join(sources[key])}, not of method={cfg.method.name}")


def _method_algorithm(label: str) -> str | None:
    """The method algorithm a config file configures (None for files that configure no method);
    a recipe that starts from another (`defaults: [adapt_by_pruning, _self_]`) has its algorithm."""
    group, _, option = label.lstrip("+").partition("=")
    if group != "method":
        return None
    path = _option_file(config_dirs(), group, option)
    if path is None:
        return None
    content = OmegaConf.load(path)
    own = content.get("algorithm") or content.get("method", {}).get("algorithm")
    return own or next((found for base in _base_options(content) if (found := _method_algorithm(f"method={base}"))), None)


def _is_config_key(key: str, groups: Sequence[str]) -> bool:
    """Keys of our own config, as opposed to Hydra's (`hydra.run.dir`, `hydra/launcher`) or a group."""
    return not (key == "hydra" or key.startswith(("hydra.", "hydra/")) or "/" in key or key in groups)


_UNIQUE_DIR_ASKED: dict[str, str] = {}  # {a folder `unique_dir` chose: the path it was asked for}, for `claim_new_folder`


def _unique_dir(path: str) -> str:
    """Hydra resolver: the path itself if unused, else path_2, path_3, ... (never reuse a run dir).
    Only a choice: `claim_new_folder` makes the folder, before Hydra writes there."""
    candidate = next(name for name in _numbered(path) if not name.exists())
    _UNIQUE_DIR_ASKED[str(candidate)] = path
    return str(candidate)


def _numbered(path: str) -> Iterator[Path]:
    """path, path_2, path_3, ...: the names `unique_dir` picks from."""
    yield Path(path)
    for n in itertools.count(2):
        yield Path(f"{path}_{n}")


def picked_by_unique_dir(folder: str) -> bool:
    """Whether `unique_dir` picked this folder for the launch whose settings were read last
    (`launch_settings`), rather than the command or an experiment naming it outright."""
    return folder in _UNIQUE_DIR_ASKED


def claim_new_folder(folder: str, key: str) -> str:
    """Make the run or sweep folder a launch was checked for, as this process's own, before Hydra
    writes there; returns the folder made, which the launch then names to Hydra.

    `unique_dir` picks the first name not there (the time to the second, then `_2`, ...), and
    two launches in the same second (`for s in 1 2 3; do prune-cli adapt seed=$s & done`) both
    picked it: Hydra wrote both configs there, and the run that finished kept the other's
    `.hydra/config.yaml` (its record said seed 3 beside seed 2's mask) while the other was
    refused as "in use". A folder `unique_dir` chose is made with an exclusive mkdir, the next
    name taken where another process made it first; a folder named outright (`hydra.run.dir=`)
    is made if need be, and the folder lock decides between two launches into it. `key` is the
    setting that names the folder (hydra.run.dir, hydra.sweep.dir), for the error."""
    asked = _UNIQUE_DIR_ASKED.get(folder)
    try:
        if asked is None:
            Path(folder).mkdir(parents=True, exist_ok=True)
            return folder
        for candidate in _numbered(asked):
            while True:
                candidate.parent.mkdir(parents=True, exist_ok=True)
                try:
                    candidate.mkdir()
                    return str(candidate)
                except FileNotFoundError:  # its parent removed meanwhile, by a refused launch's clean-up: made again
                    continue
                except FileExistsError:
                    break
    except OSError as exc:
        raise UserError(f"cannot create {folder}: {exc.strerror}; run from a writable folder or set {key}=<writable path>") from None
    raise AssertionError("unreachable: the names are endless")


def _config_subdir(run_dir: str) -> str | None:
    """Hydra resolver for `hydra.output_subdir`, read as each job starts (`rundir.config_subdir`).
    The one moment before Hydra writes a sweep job's config, so the job claims its folder here
    (`rundir.claim_job_folder`); the job itself reads the claim back when it runs."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from prune_cli import rundir

    job = HydraConfig.get() if HydraConfig.initialized() else None
    in_sweep = job is not None and job.mode == RunMode.MULTIRUN and job.job.get("num") is not None
    claimed = in_sweep and rundir.claim_job_folder(Path(str(job.sweep.dir)).absolute(), Path(run_dir), int(job.job.num)) is not None
    return rundir.config_subdir(Path(run_dir), claimed_by_another=claimed)


def register_resolvers() -> None:
    if not OmegaConf.has_resolver("unique_dir"):
        OmegaConf.register_new_resolver("unique_dir", _unique_dir, use_cache=True)
    if not OmegaConf.has_resolver("config_subdir"):  # not cached: each job asks about its own folder, as it starts
        OmegaConf.register_new_resolver("config_subdir", _config_subdir, use_cache=False)


def unit_fraction(name: str, value: Any, example: str, meaning: str) -> float:
    """`value` as a number in [0, 1), or a one-line error that names the option and shows an example."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise UserError(f"{name}={value!r} is not a number; use a value in [0, 1), e.g. {example}") from None
    if not 0.0 <= number < 1.0:
        raise UserError(f"{name}={value} is outside [0, 1); e.g. {example} {meaning}")
    return number


def check_sparsity(value: Any) -> float:
    return unit_fraction("sparsity", value, "--sparsity 0.5", "prunes half of the maskable weights")


def hydra_error_line(exc: BaseException) -> str:
    """Hydra's errors span several lines; keep what names the problem and the fix, on one line.

    A heading's tab-indented items ("Available options in 'hydra/launcher':", then one option a
    line) become one comma list after it; the config search path, which names this install's
    folders rather than the mistake, is left out."""
    noise = ("full_key:", "object_type", "HYDRA_FULL_ERROR", "reference_type")
    blocks: list[tuple[str, list[str]]] = []  # (a line, the tab-indented lines under it)
    for raw in str(exc).splitlines():
        line = raw.strip()
        if not line or any(n in line for n in noise):
            continue
        if raw.startswith("\t") and blocks:
            blocks[-1][1].append(line)
        else:
            blocks.append((line, []))
    parts = [f"{line} {', '.join(items)}" if items else line.rstrip(".:")
             for line, items in blocks if not line.startswith("Config search path")]
    return "; ".join(parts) or type(exc).__name__


def split_tasks_and_overrides(tasks: Sequence[str], overrides: Sequence[str]) -> tuple[list[str], list[str]]:
    """(task names, Hydra overrides) from a script's `--tasks A B` option and its trailing overrides.
    argparse gives `--tasks` every word up to the next option, so overrides typed after it (as the
    scripts' usage lines show them) arrived as task names: the first task then ran without them. An
    override always holds '=', a task name never does."""
    return [t for t in tasks if "=" not in t], [*(t for t in tasks if "=" in t), *overrides]


def options_to_overrides(task: str | None, sparsity: str | None, method: str | None, model: str | None,
                         seed: str | None) -> list[str]:
    """Map `adapt`'s options (the CLI's, or `prune_cli.api.adapt`'s) onto Hydra overrides; comma
    lists become sweeps under --multirun."""
    overrides = []
    if task is not None:
        overrides.append(f"task={quoted_choices(task)}")
    if method is not None:
        overrides.append(f"method={quoted_choices(method)}")
    if model is not None:
        names = model.split(",")
        known = group_options("model")
        overrides.append(f"model={model}" if all(n in known for n in names) else f"model.name_or_path={quoted_choices(model)}")
    if sparsity is not None:
        overrides.append(f"sparsity={sparsity}")
    if seed is not None:
        overrides.append(f"seed={seed}")
    return overrides


class _GroupOptions:
    """What Hydra's override parser asks of a config loader to expand a `glob(...)` sweep: a
    group's options. Without one, Hydra cannot expand a glob at all ("ConfigLoader is not set");
    `group_options` knows the user's own folders too."""

    def get_group_options(self, group_name: str, results_filter: Any = None) -> list[str]:
        return group_options(group_name)


def quoted_choices(text: str) -> str:
    """An option's text as the value of a Hydra override, each comma-separated choice (a sweep under
    --multirun) as `hydra_value` writes it."""
    return ",".join(hydra_value(choice) for choice in text.split(","))


def hydra_value(text: str) -> str:
    """`text` as one value of a Hydra override: kept as it is where Hydra reads it back as that text,
    else single-quoted. An option or a path is text, not override syntax: `--model "/data/my
    models/bert"` was "invalid override: LexerNoViableAltException", a folder named `null` or `1`
    would have been read as null or a number, and continuing a sweep launched under a folder with a
    letter beyond ASCII (`/home/josé`) failed in Hydra's own traceback."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    try:
        if not re.search(r"\s", text) and OverridesParser.create().parse_override(f"key={text}").value() == text:
            return text
    except HydraException:  # the parser's own error, or its lexer's (a character it has no token for: 'ü')
        pass
    # in a quoted value, backslashes are literal except before a quote or the closing quote
    escaped = re.sub(r"(\\+)(?='|$)", lambda run: run.group(1) * 2, text).replace("'", "\\'")
    return f"'{escaped}'"


def parse_overrides(overrides: Sequence[str]) -> list[Any]:
    """Hydra's parse of override strings (its `Override` objects), a malformed one as one line."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import OverrideParseException

    flag = next((override for override in overrides if override.startswith("-")), None)
    if flag is not None:  # no override starts with "-"; an unknown flag reaches here as one (the CLI passes extra arguments on)
        raise UserError(f"unknown option {flag!r} (--help lists the command's options); Hydra's own flags (--cfg, --info, ...) "
                        "are not passed on: `prune-cli show-config` prints the composed config")
    try:
        parsed = OverridesParser.create(config_loader=_GroupOptions()).parse_overrides(list(overrides))  # type: ignore[arg-type]
    except OverrideParseException as exc:
        raise UserError(f"invalid override: {first_line(exc)} (a value with quotes, brackets, '=' or letters beyond ASCII "
                        "goes in single quotes: key='value')") from None
    for override in parsed:
        _refuse_interval(override)
        _refuse_unlistable_range(override)
        _refuse_grid_override(override)
    return parsed


def _refuse_delete(override: Any, groups: Sequence[str]) -> None:
    """`~key` deletes a key from the composed config, and every key of prune-cli's config is one it
    reads: `~method.gamma` ended the run in Hydra's traceback, `~seed` the dry run in OmegaConf's,
    and others were read back at a default no one chose or refused with a misleading reason ("a
    sparsity config file of your own leaves it out"). Hydra's own keys (`~hydra.x`) are Hydra's."""
    key = override.key_or_group
    if key in STARTING_OPTIONS:
        raise UserError(f"'{override.input_line}' removes the {key} choice, which every run needs; choose one instead: "
                        f"{key}={'|'.join(group_options(key))}")
    if _is_config_key(key, groups):  # not Hydra's, nor an optional group (experiment), which Hydra answers for
        raise UserError(f"'{override.input_line}' deletes {key}, which prune-cli reads; set it instead ({key}=..., "
                        f"or {key}=null where it takes null: `prune-cli show-config` shows its value)")


def _refuse_searchpath(override: Any) -> None:
    """`hydra.searchpath=[file://my-configs]`, Hydra's way to add config folders, was passed on to
    Hydra while prune-cli's checks read the folders of $PRUNE_CLI_CONFIG_PATH only, so an option
    there was refused as unknown ("unknown experiment 'mine'"). prune-cli sets the search path
    from that variable, and a continued sweep sets it again: it is the one way."""
    folders = _searched_folders(override.value())
    example = f"{USER_CONFIG_ENV}={os.pathsep.join(folders)} prune-cli ..." if folders else f"{USER_CONFIG_ENV}=my-configs prune-cli ..."
    raise UserError(f"'{override.input_line}': prune-cli adds config folders of your own to Hydra's search path from "
                    f"${USER_CONFIG_ENV} (folders joined by '{os.pathsep}'): {example}")


def _refuse_interval(override: Any) -> None:
    """`sparsity=interval(0,1)` is a range a sampling sweeper (Optuna's) draws values from, and
    Hydra's basic sweeper cannot list: it ended `adapt -m` in Hydra's traceback ("Can only
    enumerate CHOICE and RANGE sweeps"). prune-cli lists and checks every job before the first."""
    from hydra.core.override_parser.types import ValueType

    if override.value_type == ValueType.INTERVAL_SWEEP:
        raise UserError(f"'{override.input_line}' is an interval, which only a sweeper that samples values draws from; prune-cli "
                        "lists and checks every job of a sweep before the first starts: give the values (key=a,b), "
                        "range(start,stop,step) or choice(a,b)")


# The most jobs a sweep may have: prune-cli lists and checks every job before the first starts
# (about 0.1 s a job on a 2-core CPU, so this many take a quarter of an hour), and Hydra's basic
# sweeper lists them all at once in memory
MAX_SWEEP_JOBS = 10_000


def _refuse_unlistable_range(override: Any) -> None:
    """A `range(...)` sweep Hydra cannot list, or one longer than any sweep may be, refused as it is
    parsed: `seed=range(0,3,0)` ended the checks in Python's traceback ("range() arg 3 must not be
    zero"), `range(0.1,0.5,0.0)` in Hydra's, and `seed=range(0,1e400)` (or a step of 1e-300) never
    ended, as the checks list every value before the first job starts."""
    from hydra.core.override_parser.types import RangeSweep

    value = override.value() if override.is_sweep_override() else None
    if not isinstance(value, RangeSweep):
        return
    bounds = [decimal.Decimal(value.start), decimal.Decimal(value.stop), decimal.Decimal(value.step)]
    if not all(bound.is_finite() for bound in bounds):
        raise UserError(f"'{override.input_line}': a range's start, stop and step are finite numbers")
    start, stop, step = bounds
    if step == 0:
        raise UserError(f"'{override.input_line}' has a step of 0, which never reaches its stop; give a step above 0 "
                        "(or below, to count down): range(start,stop,step)")
    count = max(0, math.ceil((stop - start) / step))
    if count > MAX_SWEEP_JOBS:
        said = f"{count:,}" if count < 10**12 else f"about {float(count):.0e}"
        raise UserError(f"'{override.input_line}' lists {said} values, more than a sweep may have ({MAX_SWEEP_JOBS:,} jobs: "
                        "prune-cli lists and checks every job before the first starts); give a shorter range or a larger step")


def _refuse_grid_override(override: Any) -> None:
    """`hydra.sweeper.params.seed=1,2` (or `hydra.sweeper.params={seed:...}`) ended every command in
    Hydra's traceback ("Unexpected type for root: NoneType"): the grid is empty until an
    experiment file gives one. A key's own override says the same thing and works everywhere, an
    experiment's grid included (it takes the place of that key's values there); `=null` and `={}`,
    which clear an experiment's grid, compose and stay allowed."""
    key = override.key_or_group
    if key.startswith("hydra.sweeper.params.") or (key == "hydra.sweeper.params" and override.value() not in (None, {})):
        example = (f"-m {key.removeprefix('hydra.sweeper.params.')}={override.input_line.split('=', 1)[1]}"
                   if key != "hydra.sweeper.params" else "-m seed=1,2")
        raise UserError(f"'{override.input_line}': hydra.sweeper.params is the grid an experiment file lists; on the command line "
                        f"give the key's values as its own override ({example}), which also takes the place of its values in an "
                        "experiment's grid")


def first_combination(overrides: Sequence[str]) -> list[str]:
    """The overrides with every sweep reduced to its first value (to compose one job up front)."""
    result = []
    for override in parse_overrides(overrides):
        if override.is_sweep_override():
            result.append(f"{override.get_key_element()}={next(iter(override.sweep_string_iterator()))}")
        else:
            result.append(override.input_line)
    return result


BASIC_SWEEPER = "hydra._internal.core_plugins.basic_sweeper.BasicSweeper"


def launch_settings(overrides: Sequence[str]) -> DictConfig:
    """Hydra's own settings for a launch (`hydra.mode`, the sweeper, the run and sweep folders),
    composed once from the first combination and read by every pre-launch check."""
    _UNIQUE_DIR_ASKED.clear()  # the folders `unique_dir` picks for this launch, as its settings are read
    return _hydra_compose(first_combination(overrides), with_hydra=True).hydra


def config_sweeps(settings: DictConfig) -> bool:
    """Whether the composed config itself asks for a sweep (an experiment's `hydra.mode:
    MULTIRUN`), so that `adapt +experiment=paper_fig2` is checked and launched as the sweep it
    is, -m or not."""
    return str(settings.mode) == "RunMode.MULTIRUN"


def sweep_jobs(overrides: Sequence[str], settings: DictConfig) -> list[list[str]]:
    """Every job's overrides, as Hydra's basic sweeper makes them (with its own
    `split_arguments`, so the jobs are the ones it launches): the config's
    `hydra.sweeper.params` (an experiment's grid) first, then the command line's, a later value
    of a key replacing an earlier one, crossed. Another sweeper (Optuna, say) picks its jobs as
    it goes; then only the first combination is known in advance."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper

    if settings.sweeper.get("_target_") != BASIC_SWEEPER:
        return [first_combination(overrides)]
    params = [f"{key}={value}" for key, value in (settings.sweeper.get("params") or {}).items()]
    try:
        grid = parse_overrides(params)
    except UserError as exc:
        raise UserError(f"in the grid of hydra.sweeper.params: {exc}") from None
    parsed = [*grid, *parse_overrides(overrides)]
    _refuse_too_many_jobs(parsed)
    [jobs] = BasicSweeper.split_arguments(parsed, None)
    return jobs


def _refuse_too_many_jobs(parsed: Sequence[Any]) -> None:
    """A grid of more jobs than a sweep may have (MAX_SWEEP_JOBS), counted as the basic sweeper
    crosses them (a later value of a key replacing an earlier), before it lists them: three keys of
    a hundred values each made a million jobs, listed in memory and checked one by one for a day."""
    counts: dict[str, int] = {}
    for override in parsed:
        counts[override.get_key_element()] = len(list(override.sweep_string_iterator())) if override.is_sweep_override() else 1
    jobs = math.prod(counts.values())
    if jobs > MAX_SWEEP_JOBS:
        crossed = " × ".join(f"{count} {key}" for key, count in counts.items() if count > 1)
        raise UserError(f"the sweep crosses {crossed}: {jobs:,} jobs, more than a sweep may have ({MAX_SWEEP_JOBS:,}: prune-cli lists "
                        "and checks every job before the first starts); split it into smaller sweeps")


def varying_overrides(job: Sequence[str], jobs: Sequence[Sequence[str]]) -> list[str]:
    """A sweep job's overrides that tell it from the others (`sparsity=0.7`, `seed=2`): how errors and
    `adapt --dry-run` name a job."""
    return [entry for entry in job if any(entry not in other for other in jobs)]


def check_jobs(jobs: Sequence[Sequence[str]], check_first: Callable[[DictConfig], None] | None = None,
               continuing: bool = False) -> list[DictConfig]:
    """Compose and check every job of a sweep (`sweep_jobs`) before any starts, and return their
    configs; `check_first` runs on each composed job before the usual checks (`compose`), and
    `continuing` says the sweep has run before (`adapt --resume SWEEP`), so its finished jobs are
    not "not started".

    Checking the first combination alone let a bad later one (another run's mask at a different
    sparsity, a hold that no longer fits a longer ramp) fail only when its turn came, hours into
    the sweep, and a key one swept method lacks end in Hydra's multi-line refusal after the
    sweep folder was made. The cost is one composition per job, about 0.1 s."""
    failures: list[tuple[int, Sequence[str], UserError]] = []
    composed = []
    for number, job in enumerate(jobs):
        try:
            composed.append(compose(job, check_first))
        except UserError as error:
            failures.append((number, job, error))
    if failures:
        number, job, error = failures[0]
        settings = " ".join(varying_overrides(job, jobs))
        others = len(failures) - 1
        also = f" ({others} other job{'s' if others > 1 else ''} of {len(jobs)} fail{'' if others > 1 else 's'} too)" if others else ""
        outcome = "no job was run again" if continuing else "no job has started"
        raise UserError(f"sweep job {number} ({settings or 'its settings'}): {error}{also}; {outcome}")
    return composed


def _check_given_once(override: Any, given: dict[tuple[str, str | None], Any]) -> None:
    """Refuse a key a command sets twice (`--sparsity 0.9 sparsity=0.5,0.7`, or `a=1 ... a=2`).

    Why: Hydra keeps the last and says nothing, so a typed option loses to a later override unseen,
    and under -m its basic sweeper drops a whole sweep dimension: `-m sparsity=0.5,0.7 sparsity=0.9`
    runs one job, not two or three. A key an experiment's grid sweeps may still be set once here."""
    identity = (override.key_or_group, override.package)
    first = given.get(identity)
    if first is None:
        given[identity] = override
        return
    from prune_cli import rundir

    sweep_hint = ("; a sweep lists all its values in one override (key=a,b)"
                  if first.is_sweep_override() or override.is_sweep_override() else "")
    raise UserError(f"{rundir.override_key(override.input_line)} is given twice ('{first.input_line}', then "
                    f"'{override.input_line}'); give it once: Hydra would keep only the last{sweep_hint}")


# How the caller of check_overrides can sweep, said where a comma list comes without one: the CLI's
# `adapt` has -m; `show-config` and the scripts compose one config, Python's `api.adapt` runs one run.
SWEEP_WITH_MULTIRUN = "add -m/--multirun to sweep over them"
SWEEP_NOT_HERE_COMPOSE = "one config is composed here: give one value (`prune-cli adapt -m` sweeps over several)"
SWEEP_NOT_HERE_ONE_RUN = "this call runs one run: give one value, and loop in Python or sweep with `prune-cli adapt -m`"


def check_overrides(overrides: Sequence[str], multirun: bool = False, sweep_hint: str = SWEEP_WITH_MULTIRUN) -> None:
    """Reject bad group choices, bad sparsities, malformed overrides and a key given twice before anything runs."""
    groups, sources = config_groups(), key_sources()
    given: dict[tuple[str, str | None], Any] = {}
    parsed = parse_overrides(overrides)
    named = {override.key_or_group for override in parsed}  # the keys the command line sets
    for override in parsed:  # first: it would change which options there are
        if override.key_or_group == "hydra.searchpath":
            _refuse_searchpath(override)
    for override in parsed:
        key = override.key_or_group
        _check_given_once(override, given)
        if _is_config_key(key, groups) and override.package is None and key not in sources:
            raise unknown_key_error(key)
        if override.is_delete():
            _refuse_delete(override, groups)
            continue
        if override.is_sweep_override() and not multirun:
            raise UserError(f"'{override.input_line}' lists several values; {sweep_hint}")
        if key in TEXT_SETTINGS:
            _refuse_text_read_as_another(override)
        values = list(override.sweep_string_iterator()) if override.is_sweep_override() else [override.get_value_element_as_str()]
        if not values:
            raise UserError(f"'{override.input_line}' sweeps over no values"
                            + (f"; {key}'s options: {', '.join(group_options(key))}" if key in groups else ""))
        if key in groups:
            options = group_options(key)
            for value in values:
                if value not in options:
                    typed = value[1:-1] if len(value) > 1 and value[0] == value[-1] and value[0] in "'\"" else value  # as typed, unquoted
                    near = nearest_option(typed, options)
                    raise UserError(f"unknown {key} '{typed}'; choose from: {', '.join(options)}" + (f"; did you mean '{near}'?" if near else ""))
                check_own_option(key, value, named_on_command_line=f"{key}.name" in named)
        elif key == "sparsity":
            for value in values:
                if not re.search(r"\$\\?\{", value):  # an interpolation (sparsity=${oc.env:S}) is checked once composed, resolved
                    check_sparsity(value)


@dataclass(frozen=True)
class Setting:
    """What a scalar setting must be: its kind and, for numbers, the interval it must lie in."""

    kind: str                      # "int" | "number" | "bool"
    low: float | None = None
    high: float | None = None
    low_open: bool = False         # low itself not allowed
    high_open: bool = False
    nullable: bool = False

    def describe(self) -> str:
        if self.kind == "bool":
            return "true or false"
        bounds = []
        if self.low is not None:
            bounds.append(f"{'>' if self.low_open else '>='} {self._bound(self.low)}")
        if self.high is not None:
            bounds.append(f"{'<' if self.high_open else '<='} {self._bound(self.high)}")
        kind = "an integer" if self.kind == "int" else "a number"
        return f"{kind}{' ' + ' and '.join(bounds) if bounds else ''}{', or null' if self.nullable else ''}"

    def _bound(self, bound: float) -> str:
        """An integer's bound in full (4294967295, not 4.29497e+09)."""
        return str(int(bound)) if self.kind == "int" else f"{bound:g}"

    def accepts(self, value: Any) -> bool:
        if value is None:
            return self.nullable
        if self.kind == "bool":
            return isinstance(value, bool)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        if self.kind == "int" and not isinstance(value, int):  # 1e9 is a float to Hydra, and range() takes none
            return False
        if not math.isfinite(value):  # nan passes every comparison as neither too low nor too high
            return False
        too_low = self.low is not None and (value <= self.low if self.low_open else value < self.low)
        too_high = self.high is not None and (value >= self.high if self.high_open else value > self.high)
        return not (too_low or too_high)


NUMBER = Setting("number")
POSITIVE = Setting("number", low=0, low_open=True)
NON_NEGATIVE = Setting("number", low=0)
COUNT = Setting("int", low=1)
FLAG = Setting("bool")
SHARE = Setting("number", low=0, high=1)
SEED = Setting("int", low=0, high=2**32 - 1)  # numpy's seeds (np.random.seed, RandomState) take no more
# Every scalar setting a run reads, checked by one loop before any data is read, so that a value
# Hydra parses but the code cannot use (seed=abc, head.lr=-1, method.t_small=-1, a flag set to
# "yes") is a one-line error, not a traceback mid-run or a run that silently does something else.
# The two with checks of their own (sparsity, method.theta_beta1) are not here.
OWN_CHECKS = ("sparsity", "method.theta_beta1")
SETTINGS: dict[str, Setting] = {
    "seed": SEED,
    "trainer.batch_size": COUNT,
    "trainer.eval_batch_size": COUNT,
    "trainer.max_steps": Setting("int", low=1, nullable=True),
    "trainer.epochs": Setting("number", low=0, low_open=True, nullable=True),
    "trainer.num_threads": Setting("int", low=1, high=1024, nullable=True),  # torch.set_num_threads(10**9) aborted in libgomp asking for 216 GB
    "trainer.log_every": Setting("int", low=0),
    "trainer.eval_every": Setting("int", low=0),
    "trainer.progress": FLAG,
    "data.max_seq_length": Setting("int", low=2),  # [CLS] [SEP]; the text's room and the model's limit: runner.load_encoder
    "data.max_train_samples": Setting("int", low=1, nullable=True),
    "data.max_eval_samples": Setting("int", low=1, nullable=True),
    "data.holdout": Setting("int", low=1, nullable=True),
    "data.holdout_seed": SEED,
    "checkpoint.every_steps": Setting("int", low=0),
    "checkpoint.keep": FLAG,
    "head.lr": POSITIVE,
    "head.dropout": Setting("number", low=0, high=1, high_open=True),
    "head.weight_decay": NON_NEGATIVE,
    "head.lr_decay": FLAG,
    "head.retrain_steps": Setting("int", low=1, nullable=True),
    "method.theta_lr": POSITIVE,
    "method.lr": POSITIVE,
    "method.weight_decay": NON_NEGATIVE,
    "method.gamma": NON_NEGATIVE,
    "method.gamma_update_every": COUNT,
    "method.t_large": POSITIVE,
    "method.t_small": POSITIVE,
    "method.init_mean": POSITIVE,  # theta_0 > 0: every weight is kept at the start (Alg. 1)
    "method.init_std": NON_NEGATIVE,
    "method.theta_momentum": Setting("number", low=0, high=1, high_open=True),
    "method.rate": Setting("number", low=0, high=1, low_open=True, high_open=True),
    "method.prune_every": COUNT,
    "method.round_steps": Setting("int", low=1, nullable=True),
    "method.start_fraction": SHARE,
    # shares of the budget: numbers here; check_config's own checks give their ranges, which
    # depend on one another (the ramp's order), with a message that says so
    "method.warmup_fraction": NUMBER,
    "method.head_warmup_fraction": NUMBER,
    "method.prune_fraction": NUMBER,
    "method.hold_fraction": NUMBER,
    "method.hold_theta_lr": Setting("number", low=0, low_open=True, nullable=True),
    "method.end_fraction": SHARE,
    "method.theta_lr_decay": FLAG,
    "method.encoder_dropout": FLAG,
    "method.unseen_tokens_first": FLAG,
    "method.no_recovery": FLAG,
}


_ABSENT = object()


def check_settings(cfg: DictConfig) -> None:
    """Each scalar setting the composed config has, against `SETTINGS`."""
    for key, setting in SETTINGS.items():
        value = OmegaConf.select(cfg, key, default=_ABSENT)
        if value is not _ABSENT and not setting.accepts(value):
            written = ""
            if isinstance(value, float) and not math.isfinite(value):
                written = " (a finite one; Hydra reads nan and inf as those floats)"
            elif setting.kind == "int" and isinstance(value, float) and value.is_integer():
                written = f" (write it without a decimal point or exponent: {key}={int(value)})"
            raise UserError(f"{key}={value!r} must be {setting.describe()}{written}")


# Text settings that are free (names) or checked on their own (the method by METHODS, the model by
# loading it, the device and precision by training's own checks, a transfer's mask run by
# check_transfer); every other text setting is a
# choice, in `choices()`. A test holds every text key of the config files to one list or the other.
FREE_OR_OWN_TEXT = ("method.name", "trainer.name", "method.algorithm", "model.name_or_path", "model.revision", "task.hub.revision",
                    "trainer.device", "trainer.precision", "method.mask_run")


# Text the run writes into its record and labels (metrics.json, the mask's manifest, report's
# tables): one value each, never a list or a mapping (`check_text_settings`).
LABELS = ("tag", "method.name", "trainer.name", "task.name")

# Labels that name a run's folder (outputs/<task.name>/<method.name>/s<sparsity>/..., and a sweep
# job's under its sweep folder), checked to be one folder's name (`check_text_settings`)
FOLDER_LABELS = ("task.name", "method.name")

# Every setting that holds text, whose value the run takes as typed (`check_text_settings`)
TEXT_SETTINGS = (*dict.fromkeys((*LABELS, *FREE_OR_OWN_TEXT, "data.dir")),)


def check_text_settings(cfg: DictConfig) -> None:
    """Each text setting (`FREE_OR_OWN_TEXT`, `LABELS`) holds one value. `tag=[a]` ran its whole
    training and then failed writing metrics.json (a list is not JSON, a traceback), losing the
    run; `method.name=[a]` named the run's folder "['a']", and `data.dir=[a]` failed in a traceback.
    A number is taken as its text (`label_text`): `tag=2` is the label "2", `model.revision=1234567`
    a commit, `data.dir=5` a folder."""
    for key in TEXT_SETTINGS:
        try:
            value = OmegaConf.select(cfg, key, default=None)
        except OmegaConfBaseException:  # a section above it is no mapping (task.hub=[1]): check_layout names that
            continue
        if OmegaConf.is_config(value) or isinstance(value, (list, dict)):
            typed = OmegaConf.to_container(value) if OmegaConf.is_config(value) else value
            raise UserError(f"{key}={typed!r} is a {'list' if OmegaConf.is_list(value) or isinstance(value, list) else 'mapping'}; "
                            f"it takes one value (text), such as {key}={_text_example(key)}")
        if key in FOLDER_LABELS:
            _check_folder_label(key, label_text(value))


def _check_folder_label(key: str, name: str | None) -> None:
    """A task's or method's name is one folder of the run's path: `method.name=..` filed the run
    in outputs/s0.5/ (and `task.name=..` outside outputs/), `method.name=a/b` two folders deep,
    and `method.name=null` in a folder called None, its record naming no method; an empty name
    left the method's level out of the path."""
    if name is None or not name.strip():
        raise UserError(f"{key}={'null' if name is None else repr(name)} gives no name, and it names the run's folder and its cell in "
                        f"reports: give one, such as {key}={_text_example(key)}")
    if name in (".", "..") or "/" in name or "\\" in name:
        raise UserError(f"{key}={name!r} names one folder of the run's path (outputs/<task>/<method>/...): give a name without "
                        f"'/' or '\\' that is not '.' or '..', such as {key}={_text_example(key)}")


def _refuse_text_read_as_another(override: Any) -> None:
    """A text setting typed as something Hydra reads as a number whose text is not the one typed:
    `model.revision=12e4567` (a commit) was read as the number inf and looked for on the hub as the
    revision "inf", `tag=1e3` became the label "1000.0", `tag=1.50` "1.5". A number that keeps its
    text (`tag=2`, `data.dir=5`, `tag=0.5`) stands, as its text; true and false stand as "true"
    and "false" (`label_text`)."""
    from hydra.core.override_parser.types import ChoiceSweep

    def number(element: Any) -> bool:
        return isinstance(element, (int, float)) and not isinstance(element, bool)

    value = override.value()
    typed = override.input_line.split("=", 1)[1]
    key = override.get_key_element()
    if isinstance(value, ChoiceSweep):
        called = re.fullmatch(r"\w+\((.*)\)", typed.strip())  # choice(a,b), shuffle(a,b): the values within
        pieces = [piece.strip() for piece in (called.group(1) if called else typed).split(",")]
        changed = [element for element in value.list if number(element) and label_text(element) not in pieces]
        if changed:
            raise UserError(f"'{override.input_line}': Hydra reads a value of {key} as the number {label_text(changed[0])}, not the text "
                            f"typed; quote each such value to keep its text ({key}='1e3','1.50')")
    elif number(value) and label_text(value) != typed:
        raise UserError(f"'{override.input_line}': Hydra reads {key}'s value as the number {label_text(value)}, not the text typed; "
                        f"quote it to keep the text: {key}='{typed}'")


def _text_example(key: str) -> str:
    return {"tag": "long-ramp", "model.revision": "main", "data.dir": "/data/glue", "model.name_or_path": "bert-base-uncased"}.get(key, "my-name")


def label_text(value: Any) -> str | None:
    """A label setting as the record keeps it: text, or None where unset. Hydra reads `tag=2` as
    the number 2, which the record's readers would refuse as not text ("it was edited")."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def choices() -> dict[str, tuple[str, ...]]:
    """Each setting that names one of a fixed set of options, with the set, as defined by the
    module that acts on it. Without this a typo (`method.init=magnitud`) would quietly run the
    code's fall-back. Imported when called: those modules load torch, which `--help` need not."""
    from prune_cli.head import POOLINGS
    from prune_cli.methods.adapt_by_pruning import GAMMA_SCHEDULES, THETA_INITS
    from prune_cli.methods.baselines import MAGNITUDE_SCOPES
    from prune_cli.training import OPTIMIZERS

    return {
        "head.pooling": POOLINGS,
        "head.optimizer": OPTIMIZERS,
        "method.optimizer": OPTIMIZERS,
        "method.theta_optimizer": OPTIMIZERS,
        "method.init": THETA_INITS,
        "method.gamma_schedule": GAMMA_SCHEDULES,
        "method.scope": MAGNITUDE_SCOPES,
    }


def check_choices(cfg: DictConfig) -> None:
    """Each choice setting the composed config has, against `choices()`."""
    for key, options in choices().items():
        value = OmegaConf.select(cfg, key, default=_ABSENT)
        if value is not _ABSENT and value not in options:
            raise UserError(f"{key}={value!r} is not known; choose one of: {', '.join(options)}")


def check_mask_patterns(cfg: DictConfig) -> None:
    """mask.include and mask.exclude are lists of regular expressions, include not empty. A single
    pattern typed as a string (`mask.include=query`, to mask the query matrices only) was read
    character by character as the patterns q, u, e, r, y, and masked every weight whose name holds
    one of them, without a word; an empty include list was refused only once the model had loaded."""
    for key in ("mask.include", "mask.exclude"):
        patterns = OmegaConf.select(cfg, key)
        if not OmegaConf.is_list(patterns):
            typed = "null" if patterns is None else repr(patterns)
            raise UserError(f"{key}={typed} is not a list; it takes a list of regular expressions on parameter names, "
                            f"such as {key}=[{patterns if isinstance(patterns, str) else 'query'}] (several: {key}='[query,value]')")
        if key == "mask.include" and not patterns:
            raise UserError("mask.include=[] selects no weight to mask; give at least one regular expression on parameter names")
        for pattern in patterns:
            if not isinstance(pattern, str):
                raise UserError(f"{key} holds {pattern!r}, which is not a regular expression (text) on parameter names")
            try:
                re.compile(pattern)
            except re.error as exc:
                raise UserError(f"{key} pattern {pattern!r} is not a regular expression: {exc}") from None


# A packaged option of each group that a config file of one's own can start from.
STARTING_OPTIONS = {"task": "sst2", "model": "minilm", "trainer": "cpu", "method": "adapt_by_pruning"}
# The keys a task file of one's own must give (its others depend on its layout, which
# data.check_layout checks); `labels` too, null for a regression, which a task without it was read as.
TASK_KEYS = frozenset({"task.name", "task.labels", "task.metrics", "task.main_metric"})
# Keys every packaged option gives that the code reads with a default (null; eval_every: 0), so that an
# option file of one's own written before they existed, or without them, still composes.
READ_WITH_A_DEFAULT = frozenset({"model.revision", "trainer.eval_every"})


@functools.lru_cache(maxsize=16)
def packaged_keys(group: str, algorithm: str | None = None) -> frozenset[str]:
    """The keys every packaged option of `group` gives (for `method`, every packaged recipe of
    `algorithm`), with what each inherits from its defaults list."""
    sets = [{key for key in _file_keys((CONFIG_DIR,), group, path) if key.startswith(f"{group}.")}
            for path in sorted((CONFIG_DIR / group).glob("*.yaml"))
            if algorithm is None or _method_algorithm(f"{group}={path.stem}") == algorithm]
    return frozenset(set.intersection(*sets)) if sets else frozenset()


# The groups whose option's name files a run (its folder, its mask's manifest, its cell in `report`);
# a trainer's name is a label only, and a trainer file on cpu's may keep "cpu".
FILED_BY_NAME = ("task", "method")


def check_own_option(group: str, option: str, named_on_command_line: bool = False) -> None:
    """An option of one's own ($PRUNE_CLI_CONFIG_PATH) chosen for a run gives every key its group's
    packaged options all give (a method: the packaged recipes of its algorithm), itself or from a
    packaged option it starts from (`defaults: [cpu, _self_]`). The code reads some of them without
    a default: a trainer file without batch_size failed with KeyError once the model had loaded,
    and one without progress inside training. A task is held to TASK_KEYS.

    Its `name` it gives itself (or the command line does: `named_on_command_line`): a recipe that
    starts from adapt_by_pruning and leaves the name out is named adapt_by_pruning, so its runs went
    to adapt_by_pruning's folders, its masks said they were that recipe's, and `report` averaged
    them into that recipe's cells as more seeds of it (a task file on sst2's likewise: its runs
    were filed, and their masks checked, as SST-2's)."""
    path = _option_file(config_dirs(), group, option)
    if path is None or path.is_relative_to(CONFIG_DIR) or group not in STARTING_OPTIONS:
        return
    algorithm = _method_algorithm(f"method={option}") if group == "method" else None
    needed = TASK_KEYS if group == "task" else packaged_keys(group, algorithm) - READ_WITH_A_DEFAULT
    given = _file_keys(config_dirs(), group, path)
    name = f"{group}.name"
    if group in FILED_BY_NAME and name in given and name not in _file_keys((), group, path) and not named_on_command_line:
        starts_from = _base_options(_config_file_content(path, path.read_text(encoding="utf-8")))[-1]  # merged last, as Hydra does
        raise UserError(f"{path} gives no name of its own, so it takes the name of {starts_from}, which it starts from: its runs "
                        f"would be filed and reported as {starts_from}'s; add `name: {option}` to it")
    missing = sorted(needed - given)
    if missing:
        start = packaged_start(group, algorithm)
        raise UserError(f"{path} has no {', '.join(missing)}, which every packaged {group} option"
                        f"{f' of algorithm {algorithm}' if algorithm else ''} gives; add "
                        f"{'it' if len(missing) == 1 else 'them'}{'' if group == 'task' else f', or start the file from a packaged option: defaults: [{start}, _self_]'}")


def packaged_start(group: str, algorithm: object = None) -> str | None:
    """The packaged option a file of one's own can start from: a method's, its algorithm's
    same-named recipe where there is one; another group's, STARTING_OPTIONS'."""
    if group == "method" and algorithm is not None and (CONFIG_DIR / "method" / f"{algorithm}.yaml").is_file():
        return str(algorithm)
    return STARTING_OPTIONS.get(group)


def check_config(cfg: DictConfig) -> None:
    """Checks on the composed config that no single override can show. They read many of the
    settings the code takes without a default, so a composed config that lacks one (a stored one
    for --resume, an option an experiment chooses; check_own_option sees the options chosen on the
    command line) is named here in one line, where it was OmegaConf's traceback ("Key 'precision'
    is not in struct")."""
    try:
        _check_config(cfg)
    except (ConfigAttributeError, ConfigKeyError) as exc:
        key = exc.full_key or str(exc.key)
        group = key.partition(".")[0]
        start = packaged_start(group, OmegaConf.select(cfg, "method.algorithm"))
        hint = f", or start it from a packaged one (defaults: [{start}, _self_] at its top)" if start else ""
        raise UserError(f"the composed config has no {key}, which prune-cli reads: a {group} config file of your own "
                        f"leaves it out; add it{hint}") from None


# The root config's own sections, each a mapping of settings (the groups' options are files, chosen by name)
SECTIONS = ("data", "mask", "head", "checkpoint")


def check_sections(cfg: DictConfig) -> None:
    """`data=x` is an override like any other to Hydra, and replaced the whole data section by the
    text "x": the next read of a setting in it failed in a traceback. Each section, and each
    option group's composed settings, stays a mapping."""
    for key in (*SECTIONS, "task", "model", "trainer", "method"):
        value = OmegaConf.select(cfg, key, default=None)
        if not OmegaConf.is_dict(value):
            typed = "null" if value is None else repr(OmegaConf.to_container(value) if OmegaConf.is_config(value) else value)
            raise UserError(f"{key}={typed} replaces the whole {key} section; set one of its settings instead ({key}.<setting>=...)")


def config_leaves(node: Any, key: str = "") -> Iterator[tuple[str, Any]]:
    """(the key as OmegaConf selects it and as it is written: mask.include[0], its value) of each
    leaf of a config as a plain container."""
    items = node.items() if isinstance(node, dict) else ((f"[{i}]", v) for i, v in enumerate(node)) if isinstance(node, list) else ()
    for name, value in items:
        child = f"{key}{name}" if str(name).startswith("[") or not key else f"{key}.{name}"
        if isinstance(value, (dict, list)):
            yield from config_leaves(value, child)
        else:
            yield child, value


def check_interpolations(cfg: DictConfig, written_under: str = "", filled_by_the_job: bool = False,
                         unread: Sequence[str] = ()) -> None:
    """Each `${...}` in a setting resolves: `tag=${oc.env:UNSET}`, `seed=${seed}` or
    `data.dir=${nope}` passed the checks unread and ended the dry run or the run in OmegaConf's
    traceback, the tag's after training. Hydra's own resolver (`${hydra:job.name}`) only answers
    inside a job, and is left to it.

    `written_under` is where `cfg` sits in the whole config ("hydra." for Hydra's settings), so a
    key is named as the user writes it; `filled_by_the_job` lets a value Hydra fills in as a job
    starts (`${hydra.runtime.output_dir}`, `${hydra.job.num}`) stand; the subtrees in `unread`
    are not checked."""
    from omegaconf.errors import InterpolationToMissingValueError

    for key, raw in config_leaves(OmegaConf.to_container(cfg, resolve=False)):
        if not isinstance(raw, str) or "${" not in raw or "${hydra:" in raw or any(key == u or key.startswith(f"{u}.") for u in unread):
            continue
        try:
            OmegaConf.select(cfg, key, throw_on_resolution_failure=True)
        except Exception as exc:  # noqa: BLE001 - OmegaConf's errors, or a resolver's own (any kind)
            if filled_by_the_job and isinstance(exc, InterpolationToMissingValueError):
                continue
            raise UserError(f"{written_under}{key}={raw} cannot be resolved: {first_line(exc)}") from None


def _check_config(cfg: DictConfig) -> None:
    from prune_cli.methods import METHODS

    check_sections(cfg)
    check_interpolations(cfg)
    check_sparsity(cfg.sparsity)
    check_settings(cfg)
    check_text_settings(cfg)
    check_mask_patterns(cfg)
    from prune_cli.data import check_labels, check_layout
    from prune_cli.metrics import check_task_metrics

    task = OmegaConf.to_container(cfg.task, resolve=True)
    check_layout(task)
    check_labels(task)
    check_task_metrics(task)
    if cfg.method.algorithm not in METHODS:
        raise UserError(f"method.algorithm={cfg.method.algorithm!r} is not implemented; known: {', '.join(sorted(METHODS))}")
    from prune_cli.backbone import hub_revision, model_name, resolve_model_path

    resolve_model_path(model_name(cfg.model))  # a missing model folder fails before Hydra writes anything
    hub_revision(cfg.model)  # and so does a revision of a local folder
    from prune_cli.training import check_precision, pick_device

    pick_device(str(cfg.trainer.device))  # a wrong device or precision fails before any data is read
    check_precision(str(cfg.trainer.precision))
    check_choices(cfg)
    if cfg.method.algorithm == "imp":
        from prune_cli.methods.baselines import imp_levels

        imp_levels(float(cfg.sparsity), float(cfg.method.rate))  # a rate that would take too many rounds fails now
    if cfg.method.algorithm == "gmp" and float(cfg.method.start_fraction) > float(cfg.method.end_fraction):
        # the ramp ran as one cut to s at start_fraction, with nothing said
        raise UserError(f"method.start_fraction={cfg.method.start_fraction} is after method.end_fraction={cfg.method.end_fraction}: "
                        "gmp's cubic ramp prunes from the one to the other (equal: one cut to s there)")
    if cfg.method.algorithm == "adapt_by_pruning":
        warmup, ramp_end = float(cfg.method.get("head_warmup_fraction", 0.0)), float(cfg.method.prune_fraction)
        if not 0.0 <= warmup < ramp_end <= 1.0:
            raise UserError(f"method.head_warmup_fraction={warmup} and method.prune_fraction={ramp_end} must satisfy "
                            "0 <= head_warmup_fraction < prune_fraction <= 1 (pruning runs between the two)")
        from prune_cli.methods.adapt_by_pruning import theta_betas

        theta_betas(cfg.method)
        alpha_warmup = float(cfg.method.get("warmup_fraction", 0.0))
        if not 0.0 <= alpha_warmup < ramp_end - warmup:
            raise UserError(f"method.warmup_fraction={alpha_warmup} must be in [0, prune_fraction - head_warmup_fraction = "
                            f"{ramp_end - warmup:g}): theta's learning rate warms up while the mask is being learnt")
        check_hold(cfg.method)
    elif not 0.0 <= float(cfg.method.get("warmup_fraction", 0.0)) <= 1.0:
        # the fine-tuning loop (finetune, gmp, imp) took any number: a warm-up past the budget trained at a fraction of
        # method.lr throughout, a negative one slowed the decay, with nothing said
        raise UserError(f"method.warmup_fraction={cfg.method.warmup_fraction} must be in [0, 1]: the share of the fine-tuning "
                        "budget over which method.lr warms up")
    if cfg.method.algorithm == "transfer":
        check_transfer(cfg)


SPARSITY_TOLERANCE = 1e-3  # a learnt mask stops within a few weights of s (0.9000070 for s = 0.9)


def check_transfer(cfg: DictConfig) -> None:
    """`method=transfer`: the mask run must be a finished pruning run (or a mask file: an imp
    round's), and the run's sparsity the mask's own, so that the run is filed (and compared in
    `report`) at the sparsity it really has. The base weights are checked when the mask is loaded
    (that needs the model)."""
    from prune_cli import mask_format, rundir

    source = cfg.method.get("mask_run")
    if not source:
        raise UserError("method=transfer needs method.mask_run=<a finished pruning run's directory, or a mask file> (the mask to score)")
    manifest = mask_format.read_manifest(rundir.require_mask_or_file(Path(str(source)).expanduser(), "method=transfer"))
    pruned = mask_format.manifest_sparsity(manifest)
    if abs(pruned - float(cfg.sparsity)) > SPARSITY_TOLERANCE:
        raise UserError(f"method.mask_run={source} holds a mask at sparsity {pruned:.4f}, not {float(cfg.sparsity):g}; "
                        f"run with --sparsity {round(pruned, 3):g} (sparsity={round(pruned, 3):g})")


def check_hold(method: DictConfig) -> None:
    """`method.hold_fraction`: theta's learning at s must fit in the budget, and only a push that
    tracks the pruned share (adaptive) can hold it at s while weights that come back (recovery)
    are traded for others; a constant push would keep pruning past s, and without recovery
    nothing could be traded."""
    hold, ramp_end = float(method.get("hold_fraction", 0.0)), float(method.prune_fraction)
    if hold == 0.0:
        if method.get("hold_theta_lr") is not None:
            raise UserError(f"method.hold_theta_lr={method.hold_theta_lr} needs method.hold_fraction > 0: "
                            "it is theta's learning rate while held at s")
        return
    if not 0.0 < hold <= 1.0 - ramp_end + 1e-9:
        raise UserError(f"method.hold_fraction={hold} must be in [0, 1 - prune_fraction = {1.0 - ramp_end:g}]: "
                        "theta holds sparsity s from the end of the ramp to (prune_fraction + hold_fraction) of the budget"
                        + STOP_AT_S_HINT)
    if method.gamma_schedule != "adaptive" or method.no_recovery:
        raise UserError(f"method.hold_fraction={hold} needs method.gamma_schedule=adaptive and method.no_recovery=false "
                        "(holding s means trading weights that come back for others)" + STOP_AT_S_HINT)


# The hold is adapt_by_pruning's default since 0.2.0, so a change that cannot hold (a constant push, no
# recovery, a ramp past 60% of the budget) needs the hold off: this says how, in the error.
STOP_AT_S_HINT = ("; for Alg. 1's stop at s (no hold) use method=adapt_by_pruning_stop_at_s, "
                  "or add method.hold_fraction=0 method.hold_theta_lr=null")


def check_run_dir(settings: DictConfig) -> Path:
    """Before Hydra creates or writes anything: the run dir must be new (or hold no results) and
    its folder writable. Hydra writes .hydra/ before our code runs, so this cannot wait.
    Returns the nearest folder on the run dir's path that exists now (the run dir itself, if it
    does): a refused run's directory is removed up to there (`rundir.discard_unstarted`)."""
    from prune_cli import rundir

    target = Path(refuse_empty("hydra.run.dir", settings.run.dir))
    picked = picked_by_unique_dir(str(settings.run.dir))  # new when picked; one made since is passed over (`claim_new_folder`)
    if target.exists() and not picked:
        rundir.ensure_fresh(target)
    _require_creatable(target, "the run directory", "hydra.run.dir")
    return rundir.nearest_existing(target.parent if picked else target)


def _require_creatable(target: Path, what: str, key: str) -> None:
    """Refuse a run directory or sweep folder that cannot be made: Hydra makes it, and writes in
    it, before any code of ours runs, in a traceback of its own where it cannot."""
    from prune_cli import rundir

    refused = rundir.write_refused(target)
    if refused is None:
        return
    if refused.errno in NO_SPACE:  # a full disk still makes folders: Hydra's first file would fail
        raise UserError(f"cannot create {what} {target}: {refused.strerror} on {rundir.nearest_existing(target)}; free some space, "
                        f"or set {key}=<a folder on another disk>")
    raise UserError(f"cannot create {what} {target}: {rundir.nearest_existing(target)} is not writable ({refused.strerror}); "
                    f"run from a writable folder or set {key}=<writable path>")


def refuse_empty(key: str, folder: object) -> str:
    """A run or sweep folder given as '' (`hydra.run.dir=$UNSET`) would be the current folder:
    Hydra writes there, beside whatever it holds."""
    if not str(folder).strip():
        raise UserError(f"{key} is empty; name a folder for it, or leave it unset for a new one under outputs/")
    return str(folder)


def check_sweep_dir(settings: DictConfig) -> None:
    """Before a sweep starts: its folder must hold no runs, and be one it can write in. Jobs are
    named by their settings and their number within the sweep, so a second sweep into the same
    folder (a fixed `hydra.sweep.dir`) would reach the first one's job folders, where Hydra
    rewrites `.hydra/` before any check of ours could run, leaving finished results beside
    another run's config. Hydra also makes the folder itself before any job, in a traceback of
    its own where it cannot."""
    from prune_cli import folder_lock, rundir

    target = Path(refuse_empty("hydra.sweep.dir", settings.sweep.dir))
    subdir = OmegaConf.to_container(settings.sweep, resolve=False).get("subdir")  # its job-time values (${hydra.job.num}) left as they are
    if str(subdir or "").strip() in ("", "."):
        raise UserError(f"hydra.sweep.subdir={subdir or ''} puts every job of the sweep in the sweep folder itself, beside its "
                        "multirun.yaml and in one another's way; give each job a folder of its own, e.g. hydra.sweep.subdir=seed${seed}, "
                        "or leave it unset")
    picked = picked_by_unique_dir(str(settings.sweep.dir))  # new when picked; one made since is passed over (`claim_new_folder`)
    if not picked and folder_lock.held_elsewhere(target):  # a sweep going on there, which may not have written its first run yet
        raise folder_lock.FolderInUse(f"sweep folder {target} is in use: another prune-cli process is running a sweep there; a sweep "
                                      "never writes into another's folder: name a new hydra.sweep.dir or leave it unset")
    runs = rundir.runs_in(target) if target.is_dir() and not picked else []
    if runs:
        raise UserError(f"sweep folder {target} already holds {len(runs)} run{'s' if len(runs) > 1 else ''} (e.g. {runs[0]}); "
                        f"a sweep never writes into another's folder: name a new hydra.sweep.dir or leave it unset, "
                        f"or continue that sweep with `prune-cli adapt --resume {target}`")
    _require_creatable(target, "the sweep folder", "hydra.sweep.dir")


def _hydra_compose(overrides: Sequence[str], with_hydra: bool = False) -> DictConfig:
    """Hydra's Compose API on our config folder; Hydra's multi-line errors become one UserError line."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.errors import HydraException

    register_resolvers()
    try:
        with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
            return hydra_compose(config_name=CONFIG_NAME, overrides=[*searchpath_overrides(), *overrides], return_hydra_config=with_hydra)
    except HydraException as exc:
        # a key other options of its group define (method.round_steps with method=adapt_by_pruning)
        missing = re.search(r"Could not override '([\w.]+)'|Could not delete from config\. '([\w.]+)'", str(exc))
        key = missing and (missing.group(1) or missing.group(2))
        if key and not key.startswith("hydra."):
            raise unknown_key_error(key) from None
        # Hydra's "Error merging override hydra.mode=abc" (or "Could not override 'hydra.launcher.n_jobs'") says
        # which override, and its cause why: "Invalid value 'abc', expected one of [RUN, MULTIRUN]"
        why = f" ({first_line(exc.__cause__)})" if exc.__cause__ is not None and (key or "Error merging override" in str(exc)) else ""
        raise UserError(f"invalid configuration: {hydra_error_line(exc)}{why}") from None


def compose(overrides: Sequence[str] = (), check_first: Callable[[DictConfig], None] | None = None) -> DictConfig:
    """Compose the config like a run would, without starting one (show-config, scripts, tests).
    `check_first` sees the composed config before the usual checks: a caller whose answer to a
    problem differs from a new run's (a continued sweep's moved model folder) gives it there."""
    check_overrides(overrides, sweep_hint=SWEEP_NOT_HERE_COMPOSE)
    cfg = _hydra_compose(overrides)
    if check_first is not None:
        check_first(cfg)
    check_added_keys(overrides, cfg)
    check_config(cfg)
    return cfg
