"""Pooling kernels: max and average over the windows of :class:`fastcorr.pool.Windows` tables.

The method (separable windows).  A pooling window is a box: per output row
``(od, oh)`` a *vertical* pass folds the window's ``(d, h)`` taps into one
buffer as long as the input row (a max with its position, or a sum in
float64), reading whole contiguous input rows so that it vectorises; a
*horizontal* pass then folds the ``w`` taps.  Where the ``w`` windows are
complete and evenly spaced (all of torch's but those clipped at the
edges), it folds tap by tap for *every* window start, contiguous vector
loops, and keeps every ``stride``-th; computing the starts a stride skips
is cheaper than strided (gathered) loads; at stride 2 (torch's usual) it
splits the columns into even and odd ones instead, after which every tap
is one contiguous loop over the outputs.  Clipped and adaptive windows
walk their tables one output at a time.  A window that is one contiguous
run of the plane (global pooling) is reduced directly, in register lanes
(:func:`_range_sum`, :func:`_range_max`).

Max pooling keeps torch's choice of index: the first maximum in the order
``(d, h, w)`` and, when the window holds NaN, the last NaN; a window of
padding only gives ``-inf`` at index -1.  The vertical pass finds the
winner per column by walking rows in order ("larger, or NaN"); the
horizontal pass compares columns whose winners sit on different rows, so
it breaks ties by the flat index itself (:func:`_wins`), which makes the
result independent of the order of the fold.  All selects are written
without branches: on random data every other branch would mispredict.

Without ``return_indices`` (:func:`max_pool_values`) the same kernels
compile without any index work: the int64 indices are twice the values'
bytes, and keeping them costs more than the maxima.

Layers: row workers (``_max_row``, ``_avg_row``, inlined), per-thread task
loops (``_max_pool_tasks``, ``_avg_pool_tasks``) whose tasks are
contiguous ranges of output rows, handed out dynamically
(:func:`._jit.fetch_add`), parallel drivers, and the entry points.  A row
is short (C4: 112 inputs), so the task loops take every array
:func:`._jit.borrowed`: the views and calls per row would otherwise cost
more in atomic reference counting than the row's work.  Their scratch
rows come from the entry point, aligned and a cache line apart per thread
(:func:`_thread_scratch`).  The backward drivers' tasks are whole ``(n,
c)`` planes (no two threads add into one cell, outputs in order).
"""

from __future__ import annotations

import numba
import numpy as np
from numba import prange

from ..._dispatch import Unsupported
from ._jit import FASTMATH, borrowed, fetch_add, jit, stack_empty

# Lanes of the contiguous reductions: 64 float32 maxima (4 zmm) with their int64
# indices (8 zmm), or 64 float64 sums, stay in registers; 64 independent
# chains hide the latency of the compare-and-select (or add) of each.
LANES = 64
# Elements per chunk of the contiguous reductions: two passes over it stay in
# L1 (maximum), and a chunk's sum in float32 loses nothing that matters.
RANGE_CHUNK = 64 * LANES
# Tasks per thread: contiguous ranges of rows (planes) handed out dynamically, so
# that a thread the OS delays on a busy machine takes fewer (see _jit.fetch_add).
TASKS_PER_THREAD = 16


@jit(inline="always")
def _wins(value, index, best, best_index):
    """Whether ``(value, index)`` replaces ``(best, best_index)`` in torch's max pooling.

    The first maximum in flat-index order, NaN above every number, and the
    last of several NaNs; comparing indices makes this order-independent.
    Written with ``&``/``|`` on comparisons (no branches) so that loops over
    it become vector selects: random data would mispredict every other branch.
    """
    value_nan = value != value
    take_nan = (best == best) | (index > best_index)
    take_number = (value > best) | ((value == best) & (index < best_index))
    return (value_nan & take_nan) | ((value == value) & take_number)


@jit(inline="always")
def _takes(value, best):
    """Whether ``value`` replaces the running maximum ``best``: larger, or NaN.

    Walking values in order this keeps the first maximum and, once a NaN
    came, a NaN; also a select, not a branch.
    """
    return (value > best) | (value != value)


@jit(inline="always")
def _max_columns(x_plane, first_d, taps_d, step_d, first_h, taps_h, step_h,
                 column_best, column_index):
    """Vertical pass: per column ``w``, the winner over the ``(d, h)`` taps, rows in order.

    Walking the rows in flat-index order, "larger, or NaN" (:func:`_takes`)
    picks torch's winner without comparing indices.  ``column_index`` None:
    values only.
    """
    height, width = x_plane.shape[1], x_plane.shape[2]
    first_row = x_plane[first_d, first_h]
    first_offset = (first_d * height + first_h) * width
    for w in range(width):  # a copy of the first row starts the fold: one pass less
        column_best[w] = first_row[w]
        if column_index is not None:
            column_index[w] = first_offset + w
    for tap in range(1, taps_d * taps_h):
        td, th = divmod(tap, taps_h)
        d = first_d + td * step_d
        h = first_h + th * step_h
        row = x_plane[d, h]
        row_offset = (d * height + h) * width
        for w in range(width):
            value = row[w]
            best = column_best[w]
            take = _takes(value, best)
            column_best[w] = value if take else best
            if column_index is not None:
                column_index[w] = row_offset + w if take else column_index[w]


@jit(inline="always")
def _split_pairs(columns, width, even, odd):
    """``even[j] = columns[2 * j]``, ``odd[j] = columns[2 * j + 1]`` for ``2 * j < width``
    (``columns`` one longer than ``width``: see :func:`_max_pairs`)."""
    for j in range((width + 1) // 2):
        even[j] = columns[2 * j]
        odd[j] = columns[2 * j + 1]


@jit(inline="always")
def _max_pairs(column_best, width, first, step, taps, even, odd, values):
    """Values-only horizontal pass for stride 2: ``values[i]`` = the max of columns
    ``first + 2 * i + tw * step``, ``tw < taps``.

    The columns are first split into even and odd ones (two buffers of
    ``(width + 1) // 2``; ``column_best`` holds one element more than the
    ``width`` columns, so that an odd width needs no separate last
    element): every tap then reads one of them contiguously.  The split
    reads the columns as interleaved pairs, which vectorises.  Measured
    against it (one 112-wide row in L1, microbenchmarks): every window start
    as in :func:`_max_span`, 2.5x slower; taps indexed with a signed
    ``offset + i`` (numba keeps its negative-index test in the loop), 4-6x;
    a slice per tap (reference counting), 2x; a separate store for an odd
    width's last column, 5x.  Strided loads per tap (gathers) made C4's
    max pooling 1.3x slower end to end.
    """
    _split_pairs(column_best, width, even, odd)
    for tw in range(taps):
        column = first + tw * step
        source = odd if column % 2 else even
        offset = np.uint64(column // 2)
        if tw == 0:
            for i in range(values.shape[0]):
                values[i] = source[offset + np.uint64(i)]
        else:
            for i in range(values.shape[0]):
                value = source[offset + np.uint64(i)]
                best = values[i]
                values[i] = value if _takes(value, best) else best


@jit(inline="always")
def _max_span(column_best, column_index, first, step, taps, span, span_best, span_index):
    """Horizontal pass over every window start ``first + j``, ``j < span``: contiguous loops.

    ``span_*[j]`` is the winner of columns ``first + j + tw * step``, ``tw <
    taps``; computing the starts a stride skips costs less than strided
    (gathered) loads would.  ``column_index`` and ``span_index`` None:
    values only.
    """
    source_best = column_best[first:]
    for j in range(span):
        span_best[j] = source_best[j]
    if span_index is not None:
        source_index = column_index[first:]
        for j in range(span):
            span_index[j] = source_index[j]
    for tw in range(1, taps):
        source_best = column_best[first + tw * step:]
        if span_index is None:
            for j in range(span):
                value = source_best[j]
                best = span_best[j]
                span_best[j] = value if _takes(value, best) else best
        else:
            source_index = column_index[first + tw * step:]
            for j in range(span):
                value = source_best[j]
                index = source_index[j]
                best = span_best[j]
                best_index = span_index[j]
                take = _wins(value, index, best, best_index)
                span_best[j] = value if take else best
                span_index[j] = index if take else best_index


@jit(inline="always")
def _lanes_argmax(x_flat, start, stop):
    """``(max, index)`` of ``x_flat[start:stop]`` (not empty), as torch picks them, NaN or not.

    Lane ``l`` walks positions ``l, l + LANES, ...`` in order ("larger, or
    NaN"); the lanes and the tail are then merged with :func:`_wins`.
    """
    best = numba.carray(stack_empty(LANES, x_flat.dtype), (LANES,))
    best_index = numba.carray(stack_empty(LANES, np.int64), (LANES,))
    for lane in range(LANES):
        best[lane] = -np.inf
        best_index[lane] = start + lane
    blocks = (stop - start) // LANES
    for block in range(blocks):
        first = start + block * LANES
        chunk = x_flat[first:]
        for lane in range(LANES):
            value = chunk[lane]
            current = best[lane]
            take = (value > current) | (value != value)
            best[lane] = value if take else current
            best_index[lane] = first + lane if take else best_index[lane]
    result = best[0]
    result_index = best_index[0]
    for lane in range(1, LANES):
        if _wins(best[lane], best_index[lane], result, result_index):
            result = best[lane]
            result_index = best_index[lane]
    for position in range(start + blocks * LANES, stop):
        if _wins(x_flat[position], position, result, result_index):
            result = x_flat[position]
            result_index = position
    return result, result_index


@jit(inline="always")
def _lanes_max(x_flat, start, stop):
    """``(max, finite)`` of ``x_flat[start:stop]``: a plain maximum, and whether all are finite.

    Only a ``max`` and an add per element: the cheap first pass of
    :func:`_range_max`.  The running sum becomes NaN or inf when a value is
    NaN or inf (or when the sum overflows: then the exact walk runs for
    nothing, still correct).
    """
    best = numba.carray(stack_empty(LANES, x_flat.dtype), (LANES,))
    check = numba.carray(stack_empty(LANES, x_flat.dtype), (LANES,))
    for lane in range(LANES):
        best[lane] = -np.inf
        check[lane] = 0
    blocks = (stop - start) // LANES
    for block in range(blocks):
        chunk = x_flat[start + block * LANES:]
        for lane in range(LANES):
            value = chunk[lane]
            best[lane] = value if value > best[lane] else best[lane]
            check[lane] += value
    result = -np.inf
    total = 0.0
    for lane in range(LANES):
        result = max(result, best[lane])
        total += check[lane]
    for position in range(start + blocks * LANES, stop):
        value = x_flat[position]
        result = max(result, value)
        total += value
    return result, total - total == 0.0


@jit(inline="always")
def _first_equal(x_flat, start, stop, value):
    """The first position in ``[start, stop)`` holding ``value`` (there is one)."""
    blocks = (stop - start) // LANES
    for block in range(blocks):
        chunk = x_flat[start + block * LANES:]
        hits = 0
        for lane in range(LANES):  # a fixed-length or-reduction: one vector compare per 16
            hits |= chunk[lane] == value
        if hits:
            for lane in range(LANES):
                if chunk[lane] == value:
                    return start + block * LANES + lane
    for position in range(start + blocks * LANES, stop):
        if x_flat[position] == value:
            return position
    return start


@jit()
def _range_max(x_flat, start, stop):
    """``(max, index)`` of ``x_flat[start:stop]`` (not empty), as torch picks them.

    Chunk by chunk (in L1): a plain vector maximum first; only a chunk that
    raises the running maximum is searched again for its first position,
    and only a chunk holding NaN or inf takes the exact walk of
    :func:`_lanes_argmax`.  Strictly larger chunk maxima keep the first
    maximum; :func:`_wins` merges the exact walks.  Not inlined: see
    :func:`_range_sum`.
    """
    result = x_flat[start]
    result_index = start
    for chunk_start in range(start, stop, RANGE_CHUNK):
        chunk_stop = min(chunk_start + RANGE_CHUNK, stop)
        chunk_max, finite = _lanes_max(x_flat, chunk_start, chunk_stop)
        if not finite:
            value, index = _lanes_argmax(x_flat, chunk_start, chunk_stop)
            if _wins(value, index, result, result_index):
                result = value
                result_index = index
        elif chunk_max > result:
            result = chunk_max
            result_index = _first_equal(x_flat, chunk_start, chunk_stop, chunk_max)
    return result, result_index


@jit()
def _range_max_value(x_flat, start, stop):
    """``max(x_flat[start:stop])`` (not empty), NaN if any value is NaN: :func:`_range_max`
    without the index, so in one pass, unless a NaN or inf asks for the exact walk."""
    result, finite = _lanes_max(x_flat, start, stop)
    if not finite:
        result = _lanes_argmax(x_flat, start, stop)[0]
    return result


@jit(fastmath=FASTMATH | {"reassoc"})
def _range_sum(x_flat, start, stop):
    """``sum(x_flat[start:stop])``: chunks of ``RANGE_CHUNK`` in the input's dtype, then float64.

    'reassoc' lets LLVM split each chunk's sum over several vector
    accumulators (a plain loop is one serial chain of adds); it changes the
    rounding, never NaN/Inf propagation.  The loop counts from 0 over a
    slice: with an index that might be negative numba keeps a wraparound
    check that stops the vectoriser.
    """
    total = 0.0
    for chunk_start in range(start, stop, RANGE_CHUNK):
        chunk_sum = x_flat[chunk_start]
        rest = x_flat[chunk_start + 1:min(chunk_start + RANGE_CHUNK, stop)]
        for i in range(rest.shape[0]):
            chunk_sum += rest[i]
        total += chunk_sum
    return total


@jit(inline="always")
def _contiguous_window(whole_rows, height, first_h, taps_h, step_h, taps_d, step_d):
    """Whether a row's only window is one contiguous run of the plane.

    ``whole_rows``: there is one ``w`` window and it covers whole rows; the
    ``(d, h)`` taps must then be consecutive rows (global pooling, and
    adaptive pooling to a single column).
    """
    if not whole_rows:
        return False
    consecutive_h = taps_h == 1 or step_h == 1
    consecutive_d = taps_d == 1 or (step_d == 1 and first_h == 0 and taps_h == height)
    return consecutive_h and consecutive_d


@jit(inline="always")
def _max_row(x_plane, first_d, taps_d, step_d, first_h, taps_h, step_h,
             first_w, taps_w, step_w, affine_start, affine_stop, stride_w, whole_rows,
             column_best, column_index, span_best, span_index, column_odd, out_values,
             out_indices):
    """Max pooling of one output row: ``out_values[ow]``/``out_indices[ow]`` for every ``ow``.

    ``first_d .. taps_h`` are scalars (this row's ``d`` and ``h`` windows);
    ``[affine_start, affine_stop)`` are the outputs whose ``w`` windows are
    complete and ``stride_w`` apart.  The ``column_*`` and ``span_*``
    buffers (input width, ``column_best`` one more, ``column_odd`` half of
    it) are scratch.  ``out_indices`` None (and the index buffers None):
    values only, compiled without any index work.
    """
    out_width = out_values.shape[0]
    if taps_d == 0 or taps_h == 0:  # windows of padding only: -inf at index -1
        for ow in range(out_width):
            out_values[ow] = -np.inf
            if out_indices is not None:
                out_indices[ow] = -1
        return
    depth, height, width = x_plane.shape
    if _contiguous_window(whole_rows, height, first_h, taps_h, step_h, taps_d, step_d):
        start = (first_d * height + first_h) * width
        x_flat = x_plane.reshape(depth * height * width)
        stop = start + taps_d * taps_h * width
        if out_indices is None:
            out_values[0] = _range_max_value(x_flat, start, stop)
        else:
            out_values[0], out_indices[0] = _range_max(x_flat, start, stop)
        return
    _max_columns(x_plane, first_d, taps_d, step_d, first_h, taps_h, step_h,
                 column_best, column_index)
    count = affine_stop - affine_start
    first = first_w[affine_start]
    taps = taps_w[affine_start]
    values = out_values[affine_start:affine_stop]
    if count > 0 and out_indices is None and stride_w == 2:
        _max_pairs(column_best, width, first, step_w, taps, span_best, column_odd, values)
    elif count > 0:
        _max_span(column_best, column_index, first, step_w, taps, (count - 1) * stride_w + 1,
                  span_best, span_index)
        for i in range(count):
            values[i] = span_best[i * stride_w]
        if out_indices is not None:
            indices = out_indices[affine_start:]
            for i in range(count):
                indices[i] = span_index[i * stride_w]
    # The other windows (clipped at an edge, adaptive): one at a time.
    for ow in range(affine_start):
        _max_window(column_best, column_index, first_w, taps_w, step_w, ow, out_values,
                    out_indices)
    for ow in range(affine_stop, out_width):
        _max_window(column_best, column_index, first_w, taps_w, step_w, ow, out_values,
                    out_indices)


@jit(inline="always")
def _max_window(column_best, column_index, first_w, taps_w, step_w, ow, out_values,
                out_indices):
    """Window ``ow`` of a row from the vertical pass's columns, one tap at a time."""
    if taps_w[ow] == 0:
        out_values[ow] = -np.inf
        if out_indices is not None:
            out_indices[ow] = -1
        return
    w = first_w[ow]
    best = column_best[w]
    if out_indices is None:
        for tw in range(1, taps_w[ow]):
            value = column_best[first_w[ow] + tw * step_w]
            best = value if _takes(value, best) else best
    else:
        best_index = column_index[w]
        for tw in range(1, taps_w[ow]):
            w = first_w[ow] + tw * step_w
            if _wins(column_best[w], column_index[w], best, best_index):
                best = column_best[w]
                best_index = column_index[w]
        out_indices[ow] = best_index
    out_values[ow] = best


@jit(inline="always")
def _row_position(row, out_depth, out_height):
    """``(plane, od, oh)`` of output row ``row`` (rows numbered ``oh`` fastest)."""
    plane_depth, oh = divmod(row, out_height)
    plane, od = divmod(plane_depth, out_depth)
    return plane, od, oh


@jit(inline="always")
def _next_row(plane, od, oh, out_depth, out_height):
    """The position after ``(plane, od, oh)``, counted: two integer divisions per row
    (:func:`_row_position`) measured 10 % of max pooling's time on C4."""
    oh += 1
    if oh == out_height:
        oh = 0
        od += 1
        if od == out_depth:
            od = 0
            plane += 1
    return plane, od, oh


@jit()
def _max_pool_tasks(x, first_d, taps_d, step_d, first_h, taps_h, step_h, first_w, taps_w,
                    step_w, affine_start, affine_stop, stride_w, whole_rows, values, indices,
                    scratch, index_scratch, thread, next_task, tasks):
    """Thread ``thread``'s share of :func:`_max_pool`: the tasks it takes from ``next_task``.

    Every array is :func:`borrowed`: the rows below take views of them and
    pass them to the inlined row worker, each of which would otherwise cost
    atomic reference-count updates (measured: 70 % of the time).
    """
    out_depth, out_height = values.shape[1], values.shape[2]
    rows = values.shape[0] * out_depth * out_height
    x, values = borrowed(x), borrowed(values)
    first_d, taps_d, first_h, taps_h = (borrowed(first_d), borrowed(taps_d),
                                        borrowed(first_h), borrowed(taps_h))
    first_w, taps_w = borrowed(first_w), borrowed(taps_w)
    column_best = borrowed(scratch[thread, 0])  # W + 1 long: see _max_pairs
    span_best = borrowed(scratch[thread, 1])
    column_odd = borrowed(scratch[thread, 2])
    if indices is None:  # tested on the arguments: numba compiles one branch only
        index_rows = None
        column_index = None
        span_index = None
    else:
        index_rows = borrowed(indices)
        column_index = borrowed(index_scratch[thread, 0])
        span_index = borrowed(index_scratch[thread, 1])
    while True:
        task = fetch_add(next_task, 1)
        if task >= tasks:
            break
        first_row = task * rows // tasks
        plane, od, oh = _row_position(first_row, out_depth, out_height)
        for _ in range(first_row, (task + 1) * rows // tasks):
            if indices is None:
                row_indices = None
            else:
                row_indices = index_rows[plane, od, oh]
            _max_row(x[plane], first_d[od], taps_d[od], step_d, first_h[oh], taps_h[oh],
                     step_h, first_w, taps_w, step_w, affine_start, affine_stop, stride_w,
                     whole_rows, column_best, column_index, span_best, span_index, column_odd,
                     values[plane, od, oh], row_indices)
            plane, od, oh = _next_row(plane, od, oh, out_depth, out_height)


@jit(parallel=True)
def _max_pool(x, first_d, taps_d, step_d, first_h, taps_h, step_h, first_w, taps_w, step_w,
              affine_start, affine_stop, stride_w, whole_rows, values, indices, scratch,
              index_scratch):
    """Parallel driver: tasks are contiguous ranges of output rows.

    ``x`` is ``(planes, D, H, W)``; ``values``/``indices`` are
    ``(planes, Do, Ho, Wo)``, written completely; ``indices`` None: values
    only (a separate compilation).  ``scratch`` holds 3 rows of ``W + 1``
    per thread, of ``x``'s dtype, ``index_scratch`` 2 rows of ``W`` int64
    (None without ``indices``): :func:`_thread_scratch`, allocated by the
    caller, as :func:`borrowed` needs.
    """
    threads = scratch.shape[0]
    tasks = min(values.shape[0] * values.shape[1] * values.shape[2], TASKS_PER_THREAD * threads)
    next_task = np.zeros(1, dtype=np.int64)
    for thread in prange(min(threads, tasks)):
        _max_pool_tasks(x, first_d, taps_d, step_d, first_h, taps_h, step_h, first_w, taps_w,
                        step_w, affine_start, affine_stop, stride_w, whole_rows, values,
                        indices, scratch, index_scratch, thread, next_task, tasks)


@jit(inline="always")
def _avg_row(x_plane, first_d, taps_d, step_d, first_h, taps_h, step_h,
             first_w, taps_w, step_w, affine_start, affine_stop, stride_w, whole_rows,
             reciprocal_w, row_reciprocal, column_sum, span_sum, column_odd, pair_sums,
             out_row):
    """Average pooling of one output row, summing in float64 (see :func:`_max_row`).

    ``reciprocal_w`` holds ``1 / divisor`` per ``w`` window, ``row_reciprocal``
    the product of this row's ``d`` and ``h`` ones: a multiplication has no
    division-by-zero branch to keep the loop from vectorising.  Scratch:
    ``column_sum`` (input width + 1), ``span_sum``, ``column_odd`` and
    ``pair_sums`` (input width).
    """
    depth, height, width = x_plane.shape
    out_width = out_row.shape[0]
    if _contiguous_window(whole_rows, height, first_h, taps_h, step_h, taps_d, step_d):
        start = (first_d * height + first_h) * width
        total = _range_sum(x_plane.reshape(depth * height * width), start,
                           start + taps_d * taps_h * width)
        out_row[0] = total * (row_reciprocal * reciprocal_w[0])
        return
    for w in range(width):
        column_sum[w] = 0.0
    for tap in range(taps_d * taps_h):
        td, th = divmod(tap, taps_h)
        row = x_plane[first_d + td * step_d, first_h + th * step_h]
        for w in range(width):
            column_sum[w] += row[w]
    count = affine_stop - affine_start
    if count > 0:
        first = first_w[affine_start]
        taps = taps_w[affine_start]
        if stride_w == 2:  # even and odd columns, as in _max_pairs
            _split_pairs(column_sum, width, span_sum, column_odd)
            for tw in range(taps):
                column = first + tw * step_w
                source = column_odd if column % 2 else span_sum
                offset = np.uint64(column // 2)
                if tw == 0:
                    for i in range(count):
                        pair_sums[i] = source[offset + np.uint64(i)]
                else:
                    for i in range(count):
                        pair_sums[i] += source[offset + np.uint64(i)]
        else:  # every window start, contiguous loops, as in _max_span
            span = (count - 1) * stride_w + 1
            source = column_sum[first:]
            for j in range(span):
                span_sum[j] = source[j]
            for tw in range(1, taps):
                source = column_sum[first + tw * step_w:]
                for j in range(span):
                    span_sum[j] += source[j]
            for i in range(count):
                pair_sums[i] = span_sum[i * stride_w]
        values = out_row[affine_start:]
        reciprocals = reciprocal_w[affine_start:]
        for i in range(count):
            values[i] = pair_sums[i] * (row_reciprocal * reciprocals[i])
    # The other windows (clipped at an edge, adaptive): one at a time.
    for ow in range(affine_start):
        _avg_window(column_sum, first_w, taps_w, step_w, ow, row_reciprocal, reciprocal_w,
                    out_row)
    for ow in range(affine_stop, out_width):
        _avg_window(column_sum, first_w, taps_w, step_w, ow, row_reciprocal, reciprocal_w,
                    out_row)


@jit(inline="always")
def _avg_window(column_sum, first_w, taps_w, step_w, ow, row_reciprocal, reciprocal_w,
                out_row):
    """Window ``ow`` of a row from the vertical pass's column sums."""
    total = 0.0
    for tw in range(taps_w[ow]):
        total += column_sum[first_w[ow] + tw * step_w]
    out_row[ow] = total * (row_reciprocal * reciprocal_w[ow])


@jit()
def _avg_pool_tasks(x, first_d, taps_d, step_d, reciprocal_d, first_h, taps_h, step_h,
                    reciprocal_h, first_w, taps_w, step_w, reciprocal_w, affine_start,
                    affine_stop, stride_w, whole_rows, out, scratch, thread, next_task,
                    tasks):
    """Thread ``thread``'s share of :func:`_avg_pool`, arrays borrowed as in
    :func:`_max_pool_tasks`."""
    out_depth, out_height = out.shape[1], out.shape[2]
    rows = out.shape[0] * out_depth * out_height
    x, out = borrowed(x), borrowed(out)
    first_d, taps_d, first_h, taps_h = (borrowed(first_d), borrowed(taps_d),
                                        borrowed(first_h), borrowed(taps_h))
    first_w, taps_w, reciprocal_w = borrowed(first_w), borrowed(taps_w), borrowed(reciprocal_w)
    column_sum = borrowed(scratch[thread, 0])  # W + 1 long: see _max_pairs
    span_sum = borrowed(scratch[thread, 1])
    column_odd = borrowed(scratch[thread, 2])
    pair_sums = borrowed(scratch[thread, 3])
    while True:
        task = fetch_add(next_task, 1)
        if task >= tasks:
            break
        first_row = task * rows // tasks
        plane, od, oh = _row_position(first_row, out_depth, out_height)
        for _ in range(first_row, (task + 1) * rows // tasks):
            _avg_row(x[plane], first_d[od], taps_d[od], step_d, first_h[oh], taps_h[oh],
                     step_h, first_w, taps_w, step_w, affine_start, affine_stop, stride_w,
                     whole_rows, reciprocal_w, reciprocal_d[od] * reciprocal_h[oh],
                     column_sum, span_sum, column_odd, pair_sums, out[plane, od, oh])
            plane, od, oh = _next_row(plane, od, oh, out_depth, out_height)


@jit(parallel=True)
def _avg_pool(x, first_d, taps_d, step_d, reciprocal_d, first_h, taps_h, step_h,
              reciprocal_h, first_w, taps_w, step_w, reciprocal_w, affine_start, affine_stop,
              stride_w, whole_rows, out, scratch):
    """Parallel driver of average pooling: tasks are contiguous ranges of output rows.

    ``scratch``: 4 float64 rows of ``W + 1`` per thread (:func:`_avg_scratch`).
    """
    threads = scratch.shape[0]
    tasks = min(out.shape[0] * out.shape[1] * out.shape[2], TASKS_PER_THREAD * threads)
    next_task = np.zeros(1, dtype=np.int64)
    for thread in prange(min(threads, tasks)):
        _avg_pool_tasks(x, first_d, taps_d, step_d, reciprocal_d, first_h, taps_h, step_h,
                        reciprocal_h, first_w, taps_w, step_w, reciprocal_w, affine_start,
                        affine_stop, stride_w, whole_rows, out, scratch, thread, next_task,
                        tasks)


@jit(parallel=True)
def _global_pool(x_planes, maximum, out):
    """``out[p]`` = the mean (or, if ``maximum``, the max) of row ``p`` of ``x_planes``.

    A static split over planes: for these equal, long tasks it measured 10 %
    faster than the dynamic row tasks of :func:`_avg_pool`.
    """
    planes, size = x_planes.shape
    for plane in prange(planes):
        if maximum:
            out[plane] = _range_max_value(x_planes[plane], 0, size)
        else:
            out[plane] = _range_sum(x_planes[plane], 0, size) / size
    return out


@jit(parallel=True)
def _max_pool_backward(grad_output, indices, grad_input, threads):
    """Each output's gradient to its maximum; tasks own whole planes, outputs in order.

    Index -1 (a window of padding only) passes nothing back.

    ``grad_output``/``indices`` are ``(planes, outputs)``, ``grad_input``
    ``(planes, plane_size)``, written completely.
    """
    planes, outputs = grad_output.shape
    plane_size = grad_input.shape[1]
    tasks = min(planes, TASKS_PER_THREAD * threads)
    next_task = np.zeros(1, dtype=np.int64)
    for _ in prange(min(threads, tasks)):
        while True:
            task = fetch_add(next_task, 1)
            if task >= tasks:
                break
            for plane in range(task * planes // tasks, (task + 1) * planes // tasks):
                target = grad_input[plane]
                for i in range(plane_size):
                    target[i] = 0
                source = grad_output[plane]
                where = indices[plane]
                for o in range(outputs):
                    if where[o] >= 0:  # -1: a window of padding only
                        target[where[o]] += source[o]
    return grad_input


@jit()
def _avg_backward_plane(grad_plane, first_d, taps_d, step_d, reciprocal_d, first_h, taps_h,
                        step_h, reciprocal_h, first_w, taps_w, step_w, reciprocal_w,
                        accumulator, spread, out_plane):
    """The adjoint of average pooling on one plane, accumulated in float64.

    Per output row: the horizontal adjoint spreads each output's share over
    its ``w`` taps in a row buffer; the vertical adjoint adds that buffer to
    every ``(d, h)`` tap row of the plane's accumulator.
    """
    out_depth, out_height, out_width = grad_plane.shape
    depth, height, width = out_plane.shape
    accumulator[:] = 0.0
    for od in range(out_depth):
        for oh in range(out_height):
            source = grad_plane[od, oh]
            row_reciprocal = reciprocal_d[od] * reciprocal_h[oh]
            for w in range(width):
                spread[w] = 0.0
            for ow in range(out_width):
                share = source[ow] * (row_reciprocal * reciprocal_w[ow])
                for tw in range(taps_w[ow]):
                    spread[first_w[ow] + tw * step_w] += share
            for td in range(taps_d[od]):
                for th in range(taps_h[oh]):
                    target = accumulator[first_d[od] + td * step_d, first_h[oh] + th * step_h]
                    for w in range(width):
                        target[w] += spread[w]
    for d in range(depth):
        for h in range(height):
            for w in range(width):
                out_plane[d, h, w] = accumulator[d, h, w]


@jit(parallel=True)
def _avg_pool_backward(grad_output, first_d, taps_d, step_d, reciprocal_d, first_h, taps_h,
                       step_h, reciprocal_h, first_w, taps_w, step_w, reciprocal_w, grad_input,
                       threads):
    """Parallel driver of the adjoint of :func:`_avg_pool`: tasks own whole planes."""
    planes = grad_output.shape[0]
    depth, height, width = grad_input.shape[1:]
    tasks = min(planes, TASKS_PER_THREAD * threads)
    next_task = np.zeros(1, dtype=np.int64)
    for _ in prange(min(threads, tasks)):
        accumulator = np.empty((depth, height, width), dtype=np.float64)
        spread = np.empty(width, dtype=np.float64)
        while True:
            task = fetch_add(next_task, 1)
            if task >= tasks:
                break
            for plane in range(task * planes // tasks, (task + 1) * planes // tasks):
                _avg_backward_plane(grad_output[plane], first_d, taps_d, step_d, reciprocal_d,
                                    first_h, taps_h, step_h, reciprocal_h, first_w, taps_w,
                                    step_w, reciprocal_w, accumulator, spread,
                                    grad_input[plane])
    return grad_input


def _affine_run(windows):
    """``(start, stop, stride)``: the longest run of complete, evenly spaced windows.

    torch's windows are complete and ``stride`` apart except where they are
    clipped at the edges; adaptive windows may have none (``stop == start``).
    """
    first, taps = windows.first, windows.taps
    count = len(first)
    if count == 0:
        return 0, 0, 1
    if taps.max() == 0:
        return 0, 0, 1
    complete = np.flatnonzero(taps == taps.max())
    start, stop = int(complete[0]), int(complete[-1]) + 1
    if stop - start != len(complete):
        return 0, 0, 1
    if stop - start == 1:
        return start, stop, 1
    steps = np.diff(first[start:stop])
    if not (steps == steps[0]).all() or steps[0] < 1:
        return 0, 0, 1
    return start, stop, int(steps[0])


def _whole_rows(windows, width):
    """Whether the only window along ``w`` covers the whole row, tap after tap."""
    return bool(len(windows.first) == 1 and windows.first[0] == 0 and windows.taps[0] == width
                and (windows.step == 1 or width == 1))


def _reciprocal(windows):
    """``1 / divisor`` (inf for a zero divisor, so that 0 * inf gives NumPy's 0 / 0 = NaN)."""
    with np.errstate(divide="ignore"):
        return 1.0 / windows.divisor


def _thread_scratch(rows, width, dtype):
    """Scratch rows per thread, ``(threads, rows + 1, >= width)``, C-contiguous.

    The kernels use rows ``0 .. rows - 1``.  Every row starts on a cache
    line and the spare row keeps each thread's rows in lines of their own:
    two threads writing into one line measured 1.3x slower on C4's average
    pooling, and rows off the line boundary (vector stores straddling two
    lines) 1.3x slower again.
    """
    line = 64 // np.dtype(dtype).itemsize
    shape = (numba.get_num_threads(), rows + 1, -(-width // line) * line)
    size = int(np.prod(shape))
    buffer = np.empty(size + line, dtype=dtype)
    start = (-buffer.ctypes.data % 64) // buffer.itemsize
    return buffer[start:start + size].reshape(shape)


def _avg_scratch(width):
    scratch = _thread_scratch(4, width + 1, np.float64)
    scratch[:, 0, width] = 0.0  # read by _split_pairs for odd widths, never used
    return scratch


def _out_shape(x, windows):
    return x.shape[:2] + tuple(len(w.first) for w in windows)


def max_pool(x, windows):
    """Window maxima and the flat ``(d * H + h) * W + w`` index of each, as torch computes them.

    Parameters
    ----------
    x : ndarray, shape (N, C, D, H, W), float32 or float64, C-contiguous
    windows : tuple of 3 :class:`fastcorr.pool.Windows`
        One table per spatial dimension.

    Returns
    -------
    (ndarray, ndarray)
        Values of ``x``'s dtype and int64 indices, shape ``(N, C, Do, Ho, Wo)``.

    Examples
    --------
    >>> import numpy as np
    >>> from fastcorr.pool import Windows, _UNIT
    >>> from fastcorr.kernels.numba.pool import max_pool
    >>> row = Windows(np.array([0, 2]), np.array([2, 2]), 1, np.ones(2))
    >>> values, indices = max_pool(np.array([1.0, 3.0, 5.0, 4.0]).reshape(1, 1, 1, 1, 4),
    ...                            (_UNIT, _UNIT, row))
    >>> values.ravel(), indices.ravel()
    (array([3., 5.]), array([1, 2]))
    """
    return _max_pool_of(x, windows, True)


def max_pool_values(x, windows):
    """:func:`max_pool`'s values alone, without computing or storing any index.

    The same maxima (NaN for a window holding NaN), except that where
    ``+0.0`` and ``-0.0`` tie for a window's maximum either may come back:
    the index decides which one torch returns, and there is none here.
    ``max_pool2d`` without ``return_indices`` uses it: on C4's max k2 s2 it
    measured about 2.5x faster than :func:`max_pool` (see the module docstring).
    """
    return _max_pool_of(x, windows, False)[0]


def _max_pool_of(x, windows, with_indices):
    out_shape = _out_shape(x, windows)
    values = np.empty(out_shape, dtype=x.dtype)
    indices = np.empty(out_shape, dtype=np.int64) if with_indices else None
    if values.size == 0:
        return values, indices
    win_d, win_h, win_w = windows
    affine_start, affine_stop, stride_w = _affine_run(win_w)
    planes = out_shape[0] * out_shape[1]
    lifted = (planes,) + out_shape[2:]
    width = x.shape[4]
    scratch = _thread_scratch(3, width + 1, x.dtype)
    scratch[:, 0, width] = -np.inf  # read by _max_pairs for odd widths, never used
    index_scratch = _thread_scratch(2, width, np.int64) if with_indices else None
    _max_pool(x.reshape((planes,) + x.shape[2:]),
              win_d.first, win_d.taps, win_d.step, win_h.first, win_h.taps, win_h.step,
              win_w.first, win_w.taps, win_w.step, affine_start, affine_stop, stride_w,
              _whole_rows(win_w, width), values.reshape(lifted),
              None if indices is None else indices.reshape(lifted), scratch, index_scratch)
    return values, indices


def avg_pool(x, windows):
    """Window sums (in float64) divided by the product of the dimensions' divisors.

    Parameters and result as in :func:`max_pool`, values only.
    """
    out_shape = _out_shape(x, windows)
    out = np.empty(out_shape, dtype=x.dtype)
    if out.size == 0:
        return out
    win_d, win_h, win_w = windows
    affine_start, affine_stop, stride_w = _affine_run(win_w)
    planes = out_shape[0] * out_shape[1]
    _avg_pool(x.reshape((planes,) + x.shape[2:]),
              win_d.first, win_d.taps, win_d.step, _reciprocal(win_d),
              win_h.first, win_h.taps, win_h.step, _reciprocal(win_h),
              win_w.first, win_w.taps, win_w.step, _reciprocal(win_w),
              affine_start, affine_stop, stride_w, _whole_rows(win_w, x.shape[4]),
              out.reshape((planes,) + out_shape[2:]),
              _avg_scratch(x.shape[4]))
    return out


def global_avg_pool(x):
    """Mean of every ``(n, c)`` volume of a ``(N, C, D, H, W)`` array, summed in float64.

    Returns an ``(N, C)`` array of ``x``'s dtype; the front end's fallback,
    :func:`avg_pool` with one window, gives the same values a little slower.
    """
    return _pool_volumes(x, False)


def global_max_pool(x):
    """Maximum of every ``(n, c)`` volume of a ``(N, C, D, H, W)`` array (NaN if any is NaN).

    Returns an ``(N, C)`` array of ``x``'s dtype: :func:`max_pool` with one
    window, without computing the indices.
    """
    return _pool_volumes(x, True)


def _pool_volumes(x, maximum):
    out = np.empty(x.shape[:2], dtype=x.dtype)
    if out.size == 0:
        return out
    if x[0, 0].size == 0:
        raise Unsupported("x", "empty planes")  # the front end's fallback says what to do
    return _global_pool(x.reshape(out.size, -1), maximum, out.reshape(-1)).reshape(out.shape)


def max_pool_backward(grad_output, indices, in_spatial):
    """Each output's gradient added at its maximum's flat index in its plane.

    ``grad_output`` and ``indices`` are ``(N, C, Do, Ho, Wo)``; the result is
    ``(N, C, *in_spatial)`` of ``grad_output``'s dtype.
    """
    batch, channels = grad_output.shape[:2]
    grad_input = np.empty((batch, channels) + tuple(in_spatial), dtype=grad_output.dtype)
    planes = batch * channels
    if grad_input.size == 0:
        return grad_input
    if grad_output.size == 0:
        grad_input[...] = 0
        return grad_input
    _max_pool_backward(grad_output.reshape(planes, -1), indices.reshape(planes, -1),
                       grad_input.reshape(planes, -1), numba.get_num_threads())
    return grad_input


def avg_pool_backward(grad_output, windows, in_spatial):
    """Each output's gradient, divided by its divisor, added to every input of its window.

    ``grad_output`` is ``(N, C, Do, Ho, Wo)``; the result ``(N, C, *in_spatial)``.
    """
    batch, channels = grad_output.shape[:2]
    grad_input = np.empty((batch, channels) + tuple(in_spatial), dtype=grad_output.dtype)
    planes = batch * channels
    if grad_input.size == 0:
        return grad_input
    if grad_output.size == 0:
        grad_input[...] = 0
        return grad_input
    win_d, win_h, win_w = windows
    _avg_pool_backward(grad_output.reshape((planes,) + grad_output.shape[2:]),
                       win_d.first, win_d.taps, win_d.step, _reciprocal(win_d),
                       win_h.first, win_h.taps, win_h.step, _reciprocal(win_h),
                       win_w.first, win_w.taps, win_w.step, _reciprocal(win_w),
                       grad_input.reshape((planes,) + tuple(in_spatial)),
                       numba.get_num_threads())
    return grad_input
