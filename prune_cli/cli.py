"""`prune-cli`: a thin Typer front. Options become Hydra overrides; the work is in `runner`.

Every `UserError` ends as one red line and exit code 2; `--debug` shows the traceback instead.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Optional, TypeVar

import typer

from prune_cli import display
from prune_cli.errors import UserError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Adapt a pretrained BERT to a task by pruning only: learn a binary mask over its frozen weights.",
)
PASS_THROUGH = {"allow_extra_args": True, "ignore_unknown_options": True}
T = TypeVar("T")


def guarded(work: Callable[[], T], debug: bool) -> T:
    if debug:
        os.environ["HYDRA_FULL_ERROR"] = "1"
        return work()
    try:
        return work()
    except UserError as exc:
        display.fail(str(exc))
        raise typer.Exit(code=exc.exit_code) from None


def options_to_overrides(
    task: Optional[str], sparsity: Optional[str], method: Optional[str], model: Optional[str], seed: Optional[str]
) -> list[str]:
    """Map CLI options onto Hydra overrides; comma lists become sweeps under --multirun."""
    from prune_cli.config import group_options

    overrides = []
    if task is not None:
        overrides.append(f"task={task}")
    if method is not None:
        overrides.append(f"method={method}")
    if model is not None:
        names = model.split(",")
        known = group_options("model")
        overrides.append(f"model={model}" if all(n in known for n in names) else f"model.name_or_path={model}")
    if sparsity is not None:
        overrides.append(f"sparsity={sparsity}")
    if seed is not None:
        overrides.append(f"seed={seed}")
    return overrides


TASK = typer.Option(None, "--task", help="GLUE task (cola, sst2, mrpc, stsb, qqp, mnli, qnli, rte); comma list sweeps with -m.")
SPARSITY = typer.Option(None, "--sparsity", help="Share of maskable weights to prune, in [0, 1); comma list sweeps with -m.")
METHOD = typer.Option(None, "--method", help="Method config name (configs/method); comma list sweeps with -m.")
MODEL = typer.Option(None, "--model", help="Model config name (configs/model), Hugging Face model name, or local folder.")
SEED = typer.Option(None, "--seed", help="Random seed; comma list sweeps with -m.")
DEBUG = typer.Option(False, "--debug", help="Show full tracebacks instead of one-line errors.")


@app.command(context_settings=PASS_THROUGH)
def adapt(
    ctx: typer.Context,
    task: Optional[str] = TASK,
    sparsity: Optional[str] = SPARSITY,
    method: Optional[str] = METHOD,
    model: Optional[str] = MODEL,
    seed: Optional[str] = SEED,
    multirun: bool = typer.Option(False, "--multirun", "-m", help="Run a Hydra sweep over comma-separated values."),
    resume: Optional[Path] = typer.Option(None, "--resume", help="Continue a killed run from its last checkpoint, with the config stored in RUN_DIR."),
    debug: bool = DEBUG,
) -> None:
    """Learn a mask (or run a baseline) and write a run directory under outputs/.

    Extra words are Hydra overrides, e.g. `trainer.max_steps=2000 method.t_small=0.5`.
    """
    from prune_cli.config import check_overrides, check_run_dir, compose, first_combination
    from prune_cli.hydra_entry import launch_adapt

    overrides = options_to_overrides(task, sparsity, method, model, seed) + list(ctx.args)

    def work() -> None:
        if resume is not None:
            if overrides or multirun:
                raise UserError(f"--resume continues {resume} with the config stored there; drop the other options ({' '.join(overrides) or '--multirun'})")
            from prune_cli import runner

            runner.resume(resume)
            return
        check_overrides(overrides, multirun)
        compose(first_combination(overrides))  # a typo fails here, in one line, before any job starts
        if not multirun:
            check_run_dir(overrides)
        failed = launch_adapt(overrides, multirun)
        if failed:
            raise UserError(f"{len(failed)} sweep job(s) failed; reasons are in failed.json under: {', '.join(failed)}")

    guarded(work, debug)


@app.command()
def evaluate(
    run_dir: Path = typer.Argument(..., help="A run directory written by `prune-cli adapt`."),
    data_dir: Optional[str] = typer.Option(None, "--data-dir", help="GLUE folder to score on (default: as configured / $GLUE_DIR)."),
    device: Optional[str] = typer.Option(None, "--device", help="Override the device (auto, cpu, cuda)."),
    debug: bool = DEBUG,
) -> None:
    """Rebuild base model + mask + head from RUN_DIR alone and re-score it on the dev set(s)."""
    from prune_cli import runner

    guarded(lambda: runner.evaluate(run_dir, data_dir=data_dir, device=device), debug)


@app.command()
def report(
    root: Path = typer.Argument(Path("outputs"), help="outputs/ or a multirun folder; searched recursively."),
    out: Optional[Path] = typer.Option(None, "--out", help="Where report.csv/.md and the plots go (default: ROOT)."),
    debug: bool = DEBUG,
) -> None:
    """Collect every run's metrics.json into a table, report.csv, report.md and per-task plots."""
    from prune_cli import report as reporting

    def work() -> None:
        groups, found, out_dir = reporting.build(root, out)
        display.console.print(reporting.rich_table(groups))
        for path, reason in found.failed:
            display.console.print(f"[red]failed[/] {path}: {reason}")
        for path in found.incomplete:
            display.console.print(f"[yellow]incomplete[/] {path} (no metrics.json)")
        display.console.print(f"wrote {out_dir / 'report.csv'}, {out_dir / 'report.md'} and report_<task>.png")

    guarded(work, debug)


analyze_app = typer.Typer(help="What the masks are: the paper's sub-network analyses.", no_args_is_help=True)
app.add_typer(analyze_app, name="analyze")


@analyze_app.command("topology")
def analyze_topology(
    run_dirs: list[Path] = typer.Argument(..., help="One or more run directories with a mask."),
    out: Optional[Path] = typer.Option(None, "--out", help="Folder for topology.csv and topology.png (default: the first run dir)."),
    debug: bool = DEBUG,
) -> None:
    """Share of weights kept per component (embed, query, key, value, attn_out, ffn_in, ffn_out) and per layer."""
    from prune_cli import analysis, rundir

    def work() -> None:
        results = analysis.topology(run_dirs)
        for kind in ("component", "layer"):
            display.console.print(analysis.topology_table(results, kind))
        folder = out or run_dirs[0]
        rundir.atomic_write_text(folder / "topology.csv", analysis.topology_csv(results))
        analysis.topology_plot(results, folder / "topology.png")
        display.console.print(f"wrote {folder / 'topology.csv'} and {folder / 'topology.png'}")

    guarded(work, debug)


@app.command("show-config", context_settings=PASS_THROUGH)
def show_config(
    ctx: typer.Context,
    task: Optional[str] = TASK,
    sparsity: Optional[str] = SPARSITY,
    method: Optional[str] = METHOD,
    model: Optional[str] = MODEL,
    seed: Optional[str] = SEED,
    debug: bool = DEBUG,
) -> None:
    """Print the composed config for these options and overrides (nothing runs)."""
    from omegaconf import OmegaConf

    from prune_cli.config import compose

    overrides = options_to_overrides(task, sparsity, method, model, seed) + list(ctx.args)
    cfg = guarded(lambda: compose(overrides), debug)
    typer.echo(OmegaConf.to_yaml(cfg))


def main() -> None:
    app()


if __name__ == "__main__":
    main()
