"""The family-wise study of docs/validation.md: global-null trials, NB2 GLM, normal posteriors.

Imported by tests/test_multiplicity.py (and by its worker processes, which is why it is a module
of its own: spawned workers import it by name from ``tests/``). Not a test module.
"""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import statsmodels.api as sm
import xarray as xr

from crampstats.compare.verdict import calibrated_threshold, null_variance
from crampstats.decisions import success_verdicts
from crampstats.multiplicity import Hierarchical, hierarchical_draws
from crampstats.plan import parse_plan
from crampstats.power.config import check_power_config, resolve_design
from crampstats.power.generate import negative_binomial_periods

#: Four actives and placebo, 40 subjects an arm, every true rate ratio 1 (the global null);
#: NB totals from the power module's negative_binomial generator (0.9 cramps a day, k = 3,
#: 8 weeks), the assumptions of the closed form.
STUDY_TRIALS, STUDY_ROOT, STUDY_DRAWS = 2000, 20261203, 4000
STUDY_ARMS = {"placebo": {}, "a": {"rr": 1.0}, "b": {"rr": 1.0}, "c": {"rr": 1.0}, "d": {"rr": 1.0}}
STUDY_RULES = {"default rule": [(1.0, 0.975), (0.75, 0.5)], "P(RR < 1) alone": [(1.0, 0.975)]}
STUDY_STRATEGIES = ("none", "fixed_sequence", "calibrated", "exchangeable")
#: The study's exchangeable calibration uses 50 000 Monte Carlo trials (plan key
#: calibration_draws) instead of 200 000: its error (sd 0.0007 in the attained rate) stays far
#: below the binomial error of 2000 simulated trials (sd 0.0035).
STUDY_CALIBRATION_DRAWS = 50_000


def study_design():
    config = check_power_config(
        {"designs": {"null": {"generator": "negative_binomial", "arms": STUDY_ARMS,
                              "n_per_arm": [40]}}}
    )  # fmt: skip
    return resolve_design(config, "null")


def study_trials(replicates: range) -> list[dict[tuple[str, str], bool]]:
    """Simulate, fit and decide the trials ``replicates`` of the study (one worker's share).

    Per trial: NB totals from the power generator, the NB2 GLM by maximum likelihood
    (statsmodels, offset log exposure), posterior draws from the normal approximation -
    ``N(estimate, covariance)`` for the flat prior, the normal-normal hierarchical posterior
    (:func:`crampstats.multiplicity.hierarchical_draws`) for ``exchangeable`` - and then the
    decision code of the analysis (:func:`crampstats.decisions.success_verdicts`, the calibrated
    thresholds of :func:`crampstats.compare.verdict.calibrated_threshold`). Returns, per trial,
    whether any comparison succeeded under each (rule, strategy).
    """
    design = study_design()
    actives = list(design.arms[1:])
    rr = dict.fromkeys(design.arms, 1.0)
    plans = {}
    for s in STUDY_STRATEGIES:
        multiplicity = {
            "strategy": s,
            "order": actives if s == "fixed_sequence" else [],
            "calibration_draws": STUDY_CALIBRATION_DRAWS if s == "exchangeable" else 200_000,
        }
        plans[s] = parse_plan({"analysis": {"plan": {"multiplicity": multiplicity}}})
    prior = Hierarchical(plans["exchangeable"].prior_mu_sd, plans["exchangeable"].prior_tau_sd)
    out = []
    for r in replicates:
        rng = np.random.default_rng(np.random.SeedSequence(STUDY_ROOT, spawn_key=(r,)))
        periods = negative_binomial_periods(design, 40, rr, rng)
        arm = periods["arm"].to_numpy()
        X = np.column_stack([np.ones(arm.size)] + [(arm == a).astype(float) for a in actives])
        fit = sm.NegativeBinomial(
            periods["count"].to_numpy(), X, offset=np.log(periods["exposure_days"].to_numpy()),
            loglike_method="nb2",
        ).fit(disp=0, maxiter=200)  # fmt: skip
        y = np.asarray(fit.params[1 : 1 + len(actives)])
        cov = np.asarray(fit.cov_params())[1 : 1 + len(actives), 1 : 1 + len(actives)]
        params = {
            "rate": float(np.exp(fit.params[0])),
            "k": float(1.0 / fit.params[-1]),
            "exposure": float(periods["exposure_days"].mean()),
        }
        n = [int((arm == a).sum()) for a in design.arms]
        coords = {"arm": actives}
        flat = xr.DataArray(
            rng.multivariate_normal(y, cov, size=STUDY_DRAWS).T, dims=("arm", "sample"),
            coords=coords,
        )  # fmt: skip
        hier = xr.DataArray(
            hierarchical_draws(y, cov, prior, STUDY_DRAWS, rng), dims=("arm", "sample"),
            coords=coords,
        )  # fmt: skip
        row = {}
        for rule, criteria in STUDY_RULES.items():
            for strategy, plan in plans.items():
                threshold = calibrated_threshold(plan, n, null_variance(params))
                table = success_verdicts(
                    hier if strategy == "exchangeable" else flat, criteria, strategy,
                    plan.order, threshold,
                )  # fmt: skip
                success = table["rule"].to_numpy() == "success"
                row[(rule, strategy)] = bool(table["met"].to_numpy()[success].any())
        out.append(row)
    return out


def run_study(trials: int = STUDY_TRIALS, workers: int = 2) -> dict[tuple[str, str], int]:
    """Family-wise false positives per (rule, strategy) over ``trials`` null trials."""
    shares = [range(i, trials, workers) for i in range(workers)]
    # spawn: a forked worker would inherit the parent's threads (BLAS); results do not depend
    # on the split (each trial's seed is its own spawn key)
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        rows = [row for share in pool.map(study_trials, shares) for row in share]
    return {key: sum(row[key] for row in rows) for key in rows[0]}


def glm_normal(periods, arms: list[str]) -> tuple[np.ndarray, np.ndarray, dict[str, float]]:
    """NB2 GLM of a ``periods`` frame: active arms' log RR, their covariance, rate, k, exposure.

    Arms in ``arms`` order (control first); the run-in covariate enters centred, as in
    ``nb_totals`` (a constant column from the negative_binomial generator drops out).
    """
    arm = periods["arm"].to_numpy()
    x = periods["log_baseline_rate"].to_numpy(dtype=float)
    columns = [np.ones(arm.size)] + [(arm == a).astype(float) for a in arms[1:]]
    if np.ptp(x) > 0:
        columns.append(x - x.mean())
    fit = sm.NegativeBinomial(
        periods["count"].to_numpy(), np.column_stack(columns),
        offset=np.log(periods["exposure_days"].to_numpy(dtype=float)), loglike_method="nb2",
    ).fit(disp=0, maxiter=200)  # fmt: skip
    k = len(arms) - 1
    params = {
        "rate": float(np.exp(fit.params[0])),
        "k": float(1.0 / fit.params[-1]),
        "exposure": float(periods["exposure_days"].mean()),
    }
    cov = np.asarray(fit.cov_params())[1 : 1 + k, 1 : 1 + k]
    return np.asarray(fit.params[1 : 1 + k]), cov, params
