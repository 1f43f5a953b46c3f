"""`prune-cli predict`: prediction files in the GLUE leaderboard's format, from finished runs.

A GLUE submission is a zip of one `<name>.tsv` per test set (SST-2.tsv, MNLI-m.tsv, AX.tsv, ...),
each `index<TAB>prediction`, where a prediction is the label as GLUE writes it (0/1, entailment,
...) or STS-B's score. The names and the test files' layouts live in each task's `test:` block.

`--split dev` writes the same format for the dev set(s), plus the gold label, so that the
predictions behind a run's dev score can be read row by row (error analysis); their metrics are
the run's `metrics.json` figures, and rows other than those the run was scored on are refused.

Every target file is checked, and every run's data read, before any model is loaded: an existing
file is never overwritten, two runs may not write the same name, and a missing test file stops
the command before it has written part of a submission. Each file is written atomically.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from prune_cli import data, rundir
from prune_cli.errors import UserError
from prune_cli.runner import encode_split, load_encoder, require_rows_scored_on, restore, stored_config, use_configured_threads
from prune_cli.training import pick_device, predict

SPLITS = ("test", "dev")


@dataclass(frozen=True)
class Written:
    """One prediction file: where it is, how many rows, and what was predicted (for the summary)."""

    path: Path
    source: str
    rows: int
    summary: str


def task_of(cfg: DictConfig) -> dict[str, Any]:
    """The run's task config, as `stored_config` completed it: a run made before `predict` existed
    has the packaged task's `test:` block (`runner.fill_in_later_task_keys`)."""
    return OmegaConf.to_container(cfg.task, resolve=True)


def predict_runs(run_dirs: Sequence[Path], out: Path, split: str = "test", data_dir: str | None = None,
                 device: str | None = None, precision: str | None = None, model: str | None = None) -> list[Written]:
    """Write each run's prediction files for `split` into `out`; returns what was written.

    Every run's data is read before the first model runs, and every run predicted before the first
    file is written, so a missing test file, an unreachable hub or a run whose model cannot be put
    back together (a mask or base model that does not match) stops the command before it has
    written part of a submission, or created --out.
    """
    if split not in SPLITS:
        raise UserError(f"--split {split!r} is not known; choose test (GLUE's leaderboard files) or dev")
    rundir.require_each_once(run_dirs)
    jobs = [_Job.for_run(run_dir, split, data_dir, device, precision, model) for run_dir in run_dirs]
    targets = plan(jobs, out)
    for job in jobs:
        job.read()
    predicted = [job.predict() for job in jobs]
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create {out}: {exc.strerror}; choose another --out") from None
    return [written for job, paths, values in zip(jobs, targets, predicted) for written in job.write(paths, values)]


def predict_scored_rows(run_dir: Path, data_dir: str | None = None) -> dict[str, tuple[data.Examples, np.ndarray]]:
    """{split key: (the rows the run was scored on, its predictions for them)}, as `--split dev` writes them, for
    analyses that need the rows themselves (scripts/score_by_source.py) rather than a file."""
    job = _Job.for_run(run_dir, "dev", data_dir, None, None, None)
    job.read()
    return {key: (job.inputs[key][1], values) for key, values in job.predict().items()}


@dataclass
class _Job:
    """One run to predict: its config (with the command's overrides), task and split, then the
    rows (ids and texts, per split key) once `read` has read them."""

    run_dir: Path
    cfg: DictConfig
    task: dict[str, Any]
    split: str
    device: torch.device
    inputs: dict[str, tuple[list[str], data.Examples]] = field(default_factory=dict)

    @classmethod
    def for_run(cls, run_dir: Path, split: str, data_dir: str | None, device: str | None, precision: str | None,
                model: str | None) -> "_Job":
        cfg = stored_config(run_dir, data_dir, device, precision, model)
        return cls(run_dir, cfg, task_of(cfg), split, pick_device(str(cfg.trainer.device)))

    def file_names(self) -> dict[str, str]:
        """{split key: file name} this run writes."""
        if self.split == "test":
            return {name: f"{name}.tsv" for name in data.unlabelled_names(self.task)}
        stem = self.task.get("glue_dir") or self.task["name"]  # a dataset-only task has no GLUE folder name
        names = {"dev": f"{stem}-dev.tsv", data.HOLDOUT: f"{stem}-{data.HOLDOUT}.tsv"}
        return {key: names.get(key, f"{stem}-{key}-dev.tsv") for key in data.scoring_keys(self.task, self.cfg.data)}

    def read(self) -> None:
        data_cfg = OmegaConf.to_container(self.cfg.data, resolve=True)
        if self.split == "test":
            self.inputs = {key: (rows.ids, rows.as_examples()) for key, rows in data.load_test_splits(self.task, data_cfg).items()}
        else:  # the rows the run was scored on: its dev split(s) or held-out rows, cut at data.max_eval_samples as the run was
            dev = data.load_task_data(self.task, data_cfg, with_train=False).dev
            require_rows_scored_on(self.run_dir, self.cfg, dev, f"--split dev writes the rows behind {self.run_dir}'s score")
            cut = {key: ex.first(self.cfg.data.max_eval_samples) for key, ex in dev.items()}
            self.inputs = {key: ([str(i) for i in range(len(ex))], ex) for key, ex in cut.items()}

    def predict(self) -> dict[str, np.ndarray]:
        """Load the run's model and predict every split read: {split key: class ids, or scores}."""
        device, precision = self.device, str(self.cfg.trainer.precision)
        use_configured_threads(self.cfg)
        encoder, base_hash, tokenizer = load_encoder(self.cfg, device)
        weights, head = restore(self.run_dir, self.cfg, encoder, base_hash, tokenizer, device)
        batch_size = int(self.cfg.trainer.eval_batch_size)
        return {key: predict(encoder, head, weights, encode_split(self.cfg, examples, tokenizer, None), batch_size, device, precision)
                for key, (_, examples) in self.inputs.items()}

    def write(self, paths: dict[str, Path], predicted: dict[str, np.ndarray]) -> list[Written]:
        """Write each split's predictions (`predict`'s answer) atomically to its path."""
        written = []
        for key, values in predicted.items():
            ids, examples = self.inputs[key]
            labels = examples.labels if self.split == "dev" else None
            rundir.atomic_write_text(paths[key], _tsv(self.task, ids, values, labels))
            written.append(Written(paths[key], examples.source, len(ids), answer_shares(self.task, values)))
        return written


def plan(jobs: Sequence[_Job], out: Path) -> list[dict[str, Path]]:
    """Every run's target files, refused up front if any exists or two runs would share one."""
    targets: list[dict[str, Path]] = []
    claimed: dict[Path, Path] = {}
    for job in jobs:
        targets.append({key: out / name for key, name in job.file_names().items()})
        for path in targets[-1].values():
            if path in claimed:
                raise UserError(f"{claimed[path]} and {job.run_dir} would both write {path}; predict them into different --out folders")
            if path.exists():
                raise UserError(f"{path} already exists; never overwriting it, choose another --out")
            claimed[path] = job.run_dir
    return targets


def answer_text(task: dict[str, Any], value: float | int) -> str:
    """A prediction as GLUE writes it: the label's name, or the score. A score is written in the
    fewest digits that read back as the same float32, so metrics recomputed from the file are the
    run's own to the last digit (three decimals, as run_glue writes, would tie close scores)."""
    if data.is_regression(task):
        return np.format_float_positional(np.float32(value), unique=True, trim="-")
    return data.class_labels(task)[int(value)]


def _tsv(task: dict[str, Any], ids: list[str], values: np.ndarray, gold: list | None) -> str:
    header = ["index", "prediction"] + (["label"] if gold is not None else [])
    lines = ["\t".join(header)]
    for row, (index, value) in enumerate(zip(ids, values)):
        fields = [index, answer_text(task, value)] + ([answer_text(task, gold[row])] if gold is not None else [])
        lines.append("\t".join(fields))
    return "\n".join(lines) + "\n"


def answer_name(task: dict[str, Any], value: float | int) -> str:
    """A prediction as people read it: the class's name ("positive" where GLUE writes "1"), or the score."""
    if data.is_regression(task):
        return answer_text(task, value)
    return data.label_names(task)[int(value)]


def answer_shares(task: dict[str, Any], values: np.ndarray) -> str:
    """What was predicted, at a glance, by class name: a run that answers one class for every row shows it here."""
    if data.is_regression(task):
        return f"scores {values.min():.2f} to {values.max():.2f}, mean {values.mean():.2f}"
    counts = Counter(int(v) for v in values)
    return ", ".join(f"{name} {counts[i] / len(values):.0%}" for i, name in enumerate(data.label_names(task)))
