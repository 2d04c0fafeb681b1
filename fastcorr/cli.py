"""The ``fastcorr`` command line: ``fastcorr info`` and ``fastcorr bench``.

Examples
--------
``fastcorr info`` lists versions, threads, thread pools and backends;
``fastcorr bench --quick --out bench-results`` times the standard C1 and C2
workloads (docs/benchmarks.md) in about a minute on two cores and writes ``results.json`` and
``report.md`` to ``bench-results/``.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time

from .bench import environment, implementations, report, runner, workloads


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
        lines.append(f"  {name:<7}{state}")
    gpus = facts["gpus"]
    lines.append(f"GPU: {', '.join(gpus) if isinstance(gpus, list) else gpus}")
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


def _settings(args):
    if args.smoke:  # exercises the code, measures nothing meaningful
        return runner.Settings(repeat=args.repeat or 2, warmup_s=0.01, min_sample_s=0.001,
                        budget_s=0.5, settle_s=0.0)
    return runner.Settings(repeat=args.repeat or (3 if args.quick else 5))


def bench(args) -> int:
    """``fastcorr bench``: time the standard workloads, print the table, write the report."""
    ops = _list_option(args.ops, workloads.OPS, "--ops")
    backends = _list_option(args.backends, implementations.FASTCORR_KEYS, "--backends")
    peers = [] if args.peers == "none" else _list_option(args.peers, implementations.peer_keys(),
                                                         "--peers")
    dtypes = _list_option(args.dtype, workloads.DTYPES, "--dtype") if args.dtype else None
    profile = "smoke" if args.smoke else "quick" if args.quick else "default"
    cases = [case for op in ops for case in workloads.select(op, profile, dtypes)]
    settings = _settings(args)
    threads = args.threads or environment.usable_cpus()
    command = shlex.join(["fastcorr", *args.argv])

    start = time.perf_counter()
    with environment.thread_settings(threads):
        print(f"fastcorr bench: {len(cases)} cases, {threads} threads, profile {profile}",
              file=sys.stderr)
        collected = environment.collect()
        if (collected["load_average"] or 0) > 0.5:
            print(f"fastcorr bench: warning: load average {collected['load_average']:.2f} before "
                  f"the run: other processes compete for the cores, timings will be noisy",
                  file=sys.stderr)
        results = runner.run(cases, lambda op: implementations.for_op(op, backends, peers),
                             settings)
    print(report.text_report(results))
    if args.out:
        written = report.write(args.out, results, collected, settings, command)
        print(f"wrote {', '.join(map(str, written))}", file=sys.stderr)
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
        description="Time the standard workloads, C1 (correlate2d) and C2 (conv2d), on "
                    "fastcorr's backends and the installed peers (docs/benchmarks.md). "
                    "Default: --quick plus C1's modes 'full' and 'valid' (about 3 minutes on "
                    "2 cores).")
    bench_parser.add_argument("--quick", action="store_true",
                              help="C1 in mode 'same' only (float32; float64 at k = 3 and 31) "
                                   "and C2, 3 repeats: about a minute on 2 cores")
    bench_parser.add_argument("--ops", default="c1,c2", help="workloads, comma-separated "
                              "(default: c1,c2)")
    bench_parser.add_argument("--backends", default=",".join(implementations.FASTCORR_KEYS),
                              help="fastcorr backends, comma-separated (default: %(default)s; "
                                   "naive is timed on a smaller case and extrapolated)")
    bench_parser.add_argument("--peers", default=",".join(implementations.peer_keys()),
                              help="peers, comma-separated, or 'none' (default: %(default)s; "
                                   "those not installed are listed as unavailable)")
    bench_parser.add_argument("--dtype", help="float32 and/or float64: every shape of the "
                              "selection in these dtypes (default: the standard mix)")
    bench_parser.add_argument("--threads", type=_positive_int, help="threads for every library "
                              "(default: all usable cores)")
    bench_parser.add_argument("--repeat", type=_positive_int,
                              help="timed samples per implementation (default 5, --quick 3)")
    bench_parser.add_argument("--out", help="directory for results.json and report.md")
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
