"""Re-measure the dispatch constants of ``fastcorr/_tuning.py`` on this machine.

Usage::

    /work/venv/bin/python tools/measure_crossovers.py [--backends numba numpy scipy] [--quick]

Prints a block of constants to paste over the one in ``fastcorr/_tuning.py``
(nothing is written).  By default every figure is the *CPU time* of one
thread (``fastcorr.set_num_threads(1)``; ``time.process_time``), the fastest
of repeated calls after at least 0.25 s of warm-up: the choices compare two
algorithms that parallelise alike, so one thread's CPU time ranks them as
the machine's wall time would, and unlike wall time it does not move when
other processes share the cores (they always do on our 2-core machines).
``--wall`` measures wall time with all threads instead (an idle machine only).

What it measures:

* ``DIRECT_SECONDS_PER_TAP``: each backend's direct ``correlate_valid`` time
  divided by (widened, for numba) outputs x kernel taps, median over
  kernels large enough to be compute-bound;
* ``FFT_SECONDS_PER_POINT_LOG2``: each backend's ``correlate_fft`` time
  divided by ``S log2 S`` (S = padded FFT grid points), median over sizes;
* ``GEMM_PACKING_TAPS``: the threshold on 'implicit_gemm''s waste (see
  ``choose_conv_algorithm``) that loses the least time against always
  picking the faster of 'implicit_gemm' and 'gemm' over a set of stride-1
  layers;
* ``DIRECT_MAX_FILTERS_PER_GROUP``: the largest filter count per group at
  which one-filter-at-a-time 'direct' still beats 'implicit_gemm'.
"""

from __future__ import annotations

import argparse
import importlib
import math
import sys
import time
from functools import partial

import numpy as np

KINDS = {"float32": np.float32, "float64": np.float64, "complex64": np.complex64,
         "complex128": np.complex128}


CLOCK = time.process_time  # see the module docstring; --wall switches to perf_counter


def fastest_seconds(func, repeats: int = 7, warmup: float = 0.25) -> float:
    start = time.perf_counter()
    func()
    while time.perf_counter() - start < warmup:
        func()
    times = []
    for _ in range(repeats):
        begin = CLOCK()
        func()
        times.append(CLOCK() - begin)
    return float(np.min(times))


def random_array(rng, shape, dtype):
    values = rng.standard_normal(shape)
    if np.dtype(dtype).kind == "c":
        values = values + 1j * rng.standard_normal(shape)
    return values.astype(dtype)


def widened_outputs(backend: str, x_shape, kernel_shape) -> int:
    out_shape = [n - k + 1 for n, k in zip(x_shape, kernel_shape)]
    if backend == "numba" and len(x_shape) >= 2:
        return math.prod(out_shape[:-1]) * x_shape[-1]
    return math.prod(out_shape)


def measure_correlate(backend: str, quick: bool) -> tuple[dict, dict]:
    from fastcorr import _tuning

    module = importlib.import_module(f"fastcorr.kernels.{backend}")
    rng = np.random.default_rng(0)
    # The slow backends get smaller images: same per-tap cost, less waiting.
    size = 512 if backend == "numba" else 192
    kernels = (7, 15) if quick else (7, 15, 31)
    direct, fft = {}, {}
    for kind, dtype in KINDS.items():
        samples = []
        for k in kernels:
            x = random_array(rng, (size, size), dtype)
            kernel = random_array(rng, (k, k), dtype)
            seconds = fastest_seconds(partial(module.correlate_valid, x, kernel), repeats=3)
            samples.append(seconds / (widened_outputs(backend, x.shape, kernel.shape) * k * k))
        direct[kind] = float(np.median(samples))
        samples = []
        for n in ((256, 1024) if quick else (256, 512, 1024, 2048)):
            x = random_array(rng, (n, n), dtype)
            kernel = random_array(rng, (15, 15), dtype)
            seconds = fastest_seconds(partial(module.correlate_fft, x, kernel), repeats=3)
            points = _tuning._fft_points(x.shape)
            samples.append((seconds - _tuning.FFT_FIXED_SECONDS) / (points * math.log2(points)))
        fft[kind] = float(np.median(samples))
        print(f"  {backend} {kind}: direct {direct[kind]:.2e} s/tap, "
              f"fft {fft[kind]:.2e} s/(point log2)", file=sys.stderr, flush=True)
    return direct, fft


def _conv_inputs(rng, batch, channels, size, filters, k, padding, dtype=np.float32):
    x = rng.standard_normal((batch, channels, 1, size + 2 * padding, size + 2 * padding))
    weight = rng.standard_normal((filters, channels, 1, k, k))
    return x.astype(dtype), weight.astype(dtype)


def measure_packing(quick: bool) -> float:
    """GEMM_PACKING_TAPS: the threshold on implicit_gemm's waste that loses the least time."""
    from fastcorr.kernels.numba import conv_forward

    rng = np.random.default_rng(0)
    # (N, C, size, F, k, padding): C2's stride-1 3x3 layers, then small images with large
    # kernels, where the widened grid wastes much more.
    layers = [(8, 64, 56, 64, 3, 1), (8, 128, 28, 128, 3, 1), (8, 256, 14, 256, 3, 1),
              (8, 32, 14, 32, 3, 1), (4, 64, 28, 16, 5, 2), (8, 64, 10, 64, 5, 0),
              (8, 64, 8, 64, 7, 0), (16, 32, 12, 128, 7, 0)]
    if quick:
        layers = layers[:3] + layers[-2:]
    cases = []  # (waste, implicit seconds, gemm seconds)
    for batch, channels, size, filters, k, padding in layers:
        x, weight = _conv_inputs(rng, batch, channels, size, filters, k, padding)
        unit = (1, 1, 1)
        implicit = fastest_seconds(
            partial(conv_forward, x, weight, None, unit, unit, 1, "implicit_gemm"))
        gemm = fastest_seconds(partial(conv_forward, x, weight, None, unit, unit, 1, "gemm"))
        width = size + 2 * padding
        out = width - k + 1
        valid = out * out
        widened = (out - 1) * width + out
        waste = (widened / valid - 1.0) * -(-filters // 4) * 4
        cases.append((waste, implicit, gemm))
        print(f"  conv N{batch} C{channels} {size}x{size} F{filters} k{k} p{padding}: "
              f"implicit_gemm {implicit * 1e3:.2f} ms, gemm {gemm * 1e3:.2f} ms, "
              f"waste {waste:.1f} taps", file=sys.stderr, flush=True)
    # The threshold that loses the least time over these layers (near-ties cost
    # nothing, so noise on them cannot drag the threshold around): try every gap
    # between consecutive wastes and keep the middle of the best one.
    wastes = sorted({waste for waste, _, _ in cases})
    candidates = [0.5 * wastes[0]] + [0.5 * (a + b) for a, b in zip(wastes, wastes[1:])]
    candidates.append(1.5 * wastes[-1])

    def time_lost(threshold):
        return sum((implicit if waste <= threshold else gemm) - min(implicit, gemm)
                   for waste, implicit, gemm in cases)

    return float(min(candidates, key=time_lost))


def measure_direct_filters(quick: bool) -> int:
    """Largest filters-per-group count at which 'direct' beats 'implicit_gemm'."""
    from fastcorr.kernels.numba import conv_forward

    rng = np.random.default_rng(0)
    best = 0
    for filters in (1, 2, 3, 4, 6, 8):
        times = {}
        for batch, channels, size in ((1, 50, 50), (8, 16, 56)) if not quick else ((8, 16, 56),):
            x, weight = _conv_inputs(rng, batch, channels, size, filters, 3, 0)
            unit = (1, 1, 1)
            for algorithm in ("direct", "implicit_gemm"):
                times[algorithm] = times.get(algorithm, 0.0) + fastest_seconds(
                    partial(conv_forward, x, weight, None, unit, unit, 1, algorithm))
        print(f"  F={filters}: direct {times['direct'] * 1e3:.2f} ms, implicit_gemm "
              f"{times['implicit_gemm'] * 1e3:.2f} ms", file=sys.stderr, flush=True)
        if times["direct"] < times["implicit_gemm"]:
            best = filters
    return best


def _format_table(name: str, table: dict) -> str:
    lines = [f"{name} = {{"]
    for backend, rates in table.items():
        items = ", ".join(f'"{kind}": {value:.1e}' for kind, value in rates.items())
        lines.append(f'    "{backend}": {{{items}}},')
    lines.append("}")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backends", nargs="*", default=["numba", "numpy", "scipy"])
    parser.add_argument("--quick", action="store_true", help="fewer sizes (a rough check)")
    parser.add_argument("--wall", action="store_true",
                        help="wall time with all threads (idle machines only)")
    args = parser.parse_args(argv)

    import numba

    import fastcorr

    global CLOCK
    if args.wall:
        CLOCK = time.perf_counter
    else:
        fastcorr.set_num_threads(1)
    numba.set_num_threads(fastcorr.get_num_threads())
    direct_table, fft_table = {}, {}
    for backend in args.backends:
        print(f"correlate, backend {backend}:", file=sys.stderr)
        direct_table[backend], fft_table[backend] = measure_correlate(backend, args.quick)
    print("conv_forward:", file=sys.stderr)
    packing = measure_packing(args.quick)
    direct_filters = measure_direct_filters(args.quick)
    clock = "wall time" if args.wall else "CPU time of one thread"
    print(f"# Measured by tools/measure_crossovers.py on {time.strftime('%Y-%m-%d')}: "
          f"{clock}, {fastcorr.get_num_threads()} thread(s).")
    print(_format_table("DIRECT_SECONDS_PER_TAP", direct_table))
    print(_format_table("FFT_SECONDS_PER_POINT_LOG2", fft_table))
    print(f"GEMM_PACKING_TAPS = {packing:.1f}")
    print(f"DIRECT_MAX_FILTERS_PER_GROUP = {direct_filters}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
