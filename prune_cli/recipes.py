"""Which named recipe a run was made with, across changes of a method's default.

Why: a run records its method's name and the overrides typed for it, not which defaults the name
stood for then. When a default changes (0.2.0: `adapt_by_pruning` holds at s with the paper's alpha
while held), an untagged run made before is not a run of today's default, and a tagged run that
restated today's default by overrides is one. Reports, `compare_seeds.py` and `reproduce.sh` must
agree on that, so this module is the one place that knows each change; the rest ask it.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import yaml
from omegaconf import DictConfig, OmegaConf

from prune_cli import __version__, rundir
from prune_cli.errors import UserError


@dataclass(frozen=True)
class DefaultChange:
    """A method whose defaults changed, and the named config that keeps the earlier ones."""

    method: str  # the method whose default changed
    earlier: str  # the named method config (configs/method/<earlier>.yaml) that keeps the earlier default
    before: Mapping[str, Any]  # the changed keys (under `method.`) as the earlier default had them
    after: Mapping[str, Any]  # the same keys as the default has them since `version`
    version: str  # the first prune-cli version with the new default

    def values_of(self, name: str) -> Mapping[str, Any] | None:
        """The changed keys as the recipe `name` has them (today's default or the earlier one); None for another."""
        return self.after if name == self.method else self.before if name == self.earlier else None


DEFAULT_CHANGES: tuple[DefaultChange, ...] = (
    DefaultChange("adapt_by_pruning", "adapt_by_pruning_stop_at_s",
                  before={"hold_fraction": 0.0, "hold_theta_lr": None},
                  after={"hold_fraction": 0.4, "hold_theta_lr": 2.0e-5}, version="0.2.0"),
)


def change_of(method: str) -> DefaultChange | None:
    """The default change that concerns runs recorded under `method` (either of its two names)."""
    return next((c for c in DEFAULT_CHANGES if method in (c.method, c.earlier)), None)


def _version_tuple(version: str) -> tuple[int, ...]:
    parts = []
    for part in version.split("+")[0].split("."):
        digits = "".join(ch for ch in part if ch.isdigit())
        parts.append(int(digits) if digits else 0)
    return tuple(parts)


def _same(first: Any, second: Any) -> bool:
    """Two config values as a run would use them: 2e-5 typed or stored as 2.0e-05 are one value."""
    if first is None or second is None:
        return first is None and second is None
    try:
        return math.isclose(float(first), float(second), rel_tol=1e-9, abs_tol=0.0)
    except (TypeError, ValueError):
        return str(first) == str(second)


def override_value(text: str) -> Any:
    """An override's value as Hydra reads it (`null` → None, `2e-5` → 2e-05)."""
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def changed_setting(change: DefaultChange, override: str) -> tuple[str, Any] | None:
    """The changed key an override sets (`method.hold_fraction=0.4` → ("hold_fraction", 0.4)), or None."""
    _, sep, text = override.partition("=")
    key = rundir.override_key(override)
    name = key.removeprefix("method.")
    if not sep or name == key or name not in change.before:
        return None
    return name, override_value(text)


def values_in_config(change: DefaultChange, config: DictConfig | None) -> dict[str, Any]:
    """The changed keys as a finished or stopped run used them, from its resolved config. A key absent there
    means the run predates the key, which made its behaviour the earlier default's (each key was added
    switched off)."""
    values = {}
    for key, earlier in change.before.items():
        values[key] = OmegaConf.select(config, f"method.{key}", default=earlier) if config is not None else earlier
    return values


def values_in_overrides(change: DefaultChange, method: str, overrides: Sequence[str]) -> dict[str, Any]:
    """The changed keys as a run given these overrides would use them (for a run not made yet): the named
    config's values, with the overrides' own."""
    values = dict(change.values_of(method) or change.before)
    for override in overrides:
        setting = changed_setting(change, override)
        if setting is not None:
            values[setting[0]] = setting[1]
    return values


def made_before(change: DefaultChange, version: str | None) -> bool:
    """Was a run recorded by a prune-cli older than the change? A run that records no version (a stopped
    one has no metrics.json yet) is taken as older: every run made before the change was one."""
    return version is None or _version_tuple(version) < _version_tuple(change.version)


def named_recipe(method: str, values: Mapping[str, Any], version: str | None) -> str:
    """The method name a run's recipe has today, from its method's recorded name, the changed keys as it used
    them (`values_in_config` / `values_in_overrides`) and the prune-cli that recorded it: today's default
    (`change.method`) where those keys are at today's values, the earlier default's named config where they
    are at its values, and otherwise the name of the default the run was composed from (its own name, or
    `change.earlier` for a run of `change.method` recorded before the change), its overrides the ablation
    on top."""
    change = change_of(method)
    if change is None:
        return method
    if all(_same(values[k], v) for k, v in change.after.items()):
        return change.method
    if all(_same(values[k], v) for k, v in change.before.items()):
        return change.earlier
    return change.earlier if method == change.earlier or made_before(change, version) else change.method


def restates(method: str, named: str, override: str) -> bool:
    """Is `override` (`method.hold_fraction=0.4`) one of the changed keys set to the value that the named
    recipe `named` has anyway? Such an override only restates the recipe, so it is not an ablation's change."""
    change = change_of(method)
    setting = changed_setting(change, override) if change is not None else None
    if setting is None:
        return False
    values = change.values_of(named)
    return values is not None and _same(setting[1], values[setting[0]])


def recipe_overrides(method: str, named: str, overrides: Sequence[str]) -> list[str]:
    """A run's overrides as its named recipe's: without those that restate that recipe, and with
    `method=<named>` in place of any typed method (a run of a method whose default changed, recorded
    before the change with or without `method=adapt_by_pruning`, is `method=adapt_by_pruning_stop_at_s`),
    so that runs of one recipe made before and after the change compare equal."""
    if change_of(method) is None:
        return list(overrides)
    kept = [o for o in overrides if not restates(method, named, o) and rundir.override_key(o) != "method"]
    return [*kept, f"method={named}"]


def named_recipe_of_run(method: str, config: DictConfig | None, version: str | None) -> str:
    """`named_recipe` of a finished or stopped run, from its resolved config."""
    change = change_of(method)
    return method if change is None else named_recipe(method, values_in_config(change, config), version)


def typed_method(overrides: Sequence[str], default: str) -> str:
    """The method these overrides name (the last `method=`), or `default` where none does."""
    return next((o.split("=", 1)[1] for o in reversed(overrides) if rundir.override_key(o) == "method" and "=" in o), default)


def named_recipe_of_call(overrides: Sequence[str], default_method: str) -> str:
    """`named_recipe` of a run these overrides would make today (`default_method` where none names one)."""
    method = typed_method(overrides, default_method)
    change = change_of(method)
    return method if change is None else named_recipe(method, values_in_overrides(change, method, overrides), __version__)


def default_method() -> str:
    """The method a run gets where no override names one: the root config's default."""
    defaults = OmegaConf.load(Path(__file__).resolve().parent / "configs" / "config.yaml").get("defaults", [])
    return next(str(entry["method"]) for entry in defaults if isinstance(entry, DictConfig) and "method" in entry)


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m prune_cli.recipes [RUN_DIR]`: the overrides on stdin (one a line) as their named recipe's
    (`recipe_overrides`), one a line: those of the run in RUN_DIR, or without it those of a run not made
    yet. `scripts/reproduce.sh` compares the two to tell whether a run in its root is the cell it would make."""
    args = list(sys.argv[1:] if argv is None else argv)
    overrides = [line.rstrip("\n") for line in sys.stdin if line.strip()]
    if args:
        run_dir = Path(args[0])
        try:
            config = rundir.load_config(run_dir)
        except UserError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        version = rundir.recorded_prune_cli_version(run_dir)
        recorded = OmegaConf.select(config, "method.name", default=None)  # a config without it: the typed method
        method = str(recorded) if recorded else typed_method(overrides, default_method())
        named = named_recipe_of_run(method, config, version)
    else:
        default = default_method()  # read once: the root config is a file
        method = typed_method(overrides, default)
        named = named_recipe_of_call(overrides, default)
    print("\n".join(recipe_overrides(method, named, overrides)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
