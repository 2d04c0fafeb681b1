"""The array operations the front ends do on data arrays, for host and device arrays alike.

Front ends check their inputs, then cast, copy, pad, reverse and re-view
them before and after the kernels run.  Each such step is a function here:
NumPy arrays go to NumPy, GPU device arrays to views and small
``numba.cuda`` kernels (:mod:`fastcorr.kernels.cuda._arrays`), so that a
device input stays on the device from the public function to its result.
``numba.cuda`` is imported only when a device array is seen: importing
fastcorr never loads it.

Device arrays are anything with ``__cuda_array_interface__`` (numba device
arrays, CuPy arrays, torch CUDA tensors) and numba's CUDA simulator arrays.
A call of a public function with one among its arguments (see
:func:`device_aware`, which wraps every public function):

* runs on the cuda backend: ``'auto'`` picks it, and an explicit CPU
  backend (``'numba'``, ``'numpy'``, ...) raises a TypeError naming the
  parameter, rather than copying the data to the host;
* uses device inputs in place: :func:`fastcorr._checks.as_array` gives a
  numba device array on the same memory (zero-copy);
* copies host arrays that come with them (weights, bias, a template, a
  second operand) to the device, where the kernel that reads them runs, on
  every call; where the main input (``x``, ``in1``, ``image``) is the host
  one, the kernels work from host copies and the result is copied to the
  device at the end (:func:`like_input`);
* returns device arrays of the library of the first device argument: CuPy
  in, CuPy out; a torch CUDA tensor in, torch tensors out; numba (or the
  simulator's) device arrays otherwise.

What crosses between host and device in such a call is small: the
per-channel statistics of batch, instance and group norm (``C``, ``N * C``
or ``N * G`` numbers; one per row for layer norm), brought to the host for
a few arithmetic steps, their results sent back; those norms' per-channel
``weight`` and ``bias``; running statistics, read and written back in place
(:func:`assign`); pooling window tables; the weight of
:func:`fastcorr.conv_matrix`, whose result is a host SciPy sparse matrix.
Never an array the size of the data (tests/test_cuda_device.py counts).
"""

from __future__ import annotations

import functools
import inspect

import numpy as np

from . import _dispatch


def is_device(value) -> bool:
    """Whether ``value`` is a GPU device array (``__cuda_array_interface__``, or simulated).

    Looks at attributes only: imports nothing, copies nothing.

    Examples
    --------
    >>> import numpy as np
    >>> is_device(np.ones(3)), is_device([1.0, 2.0])
    (False, False)
    """
    if type(value) is np.ndarray:  # the common case, first
        return False
    return hasattr(value, "__cuda_array_interface__") or bool(
        getattr(value, "__cuda_ndarray__", False))


def _kernels():
    """:mod:`fastcorr.kernels.cuda._arrays`, imported on first use (it imports numba.cuda)."""
    from .kernels.cuda import _arrays

    return _arrays


def as_device(value):
    """A numba device array on the memory of device array ``value`` (zero-copy)."""
    return _kernels().as_device(value)


def asarray(array, dtype=None):
    """``array`` of ``dtype`` (a copy only where the dtype changes), like ``np.asarray``."""
    if is_device(array):
        if dtype is None or array.dtype == np.dtype(dtype):
            return array
        return _kernels().copy(array, dtype)
    return np.asarray(array, dtype=dtype)


def ascontiguousarray(array, dtype=None):
    """``array`` C-contiguous and of ``dtype`` (a copy only where needed)."""
    if is_device(array):
        if (dtype is None or array.dtype == np.dtype(dtype)) and array.is_c_contiguous():
            return array
        return _kernels().copy(array, dtype)
    return np.ascontiguousarray(array, dtype=dtype)


def reshape(array, shape):
    """``array.reshape(shape)``; a non-contiguous device array is made contiguous first.

    (NumPy copies where a view cannot have the new shape; numba's device
    arrays reshape only when contiguous.)
    """
    if is_device(array):
        return ascontiguousarray(array).reshape(tuple(shape))
    return array.reshape(shape)


def new_axis(array):
    """``array[np.newaxis]``: a view with a leading axis of length 1."""
    if is_device(array):
        return _kernels().lift(array, array.ndim + 1)
    return array[np.newaxis]


def transpose(array, axes):
    """``np.transpose(array, axes)``: a view with the axes permuted."""
    if is_device(array):
        return _kernels().transpose(array, axes)
    return np.transpose(array, axes)


def flip(array):
    """``array`` reversed along every axis (a view on the host, a copy on the device)."""
    if is_device(array):
        return _kernels().flip(array)
    return array[(slice(None, None, -1),) * array.ndim]


def conj(array):
    """``np.conj(array)``: the complex conjugate (a device array of reals is returned as is)."""
    if is_device(array):
        return _kernels().conj(array) if array.dtype.kind == "c" else array
    return np.conj(array)


def pad(array, pad_width, mode: str = "constant", constant_values=0):
    """``np.pad(array, pad_width, mode)``, on the device for a device array.

    Parameters
    ----------
    array : ndarray or device array
    pad_width : sequence of (int, int)
        A ``(before, after)`` pair per axis.
    mode : {'constant', 'edge', 'wrap', 'reflect', 'symmetric'}, default 'constant'
        As ``numpy.pad``, pads longer than the axis included.
    constant_values : scalar, default 0
        The fill of 'constant'.

    Returns
    -------
    ndarray or device array
        A new array, like ``array``.

    Examples
    --------
    >>> import numpy as np
    >>> pad(np.array([1, 2, 3]), [(2, 1)], "reflect")
    array([3, 2, 1, 2, 3, 2])
    """
    if is_device(array):
        return _kernels().pad(array, pad_width, mode, constant_values)
    if mode == "constant":
        return np.pad(array, pad_width, mode=mode, constant_values=constant_values)
    return np.pad(array, pad_width, mode=mode)


def pad_adjoint(array, pad_width, mode: str):
    """The adjoint of :func:`pad`: each padded cell's value goes back to the cell it copies.

    ``array`` is a padded array's gradient; the result has the unpadded
    shape.  ``numpy.pad`` pads one axis after the other, and in its 'reflect',
    'edge', 'wrap' and 'symmetric' modes padded cell ``(i, j)`` copies cell
    ``(source0[i], source1[j])``; so the adjoint runs axis by axis: the
    inner part, plus each border slice added onto the slice it copies.  In
    'constant' mode the border is dropped.

    Parameters
    ----------
    array : ndarray or device array
        The gradient with respect to the padded array.
    pad_width : sequence of (int, int)
        The padding, a ``(before, after)`` pair per axis.
    mode : {'constant', 'edge', 'wrap', 'reflect', 'symmetric'}

    Returns
    -------
    ndarray or device array
        The gradient with respect to the unpadded array; a device result is
        C-contiguous, a host one may be a view of ``array``.

    Examples
    --------
    >>> import numpy as np
    >>> np.pad(np.array([1, 2, 3]), [(2, 1)], "reflect")
    array([3, 2, 1, 2, 3, 2])
    >>> pad_adjoint(np.ones(6), [(2, 1)], "reflect")   # how often each cell was copied
    array([1., 3., 2.])
    """
    if is_device(array):
        return _kernels().pad_adjoint(array, pad_width, mode)
    result = array
    for axis, (before, after) in enumerate(pad_width):
        if before == after == 0:
            continue
        size = result.shape[axis] - before - after
        lead = (slice(None),) * axis
        inner = result[lead + (slice(before, before + size),)]
        if mode == "constant":
            result = inner
            continue
        source = np.pad(np.arange(size), (before, after), mode=mode)
        out = inner.copy()
        for index in (*range(before), *range(before + size, len(source))):
            out[lead + (source[index],)] += result[lead + (index,)]
        result = out
    return result


def add_channels(array, values) -> None:
    """``array += values`` along axis 1 (one value per channel), in place.

    ``values`` is cast to ``array``'s dtype first.
    """
    if is_device(array):
        _kernels().add_channels(array, values)
        return
    array += np.asarray(values).astype(array.dtype).reshape((1, -1) + (1,) * (array.ndim - 2))


def divide(array, divisor, dtype):
    """``(array / divisor).astype(dtype)``; division by 0 gives inf or nan, silently."""
    if is_device(array):
        return _kernels().divide(ascontiguousarray(array), divisor, dtype)
    with np.errstate(divide="ignore", invalid="ignore"):
        return (array / divisor).astype(dtype, copy=False)


def to_host(array) -> np.ndarray:
    """A NumPy array of ``array``: a copy of a device array, ``array`` itself on the host.

    For small arrays only (per-channel statistics, parameters).
    """
    if is_device(array):
        return as_device(array).copy_to_host()
    return array


def assign(target, values) -> None:
    """``target[...] = values`` in place (a device ``target`` of any layout, too)."""
    if is_device(target):
        _kernels().assign(as_device(target), values)
    elif values is not target:
        target[...] = values


def _library_of(array):
    """The top-level module of ``array``'s type: 'cupy', 'torch', 'numba', ..."""
    return type(array).__module__.partition(".")[0]


def like_input(result, first):
    """``result`` of a call whose first device argument was ``first``, in its library.

    Parameters
    ----------
    result : array, tuple, None or other
        What the public function returned: arrays, tuples of arrays and
        None (masked gradients), or a SciPy sparse matrix.
    first : device array
        The call's first device argument.  Its type's module says the
        library: ``cupy`` (``cupy.asarray``), ``torch`` (``torch.as_tensor``
        on ``first.device``), else numba's device arrays as they are.

    Returns
    -------
    The same structure: tuples converted element by element, None and
    non-arrays as they are.  Device arrays are wrapped, not copied (CuPy and
    torch read the numba array's ``__cuda_array_interface__``); host (NumPy)
    arrays, the small per-channel results computed on the host or the result
    of a call whose main input was on the host, are copied to the device.
    """
    if isinstance(result, tuple):
        return tuple(like_input(part, first) for part in result)
    if is_device(result):
        array = result
    elif isinstance(result, np.ndarray):
        array = _kernels().to_device(result)
    else:
        return result
    library = _library_of(first)
    if library == "cupy":
        import cupy

        return cupy.asarray(array)
    if library == "torch":
        import torch

        return torch.as_tensor(array, device=first.device)
    return array


@functools.cache
def _parameter_names(function) -> tuple:
    return tuple(inspect.signature(function).parameters)


def _first_device(function, args, kwargs):
    """``(name, value)`` of the first device array among the arguments, or None."""
    names = _parameter_names(function)
    for name, value in (*zip(names, args), *kwargs.items()):
        if is_device(value):
            return name, value
    return None


def device_aware(function):
    """Wrap public function ``function`` for device arrays (see the module docstring).

    Parameters
    ----------
    function : callable
        A public function with a keyword-only ``backend`` parameter.

    Returns
    -------
    callable
        ``function`` itself for a call without device arrays (one attribute
        test per argument).  A call with some runs it with
        ``backend='cuda'``, after :func:`fastcorr._dispatch.device_backend`
        has accepted the backend in force (or raised), and returns its
        results through :func:`like_input`.

    Examples
    --------
    >>> import numpy as np
    >>> @device_aware
    ... def total(x, *, backend=None):
    ...     return np.asarray(x).sum()
    >>> int(total(np.arange(4)))   # host arrays: the function as it is
    6
    """
    name = function.__name__

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        if not any(map(is_device, args)) and not any(map(is_device, kwargs.values())):
            return function(*args, **kwargs)
        parameter, first = _first_device(function, args, kwargs)
        kwargs["backend"] = _dispatch.device_backend(kwargs.get("backend"), name, parameter)
        return like_input(function(*args, **kwargs), first)

    return wrapper
