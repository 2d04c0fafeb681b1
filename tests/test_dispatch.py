"""Backend selection: backends(), precedence, thread-locality, errors, threads.

Which backend ran is observed through behaviour the backends differ in: the
naive backend has no FFT (correlate(method='fft') raises NotImplementedError
there), the scipy backend has no im2col (unfold raises there).  'cuda' is
checked here for its report and errors; its results in tests/test_cuda_*.py.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest
from helpers import ALL_BACKENDS, CPU_BACKENDS, assert_close, message_names, random_array

import fastcorr

A = np.arange(8.0)
B = np.array([1.0, -2.0, 0.5])


def _fft_works(**kwargs) -> bool:
    """True if correlate(method='fft') ran, False if the backend in force lacks FFT."""
    try:
        fastcorr.correlate(A, B, method="fft", **kwargs)
    except NotImplementedError:
        return False
    return True


def _in_thread(func):
    result = {}

    def target():
        try:
            result["value"] = func()
        except BaseException as exc:  # noqa: BLE001 - reported to the test thread
            result["error"] = exc

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    if "error" in result:
        raise result["error"]
    return result["value"]


# --------------------------------------------------------------------------------------
# backends()


def test_backends_report():
    status = fastcorr.backends()
    assert set(status) == {"naive", "numpy", "scipy", "numba", "cuda"}
    for name, entry in status.items():
        extra = {"implementation", "device", "driver"} if name == "cuda" else set()
        assert set(entry) == {"available", "reason"} | extra, name
        assert isinstance(entry["available"], bool)
        if entry["available"]:
            assert entry["reason"] is None
        else:
            assert isinstance(entry["reason"], str) and entry["reason"]
    for name in ("naive", "numpy", "scipy", "numba"):
        assert status[name]["available"], (name, status[name]["reason"])
    cuda = status["cuda"]
    if cuda["available"]:  # a GPU, or the simulator (CI)
        assert cuda["device"] and "numba" in cuda["implementation"]
    else:
        assert "CUDA" in cuda["reason"] or "cuda" in cuda["reason"]


def test_backends_still_callable_after_kernels_ran():
    """fastcorr.backends is the function, also after the kernel modules were imported
    (they live in ``fastcorr.kernels``, so no import can rebind the name)."""
    import fastcorr.kernels.numba as numba_kernels  # noqa: F401 (the import itself is the test)

    for backend in CPU_BACKENDS:
        fastcorr.correlate(A, B, backend=backend)
    assert callable(fastcorr.backends), type(fastcorr.backends)
    assert fastcorr.backends()["naive"]["available"]
    assert fastcorr.backends()["naive"] == {"available": True, "reason": None}


# --------------------------------------------------------------------------------------
# precedence: explicit argument > innermost use_backend > FASTCORR_BACKEND > 'auto'


def test_default_is_auto_and_auto_never_raises_not_implemented():
    assert _fft_works()
    assert _fft_works(backend="auto")
    x = random_array(np.random.default_rng(0), (1, 2, 5, 5), np.float64)
    with fastcorr.use_backend("auto"):
        fastcorr.unfold(x, 2)
        fastcorr.fold(fastcorr.unfold(x, 2), (5, 5), 2)
        fastcorr.conv_matrix(np.ones((1, 2, 2, 2)), (2, 5, 5))
        fastcorr.correlate(A, B, method="fft")


def test_explicit_backend_argument():
    assert not _fft_works(backend="naive")
    for name in ("numpy", "scipy", "numba"):
        assert _fft_works(backend=name), name


def test_use_backend_context():
    with fastcorr.use_backend("naive") as name:
        assert name == "naive"
        assert not _fft_works()
        # an explicit argument wins over the context
        assert _fft_works(backend="numpy")
        with fastcorr.use_backend("numpy"):  # the innermost block wins
            assert _fft_works()
            with fastcorr.use_backend("naive"):
                assert not _fft_works()
            assert _fft_works()
        assert not _fft_works()
    assert _fft_works()  # restored


def test_use_backend_restored_after_exception():
    with pytest.raises(RuntimeError):
        with fastcorr.use_backend("naive"):
            raise RuntimeError("boom")
    assert _fft_works()


def test_explicit_naive_inside_fft_capable_context():
    with fastcorr.use_backend("numpy"):
        assert not _fft_works(backend="naive")


def test_environment_variable(monkeypatch):
    monkeypatch.setenv("FASTCORR_BACKEND", "naive")
    assert not _fft_works()  # read at call time, not at import
    assert _fft_works(backend="numpy")
    with fastcorr.use_backend("numpy"):  # the context beats the environment
        assert _fft_works()
    monkeypatch.setenv("FASTCORR_BACKEND", "scipy")
    assert _fft_works()
    with pytest.raises(NotImplementedError) as excinfo:
        fastcorr.unfold(np.ones((1, 1, 3, 3)), 2)
    message_names(excinfo, "unfold", "scipy")
    assert _fft_works()
    fastcorr.unfold(np.ones((1, 1, 3, 3)), 2, backend="auto")  # explicit 'auto' wins
    monkeypatch.setenv("FASTCORR_BACKEND", "naive")
    assert _fft_works(backend="auto")
    monkeypatch.setenv("FASTCORR_BACKEND", "auto")
    fastcorr.unfold(np.ones((1, 1, 3, 3)), 2)
    monkeypatch.delenv("FASTCORR_BACKEND")
    assert _fft_works()


def test_environment_variable_unknown_name(monkeypatch):
    monkeypatch.setenv("FASTCORR_BACKEND", "nonesuch")
    with pytest.raises(ValueError) as excinfo:
        fastcorr.correlate(A, B)
    message_names(excinfo, "correlate", "FASTCORR_BACKEND", "nonesuch")


def test_use_backend_is_thread_local():
    with fastcorr.use_backend("naive"):
        assert not _fft_works()
        # another thread does not see this thread's context: it runs 'auto'
        assert _in_thread(_fft_works)
        # and a context in another thread does not leak here
        def other():
            with fastcorr.use_backend("numpy"):
                return _fft_works()
        assert _in_thread(other)
        assert not _fft_works()


def test_thread_sees_environment_but_not_context(monkeypatch):
    monkeypatch.setenv("FASTCORR_BACKEND", "naive")
    with fastcorr.use_backend("numpy"):
        assert _fft_works()
        assert not _in_thread(_fft_works)


# --------------------------------------------------------------------------------------
# errors of dispatch


@pytest.mark.parametrize("name", ["nonesuch", "NUMPY", "", "cpu"])
def test_unknown_backend_names(name):
    with pytest.raises(ValueError) as excinfo:
        fastcorr.correlate(A, B, backend=name)
    message_names(excinfo, "correlate", "backend")
    with pytest.raises(ValueError):
        with fastcorr.use_backend(name):
            pass


@pytest.mark.parametrize("name", [None, 3])
def test_use_backend_non_string(name):
    with pytest.raises((ValueError, TypeError)):
        with fastcorr.use_backend(name):
            pass


PUBLIC_CALLS = {
    "correlate": lambda **kw: fastcorr.correlate(A, B, **kw),
    "convolve": lambda **kw: fastcorr.convolve(A, B, **kw),
    "correlate2d": lambda **kw: fastcorr.correlate2d(np.eye(3), np.ones((2, 2)), **kw),
    "convolve2d": lambda **kw: fastcorr.convolve2d(np.eye(3), np.ones((2, 2)), **kw),
    "match_template": lambda **kw: fastcorr.match_template(np.eye(4), np.eye(2), **kw),
    "conv1d": lambda **kw: fastcorr.conv1d(np.ones((1, 1, 5)), np.ones((1, 1, 2)), **kw),
    "conv2d": lambda **kw: fastcorr.conv2d(np.ones((1, 1, 4, 4)), np.ones((1, 1, 2, 2)), **kw),
    "conv3d": lambda **kw: fastcorr.conv3d(np.ones((1, 1, 3, 3, 3)), np.ones((1, 1, 2, 2, 2)),
                                           **kw),
    "unfold": lambda **kw: fastcorr.unfold(np.ones((1, 1, 4, 4)), 2, **kw),
    "fold": lambda **kw: fastcorr.fold(np.ones((1, 4, 9)), (4, 4), 2, **kw),
    "conv_matrix": lambda **kw: fastcorr.conv_matrix(np.ones((2, 2)), (4, 4), **kw),
}


CUDA = fastcorr.backends()["cuda"]


@pytest.mark.parametrize("func", list(PUBLIC_CALLS))
def test_cuda_backend(func):
    """backend='cuda' computes what naive does, or, without CUDA, says why it cannot."""
    if CUDA["available"]:
        assert_close(_dense(PUBLIC_CALLS[func](backend="cuda")),
                     _dense(PUBLIC_CALLS[func](backend="naive")), terms=8)
        return
    with pytest.raises(RuntimeError) as excinfo:
        PUBLIC_CALLS[func](backend="cuda")
    message_names(excinfo, func, "cuda", "not available")


def _dense(result):
    return result.toarray() if hasattr(result, "toarray") else result


@pytest.mark.parametrize("func", list(PUBLIC_CALLS))
@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_every_function_takes_backend(func, backend):
    """Each backend either computes or raises NotImplementedError naming itself.

    Only what a backend lacks may raise: scipy has no im2col (unfold, fold,
    conv_matrix); everything else must compute.
    """
    lacking = {("scipy", "unfold"), ("scipy", "fold"), ("scipy", "conv_matrix")}
    if (backend, func) in lacking:
        with pytest.raises(NotImplementedError) as excinfo:
            PUBLIC_CALLS[func](backend=backend)
        message_names(excinfo, func, backend)
        assert "parameter" in str(excinfo.value) or "backend" in str(excinfo.value)
    else:
        reference = PUBLIC_CALLS[func](backend="naive" if backend != "naive" else "numpy")
        got = PUBLIC_CALLS[func](backend=backend)
        if hasattr(got, "toarray"):
            got, reference = got.toarray(), reference.toarray()
        assert_close(got, reference, terms=8)


@pytest.mark.parametrize("func", list(PUBLIC_CALLS))
def test_every_function_accepts_use_backend(func):
    """A call without backend= runs the backend of the innermost use_backend block."""
    with fastcorr.use_backend("cuda"):
        if CUDA["available"]:
            assert_close(_dense(PUBLIC_CALLS[func]()),
                         _dense(PUBLIC_CALLS[func](backend="naive")), terms=8)
        else:
            with pytest.raises(RuntimeError):
                PUBLIC_CALLS[func]()
    PUBLIC_CALLS[func]()


def test_conv_output_shape_takes_backend():
    assert fastcorr.conv_output_shape(7, 3, backend="naive") == 5
    assert fastcorr.conv_output_shape(7, 3, backend="auto") == 5


def test_not_implemented_message_names_the_parameter():
    with pytest.raises(NotImplementedError) as excinfo:
        fastcorr.correlate(A, B, method="fft", backend="naive")
    message_names(excinfo, "correlate", "naive", "method")
    with pytest.raises(NotImplementedError) as excinfo:
        fastcorr.unfold(np.ones((1, 1, 3, 3)), 2, backend="scipy")
    message_names(excinfo, "unfold", "scipy", "backend")


# --------------------------------------------------------------------------------------
# threads


def test_num_threads_validation(restore_threads):
    for bad in (1.5, "2", None, True, 2.0):
        with pytest.raises(TypeError) as excinfo:
            fastcorr.set_num_threads(bad)
        message_names(excinfo, "set_num_threads")
    for bad in (0, -1):
        with pytest.raises(ValueError) as excinfo:
            fastcorr.set_num_threads(bad)
        message_names(excinfo, "set_num_threads")


def test_num_threads_accepts_numpy_integers(restore_threads):
    """Like every other integer parameter of fastcorr (operator.index), numpy ints are ints."""
    fastcorr.set_num_threads(np.int64(1))
    assert fastcorr.get_num_threads() == 1
    fastcorr.set_num_threads(np.int32(2))
    assert fastcorr.get_num_threads() == min(2, _usable_cores())


def test_num_threads_is_global_across_threads(restore_threads):
    fastcorr.set_num_threads(1)
    assert fastcorr.get_num_threads() == 1
    assert _in_thread(fastcorr.get_num_threads) == 1

    def set_two():
        fastcorr.set_num_threads(2)
        return fastcorr.get_num_threads()

    assert _in_thread(set_two) == min(2, _usable_cores())
    assert fastcorr.get_num_threads() == min(2, _usable_cores())


def _usable_cores():
    import os

    return len(os.sched_getaffinity(0))


def test_num_threads_capped(restore_threads):
    fastcorr.set_num_threads(10_000)
    assert 1 <= fastcorr.get_num_threads() <= _usable_cores()


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_results_with_thread_counts_in_worker_thread(threads, backend, restore_threads):
    """The thread setting holds in every thread; results are right with 1 and 2 threads."""
    rng = np.random.default_rng(3)
    x = random_array(rng, (2, 4, 9, 8), np.float64)
    w = random_array(rng, (6, 2, 3, 3), np.float64)
    ref = fastcorr.conv2d(x, w, padding=1, groups=2, backend="naive")
    sig = random_array(rng, (20, 18), np.float64)
    ker = random_array(rng, (5, 4), np.float64)
    sig_ref = fastcorr.correlate2d(sig, ker, backend="naive")
    fastcorr.set_num_threads(threads)

    def work():
        assert fastcorr.get_num_threads() == min(threads, _usable_cores())
        return (fastcorr.conv2d(x, w, padding=1, groups=2, backend=backend),
                fastcorr.correlate2d(sig, ker, backend=backend))

    got, got_sig = _in_thread(work)
    assert_close(got, ref, terms=18)
    assert_close(got_sig, sig_ref, terms=20)
    got, got_sig = work()
    assert_close(got, ref, terms=18)
    assert_close(got_sig, sig_ref, terms=20)


CONCURRENT_SCRIPT = """
import threading
import numpy as np
import fastcorr

rng = np.random.default_rng(0)
x = rng.random((2, 6, 40, 40)); w = rng.random((6, 6, 3, 3))
ref = fastcorr.conv2d(x, w, padding=1, backend="numpy")
sig = rng.random((120, 110)); k = rng.random((5, 4))
sig_ref = fastcorr.correlate2d(sig, k, backend="numpy")
errors = []

def work():
    for _ in range(10):
        if not np.allclose(fastcorr.conv2d(x, w, padding=1, backend=BACKEND), ref):
            errors.append("conv2d")
        if not np.allclose(fastcorr.correlate2d(sig, k, backend=BACKEND), sig_ref):
            errors.append("correlate2d")

threads = [threading.Thread(target=work) for _ in range(3)]
for t in threads:
    t.start()
for t in threads:
    t.join()
assert not errors, errors
print("ok")
"""


@pytest.mark.parametrize("backend", ["numba", "auto"])
def test_concurrent_calls_from_threads(backend):
    """Several threads calling the compiled kernels at once: right results, no crash.

    Run in a subprocess: a threading layer that is not thread-safe aborts the
    whole interpreter, which must fail this test rather than end the session.
    """
    import os
    import subprocess
    import sys

    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [os.path.dirname(os.path.dirname(fastcorr.__file__)), env.get("PYTHONPATH", "")])
    result = subprocess.run(
        [sys.executable, "-c", f"BACKEND = {backend!r}\n" + CONCURRENT_SCRIPT],
        capture_output=True, text=True, timeout=300, env=env,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert result.stdout.strip().endswith("ok")


def test_fallback_used_where_the_fused_entry_is_missing_or_unsupported(rng):
    """run(fallback=...) composes plain entry points where a backend lacks the fused one."""
    from fastcorr import _dispatch

    x = random_array(rng, (5, 6), np.float64)
    kernel = random_array(rng, (2, 3), np.float64)
    pad_width = ((1, 0), (2, 1))
    calls = []

    def fallback(x, kernel, pad_width, fill):
        calls.append(x.ndim)
        return _dispatch.run("test", "correlate_valid", "naive",
                             np.pad(x, pad_width, constant_values=fill), kernel)

    ref = fallback(x, kernel, pad_width, 0.0)
    calls.clear()
    # naive has no correlate_padded: the fallback runs
    got = _dispatch.run("test", "correlate_padded", "naive", x, kernel, pad_width, 0.0,
                        fallback=fallback)
    assert calls == [2]
    assert_close(got, ref, terms=kernel.size)
    # numba has it: no fallback
    got = _dispatch.run("test", "correlate_padded", "numba", x, kernel, pad_width, 0.0,
                        fallback=fallback)
    assert calls == [2]
    assert_close(got, ref, terms=kernel.size)
    # numba refuses 4-d input (Unsupported): the fallback runs, under 'auto' too
    x4 = x.reshape(1, 1, 5, 6)
    for backend in ("numba", "auto"):
        _dispatch.run("test", "correlate_padded", backend, x4, kernel.reshape(1, 1, 2, 3),
                      ((0, 0), (0, 0)) + pad_width, 0.0, fallback=fallback)
    assert calls == [2, 4, 4]
    # without a fallback a missing entry point is still NotImplementedError
    with pytest.raises(NotImplementedError, match="backend='naive' does not implement"):
        _dispatch.run("test", "correlate_padded", "naive", x, kernel, pad_width, 0.0)
