"""'Valid' cross-correlation by FFT, shared by the backends that offer ``method='fft'``."""

from __future__ import annotations

import math

import numpy as np
import scipy.fft

from ._dispatch import get_num_threads

# The largest FFT grid transformed at once, in points.  A larger input is
# correlated in strips along its first axis (overlap-save), so the spectra
# stay bounded (BENCH.md C8: 8-16 MiB each) whatever the image size; a
# 1024 x 1024 image with a 31 x 31 kernel still takes one strip.
MAX_GRID_POINTS = 1 << 21


def correlate_fft(x: np.ndarray, kernel: np.ndarray, pad_width=None, fillvalue=0, *,
                  fft=scipy.fft) -> np.ndarray:
    """``out[i] = sum_j x[i + j] * kernel[j]`` over the 'valid' range, by FFT.

    ``pad_width`` ((before, after) per axis) pads ``x`` with ``fillvalue``
    first, strip by strip: the padded image is never made whole.  ``fft``
    is ``scipy.fft`` (threads from :func:`fastcorr.get_num_threads`, single
    precision kept) or ``numpy.fft`` (always double precision).  Integer
    inputs are rounded back to their dtype, as SciPy does.

    Examples
    --------
    >>> import numpy as np
    >>> from fastcorr._fft import correlate_fft
    >>> correlate_fft(np.arange(5.0), np.array([1.0, 2.0])).round(12)
    array([ 2.,  5.,  8., 11.])
    """
    if pad_width is None:
        pad_width = [(0, 0)] * x.ndim
    padded_shape = [n + before + after for n, (before, after) in zip(x.shape, pad_width)]
    out = np.empty(tuple(n - k + 1 for n, k in zip(padded_shape, kernel.shape, strict=True)),
                   dtype=x.dtype)
    if out.size == 0:
        return out
    # Correlation is convolution with the reversed kernel; the 'valid' part of
    # a circular convolution of length n is exact, so no extra padding is needed.
    trailing = tuple(scipy.fft.next_fast_len(n, real=True) for n in padded_shape[1:])
    strip_rows = max(kernel.shape[0], MAX_GRID_POINTS // math.prod(trailing))
    shape = (scipy.fft.next_fast_len(min(padded_shape[0], strip_rows), real=True),) + trailing
    out_rows = shape[0] - kernel.shape[0] + 1  # output rows per strip
    transforms = _Transforms(fft, shape, complex_=np.iscomplexobj(x) or np.iscomplexobj(kernel))
    kernel_spectrum = transforms.forward(kernel[(slice(None, None, -1),) * kernel.ndim])
    valid = tuple(slice(k - 1, k - 1 + n) for k, n in zip(kernel.shape[1:], out.shape[1:]))
    for first in range(0, out.shape[0], out_rows):
        rows = min(out_rows, out.shape[0] - first)
        strip = _padded_rows(x, first, first + rows + kernel.shape[0] - 1, pad_width, fillvalue)
        spectrum = transforms.forward(strip)
        spectrum *= kernel_spectrum
        strip = transforms.inverse(spectrum)[(slice(kernel.shape[0] - 1, None),) + valid][:rows]
        out[first:first + rows] = np.around(strip) if x.dtype.kind in "iu" else strip
    return out


def _padded_rows(x, start, stop, pad_width, fillvalue):
    """Rows ``[start, stop)`` of ``x`` padded as ``pad_width`` says, made for these rows only."""
    before = pad_width[0][0]
    first, last = max(start - before, 0), min(stop - before, x.shape[0])
    rows_pad = (max(before - start, 0), max(stop - before - x.shape[0], 0))
    strip_pad = [rows_pad] + list(pad_width[1:])
    if last <= first:  # padding rows only
        strip_shape = [stop - start] + [n + b + a for n, (b, a) in zip(x.shape[1:], pad_width[1:])]
        return np.full(strip_shape, fillvalue, dtype=x.dtype)
    if not any(b or a for b, a in strip_pad):
        return x[first:last]
    return np.pad(x[first:last], strip_pad, mode="constant", constant_values=fillvalue)


class _Transforms:
    """Forward and inverse N-d FFTs on one grid ``shape``: real or complex."""

    def __init__(self, fft, shape, complex_: bool):
        self.fft = fft
        self.shape = shape
        self.axes = tuple(range(len(shape)))
        self.complex = complex_
        self.options = {"workers": get_num_threads()} if fft is scipy.fft else {}

    def forward(self, array):
        transform = self.fft.fftn if self.complex else self.fft.rfftn
        return transform(array, self.shape, axes=self.axes, **self.options)

    def inverse(self, spectrum):
        transform = self.fft.ifftn if self.complex else self.fft.irfftn
        return transform(spectrum, self.shape, axes=self.axes, **self.options)
