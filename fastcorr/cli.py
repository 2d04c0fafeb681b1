"""The ``fastcorr`` command line: ``fastcorr info`` and ``fastcorr bench``.

Examples
--------
``fastcorr info`` lists versions, threads, thread pools and backends;
``fastcorr bench --quick --out bench-results`` times a few cases of every
standard workload (docs/benchmarks.md) in under a minute on two cores and
writes ``results.json``, ``report.md`` and PNG plots to ``bench-results/``;
``fastcorr bench --gpu --out gpu-results`` times the GPU workloads G1-G3
(where there is a GPU); ``fastcorr bench --compare old/results.json
new/results.json`` compares two runs.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

from .bench import environment, gpu, implementations, plots, report, runner, workloads


def _info_lines(facts: dict) -> list[str]:
    """``fastcorr info``'s text: one section per kind of fact."""
    versions = dict(facts["versions"])
    lines = [f"fastcorr {versions.pop('fastcorr')} on Python {versions.pop('python')}, "
             f"{facts['platform']}",
             f"CPU: {facts['cpu']}, {facts['cpu_count']} logical CPUs "
             f"({facts['usable_cpus']} usable), load average {facts['load_average']}",
             "libraries:"]
    lines += [f"  {name:<14}{version or 'not installed'}" for name, version in versions.items()]
    threads, layer = facts["threads"], facts["numba_threading_layer"]
    notes = {"fastcorr": "fastcorr.get_num_threads()",
             "numba": f"threading layer {layer['used']}, configured {layer['configured']}"}
    lines.append("threads:")
    lines += [f"  {name:<14}{count}" + (f"  ({notes[name]})" if name in notes else "")
              for name, count in threads.items() if count is not None]
    lines.append("thread pools (threadpoolctl):")
    pools = facts["thread_pools"]
    if isinstance(pools, str):
        lines.append(f"  {pools}")
    else:
        lines += [f"  {pool['user_api']:<7}{environment.describe_pool(pool)}: {pool['filepath']}"
                  for pool in pools]
    lines.append("backends:")
    for name, status in facts["backends"].items():
        state = "available" if status["available"] else f"unavailable: {status['reason']}"
        if "implementation" in status:  # cuda: which numba target, on what
            state += (f" ({status['implementation'] or 'no numba CUDA target'}; device "
                      f"{status['device'] or 'none'}, driver {status['driver'] or 'none'})")
        lines.append(f"  {name:<7}{state}")
    gpu = facts["gpu"]
    devices = ", ".join(gpu["devices"]) if gpu["devices"] else f"none ({gpu['reason']})"
    lines.append(f"GPU: {devices}; driver {gpu['driver_version']}, "
                 f"torch CUDA {gpu['torch_cuda_version']}")
    return lines


def info(args) -> int:
    """``fastcorr info``: what fastcorr runs on and with."""
    collected = environment.collect()
    if args.json:
        print(json.dumps(collected, indent=1))
    else:
        print("\n".join(_info_lines(collected)))
    return 0


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _list_option(value: str, allowed, option: str) -> list[str]:
    items = [item.strip() for item in value.split(",") if item.strip()]
    unknown = [item for item in items if item not in allowed]
    if unknown:
        raise SystemExit(f"fastcorr bench: {option}: unknown {', '.join(unknown)}; "
                         f"choose from {', '.join(allowed)}")
    return items


def _profile(args) -> str:
    if args.smoke:  # tiny shapes: exercises the code, measures nothing meaningful
        return "smoke"
    return "quick" if args.quick else "full" if args.full else "default"


def _settings(args, profile: str):
    if profile == "smoke":
        return runner.Settings(repeat=args.repeat or 2, warmup_s=0.01, min_sample_s=0.001,
                               budget_s=0.5, settle_s=0.0)
    return runner.Settings(repeat=args.repeat or (3 if profile == "quick" else 5))


# Workloads whose targets are shares of the machine's measured sgemm or copy speed.
_PEAK_OPS = ("c2", "c3", "c4", "c5")


def _peaks(ops, profile: str) -> dict | None:
    if not set(ops) & set(_PEAK_OPS):
        return None
    if profile == "smoke":
        return environment.measure_peaks(copy_bytes=1_000_000, gemm_size=64, settle_s=0.0)
    return environment.measure_peaks()


def _gpu_peaks(profile: str) -> dict:
    if profile == "smoke":
        return gpu.measure_peaks(copy_bytes=2**20, transfer_bytes=2**20, repeat=2)
    return gpu.measure_peaks()


def _selected_ops(args) -> tuple[list[str], list[str]]:
    """``(CPU ops, GPU ops)`` of ``--ops`` and ``--gpu`` (default: the CPU workloads)."""
    choices = workloads.OPS + workloads.GPU_OPS
    ops = _list_option(args.ops, choices, "--ops") if args.ops else []
    if args.gpu:
        ops += [op for op in workloads.GPU_OPS if op not in ops]
    ops = ops or list(workloads.OPS)
    return ([op for op in ops if op not in workloads.GPU_OPS],
            [op for op in ops if op in workloads.GPU_OPS])


def _write_outputs(out_dir, results, collected, settings, command) -> None:
    written = report.write(out_dir, results, collected, settings, command)
    if plots.available():
        written += plots.write(results, out_dir)
    else:
        print("fastcorr bench: matplotlib is not installed: no plots (pip install "
              "'fastcorr[bench]')", file=sys.stderr)
    print(f"wrote {', '.join(map(str, written))}", file=sys.stderr)


def compare(args) -> int:
    """``fastcorr bench --compare OLD NEW``: time ratios of two results.json files."""
    try:
        old, new = (json.loads(Path(path).read_text()) for path in args.compare)
    except (OSError, ValueError) as exc:
        raise SystemExit(f"fastcorr bench --compare: {exc}") from None
    print(f"NEW {args.compare[1]} against OLD {args.compare[0]}:")
    print(report.compare(old, new))
    return 0


def bench(args) -> int:
    """``fastcorr bench``: time the standard workloads, print the tables, write the report."""
    if args.compare:
        return compare(args)
    ops, gpu_ops = _selected_ops(args)
    backends = _list_option(args.backends, implementations.FASTCORR_KEYS
                            + implementations.OPTIONAL_KEYS, "--backends")
    peer_choices = list(dict.fromkeys(implementations.peer_keys() + gpu.peer_keys()))
    peers = (None if args.peers is None else [] if args.peers == "none"
             else _list_option(args.peers, peer_choices, "--peers"))
    dtypes = _list_option(args.dtype, workloads.DTYPES, "--dtype") if args.dtype else None
    profile = _profile(args)
    no_gpu = gpu.unavailable_reason() if gpu_ops else None
    for op in gpu_ops if no_gpu else ():
        print(f"{op}: skipped: {no_gpu}", flush=True)
    gpu_ops = [] if no_gpu else gpu_ops
    cases = [case for op in ops for case in workloads.select(op, profile, dtypes)]
    gpu_cases = [case for op in gpu_ops for case in workloads.select(op, profile, dtypes)]
    settings = _settings(args, profile)
    threads = args.threads or environment.usable_cpus()
    command = shlex.join(["fastcorr", *args.argv])

    start = time.perf_counter()
    with environment.thread_settings(threads):
        print(f"fastcorr bench: {len(cases) + len(gpu_cases)} cases, {threads} threads, profile "
              f"{profile}", file=sys.stderr)
        collected = environment.collect()
        if (collected["load_average"] or 0) > 0.5:
            print(f"fastcorr bench: warning: load average {collected['load_average']:.2f} before "
                  f"the run: other processes compete for the cores, timings will be noisy",
                  file=sys.stderr)
        collected["peaks"] = _peaks(ops, profile)
        if gpu_cases:
            collected["gpu"].update(gpu.describe())
            collected["peaks"] = {**(collected["peaks"] or {}), **_gpu_peaks(profile)}
        results = runner.run(cases, lambda op: implementations.for_op(op, backends, peers),
                             settings, threads=threads) if cases else []
        results += gpu.run(gpu_cases, settings, peers, cpu=not args.no_cpu)
    print(report.text_report(results, collected["peaks"]))
    if args.out:
        _write_outputs(args.out, results, collected, settings, command)
    print(f"fastcorr bench: {time.perf_counter() - start:.0f} s", file=sys.stderr)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fastcorr", description="fastcorr's command line: what it runs on (info) and how "
                                     "fast (bench).")
    commands = parser.add_subparsers(dest="command", required=True)

    info_parser = commands.add_parser("info", help="versions, threads, thread pools, backends")
    info_parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    info_parser.set_defaults(handler=info)

    bench_parser = commands.add_parser(
        "bench", help="time the standard workloads (docs/benchmarks.md)",
        description="Time the standard workloads C1-C8 (docs/benchmarks.md) on fastcorr's "
                    "backends and the installed peers, check BENCH.md's targets, print the "
                    "tables and, with --out, write results.json, report.md and PNG plots. "
                    "Default: every CPU workload, C1 in mode 'same' only (about 3 minutes on 2 "
                    "cores). On a GPU, --gpu times the GPU workloads G1-G3 instead: on the "
                    "device and with host transfers, against torch and CuPy.")
    selection = bench_parser.add_mutually_exclusive_group()
    selection.add_argument("--quick", action="store_true",
                           help="a few cases of every workload but C8, 3 repeats: under a "
                                "minute on 2 cores")
    selection.add_argument("--full", action="store_true",
                           help="every case at BENCH.md's sizes, every C1 mode and dtype")
    bench_parser.add_argument("--ops", help="workloads, comma-separated: c1-c8, and g1-g3 on a "
                              f"GPU (default: {','.join(workloads.OPS)})")
    bench_parser.add_argument("--gpu", action="store_true",
                              help="the GPU workloads G1-G3 (as --ops g1,g2,g3; added to --ops "
                                   "where both are given); without CUDA each says why it was "
                                   "skipped")
    bench_parser.add_argument("--no-cpu", action="store_true",
                              help="GPU workloads: do not time fastcorr 'auto' on the CPU per "
                                   "case (no CUDA-vs-CPU speed-up)")
    bench_parser.add_argument("--backends", default=",".join(implementations.FASTCORR_KEYS),
                              help="fastcorr backends of the CPU workloads, comma-separated "
                                   "(default: %(default)s; also cuda; naive is timed on a "
                                   "smaller case and extrapolated)")
    peer_choices = dict.fromkeys(implementations.peer_keys() + gpu.peer_keys())
    bench_parser.add_argument("--peers",
                              help="peers, comma-separated, or 'none' (default: all: "
                                   f"{','.join(peer_choices)}; those not installed, or without "
                                   "a GPU, are listed as unavailable)")
    bench_parser.add_argument("--dtype", help="float32 and/or float64: every C1 and C2 (G1 and "
                              "G2) shape of the selection in these dtypes (default: the "
                              "standard mix)")
    bench_parser.add_argument("--threads", type=_positive_int, help="threads for every library "
                              "(default: all usable cores)")
    bench_parser.add_argument("--repeat", type=_positive_int,
                              help="timed samples per implementation (default 5, --quick 3)")
    bench_parser.add_argument("--out", help="directory for results.json, report.md and the "
                              "plots")
    bench_parser.add_argument("--compare", nargs=2, metavar=("OLD", "NEW"),
                              help="instead of timing: the time ratios NEW / OLD of two "
                                   "results.json files, case by case, and their geometric mean")
    bench_parser.add_argument("--smoke", action="store_true", help=argparse.SUPPRESS)
    bench_parser.set_defaults(handler=bench)
    return parser


def main(argv=None) -> int:
    """Entry point of the ``fastcorr`` command."""
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    args.argv = argv
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
