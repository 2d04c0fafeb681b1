"""The 'numpy' backend: vectorised NumPy, temporaries the size of the output."""

from .correlate import conv_forward, correlate_fft, correlate_valid, fold, unfold
from .pool import avg_pool, avg_pool_backward, max_pool, max_pool_backward

__all__ = ["avg_pool", "avg_pool_backward", "conv_forward", "correlate_fft", "correlate_valid",
           "fold", "max_pool", "max_pool_backward", "unfold"]
