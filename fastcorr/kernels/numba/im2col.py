"""``unfold`` (im2col) and its adjoint ``fold`` (col2im) on padded ``(N, C, D, H, W)`` arrays.

Both partition the *output* so that no two threads write one cell:

* ``unfold`` writes ``cols[n, (c, a3, a, b), :]``, one row per task: for
  every output row ``(od, oy)`` a strided copy of one input row;
* ``fold`` is written as a gather: a task owns one output row
  ``out[n, c, z, y, :]``, zeroes it, and adds every tap ``(a3, a, b)`` whose
  window rows land on it (``z = od*s0 + a3*d0``, ``y = oy*s1 + a*d1``).
"""

from __future__ import annotations

import numpy as np
from numba import prange

from ._jit import jit


@jit()
def _unfold_row(x_channel, cols_row, a3, a, b, out_shape, stride, dilation):
    """Serial worker: one row of ``cols``.

    ``cols_row[(od, oy, ox)] = x_channel[od*s0 + a3*d0, oy*s1 + a*d1, ox*s2 + b*d2]``.
    """
    out_depth, out_height, out_width = out_shape
    for od in range(out_depth):
        plane = x_channel[od * stride[0] + a3 * dilation[0]]
        for oy in range(out_height):
            source = plane[oy * stride[1] + a * dilation[1], b * dilation[2]:]
            target = cols_row[(od * out_height + oy) * out_width:]
            # Unit stride as its own loop: LLVM vectorises it into plain copies.
            if stride[2] == 1:
                for ox in range(out_width):
                    target[ox] = source[ox]
            else:
                for ox in range(out_width):
                    target[ox] = source[ox * stride[2]]


@jit(parallel=True)
def _unfold(x, cols, kernel_shape, out_shape, stride, dilation):
    """Parallel driver: one task per row ``(n, c, a3, a, b)`` of ``cols``."""
    batch, channels = x.shape[:2]
    kernel_depth, kernel_height, kernel_width = kernel_shape
    taps = kernel_depth * kernel_height * kernel_width
    for task in prange(batch * channels * taps):
        # prange indices are unsigned: mixed with signed ints they become floats.
        image_channel, tap = divmod(np.intp(task), taps)
        image, channel = divmod(image_channel, channels)
        a3, rest = divmod(tap, kernel_height * kernel_width)
        a, b = divmod(rest, kernel_width)
        _unfold_row(x[image, channel], cols[image, channel * taps + tap], a3, a, b,
                    out_shape, stride, dilation)
    return cols


@jit()
def _fold_row(cols_channel, out_row, z, y, kernel_shape, out_shape, stride, dilation):
    """Serial worker: the sum of every window element that lands on output row ``(z, y)``.

    ``cols_channel`` holds the ``kd*kh*kw`` rows of one image and channel.
    """
    kernel_depth, kernel_height, kernel_width = kernel_shape
    out_depth, out_height, out_width = out_shape
    for x in range(out_row.shape[0]):
        out_row[x] = 0
    for a3 in range(kernel_depth):
        z_offset = z - a3 * dilation[0]
        if z_offset < 0 or z_offset % stride[0] != 0 or z_offset // stride[0] >= out_depth:
            continue
        od = z_offset // stride[0]
        for a in range(kernel_height):
            y_offset = y - a * dilation[1]
            if y_offset < 0 or y_offset % stride[1] != 0 or y_offset // stride[1] >= out_height:
                continue
            oy = y_offset // stride[1]
            position = (od * out_height + oy) * out_width
            for b in range(kernel_width):
                source = cols_channel[(a3 * kernel_height + a) * kernel_width + b, position:]
                target = out_row[b * dilation[2]:]
                if stride[2] == 1:
                    for ox in range(out_width):
                        target[ox] += source[ox]
                else:
                    for ox in range(out_width):
                        target[ox * stride[2]] += source[ox]


@jit(parallel=True)
def _fold(cols, out, kernel_shape, out_shape, stride, dilation):
    """Parallel driver: one task per output row ``(n, c, z, y)``; no two tasks share a cell."""
    batch, channels, depth, height, _ = out.shape
    taps = kernel_shape[0] * kernel_shape[1] * kernel_shape[2]
    for task in prange(batch * channels * depth * height):
        image_channel, zy = divmod(np.intp(task), depth * height)  # signed, as in _unfold
        image, channel = divmod(image_channel, channels)
        z, y = divmod(zy, height)
        _fold_row(cols[image, channel * taps:(channel + 1) * taps], out[image, channel, z, y],
                  z, y, kernel_shape, out_shape, stride, dilation)
    return out


def _out_shape(size, kernel_size, dilation, stride):
    return tuple((n - d * (k - 1) - 1) // s + 1
                 for n, k, d, s in zip(size, kernel_size, dilation, stride))


def unfold(x, kernel_size, dilation, stride):
    """im2col of a padded batch, in ``torch.nn.functional.unfold``'s layout.

    Parameters
    ----------
    x : ndarray, shape (N, C, D, H, W), C-contiguous
    kernel_size, dilation, stride : 3-tuples of int

    Returns
    -------
    ndarray, shape (N, C * kd * kh * kw, Do * Ho * Wo)
        Rows ordered (c, kd, kh, kw); columns are output positions in
        row-major (Do, Ho, Wo) order.

    Examples
    --------
    >>> import numpy as np
    >>> from fastcorr.kernels.numba import unfold
    >>> unfold(np.arange(3.0).reshape(1, 1, 1, 1, 3), (1, 1, 2), (1, 1, 1), (1, 1, 1))
    array([[[0., 1.],
            [1., 2.]]])
    """
    batch, channels = x.shape[:2]
    out_shape = _out_shape(x.shape[2:], kernel_size, dilation, stride)
    taps = kernel_size[0] * kernel_size[1] * kernel_size[2]
    cols = np.empty((batch, channels * taps, int(np.prod(out_shape))), dtype=x.dtype)
    if cols.size:
        _unfold(x, cols, tuple(kernel_size), out_shape, tuple(stride), tuple(dilation))
    return cols


def fold(cols, size, kernel_size, dilation, stride):
    """col2im, the adjoint of :func:`unfold`: overlapping window elements add up.

    Parameters
    ----------
    cols : ndarray, shape (N, C * kd * kh * kw, L), C-contiguous
    size : 3-tuple of int
        The padded spatial size ``(D, H, W)`` of the result.
    kernel_size, dilation, stride : 3-tuples of int

    Returns
    -------
    ndarray, shape (N, C, D, H, W)

    Examples
    --------
    >>> import numpy as np
    >>> from fastcorr.kernels.numba import fold
    >>> fold(np.ones((1, 2, 2)), (1, 1, 3), (1, 1, 2), (1, 1, 1), (1, 1, 1)).ravel()
    array([1., 2., 1.])
    """
    batch, rows = cols.shape[:2]
    taps = kernel_size[0] * kernel_size[1] * kernel_size[2]
    out = np.empty((batch, rows // taps) + tuple(size), dtype=cols.dtype)
    if out.size:
        out_shape = _out_shape(size, kernel_size, dilation, stride)
        _fold(cols, out, tuple(kernel_size), out_shape, tuple(stride), tuple(dilation))
    return out
