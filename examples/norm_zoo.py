"""The normalisation zoo: which elements of an (N, C, H, W) tensor share mean and variance.

Seed 000, problem 2 (after Wu and He's "Group Normalization", figure 2): batch, layer, instance
and group norm standardise different slices of a feature tensor. The picture is computed, not
drawn by hand: for each norm, one element of a random tensor is nudged, and the elements whose
output changes are exactly those normalised with the same statistics (blue). The script also
checks that each such slice comes out with mean 0 and variance 1.

    python examples/norm_zoo.py              # writes docs/img/norm_zoo.png; a second
    python examples/norm_zoo.py --small --out /tmp
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from _figure import DEFAULT_OUT, plt, save

import fastcorr

N, C, H, W, GROUPS = 4, 6, 3, 3, 3
CHOSEN = (0, 2, 1, 1)  # the nudged element: (n, c, h, w)

NORMS = {
    "batch norm": lambda x: fastcorr.batch_norm(x, training=True, eps=0.0),
    "layer norm": lambda x: fastcorr.layer_norm(x, x.shape[1:], eps=0.0),
    "instance norm": lambda x: fastcorr.instance_norm(x, eps=0.0),
    f"group norm ({GROUPS} groups)": lambda x: fastcorr.group_norm(x, GROUPS, eps=0.0),
}


def shared_statistics(norm, x: np.ndarray, chosen=CHOSEN) -> np.ndarray:
    """Boolean mask of the elements normalised with the same mean and variance as ``chosen``."""
    nudged = x.copy()
    nudged[chosen] += 1.0
    return ~np.isclose(norm(nudged), norm(x), rtol=0, atol=1e-9)


def run(out_dir: Path = DEFAULT_OUT, small: bool = False, seed: int = 0) -> dict:
    """Masks and checks for the four norms; draws ``out_dir/norm_zoo.png`` unless small."""
    x = np.random.default_rng(seed).standard_normal((N, C, H, W))
    numbers = {"sizes": {}, "standardised": {}}
    masks = {}
    for name, norm in NORMS.items():
        mask = masks[name] = shared_statistics(norm, x)
        out = norm(x)[mask]
        numbers["sizes"][name] = int(mask.sum())
        numbers["standardised"][name] = bool(np.isclose(out.mean(), 0, atol=1e-12)
                                             and np.isclose(out.var(), 1))
    numbers["masks"] = masks
    numbers["png"] = draw(masks, Path(out_dir) / "norm_zoo.png", detail=not small)
    return numbers


def draw(masks: dict, path: Path, detail: bool = True) -> Path:
    fig = plt.figure(figsize=(12, 3.6))
    for index, (name, mask) in enumerate(masks.items()):
        ax = fig.add_subplot(1, len(masks), index + 1, projection="3d")
        # voxel axes: x = C, y = N, z = H*W (the spatial positions flattened, as in the paper)
        cube = mask.reshape(N, C, H * W).transpose(1, 0, 2)
        ax.voxels(~cube, facecolors=(0.8, 0.8, 0.8, 0.12),
                  edgecolor=(0.5, 0.5, 0.5, 0.25) if detail else None, linewidth=0.3)
        ax.voxels(cube, facecolors=(0.12, 0.47, 0.85, 0.9),
                  edgecolor=(0.05, 0.2, 0.45, 1.0) if detail else None, linewidth=0.4)
        ax.set_xlabel("C", labelpad=-12)
        ax.set_ylabel("N", labelpad=-12)
        ax.set_zlabel("H, W", labelpad=-12)
        ax.set(xticks=[], yticks=[], zticks=[])
        ax.set_box_aspect((C, N, H * W))
        ax.view_init(elev=20, azim=-60)
        ax.set_title(f"{name}: {int(mask.sum())} elements", fontsize=10)
    fig.suptitle(f"(N, C, H, W) = ({N}, {C}, {H}, {W}): in blue, the elements that share "
                 f"the statistics of element {CHOSEN}", fontsize=10)
    fig.subplots_adjust(left=0.01, right=0.99, bottom=0.02, top=0.86, wspace=0.05)
    return save(fig, path)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT,
                        help="directory for norm_zoo.png (default: docs/img)")
    parser.add_argument("--small", action="store_true",
                        help="a quicker drawing (no voxel edges), for a smoke test")
    args = parser.parse_args(argv)
    numbers = run(args.out, args.small)
    for name, size in numbers["sizes"].items():
        print(f"{name:24s} {size:3d} elements share statistics; standardised: "
              f"{numbers['standardised'][name]}")
    print(f"wrote {numbers['png']}")
    return numbers


if __name__ == "__main__":
    main()
