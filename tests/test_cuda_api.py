"""Every public function with backend='cuda' against backend='naive', on tiny inputs.

The kernels themselves are tested entry point by entry point in
tests/test_cuda_conv.py and tests/test_cuda_pool_norm.py; here the front
ends drive them with the arguments users pass (tests/cuda_calls.py: modes,
boundaries, padding modes, masks, running statistics), so that every public
function is seen to run on the GPU (or, in CI, on numba's CUDA simulator:
NUMBA_ENABLE_CUDASIM=1 set before Python starts).  Launch sizes are shrunk
so that several blocks run even on these shapes.  The same calls with their
arrays on the device: tests/test_cuda_device.py.
"""

from __future__ import annotations

import numpy as np
import pytest
from cuda_calls import BATCH, CALLS, PARAMS, WEIGHT, call
from helpers import assert_close, shrink_cuda_launches

import fastcorr

if not fastcorr.backends()["cuda"]["available"]:
    pytest.skip(f"no CUDA: {fastcorr.backends()['cuda']['reason']}", allow_module_level=True)


@pytest.fixture(autouse=True)
def _small_launches(monkeypatch):
    shrink_cuda_launches(monkeypatch)


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
    got, ref = _flat(call(case, backend="cuda")), _flat(call(case, backend=reference))
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
