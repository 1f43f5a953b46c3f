"""What the masks are (paper §4.2, Fig. 3): the share of surviving weights per component and layer.

Works from mask files alone (no model needed): names and shapes come from the manifest.
"""

from __future__ import annotations

import io
import re
from pathlib import Path

import torch
from rich.table import Table

from prune_cli import mask_format, rundir
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
    return f"{manifest.get('task')}/{manifest.get('method')}/s{manifest.get('sparsity_requested')}/seed{manifest.get('seed')}"


def topology(run_dirs: list[Path]) -> dict[str, dict[str, dict[str, float]]]:
    """Kept shares for each run dir's mask, keyed by a readable run label."""
    results = {}
    for run_dir in run_dirs:
        path = run_dir / rundir.MASK
        if not path.is_file():
            raise UserError(f"{run_dir} has no {rundir.MASK} (dense methods have no mask to analyse)")
        loaded = mask_format.read_mask(path)
        label = run_label(loaded.manifest)
        results[label if label not in results else f"{label} ({run_dir.name})"] = kept_shares(loaded.masks)
    return results


def topology_table(results: dict[str, dict[str, dict[str, float]]], kind: str) -> Table:
    table = Table(title=f"share of weights kept per {kind}")
    table.add_column(kind)
    for label in results:
        table.add_column(label, justify="right")
    rows = list(dict.fromkeys(key for shares in results.values() for key in shares[kind]))
    for row in rows:
        table.add_row(row, *(f"{shares[kind].get(row, float('nan')):.3f}" for shares in results.values()))
    return table


def topology_csv(results: dict[str, dict[str, dict[str, float]]]) -> str:
    lines = ["run,kind,group,kept_share"]
    for label, shares in results.items():
        for kind, groups in shares.items():
            lines += [f"{label},{kind},{group},{value:.6f}" for group, value in groups.items()]
    return "\n".join(lines) + "\n"


def topology_plot(results: dict[str, dict[str, dict[str, float]]], path: Path) -> None:
    """Fig. 3 style: kept share per component (left) and per layer (right), one series per run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(10, 3.6), dpi=120)
    for axis, kind in zip(axes, ("component", "layer")):
        groups = list(dict.fromkeys(key for shares in results.values() for key in shares[kind]))
        width = 0.8 / max(1, len(results))
        for i, (label, shares) in enumerate(results.items()):
            xs = [g + i * width for g in range(len(groups))]
            axis.bar(xs, [shares[kind].get(g, 0.0) for g in groups], width=width, label=label)
        axis.set_xticks([g + 0.4 - width / 2 for g in range(len(groups))], groups, rotation=45, fontsize=7)
        axis.set_ylabel("share kept")
        axis.set_title(kind)
    axes[0].legend(fontsize=6)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    plt.close(figure)
    rundir.atomic_write_bytes(path, buffer.getvalue())
