"""Device arrays in, device arrays out: the public functions on arrays already on the GPU.

Every case of tests/cuda_calls.py runs again with its arrays as numba device
arrays (``numba.cuda.to_device``).  The results must be device arrays equal
to the host results (backend 'naive'), the device inputs unchanged, and no
array the size of the data may cross between host and device during the call:
the ``transfers`` fixture counts every copy, and makes converting a device
array to a host array (``np.asarray``) fail.  Then: 'auto' sends device
arrays to 'cuda'; explicit CPU backends refuse them; errors are the host's;
non-contiguous device views, mixed host and device inputs and running
statistics on the device work; the device forms of the front ends' array
operations (:mod:`fastcorr._arrays`) match NumPy.

CI runs this file on numba's CUDA simulator (NUMBA_ENABLE_CUDASIM=1), with
launch sizes shrunk.  Neither CuPy nor a CUDA build of torch is installed
here: their result conversion is tested with stand-ins only.
"""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest
from cuda_calls import (
    BATCH,
    BIAS,
    CALLS,
    COLS,
    GRAD,
    IMAGE,
    KERNEL,
    PARAMS,
    WEIGHT,
    X1,
    call,
    converted,
)
from helpers import assert_close, message_names, shrink_cuda_launches

import fastcorr
from fastcorr import _arrays, _dispatch

if not fastcorr.backends()["cuda"]["available"]:
    pytest.skip(f"no CUDA: {fastcorr.backends()['cuda']['reason']}", allow_module_level=True)

from numba import cuda  # noqa: E402

from fastcorr.kernels.cuda import _device  # noqa: E402

_SIMULATED = _device._simulated()
# Cases also run under 'auto' in full (every case is checked to reach 'cuda' under 'auto').
AUTO_CASES = ["correlate2d-wrap", "unfold", "max_pool2d", "batch_norm", "conv_transpose2d"]
# Transfers allowed during a call: statistics, window tables, parameters (36 numbers at most
# in these cases), and always less than the largest array argument.
SMALL = 40


@pytest.fixture(autouse=True)
def _small_launches(monkeypatch):
    shrink_cuda_launches(monkeypatch)


@pytest.fixture
def transfers(monkeypatch):
    """A list of ``(direction, elements)`` of every host<->device copy; clear it to start.

    Converting a device array to a NumPy array (what NumPy functions given one
    would do) raises instead.
    """
    log = []
    device_type = type(cuda.device_array(1))
    copy_to_host, to_device = device_type.copy_to_host, cuda.to_device

    def counted_copy_to_host(self, *args, **kwargs):
        log.append(("to host", self.size))
        return copy_to_host(self, *args, **kwargs)

    def counted_to_device(array, *args, **kwargs):
        log.append(("to device", np.size(array)))
        return to_device(array, *args, **kwargs)

    def refuse(self, *args, **kwargs):
        raise AssertionError("a device array was converted to a host array")

    monkeypatch.setattr(device_type, "copy_to_host", counted_copy_to_host)
    monkeypatch.setattr(cuda, "to_device", counted_to_device)
    monkeypatch.setattr(device_type, "__array__", refuse, raising=False)
    if _SIMULATED:  # the simulator's arrays also hand NumPy their buffer through these
        monkeypatch.setattr(device_type, "__array_interface__", property(refuse), raising=False)
        monkeypatch.setattr(device_type, "__array_struct__", property(refuse), raising=False)
    return log


def _on_device(array):
    return cuda.to_device(np.ascontiguousarray(array))


def _parts(result):
    """The arrays of a result (tuples flattened; None for masked gradients)."""
    if isinstance(result, tuple):
        return [array for part in result for array in _parts(part)]
    return [result]


def _check_device_result(case, got, expected):
    got, expected = _parts(got), _parts(expected)
    assert len(got) == len(expected), case
    for got_part, ref in zip(got, expected):
        if ref is None:
            assert got_part is None, case
        elif hasattr(ref, "toarray"):  # conv_matrix: a host sparse matrix in any case
            np.testing.assert_array_equal(got_part.toarray(), ref.toarray())
        else:
            assert _device.is_device_array(got_part), f"{case}: {type(got_part).__name__}"
            host = got_part.copy_to_host()
            assert host.shape == ref.shape and host.dtype == ref.dtype, case
            assert_close(host, ref, terms=24, context=f"{case} on the device vs naive")


@pytest.mark.parametrize("backend, case", [("cuda", case) for case in CALLS]
                         + [(None, case) for case in AUTO_CASES])
def test_device_arrays_in_device_arrays_out(backend, case, transfers):
    expected = call(case, backend="numpy" if case == "correlate-fft" else "naive")
    inputs = []

    def to_gpu(array):
        inputs.append((_on_device(array), np.array(array)))
        return inputs[-1][0]

    function, args, options = converted(case, to_gpu)
    transfers.clear()
    result = function(*args, **options, backend=backend)
    during = list(transfers)
    limit = min(SMALL, max(array.size for _, array in inputs))
    if case != "conv_matrix":  # a host matrix: the weight comes to the host, by design
        assert all(size < limit for _, size in during), f"{case}: data crossed: {during}"
    _check_device_result(case, result, expected)
    for device, original in inputs:
        np.testing.assert_array_equal(device.copy_to_host(), original)


class _Dispatched(Exception):
    pass


@pytest.mark.parametrize("case", list(CALLS))
def test_auto_sends_device_arrays_to_cuda(case, monkeypatch):
    seen = []

    def first_kernel(func, entry, backend, *args, **kwargs):
        seen.append(_dispatch.requested_backend(backend, func))
        raise _Dispatched

    monkeypatch.setattr(_dispatch, "run", first_kernel)
    function, args, options = converted(case, _on_device)
    with pytest.raises(_Dispatched):
        function(*args, **options)
    assert seen == ["cuda"]


def test_every_public_function_takes_device_arrays():
    arithmetic = {"backends", "get_num_threads", "set_num_threads", "use_backend",
                  "conv_output_shape"}
    for name in set(fastcorr.__all__) - arithmetic:
        assert hasattr(getattr(fastcorr, name), "__wrapped__"), name


@pytest.mark.parametrize("backend", ["naive", "numpy", "scipy", "numba"])
def test_cpu_backends_refuse_device_arrays(backend):
    with pytest.raises(TypeError) as excinfo:
        fastcorr.conv2d(BATCH, _on_device(WEIGHT), groups=2, backend=backend)
    message_names(excinfo, "conv2d", "'weight'", "device array", repr(backend), "'cuda'",
                  "'auto'", "copy_to_host")


def test_a_cpu_backend_in_force_refuses_device_arrays(monkeypatch):
    with fastcorr.use_backend("numpy"), pytest.raises(TypeError) as excinfo:
        fastcorr.correlate(_on_device(X1), X1)
    message_names(excinfo, "correlate", "'in1'", "'numpy'")
    monkeypatch.setenv("FASTCORR_BACKEND", "numba")
    with pytest.raises(TypeError) as excinfo:
        fastcorr.max_pool2d(x=_on_device(BATCH), kernel_size=2)
    message_names(excinfo, "max_pool2d", "'x'", "'numba'")


def test_the_simulator_takes_only_its_own_device_arrays():
    if not _SIMULATED:
        pytest.skip("on a GPU, any __cuda_array_interface__ object is taken")

    class Foreign:  # what a CuPy array or a torch CUDA tensor shows numba
        __cuda_array_interface__ = {"shape": (4,), "typestr": "<f8", "data": (0, False),
                                    "version": 3}

    with pytest.raises(TypeError) as excinfo:
        fastcorr.correlate(Foreign(), X1)
    message_names(excinfo, "correlate", "'in1'", "device array")


ERRORS = {
    "weight-ndim": (fastcorr.conv2d, (BATCH, WEIGHT[:, :, 0]), {}),
    "complex": (fastcorr.conv2d, (BATCH + 0j, WEIGHT), {"groups": 2}),
    "channels": (fastcorr.conv2d, (BATCH[:, :3], WEIGHT), {"groups": 2}),
    "bool-2d": (fastcorr.correlate2d, (IMAGE > 0, KERNEL > 0), {}),
    "ndim-mismatch": (fastcorr.correlate, (IMAGE, X1), {}),
    "pool-ndim": (fastcorr.max_pool2d, (BATCH[None], 2), {}),
    "bias-shape": (fastcorr.batch_norm, (BATCH,), {"bias": BIAS, "training": True}),
    "running-int": (fastcorr.batch_norm, (BATCH, np.zeros(4, np.int64), PARAMS),
                    {"training": True}),
    "axis": (fastcorr.moments, (BATCH, 4), {}),
    "normalized-shape": (fastcorr.layer_norm, (BATCH, (4, 5)), {}),
    "fold-blocks": (fastcorr.fold, (COLS[:, :, :5], (5, 6), 2), {}),
    "grad-shape": (fastcorr.conv2d_backward, (GRAD[:, :, :2], BATCH, WEIGHT),
                   {"stride": (2, 1), "padding": 1, "groups": 2}),
    "empty": (fastcorr.conv1d, (np.zeros((1, 1, 0)), np.ones((1, 1, 1))), {}),
    "template-larger": (fastcorr.match_template, (KERNEL, IMAGE), {}),
}


def _raised(function, args, options):
    with pytest.raises(Exception) as excinfo:
        function(*args, **options, backend="cuda")
    return excinfo.value


@pytest.mark.parametrize("case", list(ERRORS))
def test_device_errors_are_the_hosts(case):
    function, args, options = ERRORS[case]
    on_host = _raised(function, args, options)
    device_args = tuple(_on_device(a) if isinstance(a, np.ndarray) else a for a in args)
    device_options = {k: _on_device(v) if isinstance(v, np.ndarray) else v
                      for k, v in options.items()}
    on_device = _raised(function, device_args, device_options)
    assert type(on_device) is type(on_host) and str(on_device) == str(on_host)


def test_non_contiguous_device_views(transfers):
    batch, image = _on_device(BATCH), _on_device(IMAGE)
    cases = [
        (fastcorr.conv2d, (batch[:, :, :, ::2], WEIGHT[:, :, :, :1]), (BATCH[:, :, :, ::2],),
         {"groups": 2, "padding": (1, 0), "padding_mode": "reflect"}),
        (fastcorr.correlate2d, (image[::2, 1:], KERNEL), (IMAGE[::2, 1:],), {"boundary": "symm"}),
        (fastcorr.moments, (batch[1:, ::3], (0, 2)), (BATCH[1:, ::3],), {}),
        (fastcorr.avg_pool2d, (batch[0, ::2],), (BATCH[0, ::2],), {"kernel_size": 2}),
        (fastcorr.layer_norm, (batch[:, 1, ::2], 6), (BATCH[:, 1, ::2],), {}),
    ]
    for function, device_args, host_view, options in cases:
        transfers.clear()
        got = function(*device_args, **options, backend="cuda")
        assert all(size < SMALL for _, size in transfers), (function.__name__, transfers)
        expected = function(*host_view, *device_args[1:], **options, backend="naive")
        _check_device_result(function.__name__, got, expected)
    np.testing.assert_array_equal(batch.copy_to_host(), BATCH)


def test_host_parameters_next_to_device_data():
    got = fastcorr.conv2d(_on_device(BATCH), WEIGHT, BIAS, padding=1, groups=2)
    _check_device_result("conv2d", got,
                         fastcorr.conv2d(BATCH, WEIGHT, BIAS, padding=1, groups=2,
                                         backend="naive"))
    # The other way round too: a device weight makes the call a device call.
    got = fastcorr.correlate2d(IMAGE, _on_device(KERNEL), "same")
    _check_device_result("correlate2d", got,
                         fastcorr.correlate2d(IMAGE, KERNEL, "same", backend="naive"))


@pytest.mark.parametrize("function", [fastcorr.batch_norm, fastcorr.instance_norm])
def test_running_statistics_are_updated_in_place_on_the_device(function):
    host_stats = [PARAMS.copy(), PARAMS ** 2 + 1]
    device_stats = [_on_device(s) for s in host_stats]
    options = {"momentum": 0.3, "weight": PARAMS}
    if function is fastcorr.batch_norm:
        options["training"] = True
    expected = function(BATCH, *host_stats, **options, backend="naive")
    got = function(_on_device(BATCH), *device_stats, **options)
    _check_device_result(function.__name__, got, expected)
    for device, host in zip(device_stats, host_stats):
        assert_close(device.copy_to_host(), host, terms=60)
    # A strided device view is updated in place too.
    base = _on_device(np.stack([PARAMS, PARAMS]).T.copy())  # (4, 2): column 0 is PARAMS
    function(_on_device(BATCH), base[:, 0], device_stats[1], **options)
    assert_close(base.copy_to_host()[:, 0], host_stats[0], terms=60)
    np.testing.assert_array_equal(base.copy_to_host()[:, 1], PARAMS)


# ------------------------------------------------ the front ends' array operations


@pytest.mark.parametrize("mode", ["constant", "edge", "wrap", "reflect", "symmetric"])
def test_device_pad_is_numpys(mode, rng):
    source = rng.standard_normal((3, 6, 4))
    device = _on_device(source)[:, ::2, 1:]  # (3, 3, 3), strided
    for pad_width in [((0, 0), (1, 2), (0, 1)), ((2, 1), (7, 5), (4, 0))]:  # pads > the size
        extra = {"constant_values": -0.5} if mode == "constant" else {}
        got = _arrays.pad(device, pad_width, mode, **extra)
        expected = np.pad(source[:, ::2, 1:], pad_width, mode=mode, **extra)
        np.testing.assert_array_equal(got.copy_to_host(), expected)


@pytest.mark.parametrize("mode", ["constant", "edge", "wrap", "reflect", "symmetric"])
def test_device_pad_adjoint_is_the_hosts(mode, rng):
    pad_width = ((0, 0), (2, 3), (1, 4))
    padded = rng.standard_normal((2, 9, 8)).astype(np.float32)
    got = _arrays.pad_adjoint(_on_device(padded), pad_width, mode)
    expected = _arrays.pad_adjoint(padded, pad_width, mode)
    assert got.is_c_contiguous()
    np.testing.assert_array_equal(got.copy_to_host(), expected)
    # The adjoint: <pad(x), y> == <x, pad_adjoint(y)>.
    x = rng.standard_normal((2, 4, 3))
    lhs = np.vdot(np.pad(x, pad_width, mode=mode), padded)
    assert np.isclose(lhs, np.vdot(x, expected.astype(np.float64)), rtol=1e-5)


def test_device_casts_flips_and_views(rng):
    source = rng.integers(-3, 4, size=(4, 5, 6))
    device = _on_device(source)[1:, ::2, ::-1 if _SIMULATED else 1]
    view = source[1:, ::2, ::-1 if _SIMULATED else 1]
    for dtype in [np.bool_, np.int32, np.float32, np.complex128]:
        got = _arrays.asarray(device, dtype)
        assert got.dtype == dtype and got.is_c_contiguous()
        np.testing.assert_array_equal(got.copy_to_host(), view.astype(dtype))
    np.testing.assert_array_equal(_arrays.flip(device).copy_to_host(), view[::-1, ::-1, ::-1])
    complex_device = _arrays.asarray(device, np.complex64)
    np.testing.assert_array_equal(_arrays.conj(_arrays.flip(complex_device)).copy_to_host(),
                                  np.conj(view[::-1, ::-1, ::-1]).astype(np.complex64))
    assert _arrays.conj(device) is device  # real: nothing to conjugate
    lifted = _arrays.new_axis(device)
    assert lifted.shape == (1,) + view.shape
    np.testing.assert_array_equal(_arrays.ascontiguousarray(lifted).copy_to_host(), view[None])
    moved = _arrays.transpose(device, (2, 0, 1))
    np.testing.assert_array_equal(_arrays.reshape(moved, (-1,)).copy_to_host(),
                                  np.transpose(view, (2, 0, 1)).reshape(-1))
    assert _arrays.ascontiguousarray(got) is got  # no copy where none is needed


def test_device_assign_into_a_strided_target():
    target = _on_device(np.zeros((3, 4)))
    _arrays.assign(target[:, ::2], np.arange(6.0).reshape(3, 2))
    np.testing.assert_array_equal(target.copy_to_host(),
                                  [[0, 0, 1, 0], [2, 0, 3, 0], [4, 0, 5, 0]])


def test_results_come_back_in_the_inputs_library(monkeypatch):
    """CuPy in, CuPy out; torch in, torch out: with stand-ins (neither library is here)."""
    converted_by = []
    cupy = types.SimpleNamespace(asarray=lambda a: converted_by.append(("cupy", a)) or "cupy")
    torch = types.SimpleNamespace(
        as_tensor=lambda a, device: converted_by.append(("torch", a, device)) or "torch")
    monkeypatch.setitem(sys.modules, "cupy", cupy)
    monkeypatch.setitem(sys.modules, "torch", torch)
    cupy_input = type("ndarray", (), {"__module__": "cupy._core.core"})()
    torch_input = type("Tensor", (), {"__module__": "torch", "device": "cuda:1"})()
    result = _on_device(X1)
    assert _arrays.like_input((result, None), cupy_input) == ("cupy", None)
    assert _arrays.like_input(result, torch_input) == "torch"
    assert converted_by == [("cupy", result), ("torch", result, "cuda:1")]
    assert _arrays.like_input(result, _on_device(X1)) is result
    host = _arrays.like_input(np.ones(2), _on_device(X1))  # small host results go to the device
    assert _device.is_device_array(host)
