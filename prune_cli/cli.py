"""`prune-cli`: a thin Typer front. Options become Hydra overrides; the work is in `runner`.

Every `UserError` ends as one red line and exit code 2; Ctrl-C or SIGTERM as one line (for a run:
where it was left and how to resume it), then the process ends as that signal would have ended
it (`main`). `--debug` shows the traceback instead.
"""

from __future__ import annotations

import atexit
import contextlib
import math
import os
import signal
import sys
from collections import Counter
from pathlib import Path
from typing import Callable, Optional, TypeVar

import typer
from typer.core import TyperCommand, TyperOption

from prune_cli import display
from prune_cli.errors import RunInterrupted, ScoresDiffer, UserError, os_problem
from prune_cli.stopping import STOP_SIGNALS

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Adapt a pretrained BERT to a task by pruning only: learn a binary mask over its frozen weights.",
)
PASS_THROUGH = {"allow_extra_args": True, "ignore_unknown_options": True}
T = TypeVar("T")


class StrictOptions(TyperCommand):
    """A command whose options are each given once, and not empty. Click keeps the last of an
    option given twice and says nothing, so `--sparsity 0.9 --sparsity 0.7` trained at 0.7 unseen,
    where the same key given twice as Hydra overrides is refused (config.refuse_repeated_keys). An
    empty value is most often an unset shell variable (`--out "$OUT"`): as a path it read as the
    current folder, so `report --out ''` wrote there and `--model ''` tried to load '.' as a model.
    Flags (`--debug`), and options meant to repeat (`apply --text`, whose own check names an
    empty input), are left alone."""

    def make_parser(self, ctx: typer.Context):
        parser = super().make_parser(ctx)
        parse = parser.parse_args

        def parse_strictly(args: list[str]):
            given = list(args)  # parsing consumes `args`
            opts, rest, order = parse(args)  # `order` lists an option once for each time it was given
            for option in dict.fromkeys(order):
                if not isinstance(option, TyperOption) or option.is_flag or option.multiple or option.count:
                    continue
                problem = (given_more_than_once(option, given, sweeps=ctx.info_name == "adapt") if order.count(option) > 1
                           else given_empty(option) if opts.get(option.name) == "" else None)
                if problem:
                    display.fail(problem)
                    raise typer.Exit(code=UserError.exit_code)
            return opts, rest, order

        parser.parse_args = parse_strictly
        return parser


def long_name(option: TyperOption) -> str:
    """The name an option is spoken of by in a message: its longest spelling (--out, not -o)."""
    return max(option.opts, key=len)


def given_empty(option: TyperOption) -> str:
    """'--out is given an empty value; give one', and how to do without it where it has a default."""
    name = long_name(option)
    return f"{name} is given an empty value; give one" + ("" if option.required else f", or drop {name} for its default")


SWEEPABLE = ("--task", "--sparsity", "--method", "--seed")


def given_more_than_once(option: TyperOption, args: list[str], sweeps: bool) -> str:
    """"--sparsity is given twice ('0.9', then '0.7'); give it once", and how to sweep them where
    `adapt -m` sweeps that option."""
    values = []
    for at, word in enumerate(args):
        if word == "--":
            break
        name, equals, value = word.partition("=")
        if name in option.opts:
            values.append(value if equals else (args[at + 1] if at + 1 < len(args) else ""))
    name = long_name(option)
    times = "twice" if len(values) == 2 else f"{len(values)} times"
    hint = f"; to sweep them, give one comma list with -m: {name} {','.join(values)} -m" if sweeps and name in SWEEPABLE else ""
    return f"{name} is given {times} ({', then '.join(map(repr, values))}); give it once{hint}"


def _print_version(requested: bool) -> None:
    if requested:
        import prune_cli

        typer.echo(" ".join(f"{name} {version}" for name, version in prune_cli.versions().items()))
        raise typer.Exit()


@app.callback()
def _main(
    version: bool = typer.Option(False, "--version", callback=_print_version, is_eager=True,
                                 help="Print the versions of prune-cli, Python, torch and transformers, and exit."),
) -> None:
    """Options of `prune-cli` itself, before any command (the app's help text is Typer(help=...)'s)."""


def guarded(work: Callable[[], T], debug: bool) -> T:
    if debug:
        os.environ["HYDRA_FULL_ERROR"] = "1"
        return work()
    try:
        return work()
    except UserError as exc:
        display.fail(str(exc))
        raise typer.Exit(code=exc.exit_code) from None
    except OSError as exc:  # a path the user gave cannot be read or written, or the disk is full (--debug shows where)
        display.fail(os_problem(exc))
        raise typer.Exit(code=2) from None
    except KeyboardInterrupt as exc:  # Ctrl-C, or a run's SIGTERM: Typer would exit 130 without a word
        stop = exc if isinstance(exc, RunInterrupted) else RunInterrupted()
        display.interrupted(stop.detail, signal.Signals(stop.signum).name)
        raise typer.Exit(code=stop.exit_code) from None


TASK = typer.Option(None, "--task", help="Task config name: GLUE's (cola, sst2, mrpc, stsb, qqp, mnli, qnli, rte) or your own "
                    "(PRUNE_CLI_CONFIG_PATH); comma list sweeps with -m.")
SPARSITY = typer.Option(None, "--sparsity", help="Share of maskable weights to prune, in [0, 1); comma list sweeps with -m.")
METHOD = typer.Option(None, "--method", help="Method config name (configs/method); comma list sweeps with -m.")
MODEL = typer.Option(None, "--model", help="Model config name (configs/model), Hugging Face model name, or local folder.")
SEED = typer.Option(None, "--seed", help="Random seed; comma list sweeps with -m.")
DEBUG = typer.Option(False, "--debug", help="Show full tracebacks instead of one-line errors.")
RUN_BASE_MODEL = typer.Option(None, "--model", help="Load the run's base model from here (its folder moved, or a local copy of its hub "
                                                    "model; a model config's name, such as minilm, names its model); it must have the "
                                                    "weights and tokenizer the run was made with, which are checked.")


@app.command(cls=StrictOptions, context_settings=PASS_THROUGH)
def adapt(
    ctx: typer.Context,
    task: Optional[str] = TASK,
    sparsity: Optional[str] = SPARSITY,
    method: Optional[str] = METHOD,
    model: Optional[str] = MODEL,
    seed: Optional[str] = SEED,
    multirun: bool = typer.Option(False, "--multirun", "-m", help="Run a Hydra sweep over comma-separated values."),
    resume: Optional[Path] = typer.Option(None, "--resume", help="Continue a killed run from its last checkpoint, with the config stored in "
                                          "RUN_DIR; or a stopped sweep, given its folder: finished jobs are kept, stopped ones resume, the rest run."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Make every check adapt makes before it starts, then list the jobs it would run "
                                 "(a sweep's grid, and the repeats it skips), their budget, data and model, and stop: nothing is run or "
                                 "written. Exits 2 where a job's data or model folder is missing."),
    debug: bool = DEBUG,
) -> None:
    """Learn a mask (or run a baseline) and write a run directory under outputs/.

    Extra words are Hydra overrides, e.g. `trainer.max_steps=2000 method.t_small=0.5`.
    """
    from prune_cli.config import options_to_overrides
    from prune_cli.hydra_entry import plan_adapt, plan_resume, run_adapt

    overrides = options_to_overrides(task, sparsity, method, model, seed) + list(ctx.args)

    def work() -> None:
        if resume is not None and (overrides or multirun):
            raise UserError(f"--resume continues {resume} with the config stored there; drop the other options ({' '.join(overrides) or '--multirun'})")
        if dry_run:
            show_plan(plan_resume(resume) if resume is not None else plan_adapt(overrides, multirun))
            return
        if resume is not None:
            from prune_cli import rundir, runner
            from prune_cli.hydra_entry import continue_sweep

            if rundir.is_sweep_dir(resume):
                continue_sweep(resume)
            else:
                runner.resume(resume)
            return
        run_adapt(overrides, multirun)

    guarded(work, debug)


def show_plan(plan) -> None:
    """Print what `adapt --dry-run` found (`hydra_entry.Plan`); a data or model folder that a job
    would stop on makes it end as an error, so a script can check a sweep before it queues it."""
    from prune_cli.hydra_entry import OUTCOMES

    display.console.print(display.plan_table(plan))
    for what, where, _ in plan.inputs:
        display.console.print(f"{what}: {where}", highlight=False)
    if not plan.jobs_known:
        display.console.print("this sweeper picks its jobs as it goes: only the first is known before it starts", highlight=False)
    if any(job.outcome == "skipped" for job in plan.jobs):
        display.console.print("a dense reference (finetune, feature_extraction) ignores sparsity, so a sweep runs it once for each "
                              "setting of everything else: a job marked 'skipped, as job N' does not run", highlight=False)
    if plan.sweep:
        counts = Counter(OUTCOMES[job.outcome] for job in plan.jobs)
        outcome = f"{display.counted(len(plan.jobs), 'job')} ({', '.join(f'{count} {word}' for word, count in counts.items())}) in sweep folder {plan.folder}"
    else:
        job = plan.jobs[0]
        outcome = f"the run would write {plan.folder}" if job.outcome == "run" else f"the run in {plan.folder} {job.action}"
    display.console.print(f"dry run, nothing run or written: {outcome}", highlight=False)
    missing = plan.missing()
    if missing:
        raise UserError(f"{'jobs of the sweep' if plan.sweep else 'the run'} would stop: "
                        + "; ".join(f"{what} {where}" for what, where, _ in missing))


@app.command(cls=StrictOptions)
def evaluate(
    run_dirs: list[Path] = typer.Argument(..., help="Run directories written by `prune-cli adapt` (a sweep's, say)."),
    data_dir: Optional[str] = typer.Option(None, "--data-dir", help="GLUE folder to score on (default: as configured / $GLUE_DIR)."),
    device: Optional[str] = typer.Option(None, "--device", help="Override the device (auto, cpu, cuda)."),
    precision: Optional[str] = typer.Option(None, "--precision", help="Override the precision (fp32, bf16, fp16)."),
    model: Optional[str] = RUN_BASE_MODEL,
    check: bool = typer.Option(False, "--check", help="Exit with status 1 unless every run re-scores to its metrics.json figures exactly "
                               "(as diff does: a script tells a moved score from bad input, status 2)."),
    debug: bool = DEBUG,
) -> None:
    """Rebuild base model + mask + head from each run directory alone and re-score it on the dev set(s)."""
    from prune_cli import runner

    def work() -> None:
        rescored = runner.evaluate_runs(run_dirs, data_dir=data_dir, device=device, precision=precision, model=model)
        differing = [run for run in rescored if not run.same]
        if len(run_dirs) > 1:
            display.console.print(f"{len(run_dirs) - len(differing)} of {len(run_dirs)} runs re-scored to their stored figures exactly"
                                  + "".join(f"\n  differs: {run.run_dir}{' (scored on other rows)' if run.other_rows else ''}"
                                            for run in differing), highlight=False)
        if check and differing:
            raise ScoresDiffer(f"--check: {scores_differ(len(run_dirs), [bool(run.other_rows) for run in differing])} (see above)")

    guarded(work, debug)


def scores_differ(runs: int, on_other_rows: list[bool]) -> str:
    """`evaluate --check`'s finding: how many of `runs` scored differently (one flag each: scored on other
    rows than the run was, which is then the data's doing)."""
    other = sum(on_other_rows)
    if runs == 1:
        return "the run scores differently from its metrics.json" + (", on other rows than it was scored on" if other else "")
    counted = f"{len(on_other_rows)} of {runs} runs score differently from their metrics.json"
    return counted + (f" ({other} of them on other rows than they were scored on)" if other else "")


@app.command(cls=StrictOptions)
def report(
    root: Path = typer.Argument(Path("outputs"), help="outputs/ or a multirun folder; searched recursively."),
    out: Optional[Path] = typer.Option(None, "--out", help="Where report.csv/.md and the plots go (default: ROOT)."),
    debug: bool = DEBUG,
) -> None:
    """Collect every run's metrics.json into a table, report.csv, report.md and per-task plots.

    Runs of more than one backbone get a table and a plot per task and backbone."""
    from prune_cli import report as reporting

    def work() -> None:
        require_out_folder(out, root)
        groups, found, written = reporting.build(root, out)
        display.console.print(reporting.rich_table(groups))
        for group in (g for g in groups if g.recipes):
            display.console.print(display.line(("mixes recipes:", "yellow"), f" {group.task} {reporting.describe_recipes(group)}"), highlight=False)
        for task in sorted({g.task for g in groups}):
            for use in reporting.ROW_USES:
                row_sets = reporting.runs_per_row_set([g for g in groups if g.task == task], use)
                if len(row_sets) > 1:
                    display.console.print(display.line(("mixes data:", "yellow"), f" {task}'s runs were {use} on {len(row_sets)} different "
                                                       "sets of rows (report.md says which)"), highlight=False)
        for path, reason in found.failed:
            display.console.print(display.line(("failed", "red"), f" {path}: {reason}"), highlight=False)
        for path in found.incomplete:
            display.console.print(display.line(("incomplete", "yellow"), f" {path}: {reporting.incomplete_reason(path)}"), highlight=False)
        display.console.print(f"wrote {', '.join(str(path) for path in written)}", highlight=False)

    guarded(work, debug)


@app.command(cls=StrictOptions)
def export(
    run_dir: Path = typer.Argument(..., help="A run directory written by `prune-cli adapt`."),
    out: Path = typer.Option(..., "--out", help="New folder for the Hugging Face model (must not exist or be empty)."),
    check: bool = typer.Option(False, "--check", help="Score the exported folder through plain transformers and compare with the run's metrics."),
    data_dir: Optional[str] = typer.Option(None, "--data-dir", help="GLUE folder for --check (default: as configured / $GLUE_DIR)."),
    model: Optional[str] = RUN_BASE_MODEL,
    debug: bool = DEBUG,
) -> None:
    """Write a standalone Hugging Face model folder: mask baked in as zeros, head, tokenizer, model code."""
    from prune_cli import export as exporting

    def work() -> None:
        record = exporting.require_exportable(run_dir, out)
        rows = exporting.read_scored_rows(run_dir, data_dir, model) if check else None  # data that cannot be read stops it before any export
        folder = exporting.export(run_dir, out, model)
        display.console.print(display.line(f"exported {run_dir} to ", (str(folder), "bold")))
        display.console.print(f"load it with: AutoModelForSequenceClassification.from_pretrained({str(folder)!r}, trust_remote_code=True)")
        if rows is not None:
            stored = record["metrics"]
            scored = exporting.score_exported(folder, rows)
            display.console.print(display.metrics_table("exported model, plain transformers", scored, compare=stored))
            if scored != {k: stored.get(k) for k in scored}:
                raise ScoresDiffer("--check: the exported model scores differently from the run's metrics.json (see the table)")

    guarded(work, debug)


@app.command(cls=StrictOptions)
def apply(
    run_dirs: list[Path] = typer.Argument(..., help="Run directories of several tasks (all on the same base model)."),
    text: Optional[list[str]] = typer.Option(None, "--text", help="Input to classify; a sentence pair is 'first ||| second'. Repeatable."),
    file: Optional[str] = typer.Option(None, "--file", help="A UTF-8 file of inputs, one per line (blank lines skipped): a sentence, "
                                                            "or a pair as 'first ||| second' or 'first<TAB>second'. '-' reads standard input."),
    out: Optional[Path] = typer.Option(None, "--out", help="Write the answers to this TSV file (input, then one column per task) "
                                                           "instead of printing them; never overwritten."),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda."),
    precision: Optional[str] = typer.Option(None, "--precision", help="Override the runs' precision (fp32, bf16, fp16)."),
    model: Optional[str] = RUN_BASE_MODEL,
    debug: bool = DEBUG,
) -> None:
    """Load the base model once and run every task's mask + head on the inputs, switching masks in place."""
    from prune_cli import api, rundir

    def work() -> None:
        if out is not None and out.exists():
            raise UserError(f"{out} already exists; never overwriting it, choose another --out")
        if out is not None:
            rundir.require_writable(out.parent, "give --out a file in a folder you can write to")
        lines = [*(text or []), *(api.read_inputs(file) if file is not None else [])]
        if not lines:
            raise UserError("nothing to classify: give inputs with --text (repeatable) or --file (one per line)")
        inputs = [api.parse_input(line) for line in lines]  # a bad input is refused before any model loads
        rundir.require_each_once(run_dirs)
        bank = api.TaskBank(device=device, precision=precision, model=model)
        for run_dir in run_dirs:
            bank.add(run_dir, name=_unique_name(bank, run_dir))
        answers = api.answer_all(bank, inputs)
        for name, seconds in answers.switch_seconds.items():
            display.console.print(display.line((f"{name}: mask switched in {seconds * 1000:.0f} ms", "dim")))
        forms = "; ".join(f"{name} takes {bank.form(name)}" for name in bank.tasks)
        if answers.unanswered == len(answers.inputs):  # a table or file of blanks, and exit status 0, said nothing was answered
            raise UserError(f"no input has a form a loaded task takes ({forms}): nothing to answer")
        if answers.unanswered:
            display.console.print(display.line((f"{answers.unanswered} of {len(answers.inputs)} inputs have a form no loaded task takes "
                                                f"({forms}); their answers are blank", "yellow")))
        if out is None:
            display.console.print(display.predictions_table([api.input_text(t) for t in answers.inputs], answers.named))
        else:
            rundir.atomic_write_text(out, answers.tsv())
            display.console.print(f"wrote {len(answers.inputs)} inputs' answers to {out}")
            for name, shares in answers.shares.items():
                display.console.print(f"  {name}: {shares}", highlight=False)
        display.console.print(display.footprint_table({name: bank.footprint(name) for name in bank.tasks}))

    guarded(work, debug)


@app.command(cls=StrictOptions)
def predict(
    run_dirs: list[Path] = typer.Argument(..., help="Run directories (one per task for a GLUE submission)."),
    out: Path = typer.Option(..., "--out", help="Folder for the prediction files (created if missing; no file in it is overwritten)."),
    split: str = typer.Option("test", "--split", help="test: GLUE's leaderboard files (<name>.tsv); dev: the rows behind the run's score (its dev set, or its data.holdout rows), with their labels."),
    data_dir: Optional[str] = typer.Option(None, "--data-dir", help="GLUE folder to read (default: as configured / $GLUE_DIR)."),
    device: Optional[str] = typer.Option(None, "--device", help="Override the device (auto, cpu, cuda)."),
    precision: Optional[str] = typer.Option(None, "--precision", help="Override the precision (fp32, bf16, fp16)."),
    model: Optional[str] = RUN_BASE_MODEL,
    debug: bool = DEBUG,
) -> None:
    """Write each run's predictions in the GLUE leaderboard's format (index, prediction), one file per test set."""
    from prune_cli import predictions

    def work() -> None:
        require_out_folder(out)
        written = predictions.predict_runs(run_dirs, out, split=split, data_dir=data_dir, device=device, precision=precision, model=model)
        display.console.print(display.written_predictions_table(written))

    guarded(work, debug)


def _unique_name(bank, run_dir: Path) -> str:
    """The task's name, or task@run-folder when the same task appears twice."""
    from prune_cli import rundir

    task = str(rundir.load_complete_config(run_dir).task.name) if (run_dir / rundir.CONFIG).exists() else run_dir.name
    return task if task not in bank.tasks else f"{task}@{run_dir.name}"


analyze_app = typer.Typer(help="What the masks are (the paper's sub-network analyses), and the dev score along a run.", no_args_is_help=True)
app.add_typer(analyze_app, name="analyze")
ANALYSIS_OUT = typer.Option(None, "--out", help="Folder for the analysis CSV (and PNG); default: the first run dir (for a mask file, the run it is in).")


def first_folder(given: list[Path]) -> Path:
    """Where an analysis writes without --out: the first run dir given; for a mask file, the run
    it is in (not the run's masks/ folder), or its own folder outside a run."""
    from prune_cli import rundir

    return (rundir.run_holding(given[0]) or given[0].parent) if given[0].is_file() else given[0]


def require_out_folder(out: Optional[Path], default: Optional[Path] = None) -> None:
    """Refuse, before any work, an --out that names a file, and a folder the command cannot write
    in (--out, or the `default` it writes to without one, where that exists): `analyze
    sensitivity` trains heads for minutes and would otherwise fail only when it writes its CSV,
    `predict` would read every run's data first, and `report` or an analysis of runs kept on a
    read-only disk failed at its last step."""
    from prune_cli import rundir

    if out is not None and out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file; give a folder (created if missing)")
    folder = out if out is not None else default if default is not None and default.is_dir() else None
    if folder is not None:
        rundir.require_writable(folder)


def write_analysis(folder: Path, name: str, csv_text: str, plot: Optional[Callable[[Path], None]] = None) -> None:
    """<name>.csv (and <name>.png) in `folder`, written atomically."""
    from prune_cli import rundir

    written = [folder / f"{name}.csv"]
    rundir.atomic_write_text(written[0], csv_text)
    if plot is not None:
        written.append(folder / f"{name}.png")
        plot(written[1])
    display.console.print("wrote " + " and ".join(map(str, written)))


@analyze_app.command("topology", cls=StrictOptions)
def analyze_topology(
    run_dirs: list[Path] = typer.Argument(..., help="One or more run directories with a mask, or mask files (an imp run's masks/round*)."),
    out: Optional[Path] = ANALYSIS_OUT,
    debug: bool = DEBUG,
) -> None:
    """Share of weights kept per component (embed, query, key, value, attn_out, ffn_in, ffn_out) and per layer."""
    from prune_cli import analysis

    def work() -> None:
        require_out_folder(out, first_folder(run_dirs))
        results = analysis.topology(run_dirs)
        for kind in ("component", "layer"):
            display.console.print(analysis.topology_table(results, kind))
        write_analysis(out or first_folder(run_dirs), "topology", analysis.topology_csv(results), lambda path: analysis.topology_plot(results, path))

    guarded(work, debug)


@analyze_app.command("overlap", cls=StrictOptions)
def analyze_overlap(
    run_dirs: list[Path] = typer.Argument(..., help="Two or more run directories with masks (any methods, tasks, seeds, sparsities), or mask files (an imp run's masks/round*)."),
    out: Optional[Path] = ANALYSIS_OUT,
    debug: bool = DEBUG,
) -> None:
    """Jaccard similarity of kept weights and Hamming distance between masks, as matrices and heatmaps."""
    from prune_cli import analysis

    def work() -> None:
        require_out_folder(out, first_folder(run_dirs))
        result = analysis.overlap(run_dirs)
        display.console.print(analysis.matrix_table(result["jaccard"], "Jaccard similarity of the kept weights"))
        display.console.print(analysis.matrix_table(result["hamming"], "Hamming distance (share of weights that differ)"))
        write_analysis(out or first_folder(run_dirs), "overlap", analysis.overlap_csv(result), lambda path: analysis.overlap_plot(result, path))

    guarded(work, debug)


@analyze_app.command("sensitivity", cls=StrictOptions)
def analyze_sensitivity(
    run_dirs: list[Path] = typer.Argument(..., help="Run directories with masks."),
    steps: Optional[int] = typer.Option(None, "--steps", min=1, help="Head training steps per variant (default: the run's head.retrain_steps or budget)."),
    sigma: list[float] = typer.Option([0.01], "--sigma", min=0.0, help="Re-initialisation noise: weights become w0 * N(1, sigma); repeatable."),
    data_dir: Optional[str] = typer.Option(None, "--data-dir", help="GLUE folder to read (default: as configured / $GLUE_DIR)."),
    device: Optional[str] = typer.Option(None, "--device", help="Override the device (auto, cpu, cuda)."),
    model: Optional[str] = RUN_BASE_MODEL,
    out: Optional[Path] = ANALYSIS_OUT,
    debug: bool = DEBUG,
) -> None:
    """Paper Table 3: shuffle each tensor's mask, or rescale the kept weights, then train only a fresh head."""
    from prune_cli import analysis, rundir, sensitivity

    def work() -> None:
        require_out_folder(out, run_dirs[0])
        if not all(map(math.isfinite, sigma)):  # inf would pass Typer's bound, then read as a diverged head
            raise UserError(f"--sigma takes finite numbers (got {', '.join(f'{s:g}' for s in sigma)})")
        stored = [sensitivity.require_analysable(d, data_dir, device, model)[1] for d in run_dirs]
        labels = analysis.distinct_labels(run_dirs, [analysis.run_label(metrics) for metrics in stored])
        folder, results = out or run_dirs[0], {}
        for label, run_dir in zip(labels, run_dirs):
            results[label] = sensitivity.analyse(run_dir, steps=steps, sigmas=tuple(sigma), data_dir=data_dir, device=device, model=model)
            display.console.print(sensitivity.table(results[label], label))
            if len(results) < len(run_dirs):  # the runs done so far survive a failure on a later one
                rundir.atomic_write_text(folder / "sensitivity.csv", sensitivity.to_csv(results))
                display.console.print(f"wrote {folder / 'sensitivity.csv'} ({len(results)} of {len(run_dirs)} runs so far)")
        write_analysis(folder, "sensitivity", sensitivity.to_csv(results), lambda path: sensitivity.plot(results, path))

    guarded(work, debug)


@analyze_app.command("recovery", cls=StrictOptions)
def analyze_recovery(
    run_dirs: list[Path] = typer.Argument(..., help="adapt_by_pruning run directories (with and without method.no_recovery=true)."),
    out: Optional[Path] = ANALYSIS_OUT,
    debug: bool = DEBUG,
) -> None:
    """Paper §4.3: share of kept weights that were pruned at some step and came back; the no_recovery ablation's score."""
    from prune_cli import analysis

    def work() -> None:
        require_out_folder(out, run_dirs[0])
        rows = analysis.recovery(run_dirs)
        display.console.print(analysis.recovery_table(rows))
        write_analysis(out or run_dirs[0], "recovery", analysis.recovery_csv(rows))

    guarded(work, debug)


@analyze_app.command("curve", cls=StrictOptions)
def analyze_curve(
    run_dirs: list[Path] = typer.Argument(..., help="Run directories made with trainer.eval_every=N (any methods, tasks, seeds; "
                                                     "finished, going on or stopped)."),
    out: Optional[Path] = ANALYSIS_OUT,
    metric: Optional[str] = typer.Option(None, "--metric", help="The figure to follow, as history.jsonl keys it (eval_f1, or f1); "
                                                                 "default: each run's main metric. curve.csv has every figure."),
    debug: bool = DEBUG,
) -> None:
    """The dev score along each run (trainer.eval_every) against step and sparsity; a run still going shows its steps so far."""
    from prune_cli import curves

    def work() -> None:
        require_out_folder(out, run_dirs[0])
        found = curves.curves(run_dirs, metric)
        display.console.print(curves.table(found))
        write_analysis(out or run_dirs[0], "curve", curves.to_csv(found), lambda path: curves.plot(found, path))

    guarded(work, debug)


@app.command("show-config", cls=StrictOptions, context_settings=PASS_THROUGH)
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

    from prune_cli.config import compose, options_to_overrides

    overrides = options_to_overrides(task, sparsity, method, model, seed) + list(ctx.args)
    cfg = guarded(lambda: compose(overrides), debug)
    typer.echo(OmegaConf.to_yaml(cfg))


def main() -> None:
    """The console script. A command that Ctrl-C or SIGTERM stopped (guarded shows its line and
    exits 128 + the signal) ends killed by that signal, as a shell expects: a script running
    prune-cli then stops too, where a plain exit code would read as "handled" and the script
    would go on to its next command."""
    stopped_by: list[int] = []
    # Registered first, so it runs last: after the interpreter has shut down what runs beside
    # it (joblib's worker processes, which would otherwise outlive the command) and after every
    # later atexit handler (multiprocessing's cleanup among them).
    atexit.register(lambda: stopped_by and _end_by_signal(stopped_by[0]))
    try:
        app()
    except SystemExit as ended:
        signum = ended.code - 128 if isinstance(ended.code, int) else 0
        if signum in STOP_SIGNALS:
            stopped_by.append(signum)
        raise


def _end_by_signal(signum: int) -> None:
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # `| tee` died of the same Ctrl-C
            stream.flush()
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


if __name__ == "__main__":
    main()
