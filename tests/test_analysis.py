"""`prune-cli analyze topology`: kept shares per component and layer, from mask files alone."""

from __future__ import annotations

from pathlib import Path

import torch
from conftest import only_run_dir, run_cli, tiny_overrides

from prune_cli import analysis, mask_format


def test_components_and_layers_are_named_from_parameter_names():
    assert analysis.component_of("embeddings.word_embeddings.weight") == "embed"
    assert analysis.component_of("encoder.layer.3.attention.self.key.weight") == "key"
    assert analysis.component_of("encoder.layer.3.attention.output.dense.weight") == "attn_out"
    assert analysis.component_of("encoder.layer.3.intermediate.dense.weight") == "ffn_in"
    assert analysis.component_of("encoder.layer.3.output.dense.weight") == "ffn_out"
    assert analysis.layer_of("encoder.layer.11.output.dense.weight") == "L11"
    assert analysis.layer_of("embeddings.position_embeddings.weight") == "embed"


def test_kept_shares_are_weighted_counts():
    masks = {
        "encoder.layer.0.attention.self.query.weight": torch.tensor([[1, 0], [0, 0]], dtype=torch.bool),
        "encoder.layer.1.attention.self.query.weight": torch.ones(2, 2, dtype=torch.bool),
        "encoder.layer.1.intermediate.dense.weight": torch.zeros(4, 2, dtype=torch.bool),
    }
    shares = analysis.kept_shares(masks)
    assert shares["component"] == {"query": 5 / 8, "ffn_in": 0.0}
    assert shares["layer"] == {"L0": 0.25, "L1": 4 / 12}


def test_analyze_topology_on_two_runs(in_tmp: Path, tiny_model_dir: Path):
    for method in ("adapt_by_pruning", "magnitude"):
        assert run_cli("adapt", "--method", method, "--sparsity", "0.7", *tiny_overrides(tiny_model_dir)).exit_code == 0
    runs = sorted(p.parent for p in (in_tmp / "outputs").rglob(".hydra"))
    result = run_cli("analyze", "topology", *map(str, runs), "--out", str(in_tmp))
    assert result.exit_code == 0, result.output
    assert "attn_out" in result.output and "L1" in result.output
    rows = (in_tmp / "topology.csv").read_text().splitlines()
    assert rows[0] == "run,kind,group,kept_share" and len(rows) > 10
    assert (in_tmp / "topology.png").read_bytes()[:4] == b"\x89PNG"
    # the per-component shares average (by weight count) back to the realized sparsity
    loaded = mask_format.read_mask(runs[0] / "mask.safetensors")
    kept = sum(int(m.sum()) for m in loaded.masks.values()) / sum(m.numel() for m in loaded.masks.values())
    assert abs(kept - (1 - loaded.manifest["sparsity_realized"])) < 1e-9


def test_analyze_a_run_without_mask_is_a_clear_error(in_tmp: Path, tiny_model_dir: Path):
    assert run_cli("adapt", "--method", "feature_extraction", "--sparsity", "0", *tiny_overrides(tiny_model_dir)).exit_code == 0
    result = run_cli("analyze", "topology", str(only_run_dir(in_tmp / "outputs")))
    assert result.exit_code == 2 and "has no mask.safetensors" in result.output
