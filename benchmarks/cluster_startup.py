"""How long a LocalCluster takes to start and to close, by replica count.

Interleaves the subjects (0, 1, 2 replicas, then again) so machine drift hits them alike,
and reports the median and worst start/close times plus each subject's ratio to the
primary-alone baseline measured in the same run.

    .venv/bin/python benchmarks/cluster_startup.py --rounds 7
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

from router.testing import LocalCluster


def measure(replicas: int) -> tuple[float, float]:
    started = time.perf_counter()
    cluster = LocalCluster(replicas=replicas).start()
    ready = time.perf_counter()
    cluster.close()
    return ready - started, time.perf_counter() - ready


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--replicas", default="0,1,2", help="comma-separated subjects")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    subjects = [int(x) for x in args.replicas.split(",")]
    starts: dict[int, list[float]] = {n: [] for n in subjects}
    closes: dict[int, list[float]] = {n: [] for n in subjects}
    measure(subjects[0])  # warm the page cache for the binaries
    for _ in range(args.rounds):
        for n in subjects:
            start, close = measure(n)
            starts[n].append(start)
            closes[n].append(close)
    base = statistics.median(starts[subjects[0]])
    rows = [
        {
            "replicas": n,
            "start_median_s": round(statistics.median(starts[n]), 3),
            "start_max_s": round(max(starts[n]), 3),
            "close_median_s": round(statistics.median(closes[n]), 3),
            "start_vs_baseline": round(statistics.median(starts[n]) / base, 2),
        }
        for n in subjects
    ]
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    print(f"{args.rounds} rounds, interleaved; baseline = {subjects[0]} replicas")
    print(f"{'replicas':>8} {'start p50':>10} {'start max':>10} {'close p50':>10} {'ratio':>6}")
    for r in rows:
        print(
            f"{r['replicas']:>8} {r['start_median_s']:>9.3f}s {r['start_max_s']:>9.3f}s"
            f" {r['close_median_s']:>9.3f}s {r['start_vs_baseline']:>5.2f}x"
        )


if __name__ == "__main__":
    main()
