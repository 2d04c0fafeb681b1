"""Turning results into the terminal tables, ``report.md``, ``results.json`` and ``--compare``.

Speed-ups are ``baseline time / implementation time`` within one case
(:mod:`~fastcorr.bench.ratios`), against the baselines of docs/benchmarks.md:
``scipy.signal.correlate2d`` and torch for C1, NumPy's sliding-window copy
and torch for C3, torch for the others.  C7 and C8 have tables of their own;
the GPU workloads G1-G3 have two times and two speed-ups per implementation,
on the device and with host transfers, and the CPU's 'auto' as a baseline.

Examples
--------
>>> format_seconds(0.00123), format_seconds(2.5, estimated=True)
('1.23 ms', '~2.5 s')
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from . import targets
from .environment import describe_pool
from .implementations import BASELINES
from .process import MIB
from .ratios import geomean, gpu_speedups, gpu_times, speedups
from .workloads import GPU_OPS

TITLES = {"c1": "C1: correlate2d, one channel", "c2": "C2: conv2d, NCHW",
          "c3": "C3: unfold (im2col)", "c4": "C4: pooling", "c5": "C5: normalisation",
          "c6": "C6: conv2d_backward", "c7": "C7: first-call latency (fresh processes)",
          "c8": "C8: peak memory (fresh processes)",
          "g1": "G1: correlate2d on the GPU (C1 at 4096 x 4096)",
          "g2": "G2: conv2d on the GPU (C2 layers)",
          "g3": "G3: pooling and normalisation on the GPU (C4, C5 at 4x the batch)"}
_BASELINE_HEADERS = {"correlate2d": "vs correlate2d", "torch": "vs torch",
                     "sliding-window": "vs sliding_window", "cupy": "vs cupy",
                     "auto": "vs CPU auto"}
_GPU_NOTE = ("On the device: device arrays in, device arrays out (inputs copied once, "
             "beforehand). With transfers: host arrays in, host arrays out (fastcorr: "
             "backend='cuda' on NumPy arrays; peers: copy in, compute, copy out). Speed-ups: "
             "on the device / with transfers; the CPU's 'auto' (on its host arrays, and its "
             "rate) has one time for both.")


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


def _rate_unit(results, op) -> str:
    return next((r.rate_unit for r in results if r.op == op), None) or "rate"


def rows(results, op: str) -> tuple[list[str], list[list[str]]]:
    """Header and rows of one workload's table.

    G1-G3 show both times (on the device, with transfers) and both speed-ups
    in each cell.
    """
    if op not in BASELINES:
        return _process_rows(results, op)
    gpu = op in GPU_OPS
    baselines = BASELINES[op]
    header = (["case", "implementation"]
              + (["on device", "with transfers"] if gpu else ["median"])
              + [_rate_unit(results, op)] + [_BASELINE_HEADERS[b] for b in baselines]
              + ["note"])
    ratios = gpu_speedups(results) if gpu else speedups(results)
    ratio_cell = _pair if gpu else (lambda value: f"{value:.3g}x")
    body = []
    for result in results:
        if result.op != op:
            continue
        ratio = ratios.get((result.case_id, result.key), {})
        times = (list(map(format_seconds, gpu_times(result))) if gpu
                 else [format_seconds(result.seconds, result.estimated)])
        rate = f"{result.rate:.3g}" if result.rate else "-"
        body.append([result.case_label, result.implementation, *times, rate]
                    + [ratio_cell(ratio[b]) if b in ratio else "-" for b in baselines]
                    + [_note(result)])
    return header, body


def _pair(values) -> str:
    """``'1.2x / 0.5x'``: a speed-up on the device and with transfers."""
    return " / ".join(f"{value:.3g}x" if value else "-" for value in values)


def _process_rows(results, op: str) -> tuple[list[str], list[list[str]]]:
    """C7: seconds per sample; C8: resident memory above inputs and output."""
    if op == "c7":
        header = ["case", "median", "samples", "note"]
        body = [[r.case_label, format_seconds(r.seconds),
                 ", ".join(format_seconds(s) for s in r.samples), _note(r)]
                for r in results if r.op == op]
        return header, body
    header = ["case", "call", "extra memory", "limit", "output", "inputs", "note"]
    body = []
    for r in results:
        if r.op != op:
            continue
        m = r.measures

        def mib(key, m=m):
            return f"{m[key] / MIB:.1f} MiB" if m.get(key) is not None else "-"
        body.append([r.case_label, format_seconds(r.seconds), mib("extra_bytes"),
                     mib("limit_bytes"), mib("output_bytes"), mib("input_bytes"),
                     r.status if r.status != "ok" else m.get("method", "")])
    return header, body


def summary(results, op: str) -> tuple[list[str], list[list[str]]]:
    """Per implementation: geometric mean and minimum speed-up over the cases both ran.

    GPU workloads give both speed-ups, on the device and with transfers.
    """
    gpu = op in GPU_OPS
    baselines = BASELINES[op]
    header = ["implementation"] + [f"{_BASELINE_HEADERS[b]} {stat}" for b in baselines
                                   for stat in ("geomean", "min")] + ["cases"]
    ratios = gpu_speedups(results) if gpu else speedups(results)
    body = []
    for name, key in dict.fromkeys((r.implementation, r.key) for r in results if r.op == op):
        per_case = [ratios.get((r.case_id, key), {}) for r in results
                    if r.op == op and r.key == key]
        cells = []
        for baseline in baselines:
            values = [ratio[baseline] for ratio in per_case if baseline in ratio]
            cells += _gpu_statistics(values) if gpu else _statistics(values)
        body.append([name] + cells + [str(sum(1 for ratio in per_case if ratio))])
    return header, body


def _statistics(values) -> list[str]:
    """Geometric mean and minimum of speed-ups, as table cells."""
    return [f"{geomean(values):.3g}x", f"{min(values):.3g}x"] if values else ["-", "-"]


def _gpu_statistics(pairs) -> list[str]:
    """:func:`_statistics` of (on device, with transfers) pairs, each way on its own."""
    ways = [[pair[way] for pair in pairs if pair[way]] for way in (0, 1)]
    return [_pair([geomean(values) if values else None for values in ways]),
            _pair([min(values) if values else None for values in ways])]


def target_rows(checked: list[dict], op: str) -> tuple[list[str], list[list[str]]]:
    """BENCH.md's targets of ``op`` with the figure and the verdict."""
    verdicts = {True: "met", False: "NOT MET", None: "-"}
    ours = "fastcorr cuda" if op in GPU_OPS else "fastcorr auto"
    return (["target (BENCH.md)", f"figure ({ours})", "verdict"],
            [[c["target"], c["figure"], verdicts[c["met"]]] for c in checked if c["op"] == op])


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


def _sections(results, checked, table, heading):
    """Per workload: its table, speed-up summary and targets, formatted by ``table``."""
    parts = []
    for op in dict.fromkeys(r.op for r in results):
        parts += [heading(TITLES[op]), table(*rows(results, op)), ""]
        if op in GPU_OPS:
            parts += [_GPU_NOTE, ""]
        if op in BASELINES:
            parts += ["Speed-ups (geometric mean and minimum over the cases):", "",
                      table(*summary(results, op)), ""]
        if any(c["op"] == op for c in checked):
            parts += ["Targets:", "", table(*target_rows(checked, op)), ""]
    return parts


def text_report(results, peaks: dict | None = None) -> str:
    """The tables ``fastcorr bench`` prints."""
    checked = targets.evaluate(results, peaks)
    return "\n".join(_sections(results, checked, text_table, lambda title: title))


def _environment_lines(environment: dict, settings) -> list[str]:
    versions = ", ".join(f"{name} {version}" for name, version in environment["versions"].items()
                         if version)
    layer = environment["numba_threading_layer"]
    threads = ", ".join(f"{name} {count}" for name, count in environment["threads"].items()
                        if count is not None)
    pools = environment["thread_pools"]
    if isinstance(pools, list):
        pools = "; ".join(f"{describe_pool(pool)} ({pool['prefix']})" for pool in pools)
    gpu = environment["gpu"]
    peaks = environment.get("peaks") or {}
    measured = []
    if "copy_GBps" in peaks:
        measured.append(f"copy {peaks['copy_GBps']:.1f} GB/s (read + write), sgemm "
                        f"{peaks['sgemm_GFLOPs']:.0f} GFLOP/s (n = {peaks['sgemm_size']})")
    if "device_copy_GBps" in peaks:
        measured.append(f"device copy {peaks['device_copy_GBps']:.1f} GB/s (read + write, "
                        f"{peaks['device_copy_bytes'] / MIB:.0f} MiB), host to device "
                        f"{peaks['host_to_device_GBps']:.1f} GB/s, device to host "
                        f"{peaks['device_to_host_GBps']:.1f} GB/s (pageable, "
                        f"{peaks['transfer_bytes'] / MIB:.0f} MiB; {peaks['device_timer']})")
    measured = "; ".join(measured) or "not measured"
    return [
        f"- date: {environment['date']}",
        f"- machine: {environment['cpu']}, {environment['usable_cpus']} usable CPUs, "
        f"{environment['platform']}; load average {environment['load_average']} before the run",
        f"- measured: {measured}",
        f"- GPU: {', '.join(gpu['devices']) if gpu['devices'] else 'none'}; driver "
        f"{gpu['driver_version']}",
        *_gpu_lines(gpu),
        f"- versions: {versions}",
        f"- threads: {threads}; numba threading layer {layer['used']} "
        f"(configured {layer['configured']})",
        f"- thread pools: {pools}",
        f"- timing: median of {settings.repeat} interleaved samples per implementation, "
        f">= {settings.warmup_s} s warm-up per case, samples of >= {settings.min_sample_s} s, "
        f"at most {settings.budget_s} s of samples for slow implementations, "
        f"{settings.settle_s} s pause after BLAS users; inputs random normal, seed {settings.seed}",
    ]


def _gpu_lines(gpu: dict) -> list[str]:
    """What a GPU run adds (:func:`fastcorr.bench.gpu.describe`): software, settings."""
    if "numba_cuda" not in gpu:
        return []
    smi, settings = gpu["nvidia_smi"], gpu["torch_settings"]
    smi = ", ".join(f"{key} {value}" for key, value in smi.items()) if smi else "not found"
    if isinstance(settings, dict):
        settings = ", ".join(f"{key} = {value}" for key, value in settings.items())
    torch = (f"torch {gpu['torch']} (CUDA {gpu['torch_cuda']}, cuDNN {gpu['cudnn']})"
             if gpu["torch_cuda"] else f"torch {gpu['torch'] or 'not installed'} (no CUDA)")
    cupy = (f"CuPy {gpu['cupy']} (CUDA runtime {gpu['cupy_cuda_runtime']})" if gpu["cupy"]
            else "CuPy not installed")
    return [f"- GPU software: {gpu['numba_cuda']}; {torch}; {cupy}",
            f"- nvidia-smi: {smi}",
            f"- torch on the GPU: {settings}"]


def markdown_report(results, environment: dict, settings, command: str) -> str:
    """``report.md``: environment, then per workload its table, speed-ups and targets."""
    parts = ["# fastcorr bench", "", f"Command: `{command}`", ""]
    parts += _environment_lines(environment, settings) + [""]
    checked = targets.evaluate(results, environment.get("peaks"))
    parts += _sections(results, checked, markdown_table, lambda title: f"## {title}\n")
    parts.append("`~` marks a time extrapolated from a smaller case (the naive loops), by the "
                 "ratio of the cases' work (flops or bytes).")
    return "\n".join(parts) + "\n"


def results_json(results, environment: dict, settings, command: str) -> dict:
    """``results.json``: every figure, with the environment and settings it was taken in."""
    ratios, gpu_ratios = speedups(results), gpu_speedups(results)
    records = []
    for result in results:
        record = dataclasses.asdict(result)
        record["rate"] = result.rate
        record["speedup"] = ratios.get((result.case_id, result.key), {})
        if result.op in GPU_OPS:
            record["speedup_with_transfers"] = {
                baseline: pair[1] for baseline, pair in
                gpu_ratios.get((result.case_id, result.key), {}).items()}
        records.append(record)
    return {"command": command, "settings": dataclasses.asdict(settings),
            "environment": environment, "results": records,
            "targets": targets.evaluate(results, environment.get("peaks"))}


def write(out_dir, results, environment: dict, settings, command: str) -> list[Path]:
    """Write ``results.json`` and ``report.md`` into ``out_dir`` (created if needed)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path, markdown_path = out_dir / "results.json", out_dir / "report.md"
    json_path.write_text(json.dumps(results_json(results, environment, settings, command),
                                    indent=1) + "\n")
    markdown_path.write_text(markdown_report(results, environment, settings, command))
    return [json_path, markdown_path]


def compare(old: dict, new: dict) -> str:
    """A table of time ratios NEW / OLD for the (case, implementation) pairs both timed.

    Parameters
    ----------
    old, new : dict
        Two ``results.json`` contents.

    Returns
    -------
    str
        The table and the geometric mean of the ratios (below 1: NEW is faster).

    Examples
    --------
    >>> def run(seconds):
    ...     return {"results": [{"case_id": "c1-x", "case_label": "x", "key": "auto",
    ...                          "implementation": "fastcorr[auto]", "seconds": seconds}]}
    >>> print(compare(run(2.0), run(1.0)).splitlines()[-1])
    geometric mean NEW / OLD: 0.5 over 1 pairs (below 1: NEW is faster)
    """
    def timed(data):
        return {(r["case_id"], r["key"]): r for r in data["results"] if r.get("seconds")}

    before, after = timed(old), timed(new)
    shared = [pair for pair in after if pair in before]
    if not shared:
        return "no (case, implementation) pair has a time in both files"
    header = ["case", "implementation", "OLD", "NEW", "NEW / OLD"]
    body, ratios = [], []
    for pair in shared:
        ratio = after[pair]["seconds"] / before[pair]["seconds"]
        ratios.append(ratio)
        body.append([after[pair]["case_label"], after[pair]["implementation"],
                     format_seconds(before[pair]["seconds"], before[pair].get("estimated")),
                     format_seconds(after[pair]["seconds"], after[pair].get("estimated")),
                     f"{ratio:.3g}"])
    mean = geomean(ratios)
    only = len(before) + len(after) - 2 * len(shared)
    lines = [text_table(header, body), ""]
    if only:
        lines.append(f"{only} pairs timed in only one of the files are left out")
    lines.append(f"geometric mean NEW / OLD: {mean:.3g} over {len(ratios)} pairs "
                 f"(below 1: NEW is faster)")
    return "\n".join(lines)
