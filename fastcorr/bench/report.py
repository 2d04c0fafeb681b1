"""Turning results into the terminal table, ``report.md`` and ``results.json``.

Speed-ups are ``baseline time / implementation time`` within one case, so a
figure above 1 means faster than the baseline (the baselines of docs/benchmarks.md:
``scipy.signal.correlate2d`` and torch for C1, torch for C2).
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

from .environment import describe_pool
from .implementations import BASELINES

_TITLES = {"c1": "C1: correlate2d, one channel", "c2": "C2: conv2d, NCHW"}
_BASELINE_HEADERS = {"correlate2d": "vs correlate2d", "torch": "vs torch"}


def speedups(results) -> dict[tuple[str, str], dict[str, float]]:
    """``{(case_id, key): {baseline_key: speed-up}}`` for every timed result."""
    by_case = {}
    for result in results:
        if result.seconds:
            by_case.setdefault(result.case_id, {})[result.key] = result.seconds
    table = {}
    for result in results:
        if not result.seconds:
            continue
        times = by_case[result.case_id]
        table[(result.case_id, result.key)] = {
            baseline: times[baseline] / result.seconds
            for baseline in BASELINES[result.op] if baseline in times
        }
    return table


def format_seconds(seconds: float | None, estimated: bool = False) -> str:
    """``'1.23 ms'``-style, with ``'~'`` for an estimate and ``'-'`` for none."""
    if seconds is None:
        return "-"
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        if seconds >= scale or unit == "us":
            text = f"{seconds / scale:.3g} {unit}"
            break
    return f"~{text}" if estimated else text


def _note(result) -> str:
    if result.status == "ok":
        return result.note
    return f"{result.status}: {result.note}"


def rows(results, op: str) -> tuple[list[str], list[list[str]]]:
    """Header and rows of one workload's table."""
    baselines = BASELINES[op]
    header = ["case", "implementation", "median", "GFLOP/s"]
    header += [_BASELINE_HEADERS[b] for b in baselines] + ["note"]
    ratios = speedups(results)
    body = []
    for result in results:
        if result.op != op:
            continue
        ratio = ratios.get((result.case_id, result.key), {})
        gflops = f"{result.gflops:.3g}" if result.gflops else "-"
        body.append([result.case_label, result.implementation,
                     format_seconds(result.seconds, result.estimated), gflops]
                    + [f"{ratio[b]:.3g}x" if b in ratio else "-" for b in baselines]
                    + [_note(result)])
    return header, body


def summary(results, op: str) -> tuple[list[str], list[list[str]]]:
    """Per implementation: geometric mean and minimum speed-up over the cases both ran."""
    baselines = BASELINES[op]
    header = ["implementation"] + [f"{_BASELINE_HEADERS[b]} {stat}" for b in baselines
                                   for stat in ("geomean", "min")] + ["cases"]
    ratios = speedups(results)
    body = []
    for name, key in dict.fromkeys((r.implementation, r.key) for r in results if r.op == op):
        per_case = [ratios.get((r.case_id, key), {}) for r in results
                    if r.op == op and r.key == key]
        cells = []
        for baseline in baselines:
            values = [ratio[baseline] for ratio in per_case if baseline in ratio]
            if values:
                geomean = math.exp(sum(map(math.log, values)) / len(values))
                cells += [f"{geomean:.3g}x", f"{min(values):.3g}x"]
            else:
                cells += ["-", "-"]
        body.append([name] + cells + [str(sum(1 for ratio in per_case if ratio))])
    return header, body


def text_table(header: list[str], body: list[list[str]], note_width: int = 60) -> str:
    """Aligned plain-text columns; the last (note) column is cut to ``note_width``."""
    body = [row[:-1] + [row[-1][:note_width]] for row in body]
    widths = [max(len(row[i]) for row in [header] + body) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
             for row in [header] + body]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(line.rstrip() for line in lines)


def markdown_table(header: list[str], body: list[list[str]]) -> str:
    def line(cells):
        return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"
    return "\n".join([line(header), line(["---"] * len(header))] + [line(row) for row in body])


def text_report(results) -> str:
    """The tables ``fastcorr bench`` prints."""
    parts = []
    for op in dict.fromkeys(r.op for r in results):
        parts += [_TITLES[op], text_table(*rows(results, op)), "",
                  f"{_TITLES[op]}: speed-ups", text_table(*summary(results, op)), ""]
    return "\n".join(parts)


def _environment_lines(environment: dict, settings) -> list[str]:
    versions = ", ".join(f"{name} {version}" for name, version in environment["versions"].items()
                         if version)
    layer = environment["numba_threading_layer"]
    threads = ", ".join(f"{name} {count}" for name, count in environment["threads"].items()
                        if count is not None)
    pools = environment["thread_pools"]
    if isinstance(pools, list):
        pools = "; ".join(f"{describe_pool(pool)} ({pool['prefix']})" for pool in pools)
    return [
        f"- date: {environment['date']}",
        f"- machine: {environment['cpu']}, {environment['usable_cpus']} usable CPUs, "
        f"{environment['platform']}; load average {environment['load_average']} before the run",
        f"- versions: {versions}",
        f"- threads: {threads}; numba threading layer {layer['used']} "
        f"(configured {layer['configured']})",
        f"- thread pools: {pools}",
        f"- timing: median of {settings.repeat} interleaved samples per implementation, "
        f">= {settings.warmup_s} s warm-up per case, samples of >= {settings.min_sample_s} s, "
        f"at most {settings.budget_s} s of samples for slow implementations, "
        f"{settings.settle_s} s pause after BLAS users; inputs random normal, seed {settings.seed}",
    ]


def markdown_report(results, environment: dict, settings, command: str) -> str:
    """``report.md``: environment, then per workload the table and its speed-up summary."""
    parts = ["# fastcorr bench", "", f"Command: `{command}`", ""]
    parts += _environment_lines(environment, settings) + [""]
    for op in dict.fromkeys(r.op for r in results):
        parts += [f"## {_TITLES[op]}", "", markdown_table(*rows(results, op)), "",
                  "Speed-ups (geometric mean and minimum over the cases):", "",
                  markdown_table(*summary(results, op)), ""]
    parts.append("`~` marks a time extrapolated by flops from a smaller case (the naive loops).")
    return "\n".join(parts) + "\n"


def results_json(results, environment: dict, settings, command: str) -> dict:
    """``results.json``: every figure, with the environment and settings it was taken in."""
    ratios = speedups(results)
    records = []
    for result in results:
        record = dataclasses.asdict(result)
        record["gflops"] = result.gflops
        record["speedup"] = ratios.get((result.case_id, result.key), {})
        records.append(record)
    return {"command": command, "settings": dataclasses.asdict(settings),
            "environment": environment, "results": records}


def write(out_dir, results, environment: dict, settings, command: str) -> list[Path]:
    """Write ``results.json`` and ``report.md`` into ``out_dir`` (created if needed)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path, markdown_path = out_dir / "results.json", out_dir / "report.md"
    json_path.write_text(json.dumps(results_json(results, environment, settings, command),
                                    indent=1) + "\n")
    markdown_path.write_text(markdown_report(results, environment, settings, command))
    return [json_path, markdown_path]
