"""G1-G3 on a GPU: fastcorr's cuda backend against torch (cuDNN) and CuPy, timed with CUDA events.

Per case (a :class:`~fastcorr.bench.workloads.GpuCase`) the inputs are made
on the host with the workload's fixed seed, and every implementation is
timed two ways (BENCH.md G4):

* **on the device**: the inputs copied to the device once (numba device
  arrays for fastcorr, which takes them in place, zero-copy; torch tensors;
  CuPy arrays) and the result left there;
* **with transfers**: host NumPy arrays in, host arrays out: fastcorr's
  ``backend='cuda'`` on NumPy arrays; the peers copy the inputs in, compute
  and copy the result out (:mod:`~fastcorr.bench.gpu_peers`).

Each way is first run once and its result compared with the float64
reference (the CPU runner's tolerance); a wrong result is reported, never
timed.  Then all warm up together for at least ``warmup_s`` (the first calls
compile), then ``repeat`` rounds take a sample of each in turn, the order
rotating; a sample is the mean of enough back-to-back calls to last
``min_sample_s``, timed between two CUDA events of the library's own
(numba's, torch's, CuPy's) on the default stream; the figure is the median.
Where events cannot time (numba's CUDA simulator records none), the
:class:`Timer` is ``time.perf_counter`` around the calls with the device
synchronised at both ends; every result names its timer
(``measures['timer']``).  The CPU's ``'auto'`` on the same host arrays is
timed by the CPU runner (:func:`fastcorr.bench.runner.run_case`), for the
CUDA-vs-CPU speed-up.

Nothing here imports ``numba.cuda``, torch or CuPy until a GPU run starts.

Examples
--------
>>> [impl.key for impl in for_op("g1")], [impl.key for impl in for_op("g3")]
(['cuda', 'torch', 'cupy'], ['cuda', 'torch'])
>>> Timer(PERF_COUNTER, None, None, lambda: None).seconds(lambda: None) >= 0
True
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import shutil
import statistics
import subprocess
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from fastcorr._dispatch import backends as backend_status

from . import gpu_peers, runner
from .environment import gpu as gpu_facts
from .implementations import Implementation, bind_fastcorr
from .ratios import CPU_KEY
from .references import REFERENCES
from .runner import Result

EVENTS = "cuda events"
PERF_COUNTER = "perf_counter + synchronize"


def unavailable_reason() -> str | None:
    """Why the GPU workloads cannot run here (fastcorr's cuda backend is unavailable), or None."""
    status = backend_status()["cuda"]
    return None if status["available"] else status["reason"]


@dataclass(frozen=True)
class Timer:
    """Seconds per call of back-to-back calls, by CUDA events or by ``perf_counter``.

    ``event()`` makes an event with ``record()`` and ``synchronize()``,
    ``elapsed_ms(start, end)`` reads two; both None: ``perf_counter``,
    with ``synchronize()`` (the device) before and after.
    """

    name: str
    event: Callable | None
    elapsed_ms: Callable | None
    synchronize: Callable

    def seconds(self, call, count: int = 1) -> float:
        """Mean seconds per call of ``count`` back-to-back calls of ``call``."""
        if self.event is None:
            self.synchronize()
            start = time.perf_counter()
            for _ in range(count):
                call()
            self.synchronize()
            return (time.perf_counter() - start) / count
        start, end = self.event(), self.event()
        start.record()
        for _ in range(count):
            call()
        end.record()
        end.synchronize()
        return float(self.elapsed_ms(start, end)) / 1e3 / count


def _timer(make_event, elapsed_ms, synchronize) -> Timer:
    """Events where they time (a probe gives a non-negative time), else ``perf_counter``."""
    events = Timer(EVENTS, make_event, elapsed_ms, synchronize)
    try:
        works = events.seconds(lambda: None) >= 0  # numba's simulator: always -1
    except Exception:  # noqa: BLE001 - no events: fall back
        works = False
    return events if works else Timer(PERF_COUNTER, None, None, synchronize)


def numba_timer() -> Timer:
    """The timer of numba's events (numba's own device arrays, fastcorr's kernels)."""
    from numba import cuda

    return _timer(cuda.event, lambda start, end: start.elapsed_time(end), cuda.synchronize)


@dataclass(frozen=True)
class GpuImplementation:
    """One way to compute a GPU workload: ``calls(case, inputs)`` -> (on device, with transfers).

    ``timer()`` gives the :class:`Timer` of its library's events and
    ``unavailable()`` why it cannot run here (None where it can).
    """

    key: str
    name: str
    family: str
    calls: Callable
    timer: Callable
    unavailable: Callable


def _fastcorr_calls(case, inputs):
    from numba import cuda

    on_device = [cuda.to_device(array) for array in inputs]
    return (bind_fastcorr(case.workload, "cuda", *on_device),
            bind_fastcorr(case.workload, "cuda", *inputs))


_CUDA = GpuImplementation("cuda", "fastcorr[cuda]", "fastcorr", _fastcorr_calls, numba_timer,
                          unavailable_reason)
_PEERS = {
    "torch": GpuImplementation("torch", "torch (CUDA, TF32 off, deterministic)", "peer",
                               gpu_peers.torch_calls,
                               lambda: _timer(*gpu_peers.torch_event_library()),
                               gpu_peers.torch_unavailable),
    "cupy": GpuImplementation("cupy", "cupyx.scipy.signal.correlate2d", "peer",
                              gpu_peers.cupy_calls,
                              lambda: _timer(*gpu_peers.cupy_event_library()),
                              gpu_peers.cupy_unavailable),
}


def peer_keys() -> list[str]:
    """Keys of the GPU peers, for ``--peers``."""
    return list(_PEERS)


def for_op(op: str, peers=None) -> list[GpuImplementation]:
    """fastcorr's cuda backend and the peers (all, or those keyed in ``peers``) of ``op``."""
    return [_CUDA] + [impl for key, impl in _PEERS.items()
                      if op in gpu_peers.PEER_OPS[key] and (peers is None or key in peers)]


def _host(value):
    """A result (device arrays of any library, tuples of them) as NumPy arrays."""
    if isinstance(value, tuple | list):
        return tuple(map(_host, value))
    if hasattr(value, "copy_to_host"):
        return value.copy_to_host()
    if hasattr(value, "detach"):
        return value.detach().cpu().numpy()
    if hasattr(value, "get"):
        return value.get()
    return np.asarray(value)


@dataclass
class _Way:
    """One way (on device, with transfers) of one implementation, with its timing state."""

    call: Callable
    timer: Timer
    fastest_s: float = math.inf
    count: int = 1
    samples: list[float] = field(default_factory=list)
    spent_s: float = 0.0


def _checked_ways(impl: GpuImplementation, case, inputs, reference, result: Result):
    """Bind and check both ways of ``impl``; None (and ``result`` says why) where it cannot run."""
    def check():
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            calls = impl.calls(case, inputs)
            errors = [runner.relative_error(_host(call()), reference) for call in calls]
        return calls, errors, caught, impl.timer()

    checked = runner.attempt(result, impl.unavailable(), check)
    if checked is None:
        return None
    calls, errors, caught, timer = checked
    result.max_error = max(errors)
    result.note = gpu_peers.deterministic_note(caught) if impl.key == "torch" else ""
    if result.max_error > runner.tolerance(case.dtype):
        ways = ("on the device", "with transfers")
        worst = ways[errors.index(result.max_error)]
        result.status, result.note = "wrong", f"relative error {result.max_error:.2e} ({worst})"
        return None
    result.measures.update(timer=timer.name, bytes=case.min_bytes)
    return [_Way(call, timer) for call in calls]


def _warm_up(ways: list[_Way], settings: runner.Settings) -> None:
    """Every way at least once (timed), the fast ones round-robin for ``warmup_s``."""
    deadline = time.perf_counter() + settings.warmup_s
    for way in ways:
        way.fastest_s = way.timer.seconds(way.call)
    fast = [way for way in ways if way.fastest_s < settings.warmup_s]
    while fast and time.perf_counter() < deadline:
        for way in fast:
            way.fastest_s = min(way.fastest_s, way.timer.seconds(way.call))
    for way in ways:
        way.count = max(1, math.ceil(settings.min_sample_s / max(way.fastest_s, 1e-9)))


def _rounds(ways: list[_Way], settings: runner.Settings) -> None:
    """``repeat`` samples of each way, in rotating order; slow ones stop at ``budget_s``."""
    for round_index in range(settings.repeat):
        shift = round_index % len(ways) if ways else 0
        for way in ways[shift:] + ways[:shift]:
            if way.samples and way.spent_s + way.fastest_s * way.count > settings.budget_s:
                continue
            sample = way.timer.seconds(way.call, way.count)
            way.samples.append(sample)
            way.spent_s += sample * way.count


def _cpu_result(case, inputs, reference, settings: runner.Settings) -> Result:
    """fastcorr's 'auto' on the CPU, on the case's host arrays, timed by the CPU runner."""
    auto = Implementation(CPU_KEY, "fastcorr[auto] (CPU)", "fastcorr",
                          lambda workload, *arrays: bind_fastcorr(workload, CPU_KEY, *arrays),
                          compiles=True)
    (result,) = runner.run_case(case.workload, [auto], settings,
                                inputs=lambda _: (inputs, reference))
    result = dataclasses.replace(result, op=case.op, case_id=case.case_id, case_label=case.label)
    result.measures.update(timer="perf_counter (CPU)", bytes=case.min_bytes)
    return result


def run_case(case, implementations: list[GpuImplementation], settings: runner.Settings,
             cpu: bool = True) -> list[Result]:
    """Check, then time, every implementation on one GPU case, both ways.

    Returns
    -------
    list of Result
        One per implementation: ``seconds`` (and ``samples``) on the device;
        ``measures`` holds ``with_transfers_s`` (and its samples and calls
        per sample), the ``timer`` and the case's ``bytes``.  Then, with
        ``cpu``, fastcorr's 'auto' on the CPU (key ``'auto'``), host arrays.
    """
    inputs = case.make_inputs(settings.seed)
    reference = REFERENCES[case.workload.op](case.workload, *inputs)
    results, timed = [], []
    for impl in implementations:
        result = Result.for_case(case, impl.name, impl.key, impl.family)
        results.append(result)
        ways = _checked_ways(impl, case, inputs, reference, result)
        if ways:
            timed.append((result, ways))
    every_way = [way for _, ways in timed for way in ways]
    _warm_up(every_way, settings)
    _rounds(every_way, settings)
    for result, (on_device, with_transfers) in timed:
        result.samples, result.calls_per_sample = on_device.samples, on_device.count
        result.seconds = statistics.median(on_device.samples)
        result.measures.update(with_transfers_s=statistics.median(with_transfers.samples),
                               with_transfers_samples=with_transfers.samples,
                               with_transfers_calls_per_sample=with_transfers.count)
    del timed, every_way
    if cpu:
        results.append(_cpu_result(case, inputs, reference, settings))
    return results


def _release_memory() -> None:
    """Free what a case left on the device: numba's pending frees, torch's cache."""
    from numba import cuda

    with contextlib.suppress(Exception):
        cuda.current_context().deallocations.clear()
    if "torch" in sys.modules and not gpu_peers.torch_unavailable():
        sys.modules["torch"].cuda.empty_cache()


def _summary(results: list[Result]) -> str:
    """``'cuda 1.2 ms (3.4 ms with transfers), auto 20 ms, cupy unavailable'``."""
    parts = []
    for r in results:
        if r.status != "ok":
            parts.append(f"{r.key} {r.status}")
        elif "with_transfers_s" in r.measures:
            parts.append(f"{r.key} {r.seconds * 1e3:.3g} ms "
                         f"({r.measures['with_transfers_s'] * 1e3:.3g} ms with transfers)")
        else:
            parts.append(f"{r.key} {r.seconds * 1e3:.3g} ms")
    return ", ".join(parts)


def run(cases, settings: runner.Settings, peers=None, cpu: bool = True,
        progress=None) -> list[Result]:
    """Run every GPU case; ``peers`` keys the peers (default all), ``cpu`` times 'auto' too.

    ``progress(message)`` (default: a line on stderr) hears of each case.
    torch runs under :func:`~fastcorr.bench.gpu_peers.torch_settings`.
    """
    if progress is None:
        def progress(message):
            print(message, file=sys.stderr, flush=True)
    results = []
    with gpu_peers.torch_settings():
        for index, case in enumerate(cases, start=1):
            start = time.perf_counter()
            progress(f"[{index}/{len(cases)}] {case.op.upper()} {case.label} ...")
            case_results = run_case(case, for_op(case.op, peers), settings, cpu)
            _release_memory()
            progress(f"      {time.perf_counter() - start:.1f} s: {_summary(case_results)}")
            results.extend(case_results)
    return results


def _best_seconds(timer: Timer, call, repeat: int) -> float:
    call()
    return min(timer.seconds(call) for _ in range(repeat))


def measure_peaks(copy_bytes: int = 2**30, transfer_bytes: int = 2**28,
                  repeat: int = 5) -> dict:
    """The device's measured copy bandwidth (BENCH.md's yardstick) and host transfer speeds.

    Parameters
    ----------
    copy_bytes : int
        Size of the device-to-device copy (``copy_to_device`` between numba
        device arrays).
    transfer_bytes : int
        Size of the host-to-device and device-to-host copies (pageable host
        memory, as NumPy arrays are).
    repeat : int
        Best of this many, after one untimed copy.

    Returns
    -------
    dict
        ``device_copy_GBps`` (read + write counted), ``host_to_device_GBps``,
        ``device_to_host_GBps``, the sizes and the ``device_timer``.
    """
    timer = numba_timer()
    copy_s = _device_copy_seconds(timer, copy_bytes, repeat)
    to_device_s, to_host_s = _transfer_seconds(timer, transfer_bytes, repeat)
    _release_memory()
    return {"device_copy_GBps": 2 * copy_bytes / copy_s / 1e9, "device_copy_bytes": copy_bytes,
            "host_to_device_GBps": transfer_bytes / to_device_s / 1e9,
            "device_to_host_GBps": transfer_bytes / to_host_s / 1e9,
            "transfer_bytes": transfer_bytes, "device_timer": timer.name}


def _device_copy_seconds(timer: Timer, size: int, repeat: int) -> float:
    from numba import cuda

    source = cuda.device_array(size // 4, np.float32)
    target = cuda.device_array_like(source)
    return _best_seconds(timer, lambda: target.copy_to_device(source), repeat)


def _transfer_seconds(timer: Timer, size: int, repeat: int) -> tuple[float, float]:
    """Seconds of one host-to-device and one device-to-host copy of ``size`` bytes."""
    from numba import cuda

    host = np.ones(size // 4, np.float32)
    device = cuda.device_array_like(host)
    return (_best_seconds(timer, lambda: device.copy_to_device(host), repeat),
            _best_seconds(timer, lambda: device.copy_to_host(host), repeat))


def _nvidia_smi() -> dict | None:
    """The GPU as ``nvidia-smi`` reports it (name, driver, memory, clocks, power), or None."""
    if shutil.which("nvidia-smi") is None:
        return None
    wanted = ("name", "driver_version", "memory.total", "clocks.max.sm", "clocks.max.memory",
              "power.limit", "pcie.link.gen.current", "pcie.link.width.current")
    # An older nvidia-smi may refuse a field, and with it the whole query: then the basics.
    for fields in (wanted, wanted[:3]):
        try:
            done = subprocess.run(["nvidia-smi", f"--query-gpu={','.join(fields)}",
                                   "--format=csv,noheader"], capture_output=True, text=True,
                                  timeout=30, check=True)
        except (OSError, subprocess.SubprocessError):
            continue
        lines = done.stdout.strip().splitlines()
        if lines:  # the first GPU: the one numba uses by default
            return dict(zip(fields, (value.strip() for value in lines[0].split(","))))
    return None


def describe() -> dict:
    """What GPU figures depend on: device, driver, numba's CUDA target, torch, CuPy, settings.

    :func:`fastcorr.bench.environment.gpu` with, besides, numba's CUDA
    target (numba-cuda's version), ``nvidia-smi``'s report, torch's and
    CuPy's versions (CUDA, cuDNN) and the torch settings of the run.
    """
    facts = gpu_facts()
    status = backend_status()["cuda"]
    no_torch = gpu_peers.torch_unavailable()
    facts.update(numba_cuda=status["implementation"], nvidia_smi=_nvidia_smi(),
                 torch_settings=f"not applied: {no_torch}" if no_torch
                 else gpu_peers.TORCH_SETTINGS, **gpu_peers.versions())
    return facts
