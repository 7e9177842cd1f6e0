"""Benchmark: PyMC default NUTS on a non-centred lognormal-frailty NB model vs our warm fits.

Run:  .venv/bin/python benchmarks/bench_models.py [--repeats 3] [--skip-pymc]

Data (docs/design.md, "What we measured"): a simulated parallel trial, 5 arms x 40 subjects x
12 weekly counts, gamma frailty k = 3, 0.9 cramps/day (docs/calibration.md defaults), 2-week run-in.
Sampling: 4 chains x 1000 draws (+1000 tune), cores = 2 for every system.

- ``pm.sample``: on weekly counts
  ``NB(mu_ij, k)``, ``log mu_ij = log exposure + alpha + log_rr[arm] + b x_i + g t_j + sigma z_i``,
  ``z_i ~ N(0, 1)`` (non-centred lognormal subject effects, 200 extra parameters), run twice:
  with ``nuts_sampler="pymc"`` (PyMC's own NUTS: docs/design.md's "PyMC default NUTS" row, and the
  baseline of the 20x goal) and with no ``nuts_sampler`` argument, which in PyMC >= 6 selects
  nutpie when it is installed. Wall times include PyMC's own compilation.
- ``frailty_weekly`` / ``nb_totals``: ``model.fit`` with the compiled model cached (warm);
  the one-off compile time is reported separately. Median of ``--repeats`` runs (seeds differ).

ESS/s is the minimum bulk ESS over the log rate ratios (the quantities all three estimate)
divided by wall time; the minimum over all parameters is shown too.
Goals: warm frailty_weekly <= 3 s, warm nb_totals <= 1 s, ESS/s >= 20x PyMC default.
"""

from __future__ import annotations

import argparse
import platform
import time

import arviz_stats as azs
import numpy as np
import pandas as pd

from crampstats.engine import compile_cache_info, diagnose, package_versions
from crampstats.models import FrailtyWeekly, NBTotals
from crampstats.models.synthetic import simulate_parallel_trial

RATE_RATIOS = {
    "placebo": 1.0,
    "mexiletine": 0.5,
    "quinine": 0.75,
    "vitamin_b_complex": 0.8,
    "magnesium": 0.96,
}
CHAINS, DRAWS, TUNE, CORES = 4, 1000, 1000, 2


def simulate(seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    periods, weekly, _ = simulate_parallel_trial(
        rng, RATE_RATIOS, 40, weeks=12, k=3.0, rate=0.9, baseline="runin", trend=-0.01
    )
    return periods, weekly


def min_ess(idata, var_names=None) -> float:
    post = idata["posterior"].to_dataset()
    if var_names is not None:
        post = post[var_names]
    ess = azs.ess(post, method="bulk")
    return float(min(np.min(v.values) for v in ess.data_vars.values()))


def pymc_default(weekly: pd.DataFrame, seed: int, nuts_sampler: str | None):
    import pymc as pm
    import pytensor.tensor as pt

    prepared = FrailtyWeekly().prepare(weekly)  # same rows, coding and centring
    d, rows = prepared.data, prepared.extra  # subject-level arrays, weekly rows
    idx = rows["subject_idx"]
    with pm.Model(coords={"arm": prepared.coords["arm"]}):
        alpha = pm.Normal("alpha", np.log(0.9), 1.0)
        log_rr = pm.Normal("log_rr", 0.0, 1.0, dims="arm")
        b = pm.Normal("b", 0.0, 1.0)
        g = pm.Normal("trend", 0.0, 0.1)
        sigma = pm.HalfNormal("sigma", 1.0)
        z = pm.Normal("z", 0.0, 1.0, shape=len(d["y_subject"]))
        k = pm.LogNormal("k", np.log(3.0), 1.0)
        effect = pt.concatenate([pt.zeros(1), log_rr])
        eta_subject = alpha + effect[d["arm_idx"]] + b * d["x_baseline"] + sigma * z
        mu = pt.exp(rows["log_exposure"] + eta_subject[idx] + g * rows["t"])
        pm.NegativeBinomial("y", mu=mu, alpha=k, observed=rows["y"])
        extra = {} if nuts_sampler is None else {"nuts_sampler": nuts_sampler}
        start = time.perf_counter()
        idata = pm.sample(
            draws=DRAWS,
            tune=TUNE,
            chains=CHAINS,
            cores=CORES,
            random_seed=seed,
            progressbar=False,
            compute_convergence_checks=False,
            **extra,
        )
        wall = time.perf_counter() - start
    return idata, wall


def warm(model, data, repeats: int, seed: int):
    start = time.perf_counter()
    model.compile(data)
    compile_s = time.perf_counter() - start
    walls, fits = [], []
    for r in range(repeats):
        start = time.perf_counter()
        fits.append(
            model.fit(data, seed=seed + r, chains=CHAINS, cores=CORES, draws=DRAWS, tune=TUNE)
        )
        walls.append(time.perf_counter() - start)
    order = np.argsort(walls)
    mid = int(order[len(order) // 2])
    return fits[mid], walls[mid], compile_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=20261125)
    parser.add_argument("--skip-pymc", action="store_true")
    args = parser.parse_args()

    periods, weekly = simulate(args.seed)
    rows, medians = [], {}

    fw_fit, fw_wall, fw_compile = warm(FrailtyWeekly(), weekly, args.repeats, args.seed)
    nb_fit, nb_wall, nb_compile = warm(NBTotals(), periods, args.repeats, args.seed)
    runs = [
        ("frailty_weekly (warm)", fw_fit, fw_wall, fw_compile, 3.0),
        ("nb_totals (warm)", nb_fit, nb_wall, nb_compile, 1.0),
    ]
    if not args.skip_pymc:
        fit, wall = pymc_default(weekly, args.seed, None)
        runs.insert(0, ("pm.sample() as installed (= nutpie), non-centred", fit, wall, None, None))
        fit, wall = pymc_default(weekly, args.seed, "pymc")
        runs.insert(0, ("PyMC NUTS (nuts_sampler='pymc'), non-centred", fit, wall, None, None))

    base = None
    for name, idata, wall, compile_s, goal in runs:
        ess_rr = min_ess(idata, ["log_rr"])
        ess_all = min_ess(idata)
        ess_s = ess_rr / wall
        if name.startswith("PyMC NUTS"):
            base = ess_s
        report = diagnose(idata)
        status = "; ".join(report["reasons"]) or "ok"
        goal_text = "-" if goal is None else ("met" if wall <= goal else f"MISSED (<= {goal} s)")
        rows.append(
            {
                "model": name,
                "compile s": "incl." if compile_s is None else f"{compile_s:.1f}",
                "wall s": f"{wall:.2f}",
                "min bulk ESS log RR": f"{ess_rr:.0f}",
                "min bulk ESS all": f"{ess_all:.0f}",
                "ESS/s (log RR)": f"{ess_s:.0f}",
                "x PyMC NUTS": f"{ess_s / base:.1f}" if base else "-",
                "diagnostics (all params)": status,
                "wall goal": goal_text,
            }
        )
        medians[name] = idata["posterior"]["log_rr"].median(("chain", "draw")).to_series()

    print(
        f"\n5 arms x 40 subjects x 12 weeks ({int((weekly.period == 'treatment').sum())} rows); "
        f"{CHAINS} chains x {DRAWS} draws (+{TUNE} tune), cores={CORES}; "
        f"{platform.processor() or platform.machine()}; {package_versions()}; "
        f"compile cache {compile_cache_info()}\n"
    )
    print(pd.DataFrame(rows).to_markdown(index=False))
    if base is not None:
        for row in rows[-2:]:
            ratio = float(row["x PyMC NUTS"])
            verdict = "met" if ratio >= 20 else "MISSED"
            print(f"\nESS/s goal (>= 20x PyMC NUTS): {row['model']} {ratio:.0f}x -> {verdict}")
    print("\nPosterior medians of log RR (agreement check):\n")
    print(pd.DataFrame(medians).round(3).to_markdown())


if __name__ == "__main__":
    main()
