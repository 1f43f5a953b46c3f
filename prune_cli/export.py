"""`prune-cli export`: a run dir -> a standalone Hugging Face model folder.

The mask is baked in (pruned weights are stored as zeros), the head travels with the encoder in
one safetensors file, and the folder carries its own model code, so plain transformers loads it
without prune-cli:

    AutoModelForSequenceClassification.from_pretrained(folder, trust_remote_code=True)

The encoder alone also loads as a plain `AutoModel` (the head's weights are then ignored).
`README.md` is the model card (`model_card.py`), for whoever finds the folder on the hub.
The folder is assembled beside its destination and renamed into place, so a half-written export
never exists under the requested name, and an existing folder is never overwritten.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from prune_cli import data, head, hf_modeling, mask_format, model_card, rundir
from prune_cli.errors import UserError
from prune_cli.runner import encode_split, load_encoder, require_rows_scored_on, restore, stored_config

MODELING_FILE = "modeling_pruned_bert.py"
HEAD_FILE = "layer_mix_head.py"
HEAD_IMPORT = "from prune_cli.head import LayerMixHead"
MANIFEST_FILE = "prune_cli_manifest.json"
CARD_FILE = "README.md"  # the hub renders it as the model's page


def export(run_dir: Path, out: Path, model: str | None = None) -> Path:
    """Write the run's model to `out` (which must not exist yet); returns `out`. `model` loads the
    run's base model from another place (`stored_config`); the model card still names the run's own."""
    cfg = stored_config(run_dir, model=model)
    metrics = require_exportable(run_dir, out)
    encoder, base_hash, tokenizer = load_encoder(cfg, torch.device("cpu"))
    if encoder.encoder.config.model_type not in hf_modeling.EXPORTED:
        raise UserError(f"export writes models of model_type {', '.join(map(repr, hf_modeling.EXPORTED))}; this run's base "
                        f"has model_type '{encoder.encoder.config.model_type}'")
    weights, task_head = restore(run_dir, cfg, encoder, base_hash, tokenizer, torch.device("cpu"))
    exported = _assemble(cfg, encoder.encoder, weights or {}, task_head)
    card_cfg = OmegaConf.to_container(cfg, resolve=True)
    card_cfg["model"] = OmegaConf.to_container(rundir.load_complete_config(run_dir).model, resolve=True)  # the base it was made on, at its revision

    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    except OSError as exc:
        raise UserError(f"cannot write to {out.parent}: {exc.strerror}; give --out a folder you can write to") from None
    try:
        exported.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        shutil.copyfile(head.__file__, staging / HEAD_FILE)
        modeling = Path(hf_modeling.__file__).read_text()
        assert HEAD_IMPORT in modeling, "hf_modeling must import the head the way export rewrites it"
        (staging / MODELING_FILE).write_text(modeling.replace(HEAD_IMPORT, "from .layer_mix_head import LayerMixHead"))
        (staging / MANIFEST_FILE).write_text(json.dumps(_provenance(run_dir, metrics), indent=2) + "\n")
        model_card.build(card_cfg, metrics, out.name).save(staging / CARD_FILE)
        # mkdtemp's folder is 0700 and transformers writes model.safetensors 0600: give the export
        # the modes a plain open() would, so that others can load it where the umask lets them.
        for path in [staging, *staging.rglob("*")]:
            path.chmod(rundir.default_mode(0o777 if path.is_dir() else 0o666))
        if out.exists():
            out.rmdir()  # the empty folder the user may have made
        staging.rename(out)
    except BaseException as exc:
        full = rundir.out_of_space(exc, staging, out)  # safetensors says "I/O error: No space left on device (os error 28)"
        shutil.rmtree(staging, ignore_errors=True)
        if full is not None:
            raise full from exc
        raise
    return out


def require_exportable(run_dir: Path, out: Path) -> dict:
    """Before any work: refuse an --out the export may not take (a file, or a folder with files in
    it), and return the run's record with the fields the model card reads."""
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file; give a new folder (or an empty one)")
    if out.is_dir() and any(out.iterdir()):
        raise UserError(f"{out} already exists and is not empty; never overwriting it, choose another --out")
    rundir.require_writable(out.parent)  # where the export is staged, then renamed to --out
    rundir.require_run_dir(run_dir)
    return rundir.load_run_record(run_dir, needs=model_card.RECORD_NEEDS)


def _assemble(cfg, base_encoder: torch.nn.Module, weights: dict[str, torch.Tensor], task_head: torch.nn.Module):
    """The exported model with the run's effective weights and head in place."""
    task = OmegaConf.to_container(cfg.task, resolve=True)
    config = base_encoder.config.__class__.from_dict(base_encoder.config.to_dict())
    config.num_labels = data.num_outputs(task)
    if not data.is_regression(task):  # the classes' names, so that a pipeline answers "positive", not "1"
        config.id2label = dict(enumerate(data.label_names(task)))
        config.label2id = {name: i for i, name in enumerate(data.label_names(task))}
    config.problem_type = "regression" if data.is_regression(task) else "single_label_classification"
    model_class = hf_modeling.EXPORTED[config.model_type]
    config.architectures = [model_class.__name__]
    config.prune_cli_pooling = task_head.pooling
    config.auto_map = {"AutoModelForSequenceClassification": f"{MODELING_FILE[:-3]}.{model_class.__name__}"}
    model = model_class(config)
    encoder_state = {name: tensor for name, tensor in base_encoder.state_dict().items() if not name.startswith("pooler.")}
    encoder_state.update({name: tensor.detach().to("cpu") for name, tensor in weights.items() if not name.startswith("pooler.")})
    state = {f"{model_class.base_model_prefix}.{k}": v for k, v in encoder_state.items()} | {f"head.{k}": v for k, v in task_head.state_dict().items()}
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:  # only buffers the model rebuilds itself may be missing
        real_missing = [m for m in missing if not m.endswith("position_ids")]
        if real_missing or unexpected:
            raise UserError(f"the run's weights do not fit the export model (missing {real_missing[:3]}, unexpected {unexpected[:3]})")
    return model.eval()


def _provenance(run_dir: Path, metrics: dict) -> dict:
    """Where the folder came from: the run's identity, scores (its `metrics.json`) and (if any) its mask manifest."""
    keep = ("task", "method", "algorithm", "model", "model_revision", "seed", "sparsity_requested", "sparsity_realized", "metrics", "base_weights_hash_before",
            "tokenizer_hash", "scored_on", "trained_on")  # the scores, and the rows they and the training came from
    provenance = {"run_dir": str(run_dir.resolve()), **{k: metrics.get(k) for k in keep}}
    if (run_dir / rundir.MASK).exists():
        manifest = mask_format.read_manifest(run_dir / rundir.MASK)
        provenance["mask"] = {k: v for k, v in manifest.items() if k != "tensors"}
    return provenance


@dataclass(frozen=True)
class ScoredRows:
    """The rows a run was scored on (its dev split(s), or its held-out rows), with the config that
    says how they are cut and encoded: read before an export with --check, so that data that cannot
    be read stops the command before it writes anything."""

    cfg: DictConfig
    task: dict[str, Any]
    dev: dict[str, data.Examples]


def read_scored_rows(run_dir: Path, data_dir: str | None = None, model: str | None = None) -> ScoredRows:
    """The rows --check scores, which must be those the run was scored on (`other_rows`): on other
    rows the exported model would fail the comparison with the run's figures (or pass it by chance)
    and say nothing of the export."""
    cfg = stored_config(run_dir, data_dir, model=model)
    task = OmegaConf.to_container(cfg.task, resolve=True)
    dev = data.load_task_data(task, OmegaConf.to_container(cfg.data, resolve=True), with_train=False).dev
    require_rows_scored_on(run_dir, cfg, dev, "--check compares with the run's figures")
    return ScoredRows(cfg, task, dev)


@torch.no_grad()
def score_exported(folder: Path, rows: ScoredRows) -> dict[str, float]:
    """Score an exported folder on the run's dev set(s) through plain transformers.

    Only the batching (length-sorted, like `evaluate`) is prune-cli's: the model and tokenizer are
    what `from_pretrained` gives any user, so equal scores prove the export is the run.
    """
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from prune_cli import batching
    from prune_cli.training import split_metrics

    cfg, task = rows.cfg, rows.task
    model = AutoModelForSequenceClassification.from_pretrained(str(folder), trust_remote_code=True).eval()
    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    results: dict[str, float] = {}
    for split, examples in rows.dev.items():
        encoded = encode_split(cfg, examples, tokenizer, cfg.data.max_eval_samples)
        predictions = torch.empty(len(encoded), model.config.num_labels)
        for indices, batch in batching.iterate(encoded, batching.eval_batches(encoded, int(cfg.trainer.eval_batch_size))):
            batch.pop("labels")
            predictions[torch.from_numpy(indices)] = model(**batch).logits.float()
        values = predictions[:, 0] if model.config.num_labels == 1 else predictions.argmax(dim=1)
        results.update(split_metrics(task, split, values.numpy(), encoded.labels.numpy()))
    return results
