"""The adjoints of ``conv_forward``: in ``x``, in ``weight`` and in ``bias``.

``conv_transpose`` (and ``conv_transpose_cropped``)
    Stride 1: the adjoint of a correlation is the *full* correlation of the
    output gradient with the flipped kernel, channels transposed per group:
    a stride-1 convolution of the gradient padded by ``dilation * (kernel -
    1)`` on each side (:func:`_spread`).  Stride ``s > 1``: the gradient is
    first spread onto the stride-1 grid (``s - 1`` zeros between samples),
    then the same; this computes the zeros too, ``s**dims`` times the work,
    but needs no other kernel.  The convolution is the forward's implicit
    GEMM (:mod:`.conv_implicit_gemm`: the padded gradient read in place
    through tap offsets), here with a wider register tile in float32
    (:func:`_transpose_gemm`, 8 filters x 48 positions) where the filters
    fill it, else :func:`.conv.conv_forward` itself.  A ``crop`` returns only
    the inner part (the convolution's zero padding cut off) without
    computing the rest: the backward pass of a zero-padded convolution
    neither computes nor copies the padding's gradient.

``conv_weight_grad``
    ``dw[f, c, k] = sum_n sum_o grad[n, f, o] * x[n, c, o * s + k * d]``, a
    GEMM whose reduction runs over output positions, done without im2col on
    a widened grid as :mod:`.conv_implicit_gemm` does: with the input split
    into its ``s**dims`` stride phases (a copy the size of the input; stride
    1 uses the input itself), output ``o`` sits at flat position ``p`` of a
    phase's grid and im2col row ``(c, k)`` is the phase array read from a
    constant offset, a contiguous run.  The gradient goes into *panels*,
    ``FILTER_LANES`` filters side by side per position (zeros where no
    output sits), and a register-blocked micro-kernel accumulates a
    ``ROW_BLOCK x FILTER_LANES`` tile of ``dw`` per position: ``ROW_BLOCK``
    broadcasts of ``x`` and one panel row.  With few filters per group, the
    lanes also hold the ``w`` taps (lane item ``(b, f)`` is the gradient
    shifted by ``b * d``), so that they are not mostly padding.  Each tile
    of ``dw`` belongs to one task, which walks every image and position in
    a fixed order: no partial buffers, the same bits for any thread count.

``conv_bias_grad``
    The gradient summed per ``(n, f)`` plane in float64, in parallel
    (vectorised partial sums), then over ``n``.

``conv_transpose_cropped_bias``
    ``conv_transpose_cropped`` and ``conv_bias_grad`` together: where the
    fused spread + GEMM runs (:func:`_spread_gemm`), the spread, which reads
    all of the gradient anyway, also sums its ``(n, f)`` planes, in float64,
    so that the bias gradient needs no pass (nor parallel region) of its own.
"""

from __future__ import annotations

import itertools

import numba
import numpy as np
from numba import prange

from ._jit import fetch_add, jit, stack_empty
from .conv import conv_forward
from .correlate import copy_valid, tap_offsets_for

# A micro-tile: 4 im2col rows x 64 filters = 16 zmm accumulators in float32;
# each position costs 4 broadcasts and 4 vector loads for 16 FMAs.  With
# fewer than 64 filters in the inner loop LLVM vectorised the wrong loop
# (gathers, 40x slower), as :mod:`._microkernel` notes for its tiles too.
ROW_BLOCK = 4
FILTER_LANES = 64
MICRO_TILE = ROW_BLOCK * FILTER_LANES
# Positions per micro-kernel call: the float32 sums stay short (1024 terms)
# and a call's slice of the gradient panel (256 KiB) stays in L2.  1024 ran
# 3-5 % faster than 512 on the C6 layers (float64 the same); 6 rows per tile
# gained only 1-3 % more in float32 and lost 25 % in float64 (spills).
CHUNK_POSITIONS = 1024
# The fused forms (:func:`_pad_weight_grad`, :func:`_spread_gemm`) hand out whole
# images or (image, group) volumes, so they need a few per thread to balance the load.
TASKS_PER_THREAD = 3


@jit()
def _weight_tile(x_flat, row_starts, grad_panel, first, steps, result):
    """``result[j, f] += sum_p x_flat[row_starts[j] + p] * grad_panel[p, f]``.

    ``p`` runs over ``[first, first + steps)``; ``grad_panel`` is
    ``(positions, FILTER_LANES)``, the gradient of ``FILTER_LANES`` filters
    position by position; ``row_starts`` holds ``ROW_BLOCK`` offsets into
    ``x_flat``; ``result`` is a float64 ``(ROW_BLOCK, FILTER_LANES)`` block of
    the (transposed) weight gradient.  Accumulators in a constant-indexed
    stack tile (registers); not inlined, for the reason given in
    :mod:`._microkernel`.
    """
    acc = numba.carray(stack_empty(MICRO_TILE, grad_panel.dtype), (ROW_BLOCK, FILTER_LANES))
    for j in range(ROW_BLOCK):
        for lane in range(FILTER_LANES):
            acc[j, lane] = 0
    for step in range(steps):
        position = first + step
        gradient = grad_panel[position]
        for j in range(ROW_BLOCK):
            # An unsigned index skips numba's negative-index wraparound: 1.5x faster.
            value = x_flat[np.uint64(row_starts[j] + position)]
            for lane in range(FILTER_LANES):
                acc[j, lane] += value * gradient[lane]
    for j in range(ROW_BLOCK):
        for lane in range(FILTER_LANES):
            result[j, lane] += acc[j, lane]


@jit(parallel=True)
def _weight_grad(x_phases, grad_panels, row_starts, positions, out, threads):
    """Parallel driver of ``conv_weight_grad``: one task per block of im2col rows.

    Parameters
    ----------
    x_phases : ndarray, shape (N, image_size)
        Each image's stride-phase arrays, flattened, with zero padding after
        the last row so that every im2col row can be read whole.
    grad_panels : ndarray, shape (N, groups, filter_blocks, positions, FILTER_LANES)
        The gradient on the phase grid, filters innermost; zero where no
        output sits and for the padding filters.
    row_starts : ndarray of int64, shape (groups, row_blocks * ROW_BLOCK)
        Offset of im2col row ``(c, k)`` of each group in an image of
        ``x_phases`` (padding rows repeat a real row).
    positions : int
        Positions to reduce over.
    out : ndarray of float64, shape (groups, row_blocks * ROW_BLOCK, filter_blocks * FILTER_LANES)
        The transposed weight gradient, written completely.
    threads : int
        ``numba.get_num_threads()``.

    A task owns a range of row blocks of ``out`` (all filters) and walks
    every image and chunk of positions in a fixed order, so each element of
    ``out`` sums in the same order whatever the thread count.  Within a
    chunk, the panel slice (``CHUNK_POSITIONS x FILTER_LANES``) stays in L2
    while every row block of the task passes over it.
    """
    batch = x_phases.shape[0]
    groups, padded_rows, _ = out.shape
    row_blocks = padded_rows // ROW_BLOCK
    # A few tasks per thread: dynamic scheduling evens out a busy machine,
    # while each task keeps enough row blocks to reuse the panel chunk.
    tasks = min(groups * row_blocks, 4 * threads)
    next_task = np.zeros(1, dtype=np.int64)
    for _ in prange(min(threads, tasks)):
        while True:
            task = fetch_add(next_task, 1)  # dynamic scheduling, see _jit.fetch_add
            if task >= tasks:
                break
            first_block = task * groups * row_blocks // tasks
            stop_block = (task + 1) * groups * row_blocks // tasks
            for block in range(first_block, stop_block):
                group, row_block = divmod(block, row_blocks)
                out[group, row_block * ROW_BLOCK:(row_block + 1) * ROW_BLOCK] = 0.0
            for image in range(batch):
                _image_sums(x_phases[image], row_starts, grad_panels[image], positions,
                            first_block, stop_block, out)
    return out


@jit(inline="always")
def _image_sums(x_flat, row_starts, panels, positions, first_block, stop_block, out):
    """Add one image's terms to row blocks ``[first_block, stop_block)`` of ``out``, all filters.

    Row block ``b`` is group ``b // row_blocks``'s.  Chunk by chunk of
    positions: the panel chunk stays in L2 while every row block passes over it.
    """
    row_blocks = out.shape[1] // ROW_BLOCK
    for first in range(0, positions, CHUNK_POSITIONS):
        steps = min(CHUNK_POSITIONS, positions - first)
        for filter_block in range(panels.shape[1]):
            for block in range(first_block, stop_block):
                group, row_block = divmod(block, row_blocks)
                first_row = row_block * ROW_BLOCK
                _weight_tile(x_flat, row_starts[group, first_row:], panels[group, filter_block],
                             first, steps, out[group, first_row:first_row + ROW_BLOCK,
                                               filter_block * FILTER_LANES:])


@jit(parallel=True)
def _pad_weight_grad(x, grad_groups, before, size, row_starts, positions, lane_taps, lane_shift,
                     panel_positions, partials, threads):
    """:func:`_pad_zeros`, :func:`_fill_panels` and :func:`_weight_grad` in one parallel region.

    Stride 1 only.  A task is a run of consecutive images: each image is
    padded into its thread's scratch and its gradient laid into the thread's
    panels (zeroed once: the positions written are the same for every
    image), and every row block of every group then passes over them chunk
    by chunk, from the core's cache rather than from arrays written to and
    re-read from memory.  Task ``t`` sums into ``partials[t]`` (``(groups,
    padded_rows, filter_blocks * FILTER_LANES)`` float64), in a fixed order.
    """
    batch, channels = x.shape[:2]
    tasks, groups, padded_rows, lanes = partials.shape
    filter_blocks = lanes // FILTER_LANES
    row_blocks = padded_rows // ROW_BLOCK
    depth, height, width = size
    next_task = np.zeros(1, dtype=np.int64)
    for _ in prange(min(threads, tasks)):
        padded = np.empty((channels, depth, height, width), dtype=x.dtype)
        x_flat = padded.reshape(channels * depth * height * width)
        panels = np.zeros((groups, filter_blocks, panel_positions, FILTER_LANES),
                          dtype=grad_groups.dtype)
        while True:
            task = fetch_add(next_task, 1)  # dynamic scheduling, see _jit.fetch_add
            if task >= tasks:
                break
            partial = partials[task]
            partial[:] = 0.0
            for image in range(task * batch // tasks, (task + 1) * batch // tasks):
                for channel in range(channels):
                    _pad_volume(x[image, channel], padded[channel], before[0], before[1],
                                before[2])
                for group in range(groups):
                    for block in range(filter_blocks):
                        _fill_panel(grad_groups[image, group], panels[group, block],
                                    block * FILTER_LANES, lane_taps, lane_shift, height, width)
                _image_sums(x_flat, row_starts, panels, positions, 0, groups * row_blocks,
                            partial)
    return partials


def _phase_grid(x_shape, grad_shape, kernel_size, stride, dilation):
    """Phase-grid geometry: ``(phase_shape, positions, tap_offsets)``.

    ``phase_shape`` is ``(Dp, Hp, Wp)``, one stride phase of the input
    (``ceil(size / stride)``); output ``(z, y, x)`` sits at ``(z*Hp + y)*Wp +
    x``, and ``positions`` is one past the last output.  ``tap_offsets[k]``
    is where tap ``k`` (C order) reads relative to that, in a channel's
    ``prod(stride) * Dp*Hp*Wp`` block of phases.
    """
    phase_shape = tuple(-(-n // s) for n, s in zip(x_shape[2:], stride))
    depth, height, width = phase_shape
    out_depth, out_height, out_width = grad_shape[2:]
    positions = ((out_depth - 1) * height + out_height - 1) * width + out_width
    offsets = []
    for taps in itertools.product(*map(range, kernel_size)):
        shift, phase = zip(*(divmod(t * d, s) for t, d, s in zip(taps, dilation, stride)))
        phase_index = (phase[0] * stride[1] + phase[1]) * stride[2] + phase[2]
        offsets.append(phase_index * depth * height * width
                       + (shift[0] * height + shift[1]) * width + shift[2])
    return phase_shape, positions, np.array(offsets, dtype=np.int64)


def _phases(x, stride, phase_shape, tail):
    """``x`` as ``(N, C, phases, Dp, Hp, Wp)`` flattened per image, plus ``tail`` zeros."""
    batch, channels = x.shape[:2]
    phases = stride[0] * stride[1] * stride[2]
    volume = phases * int(np.prod(phase_shape))
    flat = np.zeros((batch, channels * volume + tail), dtype=x.dtype)
    grid = flat[:, :channels * volume].reshape((batch, channels, phases) + phase_shape)
    for index, (r0, r1, r2) in enumerate(itertools.product(*map(range, stride))):
        part = x[:, :, r0::stride[0], r1::stride[1], r2::stride[2]]
        grid[:, :, index, :part.shape[2], :part.shape[3], :part.shape[4]] = part
    return flat, volume


@jit(inline="always")
def _pad_volume(source, target, z0, y0, x0):
    """``target[z0 + z, y0 + y, x0 + x] = source[z, y, x]``, zero elsewhere; each element once."""
    depth, height, width = source.shape
    out_depth, out_height, out_width = target.shape
    for z in range(out_depth):
        for y in range(out_height):
            row = target[z, y]
            if z < z0 or z >= z0 + depth or y < y0 or y >= y0 + height:
                row[:] = 0
                continue
            row[:x0] = 0
            row[x0 + width:] = 0
            source_row = source[z - z0, y - y0]
            for i in range(width):
                row[x0 + i] = source_row[i]


@jit(parallel=True)
def _pad_zeros(x, out, before, threads):
    """``out[n, c, before + i] = x[n, c, i]``, zero elsewhere; one task per ``(n, c)`` volume."""
    channels = x.shape[1]
    tasks = x.shape[0] * channels
    next_task = np.zeros(1, dtype=np.int64)
    for _ in prange(min(threads, tasks)):
        while True:
            task = fetch_add(next_task, 1)  # dynamic scheduling, see _jit.fetch_add
            if task >= tasks:
                break
            image, channel = divmod(task, channels)
            _pad_volume(x[image, channel], out[image, channel], before[0], before[1], before[2])
    return out


def conv_weight_grad_padded(x, grad, kernel_size, stride, dilation, groups, pads):
    """:func:`conv_weight_grad` of ``x`` zero-padded by ``pads`` (3 ``(before, after)`` pairs).

    At stride 1 with ``TASKS_PER_THREAD`` images per thread or more, every
    task pads its own images into its thread's scratch, where the GEMM reads
    them back from the core's cache (:func:`_pad_weight_grad`).  Otherwise the
    padded input is written first, in parallel, each element once.
    """
    x = np.ascontiguousarray(x)
    kernel_size, stride, dilation = tuple(kernel_size), tuple(stride), tuple(dilation)
    size = tuple(n + before + after for n, (before, after) in zip(x.shape[2:], pads))
    before = tuple(before for before, _ in pads)
    threads = numba.get_num_threads()
    batch = x.shape[0]
    if stride != (1, 1, 1) or batch < TASKS_PER_THREAD * threads or grad.size == 0:
        padded = np.empty(x.shape[:2] + size, dtype=x.dtype)
        if padded.size:
            _pad_zeros(x, padded, before, threads)
        return conv_weight_grad(padded, grad, kernel_size, stride, dilation, groups)
    layout = _WeightGradLayout(x.shape[:2] + size, grad.shape, kernel_size, stride, dilation,
                               groups)
    filters_per_group = grad.shape[1] // groups
    panels = -(-layout.lane_taps * filters_per_group // FILTER_LANES)
    tasks = min(batch, 2 * TASKS_PER_THREAD * threads)
    partials = np.empty((tasks, groups, layout.row_starts.shape[1], panels * FILTER_LANES))
    _pad_weight_grad(x, grad.reshape((batch, groups, filters_per_group) + grad.shape[2:]), before,
                     size, layout.row_starts, layout.positions, layout.lane_taps,
                     layout.lane_shift, layout.panel_positions(grad.shape), partials, threads)
    # Summed in task order: the same bits for a given thread count.
    return layout.unpack(partials.sum(axis=0), x.dtype)


def conv_weight_grad(x, grad, kernel_size, stride, dilation, groups):
    """The adjoint of ``conv_forward`` in ``weight``.

    Parameters
    ----------
    x : ndarray, shape (N, C, D, H, W), float32 or float64, C-contiguous
        The padded input.
    grad : ndarray, shape (N, F, Do, Ho, Wo), dtype of ``x``
        The gradient of the convolution's output.
    kernel_size, stride, dilation : 3-tuples of int
    groups : int

    Returns
    -------
    ndarray, shape (F, C // groups, kd, kh, kw), dtype of ``x``
        ``sum_{n, o} grad[n, f, o] * x[n, g*Cg + c, o*stride + k*dilation]``.

    Examples
    --------
    >>> import numpy as np
    >>> from fastcorr.kernels.numba.grad import conv_weight_grad
    >>> x = np.arange(1.0, 10.0).reshape(1, 1, 1, 3, 3)
    >>> conv_weight_grad(x, np.ones((1, 1, 1, 2, 2)), (1, 2, 2), (1, 1, 1), (1, 1, 1), 1)
    array([[[[[12., 16.],
              [24., 28.]]]]])
    """
    kernel_size, stride, dilation = tuple(kernel_size), tuple(stride), tuple(dilation)
    if grad.size == 0 or x.size == 0:
        return np.zeros((grad.shape[1], x.shape[1] // groups) + kernel_size, dtype=x.dtype)
    layout = _WeightGradLayout(x.shape, grad.shape, kernel_size, stride, dilation, groups)
    if stride == (1, 1, 1):
        # One phase, the input itself: the last row of the last tap ends at the image's end.
        x_phases = x.reshape(x.shape[0], -1)
    else:
        x_phases, _ = _phases(x, stride, layout.phase_shape,
                              int(layout.tap_offsets.max()) + layout.positions)
    grad_panels = _grad_panels(grad, layout)
    out = np.empty((groups, layout.row_starts.shape[1], grad_panels.shape[2] * FILTER_LANES))
    _weight_grad(x_phases, grad_panels, layout.row_starts, layout.positions, out,
                 numba.get_num_threads())
    return layout.unpack(out, x.dtype)


class _WeightGradLayout:
    """Where the weight-gradient GEMM reads, and how its result unpacks into ``dw``.

    Attributes: ``lane_taps`` and ``lane_shift`` (:func:`_lane_taps`),
    ``phase_shape``, ``positions`` and ``tap_offsets`` (:func:`_phase_grid`
    of the taps left in the rows), and ``row_starts``, ``(groups,
    padded_rows)``: the offset of im2col row ``(c, row tap)`` of each group in
    an image of phase arrays, padded to whole ``ROW_BLOCK`` s with row 0.
    """

    def __init__(self, x_shape, grad_shape, kernel_size, stride, dilation, groups):
        channels, filters = x_shape[1], grad_shape[1]
        self.kernel_size, self.groups = kernel_size, groups
        self.group_channels, self.filters_per_group = channels // groups, filters // groups
        self.lane_taps = _lane_taps(self.group_channels, self.filters_per_group, kernel_size,
                                    stride)
        self.row_kernel = kernel_size[:2] + (kernel_size[2] // self.lane_taps,)
        self.phase_shape, positions, self.tap_offsets = _phase_grid(
            x_shape, grad_shape, self.row_kernel, stride, dilation)
        self.lane_shift = dilation[2]  # tap b of a lane item reads b * lane_shift further on
        self.positions = positions + (self.lane_taps - 1) * self.lane_shift
        volume = int(np.prod(stride)) * int(np.prod(self.phase_shape))
        self.rows = self.group_channels * len(self.tap_offsets)
        padded_rows = -(-self.rows // ROW_BLOCK) * ROW_BLOCK
        self.row_starts = np.zeros((groups, padded_rows), dtype=np.int64)
        channel_offsets = (np.arange(channels) * volume).reshape(groups, self.group_channels, 1)
        self.row_starts[:, :self.rows] = (channel_offsets + self.tap_offsets).reshape(
            groups, self.rows)
        self.row_starts[:, self.rows:] = self.row_starts[:, :1]

    def panel_positions(self, grad_shape):
        """Rows of a gradient panel: every position read, every output written."""
        grid = grad_shape[2] * self.phase_shape[1] * self.phase_shape[2]
        return max(self.positions, grid + (self.lane_taps - 1) * self.lane_shift)

    def unpack(self, out, dtype):
        """``dw`` ``(F, C / groups) + kernel_size`` from the GEMM's float64 ``out``."""
        # out[g, (c, a3, a, b_row), (b_lane, f)] -> dw[g*Fg + f, c, a3, a, b_row + b_lane]
        fg = self.filters_per_group
        items = out[:, :self.rows, :self.lane_taps * fg].reshape(
            (self.groups, self.group_channels) + self.row_kernel + (self.lane_taps, fg))
        items = items.reshape((self.groups, self.group_channels) + self.kernel_size + (fg,))
        result = items.transpose(0, 5, 1, 2, 3, 4).reshape(
            (self.groups * fg, self.group_channels) + self.kernel_size)
        return result.astype(dtype)


def _lane_taps(group_channels, filters_per_group, kernel_size, stride):
    """How many ``w`` taps share the filter lanes with the filters (1 or ``kw``).

    With few filters per group most of the ``FILTER_LANES`` lanes would be
    padding; tap ``b`` of the last dimension can instead ride in the lanes
    (lane item ``(b, f)``, the gradient shifted by ``b * d``), which needs
    the taps' offsets to add up: stride 1 along ``w``.  Chosen when it
    needs fewer micro-tiles.
    """
    kernel_width = kernel_size[-1]
    if stride[2] != 1 or kernel_width == 1:
        return 1
    other_taps = int(np.prod(kernel_size[:-1]))

    def tiles(lane_taps, row_taps):
        panels = -(-lane_taps * filters_per_group // FILTER_LANES)
        return panels * -(-group_channels * row_taps // ROW_BLOCK)

    folded = tiles(kernel_width, other_taps)
    return kernel_width if folded < tiles(1, other_taps * kernel_width) else 1


@jit(inline="always")
def _fill_panel(source, panel, first_item, lane_taps, lane_shift, height, width):
    """One panel of :func:`_fill_panels`: lane items ``[first_item, first_item + lanes)``.

    ``source`` is one group's gradient ``(Fg, Do, Ho, Wo)``; only the
    positions where an output sits are written (the caller zeroes the rest).
    """
    filters, out_depth, out_height, out_width = source.shape
    lanes = panel.shape[1]
    for tap in range(lane_taps):
        # This tap's lane items in this panel: lanes [lane_start, lane_stop).
        lane_start = max(tap * filters - first_item, 0)
        lane_stop = min((tap + 1) * filters - first_item, lanes)
        if lane_start >= lane_stop:
            continue
        first_filter = first_item + lane_start - tap * filters
        run = lane_stop - lane_start
        for z in range(out_depth):
            for y in range(out_height):
                row_start = (z * height + y) * width + tap * lane_shift
                for x in range(out_width):
                    target = panel[row_start + x, lane_start:]
                    for lane in range(run):
                        target[lane] = source[first_filter + lane, z, y, x]


@jit(parallel=True)
def _fill_panels(grad_groups, panels, lane_taps, lane_shift, height, width, threads):
    """``panels[n, g, panel, p, lane]`` from ``grad_groups`` (N, groups, Fg, Do, Ho, Wo), all of it.

    Lane item ``b * Fg + f`` (``panel * FILTER_LANES + lane``) of position
    ``p`` holds filter ``f``'s output ``(z, y, x)`` sitting at ``p - b *
    lane_shift = (z * height + y) * width + x``; everything else is zero.
    One task per panel: the panel (written in order) stays in cache while
    each output's filters are gathered into one run of lanes, which beat
    NumPy's transposing copy followed by contiguous runs by 1.2-2x.
    """
    groups = grad_groups.shape[1]
    panel_count = panels.shape[2]
    tasks = grad_groups.shape[0] * groups * panel_count
    next_task = np.zeros(1, dtype=np.int64)
    for _ in prange(min(threads, tasks)):
        while True:
            task = fetch_add(next_task, 1)  # dynamic scheduling, see _jit.fetch_add
            if task >= tasks:
                break
            image_group, panel_index = divmod(task, panel_count)
            image, group = divmod(image_group, groups)
            panel = panels[image, group, panel_index]
            panel[:] = 0
            _fill_panel(grad_groups[image, group], panel, panel_index * FILTER_LANES, lane_taps,
                        lane_shift, height, width)
    return panels


def _grad_panels(grad, layout):
    """``grad`` on the phase grid as ``(N, groups, panels, positions, FILTER_LANES)``.

    Lane item ``b * Fg + f`` of position ``p`` holds ``grad[n, g*Fg + f]``
    at ``p - b * lane_shift`` (the output sitting there, or zero).
    """
    batch, groups = grad.shape[0], layout.groups
    panels = np.empty((batch, groups, -(-layout.lane_taps * layout.filters_per_group
                                        // FILTER_LANES),
                       layout.panel_positions(grad.shape), FILTER_LANES), dtype=grad.dtype)
    _fill_panels(grad.reshape((batch, groups, layout.filters_per_group) + grad.shape[2:]),
                 panels, layout.lane_taps, layout.lane_shift, layout.phase_shape[1],
                 layout.phase_shape[2], numba.get_num_threads())
    return panels


@jit(parallel=True)
def _spread(grad, padded, offsets, stride, threads):
    """``padded[n, f, o0 + z*s0, o1 + y*s1, o2 + x*s2] = grad[n, f, z, y, x]``, zero elsewhere.

    One task per ``(n, f)`` plane; ``padded`` is written completely.
    """
    batch, filters, out_depth, out_height, out_width = grad.shape
    tasks = batch * filters
    next_task = np.zeros(1, dtype=np.int64)
    for _ in prange(min(threads, tasks)):
        while True:
            task = fetch_add(next_task, 1)  # dynamic scheduling, see _jit.fetch_add
            if task >= tasks:
                break
            image, filter_index = divmod(task, filters)
            plane = padded[image, filter_index]
            plane[:] = 0
            for z in range(out_depth):
                for y in range(out_height):
                    source = grad[image, filter_index, z, y]
                    target = plane[offsets[0] + z * stride[0], offsets[1] + y * stride[1],
                                   offsets[2]:]
                    if stride[2] == 1:  # its own loop: a plain vector copy
                        for x in range(out_width):
                            target[x] = source[x]
                    else:
                        for x in range(out_width):
                            target[x * stride[2]] = source[x]
    return padded


def conv_transpose_cropped(grad, weight, stride, dilation, groups, size, crop):
    """:func:`conv_transpose` keeping only ``out[..., before:size - after]`` per dimension."""
    return conv_transpose(grad, weight, stride, dilation, groups, size, crop)


def conv_transpose_cropped_bias(grad, weight, stride, dilation, groups, size, crop):
    """:func:`conv_transpose_cropped` and :func:`conv_bias_grad` of ``grad``: a pair.

    Where the fused spread + GEMM runs (:func:`_spread_gemm`), the bias
    gradient comes from the spread, which reads every element of ``grad``
    anyway: per ``(n, f)`` plane in float64, then summed over ``n`` here;
    elsewhere :func:`conv_bias_grad` computes it.

    Examples
    --------
    >>> import numpy as np
    >>> from fastcorr.kernels.numba.grad import conv_transpose_cropped_bias
    >>> out, bias = conv_transpose_cropped_bias(
    ...     np.ones((1, 1, 1, 1, 2)), np.ones((1, 1, 1, 1, 2)), (1, 1, 1), (1, 1, 1), 1,
    ...     (1, 1, 3), ((0, 0),) * 3)
    >>> out.ravel(), bias
    (array([1., 2., 1.]), array([2.]))
    """
    plane_sums = np.empty(grad.shape[:2])
    out, summed = _conv_transpose(grad, weight, stride, dilation, groups, size, crop, plane_sums)
    if not summed:
        return out, conv_bias_grad(grad)
    return out, plane_sums.sum(axis=0).astype(grad.dtype)


# Float64 partial sums per plane: 16 independent chains (two zmm registers),
# so that the adds vectorise without reassociation.
SUM_LANES = 16


@jit(parallel=True)
def _channel_sums(planes, sums, threads):
    """``sums[i] = sum(planes[i])`` in float64, one task per row of ``planes``."""
    count, length = planes.shape
    whole = length - length % SUM_LANES
    next_task = np.zeros(1, dtype=np.int64)
    for _ in prange(min(threads, count)):
        partial = numba.carray(stack_empty(SUM_LANES, np.float64), (SUM_LANES,))
        while True:
            task = fetch_add(next_task, 1)  # dynamic scheduling, see _jit.fetch_add
            if task >= count:
                break
            plane = planes[task]
            for lane in range(SUM_LANES):
                partial[lane] = 0.0
            for start in range(0, whole, SUM_LANES):
                run = plane[start:start + SUM_LANES]
                for lane in range(SUM_LANES):
                    partial[lane] += run[lane]
            total = 0.0
            for lane in range(SUM_LANES):
                total += partial[lane]
            for i in range(whole, length):
                total += plane[i]
            sums[task] = total
    return sums


def conv_bias_grad(grad):
    """The gradient of ``conv_forward`` in ``bias``: ``grad (N, F, ...)`` summed to ``(F,)``.

    Each ``(n, f)`` plane sums in float64, in parallel; the ``N`` plane sums
    of a filter add up in NumPy.

    Examples
    --------
    >>> import numpy as np
    >>> from fastcorr.kernels.numba.grad import conv_bias_grad
    >>> conv_bias_grad(np.ones((2, 3, 1, 2, 2), dtype=np.float32))
    array([8., 8., 8.], dtype=float32)
    """
    batch, filters = grad.shape[:2]
    if grad.size == 0:
        return np.zeros(filters, dtype=grad.dtype)
    sums = np.empty(batch * filters)
    _channel_sums(grad.reshape(batch * filters, -1), sums, numba.get_num_threads())
    return sums.reshape(batch, filters).sum(axis=0).astype(grad.dtype)


def conv_transpose(grad, weight, stride, dilation, groups, size, crop=((0, 0),) * 3):
    """The adjoint of ``conv_forward`` in ``x``: ``(N, C, *size)`` from ``(N, F, Do, Ho, Wo)``.

    Parameters
    ----------
    grad : ndarray, shape (N, F, Do, Ho, Wo), float32 or float64, C-contiguous
    weight : ndarray, shape (F, C // groups, kd, kh, kw), dtype of ``grad``
    stride, dilation : 3-tuples of int
    groups : int
    size : 3-tuple of int
        The padded input's spatial size.
    crop : 3 pairs of int, default no cropping
        ``(before, after)`` per dimension: return only ``out[..., before:size
        - after]``.  With the zero padding of a convolution as ``crop``, the
        gradient comes out unpadded without computing the padding's gradient
        or copying it (entry point ``conv_transpose_cropped``).

    Returns
    -------
    ndarray, shape (N, C, *(size - before - after)), dtype of ``grad``
        ``out[n, g*Cg + c, o*stride + k*dilation] += weight[f, c, k] * grad[n, f, o]``
        summed over ``f`` of group ``g``, ``o`` and ``k``.

    Examples
    --------
    >>> import numpy as np
    >>> from fastcorr.kernels.numba.grad import conv_transpose
    >>> conv_transpose(np.ones((1, 1, 1, 1, 2)), np.ones((1, 1, 1, 1, 2)), (1, 1, 1),
    ...                (1, 1, 1), 1, (1, 1, 3)).ravel()
    array([1., 2., 1.])
    """
    return _conv_transpose(grad, weight, stride, dilation, groups, size, crop, None)[0]


def _conv_transpose(grad, weight, stride, dilation, groups, size, crop, plane_sums):
    """:func:`conv_transpose`, and whether it filled ``plane_sums``.

    ``plane_sums``: ``None``, or an ``(N, F)`` float64 array that the fused
    path (:func:`_spread_correlation`) fills with the sum of each ``(n, f)``
    plane of ``grad``; the other paths leave it alone.  Returns ``(out,
    filled)``.
    """
    batch, filters = grad.shape[:2]
    group_channels = weight.shape[1]
    kernel_size = weight.shape[2:]
    filters_per_group = filters // groups
    size = tuple(size)
    out_size = tuple(n - before - after for n, (before, after) in zip(size, crop))
    if grad.size == 0 or weight.size == 0:
        return np.zeros((batch, group_channels * groups) + out_size, dtype=grad.dtype), False
    # The full correlation's input: the gradient spread onto the stride-1 grid, placed so
    # that the correlation's output starts at the first position kept.
    halo = tuple(d * (k - 1) for k, d in zip(kernel_size, dilation))
    spread = tuple((n - 1) * s + 1 for n, s in zip(grad.shape[2:], stride))
    offsets = tuple(h - before for h, (before, _) in zip(halo, crop))
    lengths = tuple(n + h for n, h in zip(out_size, halo))
    if any(o < 0 or o + m > n for o, m, n in zip(offsets, spread, lengths)):
        # The crop cuts into the gradient's own positions: compute all, then cut.
        full, filled = _conv_transpose(grad, weight, stride, dilation, groups, size,
                                       ((0, 0),) * 3, plane_sums)
        inner = tuple(slice(before, n - after) for n, (before, after) in zip(size, crop))
        return np.ascontiguousarray(full[(slice(None), slice(None)) + inner]), filled
    # Flipped kernel, (F, Cg) swapped within each group: (C, F/groups, kd, kh, kw).
    flipped = weight[:, :, ::-1, ::-1, ::-1].reshape(
        (groups, filters_per_group, group_channels) + kernel_size)
    transposed = np.ascontiguousarray(flipped.transpose(0, 2, 1, 3, 4, 5)).reshape(
        (groups * group_channels, filters_per_group) + kernel_size)
    dilation = tuple(dilation)
    threads = numba.get_num_threads()
    if (_wide_tile_fits(grad.dtype, lengths, kernel_size, dilation, group_channels)
            and batch * groups >= TASKS_PER_THREAD * threads):
        return _spread_correlation(grad, transposed, offsets, tuple(stride), lengths, dilation,
                                   groups, threads, plane_sums), plane_sums is not None
    padded = np.empty((batch, filters) + lengths, dtype=grad.dtype)
    _spread(grad, padded, offsets, tuple(stride), threads)
    return _stride1_correlation(padded, transposed, dilation, groups), False


# conv_transpose's own stride-1 implicit GEMM, float32: a tile of 8 filters x
# 48 positions is 24 zmm accumulators, and each tap costs 8 broadcasts and 3
# loads for 24 FMAs (the forward's 4 x 64 tile: 4 + 4 for 16).  It measured
# 1.05-1.10x faster than ``conv_forward`` on the C6 layers (half the input
# reads per FMA); float64 would need 48 registers, so it keeps the 4 x 64.
TRANSPOSE_FILTERS = 8
TRANSPOSE_WIDTH = 48
TRANSPOSE_TILE = TRANSPOSE_FILTERS * TRANSPOSE_WIDTH
TRANSPOSE_TASK_POSITIONS = 20 * TRANSPOSE_WIDTH


@jit()
def _transpose_tile(weight_panel, source, row_offsets, tile):
    """``tile[f, p] = sum_k weight_panel[k, f] * source[row_offsets[k] + p]``.

    :func:`._microkernel.micro_kernel` with a ``TRANSPOSE_FILTERS x
    TRANSPOSE_WIDTH`` tile; not inlined, for the reason given there.
    """
    acc = numba.carray(stack_empty(TRANSPOSE_TILE, tile.dtype),
                       (TRANSPOSE_FILTERS, TRANSPOSE_WIDTH))
    for row in range(TRANSPOSE_FILTERS):
        for col in range(TRANSPOSE_WIDTH):
            acc[row, col] = 0
    for k in range(row_offsets.shape[0]):
        window = source[row_offsets[k]:]
        for row in range(TRANSPOSE_FILTERS):
            weight = weight_panel[k, row]
            for col in range(TRANSPOSE_WIDTH):
                acc[row, col] += weight * window[col]
    for row in range(TRANSPOSE_FILTERS):
        for col in range(TRANSPOSE_WIDTH):
            tile[row, col] = acc[row, col]


@jit(parallel=True)
def _transpose_gemm(x_volumes, weight_panels, tap_offsets, out, height, width, out_height,
                    out_width, task_positions, threads):
    """:func:`.conv_implicit_gemm.conv_implicit_gemm` with the wider tile, no bias.

    Tasks are (image, group, range of widened-grid positions); within a
    task, each block of ``TRANSPOSE_FILTERS`` filters sweeps the range.
    ``weight_panels`` is ``(groups, filter_blocks, K, TRANSPOSE_FILTERS)``;
    the widened grid must hold at least ``TRANSPOSE_WIDTH`` positions.
    """
    batch, filters, out_size = out.shape
    groups = weight_panels.shape[0]
    filters_per_group = filters // groups
    out_depth = out_size // (out_height * out_width)
    positions = ((out_depth - 1) * height + out_height - 1) * width + out_width
    chunks = max(1, positions // task_positions)
    tasks = batch * groups * chunks
    next_task = np.zeros(1, dtype=np.int64)
    for _ in prange(min(threads, tasks)):
        tile = np.empty((TRANSPOSE_FILTERS, TRANSPOSE_WIDTH), dtype=out.dtype)
        while True:
            task = fetch_add(next_task, 1)  # dynamic scheduling, see _jit.fetch_add
            if task >= tasks:
                break
            volume, chunk = divmod(task, chunks)
            image, group = divmod(volume, groups)
            x_flat = x_volumes[volume]
            start = chunk * task_positions
            stop = positions if chunk == chunks - 1 else start + task_positions
            _sweep(weight_panels[group], x_flat, tap_offsets, tile, start, stop,
                   out[image, group * filters_per_group:(group + 1) * filters_per_group],
                   width, height, out_height, out_width)
    return out


@jit(inline="always")
def _sweep(group_panels, x_flat, tap_offsets, tile, start, stop, out_group, width, height,
           out_height, out_width):
    """Widened-grid positions ``[start, stop)`` of every output of one group, by tiles.

    ``group_panels`` is ``(filter_blocks, K, TRANSPOSE_FILTERS)``, ``out_group``
    the group's ``(F / groups, Do * Ho * Wo)`` outputs: each block of
    ``TRANSPOSE_FILTERS`` outputs sweeps the range with :func:`_transpose_tile`.
    """
    outputs = out_group.shape[0]
    for block in range(group_panels.shape[0]):
        first = block * TRANSPOSE_FILTERS
        for tile_index in range(start, stop, TRANSPOSE_WIDTH):
            # The last tile is shifted back to end at `stop` (recomputing a few).
            tile_start = min(tile_index, stop - TRANSPOSE_WIDTH)
            _transpose_tile(group_panels[block], x_flat[tile_start:], tap_offsets, tile)
            for row in range(min(TRANSPOSE_FILTERS, outputs - first)):
                copy_valid(tile[row], tile_start, tile_start + TRANSPOSE_WIDTH, 0.0,
                           out_group[first + row], width, height, out_height, out_width)


def _widened_positions(size, kernel_size, dilation):
    """``(out_shape, positions)`` of a stride-1 valid correlation on a widened grid of ``size``."""
    out_shape = tuple(n - d * (k - 1) for n, k, d in zip(size, kernel_size, dilation))
    out_depth, out_height, out_width = out_shape
    _, height, width = size
    return out_shape, ((out_depth - 1) * height + out_height - 1) * width + out_width


def _wide_tile_fits(dtype, size, kernel_size, dilation, filters_per_group):
    """Whether the ``TRANSPOSE_FILTERS x TRANSPOSE_WIDTH`` tile serves this correlation.

    That is float32 with filters per group a multiple of ``TRANSPOSE_FILTERS``
    (or many: little padding in the last block) and at least one tile of
    positions.
    """
    positions = _widened_positions(size, kernel_size, dilation)[1]
    return (dtype == np.float32 and positions >= TRANSPOSE_WIDTH
            and (filters_per_group % TRANSPOSE_FILTERS == 0 or filters_per_group >= 64))


def _transpose_panels(weight, groups):
    """Panels ``(groups, filter_blocks, K, TRANSPOSE_FILTERS)`` of ``weight``, zero-padded."""
    filters_per_group = weight.shape[0] // groups
    blocks = -(-filters_per_group // TRANSPOSE_FILTERS)
    rows = weight[0].size
    panels = np.zeros((groups, blocks * TRANSPOSE_FILTERS, rows), dtype=weight.dtype)
    panels[:, :filters_per_group] = weight.reshape(groups, filters_per_group, rows)
    return np.ascontiguousarray(
        panels.reshape(groups, blocks, TRANSPOSE_FILTERS, rows).transpose(0, 1, 3, 2))


def _stride1_correlation(x, weight, dilation, groups):
    """``conv_forward(x, weight, None, 1, dilation, groups)``, with the wider tile where it fits.

    Where :func:`_wide_tile_fits` says no, ``conv_forward`` does it.
    """
    batch, channels, depth, height, width = x.shape
    filters = weight.shape[0]
    kernel_shape = tuple(weight.shape[2:])
    if not _wide_tile_fits(x.dtype, x.shape[2:], kernel_shape, dilation, filters // groups):
        return conv_forward(x, weight, None, (1, 1, 1), dilation, groups)
    out_shape, positions = _widened_positions(x.shape[2:], kernel_shape, dilation)
    _, out_height, out_width = out_shape
    out = np.empty((batch, filters) + out_shape, dtype=x.dtype)
    panels = _transpose_panels(weight, groups)
    threads = numba.get_num_threads()
    # Several tasks per thread, each a multiple of the tile width.
    volumes = batch * groups
    per_task = -(-positions // max(1, -(-8 * threads // volumes)))
    per_task = -(-per_task // TRANSPOSE_WIDTH) * TRANSPOSE_WIDTH
    _transpose_gemm(x.reshape(volumes, -1), panels,
                    tap_offsets_for((channels // groups,) + kernel_shape, (depth, height, width),
                                    dilation),
                    out.reshape(batch, filters, -1), height, width, out_height, out_width,
                    min(max(per_task, TRANSPOSE_WIDTH), TRANSPOSE_TASK_POSITIONS), threads)
    return out




@jit(parallel=True)
def _spread_gemm(grad, weight_panels, tap_offsets, out, offsets, stride, lengths, out_height,
                 out_width, task_positions, plane_sums, with_sums, threads):
    """:func:`_spread` and :func:`_transpose_gemm` in one parallel region, volume by volume.

    A task is one ``(image, group)`` volume: it spreads that volume's
    gradient into its thread's scratch grid (zeroed once: the positions
    written are the same for every volume, the rest stays zero), then sweeps
    the scratch grid in chunks of ``task_positions``, every filter block per
    chunk.  The spread gradient is thus read back from the core's own cache
    instead of a whole padded array written to and re-read from memory.

    With ``with_sums``, the spread also sums each ``(n, f)`` plane of
    ``grad`` in float64 into ``plane_sums[n, f]`` (the bias gradient before
    the sum over ``n``): per-column partial sums while the row is in cache,
    a vector add per row, then the columns in order; the same bits for any
    thread count.
    """
    batch, filters, out_depth, grad_height, grad_width = grad.shape
    groups = weight_panels.shape[0]
    filters_per_group = filters // groups
    channels_per_group = out.shape[1] // groups
    depth, height, width = lengths
    positions = ((out.shape[2] // (out_height * out_width) - 1) * height
                 + out_height - 1) * width + out_width
    tasks = batch * groups
    next_task = np.zeros(1, dtype=np.int64)
    for _ in prange(min(threads, tasks)):
        tile = np.empty((TRANSPOSE_FILTERS, TRANSPOSE_WIDTH), dtype=out.dtype)
        scratch = np.zeros((filters_per_group, depth, height, width), dtype=grad.dtype)
        volume = scratch.reshape(filters_per_group * depth * height * width)
        column_sums = np.zeros(grad_width, dtype=np.float64)
        while True:
            task = fetch_add(next_task, 1)  # dynamic scheduling, see _jit.fetch_add
            if task >= tasks:
                break
            image, group = divmod(task, groups)
            for filter_index in range(filters_per_group):
                source_volume = grad[image, group * filters_per_group + filter_index]
                for z in range(out_depth):
                    for y in range(grad_height):
                        source = source_volume[z, y]
                        target = scratch[filter_index, offsets[0] + z * stride[0],
                                         offsets[1] + y * stride[1], offsets[2]:]
                        if stride[2] == 1:  # its own loop: a plain vector copy
                            for x in range(grad_width):
                                target[x] = source[x]
                        else:
                            for x in range(grad_width):
                                target[x * stride[2]] = source[x]
                        if with_sums:
                            for x in range(grad_width):
                                column_sums[x] += source[x]
                if with_sums:
                    total = 0.0
                    for x in range(grad_width):
                        total += column_sums[x]
                        column_sums[x] = 0.0
                    plane_sums[image, group * filters_per_group + filter_index] = total
            group_out = out[image, group * channels_per_group:(group + 1) * channels_per_group]
            for start in range(0, positions, task_positions):
                _sweep(weight_panels[group], volume, tap_offsets, tile, start,
                       min(start + task_positions, positions), group_out, width, height,
                       out_height, out_width)
    return out


def _spread_correlation(grad, weight, offsets, stride, lengths, dilation, groups, threads,
                        plane_sums=None):
    """:func:`_spread` then :func:`_stride1_correlation`, fused (:func:`_spread_gemm`).

    ``weight`` is the flipped, transposed kernel ``(C, F / groups, ...)``;
    :func:`_wide_tile_fits` must hold.  ``plane_sums``, if given, an ``(N,
    F)`` float64 array, receives the sum of each ``(n, f)`` plane of ``grad``.
    """
    batch, filters = grad.shape[:2]
    channels = weight.shape[0]
    kernel_shape = tuple(weight.shape[2:])
    out_shape, positions = _widened_positions(lengths, kernel_shape, dilation)
    _, out_height, out_width = out_shape
    out = np.empty((batch, channels) + out_shape, dtype=grad.dtype)
    # Chunks of whole tiles, the last one at least a tile long.
    chunk = max(TRANSPOSE_WIDTH, min(TRANSPOSE_TASK_POSITIONS, positions))
    _spread_gemm(grad, _transpose_panels(weight, groups),
                 tap_offsets_for((filters // groups,) + kernel_shape, lengths, dilation),
                 out.reshape(batch, channels, -1), offsets, stride, lengths, out_height,
                 out_width, chunk,
                 np.empty((0, 0)) if plane_sums is None else plane_sums,
                 plane_sums is not None, threads)
    return out
