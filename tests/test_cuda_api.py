"""Every public function with backend='cuda' against backend='naive', on tiny inputs.

The kernels themselves are tested entry point by entry point in
tests/test_cuda_conv.py and tests/test_cuda_pool_norm.py; here the front
ends drive them with the arguments users pass (modes, boundaries, padding
modes, masks, running statistics), so that every public function is seen
to run on the GPU (or, in CI, on numba's CUDA simulator: NUMBA_ENABLE_CUDASIM=1
set before Python starts).  Launch sizes are shrunk so that several blocks
run even on these shapes.
"""

from __future__ import annotations

import numpy as np
import pytest
from helpers import assert_close, message_names, random_array

import fastcorr

if not fastcorr.backends()["cuda"]["available"]:
    pytest.skip(f"no CUDA: {fastcorr.backends()['cuda']['reason']}", allow_module_level=True)


@pytest.fixture(autouse=True)
def _small_launches(monkeypatch):
    from fastcorr.kernels.cuda import _device

    monkeypatch.setattr(_device, "THREADS_PER_BLOCK", 8)
    monkeypatch.setattr(_device, "TILE", 4)


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
    "correlate": lambda **kw: fastcorr.correlate(X1, K1, mode="same", **kw),
    "correlate-fft": lambda **kw: fastcorr.correlate(X1, K1, method="fft", **kw),
    "convolve": lambda **kw: fastcorr.convolve(X1, K1, **kw),
    "correlate-3d": lambda **kw: fastcorr.correlate(BATCH[0, :3], KERNEL[None], mode="valid",
                                                    **kw),
    "correlate-int": lambda **kw: fastcorr.correlate(np.arange(6), np.array([1, -2]), **kw),
    "correlate-complex": lambda **kw: fastcorr.correlate(X1 + 1j * X1[::-1], K1 - 2j, **kw),
    "correlate2d-fill": lambda **kw: fastcorr.correlate2d(IMAGE, KERNEL, fillvalue=0.5, **kw),
    "correlate2d-wrap": lambda **kw: fastcorr.correlate2d(IMAGE, KERNEL, "same", "wrap", **kw),
    "convolve2d-symm": lambda **kw: fastcorr.convolve2d(IMAGE, KERNEL, "full", "symm", **kw),
    "convolve2d-valid": lambda **kw: fastcorr.convolve2d(IMAGE, KERNEL, "valid", **kw),
    "match_template": lambda **kw: fastcorr.match_template(IMAGE, IMAGE[1:4, 2:4], **kw),
    "conv1d": lambda **kw: fastcorr.conv1d(BATCH[:, :, 0], WEIGHT[:, :, 0], BIAS, stride=2,
                                           padding=1, groups=2, **kw),
    "conv2d": lambda **kw: fastcorr.conv2d(BATCH, WEIGHT, BIAS, stride=(2, 1), padding=1,
                                           groups=2, **kw),
    "conv2d-dilated-reflect": lambda **kw: fastcorr.conv2d(
        BATCH[0], WEIGHT[:, :, :2], None, padding=(1, 2), dilation=(2, 1), groups=2,
        padding_mode="reflect", **kw),
    "conv3d": lambda **kw: fastcorr.conv3d(BATCH.reshape(1, 4, 2, 5, 6),
                                           WEIGHT[:, :, None].repeat(2, 2), padding="same",
                                           groups=2, **kw),
    "unfold": lambda **kw: fastcorr.unfold(BATCH, (2, 3), dilation=(1, 2), padding=1,
                                           stride=(2, 1), **kw),
    "fold": lambda **kw: fastcorr.fold(COLS, (5, 6),
                                       (2, 2), padding=(0, 1), stride=(2, 1), **kw),
    "im2col": lambda **kw: fastcorr.im2col(BATCH, 2, **kw),
    "col2im": lambda **kw: fastcorr.col2im(COLS2, (5, 6),
                                           2, **kw),
    "conv_matrix": lambda **kw: fastcorr.conv_matrix(KERNEL, (4, 5), stride=2, padding=1, **kw),
    "conv_transpose2d": lambda **kw: fastcorr.conv_transpose2d(
        GRAD, WEIGHT, BIAS[:4], stride=(2, 1), padding=1, output_padding=(1, 0), groups=2,
        **kw),
    "conv2d_backward": lambda **kw: fastcorr.conv2d_backward(
        GRAD, BATCH, WEIGHT, stride=(2, 1), padding=1, groups=2, **kw),
    "conv2d_backward-circular": lambda **kw: fastcorr.conv2d_backward(
        GRAD, BATCH, WEIGHT, stride=(2, 1), padding=1, groups=2, padding_mode="circular",
        output_mask=(True, True, False), **kw),
    "max_pool1d": lambda **kw: fastcorr.max_pool1d(BATCH[:, :, 0], 2, return_indices=True,
                                                   **kw),
    "max_pool2d": lambda **kw: fastcorr.max_pool2d(BATCH, 3, 2, padding=1, dilation=(1, 2),
                                                   ceil_mode=True, return_indices=True, **kw),
    "avg_pool1d": lambda **kw: fastcorr.avg_pool1d(BATCH[:, :, 0], 3, 2, padding=1,
                                                   count_include_pad=False, **kw),
    "avg_pool2d": lambda **kw: fastcorr.avg_pool2d(BATCH, 2, 1, ceil_mode=True,
                                                   divisor_override=3, **kw),
    "adaptive_avg_pool2d": lambda **kw: fastcorr.adaptive_avg_pool2d(BATCH, (3, 4), **kw),
    "adaptive_max_pool2d": lambda **kw: fastcorr.adaptive_max_pool2d(BATCH, 4, True, **kw),
    "global_avg_pool2d": lambda **kw: fastcorr.global_avg_pool2d(BATCH, **kw),
    "global_max_pool2d": lambda **kw: fastcorr.global_max_pool2d(BATCH, **kw),
    "max_pool2d_backward": lambda **kw: fastcorr.max_pool2d_backward(
        POOLED, BATCH, 3, 2, padding=1, **kw),
    "avg_pool2d_backward": lambda **kw: fastcorr.avg_pool2d_backward(
        POOLED, BATCH, 3, 2, padding=1,
        count_include_pad=False, **kw),
    "moments": lambda **kw: fastcorr.moments(BATCH, (0, 2, 3), ddof=1, **kw),
    "batch_norm": lambda **kw: fastcorr.batch_norm(BATCH, weight=PARAMS, bias=-PARAMS,
                                                   training=True, **kw),
    "batch_norm-eval": lambda **kw: fastcorr.batch_norm(BATCH, PARAMS ** 2, PARAMS ** 2 + 1,
                                                        PARAMS, **kw),
    "layer_norm": lambda **kw: fastcorr.layer_norm(BATCH, (5, 6), BATCH[0, 0], **kw),
    "instance_norm": lambda **kw: fastcorr.instance_norm(BATCH, weight=PARAMS, **kw),
    "group_norm": lambda **kw: fastcorr.group_norm(BATCH, 2, PARAMS, PARAMS, **kw),
    "batch_norm_backward": lambda **kw: fastcorr.batch_norm_backward(
        BATCH[::-1], BATCH, weight=PARAMS, training=True, **kw),
    "layer_norm_backward": lambda **kw: fastcorr.layer_norm_backward(
        BATCH[::-1], BATCH, (5, 6), BATCH[0, 0], BATCH[1, 1], **kw),
    "instance_norm_backward": lambda **kw: fastcorr.instance_norm_backward(
        BATCH[::-1], BATCH, weight=PARAMS, **kw),
    "group_norm_backward": lambda **kw: fastcorr.group_norm_backward(
        BATCH[::-1], BATCH, 2, PARAMS, PARAMS, **kw),
}


def _flat(result):
    """The arrays of a result (tuples, sparse matrices, None for masked gradients)."""
    if isinstance(result, tuple):
        return [array for part in result for array in _flat(part)]
    if result is None:
        return [None]
    return [result.toarray() if hasattr(result, "toarray") else np.asarray(result)]


@pytest.mark.parametrize("case", list(CALLS))
def test_cuda_matches_naive(case):
    reference = "numpy" if case == "correlate-fft" else "naive"  # naive has no FFT
    got, ref = _flat(CALLS[case](backend="cuda")), _flat(CALLS[case](backend=reference))
    assert len(got) == len(ref)
    for got_part, ref_part in zip(got, ref):
        if ref_part is None:
            assert got_part is None, case
            continue
        assert got_part.shape == ref_part.shape and got_part.dtype == ref_part.dtype, case
        assert_close(got_part, ref_part, terms=24, context=f"{case} cuda vs naive")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cuda_dtype_and_inputs_untouched(dtype):
    x, weight = BATCH.astype(dtype), WEIGHT.astype(dtype)
    x_before, weight_before = x.copy(), weight.copy()
    got = fastcorr.conv2d(x, weight, padding=1, groups=2, backend="cuda")
    ref = fastcorr.conv2d(x, weight, padding=1, groups=2, backend="naive")
    assert got.dtype == dtype
    assert_close(got, ref, dtype=dtype, terms=12)
    np.testing.assert_array_equal(x, x_before)
    np.testing.assert_array_equal(weight, weight_before)


def test_cuda_batch_norm_updates_running_stats_like_naive():
    stats = {name: [PARAMS.copy(), PARAMS ** 2 + 1] for name in ("cuda", "naive")}
    for name, (mean, var) in stats.items():
        fastcorr.batch_norm(BATCH, mean, var, training=True, momentum=0.3, backend=name)
    for got, ref in zip(stats["cuda"], stats["naive"]):
        assert_close(got, ref, terms=60)


def test_device_arrays_not_taken_yet():
    """Device inputs are refused clearly (until the zero-copy device path lands)."""
    from numba import cuda

    device_x = cuda.to_device(BATCH)
    with pytest.raises(NotImplementedError) as excinfo:
        fastcorr.conv2d(device_x, WEIGHT, groups=2, backend="cuda")
    message_names(excinfo, "conv2d", "x", "device")
