"""The task-mask file: one bit per maskable weight, plus a manifest that ties it to its base model.

Stored as safetensors (no pickle, memory-mappable, readable from any language): each maskable
tensor becomes a uint8 tensor of `numpy.packbits` bits (little bit order, row-major), and the
manifest is JSON in the file's metadata. The manifest carries the base model's identity and the
hash of its weights, because a mask is only meaningful on the exact weights it was learned on;
`load_mask` refuses anything else.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.numpy import load_file as load_numpy
from safetensors.numpy import save as save_numpy

from prune_cli.errors import UserError
from prune_cli.rundir import atomic_write_bytes

FORMAT = "prune-cli-mask"
VERSION = 1


@dataclass(frozen=True)
class LoadedMask:
    masks: dict[str, torch.Tensor]
    manifest: dict[str, Any]


def pack(mask: torch.Tensor) -> np.ndarray:
    return np.packbits(mask.detach().to("cpu", torch.bool).numpy().reshape(-1), bitorder="little")


def unpack(packed: np.ndarray, shape: tuple[int, ...]) -> torch.Tensor:
    count = int(np.prod(shape)) if shape else 1
    bits = np.unpackbits(packed, count=count, bitorder="little").astype(bool)
    return torch.from_numpy(bits.reshape(shape))


def save_mask(path: Path, masks: Mapping[str, torch.Tensor], info: Mapping[str, Any]) -> None:
    """Write masks and a manifest (`info` adds base identity, task, method, sparsities)."""
    tensors = {name: pack(m) for name, m in masks.items()}
    manifest = {
        "format": FORMAT,
        "format_version": VERSION,
        "bit_order": "little",
        "tensors": [{"name": n, "shape": list(m.shape), "kept": int(m.sum())} for n, m in masks.items()],
        **info,
    }
    atomic_write_bytes(path, save_numpy(tensors, metadata={"manifest": json.dumps(manifest)}))


def read_manifest(path: Path) -> dict[str, Any]:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="numpy") as handle:
            metadata = handle.metadata() or {}
    except (SafetensorError, OSError, ValueError) as exc:
        raise UserError(f"{path} is not a readable mask file ({_reason(exc)}); it may be truncated or corrupt") from None
    try:
        manifest = json.loads(metadata["manifest"])
    except (KeyError, json.JSONDecodeError):
        raise UserError(f"{path} has no prune-cli manifest; it is not a prune-cli mask file") from None
    if manifest.get("format") != FORMAT:
        raise UserError(f"{path} is not a prune-cli mask file (format {manifest.get('format')!r})")
    if manifest.get("format_version", 0) > VERSION:
        raise UserError(f"{path} uses mask format v{manifest['format_version']}; this prune-cli reads up to v{VERSION}, upgrade it")
    return manifest


def _unpacked(path: Path, manifest: dict[str, Any]) -> dict[str, torch.Tensor]:
    try:
        packed = load_numpy(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise UserError(f"{path} cannot be read ({_reason(exc)}); it may be truncated or corrupt") from None
    return {t["name"]: unpack(packed[t["name"]], tuple(t["shape"])) for t in manifest["tensors"]}


def read_mask(path: Path) -> LoadedMask:
    """Read a mask on its own (analysis): format checked, no base model to check it against."""
    manifest = read_manifest(path)
    return LoadedMask(masks=_unpacked(path, manifest), manifest=manifest)


def load_mask(path: Path, expected_shapes: Mapping[str, tuple[int, ...]], base_hash: str) -> LoadedMask:
    """Read a mask, refusing one made for other weights or other tensor shapes."""
    if not path.is_file():
        raise UserError(f"no mask file at {path}")
    manifest = read_manifest(path)
    if manifest.get("base_weights_hash") != base_hash:
        raise UserError(
            f"{path} was learned on base weights {str(manifest.get('base_weights_hash'))[:12]}… "
            f"({manifest.get('base_model')}), but the model loaded has {base_hash[:12]}…; "
            "load the base model the mask was made for"
        )
    shapes = {t["name"]: tuple(t["shape"]) for t in manifest["tensors"]}
    if shapes != {n: tuple(s) for n, s in expected_shapes.items()}:
        raise UserError(f"{path} masks tensors {sorted(shapes)[:3]}… with other names/shapes than this model's maskable weights")
    return LoadedMask(masks=_unpacked(path, manifest), manifest=manifest)


def _reason(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
