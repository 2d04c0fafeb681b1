"""conv_matrix: the sparse A with conv(x, weight, ...).ravel() == A @ x.ravel().

Checked three ways: against the convolution of random inputs (every backend
that has it), entry by entry against the convolution of the basis vectors
(exact: each entry is one weight times 1), and against the seeds' matrices
derived by hand (seed 000's C_w and C_x, seed 002's stride-4 4x9 matrix).
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import scipy.sparse
from helpers import ALL_BACKENDS, assert_close, message_names, random_array

import fastcorr

MATRIX_BACKENDS = [b for b in ALL_BACKENDS if b != "scipy"]  # scipy has no im2col


def _ids(value):
    return repr(value).replace(" ", "")


def _conv(weight_ndim_spatial):
    return getattr(fastcorr, f"conv{weight_ndim_spatial}d")


def _basis_matrix(conv, weight, input_shape, **kwargs):
    """Dense A by convolving every basis vector: column j is conv(e_j).ravel()."""
    size = int(np.prod(input_shape))
    columns = []
    for j in range(size):
        e = np.zeros(size)
        e[j] = 1.0
        columns.append(conv(e.reshape(input_shape), weight, backend="numpy", **kwargs).ravel())
    return np.stack(columns, axis=1)


def _check_matrix(matrix, conv, weight, input_shape, rng, *, backend, fmt="csr",
                  dtype=np.float64, **kwargs):
    assert scipy.sparse.issparse(matrix), type(matrix)
    assert matrix.format == fmt
    assert matrix.dtype == dtype
    for _ in range(2):
        x = random_array(rng, input_shape, np.float64)
        out = conv(x, weight, backend=backend, **kwargs)
        assert matrix.shape == (out.size, x.size)
        product = matrix @ x.ravel()
        assert_close(np.asarray(product), out.ravel().astype(np.float64),
                     dtype=np.result_type(matrix.dtype, np.float64),
                     terms=int(np.prod(weight.shape[1:])),
                     rtol=1e-5 if dtype == np.float32 else None)


# --------------------------------------------------------------------------------------
# network layout (F, C / groups, *kernel)


GRID_2D = list(itertools.product(
    [1, (2, 1)],                                        # stride
    [0, 1, "same", "full", ((1, 0), (0, 2)), "valid"],  # padding
    [1, (2, 1)],                                        # dilation
    [1, 2],                                             # groups
))
GRID_2D = [g for g in GRID_2D if not (g[1] == "same" and g[0] != 1)]


@pytest.mark.parametrize("backend", MATRIX_BACKENDS)
@pytest.mark.parametrize("batched", [False, True], ids=["CHW", "NCHW"])
@pytest.mark.parametrize("stride,padding,dilation,groups", GRID_2D, ids=_ids)
def test_conv_matrix_2d_grid(stride, padding, dilation, groups, batched, backend, rng):
    channels, filters = 2, 4
    weight = random_array(rng, (filters, channels // groups, 2, 3), np.float64)
    input_shape = ((2,) if batched else ()) + (channels, 5, 6)
    kwargs = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    matrix = fastcorr.conv_matrix(weight, input_shape, backend=backend, **kwargs)
    _check_matrix(matrix, fastcorr.conv2d, weight, input_shape, rng, backend=backend, **kwargs)
    if not batched:
        dense = _basis_matrix(fastcorr.conv2d, weight, input_shape, **kwargs)
        np.testing.assert_array_equal(matrix.toarray(), dense)


@pytest.mark.parametrize("backend", MATRIX_BACKENDS)
@pytest.mark.parametrize("padding", [0, 2, "same", "full", ((2, 0),)], ids=_ids)
@pytest.mark.parametrize("stride,dilation", [(1, 1), (2, 1), (1, 2), (3, 2)], ids=_ids)
def test_conv_matrix_1d(stride, dilation, padding, backend, rng):
    if padding == "same" and stride != 1:
        pytest.raises(ValueError, fastcorr.conv_matrix, np.ones((1, 1, 3)), (1, 9),
                      stride=stride, padding=padding)
        return
    weight = random_array(rng, (3, 2, 3), np.float64)
    kwargs = dict(stride=stride, padding=padding, dilation=dilation)
    for input_shape in [(2, 9), (3, 2, 9)]:
        matrix = fastcorr.conv_matrix(weight, input_shape, backend=backend, **kwargs)
        _check_matrix(matrix, fastcorr.conv1d, weight, input_shape, rng, backend=backend,
                      **kwargs)


@pytest.mark.parametrize("backend", MATRIX_BACKENDS)
@pytest.mark.parametrize("padding", [0, 1, "full", ((1, 0), (0, 1), (1, 1))], ids=_ids)
def test_conv_matrix_3d(padding, backend, rng):
    weight = random_array(rng, (2, 1, 2, 2, 3), np.float64)
    kwargs = dict(padding=padding, groups=2, stride=(1, 2, 1))
    input_shape = (2, 3, 4, 4)
    matrix = fastcorr.conv_matrix(weight, input_shape, backend=backend, **kwargs)
    _check_matrix(matrix, fastcorr.conv3d, weight, input_shape, rng, backend=backend, **kwargs)
    np.testing.assert_array_equal(
        matrix.toarray(), _basis_matrix(fastcorr.conv3d, weight, input_shape, **kwargs))


FORMATS = ["csr", "csc", "coo", "lil", "dok", "bsr", "dia"]


@pytest.mark.parametrize("fmt", FORMATS)
def test_conv_matrix_formats(fmt, rng):
    weight = random_array(rng, (2, 3, 3, 3), np.float64)
    matrix = fastcorr.conv_matrix(weight, (3, 5, 5), padding=1, format=fmt)
    _check_matrix(matrix, fastcorr.conv2d, weight, (3, 5, 5), rng, backend=None, fmt=fmt,
                  padding=1)


def test_conv_matrix_float32_weight(rng):
    """The matrix carries the weight's float dtype (float32 stays float32)."""
    weight = random_array(rng, (2, 1, 3, 3), np.float32)
    matrix = fastcorr.conv_matrix(weight, (1, 5, 4), padding=1)
    _check_matrix(matrix, fastcorr.conv2d, weight, (1, 5, 4), rng, backend=None,
                  dtype=np.float32, padding=1)


def test_conv_matrix_integer_weight_is_float64(rng):
    weight = np.arange(1, 10).reshape(3, 3)
    matrix = fastcorr.conv_matrix(weight, (4, 4))
    assert matrix.dtype == np.float64
    x = random_array(rng, (4, 4), np.float64)
    assert_close(matrix @ x.ravel(), fastcorr.conv2d(x[None], weight[None, None]).ravel(),
                 terms=9)


def test_conv_matrix_scipy_backend_lacks_it():
    with pytest.raises(NotImplementedError) as excinfo:
        fastcorr.conv_matrix(np.ones((1, 1, 2, 2)), (1, 3, 3), backend="scipy")
    message_names(excinfo, "conv_matrix", "scipy")


# --------------------------------------------------------------------------------------
# plain kernels: weight (k,) with input_shape (n,), weight (kh, kw) with (H, W)


@pytest.mark.parametrize("backend", MATRIX_BACKENDS)
@pytest.mark.parametrize("padding", [0, 1, "full", "same", ((0, 2),)], ids=_ids)
@pytest.mark.parametrize("k", [1, 3, 4])
def test_conv_matrix_plain_1d(k, padding, backend, rng):
    w = random_array(rng, (k,), np.float64)
    matrix = fastcorr.conv_matrix(w, (7,), padding=padding, backend=backend)
    x = random_array(rng, (7,), np.float64)
    out = fastcorr.conv1d(x[None, None], w[None, None], padding=padding)
    assert matrix.shape == (out.size, 7)
    assert_close(matrix @ x, out.ravel(), terms=k)
    # full padding is scipy's full correlation: correlate(x, w) (real w)
    if padding == "full":
        assert_close(matrix @ x, fastcorr.correlate(x, w), terms=k)


@pytest.mark.parametrize("backend", MATRIX_BACKENDS)
@pytest.mark.parametrize("stride,padding", [
    (s, p) for s in [1, 2, (1, 3)] for p in [0, 1, "full", "same", ((0, 2), (1, 0))]
    if not (p == "same" and s != 1)  # refused: see test_errors.py
], ids=_ids)
def test_conv_matrix_plain_2d(stride, padding, backend, rng):
    w = random_array(rng, (2, 3), np.float64)
    matrix = fastcorr.conv_matrix(w, (5, 6), stride=stride, padding=padding, backend=backend)
    x = random_array(rng, (5, 6), np.float64)
    out = fastcorr.conv2d(x[None, None], w[None, None], stride=stride, padding=padding)
    assert matrix.shape == (out.size, 30)
    assert_close(matrix @ x.ravel(), out.ravel(), terms=6)
    if padding == "full" and stride == 1:
        assert_close((matrix @ x.ravel()).reshape(6, 8), fastcorr.correlate2d(x, w), terms=6)


# --------------------------------------------------------------------------------------
# seeds


W1, W2, W3 = 2.0, -3.0, 5.0  # distinct, nonzero weights make every entry identifiable


@pytest.mark.parametrize("backend", MATRIX_BACKENDS)
def test_seed_000_C_w(backend):
    """Seed 000 (b): w ⋆ x = C_w x with C_w in R^{6x4}, x sliding as in the seed.

    (w ⋆ x)_i = sum_k w_k x_{i+k-2}: the first output is w3 x1, the last w1 x4.
    """
    w = np.array([W1, W2, W3])
    expected = np.array([
        [W3, 0, 0, 0],
        [W2, W3, 0, 0],
        [W1, W2, W3, 0],
        [0, W1, W2, W3],
        [0, 0, W1, W2],
        [0, 0, 0, W1],
    ])
    matrix = fastcorr.conv_matrix(w, (4,), padding="full", backend=backend)
    assert matrix.shape == (6, 4)
    assert_close(matrix.toarray(), expected)
    x = np.array([4.0, 6.0, 3.0, 9.0])
    # the seed's w ⋆ x is fastcorr.correlate(x, w) in SciPy's argument order
    assert_close(matrix @ x, fastcorr.correlate(x, w), terms=3)


@pytest.mark.parametrize("backend", MATRIX_BACKENDS)
def test_seed_000_C_x_jacobian(backend):
    """Seed 000 (c): w ⋆ x = C_x w, so d(w ⋆ x)/dw = C_x (6x3), C_x[i, k] = x_{i+k-2}.

    conv_matrix with x as the kernel gives x ⋆ w = reverse(w ⋆ x): C_x is its rows reversed.
    """
    x = np.array([4.0, 6.0, 3.0, 9.0])
    x1, x2, x3, x4 = x
    expected = np.array([
        [0, 0, x1],
        [0, x1, x2],
        [x1, x2, x3],
        [x2, x3, x4],
        [x3, x4, 0],
        [x4, 0, 0],
    ])
    from_conv_matrix = fastcorr.conv_matrix(x, (3,), padding="full", backend=backend)
    assert from_conv_matrix.shape == (6, 3)
    c_x = from_conv_matrix.toarray()[::-1]
    assert_close(c_x, expected)
    w = np.array([W1, W2, W3])
    assert_close(c_x @ w, fastcorr.correlate(x, w), terms=3)
    # the Jacobian column k is the derivative w.r.t. w_k: w ⋆ x is linear in w
    for k in range(3):
        e = np.zeros(3)
        e[k] = 1.0
        assert_close(fastcorr.correlate(x, e), expected[:, k])


@pytest.mark.parametrize("backend", MATRIX_BACKENDS)
def test_seed_002_stride4_pad2(backend):
    """Seed 002: 3x3 W on a 3x3 X, stride 4, zero padding 2: A is 4x9.

    The padded input is 7x7 and the output 2x2 (floor((3 + 4 - 3) / 4) + 1).
    Each window meets exactly one pixel of X: the four corners, each with the
    kernel entry diagonally opposite.  Rows: outputs (0,0),(0,1),(1,0),(1,1);
    columns: x00..x22 row-major.
      y00 = w22 x00,  y01 = w20 x02,  y10 = w02 x20,  y11 = w00 x22.
    """
    w = np.arange(1.0, 10.0).reshape(3, 3)  # w00..w22 = 1..9
    expected = np.zeros((4, 9))
    expected[0, 0] = w[2, 2]
    expected[1, 2] = w[2, 0]
    expected[2, 6] = w[0, 2]
    expected[3, 8] = w[0, 0]
    matrix = fastcorr.conv_matrix(w, (3, 3), stride=4, padding=2, backend=backend)
    assert matrix.shape == (4, 9)
    assert_close(matrix.toarray(), expected)
    # exact sparsity pattern: exactly the four stored entries, no stored zeros
    coo = matrix.tocoo()
    coo.sum_duplicates()
    assert sorted(zip(coo.row.tolist(), coo.col.tolist())) == [(0, 0), (1, 2), (2, 6), (3, 8)]
    x = np.arange(10.0, 19.0).reshape(3, 3)
    out = fastcorr.conv2d(x[None, None], w[None, None], stride=4, padding=2, backend=backend)
    assert_close(matrix @ x.ravel(), out.ravel())


# --------------------------------------------------------------------------------------
# seed 001 (c): receptive field of L stacked stride-1 convolutions


@pytest.mark.parametrize("kernel,layers", [(3, 2), (3, 4), (5, 3), (2, 5)])
def test_seed_001_receptive_field(kernel, layers):
    """One pixel of layer L sees (K-1)(L-1)+1 pixels of layer 1 (1-d; squared in 2-d).

    Composition of the L-1 'valid' convolutions from layer 1 to layer L: the
    product of their matrices has, in each row, exactly that many nonzeros
    (all-positive weights, so nothing cancels), and conv_output_shape says a
    layer-1 input of exactly that size is the smallest giving one output.
    """
    field = (kernel - 1) * (layers - 1) + 1
    size = field + 4
    w = np.ones(kernel)
    product = scipy.sparse.identity(size, format="csr")
    n = size
    for _ in range(layers - 1):
        product = fastcorr.conv_matrix(w, (n,)) @ product
        n = fastcorr.conv_output_shape(n, kernel)
    assert product.shape == (size - field + 1, size)
    row_counts = np.diff(product.tocsr().indptr)
    np.testing.assert_array_equal(row_counts, field)
    # the smallest input giving one output after L-1 layers is the receptive field
    n = field
    for _ in range(layers - 1):
        n = fastcorr.conv_output_shape(n, kernel)
    assert n == 1
    with pytest.raises(ValueError):
        n = field - 1
        for _ in range(layers - 1):
            n = fastcorr.conv_output_shape(n, kernel)
    # 2-d: the field is a square
    w2 = np.ones((kernel, kernel))
    product = scipy.sparse.identity(field * field, format="csr")
    n = field
    for _ in range(layers - 1):
        product = fastcorr.conv_matrix(w2, (n, n)) @ product
        n = fastcorr.conv_output_shape(n, kernel)
    assert product.shape == (1, field * field)
    assert product.nnz == field * field
