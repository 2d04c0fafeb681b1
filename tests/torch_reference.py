"""torch as the reference of the network family, always computed in float64.

Each helper takes the fastcorr arguments and returns a NumPy float64 array; the
test decides the expected dtype (helpers.expected_net_dtype).  fastcorr's
padding extensions ('full', per-dimension (before, after) pairs) become an
explicit F.pad followed by an unpadded convolution; int/tuple/'valid'/'same'
paddings go to torch itself (F.conv*d for zeros, torch.nn.Conv*d for the other
padding modes) so that torch's own conventions are the reference.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from helpers import to_torch

# The references are tiny: one torch thread avoids its pool spinning against the
# kernels under test (and against other processes on a small machine).
torch.set_num_threads(1)

TORCH_PAD_MODES = {"zeros": "constant", "reflect": "reflect", "replicate": "replicate",
                   "circular": "circular"}


def as_tuple(value, n):
    return tuple(value) if isinstance(value, tuple | list) else (value,) * n


def is_pairs(padding) -> bool:
    return isinstance(padding, tuple | list) and any(isinstance(p, tuple | list) for p in padding)


def explicit_pairs(padding, kernel, dilation):
    """fastcorr's 'full' and pair paddings as (before, after) per spatial dimension."""
    if isinstance(padding, str) and padding == "full":
        return tuple((d * (k - 1), d * (k - 1)) for k, d in zip(kernel, dilation))
    if is_pairs(padding):
        return tuple(tuple(p) for p in padding)
    return None


def torch_pad(xt, pairs, padding_mode):
    """F.pad's argument order: last dimension first, (before, after) each."""
    flat = [v for pair in reversed(pairs) for v in pair]
    mode = TORCH_PAD_MODES[padding_mode]
    if mode == "constant":
        return F.pad(xt, flat, mode="constant", value=0.0)
    return F.pad(xt, flat, mode=mode)


def conv(dims, x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1,
         padding_mode="zeros"):
    """torch's conv{dims}d result for fastcorr's arguments, float64 NumPy."""
    xt, wt = to_torch(x), to_torch(weight)
    bt = None if bias is None else to_torch(bias)
    kernel = weight.shape[2:]
    stride_t = as_tuple(stride, dims)
    dilation_t = as_tuple(dilation, dims)
    functional = getattr(F, f"conv{dims}d")
    pairs = explicit_pairs(padding, kernel, dilation_t)
    with torch.no_grad():
        if pairs is not None:
            padded = torch_pad(xt, pairs, padding_mode)
            out = functional(padded, wt, bt, stride_t, 0, dilation_t, groups)
        elif padding_mode == "zeros":
            pad = padding if isinstance(padding, str) else as_tuple(padding, dims)
            out = functional(xt, wt, bt, stride_t, pad, dilation_t, groups)
        else:
            module = getattr(torch.nn, f"Conv{dims}d")(
                in_channels=weight.shape[1] * groups, out_channels=weight.shape[0],
                kernel_size=kernel, stride=stride_t,
                padding=padding if isinstance(padding, str) else as_tuple(padding, dims),
                dilation=dilation_t, groups=groups, bias=bias is not None,
                padding_mode=padding_mode, dtype=torch.float64,
            )
            module.weight.copy_(wt)
            if bias is not None:
                module.bias.copy_(bt)
            out = module(xt)
    return out.numpy()


def unfold(x, kernel_size, dilation=1, padding=0, stride=1):
    with torch.no_grad():
        return F.unfold(to_torch(x), kernel_size, dilation, padding, stride).numpy()


def fold(cols, output_size, kernel_size, dilation=1, padding=0, stride=1):
    with torch.no_grad():
        return F.fold(to_torch(cols), output_size, kernel_size, dilation, padding, stride).numpy()


def avg_pool2d(x, kernel_size, stride=None):
    with torch.no_grad():
        return F.avg_pool2d(to_torch(x), kernel_size, stride).numpy()


def output_size_of(dims, x_shape, weight_shape, **kwargs) -> tuple:
    """The spatial output shape torch gives (from a real convolution of zeros)."""
    x = np.zeros(x_shape)
    w = np.zeros(weight_shape)
    return conv(dims, x, w, **kwargs).shape[2:]
