"""Side-by-side benchmark of the numba training kernels against torch (BENCH.md C4, C5, C6).

Usage::

    /work/venv/bin/python tools/bench_training_kernels.py               # C4, C5, C6
    /work/venv/bin/python tools/bench_training_kernels.py c5 --rounds 5
    /work/venv/bin/python tools/bench_training_kernels.py c6 --cpu-time
    /work/venv/bin/python tools/bench_training_kernels.py --compile     # first-call compile times

Every figure goes through the public functions (``fastcorr.max_pool2d``,
``fastcorr.batch_norm_backward``, ``fastcorr.conv2d_backward``, ...) with
``backend='numba'``, against the torch call a user would write: pooling
without indices (``global`` pooling: the faster of ``adaptive_*_pool2d(x,
1)`` and ``x.mean/amax((2, 3))``), norms under ``torch.no_grad()``, and
backward passes as ``torch.autograd.grad`` of the forward output with a
given gradient.  Every output is checked against torch's before it is timed.

Timing protocol (BENCH.md): fastcorr and torch alternate in blocks; each
block warms up for at least 0.25 s and then times ``--repeats`` calls; a
figure is the median over ``--rounds`` blocks of each.  Threads: all usable
cores for everyone (``fastcorr.set_num_threads``, ``torch.set_num_threads``,
threadpoolctl for BLAS).  ``--cpu-time`` times instead the CPU time
(``time.process_time``) of one thread for everyone: on a shared machine
wall-clock medians can measure the scheduler more than the kernels.
Memory-bound workloads also report GB/s counted as BENCH.md does (bytes
that must move at the least) and its share of the measured copy bandwidth
(``copyto`` of 100 MB, read + write counted).

``--compile`` times each kernel's first call in a fresh subprocess with an
empty numba cache directory (compilation), then again with that cache
(loading).

While the lead has not yet added the kernels of
``fastcorr/kernels/numba/{pool,norm,grad}.py`` to the numba backend's entry
points, this script adds the missing ones itself and says so.
"""

from __future__ import annotations

import os

# numba's 'omp' threading layer and torch load two OpenMP runtimes; with the
# default active wait each one's idle threads spin while the other works
# (see tools/bench_kernels.py).  Set before either runtime is loaded.
os.environ.setdefault("OMP_WAIT_POLICY", "passive")

import argparse  # noqa: E402
import importlib  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

# Entry points of the numba backend that live in these modules.
ENTRY_POINTS = {
    "pool": ("max_pool", "avg_pool", "max_pool_backward", "avg_pool_backward"),
    "norm": ("moments", "dot_moments", "scale_shift", "axpby", "layer_normalize",
             "layer_norm_backward"),
    "grad": ("conv_transpose", "conv_weight_grad"),
}
C4_SHAPE = (32, 64, 112, 112)
C5_SHAPES = {(32, 64, 56, 56): 8, (20, 20, 50, 50): 4}  # shape: groups of group norm
C6_LAYERS = {"L1": (8, 64, 56, 64), "L2": (8, 128, 28, 128), "L7": (20, 20, 50, 20)}

CLOCK = time.perf_counter  # time.process_time with --cpu-time


def wire_entry_points() -> list[str]:
    """Add this task's kernels to the numba backend where it lacks them; the names added."""
    backend = importlib.import_module("fastcorr.kernels.numba")
    added = []
    for module_name, names in ENTRY_POINTS.items():
        module = importlib.import_module(f"fastcorr.kernels.numba.{module_name}")
        for name in names:
            if not hasattr(backend, name):
                setattr(backend, name, getattr(module, name))
                added.append(name)
    return added


def environment() -> dict:
    """Versions, threads and thread pools, to print with every set of figures."""
    import numba
    import torch

    import fastcorr

    info = {
        "python": platform.python_version(),
        "machine": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "numpy": np.__version__,
        "numba": numba.__version__,
        "torch": torch.__version__,
        "fastcorr threads": fastcorr.get_num_threads(),
        "torch threads": torch.get_num_threads(),
        "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY"),
    }
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


def side_by_side(ours, peer, rounds: int, repeats: int, warmup: float = 0.25):
    """Median seconds of ``ours`` and ``peer``, timed in alternating blocks."""
    our_times, peer_times = [], []
    for _ in range(rounds):
        our_times += _time_block(ours, repeats, warmup)
        peer_times += _time_block(peer, repeats, warmup)
    return float(np.median(our_times)), float(np.median(peer_times))


def fastest(*peers, repeats: int = 5):
    """The fastest of equivalent peer calls (after one warm call each)."""
    best, best_time = None, np.inf
    for peer in peers:
        peer()
        elapsed = min(_time_block(peer, repeats, 0.0))
        if elapsed < best_time:
            best, best_time = peer, elapsed
    return best


def copy_bandwidth() -> float:
    """GB/s of ``np.copyto`` on 100 MB, read + write counted (BENCH.md's copy figure)."""
    source = np.random.default_rng(0).standard_normal(12_500_000)
    target = np.empty_like(source)
    seconds = min(_time_block(lambda: np.copyto(target, source), 9, 0.25))
    return 2 * source.nbytes / seconds / 1e9


def check(got, expected, what: str, rtol: float = 1e-4) -> None:
    """Fail loudly when fastcorr and torch disagree (float32: relative to the largest value)."""
    expected = expected.detach().numpy() if hasattr(expected, "detach") else expected
    assert got.shape == expected.shape, f"{what}: shape {got.shape} != {expected.shape}"
    scale = max(1.0, float(np.abs(expected).max()))
    error = float(np.abs(got.astype(np.float64) - expected).max())
    assert error <= rtol * scale, f"{what}: max error {error:.3g} > {rtol:g} * {scale:.3g}"


def _row(workload, ours_s, peer_s, peer, work=None, unit="GB/s", copy=None):
    row = {"workload": workload, "fastcorr_ms": ours_s * 1e3, "peer": peer,
           "peer_ms": peer_s * 1e3, "ratio": peer_s / ours_s}
    if work is not None:
        row[unit] = work / ours_s / 1e9
        if copy is not None and unit == "GB/s":
            row["copy_share"] = row[unit] / copy
    print(_format_row(row), flush=True)
    return row


def _format_row(row: dict) -> str:
    text = (f"{row['workload']:<42} fastcorr {row['fastcorr_ms']:8.3f} ms  "
            f"{row['peer']:<22} {row['peer_ms']:8.3f} ms  ratio {row['ratio']:5.2f}")
    for unit in ("GB/s", "GFLOP/s"):
        if unit in row:
            text += f"  {row[unit]:6.1f} {unit}"
    if "copy_share" in row:
        text += f" ({100 * row['copy_share']:.0f}% of copy)"
    return text


def bench_c4(args, copy) -> list[dict]:
    import torch
    import torch.nn.functional as F

    import fastcorr

    x = np.random.default_rng(0).standard_normal(C4_SHAPE, dtype=np.float32)
    x_t = torch.from_numpy(x)
    cases = [
        ("max k2 s2", lambda: fastcorr.max_pool2d(x, 2, 2, backend="numba"),
         lambda: F.max_pool2d(x_t, 2, 2), "F.max_pool2d"),
        ("max k3 s2 p1", lambda: fastcorr.max_pool2d(x, 3, 2, 1, backend="numba"),
         lambda: F.max_pool2d(x_t, 3, 2, 1), "F.max_pool2d"),
        ("avg k2 s2", lambda: fastcorr.avg_pool2d(x, 2, 2, backend="numba"),
         lambda: F.avg_pool2d(x_t, 2, 2), "F.avg_pool2d"),
        ("global avg", lambda: fastcorr.global_avg_pool2d(x, backend="numba"),
         fastest(lambda: F.adaptive_avg_pool2d(x_t, 1)[..., 0, 0],
                 lambda: x_t.mean((2, 3))), "torch (fastest)"),
        ("global max", lambda: fastcorr.global_max_pool2d(x, backend="numba"),
         fastest(lambda: F.adaptive_max_pool2d(x_t, 1)[..., 0, 0],
                 lambda: x_t.amax((2, 3))), "torch (fastest)"),
    ]
    rows = []
    for name, ours, peer, peer_name in cases:
        out = ours()
        check(out, peer(), f"C4 {name}")
        ours_s, peer_s = side_by_side(ours, peer, args.rounds, args.repeats)
        rows.append(_row(f"C4 {name}", ours_s, peer_s, peer_name, x.nbytes + out.nbytes,
                         copy=copy))
    return rows


def _norm_cases(x, dy, groups):
    """``{name: (forward, backward, torch forward, torch parameters)}`` for one C5 shape."""
    import torch
    import torch.nn.functional as F

    import fastcorr

    rng = np.random.default_rng(1)
    channels = x.shape[1]
    weight = rng.standard_normal(channels).astype(np.float32)
    bias = rng.standard_normal(channels).astype(np.float32)
    layer_weight = rng.standard_normal(x.shape[1:]).astype(np.float32)
    layer_bias = rng.standard_normal(x.shape[1:]).astype(np.float32)
    x_t = torch.from_numpy(x).requires_grad_()
    w_t, b_t = (torch.from_numpy(v).requires_grad_() for v in (weight, bias))
    lw_t, lb_t = (torch.from_numpy(v).requires_grad_() for v in (layer_weight, layer_bias))
    shape = x.shape[1:]
    return x_t, {
        "batch": (lambda: fastcorr.batch_norm(x, None, None, weight, bias, training=True,
                                              backend="numba"),
                  lambda: fastcorr.batch_norm_backward(dy, x, None, None, weight, bias,
                                                       training=True, backend="numba"),
                  lambda: F.batch_norm(x_t, None, None, w_t, b_t, training=True), (w_t, b_t)),
        "layer": (lambda: fastcorr.layer_norm(x, shape, layer_weight, layer_bias,
                                              backend="numba"),
                  lambda: fastcorr.layer_norm_backward(dy, x, shape, layer_weight, layer_bias,
                                                       backend="numba"),
                  lambda: F.layer_norm(x_t, shape, lw_t, lb_t), (lw_t, lb_t)),
        "instance": (lambda: fastcorr.instance_norm(x, weight=weight, bias=bias,
                                                    backend="numba"),
                     lambda: fastcorr.instance_norm_backward(dy, x, weight=weight, bias=bias,
                                                             backend="numba"),
                     lambda: F.instance_norm(x_t, weight=w_t, bias=b_t), (w_t, b_t)),
        "group": (lambda: fastcorr.group_norm(x, groups, weight, bias, backend="numba"),
                  lambda: fastcorr.group_norm_backward(dy, x, groups, weight, bias,
                                                       backend="numba"),
                  lambda: F.group_norm(x_t, groups, w_t, b_t), (w_t, b_t)),
    }


def bench_c5(args, copy) -> list[dict]:
    import torch

    rows = []
    for shape, groups in C5_SHAPES.items():
        rng = np.random.default_rng(0)
        x = rng.standard_normal(shape, dtype=np.float32)
        dy = rng.standard_normal(shape, dtype=np.float32)
        dy_t = torch.from_numpy(dy)
        x_t, cases = _norm_cases(x, dy, groups)
        label = "x".join(map(str, shape))
        for name, (forward, backward, torch_forward, params) in cases.items():
            if args.norms and name not in args.norms:
                continue

            def peer_forward(torch_forward=torch_forward):
                with torch.no_grad():
                    return torch_forward()

            out_t = torch_forward()

            def peer_backward(out_t=out_t, params=params, x_t=x_t, dy_t=dy_t):
                return torch.autograd.grad(out_t, (x_t,) + params, dy_t, retain_graph=True)

            check(forward(), peer_forward(), f"C5 {name} forward")
            for got, expected in zip(backward(), peer_backward()):
                check(got, expected, f"C5 {name} backward", rtol=1e-3)
            ours_s, peer_s = side_by_side(forward, peer_forward, args.rounds, args.repeats)
            rows.append(_row(f"C5 {name} forward {label}", ours_s, peer_s, "torch", 2 * x.nbytes,
                             copy=copy))
            ours_s, peer_s = side_by_side(backward, peer_backward, args.rounds, args.repeats)
            rows.append(_row(f"C5 {name} backward {label}", ours_s, peer_s, "torch autograd",
                             3 * x.nbytes, copy=copy))
    return rows


def bench_c6(args, copy) -> list[dict]:
    import torch
    import torch.nn.functional as F

    import fastcorr

    rows = []
    for name, (batch, channels, size, filters) in C6_LAYERS.items():
        rng = np.random.default_rng(0)
        x = rng.standard_normal((batch, channels, size, size), dtype=np.float32)
        weight = rng.standard_normal((filters, channels, 3, 3), dtype=np.float32)
        x_t = torch.from_numpy(x).requires_grad_()
        w_t = torch.from_numpy(weight).requires_grad_()
        b_t = torch.zeros(filters, requires_grad=True)
        out_t = F.conv2d(x_t, w_t, b_t, padding=1)
        grad = rng.standard_normal(tuple(out_t.shape), dtype=np.float32)
        grad_t = torch.from_numpy(grad)

        def ours(x=x, weight=weight, grad=grad):
            return fastcorr.conv2d_backward(grad, x, weight, 1, 1, backend="numba")

        def peer(out_t=out_t, x_t=x_t, w_t=w_t, b_t=b_t, grad_t=grad_t):
            return torch.autograd.grad(out_t, (x_t, w_t, b_t), grad_t, retain_graph=True)

        terms = batch * size * size
        for got, expected in zip(ours(), peer()):
            check(got, expected, f"C6 {name}", rtol=1e-5 * max(1.0, np.sqrt(terms) / 8))
        ours_s, peer_s = side_by_side(ours, peer, args.rounds, args.repeats)
        flops = 2 * 2 * grad.size * channels * 9  # input and weight gradients
        rows.append(_row(f"C6 {name} conv2d_backward", ours_s, peer_s, "torch autograd", flops,
                         unit="GFLOP/s"))
    return rows


# First calls, in a fresh process: each kernel on small float32 inputs.
_COMPILE_SNIPPETS = {
    "max_pool": "fastcorr.max_pool2d(x4, 3, 2, 1, backend='numba')",
    "avg_pool": "fastcorr.avg_pool2d(x4, 3, 2, 1, backend='numba')",
    "max_pool_backward": "fastcorr.max_pool2d_backward(np.ones((2, 3, 4, 4), np.float32), x4, "
                         "3, 2, 1, backend='numba')",
    "avg_pool_backward": "fastcorr.avg_pool2d_backward(np.ones((2, 3, 4, 4), np.float32), x4, "
                         "3, 2, 1, backend='numba')",
    "moments": "fastcorr.moments(x4, (0, 2, 3), backend='numba')",
    "scale_shift": "nb.scale_shift(x4.reshape(2, 3, -1), np.ones(3, np.float32), "
                   "np.zeros(3, np.float32))",
    "dot_moments": "nb.dot_moments(x4.reshape(2, 3, -1), x4.reshape(2, 3, -1), np.zeros(3))",
    "axpby": "nb.axpby(x4.reshape(2, 3, -1), x4.reshape(2, 3, -1), *np.ones((3, 3), "
             "np.float32))",
    "layer_normalize": "fastcorr.layer_norm(x4, x4.shape[1:], backend='numba')",
    "layer_norm_backward": "fastcorr.layer_norm_backward(x4, x4, x4.shape[1:], "
                           "backend='numba')",
    "conv_transpose": "nb.conv_transpose(np.ones((2, 4, 1, 6, 6), np.float32), "
                      "np.ones((4, 3, 1, 3, 3), np.float32), (1, 1, 1), (1, 1, 1), 1, (1, 8, 8))",
    "conv_weight_grad": "nb.conv_weight_grad(np.ones((2, 3, 1, 8, 8), np.float32), "
                        "np.ones((2, 4, 1, 6, 6), np.float32), (1, 3, 3), (1, 1, 1), (1, 1, 1), 1)",
}


def bench_compile(args) -> list[dict]:
    """Seconds of each kernel's first call in a fresh process: cold cache, then warm."""
    rows = []
    with tempfile.TemporaryDirectory() as cache:
        for name, call in _COMPILE_SNIPPETS.items():
            program = (
                "import time, importlib, numpy as np, fastcorr\n"
                f"sys_path = {os.path.dirname(os.path.abspath(__file__))!r}\n"
                "import sys; sys.path.insert(0, sys_path)\n"
                "from bench_training_kernels import wire_entry_points; wire_entry_points()\n"
                "nb = importlib.import_module('fastcorr.kernels.numba')\n"
                "x4 = np.ones((2, 3, 8, 8), np.float32)\n"
                f"start = time.perf_counter(); {call}; print(time.perf_counter() - start)\n"
            )
            seconds = []
            for _ in ("cold", "warm"):
                env = dict(os.environ, NUMBA_CACHE_DIR=os.path.join(cache, name))
                done = subprocess.run([sys.executable, "-c", program], env=env, check=True,
                                      capture_output=True, text=True)
                seconds.append(float(done.stdout.strip().splitlines()[-1]))
            rows.append({"kernel": name, "cold_s": seconds[0], "warm_s": seconds[1]})
            print(f"{name:<22} first call: cold cache {seconds[0]:6.2f} s, "
                  f"warm cache {seconds[1]:5.2f} s", flush=True)
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("workloads", nargs="*", default=["c4", "c5", "c6"],
                        help="any of c4, c5, c6")
    parser.add_argument("--rounds", type=int, default=3, help="alternating blocks per case")
    parser.add_argument("--repeats", type=int, default=5, help="timed calls per block")
    parser.add_argument("--norms", nargs="*", help="C5 norms to run (default all)")
    parser.add_argument("--json", help="also write the rows to this file")
    parser.add_argument("--cpu-time", action="store_true",
                        help="CPU time of one thread for everyone, instead of wall time")
    parser.add_argument("--compile", action="store_true",
                        help="first-call compile times (fresh processes) instead of speed")
    args = parser.parse_args(argv)

    import torch

    import fastcorr

    added = wire_entry_points()
    if added:
        print(f"added to the numba backend for this run: {', '.join(added)}", flush=True)
    if args.compile:
        rows = bench_compile(args)
        if args.json:
            with open(args.json, "w") as handle:
                json.dump({"compile": rows}, handle, indent=1)
        return 0
    global CLOCK
    threads = 1 if args.cpu_time else len(os.sched_getaffinity(0))
    if args.cpu_time:
        CLOCK = time.process_time
    fastcorr.set_num_threads(threads)
    torch.set_num_threads(threads)
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(limits=threads)
    except ImportError:
        pass
    print(f"clock: {'CPU time, 1 thread' if args.cpu_time else f'wall time, {threads} threads'};"
          f" load average before: {os.getloadavg()}", flush=True)
    copy = copy_bandwidth()
    print(f"copy bandwidth (np.copyto 100 MB, read + write): {copy:.1f} GB/s", flush=True)
    rows = []
    runners = {"c4": bench_c4, "c5": bench_c5, "c6": bench_c6}
    for workload in args.workloads:
        rows += runners[workload](args, copy)
    env = environment()
    env["clock"] = "process_time, 1 thread" if args.cpu_time else f"perf_counter, {threads} threads"
    env["copy GB/s"] = copy
    env["added entry points"] = added
    env["load average after"] = os.getloadavg()
    print(json.dumps(env, indent=1))
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"environment": env, "rows": rows}, handle, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
