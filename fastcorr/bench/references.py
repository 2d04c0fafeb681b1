"""The float64 results every implementation is checked against before it is timed.

Plain NumPy (and SciPy's FFT for C1), written for clarity, not speed; one
function per workload, ``reference(case, *inputs)``, collected in
:data:`REFERENCES`.  Backward passes return tuples, like the functions they check.

Examples
--------
>>> import numpy as np
>>> from fastcorr.bench.workloads import PoolCase
>>> x = np.arange(16.0).reshape(1, 1, 4, 4)
>>> reference_c4(PoolCase("max", x.shape, 2, 2), x)[0, 0]
array([[ 5.,  7.],
       [13., 15.]])
"""

from __future__ import annotations

import functools

import numpy as np
import scipy.signal

from .peers import im2col_matmul, sliding_window_unfold

EPS = 1e-5  # the norms' default eps, fastcorr's and torch's


def _float64(*arrays):
    return [np.asarray(array, dtype=np.float64) for array in arrays]


def _padding(layer) -> int:
    return 0 if layer.padding == "valid" else layer.padding


def reference_c1(case, image, kernel) -> np.ndarray:
    """``correlate2d(image, kernel, case.mode)``, by FFT (real inputs, odd kernels)."""
    image, kernel = _float64(image, kernel)
    return scipy.signal.fftconvolve(image, kernel[::-1, ::-1], mode=case.mode)


def reference_c2(case, x, weight) -> np.ndarray:
    """``conv2d(x, weight, stride, padding)``."""
    return im2col_matmul(*_float64(x, weight), case.stride, case.padding)


def reference_c3(case, x) -> np.ndarray:
    """``unfold(x, kernel_size, padding, stride)``: the windows, copied."""
    layer = case.layer
    return sliding_window_unfold(*_float64(x), layer.kernel_size, layer.stride, _padding(layer))


def _taps(padded: np.ndarray, kernel_size: int, stride: int, out_shape):
    """For each kernel offset, the strided view of ``padded`` that offset reads."""
    out_height, out_width = out_shape
    for i in range(kernel_size):
        for j in range(kernel_size):
            yield padded[:, :, i:i + stride * (out_height - 1) + 1:stride,
                         j:j + stride * (out_width - 1) + 1:stride]


def reference_c4(case, x) -> np.ndarray:
    """Max or average pooling (zero padding counted in averages, as by default)."""
    (x,) = _float64(x)
    if case.is_global:
        return x.max(axis=(2, 3)) if case.kind == "global_max" else x.mean(axis=(2, 3))
    pad = case.padding
    fill = -np.inf if case.kind == "max" else 0.0
    padded = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)), constant_values=fill)
    taps = _taps(padded, case.kernel_size, case.stride, case.output_shape[2:])
    if case.kind == "max":
        return functools.reduce(np.maximum, taps)
    return sum(taps) / case.kernel_size**2


def _norm_view(case, x):
    """``x`` as ``(N, G, rest)`` (statistics over the last axis), and how to undo it.

    Batch norm's statistics run over (N, H, W) per channel, so its view
    moves C first.
    """
    batch, channels = x.shape[:2]
    if case.kind == "batch":
        moved = x.transpose(1, 0, 2, 3)
        return moved.reshape(1, channels, -1), lambda v: v.reshape(moved.shape).transpose(
            1, 0, 2, 3)
    groups = {"layer": 1, "instance": channels, "group": case.groups}[case.kind]
    return x.reshape(batch, groups, -1), lambda v: v.reshape(x.shape)


def _affine_shape(case, x) -> tuple[int, ...]:
    """Shape that broadcasts the weight and bias against ``x``."""
    return x.shape[1:] if case.kind == "layer" else (x.shape[1], 1, 1)


def _standardized(case, x):
    """``(xhat, 1 / std, undo)``: ``x`` standardised over its statistics' axes."""
    view, undo = _norm_view(case, x)
    mean = view.mean(axis=-1, keepdims=True)
    inv_std = 1.0 / np.sqrt(view.var(axis=-1, keepdims=True) + EPS)
    return (view - mean) * inv_std, inv_std, undo


def reference_c5(case, *inputs):
    """A normalisation's output (forward) or ``(grad_input, grad_weight, grad_bias)``."""
    if case.direction == "forward":
        x, weight, bias = _float64(*inputs)
        xhat, _, undo = _standardized(case, x)
        shape = _affine_shape(case, x)
        return undo(xhat) * weight.reshape(shape) + bias.reshape(shape)
    grad, x, weight, _ = _float64(*inputs)
    xhat, inv_std, undo = _standardized(case, x)
    xhat = undo(xhat)
    param_axes = (0,) if case.kind == "layer" else (0, 2, 3)
    grad_weight = (grad * xhat).sum(axis=param_axes)
    grad_bias = grad.sum(axis=param_axes)
    grad_xhat, _ = _norm_view(case, grad * weight.reshape(_affine_shape(case, x)))
    xhat_view, _ = _norm_view(case, xhat)
    grad_input = inv_std * (grad_xhat - grad_xhat.mean(axis=-1, keepdims=True)
                            - xhat_view * (grad_xhat * xhat_view).mean(axis=-1, keepdims=True))
    return undo(grad_input), grad_weight, grad_bias


def reference_c6(case, grad, x, weight):
    """``(grad_input, grad_weight, grad_bias)`` of ``conv2d`` at the case's layer, tap by tap."""
    grad, x, weight = _float64(grad, x, weight)
    layer, pad = case.layer, _padding(case.layer)
    padded = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    grad_padded = np.zeros_like(padded)
    grad_weight = np.zeros_like(weight)
    taps = zip(_taps(padded, layer.kernel_size, layer.stride, layer.output_shape[2:]),
               _taps(grad_padded, layer.kernel_size, layer.stride, layer.output_shape[2:]),
               np.ndindex(layer.kernel_size, layer.kernel_size))
    for window, grad_window, (i, j) in taps:
        grad_weight[:, :, i, j] = np.tensordot(grad, window, axes=([0, 2, 3], [0, 2, 3]))
        grad_window += np.tensordot(grad, weight[:, :, i, j], axes=([1], [0])).transpose(
            0, 3, 1, 2)
    height, width = x.shape[2:]
    return grad_padded[:, :, pad:pad + height, pad:pad + width], grad_weight, grad.sum((0, 2, 3))


REFERENCES = {"c1": reference_c1, "c2": reference_c2, "c3": reference_c3, "c4": reference_c4,
              "c5": reference_c5, "c6": reference_c6}
