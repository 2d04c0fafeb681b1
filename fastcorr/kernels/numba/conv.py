"""``conv_forward``: grouped, strided, dilated N-d convolution of a padded batch.

Three algorithms, chosen per shape by :func:`fastcorr._tuning.choose_conv_algorithm`:

``'implicit_gemm'`` (:mod:`.conv_implicit_gemm`), stride 1
    the register-blocked GEMM micro-kernel of :mod:`._microkernel` reading
    its right-hand rows straight from the input through constant tap
    offsets: no im2col at all;
``'gemm'`` (:mod:`.conv_gemm`), any stride
    the same micro-kernel on im2col panels of ``PANEL_WIDTH`` positions,
    packed per thread;
``'direct'`` (:func:`.correlate.correlate_taps`), stride 1
    one filter at a time, a tap sum over the group's channels: no padding
    of the filter count to ``FILTER_BLOCK`` (single filters, depthwise).
"""

from __future__ import annotations

import numba
import numpy as np

from ... import _tuning
from ._microkernel import PANEL_WIDTH, pack_weights
from .conv_gemm import conv_gemm
from .conv_implicit_gemm import conv_implicit_gemm, implicit_gemm_task_positions
from .correlate import correlate_taps, tap_offsets_for, task_positions_for, uses_tiles


def output_spatial_shape(x_shape, kernel_shape, stride, dilation):
    """``(Do, Ho, Wo)`` of a padded input, as torch computes it."""
    return tuple((size - d * (k - 1) - 1) // s + 1
                 for size, k, s, d in zip(x_shape[2:], kernel_shape, stride, dilation))


def conv_forward(x, weight, bias, stride, dilation, groups, algorithm=None):
    """Grouped, strided, dilated correlation of a padded ``(N, C, D, H, W)`` batch.

    Parameters
    ----------
    x : ndarray, shape (N, C, D, H, W), float32 or float64, C-contiguous
        Already padded.
    weight : ndarray, shape (F, C // groups, kd, kh, kw), dtype of ``x``
    bias : ndarray of shape (F,) or None
    stride, dilation : 3-tuples of int >= 1
    groups : int, divides C and F
    algorithm : {'implicit_gemm', 'gemm', 'direct'} or None
        None asks :func:`fastcorr._tuning.choose_conv_algorithm`; the
        dispatch layer never passes it (tests and measurements do).  The
        stride-1 algorithms fall back to 'gemm' where they cannot run.

    Returns
    -------
    ndarray, shape (N, F, Do, Ho, Wo), dtype of ``x``
        ``out[n, f, o] = bias[f] + sum_{c, k} weight[f, c, k] *
        x[n, g*Cg + c, o*stride + k*dilation]`` (torch's conv, no flip).

    Examples
    --------
    >>> import numpy as np
    >>> from fastcorr.kernels.numba import conv_forward
    >>> x = np.arange(4.0).reshape(1, 1, 1, 1, 4)
    >>> conv_forward(x, np.ones((1, 1, 1, 1, 2)), None, (1, 1, 1), (1, 1, 1), 1).ravel()
    array([1., 3., 5.])
    """
    batch, channels, depth, height, width = x.shape
    filters = weight.shape[0]
    kernel_shape = tuple(weight.shape[2:])
    out_shape = output_spatial_shape(x.shape, kernel_shape, stride, dilation)
    out = np.empty((batch, filters) + out_shape, dtype=x.dtype)
    if out.size == 0:
        return out
    if algorithm is None:
        algorithm = _tuning.choose_conv_algorithm(x.shape, weight.shape, stride, dilation, groups)
    out_depth, out_height, out_width = out_shape
    # Widened-grid positions the stride-1 algorithms compute (see .correlate).
    positions = ((out_depth - 1) * height + out_height - 1) * width + out_width
    if tuple(stride) != (1, 1, 1) or positions < PANEL_WIDTH:
        algorithm = "gemm"
    threads = numba.get_num_threads()
    bias_values = bias if bias is not None else np.zeros(filters, dtype=x.dtype)
    flat_out = out.reshape(batch, filters, -1)
    if algorithm == "direct":
        correlate_taps(
            x.reshape(batch * groups, -1),
            tap_offsets_for((channels // groups,) + kernel_shape, (depth, height, width),
                            dilation),
            weight.reshape(filters, -1), bias_values, flat_out, groups, uses_tiles(x.dtype),
            height, width, out_height, out_width,
            task_positions_for(batch * filters, positions, uses_tiles(x.dtype)), threads,
        )
    elif algorithm == "implicit_gemm":
        conv_implicit_gemm(
            x.reshape(batch * groups, -1), pack_weights(weight, groups),
            tap_offsets_for((channels // groups,) + kernel_shape, (depth, height, width),
                            dilation),
            bias_values, flat_out, height, width, out_height, out_width,
            implicit_gemm_task_positions(batch * groups, positions, threads), threads,
        )
    else:
        conv_gemm(x, pack_weights(weight, groups), bias_values, bias is not None, flat_out,
                  out_height, out_width, kernel_shape, tuple(stride), tuple(dilation), threads)
    return out
