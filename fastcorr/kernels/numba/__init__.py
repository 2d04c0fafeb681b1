"""The numba backend: compiled CPU kernels (``@njit(parallel=True)``).

Entry points (see :mod:`fastcorr._dispatch` for the contract), by family:

* correlation: :func:`correlate_valid`, :func:`correlate_fft` (SciPy's FFT,
  shared, in strips of bounded size);
* convolution: :func:`conv_forward`, :func:`unfold`, :func:`fold`, and the
  adjoints :func:`conv_transpose`, :func:`conv_weight_grad`;
* pooling: :func:`max_pool`, :func:`avg_pool` and their backward;
* normalisation: :func:`moments`, :func:`dot_moments`, :func:`scale_shift`,
  :func:`axpby`, :func:`layer_normalize`, :func:`layer_norm_backward`.

Fused forms that only this backend has (the front ends fall back to the
plain entry points elsewhere): :func:`correlate_padded` and
``correlate_fft_padded`` (constant padding tile by tile, strip by strip);
:func:`conv_transpose_cropped`, :func:`conv_weight_grad_padded`,
:func:`conv_bias_grad`, :func:`conv_transpose_cropped_bias` (the gradients
of a padded convolution without the padded copies, the bias gradient
summed during the transposed convolution's pass); :func:`global_avg_pool`,
:func:`global_max_pool`, :func:`max_pool_values` (values only, no indices);
``standardize(x, group, eps, weight, bias) -> (y, mean, var)`` and
``standardize_backward(dy, x, group, eps, weight) -> (grad_input, sum_dy,
sum_dy_xhat)`` (statistics per group of ``group`` consecutive slices of a
``(P, Q, S)`` view, affine per slice: batch, instance and group norm),
``layer_standardize(x, eps, weight, bias) -> y`` and
``layer_standardize_backward(dy, x, eps, weight) -> (grad_input,
grad_weight, grad_bias)`` (layer norm over the rows of ``(R, M)``).

Importing this module compiles nothing; each kernel compiles on its first
call for the dtypes it meets, cached on disk where a cache directory is
writable (see :mod:`._jit`).
"""

from ..._fft import correlate_fft
from ..._fft import correlate_fft as correlate_fft_padded
from .conv import conv_forward
from .correlate import correlate_padded, correlate_valid
from .grad import (
    conv_bias_grad,
    conv_transpose,
    conv_transpose_cropped,
    conv_transpose_cropped_bias,
    conv_weight_grad,
    conv_weight_grad_padded,
)
from .im2col import fold, unfold
from .norm import (
    axpby,
    dot_moments,
    layer_norm_backward,
    layer_normalize,
    layer_standardize,
    layer_standardize_backward,
    moments,
    scale_shift,
    standardize,
    standardize_backward,
)
from .pool import (
    avg_pool,
    avg_pool_backward,
    global_avg_pool,
    global_max_pool,
    max_pool,
    max_pool_backward,
    max_pool_values,
)

__all__ = [
    "avg_pool",
    "avg_pool_backward",
    "axpby",
    "conv_forward",
    "conv_bias_grad",
    "conv_transpose",
    "conv_transpose_cropped",
    "conv_transpose_cropped_bias",
    "conv_weight_grad",
    "conv_weight_grad_padded",
    "correlate_fft",
    "correlate_fft_padded",
    "correlate_padded",
    "correlate_valid",
    "dot_moments",
    "fold",
    "global_avg_pool",
    "global_max_pool",
    "layer_norm_backward",
    "layer_normalize",
    "layer_standardize",
    "layer_standardize_backward",
    "max_pool",
    "max_pool_backward",
    "max_pool_values",
    "moments",
    "scale_shift",
    "standardize",
    "standardize_backward",
    "unfold",
]
