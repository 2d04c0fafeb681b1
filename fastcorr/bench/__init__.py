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

import os

# torch and numba each load an OpenMP runtime. With the default, spinning,
# wait policy the idle threads of one steal the cores from the other, and
# timings jump by scheduler ticks (8-16 ms). Passive waiting avoids it; it must
# be set before either runtime starts, so here, before any peer is imported.
os.environ.setdefault("OMP_WAIT_POLICY", "passive")
