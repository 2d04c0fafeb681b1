"""The GPU peers of G1-G3: torch on CUDA (cuDNN) and CuPy's ``cupyx.scipy.signal``.

Each ``*_calls(case, inputs)`` takes a :class:`~fastcorr.bench.workloads.GpuCase`
and its host inputs and returns the two zero-argument callables that
:mod:`~fastcorr.bench.gpu` times, and the events that time them:

* on the device: the inputs copied to the device once, at bind time; the
  call computes and leaves its result there;
* with transfers: host arrays in, host arrays out: the call copies every
  input in, computes as above, and copies the result out.

torch's normalisation backward passes are ``torch.autograd.grad`` of a
forward output recorded once at bind time (as on the CPU,
:mod:`~fastcorr.bench.peers`); with transfers, every input is copied in and
the gradient is that of the copied output gradient.  torch runs under
:func:`torch_settings`: TF32 off, deterministic algorithms (BENCH.md G2).
Nothing here imports torch or CuPy until a peer is bound or asked about.

Examples
--------
>>> sorted(PEER_OPS)
['cupy', 'torch']
>>> TORCH_SETTINGS["torch.backends.cudnn.allow_tf32"]
False
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import os
import warnings

from .peers import torch_norm

# Which GPU workloads each peer has (CuPy: correlate2d only).
PEER_OPS = {"torch": ("g1", "g2", "g3"), "cupy": ("g1",)}
# What torch_settings sets, as results.json records it.
TORCH_SETTINGS = {"torch.backends.cudnn.allow_tf32": False,
                  "torch.backends.cuda.matmul.allow_tf32": False,
                  "torch.backends.cudnn.benchmark": False,
                  "torch.backends.cudnn.deterministic": True,
                  "torch.use_deterministic_algorithms": "True, warn_only=True"}


def torch_unavailable() -> str | None:
    """Why torch cannot run on a GPU here, or None."""
    if importlib.util.find_spec("torch") is None:
        return "torch is not installed"
    torch = importlib.import_module("torch")
    if not torch.cuda.is_available():
        return f"torch {torch.__version__} sees no CUDA device"
    return None


def cupy_unavailable() -> str | None:
    """Why CuPy cannot run here, or None."""
    if importlib.util.find_spec("cupy") is None:
        return "cupy is not installed"
    try:
        cupy = importlib.import_module("cupy")
        importlib.import_module("cupyx.scipy.signal")
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:  # noqa: BLE001 - a broken CuPy is a finding, not a crash
        return f"cupy: {type(exc).__name__}: {exc}"
    return None if count else "cupy sees no CUDA device"


@contextlib.contextmanager
def torch_settings():
    """Run torch with :data:`TORCH_SETTINGS` (where it has a GPU), then restore its own.

    Deterministic algorithms are warn-only: where torch has no deterministic
    kernel it warns instead of raising, and :func:`deterministic_note`
    tells the case's note.  ``CUBLAS_WORKSPACE_CONFIG`` is set (if unset)
    before torch creates a cuBLAS handle, as deterministic cuBLAS needs.
    """
    if torch_unavailable():
        yield
        return
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch = importlib.import_module("torch")
    cudnn, matmul = torch.backends.cudnn, torch.backends.cuda.matmul
    saved = (cudnn.allow_tf32, matmul.allow_tf32, cudnn.benchmark, cudnn.deterministic,
             torch.are_deterministic_algorithms_enabled(),
             torch.is_deterministic_algorithms_warn_only_enabled())
    cudnn.allow_tf32 = matmul.allow_tf32 = cudnn.benchmark = False
    cudnn.deterministic = True
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        (cudnn.allow_tf32, matmul.allow_tf32, cudnn.benchmark, cudnn.deterministic,
         enabled, warn_only) = saved
        torch.use_deterministic_algorithms(enabled, warn_only=warn_only)


def deterministic_note(caught: list) -> str:
    """The note for warnings caught during a torch call: torch's non-deterministic kernels."""
    if any("determinis" in str(warning.message) for warning in caught):
        return "torch has no deterministic kernel here (warned)"
    return ""


def _torch_function(torch, workload, tensors):
    """``run(*tensors)``: torch's call of the workload on device tensors."""
    functional = torch.nn.functional
    if workload.op == "c1":
        k = workload.kernel_size
        padding = {"full": k - 1, "valid": 0, "same": k // 2}[workload.mode]
        return lambda image, kernel: functional.conv2d(image[None, None], kernel[None, None],
                                                       padding=padding)[0, 0]
    if workload.op == "c2":
        return lambda x, weight: functional.conv2d(x, weight, stride=workload.stride,
                                                   padding=workload.padding)
    if workload.op == "c4":
        if workload.kind == "global_avg":
            return lambda x: x.mean((2, 3))
        if workload.kind == "global_max":
            return lambda x: x.amax((2, 3))
        pool = functional.max_pool2d if workload.kind == "max" else functional.avg_pool2d
        return lambda x: pool(x, workload.kernel_size, workload.stride, workload.padding)
    if workload.direction == "forward":
        def forward(*arrays):
            with torch.no_grad():
                return torch_norm(workload, *arrays)
        return forward
    leaves = [tensor.requires_grad_() for tensor in tensors[1:]]
    out = torch_norm(workload, *leaves)
    return lambda grad, *copied: torch.autograd.grad(out, leaves, grad, retain_graph=True)


def _to_host(value):
    """Tensors (or tuples of them) as NumPy arrays."""
    if isinstance(value, tuple | list):
        return tuple(map(_to_host, value))
    return value.detach().cpu().numpy()


def torch_calls(case, inputs, device: str = "cuda"):
    """``(on_device, with_transfers)`` callables of torch on ``case``.

    ``device`` is where torch computes (the tests use ``'cpu'``).
    """
    torch = importlib.import_module("torch")

    def to_device(array):
        return torch.from_numpy(array).to(device)

    tensors = [to_device(array) for array in inputs]
    run = _torch_function(torch, case.workload, tensors)
    return (lambda: run(*tensors),
            lambda: _to_host(run(*[to_device(array) for array in inputs])))


def cupy_calls(case, inputs):
    """``(on_device, with_transfers)`` callables of ``cupyx.scipy.signal.correlate2d`` (G1)."""
    cupy = importlib.import_module("cupy")
    signal = importlib.import_module("cupyx.scipy.signal")
    mode = case.workload.mode
    image, kernel = (cupy.asarray(array) for array in inputs)
    return (lambda: signal.correlate2d(image, kernel, mode=mode),
            lambda: signal.correlate2d(*map(cupy.asarray, inputs), mode=mode).get())


def torch_event_library():
    """``(make_event, elapsed_ms, synchronize)`` of torch's CUDA events."""
    torch = importlib.import_module("torch")
    return (lambda: torch.cuda.Event(enable_timing=True),
            lambda start, end: start.elapsed_time(end), torch.cuda.synchronize)


def cupy_event_library():
    """``(make_event, elapsed_ms, synchronize)`` of CuPy's CUDA events."""
    cupy = importlib.import_module("cupy")
    return (cupy.cuda.Event, cupy.cuda.get_elapsed_time,
            lambda: cupy.cuda.Device().synchronize())


def versions() -> dict:
    """torch's and CuPy's versions and what they run on (None where absent)."""
    found = {"torch": None, "torch_cuda": None, "cudnn": None, "cupy": None,
             "cupy_cuda_runtime": None}
    if importlib.util.find_spec("torch") is not None:
        torch = importlib.import_module("torch")
        found.update(torch=torch.__version__, torch_cuda=torch.version.cuda)
        with contextlib.suppress(Exception):
            found["cudnn"] = torch.backends.cudnn.version()
    if importlib.util.find_spec("cupy") is not None:
        with contextlib.suppress(Exception), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            cupy = importlib.import_module("cupy")
            found["cupy"] = cupy.__version__
            found["cupy_cuda_runtime"] = cupy.cuda.runtime.runtimeGetVersion()
    return found
