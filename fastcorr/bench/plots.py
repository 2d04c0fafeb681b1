"""PNG figures of a run, written next to ``report.md`` (matplotlib, imported only here).

* ``speedup.png``: per workload C1-C6 (and G1-G3: times on the device),
  each implementation's geometric-mean speed-up over the workload's
  baseline (log scale);
* ``c1_gflops.png``: C1's GFLOP/s against the kernel size, one line per
  implementation, one panel per mode and dtype;
* ``cpu_vs_cuda.png``: only when the run has CUDA results: time per case on
  the CPU ('auto') and on CUDA (G1-G3: on the device).

Examples
--------
>>> write([], "unused")  # nothing to draw
[]
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from .implementations import BASELINES
from .ratios import geomean, speedups

_BASELINE_NAMES = {"correlate2d": "scipy.signal.correlate2d", "torch": "torch",
                   "sliding-window": "NumPy sliding_window_view copy",
                   "cupy": "cupyx.scipy.signal.correlate2d", "auto": "fastcorr auto (CPU)"}
_DPI = 110


def available() -> bool:
    """Whether matplotlib can be imported."""
    return importlib.util.find_spec("matplotlib") is not None


def _figure(width: float, height: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=_DPI, layout="constrained")


def _label(result) -> str:
    """Legend label of an implementation: torch's peers of every workload are one, 'torch'."""
    return "torch" if result.key == "torch" else result.implementation


def _speedup_figure(results, path: Path) -> Path | None:
    ops = [op for op in dict.fromkeys(r.op for r in results) if op in BASELINES]
    ratios = speedups(results)
    labels = list(dict.fromkeys(_label(r) for r in results if r.op in ops and r.seconds))
    values, estimated = {}, set()  # (op, label) -> geometric mean speed-up
    for op in ops:
        baseline = BASELINES[op][0]
        for label in labels:
            mine = [r for r in results if r.op == op and _label(r) == label and r.seconds
                    and r.key != baseline and baseline in ratios[(r.case_id, r.key)]]
            if mine:
                values[(op, label)] = geomean(ratios[(r.case_id, r.key)][baseline]
                                              for r in mine)
                if any(r.estimated for r in mine):
                    estimated.add((op, label))
    labels = [label for label in labels if any((op, label) in values for op in ops)]
    if not values:
        return None
    figure = _figure(max(8.0, 1.4 * len(ops) + 4), 5.0)
    axes = figure.add_subplot()
    colors = _colors(len(labels))
    width = 0.85 / len(labels)
    for index, label in enumerate(labels):
        present = [i for i, op in enumerate(ops) if (ops[i], label) in values]
        axes.bar([i + (index - (len(labels) - 1) / 2) * width for i in present],
                 [values[(ops[i], label)] for i in present], width, label=label,
                 color=colors[index], edgecolor="white", linewidth=0.5,
                 hatch=["//" if (ops[i], label) in estimated else "" for i in present])
    axes.axhline(1.0, color="black", linewidth=0.8)
    axes.set_yscale("log")
    axes.set_xticks(range(len(ops)), [f"{op.upper()}\nvs {_BASELINE_NAMES[BASELINES[op][0]]}"
                                      for op in ops], fontsize=8)
    axes.set_ylabel("speed-up over the baseline (x, log scale)")
    axes.set_xlabel("workload, and the baseline its speed-ups are over (= 1, the black line)")
    axes.set_title("Speed-up per workload, geometric mean over its cases (above 1: faster; "
                   "hatched: extrapolated from a smaller case)", fontsize=10)
    axes.grid(axis="y", which="both", alpha=0.3)
    axes.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    figure.savefig(path)
    return path


def _colors(count: int) -> list:
    from matplotlib import colormaps

    palette = colormaps["tab10" if count <= 10 else "tab20"]
    return [palette(index % palette.N) for index in range(count)]


def _c1_case(case_id: str) -> tuple[int, str, str]:
    """``(kernel size, mode, dtype)`` of a C1 case id ``'c1-1024-k3-same-float32'``."""
    _, _, kernel, mode, dtype = case_id.split("-")
    return int(kernel[1:]), mode, dtype


def _c1_figure(results, path: Path) -> Path | None:
    c1 = [r for r in results if r.op == "c1" and r.rate]
    panels = list(dict.fromkeys(_c1_case(r.case_id)[1:] for r in c1))
    if not panels:
        return None
    columns = min(3, len(panels))
    rows = -(-len(panels) // columns)
    figure = _figure(4.8 * columns + 2.2, 3.8 * rows)
    names = list(dict.fromkeys(r.implementation for r in c1))
    for index, (mode, dtype) in enumerate(panels):
        axes = figure.add_subplot(rows, columns, index + 1)
        for name in names:
            points = sorted((_c1_case(r.case_id)[0], r.rate) for r in c1
                            if r.implementation == name and _c1_case(r.case_id)[1:]
                            == (mode, dtype))
            if points:
                axes.plot(*zip(*points, strict=True), marker="o", label=name)
        axes.set_xscale("log", base=2)
        axes.set_yscale("log")
        kernels = sorted({_c1_case(r.case_id)[0] for r in c1})
        axes.set_xticks(kernels, [str(k) for k in kernels])
        axes.set_xlabel("kernel size k (k x k, log scale)")
        axes.set_ylabel("GFLOP/s (log scale)")
        axes.set_title(f"mode {mode}, {dtype}", fontsize=10)
        axes.grid(which="both", alpha=0.3)
    handles, labels = axes.get_legend_handles_labels()
    figure.legend(handles, labels, loc="outside right upper", fontsize=8)
    figure.suptitle("C1: correlate2d of a one-channel image, GFLOP/s against kernel size")
    figure.savefig(path)
    return path


def _cuda_figure(results, path: Path) -> Path | None:
    times = {}
    for r in results:
        if r.seconds and r.key in ("auto", "cuda"):
            times.setdefault(r.case_label, {})[r.key] = r.seconds
    cases = [case for case, pair in times.items() if len(pair) == 2]
    if not cases:
        return None
    figure = _figure(max(7.0, 0.5 * len(cases) + 3), 5.0)
    axes = figure.add_subplot()
    for offset, key, label in ((-0.2, "auto", "CPU (fastcorr auto)"),
                               (0.2, "cuda", "CUDA (fastcorr cuda)")):
        axes.bar([i + offset for i in range(len(cases))],
                 [times[case][key] * 1e3 for case in cases], 0.4, label=label)
    axes.set_yscale("log")
    axes.set_xticks(range(len(cases)), cases, rotation=60, ha="right", fontsize=7)
    axes.set_ylabel("median time per call (ms, log scale)")
    axes.set_title("CPU against CUDA, per case (lower is faster)")
    axes.legend()
    figure.savefig(path)
    return path


def write(results, out_dir) -> list[Path]:
    """Draw every figure the results allow into ``out_dir``; the paths written.

    Raises
    ------
    ImportError
        matplotlib is not installed (see :func:`available`).
    """
    drawers = {"speedup.png": _speedup_figure, "c1_gflops.png": _c1_figure,
               "cpu_vs_cuda.png": _cuda_figure}
    if not any(r.seconds for r in results):
        return []
    paths = [draw(results, Path(out_dir) / name) for name, draw in drawers.items()]
    return [path for path in paths if path is not None]
