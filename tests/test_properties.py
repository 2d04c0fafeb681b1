"""Hypothesis: every backend agrees with the naive reference on small random problems.

Shapes and parameters are drawn; the data come from a generator seeded by a
drawn integer, so a failing example is reproducible from hypothesis' report.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.signal
from helpers import ALL_BACKENDS, assert_close, random_array
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import fastcorr

OTHER_BACKENDS = [b for b in ALL_BACKENDS if b != "naive"]
SETTINGS = settings(max_examples=25, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])


@st.composite
def correlate2d_problems(draw):
    shape1 = (draw(st.integers(1, 6)), draw(st.integers(1, 6)))
    shape2 = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    mode = draw(st.sampled_from(["full", "valid", "same"]))
    if mode == "valid":
        # SciPy: one operand must contain the other
        assume(all(a >= b for a, b in zip(shape1, shape2))
               or all(b >= a for a, b in zip(shape1, shape2)))
    boundary = draw(st.sampled_from(["fill", "wrap", "symm", "pad", "circular", "symmetric"]))
    fillvalue = draw(st.sampled_from([0, 1, -2.5]))
    dtype = draw(st.sampled_from([np.float64, np.float32, np.int64, np.complex128]))
    func = draw(st.sampled_from(["correlate2d", "convolve2d"]))
    seed = draw(st.integers(0, 2**32 - 1))
    return func, shape1, shape2, mode, boundary, fillvalue, dtype, seed


@pytest.mark.parametrize("backend", OTHER_BACKENDS)
@SETTINGS
@given(problem=correlate2d_problems())
def test_correlate2d_backends_agree_with_naive(backend, problem):
    func, shape1, shape2, mode, boundary, fillvalue, dtype, seed = problem
    rng = np.random.default_rng(seed)
    in1 = random_array(rng, shape1, dtype)
    in2 = random_array(rng, shape2, dtype)
    kwargs = dict(mode=mode, boundary=boundary, fillvalue=fillvalue)
    ref = getattr(fastcorr, func)(in1, in2, backend="naive", **kwargs)
    got = getattr(fastcorr, func)(in1, in2, backend=backend, **kwargs)
    terms = min(in1.size, in2.size)
    assert_close(got, ref, terms=terms)
    # and the naive reference is SciPy's result
    assert_close(ref, getattr(scipy.signal, func)(in1, in2, **kwargs), terms=terms)


@st.composite
def conv2d_problems(draw):
    groups = draw(st.integers(1, 3))
    channels = groups * draw(st.integers(1, 2))
    filters = groups * draw(st.integers(1, 2))
    batch = draw(st.sampled_from([None, 1, 2]))
    kernel = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    size = (draw(st.integers(1, 7)), draw(st.integers(1, 7)))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    padding_kind = draw(st.sampled_from(["int", "tuple", "pairs", "valid", "same", "full"]))
    if padding_kind == "int":
        padding = draw(st.integers(0, 2))
    elif padding_kind == "tuple":
        padding = (draw(st.integers(0, 2)), draw(st.integers(0, 2)))
    elif padding_kind == "pairs":
        padding = tuple((draw(st.integers(0, 2)), draw(st.integers(0, 2))) for _ in range(2))
    else:
        padding = padding_kind
    if padding == "same":
        stride = (1, 1)
    padding_mode = draw(st.sampled_from(["zeros", "reflect", "replicate", "circular"]))
    with_bias = draw(st.booleans())
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    seed = draw(st.integers(0, 2**32 - 1))
    # the padded input must hold the dilated kernel; reflect needs padding < size,
    # circular padding <= size
    pads = _pairs(padding, kernel, dilation)
    for n, k, d, (before, after) in zip(size, kernel, dilation, pads):
        assume(n + before + after >= d * (k - 1) + 1)
        if padding_mode == "reflect":
            assume(max(before, after) < n)
        if padding_mode == "circular":
            assume(max(before, after) <= n)
    return (channels, filters, groups, batch, kernel, size, stride, dilation, padding,
            padding_mode, with_bias, dtype, seed)


def _pairs(padding, kernel, dilation):
    if padding == "valid":
        return [(0, 0)] * 2
    if padding == "same":
        return [(d * (k - 1) // 2, d * (k - 1) - d * (k - 1) // 2)
                for k, d in zip(kernel, dilation)]
    if padding == "full":
        return [(d * (k - 1),) * 2 for k, d in zip(kernel, dilation)]
    if isinstance(padding, int):
        return [(padding, padding)] * 2
    if isinstance(padding[0], tuple):
        return list(padding)
    return [(p, p) for p in padding]


@pytest.mark.parametrize("backend", OTHER_BACKENDS)
@SETTINGS
@given(problem=conv2d_problems())
def test_conv2d_backends_agree_with_naive(backend, problem):
    (channels, filters, groups, batch, kernel, size, stride, dilation, padding, padding_mode,
     with_bias, dtype, seed) = problem
    rng = np.random.default_rng(seed)
    shape = (channels,) + size if batch is None else (batch, channels) + size
    x = random_array(rng, shape, dtype)
    weight = random_array(rng, (filters, channels // groups) + kernel, dtype)
    bias = random_array(rng, (filters,), dtype) if with_bias else None
    kwargs = dict(stride=stride, padding=padding, dilation=dilation, groups=groups,
                  padding_mode=padding_mode)
    ref = fastcorr.conv2d(x, weight, bias, backend="naive", **kwargs)
    got = fastcorr.conv2d(x, weight, bias, backend=backend, **kwargs)
    assert_close(got, ref, terms=weight[0].size,
                 context=f"{shape} {weight.shape} {kwargs}")


@st.composite
def padded_correlation_problems(draw):
    """Sizes up to a few hundred positions, so that the numba kernel's tiles,
    several tasks per volume and windows spanning rows and planes all occur."""
    ndim = draw(st.integers(1, 3))
    largest = {1: 3000, 2: 70, 3: 16}[ndim]
    shape = tuple(draw(st.integers(1, largest)) for _ in range(ndim))
    kernel = tuple(draw(st.integers(1, 5)) for _ in range(ndim))
    pad_width = tuple((draw(st.integers(0, 5)), draw(st.integers(0, 5))) for _ in range(ndim))
    assume(all(n + before + after >= k
               for n, k, (before, after) in zip(shape, kernel, pad_width)))
    dtype = draw(st.sampled_from([np.float64, np.float32, np.int64, np.complex128]))
    fillvalue = draw(st.sampled_from([0, 1, -3]))
    seed = draw(st.integers(0, 2**32 - 1))
    return shape, kernel, pad_width, dtype, fillvalue, seed


def _padded_correlation_case(problem):
    """``(x, kernel, pad_width, fill, reference)``: the reference is np.pad, then the
    naive backend's 'valid' correlation."""
    from importlib import import_module

    shape, kernel_shape, pad_width, dtype, fillvalue, seed = problem
    rng = np.random.default_rng(seed)
    x = random_array(rng, shape, dtype)
    kernel = random_array(rng, kernel_shape, dtype)
    fill = np.asarray(fillvalue, dtype=dtype)[()]
    naive_kernels = import_module("fastcorr.kernels.naive")
    reference = naive_kernels.correlate_valid(np.pad(x, pad_width, constant_values=fill), kernel)
    return x, kernel, pad_width, fill, reference


@SETTINGS
@given(problem=padded_correlation_problems())
def test_numba_correlate_padded_is_pad_then_correlate(problem):
    """The numba kernel that pads tile by tile equals np.pad then the naive correlation."""
    from importlib import import_module

    x, kernel, pad_width, fill, ref = _padded_correlation_case(problem)
    before = x.copy()
    got = import_module("fastcorr.kernels.numba").correlate_padded(x, kernel, pad_width, fill)
    assert got.shape == ref.shape and got.dtype == ref.dtype
    assert_close(got, ref, terms=kernel.size)
    np.testing.assert_array_equal(x, before)


@SETTINGS
@given(problem=padded_correlation_problems(), grid_points=st.sampled_from([16, 200, 1 << 21]))
def test_fft_correlation_in_padded_strips_is_pad_then_correlate(problem, grid_points):
    """The FFT path's strips (overlap-save, padded one strip at a time) add up to the
    naive correlation of the padded input, however small the strips."""
    from importlib import import_module

    fft_module = import_module("fastcorr._fft")
    x, kernel, pad_width, fill, ref = _padded_correlation_case(problem)
    saved = fft_module.MAX_GRID_POINTS
    fft_module.MAX_GRID_POINTS = grid_points
    try:
        got = fft_module.correlate_fft(x, kernel, pad_width, fill)
    finally:
        fft_module.MAX_GRID_POINTS = saved
    assert got.shape == ref.shape and got.dtype == ref.dtype
    # FFT rounding grows with the magnitudes involved, not with the kernel size alone
    assert_close(got, ref, terms=4 * max(x.size, kernel.size))
