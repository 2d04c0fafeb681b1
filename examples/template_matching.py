"""Find a patch cut out of scikit-image's camera image with match_template, and mark it.

Seed 000, problem 1(f): the inner product of a template with each window measures how well
they agree, but it also grows with the window's brightness. match_template divides that out
(zero-normalised cross-correlation, the Pearson correlation of template and window), so its
maximum marks the match even in a noisy image. The figure shows the noisy image with the
cut-out and the best match, the template, the ZNCC map, and, for comparison, the plain inner
products (correlate2d), whose maximum sits wherever the image is brightest.

    python examples/template_matching.py     # writes docs/img/template_matching.png; seconds
    python examples/template_matching.py --small --out /tmp
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from _figure import DEFAULT_OUT, plt, save

import fastcorr

# The cut-out in the full-size image: the camera in the cameraman's hands.
TOP, LEFT, SIZE = 136, 250, 64


def scene(small: bool = False, noise: float = 40.0, seed: int = 0):
    """The camera image plus Gaussian noise, the clean template, and where it was cut."""
    from skimage import data

    image = data.camera().astype(np.float64)
    top, left, size = TOP, LEFT, SIZE
    if small:
        image, top, left, size = image[::2, ::2], top // 2, left // 2, size // 2
    template = image[top:top + size, left:left + size].copy()
    noisy = image + noise * np.random.default_rng(seed).standard_normal(image.shape)
    return noisy, template, (top, left)


def run(out_dir: Path = DEFAULT_OUT, small: bool = False) -> dict:
    """Match, draw ``out_dir/template_matching.png``, return where the peaks are."""
    image, template, cut = scene(small)
    score = fastcorr.match_template(image, template)          # top-left corner of each window
    best = np.unravel_index(np.argmax(score), score.shape)
    # The seed's first idea: the plain inner product of template and window.
    plain = fastcorr.correlate2d(image, template, mode="valid")
    plain_best = np.unravel_index(np.argmax(plain), plain.shape)
    numbers = {
        "shape": image.shape,
        "cut": cut,
        "best": (int(best[0]), int(best[1])),
        "best_score": float(score[best]),
        "plain_best": (int(plain_best[0]), int(plain_best[1])),
    }
    numbers["png"] = draw(image, template, score, plain, numbers,
                          Path(out_dir) / "template_matching.png")
    return numbers


def draw(image, template, score, plain, numbers, path: Path) -> Path:
    from matplotlib.patches import Rectangle

    size = template.shape[0]
    fig, axes = plt.subplots(1, 4, figsize=(12, 3.5),
                             gridspec_kw={"width_ratios": [1, 0.55, 1, 1]})
    ax = axes[0]
    ax.imshow(image, cmap="gray", vmin=0, vmax=255)
    margin = size // 8  # the cut-out drawn a little larger, so that both frames show
    for (row, col), grow, colour, label in [
            (numbers["cut"], margin, "cyan", "cut out here"),
            (numbers["best"], 0, "red", "best match")]:
        ax.add_patch(Rectangle((col - 0.5 - grow, row - 0.5 - grow), size + 2 * grow,
                               size + 2 * grow, fill=False, ec=colour, lw=1.5, label=label))
    ax.legend(loc="lower left", fontsize=7)
    ax.set_title("noisy image (σ = 40)", fontsize=9)
    axes[1].imshow(template, cmap="gray", vmin=0, vmax=255)
    axes[1].set_title(f"template, {size}×{size}", fontsize=9)
    for ax, values, best, title in [
            (axes[2], score, numbers["best"],
             f"match_template (ZNCC): max {numbers['best_score']:.2f}"),
            (axes[3], plain, numbers["plain_best"], "plain inner product (correlate2d)")]:
        shown = ax.imshow(values, cmap="viridis")
        ax.plot(best[1], best[0], "o", mfc="none", mec="red", ms=12, mew=1.5)
        ax.set_title(title, fontsize=9)
        fig.colorbar(shown, ax=ax, fraction=0.046, pad=0.04)
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    found = "the cut" if numbers["plain_best"] == numbers["cut"] else "elsewhere"
    fig.suptitle(f"cut at (row, col) {numbers['cut']}; match_template's peak at "
                 f"{numbers['best']}; the plain inner product's at {numbers['plain_best']} "
                 f"({found})", fontsize=10)
    fig.tight_layout()
    return save(fig, path)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT,
                        help="directory for template_matching.png (default: docs/img)")
    parser.add_argument("--small", action="store_true",
                        help="the image at half size, for a smoke test")
    args = parser.parse_args(argv)
    numbers = run(args.out, args.small)
    print(f"{numbers['shape']}: cut at {numbers['cut']}, match_template's best match at "
          f"{numbers['best']} (score {numbers['best_score']:.3f}), the plain inner product's at "
          f"{numbers['plain_best']}; wrote {numbers['png']}")
    return numbers


if __name__ == "__main__":
    main()
