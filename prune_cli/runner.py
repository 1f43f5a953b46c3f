"""The work behind each command, as plain functions of a config (no CLI, no Hydra globals).

`adapt(cfg, run_dir)` trains one method and writes a complete run directory; `evaluate(run_dir)`
rebuilds base model + mask + head from that directory alone and scores it again.
"""

from __future__ import annotations

import datetime as dt
import logging
import platform
import random
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from safetensors.torch import load_file as load_tensors
from safetensors.torch import save as save_tensors

import prune_cli
from prune_cli import batching, data, display, folder_lock, mask_format, resumed_job, rundir, stopping
from prune_cli.checkpointing import Checkpointer, ResumePoint
from prune_cli.backbone import (base_weights_hash, load_backbone, looks_local, missing_model_folder, model_name, position_limit,
                                 resolve_model_path, tokenizer_hash)
from prune_cli.config import check_config, compose, group_options, label_text
from prune_cli.errors import RunInterrupted, UserError, first_line
from prune_cli.masking import MaskedEncoder, select_maskable, sparsity
from prune_cli.methods import DENSE, METHODS, MethodResult
from prune_cli.training import RunClock, RunContext, check_precision, metric_key, new_head, pick_device, plan_budget, score

log = logging.getLogger(__name__)


@dataclass
class Prepared:
    """Model, data and masking set up from a config; shared by `adapt` and `evaluate`."""

    encoder: MaskedEncoder
    base_hash: str
    tokenizer: Any  # what read the data into ids: its `tokenizer_hash` is recorded with the run
    train: batching.Encoded | None
    dev: dict[str, batching.Encoded]
    device: torch.device
    scored_on: dict[str, dict[str, Any]]  # each split scored: where its rows came from, how many were scored of how many (metrics.json)
    train_rows: data.Examples | None = None  # the rows trained on (after data.max_train_samples), which `trained_on` describes

    def trained_on(self) -> dict[str, Any]:
        """metrics.json's `trained_on` (source, rows, fingerprint; the checkpoint's identity holds the
        fingerprint). Asked for by the run that records it only: a fingerprint of MNLI's rows takes
        about a second, which an analysis that retrains heads need not pay."""
        assert self.train_rows is not None, "prepared without training rows"
        return {"source": self.train_rows.source, "rows": len(self.train_rows), "rows_sha256": self.train_rows.rows_sha256()}


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def load_encoder(cfg: DictConfig, device: torch.device) -> tuple[MaskedEncoder, str, Any]:
    """The frozen base model with its maskable weights selected, its weights' hash, its tokenizer."""
    raw_encoder, tokenizer = load_backbone(cfg.model)
    # As transformers' run_glue does: cut at the longest the model and its tokenizer take, rather
    # than index past the position embeddings on the first long example. The tokenizer carries
    # that limit to encode_split, the one place that tokenises.
    positions = position_limit(raw_encoder)
    limit = min(tokenizer.model_max_length, positions if positions is not None else tokenizer.model_max_length)
    if int(cfg.data.max_seq_length) > limit:
        log.warning("data.max_seq_length=%s is longer than this model takes (%d positions); sequences are cut at %d",
                    cfg.data.max_seq_length, limit, limit)
    tokenizer.model_max_length = limit
    require_room_for_text(cfg, tokenizer)
    require_segments_for_pairs(cfg, tokenizer, raw_encoder)
    base_hash = base_weights_hash(raw_encoder)
    maskable = select_maskable(raw_encoder, list(cfg.mask.include), list(cfg.mask.exclude))
    return MaskedEncoder(raw_encoder.to(device), maskable), base_hash, tokenizer


def require_room_for_text(cfg: DictConfig, tokenizer) -> None:
    """Refuse a sequence length that leaves no token of a text after the special tokens.

    Below that the tokenizer does not fail: [CLS] [SEP] alone trains and scores a model on no
    input at all, and a sentence pair that cannot be cut to fit comes back uncut (transformers
    logs and keeps the whole pair), longer than data.max_seq_length and than the model's positions.
    """
    fields = data.text_fields(cfg.task)
    special = tokenizer.num_special_tokens_to_add(pair=fields == 2)
    needed = special + fields
    length = sequence_length(cfg, tokenizer)
    if length < needed:
        what = (f"a sentence pair takes {special} special tokens from this tokenizer and at least one token of each sentence"
                if fields == 2 else f"a sentence takes {special} special tokens from this tokenizer and at least one token")
        if length < int(cfg.data.max_seq_length):  # the model's positions are the bound, not the setting
            raise UserError(f"this model takes {length} positions, too few for task '{cfg.task.name}': {what}")
        raise UserError(f"data.max_seq_length={length} is too short for task '{cfg.task.name}': {what}; "
                        f"give data.max_seq_length >= {needed} (128 is usual)")


def require_segments_for_pairs(cfg: DictConfig, tokenizer, encoder: torch.nn.Module) -> None:
    """Refuse a sentence-pair task where the tokenizer marks the second sentence with a segment
    (token type) id the model has no embedding for: a BERT checkpoint saved with type_vocab_size=1
    beside a BERT tokenizer failed on the first batch with an IndexError."""
    if data.text_fields(cfg.task) != 2:
        return
    segments = int(getattr(encoder.config, "type_vocab_size", 0) or 0)
    marked = tokenizer("a", "b").get("token_type_ids")
    if segments and marked and max(marked) >= segments:
        raise UserError(f"task '{cfg.task.name}' pairs two sentences, and this tokenizer marks the second with token type "
                        f"{max(marked)}, but the model has {segments} token type embedding(s) (type_vocab_size); "
                        "use a model pretrained with sentence pairs (type_vocab_size >= 2)")


def sequence_length(cfg: DictConfig, tokenizer) -> int:
    """The length sequences are cut at: data.max_seq_length, or the model's positions if fewer
    (`load_encoder` caps the tokenizer's `model_max_length` at them)."""
    return min(int(cfg.data.max_seq_length), tokenizer.model_max_length)


def require_mask_for_task(run_dir: Path, cfg: DictConfig) -> None:
    """Cheap check before any model is loaded: the manifest says which task the mask was made for."""
    if (run_dir / rundir.MASK).exists():
        made_for = mask_format.read_manifest(run_dir / rundir.MASK).get("task")
        if made_for not in (None, cfg.task.name):
            raise UserError(f"{run_dir / rundir.MASK} was made for task '{made_for}', the run is '{cfg.task.name}'")


def encode_split(cfg: DictConfig, examples: data.Examples, tokenizer, limit: int | None) -> batching.Encoded:
    """Tokenise a split as the run does: its first `limit` examples, cut at data.max_seq_length
    (or at the model's positions, if fewer: `load_encoder` caps the tokenizer's length)."""
    examples = examples.first(limit)
    regression = data.is_regression(OmegaConf.to_container(cfg.task, resolve=True))
    return batching.encode(examples, tokenizer, sequence_length(cfg, tokenizer), regression)


def use_configured_threads(cfg: DictConfig) -> None:
    """torch's intra-op threads as `trainer.num_threads` says (null: torch's default), for every
    command that computes with a run's config: a run made to share a machine keeps to its share
    when it is re-scored or predicts too."""
    if cfg.trainer.get("num_threads"):
        torch.set_num_threads(int(cfg.trainer.num_threads))


def prepare(cfg: DictConfig, with_train: bool) -> Prepared:
    use_configured_threads(cfg)
    device = pick_device(str(cfg.trainer.device))
    resolve_model_path(model_name(cfg.model))  # a wrong --model fails before any data is read
    task = OmegaConf.to_container(cfg.task, resolve=True)
    task_data = data.load_task_data(task, OmegaConf.to_container(cfg.data, resolve=True), with_train=with_train)
    encoder, base_hash, tokenizer = load_encoder(cfg, device)

    train_rows = task_data.train.first(cfg.data.max_train_samples) if with_train else None
    one_answer = [data.one_answer(task, task_data.train, cfg.data.max_train_samples)] if with_train else []
    one_answer += [data.one_answer(task, ex, cfg.data.max_eval_samples, "dev") for ex in task_data.dev.values()]
    for warning in filter(None, one_answer):
        log.warning(warning)
    train = encode_split(cfg, train_rows, tokenizer, None) if train_rows is not None else None
    dev = {split: encode_split(cfg, ex, tokenizer, cfg.data.max_eval_samples) for split, ex in task_data.dev.items()}
    return Prepared(encoder=encoder, base_hash=base_hash, tokenizer=tokenizer, train=train, dev=dev, device=device,
                    scored_on=scored_on(cfg, task_data.dev), train_rows=train_rows)


def scored_on(cfg: DictConfig, dev: Mapping[str, data.Examples]) -> dict[str, dict[str, Any]]:
    """metrics.json's `scored_on`: for each split scored, where its rows came from, how many were
    scored (after data.max_eval_samples) of how many (readers such as the model card can tell a cut
    that bites), and the scored rows' fingerprint (`other_rows` compares it on a re-score)."""
    limit = cfg.data.max_eval_samples
    return {split: {"source": ex.source, "rows": len(ex.first(limit)), "split_rows": len(ex), "rows_sha256": ex.first(limit).rows_sha256()}
            for split, ex in dev.items()}


def _cpu(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}


def scoring_weights(encoder: MaskedEncoder, masks, trained) -> dict[str, torch.Tensor] | None:
    """What a run is scored with: pretrained weights x mask, or (finetune only) its trained weights."""
    if trained is not None:
        return dict(trained)
    return encoder.masked_weights(masks) if masks is not None else None


def hardware(device: torch.device) -> dict[str, str | None]:
    """The processor a run computed on, for metrics.json.

    A run repeats bit for bit on the same machine. Elsewhere torch may pick other CPU kernels (it
    dispatches by instruction set) or CUDA ones, whose last-bit rounding can differ, so a mask learnt
    over hundreds of steps can come out slightly different (docs/results.md, "Reruns"). Recording
    the processor lets a rerun that does not match to the last digit be told apart from a changed
    recipe.
    """
    cpu = platform.processor() or None
    try:
        with open("/proc/cpuinfo") as info:
            cpu = next((line.split(":", 1)[1].strip() for line in info if line.startswith("model name")), cpu)
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
    }


def metrics_title(cfg: DictConfig) -> str:
    """The heading over a run's scores: they are dev figures unless `data.holdout` set rows aside."""
    return "held-out metrics" if cfg.data.get("holdout") else "dev metrics"


def main_metric_key(cfg: DictConfig) -> str:
    """The metrics.json key of the figure a run is judged by: the task's main metric on the first
    split it is scored on (dev, or the held-out training rows of `data.holdout`)."""
    split = data.scoring_keys(OmegaConf.to_container(cfg.task, resolve=True), cfg.data)[0]
    return metric_key(str(cfg.task.main_metric), split)


def adapt(cfg: DictConfig, run_dir: Path, resume: bool = False) -> float:
    """Run `cfg.method` on `cfg.task` and write a complete run directory; return the main metric.

    With `resume`, `run_dir` is a killed run of this same config: training continues from its
    last checkpoint (or from step 0 if it had none) and the result is bit-identical to an
    uninterrupted run. Ctrl-C or SIGTERM ends in RunInterrupted, whose line says how to resume; an
    OSError (a full disk, a folder made read-only under the run) in a UserError that says the same.
    """
    try:
        check_config(cfg)
        if not resume:
            rundir.ensure_fresh(run_dir)  # makes the folder, which must exist to be held
        with folder_lock.held(run_dir, rundir.run_in_use(run_dir)):
            return _adapt(cfg, run_dir, resume)  # checks the folder again, now held: nothing finished in between
    except KeyboardInterrupt as stop:  # RunInterrupted from a loop's step boundary, or a plain Ctrl-C elsewhere
        raise RunInterrupted(rundir.interrupted_message(run_dir), getattr(stop, "signum", signal.SIGINT)) from None
    except OSError as refused:
        raise UserError(rundir.stopped_by_the_system_message(refused, run_dir)) from refused


def _adapt(cfg: DictConfig, run_dir: Path, resume: bool) -> float:
    if resume:
        rundir.require_resumable(run_dir)
        # a sweep job's earlier attempt, failed after a checkpoint: this attempt ends finished, or with a failure of its own
        (run_dir / rundir.FAILED).unlink(missing_ok=True)
    else:
        rundir.ensure_fresh(run_dir)
    seed_everything(int(cfg.seed))
    prepared = prepare(cfg, with_train=True)
    assert prepared.train is not None
    plain_cfg = OmegaConf.to_container(cfg, resolve=True)
    budget = plan_budget(plain_cfg["trainer"], len(prepared.train))
    read_by = tokenizer_hash(prepared.tokenizer)
    trained_on = prepared.trained_on()
    history: list[dict[str, float]] = []
    checkpoints = Checkpointer(run_dir, int(OmegaConf.select(cfg, "checkpoint.every_steps", default=0) or 0), {
        # checked in this order: changed training rows are named as such before the counts and budget they change
        "train_rows_sha256": trained_on["rows_sha256"],
        "task": cfg.task.name, "algorithm": cfg.method.algorithm, "seed": int(cfg.seed), "sparsity": float(cfg.sparsity),
        "base_weights_hash": prepared.base_hash, "tokenizer_hash": read_by, "total_steps": budget.total_steps,
        "train_examples": len(prepared.train),
    }, history)
    resumed_at = checkpoints.load() if resume else None
    if resume:
        log.info("resuming %s from %s", run_dir, f"{resumed_at.phase!r} after step {resumed_at.steps_done}" if resumed_at else "step 0 (no checkpoint was written)")
    log.info(
        "task=%s method=%s sparsity=%s model=%s: %d train examples, %d steps, %d maskable weights",
        cfg.task.name, cfg.method.name, cfg.sparsity, cfg.model.name_or_path,
        len(prepared.train), budget.total_steps, prepared.encoder.num_maskable,
    )
    if cfg.method.algorithm in DENSE and float(cfg.sparsity) != 0.0:
        log.warning("%s is a dense reference: sparsity=%s is ignored (realized 0)", cfg.method.name, cfg.sparsity)

    live_history = rundir.LiveHistory(run_dir, checkpoints.history)  # the checkpoint's steps on resume, none afresh
    with stopping.deferred("stopping after this step" + (", with a checkpoint" if checkpoints.every > 0 else
                                                          " (checkpoints are off: the run would start again from step 0)")):
        try:
            result, clock = _train(cfg, plain_cfg, prepared, budget, checkpoints, live_history)
        finally:
            live_history.close()
            checkpoints.settle()  # the last checkpoint is on disk before the run reports how training ended
        if stopping.requested is not None:  # after the last step, with nothing saved: the result is seconds away
            log.warning("the stop came after the last training step: finishing the run")
    if checkpoints.pending is not None:
        raise UserError(f"the checkpoint in {run_dir} is for phase {checkpoints.pending.phase!r}, which {cfg.method.name} never reached")
    train_seconds, scoring_seconds = clock.training_seconds(), clock.scoring  # what training cost, with or without eval_every
    started = time.perf_counter()
    weights = scoring_weights(prepared.encoder, result.masks, result.weights)
    metrics = score(prepared.encoder, result.head, weights, prepared.dev, plain_cfg["task"], plain_cfg["trainer"], prepared.device)
    eval_seconds = time.perf_counter() - started
    hash_after = base_weights_hash(prepared.encoder.encoder)

    realized = sparsity(result.masks) if result.masks is not None else 0.0
    identity = {
        "task": label_text(cfg.task.name),
        "method": label_text(cfg.method.name),
        "algorithm": cfg.method.algorithm,
        "model": model_name(cfg.model),
        "model_revision": label_text(cfg.model.get("revision")),
        "seed": int(cfg.seed),
        "sparsity_requested": float(cfg.sparsity),
        "sparsity_realized": realized,
        "tag": label_text(cfg.get("tag")),
    }
    _write_artifacts(run_dir, result, checkpoints.history, {
        **identity, "base_model": identity["model"], "base_weights_hash": prepared.base_hash,
        "num_maskable": prepared.encoder.num_maskable,
    })
    key = main_metric_key(cfg)
    summary = {
        **identity,
        "main_metric": key,
        "main_metric_value": metrics[key],
        "metrics": metrics,
        "scored_on": prepared.scored_on,
        "trained_on": trained_on,
        "num_maskable": prepared.encoder.num_maskable,
        "num_kept": int(sum(int(m.sum()) for m in result.masks.values())) if result.masks is not None else prepared.encoder.num_maskable,
        "steps": budget.total_steps,
        "train_examples": len(prepared.train),
        "train_seconds": round(train_seconds, 2),
        "eval_seconds": round(eval_seconds, 2),
        **({"eval_every_seconds": round(scoring_seconds, 2)} if scoring_seconds else {}),
        "resumed_from": _resumed_from(resumed_at, clock),
        "checkpoints": {"saved": checkpoints.saves, "seconds": round(checkpoints.seconds_spent, 2)},
        "base_weights_hash_before": prepared.base_hash,
        "base_weights_hash_after": hash_after,
        "base_weights_unchanged": hash_after == prepared.base_hash,
        "tokenizer_hash": read_by,
        rundir.WRITTEN_DIGESTS: rundir.written_digests(run_dir),
        "method_details": result.extra,
        "device": str(prepared.device),
        "threads": torch.get_num_threads(),  # intra-op threads this run used (config null: torch's default)
        "hardware": hardware(prepared.device),
        "versions": prune_cli.versions(),
        "finished_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }
    rundir.write_json(run_dir / rundir.METRICS, summary)  # last: its presence marks the run complete
    checkpoints.finish(keep=bool(OmegaConf.select(cfg, "checkpoint.keep", default=False)))
    log.info("finished in %.1fs: %s; run dir %s", train_seconds, metrics, run_dir)
    display.console.print(display.line(
        (str(cfg.task.name), "bold"),
        f" · {cfg.method.name} · sparsity {realized:.4f} (requested {cfg.sparsity}) · "
        f"pretrained weights unchanged: {summary['base_weights_unchanged']}"
        + (" (the fine-tuned weights are the run's own copy)" if result.weights is not None else "")
    ))
    display.console.print(display.metrics_table(metrics_title(cfg), metrics))
    display.console.print(display.line("run directory: ", (str(run_dir), "bold")))
    return float(metrics[key])


def _train(cfg: DictConfig, plain_cfg: dict, prepared: Prepared, budget, checkpoints: Checkpointer,
           live_history: rundir.LiveHistory) -> tuple[MethodResult, RunClock]:
    """Run the method with a progress display; every step record also goes to history (the
    checkpoint's copy, and history.jsonl as the run goes) and the log. Returns the result and the
    run's clock (its seconds, and those spent scoring along the way: `trainer.eval_every`)."""
    history = checkpoints.history
    clock = RunClock()
    log_every = int(cfg.trainer.get("log_every") or 0)
    with display.step_progress(budget.total_steps, f"{cfg.task.name} {cfg.method.name}", bool(cfg.trainer.progress)) as show:

        def on_step(record: dict[str, float]) -> None:
            record["seconds"] = round(clock.seconds(), 3)
            history.append(record)
            live_history.append(record)
            show(record)
            if log_every and record["step"] % log_every == 0:
                log.info("%s step %d/%d loss %.4f sparsity %.4f (%.0fs)", record.get("phase", ""), record["step"],
                         record.get("total", budget.total_steps), record["loss"], record["sparsity"], record["seconds"])
            scored = rundir.scored_figures(record)
            if scored:  # trainer.eval_every's figures: logged whatever log_every says
                log.info("%s step %d/%d: %s", record.get("phase", ""), record["step"], record.get("total", budget.total_steps),
                         ", ".join(f"{key} {value:.4f}" for key, value in scored.items()))

        ctx = make_context(plain_cfg, prepared, budget, on_step, checkpoints, clock)
        return METHODS[cfg.method.algorithm](ctx), clock


def make_context(plain_cfg: dict, prepared: Prepared, budget, on_step=None, checkpoints: Checkpointer | None = None,
                 clock: RunClock | None = None) -> RunContext:
    """What the methods' loops run in; also used by analyses that retrain a head."""
    task = plain_cfg["task"]
    extra = {"on_step": on_step} if on_step is not None else {}
    if checkpoints is not None:
        extra["checkpoints"] = checkpoints
    if clock is not None:
        extra["clock"] = clock
    return RunContext(
        cfg=plain_cfg, task=task, encoder=prepared.encoder, train=prepared.train, dev=prepared.dev,
        device=prepared.device, budget=budget, seed=int(plain_cfg["seed"]),
        num_outputs=data.num_outputs(task), regression=data.is_regression(task), base_hash=prepared.base_hash, **extra,
    )


def _resumed_from(resumed_at: ResumePoint | None, clock: RunClock) -> dict[str, Any] | None:
    """metrics.json's `resumed_from` (null for a run that went through in one go): where the
    checkpoint the run went on from was taken, and `seconds_before`, the run's seconds up to it
    (as its step records count them, scoring along the way included). With those, `train_seconds` covers the whole run and `report` counts it in
    the cost; a checkpoint written before checkpoints carried the clock leaves it out, and
    `train_seconds` times only what came after."""
    if resumed_at is None:
        return None
    return {"phase": resumed_at.phase, "steps_done": resumed_at.steps_done,
            **({"seconds_before": round(clock.carried, 2)} if clock.carried is not None else {})}


def _write_artifacts(run_dir: Path, result: MethodResult, history: list[dict], manifest: dict) -> None:
    """Mask (and earlier masks), trained weights if any, head and history; metrics.json comes after."""
    if result.masks is not None:
        mask_format.save_mask(run_dir / rundir.MASK, result.masks, manifest)
    shapes = {n: tuple(m.shape) for n, m in result.masks.items()} if result.masks is not None else {}
    for round_number, (level, packed) in enumerate(result.earlier_masks, start=1):
        masks = mask_format.unpack_masks(packed, shapes)  # one round unpacked at a time
        mask_format.save_mask(run_dir / rundir.earlier_mask(round_number, level), masks,
                              {**manifest, "sparsity_requested": level, "sparsity_realized": sparsity(masks), "imp_round": round_number})
    if result.weights is not None:
        rundir.atomic_write_bytes(run_dir / rundir.ENCODER, save_tensors(_cpu(result.weights)))
    rundir.atomic_write_bytes(run_dir / rundir.HEAD, save_tensors(_cpu(result.head.state_dict())))
    rundir.write_jsonl(run_dir / rundir.HISTORY, history)


def restore(run_dir: Path, cfg: DictConfig, encoder: MaskedEncoder, base_hash: str, tokenizer: Any,
            device: torch.device) -> tuple[dict[str, torch.Tensor] | None, torch.nn.Module]:
    """The weights a run is scored with (pretrained x its mask, or its trained weights) and its head.

    The one way a finished run is put back together: `evaluate`, `export` and `apply` all use it
    (or its two halves), so they cannot disagree about what a run dir means.
    """
    masks = load_run_mask(run_dir, encoder, base_hash, device)
    trained = load_run_encoder(run_dir, encoder, device) if (run_dir / rundir.ENCODER).exists() else None
    require_made_on(run_dir, tokenizer, base_hash if trained is None else None)
    return scoring_weights(encoder, masks, trained), load_run_head(run_dir, cfg, encoder, device)


def require_made_on(run_dir: Path, tokenizer: Any, base_hash: str | None) -> None:
    """A finished run is put back together with the tokenizer and base weights it was made with, as
    its metrics.json records them (`base_hash` None: a fine-tuned run, which holds every encoder
    weight it is scored with). A mask carries the weights' check in its own manifest, but feature
    extraction has no mask: its head, trained on one model's features, was scored, exported and
    served over another's (a model folder replaced, a hub name that moved to a new revision) without
    a word, and no run checked that its text was still read into the same ids. A record made before
    a hash was written has none to compare."""
    record = rundir.load_run_record(run_dir)
    made_on = record.get("base_weights_hash_before")
    if base_hash is not None and made_on is not None and made_on != base_hash:
        raise UserError(f"{run_dir} was made on base weights {made_on[:12]}… ({record.get('model')}), but the model loaded has "
                        f"{base_hash[:12]}…; load the base model the run was made for")
    read_by = record.get("tokenizer_hash")
    if read_by is not None and read_by != tokenizer_hash(tokenizer):
        raise UserError(f"{run_dir} was made with a tokenizer that reads text into other ids than the one loaded from "
                        f"{record.get('model')} now (its tokenizer files were replaced, or a transformers/tokenizers version "
                        "tokenizes differently); load the base model and tokenizer the run was made with")


def load_run_encoder(run_dir: Path, encoder: MaskedEncoder, device: torch.device) -> dict[str, torch.Tensor]:
    """A fine-tuned run's trained encoder weights, which must be the loaded model's weights by name
    and shape: a truncated file or one of another model was a traceback from safetensors or from the
    first forward pass."""
    path = run_dir / rundir.ENCODER
    try:
        trained = load_tensors(str(path), device=str(device))
    except Exception as exc:  # noqa: BLE001 - safetensors raises its own error types for a bad file
        raise UserError(f"{path} cannot be read ({first_line(exc)}); it may be truncated or corrupt") from None
    expected = {name: tuple(tensor.shape) for name, tensor in encoder.encoder.state_dict().items()}
    for name, tensor in trained.items():
        if name not in expected:
            differs = f"'{name}', a weight the loaded model does not have"
        elif tuple(tensor.shape) != expected[name]:
            differs = f"'{name}' of shape {tuple(tensor.shape)}, where the loaded model's is {expected[name]}"
        else:
            continue
        raise UserError(f"{path} holds {differs}; load the base model the run was made for")
    if not trained:
        raise UserError(f"{path} holds no weights; it was overwritten")
    return trained


def load_run_mask(run_dir: Path, encoder: MaskedEncoder, base_hash: str, device: torch.device) -> dict[str, torch.Tensor] | None:
    """The run's mask, checked against the loaded base model (None for a run without one)."""
    if not (run_dir / rundir.MASK).exists():
        return None
    loaded = mask_format.load_mask(run_dir / rundir.MASK, encoder.shapes, base_hash)
    return {n: m.to(device) for n, m in loaded.masks.items()}


def load_run_head(run_dir: Path, cfg: DictConfig, encoder: MaskedEncoder, device: torch.device) -> torch.nn.Module:
    head = new_head(encoder, data.num_outputs(OmegaConf.to_container(cfg.task, resolve=True)), cfg.head).to(device)
    try:
        head.load_state_dict(load_tensors(str(run_dir / rundir.HEAD), device=str(device)))
    except Exception as exc:
        raise UserError(f"{run_dir / rundir.HEAD} cannot be loaded into the task head: {first_line(exc)}") from None
    return head.eval()


def stored_config(run_dir: Path, data_dir: str | None = None, device: str | None = None,
                  precision: str | None = None, model: str | None = None) -> DictConfig:
    """A finished run's own config, with what re-scoring it may change: the GLUE folder, the device,
    the precision (a run trained on a GPU in fp16 can be re-scored on a CPU, which emulates fp16,
    in fp32) and where its base model is loaded from (a folder moved, a hub model copied to a
    machine without the hub: `require_made_on` checks it is the same weights and tokenizer). Every
    command that loads a finished run reads it through here (evaluate, predict, apply, export,
    analyze sensitivity); a bad precision, a file the run did not write, a mask made for another
    task or a base model no longer where the run says fails here, before any data or model is loaded."""
    rundir.require_run_dir(run_dir)
    cfg = rundir.load_complete_config(run_dir)
    if model is not None:  # a model config's name (minilm) is its model, as `adapt --model minilm` reads it
        cfg.model.name_or_path = compose([f"model={model}"]).model.name_or_path if model in group_options("model") else model
        if looks_local(model_name(cfg.model)) and "revision" in cfg.model:  # a local copy of the run's hub model at its revision
            cfg.model.revision = None
    else:
        require_base_model_here(run_dir, model_name(cfg.model))
    if data_dir is not None:
        cfg.data.dir = data_dir
    if device is not None:
        cfg.trainer.device = device
    if precision is not None:
        cfg.trainer.precision = precision
    check_precision(str(cfg.trainer.precision))
    rundir.require_scored_with(run_dir, str(cfg.method.algorithm))
    rundir.require_as_written(run_dir)  # its mask, trained weights and head, each hashed once
    require_mask_for_task(run_dir, cfg)
    fill_in_later_task_keys(cfg)
    return cfg


MOVED_MODEL_FOR_READERS = "point --model at where that model is now (its weights and tokenizer are checked against the run's)"


def moved_model_way_back(name_or_path: str, to_do: str) -> str:
    """What `--resume` of a run or a sweep, which go on with the config they were made with, says to
    do about a model folder moved away: `require_base_model_here`'s remedy."""
    return f"put that model back there, or link it there (ln -s <where it is now> {name_or_path}), {to_do}"


def require_base_model_here(run_dir: Path, name_or_path: str, remedy: str = MOVED_MODEL_FOR_READERS) -> None:
    """A run whose base model folder is gone (moved, or the run copied to another machine) says so
    and what to do: a finished run's readers take `--model`; the generic answer ("pass a Hugging
    Face model name or a local folder") named no way to do either."""
    if missing_model_folder(name_or_path) is not None:
        raise UserError(f"{run_dir} was made on the model folder {name_or_path}, which is not there now; {remedy}")


# Task keys added after runs already existed, that describe only data layout or display (never a
# setting a run was trained with): `test` (predict's test sets) and `label_names` (what apply shows
# and an export's id2label).
LATER_TASK_KEYS = ("test", "label_names")


def fill_in_later_task_keys(cfg: DictConfig) -> None:
    """Give a run made before one of `LATER_TASK_KEYS` existed the packaged task's value of that key
    (its label names only where its labels are the packaged task's), or null where there is none."""
    missing = [key for key in LATER_TASK_KEYS if key not in cfg.task]
    if not missing:
        return
    try:
        packaged = compose([f"task={cfg.task.name}"]).task
    except UserError:  # a user's own task whose folder is gone: nothing to take
        packaged = None
    for key in missing:
        value = packaged.get(key) if packaged is not None else None
        if key == "label_names" and packaged is not None and list(packaged.labels or []) != list(cfg.task.labels or []):
            value = None
        cfg.task[key] = value


def other_rows(scored_then: Any, scored_now: dict[str, dict[str, Any]]) -> list[str]:
    """What differs between the rows a run was scored on (its record's `scored_on`) and the rows
    scored now, one phrase per split whose fingerprints (`Examples.rows_sha256`) differ. A record
    made before the fingerprint was kept has nothing to compare."""
    differs = []
    for split, now in scored_now.items():
        then = scored_then.get(split) if isinstance(scored_then, dict) else None
        if not isinstance(then, dict) or not isinstance(then.get("rows_sha256"), str) or then["rows_sha256"] == now["rows_sha256"]:
            continue
        if then.get("source") == now["source"]:
            differs.append(f"the {split} rows of {now['source']} have changed since the run was scored on them "
                           f"({then.get('rows', '?')} rows then, {now['rows']} now)")
        else:
            differs.append(f"the {split} rows scored now ({now['rows']} rows of {now['source']}) are not the rows the run was "
                           f"scored on ({then.get('rows', '?')} rows of {then.get('source', '?')})")
    return differs


def require_rows_scored_on(run_dir: Path, cfg: DictConfig, dev: Mapping[str, data.Examples], needs: str) -> None:
    """Refuse rows other than those the run was scored on (`other_rows`) where a command's point is
    the rows behind the run's score (`needs` says what it does with them): `export --check` would
    compare an export with the run's figures on other data, `predict --split dev` write other rows
    as the ones behind the score. `evaluate` re-scores other rows, and says so."""
    differs = other_rows(rundir.load_run_record(run_dir).get("scored_on"), scored_on(cfg, dev))
    if differs:
        raise UserError(f"{needs}, but {differs[0]}; point --data-dir at the data the run was scored on")


@dataclass(frozen=True)
class Rescored:
    """A finished run scored again from its mask and head (`evaluate`): the figures now, those its
    metrics.json holds, and how the rows scored differ from the run's (`other_rows`; none: the same
    rows), which makes a figure that differs the data's doing, not the run's."""

    run_dir: Path
    metrics: dict[str, float]
    stored: dict[str, float]
    other_rows: list[str]

    @property
    def same(self) -> bool:
        """Every figure exactly as stored (what `evaluate --check` asks of each run)."""
        return self.metrics == self.stored


def rescore(run_dir: Path, cfg: DictConfig, record: dict[str, Any]) -> Rescored:
    """Score a finished run under `cfg` (its `stored_config`), beside the figures its checked `record` holds."""
    seed_everything(int(cfg.seed))
    prepared = prepare(cfg, with_train=False)
    task = OmegaConf.to_container(cfg.task, resolve=True)
    weights, head = restore(run_dir, cfg, prepared.encoder, prepared.base_hash, prepared.tokenizer, prepared.device)
    metrics = score(prepared.encoder, head, weights, prepared.dev, task, OmegaConf.to_container(cfg.trainer, resolve=True), prepared.device)
    return Rescored(run_dir, metrics, record["metrics"], other_rows(record.get("scored_on"), prepared.scored_on))


def _show(rescored: Rescored, cfg: DictConfig) -> None:
    """A re-score as `evaluate` prints it: where the rows differ first, then the figures beside the stored ones."""
    display.console.print(display.line("re-scored ", (str(rescored.run_dir), "bold"), " from its mask and head"))
    for difference in rescored.other_rows:
        display.console.print(display.line(("other data: ", "yellow"), f"{difference}: a figure that differs is the data's doing, not the run's"), highlight=False)
    display.console.print(display.metrics_table(metrics_title(cfg), rescored.metrics, compare=rescored.stored))


def evaluate_runs(run_dirs: Sequence[Path], data_dir: str | None = None, device: str | None = None,
                  precision: str | None = None, model: str | None = None, show: bool = True) -> list[Rescored]:
    """Re-score several runs (a sweep, after a move to another machine), each rebuilt from its folder
    alone (`data_dir`, `device`, `precision` and `model` override the run's own: `stored_config`) and
    printed as it is scored unless `show` is off (the Python API). Every run's config, mask and record
    are checked before the first is scored, so a mistyped path fails at once rather than after the
    others' minutes."""
    rundir.require_each_once(run_dirs)
    configs = [stored_config(run_dir, data_dir, device, precision, model) for run_dir in run_dirs]
    records = [rundir.load_run_record(run_dir) for run_dir in run_dirs]  # the figures each is compared with
    results = []
    for run_dir, cfg, record in zip(run_dirs, configs, records):
        results.append(rescore(run_dir, cfg, record))
        if show:
            _show(results[-1], cfg)
    return results


def resume(run_dir: Path) -> float:
    """Continue a killed run with the config stored in its directory (`adapt --resume RUN_DIR`)."""
    rundir.require_resumable(run_dir)
    with folder_lock.held(run_dir, rundir.run_in_use(run_dir)):  # before the log is opened: a run in use is left as it is
        return _resume_held(run_dir)


def resumable_config(run_dir: Path) -> DictConfig:
    """The config a stopped run goes on with, once every check `resume` makes before it trains has
    passed (`adapt --resume RUN --dry-run` makes them too, without holding the folder)."""
    rundir.require_resumable(run_dir)
    if folder_lock.held_elsewhere(run_dir):
        raise folder_lock.FolderInUse(rundir.run_in_use(run_dir))
    return _resumed_config(run_dir)


def _resumed_config(run_dir: Path) -> DictConfig:
    cfg = rundir.load_complete_config(run_dir)
    # a run goes on with the config it was made with, so its model is found where that says, on its device
    model = model_name(cfg.model)
    require_base_model_here(run_dir, model, moved_model_way_back(model, "to resume"))
    require_device_here(cfg, f"resume {run_dir}")
    resumed_job.recorded_environment(run_dir)  # one it cannot set again is refused before the run is taken up
    return cfg


def require_device_here(cfg: DictConfig, to_do: str) -> None:
    """The device a stopped run or sweep was made with, visible here: it goes on with the settings
    it was made with, which `--resume` cannot change, so it is not told to set trainer.device."""
    pick_device(str(cfg.trainer.device), fix=f"{to_do} on a machine with that GPU (a stopped run goes on with the settings it was made with)")


def _resume_held(run_dir: Path) -> float:
    """`resume` once its run directory is held: the run goes on logging and with the environment
    Hydra gave it at launch (`resumed_job`), its run.log appended to."""
    cfg = _resumed_config(run_dir)
    with resumed_job.as_launched(run_dir):
        return adapt(cfg, run_dir, resume=True)
