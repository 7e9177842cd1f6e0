"""Benchmark: trials per second of ``simulate()`` for a 200-subject, 5-arm parallel design.

Run as ``.venv/bin/python benchmarks/bench_simulate.py``. The design is the bundled example
(2-week run-in, 8-week daily diary, EMG and adverse events); the goal is >= 50 trials/s.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from crampstats.simulate import simulate

DESIGN = {
    "type": "parallel",
    "n_per_arm": 40,
    "arms": {"placebo": {}, "quinine": {}, "mexiletine": {"dropout": 0.32},
             "vitamin_b_complex": {}, "magnesium": {}},
}
GOAL = 50.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--replicates", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3, help="timed runs; the best is reported")
    args = parser.parse_args()
    seeds = np.random.SeedSequence(20261125).spawn(args.replicates)
    simulate(DESIGN, seeds[0])  # warm up: validation cache, imports
    best = float("inf")
    for _ in range(args.repeats):
        start = time.perf_counter()
        for ss in seeds:
            simulate(DESIGN, ss)
        best = min(best, time.perf_counter() - start)
    rate = args.replicates / best
    n_rows = len(simulate(DESIGN, seeds[0]).tables["diary"])
    print(f"simulate(): 200 subjects x 5 arms, 2-week run-in + 8-week daily diary "
          f"(~{n_rows} diary rows per trial)")
    print(f"{rate:.1f} trials/s ({1000 * best / args.replicates:.1f} ms per trial, best of "
          f"{args.repeats} x {args.replicates}); goal >= {GOAL:.0f}/s: "
          f"{'met' if rate >= GOAL else 'NOT met'}")


if __name__ == "__main__":
    main()
