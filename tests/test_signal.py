"""The signal family against scipy.signal and skimage, on every backend.

Grid: function x mode x boundary x odd/even/swapped shapes x dtype x backend
(and method for the N-d functions, fillvalue for boundary='fill'), plus
non-contiguous and negative-stride views.  Every comparison checks shape,
dtype and values (helpers.assert_close); expected dtypes are SciPy's.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.signal
from helpers import (
    ALL_BACKENDS,
    FAST_BACKENDS,
    assert_close,
    message_names,
    random_array,
    scipy_reference,
    widen,
)
from skimage.feature import match_template as sk_match_template

import fastcorr

MODES = ["full", "valid", "same"]
BOUNDARIES = ["fill", "wrap", "symm"]
BOUNDARY_ALIASES = {"pad": "fill", "circular": "wrap", "symmetric": "symm"}
METHODS = ["auto", "direct", "fft"]

SIGNAL_DTYPES = [np.float32, np.float64, np.int64, np.complex64, np.complex128]

# (in1 shape, in2 shape): odd kernel, even kernel, unequal odd/even, in2 larger
# than in1 in every dimension (SciPy swaps the operands in 'valid'), equal shapes.
SHAPES_2D = [
    pytest.param(((6, 7), (3, 3)), id="odd"),
    pytest.param(((5, 6), (2, 4)), id="even"),
    pytest.param(((7, 5), (4, 1)), id="even-by-one"),
    pytest.param(((3, 4), (5, 6)), id="in2-larger"),
    pytest.param(((4, 4), (4, 4)), id="equal"),
]

SHAPES_ND = [
    pytest.param(((9,), (3,)), id="1d-odd"),
    pytest.param(((8,), (4,)), id="1d-even"),
    pytest.param(((3,), (7,)), id="1d-in2-larger"),
    pytest.param(((6, 5), (3, 2)), id="2d-odd-even"),
    pytest.param(((3, 4), (4, 6)), id="2d-in2-larger"),
    pytest.param(((3, 5, 6), (2, 3, 2)), id="3d"),
    pytest.param(((2, 3, 2), (3, 4, 3)), id="3d-in2-larger"),
]

FUNCS_2D = {"correlate2d": scipy.signal.correlate2d, "convolve2d": scipy.signal.convolve2d}
FUNCS_ND = {"correlate": scipy.signal.correlate, "convolve": scipy.signal.convolve}


def _terms(*shapes):
    """Products summed per output element: at most the smaller operand's size."""
    return min(int(np.prod(s)) for s in shapes)


# --------------------------------------------------------------------------------------
# correlate2d / convolve2d


@pytest.mark.parametrize("backend", ALL_BACKENDS)
@pytest.mark.parametrize("dtype", SIGNAL_DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("shapes", SHAPES_2D)
@pytest.mark.parametrize("boundary", BOUNDARIES)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("func", list(FUNCS_2D))
def test_2d_grid(func, mode, boundary, shapes, dtype, backend, rng):
    shape1, shape2 = shapes
    in1 = random_array(rng, shape1, dtype)
    in2 = random_array(rng, shape2, dtype)
    ref, ref_dtype = scipy_reference(FUNCS_2D[func], in1, in2, mode=mode, boundary=boundary)
    got = getattr(fastcorr, func)(in1, in2, mode=mode, boundary=boundary, backend=backend)
    assert_close(got, ref, dtype=ref_dtype, terms=_terms(shape1, shape2),
                 context=f"{func} {mode} {boundary} {shape1} {shape2} {backend}")


@pytest.mark.parametrize("backend", ALL_BACKENDS)
@pytest.mark.parametrize("alias", list(BOUNDARY_ALIASES))
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("func", list(FUNCS_2D))
def test_2d_boundary_aliases(func, mode, alias, backend, rng):
    in1 = random_array(rng, (5, 6), np.float64)
    in2 = random_array(rng, (2, 3), np.float64)
    ref, ref_dtype = scipy_reference(FUNCS_2D[func], in1, in2, mode=mode, boundary=alias,
                                     fillvalue=0.5)
    got = getattr(fastcorr, func)(in1, in2, mode, alias, 0.5, backend=backend)
    canonical = getattr(fastcorr, func)(in1, in2, mode, BOUNDARY_ALIASES[alias], 0.5,
                                        backend=backend)
    assert_close(got, ref, dtype=ref_dtype, terms=6)
    np.testing.assert_array_equal(got, canonical)


FILLVALUES = [0, 1.5, -2]


@pytest.mark.parametrize("backend", ALL_BACKENDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int32, np.complex128],
                         ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("fillvalue", FILLVALUES, ids=repr)
@pytest.mark.parametrize("mode", ["full", "same"])
@pytest.mark.parametrize("func", list(FUNCS_2D))
def test_2d_fillvalue(func, mode, fillvalue, dtype, backend, rng):
    """fillvalue is cast to the result dtype (1.5 -> 1 for integers), as SciPy does.

    SciPy refuses a complex fillvalue (even 3+0j) for real inputs: so must fastcorr.
    """
    in1 = random_array(rng, (4, 5), dtype)
    in2 = random_array(rng, (3, 2), dtype)
    try:
        ref, ref_dtype = scipy_reference(FUNCS_2D[func], in1, in2, mode=mode,
                                         fillvalue=fillvalue)
    except ValueError:
        with pytest.raises(ValueError) as excinfo:
            getattr(fastcorr, func)(in1, in2, mode=mode, fillvalue=fillvalue, backend=backend)
        message_names(excinfo, func, "fillvalue")
        return
    got = getattr(fastcorr, func)(in1, in2, mode=mode, fillvalue=fillvalue, backend=backend)
    assert_close(got, ref, dtype=ref_dtype, terms=6)


@pytest.mark.parametrize("backend", ALL_BACKENDS)
@pytest.mark.parametrize("dtype", [np.float64, np.int32], ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("func", list(FUNCS_2D))
def test_2d_complex_fillvalue_real_inputs_refused(func, dtype, backend, rng):
    """SciPy refuses a Python complex fillvalue for real inputs, even 3+0j: fastcorr too.

    (SciPy lets a NumPy complex64 scalar through with a ComplexWarning, a quirk of its
    cast check not worth copying; it is not part of this test.)
    """
    in1 = random_array(rng, (4, 5), dtype)
    in2 = random_array(rng, (3, 2), dtype)
    for fillvalue in (3 + 0j, 1j, complex(-2, 0)):
        with pytest.raises(ValueError):
            FUNCS_2D[func](in1, in2, fillvalue=fillvalue)
        with pytest.raises(ValueError) as excinfo:
            getattr(fastcorr, func)(in1, in2, fillvalue=fillvalue, backend=backend)
        message_names(excinfo, func, "fillvalue")


def test_2d_complex_fillvalue_on_complex_inputs(rng):
    in1 = random_array(rng, (4, 5), np.complex128)
    in2 = random_array(rng, (2, 2), np.complex128)
    ref = scipy.signal.correlate2d(in1, in2, fillvalue=1 - 2j)
    assert_close(fastcorr.correlate2d(in1, in2, fillvalue=1 - 2j), ref, terms=4)


MIXED_DTYPES = [
    (np.float32, np.float64),
    (np.int8, np.uint8),
    (np.int64, np.float32),
    (np.float32, np.complex64),
    (np.uint8, np.uint8),
    (np.int16, np.int32),
    (np.float64, np.complex64),
]


@pytest.mark.parametrize("backend", ALL_BACKENDS)
@pytest.mark.parametrize("dtypes", MIXED_DTYPES, ids=lambda p: f"{np.dtype(p[0])}-{np.dtype(p[1])}")
@pytest.mark.parametrize("func", list(FUNCS_2D))
def test_2d_mixed_dtypes(func, dtypes, backend, rng):
    in1 = random_array(rng, (5, 4), dtypes[0])
    in2 = random_array(rng, (2, 3), dtypes[1])
    ref, ref_dtype = scipy_reference(FUNCS_2D[func], in1, in2)
    got = getattr(fastcorr, func)(in1, in2, backend=backend)
    assert_close(got, ref, dtype=ref_dtype, terms=6)


@pytest.mark.parametrize("backend", ALL_BACKENDS)
@pytest.mark.parametrize("func", list(FUNCS_2D))
def test_2d_integer_overflow_wraps_like_scipy(func, backend):
    """Integer arithmetic in the result dtype: int8 sums wrap around exactly as in SciPy."""
    x = (np.arange(12, dtype=np.int8).reshape(3, 4) * 23).astype(np.int8)
    ref = FUNCS_2D[func](x, x[:2, :3])
    got = getattr(fastcorr, func)(x, x[:2, :3], backend=backend)
    assert_close(got, ref)


@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_large_integers_are_exact(backend):
    """int64 beyond 2**53: integer arithmetic, never a round trip through float64."""
    in1 = (np.arange(300, dtype=np.int64) * 7 + 2**55 + 1).reshape(15, 20)
    in2 = np.array([[1, -1], [3, 1]], dtype=np.int64)
    assert_close(fastcorr.correlate(in1, in2, method="direct", backend=backend),
                 scipy.signal.correlate(in1, in2, method="direct"))
    for func in FUNCS_2D:
        assert_close(getattr(fastcorr, func)(in1, in2, mode="same", boundary="wrap",
                                             backend=backend),
                     FUNCS_2D[func](in1, in2, mode="same", boundary="wrap"), context=func)


@pytest.mark.parametrize("backend", ALL_BACKENDS)
@pytest.mark.parametrize("boundary", BOUNDARIES)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("func", list(FUNCS_2D))
def test_2d_views(func, mode, boundary, backend, rng):
    """Non-contiguous inputs: step-2 slices, transposes, negative strides."""
    base1 = random_array(rng, (12, 10), np.float64)
    base2 = random_array(rng, (6, 8), np.float64)
    views = [
        (base1[::2, ::2], base2[::2, ::3]),
        (base1[:7, :5].T, base2[:3, :2].T),
        (base1[::-1, :6], base2[:2, ::-2]),
        (base1[::-2, ::-3], base2[::-3, ::-2]),
    ]
    for in1, in2 in views:
        ref = FUNCS_2D[func](in1, in2, mode=mode, boundary=boundary)
        got = getattr(fastcorr, func)(in1, in2, mode=mode, boundary=boundary, backend=backend)
        assert_close(got, ref, terms=in2.size,
                     context=f"views {in1.strides} {in2.strides}")


@pytest.mark.parametrize("backend", ALL_BACKENDS)
@pytest.mark.parametrize("func", list(FUNCS_2D))
def test_2d_valid_needs_one_operand_larger(func, backend, rng):
    """SciPy: in 'valid' mode neither operand larger in every dimension is an error."""
    in1 = random_array(rng, (3, 7), np.float64)
    in2 = random_array(rng, (5, 2), np.float64)
    with pytest.raises(ValueError) as excinfo:
        scipy.signal.correlate2d(in1, in2, mode="valid")
    with pytest.raises(ValueError) as excinfo:
        getattr(fastcorr, func)(in1, in2, mode="valid", backend=backend)
    message_names(excinfo, func)
    # 'full' and 'same' accept such shapes
    for mode in ("full", "same"):
        ref = FUNCS_2D[func](in1, in2, mode=mode)
        assert_close(getattr(fastcorr, func)(in1, in2, mode=mode, backend=backend), ref,
                     terms=10)


@pytest.mark.parametrize("backend", ALL_BACKENDS)
@pytest.mark.parametrize("kernel_shape,tap", [
    (k, t) for k in [(2, 2), (2, 4), (3, 4), (4, 3)]
    for t in [(0, 0), (0, 1), (1, 0), (1, 1), (2, 3)] if t[0] < k[0] and t[1] < k[1]
])
@pytest.mark.parametrize("func", list(FUNCS_2D))
def test_2d_same_offset_single_tap(func, kernel_shape, tap, backend):
    """'same' with one-tap even kernels: the output is in1 shifted exactly as SciPy shifts it.

    correlate2d centres the kernel differently from convolve2d for even sizes (a
    SciPy quirk kept on purpose); integer data makes the comparison exact.
    """
    in1 = np.arange(1, 31).reshape(5, 6)
    in2 = np.zeros(kernel_shape, dtype=np.int64)
    in2[tap] = 1
    ref = FUNCS_2D[func](in1, in2, mode="same")
    got = getattr(fastcorr, func)(in1, in2, mode="same", backend=backend)
    assert_close(got, ref)


def test_2d_same_quirk_correlate_is_not_flipped_convolve():
    in1 = np.arange(1.0, 26.0).reshape(5, 5)
    in2 = np.array([[0.0, 0.0], [0.0, 1.0]])
    corr = fastcorr.correlate2d(in1, in2, "same")
    conv = fastcorr.convolve2d(in1, in2[::-1, ::-1], "same")
    assert_close(corr, scipy.signal.correlate2d(in1, in2, "same"))
    assert_close(conv, scipy.signal.convolve2d(in1, in2[::-1, ::-1], "same"))
    assert not np.array_equal(corr, conv)  # SciPy's offset quirk, kept


@pytest.mark.parametrize("backend", ALL_BACKENDS)
@pytest.mark.parametrize("func", list(FUNCS_2D))
def test_2d_complex_conjugates_in2(func, backend, rng):
    in1 = random_array(rng, (4, 4), np.complex128)
    in2 = random_array(rng, (2, 3), np.complex128)
    got = getattr(fastcorr, func)(in1, in2, backend=backend)
    assert_close(got, FUNCS_2D[func](in1, in2), terms=6)
    if func == "correlate2d":
        # correlating with conj(in2) is convolving with in2 flipped and conjugated
        assert_close(got, scipy.signal.convolve2d(in1, np.conj(in2[::-1, ::-1])), terms=6)


@pytest.mark.parametrize("func", list(FUNCS_2D))
def test_2d_list_inputs(func):
    got = getattr(fastcorr, func)([[1, 2], [3, 4]], [[1, 1]])
    assert_close(got, FUNCS_2D[func]([[1, 2], [3, 4]], [[1, 1]]))


# --------------------------------------------------------------------------------------
# correlate / convolve (N-d)


@pytest.mark.parametrize("backend", ALL_BACKENDS)
@pytest.mark.parametrize("dtype", SIGNAL_DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("shapes", SHAPES_ND)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("func", list(FUNCS_ND))
def test_nd_grid(func, mode, shapes, method, dtype, backend, rng):
    shape1, shape2 = shapes
    in1 = random_array(rng, shape1, dtype)
    in2 = random_array(rng, shape2, dtype)
    call = getattr(fastcorr, func)
    if backend == "naive" and method == "fft":
        # the naive backend has no FFT path: it says so, naming function, backend, parameter
        with pytest.raises(NotImplementedError) as excinfo:
            call(in1, in2, mode=mode, method=method, backend=backend)
        message_names(excinfo, func, "naive", "method")
        return
    # the reference: SciPy's direct sum in wide precision; SciPy's dtype for this method
    expected_dtype = FUNCS_ND[func](in1, in2, mode=mode, method=method).dtype
    ref = FUNCS_ND[func](widen(in1), widen(in2), mode=mode, method="direct")
    got = call(in1, in2, mode=mode, method=method, backend=backend)
    terms = _terms(shape1, shape2) if method != "fft" else max(in1.size, in2.size)
    assert_close(got, ref, dtype=expected_dtype, terms=terms,
                 context=f"{func} {mode} {method} {shape1} {shape2} {backend}")


@pytest.mark.parametrize("backend", ALL_BACKENDS)
@pytest.mark.parametrize("dtypes", MIXED_DTYPES, ids=lambda p: f"{np.dtype(p[0])}-{np.dtype(p[1])}")
@pytest.mark.parametrize("func", list(FUNCS_ND))
def test_nd_mixed_dtypes(func, dtypes, backend, rng):
    in1 = random_array(rng, (5, 4), dtypes[0])
    in2 = random_array(rng, (2, 3), dtypes[1])
    ref, ref_dtype = scipy_reference(FUNCS_ND[func], in1, in2, method="direct")
    got = getattr(fastcorr, func)(in1, in2, method="direct", backend=backend)
    assert_close(got, ref, dtype=ref_dtype, terms=6)


def _exact_bool_correlation(func, in1, in2, mode):
    """Bool correlation as SciPy's 1-d direct path computes it: OR over the ANDs."""
    counts = FUNCS_ND[func](in1.astype(np.int64), in2.astype(np.int64), mode=mode,
                            method="direct")
    return counts > 0


@pytest.mark.parametrize("backend", ALL_BACKENDS)
@pytest.mark.parametrize("shapes", [((7,), (3,)), ((5, 4), (2, 3))], ids=["1d", "2d"])
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("func", list(FUNCS_ND))
def test_nd_bool_like_scipy(func, method, shapes, backend, rng):
    """bool in, bool out: True where some overlapping pair is True (SciPy's 1-d result).

    SciPy computes bool in 1-d (np.correlate) and, via float FFTs cast back, with
    method='fft' -- where round-off (1e-17 instead of 0) can turn an exact False
    into True, so the exact logical result is the reference here.  SciPy refuses
    2-d 'direct' ("Unsupported type"): fastcorr may refuse it too (ValueError or
    TypeError naming the function) or compute the same exact result.
    """
    if backend == "naive" and method == "fft":
        return  # no FFT on naive: covered by test_nd_grid
    in1 = random_array(rng, shapes[0], np.bool_)
    in2 = random_array(rng, shapes[1], np.bool_)
    for mode in MODES:
        expected = _exact_bool_correlation(func, in1, in2, mode)
        try:
            FUNCS_ND[func](in1, in2, mode=mode, method=method)
        except ValueError:
            try:
                got = getattr(fastcorr, func)(in1, in2, mode=mode, method=method,
                                              backend=backend)
            except (ValueError, TypeError) as exc:
                assert func in str(exc)
                continue
        else:
            got = getattr(fastcorr, func)(in1, in2, mode=mode, method=method, backend=backend)
        assert_close(got, expected, context=f"{func} {mode}")


@pytest.mark.parametrize("backend", ALL_BACKENDS)
@pytest.mark.parametrize("shapes", [((9,), (4,)), ((6, 5), (2, 3))], ids=["1d", "2d"])
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("func", list(FUNCS_ND))
def test_nd_float16_like_scipy(func, method, shapes, backend, rng):
    """float16 in, float16 out (SciPy computes it in 1-d and by FFT).

    SciPy refuses 2-d 'direct' float16; fastcorr may refuse (naming the function)
    or compute the float16 result.  Reference: the float64 result, float16 tolerance.
    """
    if backend == "naive" and method == "fft":
        return  # no FFT on naive: covered by test_nd_grid
    in1 = random_array(rng, shapes[0], np.float16)
    in2 = random_array(rng, shapes[1], np.float16)
    for mode in MODES:
        ref = FUNCS_ND[func](widen(in1), widen(in2), mode=mode, method="direct")
        try:
            FUNCS_ND[func](in1, in2, mode=mode, method=method)
        except ValueError:
            try:
                got = getattr(fastcorr, func)(in1, in2, mode=mode, method=method,
                                              backend=backend)
            except (ValueError, TypeError) as exc:
                assert func in str(exc)
                continue
        else:
            got = getattr(fastcorr, func)(in1, in2, mode=mode, method=method, backend=backend)
        assert_close(got, ref, dtype=np.float16, terms=in2.size, context=f"{func} {mode}")


@pytest.mark.parametrize("backend", ALL_BACKENDS)
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("func", list(FUNCS_ND))
def test_nd_integer_fft_is_exact(func, method, backend, rng):
    """Integers stay integers with every method (FFT results are rounded back, as SciPy)."""
    in1 = rng.integers(-50, 50, size=(6, 7)).astype(np.int64)
    in2 = rng.integers(-50, 50, size=(3, 3)).astype(np.int64)
    if backend == "naive" and method == "fft":
        pytest.raises(NotImplementedError, getattr(fastcorr, func), in1, in2, method=method,
                      backend=backend)
        return
    got = getattr(fastcorr, func)(in1, in2, method=method, backend=backend)
    assert_close(got, FUNCS_ND[func](in1, in2, method="direct"))


@pytest.mark.parametrize("backend", ALL_BACKENDS)
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("func", list(FUNCS_ND))
def test_nd_views(func, mode, method, backend, rng):
    base1 = random_array(rng, (10, 12, 6), np.float64)
    base2 = random_array(rng, (6, 4, 4), np.float64)
    views = [
        (base1[::2, ::3, ::2], base2[::3, ::2, ::2]),
        (base1[:3, :5, :4].transpose(2, 0, 1), base2[:2, :3, :2].transpose(1, 2, 0)),
        (base1[::-1, :4, ::-2], base2[:2, ::-1, :3]),
        (base1[0, ::-1, 0], base2[0, 0, ::-1]),
    ]
    call = getattr(fastcorr, func)
    for in1, in2 in views:
        if backend == "naive" and method == "fft":
            pytest.raises(NotImplementedError, call, in1, in2, mode=mode, method=method,
                          backend=backend)
            continue
        ref = FUNCS_ND[func](in1, in2, mode=mode, method="direct")
        got = call(in1, in2, mode=mode, method=method, backend=backend)
        assert_close(got, ref, terms=max(in1.size, in2.size),
                     context=f"views {in1.shape} {in2.shape}")


@pytest.mark.parametrize("backend", ALL_BACKENDS)
@pytest.mark.parametrize("func", list(FUNCS_ND))
def test_nd_valid_needs_one_operand_larger(func, backend, rng):
    in1 = random_array(rng, (3, 7), np.float64)
    in2 = random_array(rng, (5, 2), np.float64)
    with pytest.raises(ValueError):
        FUNCS_ND[func](in1, in2, mode="valid")
    with pytest.raises(ValueError) as excinfo:
        getattr(fastcorr, func)(in1, in2, mode="valid", backend=backend)
    message_names(excinfo, func)


@pytest.mark.parametrize("func", list(FUNCS_ND))
def test_nd_zero_dimensional(func):
    """0-d operands: SciPy returns in1 * conj(in2) (a 0-d result)."""
    ref = FUNCS_ND[func](np.float64(2.0), np.float64(3.0))
    got = getattr(fastcorr, func)(np.float64(2.0), np.float64(3.0))
    got = np.asarray(got)
    assert_close(got, np.asarray(ref))


@pytest.mark.parametrize("backend", FAST_BACKENDS)
@pytest.mark.parametrize("func", list(FUNCS_ND))
def test_nd_larger_auto_method(func, backend, rng):
    """Shapes large enough for 'auto' to choose FFT: still SciPy's values and dtype."""
    for dtype in (np.float32, np.float64, np.complex128):
        in1 = random_array(rng, (64, 48), dtype)
        in2 = random_array(rng, (17, 15), dtype)
        for mode in MODES:
            ref, ref_dtype = scipy_reference(FUNCS_ND[func], in1, in2, mode=mode, method="direct")
            got = getattr(fastcorr, func)(in1, in2, mode=mode, backend=backend)
            assert_close(got, ref, dtype=ref_dtype, terms=in2.size,
                         context=f"{np.dtype(dtype)} {mode}")


MEDIUM_DTYPES = [np.float32, np.float64, np.complex64, np.complex128, np.int64, np.int32,
                 np.uint8]


@pytest.mark.parametrize("backend", FAST_BACKENDS)
@pytest.mark.parametrize("dtype", MEDIUM_DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("shapes", [
    pytest.param(((40, 70), (3, 3)), id="2d-3x3"),
    pytest.param(((70, 70), (5, 4)), id="2d-5x4"),
    pytest.param(((23, 300), (2, 7)), id="2d-wide"),
    pytest.param(((3000,), (11,)), id="1d-long"),
    pytest.param(((12, 20, 30), (3, 2, 4)), id="3d"),
])
def test_direct_medium_sizes(shapes, dtype, backend, rng):
    """Sizes past the compiled kernels' tiles (256 positions) and task splits (4096)."""
    shape1, shape2 = shapes
    in1 = random_array(rng, shape1, dtype)
    in2 = random_array(rng, shape2, dtype)
    for mode in MODES:
        ref, ref_dtype = scipy_reference(scipy.signal.correlate, in1, in2, mode=mode,
                                         method="direct")
        got = fastcorr.correlate(in1, in2, mode=mode, method="direct", backend=backend)
        assert_close(got, ref, dtype=ref_dtype, terms=in2.size, context=f"correlate {mode}")
        if in1.ndim == 2:
            ref, ref_dtype = scipy_reference(scipy.signal.convolve2d, in1, in2, mode=mode,
                                             boundary="symm")
            got = fastcorr.convolve2d(in1, in2, mode=mode, boundary="symm", backend=backend)
            assert_close(got, ref, dtype=ref_dtype, terms=in2.size,
                         context=f"convolve2d {mode}")


@pytest.mark.parametrize("backend", ALL_BACKENDS)
@pytest.mark.parametrize("method", METHODS)
def test_nd_four_dimensional(method, backend, rng):
    """N-d means N-d: a 4-d correlation and convolution as SciPy computes them."""
    in1 = random_array(rng, (3, 4, 3, 5), np.float64)
    in2 = random_array(rng, (2, 2, 1, 3), np.float64)
    for func in FUNCS_ND:
        for mode in MODES:
            if backend == "naive" and method == "fft":
                pytest.raises(NotImplementedError, getattr(fastcorr, func), in1, in2,
                              mode=mode, method=method, backend=backend)
                continue
            ref = FUNCS_ND[func](in1, in2, mode=mode, method="direct")
            try:
                got = getattr(fastcorr, func)(in1, in2, mode=mode, method=method,
                                              backend=backend)
            except NotImplementedError as exc:
                # a compiled backend may stop at 3-d: it must say so ('auto' never does)
                assert backend not in ("auto", "naive", "numpy", "scipy"), exc
                for word in (func, backend, "in1"):
                    assert word in str(exc), (word, str(exc))
                continue
            assert_close(got, ref, terms=in1.size, context=f"{func} {mode}")


@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_non_native_byte_order(backend, rng):
    """Big-endian inputs compute like native ones (SciPy returns native float64)."""
    in1 = random_array(rng, (6, 7), np.float64).astype(">f8")
    in2 = random_array(rng, (3, 2), np.float64).astype(">f8")
    for func, ref_func in list(FUNCS_2D.items()) + list(FUNCS_ND.items()):
        ref = ref_func(in1, in2)
        got = getattr(fastcorr, func)(in1, in2, backend=backend)
        assert got.dtype == ref.dtype and got.dtype.isnative, (func, got.dtype)
        assert_close(got, ref, terms=6, context=func)


@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_match_template_non_native_byte_order(backend, rng):
    """skimage returns float32 for a big-endian float32 image too."""
    image = random_array(rng, (8, 9), np.float32).astype(">f4")
    template = random_array(rng, (3, 3), np.float32).astype(">f4")
    got = fastcorr.match_template(image, template, backend=backend)
    assert_close(got, sk_match_template(image.astype(np.float64), template.astype(np.float64)),
                 dtype=np.float32, terms=9)


def test_scipy_backend_implements_the_signal_family(rng):
    """The scipy backend lacks only im2col-based operations: correlate works with every method."""
    in1 = random_array(rng, (6, 5), np.float64)
    in2 = random_array(rng, (2, 3), np.float64)
    for method in METHODS:
        got = fastcorr.correlate(in1, in2, method=method, backend="scipy")
        assert_close(got, scipy.signal.correlate(in1, in2, method="direct"), terms=6)
    assert_close(fastcorr.correlate2d(in1, in2, backend="scipy"),
                 scipy.signal.correlate2d(in1, in2), terms=6)
    assert_close(fastcorr.match_template(in1, in2, backend="scipy"),
                 sk_match_template(in1, in2), terms=6)


# --------------------------------------------------------------------------------------
# match_template


TEMPLATE_CASES = [
    pytest.param(((9, 11), (3, 4)), id="2d-even"),
    pytest.param(((8, 7), (3, 3)), id="2d-odd"),
    pytest.param(((6, 6), (6, 6)), id="2d-equal"),
    pytest.param(((7, 5), (1, 5)), id="2d-row"),
    pytest.param(((6, 7, 5), (2, 3, 2)), id="3d-even"),
    pytest.param(((5, 6, 4), (3, 3, 3)), id="3d-odd"),
]


@pytest.mark.parametrize("backend", ALL_BACKENDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.uint8],
                         ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("pad_input", [False, True])
@pytest.mark.parametrize("shapes", TEMPLATE_CASES)
def test_match_template_vs_skimage(shapes, pad_input, dtype, backend, rng):
    image_shape, template_shape = shapes
    if np.dtype(dtype).kind == "u":
        image = rng.integers(0, 256, size=image_shape).astype(dtype)
        template = rng.integers(0, 256, size=template_shape).astype(dtype)
    else:
        image = rng.standard_normal(image_shape).astype(dtype)
        template = rng.standard_normal(template_shape).astype(dtype)
    expected_dtype = sk_match_template(image, template, pad_input=pad_input).dtype
    ref = sk_match_template(image.astype(np.float64), template.astype(np.float64),
                            pad_input=pad_input)
    got = fastcorr.match_template(image, template, pad_input=pad_input, backend=backend)
    assert_close(got, ref, dtype=expected_dtype, terms=template.size)
    assert np.all(np.abs(got) <= 1 + 1e-5)


@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_match_template_template_dtype_does_not_set_result(backend, rng):
    """skimage: result float32 for float32 images, else float64, whatever the template."""
    image = rng.standard_normal((7, 8))
    template = rng.standard_normal((3, 2))
    for image_dtype, template_dtype in [(np.float32, np.float64), (np.float64, np.float32),
                                        (np.int16, np.float32)]:
        im = (image * 10).astype(image_dtype)
        tp = (template * 10).astype(template_dtype)
        expected = sk_match_template(im, tp)
        got = fastcorr.match_template(im, tp, backend=backend)
        assert got.dtype == expected.dtype, (image_dtype, template_dtype)
        assert_close(got, sk_match_template(im.astype(np.float64), tp.astype(np.float64)),
                     dtype=expected.dtype, terms=6)


@pytest.mark.parametrize("backend", ALL_BACKENDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=lambda d: np.dtype(d).name)
def test_match_template_constant_regions_give_zero(dtype, backend, rng):
    image = np.ones((8, 8), dtype=dtype)
    image[:, 5:] = rng.random((8, 3))
    template = rng.random((2, 2)).astype(dtype)
    got = fastcorr.match_template(image, template, backend=backend)
    ref = sk_match_template(image.astype(np.float64), template.astype(np.float64))
    assert_close(got, ref, dtype=dtype, terms=4)
    # windows entirely in the constant part have zero variance: the response is 0
    np.testing.assert_array_equal(got[:, :4], 0)
    # a constant template gives 0 everywhere, as does a one-pixel template
    flat = fastcorr.match_template(image, np.full((2, 2), 3, dtype=dtype), backend=backend)
    assert_close(flat, np.zeros((7, 7)), dtype=dtype)
    single = fastcorr.match_template(image, np.ones((1, 1), dtype=dtype), backend=backend)
    assert_close(single, sk_match_template(image, np.ones((1, 1), dtype=dtype)), dtype=dtype)


@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_match_template_finds_the_template(backend, rng):
    image = rng.random((12, 10))
    template = image[4:7, 3:8].copy()
    got = fastcorr.match_template(image, template, backend=backend)
    assert np.unravel_index(np.argmax(got), got.shape) == (4, 3)
    assert abs(got[4, 3] - 1.0) < 1e-10
    padded = fastcorr.match_template(image, template, pad_input=True, backend=backend)
    assert padded.shape == image.shape
    # with pad_input the peak sits at the template's centre
    assert np.unravel_index(np.argmax(padded), padded.shape) == (5, 5)


@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_match_template_views(backend, rng):
    base = rng.standard_normal((14, 12))
    for image, template in [(base[::2, ::-1], base[1:4:1, 2:8:2]),
                            (base[:9, :7].T, base[::-5, ::-4])]:
        ref = sk_match_template(image, template)
        assert_close(fastcorr.match_template(image, template, backend=backend), ref,
                     terms=template.size)
