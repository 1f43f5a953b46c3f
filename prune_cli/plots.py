"""Matplotlib without a display, and PNGs written atomically like every other artifact."""

from __future__ import annotations

import io
from pathlib import Path

from prune_cli import rundir


def pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_png(figure, path: Path) -> None:
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    pyplot().close(figure)
    rundir.atomic_write_bytes(path, buffer.getvalue())
