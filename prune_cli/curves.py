"""`prune-cli analyze curve`: the dev score along runs, against the step and the sparsity.

A run made with `trainer.eval_every=N` scores its dev set(s) every N steps of each phase, with the
model as it then stands, into history.jsonl. For adapt-by-pruning that traces the score as θ prunes
(the sparsity in the same record is the share of θ <= 0 then), and for a baseline its learning
curve; a finished run's last point is its own figure. This reads those records back, so the curve
comes from the run's own files and needs no model; and since a run appends them as it goes
(`rundir.LiveHistory`), a run still going (or stopped) shows its curve so far.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from omegaconf.errors import OmegaConfBaseException
from rich.table import Table

from prune_cli import plots, rundir
from prune_cli.analysis import distinct_labels, run_label
from prune_cli.errors import UserError, first_line


@dataclass(frozen=True)
class Point:
    """One scored step of one run: its figures (every eval_* key the record holds). `step` is the
    phase's own count, as history.jsonl numbers it; `run_step` counts every step of the run before
    it too, so that a curve over phases that each count from 1 (IMP's rounds, then the head) runs
    forward on one axis."""

    label: str
    phase: str
    step: int
    run_step: int
    sparsity: float
    metrics: dict[str, float]


@dataclass(frozen=True)
class Curve:
    """A run's scored steps, in order, and the figure the table and plot follow (its main metric, or
    the one `--metric` names). `unfinished` says where a run without metrics.json stands
    (`rundir.unfinished_kind`): its curve so far."""

    label: str
    metric: str
    points: list[Point]
    unfinished: str | None = None


@dataclass(frozen=True)
class _Run:
    """What a curve is labelled and read by: a finished run's record, or an unfinished one's config."""

    label: str
    main_metric: str
    unfinished: str | None


def _read_run(run_dir: Path) -> _Run:
    """A finished run by its metrics.json; one without (going on now, or stopped) by its config, the
    main metric being the one its metrics.json will name. One that finishes while its config is read
    (the runner's import takes seconds) is read as finished, not as stopped: its folder, let go by
    then, is no longer held by the process that ran it."""
    if (run_dir / rundir.CONFIG).is_file() and not (run_dir / rundir.METRICS).exists():
        state = rundir.unfinished_kind(run_dir)  # before the seconds below: a run that ends in them is read as finished
        from prune_cli.runner import main_metric_key  # a model-free module otherwise: only this needs the runner's rule

        cfg = rundir.load_complete_config(run_dir)
        try:  # labelled as its metrics.json will label it (`run_label`): sparsity=0 is "s0.0" there
            fields = {"task": cfg.task.name, "method": cfg.method.name, "sparsity_requested": float(cfg.sparsity), "seed": int(cfg.seed)}
            main = main_metric_key(cfg)
        except (OmegaConfBaseException, TypeError, ValueError) as exc:
            raise UserError(f"{run_dir / rundir.CONFIG} is not a complete run config ({first_line(exc)}); it was edited") from None
        if not (run_dir / rundir.METRICS).exists():
            return _Run(run_label(fields), main, state)
    rundir.require_run_dir(run_dir)
    record = rundir.load_run_record(run_dir, needs=("seed",))
    return _Run(run_label(record), record["main_metric"], None)


def figure_key(metric: str) -> str:
    """`--metric` as history.jsonl keys it: f1 or eval_f1 (a held-out run's: f1_holdout or eval_f1_holdout)."""
    return metric if metric.startswith(rundir.FIGURE_PREFIX) else f"{rundir.FIGURE_PREFIX}{metric}"


def curves(run_dirs: list[Path], metric: str | None = None) -> list[Curve]:
    """Each run's scored steps: a finished run's all, an unfinished one's so far, following its main
    metric or `metric` (MRPC's accuracy beside its F1, STS-B's Pearson beside its Spearman). A run
    scored only at its end (no trainer.eval_every) is refused by name, with the setting that would
    have scored it along the way; an unfinished one that has scored no step yet, with where it
    stands; one that scored other figures than `metric`, with those it has."""
    runs = [_read_run(run_dir) for run_dir in run_dirs]
    labels = distinct_labels(run_dirs, [run.label + (f" ({run.unfinished})" if run.unfinished else "") for run in runs])
    found = []
    for run_dir, run, label in zip(run_dirs, runs, labels):
        followed = figure_key(metric) if metric else run.main_metric
        history = rundir.load_history(run_dir)
        points = [Point(label, str(step["phase"]), int(step["step"]), run_step, float(step["sparsity"]),
                        {key: float(value) for key, value in rundir.scored_figures(step).items()})
                  for run_step, step in enumerate(history, start=1) if followed in step]
        scored = sorted({key for step in history for key in rundir.scored_figures(step)})
        if not points and metric and scored:
            raise UserError(f"{run_dir}'s {rundir.HISTORY} holds no {followed}; the figures it scored along the way are {', '.join(scored)}")
        if not points and run.unfinished:
            raise UserError(f"{run_dir} is a run that has not finished ({run.unfinished}, {len(history)} step(s) in its {rundir.HISTORY}) "
                            f"and has scored no {followed} yet (trainer.eval_every=N scores every N steps; a run without it only at its end)")
        if not points:
            raise UserError(f"{run_dir} was scored at its end only: its {rundir.HISTORY} holds no {followed} "
                            "(a run made with trainer.eval_every=N scores its dev set every N steps)")
        found.append(Curve(label, followed, points, run.unfinished))
    return found


def table(found: list[Curve]) -> Table:
    """Every scored step: run, phase, step, sparsity then, and the figure followed."""
    unfinished = [curve for curve in found if curve.unfinished]
    result = Table(title=f"the dev score along each run ({', '.join(sorted({c.metric for c in found}))})",
                   caption=f"{len(unfinished)} of {len(found)} runs not finished: the steps they have scored so far" if unfinished else None)
    for column in ("run", "phase", "step", "sparsity", "score"):
        result.add_column(column, justify="left" if column in ("run", "phase") else "right", overflow="fold")
    for curve in found:
        for point in curve.points:
            result.add_row(curve.label, point.phase, str(point.step), f"{point.sparsity:.4f}", f"{point.metrics[curve.metric]:.4f}")
    return result


def to_csv(found: list[Curve]) -> str:
    """Long form, one row per scored step and figure (a pair task's several splits and metrics all kept)."""
    return rundir.csv_text(["run", "phase", "step", "run_step", "sparsity", "metric", "value"],
                           ([p.label, p.phase, p.step, p.run_step, f"{p.sparsity:.6f}", metric, f"{value:.6f}"]
                            for curve in found for p in curve.points for metric, value in p.metrics.items()))


def plot(found: list[Curve], path: Path) -> None:
    """Two panels per figure followed, of the runs judged by it: against the step (over all its
    phases), and against the sparsity at that step. Runs of tasks with different metrics get a row
    each, on their own scale: CoLA's Matthews correlation (-1 to 1, near 0.1 at s = 0.9) on SST-2's
    accuracy axis (0.5 to 1) was a flat line."""
    plt = plots.pyplot()
    metrics = sorted({curve.metric for curve in found})
    figure, axes = plt.subplots(len(metrics), 2, figsize=(11, 4 * len(metrics)), sharey="row", squeeze=False)
    for (by_step, by_sparsity), metric in zip(axes, metrics):
        for curve in (c for c in found if c.metric == metric):
            values = [p.metrics[metric] for p in curve.points]
            by_step.plot([p.run_step for p in curve.points], values, marker="o", markersize=3, label=curve.label)
            by_sparsity.plot([p.sparsity for p in curve.points], values, marker="o", markersize=3, label=curve.label)
        by_step.set_xlabel("step (over all phases)")
        by_sparsity.set_xlabel("sparsity at that step")
        by_step.set_ylabel(metric)
        by_step.legend(fontsize=6)
    plots.save_png(figure, path)
