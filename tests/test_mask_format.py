"""Mask files: bit-exact round trip, one bit per weight, and refusal of the wrong base or a corrupt file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.numpy import load_file, save_file

from prune_cli import mask_format
from prune_cli.errors import UserError

SHAPES = {"embeddings.word_embeddings.weight": (101, 16), "encoder.layer.0.attention.self.query.weight": (16, 16)}


def random_masks(seed: int = 0) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return {n: torch.rand(s, generator=generator) > 0.37 for n, s in SHAPES.items()}


def save(path: Path, masks: dict[str, torch.Tensor], base_hash: str = "abc123") -> None:
    mask_format.save_mask(path, masks, {"base_model": "tiny", "base_weights_hash": base_hash, "task": "sst2"})


def test_round_trip_is_bit_exact(tmp_path: Path):
    masks = random_masks()
    save(tmp_path / "mask.safetensors", masks)
    loaded = mask_format.load_mask(tmp_path / "mask.safetensors", SHAPES, "abc123")
    assert list(loaded.masks) == list(masks)
    for name in masks:
        assert torch.equal(loaded.masks[name], masks[name])
    assert loaded.manifest["tensors"][0] == {"name": "embeddings.word_embeddings.weight", "shape": [101, 16], "kept": int(masks["embeddings.word_embeddings.weight"].sum())}
    assert loaded.manifest["task"] == "sst2" and loaded.manifest["format_version"] == 2


@pytest.mark.parametrize(("kept", "most_bits"), [(0.5, 1.05), (0.1, 0.55), (0.01, 0.12)])
def test_file_size_follows_the_masks_entropy(tmp_path: Path, kept: float, most_bits: float):
    """About one bit per weight at s=0.5, well under one at high sparsity (entropy: 1, 0.47, 0.08)."""
    big = {"w": torch.rand(1024, 1024, generator=torch.Generator().manual_seed(0)) < kept}
    mask_format.save_mask(tmp_path / "m.safetensors", big, {"base_weights_hash": "h"})
    bits = (tmp_path / "m.safetensors").stat().st_size * 8 / big["w"].numel()
    assert bits < most_bits


def test_version_1_files_are_still_read(tmp_path: Path):
    masks = random_masks()
    mask_format.save_mask(tmp_path / "v1.safetensors", masks, {"base_weights_hash": "abc123"}, encoding="packbits")
    loaded = mask_format.load_mask(tmp_path / "v1.safetensors", SHAPES, "abc123")
    assert all(torch.equal(loaded.masks[n], masks[n]) for n in masks)


def test_a_tensor_with_the_wrong_number_of_bits_is_refused(tmp_path: Path):
    path = tmp_path / "mask.safetensors"
    save(path, random_masks())
    manifest = mask_format.read_manifest(path)
    manifest["tensors"][1]["shape"] = [16, 17]  # claims more weights than the bits stored
    save_file(load_file(str(path)), str(path), metadata={"manifest": json.dumps(manifest)})
    with pytest.raises(UserError, match="truncated or corrupt"):
        mask_format.read_mask(path)


def test_wrong_base_hash_is_refused(tmp_path: Path):
    save(tmp_path / "mask.safetensors", random_masks())
    with pytest.raises(UserError, match="was learned on base weights abc123"):
        mask_format.load_mask(tmp_path / "mask.safetensors", SHAPES, "other-hash")


def test_wrong_shapes_are_refused(tmp_path: Path):
    save(tmp_path / "mask.safetensors", random_masks())
    with pytest.raises(UserError, match="other names/shapes"):
        mask_format.load_mask(tmp_path / "mask.safetensors", {**SHAPES, "encoder.layer.0.attention.self.query.weight": (16, 8)}, "abc123")


@pytest.mark.parametrize("keep_bytes", [0, 7, 200])
def test_truncated_file_is_a_clear_error(tmp_path: Path, keep_bytes: int):
    path = tmp_path / "mask.safetensors"
    save(path, random_masks())
    path.write_bytes(path.read_bytes()[:keep_bytes])
    with pytest.raises(UserError, match="truncated or corrupt"):
        mask_format.load_mask(path, SHAPES, "abc123")


def test_a_missing_mask_file_is_said_to_be_missing(tmp_path: Path):
    """It was "not a readable mask file (No such file or directory ...); it may be truncated or corrupt"."""
    with pytest.raises(UserError, match=r"mask.safetensors does not exist$"):
        mask_format.read_mask(tmp_path / "mask.safetensors")
    with pytest.raises(UserError, match=r"is a folder, not a mask file$"):
        mask_format.read_manifest(tmp_path)


def test_file_without_manifest_is_refused(tmp_path: Path):
    from safetensors.torch import save_file

    save_file({"x": torch.zeros(2)}, str(tmp_path / "plain.safetensors"))
    with pytest.raises(UserError, match="not a prune-cli mask file"):
        mask_format.load_mask(tmp_path / "plain.safetensors", SHAPES, "abc123")
