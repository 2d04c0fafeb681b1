"""conv2d_backward and conv_transpose2d against torch on every backend that has them.

conv2d_backward: torch autograd's gradients (float64) over stride x padding (ints, tuples,
'same', 'valid', 'full', (before, after) pairs) x dilation x groups x padding_mode
(zeros / reflect / replicate / circular, the reference built with torch.nn.Conv2d) x
output_mask, dtypes, views and unbatched inputs.  conv_transpose2d: torch's
F.conv_transpose2d over stride x padding x output_padding x dilation x groups.  Finite
differences and the adjoint identity check the naive backend on its own.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torch_reference as tref
from helpers import CPU_BACKENDS, assert_close, expected_net_dtype, message_names, random_array

import fastcorr


@pytest.fixture(autouse=True, scope="module")
def _torch_single_thread():
    """torch's references are tiny: its thread pool only costs time (a lot on a busy machine)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


# Backends with the two adjoint kernels ('scipy' has neither), plus 'auto'.
GRAD_BACKENDS = [b for b in CPU_BACKENDS if b != "scipy"] + ["auto"]
FLOATS = [np.float32, np.float64]
PADDING_MODES = ["zeros", "reflect", "replicate", "circular"]
MASKS = list(itertools.product([True, False], repeat=3))


def _ids(value):
    if isinstance(value, type) and issubclass(value, np.generic):
        return np.dtype(value).name
    return repr(value).replace(" ", "")


def _t(x, grad=False):
    if x is None:
        return None
    tensor = torch.from_numpy(np.array(x, dtype=np.float64))
    return tensor.requires_grad_(True) if grad else tensor


def _pair(value):
    return tuple(value) if isinstance(value, tuple | list) else (value, value)


def torch_conv2d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1,
                 padding_mode="zeros"):
    """(out, grad function) of torch's conv2d for fastcorr's arguments, with autograd.

    'full' and (before, after) pairs become F.pad + an unpadded conv; other padding
    modes use torch.nn.Conv2d(padding_mode=...) itself.
    """
    xt, wt, bt = _t(x, True), _t(weight, True), _t(bias, True)
    stride, dilation = _pair(stride), _pair(dilation)
    pairs = tref.explicit_pairs(padding, weight.shape[2:], dilation)
    if pairs is not None:
        out = F.conv2d(tref.torch_pad(xt, pairs, padding_mode), wt, bt, stride, 0, dilation,
                       groups)
        params = (wt, bt)
    elif padding_mode == "zeros":
        out = F.conv2d(xt, wt, bt, stride, padding if isinstance(padding, str)
                       else _pair(padding), dilation, groups)
        params = (wt, bt)
    else:
        module = torch.nn.Conv2d(weight.shape[1] * groups, weight.shape[0], weight.shape[2:],
                                 stride, padding if isinstance(padding, str) else _pair(padding),
                                 dilation, groups, bias is not None, padding_mode,
                                 dtype=torch.float64)
        with torch.no_grad():
            module.weight.copy_(wt)
            if bias is not None:
                module.bias.copy_(bt)
        out = module(xt)
        params = (module.weight, module.bias)

    def grads(grad_output):
        out.backward(_t(grad_output))
        weight_param, bias_param = params
        return (xt.grad.numpy(), weight_param.grad.numpy(),
                None if bias_param is None else bias_param.grad.numpy())

    return out.detach().numpy(), grads


def check_conv2d_backward(x, weight, backend, rng, output_mask=(True, True, True), **kwargs):
    bias = random_array(rng, (weight.shape[0],), np.float64)
    out, grads = torch_conv2d(x, weight, bias, **kwargs)
    grad_output = random_array(rng, out.shape, expected_net_dtype(x, weight))
    ref = grads(grad_output)
    got = fastcorr.conv2d_backward(grad_output, x, weight, output_mask=output_mask,
                                   backend=backend, **kwargs)
    assert isinstance(got, tuple) and len(got) == 3
    dtype = expected_net_dtype(x, weight)
    # grad_input sums over out channels x kernel taps, grad_weight over batch x outputs
    terms = (weight.shape[0] * int(np.prod(weight.shape[2:])),
             out.shape[0] * int(np.prod(out.shape[2:])), out.shape[0] * int(np.prod(out.shape[2:])))
    context = f"conv2d_backward x{x.shape} w{weight.shape} {kwargs} mask={output_mask}"
    for name, wanted, g, r, n in zip(("grad_input", "grad_weight", "grad_bias"), output_mask,
                                     got, ref, terms):
        if not wanted:
            assert g is None, f"{context}: {name} must be None"
        else:
            assert_close(g, r, dtype=dtype, terms=n, context=f"{context} {name}")
    return got


# --------------------------------------------------------------------------------------
# conv2d_backward: geometry x groups (zeros padding)

PADDINGS = [0, 1, (2, 1), "valid", "same", "full", ((1, 0), (0, 2))]
STRIDES = [1, 2, (2, 1)]
DILATIONS = [1, (2, 1)]
# (in channels, out channels, groups): plain, grouped, depthwise, depthwise multiplier 2
CHANNELS = [(4, 2, 1), (4, 4, 2), (4, 4, 4), (2, 4, 2)]


@pytest.mark.filterwarnings("ignore:Using padding='same':UserWarning")  # torch's note
@pytest.mark.parametrize("backend", GRAD_BACKENDS)
@pytest.mark.parametrize("padding,stride", [
    (p, s) for p, s in itertools.product(PADDINGS, STRIDES) if not (p == "same" and s != 1)],
    ids=_ids)
def test_conv2d_backward_geometry(padding, stride, backend, rng):
    """Every dilation x channel grouping for this padding and stride (odd x even input)."""
    for dilation, (channels, filters, groups) in itertools.product(DILATIONS, CHANNELS):
        x = random_array(rng, (2, channels, 7, 6), np.float64)
        weight = random_array(rng, (filters, channels // groups, 3, 2), np.float64)
        check_conv2d_backward(x, weight, backend, rng, stride=stride, padding=padding,
                              dilation=dilation, groups=groups)


@pytest.mark.parametrize("backend", GRAD_BACKENDS)
@pytest.mark.parametrize("padding", [1, (2, 1), "same", "full", "valid", ((2, 0), (1, 3))],
                         ids=_ids)
@pytest.mark.parametrize("padding_mode", PADDING_MODES)
def test_conv2d_backward_padding_modes(padding_mode, padding, backend, rng):
    """The padding's own adjoint (reflected / replicated / wrapped cells add back)."""
    for stride, dilation, groups in [(1, 1, 1), (2, 2, 2), (1, (2, 1), 2), ((2, 1), 1, 1)]:
        if padding == "same" and stride != 1:
            continue
        x = random_array(rng, (2, 2, 7, 6), np.float64)
        weight = random_array(rng, (2, 2 // groups, 3, 3), np.float64)
        check_conv2d_backward(x, weight, backend, rng, stride=stride, padding=padding,
                              dilation=dilation, groups=groups, padding_mode=padding_mode)


@pytest.mark.parametrize("backend", GRAD_BACKENDS)
@pytest.mark.parametrize("padding_mode,padding,kernel,stride", [
    ("replicate", 4, (3, 3), 1),          # padding wider than the input: one cell, many copies
    ("circular", 3, (3, 2), 1),           # padding the whole width: wraps once round
    ("reflect", 2, (2, 3), 2),            # the widest reflect padding torch takes
    ("zeros", 0, (1, 1), 3),              # stride > kernel: some inputs get no gradient
    ("circular", ((3, 0), (0, 3)), (2, 2), 2),
], ids=_ids)
def test_conv2d_backward_extreme_paddings(padding_mode, padding, kernel, stride, backend, rng):
    x = random_array(rng, (2, 2, 3, 3), np.float64)
    weight = random_array(rng, (3, 2) + kernel, np.float64)
    got = check_conv2d_backward(x, weight, backend, rng, stride=stride, padding=padding,
                                padding_mode=padding_mode)
    if kernel == (1, 1):
        assert np.all(got[0][:, :, 1:, :] == 0) and np.all(got[0][:, :, :, 1:] == 0)


@pytest.mark.parametrize("backend", GRAD_BACKENDS)
@pytest.mark.parametrize("output_mask", MASKS, ids=_ids)
@pytest.mark.parametrize("padding_mode", ["zeros", "circular"])
def test_conv2d_backward_output_mask(padding_mode, output_mask, backend, rng):
    x = random_array(rng, (2, 4, 6, 7), np.float64)
    weight = random_array(rng, (6, 2, 3, 2), np.float64)
    check_conv2d_backward(x, weight, backend, rng, output_mask=output_mask, stride=(2, 1),
                          padding=1, dilation=(1, 2), groups=2, padding_mode=padding_mode)


def _layouts(base):
    """(N, C, H, W) layouts: contiguous, transposed view, negative strides, unbatched, N=1."""
    return {
        "contiguous": base,
        "transposed": np.ascontiguousarray(base.transpose(0, 1, 3, 2)).transpose(0, 1, 3, 2),
        "reversed": base[:, :, ::-1, ::-1],
        "sliced": np.concatenate([base, base], axis=3)[:, :, :, ::2],
        "unbatched": base[0],
        "batch-of-one": base[1:],
    }


LAYOUTS = list(_layouts(np.zeros((2, 1, 1, 1))))


@pytest.mark.parametrize("backend", GRAD_BACKENDS)
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", FLOATS + [np.int64], ids=_ids)
def test_conv2d_backward_dtypes_and_layouts(dtype, layout, backend, rng):
    """float32 stays float32; int becomes float64; views and unbatched inputs; no writes."""
    base = random_array(rng, (2, 4, 7, 6), dtype)
    weight_base = random_array(rng, (3, 4, 2, 3), dtype)
    x = _layouts(base)[layout]
    weight = weight_base[:, :, ::-1]
    saved = base.copy(), weight_base.copy()
    got = check_conv2d_backward(x, weight, backend, rng, stride=(1, 2), padding=((1, 0), (2, 1)))
    assert got[0].shape == x.shape and got[1].shape == weight.shape
    np.testing.assert_array_equal(base, saved[0])
    np.testing.assert_array_equal(weight_base, saved[1])


@pytest.mark.parametrize("backend", GRAD_BACKENDS)
def test_conv2d_backward_grad_output_view_unchanged(backend, rng):
    x = random_array(rng, (2, 2, 6, 6), np.float64)
    weight = random_array(rng, (3, 2, 3, 3), np.float64)
    out, grads = torch_conv2d(x, weight, stride=1, padding=1)
    grad_base = random_array(rng, out.shape[::-1], np.float64)
    grad_output = grad_base.transpose(3, 2, 1, 0)[:, :, ::-1]
    saved = grad_base.copy()
    ref = grads(grad_output)
    got = fastcorr.conv2d_backward(grad_output, x, weight, padding=1, backend=backend)
    assert_close(got[0], ref[0], terms=27)
    assert_close(got[1], ref[1], terms=72)
    np.testing.assert_array_equal(grad_base, saved)


# --------------------------------------------------------------------------------------
# conv_transpose2d


def torch_conv_transpose2d(x, weight, bias, stride, padding, output_padding, groups, dilation):
    return F.conv_transpose2d(_t(x), _t(weight), _t(bias), stride, padding, output_padding,
                              groups, dilation).numpy()


@pytest.mark.parametrize("backend", GRAD_BACKENDS)
@pytest.mark.parametrize("stride", [1, 2, 3, (2, 1)], ids=_ids)
@pytest.mark.parametrize("channels,filters,groups", [(4, 3, 1), (4, 6, 2), (4, 4, 4)])
def test_conv_transpose2d(channels, filters, groups, stride, backend, rng):
    """Every padding x dilation x valid output_padding x bias for this stride and grouping."""
    x = random_array(rng, (2, channels, 4, 5), np.float64)
    weight = random_array(rng, (channels, filters // groups, 3, 2), np.float64)
    for (padding, dilation), with_bias in itertools.product(
            [(0, 1), (1, 2), ((2, 0), (1, 3))], [True, False]):
        limits = [max(s, d) for s, d in zip(_pair(stride), _pair(dilation))]
        for output_padding in itertools.product(range(limits[0]), range(limits[1])):
            bias = random_array(rng, (filters,), np.float64) if with_bias else None
            args = (stride, padding, output_padding, groups, dilation)
            got = fastcorr.conv_transpose2d(x, weight, bias, *args, backend=backend)
            ref = torch_conv_transpose2d(x, weight, bias, *args)
            assert_close(got, ref, terms=channels // groups * 6,
                         context=f"conv_transpose2d x{x.shape} w{weight.shape} s={stride} "
                                 f"p={padding} op={output_padding} g={groups} d={dilation}")


@pytest.mark.parametrize("backend", GRAD_BACKENDS)
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", FLOATS + [np.int32], ids=_ids)
def test_conv_transpose2d_dtypes_and_layouts(dtype, layout, backend, rng):
    base = random_array(rng, (2, 4, 4, 5), dtype)
    weight_base = random_array(rng, (4, 3, 3, 3), dtype)
    bias = random_array(rng, (6,), dtype)
    x = _layouts(base)[layout]
    weight = weight_base.transpose(0, 1, 3, 2)
    saved = base.copy(), weight_base.copy(), bias.copy()
    got = fastcorr.conv_transpose2d(x, weight, bias, stride=2, padding=1, output_padding=1,
                                    groups=2, dilation=1, backend=backend)
    ref = torch_conv_transpose2d(x, weight, bias, 2, 1, 1, 2, 1)
    assert_close(got, ref, dtype=expected_net_dtype(x, weight, bias), terms=18)
    np.testing.assert_array_equal(base, saved[0])
    np.testing.assert_array_equal(weight_base, saved[1])
    np.testing.assert_array_equal(bias, saved[2])


@pytest.mark.parametrize("backend", GRAD_BACKENDS)
@pytest.mark.parametrize("stride,padding,dilation,groups", [
    (1, 0, 1, 1), (2, 1, 1, 2), ((2, 3), (1, 0), (2, 1), 1), (3, 2, 2, 2)], ids=_ids)
def test_conv_transpose2d_is_the_input_gradient(stride, padding, dilation, groups, backend, rng):
    """conv_transpose2d(dy, w) == conv2d_backward's grad_input when output_padding fits."""
    x = random_array(rng, (2, 4, 9, 8), np.float64)
    weight = random_array(rng, (6, 4 // groups, 3, 2), np.float64)
    out = fastcorr.conv2d(x, weight, stride=stride, padding=padding, dilation=dilation,
                          groups=groups, backend="numpy")
    grad_output = random_array(rng, out.shape, np.float64)
    grad_input = fastcorr.conv2d_backward(grad_output, x, weight, stride, padding, dilation,
                                          groups, output_mask=(True, False, False),
                                          backend=backend)[0]
    # output_padding: the rows and columns the strided forward never reached
    size = [(o - 1) * s - 2 * p + d * (k - 1) + 1 for o, s, p, d, k in zip(
        out.shape[2:], _pair(stride), _pair(padding), _pair(dilation), weight.shape[2:])]
    output_padding = tuple(n - m for n, m in zip(x.shape[2:], size))
    got = fastcorr.conv_transpose2d(grad_output, weight, None, stride, padding, output_padding,
                                    groups, dilation, backend=backend)
    assert_close(got, grad_input, terms=18)


# --------------------------------------------------------------------------------------
# the naive backend on its own: finite differences and the adjoint identity


def _numeric_gradient(f, x, grad_output, h=1e-6):
    grad = np.zeros_like(x)
    for index in np.ndindex(x.shape):
        plus, minus = x.copy(), x.copy()
        plus[index] += h
        minus[index] -= h
        grad[index] = np.sum(grad_output * (f(plus) - f(minus))) / (2 * h)
    return grad


@pytest.mark.parametrize("padding_mode,stride,padding,dilation,groups", [
    ("zeros", 1, 1, 1, 1), ("zeros", (1, 2), "full", (1, 2), 1),
    ("reflect", 2, ((1, 2), (2, 0)), 1, 2), ("reflect", 1, "same", 2, 2),
    ("replicate", 1, 1, 1, 1), ("replicate", 2, ((1, 2), (2, 0)), 1, 2),
    ("circular", (1, 2), "full", (1, 2), 1), ("circular", 1, "same", 2, 2)], ids=_ids)
def test_naive_conv2d_backward_finite_differences(stride, padding, dilation, groups,
                                                  padding_mode, rng):
    x = random_array(rng, (1, 2, 5, 6), np.float64)
    weight = random_array(rng, (2, 2 // groups, 2, 3), np.float64)
    kwargs = dict(stride=stride, padding=padding, dilation=dilation, groups=groups,
                  padding_mode=padding_mode)
    out = fastcorr.conv2d(x, weight, backend="naive", **kwargs)
    grad_output = random_array(rng, out.shape, np.float64)
    grad_input, grad_weight, grad_bias = fastcorr.conv2d_backward(grad_output, x, weight,
                                                                  backend="naive", **kwargs)
    numeric_x = _numeric_gradient(lambda v: fastcorr.conv2d(v, weight, backend="naive", **kwargs),
                                  x, grad_output)
    numeric_w = _numeric_gradient(lambda v: fastcorr.conv2d(x, v, backend="naive", **kwargs),
                                  weight, grad_output)
    bias = np.zeros(2)
    numeric_b = _numeric_gradient(
        lambda v: fastcorr.conv2d(x, weight, v, backend="naive", **kwargs), bias, grad_output)
    assert_close(grad_input, numeric_x, rtol=1e-7)
    assert_close(grad_weight, numeric_w, rtol=1e-7)
    assert_close(grad_bias, numeric_b, rtol=1e-7)


@pytest.mark.parametrize("stride,padding,output_padding,dilation,groups", [
    (1, 0, 0, 1, 1), (2, 1, 1, 1, 2), ((2, 3), (0, 1), (1, 2), 1, 1), (2, 1, (1, 0), 2, 2)],
    ids=_ids)
def test_naive_conv_transpose2d_is_adjoint_of_conv2d(stride, padding, output_padding, dilation,
                                                     groups, rng):
    """<conv2d(y, w), x> == <y, conv_transpose2d(x, w)> where the shapes fit."""
    x = random_array(rng, (2, 4, 3, 4), np.float64)
    weight = random_array(rng, (4, 6 // groups, 3, 2), np.float64)
    transposed = fastcorr.conv_transpose2d(x, weight, None, stride, padding, output_padding,
                                           groups, dilation, backend="naive")
    y = random_array(rng, transposed.shape, np.float64)
    forward = fastcorr.conv2d(y, weight, None, stride, padding, dilation, groups,
                              backend="naive")
    assert forward.shape == x.shape
    assert abs(np.sum(forward * x) - np.sum(y * transposed)) <= 1e-12 * np.sum(
        np.abs(forward * x)) * 10


# --------------------------------------------------------------------------------------
# errors: ValueError / TypeError naming the function and the parameter

X = np.ones((2, 4, 6, 6))
W = np.ones((3, 4, 3, 3))
G = np.ones((2, 3, 4, 4))          # conv2d(X, W)'s output shape
WT = np.ones((4, 3, 3, 3))         # a conv_transpose2d weight for X: (in, out / groups, kh, kw)

ERROR_CASES = {
    "grad-output-shape": (lambda b: fastcorr.conv2d_backward(np.ones((2, 3, 4, 5)), X, W,
                                                             backend=b),
                          ValueError, ["conv2d_backward", "grad_output"]),
    "grad-output-channels": (lambda b: fastcorr.conv2d_backward(np.ones((2, 4, 4, 4)), X, W,
                                                                backend=b),
                             ValueError, ["conv2d_backward", "grad_output"]),
    "grad-output-padding": (lambda b: fastcorr.conv2d_backward(G, X, W, padding=1, backend=b),
                            ValueError, ["conv2d_backward", "grad_output"]),
    "grad-output-unbatched": (lambda b: fastcorr.conv2d_backward(G[0], X, W, backend=b),
                              ValueError, ["conv2d_backward", "grad_output"]),
    "grad-output-empty": (lambda b: fastcorr.conv2d_backward(np.ones((0, 3, 4, 4)), X, W,
                                                             backend=b),
                          ValueError, ["conv2d_backward", "grad_output"]),
    "mask-length": (lambda b: fastcorr.conv2d_backward(G, X, W, output_mask=(True, True),
                                                       backend=b),
                    ValueError, ["conv2d_backward", "output_mask"]),
    "mask-string": (lambda b: fastcorr.conv2d_backward(G, X, W, output_mask="yes", backend=b),
                    (TypeError, ValueError), ["conv2d_backward", "output_mask"]),
    "channels": (lambda b: fastcorr.conv2d_backward(G, X[:, :3], W, backend=b), ValueError,
                 ["conv2d_backward", "channels"]),
    "weight-3d": (lambda b: fastcorr.conv2d_backward(G, X, W[0], backend=b), ValueError,
                  ["conv2d_backward", "weight"]),
    "x-2d": (lambda b: fastcorr.conv2d_backward(G, X[0, 0], W, backend=b), ValueError,
             ["conv2d_backward", "x"]),
    "x-empty": (lambda b: fastcorr.conv2d_backward(G, np.ones((2, 4, 0, 6)), W, backend=b),
                ValueError, ["conv2d_backward", "x"]),
    "stride-zero": (lambda b: fastcorr.conv2d_backward(G, X, W, stride=0, backend=b),
                    ValueError, ["conv2d_backward", "stride"]),
    "dilation-zero": (lambda b: fastcorr.conv2d_backward(G, X, W, dilation=(1, 0), backend=b),
                      ValueError, ["conv2d_backward", "dilation"]),
    "groups-not-dividing": (lambda b: fastcorr.conv2d_backward(G, X, np.ones((3, 2, 3, 3)),
                                                               groups=2, backend=b),
                            ValueError, ["conv2d_backward", "groups"]),
    "same-with-stride": (lambda b: fastcorr.conv2d_backward(G, X, W, stride=2, padding="same",
                                                            backend=b),
                         ValueError, ["conv2d_backward", "same"]),
    "padding-word": (lambda b: fastcorr.conv2d_backward(G, X, W, padding="half", backend=b),
                     ValueError, ["conv2d_backward", "padding"]),
    "padding-mode": (lambda b: fastcorr.conv2d_backward(G, X, W, padding_mode="mirror",
                                                        backend=b),
                     ValueError, ["conv2d_backward", "padding_mode"]),
    "reflect-too-wide": (lambda b: fastcorr.conv2d_backward(np.ones((2, 3, 16, 16)), X, W,
                                                            padding=6, padding_mode="reflect",
                                                            backend=b),
                         ValueError, ["conv2d_backward", "padding"]),
    "kernel-too-large": (lambda b: fastcorr.conv2d_backward(G, X[:, :, :2], W, backend=b),
                         ValueError, ["conv2d_backward", "kernel"]),
    "transpose-output-padding": (
        lambda b: fastcorr.conv_transpose2d(X, WT, stride=2, output_padding=2, backend=b),
        ValueError, ["conv_transpose2d", "output_padding"]),
    "transpose-output-padding-stride-1": (
        lambda b: fastcorr.conv_transpose2d(X, WT, output_padding=(0, 1), backend=b),
        ValueError, ["conv_transpose2d", "output_padding"]),
    "transpose-output-padding-dilation": (
        lambda b: fastcorr.conv_transpose2d(X, WT, stride=2, dilation=3, output_padding=3,
                                            backend=b),
        ValueError, ["conv_transpose2d", "output_padding"]),
    "transpose-output-padding-negative": (
        lambda b: fastcorr.conv_transpose2d(X, WT, stride=2, output_padding=-1, backend=b),
        ValueError, ["conv_transpose2d", "output_padding"]),
    "transpose-weight-3d": (lambda b: fastcorr.conv_transpose2d(X, WT[0], backend=b), ValueError,
                            ["conv_transpose2d", "weight"]),
    "transpose-x-2d": (lambda b: fastcorr.conv_transpose2d(X[0, 0], WT, backend=b), ValueError,
                       ["conv_transpose2d", "x"]),
    "transpose-x-5d": (lambda b: fastcorr.conv_transpose2d(X[None], WT, backend=b), ValueError,
                       ["conv_transpose2d", "x"]),
    "transpose-channels": (lambda b: fastcorr.conv_transpose2d(X, np.ones((3, 2, 3, 3)),
                                                               backend=b),
                           ValueError, ["conv_transpose2d", "channels"]),
    "transpose-groups": (lambda b: fastcorr.conv_transpose2d(X, W[:, :, :1].repeat(4, 0)[:4],
                                                             groups=3, backend=b),
                         ValueError, ["conv_transpose2d", "groups"]),
    "transpose-bias-shape": (lambda b: fastcorr.conv_transpose2d(X, np.ones((4, 2, 3, 3)),
                                                                 np.ones(2), groups=2,
                                                                 backend=b),
                             ValueError, ["conv_transpose2d", "bias"]),
    "transpose-stride-zero": (lambda b: fastcorr.conv_transpose2d(X, WT, stride=0, backend=b),
                              ValueError, ["conv_transpose2d", "stride"]),
    "transpose-padding-eats-all": (
        lambda b: fastcorr.conv_transpose2d(np.ones((1, 4, 1, 1)), np.ones((4, 1, 1, 1)),
                                            padding=1, backend=b),
        ValueError, ["conv_transpose2d", "padding"]),
    "transpose-empty": (lambda b: fastcorr.conv_transpose2d(np.ones((0, 4, 3, 3)), WT, backend=b),
                        ValueError, ["conv_transpose2d", "x"]),
    "transpose-complex": (lambda b: fastcorr.conv_transpose2d(X + 1j, WT, backend=b), TypeError,
                          ["conv_transpose2d"]),
}


@pytest.mark.parametrize("backend", GRAD_BACKENDS)
@pytest.mark.parametrize("case", list(ERROR_CASES))
def test_bad_input(case, backend):
    call, exception, words = ERROR_CASES[case]
    with pytest.raises(exception) as excinfo:
        call(backend)
    message_names(excinfo, *words)


@pytest.mark.parametrize("func", ["conv2d_backward", "conv_transpose2d"])
def test_scipy_backend_has_no_adjoints(func, rng):
    x = random_array(rng, (2, 4, 6, 6), np.float64)
    if func == "conv2d_backward":
        call = lambda: fastcorr.conv2d_backward(G, x, W, backend="scipy")  # noqa: E731
    else:
        call = lambda: fastcorr.conv_transpose2d(x, WT, backend="scipy")  # noqa: E731
    with pytest.raises(NotImplementedError) as excinfo:
        call()
    message_names(excinfo, func, "scipy")


# --------------------------------------------------------------------------------------
# The numba kernels' own paths, against the naive backend's kernels

NUMBA = pytest.mark.skipif("numba" not in CPU_BACKENDS, reason="numba is not available")


def _naive():
    from fastcorr.kernels import naive

    return naive


@NUMBA
@pytest.mark.parametrize("dtype", FLOATS, ids=_ids)
@pytest.mark.parametrize("stride,dilation,groups,crop", [
    ((1, 1, 1), (1, 1, 1), 1, ((0, 0), (1, 1), (1, 1))),   # zero padding 1: the C6 layers
    ((1, 1, 1), (1, 2, 1), 2, ((0, 0), (2, 0), (0, 1))),   # asymmetric, dilated, grouped
    ((1, 2, 1), (1, 1, 1), 1, ((0, 0), (1, 2), (0, 0))),   # strided: zeros spread in
    ((1, 1, 2), (1, 1, 2), 2, ((0, 0), (0, 0), (2, 2))),
    ((1, 1, 1), (1, 1, 1), 1, ((0, 0), (3, 0), (0, 4))),   # cuts into the gradient itself
    ((2, 1, 1), (1, 1, 1), 1, ((1, 0), (1, 1), (1, 1))),   # 3-d
], ids=_ids)
@pytest.mark.parametrize("group_channels", [8, 3])  # 8: the 8 x 48 float32 tile; 3: conv_forward
def test_numba_conv_transpose_cropped(group_channels, stride, dilation, groups, crop, dtype,
                                      rng):
    from fastcorr.kernels.numba import conv_transpose_cropped

    depth = 2 if stride[0] > 1 else 1
    kernel = (depth, 3, 3)
    grad = random_array(rng, (2, 2 * groups, depth, 9, 8), dtype)
    weight = random_array(rng, (2 * groups, group_channels) + kernel, dtype)
    size = tuple((n - 1) * s + d * (k - 1) + 1 + extra for n, s, d, k, extra in
                 zip(grad.shape[2:], stride, dilation, kernel, (0, 1, 0)))
    got = conv_transpose_cropped(grad, weight, stride, dilation, groups, size, crop)
    full = _naive().conv_transpose(grad, weight, stride, dilation, groups, size)
    ref = full[(slice(None), slice(None)) + tuple(slice(b, n - a) for n, (b, a) in
                                                     zip(size, crop))]
    assert_close(got, ref, dtype=dtype, terms=2 * int(np.prod(kernel)),
                 context=f"conv_transpose_cropped s={stride} d={dilation} g={groups} {crop}")


@NUMBA
@pytest.mark.parametrize("dtype", FLOATS, ids=_ids)
@pytest.mark.parametrize("filters,groups,dilation,positions", [
    (16, 1, (1, 1, 1), "many"),   # two whole blocks of 8 filters
    (16, 2, (1, 2, 1), "many"),   # grouped, dilated
    (66, 1, (1, 1, 1), "many"),   # >= 64 filters: the last block mostly padding filters
    (12, 1, (1, 1, 1), "many"),   # not a multiple of 8: conv_forward
    (8, 1, (1, 1, 1), "few"),     # fewer positions than one tile: conv_forward
], ids=_ids)
def test_numba_stride1_correlation(filters, groups, dilation, positions, dtype, rng):
    """conv_transpose's implicit GEMM (and its fallbacks) is conv_forward at stride 1."""
    from fastcorr.kernels.numba.grad import _stride1_correlation

    shape = (2, 3 * groups, 2, 9, 11) if positions == "many" else (1, 3 * groups, 1, 5, 6)
    x = random_array(rng, shape, dtype)
    weight = random_array(rng, (filters, 3, 1, 3, 2), dtype)
    got = _stride1_correlation(x, weight, dilation, groups)
    ref = _naive().conv_forward(x, weight, None, (1, 1, 1), dilation, groups)
    assert_close(got, ref, dtype=dtype, terms=weight[0].size,
                 context=f"stride-1 correlation F={filters} g={groups} d={dilation}")


@NUMBA
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("channels,groups,stride,dilation,crop", [
    (8, 1, (1, 1, 1), (1, 1, 1), ((0, 0), (1, 1), (1, 1))),  # the C6 case: zero padding 1
    (16, 2, (1, 1, 1), (1, 2, 1), ((0, 0), (0, 2), (1, 0))),  # grouped, dilated, asymmetric
    (8, 1, (1, 2, 2), (1, 1, 1), ((0, 0), (0, 0), (0, 0))),   # strided: zeros between samples
    (66, 1, (1, 1, 1), (1, 1, 1), ((0, 0), (1, 1), (1, 1))),  # last block mostly padding
], ids=_ids)
def test_numba_spread_correlation(channels, groups, stride, dilation, crop, threads, rng):
    """conv_transpose's fused spread + GEMM (many volumes per thread, float32) is the naive one."""
    import numba

    from fastcorr.kernels.numba.grad import TASKS_PER_THREAD, conv_transpose_cropped

    kernel = (1, 3, 3)
    batch = TASKS_PER_THREAD * threads  # just enough volumes for the fused path
    grad = random_array(rng, (batch, 4 * groups, 1, 9, 13), np.float32)
    weight = random_array(rng, (4 * groups, channels // groups) + kernel, np.float32)
    size = tuple((n - 1) * s + d * (k - 1) + 1 for n, s, d, k in
                 zip(grad.shape[2:], stride, dilation, kernel))
    previous = numba.get_num_threads()
    numba.set_num_threads(threads)
    try:
        got = conv_transpose_cropped(grad, weight, stride, dilation, groups, size, crop)
    finally:
        numba.set_num_threads(previous)
    full = _naive().conv_transpose(grad.astype(np.float64), weight.astype(np.float64), stride,
                                   dilation, groups, size)
    ref = full[(slice(None), slice(None)) + tuple(slice(b, n - a) for n, (b, a) in
                                                     zip(size, crop))]
    assert_close(got, ref, dtype=np.float32, terms=4 * int(np.prod(kernel)),
                 context=f"spread correlation C={channels} g={groups} s={stride} {crop}")


@NUMBA
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("dtype", FLOATS, ids=_ids)
@pytest.mark.parametrize("groups,stride,crop", [
    (1, (1, 1, 1), ((0, 0), (1, 1), (1, 1))),  # the C6 case: float32 takes the fused path
    (2, (1, 1, 1), ((0, 0), (0, 2), (1, 0))),  # grouped, asymmetric
    (1, (1, 2, 2), ((0, 0), (0, 0), (0, 0))),  # strided
], ids=_ids)
def test_numba_conv_transpose_cropped_bias(groups, stride, crop, dtype, threads, rng):
    """The bias gradient summed during the fused spread (or apart) is the naive backend's."""
    import numba

    from fastcorr.kernels.numba.grad import (
        TASKS_PER_THREAD,
        _conv_transpose,
        conv_transpose_cropped,
        conv_transpose_cropped_bias,
    )

    kernel, dilation = (1, 3, 3), (1, 1, 1)
    batch = TASKS_PER_THREAD * threads  # enough volumes for the fused path
    grad = random_array(rng, (batch, 8 * groups, 1, 9, 13), dtype)
    weight = random_array(rng, (8 * groups, 8) + kernel, dtype)  # 8 channels a group: fused
    size = tuple((n - 1) * s + d * (k - 1) + 1 for n, s, d, k in
                 zip(grad.shape[2:], stride, dilation, kernel))
    previous = numba.get_num_threads()
    numba.set_num_threads(threads)
    try:
        grad_input, grad_bias = conv_transpose_cropped_bias(grad, weight, stride, dilation,
                                                            groups, size, crop)
        alone = conv_transpose_cropped(grad, weight, stride, dilation, groups, size, crop)
        fused = _conv_transpose(grad, weight, stride, dilation, groups, size, crop,
                                np.empty(grad.shape[:2]))[1]
    finally:
        numba.set_num_threads(previous)
    assert fused == (dtype == np.float32)  # float64 sums apart, in conv_bias_grad
    np.testing.assert_array_equal(grad_input, alone)
    assert grad_bias.dtype == dtype and grad_bias.shape == (8 * groups,)
    # The naive backend's bias gradient of a convolution with this output gradient.
    x = np.zeros((batch, 8 * groups) + size[1:], dtype)
    ref = fastcorr.conv2d_backward(grad[:, :, 0], x, weight[:, :, 0], stride[1:], groups=groups,
                                   output_mask=(False, False, True), backend="naive")[2]
    assert_close(grad_bias, ref, dtype=dtype, terms=batch * 9 * 13,
                 context=f"fused bias g={groups} s={stride} {dtype}")


@NUMBA
@pytest.mark.parametrize("dtype", FLOATS, ids=_ids)
@pytest.mark.parametrize("shape", [(3, 5, 1, 7, 9), (1, 2, 1, 4, 4), (2, 1, 1, 1, 1),
                                   (0, 3, 1, 2, 2), (2, 3, 1, 0, 2)])
def test_numba_conv_bias_grad(shape, dtype, rng):
    from fastcorr.kernels.numba import conv_bias_grad

    grad = random_array(rng, shape, dtype)
    got = conv_bias_grad(grad)
    ref = grad.astype(np.float64).sum(axis=(0, 2, 3, 4))
    assert_close(got, ref, dtype=dtype, terms=max(1, grad.size // max(1, shape[1])),
                 context=f"conv_bias_grad {shape}")


@NUMBA
@pytest.mark.parametrize("dtype", FLOATS, ids=_ids)
@pytest.mark.parametrize("stride,dilation,groups", [
    ((1, 1, 1), (1, 1, 1), 1), ((1, 2, 1), (1, 1, 2), 2), ((1, 1, 1), (1, 2, 2), 1)], ids=_ids)
def test_numba_conv_weight_grad_long_reduction(stride, dilation, groups, dtype, rng):
    """More positions than one chunk of the micro-kernel (CHUNK_POSITIONS), several images."""
    from fastcorr.kernels.numba import conv_weight_grad
    from fastcorr.kernels.numba.grad import CHUNK_POSITIONS

    side = int(np.sqrt(CHUNK_POSITIONS)) + 8
    x = random_array(rng, (2, 2 * groups, 1, side, side + 3), dtype)
    kernel = (1, 3, 2)
    out = tuple((n - d * (k - 1) - 1) // s + 1 for n, k, s, d in
                zip(x.shape[2:], kernel, stride, dilation))
    grad = random_array(rng, (2, 3 * groups) + out, dtype)
    got = conv_weight_grad(x, grad, kernel, stride, dilation, groups)
    ref = _naive().conv_weight_grad(x.astype(np.float64), grad.astype(np.float64), kernel,
                                    stride, dilation, groups)
    assert_close(got, ref, dtype=dtype, terms=2 * int(np.prod(out)),
                 context=f"conv_weight_grad s={stride} d={dilation} g={groups}")


@NUMBA
@pytest.mark.parametrize("images_per_thread", [1, "fused"])
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("dtype", FLOATS, ids=_ids)
@pytest.mark.parametrize("pads,stride,groups,filters,size", [
    (((0, 0), (1, 1), (1, 1)), (1, 1, 1), 1, 3, (2, 7, 9)),     # few filters: taps in the lanes
    (((0, 0), (1, 1), (1, 1)), (1, 1, 1), 1, 70, (1, 7, 9)),    # two filter blocks
    (((1, 0), (0, 2), (3, 1)), (1, 1, 1), 2, 4, (2, 7, 9)),     # asymmetric, 3-d, grouped
    (((0, 0), (2, 2), (1, 1)), (1, 1, 1), 1, 5, (1, 33, 34)),   # several position chunks
    (((0, 0), (2, 1), (0, 0)), (1, 2, 3), 1, 3, (2, 7, 9)),     # strided: the stride phases
    (((0, 0), (0, 0), (0, 0)), (1, 1, 1), 1, 3, (2, 7, 9)),
], ids=_ids)
def test_numba_conv_weight_grad_padded(pads, stride, groups, filters, size, dtype, threads,
                                       images_per_thread, rng):
    """Both forms: the padded input written first, and padded image by image in the GEMM's
    parallel region (at stride 1 with enough images per thread)."""
    import numba

    from fastcorr.kernels.numba import conv_weight_grad_padded
    from fastcorr.kernels.numba.grad import TASKS_PER_THREAD

    batch = TASKS_PER_THREAD * threads if images_per_thread == "fused" else threads
    x = random_array(rng, (batch, 4 * groups) + size, dtype)[:, ::2]  # a view: not contiguous
    kernel, dilation = (1, 3, 2), (1, 1, 2)
    padded = np.pad(x, ((0, 0), (0, 0)) + pads)
    out = tuple((n - d * (k - 1) - 1) // s + 1 for n, k, s, d in
                zip(padded.shape[2:], kernel, stride, dilation))
    grad = random_array(rng, (batch, filters * groups) + out, dtype)
    previous = numba.get_num_threads()
    numba.set_num_threads(threads)
    try:
        got = conv_weight_grad_padded(x, grad, kernel, stride, dilation, groups, pads)
    finally:
        numba.set_num_threads(previous)
    ref = _naive().conv_weight_grad(padded.astype(np.float64), grad.astype(np.float64), kernel,
                                    stride, dilation, groups)
    assert got.dtype == dtype
    assert_close(got, ref, dtype=dtype, terms=batch * int(np.prod(out)),
                 context=f"conv_weight_grad_padded {pads} s={stride} g={groups} F={filters}")


@pytest.mark.parametrize("backend", GRAD_BACKENDS)
@pytest.mark.parametrize("output_mask", [(True, False, False), (False, False, True)], ids=_ids)
def test_conv2d_backward_checks_the_padding_mode_without_weight_gradient(output_mask, backend):
    """The padding is checked against its mode even where the input is never padded."""
    with pytest.raises(ValueError) as excinfo:
        fastcorr.conv2d_backward(np.ones((1, 1, 7, 7)), np.ones((1, 1, 3, 3)),
                                 np.ones((1, 1, 3, 3)), padding=3, padding_mode="reflect",
                                 output_mask=output_mask, backend=backend)
    message_names(excinfo, "conv2d_backward", "reflect")
