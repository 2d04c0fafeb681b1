"""BENCH.md's CPU and GPU targets, checked against one run's results.

CPU targets are for fastcorr's default, ``backend='auto'`` (the numba backend
on CPU; ``fastcorr[numba]`` stands in where 'auto' did not run); GPU targets
(G1-G3) for ``fastcorr[cuda]`` on device arrays, and G4 for how every GPU
figure was taken.  Each check gives the target's text, the figure it was
judged on (the worst case, or the geometric mean) and whether it is met:
None where the run lacks what it needs (the peer or the case was not run, or
the yardstick not measured).

Examples
--------
>>> TARGETS["c6"][0].text
'>= 0.8x torch autograd in every case'
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .gpu import EVENTS
from .process import MIB
from .ratios import CPU_KEY, geomean, times_by_case

_OURS = ("auto", "numba")
_CUDA = ("cuda",)
# The timed peers of a workload, for "the fastest peer of the case".
_FAMILY_PEER = "peer"


@dataclass(frozen=True)
class Target:
    """One target: ``check(results, peaks) -> (figure text, met or None)``."""

    text: str
    check: Callable


def _ours(results, op, keys=_OURS) -> list:
    """Results of the first of ``keys`` ('auto', else 'numba') for ``op`` that has times."""
    for key in keys:
        mine = [r for r in results if r.op == op and r.key == key and r.seconds]
        if mine:
            return mine
    return []


def _judge(values: list[tuple[float, str]], threshold: float, unit: str = "x",
           use_geomean: bool = False, at_most: bool = False):
    """``(figure, met)`` for ``(value, case label)`` pairs: the worst one, or the geomean."""
    if not values:
        return "not measured", None
    if use_geomean:
        value, where = geomean(v for v, _ in values), f"geometric mean of {len(values)}"
    else:
        value, where = (max if at_most else min)(values)
    figure = f"{value:.3g}{unit} ({where})"
    return figure, (value <= threshold) if at_most else (value >= threshold)


def _vs(baseline: str | None, threshold: float, select=None, use_geomean=False, ours=_OURS):
    """Check: auto's (or ``ours``') speed-up over ``baseline`` (None: the fastest peer)."""
    def check(results, op, peaks):
        times = times_by_case(results)
        peers = {(r.case_id, r.key) for r in results if r.family == _FAMILY_PEER}
        values = []
        for result in _ours(results, op, ours):
            if select and not select(result):
                continue
            case_times = times[result.case_id]
            keys = [baseline] if baseline else [k for k in case_times
                                                if (result.case_id, k) in peers]
            peer_times = [case_times[k] for k in keys if k in case_times]
            if peer_times:
                values.append((min(peer_times) / result.seconds, result.case_label))
        return _judge(values, threshold, use_geomean=use_geomean)
    return check


def _share(yardstick: str, threshold: float, select=None):
    """Check: auto's GFLOP/s or GB/s as a share of the measured ``yardstick``."""
    def check(results, op, peaks):
        if not peaks or not peaks.get(yardstick):
            return "not measured", None
        values = [(r.rate / peaks[yardstick], r.case_label) for r in _ours(results, op)
                  if r.rate and (select is None or select(r))]
        return _judge([(100 * v, label) for v, label in values], 100 * threshold, "%")
    return check


def _device_bandwidth(threshold: float, select=None):
    """Check: fastcorr[cuda]'s bytes moved at the least per second, as a share of the
    measured device copy bandwidth."""
    def check(results, op, peaks):
        if not peaks or not peaks.get("device_copy_GBps"):
            return "not measured", None
        values = [(100 * r.measures["bytes"] / r.seconds / 1e9 / peaks["device_copy_GBps"],
                   r.case_label) for r in _ours(results, op, _CUDA)
                  if "bytes" in r.measures and (select is None or select(r))]
        return _judge(values, 100 * threshold, "%")
    return check


def _g4(results, op, peaks):
    """Every GPU figure has both times (on device, with transfers), taken by CUDA events."""
    timed = [r for r in results if r.op == op and r.seconds and r.key != CPU_KEY]
    if not timed:
        return "not measured", None
    both = [r for r in timed if r.measures.get("with_transfers_s")]
    timers = sorted({r.measures.get("timer", "unknown") for r in timed})
    figure = f"{len(both)} of {len(timed)} with both times; timer: {', '.join(timers)}"
    return figure, len(both) == len(timed) and timers == [EVENTS]


def _kernel_3(result) -> bool:
    return result.case_id.split("-")[2] == "k3"


def _c7(what: str, limit_s: float):
    def check(results, op, peaks):
        mine = [r for r in _ours(results, op) if r.case_id.startswith(f"c7-{what}")
                and (what == "import" or r.case_id.endswith("warm"))]
        figure, met = _judge([(r.seconds, r.case_label) for r in mine], limit_s, " s",
                             at_most=True)
        if what == "import" and mine and mine[0].measures.get("numba_imported"):
            return figure + "; imports numba", False
        return figure, met
    return check


def _c8(results, op, peaks):
    measured = [r for r in _ours(results, op) if "extra_bytes" in r.measures]
    if not measured:
        return "not measured", None
    worst = max(measured, key=lambda r: r.measures["extra_bytes"] / r.measures["limit_bytes"])
    extra, limit = worst.measures["extra_bytes"], worst.measures["limit_bytes"]
    return (f"{extra / MIB:.1f} MiB extra, limit {limit / MIB:.1f} MiB ({worst.case_label})",
            extra <= limit)


def _float32_layers(names):
    return lambda result: (result.case_id.split("-")[1] in names
                           and result.case_id.endswith("float32"))


TARGETS = {
    "c1": (Target(">= 20x scipy.signal.correlate2d in every case", _vs("correlate2d", 20)),
           Target(">= 1.0x the fastest peer of every case", _vs(None, 1.0))),
    "c2": (Target("geometric mean >= 1.0x torch over L1-L7 (float32)",
                  _vs("torch", 1.0, _float32_layers(("L1", "L2", "L3", "L4", "L5", "L6", "L7")),
                      use_geomean=True)),
           Target("no layer below 0.7x torch", _vs("torch", 0.7)),
           Target(">= 60% of measured sgemm GFLOP/s on L1-L3 (float32)",
                  _share("sgemm_GFLOPs", 0.6, _float32_layers(("L1", "L2", "L3"))))),
    "c3": (Target(">= 1.0x NumPy's sliding_window_view copy", _vs("sliding-window", 1.0)),
           Target(">= 70% of measured copy bandwidth", _share("copy_GBps", 0.7))),
    "c4": (Target(">= 1.0x torch in every case", _vs("torch", 1.0)),
           Target(">= 60% of measured copy bandwidth", _share("copy_GBps", 0.6))),
    "c5": (Target(">= 1.0x torch in every case", _vs("torch", 1.0)),
           Target(">= 60% of measured copy bandwidth", _share("copy_GBps", 0.6))),
    "c6": (Target(">= 0.8x torch autograd in every case", _vs("torch", 0.8)),),
    "c7": (Target("import <= 0.5 s, numba not imported (no compilation)", _c7("import", 0.5)),
           Target("first call <= 0.5 s with a warm cache", _c7("conv2d", 0.5))),
    "c8": (Target("peak extra memory <= 64 MiB + output size in every case", _c8),),
}
_G4 = Target("G4: every figure on the device and with transfers, CUDA events after warm-up",
             _g4)
TARGETS.update({
    "g1": (Target(">= 1.0x cupyx.scipy.signal.correlate2d in every case (on the device)",
                  _vs("cupy", 1.0, ours=_CUDA)),
           Target(">= 50% of measured device copy bandwidth for k = 3 (image, kernel, output "
                  "bytes)", _device_bandwidth(0.5, _kernel_3)),
           _G4),
    "g2": (Target(">= 0.5x torch/cuDNN (TF32 off, deterministic) in every layer (on the device)",
                  _vs("torch", 0.5, ours=_CUDA)),
           _G4),
    "g3": (Target(">= 70% of measured device copy bandwidth in every case",
                  _device_bandwidth(0.7)),
           Target(">= 1.0x torch in every case (on the device)", _vs("torch", 1.0, ours=_CUDA)),
           _G4),
})


def evaluate(results, peaks: dict | None) -> list[dict]:
    """Every target of the workloads in ``results``: ``op``, ``target``, ``figure``, ``met``.

    Parameters
    ----------
    results : list of Result
    peaks : dict or None
        :func:`~fastcorr.bench.environment.measure_peaks`'s figures, and
        :func:`~fastcorr.bench.gpu.measure_peaks`'s for the GPU workloads.
    """
    checked = []
    for op in dict.fromkeys(r.op for r in results):
        for target in TARGETS.get(op, ()):
            figure, met = target.check(results, op, peaks)
            checked.append({"op": op, "target": target.text, "figure": figure, "met": met})
    return checked
