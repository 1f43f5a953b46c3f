"""scripts/bootstrap_gap.py: the row-sampling error docs/results.md puts on STS-B's per-source gaps and SST-2's met."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import FIXTURE_GLUE, load_script, run_cli, tiny_overrides

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "bootstrap_gap.py"


def _script(*args: str) -> subprocess.CompletedProcess:
    """The script as docs/results.md runs it, on the fixture GLUE folder."""
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True,
                          env={**os.environ, "GLUE_DIR": str(FIXTURE_GLUE)})


def _runs(tiny_model_dir: Path, side: str, *extra: str, seeds: tuple[int, ...] = (1, 2), task: str = "stsb") -> Path:
    """Finished runs (STS-B unless told) of one side, one `seed<N>` folder per seed, as reproduce.sh lays them out."""
    for seed in seeds:
        result = run_cli("adapt", "--task", task, "--sparsity", "0.5", "--seed", str(seed),
                         *tiny_overrides(tiny_model_dir, *extra, steps=6), f"hydra.run.dir={side}/seed{seed}")
        assert result.exit_code == 0, result.output
    return Path(side)


def test_the_gap_is_the_seed_mean_of_the_runs_own_scores_and_a_side_against_itself_has_no_spread(in_tmp: Path, tiny_model_dir: Path):
    script = load_script("bootstrap_gap")
    ours = _runs(tiny_model_dir, "ours")
    tuned = _runs(tiny_model_dir, "tuned", "method=finetune")
    seeds, pairs = script.paired_runs(ours, tuned, "genre", False)
    assert seeds == [1, 2]
    everything = np.arange(pairs[0][0].labels.size)
    own = [100 * (json.loads((ours / f"seed{s}" / "metrics.json").read_text())["main_metric_value"]
                  - json.loads((tuned / f"seed{s}" / "metrics.json").read_text())["main_metric_value"]) for s in seeds]
    result = script.bootstrap(pairs, everything, resamples=50, seed=0)
    assert result["gap"] == pytest.approx(np.mean(own), abs=0.01)
    assert result["se"] > 0 and result["ci95"][0] < result["ci95"][1]
    # both sides share each resample, so a side paired with itself differs by nothing on every draw
    _, same = script.paired_runs(ours, ours, "genre", False)
    assert script.bootstrap(same, everything, resamples=20, seed=0) == {"gap": 0.0, "se": 0.0, "ci95": [0.0, 0.0]}


def test_runs_on_other_rows_an_unknown_source_and_folders_without_seeds_are_refused_in_a_sentence(in_tmp: Path, tiny_model_dir: Path):
    _runs(tiny_model_dir, "dev", seeds=(1,))
    _runs(tiny_model_dir, "held", "data.holdout=8", seeds=(1,))
    Path("empty").mkdir()
    for args, message in ((("dev", "held"), "scored on different rows"), (("dev", "dev", "--source", "news"), "no rows of source 'news'"),
                          (("empty", "dev"), "no seed<N> run folders under empty"),
                          (("dev", "missing"), "missing is not a folder of seed<N> runs")):
        result = _script(*args)
        assert result.returncode != 0 and message in result.stderr, result.stderr
        assert "Traceback" not in result.stderr
    fine = _script("dev", "dev", "--source", "main-captions", "--source", "all", "--resamples", "5")
    assert fine.returncode == 0, fine.stderr
    assert [json.loads(line)["source"] for line in fine.stdout.splitlines()] == ["main-captions", "all"]


def test_a_task_whose_files_name_no_source_gets_its_whole_split_gap_without_a_source_column(in_tmp: Path, tiny_model_dir: Path):
    """SST-2's files have no genre or filename column: asked for all rows alone, the script reads none (and says so)."""
    ours = _runs(tiny_model_dir, "ours", seeds=(1,), task="sst2")
    tuned = _runs(tiny_model_dir, "tuned", "method=finetune", seeds=(1,), task="sst2")
    result = _script("ours", "tuned", "--resamples", "20")
    assert result.returncode == 0, result.stderr
    (line,) = map(json.loads, result.stdout.splitlines())
    own = [json.loads((side / "seed1" / "metrics.json").read_text())["main_metric_value"] for side in (ours, tuned)]
    assert (line["source"], line["column"], line["seeds"]) == ("all", None, [1])
    assert line["gap"] == pytest.approx(100 * (own[0] - own[1]), abs=0.01)
    assert line["rows"] == json.loads((ours / "seed1" / "metrics.json").read_text())["scored_on"]["dev"]["rows"]
    # a source other than all needs the column, which SST-2's files lack: refused in a sentence
    refused = _script("ours", "tuned", "--source", "news")
    assert refused.returncode != 0 and "has no column 'genre'" in refused.stderr and "Traceback" not in refused.stderr, refused.stderr
