"""Speed-ups and their geometric means: the figures the report, targets, plots and --compare share.

A speed-up is ``baseline time / implementation time`` within one case, so a
figure above 1 means faster than the baseline.

Examples
--------
>>> round(geomean([2.0, 8.0]), 6)
4.0
"""

from __future__ import annotations

import math

from .implementations import BASELINES


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
