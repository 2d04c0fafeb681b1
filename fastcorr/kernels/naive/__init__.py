"""The 'naive' backend: plain loops, the reference every other backend is tested against."""

from .correlate import (
    conv_forward,
    conv_transpose,
    conv_weight_grad,
    correlate_valid,
    fold,
    unfold,
)
from .norm import (
    axpby,
    dot_moments,
    layer_norm_backward,
    layer_normalize,
    moments,
    scale_shift,
)
from .pool import avg_pool, avg_pool_backward, max_pool, max_pool_backward

__all__ = [
    "avg_pool",
    "avg_pool_backward",
    "axpby",
    "conv_forward",
    "conv_transpose",
    "conv_weight_grad",
    "correlate_valid",
    "dot_moments",
    "fold",
    "layer_norm_backward",
    "layer_normalize",
    "max_pool",
    "max_pool_backward",
    "moments",
    "scale_shift",
    "unfold",
]
