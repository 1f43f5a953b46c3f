"""What the masks are, from mask files alone (no model needed: names and shapes are in the manifest).

* topology (paper §4.2, Fig. 3): the share of surviving weights per component and per layer;
* overlap: Jaccard similarity of the kept sets and Hamming distance between any masks.

The analyses that retrain a head (shuffling, re-initialisation) live in `sensitivity`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from rich.table import Table

from prune_cli import mask_format, plots, rundir
from prune_cli.errors import UserError

# Component of a BERT-family weight, by name (first match wins); "other" for anything else.
COMPONENTS = (
    ("embed", re.compile(r"embeddings\.")),
    ("query", re.compile(r"attention\.self\.query\.")),
    ("key", re.compile(r"attention\.self\.key\.")),
    ("value", re.compile(r"attention\.self\.value\.")),
    ("attn_out", re.compile(r"attention\.output\.dense\.")),
    ("ffn_in", re.compile(r"intermediate\.dense\.")),
    ("ffn_out", re.compile(r"(?<!attention\.)output\.dense\.")),
)
LAYER = re.compile(r"layer\.(\d+)\.")


def component_of(name: str) -> str:
    return next((label for label, pattern in COMPONENTS if pattern.search(name)), "other")


def layer_of(name: str) -> str:
    if name.startswith("embeddings."):
        return "embed"
    match = LAYER.search(name)
    return f"L{match.group(1)}" if match else "other"


def kept_shares(masks: dict[str, torch.Tensor]) -> dict[str, dict[str, float]]:
    """{"component": {label: kept share}, "layer": {label: kept share}}, weighted by weight count."""
    result: dict[str, dict[str, float]] = {}
    for kind, label_of in (("component", component_of), ("layer", layer_of)):
        kept: dict[str, int] = {}
        total: dict[str, int] = {}
        for name, mask in masks.items():
            label = label_of(name)
            kept[label] = kept.get(label, 0) + int(mask.sum())
            total[label] = total.get(label, 0) + mask.numel()
        result[kind] = {label: kept[label] / total[label] for label in total}
    return result


def run_label(manifest: dict) -> str:
    """task/method/s<sparsity>/seed<seed> as metrics.json has them; for an imp round's mask its
    level, which is computed (1 - 0.8^k: 0.36, not 0.35999999999999999), and /round<N>."""
    sparsity, imp_round = manifest.get("sparsity_requested"), manifest.get("imp_round")
    shown = f"{sparsity:g}" if imp_round is not None and isinstance(sparsity, float) else sparsity
    label = f"{manifest.get('task')}/{manifest.get('method')}/s{shown}/seed{manifest.get('seed')}"
    return f"{label}/round{imp_round}" if imp_round is not None else label


def distinct_labels(run_dirs: list[Path], labels: list[str]) -> list[str]:
    """One label per run and no label twice, since the analyses key their tables, CSV rows and plot
    series by label: a run sharing its readable label (task/method/sparsity/seed) with another run
    given gets its folder's name added, and its whole path where the folder names agree too (two
    sweeps started in the same second). The same run given twice is refused, not analysed twice."""
    rundir.require_each_once(run_dirs)
    named = [label if labels.count(label) == 1 else f"{label} ({run_dir.name})" for run_dir, label in zip(run_dirs, labels)]
    return [name if named.count(name) == 1 else f"{label} ({run_dir})" for run_dir, label, name in zip(run_dirs, labels, named)]


def labelled_masks(run_dirs: list[Path]) -> dict[str, mask_format.LoadedMask]:
    """Each run dir's mask (or mask file given) under a readable label (task/method/sparsity/seed),
    distinct per run."""
    paths = [rundir.require_mask_or_file(run_dir, "this analysis") for run_dir in run_dirs]
    first_given: dict[Path, Path] = {}
    for given, path in zip(run_dirs, paths):  # a run given as its folder and as its mask.safetensors: one mask twice
        first = first_given.setdefault(path.resolve(), given)
        if first is not given and first.resolve() != given.resolve():
            raise UserError(f"{given} and {first} are the same mask ({path}); give each once")
    loaded = [mask_format.read_mask(path) for path in paths]
    return dict(zip(distinct_labels(run_dirs, [run_label(m.manifest) for m in loaded]), loaded))


def topology(run_dirs: list[Path]) -> dict[str, dict[str, dict[str, float]]]:
    """Kept shares for each run dir's mask, keyed by a readable run label."""
    return {label: kept_shares(loaded.masks) for label, loaded in labelled_masks(run_dirs).items()}


def overlap(run_dirs: list[Path]) -> dict[str, dict[str, dict[str, float]]]:
    """{"jaccard": matrix, "hamming": matrix}: matrix[a][b] over all maskable weights.

    Jaccard = |kept_a & kept_b| / |kept_a | kept_b| (1 for a mask with itself); Hamming = share
    of weights on which the two masks differ. Masks on other base weights are not comparable.
    """
    if len(run_dirs) < 2:
        raise UserError(f"overlap compares masks: pass two or more run directories (got {len(run_dirs)})")
    loaded = labelled_masks(run_dirs)
    hashes = {label: m.manifest.get("base_weights_hash") for label, m in loaded.items()}
    if len(set(hashes.values())) > 1:
        raise UserError(f"these masks were learned on different base weights ({', '.join(f'{k}: {str(v)[:12]}' for k, v in hashes.items())}); overlap is meaningless")
    layouts = {label: [(t["name"], tuple(t["shape"])) for t in m.manifest["tensors"]] for label, m in loaded.items()}
    if len({tuple(v) for v in layouts.values()}) > 1:
        raise UserError("these masks cover different tensors or shapes; overlap needs masks of the same model and mask.include")
    labels = list(loaded)
    jaccard = {a: {} for a in labels}
    hamming = {a: {} for a in labels}
    for i, a in enumerate(labels):
        for b in labels[i:]:
            inter = union = differ = total = 0
            for name, mask_a in loaded[a].masks.items():
                mask_b = loaded[b].masks[name]
                inter += int((mask_a & mask_b).sum())
                union += int((mask_a | mask_b).sum())
                differ += int((mask_a ^ mask_b).sum())
                total += mask_a.numel()
            jaccard[a][b] = jaccard[b][a] = inter / union if union else 1.0
            hamming[a][b] = hamming[b][a] = differ / total
    return {"jaccard": jaccard, "hamming": hamming}


def matrix_table(matrix: dict[str, dict[str, float]], title: str) -> Table:
    table = Table(title=title)
    table.add_column("")
    short = {label: f"[{i}]" for i, label in enumerate(matrix)}
    for label in matrix:
        table.add_column(short[label], justify="right")
    for label, row in matrix.items():
        table.add_row(f"{short[label]} {label}", *(f"{row[other]:.3f}" for other in matrix))
    return table


def overlap_csv(result: dict[str, dict[str, dict[str, float]]]) -> str:
    return rundir.csv_text(["measure", "run_a", "run_b", "value"],
                           ([measure, a, b, f"{value:.6f}"] for measure, matrix in result.items() for a, row in matrix.items() for b, value in row.items()))


def overlap_plot(result: dict[str, dict[str, dict[str, float]]], path: Path) -> None:
    """Two heatmaps side by side: Jaccard of kept sets, Hamming distance."""
    plt = plots.pyplot()
    labels = list(result["jaccard"])
    size = 3.2 + 0.45 * len(labels)
    figure, axes = plt.subplots(1, 2, figsize=(2 * size, size), dpi=120)
    for axis, measure in zip(axes, ("jaccard", "hamming")):
        values = [[result[measure][a][b] for b in labels] for a in labels]
        image = axis.imshow(values, vmin=0.0, vmax=1.0, cmap="viridis")
        for i, row in enumerate(values):
            for j, value in enumerate(row):
                axis.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=7, color="white" if value < 0.6 else "black")
        axis.set_xticks(range(len(labels)), [f"[{i}]" for i in range(len(labels))])
        axis.set_yticks(range(len(labels)), [f"[{i}] {label}" for i, label in enumerate(labels)], fontsize=6)
        axis.set_title(measure)
        figure.colorbar(image, ax=axis, fraction=0.046)
    plots.save_png(figure, path)


# A group of weights a run's mask does not cover (its mask.include left it out): every weight kept,
# but by no choice of the method's, so not a share of 1 (nor "nan", as the table said, nor the plot's 0)
NOT_MASKED = "not masked"


def topology_table(results: dict[str, dict[str, dict[str, float]]], kind: str) -> Table:
    table = Table(title=f"share of weights kept per {kind}")
    table.add_column(kind)
    for label in results:
        # fold, not "…": the end of a label (sparsity, seed) is what tells two runs apart
        table.add_column(label, justify="right", overflow="fold")
    rows = list(dict.fromkeys(key for shares in results.values() for key in shares[kind]))
    for row in rows:
        table.add_row(row, *(f"{shares[kind][row]:.3f}" if row in shares[kind] else NOT_MASKED for shares in results.values()))
    return table


def topology_csv(results: dict[str, dict[str, dict[str, float]]]) -> str:
    return rundir.csv_text(["run", "kind", "group", "kept_share"],
                           ([label, kind, group, f"{value:.6f}"] for label, shares in results.items()
                            for kind, groups in shares.items() for group, value in groups.items()))


def topology_plot(results: dict[str, dict[str, dict[str, float]]], path: Path) -> None:
    """Fig. 3 style: kept share per component (left) and per layer (right), one series per run."""
    plt = plots.pyplot()
    figure, axes = plt.subplots(1, 2, figsize=(10, 3.6), dpi=120)
    for axis, kind in zip(axes, ("component", "layer")):
        groups = list(dict.fromkeys(key for shares in results.values() for key in shares[kind]))
        width = 0.8 / max(1, len(results))
        for i, (label, shares) in enumerate(results.items()):
            drawn = [g for g, group in enumerate(groups) if group in shares[kind]]  # no bar where the mask does not reach
            axis.bar([g + i * width for g in drawn], [shares[kind][groups[g]] for g in drawn], width=width, label=label)
        axis.set_xticks([g + 0.4 - width / 2 for g in range(len(groups))], groups, rotation=45, fontsize=7)
        axis.set_ylabel("share kept")
        axis.set_title(kind)
    axes[0].legend(fontsize=6)
    plots.save_png(figure, path)


@dataclass(frozen=True)
class RecoveryRow:
    label: str
    task: str
    seed: int
    sparsity_requested: float
    sparsity: float
    no_recovery: bool
    recovered_share: float | None
    metric: str
    value: float


def recovery(run_dirs: list[Path]) -> list[RecoveryRow]:
    """Connection recovery (paper §4.3) from finished adapt-by-pruning runs: the share of kept
    weights that were pruned at some step and came back, and whether recovery was allowed."""
    rows = []
    for run_dir in run_dirs:
        rundir.require_run_dir(run_dir)
        metrics = rundir.load_run_record(run_dir, needs=("algorithm", "seed"))
        cfg = rundir.load_config(run_dir)
        if metrics["algorithm"] != "adapt_by_pruning":
            raise UserError(f"{run_dir} is a run of {metrics['algorithm']}; connection recovery exists only in adapt_by_pruning's recipes")
        share = (metrics.get("method_details") or {}).get("recovered_share")
        if share is not None and not rundir.is_kind(share, rundir.NUMBER):
            raise UserError(f"{run_dir / rundir.METRICS} has 'recovered_share': {share!r} under 'method_details', not {rundir.NUMBER}; it was edited")
        no_recovery = bool(cfg.method.get("no_recovery", False))
        rows.append(RecoveryRow(
            label=run_label(metrics) + ("" if not no_recovery or "no_recovery" in metrics["method"] else " (no_recovery)"),
            task=metrics["task"], seed=metrics["seed"], sparsity_requested=float(metrics["sparsity_requested"]),
            sparsity=float(metrics["sparsity_realized"]), no_recovery=no_recovery, recovered_share=share,
            metric=metrics["main_metric"], value=float(metrics["main_metric_value"]),
        ))
    return [replace(row, label=label) for row, label in zip(rows, distinct_labels(run_dirs, [row.label for row in rows]))]


def recovery_table(rows: list[RecoveryRow]) -> Table:
    """Per run; for a no_recovery run, its score minus the run with recovery on the same task,
    requested sparsity and seed (the paper's Table 4 delta), where that run is given too."""
    table = Table(title=f"connection recovery ({', '.join(sorted({r.metric for r in rows}))})")
    for column in ("run", "sparsity", "recovery allowed", "recovered share", "score", "no_recovery effect"):
        table.add_column(column, justify="left" if column == "run" else "right", overflow="fold")
    with_recovery = {(r.task, r.sparsity_requested, r.seed): r.value for r in rows if not r.no_recovery}
    for r in rows:
        reference = with_recovery.get((r.task, r.sparsity_requested, r.seed))
        effect = f"{r.value - reference:+.4f}" if r.no_recovery and reference is not None else ""
        share = "" if r.recovered_share is None else f"{r.recovered_share:.4f}"
        table.add_row(r.label, f"{r.sparsity:.4f}", "no" if r.no_recovery else "yes", share, f"{r.value:.4f}", effect)
    return table


def recovery_csv(rows: list[RecoveryRow]) -> str:
    return rundir.csv_text(["run", "sparsity", "recovery_allowed", "recovered_share", "metric", "value"],
                           ([r.label, f"{r.sparsity:.6f}", not r.no_recovery, "" if r.recovered_share is None else f"{r.recovered_share:.6f}",
                             r.metric, f"{r.value:.6f}"] for r in rows))
