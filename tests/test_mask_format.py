"""Mask files: bit-exact round trip, one bit per weight, and refusal of the wrong base or a corrupt file."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

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
    assert loaded.manifest["task"] == "sst2" and loaded.manifest["format_version"] == 1


def test_file_costs_about_one_bit_per_weight(tmp_path: Path):
    big = {"w": torch.rand(512, 512) > 0.5}
    mask_format.save_mask(tmp_path / "m.safetensors", big, {"base_weights_hash": "h"})
    payload_bits = (tmp_path / "m.safetensors").stat().st_size * 8
    assert payload_bits / big["w"].numel() < 1.05


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


def test_file_without_manifest_is_refused(tmp_path: Path):
    from safetensors.torch import save_file

    save_file({"x": torch.zeros(2)}, str(tmp_path / "plain.safetensors"))
    with pytest.raises(UserError, match="not a prune-cli mask file"):
        mask_format.load_mask(tmp_path / "plain.safetensors", SHAPES, "abc123")
