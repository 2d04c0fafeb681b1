"""The standard workloads (docs/benchmarks.md), timed side by side: ``fastcorr bench``.

* :mod:`~fastcorr.bench.workloads`: the workload table (C1-C8, G1-G3) and the selections,
  as data;
* :mod:`~fastcorr.bench.peers`: the libraries fastcorr is compared with;
* :mod:`~fastcorr.bench.references`: the float64 results everything is checked against;
* :mod:`~fastcorr.bench.implementations`: fastcorr's backends and the peers
  as one registry of callables per workload;
* :mod:`~fastcorr.bench.environment`: versions, threads, thread pools, GPU,
  and the machine's measured copy and sgemm speeds;
* :mod:`~fastcorr.bench.runner`: checking and timing;
* :mod:`~fastcorr.bench.process`: C7 and C8, measured in fresh processes;
* :mod:`~fastcorr.bench.gpu`, :mod:`~fastcorr.bench.gpu_peers`: G1-G3 on a
  GPU (``--gpu``), timed on the device and with transfers by CUDA events,
  against torch and CuPy, and the device's measured copy bandwidth;
* :mod:`~fastcorr.bench.ratios`, :mod:`~fastcorr.bench.targets`: speed-ups,
  and BENCH.md's targets judged on them;
* :mod:`~fastcorr.bench.report`, :mod:`~fastcorr.bench.plots`: the tables,
  ``report.md``, ``results.json``, ``--compare`` and the PNG plots.

Nothing here is imported by ``import fastcorr``.
"""

import os

# torch and numba each load an OpenMP runtime. With the default, spinning,
# wait policy the idle threads of one steal the cores from the other, and
# timings jump by scheduler ticks (8-16 ms). Passive waiting avoids it; it must
# be set before either runtime starts, so here, before any peer is imported.
os.environ.setdefault("OMP_WAIT_POLICY", "passive")
