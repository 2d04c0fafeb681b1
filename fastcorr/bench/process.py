"""C7 and C8: what a fresh process sees, the first-call latency and the peak memory.

Each sample is a new Python process (the interpreter this one runs), which
prints one JSON line.

* C7 ``import``: seconds of ``import fastcorr``, and whether it imported
  numba (it must not: nothing compiles at import).
* C7 ``conv2d``: seconds of the first ``fastcorr.conv2d`` call after
  ``import fastcorr``, numba's import included, with ``NUMBA_CACHE_DIR`` an
  empty directory ('cold': compilation; one sample, each needs a new
  directory) or one an earlier process filled ('warm': loading).
* C8: resident memory at the peak of one call on backend 'auto', above what
  was resident before it (interpreter, libraries, inputs, and the kernels
  compiled or loaded by an identical call just before), minus the output.
  The peak is ``VmHWM`` of ``/proc/self/status`` after resetting it through
  ``/proc/self/clear_refs`` (Linux), else ``ru_maxrss``, which then includes
  the warm-up call.  glibc is told to return freed blocks of 64 KiB and more
  to the system at once (``MALLOC_MMAP_THRESHOLD_``), so that memory freed
  by the warm-up call does not hide what the timed call allocates.
"""

from __future__ import annotations

import dataclasses
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

import fastcorr

from . import workloads

MIB = 2**20
# BENCH.md C8: the extra memory allowed besides the output.
EXTRA_MEMORY_LIMIT = 64 * MIB

_IMPORT = """\
import json, sys, time
start = time.perf_counter()
import fastcorr
seconds = time.perf_counter() - start
print(json.dumps({"seconds": seconds, "numba_imported": "numba" in sys.modules}))
"""

_FIRST_CONV2D = """\
import json, time
import numpy as np
import fastcorr
rng = np.random.default_rng(0)
x = rng.standard_normal({input_shape}).astype({dtype!r})
weight = rng.standard_normal({weight_shape}).astype({dtype!r})
start = time.perf_counter()
fastcorr.conv2d(x, weight, stride={stride}, padding={padding!r})
print(json.dumps({{"seconds": time.perf_counter() - start}}))
"""

_PEAK_MEMORY = """\
from fastcorr.bench.process import peak_memory_child
peak_memory_child({kind!r}, {fields!r}, {threads})
"""


def _child_environment(**extra) -> dict:
    """This environment, with this process's fastcorr first on the path."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(fastcorr.__file__)))
    path = os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))
    return dict(os.environ, PYTHONPATH=path, **extra)


def run_child(program: str, timeout_s: float = 600, **environment) -> dict:
    """Run ``program`` in a fresh interpreter; the JSON object it printed last.

    Raises
    ------
    RuntimeError
        The process failed; the message ends with its standard error.
    """
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True,
                          env=_child_environment(**environment), timeout=timeout_s)
    if done.returncode != 0:
        raise RuntimeError(f"exit status {done.returncode}: {done.stderr.strip()[-400:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _status_bytes(field: str) -> int | None:
    """A ``/proc/self/status`` memory field (``'VmRSS'``, ``'VmHWM'``) in bytes, or None."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _reset_peak() -> bool:
    """Reset ``VmHWM`` to the current resident size (Linux >= 4.0); whether it worked."""
    try:
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")
    except OSError:
        return False
    return _status_bytes("VmHWM") is not None


def peak_memory_child(kind: str, fields: dict, threads: int) -> None:
    """In the C8 child: call the workload twice, print the second call's memory as JSON.

    Parameters
    ----------
    kind : str
        Class name of the workload case in :mod:`~fastcorr.bench.workloads`.
    fields : dict
        Its fields.
    threads : int
        ``fastcorr.set_num_threads``.
    """
    from .implementations import bind_fastcorr

    fastcorr.set_num_threads(threads)
    case = getattr(workloads, kind)(**fields)
    inputs = case.make_inputs()
    call = bind_fastcorr(case, "auto", *inputs)
    call()  # compiles or loads the kernels; its output is freed at once
    reset = _reset_peak()
    before = _status_bytes("VmRSS")
    start = time.perf_counter()
    out = call()
    seconds = time.perf_counter() - start
    if reset:
        peak, method = _status_bytes("VmHWM"), "VmHWM after clear_refs"
    else:  # ru_maxrss: KiB on Linux; includes the first call
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        method = "ru_maxrss (includes the warm-up call)"
    print(json.dumps({"seconds": seconds, "rss_before_bytes": before, "peak_rss_bytes": peak,
                      "output_bytes": out.nbytes,
                      "input_bytes": sum(array.nbytes for array in inputs), "method": method}))


class Workspace:
    """Scratch directories for C7's numba caches, removed on exit.

    A 'warm' case reuses the cache a 'cold' sample of the same layer filled,
    or fills one first with an untimed call.
    """

    def __enter__(self):
        self._directory = tempfile.TemporaryDirectory(prefix="fastcorr-bench-")
        self.filled = {}
        return self

    def __exit__(self, *exc_info):
        self._directory.cleanup()

    def new_cache(self) -> str:
        return tempfile.mkdtemp(dir=self._directory.name)


def _first_conv2d_program(layer) -> str:
    weight = (layer.out_channels, layer.in_channels, layer.kernel_size, layer.kernel_size)
    return _FIRST_CONV2D.format(input_shape=layer.input_shape, weight_shape=weight,
                                dtype=layer.dtype, stride=layer.stride, padding=layer.padding)


def _latency_samples(case, repeat: int, workspace: Workspace) -> list[dict]:
    if case.what == "import":
        return [run_child(_IMPORT) for _ in range(repeat)]
    program = _first_conv2d_program(case.layer)
    if case.cache == "cold":
        cache = workspace.new_cache()
        sample = run_child(program, NUMBA_CACHE_DIR=cache)
        workspace.filled[case.layer] = cache
        return [sample]
    if case.layer not in workspace.filled:
        workspace.filled[case.layer] = workspace.new_cache()
        run_child(program, NUMBA_CACHE_DIR=workspace.filled[case.layer])
    return [run_child(program, NUMBA_CACHE_DIR=workspace.filled[case.layer])
            for _ in range(repeat)]


def _memory_measures(case, threads: int) -> tuple[dict, float]:
    program = _PEAK_MEMORY.format(kind=type(case.workload).__name__,
                                  fields=dataclasses.asdict(case.workload), threads=threads)
    sample = run_child(program, MALLOC_MMAP_THRESHOLD_="65536")
    measures = {key: value for key, value in sample.items() if key != "seconds"}
    if sample["rss_before_bytes"] is not None and sample["peak_rss_bytes"] is not None:
        # Negative where the output fitted in memory the warm-up call had freed: none extra.
        measures["extra_bytes"] = max(0, sample["peak_rss_bytes"] - sample["rss_before_bytes"]
                                      - sample["output_bytes"])
    measures["limit_bytes"] = EXTRA_MEMORY_LIMIT + sample["output_bytes"]
    return measures, sample["seconds"]


def measure(case, repeat: int, workspace: Workspace, threads: int):
    """Measure one C7 or C8 case in fresh processes.

    Parameters
    ----------
    case : LatencyCase or MemoryCase
    repeat : int
        Samples of C7's import and warm first call (cold: one; C8: one).
    workspace : Workspace
    threads : int
        fastcorr's threads in C8's process (C7's use the defaults).

    Returns
    -------
    samples : list of float
        Seconds: of the import or first call (C7), of the measured call (C8).
    measures : dict
        C7 import: ``numba_imported``; C8: the resident sizes in bytes,
        ``extra_bytes`` (peak above inputs + output) and ``limit_bytes``.
    note : str

    Raises
    ------
    RuntimeError, subprocess.TimeoutExpired
        A process failed.
    """
    if case.op == "c7":
        samples = _latency_samples(case, repeat, workspace)
        measures = {}
        if case.what == "import":
            measures["numba_imported"] = any(sample["numba_imported"] for sample in samples)
        return [sample["seconds"] for sample in samples], measures, (
            "one sample" if len(samples) == 1 else "")
    measures, seconds = _memory_measures(case, threads)
    note = ""
    if "extra_bytes" in measures:
        note = (f"{measures['extra_bytes'] / MIB:.1f} MiB above inputs + output "
                f"(limit {measures['limit_bytes'] / MIB:.1f} MiB)")
    return [seconds], measures, note
