"""The numba backend: compiled CPU kernels (``@njit(parallel=True)``).

Entry points (see :mod:`fastcorr._dispatch` for the contract):
:func:`correlate_valid`, :func:`correlate_fft` (SciPy's FFT, shared),
:func:`conv_forward`, :func:`unfold`, :func:`fold`.

Importing this module compiles nothing; each kernel compiles on its first
call for the dtypes it meets, cached on disk where a cache directory is
writable (see :mod:`._jit`).
"""

from ..._fft import correlate_fft
from .conv import conv_forward
from .correlate import correlate_valid
from .im2col import fold, unfold

__all__ = ["conv_forward", "correlate_fft", "correlate_valid", "fold", "unfold"]
