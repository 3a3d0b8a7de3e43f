"""``router bench``: routing policies, consistency levels and baselines compared on a real
primary + replicas.

The pieces, from plan to report:

- ``_plan``: which subjects run in which (scenario, workload, concurrency) cells, and in what
  order (pure);
- ``_workloads``: the operations, their mix and keys, and the SQL (pure);
- ``_target``: the cluster (embedded or given by URL), its roles, the bench's dataset;
- ``_subjects``: each subject as a client the workers drive (router APIs and baselines);
- ``_scenarios``: the faults thrown at the embedded cluster around and during runs;
- ``_drive``: one timed run; ``_measure``: percentiles, CDF, summaries, the knee (pure);
- ``_runner``: all of it in order, set up and torn down; ``_pgpool``: pgpool-II;
- ``_schema``: the result's shape; ``_table``, ``_plots``, ``_html``, ``_output``: the report.

The command line is ``router bench`` (:mod:`router_bench.cli`). This package imports nothing
heavy itself: the report's modules need the ``bench`` extra (matplotlib, rich).
"""

from __future__ import annotations

from router_bench._schema import SCHEMA_VERSION, BenchResult

__all__ = ["SCHEMA_VERSION", "BenchResult"]
