"""What a figure depends on: versions, CPU, thread counts, numba's threading layer, thread pools.

The benchmarks set every library's threads explicitly and record the thread
pools (threadpoolctl) with every result; both happen here.
"""

from __future__ import annotations

import contextlib
import datetime
import importlib
import importlib.metadata
import importlib.util
import os
import platform
import time

import numpy as np

import fastcorr
from fastcorr._dispatch import backends as backend_status

# Distribution name -> import name, in the order `fastcorr info` lists them.
_PACKAGES = {"numpy": "numpy", "scipy": "scipy", "numba": "numba", "llvmlite": "llvmlite",
             "torch": "torch", "opencv-python": "cv2", "threadpoolctl": "threadpoolctl"}


def _version(distribution: str, module: str) -> str | None:
    if importlib.util.find_spec(module) is None:
        return None
    for name in (distribution, f"{distribution}-headless"):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            return importlib.metadata.version(name)
    return getattr(importlib.import_module(module), "__version__", "unknown")


def versions() -> dict[str, str | None]:
    """Versions of fastcorr, Python and the libraries it uses or is compared with (None: absent)."""
    found = {"fastcorr": fastcorr.__version__,
             "python": f"{platform.python_version()} ({platform.python_implementation()})"}
    found.update({module: _version(dist, module) for dist, module in _PACKAGES.items()})
    return found


def cpu_model() -> str:
    """The CPU's model name (Linux), else what ``platform`` knows."""
    with contextlib.suppress(OSError):
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def usable_cpus() -> int:
    """Cores this process may run on (affinity), which is what thread counts default to."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def numba_threading_layer() -> dict[str, str]:
    """numba's configured threading layer and the one it actually loaded.

    The layer is only chosen when a parallel kernel first runs, so a tiny
    ``correlate2d`` on the numba backend runs first.
    """
    import numba

    layer = {"configured": str(numba.config.THREADING_LAYER)}
    try:
        fastcorr.correlate2d(np.ones((8, 8)), np.ones((3, 3)), backend="numba")
        layer["used"] = numba.threading_layer()
    except Exception as exc:  # noqa: BLE001 - reported, never fatal for `info`
        layer["used"] = f"unknown ({type(exc).__name__}: {exc})"
    return layer


def thread_pools() -> list[dict] | str:
    """BLAS and OpenMP pools loaded in this process (threadpoolctl), or why they are unknown."""
    if importlib.util.find_spec("threadpoolctl") is None:
        return "threadpoolctl is not installed"
    from threadpoolctl import threadpool_info

    keys = ("user_api", "internal_api", "prefix", "version", "num_threads", "threading_layer",
            "filepath")
    return [{key: pool.get(key) for key in keys} for pool in threadpool_info()]


def describe_pool(pool: dict) -> str:
    """``'openblas 0.3.30, 2 threads'`` for one entry of :func:`thread_pools`."""
    name = " ".join(filter(None, [pool["internal_api"], pool["version"]]))
    return f"{name}, {pool['num_threads']} threads"


def thread_counts() -> dict[str, int | None]:
    """Threads each library will use now (None: library absent)."""
    import numba

    counts = {"fastcorr": fastcorr.get_num_threads(), "numba": numba.get_num_threads(),
              "torch": None, "cv2": None}
    if importlib.util.find_spec("torch") is not None:
        counts["torch"] = importlib.import_module("torch").get_num_threads()
    if importlib.util.find_spec("cv2") is not None:
        counts["cv2"] = importlib.import_module("cv2").getNumThreads()
    return counts


def gpu() -> dict:
    """The CUDA device fastcorr's cuda backend sees, its driver and torch's CUDA version.

    None where absent; ``reason`` says why there is no device, where there is none.
    """
    status = backend_status()["cuda"]
    torch_cuda = None
    if importlib.util.find_spec("torch") is not None:
        torch_cuda = importlib.import_module("torch").version.cuda
    return {"devices": [status["device"]] if status["device"] else None,
            "driver_version": status["driver"], "torch_cuda_version": torch_cuda,
            "reason": status["reason"]}


def best_seconds(call, repeat: int) -> float:
    """Fastest of ``repeat`` timed calls of ``call``, after one untimed call."""
    call()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return min(times)


def measure_peaks(copy_bytes: int = 100_000_000, gemm_size: int = 4096,
                  settle_s: float = 0.25) -> dict:
    """The machine's measured copy bandwidth and sgemm speed, the targets' yardsticks.

    Parameters
    ----------
    copy_bytes : int
        Size of the array ``np.copyto`` copies (float64).
    gemm_size : int
        ``n`` of the float32 ``n x n @ n x n`` product (NumPy's BLAS).
    settle_s : float
        Pause after the products: BLAS threads keep spinning meanwhile.

    Returns
    -------
    dict
        ``copy_GBps`` (read + write counted, best of 5) and ``sgemm_GFLOPs``
        (best of 2), with the sizes.
    """
    source = np.random.default_rng(0).standard_normal(copy_bytes // 8)
    target = np.empty_like(source)
    copy_s = best_seconds(lambda: np.copyto(target, source), 5)
    a = np.random.default_rng(1).standard_normal((gemm_size, gemm_size)).astype(np.float32)
    gemm_s = best_seconds(lambda: a @ a, 2)
    time.sleep(settle_s)
    return {"copy_GBps": 2 * source.nbytes / copy_s / 1e9, "copy_bytes": source.nbytes,
            "sgemm_GFLOPs": 2 * gemm_size**3 / gemm_s / 1e9, "sgemm_size": gemm_size}


def load_average() -> float | None:
    """The 1-minute load average (None where the OS has none): other work competing for cores."""
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        return None


def collect() -> dict:
    """Everything above in one JSON-ready dict (runs one tiny numba kernel)."""
    return {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "platform": platform.platform(),
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "usable_cpus": usable_cpus(),
        "load_average": load_average(),
        "versions": versions(),
        "numba_threading_layer": numba_threading_layer(),
        "threads": thread_counts(),
        "thread_pools": thread_pools(),
        "backends": backend_status(),
        "gpu": gpu(),
    }


@contextlib.contextmanager
def thread_settings(threads: int):
    """Use ``threads`` threads in fastcorr, torch, OpenCV and every BLAS/OpenMP pool, then restore.

    Parameters
    ----------
    threads : int
        At least 1.
    """
    previous_fastcorr = fastcorr.get_num_threads()
    with contextlib.ExitStack() as restore:
        fastcorr.set_num_threads(threads)
        restore.callback(fastcorr.set_num_threads, previous_fastcorr)
        if importlib.util.find_spec("torch") is not None:
            torch = importlib.import_module("torch")
            restore.callback(torch.set_num_threads, torch.get_num_threads())
            torch.set_num_threads(threads)
        if importlib.util.find_spec("cv2") is not None:
            cv2 = importlib.import_module("cv2")
            restore.callback(cv2.setNumThreads, cv2.getNumThreads())
            cv2.setNumThreads(threads)
        if importlib.util.find_spec("threadpoolctl") is not None:
            from threadpoolctl import threadpool_limits

            restore.enter_context(threadpool_limits(limits=threads))
        yield
