"""pytest-benchmark setup for bench/: the standard workloads C1-C6, one group per case.

``pytest bench/ --benchmark-only`` runs them (docs/benchmarks.md). The workload table and the
implementations come from :mod:`fastcorr.bench`, as for ``fastcorr bench``;
each implementation's result is checked against a float64 reference once per
case before it is timed. Threads are set for every library to all usable
cores. The naive loops, and the scipy backend's conv2d (one SciPy call per
image and filter), are left out: at these sizes they take minutes per call
(``fastcorr bench`` estimates them from smaller cases). C7 and C8 measure
fresh processes: ``fastcorr bench --ops c7,c8``.
"""

from __future__ import annotations

import functools
import math

import pytest

from fastcorr.bench import environment, implementations, references, runner, workloads

BUDGET_S = 0.5  # timed rounds per test, about
WARMUP_S = 0.25  # at least this before timing (docs/benchmarks.md)
MIN_ROUND_S = 0.005  # calls per round chosen so that one round lasts this


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config):
    # pyproject's addopts has --benchmark-disable so that the test suite never
    # times anything; in this directory timing is the point.
    config.option.benchmark_enable = True


@pytest.fixture(scope="session", autouse=True)
def _threads_for_every_library():
    with environment.thread_settings(environment.usable_cpus()):
        yield


@functools.lru_cache(maxsize=2)
def _inputs_and_reference(case):
    inputs = case.make_inputs()
    return inputs, references.REFERENCES[case.op](case, *inputs)


def pytest_generate_tests(metafunc):
    """A test module with ``OP = 'c1'`` (... 'c6') gets every case x implementation of it."""
    op = getattr(metafunc.module, "OP", None)
    if op is None:
        return
    full_size = [impl for impl in implementations.for_op(op) if impl.shrink is None]
    # Case by case (the first parametrize varies slowest): one input set alive at a time.
    metafunc.parametrize("case", workloads.select(op, "full"), ids=lambda case: case.case_id)
    metafunc.parametrize("impl", full_size, ids=lambda impl: impl.key)


def plan(call_s: float) -> dict:
    """``benchmark.pedantic`` arguments for a call that takes about ``call_s``."""
    iterations = max(1, math.ceil(MIN_ROUND_S / call_s))
    round_s = call_s * iterations
    return {"iterations": iterations,
            "rounds": max(1, min(100, round(BUDGET_S / round_s))),
            "warmup_rounds": math.ceil(WARMUP_S / round_s) if call_s < WARMUP_S else 0}


@pytest.fixture
def measure(benchmark):
    """``measure(case, impl)``: check ``impl`` on ``case``, then time it in the case's group."""

    def run(case, impl):
        reason = impl.unavailable_reason()
        if reason:
            pytest.skip(reason)
        inputs, reference = _inputs_and_reference(case)
        try:
            call, first_call_s, error = runner.check(impl, case, inputs, reference)
        except NotImplementedError as exc:
            pytest.skip(str(exc))
        assert error <= runner.tolerance(case.dtype), f"{impl.name}: relative error {error:.2e}"
        slow = first_call_s >= BUDGET_S and not impl.compiles
        call_s = first_call_s if slow else runner.time_calls(call, 1)
        benchmark.group = f"{case.op.upper()} {case.label}"
        unit = "gflop" if case.rate_unit == workloads.FLOPS else "gb"
        benchmark.extra_info.update({unit: case.work / 1e9, "implementation": impl.name})
        benchmark.pedantic(call, **plan(call_s))

    return run
