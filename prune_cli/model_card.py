"""The model card (`README.md`) of an exported folder: what the model is, how well it scores, how to load it.

A folder meant for the Hugging Face hub is read there through its README: the hub renders it as
the model's page and files the model by its YAML metadata (base model, dataset, task, scores as
`model-index`). Without one the hub shows "empty or missing yaml metadata", and whoever finds the
model cannot tell that most of its weights are zero or that only a head was trained. The card is
built from the run directory alone (its config and `metrics.json`), through `huggingface_hub`'s
own card classes, so the metadata is in the form the hub parses.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from prune_cli import __version__, data
from prune_cli.backbone import PACKAGED_MINILM, looks_local, model_name
from prune_cli.methods import DENSE
from prune_cli.training import metric_key

# The hub's name for the model prune-cli ships as its default.
PACKAGED_MINILM_HUB = "sentence-transformers/all-MiniLM-L6-v2"
# prune-cli's metric names -> the hub's metric ids (https://hf.co/metrics).
HUB_METRIC = {"accuracy": "accuracy", "f1": "f1", "matthews_correlation": "matthews_correlation",
              "pearson": "pearsonr", "spearmanr": "spearmanr"}
PAPER = "[Gao, Colombo and Wang (2021), *Adapting by Pruning: A Case Study on BERT*](https://arxiv.org/abs/2105.03343)"

# The fields of metrics.json the card reads beyond those every run record has (rundir.RECORD_FIELDS).
RECORD_NEEDS = ("seed", "steps", "train_examples", "num_kept", "num_maskable")

# What each method did to the encoder, in the card's words.
WHAT_THE_METHOD_DID = {
    "adapt_by_pruning": f"a binary mask over its frozen weights, learnt for the task by gradient descent (adapt-by-pruning, {PAPER})",
    "random": "a random binary mask over its frozen weights (the random-pruning baseline)",
    "magnitude": "a binary mask keeping its pretrained weights of largest magnitude (the magnitude-pruning baseline)",
    "gmp": "a binary mask from gradual magnitude pruning during fine-tuning (Zhu and Gupta, 2018), with the kept weights put back to their pretrained values",
    "imp": "a binary mask from iterative magnitude pruning with rewinding (lottery tickets), with the kept weights at their pretrained values",
}


def hub_base_model(name_or_path: str) -> str | None:
    """The base model's hub id, for the card's `base_model`; None for a local folder."""
    if name_or_path == PACKAGED_MINILM:
        return PACKAGED_MINILM_HUB
    return None if looks_local(name_or_path) else name_or_path


def hub_dataset(task: Mapping[str, Any]) -> str | None:
    """The hub id of the dataset the task's scores are on; None for data of the user's own (a TSV
    folder, or a local folder of files), which the hub cannot link to."""
    name = data.dataset_name(task)
    return name if task.get("hub") and not looks_local(name) else None


def build(cfg: Mapping[str, Any], metrics: Mapping[str, Any], folder_name: str) -> ModelCard:
    """The card of the folder exported from a run with config `cfg` and `metrics.json` `metrics`.

    Scores become hub metadata (`model-index`, which the hub shows as results on that dataset's
    dev split) only for a task whose dataset is on the hub, scored on its whole dev set: a run that
    `data.max_eval_samples` cut to a slice of it says so in the text instead."""
    task, model = cfg["task"], model_name(cfg["model"])
    base = hub_base_model(model)
    dataset = hub_dataset(task)
    algorithm = str(metrics.get("algorithm") or metrics["method"])
    card_data = ModelCardData(
        library_name="transformers",
        pipeline_tag="text-classification",
        base_model=base,
        datasets=[dataset] if dataset else None,
        tags=["prune-cli", *([] if algorithm in DENSE else ["pruning", "sparse"]), str(metrics["method"]),
              f"glue-{task['name']}" if data.is_glue(task) else str(task["name"])],
        model_name=folder_name,
        eval_results=_eval_results(task, metrics, dataset) if dataset and not _scored_a_slice(cfg, metrics) else None,
    )
    words = base_words(model, cfg["model"].get("revision"))
    return ModelCard(f"---\n{card_data.to_yaml()}\n---\n\n{_body(cfg, metrics, algorithm, folder_name, words)}")


def base_words(name_or_path: str, revision: object = None) -> str:
    """How the card's text names the base model, at the start of its first sentence: by its hub id
    (and the revision the run pinned, `model.revision`), or a local folder by its name only (as a
    local dataset is), since the path on the machine that trained means nothing to a reader."""
    base = hub_base_model(name_or_path)
    if base is None:
        return f"A local model (`{Path(name_or_path).expanduser().resolve().name}`)"
    return f"`{base}`" + (f" (revision `{revision}`)" if revision is not None else "")


def _scored_a_slice(cfg: Mapping[str, Any], metrics: Mapping[str, Any]) -> bool:
    """Whether `data.max_eval_samples` left rows of a scored split unscored: a cut at or above a split's size cuts
    nothing, and the scores are then the whole split's. metrics.json's `scored_on` counts each split's rows before and
    after the cut; a run from before it counted both is judged by its config (any cut on dev, a cut below the
    held-out count)."""
    evaluated, holdout = cfg["data"].get("max_eval_samples"), cfg["data"].get("holdout")
    if not evaluated:
        return False
    splits = list((metrics.get("scored_on") or {}).values())
    if splits and all("split_rows" in split for split in splits):
        return any(split["rows"] < split["split_rows"] for split in splits)
    return not (holdout and evaluated >= holdout)


def _eval_results(task: Mapping[str, Any], metrics: Mapping[str, Any], dataset: str) -> list[EvalResult] | None:
    """The dev scores as `model-index` entries, one per metric and dev split (MNLI has two). The
    entries name the dataset as the hub lists it ("GLUE SST-2", or the dataset's id), not in the
    text's words."""
    dataset_name = f"GLUE {task['glue_dir']}" if data.is_glue(task) else dataset
    results = []
    for split_key, hub_split in task["hub"]["dev_splits"].items():
        for name in task["metrics"]:
            value = metrics["metrics"].get(metric_key(name, split_key))
            if value is None or name not in HUB_METRIC:
                continue
            results.append(EvalResult(
                task_type="text-classification", dataset_type=dataset, dataset_name=dataset_name,
                dataset_config=task["hub"].get("config"), dataset_split=hub_split, metric_type=HUB_METRIC[name],
                metric_value=round(float(value), 4),
            ))
    return results or None


def _body(cfg: Mapping[str, Any], metrics: Mapping[str, Any], algorithm: str, folder_name: str, base: str) -> str:
    """The card's text; `base` is the base model in the text's words (`base_words`)."""
    task = cfg["task"]
    lines = [f"# {folder_name}", "", _what_it_is(task, algorithm, metrics, base, str(cfg['head'].get('pooling', 'cls'))), ""]
    holdout = cfg["data"].get("holdout")
    lines += ["## Held-out scores" if holdout else "## Dev scores", ""]
    if holdout:
        lines += [f"Scored on {holdout} examples held out of the training split (`data.holdout`, "
                  f"`data.holdout_seed={cfg['data'].get('holdout_seed') or 0}`), which the run never trained on, "
                  "not on the dev set.", ""]
    evaluated = cfg["data"].get("max_eval_samples")
    if _scored_a_slice(cfg, metrics):
        scored = (f"the first {evaluated} of those examples only (`data.max_eval_samples`), not all {holdout}" if holdout
                  else f"the first {evaluated} examples of each dev split only (`data.max_eval_samples`), not the whole dev set")
        lines += [f"Scored on {scored}: a smoke-test figure, not a result.", ""]
    lines += ["| metric | value |", "|---|---|"]
    lines += [f"| {name} | {float(value):.4f} |" for name, value in metrics["metrics"].items()]
    lines += ["", "## Use", "", "```python", "from transformers import pipeline", "",
              f'classify = pipeline("text-classification", model="{folder_name}", trust_remote_code=True)',
              f"print(classify({_example_input(task)}))", "```", ""]
    lines += _labels_paragraph(task)
    lines += ["The folder carries its own model code (`modeling_pruned_bert.py`, about 90 lines, and "
              "`layer_mix_head.py`), hence `trust_remote_code=True`; nothing from prune-cli need be installed. "
              "transformers logs that the class \"is not supported\" for text-classification (its check lists "
              "built-in classes only); the answers are right all the same.", ""]
    if algorithm not in DENSE:  # the dense references have no mask, so nothing of theirs is pruned
        lines += ["Pruned weights are stored as zeros in a dense `model.safetensors`, so the file is as large as the "
                  "base model and runs at its speed. The bit-packed mask, a few MB, is the run directory's "
                  "`mask.safetensors`; `prune-cli apply` serves many tasks' masks on one base model in memory.", ""]
    lines += _provenance(cfg, metrics)
    return "\n".join(lines)


def _dataset_title(task: Mapping[str, Any]) -> str:
    """How the card names the task's data: GLUE's tasks by their GLUE name, any other by task and dataset."""
    if data.is_glue(task):
        return f"GLUE {task['glue_dir']}"
    if not task.get("hub"):
        return f"the task '{task['name']}'"
    dataset = hub_dataset(task)  # a local folder is named, not its path on the machine that trained
    return f"the task '{task['name']}' (" + (f"dataset `{dataset}`)" if dataset else f"a local dataset, `{Path(data.dataset_name(task)).name}`)")


def _what_it_is(task: Mapping[str, Any], algorithm: str, metrics: Mapping[str, Any], base: str, pooling: str) -> str:
    name = _dataset_title(task)
    head = ("The head, trained for the task, is a learnt softmax mix of every layer's "
            f"{'[CLS] vector' if pooling == 'cls' else 'mean token vector'} followed by a one-hidden-layer MLP.")
    if algorithm == "finetune":
        return f"{base} fine-tuned on {name} (every weight trained: the dense reference, not a pruned model). {head}"
    if algorithm == "feature_extraction":
        return f"{base} with its weights frozen and unchanged, and a head trained on {name} (the feature-extraction reference). {head}"
    kept, total = int(metrics["num_kept"]), int(metrics["num_maskable"])
    what = WHAT_THE_METHOD_DID.get(algorithm, f"a binary mask over its frozen weights ({algorithm})")
    return (f"{base} adapted to {name} **by pruning only**: {what}. {total - kept:,} of its {total:,} maskable weights "
            f"({1 - kept / total:.1%}) are zero, and every other weight keeps its pretrained value: no weight of the "
            f"encoder was trained. {head}")


def _example_input(task: Mapping[str, Any]) -> str:
    if data.text_fields(task) == 2:
        return '{"text": "A man is playing a guitar.", "text_pair": "A man plays the guitar."}'
    return '"a gripping, funny and moving film"'


def _labels_paragraph(task: Mapping[str, Any]) -> list[str]:
    if data.is_regression(task):
        return ["The model answers one number on the task's own scale, which the pipeline returns as `score` "
                "as it is (the config's `problem_type` is regression, so no sigmoid squashes it).", ""]
    names, labels = data.label_names(task), data.class_labels(task)
    source = "GLUE's" if data.is_glue(task) else "the data's"
    pairs = ", ".join(f"`{name}`" + (f" ({source} `{label}`)" if name != label else "") for name, label in zip(names, labels))
    return [f"Labels: {pairs}.", ""]


def _provenance(cfg: Mapping[str, Any], metrics: Mapping[str, Any]) -> list[str]:
    overrides = [f"task={cfg['task']['name']}", f"method={metrics['method']}", f"sparsity={metrics['sparsity_requested']}",
                 f"seed={metrics['seed']}"]
    return ["## How it was made", "",
            f"With prune-cli {metrics.get('versions', {}).get('prune_cli', __version__)} ({', '.join(overrides)}): "
            f"{metrics['steps']} training steps on {metrics['train_examples']:,} examples. The run's whole config is "
            "`.hydra/config.yaml` in its run directory, which `prune_cli_manifest.json` names. "
            f"The base weights' SHA-256 fingerprint: `{metrics.get('base_weights_hash_before')}`.", ""]
