"""The standard CPU workloads C1 and C2 as data, and the selections ``fastcorr bench`` runs.

docs/benchmarks.md describes them. A workload case knows its shapes, its work
in flops (``2 * outputs * (C / groups) * kh * kw``), how to make its
fixed-seed random normal inputs, and a small version of itself for the naive
loops.

Examples
--------
>>> from fastcorr.bench.workloads import C2_LAYERS
>>> layer = C2_LAYERS[0]
>>> layer.label
'L1 N8 C64 56x56 F64 k3 p1 float32'
>>> round(layer.flops / 1e9, 2)
1.85
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

SEED = 20240601

C1_IMAGE_SIZE = 1024
C1_KERNEL_SIZES = (3, 7, 15, 31)
C1_MODES = ("full", "valid", "same")
DTYPES = ("float32", "float64")
OPS = ("c1", "c2")


@dataclass(frozen=True)
class Correlate2dCase:
    """C1: ``correlate2d`` of a square one-channel image with a square kernel."""

    image_size: int
    kernel_size: int
    mode: str
    dtype: str = "float32"
    op = "c1"

    @property
    def case_id(self) -> str:
        return f"c1-{self.image_size}-k{self.kernel_size}-{self.mode}-{self.dtype}"

    @property
    def label(self) -> str:
        size = self.image_size
        return f"{size}x{size} k{self.kernel_size} {self.mode} {self.dtype}"

    @property
    def output_shape(self) -> tuple[int, int]:
        size, k = self.image_size, self.kernel_size
        side = {"full": size + k - 1, "valid": size - k + 1, "same": size}[self.mode]
        return (side, side)

    @property
    def flops(self) -> int:
        out_height, out_width = self.output_shape
        return 2 * out_height * out_width * self.kernel_size**2

    def make_inputs(self, seed: int = SEED) -> tuple[np.ndarray, np.ndarray]:
        """``(image, kernel)``: random normal values of the case's dtype."""
        rng = np.random.default_rng(seed)
        image = rng.standard_normal((self.image_size,) * 2).astype(self.dtype)
        kernel = rng.standard_normal((self.kernel_size,) * 2).astype(self.dtype)
        return image, kernel

    def scaled_down(self) -> Correlate2dCase:
        """The same kernel over an image just large enough for 8x8 'valid' outputs."""
        return dataclasses.replace(self, image_size=self.kernel_size + 7, mode="valid")


@dataclass(frozen=True)
class Conv2dLayer:
    """C2: one ``conv2d`` layer, NCHW, square kernel, ``groups=1``."""

    name: str
    batch: int
    in_channels: int
    height: int
    width: int
    out_channels: int
    kernel_size: int
    stride: int = 1
    padding: int | str = 0
    dtype: str = "float32"
    op = "c2"

    @property
    def case_id(self) -> str:
        return f"c2-{self.name}-{self.dtype}"

    @property
    def label(self) -> str:
        padding = self.padding if isinstance(self.padding, str) else f"p{self.padding}"
        stride = f" s{self.stride}" if self.stride != 1 else ""
        return (f"{self.name} N{self.batch} C{self.in_channels} {self.height}x{self.width} "
                f"F{self.out_channels} k{self.kernel_size} {padding}{stride} {self.dtype}")

    @property
    def output_shape(self) -> tuple[int, int, int, int]:
        pad = 0 if self.padding == "valid" else self.padding
        out_height = (self.height + 2 * pad - self.kernel_size) // self.stride + 1
        out_width = (self.width + 2 * pad - self.kernel_size) // self.stride + 1
        return (self.batch, self.out_channels, out_height, out_width)

    @property
    def flops(self) -> int:
        outputs = int(np.prod(self.output_shape))
        return 2 * outputs * self.in_channels * self.kernel_size**2

    def make_inputs(self, seed: int = SEED) -> tuple[np.ndarray, np.ndarray]:
        """``(x, weight)``: random normal values of the layer's dtype."""
        rng = np.random.default_rng(seed)
        x = rng.standard_normal((self.batch, self.in_channels, self.height, self.width))
        weight = rng.standard_normal((self.out_channels, self.in_channels,
                                      self.kernel_size, self.kernel_size))
        return x.astype(self.dtype), weight.astype(self.dtype)

    def scaled_down(self) -> Conv2dLayer:
        """One image, at most two filters, a small image: the same work per output."""
        side = max(self.kernel_size, 4)
        return dataclasses.replace(self.one_image(), height=side, width=side)

    def one_image(self) -> Conv2dLayer:
        """One image and at most two filters, full size: the same work per output plane."""
        return dataclasses.replace(self, batch=1, out_channels=min(self.out_channels, 2))


C2_LAYERS = (
    Conv2dLayer("L1", 8, 64, 56, 56, 64, 3, padding=1),
    Conv2dLayer("L2", 8, 128, 28, 28, 128, 3, padding=1),
    Conv2dLayer("L3", 8, 256, 14, 14, 256, 3, padding=1),
    Conv2dLayer("L4", 8, 3, 224, 224, 64, 7, stride=2, padding=3),
    Conv2dLayer("L5", 8, 64, 56, 56, 256, 1),
    Conv2dLayer("L6", 1, 50, 50, 50, 1, 3, padding="valid"),
    Conv2dLayer("L7", 20, 20, 50, 50, 20, 3, padding=1),
)


def _c1(modes, kernel_sizes, dtype, image_size=C1_IMAGE_SIZE):
    return [Correlate2dCase(image_size, k, mode, dtype) for mode in modes for k in kernel_sizes]


def _c2_standard():
    """L1-L7 in float32, and L1 in float64 too."""
    return list(C2_LAYERS) + [dataclasses.replace(C2_LAYERS[0], dtype="float64")]


_QUICK_C1 = _c1(["same"], C1_KERNEL_SIZES, "float32") + _c1(["same"], (3, 31), "float64")

PROFILES = {
    # Tiny shapes that exercise every code path in seconds (tests, --smoke).
    "smoke": {
        "c1": _c1(["same", "valid"], (3,), "float32", image_size=24)
        + _c1(["full"], (5,), "float64", image_size=24),
        "c2": [Conv2dLayer("L1", 1, 4, 8, 8, 4, 3, padding=1),
               Conv2dLayer("L4", 1, 3, 16, 16, 4, 7, stride=2, padding=3),
               Conv2dLayer("L6", 1, 5, 6, 6, 1, 3, padding="valid", dtype="float64")],
    },
    # --quick: mode 'same' for C1 (float32, and float64 at k = 3 and 31), all of C2.
    "quick": {"c1": _QUICK_C1, "c2": _c2_standard()},
    # The default: --quick plus C1's modes 'full' and 'valid' in float32.
    "default": {"c1": _QUICK_C1 + _c1(["full", "valid"], C1_KERNEL_SIZES, "float32"),
                "c2": _c2_standard()},
    # Every C1 combination (bench/ uses it): 4 kernels x 3 modes x 2 dtypes.
    "all": {"c1": [case for dtype in DTYPES for case in _c1(C1_MODES, C1_KERNEL_SIZES, dtype)],
            "c2": _c2_standard()},
}


def select(op: str, profile: str, dtypes=None) -> list:
    """The cases of workload ``op`` in ``profile``.

    Parameters
    ----------
    op : {'c1', 'c2'}
    profile : {'smoke', 'quick', 'default', 'all'}
    dtypes : sequence of str, optional
        Instead of the profile's mix of dtypes, every shape of the profile in
        each of these dtypes.

    Returns
    -------
    list of Correlate2dCase or Conv2dLayer
    """
    cases = PROFILES[profile][op]
    if dtypes is None:
        return list(cases)
    retyped = [dataclasses.replace(case, dtype=dtype) for case in cases for dtype in dtypes]
    return list(dict.fromkeys(retyped))
