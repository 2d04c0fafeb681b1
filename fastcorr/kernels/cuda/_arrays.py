"""Array operations on device arrays: what NumPy does for :mod:`fastcorr._arrays` on the host.

The front ends cast, copy, pad, reverse and re-view their data arrays before
and after the kernels run; for device arrays those steps are here, so that a
device input never leaves the device.  Views (a leading unit axis, a
transpose) are new headers on the same memory, zero-copy.  Everything else
writes a new C-contiguous device array, one thread per output element
(1-D grid of ``_device.THREADS_PER_BLOCK``):

* ``_gather``: ``out[o] = src[source(o)]`` on arrays lifted to ``MAX_NDIM``
  axes, the source index computed per axis from a mode: unchanged (a cast or
  a strided copy), reversed, or padded as ``numpy.pad`` pads ('constant'
  gives the fill value where the index leaves the array; 'edge', 'wrap',
  'reflect' and 'symmetric' fold it back in, periodically for pads longer
  than the axis, exactly as ``numpy.pad``).
* ``_unpad_axis``: the adjoint of padding along one axis (the gradient of
  'reflect', 'edge' or 'wrap' padding): each element sums the padded
  elements that copy it, in the order the host code adds them (from tables
  built on the host with ``numpy.pad`` itself).
* ``_copy_flat``, ``_conjugate_flat``, ``_divide_flat``, ``_add_channels``:
  element-wise.

Numba's real device arrays reshape only when contiguous and cannot be
sliced with negative steps (their data pointer would then be the lowest
address, not the first element); so the front ends reshape through
:func:`fastcorr._arrays.reshape` (a contiguous copy first where needed) and
reverse with :func:`flip`, never with ``[::-1]``.
"""

from __future__ import annotations

import itertools

import numpy as np
from numba import cuda, int64

from . import _device
from ._device import as_device, to_device  # noqa: F401 - for fastcorr._arrays

# Rank of the arrays the gather kernels index; device arrays of more axes are refused.
MAX_NDIM = 8
# Per-axis modes of _gather.
_CONSTANT, _EDGE, _WRAP, _REFLECT, _SYMMETRIC, _REVERSE = range(6)
_PAD_MODES = {"constant": _CONSTANT, "edge": _EDGE, "wrap": _WRAP, "reflect": _REFLECT,
              "symmetric": _SYMMETRIC}


@cuda.jit(device=True)
def _source(position, before, size, mode):
    """The index along an axis of ``size`` that output ``position`` copies, or -1 for the fill."""
    if mode == _REVERSE:
        return size - 1 - position
    offset = position - before
    if offset >= 0 and offset < size:
        return offset
    if mode == _EDGE:
        return 0 if offset < 0 else size - 1
    if mode == _WRAP:
        return offset % size  # Python's modulo: non-negative
    if mode == _REFLECT:  # mirrored without repeating the edge: period 2 * size - 2
        if size == 1:
            return 0
        folded = offset % (2 * size - 2)
        return folded if folded < size else 2 * size - 2 - folded
    if mode == _SYMMETRIC:  # mirrored with the edge repeated: period 2 * size
        folded = offset % (2 * size)
        return folded if folded < size else 2 * size - 1 - folded
    return -1


@cuda.jit(device=True)
def _locate(position, src, out, before, modes, index, target):
    """Fill ``target`` (``out``'s index of ``position``) and ``index`` (``src``'s); inside?"""
    rest = position
    inside = True
    for axis in range(MAX_NDIM - 1, -1, -1):
        length = out.shape[axis]
        target[axis] = rest % length
        rest //= length
        index[axis] = _source(target[axis], before[axis], src.shape[axis], modes[axis])
        if index[axis] < 0:
            inside = False
    return inside


@cuda.jit
def _gather(src, out, before, modes, fill):
    """One thread per element of ``out``: ``src`` at the source index, or ``fill``."""
    position = cuda.grid(1)
    if position >= out.size:
        return
    index = cuda.local.array(MAX_NDIM, int64)
    target = cuda.local.array(MAX_NDIM, int64)
    if _locate(position, src, out, before, modes, index, target):
        out[target[0], target[1], target[2], target[3], target[4], target[5], target[6],
            target[7]] = src[index[0], index[1], index[2], index[3], index[4], index[5],
                             index[6], index[7]]
    else:
        out[target[0], target[1], target[2], target[3], target[4], target[5], target[6],
            target[7]] = fill


@cuda.jit
def _copy_flat(src, out):
    """One thread per element of two 1-D arrays: a cast."""
    position = cuda.grid(1)
    if position < out.size:
        out[position] = src[position]


@cuda.jit
def _conjugate_flat(values):
    """One thread per element of a complex 1-D array: conjugated in place."""
    position = cuda.grid(1)
    if position < values.size:
        values[position] = values[position].conjugate()


@cuda.jit
def _divide_flat(src, divisor, out):
    """One thread per element of two 1-D arrays: ``src / divisor`` (IEEE: x / 0 is inf or nan)."""
    position = cuda.grid(1)
    if position < out.size:
        out[position] = src[position] / divisor


@cuda.jit
def _add_channels(x, values):
    """One thread per element of ``(N, C, S)`` ``x``: ``x[n, c, s] += values[c]`` in place."""
    position = cuda.grid(1)
    batch, channels, length = x.shape
    if position >= batch * channels * length:
        return
    rest, s = divmod(position, length)
    n, c = divmod(rest, channels)
    x[n, c, s] += values[c]


@cuda.jit
def _unpad_axis(src, offsets, positions, out):
    """``out[a, i, b] = sum(src[a, positions[k], b])`` over ``offsets[i] <= k < offsets[i + 1]``.

    In that order, starting from the first term, in ``src``'s dtype (as the
    host code adds).
    """
    position = cuda.grid(1)
    outer, length, inner = out.shape
    if position >= outer * length * inner:
        return
    rest, b = divmod(position, inner)
    a, i = divmod(rest, length)
    start = offsets[i]
    total = src[a, positions[start], b]
    for k in range(start + 1, offsets[i + 1]):
        total += src[a, positions[k], b]
    out[a, i, b] = total


def _header(array, shape, strides):
    """A numba device array of ``shape`` and ``strides`` (bytes) on ``array``'s memory."""
    from numba.cuda.cudadrv.devicearray import DeviceNDArray

    return DeviceNDArray(shape=tuple(shape), strides=tuple(strides), dtype=array.dtype,
                         stream=array.stream, gpu_data=array.gpu_data)


def _simulated(array) -> bool:
    """Whether ``array`` is the CUDA simulator's (a NumPy array inside, no ``gpu_data``)."""
    return not hasattr(array, "gpu_data")


def lift(array, ndim: int):
    """``array`` with leading axes of length 1 up to ``ndim`` axes, zero-copy."""
    extra = ndim - array.ndim
    if extra <= 0:
        return array
    shape = (1,) * extra + tuple(array.shape)
    if _simulated(array):  # NumPy inserts unit axes as a view, contiguous or not
        return array.reshape(shape)
    return _header(array, shape, (array.dtype.itemsize,) * extra + tuple(array.strides))


def transpose(array, axes):
    """``array`` with its axes permuted (``numpy.transpose``), zero-copy."""
    axes = tuple(int(a) for a in axes)
    if _simulated(array):
        return array.transpose(axes)
    return _header(array, [array.shape[a] for a in axes], [array.strides[a] for a in axes])


def _lifted(array):
    if array.ndim > MAX_NDIM:
        raise ValueError(f"device arrays of more than {MAX_NDIM} dimensions are not supported, "
                         f"got shape {tuple(array.shape)}")
    return lift(array, MAX_NDIM)


def _launch_gather(src, out, before, modes, fill):
    """Run the gather kernel from ``src`` into ``out`` (same ndim); ``out`` returned."""
    if out.size:
        extra = MAX_NDIM - src.ndim
        before = (0,) * extra + tuple(int(b) for b in before)
        modes = (_CONSTANT,) * extra + tuple(int(m) for m in modes)
        blocks, threads = _device.grid_1d(out.size)
        _gather[blocks, threads](_lifted(src), _lifted(out), before, modes,
                                out.dtype.type(fill))
    return out


def copy(array, dtype=None):
    """A C-contiguous copy of device array ``array``, cast to ``dtype`` (as ``astype``)."""
    dtype = array.dtype if dtype is None else np.dtype(dtype)
    out = _device.empty(array.shape, dtype)
    if array.is_c_contiguous() and out.size:
        blocks, threads = _device.grid_1d(out.size)
        _copy_flat[blocks, threads](array.reshape(array.size), out.reshape(out.size))
        return out
    return _launch_gather(array, out, (0,) * array.ndim, (_CONSTANT,) * array.ndim, 0)


def assign(target, values) -> None:
    """``target[...] = values`` in place, for a device ``target`` of any layout.

    ``values`` (host or device) has ``target``'s shape; it is cast to its dtype.
    """
    _launch_gather(_device.to_device(values), target, (0,) * target.ndim,
                   (_CONSTANT,) * target.ndim, 0)


def flip(array):
    """``array`` reversed along every axis, as a C-contiguous copy."""
    out = _device.empty(array.shape, array.dtype)
    return _launch_gather(array, out, (0,) * array.ndim, (_REVERSE,) * array.ndim, 0)


def conj(array):
    """The complex conjugate of complex ``array``, as a C-contiguous copy."""
    out = copy(array)
    if out.size:
        blocks, threads = _device.grid_1d(out.size)
        _conjugate_flat[blocks, threads](out.reshape(out.size))
    return out


def pad(array, pad_width, mode: str, fill=0):
    """``numpy.pad(array, pad_width, mode)`` on the device.

    ``pad_width`` holds a ``(before, after)`` pair per axis; ``mode`` is one
    of 'constant' (with ``fill``), 'edge', 'wrap', 'reflect', 'symmetric'.
    """
    if mode not in _PAD_MODES:
        raise ValueError(f"pad: mode must be one of {', '.join(map(repr, _PAD_MODES))}, "
                         f"got {mode!r}")
    shape = tuple(n + int(b) + int(a) for n, (b, a) in zip(array.shape, pad_width, strict=True))
    out = _device.empty(shape, array.dtype)
    return _launch_gather(array, out, [b for b, _ in pad_width],
                          (_PAD_MODES[mode],) * array.ndim, fill)


def _unpad_tables(before: int, size: int, after: int, mode: str):
    """``(offsets, positions)``: per index of the unpadded axis, the padded positions copying it.

    Index ``i``'s positions are ``positions[offsets[i]:offsets[i + 1]]``: its
    own, then the border positions in increasing order, as
    :func:`fastcorr._arrays.pad_adjoint` adds them on the host.
    ``numpy.pad`` of the indices says which element each position copies.
    """
    source = np.pad(np.arange(size), (before, after), mode=mode)
    copies = [[before + i] for i in range(size)]
    for position in itertools.chain(range(before), range(before + size, len(source))):
        copies[source[position]].append(position)
    offsets = np.cumsum([0] + [len(c) for c in copies], dtype=np.int64)
    return offsets, np.array([p for c in copies for p in c], dtype=np.int64)


def pad_adjoint(array, pad_width, mode: str):
    """The adjoint of :func:`pad` (mode 'constant', 'edge', 'wrap', 'reflect' or 'symmetric').

    Axis by axis, as :func:`fastcorr._arrays.pad_adjoint`: 'constant' keeps
    the inner part (a view), the other modes add each padded element onto
    the element it copies.  The result is C-contiguous.
    """
    result = array
    for axis, (before, after) in enumerate(pad_width):
        before, after = int(before), int(after)
        if before == after == 0:
            continue
        size = result.shape[axis] - before - after
        if mode == "constant":
            result = result[(slice(None),) * axis + (slice(before, before + size),)]
            continue
        offsets, positions = _unpad_tables(before, size, after, mode)
        source = copy(result) if not result.is_c_contiguous() else result
        outer = int(np.prod(source.shape[:axis], dtype=np.int64))
        inner = int(np.prod(source.shape[axis + 1:], dtype=np.int64))
        out = _device.empty(source.shape[:axis] + (size,) + source.shape[axis + 1:],
                            source.dtype)
        if out.size:
            blocks, threads = _device.grid_1d(out.size)
            _unpad_axis[blocks, threads](
                source.reshape((outer, source.shape[axis], inner)), _device.to_device(offsets),
                _device.to_device(positions), out.reshape((outer, size, inner)))
        result = out
    return result if result.is_c_contiguous() else copy(result)


def divide(array, divisor, dtype):
    """``(array / divisor).astype(dtype)`` of a C-contiguous device array, as a new array."""
    out = _device.empty(array.shape, dtype)
    if out.size:
        blocks, threads = _device.grid_1d(out.size)
        _divide_flat[blocks, threads](array.reshape(array.size), np.float64(divisor),
                                      out.reshape(out.size))
    return out


def add_channels(array, values) -> None:
    """``array += values`` per channel (axis 1) in place; ``array`` C-contiguous ``(N, C, ...)``.

    ``values`` (host or device, ``(C,)``) is cast to ``array``'s dtype first,
    as on the host.
    """
    if not array.size:
        return
    if _device.is_device_array(values):
        values = values if values.dtype == array.dtype else copy(values, array.dtype)
    else:
        values = _device.to_device(np.asarray(values, dtype=array.dtype))
    shape = tuple(array.shape)
    blocks, threads = _device.grid_1d(array.size)
    _add_channels[blocks, threads](array.reshape((shape[0], shape[1], -1)), values)
