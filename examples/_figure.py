"""What the examples share: drawing off-screen and saving small PNGs for the docs."""

from __future__ import annotations

import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display needed; before pyplot is imported anywhere

import matplotlib.pyplot as plt  # noqa: E402

DEFAULT_OUT = Path(__file__).resolve().parents[1] / "docs" / "img"


def save(fig, path: Path, dpi: int = 80) -> Path:
    """Write ``fig`` as a 256-colour PNG (a third of the size of matplotlib's) and close it."""
    from PIL import Image

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    plt.close(fig)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.open(buffer).convert("RGB").quantize(256).save(path, optimize=True)
    return path
