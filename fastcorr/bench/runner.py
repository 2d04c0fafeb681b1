"""Checking and timing implementations of one workload case side by side.

For each case: every implementation is run once and its result compared with
a float64 reference (a wrong result is reported, never timed); then all of
them warm up together for at least ``warmup_s``; then ``repeat`` rounds time
each in turn, the order rotating from round to round so that drift (clock,
other load) hits all alike.  A sample is the mean of enough back-to-back calls
to last ``min_sample_s``, after one untimed call that wakes the thread pools
(waking a sleeping pool costs milliseconds on a loaded virtual machine; calls
longer than ``warmup_s`` skip it); the figure is the median of the samples.

Slow implementations stop taking samples once ``budget_s`` would be passed
(one sample at least), and one whose first call alone took ``budget_s`` is
not called again unless that call included compilation.  Implementations
that use BLAS run last in each round, followed by a pause of ``settle_s``:
OpenBLAS threads keep spinning after a call and slow parallel kernels
meanwhile (docs/benchmarks.md).
"""

from __future__ import annotations

import math
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from . import process
from .implementations import Implementation
from .references import REFERENCES
from .workloads import PROCESS_OPS, SEED


@dataclass(frozen=True)
class Settings:
    """How to time; the defaults are ``fastcorr bench``'s."""

    repeat: int = 5
    warmup_s: float = 0.25
    min_sample_s: float = 0.02
    budget_s: float = 1.0
    settle_s: float = 0.25
    seed: int = SEED


@dataclass
class Result:
    """One implementation on one case.

    ``status`` is 'ok', 'unavailable' (backend or peer missing), 'unsupported'
    (NotImplementedError), 'wrong' (failed the check) or 'error'.  ``seconds``
    is the median time per call; where ``estimated``, it was extrapolated by
    ``work`` from ``samples`` taken on the smaller case ``measured_on``.
    ``work`` is flops or bytes, as ``rate_unit`` says ('GFLOP/s', 'GB/s';
    None for C7 and C8); ``measures`` holds what C7 and C8 measure besides
    time.
    """

    op: str
    case_id: str
    case_label: str
    work: int
    rate_unit: str | None
    implementation: str
    key: str
    family: str
    status: str = "ok"
    note: str = ""
    seconds: float | None = None
    samples: list[float] = field(default_factory=list)
    calls_per_sample: int = 1
    max_error: float | None = None
    estimated: bool = False
    measured_on: str | None = None
    measures: dict = field(default_factory=dict)

    @property
    def rate(self) -> float | None:
        """GFLOP/s or GB/s (``rate_unit``) at the median time."""
        return self.work / self.seconds / 1e9 if self.seconds and self.work else None

    @classmethod
    def for_case(cls, case, impl_name: str, key: str, family: str) -> Result:
        """An empty result of one implementation on ``case``."""
        return cls(case.op, case.case_id, case.label, case.work, case.rate_unit, impl_name, key,
                   family)


def tolerance(dtype) -> float:
    """Allowed error relative to the reference's largest magnitude.

    Looser than the test suite's (``tests/`` checks conformance): this
    catches wrong results (offsets, flipped kernels), not rounding.
    """
    return 1e-4 if np.dtype(dtype) == np.float32 else 1e-10


def relative_error(result, reference) -> float:
    """``max |result - reference| / max |reference|`` (inf for a wrong shape).

    Tuples (gradients) are compared item by item; the largest error counts.
    """
    if isinstance(reference, tuple):
        if not isinstance(result, tuple | list) or len(result) != len(reference):
            return math.inf
        return max(map(relative_error, result, reference))
    result = np.asarray(result, dtype=np.float64)
    if result.shape != reference.shape:
        return math.inf
    scale = max(float(np.max(np.abs(reference))), np.finfo(np.float64).tiny)
    return float(np.max(np.abs(result - reference))) / scale


def check(impl: Implementation, case, inputs, reference) -> tuple[object, float, float]:
    """Bind ``impl`` to ``case``, call it once and compare with ``reference``.

    Returns
    -------
    call : callable
        The bound zero-argument callable.
    seconds : float
        Duration of that first call (includes any compilation).
    error : float
        Relative error of the result, see :func:`relative_error`.
    """
    call = impl.bind(case, *inputs)
    start = time.perf_counter()
    result = call()
    seconds = time.perf_counter() - start
    return call, seconds, relative_error(result, reference)


def time_calls(call, count: int) -> float:
    """Mean seconds per call of ``count`` back-to-back calls."""
    start = time.perf_counter()
    for _ in range(count):
        call()
    return (time.perf_counter() - start) / count


@dataclass
class _Entry:
    """An implementation that passed its check, with its timing state."""

    impl: Implementation
    call: object
    result: Result
    fastest_call_s: float
    scale: float = 1.0  # work of the case / work of the case actually timed
    spent_s: float = 0.0
    done: bool = False


class _Inputs:
    """Inputs and reference of each case an implementation is timed on, made once."""

    def __init__(self, seed: int):
        self.seed = seed
        self._made = {}

    def __call__(self, case):
        if case not in self._made:
            inputs = case.make_inputs(self.seed)
            self._made[case] = (inputs, REFERENCES[case.op](case, *inputs))
        return self._made[case]


def attempt(result: Result, reason: str | None, check_call: Callable):
    """``check_call()``, or None with ``result`` saying why there is nothing to time.

    ``reason`` (the implementation's unavailability) skips the call; a
    ``NotImplementedError`` marks the result unsupported, any other exception
    an error: one failing implementation must not stop the run.
    """
    if reason:
        result.status, result.note = "unavailable", reason
        return None
    try:
        return check_call()
    except NotImplementedError as exc:
        result.status, result.note = "unsupported", str(exc)
    except Exception as exc:  # noqa: BLE001 - see the docstring
        result.status, result.note = "error", f"{type(exc).__name__}: {exc}"
    return None


def _checked_entry(impl: Implementation, case, result: Result, inputs: _Inputs, settings):
    """Check ``impl`` on ``case`` (or its shrunk case); None if it cannot be timed."""
    timed_case = impl.shrink(case) if impl.shrink else case
    checked = attempt(result, impl.unavailable_reason(),
                      lambda: check(impl, timed_case, *inputs(timed_case)))
    if checked is None:
        return None
    call, first_call_s, error = checked
    result.max_error = error
    if error > tolerance(case.dtype):
        result.status, result.note = "wrong", f"relative error {error:.2e} on {timed_case.label}"
        return None
    entry = _Entry(impl, call, result, first_call_s, scale=case.work / timed_case.work)
    if timed_case != case:
        result.estimated, result.measured_on = True, timed_case.label
        result.note = f"estimated from {timed_case.label}"
    if first_call_s >= settings.budget_s and not impl.compiles:
        result.samples, entry.done = [first_call_s], True
        result.note = "; ".join(filter(None, [result.note, "one call"]))
    return entry


def _warm_up(entries: list[_Entry], settings: Settings) -> None:
    """Round-robin calls for at least ``warmup_s``; sets each entry's calls per sample.

    Implementations whose fastest call already took ``warmup_s`` are not called again.
    """
    fast = [e for e in entries if not e.done and e.fastest_call_s < settings.warmup_s]
    deadline = time.perf_counter() + settings.warmup_s
    while fast and time.perf_counter() < deadline:
        for entry in fast:
            entry.fastest_call_s = min(entry.fastest_call_s, time_calls(entry.call, 1))
    for entry in entries:
        count = math.ceil(settings.min_sample_s / max(entry.fastest_call_s, 1e-9))
        entry.result.calls_per_sample = max(1, count)


def _rounds(entries: list[_Entry], settings: Settings) -> None:
    quiet = [entry for entry in entries if not entry.impl.uses_blas]
    blas = [entry for entry in entries if entry.impl.uses_blas]
    for round_index in range(settings.repeat):
        for group in (quiet, blas):
            shift = round_index % len(group) if group else 0
            for entry in group[shift:] + group[:shift]:
                count = entry.result.calls_per_sample
                over_budget = entry.spent_s + entry.fastest_call_s * count > settings.budget_s
                if entry.done or (entry.result.samples and over_budget):
                    continue
                if entry.fastest_call_s < settings.warmup_s:
                    # Untimed: wakes thread pools that went to sleep meanwhile.
                    entry.spent_s += time_calls(entry.call, 1)
                sample = time_calls(entry.call, count)
                entry.result.samples.append(sample)
                entry.spent_s += sample * count
        if blas:
            time.sleep(settings.settle_s)


def run_case(case, implementations: list[Implementation], settings: Settings,
             inputs=None) -> list[Result]:
    """Check, then time, every implementation on one case.

    ``inputs(case)`` gives ``(inputs, reference)`` of a case (default: made
    with ``settings.seed``; the GPU runner passes those it made already).

    Returns
    -------
    list of Result
        One per implementation, in the given order.
    """
    inputs = inputs or _Inputs(settings.seed)
    results, entries = [], []
    for impl in implementations:
        result = Result.for_case(case, impl.name, impl.key, impl.family)
        results.append(result)
        entry = _checked_entry(impl, case, result, inputs, settings)
        if entry is not None:
            entries.append(entry)
    _warm_up(entries, settings)  # also outlasts BLAS threads still spinning from the checks
    if any(entry.impl.uses_blas for entry in entries):
        time.sleep(settings.settle_s)
    _rounds(entries, settings)
    for entry in entries:
        entry.result.seconds = statistics.median(entry.result.samples) * entry.scale
    return results


def run_process_case(case, settings: Settings, workspace: process.Workspace,
                     threads: int) -> list[Result]:
    """Measure a C7 or C8 case in fresh processes (:mod:`~fastcorr.bench.process`)."""
    result = Result.for_case(case, "fastcorr[auto]", "auto", "fastcorr")
    try:
        result.samples, result.measures, result.note = process.measure(
            case, settings.repeat, workspace, threads)
    except Exception as exc:  # noqa: BLE001 - one failing case must not stop the run
        result.status, result.note = "error", f"{type(exc).__name__}: {exc}"
    else:
        result.seconds = statistics.median(result.samples)
    return [result]


def _summary(results: list[Result]) -> str:
    """``'numba 1.2 ms, torch 3 ms'`` (and C7/C8's notes) for a progress line."""
    parts = [f"{r.key} {r.seconds * 1e3:.3g} ms" for r in results if r.status == "ok"]
    parts += [r.note for r in results if r.note and r.op in PROCESS_OPS]
    parts += [f"{r.key} {r.status}" for r in results if r.status in ("wrong", "error")]
    return ", ".join(parts)


def run(cases, implementations_for, settings: Settings, progress=None,
        threads: int = 1) -> list[Result]:
    """Run every case; ``implementations_for(op)`` lists the implementations of a workload.

    ``progress(message)`` (default: a line on stderr) hears of each case;
    ``threads`` is passed to the processes of C8.
    """
    if progress is None:
        def progress(message):
            print(message, file=sys.stderr, flush=True)
    results = []
    with process.Workspace() as workspace:
        for index, case in enumerate(cases, start=1):
            start = time.perf_counter()
            progress(f"[{index}/{len(cases)}] {case.op.upper()} {case.label} ...")
            if case.op in PROCESS_OPS:
                case_results = run_process_case(case, settings, workspace, threads)
            else:
                case_results = run_case(case, implementations_for(case.op), settings)
            progress(f"      {time.perf_counter() - start:.1f} s: {_summary(case_results)}")
            results.extend(case_results)
    return results
