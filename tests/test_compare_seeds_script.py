"""scripts/compare_seeds.py: the five-seed readings docs/results.md quotes (a grid cell joined with
the same recipe on fresh seeds, against a recipe that ran on all of them)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from prune_cli import __version__

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "compare_seeds.py"


def finished_run(root: Path, name: str, method: str, seed: int, value: float, tag: str = "", sparsity: float = 0.7,
                 model: str = "packaged:all-MiniLM-L6-v2") -> None:
    run_dir = root / name
    (run_dir / ".hydra").mkdir(parents=True)
    hold = "  hold_fraction: 0.4\n  hold_theta_lr: 2.0e-05\n" if method == "adapt_by_pruning" else ""  # today's default
    (run_dir / ".hydra" / "config.yaml").write_text(f"seed: 1\nmethod:\n  name: {method}\n{hold}")
    (run_dir / "metrics.json").write_text(json.dumps({
        "task": "mrpc", "method": method, "seed": seed, "sparsity_requested": sparsity, "sparsity_realized": sparsity,
        "main_metric": "eval_f1", "main_metric_value": value, "metrics": {"eval_f1": value}, "tag": tag,
        "model": model, "versions": {"prune_cli": __version__}}))


def compare(root: Path, *sides: str, task: str = "mrpc") -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), str(root), "--task", task, "--sparsity", "0.7", *sides],
                          capture_output=True, text=True)


def test_a_grid_cell_joined_with_its_fresh_seeds_is_compared_seed_by_seed(tmp_path: Path):
    for seed, value in ((1, 0.80), (2, 0.82), (3, 0.84), (4, 0.86), (5, 0.78)):
        finished_run(tmp_path, f"ours{seed}", "adapt_by_pruning", seed, value, tag="hold")
    for seed, value in ((1, 0.81), (2, 0.81), (3, 0.81)):
        finished_run(tmp_path, f"magnitude{seed}", "magnitude", seed, value)
    for seed, value in ((4, 0.81), (5, 0.81)):
        finished_run(tmp_path, f"fresh{seed}", "magnitude", seed, value, tag="magnitude-fresh")
    finished_run(tmp_path, "other-s", "magnitude", 6, 0.10, sparsity=0.9)  # another sparsity: left out
    done = compare(tmp_path, "adapt_by_pruning:hold", "magnitude+magnitude:magnitude-fresh")
    assert done.returncode == 0, done.stderr
    assert "magnitude+magnitude:magnitude-fresh: 0.8100 ± 0.0000 over 5 seeds" in done.stdout
    # (-1 + 1 + 3 + 5 - 3) / 5 = 1.0 point; ahead on seeds 2, 3 and 4
    assert "Δ +1.00 points over seeds [1, 2, 3, 4, 5] (-1.00, +1.00, +3.00, +5.00, -3.00); ahead on 3 of 5" in done.stdout
    # the paired gaps' sd: sqrt((4 + 0 + 4 + 16 + 16) / 4) = sqrt(10) = 3.16; over sqrt(5) seeds 1.41
    assert "; standard error over seeds 1.41 (sd of the paired gaps 3.16)" in done.stdout


def test_a_seed_in_two_joined_cells_is_a_one_line_error(tmp_path: Path):
    finished_run(tmp_path, "a", "magnitude", 1, 0.8)
    finished_run(tmp_path, "b", "magnitude", 1, 0.7, tag="again")
    finished_run(tmp_path, "c", "adapt_by_pruning", 1, 0.9)
    done = compare(tmp_path, "adapt_by_pruning", "magnitude+magnitude:again")
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert done.stderr.strip().count("\n") == 0 and "seed 1 appears twice" in done.stderr


def test_a_cell_without_runs_is_a_one_line_error(tmp_path: Path):
    finished_run(tmp_path, "a", "magnitude", 1, 0.8)
    done = compare(tmp_path, "adapt_by_pruning:missing", "magnitude")
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert "no finished runs of 'adapt_by_pruning:missing' for mrpc at s=0.7" in done.stderr


def test_runs_of_two_backbones_are_compared_within_one_and_the_error_names_the_tables(tmp_path: Path):
    """A folder holding MiniLM and BERT-base runs files them as `mrpc@<backbone>` (as `prune-cli report`
    does): a bare --task then names the tables, and a backbone's table pairs its own runs only."""
    for seed, value in ((1, 0.82), (2, 0.84)):
        finished_run(tmp_path, f"ours{seed}", "adapt_by_pruning", seed, value)
        finished_run(tmp_path, f"mag{seed}", "magnitude", seed, 0.81)
        finished_run(tmp_path, f"bert{seed}", "magnitude", seed, 0.70, model="bert-base-uncased")
    done = compare(tmp_path, "adapt_by_pruning", "magnitude")
    assert done.returncode != 0 and done.stderr.strip().count("\n") == 0
    assert "the folder's tables are mrpc@all-MiniLM-L6-v2, mrpc@bert-base-uncased; pass one as --task" in done.stderr
    done = compare(tmp_path, "adapt_by_pruning", "magnitude", task="mrpc@all-MiniLM-L6-v2")
    assert done.returncode == 0, done.stderr
    assert "magnitude: 0.8100 ± 0.0000 over 2 seeds" in done.stdout and "Δ +2.00 points over seeds [1, 2] (+1.00, +3.00)" in done.stdout


def test_a_cell_renamed_by_a_change_of_default_says_where_its_runs_went(tmp_path: Path):
    """prune_cli/recipes.py files runs made before 0.2.0 under the recipe they ran: a command written then
    (`adapt_by_pruning:<tag>` for an ablation of the earlier default, the split-alpha tag for today's
    default) must say where those runs are now, not only that there are none."""
    def old_run(name: str, seed: int, value: float, tag: str = "", overrides: tuple[str, ...] = (), hold: str = "") -> None:
        run_dir = tmp_path / name
        (run_dir / ".hydra").mkdir(parents=True)
        (run_dir / ".hydra" / "config.yaml").write_text(f"method:\n  name: adapt_by_pruning\n{hold}")
        (run_dir / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in (f"tag={tag}", *overrides) if tag))
        (run_dir / "metrics.json").write_text(json.dumps({
            "task": "mrpc", "method": "adapt_by_pruning", "seed": seed, "sparsity_requested": 0.7, "sparsity_realized": 0.7,
            "main_metric": "eval_f1", "main_metric_value": value, "metrics": {"eval_f1": value}, "tag": tag,
            "versions": {"prune_cli": "0.1.0"}}))

    old_run("grid1", 1, 0.80)
    old_run("mean1", 1, 0.81, tag="mean-pooling", overrides=("head.pooling=mean",))
    old_run("split1", 1, 0.82, tag="split", overrides=("method.hold_fraction=0.4", "method.hold_theta_lr=2e-5"),
            hold="  hold_fraction: 0.4\n  hold_theta_lr: 2.0e-05\n")
    done = compare(tmp_path, "adapt_by_pruning:mean-pooling", "adapt_by_pruning")
    assert done.returncode == 1 and "runs of that tag are adapt_by_pruning_stop_at_s:mean-pooling" in done.stderr, done.stderr
    done = compare(tmp_path, "adapt_by_pruning:split", "adapt_by_pruning")
    assert done.returncode == 1 and "its runs restate the recipe of 'adapt_by_pruning', which holds them" in done.stderr, done.stderr
    done = compare(tmp_path, "adapt_by_pruning", "adapt_by_pruning_stop_at_s", "adapt_by_pruning_stop_at_s:mean-pooling")
    assert done.returncode == 0, done.stderr
    assert "adapt_by_pruning: 0.8200" in done.stdout and "adapt_by_pruning_stop_at_s: 0.8000" in done.stdout
