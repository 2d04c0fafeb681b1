"""FFT correlation on the GPU: through CuPy's cuFFT where CuPy is installed, else direct.

numba.cuda has no FFT of its own, and writing one is not this library's
job; CuPy brings NVIDIA's cuFFT.  Where CuPy cannot be imported (or numba's
CUDA simulator runs, which CuPy cannot read), ``method='fft'`` runs the
direct kernel, which gives the same result.
"""

from __future__ import annotations

import functools
import importlib

from . import _device
from .correlate import correlate_valid


@functools.cache
def _cupy():
    """``(cupy, cupyx.scipy.signal)``, or None where CuPy is absent or unusable here."""
    if _device._simulated():
        return None
    try:
        return importlib.import_module("cupy"), importlib.import_module("cupyx.scipy.signal")
    except Exception:  # noqa: BLE001 - missing, or installed without a usable CUDA
        return None


def correlate_fft(x, kernel):
    """'valid' correlation ``sum_j x[i + j] * kernel[j]`` (no conjugation), by FFT.

    Through ``cupyx.scipy.signal.correlate(method='fft')`` on the device
    arrays, zero-copy both ways (``__cuda_array_interface__``); without
    CuPy, :func:`correlate_valid`.  SciPy's and CuPy's ``correlate``
    conjugate their second operand: the kernel is conjugated first, so that
    the two cancel.
    """
    libraries = _cupy()
    if libraries is None:
        return correlate_valid(x, kernel)
    cupy, signal = libraries
    x_gpu = cupy.asarray(_device.to_device(x))
    kernel_gpu = cupy.asarray(_device.to_device(kernel))
    if kernel_gpu.dtype.kind == "c":
        kernel_gpu = cupy.conj(kernel_gpu)
    out = signal.correlate(x_gpu, kernel_gpu, mode="valid", method="fft")
    return _device.finish(_device.to_device(out.astype(x.dtype, copy=False)), x)
