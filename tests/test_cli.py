"""Smoke tests of the ``fastcorr`` command line: it runs and writes its reports.

They check that the benchmark code works (tiny shapes, ``--smoke``), not how
fast anything is.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys

import pytest

from fastcorr import cli
from fastcorr.bench import plots, runner, targets, workloads

OPS_TIMED = ("c1", "c2", "c3", "c4", "c5", "c6")

BACKEND_NAMES = ("naive", "numpy", "scipy", "numba", "cuda")


def test_info_names_every_backend_and_the_threading_layer(capsys):
    assert cli.main(["info"]) == 0
    out = capsys.readouterr().out
    for name in BACKEND_NAMES:
        assert f"\n  {name} " in out
    assert "threading layer" in out
    assert "fastcorr.get_num_threads()" in out
    assert "\nGPU: " in out


def test_info_json_reports_backends_with_reasons(capsys):
    assert cli.main(["info", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert set(info["backends"]) == set(BACKEND_NAMES)
    for status in info["backends"].values():
        assert status["available"] or status["reason"]
    assert info["versions"]["numpy"]
    assert info["numba_threading_layer"]["used"]


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    """One ``fastcorr bench --smoke`` of C1-C6 on one thread: its stdout, stderr and --out dir."""
    out_dir = tmp_path_factory.mktemp("bench")
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = cli.main(["bench", "--smoke", "--threads", "1", "--ops", "c1,c2,c3,c4,c5,c6",
                         "--out", str(out_dir)])
    assert code == 0
    return stdout.getvalue(), stderr.getvalue(), out_dir


def _records(out_dir):
    return json.loads((out_dir / "results.json").read_text())["results"]


def test_bench_smoke_prints_every_workload_and_progress(smoke_run):
    out, err, _ = smoke_run
    for title in ("C1: correlate2d", "C2: conv2d", "C3: unfold", "C4: pooling",
                  "C5: normalisation", "C6: conv2d_backward"):
        assert title in out
    assert out.count("target (BENCH.md)") == 6
    progress = [line for line in err.splitlines() if line.startswith("[")]
    assert len(progress) == sum(len(workloads.select(op, "smoke")) for op in OPS_TIMED)
    assert progress[-1].startswith(f"[{len(progress)}/{len(progress)}] C6 ")


def test_bench_smoke_checks_and_times_every_implementation(smoke_run):
    _, _, out_dir = smoke_run
    results = json.loads((out_dir / "results.json").read_text())
    assert results["settings"]["repeat"] == 2
    assert results["environment"]["threads"]["fastcorr"] == 1
    records = results["results"]
    assert {record["op"] for record in records} == set(OPS_TIMED)
    failed = [(r["case_id"], r["implementation"], r["note"]) for r in records
              if r["status"] in ("wrong", "error", "unsupported")]
    assert not failed
    for op in OPS_TIMED:
        timed = {r["key"] for r in records if r["op"] == op and r["status"] == "ok"}
        assert {"numba", "auto", "numpy", "naive", "torch"} <= timed, op
        keys = {r["key"] for r in records if r["op"] == op}
        assert ("scipy" in keys) == (op in ("c1", "c2")), op
    for record in records:
        if record["status"] == "ok":
            assert record["seconds"] > 0 and record["rate"] > 0 and record["samples"]
            assert record["max_error"] <= 1e-4
            unit = "GB/s" if record["op"] in ("c3", "c4", "c5") else "GFLOP/s"
            assert record["rate_unit"] == unit
    naive = [r for r in records if r["key"] == "naive" and r["op"] in ("c1", "c2", "c6")]
    assert naive and all(r["estimated"] and r["measured_on"] for r in naive)
    assert {"torch", "sliding-window"} <= set(next(
        r["speedup"] for r in records if r["op"] == "c3" and r["key"] == "auto"))


def test_bench_smoke_records_environment_and_targets(smoke_run):
    _, _, out_dir = smoke_run
    results = json.loads((out_dir / "results.json").read_text())
    environment = results["environment"]
    gpu = environment["gpu"]
    # A real GPU has a driver; the simulator (CI) has none; no device says why.
    assert (gpu["driver_version"] or "simulator" in gpu["devices"][0] if gpu["devices"]
            else gpu["reason"])
    assert environment["peaks"]["copy_GBps"] > 0 and environment["peaks"]["sgemm_GFLOPs"] > 0
    assert isinstance(environment["thread_pools"], list | str)
    assert environment["numba_threading_layer"]["used"]
    checked = results["targets"]
    assert {c["op"] for c in checked} == set(OPS_TIMED)
    assert all(c["met"] in (True, False) for c in checked)  # every yardstick was measured

    report = (out_dir / "report.md").read_text()
    assert report.startswith("# fastcorr bench")
    assert "| case | implementation | median | GB/s |" in report
    assert "| target (BENCH.md) | figure (fastcorr auto) | verdict |" in report
    assert "- measured: copy " in report


def test_bench_smoke_draws_the_plots(smoke_run):
    pytest.importorskip("matplotlib")
    _, err, out_dir = smoke_run
    for name in ("speedup.png", "c1_gflops.png"):
        data = (out_dir / name).read_bytes()
        assert data.startswith(b"\x89PNG") and len(data) > 10_000, name
        assert name in err
    assert not (out_dir / "cpu_vs_cuda.png").exists()  # no CUDA results


def test_cuda_plot_drawn_only_with_cuda_results(tmp_path):
    pytest.importorskip("matplotlib")
    results = [runner.Result("c2", "c2-L1", "L1", 10**9, "GFLOP/s", f"fastcorr[{key}]", key,
                             "fastcorr", seconds=seconds)
               for key, seconds in (("torch", 0.02), ("auto", 0.01), ("cuda", 0.001))]
    assert [path.name for path in plots.write(results[:2], tmp_path)] == ["speedup.png"]
    written = plots.write(results, tmp_path)
    assert (tmp_path / "cpu_vs_cuda.png") in written
    assert (tmp_path / "cpu_vs_cuda.png").stat().st_size > 10_000


def test_bench_without_matplotlib_says_so(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(plots, "available", lambda: False)
    arguments = ["bench", "--smoke", "--ops", "c3", "--backends", "numpy", "--peers", "none",
                 "--repeat", "1", "--out", str(tmp_path)]
    assert cli.main(arguments) == 0
    assert "matplotlib is not installed" in capsys.readouterr().err
    assert sorted(path.name for path in tmp_path.iterdir()) == ["report.md", "results.json"]


def test_bench_c7_c8_measure_fresh_processes(tmp_path, capsys):
    arguments = ["bench", "--smoke", "--ops", "c7,c8", "--repeat", "1", "--out", str(tmp_path)]
    assert cli.main(arguments) == 0
    out = capsys.readouterr().out
    assert "C7: first-call latency" in out and "C8: peak memory" in out
    records = {r["case_id"]: r for r in _records(tmp_path)}
    assert set(records) == {case.case_id for op in ("c7", "c8")
                            for case in workloads.select(op, "smoke")}
    assert all(r["status"] == "ok" for r in records.values()), records
    imported = records["c7-import"]
    assert 0 < imported["seconds"] < 30 and imported["measures"]["numba_imported"] is False
    cold, warm = records["c7-conv2d-cold"], records["c7-conv2d-warm"]
    assert cold["note"] == "one sample" and len(warm["samples"]) == 1
    assert warm["seconds"] < cold["seconds"]  # loading from the cache beats compiling
    for record in records.values():
        if record["op"] == "c8":
            measures = record["measures"]
            assert measures["extra_bytes"] >= 0 and measures["output_bytes"] > 0
            assert measures["limit_bytes"] == 64 * 2**20 + measures["output_bytes"]
            assert measures["peak_rss_bytes"] >= measures["rss_before_bytes"]
    report = (tmp_path / "report.md").read_text()
    assert "import <= 0.5 s" in report and "64 MiB + output" in report


def _results_file(path, seconds_by_case):
    records = [{"case_id": case_id, "case_label": case_id, "key": "auto",
                "implementation": "fastcorr[auto]", "seconds": seconds}
               for case_id, seconds in seconds_by_case.items()]
    path.write_text(json.dumps({"results": records}))
    return str(path)


def test_bench_compare_prints_ratios_and_geometric_mean(tmp_path, capsys):
    old = _results_file(tmp_path / "old.json", {"a": 1.0, "b": 2.0, "only-old": 1.0})
    new = _results_file(tmp_path / "new.json", {"a": 0.25, "b": 2.0, "c": None})
    assert cli.main(["bench", "--compare", old, new]) == 0
    out = capsys.readouterr().out
    assert "0.25" in out and "\nb " in out and "only-old" not in out
    assert "geometric mean NEW / OLD: 0.5 over 2 pairs" in out
    assert "1 pairs timed in only one of the files are left out" in out


def test_targets_judge_the_worst_case():
    def result(case_id, key, seconds):
        return runner.Result("c6", case_id, case_id, 1, "GFLOP/s", key, key,
                             "peer" if key == "torch" else "fastcorr", seconds=seconds)

    results = [result("L1", "auto", 1.0), result("L1", "torch", 0.9),
               result("L2", "auto", 1.0), result("L2", "torch", 0.7)]
    (checked,) = targets.evaluate(results, None)
    assert checked["met"] is False and checked["figure"].startswith("0.7x (L2)")
    (checked,) = targets.evaluate(results[:2], None)
    assert checked["met"] is True
    (checked,) = targets.evaluate(results[:1], None)
    assert checked["met"] is None and checked["figure"] == "not measured"


def test_workloads_count_their_work_as_bench_md_says():
    l1 = workloads.C2_LAYERS[0]
    unfold = workloads.select("c3", "default")[0]
    assert unfold.layer.batch == 1 and unfold.rate_unit == "GB/s"
    assert unfold.work == (64 * 56 * 56 + 64 * 9 * 56 * 56) * 4
    backward = workloads.NormCase("layer", "backward", (2, 3, 4, 4))
    assert backward.work == 3 * (2 * 48 + 48) * 4
    assert workloads.ConvBackwardCase(l1).work == 2 * l1.work
    default = {op: workloads.select(op, "default") for op in workloads.OPS}
    assert {case.shape for case in default["c4"]} == {workloads.C4_SHAPE}
    assert {case.shape for case in default["c5"]} == set(workloads.C5_SHAPES)
    assert len(default["c5"]) == 16
    assert [case.layer.name for case in default["c6"]] == ["L1", "L2", "L7"]
    assert all(workloads.select(op, "quick") for op in OPS_TIMED)


def test_bench_options_narrow_the_run(tmp_path, capsys):
    arguments = ["bench", "--smoke", "--ops", "c2", "--backends", "numpy", "--peers", "none",
                 "--dtype", "float64", "--repeat", "1", "--out", str(tmp_path)]
    assert cli.main(arguments) == 0
    records = _records(tmp_path)
    assert {r["key"] for r in records} == {"numpy"}
    assert {r["op"] for r in records} == {"c2"}
    assert all(r["case_id"].endswith("float64") for r in records)
    assert all(len(r["samples"]) == 1 for r in records)


@pytest.mark.parametrize("arguments", [["bench", "--backends", "fortran"],
                                       ["bench", "--ops", "c9"],
                                       ["bench", "--threads", "0"],
                                       ["bench", "--quick", "--full"],
                                       ["bench", "--compare", "one.json"],
                                       ["bench", "--compare", "missing.json", "missing.json"]])
def test_bench_refuses_unknown_choices(arguments):
    with pytest.raises(SystemExit) as raised:
        cli.main(arguments)
    assert raised.value.code != 0


def test_module_runs_as_a_command():
    environment = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    completed = subprocess.run([sys.executable, "-m", "fastcorr.cli", "info"],
                               capture_output=True, text=True, env=environment, timeout=120)
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.startswith("fastcorr ")


def _blank_result():
    return runner.Result(op="c4", case_id="id", case_label="label", work=1, rate_unit=None,
                         implementation="impl", key="key", family="fastcorr")


def _raise(exc):
    raise exc


@pytest.mark.parametrize("reason,check_call,status,note", [
    ("no torch", lambda: 1, "unavailable", "no torch"),
    (None, lambda: _raise(NotImplementedError("backend lacks it")), "unsupported",
     "backend lacks it"),
    (None, lambda: _raise(ZeroDivisionError("boom")), "error", "ZeroDivisionError: boom"),
])
def test_attempt_records_why_an_implementation_is_not_timed(reason, check_call, status, note):
    result = _blank_result()
    assert runner.attempt(result, reason, check_call) is None
    assert (result.status, result.note) == (status, note)


def test_attempt_returns_the_check_and_leaves_the_result_ok():
    result = _blank_result()
    assert runner.attempt(result, None, lambda: (1, 2)) == (1, 2)
    assert result.status == "ok" and result.note == ""
