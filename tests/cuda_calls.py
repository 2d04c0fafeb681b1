"""A representative call of every public function, for the cuda backend's tests.

``CALLS`` maps a case name to ``(function, args, kwargs)`` on tiny inputs
(modes, boundaries, padding modes, masks, running statistics, unbatched
inputs), so that a test can run the same call on host arrays
(tests/test_cuda_api.py, against the naive backend) or with its arrays on
the device (tests/test_cuda_device.py).  Shapes are tiny because CI runs
the kernels on numba's CUDA simulator, one Python thread per GPU thread.
"""

from __future__ import annotations

import numpy as np
from helpers import random_array

import fastcorr

_rng = np.random.default_rng(20261124)
X1 = random_array(_rng, (9,), np.float64)
K1 = random_array(_rng, (3,), np.float64)
IMAGE = random_array(_rng, (6, 7), np.float64)
KERNEL = random_array(_rng, (3, 2), np.float64)
BATCH = random_array(_rng, (2, 4, 5, 6), np.float64)        # (N, C, H, W)
WEIGHT = random_array(_rng, (6, 2, 3, 2), np.float64)       # groups=2
BIAS = random_array(_rng, (6,), np.float64)
GRAD = random_array(_rng, (2, 6, 3, 7), np.float64)         # conv2d(BATCH, WEIGHT, s=(2,1), p=1)
PARAMS = random_array(_rng, (4,), np.float64)
COLS = random_array(_rng, (2, 8, 14), np.float64)       # fold((5, 6), (2, 2), p=(0, 1), s=(2, 1))
COLS2 = random_array(_rng, (2, 16, 20), np.float64)     # col2im((5, 6), 2)
POOLED = random_array(_rng, (2, 4, 3, 3), np.float64)   # max/avg_pool2d(BATCH, 3, 2, p=1)

CALLS = {
    "correlate": (fastcorr.correlate, (X1, K1), {"mode": "same"}),
    "correlate-fft": (fastcorr.correlate, (X1, K1), {"method": "fft"}),
    "convolve": (fastcorr.convolve, (X1, K1), {}),
    "convolve-valid-swapped": (fastcorr.convolve, (K1, X1), {"mode": "valid"}),
    "correlate-3d": (fastcorr.correlate, (BATCH[0, :3], KERNEL[None]), {"mode": "valid"}),
    "correlate-int": (fastcorr.correlate, (np.arange(6), np.array([1, -2])), {}),
    "correlate-bool": (fastcorr.correlate, (X1 > 0, K1 > 0), {}),
    "correlate-complex": (fastcorr.correlate, (X1 + 1j * X1[::-1], K1 - 2j), {}),
    "correlate-complex-swapped": (fastcorr.correlate, (K1 - 2j, X1 + 1j * X1[::-1]),
                                  {"mode": "valid"}),
    "correlate2d-fill": (fastcorr.correlate2d, (IMAGE, KERNEL), {"fillvalue": 0.5}),
    "correlate2d-wrap": (fastcorr.correlate2d, (IMAGE, KERNEL, "same", "wrap"), {}),
    "correlate2d-valid-swapped": (fastcorr.correlate2d, (KERNEL, IMAGE, "valid"), {}),
    "convolve2d-symm": (fastcorr.convolve2d, (IMAGE, KERNEL, "full", "symm"), {}),
    "convolve2d-valid": (fastcorr.convolve2d, (IMAGE, KERNEL, "valid"), {}),
    "match_template": (fastcorr.match_template, (IMAGE, IMAGE[1:4, 2:4]), {}),
    "match_template-padded": (fastcorr.match_template, (IMAGE, KERNEL), {"pad_input": True}),
    "conv1d": (fastcorr.conv1d, (BATCH[:, :, 0], WEIGHT[:, :, 0], BIAS),
               {"stride": 2, "padding": 1, "groups": 2}),
    "conv2d": (fastcorr.conv2d, (BATCH, WEIGHT, BIAS),
               {"stride": (2, 1), "padding": 1, "groups": 2}),
    "conv2d-dilated-reflect": (fastcorr.conv2d, (BATCH[0], WEIGHT[:, :, :2], None),
                               {"padding": (1, 2), "dilation": (2, 1), "groups": 2,
                                "padding_mode": "reflect"}),
    "conv3d": (fastcorr.conv3d, (BATCH.reshape(1, 4, 2, 5, 6), WEIGHT[:, :, None].repeat(2, 2)),
               {"padding": "same", "groups": 2}),
    "unfold": (fastcorr.unfold, (BATCH, (2, 3)),
               {"dilation": (1, 2), "padding": 1, "stride": (2, 1)}),
    "fold": (fastcorr.fold, (COLS, (5, 6), (2, 2)), {"padding": (0, 1), "stride": (2, 1)}),
    "im2col": (fastcorr.im2col, (BATCH, 2), {}),
    "col2im": (fastcorr.col2im, (COLS2[0], (5, 6), 2), {}),
    "conv_matrix": (fastcorr.conv_matrix, (KERNEL, (4, 5)), {"stride": 2, "padding": 1}),
    "conv_transpose2d": (fastcorr.conv_transpose2d, (GRAD, WEIGHT, BIAS[:4]),
                         {"stride": (2, 1), "padding": 1, "output_padding": (1, 0),
                          "groups": 2}),
    "conv2d_backward": (fastcorr.conv2d_backward, (GRAD, BATCH, WEIGHT),
                        {"stride": (2, 1), "padding": 1, "groups": 2}),
    "conv2d_backward-circular": (fastcorr.conv2d_backward, (GRAD, BATCH, WEIGHT),
                                 {"stride": (2, 1), "padding": 1, "groups": 2,
                                  "padding_mode": "circular",
                                  "output_mask": (True, True, False)}),
    "max_pool1d": (fastcorr.max_pool1d, (BATCH[:, :, 0], 2), {"return_indices": True}),
    "max_pool2d": (fastcorr.max_pool2d, (BATCH, 3, 2),
                   {"padding": 1, "dilation": (1, 2), "ceil_mode": True,
                    "return_indices": True}),
    "avg_pool1d": (fastcorr.avg_pool1d, (BATCH[:, :, 0], 3, 2),
                   {"padding": 1, "count_include_pad": False}),
    "avg_pool2d": (fastcorr.avg_pool2d, (BATCH, 2, 1),
                   {"ceil_mode": True, "divisor_override": 3}),
    "adaptive_avg_pool2d": (fastcorr.adaptive_avg_pool2d, (BATCH, (3, 4)), {}),
    "adaptive_max_pool2d": (fastcorr.adaptive_max_pool2d, (BATCH[0], 4, True), {}),
    "global_avg_pool2d": (fastcorr.global_avg_pool2d, (BATCH,), {}),
    "global_max_pool2d": (fastcorr.global_max_pool2d, (BATCH[1],), {}),
    "max_pool2d_backward": (fastcorr.max_pool2d_backward, (POOLED, BATCH, 3, 2),
                            {"padding": 1}),
    "avg_pool2d_backward": (fastcorr.avg_pool2d_backward, (POOLED, BATCH, 3, 2),
                            {"padding": 1, "count_include_pad": False}),
    "moments": (fastcorr.moments, (BATCH, (0, 2, 3)), {"ddof": 1}),
    "moments-moved-axes": (fastcorr.moments, (BATCH, (1, 3)), {}),
    "batch_norm": (fastcorr.batch_norm, (BATCH,),
                   {"weight": PARAMS, "bias": -PARAMS, "training": True}),
    "batch_norm-eval": (fastcorr.batch_norm, (BATCH, PARAMS ** 2, PARAMS ** 2 + 1, PARAMS), {}),
    "layer_norm": (fastcorr.layer_norm, (BATCH, (5, 6), BATCH[0, 0]), {}),
    "instance_norm": (fastcorr.instance_norm, (BATCH,), {"weight": PARAMS}),
    "instance_norm-eval": (fastcorr.instance_norm, (BATCH, PARAMS, PARAMS ** 2 + 1),
                           {"use_input_stats": False}),
    "group_norm": (fastcorr.group_norm, (BATCH, 2, PARAMS, PARAMS), {}),
    "batch_norm_backward": (fastcorr.batch_norm_backward, (BATCH[::-1], BATCH),
                            {"weight": PARAMS, "training": True}),
    "batch_norm_backward-eval": (fastcorr.batch_norm_backward,
                                 (BATCH[::-1], BATCH, PARAMS, PARAMS ** 2 + 1),
                                 {"bias": PARAMS}),
    "layer_norm_backward": (fastcorr.layer_norm_backward,
                            (BATCH[::-1], BATCH, (5, 6), BATCH[0, 0], BATCH[1, 1]), {}),
    "instance_norm_backward": (fastcorr.instance_norm_backward, (BATCH[::-1], BATCH),
                               {"weight": PARAMS}),
    "group_norm_backward": (fastcorr.group_norm_backward,
                            (BATCH[::-1], BATCH, 2, PARAMS, PARAMS), {}),
}


def call(case: str, **kwargs):
    """Run case ``case`` (``kwargs``: ``backend=``)."""
    function, args, options = CALLS[case]
    return function(*args, **options, **kwargs)


def converted(case: str, convert):
    """``(function, args, kwargs)`` of ``case``, its array arguments passed through ``convert``."""
    function, args, options = CALLS[case]
    args = tuple(convert(a) if isinstance(a, np.ndarray) else a for a in args)
    options = {k: convert(v) if isinstance(v, np.ndarray) else v for k, v in options.items()}
    return function, args, options
