"""What every CUDA kernel module shares: transfers and launch geometry.

Entry points take host (NumPy) or device arrays.  :func:`to_device` gives a
device view of each input (device arrays as they are, zero-copy; host arrays
copied once), :func:`empty` allocates results on the device, and
:func:`finish` hands a result back the way the caller gave its main input:
a NumPy array for a NumPy input, the device array for a device input.

Launch sizes are module attributes read at every launch, never compiled into
a kernel, so that the tests can shrink them and make the CUDA simulator run
several blocks on tiny shapes.
"""

from __future__ import annotations

import numpy as np
from numba import cuda

from ..._arrays import is_device as is_device_array  # noqa: F401 - one definition

# Threads per block of a 1-D launch (one thread per output element).
THREADS_PER_BLOCK = 256
# Side of the square blocks of 2-D launches (a TILE x TILE output tile).
TILE = 16


def as_device(value):
    """A numba device array on the memory of device array ``value`` (zero-copy).

    Numba's device arrays (and the simulator's) are returned as they are;
    other ``__cuda_array_interface__`` objects (CuPy arrays, torch CUDA
    tensors) are wrapped by ``cuda.as_cuda_array``, which waits for the
    producer's stream where the interface names one.
    """
    if getattr(value, "__cuda_ndarray__", False):
        return value
    if not hasattr(cuda, "as_cuda_array"):
        raise TypeError("numba's CUDA simulator takes its own device arrays only "
                        f"(numba.cuda.to_device), got {type(value).__name__}")
    return cuda.as_cuda_array(value)


def to_device(array):
    """``array`` on the device: itself (zero-copy) if there, else a copy; None stays None."""
    if array is None:
        return None
    if is_device_array(array):
        return as_device(array)
    return cuda.to_device(np.ascontiguousarray(array))


def empty(shape, dtype):
    """An uninitialised device array (every kernel writing into one writes all of it)."""
    return cuda.device_array(tuple(int(n) for n in shape), dtype=np.dtype(dtype))


def finish(result, like):
    """``result`` (a device array) for a caller whose main input was ``like``."""
    return result if is_device_array(like) else result.copy_to_host()


def grid_1d(count: int) -> tuple[int, int]:
    """``(blocks, threads)`` covering ``count`` threads with ``THREADS_PER_BLOCK`` per block."""
    return max(1, -(-int(count) // THREADS_PER_BLOCK)), THREADS_PER_BLOCK


def grid_2d(rows: int, columns: int, planes: int = 1) -> tuple[tuple, tuple]:
    """``(blocks, threads)`` of ``TILE x TILE`` blocks over a ``rows x columns`` grid, per plane.

    ``cuda.grid(2)`` gives ``(column, row)``; ``blockIdx.z`` is the plane.
    """
    blocks = (max(1, -(-int(columns) // TILE)), max(1, -(-int(rows) // TILE)), max(1, int(planes)))
    return blocks, (TILE, TILE, 1)


def status() -> dict:
    """Whether CUDA kernels can run here, and on what.

    Returns ``{"available", "reason", "implementation", "device", "driver"}``:
    ``implementation`` names the numba CUDA target that loaded (numba-cuda,
    or numba's own built-in one) and whether it is the simulator; ``device``
    and ``driver`` are None where there is no GPU, and ``reason`` says why
    CUDA is unavailable (None where it is available).
    """
    found = {"available": False, "reason": None, "implementation": _implementation(),
             "device": None, "driver": None}
    try:
        if not cuda.is_available():
            found["reason"] = ("numba.cuda finds no CUDA driver or GPU (NUMBA_ENABLE_CUDASIM=1 "
                               "runs the kernels on numba's CUDA simulator instead)")
            return found
        found["available"] = True
        if _simulated():
            found["device"] = "numba CUDA simulator (NUMBA_ENABLE_CUDASIM=1)"
            return found
        device = cuda.get_current_device()
        name = device.name.decode() if isinstance(device.name, bytes) else str(device.name)
        capability = ".".join(map(str, device.compute_capability))
        found["device"] = f"{name} (compute capability {capability})"
        major, minor = cuda.cudadrv.driver.driver.get_version()
        found["driver"] = f"CUDA {major}.{minor}"
    except Exception as exc:  # noqa: BLE001 - a broken CUDA install is a finding, not a crash
        found["available"] = False
        found["reason"] = f"{type(exc).__name__}: {exc}"
    return found


def _simulated() -> bool:
    import numba

    config = getattr(cuda, "config", None) or numba.config
    return bool(getattr(config, "ENABLE_CUDASIM", 0))


def _implementation() -> str:
    try:
        from importlib.metadata import version

        name = f"numba-cuda {version('numba-cuda')}"
    except Exception:  # noqa: BLE001 - not installed: numba's own, deprecated target
        import numba

        name = f"numba {numba.__version__} built-in CUDA target"
    return name + (" (simulator)" if _simulated() else "")
