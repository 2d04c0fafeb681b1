"""Dispatch constants and the choices they drive, in one place.

Every number below was measured by ``tools/measure_crossovers.py`` (run it
to refresh them on another machine: it prints this block).  Each choice is a
small cost model, so that ``method='auto'`` lands near the faster of the
candidates rather than on a hard-coded size threshold.
"""

from __future__ import annotations

import math

import numpy as np

# --- correlate: direct vs FFT --------------------------------------------------------
# direct seconds = (widened) outputs * kernel taps * DIRECT_SECONDS_PER_TAP[backend][kind]
# fft seconds    = FFT_SECONDS_PER_POINT_LOG2[backend][kind] * S * log2(S) + FFT_FIXED_SECONDS
# where S is the number of points of the padded FFT grid (scipy.fft.next_fast_len per axis)
# and 'kind' is 'float32', 'float64', 'complex64' or 'complex128'.  Units: CPU seconds of
# one thread (both methods use all threads alike, so the ranking is the same).
# Measured by tools/measure_crossovers.py on 2026-11-24: CPU time of one thread, 1 thread(s),
# 2-core AMD EPYC (Zen 5, AVX-512), numba 0.68.1, scipy 1.17.1, numpy 2.4.6.
DIRECT_SECONDS_PER_TAP = {
    "numba": {"float32": 1.7e-11, "float64": 3.9e-11, "complex64": 1.0e-10, "complex128": 2.1e-10},
    "numpy": {"float32": 2.3e-10, "float64": 3.9e-10, "complex64": 3.9e-10, "complex128": 8.3e-10},
    "scipy": {"float32": 7.5e-09, "float64": 8.3e-09, "complex64": 8.5e-09, "complex128": 8.2e-09},
}
FFT_SECONDS_PER_POINT_LOG2 = {
    "numba": {"float32": 3.0e-10, "float64": 5.8e-10, "complex64": 7.6e-10, "complex128": 1.7e-09},
    "numpy": {"float32": 4.5e-10, "float64": 4.9e-10, "complex64": 1.9e-09, "complex128": 1.9e-09},
    "scipy": {"float32": 4.2e-10, "float64": 8.9e-10, "complex64": 7.6e-10, "complex128": 1.4e-09},
}
FFT_FIXED_SECONDS = 5.0e-5

# --- conv_forward (numba backend): which algorithm -----------------------------------
# 'implicit_gemm' computes the output on the input's own (widened) grid and
# wastes the extra positions; 'gemm' packs im2col panels instead, which costs
# about GEMM_PACKING_TAPS multiply-adds' worth of time per packed element
# (one element serves every filter of its group).  Same measurement as above.
GEMM_PACKING_TAPS = 66.0
# Filters per group up to which one-filter-at-a-time tap sums ('direct')
# beat 4-filter micro-tiles padded with zero filters.
DIRECT_MAX_FILTERS_PER_GROUP = 2


def _kind(dtype) -> str:
    dtype = np.dtype(dtype)
    if dtype.kind == "c":
        return "complex64" if dtype.itemsize <= 8 else "complex128"
    return "float32" if dtype.itemsize <= 4 else "float64"


def _fft_points(x_shape) -> int:
    import scipy.fft  # imported here: fastcorr's import stays light

    return math.prod(scipy.fft.next_fast_len(int(n), real=True) for n in x_shape)


def correlate_costs(backend, x_shape, kernel_shape, dtype):
    """Modelled seconds ``(direct, fft)`` of one 'valid' correlation on ``backend``."""
    kind = _kind(dtype)
    out_shape = [n - k + 1 for n, k in zip(x_shape, kernel_shape)]
    outputs = math.prod(out_shape)
    if backend == "numba" and len(x_shape) >= 2:
        # The numba kernel computes whole input rows (the widened grid).
        outputs = math.prod(out_shape[:-1]) * x_shape[-1]
    taps = math.prod(kernel_shape)
    direct_rates = DIRECT_SECONDS_PER_TAP.get(backend, DIRECT_SECONDS_PER_TAP["numpy"])
    fft_rates = FFT_SECONDS_PER_POINT_LOG2.get(backend, FFT_SECONDS_PER_POINT_LOG2["numpy"])
    direct = outputs * taps * direct_rates[kind]
    points = _fft_points(x_shape)
    fft = fft_rates[kind] * points * max(1.0, math.log2(points)) + FFT_FIXED_SECONDS
    return direct, fft


def choose_correlate_method(backend, x_shape, kernel_shape, dtype):
    """'direct' or 'fft' for one 'valid' correlation of ``x_shape`` with ``kernel_shape``.

    Parameters
    ----------
    backend : str
        The concrete backend that will run it ('naive', 'numpy', 'scipy', 'numba', 'cuda').
    x_shape, kernel_shape : tuple of int
        Same length; the kernel is no larger than ``x``.
    dtype : numpy dtype
        Integers (and booleans) always go direct: FFTs would round them.

    Returns
    -------
    {'direct', 'fft'}

    Examples
    --------
    >>> import numpy as np
    >>> from fastcorr._tuning import choose_correlate_method
    >>> choose_correlate_method("numba", (1024, 1024), (3, 3), np.dtype(np.float32))
    'direct'
    >>> choose_correlate_method("numba", (1024, 1024), (1, 1), np.dtype(np.int16))
    'direct'
    """
    if backend in ("naive", "cuda") or np.dtype(dtype).kind not in "fc":
        return "direct"  # naive has no FFT; cuda has CuPy's at most, no crossover measured
    if math.prod(kernel_shape) <= 1:
        return "direct"
    direct, fft = correlate_costs(backend, x_shape, kernel_shape, dtype)
    return "fft" if fft < direct else "direct"


def choose_conv_algorithm(x_shape, weight_shape, stride, dilation, groups):
    """The numba backend's algorithm for one ``conv_forward`` call.

    Parameters
    ----------
    x_shape : tuple of 5 ints
        Padded input ``(N, C, D, H, W)``.
    weight_shape : tuple of 5 ints
        ``(F, C // groups, kd, kh, kw)``.
    stride, dilation : 3-tuples of int
    groups : int

    Returns
    -------
    {'implicit_gemm', 'gemm', 'direct'}
        'gemm' for strided convolutions (which runs them as stride phases or
        on im2col panels, see :func:`choose_strided_conv_algorithm`) and 1x1 kernels;
        otherwise 'direct' (one filter at a time) for very few filters per
        group, else whichever of 'implicit_gemm' (wasting the widened grid's
        extra positions) and 'gemm' (paying for packing) the model finds
        cheaper.

    Examples
    --------
    >>> from fastcorr._tuning import choose_conv_algorithm
    >>> choose_conv_algorithm((8, 64, 1, 58, 58), (64, 64, 1, 3, 3), (1, 1, 1), (1, 1, 1), 1)
    'implicit_gemm'
    >>> choose_conv_algorithm((8, 3, 1, 230, 230), (64, 3, 1, 7, 7), (1, 2, 2), (1, 1, 1), 1)
    'gemm'
    """
    if tuple(stride) != (1, 1, 1):
        return "gemm"
    filters, _, kernel_depth, kernel_height, kernel_width = weight_shape
    filters_per_group = filters // groups
    if filters_per_group <= DIRECT_MAX_FILTERS_PER_GROUP:
        return "direct"
    if kernel_depth * kernel_height * kernel_width == 1:
        # 1x1: packing is a plain copy, and one contiguous panel reads faster
        # than C/groups input rows far apart (measured 5-35% faster).
        return "gemm"
    _, _, depth, height, width = x_shape
    out_depth = depth - dilation[0] * (kernel_depth - 1)
    out_height = height - dilation[1] * (kernel_height - 1)
    out_width = width - dilation[2] * (kernel_width - 1)
    valid = out_depth * out_height * out_width
    widened = ((out_depth - 1) * height + out_height - 1) * width + out_width
    # Both do valid * taps * filters multiply-adds; per output position and
    # tap, implicit_gemm wastes (widened / valid - 1) * filters of them and
    # gemm spends GEMM_PACKING_TAPS on packing.
    padded_filters = -(-filters_per_group // 4) * 4
    implicit_waste = (widened / valid - 1.0) * padded_filters
    return "implicit_gemm" if implicit_waste <= GEMM_PACKING_TAPS else "gemm"


def choose_strided_conv_algorithm(x_shape, weight_shape, stride, dilation, groups):
    """How the numba backend's 'gemm' algorithm runs a convolution.

    Parameters are those of :func:`choose_conv_algorithm`.

    Returns
    -------
    {'phase_implicit_gemm', 'gemm'}
        'phase_implicit_gemm' (split the input into its stride phases, then
        a stride-1 implicit GEMM on them) for strided kernels larger than
        1x1 where its wasted positions cost less than packing would;
        'gemm' (im2col panels) otherwise.  Splitting copies the input once,
        negligible next to packing ``K`` values per output position.

    Examples
    --------
    >>> from fastcorr._tuning import choose_strided_conv_algorithm
    >>> choose_strided_conv_algorithm((8, 3, 1, 230, 230), (64, 3, 1, 7, 7), (1, 2, 2),
    ...                               (1, 1, 1), 1)
    'phase_implicit_gemm'
    """
    if tuple(stride) == (1, 1, 1):
        return "gemm"
    filters, _, *kernel_shape = weight_shape
    if math.prod(kernel_shape) == 1:
        return "gemm"  # one phase used of s0*s1*s2: packing is a plain strided copy
    phase_shape = [-(-size // s) for size, s in zip(x_shape[2:], stride)]
    out_shape = [(size - d * (k - 1) - 1) // s + 1
                 for size, k, s, d in zip(x_shape[2:], kernel_shape, stride, dilation)]
    if min(out_shape) <= 0:
        return "gemm"
    valid = math.prod(out_shape)
    widened = (((out_shape[0] - 1) * phase_shape[1] + out_shape[1] - 1) * phase_shape[2]
               + out_shape[2])
    if widened < 64:  # the implicit GEMM needs one PANEL_WIDTH of positions
        return "gemm"
    padded_filters = -(-(filters // groups) // 4) * 4
    implicit_waste = (widened / valid - 1.0) * padded_filters
    return "phase_implicit_gemm" if implicit_waste <= GEMM_PACKING_TAPS else "gemm"
