"""Mask file size per maskable weight, for run dirs (issue 4's "bits per weight" figure).

    python scripts/mask_size.py RUN_DIR [RUN_DIR ...]   (or mask files: an imp run's masks/round*)

For each run: the sparsity, the size of its mask file as written now (format v2, LZMA over the
packed bits), the size of plain packed bits (format v1) for the same mask, and the entropy bound
H(p) that no per-weight code can beat for a mask keeping a share p of the weights. Masks written
by older versions are re-encoded in memory, so every row uses the current format.
"""

from __future__ import annotations

import argparse
import math
import tempfile
from pathlib import Path

from prune_cli import mask_format, rundir
from prune_cli.errors import script_entry


def entropy_bits(kept_share: float) -> float:
    p = kept_share
    return 0.0 if p in (0.0, 1.0) else -(p * math.log2(p) + (1 - p) * math.log2(1 - p))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dirs", type=Path, nargs="+", help="finished pruning runs (each has a mask.safetensors), or mask files")
    run_dirs = parser.parse_args().run_dirs
    print(f"{'run':60s} {'sparsity':>8s} {'weights':>11s} {'v2 file':>10s} {'v2 bits/w':>9s} {'v1 bits/w':>9s} {'H(p)':>6s}")
    for run_dir in run_dirs:  # --help was read as a run, and a missing run as a corrupt mask file
        loaded = mask_format.read_mask(rundir.require_mask_or_file(run_dir, "mask_size.py"))
        weights = sum(m.numel() for m in loaded.masks.values())
        kept = sum(int(m.sum()) for m in loaded.masks.values()) / weights
        sizes = {}
        with tempfile.TemporaryDirectory() as folder:
            for encoding in mask_format.ENCODINGS:
                path = Path(folder) / f"{encoding}.safetensors"
                mask_format.save_mask(path, loaded.masks, {k: v for k, v in loaded.manifest.items() if k not in ("tensors", "encoding")}, encoding=encoding)
                sizes[encoding] = path.stat().st_size
        v2, v1 = sizes["packbits+lzma"], sizes["packbits"]
        print(f"{str(run_dir)[-60:]:60s} {1 - kept:8.4f} {weights:11d} {v2 / 1e6:8.2f}MB {v2 * 8 / weights:9.3f} {v1 * 8 / weights:9.3f} {entropy_bits(kept):6.3f}")


if __name__ == "__main__":
    script_entry(main)
