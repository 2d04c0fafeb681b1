"""Shared test helpers: backend list, dtype-derived tolerances, comparisons, references.

Tolerance rule (SPEC "Compatible": rtol 1e-5 for float32, 1e-12 for float64,
relative to the output's max magnitude).  A result ``got`` matches ``ref`` when

    |got - ref| <= rtol * max(1, max|ref|)       elementwise,

with ``rtol = max(base(dtype), 10 * eps(dtype) * sqrt(terms))``.  ``terms`` is the
number of products summed into one output element (kernel size times input
channels per group): rounding errors of a sum of ``terms`` products grow like
``eps * sqrt(terms)`` for random data (a random walk of per-addition errors),
and the factor 10 covers the extra rounding of FFT paths and of the reference
itself.  For float32 this exceeds the base 1e-5 only for more than ~70 terms;
for float64 never in these tests.  Integers (and bool) must match exactly.
References are computed in float64/complex128 whenever the inputs are floating,
so the comparison measures fastcorr's rounding only.
"""

from __future__ import annotations

import math

import numpy as np

import fastcorr
import fastcorr._dispatch

SEED = 20240601

# The CPU backends this machine has, plus 'auto'.  'cuda' is tested for its
# NotImplementedError only (tests/test_dispatch.py).  The status comes from
# fastcorr._dispatch.backends, the function behind fastcorr.backends, so that a
# fault in the public name (tested in test_dispatch.py) cannot hide every test.
_STATUS = fastcorr._dispatch.backends()
CPU_BACKENDS = [
    name for name in ("naive", "numpy", "scipy", "numba") if _STATUS[name]["available"]
]
ALL_BACKENDS = CPU_BACKENDS + ["auto"]
FAST_BACKENDS = [b for b in ALL_BACKENDS if b != "naive"]  # for sizes too big for plain loops

_BASE_RTOL = {
    np.dtype(np.float16): 1e-2,
    np.dtype(np.float32): 1e-5,
    np.dtype(np.complex64): 1e-5,
    np.dtype(np.float64): 1e-12,
    np.dtype(np.complex128): 1e-12,
}


def rtol_for(dtype, terms: int = 1) -> float:
    """Relative tolerance for results of ``dtype`` summing ``terms`` products (0: exact)."""
    dtype = np.dtype(dtype)
    if dtype.kind in "biu":
        return 0.0
    eps = float(np.finfo(dtype).eps)
    return max(_BASE_RTOL[dtype], 10.0 * eps * math.sqrt(max(int(terms), 1)))


def assert_close(got, ref, *, dtype=None, terms: int = 1, rtol: float | None = None,
                 context: str = ""):
    """Assert ``got`` is an ndarray with ``ref``'s shape, the expected dtype, and close values.

    ``dtype`` is the expected result dtype (default: ``ref.dtype``); ``ref`` may
    be computed in higher precision.  NaN and +-Inf must sit where they sit in
    ``ref``.
    """
    ref = np.asarray(ref)
    expected_dtype = np.dtype(dtype) if dtype is not None else ref.dtype
    assert isinstance(got, np.ndarray), f"{context}: expected a numpy.ndarray, got {type(got)}"
    assert got.shape == ref.shape, f"{context}: shape {got.shape} != expected {ref.shape}"
    assert got.dtype == expected_dtype, (
        f"{context}: dtype {got.dtype} != expected {expected_dtype}"
    )
    if expected_dtype.kind in "biu":
        np.testing.assert_array_equal(got, ref, err_msg=context, strict=False)
        return
    tol = rtol_for(expected_dtype, terms) if rtol is None else rtol
    wide = np.complex128 if expected_dtype.kind == "c" or ref.dtype.kind == "c" else np.float64
    got_w = got.astype(wide)
    ref_w = ref.astype(wide)
    nan_ref, nan_got = np.isnan(ref_w), np.isnan(got_w)
    np.testing.assert_array_equal(nan_got, nan_ref, err_msg=f"{context}: NaN positions differ")
    inf_ref = np.isinf(ref_w)
    np.testing.assert_array_equal(np.isinf(got_w), inf_ref,
                                  err_msg=f"{context}: Inf positions differ")
    if inf_ref.any():
        np.testing.assert_array_equal(got_w[inf_ref], ref_w[inf_ref],
                                      err_msg=f"{context}: Inf signs differ")
    finite = np.isfinite(ref_w)
    if not finite.any():
        return
    scale = max(1.0, float(np.abs(ref_w[finite]).max()))
    err = np.abs(got_w[finite] - ref_w[finite])
    worst = float(err.max())
    assert worst <= tol * scale, (
        f"{context}: max abs error {worst:.3g} > rtol {tol:.3g} * scale {scale:.3g} "
        f"(dtype {expected_dtype}, terms {terms})"
    )


def random_array(rng: np.random.Generator, shape, dtype) -> np.ndarray:
    """Random values suited to ``dtype``: floats in [-1, 1), small ints, random bools."""
    dtype = np.dtype(dtype)
    if dtype.kind == "b":
        return rng.random(shape) < 0.5
    if dtype.kind == "u":
        return rng.integers(0, 6, size=shape).astype(dtype)
    if dtype.kind == "i":
        return rng.integers(-5, 6, size=shape).astype(dtype)
    if dtype.kind == "c":
        return (rng.uniform(-1, 1, shape) + 1j * rng.uniform(-1, 1, shape)).astype(dtype)
    return rng.uniform(-1, 1, shape).astype(dtype)


def widen(a: np.ndarray) -> np.ndarray:
    """float -> float64, complex -> complex128; integers and bools unchanged (exact already)."""
    if a.dtype.kind == "f":
        return a.astype(np.float64)
    if a.dtype.kind == "c":
        return a.astype(np.complex128)
    return a


def scipy_reference(func, *arrays, **kwargs):
    """(values, dtype): SciPy's values computed in wide precision, SciPy's result dtype."""
    dtype = func(*arrays, **kwargs).dtype
    values = func(*(widen(a) for a in arrays), **kwargs)
    return values, dtype


def to_torch(a):
    """A float64 torch tensor (torch needs one dtype for x, weight and bias)."""
    import torch

    return torch.from_numpy(np.ascontiguousarray(np.asarray(a, dtype=np.float64)))


def expected_net_dtype(*arrays) -> np.dtype:
    """The network family's result dtype: result_type if float32/float64, else float64."""
    dtype = np.result_type(*[a for a in arrays if a is not None])
    return dtype if dtype in (np.float32, np.float64) else np.dtype(np.float64)


def message_names(excinfo, *words):
    """Assert the exception message names every word (function, parameter, ...)."""
    text = str(excinfo.value)
    for word in words:
        assert word in text, f"message {text!r} does not name {word!r}"


def shrink_cuda_launches(patch) -> None:
    """Small CUDA launches (8 threads per block, 4 x 4 tiles, 8-thread reductions and
    pooling planes), set through ``patch`` (a ``pytest.MonkeyPatch``).

    On the simulator (one Python thread per GPU thread) tiny cases then run in
    seconds, and still span several blocks and every level of the reduction
    trees.  Imports the cuda backend: call it only where CUDA is available.
    """
    from fastcorr.kernels.cuda import _device
    from fastcorr.kernels.cuda import norm as cuda_norm
    from fastcorr.kernels.cuda import pool as cuda_pool

    patch.setattr(_device, "THREADS_PER_BLOCK", 8)
    patch.setattr(_device, "TILE", 4)
    patch.setattr(cuda_norm, "REDUCE_THREADS", 8)
    patch.setattr(cuda_pool, "PLANE_THREADS", 8)
