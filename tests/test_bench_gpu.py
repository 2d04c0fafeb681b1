"""The GPU workloads G1-G3 of ``fastcorr bench``: selected, skipped, run, reported.

Where CUDA is there (CI: numba's CUDA simulator, NUMBA_ENABLE_CUDASIM=1) the
smoke profile runs end to end through the command line, with launch sizes
shrunk so that the simulator's Python threads stay few.  Without CUDA each
GPU workload says why it was skipped.  The report, the targets and the plots
of a run with peers, and torch's calls, are checked on made-up results and
on the CPU.  Nothing here checks how fast anything is.
"""

from __future__ import annotations

import contextlib
import io
import json

import numpy as np
import pytest
from helpers import shrink_cuda_launches

import fastcorr
from fastcorr import cli
from fastcorr.bench import gpu, gpu_peers, plots, report, runner, targets, workloads
from fastcorr.bench.references import REFERENCES

CUDA = fastcorr.backends()["cuda"]
requires_cuda = pytest.mark.skipif(not CUDA["available"], reason=f"no CUDA: {CUDA['reason']}")
GPU_TITLES = ("G1: correlate2d on the GPU", "G2: conv2d on the GPU",
              "G3: pooling and normalisation on the GPU")


def _bench(arguments) -> tuple[str, str]:
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        assert cli.main(["bench", *arguments]) == 0
    return stdout.getvalue(), stderr.getvalue()


def _records(out_dir):
    return json.loads((out_dir / "results.json").read_text())


@contextlib.contextmanager
def _small_launches():
    """Few threads per block, so that the simulator runs tiny cases in seconds."""
    if not CUDA["available"]:
        yield
        return
    with pytest.MonkeyPatch.context() as patch:
        shrink_cuda_launches(patch)
        yield


@pytest.fixture(scope="module")
def gpu_run(tmp_path_factory):
    """``fastcorr bench --smoke --gpu``: its stdout, stderr and --out directory."""
    if not CUDA["available"]:
        pytest.skip(f"no CUDA: {CUDA['reason']}")
    out_dir = tmp_path_factory.mktemp("gpu-bench")
    with _small_launches():
        out, err = _bench(["--smoke", "--gpu", "--threads", "1", "--out", str(out_dir)])
    return out, err, out_dir


# Selection ----------------------------------------------------------------------------------

@pytest.mark.parametrize(("arguments", "cpu_ops", "gpu_ops"), [
    ([], workloads.OPS, ()),
    (["--gpu"], (), workloads.GPU_OPS),
    (["--ops", "g2,c1"], ("c1",), ("g2",)),
    (["--ops", "c4", "--gpu"], ("c4",), workloads.GPU_OPS),
])
def test_gpu_workloads_run_only_when_asked_for(arguments, cpu_ops, gpu_ops):
    args = cli.build_parser().parse_args(["bench", *arguments])
    assert cli._selected_ops(args) == (list(cpu_ops), list(gpu_ops))


def test_gpu_cases_are_bench_md_sizes():
    default = {op: workloads.select(op, "default") for op in workloads.GPU_OPS}
    assert {case.workload.image_size for case in default["g1"]} == {4096}
    assert [case.label for case in default["g2"]] == [case.label
                                                      for case in workloads.select("c2", "default")]
    shapes = {case.workload.shape for case in default["g3"]}
    assert shapes == {(128, 64, 112, 112), (128, 64, 56, 56), (80, 20, 50, 50)}
    assert len(default["g3"]) == len(workloads.select("c4", "default")) + 16
    k3 = default["g1"][0]
    assert k3.case_id == "g1-4096-k3-same-float32"
    assert k3.min_bytes == (2 * 4096**2 + 9) * 4 and k3.work == 2 * 4096**2 * 9
    assert all(case.min_bytes == case.work for case in default["g3"])
    for profile in workloads.PROFILE_NAMES:
        assert all(workloads.select(op, profile) for op in workloads.GPU_OPS), profile
    retyped = workloads.select("g2", "smoke", ["float64"])
    assert [case.dtype for case in retyped] == ["float64"] and retyped[0].op == "g2"


# Without CUDA --------------------------------------------------------------------------------

def test_without_cuda_each_gpu_workload_says_why_and_the_others_run(tmp_path, monkeypatch):
    reason = CUDA["reason"]
    if CUDA["available"]:
        reason = "no GPU in this test"
        monkeypatch.setattr(gpu, "unavailable_reason", lambda: reason)
    out, _ = _bench(["--smoke", "--ops", "g1,c4,g3", "--backends", "numpy", "--peers", "none",
                     "--repeat", "1", "--out", str(tmp_path)])
    lines = out.splitlines()
    assert lines[:2] == [f"g1: skipped: {reason}", f"g3: skipped: {reason}"]
    assert "C4: pooling" in out and not any(title in out for title in GPU_TITLES)
    assert {r["op"] for r in _records(tmp_path)["results"]} == {"c4"}


# The smoke run, on a GPU or the simulator ----------------------------------------------------

@requires_cuda
def test_gpu_smoke_prints_every_workload_and_progress(gpu_run):
    out, err, _ = gpu_run
    for title in GPU_TITLES:
        assert title in out
    assert out.count("figure (fastcorr cuda)") == 3
    progress = [line for line in err.splitlines() if line.startswith("[")]
    cases = [case for op in workloads.GPU_OPS for case in workloads.select(op, "smoke")]
    assert len(progress) == len(cases)
    assert progress[0] == f"[1/{len(cases)}] G1 {cases[0].label} ..."


@requires_cuda
def test_gpu_smoke_records_both_times_of_every_implementation(gpu_run):
    _, _, out_dir = gpu_run
    records = _records(out_dir)["results"]
    cases = {case.case_id for op in workloads.GPU_OPS for case in workloads.select(op, "smoke")}
    assert {r["case_id"] for r in records} == cases
    timer = gpu.PERF_COUNTER if "simulator" in CUDA["device"] else gpu.EVENTS
    for case_id in cases:
        mine = {r["key"]: r for r in records if r["case_id"] == case_id}
        assert set(mine) >= {"cuda", "torch", "auto"}
        cuda = mine["cuda"]
        assert cuda["status"] == "ok", cuda["note"]
        assert cuda["seconds"] > 0 and cuda["samples"] and cuda["rate"] > 0
        assert cuda["max_error"] <= 1e-4
        measures = cuda["measures"]
        assert measures["with_transfers_s"] > 0 and measures["with_transfers_samples"]
        assert measures["timer"] == timer and measures["bytes"] > 0
        assert set(cuda["speedup"]) == set(cuda["speedup_with_transfers"]) >= {"auto"}
        cpu = mine["auto"]
        assert cpu["status"] == "ok" and cpu["seconds"] > 0
        assert cpu["implementation"] == "fastcorr[auto] (CPU)"
        for peer in ("torch", "cupy"):
            if peer in mine and mine[peer]["status"] != "ok":
                assert mine[peer]["status"] == "unavailable" and mine[peer]["note"]


@requires_cuda
def test_gpu_smoke_records_the_device_and_the_targets(gpu_run):
    _, _, out_dir = gpu_run
    results = _records(out_dir)
    environment = results["environment"]
    peaks = environment["peaks"]
    assert peaks["device_copy_GBps"] > 0 and peaks["host_to_device_GBps"] > 0
    assert "copy_GBps" not in peaks  # no CPU workload ran
    details = environment["gpu"]
    assert details["numba_cuda"].startswith("numba")
    assert {"torch", "cupy", "torch_settings", "nvidia_smi"} <= set(details)
    checked = {(c["op"], c["target"][:3]): c for c in results["targets"]}
    for op in workloads.GPU_OPS:
        g4 = checked[(op, "G4:")]
        assert "with both times" in g4["figure"]
        assert g4["met"] is (gpu.PERF_COUNTER not in g4["figure"])
    report_md = (out_dir / "report.md").read_text()
    assert "| case | implementation | on device | with transfers |" in report_md
    assert "- measured: device copy " in report_md and "- GPU software: " in report_md


@requires_cuda
def test_gpu_no_cpu_leaves_out_the_cpu_figures(tmp_path):
    with _small_launches():
        _bench(["--smoke", "--ops", "g1", "--no-cpu", "--peers", "none", "--repeat", "1",
                "--out", str(tmp_path)])
    records = _records(tmp_path)["results"]
    assert [r["key"] for r in records] == ["cuda"] and records[0]["status"] == "ok"


# Timing ---------------------------------------------------------------------------------------

class _Event:
    def __init__(self, clock):
        self.clock, self.at = clock, None

    def record(self):
        self.at = self.clock[0]

    def synchronize(self):
        pass


def test_timer_uses_events_and_falls_back_where_they_do_not_time():
    clock = [0.0]

    def call():
        clock[0] += 2.0  # milliseconds, as CUDA events count

    timer = gpu._timer(lambda: _Event(clock), lambda start, end: end.at - start.at,
                       lambda: None)
    assert timer.name == gpu.EVENTS
    assert timer.seconds(call, 4) == pytest.approx(0.002)
    # numba's simulator: events that always say -1 ms
    simulated = gpu._timer(lambda: _Event(clock), lambda start, end: -1.0, lambda: None)
    assert simulated.name == gpu.PERF_COUNTER and simulated.event is None
    assert simulated.seconds(call, 3) >= 0


# The report, targets and plots of a run with peers (made-up results) -------------------------

def _result(case, key, device_s, transfers_s=None, family="peer"):
    result = runner.Result.for_case(case, key, key, family)
    result.seconds = device_s
    if key != "auto":
        result.measures.update(with_transfers_s=transfers_s, timer=gpu.EVENTS,
                               bytes=case.min_bytes)
    return result


def test_gpu_report_targets_and_plots_with_peers(tmp_path):
    case = workloads.select("g1", "default")[0]
    results = [_result(case, "cuda", 0.001, 0.008, "fastcorr"),
               _result(case, "torch", 0.002, 0.004), _result(case, "cupy", 0.0005, 0.016),
               _result(case, "auto", 0.02, family="fastcorr")]
    header, body = report.rows(results, "g1")
    assert header[2:4] == ["on device", "with transfers"]
    cuda_row = dict(zip(header, body[0]))
    assert cuda_row["vs torch"] == "2x / 0.5x" and cuda_row["vs cupy"] == "0.5x / 2x"
    assert cuda_row["vs CPU auto"] == "20x / 2.5x"
    cpu_row = dict(zip(header, body[3]))
    assert cpu_row["on device"] == "-" and cpu_row["with transfers"] == "20 ms"

    peaks = {"device_copy_GBps": 3000.0}
    checked = {c["target"][:30]: c for c in targets.evaluate(results, peaks)}
    vs_cupy = checked[">= 1.0x cupyx.scipy.signal.cor"]
    assert vs_cupy["met"] is False and vs_cupy["figure"].startswith("0.5x")
    bandwidth = checked[">= 50% of measured device copy"]
    assert bandwidth["met"] is False and bandwidth["figure"].startswith(
        f"{100 * case.min_bytes / 0.001 / 1e9 / 3000:.3g}%")
    assert checked["G4: every figure on the device"]["met"] is True

    record = report.results_json(results, {"peaks": peaks}, runner.Settings(), "test")
    assert record["results"][0]["speedup_with_transfers"] == {"cupy": 2.0, "torch": 0.5,
                                                              "auto": 2.5}
    if plots.available():
        names = [path.name for path in plots.write(results, tmp_path)]
        assert names == ["speedup.png", "cpu_vs_cuda.png"]


# torch's calls, checked on the CPU -----------------------------------------------------------

TORCH_WORKLOADS = [
    workloads.Correlate2dCase(9, 3, "full"), workloads.Correlate2dCase(9, 5, "same"),
    workloads.Conv2dLayer("L4", 2, 3, 9, 9, 4, 3, stride=2, padding=1),
    workloads.Conv2dLayer("L6", 1, 3, 6, 6, 1, 3, padding="valid"),
    *workloads.select("c4", "smoke"), *workloads.select("c5", "smoke"),
]


@pytest.mark.parametrize("workload", TORCH_WORKLOADS, ids=lambda w: w.case_id)
def test_torch_calls_compute_the_workload(workload):
    pytest.importorskip("torch")
    case = workloads.GpuCase("g", workload)
    inputs = case.make_inputs()
    reference = REFERENCES[workload.op](workload, *inputs)
    for call in gpu_peers.torch_calls(case, inputs, device="cpu"):
        result = gpu._host(call())
        assert runner.relative_error(result, reference) < 1e-5
        first = result[0] if isinstance(result, tuple) else result
        assert isinstance(first, np.ndarray)
