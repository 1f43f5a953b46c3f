"""Where the configs live, how to compose them without a run, and what counts as a valid one.

Validation happens twice on purpose: `check_overrides` runs in the CLI before Hydra starts, so
a typo in a sweep costs nothing; `check_config` runs on every composed config (including the
ones a sweep expands to), so raw `key=value` overrides are caught too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from omegaconf import DictConfig, OmegaConf

from prune_cli.errors import UserError

CONFIG_DIR = Path(__file__).resolve().parent / "configs"
CONFIG_NAME = "config"
GROUPS = ("task", "method", "model", "trainer")


def group_options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONFIG_DIR / group).glob("*.yaml"))


def _unique_dir(path: str) -> str:
    """Hydra resolver: the path itself if unused, else path_2, path_3, ... (never reuse a run dir)."""
    candidate, n = Path(path), 1
    while candidate.exists():
        n += 1
        candidate = Path(f"{path}_{n}")
    return str(candidate)


def register_resolvers() -> None:
    if not OmegaConf.has_resolver("unique_dir"):
        OmegaConf.register_new_resolver("unique_dir", _unique_dir, use_cache=True)


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
    """Hydra's errors span several lines; keep what names the problem and the fix, on one line."""
    noise = ("full_key:", "object_type", "HYDRA_FULL_ERROR", "reference_type")
    lines = [line.strip() for line in str(exc).splitlines() if line.strip() and not any(n in line for n in noise)]
    return "; ".join(line.rstrip(".") for line in lines) or type(exc).__name__


def first_combination(overrides: Sequence[str]) -> list[str]:
    """The overrides with every sweep reduced to its first value (to compose one job up front)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    result = []
    for override in OverridesParser.create().parse_overrides(list(overrides)):
        if override.is_sweep_override():
            result.append(f"{override.get_key_element()}={next(iter(override.sweep_string_iterator()))}")
        else:
            result.append(override.input_line)
    return result


def check_overrides(overrides: Sequence[str], multirun: bool = False) -> None:
    """Reject bad group choices, bad sparsities and malformed overrides before anything runs."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import OverrideParseException

    try:
        parsed = OverridesParser.create().parse_overrides(list(overrides))
    except OverrideParseException as exc:
        raise UserError(f"invalid override: {str(exc).strip().splitlines()[0]}") from None
    for override in parsed:
        key = override.key_or_group
        if override.is_delete():
            continue
        if override.is_sweep_override() and not multirun:
            raise UserError(f"'{override.input_line}' lists several values; add -m/--multirun to sweep over them")
        values = list(override.sweep_string_iterator()) if override.is_sweep_override() else [override.get_value_element_as_str()]
        if key in GROUPS:
            options = group_options(key)
            for value in values:
                if value not in options:
                    raise UserError(f"unknown {key} '{value}'; choose from: {', '.join(options)}")
        elif key == "sparsity":
            for value in values:
                check_sparsity(value)


def check_config(cfg: DictConfig) -> None:
    """Checks on the composed config that no single override can show."""
    from prune_cli.methods import METHODS

    check_sparsity(cfg.sparsity)
    if cfg.method.algorithm not in METHODS:
        raise UserError(f"method.algorithm={cfg.method.algorithm!r} is not implemented; known: {', '.join(sorted(METHODS))}")
    from prune_cli.backbone import resolve_model_path

    resolve_model_path(str(cfg.model.name_or_path))  # a missing model folder fails before Hydra writes anything
    if int(cfg.trainer.batch_size) < 1:
        raise UserError(f"trainer.batch_size={cfg.trainer.batch_size} must be at least 1")
    from prune_cli.head import POOLINGS

    if cfg.head.get("pooling", "cls") not in POOLINGS:
        raise UserError(f"head.pooling={cfg.head.pooling!r} is not known; choose one of: {', '.join(POOLINGS)}")
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


def check_hold(method: DictConfig) -> None:
    """`method.hold_fraction`: theta's learning at s must fit in the budget, and only a push that
    tracks the pruned share (adaptive) can hold it at s while weights that come back (recovery)
    are traded for others; a constant push would keep pruning past s, and without recovery
    nothing could be traded."""
    hold, ramp_end = float(method.get("hold_fraction", 0.0)), float(method.prune_fraction)
    if hold == 0.0:
        return
    if not 0.0 < hold <= 1.0 - ramp_end + 1e-9:
        raise UserError(f"method.hold_fraction={hold} must be in [0, 1 - prune_fraction = {1.0 - ramp_end:g}]: "
                        "theta holds sparsity s from the end of the ramp to (prune_fraction + hold_fraction) of the budget")
    if method.gamma_schedule != "adaptive" or method.no_recovery:
        raise UserError(f"method.hold_fraction={hold} needs method.gamma_schedule=adaptive and method.no_recovery=false "
                        "(holding s means trading weights that come back for others)")


def check_run_dir(overrides: Sequence[str]) -> None:
    """Before Hydra creates or writes anything: the run dir must be new (or hold no results) and
    its folder writable. Hydra writes .hydra/ before our code runs, so this cannot wait."""
    import os
    import tempfile

    from prune_cli import rundir

    target = Path(str(_hydra_compose(overrides, with_hydra=True).hydra.run.dir))
    if target.exists():
        rundir.ensure_fresh(target)
    ancestor = target.absolute()
    while not ancestor.exists():
        ancestor = ancestor.parent
    try:  # permission bits do not bind root, so really try (a probe folder, removed at once)
        os.rmdir(tempfile.mkdtemp(prefix=".prune-cli-probe-", dir=ancestor))
    except OSError as exc:
        raise UserError(f"cannot create the run directory {target}: {ancestor} is not writable ({exc.strerror}); "
                        "run from a writable folder or set hydra.run.dir=<writable path>") from None


def _hydra_compose(overrides: Sequence[str], with_hydra: bool = False) -> DictConfig:
    """Hydra's Compose API on our config folder; Hydra's multi-line errors become one UserError line."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.errors import HydraException

    register_resolvers()
    try:
        with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
            return hydra_compose(config_name=CONFIG_NAME, overrides=list(overrides), return_hydra_config=with_hydra)
    except HydraException as exc:
        raise UserError(f"invalid configuration: {hydra_error_line(exc)}") from None


def compose(overrides: Sequence[str] = ()) -> DictConfig:
    """Compose the config like a run would, without starting one (show-config, tests)."""
    check_overrides(overrides)
    cfg = _hydra_compose(overrides)
    check_config(cfg)
    return cfg
