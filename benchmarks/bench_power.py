"""Benchmark: power replicates by full MCMC (compile-once engine), a naive loop, and Laplace + PSIS.

Run:  .venv/bin/python benchmarks/bench_power.py [--replicates 1000] [--naive-replicates 10]
          [--mcmc-replicates N] [--reseed-replicates 300] [--skip-naive]

Design: config/power.yaml's `two_arm` design at 60 patients per arm (placebo vs quinine RR 0.75,
full trial simulator: 2-week run-in, inclusion >= 4 per 2 weeks, 8 weeks, 8 % dropout, 5 %
missing days), analysed by ``nb_totals`` with 4 chains x 1000 draws (+1000 tune) on 2 cores.

- engine: :func:`crampstats.power.run_shard` (one process, model compiled once, re-sampled per
  replicate; decisions kept, posteriors dropped). Wall time includes the one compile.
- naive: per replicate, build the same ``pm.Model`` afresh and call ``pm.sample`` with PyMC's
  default sampler choice (no ``nuts_sampler`` argument; PyMC >= 6 picks nutpie when installed,
  so every replicate pays a compile), timed on ``--naive-replicates`` replicates.

- laplace: the same :func:`crampstats.power.run_shard` with ``analysis.mode: laplace``
  (:mod:`crampstats.power.fast`: Laplace approximation of ``nb_totals`` corrected by PSIS, MCMC
  when k-hat > 0.7) on the same data sets (same seeds). Decision agreement with the engine is
  reported per rule, and beside it the agreement of two full-MCMC runs of the same data sets
  with different MCMC seeds (``--reseed-replicates``): MCMC's own Monte Carlo noise near the
  thresholds bounds the agreement any method can reach with one MCMC run.

Each part runs in its own subprocess with its own PyTensor compile directory so that peak memory
(``resource.getrusage(RUSAGE_SELF).ru_maxrss``) belongs to that part alone. The engine part also
records peak memory after 10 % of the replicates, to show it stays flat. Goal: 1000 replicates in
<= 120 s, peak memory < 2 GiB. The machine's 2 cores may be shared: the load average is printed.
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


def _config(mode: str = "mcmc"):
    from crampstats.power import load_power_config

    cfg = load_power_config(REPO / "config" / "power.yaml")
    cfg["designs"]["two_arm"]["n_per_arm"] = [60]
    cfg["analysis"]["sampler"].update(chains=4, draws=1000, tune=1000)
    cfg["analysis"]["mode"] = mode
    return cfg


def _maxrss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


def part_engine(replicates: int, mode: str, out: str) -> dict:
    from crampstats.power import collect_decisions, power_table, run_shard, terminal_progress

    cfg = _config(mode)
    marks: dict[str, float] = {}
    printer = terminal_progress(mode, min_interval=15.0)

    def progress(done: int, total: int, elapsed: float) -> None:
        printer(done, total, elapsed)
        if done == 1:
            marks["first_replicate_s"] = elapsed  # includes the compile
            marks["rss_after_first_mib"] = _maxrss_mib()
        if done == max(1, total // 10):
            marks["rss_after_10pct_mib"] = _maxrss_mib()

    start = time.perf_counter()
    run_shard(cfg, "two_arm", replicates, 1, 1, out, progress=progress, cores=CORES)
    wall = time.perf_counter() - start
    frame, metas = collect_decisions(out)
    table = power_table(frame, metas)
    steady = (wall - marks["first_replicate_s"]) / max(1, replicates - 1)
    return {
        "mode": mode,
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
        "modes": frame["mode"].value_counts().to_dict(),
    }


def part_reseed(replicates: int, mode: str, out: str) -> dict:
    """Full MCMC of the engine's first data sets again, with another MCMC seed (noise floor)."""
    import pandas as pd

    from crampstats.decisions import probability_below, rule_met
    from crampstats.power.config import resolve_design, rule_log_thresholds
    from crampstats.power.fast import posterior_log_rr
    from crampstats.power.generate import draw_effects, mcmc_seed, simulate_periods
    from crampstats.power.run import analysis_model

    cfg = _config("mcmc")
    design = resolve_design(cfg, "two_arm")
    model = analysis_model(cfg, design)
    rows = []
    start = time.perf_counter()
    for r in range(replicates):
        rr = draw_effects(design, cfg["seed"], r)
        periods = simulate_periods(design, 60, rr, cfg["seed"], r)
        seed = (mcmc_seed(cfg["seed"], r) + 104729) % 2**32
        fit = posterior_log_rr(model, periods, seed, mode="mcmc", cores=CORES)
        for j, arm in enumerate(fit.arms):
            row = {"replicate": r, "arm": arm}
            for name, log_t, prob in rule_log_thresholds(cfg):
                p = probability_below(fit.draws[:, j], log_t)
                row[f"decision[{name}]"] = bool(rule_met(p, prob))
            rows.append(row)
    wall = time.perf_counter() - start
    pd.DataFrame(rows).to_parquet(Path(out) / "reseed.parquet")
    return {"mode": "mcmc (other seed)", "replicates": replicates, "wall_s": wall}


def part_naive(replicates: int, mode: str, out: str) -> dict:
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


PARTS = {"engine": part_engine, "naive": part_naive, "reseed": part_reseed}


def _run_part(name: str, replicates: int, mode: str, out: Path) -> dict:
    from crampstats.engine import pytensor_compiledir_env

    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as compiledir:
        env = pytensor_compiledir_env(compiledir)
        cmd = [sys.executable, __file__, "--part", name, "--replicates", str(replicates)]
        proc = subprocess.run(
            [*cmd, "--mode", mode, "--out", str(out)],
            env=env,
            stdout=subprocess.PIPE,
            text=True,
            check=True,
        )
    return json.loads(proc.stdout.strip().splitlines()[-1])


def agreement(a, b, rules: list[str]) -> dict[str, tuple[int, int]]:
    """Per rule: (replicates whose decisions agree, replicates compared) on the same data sets."""
    keys = ["replicate", "arm"]
    merged = a.merge(b, on=keys, suffixes=("_a", "_b"))
    out = {}
    for rule in rules:
        col = f"decision[{rule}]"
        same = (merged[f"{col}_a"].astype(bool) == merged[f"{col}_b"].astype(bool)).sum()
        out[rule] = (int(same), len(merged))
    return out


def expected_mcmc_disagreement(frame, rules: list[tuple[str, float]]) -> dict[str, float]:
    """Expected share of decisions two independent full-MCMC runs of the same data disagree on.

    For a replicate with posterior probability ``p`` and Monte Carlo SE ``s = sqrt(p (1 - p) /
    ESS_tail)``, a run exceeds the rule's probability ``t`` with chance ``q = Phi((p - t) / s)``;
    two independent runs disagree with chance ``2 q (1 - q)``, averaged over replicates. MCMC's
    own noise near the threshold bounds the agreement any method can reach with one MCMC run.
    """
    from scipy import stats

    out = {}
    ess = frame["ess_tail_min"].clip(lower=100.0)
    for name, t in rules:
        p = frame[f"p_rr_below_threshold[{name}]"]
        s = (p * (1 - p) / ess).pow(0.5).clip(lower=1e-4)
        q = stats.norm.cdf((p - t) / s)
        out[name] = float((2 * q * (1 - q)).mean())
    return out


def _row(label: str, r: dict) -> str:
    return (
        f"| {label} | {r['replicates']} | {r['wall_s']:.1f} | {r['replicates_per_s']:.3f} | "
        f"{r['steady_s_per_replicate']:.3f} | {r['peak_rss_mib']:.0f} |"
    )


def main() -> None:
    import pandas as pd

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replicates", type=int, default=1000, help="engine replicates")
    parser.add_argument("--naive-replicates", type=int, default=10, help="naive-loop replicates")
    parser.add_argument(
        "--reseed-replicates", type=int, default=300, help="MCMC-vs-MCMC agreement replicates"
    )
    parser.add_argument(
        "--mcmc-replicates",
        type=int,
        help="full-MCMC replicates (default --replicates; fewer on a loaded machine: the "
        "agreement is then measured on these first data sets)",
    )
    parser.add_argument("--skip-naive", action="store_true", help="leave out the naive loop")
    parser.add_argument("--part", choices=sorted(PARTS), help=argparse.SUPPRESS)
    parser.add_argument("--mode", default="mcmc", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.part:
        print(json.dumps(PARTS[args.part](args.replicates, args.mode, args.out)))
        return

    print(
        f"python {platform.python_version()}, {os.cpu_count()} CPUs, "
        f"load average before {os.getloadavg()[0]:.2f}",
        flush=True,
    )
    from crampstats.power.run import read_decisions

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        naive = None if args.skip_naive else _run_part("naive", args.naive_replicates, "", root)
        loads = {}
        n_mcmc = args.mcmc_replicates or args.replicates
        engine = _run_part("engine", n_mcmc, "mcmc", root / "mcmc")
        loads["mcmc"] = os.getloadavg()[0]
        fast = _run_part("engine", args.replicates, "laplace", root / "laplace")
        loads["laplace"] = os.getloadavg()[0]
        reseed = None
        if args.reseed_replicates:
            reseed = _run_part("reseed", args.reseed_replicates, "mcmc", root / "mcmc")
        a = read_decisions(root / "mcmc" / "decisions-1-of-1.parquet")[0]
        b = read_decisions(root / "laplace" / "decisions-1-of-1.parquet")[0]
        rules = [c[len("decision[") : -1] for c in a.columns if c.startswith("decision[")]
        agree = agreement(a, b, rules)
        floor = {}
        probability = {r["name"]: r["probability"] for r in _config()["rules"]}
        expected = expected_mcmc_disagreement(a, [(r, probability[r]) for r in rules])
        if reseed is not None:
            c = pd.read_parquet(root / "mcmc" / "reseed.parquet")
            floor = agreement(a, c, rules)
            laplace_sub = agreement(a[a["replicate"] < len(c)], b, rules)
    print()
    print("| system | replicates | wall s | replicates/s | s/replicate (steady) | peak RSS MiB |")
    print("|:--|--:|--:|--:|--:|--:|")
    if naive is not None:
        print(_row(f"naive loop: pm.sample per replicate ({naive['sampler']})", naive))
    print(_row("full MCMC, compile-once engine (mode mcmc)", engine))
    print(_row(f"Laplace + PSIS, MCMC fallback (mode laplace; {fast['modes']})", fast))
    print()
    per_rep = fast["wall_s"] / fast["replicates"] / (engine["wall_s"] / engine["replicates"])
    print(
        f"laplace / mcmc time per replicate (walls incl. start-up) {per_rep:.3f}; steady "
        f"{fast['steady_s_per_replicate'] / engine['steady_s_per_replicate']:.3f}; "
        f"(load average after mcmc {loads['mcmc']:.2f}, after laplace {loads['laplace']:.2f}); "
        f"first replicate (with compile) mcmc {engine['first_replicate_s']:.1f} s"
    )
    for label, r in (("mcmc", engine), ("laplace", fast)):
        print(
            f"{label}: peak RSS after the first replicate {r['rss_after_first_mib']:.0f} MiB, "
            f"after 10 % {r['rss_after_10pct_mib']:.0f} MiB, at the end {r['peak_rss_mib']:.0f} "
            f"MiB (goal < 2048); power {r['power']}; diagnostics failed "
            f"{r['diagnostics_failed']} of {r['replicates']}"
        )
    for rule, (same, n) in agree.items():
        line = f"decision agreement laplace vs mcmc, {rule}: {same}/{n} = {same / n:.4f}"
        if floor:
            s2, n2 = floor[rule]
            s3, n3 = laplace_sub[rule]
            line += (
                f"; on the first {n2}: laplace vs mcmc {s3 / n3:.4f}, mcmc vs mcmc (other seed) "
                f"{s2}/{n2} = {s2 / n2:.4f}"
            )
        print(line)
        print(
            f"  expected disagreement of two independent MCMC runs from each replicate's Monte "
            f"Carlo SE of P (ESS tail): {expected[rule]:.4f}"
        )
    print(f"load average after {os.getloadavg()[0]:.2f} (other processes share the 2 cores)")


if __name__ == "__main__":
    main()
