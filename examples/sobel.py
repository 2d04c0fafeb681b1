"""Gradient magnitude sqrt(G1^2 + G2^2) of scikit-image's camera image, compared with SciPy.

Seed 000, problem 1(e): correlate the image with the filter X1 = [[-3, 0, 3], [-10, 0, 10],
[-3, 0, 3]] (Scharr's horizontal derivative) and with X2 = X1^T, and take the pointwise
magnitude. fastcorr's correlate2d pads with zeros ('fill', the seed's correlation); SciPy's
example for convolve2d uses boundary='symm'. The two agree everywhere but on the border, which
the last panel shows.

    python examples/sobel.py                 # writes docs/img/sobel.png; a few seconds
    python examples/sobel.py --small --out /tmp
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import scipy.signal
from _figure import DEFAULT_OUT, plt, save

import fastcorr

X1 = np.array([[-3.0, 0.0, 3.0], [-10.0, 0.0, 10.0], [-3.0, 0.0, 3.0]])
X2 = X1.T


def load_image(small: bool = False) -> np.ndarray:
    """The camera image (bundled with scikit-image, no download) as float64 in [0, 255]."""
    from skimage import data

    image = data.camera().astype(np.float64)
    return image[::4, ::4] if small else image


def gradient_magnitude(image: np.ndarray, boundary: str = "fill", backend: str | None = None):
    """sqrt(G1^2 + G2^2) with G_i = X_i correlated with the image, output the image's size."""
    g1 = fastcorr.correlate2d(image, X1, mode="same", boundary=boundary, backend=backend)
    g2 = fastcorr.correlate2d(image, X2, mode="same", boundary=boundary, backend=backend)
    return np.hypot(g1, g2)


def scipy_magnitude(image: np.ndarray, boundary: str = "symm") -> np.ndarray:
    """The same with scipy.signal.correlate2d."""
    g1 = scipy.signal.correlate2d(image, X1, mode="same", boundary=boundary)
    g2 = scipy.signal.correlate2d(image, X2, mode="same", boundary=boundary)
    return np.hypot(g1, g2)


def run(out_dir: Path = DEFAULT_OUT, small: bool = False) -> dict:
    """Compute both magnitudes, draw the figure into ``out_dir/sobel.png``, return the numbers."""
    image = load_image(small)
    ours = gradient_magnitude(image)                       # zero padding
    same_boundary = scipy_magnitude(image, boundary="fill")
    theirs = scipy_magnitude(image, boundary="symm")       # SciPy's example
    difference = np.abs(ours - theirs)
    interior = (slice(1, -1), slice(1, -1))
    numbers = {
        "shape": image.shape,
        "max_difference_same_boundary": float(np.abs(ours - same_boundary).max()),
        "max_difference_interior": float(difference[interior].max()),
        "max_difference_border": float(difference.max()),
        "max_magnitude": float(ours.max()),
    }
    path = Path(out_dir) / "sobel.png"
    draw(image, ours, theirs, difference, numbers, path)
    numbers["png"] = path
    return numbers


def draw(image, ours, theirs, difference, numbers, path: Path) -> None:
    corner = min(48, image.shape[0] // 4)
    fig, axes = plt.subplots(1, 4, figsize=(12, 3.4))
    bright = np.percentile(theirs, 99.5)  # a few strong edges would darken the rest
    panels = [
        (image, "gray", "camera image", 255),
        (ours, "gray", "fastcorr: sqrt(G1² + G2²), zero padding", bright),
        (theirs, "gray", "SciPy: boundary='symm'", bright),
        (difference[:corner, :corner], "magma",
         f"|fastcorr - SciPy|, top-left {corner}×{corner}", difference.max()),
    ]
    for ax, (values, cmap, title, vmax) in zip(axes, panels):
        shown = ax.imshow(values, cmap=cmap, vmin=0, vmax=vmax, interpolation="nearest")
        ax.set_title(title, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.colorbar(shown, ax=axes[3], fraction=0.046, pad=0.04)
    fig.suptitle(
        f"Scharr gradient magnitude, {image.shape[0]}×{image.shape[1]}: interior max |difference| "
        f"{numbers['max_difference_interior']:.1e}, border max "
        f"{numbers['max_difference_border']:.0f} (of {numbers['max_magnitude']:.0f})",
        fontsize=10)
    fig.tight_layout()
    save(fig, path)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT,
                        help="directory for sobel.png (default: docs/img)")
    parser.add_argument("--small", action="store_true",
                        help="a 128 x 128 subsample of the image, for a smoke test")
    args = parser.parse_args(argv)
    numbers = run(args.out, args.small)
    print(f"{numbers['shape']}: max |fastcorr - SciPy| with the same boundary "
          f"{numbers['max_difference_same_boundary']:.1e}; against boundary='symm' "
          f"{numbers['max_difference_interior']:.1e} inside, "
          f"{numbers['max_difference_border']:.1f} on the border; wrote {numbers['png']}")
    return numbers


if __name__ == "__main__":
    main()
