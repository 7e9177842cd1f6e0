"""Benchmark: full-MCMC power replicates with the compile-once engine vs a naive pm.sample loop.

Run:  .venv/bin/python benchmarks/bench_power.py [--replicates 1000] [--naive-replicates 10]

Design: config/power.yaml's `two_arm` design at 60 patients per arm (placebo vs quinine RR 0.75,
full trial simulator: 2-week run-in, inclusion >= 4 per 2 weeks, 8 weeks, 8 % dropout, 5 %
missing days), analysed by ``nb_totals`` with 4 chains x 1000 draws (+1000 tune) on 2 cores.

- engine: :func:`crampstats.power.run_shard` (one process, model compiled once, re-sampled per
  replicate; decisions kept, posteriors dropped). Wall time includes the one compile.
- naive: per replicate, build the same ``pm.Model`` afresh and call ``pm.sample`` with PyMC's
  default sampler choice (no ``nuts_sampler`` argument; PyMC >= 6 picks nutpie when installed,
  so every replicate pays a compile), timed on ``--naive-replicates`` replicates.

Each part runs in its own subprocess with its own PyTensor compile directory so that peak memory
(``resource.getrusage(RUSAGE_SELF).ru_maxrss``) belongs to that part alone. The engine part also
records peak memory after 10 % of the replicates, to show it stays flat. Goal: 1000 replicates in
<= 300 s, peak memory < 2 GiB. The machine's 2 cores may be shared: the load average is printed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CORES = 2


def _config():
    from crampstats.power import load_power_config

    cfg = load_power_config(REPO / "config" / "power.yaml")
    cfg["designs"]["two_arm"]["n_per_arm"] = [60]
    cfg["analysis"]["sampler"].update(chains=4, draws=1000, tune=1000)
    return cfg


def _maxrss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


def part_engine(replicates: int) -> dict:
    from crampstats.power import collect_decisions, power_table, run_shard, terminal_progress

    cfg = _config()
    marks: dict[str, float] = {}
    printer = terminal_progress("engine", min_interval=15.0)

    def progress(done: int, total: int, elapsed: float) -> None:
        printer(done, total, elapsed)
        if done == 1:
            marks["first_replicate_s"] = elapsed  # includes the compile
            marks["rss_after_first_mib"] = _maxrss_mib()
        if done == max(1, total // 10):
            marks["rss_after_10pct_mib"] = _maxrss_mib()

    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        run_shard(cfg, "two_arm", replicates, 1, 1, out, progress=progress, cores=CORES)
        wall = time.perf_counter() - start
        frame, metas = collect_decisions(out)
        table = power_table(frame, metas)
    steady = (wall - marks["first_replicate_s"]) / max(1, replicates - 1)
    return {
        "replicates": replicates,
        "wall_s": wall,
        "replicates_per_s": replicates / wall,
        "steady_s_per_replicate": steady,
        "first_replicate_s": marks["first_replicate_s"],
        "peak_rss_mib": _maxrss_mib(),
        "rss_after_first_mib": marks["rss_after_first_mib"],
        "rss_after_10pct_mib": marks.get("rss_after_10pct_mib"),
        "power": table[["rule", "power", "mcse"]].to_dict("records"),
        "diagnostics_failed": int((frame["status"] == "diagnostics_failed").sum()),
    }


def part_naive(replicates: int) -> dict:
    import pymc as pm

    from crampstats.power.config import resolve_design
    from crampstats.power.generate import draw_effects, mcmc_seed, simulate_periods
    from crampstats.power.run import analysis_model

    cfg = _config()
    design = resolve_design(cfg, "two_arm")
    model = analysis_model(cfg, design)
    samplers = set()
    start = time.perf_counter()
    for r in range(replicates):
        rr = draw_effects(design, cfg["seed"], r)
        periods = simulate_periods(design, 60, rr, cfg["seed"], r)
        with model.build(periods):
            idata = pm.sample(
                draws=1000,
                tune=1000,
                chains=4,
                cores=CORES,
                random_seed=mcmc_seed(cfg["seed"], r),
                progressbar=False,
            )
        samplers.add(str(idata["posterior"].attrs.get("inference_library", "?")))
        del idata
    wall = time.perf_counter() - start
    return {
        "replicates": replicates,
        "wall_s": wall,
        "replicates_per_s": replicates / wall,
        "steady_s_per_replicate": wall / replicates,
        "peak_rss_mib": _maxrss_mib(),
        "sampler": ",".join(sorted(samplers)),
    }


def _run_part(name: str, replicates: int) -> dict:
    from crampstats.engine import pytensor_compiledir_env

    with tempfile.TemporaryDirectory() as compiledir:
        env = pytensor_compiledir_env(compiledir)
        proc = subprocess.run(
            [sys.executable, __file__, "--part", name, "--replicates", str(replicates)],
            env=env,
            stdout=subprocess.PIPE,
            text=True,
            check=True,
        )
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replicates", type=int, default=1000, help="engine replicates")
    parser.add_argument("--naive-replicates", type=int, default=10, help="naive-loop replicates")
    parser.add_argument("--part", choices=["engine", "naive"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.part:
        result = (
            part_engine(args.replicates) if args.part == "engine" else part_naive(args.replicates)
        )
        print(json.dumps(result))
        return

    print(
        f"python {platform.python_version()}, {os.cpu_count()} CPUs, "
        f"load average before {os.getloadavg()[0]:.2f}",
        flush=True,
    )
    naive = _run_part("naive", args.naive_replicates)
    engine = _run_part("engine", args.replicates)
    load = os.getloadavg()[0]
    print()
    print("| system | replicates | wall s | replicates/s | s/replicate (steady) | peak RSS MiB |")
    print("|:--|--:|--:|--:|--:|--:|")
    print(
        f"| naive loop: pm.sample per replicate ({naive['sampler']}) | {naive['replicates']} | "
        f"{naive['wall_s']:.1f} | {naive['replicates_per_s']:.3f} | "
        f"{naive['steady_s_per_replicate']:.2f} | {naive['peak_rss_mib']:.0f} |"
    )
    print(
        f"| compile-once engine (run_shard) | {engine['replicates']} | {engine['wall_s']:.1f} | "
        f"{engine['replicates_per_s']:.3f} | {engine['steady_s_per_replicate']:.3f} | "
        f"{engine['peak_rss_mib']:.0f} |"
    )
    print()
    speedup = engine["replicates_per_s"] / naive["replicates_per_s"]
    projected = 1000 * engine["steady_s_per_replicate"] + engine["first_replicate_s"]
    first = engine["first_replicate_s"]
    print(
        f"speed-up {speedup:.1f}x; first replicate (with compile) {first:.1f} s; "
        f"1000 replicates projected {projected:.0f} s (goal <= 300 s)"
    )
    print(
        f"peak RSS after the first replicate {engine['rss_after_first_mib']:.0f} MiB, after 10 % "
        f"{engine['rss_after_10pct_mib']:.0f} MiB, at the end {engine['peak_rss_mib']:.0f} MiB "
        f"(goal < 2048)"
    )
    print(
        f"power at 60 per arm: {engine['power']}; diagnostics failed in "
        f"{engine['diagnostics_failed']} of {engine['replicates']} fits"
    )
    print(f"load average after {load:.2f} (other processes share the 2 cores)")


if __name__ == "__main__":
    main()
