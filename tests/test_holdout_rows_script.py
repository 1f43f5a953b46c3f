"""scripts/holdout_rows.py: the figures docs/results.md quotes for why data.holdout draws whole rows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import load_script
from omegaconf import OmegaConf

from prune_cli.config import CONFIG_DIR
from prune_cli.errors import UserError

SENTENCES = ["a fine film about love", "the plot is dull and slow", "warm and witty", "an utter mess of a movie", "bland", "a triumph"]
PHRASES = ["a fine film", "about love", "the plot", "dull and slow"]  # each inside one of the first two sentences


def test_a_plain_draw_is_counted_inside_other_rows_and_the_whole_row_draw_is_not(tmp_path: Path):
    folder = tmp_path / "SST-2"
    folder.mkdir()
    rows = SENTENCES + PHRASES
    (folder / "train.tsv").write_text("sentence\tlabel\n" + "".join(f"{t}\t1\n" for t in rows))
    (folder / "dev.tsv").write_text("sentence\tlabel\nsome dev sentence here\t0\n")
    task = OmegaConf.to_container(OmegaConf.load(CONFIG_DIR / "task" / "sst2.yaml"))
    script = load_script("holdout_rows")
    result = script.figures(task, {"dir": str(tmp_path)}, size=5, seed=0)
    plain = [rows[i] for i in np.random.RandomState(0).permutation(len(rows))[:5]]
    assert result["plain_draw_inside_another_row"] == pytest.approx(sum(r in PHRASES for r in plain) / 5)
    assert result["plain_draw_words"] == pytest.approx(np.mean([len(r.split()) for r in plain]))
    assert result["dev_words"] == 4
    # five of the six whole rows held out; the phrases inside the held-out sentences are not trained on
    assert result["rows_left_to_train_on"] + 5 + result["hold_out_rows_dropped"] == len(rows)
    assert result["hold_out_rows_dropped"] >= 2 and result["hold_out_seconds"] >= 0
    with pytest.raises(UserError, match="only 6 training rows"):
        script.figures(task, {"dir": str(tmp_path)}, size=7, seed=0)
