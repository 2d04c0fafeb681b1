"""The 'gemm' convolution algorithm, for any stride: stride phases or im2col panels.

Strided convolutions first try the phase split (:func:`conv_gemm` decides,
see :func:`fastcorr._tuning.choose_strided_conv_algorithm`): the input is
cut into its ``sd*sh*sw`` stride phases, ``x[..., i*s + p]`` going to phase
``p`` at ``i``, on which the strided convolution is a stride-1 one that
:func:`.conv_implicit_gemm.conv_implicit_gemm` runs with no im2col at all.
Strided im2col packing cannot be vectorised into plain copies and cost
about as much as the GEMM itself for a 3-channel 7x7 stem (BENCH.md C2 L4).

Otherwise, per task (one image, one group, ``PANEL_WIDTH`` consecutive output
positions) a thread packs the im2col panel ``(K, PANEL_WIDTH)`` of those
positions into a private buffer (``K = C/groups * kd*kh*kw``, at most a few
MiB), then runs :func:`._microkernel.micro_kernel` for every block of
filters.  The whole im2col matrix never exists.
"""

from __future__ import annotations

import numpy as np
from numba import prange

from ... import _tuning
from ._jit import fetch_add, jit
from ._microkernel import FILTER_BLOCK, PANEL_WIDTH, micro_kernel
from .conv_implicit_gemm import conv_implicit_gemm, implicit_gemm_task_positions


@jit(inline="always")
def _pack_cols_panel(x_group, cols_panel, run_columns, run_offsets, run_lengths,
                     first_position, positions, kernel_shape, stride, dilation,
                     out_height, out_width):
    """im2col of output positions ``[first_position, + positions)`` into ``cols_panel``.

    ``x_group`` is one image's channels of one group, ``(Cg, D, H, W)``;
    ``cols_panel`` is ``(Cg*kd*kh*kw, PANEL_WIDTH)``, rows in (c, kd, kh, kw)
    order, zero beyond ``positions``.  The positions are cut into runs along
    output rows; a run reads one input row at stride ``stride[2]``.
    """
    channels, depth, height, width = x_group.shape
    kernel_depth, kernel_height, kernel_width = kernel_shape
    kernel_taps = kernel_depth * kernel_height * kernel_width
    x_flat = x_group.reshape(-1)
    runs = 0
    column = 0
    while column < positions:
        plane, rest = divmod(first_position + column, out_height * out_width)
        y, x = divmod(rest, out_width)
        length = min(out_width - x, positions - column)
        run_columns[runs] = column
        run_offsets[runs] = ((plane * stride[0]) * height + y * stride[1]) * width + x * stride[2]
        run_lengths[runs] = length
        runs += 1
        column += length
    for row in range(cols_panel.shape[0]):
        channel, tap = divmod(row, kernel_taps)
        a3, rest = divmod(tap, kernel_height * kernel_width)
        a, b = divmod(rest, kernel_width)
        tap_offset = (((channel * depth + a3 * dilation[0]) * height + a * dilation[1]) * width
                      + b * dilation[2])
        target_row = cols_panel[row]
        for run in range(runs):
            source = x_flat[tap_offset + run_offsets[run]:]
            target = target_row[run_columns[run]:]
            # Unit stride as its own loop: LLVM vectorises it into plain copies.
            if stride[2] == 1:
                for i in range(run_lengths[run]):
                    target[i] = source[i]
            else:
                for i in range(run_lengths[run]):
                    target[i] = source[i * stride[2]]
        for column in range(positions, PANEL_WIDTH):
            target_row[column] = 0


@jit(inline="always")
def _store_tile(tile, out_image, first_filter, filters, first_position, positions, bias,
                has_bias):
    """``out_image[first_filter + f, first_position + p] = tile[f, p] (+ bias)`` in bounds."""
    for row in range(filters):
        out_row = out_image[first_filter + row, first_position:]
        if has_bias:
            offset = bias[first_filter + row]
            for col in range(positions):
                out_row[col] = tile[row, col] + offset
        else:
            for col in range(positions):
                out_row[col] = tile[row, col]


@jit(parallel=True)
def conv_gemm_packed(x, weight_panels, bias, has_bias, out, out_height, out_width,
                     kernel_shape, stride, dilation, threads):
    """Parallel driver: tasks are (image, group, panel of output positions).

    Parameters
    ----------
    x : ndarray, shape (N, C, D, H, W)
    weight_panels : ndarray, shape (groups, filter_blocks, K, FILTER_BLOCK)
        From :func:`._microkernel.pack_weights`.
    bias : ndarray, shape (F,)
    has_bias : bool
    out : ndarray, shape (N, F, Do * Ho * Wo), written completely
    out_height, out_width : int
        ``Ho`` and ``Wo``.
    kernel_shape, stride, dilation : 3-tuples of int
    threads : int
        ``numba.get_num_threads()``, passed in because calling it here would
        keep the function out of the disk cache.
    """
    batch, filters, out_size = out.shape
    groups, filter_blocks, cols_rows, _ = weight_panels.shape
    channels_per_group = x.shape[1] // groups
    filters_per_group = filters // groups
    panels = (out_size + PANEL_WIDTH - 1) // PANEL_WIDTH
    tasks = batch * groups * panels
    next_task = np.zeros(1, dtype=np.int64)
    for _ in prange(min(threads, tasks)):
        # Private buffers, allocated once per thread (a panel is up to a few MiB).
        cols_panel = np.empty((cols_rows, PANEL_WIDTH), dtype=x.dtype)
        panel_row_offsets = np.arange(cols_rows) * PANEL_WIDTH
        run_columns = np.empty(PANEL_WIDTH, dtype=np.intp)
        run_offsets = np.empty(PANEL_WIDTH, dtype=np.intp)
        run_lengths = np.empty(PANEL_WIDTH, dtype=np.intp)
        tile = np.empty((FILTER_BLOCK, PANEL_WIDTH), dtype=x.dtype)
        while True:
            task = fetch_add(next_task, 1)  # dynamic scheduling, see _jit.fetch_add
            if task >= tasks:
                break
            image_group, panel = divmod(task, panels)
            image, group = divmod(image_group, groups)
            first_position = panel * PANEL_WIDTH
            positions = min(PANEL_WIDTH, out_size - first_position)
            x_group = x[image, group * channels_per_group:(group + 1) * channels_per_group]
            _pack_cols_panel(x_group, cols_panel, run_columns, run_offsets, run_lengths,
                             first_position, positions, kernel_shape, stride, dilation,
                             out_height, out_width)
            for block in range(filter_blocks):
                first_filter = group * filters_per_group + block * FILTER_BLOCK
                block_filters = min(FILTER_BLOCK, filters_per_group - block * FILTER_BLOCK)
                micro_kernel(weight_panels[group, block], cols_panel.reshape(-1),
                             panel_row_offsets, tile)
                _store_tile(tile, out[image], first_filter, block_filters, first_position,
                            positions, bias, has_bias)
    return out


@jit(parallel=True)
def split_phases(x_volumes, phases):
    """``phases[v, p0, p1, p2, i0, i1, i2] = x_volumes[v, i0*s0 + p0, i1*s1 + p1, i2*s2 + p2]``.

    ``x_volumes`` is ``(N*C, D, H, W)``; ``phases`` is
    ``(N*C, s0, s1, s2, ceil(D/s0), ceil(H/s1), ceil(W/s2))``, entries
    beyond ``x`` zeros.  Written completely.
    """
    volumes, depth, height, width = x_volumes.shape
    _, stride_depth, stride_height, stride_width, phase_depth, phase_height, phase_width = \
        phases.shape
    for volume in prange(volumes):
        source = x_volumes[volume]
        for p0 in range(stride_depth):
            for p1 in range(stride_height):
                for p2 in range(stride_width):
                    target = phases[volume, p0, p1, p2]
                    columns = (width - p2 + stride_width - 1) // stride_width
                    for i0 in range(phase_depth):
                        for i1 in range(phase_height):
                            target_row = target[i0, i1]
                            z = i0 * stride_depth + p0
                            y = i1 * stride_height + p1
                            if z >= depth or y >= height:
                                target_row[:] = 0
                                continue
                            source_row = source[z, y]
                            for i2 in range(columns):
                                target_row[i2] = source_row[i2 * stride_width + p2]
                            for i2 in range(columns, phase_width):
                                target_row[i2] = 0


def phase_tap_offsets(channels, kernel_shape, stride, dilation, phase_shape):
    """Flat offsets of the taps of a ``(C/groups, kd, kh, kw)`` kernel in a phase-split group.

    Tap ``t`` (after dilation) along an axis of stride ``s`` reads phase
    ``t % s`` at ``t // s`` positions past the output position.  C order,
    as :func:`._microkernel.pack_weights` orders K.
    """
    phase_depth, phase_height, phase_width = phase_shape
    c, t0, t1, t2 = np.meshgrid(
        np.arange(channels), np.arange(kernel_shape[0]) * dilation[0],
        np.arange(kernel_shape[1]) * dilation[1], np.arange(kernel_shape[2]) * dilation[2],
        indexing="ij",
    )
    phase = ((c * stride[0] + t0 % stride[0]) * stride[1] + t1 % stride[1]) * stride[2] \
        + t2 % stride[2]
    offsets = (((phase * phase_depth + t0 // stride[0]) * phase_height + t1 // stride[1])
               * phase_width + t2 // stride[2])
    return np.ascontiguousarray(offsets.reshape(-1), dtype=np.intp)


def conv_gemm(x, weight_panels, bias, has_bias, out, out_height, out_width, kernel_shape,
              stride, dilation, threads):
    """Strided (or any) convolution: phase split + implicit GEMM, or im2col panels.

    Same parameters as :func:`conv_gemm_packed`; ``bias`` holds zeros when
    ``has_bias`` is false.
    """
    batch, channels, depth, height, width = x.shape
    groups, _, cols_rows, _ = weight_panels.shape
    weight_shape = (out.shape[1], channels // groups) + tuple(kernel_shape)
    algorithm = _tuning.choose_strided_conv_algorithm(x.shape, weight_shape, stride, dilation,
                                                      groups)
    if algorithm != "phase_implicit_gemm":
        return conv_gemm_packed(x, weight_panels, bias, has_bias, out, out_height, out_width,
                                kernel_shape, stride, dilation, threads)
    phase_shape = tuple(-(-size // s) for size, s in zip((depth, height, width), stride))
    phases = np.empty((batch * channels,) + tuple(stride) + phase_shape, dtype=x.dtype)
    split_phases(x.reshape((batch * channels,) + x.shape[2:]), phases)
    phase_depth, phase_height, phase_width = phase_shape
    out_depth = out.shape[2] // (out_height * out_width)
    positions = ((out_depth - 1) * phase_height + out_height - 1) * phase_width + out_width
    conv_implicit_gemm(
        phases.reshape(batch * groups, -1), weight_panels,
        phase_tap_offsets(channels // groups, kernel_shape, stride, dilation, phase_shape),
        bias, out, phase_height, phase_width, out_height, out_width,
        implicit_gemm_task_positions(batch * groups, positions, threads), threads,
    )
    return out

