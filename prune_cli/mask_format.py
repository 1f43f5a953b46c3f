"""The task-mask file: under one bit per maskable weight, plus a manifest tying it to its base model.

Stored as safetensors (no pickle, readable from any language): each maskable tensor becomes a
uint8 tensor holding its `numpy.packbits` bits (little bit order, row-major), compressed with
LZMA (format v2): a 90%-sparse mask carries about 0.47 bits of information per weight, and LZMA
on the packed bits gets there, where plain bits cost 1. Version-1 files (uncompressed bits) are
still read. The manifest is JSON in the file's metadata. The manifest carries the base model's identity and the
hash of its weights, because a mask is only meaningful on the exact weights it was learned on;
`load_mask` refuses anything else.
"""

from __future__ import annotations

import json
import lzma
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.numpy import load_file as load_numpy
from safetensors.numpy import save as save_numpy

from prune_cli.errors import UserError, first_line
from prune_cli.rundir import atomic_write_bytes

FORMAT = "prune-cli-mask"
VERSION = 2
ENCODINGS = ("packbits", "packbits+lzma")  # v1 files have no `encoding` field: plain packbits
LZMA_PRESET = 6  # preset 9 saves under 1% more on real masks and takes twice as long


@dataclass(frozen=True)
class LoadedMask:
    masks: dict[str, torch.Tensor]
    manifest: dict[str, Any]


def pack(mask: torch.Tensor) -> np.ndarray:
    return np.packbits(mask.detach().to("cpu", torch.bool).numpy().reshape(-1), bitorder="little")


def unpack(packed: np.ndarray, shape: tuple[int, ...]) -> torch.Tensor:
    count = int(np.prod(shape)) if shape else 1
    if packed.size != (count + 7) // 8:
        raise ValueError(f"{packed.size} bytes of bits for a tensor of {count} weights")
    bits = np.unpackbits(packed, count=count, bitorder="little").astype(bool)
    return torch.from_numpy(bits.reshape(shape))


def pack_masks(masks: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Masks held aside at one bit per weight, on the host (uint8 tensors of `pack`'s bits), where
    a boolean tensor costs a byte: imp keeps every earlier round's mask to the run's end, and in
    each checkpoint (BERT-base to s = 0.9: ten masks of 109M weights, 1.09 GB as bytes on the run's
    device, 136 MB packed), and the task bank keeps one per loaded task. Tensors, not arrays, so a
    checkpoint loads them with `weights_only=True`. Already packed ones (uint8) pass as they are."""
    return {n: m if m.dtype == torch.uint8 else torch.from_numpy(pack(m)) for n, m in masks.items()}


def unpack_masks(bits: Mapping[str, torch.Tensor], shapes: Mapping[str, tuple[int, ...]]) -> dict[str, torch.Tensor]:
    """`pack_masks` undone: boolean masks on the CPU in the given shapes. (An imp checkpoint written
    before earlier rounds were packed holds boolean ones: imp packs them as it resumes.)"""
    return {n: unpack(b.numpy(), tuple(shapes[n])) for n, b in bits.items()}


def encode(mask: torch.Tensor, encoding: str = "packbits+lzma") -> np.ndarray:
    packed = pack(mask)
    if encoding == "packbits":
        return packed
    return np.frombuffer(lzma.compress(packed.tobytes(), format=lzma.FORMAT_XZ, preset=LZMA_PRESET), dtype=np.uint8)


def decode(stored: np.ndarray, shape: tuple[int, ...], encoding: str) -> torch.Tensor:
    if encoding == "packbits+lzma":
        stored = np.frombuffer(lzma.decompress(stored.tobytes()), dtype=np.uint8)
    return unpack(stored, shape)


def save_mask(path: Path, masks: Mapping[str, torch.Tensor], info: Mapping[str, Any], encoding: str = "packbits+lzma") -> None:
    """Write masks and a manifest (`info` adds base identity, task, method, sparsities)."""
    tensors = {name: encode(m, encoding) for name, m in masks.items()}
    manifest = {
        "format": FORMAT,
        "format_version": VERSION,
        "encoding": encoding,
        "bit_order": "little",
        "tensors": [{"name": n, "shape": list(m.shape), "kept": int(m.sum())} for n, m in masks.items()],
        **info,
    }
    atomic_write_bytes(path, save_numpy(tensors, metadata={"manifest": json.dumps(manifest)}))


def read_manifest(path: Path) -> dict[str, Any]:
    from safetensors import safe_open

    if not Path(path).is_file():  # said to be "truncated or corrupt", where nothing is there
        raise UserError(f"{path} {'is a folder, not a mask file' if Path(path).is_dir() else 'does not exist'}")
    try:
        with safe_open(str(path), framework="numpy") as handle:
            metadata = handle.metadata() or {}
    except (SafetensorError, OSError, ValueError) as exc:
        raise UserError(f"{path} is not a readable mask file ({first_line(exc)}); it may be truncated or corrupt") from None
    try:
        manifest = json.loads(metadata["manifest"])
    except (KeyError, json.JSONDecodeError):
        manifest = None
    if not isinstance(manifest, dict):  # no manifest, or JSON that is not an object
        raise UserError(f"{path} has no prune-cli manifest; it is not a prune-cli mask file")
    if manifest.get("format") != FORMAT:
        raise UserError(f"{path} is not a prune-cli mask file (format {manifest.get('format')!r})")
    if (problem := manifest_problem(manifest)) is not None:
        raise UserError(f"{path} has a malformed manifest ({problem}); it was edited or is corrupt")
    if manifest.get("format_version", 0) > VERSION:
        raise UserError(f"{path} uses mask format v{manifest['format_version']}; this prune-cli reads up to v{VERSION}, upgrade it")
    if manifest.setdefault("encoding", "packbits") not in ENCODINGS:
        raise UserError(f"{path} has mask encoding {manifest['encoding']!r}; this prune-cli reads {', '.join(ENCODINGS)}")
    return manifest


def manifest_problem(manifest: Mapping[str, Any]) -> str | None:
    """What in a manifest's fields the readers could not use (they read each tensor's name, shape
    and kept count, and compare the version), or None where nothing is wrong."""
    version = manifest.get("format_version", 0)
    if not isinstance(version, int):
        return f"format_version {version!r} is not a whole number"
    tensors = manifest.get("tensors")
    if not isinstance(tensors, list):
        return "no list of tensors"
    for entry in tensors:
        fields_ok = isinstance(entry, dict) and isinstance(entry.get("name"), str) and isinstance(entry.get("kept"), int)
        shape = entry.get("shape") if isinstance(entry, dict) else None
        if not (fields_ok and isinstance(shape, list) and all(isinstance(n, int) and n >= 0 for n in shape)):
            return f"tensor entry {json.dumps(entry)[:60]} lacks a name, a shape or a kept count"
    return None


def manifest_sparsity(manifest: Mapping[str, Any]) -> float:
    """The pruned share of a mask file, from its manifest's per-tensor counts (no bits read)."""
    total = sum(int(np.prod(t["shape"])) for t in manifest["tensors"])
    return 1.0 - sum(int(t["kept"]) for t in manifest["tensors"]) / max(total, 1)


def _unpacked(path: Path, manifest: dict[str, Any]) -> dict[str, torch.Tensor]:
    try:
        stored = load_numpy(str(path))
        return {t["name"]: decode(stored[t["name"]], tuple(t["shape"]), manifest["encoding"]) for t in manifest["tensors"]}
    except (SafetensorError, OSError, ValueError, KeyError, lzma.LZMAError) as exc:
        raise UserError(f"{path} cannot be read ({first_line(exc)}); it may be truncated or corrupt") from None


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

