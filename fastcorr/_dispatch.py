"""Backend selection: the one module that knows which backends exist.

Front ends (``fastcorr.signal``, ``fastcorr.conv``) validate their arguments
and then call :func:`run` with the name of a kernel entry point.  Every
backend module in ``fastcorr.kernels`` implements some of the same entry
points with canonical arguments:

``correlate_valid(x, kernel)``
    N-d 'valid' cross-correlation (no conjugation) of equal-ndim arrays.
``correlate_fft(x, kernel)``
    The same, computed with FFTs.
``conv_forward(x, weight, bias, stride, dilation, groups)``
    Grouped, strided, dilated correlation of an already padded
    ``(N, C, D, H, W)`` batch with ``(F, C // groups, kd, kh, kw)`` weights.
``unfold(x, kernel_size, dilation, stride)`` / ``fold(cols, size, kernel_size, dilation, stride)``
    im2col and its adjoint on padded ``(N, C, D, H, W)`` arrays.

A backend that lacks an entry point simply does not define it; one that
lacks a combination of arguments raises :class:`Unsupported`.  Both become a
``NotImplementedError`` naming the public function, the backend and the
parameter; ``'auto'`` skips such backends instead.

Some entry points are fused forms of others: ``correlate_padded(x, kernel,
pad_width, fillvalue)`` is a constant pad and a ``correlate_valid``,
``correlate_fft_padded`` the same with ``correlate_fft``;
``global_avg_pool(x)`` / ``global_max_pool(x)`` are average / max pooling
with one window per plane, values only.  The front end passes :func:`run` a
``fallback`` that composes the plain entry points, used wherever the fused
one is absent or unsupported, so that only the backends that gain from
fusing implement it.  ``template_response(image, template, xcorr)`` is the
normalisation of :func:`fastcorr.match_template` (window statistics and the
Pearson quotient), fused by the cuda backend, composed with NumPy elsewhere.

Device arrays (numba, CuPy, torch CUDA) never reach a CPU backend: every
public function is wrapped by :func:`fastcorr._arrays.device_aware`, which
sends a call with a device array among its arguments to ``'cuda'`` (under
``'auto'`` too; :func:`device_backend` refuses an explicit CPU backend) and
returns device results; the front ends keep the data on the device between
kernels through :mod:`fastcorr._arrays`.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import os
import threading

BACKENDS = ("naive", "numpy", "scipy", "numba", "cuda")
_CHOICES = ("auto",) + BACKENDS
# Order in which 'auto' tries CPU backends; naive implements everything.
_AUTO_ORDER = ("numba", "numpy", "naive")
ENV_VAR = "FASTCORR_BACKEND"

_MODULES = {
    "naive": "fastcorr.kernels.naive",
    "numpy": "fastcorr.kernels.numpy",
    "scipy": "fastcorr.kernels.scipy",
    "numba": "fastcorr.kernels.numba",
    "cuda": "fastcorr.kernels.cuda",
}

_local = threading.local()
_num_threads: int | None = None


class Unsupported(NotImplementedError):
    """A kernel lacks this combination of arguments.

    Raised by backend kernels with the offending ``parameter``; :func:`run`
    re-raises it as a ``NotImplementedError`` that names the public function
    and the backend, or, under ``'auto'``, tries the next backend.
    """

    def __init__(self, parameter: str, detail: str):
        super().__init__(f"{parameter}: {detail}")
        self.parameter = parameter
        self.detail = detail


def _check_name(name, where: str) -> str:
    if not isinstance(name, str) or name not in _CHOICES:
        raise ValueError(f"{where}: expected one of {', '.join(map(repr, _CHOICES))}, got {name!r}")
    return name


@contextlib.contextmanager
def use_backend(name: str):
    """Use backend ``name`` for fastcorr calls in this thread, inside a ``with`` block.

    An explicit ``backend=`` argument still wins; blocks nest.

    Examples
    --------
    >>> import numpy as np, fastcorr
    >>> with fastcorr.use_backend("numpy"):
    ...     fastcorr.correlate2d(np.eye(2), np.ones((1, 1)))
    array([[1., 0.],
           [0., 1.]])
    """
    _check_name(name, "use_backend: parameter 'name'")
    stack = _local.__dict__.setdefault("stack", [])
    stack.append(name)
    try:
        yield name
    finally:
        stack.pop()


def requested_backend(backend: str | None, func: str) -> str:
    """The backend name in force for one call: argument, context, environment, 'auto'."""
    if backend is not None:
        return _check_name(backend, f"{func}: parameter 'backend'")
    stack = getattr(_local, "stack", None)
    if stack:
        return stack[-1]
    env = os.environ.get(ENV_VAR)
    if env:
        return _check_name(env.strip(), f"{func}: environment variable {ENV_VAR}")
    return "auto"


@functools.cache
def _cuda_status() -> dict:
    """:func:`fastcorr.kernels.cuda._device.status`, asked once per process (may init the GPU)."""
    try:
        device = importlib.import_module(_MODULES["cuda"] + "._device")
    except ImportError as exc:  # numba (or its CUDA target) missing or broken
        return {"available": False, "reason": f"{type(exc).__name__}: {exc}",
                "implementation": None, "device": None, "driver": None}
    return device.status()


def device_backend(backend: str | None, func: str, parameter: str) -> str:
    """The backend of a call whose ``parameter`` is a GPU device array: ``'cuda'``.

    ``'auto'`` (the argument, context or environment in force) picks it.  An
    explicit CPU backend refuses device arrays with a TypeError rather than
    copy them to the host; an unavailable cuda backend is a RuntimeError
    that says why.
    """
    name = requested_backend(backend, func)
    if name not in ("auto", "cuda"):
        raise TypeError(
            f"{func}: parameter {parameter!r} is a GPU device array, which backend={name!r} "
            "cannot take (it computes on the host): use backend='cuda' or 'auto', or pass "
            "host arrays (x.copy_to_host() for numba, x.get() for CuPy, x.cpu().numpy() for "
            "torch)")
    available, reason = _availability("cuda")
    if not available:
        raise RuntimeError(f"{func}: parameter {parameter!r} is a GPU device array, but "
                           f"backend 'cuda' is not available: {reason}")
    return "cuda"


def _availability(name: str) -> tuple[bool, str | None]:
    if name == "cuda":
        status = _cuda_status()
        return status["available"], status["reason"]
    try:
        importlib.import_module(_MODULES[name])
    except ImportError as exc:  # e.g. numba missing or broken
        return False, f"{type(exc).__name__}: {exc}"
    return True, None


def backends() -> dict[str, dict]:
    """Report each backend's availability.

    Returns
    -------
    dict
        ``{name: {"available": bool, "reason": str or None}}`` for
        ``'naive'``, ``'numpy'``, ``'scipy'``, ``'numba'`` and ``'cuda'``;
        ``'cuda'`` also says which numba CUDA target loaded
        (``"implementation"``), and the ``"device"`` and ``"driver"`` (None
        without a GPU).  Nothing is compiled; asking about CUDA imports
        ``numba.cuda`` and may initialise the driver (once per process).

    Examples
    --------
    >>> import fastcorr
    >>> fastcorr.backends()["naive"]
    {'available': True, 'reason': None}
    """
    result = {}
    for name in BACKENDS:
        available, reason = _availability(name)
        result[name] = {"available": available, "reason": reason}
    result["cuda"].update({key: _cuda_status()[key]
                           for key in ("implementation", "device", "driver")})
    return result


def _module(name: str, func: str):
    if name == "cuda":
        available, reason = _availability(name)
        if not available:
            raise RuntimeError(f"{func}: backend 'cuda' is not available: {reason}")
    try:
        return importlib.import_module(_MODULES[name])
    except ImportError as exc:
        raise RuntimeError(f"{func}: backend {name!r} is not available: {exc}") from exc


def _prepare(name: str) -> None:
    if name == "numba":
        import numba

        numba.set_num_threads(min(get_num_threads(), numba.config.NUMBA_NUM_THREADS))


def run(func: str, entry: str, backend: str | None, *args, what: str = "", fallback=None):
    """Call kernel entry point ``entry`` of the backend in force.

    ``func`` is the public function's name for messages; ``what`` says in a
    few words what the entry point computes, for the message of a backend
    that lacks it.  ``fallback``, if given, is called with ``args`` instead
    where the backend lacks ``entry`` or raises :class:`Unsupported` (under
    ``'auto'``: where the first available backend does); it must compute the
    same result from other entry points.
    """
    name = requested_backend(backend, func)
    if name == "auto":
        for candidate in _AUTO_ORDER:
            if not _availability(candidate)[0]:
                continue
            impl = getattr(_module(candidate, func), entry, None)
            if impl is None:
                if fallback is not None:
                    return fallback(*args)
                continue
            _prepare(candidate)
            try:
                return impl(*args)
            except Unsupported:
                if fallback is not None:
                    return fallback(*args)
                continue
        raise AssertionError(f"{func}: no CPU backend implements {entry}")  # naive has all
    module = _module(name, func)
    impl = getattr(module, entry, None)
    if impl is None:
        if fallback is not None:
            return fallback(*args)
        others = [other for other in _AUTO_ORDER if other != name and _availability(other)[0]
                  and hasattr(_module(other, func), entry)]
        raise NotImplementedError(
            f"{func}: backend={name!r} does not implement {what or entry}; use backend="
            + " or ".join(map(repr, ["auto"] + others))
        )
    _prepare(name)
    try:
        return impl(*args)
    except Unsupported as exc:
        if fallback is not None:
            return fallback(*args)
        raise NotImplementedError(
            f"{func}: backend={name!r} does not support this {exc.parameter}: {exc.detail}"
        ) from None


def resolved_backend(backend: str | None, func: str) -> str:
    """The concrete backend 'auto' would use first (for algorithm choices and reports)."""
    name = requested_backend(backend, func)
    if name != "auto":
        return name
    for candidate in _AUTO_ORDER:
        if _availability(candidate)[0]:
            return candidate
    return "naive"


def _cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def set_num_threads(n: int) -> None:
    """Set the number of threads the CPU kernels (and FFTs) use, in every thread.

    Parameters
    ----------
    n : int
        At least 1; values above the number of usable cores are capped.

    Examples
    --------
    >>> import fastcorr
    >>> previous = fastcorr.get_num_threads()
    >>> fastcorr.set_num_threads(1)
    >>> fastcorr.get_num_threads()
    1
    >>> fastcorr.set_num_threads(previous)
    """
    global _num_threads
    from ._checks import int_value

    _num_threads = min(int_value("set_num_threads", "n", n, minimum=1), _cpu_count())


def get_num_threads() -> int:
    """The number of threads the CPU kernels use (default: all usable cores).

    Examples
    --------
    >>> import fastcorr
    >>> fastcorr.get_num_threads() >= 1
    True
    """
    return _num_threads if _num_threads is not None else _cpu_count()
