"""Correlation, convolution and im2col in NumPy, one array operation per kernel offset.

Each kernel offset contributes a shifted (strided, dilated) view of the input,
so temporaries are the size of the output, never input size x kernel size.
"""

from __future__ import annotations

import itertools

import numpy as np

from ..._fft import correlate_fft as _correlate_fft
from ..._shapes import valid_shape


def correlate_valid(x, kernel):
    """``out[i] = sum_j x[i + j] * kernel[j]``: one multiply-add per kernel offset."""
    out_shape = tuple(n - k + 1 for n, k in zip(x.shape, kernel.shape))
    out = np.zeros(out_shape, dtype=x.dtype)
    for j in itertools.product(*map(range, kernel.shape)):
        window = tuple(slice(a, a + n) for a, n in zip(j, out_shape))
        out += kernel[j] * x[window]
    return out


def correlate_fft(x, kernel):
    return _correlate_fft(x, kernel, fft=np.fft)


def _offset_view(array, offset, out_spatial, stride):
    """The input samples that kernel offset ``offset`` meets at every output position."""
    index = tuple(slice(o, o + (n - 1) * s + 1, s) for o, n, s in zip(offset, out_spatial, stride))
    return array[(slice(None), slice(None)) + index]


def conv_forward(x, weight, bias, stride, dilation, groups):
    """Per group and kernel offset, a (F_g x C_g) @ (C_g x outputs) product, accumulated."""
    batch, channels = x.shape[:2]
    filters, group_channels = weight.shape[:2]
    kernel_size = weight.shape[2:]
    out_spatial = valid_shape(x.shape[2:], kernel_size, dilation, stride)
    filters_per_group = filters // groups
    out = np.zeros((batch, filters) + out_spatial, dtype=x.dtype)
    for g in range(groups):
        x_group = x[:, g * group_channels:(g + 1) * group_channels]
        w_group = weight[g * filters_per_group:(g + 1) * filters_per_group]
        out_group = out[:, g * filters_per_group:(g + 1) * filters_per_group]
        for k in itertools.product(*map(range, kernel_size)):
            offset = tuple(ki * d for ki, d in zip(k, dilation))
            view = _offset_view(x_group, offset, out_spatial, stride)
            # (N, C_g, *out) x (F_g, C_g) -> (N, *out, F_g) -> (N, F_g, *out)
            contribution = np.tensordot(view, w_group[(slice(None), slice(None)) + k],
                                        axes=([1], [1]))
            out_group += np.moveaxis(contribution, -1, 1)
    if bias is not None:
        out += bias.reshape((1, filters) + (1,) * len(out_spatial))
    return out


def unfold(x, kernel_size, dilation, stride):
    """im2col: rows (c, kernel offset), columns the output positions in row-major order."""
    batch, channels = x.shape[:2]
    out_spatial = valid_shape(x.shape[2:], kernel_size, dilation, stride)
    kernel_volume = int(np.prod(kernel_size))
    cols = np.empty((batch, channels, kernel_volume) + out_spatial, dtype=x.dtype)
    for row, k in enumerate(itertools.product(*map(range, kernel_size))):
        offset = tuple(ki * d for ki, d in zip(k, dilation))
        cols[:, :, row] = _offset_view(x, offset, out_spatial, stride)
    return cols.reshape(batch, channels * kernel_volume, -1)


def fold(cols, size, kernel_size, dilation, stride):
    """col2im: the adjoint of :func:`unfold`, overlaps add up."""
    batch = cols.shape[0]
    kernel_volume = int(np.prod(kernel_size))
    channels = cols.shape[1] // kernel_volume
    out_spatial = valid_shape(size, kernel_size, dilation, stride)
    blocks = cols.reshape((batch, channels, kernel_volume) + out_spatial)
    out = np.zeros((batch, channels) + tuple(size), dtype=cols.dtype)
    for row, k in enumerate(itertools.product(*map(range, kernel_size))):
        offset = tuple(ki * d for ki, d in zip(k, dilation))
        _offset_view(out, offset, out_spatial, stride)[...] += blocks[:, :, row]
    return out


def conv_transpose(grad, weight, stride, dilation, groups, size):
    """The adjoint of :func:`conv_forward` in ``x``, one product per group and kernel offset."""
    batch, filters = grad.shape[:2]
    group_channels = weight.shape[1]
    kernel_size = weight.shape[2:]
    out_spatial = grad.shape[2:]
    filters_per_group = filters // groups
    out = np.zeros((batch, group_channels * groups) + tuple(size), dtype=grad.dtype)
    for g in range(groups):
        grad_group = grad[:, g * filters_per_group:(g + 1) * filters_per_group]
        w_group = weight[g * filters_per_group:(g + 1) * filters_per_group]
        out_group = out[:, g * group_channels:(g + 1) * group_channels]
        for k in itertools.product(*map(range, kernel_size)):
            offset = tuple(ki * d for ki, d in zip(k, dilation))
            # (N, F_g, *out) x (F_g, C_g) -> (N, *out, C_g); one offset never repeats a position.
            contribution = np.tensordot(grad_group, w_group[(slice(None), slice(None)) + k],
                                        axes=([1], [0]))
            _offset_view(out_group, offset, out_spatial, stride)[...] += np.moveaxis(
                contribution, -1, 1)
    return out


def conv_weight_grad(x, grad, kernel_size, stride, dilation, groups):
    """The adjoint of :func:`conv_forward` in ``weight``: per offset, ``grad`` dot a view."""
    channels = x.shape[1]
    filters = grad.shape[1]
    group_channels = channels // groups
    filters_per_group = filters // groups
    out_spatial = grad.shape[2:]
    out = np.zeros((filters, group_channels) + tuple(kernel_size), dtype=x.dtype)
    reduced = [0] + list(range(2, grad.ndim))
    for g in range(groups):
        grad_group = grad[:, g * filters_per_group:(g + 1) * filters_per_group]
        x_group = x[:, g * group_channels:(g + 1) * group_channels]
        for k in itertools.product(*map(range, kernel_size)):
            offset = tuple(ki * d for ki, d in zip(k, dilation))
            view = _offset_view(x_group, offset, out_spatial, stride)
            out[(slice(g * filters_per_group, (g + 1) * filters_per_group), slice(None)) + k] = (
                np.tensordot(grad_group, view, axes=(reduced, reduced)))
    return out
