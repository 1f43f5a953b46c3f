"""Python API: `adapt` (a run, as `prune-cli adapt` makes it), `evaluate` (one scored again) and
the multi-task use case, one base model in memory and one small mask per task.

    from prune_cli.api import TaskBank, adapt, evaluate, plan
    plan(task="sst2", sparsity="0.5,0.9", multirun=True).jobs  # what a sweep would run, nothing run
    run_dir = adapt(task="sst2", sparsity=0.5, overrides=["trainer.max_steps=500"])
    evaluate(run_dir).metrics                                # scored again from the folder alone
    bank = TaskBank()
    bank.add("outputs/sst2/adapt_by_pruning/s0.5/...")      # -> "sst2"
    bank.add("outputs/stsb/adapt_by_pruning/s0.5/...")      # -> "stsb"
    bank.predict("sst2", ["a gripping, funny film"])        # -> ["1"]
    bank.predict("stsb", [("A man plays.", "A man is playing.")])  # -> [4.6]

The base model is loaded once (by the first run added). Every task keeps only its bit-packed
mask and its head in memory; switching tasks unpacks the mask and installs w0 * m in place of
the base weights, without reloading or copying the model. `footprint` says what a task costs
on disk next to a fine-tuned copy of the encoder. `answer_all` runs every loaded task on a
list of inputs (what `prune-cli apply` prints, or writes with `--out`).
"""

from __future__ import annotations

import numbers
import os
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from prune_cli import data, mask_format, rundir
from prune_cli.errors import UserError
from prune_cli.predictions import answer_name, answer_shares, answer_text
from prune_cli.runner import Rescored, encode_split, evaluate_runs, load_encoder, load_run_head, load_run_mask, require_made_on, stored_config
from prune_cli.training import pick_device, predict

Text = str | tuple[str, str]


def adapt(task: str | None = None, sparsity: float | str | None = None, method: str | None = None,
          model: str | os.PathLike | None = None, seed: int | str | None = None, overrides: Sequence[str] | None = ()) -> Path:
    """Learn a mask (or run a baseline) from Python, a notebook or a script, and return the run
    directory: the same config checks, the same Hydra run directory (under `outputs/` of the
    current folder, never overwritten) and the same files as `prune-cli adapt` with these
    options and `key=value` overrides (None: none). Bad input raises `UserError`; sweeps are the
    CLI's `-m` (or a Python loop over this)."""
    from prune_cli.hydra_entry import run_adapt

    [run_dir] = run_adapt(_as_overrides(task, sparsity, method, model, seed, overrides), multirun=False, one_run=True)
    return run_dir


def plan(task: str | None = None, sparsity: float | str | None = None, method: str | None = None,
         model: str | os.PathLike | None = None, seed: int | str | None = None, overrides: Sequence[str] | None = (),
         multirun: bool = False):
    """What `adapt` would run, without running it (`prune-cli adapt --dry-run`): every check it makes
    first, then a `hydra_entry.Plan` of its jobs, one per combination where `multirun` sweeps comma
    lists (`sparsity="0.5,0.9"`), each with its composed config, what would happen to it and the rows
    it trains on (`train_rows`, where a local folder holds them), and where its data and model would
    be read from. Nothing is run or written."""
    from prune_cli.hydra_entry import plan_adapt

    return plan_adapt(_as_overrides(task, sparsity, method, model, seed, overrides), multirun=multirun)


def evaluate(run_dir: str | os.PathLike, data_dir: str | os.PathLike | None = None, device: str | None = None,
             precision: str | None = None, model: str | os.PathLike | None = None) -> Rescored:
    """A finished run scored again from its folder alone, as `prune-cli evaluate` scores it, without
    printing: a `runner.Rescored` with the figures now (`.metrics`), those its metrics.json holds
    (`.stored`), whether they are the same (`.same`) and how the rows scored differ from the run's
    (`.other_rows`). The keywords are evaluate's options; bad input raises `UserError`."""
    if not isinstance(run_dir, (str, os.PathLike)):
        raise UserError(f"run_dir is a run directory (a string or a Path); got {run_dir!r}")
    [rescored] = evaluate_runs([Path(run_dir)], data_dir=_as_text(data_dir), device=device, precision=precision, model=_as_text(model),
                               show=False)
    return rescored


def _as_text(path: str | os.PathLike | None) -> str | None:
    """A folder given as a notebook's `Path`, as the text the CLI's options take; anything else as it
    is, for the caller's own check of its kind."""
    return os.fspath(path) if isinstance(path, os.PathLike) else path


def _as_overrides(task: str | None, sparsity: float | str | None, method: str | None, model: str | os.PathLike | None,
                  seed: int | str | None, overrides: Sequence[str] | None) -> list[str]:
    """The override strings `prune-cli adapt` would pass Hydra for these arguments, each checked
    for its kind first (a Path for a model, one string for a list of them)."""
    from prune_cli.config import options_to_overrides

    overrides = () if overrides is None else overrides
    model = _as_text(model)  # a notebook's Path: it was an AttributeError
    for name, value in (("task", task), ("method", method), ("model", model)):
        if value is not None and not isinstance(value, str):
            raise UserError(f"{name} is a name{' or a folder' if name == 'model' else ''} (a string); got {value!r}")
    require_sequence(overrides, "overrides", "overrides=['trainer.max_steps=500']")
    odd = next((o for o in overrides if not isinstance(o, str)), None)
    if odd is not None:
        raise UserError(f"overrides are 'key=value' strings (e.g. 'trainer.max_steps=500'); got {odd!r}")
    options = options_to_overrides(task, None if sparsity is None else str(sparsity), method, model,
                                   None if seed is None else str(seed))
    return [*options, *overrides]


def require_sequence(value: object, name: str, example: str) -> None:
    """Refuse one string where a list of them is wanted: Python would iterate its characters, and
    each would become an override, or an input with an answer of its own. Refuse what is no list
    at all (None, a number) in the same words, where iterating it would be a TypeError."""
    if isinstance(value, str):
        raise UserError(f"{name} takes a list of strings, not one string ({value!r}); e.g. {example}")
    if isinstance(value, bytes) or not isinstance(value, Iterable):
        raise UserError(f"{name} takes a list of strings, not {value!r}; e.g. {example}")


@dataclass(frozen=True)
class Footprint:
    """What one task costs on disk, next to shipping a fine-tuned copy of the encoder instead."""

    mask_bytes: int
    head_bytes: int
    finetuned_copy_bytes: int  # every encoder parameter in float32, plus the same head

    @property
    def task_bytes(self) -> int:
        return self.mask_bytes + self.head_bytes


@dataclass
class _Task:
    run_dir: Path
    cfg: DictConfig
    packed: dict[str, torch.Tensor] | None  # the mask, one bit per weight (`mask_format.pack_masks`; None: feature extraction)
    text_fields: int  # 1: single sentences, 2: sentence pairs
    head: torch.nn.Module
    footprint: Footprint


class TaskBank:
    """Several tasks' masks and heads over one shared, frozen base model."""

    def __init__(self, device: str = "auto", precision: str | None = None, model: str | os.PathLike | None = None):
        """`precision` (fp32, bf16, fp16) overrides each run's own, as `evaluate --precision` does;
        `model` loads the runs' base model from another place, as `evaluate --model` does."""
        self.device = pick_device(device)
        self.model = None if model is None else os.fspath(model)
        self.precision = precision
        self.encoder = None
        self.tokenizer = None
        self.base_hash: str | None = None
        self.tasks: dict[str, _Task] = {}
        self.last_switch_seconds = 0.0

    def add(self, run_dir: Path | str, name: str | None = None) -> str:
        """Register a finished run's mask and head; returns the name to predict with."""
        if name is not None and (not isinstance(name, str) or not name.strip()):
            raise UserError(f"a task's name is a non-empty string; got {name!r}")
        run_dir = Path(run_dir)
        cfg = stored_config(run_dir, precision=self.precision, model=self.model)
        if (run_dir / rundir.ENCODER).exists():
            raise UserError(f"{run_dir} is a dense fine-tuned model (it changed the base weights); use `prune-cli export` for it")
        if self.encoder is None:
            self.encoder, self.base_hash, self.tokenizer = load_encoder(cfg, self.device)
        masks = load_run_mask(run_dir, self.encoder, self.base_hash, self.device)  # refuses another base
        require_made_on(run_dir, self.tokenizer, self.base_hash)  # and so does a run without a mask
        name = name or str(cfg.task.name)
        if name in self.tasks:
            raise UserError(f"a task named {name!r} is already loaded (from {self.tasks[name].run_dir}); pass another name")
        self.tasks[name] = _Task(
            run_dir=run_dir,
            cfg=cfg,
            packed=mask_format.pack_masks(masks) if masks is not None else None,
            text_fields=data.text_fields(cfg.task),
            head=load_run_head(run_dir, cfg, self.encoder, self.device),
            footprint=self._footprint(run_dir),
        )
        return name

    def predict(self, name: str, texts: Sequence[Text], batch_size: int = 64) -> list[str | float]:
        """Labels (classification) or scores (regression) for `texts` under task `name`'s mask."""
        values = self.predict_values(name, texts, batch_size)
        task_cfg = self.task_config(name)
        if data.is_regression(task_cfg):
            return [float(v) for v in values]
        return [task_cfg["labels"][int(v)] for v in values]

    def predict_values(self, name: str, texts: Sequence[Text], batch_size: int = 64) -> np.ndarray:
        """What the head answers for `texts` under task `name`'s mask: class ids, or scores."""
        require_sequence(texts, "texts", f"predict({name!r}, ['a fine film'])")
        if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) or batch_size < 1:
            raise UserError(f"batch_size takes a whole number >= 1 (got {batch_size!r})")
        task, task_cfg = self._task(name), self.task_config(name)
        rows = [_fields(t) for t in texts]
        misfit = next((r for r in rows if len(r) != task.text_fields), None)
        if misfit is not None:
            raise UserError(f"task {name} takes {'sentence pairs' if task.text_fields == 2 else 'single sentences'}; got {misfit!r}")
        for row in rows:
            require_text(row)
        if not rows:
            return np.empty(0)  # nothing to answer: no mask to install
        examples = data.Examples(rows, [0.0 if data.is_regression(task_cfg) else 0] * len(rows), "texts")
        encoded = encode_split(task.cfg, examples, self.tokenizer, None)
        started = time.perf_counter()
        weights = self._weights(task)
        self.last_switch_seconds = time.perf_counter() - started
        return predict(self.encoder, task.head, weights, encoded, int(batch_size), self.device, str(task.cfg.trainer.precision))

    def takes(self, name: str, text: Text) -> bool:
        """Whether `text` has the task's form: one sentence, or a pair of them."""
        return len(_fields(text)) == self._task(name).text_fields

    def form(self, name: str) -> str:
        """The task's input form as `apply` asks for it, for a message about inputs it does not take."""
        return "one sentence" if self._task(name).text_fields == 1 else "a pair, 'first ||| second'"

    def task_config(self, name: str) -> dict:
        return OmegaConf.to_container(self._task(name).cfg.task, resolve=True)

    def _task(self, name: str) -> _Task:
        if name not in self.tasks:
            raise UserError(f"no task {name!r} loaded; loaded: {', '.join(self.tasks) or 'none'}")
        return self.tasks[name]

    def footprint(self, name: str) -> Footprint:
        return self._task(name).footprint

    def _weights(self, task: _Task) -> dict[str, torch.Tensor] | None:
        """w0 * m for the task's mask: unpacked now, never stored per task."""
        if task.packed is None:
            return None
        masks = {n: m.to(self.device) for n, m in mask_format.unpack_masks(task.packed, self.encoder.shapes).items()}
        return self.encoder.masked_weights(masks)

    def _footprint(self, run_dir: Path) -> Footprint:
        mask_path = run_dir / rundir.MASK
        head_bytes = (run_dir / rundir.HEAD).stat().st_size
        encoder_bytes = sum(p.numel() * 4 for p in self.encoder.encoder.parameters())
        return Footprint(
            mask_bytes=mask_path.stat().st_size if mask_path.exists() else 0,
            head_bytes=head_bytes,
            finetuned_copy_bytes=encoder_bytes + head_bytes,
        )


def _fields(text: Text) -> tuple[str, ...]:
    """An input's sentences: a string is one, a tuple (or list) of strings a pair. Anything else is
    refused by name; bytes would read as a tuple of numbers, and a number as no input at all."""
    if isinstance(text, str):
        return (text,)
    if isinstance(text, (tuple, list)) and all(isinstance(part, str) for part in text):
        return tuple(text)
    raise UserError(f"an input is a string, or a pair of strings as a tuple; got {text!r}")


PAIR_SEPARATORS = ("\t", "|||")  # a tab first: a two-column TSV line is a pair, whatever its text holds


def parse_input(line: str) -> Text:
    """One input as typed (`--text`) or read (`--file`): a sentence, or a sentence pair written
    `first ||| second` or, as in a two-column TSV, `first<TAB>second`."""
    line = line.replace("\r", " ").replace("\n", " ")  # a typed line break is a space to the tokenizer, and would split a TSV row
    separator = next((separator for separator in PAIR_SEPARATORS if separator in line), None)
    parsed: Text = line if separator is None else tuple(part.strip() for part in line.split(separator))
    require_text(parsed, line)
    return parsed


def require_text(text: Text, shown: str | None = None) -> None:
    """Refuse an input with an empty sentence (`--text ""`, an empty shell variable, 'a ||| ', a
    blank string in a list): it would get an answer about nothing. `shown`: the input as typed."""
    fields = _fields(text)
    if not all(part.strip() for part in fields):
        shown = " ||| ".join(map(str, fields)) if shown is None else shown
        raise UserError(f"input {shown!r} has an empty sentence; give text{' on each side of the pair' if len(fields) > 1 else ''}")


def input_text(text: Text) -> str:
    """An input as `apply` shows and writes it: a pair as `first ||| second`, with no tab or line
    break (an input given through the Python API may hold them), so a TSV line keeps its columns."""
    return " ||| ".join(" ".join(part.replace("\t", " ").splitlines()) for part in _fields(text))


def read_inputs(path: str) -> list[str]:
    """The lines of a UTF-8 text file that hold text, one input each ('-': standard input).

    Blank lines are skipped rather than refused: a file's trailing newline, or a blank line between
    groups, is not an input. `apply --out` writes each input beside its answers, so rows stay
    traceable without line numbers.
    """
    try:  # a byte-order mark (Windows editors write one) is no text of the first input: utf-8-sig drops it
        text = (sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8-sig")).removeprefix("\ufeff")
    except UnicodeDecodeError:
        raise UserError(f"{path} is not UTF-8 text; --file takes a text file, one input per line") from None
    inputs = [line.rstrip("\r") for line in text.split("\n") if line.strip()]
    if not inputs:
        raise UserError(f"{'standard input' if path == '-' else path} holds no inputs (every line is blank); --file takes one input per line")
    return inputs


@dataclass
class Answers:
    """Every loaded task's answers to a list of inputs: `columns[task][i]` is the answer to input
    i as GLUE writes it (a label, or a score), absent where the input has the other form (a pair
    for a single-sentence task), and `named[task][i]` the same answer as people read it (the
    class's name: "positive" where GLUE writes "1"); `shares[task]` sums up what the task
    answered; `switch_seconds[task]` is how long installing its mask took (tasks that had inputs only)."""

    inputs: list[Text]
    columns: dict[str, dict[int, str]]
    named: dict[str, dict[int, str]]
    shares: dict[str, str]
    switch_seconds: dict[str, float]

    @property
    def unanswered(self) -> int:
        """Inputs no loaded task takes (a pair, say, with only single-sentence tasks loaded)."""
        return sum(1 for i in range(len(self.inputs)) if not any(i in column for column in self.columns.values()))

    def tsv(self) -> str:
        """`input`, then one column per task; an empty cell where the task takes the other form."""
        lines = ["\t".join(["input", *self.columns])]
        for i, text in enumerate(self.inputs):
            lines.append("\t".join([input_text(text), *(column.get(i, "") for column in self.columns.values())]))
        return "\n".join(lines) + "\n"


def answer_all(bank: TaskBank, inputs: Sequence[Text]) -> Answers:
    """Run every loaded task on the inputs that have its form, one mask switch per task."""
    answers = Answers(list(inputs), {}, {}, {}, {})
    for name in bank.tasks:
        fitting = [i for i, text in enumerate(inputs) if bank.takes(name, text)]
        if not fitting:
            answers.columns[name], answers.named[name], answers.shares[name] = {}, {}, "no input of this form"
            continue
        task_cfg = bank.task_config(name)
        values = bank.predict_values(name, [inputs[i] for i in fitting])
        answers.columns[name] = {i: answer_text(task_cfg, value) for i, value in zip(fitting, values)}
        answers.named[name] = {i: answer_name(task_cfg, value) for i, value in zip(fitting, values)}
        answers.shares[name] = answer_shares(task_cfg, values)
        answers.switch_seconds[name] = bank.last_switch_seconds
    return answers
