"""What a person sees: a rich progress bar during training (on stderr) and a table of metrics at the end."""

from __future__ import annotations

import sys
from contextlib import contextmanager, suppress
from typing import Any, Iterator, Mapping, Sequence

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text

from prune_cli import rundir

# soft_wrap: a line is never broken at the console's width. Piped or captured, rich assumes 80
# columns, and would split a long run-directory path or error message over two lines, so that
# `prune-cli adapt ... | tail -1` no longer gives the path, nor an error its one line. Tables still fit.
# markup=False: what is printed (an input's text, a path, an error naming a value) shows as it is,
# never read as rich markup, which dropped "[fine]" from "a [fine] film" and "[red]" from a folder
# name without a trace; the few styled words go through `line`.
console = Console(soft_wrap=True, markup=False)
error_console = Console(stderr=True, soft_wrap=True, markup=False)


def counted(count: int, noun: str) -> str:
    """A count with its noun in the right number ("1 job", "8 jobs"), for lines a sweep of one also prints."""
    return f"{count} {noun}{'' if count == 1 else 's'}"


def line(*parts: str | tuple[str, str]) -> Text:
    """One printed line from plain strings and (text, style) pairs, e.g. (("error:", "bold red"), " ...")."""
    return Text.assemble(*parts)


@contextmanager
def step_progress(total: int, description: str, enabled: bool = True) -> Iterator:
    """Yield `update(record)`; one bar per phase, showing loss, the current sparsity, and the dev
    figures of the last step scored (`trainer.eval_every`)."""
    if not enabled:
        yield lambda record: None
        return
    progress = Progress(
        TextColumn("{task.description}", style="bold", markup=False),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]:.4f}  sparsity {task.fields[sparsity]:.3f}{task.fields[scored]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=error_console,  # a display, not output: `> log` or `| tee log` keeps it out of the log,
        transient=not error_console.is_terminal,  # and a closed stdout (`| head`) cannot end the run mid-step
    )
    with progress:
        bars: dict[str, object] = {}

        def update(record: Mapping[str, float]) -> None:
            phase = str(record.get("phase", description))
            if phase not in bars:
                bars[phase] = progress.add_task(f"{description} · {phase}", total=record.get("total", total), loss=float("nan"), sparsity=0.0,
                                                scored="")
            scored = "".join(f"  {key} {value:.4f}" for key, value in rundir.scored_figures(record).items())
            progress.update(bars[phase], completed=record["step"], loss=record["loss"], sparsity=record["sparsity"],
                            **({"scored": f"  (step {record['step']}){scored}"} if scored else {}))

        yield update


def metrics_table(title: str, rows: Mapping[str, object], compare: Mapping[str, object] | None = None) -> Table:
    table = Table(title=title)
    table.add_column("metric")
    table.add_column("value", justify="right")
    if compare is not None:
        table.add_column("stored", justify="right")
        table.add_column("same", justify="center")
    for key, value in rows.items():
        cells = [key, _fmt(value)]
        if compare is not None:
            stored = compare.get(key)
            cells += [_fmt(stored), "yes" if stored == value else "NO"]
        table.add_row(*cells)
    return table


@contextmanager
def checking(what: str) -> Iterator[None]:
    """A transient status line on a terminal while something takes seconds; nothing in a log."""
    if not error_console.is_terminal:
        yield
        return
    with error_console.status(what):
        yield


def _fmt(value: object) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def fail(message: str) -> None:
    error_console.print(line(("error:", "bold red"), f" {message}"), highlight=False)
    sys.stderr.flush()


def interrupted(detail: str, signal_name: str) -> None:
    """The one line of a command stopped by Ctrl-C or SIGTERM: not the user's error, not shown as one."""
    how = "" if signal_name == "SIGINT" else f" ({signal_name})"
    _stop_line(f"interrupted{how}", f": {detail}" if detail else "")


def stopped_job(detail: str) -> None:
    """A sweep job's line when a stop ended it, shown where the job ran (a joblib worker too)."""
    _stop_line("stopped", f" {detail}")


def skipped_job(detail: str) -> None:
    """A sweep job's line when it did not run because another job of the sweep runs the same thing."""
    error_console.print(line(("skipped", "bold cyan"), f" {detail}"), highlight=False)


def _stop_line(label: str, rest: str) -> None:
    """A stop's line on stderr. A closed stderr (rich raises SystemExit on a broken pipe) must
    not change how the stopped process ends, so printing it is best effort."""
    with suppress(OSError, SystemExit):
        error_console.print(line((label, "bold yellow"), rest), highlight=False)
        sys.stderr.flush()


def predictions_table(texts: Sequence[str], columns: Mapping[str, Mapping[int, object]]) -> Table:
    """One row per input text, one column per task ('-' where the task takes other inputs)."""
    table = Table(title="predictions")
    table.add_column("input", overflow="fold")
    for name in columns:
        table.add_column(name, justify="right")
    for i, text in enumerate(texts):
        table.add_row(text, *(_fmt(col[i]) if i in col else "-" for col in columns.values()))
    return table


def written_predictions_table(written: Sequence[Any]) -> Table:
    """One row per prediction file: what it was read from, its rows, and the share of each answer."""
    table = Table(title="prediction files")
    for column in ("file", "read from", "rows", "predicted"):
        table.add_column(column, justify="right" if column == "rows" else "left", overflow="fold")
    for item in written:
        table.add_row(str(item.path), item.source, str(item.rows), item.summary)
    return table


def footprint_table(footprints: Mapping[str, Any]) -> Table:
    """Bytes per task (mask + head) next to a fine-tuned float32 copy of the encoder."""
    table = Table(title="bytes per task (the base model is shared and loaded once)")
    for column in ("task", "mask", "head", "task total", "fine-tuned copy", "copy / task"):
        table.add_column(column, justify="left" if column == "task" else "right")
    for name, fp in footprints.items():
        table.add_row(name, _bytes(fp.mask_bytes), _bytes(fp.head_bytes), _bytes(fp.task_bytes),
                      _bytes(fp.finetuned_copy_bytes), f"{fp.finetuned_copy_bytes / max(fp.task_bytes, 1):.0f}x")
    return table


def _bytes(count: int) -> str:
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if count >= size:
            return f"{count / size:.2f} {unit}"
    return f"{count} B"


def plan_table(plan: Any) -> Table:
    """`adapt --dry-run`: one row per job it would run (`hydra_entry.Plan`), with its budget, the
    sweep's other settings that tell it apart, and what would happen to it (runs, skipped as a
    repeat, kept, resumes)."""
    others = [job.settings for job in plan.jobs]
    columns = ((["job"] if plan.sweep else []) + ["task", "method", "sparsity", "seed", "budget"] + (["other settings"] if any(others) else [])
               + (["what happens"] if plan.sweep else []))
    table = Table(title=f"the sweep's {len(plan.jobs)} jobs" if plan.sweep else "the run")
    for column in columns:
        table.add_column(column, justify="right" if column in ("job", "sparsity", "seed") else "left", overflow="fold")
    for job, other in zip(plan.jobs, others):
        cfg = job.cfg
        cells = [str(cfg.task.name), str(cfg.method.name), f"{float(cfg.sparsity):g}", str(cfg.seed), budget(cfg.trainer, job.train_rows)]
        if any(others):
            cells.append(other)
        if plan.sweep:
            cells = [str(job.number), *cells, job.action]
        table.add_row(*cells)
    return table


def budget(trainer: Any, rows: int | None = None) -> str:
    """A run's budget: with the number of rows it trains on, the steps it takes and how many epochs
    they are (`training.plan_budget`: SST-2's 2000 steps are 0.95 of an epoch, MRPC's 5 epochs are
    575 steps); without (data a dry run does not read), as the trainer config states it: so many steps
    or epochs, whichever ends first (either may be null), in batches of so many."""
    if rows is not None:
        from prune_cli.training import plan_budget

        planned = plan_budget(trainer, rows)
        return f"{planned.total_steps} steps ({planned.total_steps / planned.steps_per_epoch:.3g} epochs), batch {trainer.batch_size}"
    limits = [f"{trainer.max_steps} steps"] if trainer.get("max_steps") is not None else []
    limits += [f"{float(trainer.epochs):g} epochs"] if trainer.get("epochs") is not None else []
    return f"{' or '.join(limits) or 'no limit'}, batch {trainer.batch_size}"

