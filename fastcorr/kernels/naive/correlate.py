"""Correlation, convolution and im2col as plain loops.

Nothing here is vectorised: each output element is a visible sum over the
kernel, exactly as the formulas in the docs write it.
"""

from __future__ import annotations

import itertools

import numpy as np

from ..._shapes import valid_shape


def correlate_valid(x, kernel):
    """``out[i] = sum_j x[i + j] * kernel[j]`` for every complete overlap."""
    out_shape = tuple(n - k + 1 for n, k in zip(x.shape, kernel.shape))
    out = np.zeros(out_shape, dtype=x.dtype)
    for i in itertools.product(*map(range, out_shape)):
        total = out.dtype.type(0)
        for j in itertools.product(*map(range, kernel.shape)):
            total += x[tuple(a + b for a, b in zip(i, j))] * kernel[j]
        out[i] = total
    return out


def conv_forward(x, weight, bias, stride, dilation, groups):
    """Grouped, strided, dilated correlation of a padded (N, C, D, H, W) batch."""
    batch, channels = x.shape[:2]
    filters, group_channels = weight.shape[:2]
    kernel = weight.shape[2:]
    out_spatial = valid_shape(x.shape[2:], kernel, dilation, stride)
    filters_per_group = filters // groups
    out = np.zeros((batch, filters) + out_spatial, dtype=x.dtype)
    for n, f in itertools.product(range(batch), range(filters)):
        first_channel = (f // filters_per_group) * group_channels
        for o in itertools.product(*map(range, out_spatial)):
            total = bias[f] if bias is not None else out.dtype.type(0)
            for c in range(group_channels):
                for k in itertools.product(*map(range, kernel)):
                    position = tuple(oi * s + ki * d
                                     for oi, ki, s, d in zip(o, k, stride, dilation))
                    total += weight[(f, c) + k] * x[(n, first_channel + c) + position]
            out[(n, f) + o] = total
    return out


def _windows(size, kernel_size, dilation, stride):
    """Output positions and, for each, the input position of every kernel offset."""
    out_spatial = valid_shape(size, kernel_size, dilation, stride)
    for column, o in enumerate(itertools.product(*map(range, out_spatial))):
        for row, k in enumerate(itertools.product(*map(range, kernel_size))):
            yield column, row, tuple(oi * s + ki * d
                                     for oi, ki, s, d in zip(o, k, stride, dilation))


def unfold(x, kernel_size, dilation, stride):
    """im2col: ``cols[n, c * K + k, l] = x[n, c, position(l, k)]``."""
    batch, channels = x.shape[:2]
    kernel_volume = int(np.prod(kernel_size))
    windows = list(_windows(x.shape[2:], kernel_size, dilation, stride))
    length = windows[-1][0] + 1
    cols = np.zeros((batch, channels * kernel_volume, length), dtype=x.dtype)
    for n, c in itertools.product(range(batch), range(channels)):
        for column, row, position in windows:
            cols[n, c * kernel_volume + row, column] = x[(n, c) + position]
    return cols


def fold(cols, size, kernel_size, dilation, stride):
    """col2im, the adjoint of :func:`unfold`: overlapping entries add up."""
    batch = cols.shape[0]
    kernel_volume = int(np.prod(kernel_size))
    channels = cols.shape[1] // kernel_volume
    out = np.zeros((batch, channels) + tuple(size), dtype=cols.dtype)
    windows = list(_windows(size, kernel_size, dilation, stride))
    for n, c in itertools.product(range(batch), range(channels)):
        for column, row, position in windows:
            out[(n, c) + position] += cols[n, c * kernel_volume + row, column]
    return out


def conv_transpose(grad, weight, stride, dilation, groups, size):
    """The adjoint of :func:`conv_forward` in ``x``: scatter each output back through the kernel.

    ``grad`` is ``(N, F, *out)``; the result is ``(N, C, *size)``, ``size`` the padded input's.
    """
    batch, filters = grad.shape[:2]
    group_channels = weight.shape[1]
    kernel = weight.shape[2:]
    filters_per_group = filters // groups
    out = np.zeros((batch, group_channels * groups) + tuple(size), dtype=grad.dtype)
    for n, f in itertools.product(range(batch), range(filters)):
        first_channel = (f // filters_per_group) * group_channels
        for o in itertools.product(*map(range, grad.shape[2:])):
            for c in range(group_channels):
                for k in itertools.product(*map(range, kernel)):
                    position = tuple(oi * s + ki * d
                                     for oi, ki, s, d in zip(o, k, stride, dilation))
                    out[(n, first_channel + c) + position] += weight[(f, c) + k] * grad[(n, f) + o]
    return out


def conv_weight_grad(x, grad, kernel_size, stride, dilation, groups):
    """The adjoint of :func:`conv_forward` in ``weight``: correlate ``x`` with ``grad``."""
    batch, channels = x.shape[:2]
    filters = grad.shape[1]
    group_channels = channels // groups
    filters_per_group = filters // groups
    out = np.zeros((filters, group_channels) + tuple(kernel_size), dtype=x.dtype)
    for f, c in itertools.product(range(filters), range(group_channels)):
        channel = (f // filters_per_group) * group_channels + c
        for k in itertools.product(*map(range, kernel_size)):
            total = out.dtype.type(0)
            for n in range(batch):
                for o in itertools.product(*map(range, grad.shape[2:])):
                    position = tuple(oi * s + ki * d
                                     for oi, ki, s, d in zip(o, k, stride, dilation))
                    total += grad[(n, f) + o] * x[(n, channel) + position]
            out[(f, c) + k] = total
    return out
