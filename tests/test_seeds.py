"""The worked examples of /work/shared/seeds/000-004, as tests.

Seed 000: 1-d cross-correlation by hand, x ⋆ y versus y ⋆ x, and multichannel
          correlation (H = W = D = 50, 3x3xD filter) against torch.
Seed 001: true convolution of 1..25 with a 3x3 filter; padding and stride.
Seed 002: the stride-4 conv matrix (tests/test_conv_matrix.py).
Seed 003: output shapes (16, 511, 383), (16, 959, 539) and the 8-channel error.
Seed 004: finite differences, RGB -> grey with a 1x1 conv, average pooling as a conv.
(Seed 000's C_w / C_x and seed 001's receptive field: tests/test_conv_matrix.py.)
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.signal
import torch
import torch.nn.functional as F
import torch_reference as tref
from helpers import ALL_BACKENDS, FAST_BACKENDS, assert_close, message_names, random_array

import fastcorr


def seed_star(x, y):
    """The seed's x ⋆ y: x slides over the fixed y, from x_n1 on y_1 to x_1 on y_n2."""
    x, y = np.asarray(x), np.asarray(y)
    n1, n2 = len(x), len(y)
    out = []
    for shift in range(-(n1 - 1), n2):  # position of x_1 relative to y_1
        out.append(sum(x[i] * y[i + shift] for i in range(n1) if 0 <= i + shift < n2))
    return np.array(out)


# --------------------------------------------------------------------------------------
# seed 000


@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_seed_000_a_hand_example(backend):
    """[3, 2, 1] ⋆ [4, 6, 3, 9] = [4, 14, 27, 33, 27, 27]; in SciPy's order correlate(y, x)."""
    x = np.array([3, 2, 1])
    y = np.array([4, 6, 3, 9])
    expected = np.array([4, 14, 27, 33, 27, 27])
    np.testing.assert_array_equal(seed_star(x, y), expected)
    got = fastcorr.correlate(y, x, backend=backend)
    assert_close(got, expected)  # int64 in, int64 out, exact
    assert_close(fastcorr.correlate(y.astype(float), x.astype(float), method="direct",
                                    backend=backend), expected.astype(float))


@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_seed_000_a_not_commutative_but_reversed(backend, rng):
    """x ⋆ y != y ⋆ x in general; for real vectors y ⋆ x is x ⋆ y reversed."""
    x = np.array([3, 2, 1])
    y = np.array([4, 6, 3, 9])
    x_star_y = fastcorr.correlate(y, x, backend=backend)
    y_star_x = fastcorr.correlate(x, y, backend=backend)
    assert not np.array_equal(x_star_y, y_star_x)
    np.testing.assert_array_equal(y_star_x, x_star_y[::-1])
    np.testing.assert_array_equal(y_star_x, seed_star(y, x))
    # for complex vectors: reversed and conjugated
    a = random_array(rng, (5,), np.complex128)
    b = random_array(rng, (3,), np.complex128)
    assert_close(fastcorr.correlate(a, b, backend=backend),
                 np.conj(fastcorr.correlate(b, a, backend=backend)[::-1]), terms=3)


@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_seed_000_d_2d_full_correlation(backend, rng):
    """(d): 3x3 X over 5x5 Y gives 7x7, as scipy.signal.correlate2d(Y, X, 'full')."""
    X = random_array(rng, (3, 3), np.float64)
    Y = random_array(rng, (5, 5), np.float64)
    got = fastcorr.correlate2d(Y, X, mode="full", backend=backend)
    assert got.shape == (7, 7)
    assert_close(got, scipy.signal.correlate2d(Y, X, mode="full"), terms=9)
    # the same via conv2d with 'full' padding
    assert_close(fastcorr.conv2d(Y[None, None], X[None, None], padding="full",
                                 backend=backend)[0, 0], got, terms=9)


@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_seed_000_e_gradient_magnitude(backend, rng):
    """(e): Scharr-like X1 and X2 = X1.T; sqrt(G1^2 + G2^2) as with scipy's correlate2d."""
    X1 = np.array([[-3, 0, 3], [-10, 0, 10], [-3, 0, 3]], dtype=np.float64)
    X2 = X1.T
    Y = random_array(rng, (10, 12), np.float64)
    g1 = fastcorr.correlate2d(Y, X1, backend=backend)
    g2 = fastcorr.correlate2d(Y, X2, backend=backend)
    ref = np.sqrt(scipy.signal.correlate2d(Y, X1) ** 2 + scipy.signal.correlate2d(Y, X2) ** 2)
    assert_close(np.sqrt(g1 ** 2 + g2 ** 2), ref, terms=9)


@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_seed_000_f_template_location(backend, rng):
    """(f): the largest correlation marks the template's place (zero-mean template)."""
    Y = rng.random((12, 11))
    X = Y[3:7, 5:9] - Y[3:7, 5:9].mean()
    corr = fastcorr.correlate2d(Y - Y.mean(), X, mode="same", backend=backend)
    assert_close(corr, scipy.signal.correlate2d(Y - Y.mean(), X, mode="same"), terms=16)
    ncc = fastcorr.match_template(Y, Y[3:7, 5:9], backend=backend)
    assert np.unravel_index(np.argmax(ncc), ncc.shape) == (3, 5)


@pytest.mark.parametrize("backend", FAST_BACKENDS)
def test_seed_000_g_multichannel_vs_torch(backend, rng):
    """(g): H = W = D = 50 input, 3x3x50 filter, 'valid': a 48x48 result, three ways.

    Naive loops would take seconds at this size; the small multichannel grid in
    test_conv.py covers the naive backend.
    """
    Y = random_array(rng, (50, 50, 50), np.float64)   # H x W x D
    X = random_array(rng, (3, 3, 50), np.float64)     # h x w x D
    x_nchw = np.moveaxis(Y, 2, 0)[None]               # (1, D, H, W), a view
    w_fchw = np.moveaxis(X, 2, 0)[None]               # (1, D, h, w)
    ref = tref.conv(2, x_nchw, w_fchw, padding="valid")[0, 0]
    got = fastcorr.conv2d(x_nchw, w_fchw, padding="valid", backend=backend)[0, 0]
    assert got.shape == (48, 48)
    assert_close(got, ref, terms=450)
    # restricted 3-d correlation: the filter does not move along depth
    restricted = fastcorr.correlate(Y, X, mode="valid", backend=backend)
    assert restricted.shape == (48, 48, 1)
    assert_close(restricted[:, :, 0], ref, terms=450)
    # summation of 2-d correlations, channel by channel
    summed = sum(fastcorr.correlate2d(Y[:, :, d], X[:, :, d], mode="valid", backend=backend)
                 for d in range(50))
    assert_close(summed, ref, terms=450)
    # float32 as well
    got32 = fastcorr.conv2d(x_nchw.astype(np.float32), w_fchw.astype(np.float32),
                            backend=backend)[0, 0]
    assert_close(got32, ref, dtype=np.float32, terms=450)


# --------------------------------------------------------------------------------------
# seed 001


X_1_25 = np.arange(1, 26).reshape(5, 5)
H_SOBEL = np.array([[-1, -2, -1], [0, 0, 0], [1, 2, 1]])
Y_PAD1_STRIDE1 = np.array([
    [-19, -28, -32, -36, -29],
    [-30, -40, -40, -40, -30],
    [-30, -40, -40, -40, -30],
    [-30, -40, -40, -40, -30],
    [49, 68, 72, 76, 59],
])
Y_PAD1_STRIDE2 = np.array([
    [-19, -32, -29],
    [-30, -40, -30],
    [49, 72, 59],
])


@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_seed_001_c_true_convolution(backend):
    """y = x * h (flip and drag), no padding, stride 1: all -40."""
    got = fastcorr.convolve2d(X_1_25, H_SOBEL, mode="valid", backend=backend)
    assert_close(got, np.full((3, 3), -40))  # int64, exact
    assert_close(fastcorr.convolve(X_1_25, H_SOBEL, mode="valid", backend=backend),
                 np.full((3, 3), -40))
    # correlation is convolution with the flipped kernel
    assert_close(fastcorr.correlate2d(X_1_25, H_SOBEL[::-1, ::-1], mode="valid",
                                      backend=backend), np.full((3, 3), -40))


@pytest.mark.parametrize("backend", ALL_BACKENDS)
@pytest.mark.parametrize("stride,expected", [(1, Y_PAD1_STRIDE1), (2, Y_PAD1_STRIDE2)])
def test_seed_001_d_padding_and_stride(stride, expected, backend):
    """(d) i, ii: pad 1 then convolve, stride 1 (5x5) and stride 2 (3x3)."""
    flipped = H_SOBEL[::-1, ::-1].astype(np.float64)
    x = X_1_25.astype(np.float64)
    # the network view: conv2d (correlation) with the flipped kernel
    got = fastcorr.conv2d(x[None, None], flipped[None, None], padding=1, stride=stride,
                          backend=backend)
    assert_close(got[0, 0], expected.astype(np.float64), terms=9)
    # the signal view: convolve2d of the zero-padded array, subsampled
    padded = np.pad(X_1_25, 1)
    got = fastcorr.convolve2d(padded, H_SOBEL, mode="valid", backend=backend)[::stride, ::stride]
    assert_close(got, expected)
    if stride == 1:
        # 'same' with a 3x3 kernel is padding 1
        assert_close(fastcorr.convolve2d(X_1_25, H_SOBEL, mode="same", backend=backend),
                     expected)


@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_seed_001_ab_boxcar_and_shift(backend):
    """(a) boxcar of length L convolved with (1/2)^n u(n); (b) shifting x shifts y."""
    L = 7
    n = np.arange(40)
    h = 0.5 ** n
    x = np.zeros(30)
    x[:L] = 1.0
    y = fastcorr.convolve(x, h, backend=backend)[:30]
    # for n < L: 2 - (1/2)^n, as the seed derives.  For n >= L the seed's constant
    # 2 - (1/2)^(L-1) is a slip (its sum runs over the wrong range); the sum is
    # sum_{i=n-L+1}^{n} (1/2)^i: sum_{i=n-L+1}^{n} (1/2)^i = (1/2)^(n-L+1) * (2 - (1/2)^(L-1))
    expected = np.where(n[:30] < L, 2 - 0.5 ** n[:30],
                        0.5 ** (n[:30] - L + 1) * (2 - 0.5 ** (L - 1)))
    assert_close(y, expected, terms=L)
    shifted = np.roll(x, 5)
    y2 = fastcorr.convolve(shifted, h, backend=backend)[:30]
    assert_close(y2[5:], y[:25], terms=L)
    np.testing.assert_array_equal(y2[:5], 0)


@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_seed_001_f_circular_padding_equivariance(backend):
    """(f): circular padding makes a conv stack shift-equivariant on the torus, GAP invariant.

    The seed's CONV2 layers (2x2, padding 1) grow an 8x8 map to 9x9 whose first and
    last rows see the same wrapped window, so invariance is only approximate there;
    the exact statement holds for odd kernels with 'same'-size circular padding.
    """
    rng = np.random.default_rng(1)
    w1 = rng.standard_normal((3, 1, 3, 3))
    w2 = rng.standard_normal((3, 3, 3, 3))

    def layer(h, w):
        return np.maximum(fastcorr.conv2d(h, w, padding=1, padding_mode="circular",
                                          backend=backend), 0)

    def features(image):
        return layer(layer(image[None, None], w1), w2).mean(axis=(2, 3))[0]  # GAP

    x2 = np.zeros((8, 8))
    x2[:, 1] = 1.0      # vertical edge in column 1
    x3 = np.roll(x2, 5, axis=1)   # the seed's x3: the edge in column 6
    x1 = np.zeros((8, 8))
    x1[1] = 1.0         # horizontal edge in row 1
    x4 = np.roll(x1, 4, axis=0)   # the edge moved to row 5
    assert_close(features(x3), features(x2), terms=27)
    assert_close(features(x4), features(x1), terms=27)
    # the maps themselves shift with the input (equivariance)
    assert_close(layer(x3[None, None], w1), np.roll(layer(x2[None, None], w1), 5, axis=3),
                 terms=9)
    # and the circular layer agrees with torch's
    expected = tref.conv(2, x2[None, None], w1, padding=1, padding_mode="circular")
    got = fastcorr.conv2d(x2[None, None], w1, padding=1, padding_mode="circular",
                          backend=backend)
    assert_close(got, expected, terms=9)


# --------------------------------------------------------------------------------------
# seed 003


@pytest.mark.parametrize("size,expected", [((1024, 768), (16, 511, 383)),
                                           ((1920, 1080), (16, 959, 539))])
def test_seed_003_q10_shapes_by_convolution(size, expected, rng):
    """A real 3-channel float32 image of each size, 16 filters of 5x5, padding 1, stride 2."""
    image = random_array(rng, (3,) + size, np.float32)
    weight = random_array(rng, (16, 3, 5, 5), np.float32)
    bias = random_array(rng, (16,), np.float32)
    out = fastcorr.conv2d(image, weight, bias, stride=2, padding=1)
    assert out.shape == expected
    assert out.dtype == np.float32
    assert (16,) + fastcorr.conv_output_shape(size, 5, stride=2, padding=1) == expected
    # values: the first 40 output rows against torch on the first 83 input rows (output
    # row r reads input rows 2r-1 .. 2r+3, so rows 0..39 do not see the crop's bottom edge)
    ref = tref.conv(2, image[:, :83], weight, bias, stride=2, padding=1)
    assert_close(out[:, :40], ref[:, :40], dtype=np.float32, terms=75)


@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_seed_003_q10_eight_channels_refused(backend):
    """(3): a 3-channel weight cannot take an 8-channel image; the message says so."""
    image = np.broadcast_to(np.float32(0), (8, 1080, 1920))  # no memory, read-only
    weight = np.zeros((16, 3, 5, 5), dtype=np.float32)
    with pytest.raises(ValueError, match=r"conv2d") as excinfo:
        fastcorr.conv2d(image, weight, stride=2, padding=1, backend=backend)
    message_names(excinfo, "conv2d", "8", "3")
    assert "channel" in str(excinfo.value)


@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_seed_003_q11_global_pools_as_convolutions(backend, rng):
    """Q11: global mean pool as a depthwise conv with a whole-image 1/(HW) kernel."""
    x = random_array(rng, (2, 3, 5, 4), np.float64)
    weight = np.full((3, 1, 5, 4), 1.0 / 20)
    got = fastcorr.conv2d(x, weight, groups=3, backend=backend)
    assert got.shape == (2, 3, 1, 1)
    assert_close(got[:, :, 0, 0], x.mean(axis=(2, 3)), terms=20)


# --------------------------------------------------------------------------------------
# seed 004


@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_seed_004_p1_finite_differences(backend, rng):
    """Y1 = X[i+1, j] - X[i, j], Y2 = X[i, j+1] - X[i, j], zero beyond the edge."""
    w = np.array([
        [[0, 0, 0], [0, -1, 0], [0, 1, 0]],
        [[0, 0, 0], [0, -1, 1], [0, 0, 0]],
    ], dtype=np.float64)[:, None]                       # (2, 1, 3, 3)
    X = random_array(rng, (6, 5), np.float64)
    Xz = np.pad(X, ((0, 1), (0, 1)))                    # X_{m+1,:} = X_{:,n+1} = 0
    expected = np.stack([Xz[1:, :-1] - X, Xz[:-1, 1:] - X])
    got = fastcorr.conv2d(X[None], w, padding=1, backend=backend)   # unbatched (1, m, n)
    assert got.shape == (2, 6, 5)
    assert_close(got, expected, terms=2)
    # integer image: the network family computes float64, exactly here
    Xi = np.arange(30).reshape(1, 6, 5)
    got = fastcorr.conv2d(Xi, w, padding=1, backend=backend)
    Xiz = np.pad(Xi[0], ((0, 1), (0, 1)))
    assert_close(got, np.stack([Xiz[1:, :-1] - Xi[0], Xiz[:-1, 1:] - Xi[0]]).astype(float))


@pytest.mark.parametrize("backend", ALL_BACKENDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=lambda d: np.dtype(d).name)
def test_seed_004_p3_rgb_to_grey(dtype, backend, rng):
    w = np.array([0.299, 0.587, 0.114], dtype=dtype).reshape(1, 3, 1, 1)
    X = random_array(rng, (3, 6, 7), dtype)
    got = fastcorr.conv2d(X, w, backend=backend)
    expected = (0.299 * X[0].astype(float) + 0.587 * X[1].astype(float)
                + 0.114 * X[2].astype(float))
    assert_close(got, expected[None], dtype=dtype, terms=3)


@pytest.mark.parametrize("backend", ALL_BACKENDS)
@pytest.mark.parametrize("k", [2, 3])
def test_seed_004_p2_average_pool_as_conv(k, backend, rng):
    """AvgPool2d(k) == depthwise conv with w = 1/k^2, stride k, no padding."""
    C, m, n = 3, 2 * k, 3 * k
    X = random_array(rng, (2, C, m, n), np.float64)
    w = np.full((C, 1, k, k), 1.0 / k ** 2)
    got = fastcorr.conv2d(X, w, stride=k, groups=C, backend=backend)
    assert got.shape == (2, C, m // k, n // k)
    assert_close(got, tref.avg_pool2d(X, k), terms=k * k)
    # float32 stays float32
    got32 = fastcorr.conv2d(X.astype(np.float32), w.astype(np.float32), stride=k, groups=C,
                            backend=backend)
    assert_close(got32, tref.avg_pool2d(X.astype(np.float32), k), dtype=np.float32,
                 terms=k * k)


def test_seed_004_p2_check_with_torch_avgpool_direct(rng):
    X = random_array(rng, (1, 2, 6, 6), np.float32)
    ref = F.avg_pool2d(torch.from_numpy(X), 3).numpy()
    got = fastcorr.conv2d(X, np.full((2, 1, 3, 3), 1 / 9, dtype=np.float32), stride=3, groups=2)
    assert_close(got, ref.astype(np.float64), dtype=np.float32, terms=9)
