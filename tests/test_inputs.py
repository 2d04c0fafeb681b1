"""Inputs are never modified, outputs never alias inputs, NaN / Inf propagate as in the reference.

Inputs are checked against copies after each call, for contiguous arrays, for
non-contiguous and negative-stride views (whose base is checked), and for
read-only arrays (a write attempt would raise).
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.signal
import torch_reference as tref
from helpers import ALL_BACKENDS, assert_close, random_array

import fastcorr

MUTATION_BACKENDS = ALL_BACKENDS


def _calls(rng):
    """(name, function, arrays, kwargs) covering every public function."""
    sig = random_array(rng, (9, 8), np.float64)
    ker = random_array(rng, (3, 2), np.float64)
    x = random_array(rng, (2, 4, 7, 6), np.float32)
    w = random_array(rng, (4, 2, 3, 3), np.float32)
    b = random_array(rng, (4,), np.float32)
    return [
        ("correlate", fastcorr.correlate, [sig, ker], dict(mode="same")),
        ("correlate-fft", fastcorr.correlate, [sig, ker], dict(method="fft")),
        ("correlate-swap", fastcorr.correlate, [ker, sig], dict(mode="valid")),
        ("convolve", fastcorr.convolve, [sig, ker], dict(mode="valid", method="direct")),
        ("correlate2d", fastcorr.correlate2d, [sig, ker], dict(boundary="symm")),
        ("correlate2d-int", fastcorr.correlate2d, [(sig * 10).astype(np.int64),
                                                   (ker * 10).astype(np.int64)],
         dict(boundary="wrap", mode="same")),
        ("convolve2d-swap", fastcorr.convolve2d, [ker, sig], dict(mode="valid")),
        ("match_template", fastcorr.match_template, [sig, ker], dict(pad_input=True)),
        ("conv2d", fastcorr.conv2d, [x, w, b], dict(padding=1, groups=2,
                                                    padding_mode="reflect")),
        ("conv2d-same", fastcorr.conv2d, [x, w[:, :, :2]], dict(padding="same", groups=2)),
        ("conv1d", fastcorr.conv1d, [x[:, :, 0], w[:, :, 0], b], dict(groups=2, padding="full")),
        ("conv3d", fastcorr.conv3d, [x[:, :, None].repeat(3, axis=2), w[:, :, None], b],
         dict(groups=2, padding=(0, 1, 1), padding_mode="circular")),
        ("unfold", fastcorr.unfold, [x], dict(kernel_size=2, padding=1)),
        ("fold", fastcorr.fold, [fastcorr.unfold(x, 2, backend="numpy")],
         dict(output_size=(7, 6), kernel_size=2)),
        ("conv_matrix", fastcorr.conv_matrix, [w], dict(input_shape=(4, 7, 6), groups=2)),
    ]


def _backend_lacks(backend, name):
    """scipy has no im2col; naive has no FFT."""
    if backend == "naive":
        return name == "correlate-fft"
    return backend == "scipy" and name.split("-")[0] in ("unfold", "fold", "conv_matrix")


CALL_NAMES = [c[0] for c in _calls(np.random.default_rng(0))]


@pytest.mark.parametrize("backend", MUTATION_BACKENDS)
@pytest.mark.parametrize("name", CALL_NAMES)
def test_inputs_not_modified(name, backend, rng):
    _, func, arrays, kwargs = next(c for c in _calls(rng) if c[0] == name)
    if _backend_lacks(backend, name):
        pytest.raises(NotImplementedError, func, *arrays, backend=backend, **kwargs)
        return
    copies = [a.copy() for a in arrays]
    out = func(*arrays, backend=backend, **kwargs)
    for original, copy in zip(arrays, copies):
        np.testing.assert_array_equal(original, copy)
        assert original.dtype == copy.dtype
    if isinstance(out, np.ndarray):
        for original in arrays:
            assert not np.shares_memory(out, original), f"{name}: result aliases an input"
    # read-only inputs are accepted (a write would raise)
    frozen = [a.copy() for a in arrays]
    for a in frozen:
        a.setflags(write=False)
    func(*frozen, backend=backend, **kwargs)
    # non-contiguous / negative-stride views of larger arrays: the bases are untouched
    bases = [np.repeat(a, 2, axis=-1)[..., ::-1] for a in arrays]   # negative stride
    base_copies = [b.copy() for b in bases]
    views = [b[..., ::-2] for b in bases]                            # = a[..., ::-1] strided
    func(*views, backend=backend, **kwargs)
    for base, copy in zip(bases, base_copies):
        np.testing.assert_array_equal(base, copy)


@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_output_of_identity_like_calls_does_not_alias(backend):
    """Calls that could return their input unchanged (1x1 kernels, no padding) must copy."""
    x = np.arange(12.0).reshape(1, 1, 3, 4)
    out = fastcorr.conv2d(x, np.ones((1, 1, 1, 1)), backend=backend)
    assert not np.shares_memory(out, x)
    out[...] = -1
    np.testing.assert_array_equal(x, np.arange(12.0).reshape(1, 1, 3, 4))
    sig = np.arange(6.0)
    out = fastcorr.correlate(sig, np.ones(1), backend=backend)
    assert not np.shares_memory(out, sig)
    out = fastcorr.correlate2d(sig.reshape(2, 3), np.ones((1, 1)), backend=backend)
    assert not np.shares_memory(out, sig)
    if backend != "scipy":
        cols = fastcorr.unfold(x, 1, backend=backend)
        assert not np.shares_memory(cols, x)


# --------------------------------------------------------------------------------------
# NaN / Inf


def _with_specials(rng, shape):
    a = random_array(rng, shape, np.float64)
    a.flat[3] = np.nan
    a.flat[-5] = np.inf
    a.flat[len(a.flat) // 2] = -np.inf
    return a


def _nonzero_kernel(rng, shape):
    """No zero taps, so Inf * 0 = NaN cannot differ between summation orders."""
    k = rng.uniform(0.5, 1.5, shape) * rng.choice([-1.0, 1.0], shape)
    return k


@pytest.mark.parametrize("backend", ALL_BACKENDS)
@pytest.mark.parametrize("mode", ["full", "valid", "same"])
@pytest.mark.parametrize("boundary", ["fill", "wrap", "symm"])
def test_nan_inf_correlate2d(boundary, mode, backend, rng):
    in1 = _with_specials(rng, (7, 6))
    in2 = _nonzero_kernel(rng, (2, 3))
    for func in ("correlate2d", "convolve2d"):
        ref = getattr(scipy.signal, func)(in1, in2, mode=mode, boundary=boundary)
        got = getattr(fastcorr, func)(in1, in2, mode=mode, boundary=boundary, backend=backend)
        assert_close(got, ref, terms=6, context=func)


@pytest.mark.parametrize("backend", ALL_BACKENDS)
@pytest.mark.parametrize("mode", ["full", "valid", "same"])
def test_nan_inf_correlate_direct(mode, backend, rng):
    in1 = _with_specials(rng, (6, 7))
    in2 = _nonzero_kernel(rng, (3, 2))
    for func in ("correlate", "convolve"):
        ref = getattr(scipy.signal, func)(in1, in2, mode=mode, method="direct")
        got = getattr(fastcorr, func)(in1, in2, mode=mode, method="direct", backend=backend)
        assert_close(got, ref, terms=6, context=func)
    # NaN in the kernel: every output that overlaps it is NaN
    kernel = in2.copy()
    kernel[1, 1] = np.nan
    clean = random_array(rng, (5, 5), np.float64)
    ref = scipy.signal.correlate(clean, kernel, mode=mode, method="direct")
    got = fastcorr.correlate(clean, kernel, mode=mode, method="direct", backend=backend)
    assert_close(got, ref, terms=6)


@pytest.mark.parametrize("backend", [b for b in ALL_BACKENDS if b != "naive"])
def test_nan_fft_spreads_like_scipy(backend, rng):
    """With method='fft' a NaN spreads through the FFT: as in SciPy, the output is all NaN."""
    in1 = random_array(rng, (9,), np.float64)
    in1[4] = np.nan
    ref = scipy.signal.correlate(in1, np.ones(3), method="fft")
    got = fastcorr.correlate(in1, np.ones(3), method="fft", backend=backend)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(ref))


@pytest.mark.parametrize("backend", ALL_BACKENDS)
@pytest.mark.parametrize("padding_mode", ["zeros", "reflect", "replicate", "circular"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=lambda d: np.dtype(d).name)
def test_nan_inf_conv2d(dtype, padding_mode, backend, rng):
    x = _with_specials(rng, (2, 2, 7, 6)).astype(dtype)
    w = _nonzero_kernel(rng, (3, 2, 3, 2)).astype(dtype)
    b = random_array(rng, (3,), dtype)
    ref = tref.conv(2, x, w, b, padding=1, padding_mode=padding_mode, stride=(1, 2))
    got = fastcorr.conv2d(x, w, b, padding=1, padding_mode=padding_mode, stride=(1, 2),
                          backend=backend)
    assert_close(got, ref, dtype=dtype, terms=12)


@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_nan_in_weight_and_bias_conv2d(backend, rng):
    x = random_array(rng, (1, 2, 5, 5), np.float64)
    w = _nonzero_kernel(rng, (3, 2, 2, 2))
    w[1, 0, 1, 1] = np.nan
    b = np.array([0.0, 0.0, np.inf])
    ref = tref.conv(2, x, w, b, padding=1)
    got = fastcorr.conv2d(x, w, b, padding=1, backend=backend)
    assert_close(got, ref, terms=8)
    assert np.isnan(got[0, 1]).all() and np.isposinf(got[0, 2]).all()


@pytest.mark.parametrize("backend", [b for b in ALL_BACKENDS if b != "scipy"])
def test_nan_inf_unfold_fold(backend, rng):
    x = _with_specials(rng, (1, 2, 5, 6))
    cols = fastcorr.unfold(x, (2, 3), padding=1, backend=backend)
    assert_close(cols, tref.unfold(x, (2, 3), padding=1))
    folded = fastcorr.fold(cols, (5, 6), (2, 3), padding=1, backend=backend)
    assert_close(folded, tref.fold(tref.unfold(x, (2, 3), padding=1), (5, 6), (2, 3),
                                   padding=1), terms=6)
