"""The standard workloads as data, and the selections ``fastcorr bench`` runs.

CPU workloads C1-C8, and the GPU workloads G1-G3 (:class:`GpuCase`: a C1, C2,
C4 or C5 case at BENCH.md's GPU sizes, timed by :mod:`~fastcorr.bench.gpu`).
docs/benchmarks.md describes them. A workload case knows its shapes, its
``work`` (flops for the convolutions, ``2 * outputs * (C / groups) * kh *
kw``; bytes that must move at the least for im2col, pooling and
normalisation) and the unit its rate is quoted in, how to make its fixed-seed
random normal inputs, and a small version of itself for the naive loops.
C7 (first-call latency) and C8 (peak memory) are measured in fresh processes
(:mod:`~fastcorr.bench.process`); their cases say what runs there.

Examples
--------
>>> from fastcorr.bench.workloads import C2_LAYERS, PoolCase
>>> layer = C2_LAYERS[0]
>>> layer.label
'L1 N8 C64 56x56 F64 k3 p1 float32'
>>> round(layer.work / 1e9, 2), layer.rate_unit
(1.85, 'GFLOP/s')
>>> pool = PoolCase("max", (32, 64, 112, 112), 2, 2)
>>> pool.label, round(pool.work / 1e6, 1), pool.rate_unit
('max k2 s2 32x64x112x112 float32', 128.5, 'GB/s')
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
OPS = ("c1", "c2", "c3", "c4", "c5", "c6", "c7", "c8")
# On a GPU only; never part of the default selection.
GPU_OPS = ("g1", "g2", "g3")
# Measured in fresh processes, not timed side by side with peers.
PROCESS_OPS = ("c7", "c8")
PROFILE_NAMES = ("smoke", "quick", "default", "full")

FLOPS, BYTES = "GFLOP/s", "GB/s"


def _random(rng, shape, dtype) -> np.ndarray:
    return rng.standard_normal(shape).astype(dtype)


def _itemsize(dtype) -> int:
    return np.dtype(dtype).itemsize


def _shape_text(shape) -> str:
    return "x".join(map(str, shape))


@dataclass(frozen=True)
class Correlate2dCase:
    """C1: ``correlate2d`` of a square one-channel image with a square kernel."""

    image_size: int
    kernel_size: int
    mode: str
    dtype: str = "float32"
    op = "c1"
    rate_unit = FLOPS

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
    def work(self) -> int:
        """Flops: two per output and kernel tap."""
        out_height, out_width = self.output_shape
        return 2 * out_height * out_width * self.kernel_size**2

    def make_inputs(self, seed: int = SEED) -> tuple[np.ndarray, np.ndarray]:
        """``(image, kernel)``: random normal values of the case's dtype."""
        rng = np.random.default_rng(seed)
        return (_random(rng, (self.image_size,) * 2, self.dtype),
                _random(rng, (self.kernel_size,) * 2, self.dtype))

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
    rate_unit = FLOPS

    @property
    def case_id(self) -> str:
        return f"{self.op}-{self.name}-{self.dtype}"

    @property
    def label(self) -> str:
        padding = self.padding if isinstance(self.padding, str) else f"p{self.padding}"
        stride = f" s{self.stride}" if self.stride != 1 else ""
        return (f"{self.name} N{self.batch} C{self.in_channels} {self.height}x{self.width} "
                f"F{self.out_channels} k{self.kernel_size} {padding}{stride} {self.dtype}")

    @property
    def input_shape(self) -> tuple[int, int, int, int]:
        return (self.batch, self.in_channels, self.height, self.width)

    @property
    def output_shape(self) -> tuple[int, int, int, int]:
        pad = 0 if self.padding == "valid" else self.padding
        out_height = (self.height + 2 * pad - self.kernel_size) // self.stride + 1
        out_width = (self.width + 2 * pad - self.kernel_size) // self.stride + 1
        return (self.batch, self.out_channels, out_height, out_width)

    @property
    def work(self) -> int:
        """Flops: ``2 * outputs * C * kh * kw``."""
        outputs = int(np.prod(self.output_shape))
        return 2 * outputs * self.in_channels * self.kernel_size**2

    def make_inputs(self, seed: int = SEED) -> tuple[np.ndarray, np.ndarray]:
        """``(x, weight)``: random normal values of the layer's dtype."""
        rng = np.random.default_rng(seed)
        weight_shape = (self.out_channels, self.in_channels, self.kernel_size, self.kernel_size)
        return (_random(rng, self.input_shape, self.dtype),
                _random(rng, weight_shape, self.dtype))

    def scaled_down(self) -> Conv2dLayer:
        """One image, at most two filters, a small image: the same work per output."""
        side = max(self.kernel_size, 4)
        return dataclasses.replace(self.one_image(), height=side, width=side)

    def one_image(self) -> Conv2dLayer:
        """One image and at most two filters, full size: the same work per output plane."""
        return dataclasses.replace(self, batch=1, out_channels=min(self.out_channels, 2))


@dataclass(frozen=True)
class UnfoldCase:
    """C3: ``unfold`` (im2col) of a layer's input with the layer's kernel, stride and padding.

    Work: bytes of the input read once and of the columns written once.
    """

    layer: Conv2dLayer
    op = "c3"
    rate_unit = BYTES

    @property
    def dtype(self) -> str:
        return self.layer.dtype

    @property
    def case_id(self) -> str:
        return f"c3-{self.layer.name}-n{self.layer.batch}-{self.dtype}"

    @property
    def label(self) -> str:
        layer = self.layer
        padding = layer.padding if isinstance(layer.padding, str) else f"p{layer.padding}"
        stride = f" s{layer.stride}" if layer.stride != 1 else ""
        return (f"{layer.name} input N{layer.batch} C{layer.in_channels} "
                f"{layer.height}x{layer.width} k{layer.kernel_size} {padding}{stride} "
                f"{self.dtype}")

    @property
    def output_shape(self) -> tuple[int, int, int]:
        layer = self.layer
        _, _, out_height, out_width = layer.output_shape
        return (layer.batch, layer.in_channels * layer.kernel_size**2, out_height * out_width)

    @property
    def work(self) -> int:
        elements = np.prod(self.layer.input_shape) + np.prod(self.output_shape)
        return int(elements) * _itemsize(self.dtype)

    def make_inputs(self, seed: int = SEED) -> tuple[np.ndarray]:
        """``(x,)``: the layer's input."""
        return self.layer.make_inputs(seed)[:1]

    def scaled_down(self) -> UnfoldCase:
        return UnfoldCase(self.layer.scaled_down())


@dataclass(frozen=True)
class PoolCase:
    """C4: pooling of an NCHW batch; ``kind`` 'max', 'avg', 'global_max' or 'global_avg'.

    Work: bytes of the input read once and of the output written once.
    """

    kind: str
    shape: tuple[int, int, int, int]
    kernel_size: int = 0
    stride: int = 0
    padding: int = 0
    dtype: str = "float32"
    op = "c4"
    rate_unit = BYTES

    @property
    def is_global(self) -> bool:
        return self.kind.startswith("global")

    @property
    def window(self) -> str:
        if self.is_global:
            return ""
        padding = f" p{self.padding}" if self.padding else ""
        return f" k{self.kernel_size} s{self.stride}{padding}"

    @property
    def name(self) -> str:
        """``'max k3 s2 p1'``, ``'global avg'``: the pooling without the shape."""
        return self.kind.replace("_", " ") + self.window

    @property
    def case_id(self) -> str:
        return f"c4-{self.name.replace(' ', '-')}-{_shape_text(self.shape)}"

    @property
    def label(self) -> str:
        return f"{self.name} {_shape_text(self.shape)} {self.dtype}"

    @property
    def output_shape(self) -> tuple[int, ...]:
        batch, channels, height, width = self.shape
        if self.is_global:
            return (batch, channels)
        k, s, p = self.kernel_size, self.stride, self.padding
        return (batch, channels, (height + 2 * p - k) // s + 1, (width + 2 * p - k) // s + 1)

    @property
    def work(self) -> int:
        elements = np.prod(self.shape) + np.prod(self.output_shape)
        return int(elements) * _itemsize(self.dtype)

    def make_inputs(self, seed: int = SEED) -> tuple[np.ndarray]:
        """``(x,)``."""
        return (_random(np.random.default_rng(seed), self.shape, self.dtype),)

    def scaled_down(self) -> PoolCase:
        """One image of two channels, 16 x 16."""
        return dataclasses.replace(self, shape=(1, 2, 16, 16))


@dataclass(frozen=True)
class NormCase:
    """C5: a normalisation's forward or backward pass over an NCHW batch.

    ``kind`` is 'batch' (training statistics), 'layer' (over C, H, W, with
    elementwise weight and bias), 'instance' or 'group' (``groups`` groups).
    Work: bytes of ``x`` (and ``grad_output``) read once and the result
    written once, parameters included.
    """

    kind: str
    direction: str
    shape: tuple[int, int, int, int]
    groups: int = 1
    dtype: str = "float32"
    op = "c5"
    rate_unit = BYTES

    @property
    def case_id(self) -> str:
        return f"c5-{self.kind}-{self.direction}-{_shape_text(self.shape)}"

    @property
    def label(self) -> str:
        groups = f" ({self.groups} groups)" if self.kind == "group" else ""
        return f"{self.kind}{groups} {self.direction} {_shape_text(self.shape)} {self.dtype}"

    @property
    def param_shape(self) -> tuple[int, ...]:
        return self.shape[1:] if self.kind == "layer" else self.shape[1:2]

    @property
    def work(self) -> int:
        # forward: read x, weight, bias, write y; backward: read dy, x, weight,
        # write dx, dweight, dbias.
        streams = 2 if self.direction == "forward" else 3
        elements = streams * (np.prod(self.shape) + np.prod(self.param_shape))
        return int(elements) * _itemsize(self.dtype)

    def make_inputs(self, seed: int = SEED) -> tuple[np.ndarray, ...]:
        """``(x, weight, bias)`` forward, ``(grad_output, x, weight, bias)`` backward."""
        rng = np.random.default_rng(seed)
        x = _random(rng, self.shape, self.dtype)
        weight, bias = (_random(rng, self.param_shape, self.dtype) for _ in range(2))
        if self.direction == "forward":
            return x, weight, bias
        return _random(rng, self.shape, self.dtype), x, weight, bias

    def scaled_down(self) -> NormCase:
        """Two images of 6 x 6, the same channels and groups."""
        return dataclasses.replace(self, shape=(2, self.shape[1], 6, 6))


@dataclass(frozen=True)
class ConvBackwardCase:
    """C6: ``conv2d_backward`` of a layer: the input, weight and bias gradients.

    Work: the flops of the input and the weight gradients, each as many as
    the forward pass (the bias gradient is a sum, not counted).
    """

    layer: Conv2dLayer
    op = "c6"
    rate_unit = FLOPS

    @property
    def dtype(self) -> str:
        return self.layer.dtype

    @property
    def case_id(self) -> str:
        return f"c6-{self.layer.name}-{self.dtype}"

    @property
    def label(self) -> str:
        return self.layer.label

    @property
    def work(self) -> int:
        return 2 * self.layer.work

    def make_inputs(self, seed: int = SEED) -> tuple[np.ndarray, ...]:
        """``(grad_output, x, weight)``."""
        x, weight = self.layer.make_inputs(seed)
        grad = _random(np.random.default_rng(seed + 1), self.layer.output_shape, self.dtype)
        return grad, x, weight

    def scaled_down(self) -> ConvBackwardCase:
        return ConvBackwardCase(self.layer.scaled_down())


@dataclass(frozen=True)
class LatencyCase:
    """C7: seconds to ``import fastcorr``, or of a first ``conv2d`` call, in a fresh process.

    ``cache`` is 'cold' (an empty ``NUMBA_CACHE_DIR``: compilation) or
    'warm' (a cache filled by an earlier process: loading); ``layer`` is the
    call's shapes (None for the import).
    """

    what: str
    cache: str | None = None
    layer: Conv2dLayer | None = None
    op = "c7"
    rate_unit = None
    work = 0
    dtype = "float32"

    @property
    def case_id(self) -> str:
        return "-".join(filter(None, ["c7", self.what, self.cache]))

    @property
    def label(self) -> str:
        if self.what == "import":
            return "import fastcorr"
        return f"first conv2d call, {self.cache} cache ({self.layer.label})"


@dataclass(frozen=True)
class MemoryCase:
    """C8: peak resident memory of one call of ``workload`` (a C1 or C2 case) on 'auto'."""

    workload: Correlate2dCase | Conv2dLayer
    op = "c8"
    rate_unit = None
    work = 0

    @property
    def dtype(self) -> str:
        return self.workload.dtype

    @property
    def case_id(self) -> str:
        return f"c8-{self.workload.case_id}"

    @property
    def label(self) -> str:
        function = "correlate2d" if self.workload.op == "c1" else "conv2d"
        return f"{function} {self.workload.label}"


@dataclass(frozen=True)
class GpuCase:
    """G1-G3: a C1, C2, C4 or C5 case at BENCH.md's GPU size, timed on the GPU.

    ``workload`` is the CPU case (its label, work, rate unit, dtype and
    inputs are the GPU case's); :mod:`~fastcorr.bench.gpu` times it.
    ``min_bytes`` is what must move at the least, each input read once and
    the output written once: the work of pooling and normalisation, and the
    figure BENCH.md's bandwidth target for G1 at k = 3 is judged on.
    """

    op: str
    workload: Correlate2dCase | Conv2dLayer | PoolCase | NormCase

    @property
    def case_id(self) -> str:
        """``'g1-4096-k3-same-float32'``: the workload's id under the GPU op."""
        return f"{self.op}-{self.workload.case_id.partition('-')[2]}"

    @property
    def label(self) -> str:
        return self.workload.label

    @property
    def work(self) -> int:
        return self.workload.work

    @property
    def rate_unit(self) -> str:
        return self.workload.rate_unit

    @property
    def dtype(self) -> str:
        return self.workload.dtype

    @property
    def min_bytes(self) -> int:
        workload = self.workload
        if workload.rate_unit == BYTES:
            return workload.work
        if isinstance(workload, Correlate2dCase):
            shapes = [(workload.image_size,) * 2, (workload.kernel_size,) * 2,
                      workload.output_shape]
        else:
            weight = (workload.out_channels, workload.in_channels) + (workload.kernel_size,) * 2
            shapes = [workload.input_shape, weight, workload.output_shape]
        return sum(int(np.prod(shape)) for shape in shapes) * _itemsize(self.dtype)

    def make_inputs(self, seed: int = SEED) -> tuple[np.ndarray, ...]:
        """The workload's inputs (host arrays)."""
        return self.workload.make_inputs(seed)

    def retyped(self, dtype: str) -> GpuCase:
        return dataclasses.replace(self, workload=dataclasses.replace(self.workload, dtype=dtype))


C2_LAYERS = (
    Conv2dLayer("L1", 8, 64, 56, 56, 64, 3, padding=1),
    Conv2dLayer("L2", 8, 128, 28, 28, 128, 3, padding=1),
    Conv2dLayer("L3", 8, 256, 14, 14, 256, 3, padding=1),
    Conv2dLayer("L4", 8, 3, 224, 224, 64, 7, stride=2, padding=3),
    Conv2dLayer("L5", 8, 64, 56, 56, 256, 1),
    Conv2dLayer("L6", 1, 50, 50, 50, 1, 3, padding="valid"),
    Conv2dLayer("L7", 20, 20, 50, 50, 20, 3, padding=1),
)
_LAYERS = {layer.name: layer for layer in C2_LAYERS}
C4_SHAPE = (32, 64, 112, 112)
# shape: groups of group norm
C5_SHAPES = {(32, 64, 56, 56): 8, (20, 20, 50, 50): 4}
C5_KINDS = ("batch", "layer", "instance", "group")


def _c1(modes, kernel_sizes, dtype, image_size=C1_IMAGE_SIZE):
    return [Correlate2dCase(image_size, k, mode, dtype) for mode in modes for k in kernel_sizes]


def _c2(names=None):
    """Layers by name (default L1-L7 in float32 and L1 in float64 too)."""
    if names is None:
        return list(C2_LAYERS) + [dataclasses.replace(C2_LAYERS[0], dtype="float64")]
    return [_LAYERS[name] for name in names]


def _c3(names=("L1", "L4")):
    return [UnfoldCase(dataclasses.replace(_LAYERS[name], batch=1)) for name in names]


def _c4(shape=C4_SHAPE, names=None):
    cases = [PoolCase("max", shape, 2, 2), PoolCase("max", shape, 3, 2, 1),
             PoolCase("avg", shape, 2, 2), PoolCase("global_avg", shape),
             PoolCase("global_max", shape)]
    return [case for case in cases if names is None or case.name in names]


def _c5(shapes=C5_SHAPES, kinds=C5_KINDS, directions=("forward", "backward")):
    return [NormCase(kind, direction, shape, groups)
            for shape, groups in shapes.items() for kind in kinds for direction in directions]


def _c6(names=("L1", "L2", "L7")):
    return [ConvBackwardCase(_LAYERS[name]) for name in names]


def _c7(layer=C2_LAYERS[0], caches=("cold", "warm")):
    return [LatencyCase("import")] + [LatencyCase("conv2d", cache, layer) for cache in caches]


def _c8(image_size=4096, layer=C2_LAYERS[3]):
    return [MemoryCase(Correlate2dCase(image_size, 31, "same")), MemoryCase(layer)]


# BENCH.md's GPU sizes: G1 is C1 at 4096 x 4096, G3 is C4 and C5 at 4x the elements (batch).
G1_IMAGE_SIZE = 4096
G3_BATCH_SCALE = 4


def _gpu(op, cases):
    return [GpuCase(op, case) for case in cases]


def _g3_shape(shape):
    return (G3_BATCH_SCALE * shape[0], *shape[1:])


_G3_C5_SHAPES = {_g3_shape(shape): groups for shape, groups in C5_SHAPES.items()}
_DEFAULT_G = {
    "g1": _gpu("g1", _c1(["same"], C1_KERNEL_SIZES, "float32", G1_IMAGE_SIZE)
               + _c1(["same"], (3,), "float64", G1_IMAGE_SIZE)),
    "g2": _gpu("g2", _c2()),
    "g3": _gpu("g3", _c4(_g3_shape(C4_SHAPE)) + _c5(_G3_C5_SHAPES)),
}
_QUICK_C1 = _c1(["same"], (3, 31), "float32") + _c1(["same"], (3,), "float64")
# Not float64 at k = 31: torch takes 10 s a call there.
_DEFAULT_C1 = _c1(["same"], C1_KERNEL_SIZES, "float32") + _c1(["same"], (3,), "float64")
_SMALL_C5 = {(20, 20, 50, 50): 4}

PROFILES = {
    # Tiny shapes that exercise every code path in seconds (tests, --smoke).
    "smoke": {
        "c1": _c1(["same", "valid"], (3,), "float32", image_size=24)
        + _c1(["full"], (5,), "float64", image_size=24),
        "c2": [Conv2dLayer("L1", 1, 4, 8, 8, 4, 3, padding=1),
               Conv2dLayer("L4", 1, 3, 16, 16, 4, 7, stride=2, padding=3),
               Conv2dLayer("L6", 1, 5, 6, 6, 1, 3, padding="valid", dtype="float64")],
        "c3": [UnfoldCase(Conv2dLayer("L4", 1, 3, 16, 16, 4, 7, stride=2, padding=3))],
        "c4": _c4((2, 3, 12, 12)),
        "c5": _c5({(2, 4, 6, 6): 2}),
        "c6": [ConvBackwardCase(Conv2dLayer("L7", 2, 3, 8, 8, 4, 3, padding=1))],
        "c7": _c7(Conv2dLayer("L1", 1, 2, 8, 8, 2, 3, padding=1)),
        "c8": _c8(image_size=64, layer=Conv2dLayer("L4", 1, 3, 32, 32, 4, 7, stride=2,
                                                   padding=3)),
        # Few and tiny: numba's CUDA simulator runs every GPU thread as a Python thread.
        "g1": _gpu("g1", _c1(["same"], (3,), "float32", image_size=8)),
        "g2": _gpu("g2", [Conv2dLayer("L1", 1, 2, 4, 4, 2, 3, padding=1)]),
        "g3": _gpu("g3", [PoolCase("max", (1, 2, 4, 4), 2, 2),
                          NormCase("group", "backward", (2, 4, 3, 3), 2)]),
    },
    # --quick (under a minute on 2 cores): a few cases of every CPU workload.
    "quick": {"c1": _QUICK_C1, "c2": _c2(["L1", "L4", "L7"]), "c3": _c3(["L1"]),
              "c4": _c4(names=("max k3 s2 p1", "global avg")),
              "c5": _c5(_SMALL_C5, ("batch", "group")), "c6": _c6(["L7"]),
              "c7": [LatencyCase("import"), LatencyCase("conv2d", "warm", C2_LAYERS[0])],
              "c8": [],
              "g1": _gpu("g1", _c1(["same"], (3, 31), "float32", G1_IMAGE_SIZE)),
              "g2": _gpu("g2", _c2(["L1", "L4", "L7"])),
              "g3": _gpu("g3", _c4(_g3_shape(C4_SHAPE), ("max k3 s2 p1", "global avg"))
                         + _c5({_g3_shape(shape): 4 for shape in _SMALL_C5}, ("batch", "group")))},
    # The default (about 3 minutes): every workload at BENCH.md's sizes, C1 in mode 'same'
    # only (float32, and float64 at k = 3).
    "default": {"c1": _DEFAULT_C1, "c2": _c2(), "c3": _c3(), "c4": _c4(), "c5": _c5(),
                "c6": _c6(), "c7": _c7(), "c8": _c8(), **_DEFAULT_G},
    # --full and bench/: everything, every C1 mode and dtype (4 kernels x 3 modes x 2 dtypes).
    "full": {"c1": [case for dtype in DTYPES for case in _c1(C1_MODES, C1_KERNEL_SIZES, dtype)],
             "c2": _c2(), "c3": _c3(), "c4": _c4(), "c5": _c5(), "c6": _c6(), "c7": _c7(),
             "c8": _c8(), **_DEFAULT_G,
             "g1": _gpu("g1", [case for dtype in DTYPES
                               for case in _c1(C1_MODES, C1_KERNEL_SIZES, dtype, G1_IMAGE_SIZE)])},
}


def select(op: str, profile: str, dtypes=None) -> list:
    """The cases of workload ``op`` in ``profile``.

    Parameters
    ----------
    op : {'c1', ..., 'c8', 'g1', 'g2', 'g3'}
    profile : {'smoke', 'quick', 'default', 'full'}
    dtypes : sequence of str, optional
        For C1, C2, G1 and G2: instead of the profile's mix of dtypes, every
        shape of the profile in each of these dtypes.  The other workloads
        are float32 only (BENCH.md) and ignore it.

    Returns
    -------
    list
        Cases: ``Correlate2dCase``, ``Conv2dLayer``, ``UnfoldCase``, ...,
        ``GpuCase``.

    Examples
    --------
    >>> [case.label for case in select("c4", "quick")]
    ['max k3 s2 p1 32x64x112x112 float32', 'global avg 32x64x112x112 float32']
    >>> [case.case_id for case in select("g1", "quick")]
    ['g1-4096-k3-same-float32', 'g1-4096-k31-same-float32']
    """
    cases = PROFILES[profile][op]
    if dtypes is None or op not in ("c1", "c2", "g1", "g2"):
        return list(cases)
    retyped = [case.retyped(dtype) if isinstance(case, GpuCase)
               else dataclasses.replace(case, dtype=dtype) for case in cases for dtype in dtypes]
    return list(dict.fromkeys(retyped))
