"""Who computes each workload: fastcorr's backends and the peers, as one registry.

Examples
--------
>>> from fastcorr.bench.implementations import for_op
>>> [impl.key for impl in for_op("c2")]
['numba', 'auto', 'numpy', 'scipy', 'naive', 'torch', 'im2col-matmul']
>>> [impl.key for impl in for_op("c5")]
['numba', 'auto', 'numpy', 'naive', 'torch']
"""

from __future__ import annotations

import importlib.util
import operator
from collections.abc import Callable
from dataclasses import dataclass

import fastcorr
from fastcorr._dispatch import backends as backend_status

from . import peers

FASTCORR_KEYS = ("numba", "auto", "numpy", "scipy", "naive")
# Selectable with --backends but not run by default (unavailable on a CPU-only machine).
OPTIONAL_KEYS = ("cuda",)
# SciPy has correlations only: no im2col, pooling, normalisation or gradients.
_SCIPY_OPS = ("c1", "c2")
# The numpy backend's convolutions are BLAS calls (tensordot) per kernel offset.
_NUMPY_BLAS_OPS = ("c2", "c6")


@dataclass(frozen=True)
class Implementation:
    """One way to compute a workload.

    Attributes
    ----------
    key : str
        Short name for ``--backends`` / ``--peers``: a fastcorr backend or a peer.
    name : str
        Name in tables, e.g. ``'fastcorr[numba]'``, ``'scipy.signal.correlate2d'``.
    family : {'fastcorr', 'peer'}
    bind : callable
        ``bind(case, *inputs)`` -> zero-argument callable doing the timed work.
    requires : str, optional
        Module a peer needs; the implementation is unavailable without it.
    uses_blas : bool
        Calls a BLAS whose threads keep spinning afterwards (docs/benchmarks.md),
        so the runner pauses after it before timing anything else.
    compiles : bool
        The first call includes compilation or other one-time setup (torch
        creates its oneDNN primitives and autograd threads), so it never
        counts as a sample.
    shrink : callable, optional
        For implementations too slow for the full workload: ``shrink(case)``
        is a smaller case with the same work per output, timed instead, and
        the time extrapolated by the ratio of the cases' work.
    """

    key: str
    name: str
    family: str
    bind: Callable
    requires: str | None = None
    uses_blas: bool = False
    compiles: bool = False
    shrink: Callable | None = None

    def unavailable_reason(self) -> str | None:
        """Why this implementation cannot run here, or None."""
        if self.family == "fastcorr" and self.key != "auto":
            status = backend_status()[self.key]
            return None if status["available"] else status["reason"]
        if self.requires and importlib.util.find_spec(self.requires) is None:
            return f"{self.requires} is not installed"
        return None


def _pool(case, x, backend):
    if case.is_global:
        pool = getattr(fastcorr, f"{case.kind}_pool2d")
        return lambda: pool(x, backend=backend)
    pool = fastcorr.max_pool2d if case.kind == "max" else fastcorr.avg_pool2d
    return lambda: pool(x, case.kernel_size, case.stride, case.padding, backend=backend)


def _norm(case, *inputs, backend):
    """The case's forward (``x, weight, bias``) or backward (``grad, x, weight, bias``) call."""
    kind, backward = case.kind, case.direction == "backward"
    function = getattr(fastcorr, f"{kind}_norm" + ("_backward" if backward else ""))
    # The positional arguments between x and weight, per normalisation.
    middle = {"batch": (None, None), "layer": (case.shape[1:],), "instance": (None, None),
              "group": (case.groups,)}[kind]
    *data, weight, bias = inputs
    options = {"training": True} if kind == "batch" else {}
    return lambda: function(*data, *middle, weight, bias, backend=backend, **options)


def _conv_args(layer) -> dict:
    return {"stride": layer.stride, "padding": layer.padding}


_FASTCORR_BINDS = {
    "c1": lambda case, image, kernel, backend: lambda: fastcorr.correlate2d(
        image, kernel, mode=case.mode, backend=backend),
    "c2": lambda case, x, weight, backend: lambda: fastcorr.conv2d(
        x, weight, **_conv_args(case), backend=backend),
    "c3": lambda case, x, backend: lambda: fastcorr.unfold(
        x, case.layer.kernel_size, **_conv_args(case.layer), backend=backend),
    "c4": lambda case, x, backend: _pool(case, x, backend),
    "c5": lambda case, *inputs, backend: _norm(case, *inputs, backend=backend),
    "c6": lambda case, grad, x, weight, backend: lambda: fastcorr.conv2d_backward(
        grad, x, weight, **_conv_args(case.layer), backend=backend),
}


def bind_fastcorr(case, backend: str, *inputs) -> Callable:
    """A zero-argument callable running fastcorr's function of ``case`` on ``backend``.

    Examples
    --------
    >>> from fastcorr.bench.workloads import PoolCase
    >>> case = PoolCase("global_max", (1, 2, 3, 3))
    >>> bind_fastcorr(case, "numpy", *case.make_inputs())().shape
    (1, 2)
    """
    return _FASTCORR_BINDS[case.op](case, *inputs, backend=backend)


def _fastcorr(op: str, key: str) -> Implementation:
    shrink = None
    if key == "naive":
        shrink = operator.methodcaller("scaled_down")
    elif key == "scipy" and op == "c2":  # one scipy.signal.correlate per (image, filter)
        shrink = operator.methodcaller("one_image")

    def bind(case, *inputs):
        return bind_fastcorr(case, key, *inputs)

    return Implementation(key, f"fastcorr[{key}]", "fastcorr", bind,
                          uses_blas=(op in _NUMPY_BLAS_OPS and key == "numpy"),
                          compiles=key in ("numba", "auto"), shrink=shrink)


_TORCH = "torch"
_PEERS = {
    "c1": (
        Implementation("correlate2d", "scipy.signal.correlate2d", "peer",
                       peers.bind_scipy_correlate2d),
        Implementation("fftconvolve", "scipy.signal.fftconvolve", "peer",
                       peers.bind_scipy_fftconvolve),
        Implementation("torch", "torch conv2d", "peer", peers.bind_torch_correlate2d,
                       requires=_TORCH, compiles=True),
        Implementation("cv2", "cv2.filter2D", "peer", peers.bind_cv2_filter2d, requires="cv2"),
    ),
    "c2": (
        Implementation("torch", "torch conv2d", "peer", peers.bind_torch_conv2d,
                       requires=_TORCH, compiles=True),
        Implementation("im2col-matmul", "numpy im2col+matmul", "peer", peers.bind_im2col_matmul,
                       uses_blas=True),
    ),
    "c3": (
        Implementation("torch", "torch unfold", "peer", peers.bind_torch_unfold,
                       requires=_TORCH, compiles=True),
        Implementation("sliding-window", "numpy sliding_window_view copy", "peer",
                       peers.bind_sliding_window_unfold),
    ),
    "c4": (Implementation("torch", "torch pooling", "peer", peers.bind_torch_pool,
                          requires=_TORCH, compiles=True),),
    "c5": (Implementation("torch", "torch", "peer", peers.bind_torch_norm,
                          requires=_TORCH, compiles=True),),
    "c6": (Implementation("torch", "torch autograd", "peer", peers.bind_torch_conv2d_backward,
                          requires=_TORCH, compiles=True),),
}

# What each workload's speed-ups are quoted against (docs/benchmarks.md); on the GPU also
# the CPU: fastcorr's 'auto' on the host arrays (fastcorr/bench/gpu.py).
BASELINES = {"c1": ("correlate2d", "torch"), "c2": ("torch",), "c3": ("sliding-window", "torch"),
             "c4": ("torch",), "c5": ("torch",), "c6": ("torch",),
             "g1": ("cupy", "torch", "auto"), "g2": ("torch", "auto"), "g3": ("torch", "auto")}


def backend_keys(op: str) -> tuple[str, ...]:
    """fastcorr backends that have workload ``op`` (SciPy only has the correlations)."""
    return tuple(key for key in FASTCORR_KEYS + OPTIONAL_KEYS
                 if key != "scipy" or op in _SCIPY_OPS)


def for_op(op: str, backends=None, peer_keys=None) -> list[Implementation]:
    """The implementations of workload ``op``, fastcorr's first.

    Parameters
    ----------
    op : {'c1', ..., 'c6'}
    backends : iterable of str, optional
        fastcorr backends to include (default: all of ``FASTCORR_KEYS`` that
        have ``op``).
    peer_keys : iterable of str, optional
        Peers to include by key (default: all).

    Returns
    -------
    list of Implementation
        Unavailable ones included: the runner reports why they did not run.
    """
    chosen_backends = FASTCORR_KEYS if backends is None else tuple(backends)
    own = [_fastcorr(op, key) for key in backend_keys(op) if key in chosen_backends]
    others = [impl for impl in _PEERS[op] if peer_keys is None or impl.key in peer_keys]
    return own + others


def peer_keys(op: str | None = None) -> list[str]:
    """Keys of the peers of ``op`` (or of every workload)."""
    ops = [op] if op else list(_PEERS)
    return list(dict.fromkeys(impl.key for name in ops for impl in _PEERS[name]))
