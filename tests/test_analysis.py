"""`prune-cli analyze topology`: kept shares per component and layer, from mask files alone."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import SCRIPTS, forget_digests, only_run_dir, run_cli, tiny_overrides
from safetensors.torch import load_file, save_file

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


def test_a_group_a_mask_does_not_cover_is_said_so_not_drawn_as_pruned(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Two runs, one masking the FFN input matrices only (mask.include): the table showed "nan" for
    the groups that run never masked, and the plot a bar at 0, as if every weight there were pruned."""
    from rich.console import Console

    from prune_cli import plots

    everything = {"component": {"ffn_in": 0.5, "query": 0.25}, "layer": {"L0": 0.4}}
    ffn_only = {"component": {"ffn_in": 0.5}, "layer": {"L0": 0.5}}
    results = {"all": everything, "ffn": ffn_only}
    console = Console(width=120, record=True)
    console.print(analysis.topology_table(results, "component"))
    query_row = next(line for line in console.export_text().splitlines() if "query" in line)
    assert [cell.strip() for cell in query_row.split("│")[1:-1]] == ["query", "0.250", analysis.NOT_MASKED]
    drawn = {}
    monkeypatch.setattr(plots, "save_png", lambda figure, path: drawn.update(
        {axis.get_title(): sorted(round(bar.get_height(), 3) for bar in axis.patches) for axis in figure.axes}))
    analysis.topology_plot(results, tmp_path / "topology.png")
    assert drawn == {"component": [0.25, 0.5, 0.5], "layer": [0.4, 0.5]}, "three bars, none at 0 for the unmasked query"


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
    run = only_run_dir(in_tmp / "outputs")
    for args in (["topology", str(run)], ["sensitivity", str(run), "--steps", "2"]):
        result = run_cli("analyze", *args)
        assert result.exit_code == 2 and "is a run of feature_extraction, a dense reference with no mask" in result.output
        assert "finished run below it" not in result.output  # not pointed at itself as a run below it
    result = run_cli("analyze", "recovery", str(run))  # a name read in a sentence: "a run of imp", never "a imp run"
    assert result.exit_code == 2 and "is a run of feature_extraction; connection recovery exists only in adapt_by_pruning's" in result.output
    result = run_cli("analyze", "topology", str(in_tmp / "outputs"))
    assert result.exit_code == 2 and "has no mask.safetensors: it is not a finished run directory" in result.output
    assert "holds 1 finished run below it" in " ".join(result.output.split())
    # a pruning run whose mask was deleted is not called a dense reference
    assert run_cli("adapt", "--method", "random", *tiny_overrides(tiny_model_dir)).exit_code == 0
    pruned = next(p.parent for p in (in_tmp / "outputs" / "sst2" / "random").rglob("mask.safetensors"))
    (pruned / "mask.safetensors").unlink()
    result = run_cli("analyze", "topology", str(pruned))
    assert result.exit_code == 2 and "is a finished random run, but its mask.safetensors is missing" in " ".join(result.output.split())


def _two_runs(in_tmp: Path, tiny_model_dir: Path, *extra: str) -> list[Path]:
    for method in ("adapt_by_pruning", "magnitude"):
        assert run_cli("adapt", "--method", method, "--sparsity", "0.7", *extra, *tiny_overrides(tiny_model_dir, steps=10)).exit_code == 0
    return sorted(p.parent for p in (in_tmp / "outputs").rglob(".hydra"))


def test_overlap_of_a_mask_with_itself_is_one_and_symmetric(in_tmp: Path, tiny_model_dir: Path):
    runs = _two_runs(in_tmp, tiny_model_dir)
    result = analysis.overlap(runs)
    labels = list(result["jaccard"])
    assert result["jaccard"][labels[0]][labels[0]] == 1.0 and result["hamming"][labels[0]][labels[0]] == 0.0
    assert result["jaccard"][labels[0]][labels[1]] == result["jaccard"][labels[1]][labels[0]] < 1.0
    # Hamming from the counts: two masks with the same number kept, overlap J: differ = 2k(1-J)/(1+J)
    masks = [mask_format.read_mask(r / "mask.safetensors").masks for r in runs]
    differ = sum(int((masks[0][n] ^ masks[1][n]).sum()) for n in masks[0])
    total = sum(m.numel() for m in masks[0].values())
    assert abs(result["hamming"][labels[0]][labels[1]] - differ / total) < 1e-12


def test_analyze_overlap_writes_matrix_and_heatmap(in_tmp: Path, tiny_model_dir: Path):
    runs = _two_runs(in_tmp, tiny_model_dir)
    result = run_cli("analyze", "overlap", *map(str, runs), "--out", str(in_tmp))
    assert result.exit_code == 0, result.output
    assert "Jaccard" in result.output and "Hamming" in result.output
    assert (in_tmp / "overlap.csv").read_text().startswith("measure,run_a,run_b,value")
    assert (in_tmp / "overlap.png").read_bytes()[:4] == b"\x89PNG"


def test_overlap_refuses_masks_of_different_base_models(in_tmp: Path, tiny_model_dir: Path):
    runs = _two_runs(in_tmp, tiny_model_dir)
    path = runs[1] / "mask.safetensors"
    loaded = mask_format.read_mask(path)
    mask_format.save_mask(path, loaded.masks, {**loaded.manifest, "base_weights_hash": "elsewhere"})
    forget_digests(runs[1])  # as a run from before digests: the manifests' own comparison is what this reaches
    result = run_cli("analyze", "overlap", *map(str, runs))
    assert result.exit_code == 2 and "different base weights" in result.output


def test_shuffle_keeps_every_tensors_count_but_moves_weights():
    from prune_cli.sensitivity import shuffled

    generator = torch.Generator().manual_seed(0)
    masks = {"a": torch.rand(40, 30, generator=generator) > 0.7, "b": torch.rand(64, 8, generator=generator) > 0.2}
    out = shuffled(masks, torch.Generator().manual_seed(1))
    for name, mask in masks.items():
        assert out[name].shape == mask.shape and int(out[name].sum()) == int(mask.sum())
        assert not torch.equal(out[name], mask)


def test_rescaled_weights_follow_n_1_sigma():
    from prune_cli.sensitivity import rescaled

    base = {"w": torch.full((200, 200), 2.0)}
    ratio = rescaled(base, 0.01, torch.Generator().manual_seed(0))["w"] / 2.0
    assert abs(float(ratio.mean()) - 1.0) < 1e-3 and abs(float(ratio.std()) - 0.01) < 1e-3


def test_analyze_sensitivity_reports_every_variant(in_tmp: Path, tiny_model_dir: Path):
    runs = _two_runs(in_tmp, tiny_model_dir)
    result = run_cli("analyze", "sensitivity", str(runs[0]), "--steps", "4", "--out", str(in_tmp))
    assert result.exit_code == 0, result.output
    rows = (in_tmp / "sensitivity.csv").read_text().splitlines()
    assert rows[0] == "run,variant,metric,value,steps"
    assert [r.split(",")[1] for r in rows[1:]] == ["the run itself", "original mask", "shuffled mask", "re-init (sigma=0.01)"]
    assert (in_tmp / "sensitivity.png").read_bytes()[:4] == b"\x89PNG"


def test_analyze_recovery_pairs_the_no_recovery_ablation(in_tmp: Path, tiny_model_dir: Path):
    # the paper's ablation is of Alg. 1's recipe (no recovery cannot hold s, which today's default does)
    common = ["--sparsity", "0.7", "method=adapt_by_pruning_stop_at_s", *tiny_overrides(tiny_model_dir, steps=10)]
    assert run_cli("adapt", *common).exit_code == 0
    assert run_cli("adapt", "method.no_recovery=true", "method.name=abp_no_recovery", *common).exit_code == 0
    runs = sorted(p.parent for p in (in_tmp / "outputs").rglob(".hydra"))
    result = run_cli("analyze", "recovery", *map(str, runs), "--out", str(in_tmp))
    assert result.exit_code == 0, result.output
    rows = (in_tmp / "recovery.csv").read_text().splitlines()[1:]
    paired = analysis.recovery_table(analysis.recovery(runs))
    assert any(cell.strip() for cell in paired.columns[-1]._cells), "the no_recovery run is paired with its reference"
    allowed = {r.split(",")[2] for r in rows}
    assert allowed == {"True", "False"}
    for row in rows:
        if row.split(",")[2] == "False":
            assert float(row.split(",")[3]) == 0.0, "no_recovery must never let a pruned weight back"


def test_tables_keep_whole_run_labels_in_a_narrow_terminal(tmp_path: Path):
    """Rich cuts a cell that does not fit with "…"; the end of a run's label (its sparsity and
    seed, or a report's tag) is what tells runs apart, so the tables fold it onto a second line."""
    from rich.console import Console

    from prune_cli import report
    from test_report import partial_sweep

    labels = [f"sst2/adapt_by_pruning/s0.{level}/seed{seed}" for level in (5, 7) for seed in (11, 12)]
    shares = {label: {"component": {"embed": 0.5, "query": 0.5}} for label in labels}
    partial_sweep(tmp_path)
    groups, _, _ = report.build(tmp_path)
    for table in (analysis.topology_table(shares, "component"), report.rich_table(groups)):
        console = Console(width=60, record=True)
        console.print(table)
        assert "…" not in console.export_text()


def test_runs_that_share_a_label_are_told_apart_by_folder_then_path():
    a1, a2, b1 = Path("sweep1/2026-01-01_00-00-00"), Path("sweep2/2026-01-01_00-00-00"), Path("sweep1/2026-01-01_00-00-09")
    assert analysis.distinct_labels([a1, b1], ["x", "y"]) == ["x", "y"]
    assert analysis.distinct_labels([a1, b1], ["x", "x"]) == ["x (2026-01-01_00-00-00)", "x (2026-01-01_00-00-09)"]
    # the same folder name in two sweeps (started in the same second): the whole path
    assert analysis.distinct_labels([a1, a2, b1], ["x", "x", "x"]) == [f"x ({a1})", f"x ({a2})", "x (2026-01-01_00-00-09)"]


def test_a_run_given_twice_is_refused(in_tmp: Path, tiny_model_dir: Path):
    runs = _two_runs(in_tmp, tiny_model_dir)
    for command in ("topology", "overlap", "sensitivity"):
        result = run_cli("analyze", command, str(runs[0]), str(runs[1]), str(runs[0].relative_to(in_tmp)))
        assert result.exit_code == 2 and "is given twice (also as " in result.output and "give each run once" in result.output


def test_topology_and_overlap_read_imps_earlier_rounds_from_their_files(in_tmp: Path, tiny_model_dir: Path):
    """imp writes each earlier round's mask for the rounds to be looked at, and no command read them
    (a file given was refused as "not a directory"). Given as files, each round is labelled with its
    level and round, and the rounds nest as IMP's rounds must: each keeps 80% of the weights the one
    before kept, all of them among those (Jaccard 0.8 between neighbours). Without --out the
    analysis goes into the run, not its masks/ folder. A run's mask given as a file is checked as
    the run is, and a round's file against the digest the run's record keeps of it; one mask given twice (as the run and as its file), or a file that is no mask, is
    refused in one line. scripts/mask_size.py takes them as well."""
    assert run_cli("adapt", "--method", "imp", "--sparsity", "0.5", *tiny_overrides(tiny_model_dir, "method.round_steps=2")).exit_code == 0
    run = only_run_dir(in_tmp / "outputs")
    rounds = sorted((run / "masks").glob("*.safetensors"))
    result = run_cli("analyze", "overlap", *map(str, rounds), str(run))
    assert result.exit_code == 0, result.output
    assert not list((run / "masks").glob("overlap.*")) and (run / "overlap.png").is_file()
    with (run / "overlap.csv").open() as handle:
        jaccard = {(row["run_a"], row["run_b"]): float(row["value"]) for row in csv.DictReader(handle) if row["measure"] == "jaccard"}
    labels = ["sst2/imp/s0.2/seed42/round1", "sst2/imp/s0.36/seed42/round2", "sst2/imp/s0.488/seed42/round3", "sst2/imp/s0.5/seed42"]
    assert {a for a, _ in jaccard} == set(labels)
    for before, after in zip(labels, labels[1:]):
        kept = [1 - float(label.split("/s")[1].split("/")[0]) for label in (before, after)]
        assert jaccard[before, after] == pytest.approx(kept[1] / kept[0], abs=0.01)
    result = run_cli("analyze", "topology", str(rounds[0]), str(run / "mask.safetensors"), "--out", str(in_tmp))
    assert result.exit_code == 0, result.output
    assert {row["run"] for row in csv.DictReader((in_tmp / "topology.csv").open())} == {labels[0], labels[-1]}
    sized = subprocess.run([sys.executable, str(SCRIPTS / "mask_size.py"), str(rounds[1])], capture_output=True, text=True, timeout=300)
    assert sized.returncode == 0 and sized.stdout.splitlines()[1].split()[1] == "0.3600", sized.stderr  # the script reads them too

    refused = {
        (str(run), str(run / "mask.safetensors")): f"{run / 'mask.safetensors'} and {run} are the same mask",
        (str(run / "run.log"),): f"{run / 'run.log'} is no mask: it is a file of the run directory {run}; give the run, or a mask file",
        (str(run / "head.safetensors"),): "head.safetensors has no prune-cli manifest; it is not a prune-cli mask file",
    }
    for given, message in refused.items():
        result = run_cli("analyze", "topology", *given)
        assert result.exit_code == 2 and message in " ".join(result.output.split()), result.output
    loaded = mask_format.read_mask(rounds[0])
    assert set(json.loads((run / "metrics.json").read_text())["file_sha256"]) >= {f"masks/{path.name}" for path in rounds}
    shutil.copyfile(rounds[0], rounds[1])  # another round's mask under this round's name
    result = run_cli("analyze", "topology", str(rounds[1]))
    assert result.exit_code == 2 and f"{rounds[1]} is not the file this run wrote" in " ".join(result.output.split())
    mask_format.save_mask(run / "mask.safetensors", loaded.masks, loaded.manifest)  # another mask under the run's name
    result = run_cli("analyze", "topology", str(run / "mask.safetensors"))
    assert result.exit_code == 2 and "is not the file this run wrote" in " ".join(result.output.split())


def test_every_analysis_keeps_a_row_per_run_when_runs_share_a_label(in_tmp: Path, tiny_model_dir: Path):
    """Two runs of the same task, method, sparsity and seed (say, two budgets) have the same
    readable label; each keeps its own rows, told apart by folder, where one used to replace the
    other. A folder name with a comma stays one CSV field."""
    for steps in (4, 6):
        assert run_cli("adapt", "--sparsity", "0.5", *tiny_overrides(tiny_model_dir, steps=steps)).exit_code == 0
    first, second = sorted(p.parent for p in (in_tmp / "outputs").rglob(".hydra"))
    second = second.rename(second.with_name("budget 6, seed 42"))
    for command, args in (("topology", []), ("sensitivity", ["--steps", "2", "--sigma", "0.01", "--sigma", "0.01"]), ("recovery", [])):
        result = run_cli("analyze", command, str(first), str(second), *args, "--out", str(in_tmp))
        assert result.exit_code == 0, result.output
        with (in_tmp / f"{command}.csv").open(newline="") as handle:
            rows = list(csv.reader(handle))
        assert {len(row) for row in rows} == {len(rows[0])}
        assert {row[0] for row in rows[1:]} == {f"sst2/adapt_by_pruning/s0.5/seed42 ({first.name})",
                                                "sst2/adapt_by_pruning/s0.5/seed42 (budget 6, seed 42)"}
        if command == "sensitivity":  # a sigma given twice is one variant, trained once
            assert [row[1] for row in rows[1:]].count("re-init (sigma=0.01)") == 2


def test_sensitivity_checks_every_run_before_training_and_keeps_the_finished_ones(in_tmp: Path, tiny_model_dir: Path):
    runs = _two_runs(in_tmp, tiny_model_dir)
    masks = [run / "mask.safetensors" for run in runs]
    masks[1].rename(in_tmp / "aside.safetensors")
    result = run_cli("analyze", "sensitivity", *map(str, runs), "--steps", "2", "--out", str(in_tmp))
    assert result.exit_code == 2 and "its mask.safetensors is missing" in result.output
    assert "original mask" not in result.output  # refused before the first run's heads were trained
    (in_tmp / "aside.safetensors").rename(masks[1])
    # a base model gone is found before any training too
    config = runs[1] / ".hydra" / "config.yaml"
    as_made = config.read_text()
    config.write_text(as_made.replace(str(tiny_model_dir), str(in_tmp / "gone")))
    result = run_cli("analyze", "sensitivity", *map(str, runs), "--steps", "2", "--out", str(in_tmp))
    assert result.exit_code == 2 and "which is not there now" in result.output
    assert "original mask" not in result.output
    # a failure that only loading can find (the second run's base folder now holds other weights): the first run's rows stay
    other = shutil.copytree(tiny_model_dir, in_tmp / "other")
    weights = load_file(str(other / "model.safetensors"))
    weights = {name: tensor + 0.5 if name.endswith("LayerNorm.bias") else tensor for name, tensor in weights.items()}
    save_file(weights, str(other / "model.safetensors"), metadata={"format": "pt"})
    config.write_text(as_made.replace(str(tiny_model_dir), str(other)))
    result = run_cli("analyze", "sensitivity", *map(str, runs), "--steps", "2", "--out", str(in_tmp))
    assert result.exit_code == 2 and "was learned on base weights" in result.output
    rows = (in_tmp / "sensitivity.csv").read_text().splitlines()
    assert len(rows) == 5 and all(row.startswith("sst2/adapt_by_pruning/s0.7/seed42,") for row in rows[1:])
    assert "(1 of 2 runs so far)" in " ".join(result.output.split())


def test_sensitivity_refuses_an_infinite_sigma(in_tmp: Path, tiny_model_dir: Path):
    runs = _two_runs(in_tmp, tiny_model_dir)
    result = run_cli("analyze", "sensitivity", str(runs[0]), "--sigma", "inf")
    assert result.exit_code == 2 and "--sigma takes finite numbers (got inf)" in result.output
