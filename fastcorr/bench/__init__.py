"""The standard workloads (docs/benchmarks.md), timed side by side: ``fastcorr bench``.

* :mod:`~fastcorr.bench.workloads`: the workload table (C1, C2) as data;
* :mod:`~fastcorr.bench.peers`: the libraries fastcorr is compared with;
* :mod:`~fastcorr.bench.implementations`: fastcorr's backends and the peers
  as one registry of callables per workload;
* :mod:`~fastcorr.bench.environment`: versions, threads and thread pools;
* :mod:`~fastcorr.bench.runner`: checking and timing;
* :mod:`~fastcorr.bench.report`: the table, ``report.md`` and ``results.json``.

Nothing here is imported by ``import fastcorr``.
"""
