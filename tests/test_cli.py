"""Smoke tests of the ``fastcorr`` command line: it runs and writes its reports.

They check that the benchmark code works (tiny shapes, ``--smoke``), not how
fast anything is.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from fastcorr import cli

BACKEND_NAMES = ("naive", "numpy", "scipy", "numba", "cuda")


def test_info_names_every_backend_and_the_threading_layer(capsys):
    assert cli.main(["info"]) == 0
    out = capsys.readouterr().out
    for name in BACKEND_NAMES:
        assert f"\n  {name} " in out
    assert "threading layer" in out
    assert "fastcorr.get_num_threads()" in out


def test_info_json_reports_backends_with_reasons(capsys):
    assert cli.main(["info", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert set(info["backends"]) == set(BACKEND_NAMES)
    for status in info["backends"].values():
        assert status["available"] or status["reason"]
    assert info["versions"]["numpy"]
    assert info["numba_threading_layer"]["used"]


def test_bench_smoke_writes_json_and_markdown(tmp_path, capsys):
    assert cli.main(["bench", "--smoke", "--threads", "1", "--out", str(tmp_path)]) == 0
    captured = capsys.readouterr()
    assert "C1: correlate2d" in captured.out and "C2: conv2d" in captured.out
    assert "[1/" in captured.err  # progress goes to stderr

    results = json.loads((tmp_path / "results.json").read_text())
    assert results["settings"]["repeat"] == 2
    assert results["environment"]["threads"]["fastcorr"] == 1
    records = results["results"]
    assert {record["op"] for record in records} == {"c1", "c2"}
    failed = [(r["case_id"], r["implementation"], r["note"]) for r in records
              if r["status"] in ("wrong", "error")]
    assert not failed
    timed = [r for r in records if r["status"] == "ok"]
    assert {"auto", "numpy", "naive"} <= {r["key"] for r in timed}
    for record in timed:
        assert record["seconds"] > 0 and record["gflops"] > 0 and record["samples"]
    assert all(r["estimated"] for r in timed if r["key"] == "naive")

    report = (tmp_path / "report.md").read_text()
    assert report.startswith("# fastcorr bench")
    assert "| case | implementation | median |" in report


def test_bench_options_narrow_the_run(tmp_path, capsys):
    arguments = ["bench", "--smoke", "--ops", "c2", "--backends", "numpy", "--peers", "none",
                 "--dtype", "float64", "--repeat", "1", "--out", str(tmp_path)]
    assert cli.main(arguments) == 0
    records = json.loads((tmp_path / "results.json").read_text())["results"]
    assert {r["key"] for r in records} == {"numpy"}
    assert {r["op"] for r in records} == {"c2"}
    assert all(r["case_id"].endswith("float64") for r in records)
    assert all(len(r["samples"]) == 1 for r in records)


@pytest.mark.parametrize("arguments", [["bench", "--backends", "fortran"],
                                       ["bench", "--ops", "c9"],
                                       ["bench", "--threads", "0"]])
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
