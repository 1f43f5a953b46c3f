"""Save a model of a given shape with random weights and a real tokenizer, for timing a whole run.

    python scripts/shaped_model.py bert-base-shape OUT_DIR [--tokenizer DIR_OR_HUB_NAME]

No BERT-base can be downloaded on these machines, yet the timing section wants SST-2 run end to
end at BERT-base's size (on a GPU where one is lent): this writes a folder that `prune-cli adapt
model.name_or_path=OUT_DIR` loads like any local model. Its weights are random (the same
initialisation as bench_step's shapes), so its scores mean nothing; its tokenizer is real (by
default the packaged all-MiniLM-L6-v2's, which is bert-base-uncased's vocabulary), so the batches
have SST-2's real lengths.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

from prune_cli.backbone import PACKAGED_MINILM, resolve_model_path
from prune_cli.errors import script_entry
from prune_cli.rundir import default_mode

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_step import SHAPES, build_model  # noqa: E402  (one builder for every random-weight shape)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("shape", choices=sorted(SHAPES))
    parser.add_argument("out", type=Path, help="folder to create (must not exist yet)")
    parser.add_argument("--tokenizer", default=PACKAGED_MINILM, help="tokenizer folder or hub name (default: the packaged MiniLM's)")
    args = parser.parse_args()
    if args.out.exists():
        parser.error(f"{args.out} already exists; name a new folder")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    # built beside its final name and renamed when whole: a killed build leaves no half model there
    partial = Path(tempfile.mkdtemp(dir=args.out.parent, prefix=f".{args.out.name}."))
    try:
        build_model(args.shape, partial, resolve_model_path(args.tokenizer))
        partial.chmod(default_mode(0o777))
        partial.rename(args.out)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    print(args.out)


if __name__ == "__main__":
    script_entry(main)
