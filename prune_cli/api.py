"""Python API for the multi-task use case: one base model in memory, one small mask per task.

    from prune_cli.api import TaskBank
    bank = TaskBank()
    bank.add("outputs/sst2/adapt_by_pruning/s0.5/...")      # -> "sst2"
    bank.add("outputs/stsb/adapt_by_pruning/s0.5/...")      # -> "stsb"
    bank.predict("sst2", ["a gripping, funny film"])        # -> ["1"]
    bank.predict("stsb", [("A man plays.", "A man is playing.")])  # -> [4.6]

The base model is loaded once (by the first run added). Every task keeps only its bit-packed
mask and its head in memory; switching tasks unpacks the mask and installs w0 * m in place of
the base weights, without reloading or copying the model. `footprint` says what a task costs
on disk next to a fine-tuned copy of the encoder.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from prune_cli import data, mask_format, rundir
from prune_cli.errors import UserError
from prune_cli.runner import encode_split, load_encoder, load_run_head, load_run_mask, require_mask_for_task
from prune_cli.training import pick_device, predict

Text = str | tuple[str, str]


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
    packed: dict[str, np.ndarray] | None  # the mask, one bit per weight (None: feature extraction)
    head: torch.nn.Module
    footprint: Footprint


class TaskBank:
    """Several tasks' masks and heads over one shared, frozen base model."""

    def __init__(self, device: str = "auto"):
        self.device = pick_device(device)
        self.encoder = None
        self.tokenizer = None
        self.base_hash: str | None = None
        self.tasks: dict[str, _Task] = {}
        self.last_switch_seconds = 0.0

    def add(self, run_dir: Path | str, name: str | None = None) -> str:
        """Register a finished run's mask and head; returns the name to predict with."""
        run_dir = Path(run_dir)
        rundir.require_run_dir(run_dir)
        cfg = rundir.load_config(run_dir)
        require_mask_for_task(run_dir, cfg)
        if (run_dir / rundir.ENCODER).exists():
            raise UserError(f"{run_dir} is a dense fine-tuned model (it changed the base weights); use `prune-cli export` for it")
        if self.encoder is None:
            self.encoder, self.base_hash, self.tokenizer = load_encoder(cfg, self.device)
        masks = load_run_mask(run_dir, self.encoder, self.base_hash, self.device)  # refuses another base
        name = name or str(cfg.task.name)
        if name in self.tasks:
            raise UserError(f"a task named {name!r} is already loaded (from {self.tasks[name].run_dir}); pass another name")
        self.tasks[name] = _Task(
            run_dir=run_dir,
            cfg=cfg,
            packed={n: mask_format.pack(m) for n, m in masks.items()} if masks is not None else None,
            head=load_run_head(run_dir, cfg, self.encoder, self.device),
            footprint=self._footprint(run_dir),
        )
        return name

    def predict(self, name: str, texts: Sequence[Text], batch_size: int = 64) -> list[str | float]:
        """Labels (classification) or scores (regression) for `texts` under task `name`'s mask."""
        if name not in self.tasks:
            raise UserError(f"no task {name!r} loaded; loaded: {', '.join(self.tasks) or 'none'}")
        task = self.tasks[name]
        task_cfg = OmegaConf.to_container(task.cfg.task, resolve=True)
        fields = len(task_cfg["tsv"]["text_columns"])
        rows = [(t,) if isinstance(t, str) else tuple(t) for t in texts]
        if any(len(r) != fields for r in rows):
            raise UserError(f"task {name} takes {'sentence pairs' if fields == 2 else 'single sentences'}; got {rows[0]!r}")
        examples = data.Examples(rows, [0.0 if data.is_regression(task_cfg) else 0] * len(rows), "texts")
        encoded = encode_split(task.cfg, examples, self.tokenizer, None)
        started = time.perf_counter()
        weights = self._weights(task)
        self.last_switch_seconds = time.perf_counter() - started
        values = predict(self.encoder, task.head, weights, encoded, batch_size, self.device, str(task.cfg.trainer.precision))
        if data.is_regression(task_cfg):
            return [float(v) for v in values]
        return [task_cfg["labels"][int(v)] for v in values]

    def footprint(self, name: str) -> Footprint:
        return self.tasks[name].footprint

    def _weights(self, task: _Task) -> dict[str, torch.Tensor] | None:
        """w0 * m for the task's mask: unpacked now, never stored per task."""
        if task.packed is None:
            return None
        masks = {n: mask_format.unpack(bits, self.encoder.shapes[n]).to(self.device) for n, bits in task.packed.items()}
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
