"""Speed-ups and their geometric means: the figures the report, targets, plots and --compare share.

A speed-up is ``baseline time / implementation time`` within one case, so a
figure above 1 means faster than the baseline.  The GPU workloads have two
times per implementation, on the device and with host transfers
(:func:`gpu_times`), and so two speed-ups (:func:`gpu_speedups`).

Examples
--------
>>> round(geomean([2.0, 8.0]), 6)
4.0
"""

from __future__ import annotations

import math

from .implementations import BASELINES
from .workloads import GPU_OPS

# In a GPU workload: the CPU's figure (fastcorr 'auto' on the host arrays).
CPU_KEY = "auto"


def geomean(values) -> float:
    """Geometric mean of positive numbers."""
    values = list(values)
    return math.exp(sum(map(math.log, values)) / len(values))


def times_by_case(results) -> dict[str, dict[str, float]]:
    """``{case_id: {key: seconds}}`` of every result with a time."""
    table = {}
    for result in results:
        if result.seconds:
            table.setdefault(result.case_id, {})[result.key] = result.seconds
    return table


def speedups(results) -> dict[tuple[str, str], dict[str, float]]:
    """``{(case_id, key): {baseline_key: speed-up}}`` for every timed result of C1-C6."""
    times = times_by_case(results)
    return {(result.case_id, result.key): {baseline: times[result.case_id][baseline]
                                           / result.seconds
                                           for baseline in BASELINES[result.op]
                                           if baseline in times[result.case_id]}
            for result in results if result.seconds and result.op in BASELINES}


def gpu_times(result) -> tuple[float | None, float | None]:
    """``(on the device, with transfers)`` seconds of a GPU workload's result.

    The CPU's 'auto' works on host arrays: it has the second only.
    """
    if result.key == CPU_KEY:
        return None, result.seconds
    return result.seconds, result.measures.get("with_transfers_s")


def gpu_speedups(results) -> dict[tuple[str, str], dict[str, tuple]]:
    """``{(case_id, key): {baseline_key: (on device, with transfers)}}`` for G1-G3.

    Each speed-up is the baseline's time over the implementation's, both on
    the device or both with transfers; the CPU baseline has its one time for
    both.  None where either time is missing.
    """
    times = {}
    for result in results:
        if result.op in GPU_OPS and result.seconds:
            times.setdefault(result.case_id, {})[result.key] = gpu_times(result)
    ratios = {}
    for result in results:
        if result.op not in GPU_OPS or not result.seconds:
            continue
        own, case_times = gpu_times(result), times[result.case_id]
        ratios[(result.case_id, result.key)] = {
            baseline: tuple(_ratio(case_times[baseline][way] or case_times[baseline][1], own[way])
                            for way in (0, 1))
            for baseline in BASELINES[result.op] if baseline in case_times}
    return ratios


def _ratio(baseline_s, own_s):
    return baseline_s / own_s if baseline_s and own_s else None
