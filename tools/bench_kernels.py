"""Side-by-side benchmark of the numba backend's kernels (BENCH.md workloads C1, C2, C7).

Usage::

    /work/venv/bin/python tools/bench_kernels.py            # C1, C2 and C7
    /work/venv/bin/python tools/bench_kernels.py c2 --rounds 5
    /work/venv/bin/python tools/bench_kernels.py c1 --quick  # valid mode, fewer repeats

Every ratio is measured in one process, fastcorr and its peer alternating in
blocks: each block warms up for at least 0.25 s (so that the other library's
spinning thread pools have gone quiet, see BENCH.md) and then times
``--repeats`` calls; the figure is the median over all blocks.  Threads: all
cores for everyone (``fastcorr.set_num_threads``, ``torch.set_num_threads``).
Every output is checked against the peer's before it is timed.

``--cpu-time`` measures instead the CPU time (``time.process_time``) of one
thread for everyone: on a machine whose cores other processes keep busy
(ours: load average 5-8 on 2 cores while this was written) wall-clock
medians mostly measure the scheduler, while one thread's CPU time still
compares the kernels themselves.  Report which mode a figure came from.

C7 (first-call latency) runs fresh subprocesses: once with an empty numba
cache directory (cold: compiles) and once more with the same directory
(warm: loads from the cache).
"""

from __future__ import annotations

import os

# Two OpenMP runtimes live in this process (numba's 'omp' threading layer uses
# the system libgomp, torch bundles its own).  With the default active wait,
# each one's idle threads spin while the other works: measured here, torch
# conv2d ran 2.7x slower after one numba parallel call, and our kernels
# showed 8 ms scheduler-quantum steps.  Passive waiting removes that; it must
# be set before either runtime is loaded.  Override by exporting it.
os.environ.setdefault("OMP_WAIT_POLICY", "passive")

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

C2_LAYERS = {
    # name: (N, C, size, F, k, padding, stride)
    "L1": (8, 64, 56, 64, 3, 1, 1),
    "L2": (8, 128, 28, 128, 3, 1, 1),
    "L3": (8, 256, 14, 256, 3, 1, 1),
    "L4": (8, 3, 224, 64, 7, 3, 2),
    "L5": (8, 64, 56, 256, 1, 0, 1),
    "L6": (1, 50, 50, 1, 3, 0, 1),
    "L7": (20, 20, 50, 20, 3, 1, 1),
}
C1_KERNELS = (3, 7, 15, 31)
C1_MODES = ("full", "valid", "same")


def environment() -> dict:
    """Versions and thread pools, to print with every set of figures."""
    import numba
    import scipy

    import fastcorr

    info = {
        "python": platform.python_version(),
        "machine": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "numba": numba.__version__,
        "fastcorr threads": fastcorr.get_num_threads(),
        "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY"),
    }
    try:
        import torch

        info["torch"] = torch.__version__
        info["torch threads"] = torch.get_num_threads()
    except ImportError:
        pass
    try:
        info["numba threading layer"] = numba.threading_layer()
    except ValueError:  # no parallel function has run yet
        info["numba threading layer"] = "not initialised"
    try:
        from threadpoolctl import threadpool_info

        info["thread pools"] = [
            f"{pool['internal_api']} {pool.get('version')} threads={pool['num_threads']}"
            for pool in threadpool_info()
        ]
    except ImportError:
        info["thread pools"] = "threadpoolctl not installed"
    return info


CLOCK = time.perf_counter  # time.process_time with --cpu-time


def _time_block(func, repeats: int, warmup: float) -> list[float]:
    start = time.perf_counter()
    while time.perf_counter() - start < warmup:
        func()
    times = []
    for _ in range(repeats):
        begin = CLOCK()
        func()
        times.append(CLOCK() - begin)
    return times


def side_by_side(ours, peer, rounds: int, repeats: int, peer_repeats: int | None = None,
                 warmup: float = 0.25) -> tuple[float, float]:
    """Median seconds of ``ours`` and ``peer``, timed in alternating blocks."""
    our_times, peer_times = [], []
    for _ in range(rounds):
        our_times += _time_block(ours, repeats, warmup)
        peer_times += _time_block(peer, peer_repeats or repeats, warmup if peer_repeats is None
                                  else 0.0)
    return float(np.median(our_times)), float(np.median(peer_times))


def bench_c1(args) -> list[dict]:
    import scipy.signal

    import fastcorr
    from fastcorr import _tuning

    rng = np.random.default_rng(0)
    rows = []
    modes = ("valid",) if args.quick else C1_MODES
    for dtype in (np.float32, np.float64):
        image = rng.standard_normal((1024, 1024)).astype(dtype)
        for k in C1_KERNELS:
            kernel = rng.standard_normal((k, k)).astype(dtype)
            for mode in modes:
                def ours(image=image, kernel=kernel, mode=mode):
                    return fastcorr.correlate2d(image, kernel, mode, backend="numba")

                def peer(image=image, kernel=kernel, mode=mode):
                    return scipy.signal.correlate2d(image, kernel, mode)

                expected = peer()
                got = ours()
                scale = np.abs(expected).max()
                tolerance = 1e-4 if dtype == np.float32 else 1e-10
                assert got.shape == expected.shape and got.dtype == expected.dtype
                assert np.abs(got - expected).max() <= tolerance * scale, (k, mode)
                # scipy takes up to seconds per call: one warm call, few repeats.
                ours_s, peer_s = side_by_side(ours, peer, args.rounds, args.repeats,
                                              peer_repeats=1 if args.quick else 2)
                padded = {"full": 1024 + 2 * (k - 1), "same": 1024 + k - 1, "valid": 1024}[mode]
                method = _tuning.choose_correlate_method("numba", (padded, padded), (k, k),
                                                         np.dtype(dtype))
                outputs = expected.size
                rows.append({
                    "workload": f"C1 {np.dtype(dtype).name} k={k} {mode}",
                    "method": method,
                    "fastcorr_ms": ours_s * 1e3,
                    "peer": "scipy.signal.correlate2d",
                    "peer_ms": peer_s * 1e3,
                    "ratio": peer_s / ours_s,
                    "gflops": 2 * outputs * k * k / ours_s / 1e9,
                })
                print(_format_row(rows[-1]), flush=True)
    return rows


def bench_c1_methods(args) -> list[dict]:
    """Direct vs FFT on C1's 'valid' case, to check the auto choice (the lead's FFT)."""
    from fastcorr import _tuning
    from fastcorr.kernels.numba import correlate_fft, correlate_valid

    rng = np.random.default_rng(0)
    rows = []
    for dtype in (np.float32, np.float64):
        image = rng.standard_normal((1024, 1024)).astype(dtype)
        for k in C1_KERNELS:
            kernel = rng.standard_normal((k, k)).astype(dtype)
            def direct(image=image, kernel=kernel):
                return correlate_valid(image, kernel)

            def fft(image=image, kernel=kernel):
                return correlate_fft(image, kernel)

            direct_s, fft_s = side_by_side(direct, fft, args.rounds, args.repeats)
            choice = _tuning.choose_correlate_method("numba", image.shape, kernel.shape,
                                                     np.dtype(dtype))
            faster = "direct" if direct_s <= fft_s else "fft"
            rows.append({
                "workload": f"C1 {np.dtype(dtype).name} k={k} valid: direct vs fft",
                "method": f"auto={choice} (faster: {faster})",
                "fastcorr_ms": direct_s * 1e3,
                "peer": "fastcorr fft",
                "peer_ms": fft_s * 1e3,
                "ratio": fft_s / direct_s,
                "gflops": 2 * (1025 - k) ** 2 * k * k / direct_s / 1e9,
            })
            print(_format_row(rows[-1]), flush=True)
    return rows


def bench_c2(args) -> list[dict]:
    import torch

    import fastcorr
    from fastcorr import _tuning

    torch.set_num_threads(fastcorr.get_num_threads())
    rows = []
    for name, (batch, channels, size, filters, k, padding, stride) in C2_LAYERS.items():
        if args.layers and name not in args.layers:
            continue
        rng = np.random.default_rng(0)
        x = rng.standard_normal((batch, channels, size, size), dtype=np.float32)
        weight = rng.standard_normal((filters, channels, k, k), dtype=np.float32)
        bias = rng.standard_normal(filters, dtype=np.float32)
        x_t, weight_t, bias_t = map(torch.from_numpy, (x, weight, bias))
        def ours(x=x, weight=weight, bias=bias, stride=stride, padding=padding):
            return fastcorr.conv2d(x, weight, bias, stride, padding, backend="numba")

        def peer(x=x_t, weight=weight_t, bias=bias_t, stride=stride, padding=padding):
            return torch.nn.functional.conv2d(x, weight, bias, stride, padding)

        expected = peer().numpy()
        got = ours()
        assert got.shape == expected.shape and got.dtype == expected.dtype
        assert np.abs(got - expected).max() <= 1e-4 * np.abs(expected).max(), name
        ours_s, peer_s = side_by_side(ours, peer, args.rounds, args.repeats)
        padded = size + 2 * padding
        algorithm = _tuning.choose_conv_algorithm(
            (batch, channels, 1, padded, padded), (filters, channels, 1, k, k),
            (1, stride, stride), (1, 1, 1), 1)
        out_size = expected.shape[-1]
        flops = 2 * batch * filters * out_size * out_size * channels * k * k
        rows.append({
            "workload": f"C2 {name} float32",
            "method": algorithm,
            "fastcorr_ms": ours_s * 1e3,
            "peer": "torch conv2d",
            "peer_ms": peer_s * 1e3,
            "ratio": peer_s / ours_s,
            "gflops": flops / ours_s / 1e9,
        })
        print(_format_row(rows[-1]), flush=True)
    return rows


_FIRST_CALL = """
import time, numpy as np
start = time.perf_counter()
import importlib
backend = importlib.import_module("fastcorr.kernels.numba")
imported = time.perf_counter() - start
x = np.random.default_rng(0).standard_normal((1, 3, 1, 20, 20)).astype(np.float32)
w = np.random.default_rng(1).standard_normal((4, 3, 1, 3, 3)).astype(np.float32)
start = time.perf_counter()
{call}
first = time.perf_counter() - start
start = time.perf_counter()
{call}
second = time.perf_counter() - start
print(imported, first, second)
"""
_FIRST_CALLS = {
    "conv_forward (float32, stride 1)":
        "backend.conv_forward(x, w, None, (1, 1, 1), (1, 1, 1), 1)",
    "conv_forward (float32, stride 2)":
        "backend.conv_forward(x, w, None, (1, 2, 2), (1, 1, 1), 1)",
    "correlate_valid (float32 2-d)":
        "backend.correlate_valid(x[0, 0, 0], w[0, 0, 0])",
    "correlate_valid (float64 2-d)":
        "backend.correlate_valid(x[0, 0, 0].astype(np.float64), w[0, 0, 0].astype(np.float64))",
}


def bench_c7(args) -> list[dict]:
    rows = []
    for name, call in _FIRST_CALLS.items():
        with tempfile.TemporaryDirectory() as cache:
            env = dict(os.environ, NUMBA_CACHE_DIR=cache)
            times = []
            for state in ("cold", "warm"):
                result = subprocess.run([sys.executable, "-c", _FIRST_CALL.format(call=call)],
                                        env=env, capture_output=True, text=True, check=True)
                imported, first, second = map(float, result.stdout.split())
                times.append((state, imported, first, second))
        for state, imported, first, second in times:
            rows.append({"workload": f"C7 {name}, {state} cache", "import_s": imported,
                         "first_call_s": first, "second_call_s": second})
            print(f"{rows[-1]['workload']:<48} import {imported:5.2f} s  first call "
                  f"{first:5.2f} s  second call {second * 1e3:7.2f} ms", flush=True)
    return rows


def _format_row(row: dict) -> str:
    return (f"{row['workload']:<44} {row['method']:<14} fastcorr {row['fastcorr_ms']:9.3f} ms "
            f"({row['gflops']:6.1f} GFLOP/s)  {row['peer']} {row['peer_ms']:9.3f} ms  "
            f"ratio {row['ratio']:7.2f}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("workloads", nargs="*", default=["c1", "c1methods", "c2", "c7"],
                        help="any of c1, c1methods, c2, c7")
    parser.add_argument("--rounds", type=int, default=3, help="alternating blocks per case")
    parser.add_argument("--repeats", type=int, default=5, help="timed calls per block")
    parser.add_argument("--layers", nargs="*", help="C2 layers to run (default all)")
    parser.add_argument("--quick", action="store_true", help="C1 'valid' mode only")
    parser.add_argument("--json", help="also write the rows to this file")
    parser.add_argument("--cpu-time", action="store_true",
                        help="CPU time of one thread for everyone, instead of wall time")
    args = parser.parse_args(argv)

    import fastcorr

    global CLOCK
    if args.cpu_time:
        CLOCK = time.process_time
        fastcorr.set_num_threads(1)
    else:
        fastcorr.set_num_threads(os.cpu_count() or 1)
    print(f"clock: {'CPU time, 1 thread' if args.cpu_time else 'wall time, all threads'}; "
          f"load average before: {os.getloadavg()}", flush=True)
    rows = []
    runners = {"c1": bench_c1, "c1methods": bench_c1_methods, "c2": bench_c2, "c7": bench_c7}
    for workload in args.workloads:
        rows += runners[workload](args)
    env = environment()
    env["clock"] = "process_time, 1 thread" if args.cpu_time else "perf_counter, all threads"
    env["load average after"] = os.getloadavg()
    print(json.dumps(env, indent=1))
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"environment": env, "rows": rows}, handle, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
