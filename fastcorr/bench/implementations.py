"""Who computes each workload: fastcorr's backends and the peers, as one registry.

Examples
--------
>>> from fastcorr.bench.implementations import for_op
>>> [impl.key for impl in for_op("c2")]
['numba', 'auto', 'numpy', 'scipy', 'naive', 'torch', 'im2col-matmul']
"""

from __future__ import annotations

import importlib.util
import operator
from collections.abc import Callable
from dataclasses import dataclass

import fastcorr

# Not fastcorr.backends: importing the subpackage fastcorr.backends rebinds that name.
from fastcorr._dispatch import backends as backend_status

from . import peers

FASTCORR_KEYS = ("numba", "auto", "numpy", "scipy", "naive")


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
        The first call includes compilation, so it never counts as a sample.
    shrink : callable, optional
        For implementations too slow for the full workload: ``shrink(case)``
        is a smaller case with the same work per output, timed instead, and
        the time extrapolated by flops.
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


def _fastcorr_correlate2d(backend: str):
    def bind(case, image, kernel):
        return lambda: fastcorr.correlate2d(image, kernel, mode=case.mode, backend=backend)
    return bind


def _fastcorr_conv2d(backend: str):
    def bind(case, x, weight):
        return lambda: fastcorr.conv2d(x, weight, stride=case.stride, padding=case.padding,
                                       backend=backend)
    return bind


def _fastcorr(op: str, key: str) -> Implementation:
    bind = _fastcorr_correlate2d(key) if op == "c1" else _fastcorr_conv2d(key)
    shrink = None
    if key == "naive":
        shrink = operator.methodcaller("scaled_down")
    elif key == "scipy" and op == "c2":  # one scipy.signal.correlate per (image, filter)
        shrink = operator.methodcaller("one_image")
    # The numpy backend's conv2d is one tensordot (BLAS) per kernel offset.
    return Implementation(key, f"fastcorr[{key}]", "fastcorr", bind,
                          uses_blas=(op == "c2" and key == "numpy"),
                          compiles=key in ("numba", "auto"), shrink=shrink)


_PEERS = {
    "c1": (
        Implementation("correlate2d", "scipy.signal.correlate2d", "peer",
                       peers.bind_scipy_correlate2d),
        Implementation("fftconvolve", "scipy.signal.fftconvolve", "peer",
                       peers.bind_scipy_fftconvolve),
        Implementation("torch", "torch conv2d", "peer", peers.bind_torch_correlate2d,
                       requires="torch"),
        Implementation("cv2", "cv2.filter2D", "peer", peers.bind_cv2_filter2d, requires="cv2"),
    ),
    "c2": (
        Implementation("torch", "torch conv2d", "peer", peers.bind_torch_conv2d,
                       requires="torch"),
        Implementation("im2col-matmul", "numpy im2col+matmul", "peer", peers.bind_im2col_matmul,
                       uses_blas=True),
    ),
}

REFERENCES = {"c1": peers.reference_c1, "c2": peers.reference_c2}
# What each workload's speed-ups are quoted against (docs/benchmarks.md).
BASELINES = {"c1": ("correlate2d", "torch"), "c2": ("torch",)}


def for_op(op: str, backends=None, peer_keys=None) -> list[Implementation]:
    """The implementations of workload ``op``, fastcorr's first.

    Parameters
    ----------
    op : {'c1', 'c2'}
    backends : iterable of str, optional
        fastcorr backends to include (default: all of ``FASTCORR_KEYS``).
    peer_keys : iterable of str, optional
        Peers to include by key (default: all).

    Returns
    -------
    list of Implementation
        Unavailable ones included: the runner reports why they did not run.
    """
    chosen_backends = FASTCORR_KEYS if backends is None else tuple(backends)
    own = [_fastcorr(op, key) for key in FASTCORR_KEYS if key in chosen_backends]
    others = [impl for impl in _PEERS[op] if peer_keys is None or impl.key in peer_keys]
    return own + others


def peer_keys(op: str | None = None) -> list[str]:
    """Keys of the peers of ``op`` (or of every workload)."""
    ops = [op] if op else list(_PEERS)
    return list(dict.fromkeys(impl.key for name in ops for impl in _PEERS[name]))
