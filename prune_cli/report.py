"""`prune-cli report`: every run under a folder → table, CSV, Markdown and Figure-2-style plots.

Identity comes from each run's metrics.json (never from folder names). A run dir without
metrics.json is listed as incomplete, one with failed.json as failed: missing results are shown,
not hidden.
"""

from __future__ import annotations

import math
import re
import statistics
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Mapping

import yaml
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException
from rich.table import Table

from prune_cli import plots, recipes, rundir
from prune_cli.backbone import looks_local
from prune_cli.data import HOLDOUT
from prune_cli.errors import UserError, first_line

REFERENCE_METHODS = ("finetune", "feature_extraction")  # drawn as horizontal lines


@dataclass
class Collected:
    runs: list[dict] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)
    incomplete: list[Path] = field(default_factory=list)


@dataclass(frozen=True)
class Group:
    task: str
    method: str
    sparsity: float
    metric: str
    values: tuple[float, ...]
    realized: float
    tag: str = ""
    changes: str = ""  # the overrides that made this tag (from the runs' .hydra/overrides.yaml)
    algorithm: str = ""
    train_seconds: float = float("nan")  # mean over the runs: what one cell of the grid costs
    seeds: tuple[int, ...] = ()  # the seed of each value, in the same order
    threads: str = ""  # torch threads the runs used ("1", "2", "1/2"); "?" for a run whose metrics.json predates the field
    steps: tuple[int, ...] = ()  # the distinct optimiser-step budgets the runs trained for (metrics.json `steps`)
    batch_sizes: tuple[int, ...] = ()  # the distinct training batch sizes (the resolved config's trainer.batch_size)
    repeats: int = 0  # runs of a seed the cell already had (the same command run again, or a sweep's copies)
    recipes: tuple[tuple[str, int], ...] = ()  # an untagged cell's distinct recipe overrides and their runs, where they differ
    folded: tuple[tuple[str, int], ...] = ()  # tags whose runs only restated the cell's recipe (`named_run`), and their runs
    # {"scored" or "trained": ((fingerprint, what they are), runs), ...} of the rows its runs were scored or trained on (`row_set`)
    row_sets: tuple[tuple[str, tuple[tuple[tuple[str, str], int], ...]], ...] = ()

    @property
    def runs(self) -> int:
        """Runs behind the cell: one per seed plus the repeats averaged into their seed."""
        return len(self.values) + self.repeats

    def by_seed(self) -> dict[int, float]:
        return dict(zip(self.seeds, self.values))

    @property
    def label(self) -> str:
        """The method, and its tag when the runs carry one (an ablation's name)."""
        return f"{self.method} ({self.tag})" if self.tag else self.method

    @property
    def mean(self) -> float:
        return statistics.fmean(self.values)

    @property
    def measured_std(self) -> float | None:
        """The seeds' sample standard deviation, or None for one seed: it has no spread to show,
        and "± 0.0000" in a table would claim a spread of zero that nobody measured."""
        return statistics.stdev(self.values) if len(self.values) > 1 else None

    @property
    def std(self) -> float:
        """The spread the plots shade: 0.0 for one seed."""
        return self.measured_std or 0.0

    @property
    def mean_std(self) -> str:
        """A table's "mean ± std" cell; one seed's is the mean alone (`measured_std`)."""
        return f"{self.mean:.4f}" if self.measured_std is None else f"{self.mean:.4f} ± {self.measured_std:.4f}"


def collect(root: Path) -> Collected:
    if not root.is_dir():
        raise rundir.not_a_directory(root, "; pass outputs/ or a multirun folder")
    found = Collected()
    for run_dir in rundir.runs_in(root):
        if (run_dir / rundir.FAILED).is_file():
            try:
                reason = str(rundir.read_json_record(run_dir / rundir.FAILED).get("error", "?"))
            except UserError:
                reason = f"{rundir.FAILED} unreadable"
            found.failed.append((run_dir, reason))
        elif (run_dir / rundir.METRICS).is_file():
            try:
                config, metrics = read_run(run_dir)
                value = metrics.get("main_metric_value")
                if isinstance(value, float) and not math.isfinite(value):
                    # a diverged run, finished before prune-cli stopped such runs: its nan would make its cell's mean nan
                    found.failed.append((run_dir, f"its {metrics.get('main_metric')} is {value}: the run diverged"))
                    continue
                found.runs.append(named_run({**metrics, "run_dir": str(run_dir), "batch_size": trained_batch_size(config),
                                             "holdout": held_out_rows(config)}, config))
            except UserError:
                found.incomplete.append(run_dir)
        else:
            found.incomplete.append(run_dir)
    name_backbones(found.runs)
    return found


# What the report reads of a run's config: the recipe (method), the budget's batch size, the held-out rows.
CONFIG_SECTIONS_READ = ("method", "trainer", "data")
CONFIG_KEYS_READ = ("method", "trainer.batch_size", "data.holdout", "data.holdout_seed")


def read_run(run_dir: Path) -> tuple[DictConfig, dict]:
    """A finished run's config and metrics.json as the report reads them, or a one-line UserError
    saying what is wrong with either. A config that cannot be read would file the run under a
    guessed recipe, and one whose section is not a mapping, or whose value there is an
    interpolation that cannot be resolved, stopped the report with OmegaConf's traceback. (Hydra
    stores configs as composed, so an interpolation there is no edit in itself: `${hydra:...}` in a
    key the report does not read is fine.)"""
    config = rundir.load_config(run_dir)
    reading = ""
    try:
        for reading in CONFIG_SECTIONS_READ:
            if config.get(reading) is not None and not isinstance(config.get(reading), DictConfig):
                raise UserError(f"{run_dir / rundir.CONFIG} has '{reading}': {OmegaConf.to_container(config)[reading]!r}, "
                                "not a mapping; it was edited")
        for reading in CONFIG_KEYS_READ:
            value = OmegaConf.select(config, reading)
            if isinstance(value, DictConfig):
                OmegaConf.to_container(value, resolve=True)
    except OmegaConfBaseException as exc:
        raise UserError(f"{run_dir / rundir.CONFIG} has a value under '{reading}' that cannot be resolved ({first_line(exc)})") from None
    return config, rundir.load_run_record(run_dir)


def incomplete_reason(run_dir: Path) -> str:
    """Why a run has no results, and for one that stopped, how it goes on."""
    if (run_dir / rundir.METRICS).exists():
        try:
            read_run(run_dir)
        except UserError as exc:  # what is wrong with it, in the reader's own words
            return str(exc)
        return f"{rundir.METRICS} cannot be read"
    return f"no {rundir.METRICS}: {rundir.unfinished_state(run_dir)}"


# Overrides that name a run rather than change its recipe: left out of an ablation's "changes". The
# held-out rows (data.holdout) and the model decide the table a run is filed in (`section`), not its recipe.
IDENTITY_OVERRIDES = ("task", "method", "sparsity", "seed", "tag", "model", "model.name_or_path", "trainer.progress", "trainer.log_every",
                      "trainer.eval_every", "trainer.device", "trainer.num_threads", "data.dir", "checkpoint.every_steps", "checkpoint.keep",
                      "data.holdout", "data.holdout_seed")


def held_out_rows(config: DictConfig) -> str | None:
    """Which training rows a run was scored on, where `data.holdout` set some aside: "872" rows, or
    "872-seed3" for another `data.holdout_seed` than 0. None for a run scored on dev."""
    size, seed = OmegaConf.select(config, "data.holdout"), OmegaConf.select(config, "data.holdout_seed") or 0
    return None if not size else f"{size}" + (f"-seed{seed}" if seed else "")


def trained_batch_size(config: DictConfig) -> int | None:
    """trainer.batch_size from a run's resolved config: with metrics.json's steps it makes the run's budget
    (steps x batch examples), which two runs must share to be compared (4000 steps of 16 are not 4000 of 32)."""
    size = OmegaConf.select(config, "trainer.batch_size")
    return size if isinstance(size, int) else None


def recorded_overrides(run_dir: Path) -> list[str] | None:
    """The run's overrides as typed, from Hydra's record; None where it cannot be read: missing, not
    UTF-8 text, not YAML, or not the list Hydra writes (a hand edit), which is the report's "?"
    recipe, not a traceback."""
    try:
        overrides = yaml.safe_load((Path(run_dir) / rundir.OVERRIDES).read_text(encoding="utf-8"))
    except (OSError, ValueError, yaml.YAMLError):  # ValueError: not UTF-8 text
        return None
    if overrides is None:
        return []
    return [o for o in overrides if isinstance(o, str)] if isinstance(overrides, list) else None


def recipe_changes(overrides: list[str] | None) -> str:
    """The recipe overrides among a run's (`method.init=normal ...`): what makes an ablation; "?" if unknown."""
    if overrides is None:
        return "?"
    return " ".join(sorted(o for o in overrides if rundir.override_key(o) not in IDENTITY_OVERRIDES))


def named_run(run: dict, config: DictConfig) -> dict:
    """The run with its recipe named as today's configs name it (`recipes.named_recipe`): `method` becomes
    that name (`recorded_method` keeps metrics.json's), `recipe` its changes on top of that recipe, and a
    tagged run whose every change only restated that recipe (a default's values, typed before they were
    the default) joins the recipe's own cell: `tag` becomes "" and `folded_tag` keeps the tag."""
    overrides = recorded_overrides(Path(run["run_dir"]))
    named = recipes.named_recipe_of_run(run["method"], config, rundir.prune_cli_version(run))
    changes = recipe_changes(None if overrides is None else recipes.recipe_overrides(run["method"], named, overrides))
    renamed = {**run, "method": named, "recorded_method": run["method"], "recipe": changes}
    if run.get("tag") and changes == "" and recipe_changes(overrides) != "":
        renamed.update(tag="", folded_tag=run["tag"])
    return renamed


def _seconds_timed_whole(members: list[dict]) -> float:
    """Mean training seconds of the runs timed whole: those never resumed, and those resumed from a
    checkpoint that carried the seconds before it (`resumed_from.seconds_before`). A run resumed
    from an older checkpoint timed only its tail, and is left out."""
    whole = [float(r["train_seconds"]) for r in members if "train_seconds" in r and timed_whole(r)]
    return statistics.fmean(whole) if whole else float("nan")


def timed_whole(record: Mapping[str, Any]) -> bool:
    """Whether a run's `train_seconds` covers all its steps (see `_seconds_timed_whole`)."""
    resumed = record.get("resumed_from")
    return not resumed or (isinstance(resumed, dict) and rundir.is_kind(resumed.get("seconds_before"), rundir.NUMBER))


def cell_sparsity(method: str, sparsity: float) -> float:
    """The sparsity a run's cell is filed under: 0 for the dense references (whatever --sparsity said),
    else the requested s to 4 places, so that 0.7 typed anywhere finds the runs that asked for it."""
    return 0.0 if method in REFERENCE_METHODS else round(sparsity, 4)


def per_seed_values(members: list[dict]) -> tuple[tuple[int, ...], tuple[float, ...]]:
    """One value per seed, in the order the seeds first appear: a seed run twice is one sample,
    not two (two runs of seed 42 would otherwise count as n = 2 with a spread of 0), so its runs
    are averaged. A run whose metrics.json has no seed is a sample of its own."""
    by_seed: dict[object, list[float]] = {}
    for index, run in enumerate(members):
        key = int(run["seed"]) if run.get("seed") is not None else ("unknown", index)
        by_seed.setdefault(key, []).append(float(run["main_metric_value"]))
    seeds = tuple(key if isinstance(key, int) else -1 for key in by_seed)
    return seeds, tuple(statistics.fmean(values) for values in by_seed.values())


UNRECORDED_BACKBONE = "model-unrecorded"  # a run whose metrics.json predates its `model` field


def backbone(run: dict) -> str:
    """The model a run pruned: as metrics.json records it (`model.name_or_path`, as typed), with which
    weights (and tokenizer) where runs under that name were made on different ones (`name_backbones`)."""
    return str(run.get("backbone") or run.get("model") or UNRECORDED_BACKBONE)


def name_backbones(runs: list[dict]) -> None:
    """Set `run["backbone"]`, the model a run pruned as the report names it, from the model's name as
    typed (metrics.json's `model`) and the base weights and tokenizer it recorded:

    - one model under several names (`packaged:all-MiniLM-L6-v2` and that package's folder, `./model`
      typed in two folders) is one backbone, named by its hub (or packaged) name where it has one,
      else its most used name: fine-tuning run under one name is the reference of pruning under
      the other;
    - several models under one name (a folder replaced between runs, a hub name that moved to a new
      revision) are as many backbones, named with their weights' hash (and tokenizer's, where only
      that differs): they were averaged into one cell as seeds of one experiment.

    A run recorded before the hashes were keeps its name: nothing says which model it was."""
    names: dict[tuple[str, Any], Counter[str]] = {}
    for run in runs:
        if run.get("base_weights_hash_before"):
            names.setdefault(_made_on(run), Counter())[str(run.get("model") or UNRECORDED_BACKBONE)] += 1
    canonical = {identity: min(counts, key=lambda name: (looks_local(name), -counts[name], name)) for identity, counts in names.items()}
    models_named: dict[str, set[tuple[str, Any]]] = {}
    for identity, name in canonical.items():
        models_named.setdefault(name, set()).add(identity)
    for run in runs:
        if not run.get("base_weights_hash_before"):
            continue
        identity = _made_on(run)
        name, models = canonical[identity], models_named[canonical[identity]]
        if len(models) < 2:
            run["backbone"] = name
            continue
        by_tokenizer_too = len(models) > len({weights for weights, _ in models})  # two models that differ only in their tokenizer
        run["backbone"] = f"{name} (weights {identity[0][:8]}" + (f", tokenizer {str(identity[1])[:8]}" if by_tokenizer_too else "") + ")"


def _made_on(run: dict) -> tuple[str, Any]:
    """The model a run was made on, as its record fingerprints it: (base weights' hash, tokenizer's hash)."""
    return str(run["base_weights_hash_before"]), run.get("tokenizer_hash")


def backbone_label(model: str) -> str:
    """How a table names a backbone: the packaged MiniLM without its `packaged:` prefix."""
    return model.removeprefix("packaged:")


def section(run: dict, by_backbone: bool = False) -> str:
    """The table a run is filed in: its task, or `<task>-holdout<rows>` for a run scored on training rows
    set aside (`data.holdout`), so that its figures are never averaged or compared with dev figures, nor
    with another set of held-out rows. Where the runs collected pruned more than one backbone, the
    backbone is part of the table's name (`sst2@bert-base-uncased`): MiniLM's seed 1 and BERT-base's
    seed 1 are two results, not one seed run twice, and neither is the other's reference."""
    task = f"{run['task']}-{HOLDOUT}{run['holdout']}" if run.get("holdout") else run["task"]
    return f"{task}@{backbone_label(backbone(run))}" if by_backbone else task


def backbones_line(runs: list[dict]) -> list[str]:
    """The report's statement of which model its runs pruned (none where no run recorded it)."""
    counts = Counter(backbone(run) for run in runs)
    if not counts or set(counts) == {UNRECORDED_BACKBONE}:  # no complete run (all stopped or failed): no model to name
        return []
    typed: dict[str, set[str]] = {}
    for run in runs:
        typed.setdefault(backbone(run), set()).add(str(run.get("model") or UNRECORDED_BACKBONE))

    def also(model: str) -> str:
        """The other names the backbone's runs recorded (`name_backbones` found them one model)."""
        others = sorted(typed[model] - {model.split(" (weights ")[0]})
        return f" (also recorded as {', '.join(f'`{name}`' for name in others)})" if others else ""

    if len(counts) == 1:
        return [f"Backbone of every run: `{next(iter(counts))}`{also(next(iter(counts)))}.", ""]
    listed = ", ".join(f"`{model}` ({n} run{'s' if n > 1 else ''}){also(model)}"
                       for model, n in sorted(counts.items(), key=lambda kv: backbone_label(kv[0])))
    return [f"Backbones: {listed}. Each has its own tables (`<task>@<backbone>`); no run is averaged or compared "
            "with another backbone's.", ""]


def plot_file_name(task: str, taken: set[str]) -> str:
    """A plot's file name for a table: `report_<table>.png`, with anything a path cannot hold (the
    slashes of a local folder or a hub name) as `_`, and a number added where two tables would share one."""
    stem = "report_" + re.sub(r"[^\w.@-]", "_", task)
    name, number = f"{stem}.png", 2
    while name in taken:
        name, number = f"{stem}-{number}.png", number + 1
    taken.add(name)
    return name


def mixed_recipes(counts: Counter[str]) -> tuple[tuple[str, int], ...]:
    """An untagged cell's distinct recipes (`recipe_changes` of its runs, counted) with how many runs had
    each, most runs first; empty where every run had the same. Untagged runs are taken as one recipe on
    several seeds, so a 2-step smoke run left beside them would be averaged in as another seed."""
    return tuple(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))) if len(counts) > 1 else ()


def describe_recipes(group: Group) -> str:
    """`adapt_by_pruning s=0.5 (none: 2 runs; `trainer.max_steps=2`: 1 run)`: a mixed cell, for a note."""
    parts = "; ".join(f"{f'`{changes}`' if changes else 'none'}: {n} run{'s' if n > 1 else ''}" for changes, n in group.recipes)
    return f"{group.label} s={group.sparsity:g} ({parts})"


def mixed_lines(groups: list[Group]) -> list[str]:
    """A note under a task's table naming the cells that average runs of different recipes."""
    mixed = [g for g in groups if g.recipes]
    if not mixed:
        return []
    return ["", "Cells that average runs of different recipes (their overrides differ; tag the odd ones with `tag=<name>` "
                "or move them out): " + ", ".join(describe_recipes(g) for g in mixed) + "."]


def group_runs(runs: list[dict]) -> list[Group]:
    by_backbone = len({backbone(run) for run in runs}) > 1
    buckets: dict[tuple, list[dict]] = {}
    for run in runs:
        sparsity = cell_sparsity(run["method"], run["sparsity_requested"])
        tag = run.get("tag") or ""
        buckets.setdefault((section(run, by_backbone), run["method"], sparsity, run["main_metric"], tag), []).append(run)
    groups = []
    for (task, method, sparsity, metric, tag), members in sorted(buckets.items()):
        algorithm = members[0].get("algorithm", method)
        changes = Counter(r["recipe"] for r in members)  # each run's changes, read once by `collect` (`named_run`)
        seeds, values = per_seed_values(members)
        groups.append(Group(task, method, sparsity, metric, values,
                            statistics.fmean(r["sparsity_realized"] for r in members), tag, " | ".join(sorted(changes)) if tag else "", algorithm,
                            _seconds_timed_whole(members), seeds,
                            "/".join(sorted({str(r.get("threads", "?")) for r in members}, key=lambda t: (t == "?", t))),
                            tuple(sorted({int(r["steps"]) for r in members if "steps" in r})),
                            tuple(sorted({r["batch_size"] for r in members if r.get("batch_size") is not None})),
                            len(members) - len(values), () if tag else mixed_recipes(changes),
                            tuple(sorted(Counter(r["folded_tag"] for r in members if r.get("folded_tag")).items())),
                            tuple((use, tuple(sorted(Counter(rows for rows in (row_set(r, use) for r in members) if rows is not None).items())))
                                  for use in ROW_USES)))
    return groups


ROW_USES = ("scored", "trained")  # the rows a run was scored on (metrics.json's `scored_on`) and trained on (`trained_on`)


def row_set(run: dict, use: str) -> tuple[str, str] | None:
    """The rows a run was scored or trained on (`use`), as its metrics.json fingerprints them: (the
    splits' fingerprints, a description such as "872 rows of glue/SST-2/dev.tsv"), or None for a run
    recorded before rows were fingerprinted."""
    recorded = run.get(f"{use}_on")
    splits = {"train": recorded} if use == "trained" else recorded
    if not isinstance(splits, dict) or not splits:
        return None
    if not all(isinstance(split, dict) and isinstance(split.get("rows_sha256"), str) for split in splits.values()):
        return None
    key = " ".join(f"{name}:{split['rows_sha256'][:12]}" for name, split in sorted(splits.items()))
    return key, "; ".join(f"{split.get('rows', '?')} rows of {split.get('source', '?')}" for _, split in sorted(splits.items()))


def runs_per_row_set(groups: list[Group], use: str) -> dict[str, tuple[str, int]]:
    """{rows' fingerprint: (what they are, runs scored or trained on them, as `use` says)} over `groups`
    (a task's table). One fingerprint read from several folders is named by the folder most of its
    runs read."""
    runs_on: Counter[str] = Counter()
    described: dict[str, Counter[str]] = {}
    for g in groups:
        for (key, what), n in dict(g.row_sets).get(use, ()):
            runs_on[key] += n
            described.setdefault(key, Counter())[what] += n
    return {key: (described[key].most_common(1)[0][0], n) for key, n in sorted(runs_on.items(), key=lambda kv: (-kv[1], kv[0]))}


def row_sets_lines(groups: list[Group]) -> list[str]:
    """A note under a task's table whose runs were scored, or trained, on different rows (a data file
    edited or replaced between runs, runs that read different copies of the task): their means, and
    the margins between methods, compare different data."""
    lines = []
    for use in ROW_USES:
        row_sets = runs_per_row_set(groups, use)
        if len(row_sets) > 1:
            sets = "; ".join(f"{n} run{'s' if n > 1 else ''} on {what} ({key})" for key, (what, n) in row_sets.items())
            lines += ["", f"The runs of this table were {use} on {len(row_sets)} different sets of rows (a data file changed between "
                          f"runs, or runs read different copies), so its cells compare different data: {sets}."]
    return lines


def seeds_cell(group: Group) -> str:
    """The table's n: seeds, and the runs that repeated one of them (averaged into it, not counted)."""
    return f"{len(group.values)}" + (f" (+{group.repeats} repeat{'s' if group.repeats > 1 else ''})" if group.repeats else "")


def repeats_lines(groups: list[Group]) -> list[str]:
    """A note under a task's table where some seed was run more than once."""
    repeated = [g for g in groups if g.repeats]
    if not repeated:
        return []
    cells = ", ".join(f"{g.label} s={g.sparsity:g} ({g.repeats})" for g in repeated)
    return ["", f"Runs that repeat a seed of their cell are averaged into that seed, not counted as seeds: {cells}."]


def folded_lines(groups: list[Group]) -> list[str]:
    """A note under a task's table naming the tagged runs averaged into an untagged cell, because their
    overrides only restated that cell's recipe (a recipe run under a tag before it became the default)."""
    folded = [g for g in groups if g.folded]
    if not folded:
        return []
    cells = ", ".join(f"{g.label} s={g.sparsity:g} (" + "; ".join(f"`{tag}`: {n} run{'s' if n > 1 else ''}" for tag, n in g.folded) + ")"
                      for g in folded)
    return ["", "Tagged runs averaged into a cell, their overrides only restating its recipe (`prune_cli/recipes.py`): " + cells + "."]


def rich_table(groups: list[Group]) -> Table:
    table = Table(title="results (mean ± std over seeds)")
    for column in ("task", "method", "sparsity", "realized", "metric", "mean ± std", "n"):
        # fold, not "…": in an 80-column terminal an ellipsis would hide a run's tag or metric
        table.add_column(column, justify="left" if column in ("task", "method", "metric") else "right", overflow="fold")
    for g in groups:
        # the requested sparsity as written, as report.md does (s=0.9999): two places showed it as "1.00", all pruned
        table.add_row(g.task, g.label, f"{g.sparsity:g}", f"{g.realized:.4f}", g.metric, g.mean_std, seeds_cell(g))
    return table


def to_csv(groups: list[Group]) -> str:
    return rundir.csv_text(
        ["task", "method", "tag", "sparsity", "sparsity_realized", "metric", "mean", "std", "n", "values", "train_seconds_mean"],
        ([g.task, g.method, g.tag, g.sparsity, f"{g.realized:.6f}", g.metric, f"{g.mean:.6f}", "" if g.measured_std is None else f"{g.measured_std:.6f}",
          len(g.values), " ".join(f"{v:.6f}" for v in g.values), f"{g.train_seconds:.1f}"] for g in groups))


def table_row(cells: list[str]) -> str:
    """One row of a Markdown table. A `|` in a cell ends the cell, inside a code span too, so it is
    escaped: a recipe's changes (`mask.include=['query|key']`, a regex's alternation) or a name
    (`method.name='a|b'`) split their row into more cells than its header has, shifting every
    figure after it into the wrong column. A line break would end the row; it becomes a space."""
    return "| " + " | ".join(cell.replace("|", "\\|").replace("\n", " ") for cell in cells) + " |"


def to_markdown(groups: list[Group], found: Collected, plots: dict[str, str]) -> str:
    lines = ["# prune-cli report", "", f"{len(found.runs)} complete runs, {len(found.failed)} failed, "
             f"{len(found.incomplete)} incomplete.", "", *backbones_line(found.runs)]
    for task in sorted({g.task for g in groups}):
        task_groups = [g for g in groups if g.task == task and not g.tag]
        if not task_groups:
            continue
        sparsities = sorted({g.sparsity for g in task_groups if g.method not in REFERENCE_METHODS})
        methods = sorted({g.method for g in task_groups})
        scored_on = "held-out training rows" if task_groups[0].metric.endswith(f"_{HOLDOUT}") else "dev"
        lines += [f"## {task} ({task_groups[0].metric}, {scored_on})", ""]
        header = ["method", *(f"s={s:g}" for s in sparsities), "reference"]  # a list: no empty cell when only references ran
        lines.append(table_row(header))
        lines.append("|" + "---|" * len(header))
        for method in methods:
            by_s = {g.sparsity: g for g in task_groups if g.method == method}
            if method in REFERENCE_METHODS:
                ref = by_s.get(0.0)
                cells = ["" for _ in sparsities] + [f"{ref.mean_std} (n={len(ref.values)})"]
            else:
                cells = [f"{by_s[s].mean_std} (n={len(by_s[s].values)}, realized {by_s[s].realized:.4f})"
                         if s in by_s else "—" for s in sparsities] + [""]
            lines.append(table_row([method, *cells]))
        lines += margin_lines(task_groups, sparsities)
        lines += repeats_lines(task_groups)
        lines += folded_lines(task_groups)
        lines += mixed_lines(task_groups)
        lines += row_sets_lines([g for g in groups if g.task == task])
        if task in plots:
            lines += ["", f"![{task}]({plots[task]})"]
        lines.append("")
    lines += ablation_markdown(groups)
    lines += cost_markdown(groups)
    if found.failed or found.incomplete:
        lines += ["## Runs without results", ""]
        lines += [f"- failed: `{path}`: {reason}" for path, reason in found.failed]
        lines += [f"- incomplete: `{path}`: {incomplete_reason(path)}" for path in found.incomplete]
        lines.append("")
    return "\n".join(lines)


OURS = "adapt_by_pruning"
PRUNING_BASELINES = ("random", "magnitude", "gmp", "imp")


def margin_lines(task_groups: list[Group], sparsities: list[float]) -> list[str]:
    """Issue 7's comparisons, in points (x 100) of the task's metric: ours against fine-tuning, the
    best pruning baseline at the same sparsity, and feature extraction. Only where both exist."""
    ours = {g.sparsity: g for g in task_groups if g.method == OURS}
    refs = {g.method: g for g in task_groups if g.method in REFERENCE_METHODS}
    if not ours:
        return []
    lines: list[str] = []
    for name, ref in (("fine-tuning", refs.get("finetune")), ("feature extraction", refs.get("feature_extraction"))):
        if ref is not None:
            cells = [f"s={s:g}: {100 * (ours[s].mean - ref.mean):+.1f} (n={len(ours[s].values)} vs {len(ref.values)})" for s in sparsities if s in ours]
            lines.append(f"- vs {name}: " + ", ".join(cells))
    cells = []
    for s in sparsities:
        rivals = [g for g in task_groups if g.sparsity == s and g.method in PRUNING_BASELINES]
        if s in ours and rivals:
            best = max(rivals, key=lambda g: g.mean)
            missing = sorted(set(PRUNING_BASELINES) - {g.method for g in rivals})
            cells.append(f"s={s:g}: {100 * (ours[s].mean - best.mean):+.1f} over {best.method}"
                         + (f" (not run: {', '.join(missing)})" if missing else ""))
    if cells:
        lines.append("- vs the best pruning baseline: " + ", ".join(cells))
    if not lines:  # ours alone: nothing to compare with, so no heading over an empty list
        return []
    return ["", f"Margins of {OURS} (mean over seeds, points; n = seeds behind each mean):", "", *lines]


def cost_markdown(groups: list[Group]) -> list[str]:
    """Training seconds per run (metrics.json's train_seconds) by task and method: what the grid costs.

    A run's seconds are its own wall clock. Runs made side by side (`reproduce.sh` with JOBS=2, a
    joblib sweep) each ran on fewer threads and overlapped in time, so the threads column says
    which figures are lane figures and the total is a sum of run times, not the grid's wall clock.
    No complete run, no section (not an empty table over "the 0 runs above").
    """
    if not groups:
        return []
    timed = [g for g in groups if not math.isnan(g.train_seconds)]  # NaN: every run of the group was resumed
    rows: dict[tuple[str, str, str], list[float]] = {}
    for g in timed:
        if not g.tag:
            rows.setdefault((g.task, g.method, g.threads), []).extend([g.train_seconds] * g.runs)
    total = sum(g.train_seconds * g.runs for g in timed)
    lines = ["## Cost", "", f"Training time of the {sum(g.runs for g in groups)} runs above: about {total / 3600:.1f} h, "
             "the sum of each run's own wall clock (ablations included; loading and scoring excluded; a resumed run's time is "
             "that of the steps it kept, before its checkpoint and after, and one resumed from a checkpoint that did not keep "
             "its time counts as the mean of its group's runs timed whole). Runs on fewer threads than cores ran side by side, "
             "so the grid's own wall clock was shorter."
             + (" Threads `?`: not recorded (the run predates that field of metrics.json)." if any("?" in t for _, _, t in rows) else ""),
             "", "| task | method | threads | runs | mean training s per run |", "|---|---|---|---|---|"]
    lines += [table_row([task, method, threads, str(len(seconds)), f"{statistics.fmean(seconds):.0f}"])
              for (task, method, threads), seconds in sorted(rows.items())]
    return lines + [""]


@dataclass(frozen=True)
class PairedGap:
    """first − second in points (× 100), seed by seed, over the seeds both sides have.

    A seed's draw (data order, θ0, the head) moves both sides together, so a margin smaller than the
    seed spread is read on these paired differences, not on two means. The one pairing behind the
    report's Δ columns, scripts/compare_seeds.py and scripts/pair_by_source.py.
    """

    seeds: tuple[int, ...]
    points: tuple[float, ...]  # one difference per shared seed, in points

    @property
    def mean(self) -> float:
        return statistics.fmean(self.points)

    @property
    def ahead(self) -> int:
        """On how many shared seeds the first side is ahead."""
        return sum(p > 0 for p in self.points)

    @property
    def sd(self) -> float | None:
        """The differences' standard deviation over the seeds; None under two seeds."""
        return statistics.stdev(self.points) if len(self.points) > 1 else None

    @property
    def standard_error(self) -> float | None:
        """How far the seeds alone move the mean (sd over √n); None under two seeds."""
        return None if self.sd is None else self.sd / len(self.points) ** 0.5

    def per_seed(self) -> str:
        return ", ".join(f"{p:+.2f}" for p in self.points)


def paired_gap(first: dict[int, float], second: dict[int, float]) -> PairedGap:
    """The paired differences of two {seed: score} readings (seeds in ascending order)."""
    seeds = tuple(sorted(set(first) & set(second)))
    return PairedGap(seeds, tuple(100 * (first[s] - second[s]) for s in seeds))


def paired_delta(tagged: Group, base: Group) -> str:
    """tagged − base in points, over the seeds both have; seed-to-seed noise would swamp the mean difference."""
    gap = paired_gap(tagged.by_seed(), base.by_seed())
    if not gap.seeds:
        return f"{100 * (tagged.mean - base.mean):+.1f} (no shared seed)"
    return f"{gap.mean:+.1f} ({', '.join(map(str, gap.seeds))})"


# Head settings that decide how the encoder is read (not how the head is trained, which is recipe).
HEAD_READOUT = ("head.pooling",)


def head_changes(group: Group) -> frozenset[str]:
    """The tag's overrides of the head's readout (`head.pooling=mean`). A recipe that reads the encoder
    another way is only fairly compared with fine-tuning that reads it the same way."""
    return frozenset(o for o in group.changes.split() if rundir.override_key(o) in HEAD_READOUT)


def budget(group: Group) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The training budget a group's runs had (issue 7: the same for every method compared): the steps each
    run trained for and the batch each step read, not the overrides that set them, so a recipe that restates
    the default budget still matches, and 4000 steps of 16 examples are not matched with 4000 steps of 32."""
    return group.steps, group.batch_sizes


def reference_key(group: Group) -> tuple[frozenset[str], tuple[tuple[int, ...], tuple[int, ...]]]:
    """What fine-tuning must share with a recipe to be its fair reference: how the head reads the encoder,
    and the budget."""
    return head_changes(group), budget(group)


def default_finetune(groups: list[Group], task: str) -> Group | None:
    """The task's fine-tuning with the default recipe, as the reference the ablation table pairs with.

    That is the grid's untagged runs plus any tagged fine-tuning runs that change nothing (the same recipe
    on fresh seeds, e.g. `finetune-fresh-seeds`), so that a recipe rerun on those seeds too is compared
    with fine-tuning on every seed it has. The grid's own tables keep the untagged runs alone, so that
    every method there is averaged over the same seeds.
    """
    grid = next((g for g in groups if (g.task, g.method, g.tag) == (task, "finetune", "")), None)
    if grid is None:
        return None
    by_seed = grid.by_seed()
    for extra in (g for g in groups if g.task == task and g.method == "finetune" and g.tag and not g.changes):
        for seed, value in extra.by_seed().items():
            by_seed.setdefault(seed, value)
    seeds = tuple(sorted(by_seed))
    return replace(grid, values=tuple(by_seed[s] for s in seeds), seeds=seeds)


def ablation_markdown(groups: list[Group]) -> list[str]:
    """One table per task and sparsity: each tagged recipe against the recipe it changes.

    That is the untagged runs of its own method where there are some (a named recipe such as
    `adapt_by_pruning_stop_at_s`, whose ablations were made on it), else the default: the untagged runs
    of the method named after the algorithm (`adapt_by_pruning`), so that a tagged run of another recipe
    of it (`adapt_by_pruning_paper`) is compared with the default too.
    """
    tagged = [g for g in groups if g.tag]
    if not tagged:
        return []
    lines = ["## Ablations", "",
             "Each row is a tagged set of runs (`tag=...`) against the untagged runs of the recipe it changes at the same task "
             "and sparsity: its own method's where there are some (a named recipe, its ablations made on it), else the default "
             "recipe's (the method named after the algorithm). Δ is in points (× 100), paired by seed: the mean of "
             "(tagged − base) over the seeds both have (listed); with no shared seed, the difference of the means; "
             "— where the algorithm has no untagged runs there (`method=transfer` scores another run's mask). "
             "The next column compares the same way with the task's default fine-tuning runs (untagged, plus any tagged "
             "ones that change nothing: the same recipe on more seeds): issue 7's target. "
             "The last one, for a recipe that changes how the head reads the encoder (`head.pooling`) or trains for another "
             "number of steps or on another batch size, compares with the task's tagged fine-tuning runs that read the encoder the same way and "
             "trained for the same steps of the same batch size (\"not run\" where there are none), so that both sides get the "
             "same head and budget.", ""]
    for task, sparsity in sorted({(g.task, g.sparsity) for g in tagged}):
        rows = [g for g in tagged if (g.task, g.sparsity) == (task, sparsity)]
        lines += [f"### {task}, s={sparsity:g} ({rows[0].metric})", "",
                  "| recipe | changes | mean ± std | n | Δ vs base (seeds) | Δ vs fine-tuning (seeds) "
                  "| Δ vs fine-tuning with the same head and budget (seeds) |", "|---|---|---|---|---|---|---|"]
        finetune = default_finetune(groups, task)

        def vs_finetune(group: Group) -> str:
            return paired_delta(group, finetune) if finetune is not None and group.method != "finetune" else ""

        def vs_matched_finetune(group: Group) -> str:
            key = reference_key(group)
            if group.method == "finetune" or (not head_changes(group) and (finetune is None or budget(group) == budget(finetune))):
                return ""  # the default fine-tuning already matches: the previous column is the comparison
            same = next((g for g in groups if g.task == task and g.method == "finetune" and g.tag and reference_key(g) == key), None)
            return paired_delta(group, same) if same is not None else "not run"

        untagged = {g.method: g for g in groups if (g.task, g.sparsity, g.tag) == (task, sparsity, "")}
        base_of = {g: g.method if g.method in untagged and g.method != g.algorithm else g.algorithm for g in rows}
        for base_method in sorted(set(base_of.values())):
            base = untagged.get(base_method)
            if base is not None:
                role = "default" if base_method == base.algorithm else "untagged"
                lines.append(table_row([f"{base_method} ({role})", "", base.mean_std, str(len(base.values)), "", vs_finetune(base), ""]))
            for g in sorted((g for g in rows if base_of[g] == base_method), key=lambda g: g.tag):
                delta = paired_delta(g, base) if base is not None else "—"
                changes = f"`{g.changes}`" if g.changes else "none (the default recipe)"
                lines.append(table_row([g.label, changes, g.mean_std, str(len(g.values)), delta, vs_finetune(g), vs_matched_finetune(g)]))
        lines.append("")
    return lines


def plot_task(task: str, groups: list[Group], path: Path) -> None:
    """Score vs sparsity per method (mean ± std shaded); FT and feature extraction as lines."""
    plt = plots.pyplot()
    figure, axis = plt.subplots(figsize=(5, 3.6), dpi=120)
    task_groups = [g for g in groups if g.task == task and not g.tag]
    for method in sorted({g.method for g in task_groups}):
        points = sorted((g for g in task_groups if g.method == method), key=lambda g: g.sparsity)
        if method in REFERENCE_METHODS:
            axis.axhline(points[0].mean, linestyle="--" if method == "finetune" else ":", color="black" if method == "finetune" else "grey",
                         label={"finetune": "Fine-Tune", "feature_extraction": "Feat. Ext."}[method])
            continue
        xs = [g.sparsity for g in points]
        means = [g.mean for g in points]
        stds = [g.std for g in points]
        line, = axis.plot(xs, means, marker="o", label=method)
        axis.fill_between(xs, [m - s for m, s in zip(means, stds)], [m + s for m, s in zip(means, stds)], color=line.get_color(), alpha=0.2)
    axis.set_xlabel("Sparsity")
    axis.set_ylabel(task_groups[0].metric)
    axis.set_xlim(0.0, 1.0)
    axis.set_title(task)
    axis.legend(fontsize=7)
    plots.save_png(figure, path)


def build(root: Path, out_dir: Path | None = None) -> tuple[list[Group], Collected, list[Path]]:
    """Collect the runs under `root` and write report.csv, report.md and a plot per task into
    `out_dir` (default `root`); returns the groups, what was found, and the files written."""
    found = collect(root)
    if not found.runs and not found.failed and not found.incomplete:
        raise UserError(f"no run directories (folders with {rundir.CONFIG}) under {root}")
    groups = group_runs(found.runs)
    out = out_dir or root
    plots: dict[str, str] = {}
    taken: set[str] = set()
    for task in sorted({g.task for g in groups if not g.tag}):
        name = plot_file_name(task, taken)
        plot_task(task, groups, out / name)
        plots[task] = name
    rundir.atomic_write_text(out / "report.csv", to_csv(groups))
    rundir.atomic_write_text(out / "report.md", to_markdown(groups, found, plots))
    return groups, found, [out / "report.csv", out / "report.md", *(out / name for name in plots.values())]
