"""'Valid' cross-correlation by FFT, shared by the backends that offer ``method='fft'``."""

from __future__ import annotations

import numpy as np
import scipy.fft

from ._dispatch import get_num_threads


def correlate_fft(x: np.ndarray, kernel: np.ndarray, fft=scipy.fft) -> np.ndarray:
    """``out[i] = sum_j x[i + j] * kernel[j]`` over the 'valid' range, by FFT.

    ``fft`` is ``scipy.fft`` (threads from :func:`fastcorr.get_num_threads`,
    single precision kept) or ``numpy.fft`` (always double precision).
    Integer inputs are rounded back to their dtype, as SciPy does.
    """
    out_shape = tuple(n - k + 1 for n, k in zip(x.shape, kernel.shape, strict=True))
    axes = tuple(range(x.ndim))
    # Correlation is convolution with the reversed kernel; the 'valid' part of
    # a circular convolution of length n is exact, so no extra padding is needed.
    shape = tuple(scipy.fft.next_fast_len(n, real=True) for n in x.shape)
    reversed_kernel = kernel[(slice(None, None, -1),) * kernel.ndim]
    options = {"workers": get_num_threads()} if fft is scipy.fft else {}
    if np.iscomplexobj(x) or np.iscomplexobj(kernel):
        spectrum = fft.fftn(x, shape, axes=axes, **options)
        spectrum *= fft.fftn(reversed_kernel, shape, axes=axes, **options)
        full = fft.ifftn(spectrum, shape, axes=axes, **options)
    else:
        spectrum = fft.rfftn(x, shape, axes=axes, **options)
        spectrum *= fft.rfftn(reversed_kernel, shape, axes=axes, **options)
        full = fft.irfftn(spectrum, shape, axes=axes, **options)
    valid = full[tuple(slice(k - 1, k - 1 + n) for k, n in zip(kernel.shape, out_shape,
                                                               strict=True))]
    if x.dtype.kind in "iu":
        valid = np.around(valid)
    return valid.astype(x.dtype, copy=False)
