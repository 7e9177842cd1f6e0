"""Simulation-based calibration of the primary models of crossover and several-trial data.

Simulation-based calibration (SBC; Talts et al. 2018, arXiv:1804.06788; Modrák et al. 2023,
Bayesian Analysis, doi:10.1214/23-BA1404) checks the whole inference procedure rather than one
point of the parameter space: every replicate draws *all* parameters from the model's own prior
(the configured ``model_config``, read here, so a changed prior is the prior checked), data from
its own likelihood, and fits the model with its production sampler. If the procedure is right,
the rank of each true value among the posterior draws is uniform, and every posterior interval
covers at its nominal rate averaged over the prior. The study (:mod:`crampstats.calibration.study`)
checks both for cases with ``sbc=True``; each case's plot shows the ranks' ECDF against uniform.

The generators below are written from the models' docstrings, not from their code, so a wrong
sign or index in a model shows up as skewed ranks. ``crossover`` and ``multi_trial`` are the
default models of crossover / N-of-1 data and of a folder of several parallel trials; the two
parallel-trial primaries (``nb_totals``, ``frailty_weekly``) have their SBC in the slow tests
(tests/models/test_model_calibration.py), which CI runs.

Designs follow the fixed-truth cases (:mod:`crampstats.calibration.crossover`,
:mod:`crampstats.calibration.multi_trial`): a 20-subject AB/BA crossover, 24 patients x 3
N-of-1 blocks, and the six-trial network with 25 subjects an arm (8 % dropout here).
"""

from __future__ import annotations

import sys
from collections.abc import Mapping

import numpy as np
import pandas as pd

from crampstats.calibration import multi_trial as network_case
from crampstats.calibration.case import (
    MODEL_COMMON,
    CalibrationCase,
    Estimate,
    Replicate,
    ReplicateRunner,
    draws_of,
)
from crampstats.engine import diagnose
from crampstats.models import Crossover, MultiTrial, crossover, multi_trial
from crampstats.models.multi_trial import cell_label

CONTROL = "placebo"
PERIOD_DAYS = 28
TREATMENT_DAYS = 56
MISSING_DAY_PROB = 0.05
#: Crossover dropout leaves after a random period (never before the first, so the number of
#: subjects, part of the compiled model, is fixed); parallel dropout on a uniform day.
DROPOUT = 0.08
#: Spread of the observed log run-in rate around its mean (docs/calibration.md: between-subject
#: SD of the log rate about 0.5); the models centre it, so its mean does not matter.
BASELINE_SD = 0.5


def _period_exposure(rng: np.random.Generator, n: int, periods: int) -> np.ndarray:
    """Diarised days of ``n`` subjects in each 28-day period; 0 after dropout."""
    exposure = np.maximum(
        PERIOD_DAYS - rng.binomial(PERIOD_DAYS, MISSING_DAY_PROB, (n, periods)), 1
    )
    last = np.where(rng.random(n) < DROPOUT, rng.integers(1, periods, n), periods)
    return np.where(np.arange(1, periods + 1)[None, :] <= last[:, None], exposure, 0)


def _treatment_exposure(rng: np.random.Generator, n: int) -> np.ndarray:
    """Diarised days of ``n`` subjects in a 56-day treatment period with dropout on any day."""
    last = np.where(rng.random(n) < DROPOUT, rng.integers(1, TREATMENT_DAYS, n), TREATMENT_DAYS)
    return np.maximum(rng.binomial(last, 1.0 - MISSING_DAY_PROB), 1)


def _negative_binomial(rng: np.random.Generator, mean: np.ndarray, k: np.ndarray | float):
    """NB2 counts (variance ``mean + mean^2 / k``) as a gamma-Poisson mixture."""
    return rng.poisson(rng.gamma(k, mean / k))


# ---- crossover ------------------------------------------------------------------------------
def simulate_crossover_prior(
    rng: np.random.Generator, model: Crossover, *, arm: str, n: int, cycles: int
) -> tuple[pd.DataFrame, dict[str, float]]:
    """Draw a crossover trial's parameters from ``model``'s prior and its data from its likelihood.

    Design: ``cycles`` pairs of 28-day periods per subject in random order (AB/BA balanced
    over subjects with one cycle), 5 % of diary days missing, 8 % dropout after a random
    period. Model (categorical period effects, no carry-over; :mod:`crampstats.models.crossover`)::

        a_i ~ Normal(alpha + b (x_i - mean x), sigma_a)
        y_ip ~ NegBin(e_ip exp(a_i + pi_p + (log_rr + d_i) [active]), k),  d_i ~ Normal(0, sigma_d)

    Returns
    -------
    frame : pandas.DataFrame
        The ``crossover`` frame (periods after dropout have ``exposure_days == 0``).
    truth : dict
        Target name -> true value (``alpha``, ``b``, ``sigma_a``, ``k``, ``log_rr[arm]``,
        ``sigma_d[arm]``, ``period_effect[p]`` for p >= 2, ``patient_log_rr[first subject]``).
    """
    cfg = model.model_config
    n_periods = 2 * cycles
    theta = {
        "alpha": rng.normal(cfg["prior_alpha_mu"], cfg["prior_alpha_sd"]),
        "b": rng.normal(cfg["prior_b_mu"], cfg["prior_b_sd"]),
        "sigma_a": abs(rng.normal(0.0, cfg["prior_sigma_a_sd"])),
        "log_rr": rng.normal(0.0, cfg["prior_log_rr_sd"]),
        "sigma_d": abs(rng.normal(0.0, cfg["prior_sigma_d_sd"])),
        "k": rng.lognormal(cfg["prior_k_mu"], cfg["prior_k_sd"]),
    }
    period_effect = np.r_[0.0, rng.normal(0.0, cfg["prior_period_sd"], n_periods - 1)]
    if cycles == 1:
        first = rng.permutation(np.resize([False, True], n))[:, None]
        active = np.concatenate([first, ~first], axis=1)
    else:
        active = np.concatenate(
            [rng.permuted(np.tile([False, True], (n, 1)), axis=1) for _ in range(cycles)], axis=1
        )
    x = rng.normal(np.log(0.9), BASELINE_SD, n)
    a = theta["alpha"] + theta["b"] * (x - x.mean()) + theta["sigma_a"] * rng.standard_normal(n)
    own = theta["log_rr"] + theta["sigma_d"] * rng.standard_normal(n)
    exposure = _period_exposure(rng, n, n_periods)
    log_rate = a[:, None] + period_effect[None, :] + np.where(active, own[:, None], 0.0)
    counts = np.where(
        exposure > 0, _negative_binomial(rng, exposure * np.exp(log_rate), theta["k"]), 0
    )
    frame = pd.DataFrame(
        {
            "trial_id": "sbc",
            "subject_id": np.repeat([f"S{i + 1:03d}" for i in range(n)], n_periods),
            "period": np.tile(np.arange(1, n_periods + 1), n),
            "treatment": np.where(active, arm, CONTROL).ravel(),
            "count": counts.ravel(),
            "exposure_days": exposure.ravel(),
            "log_baseline_rate": np.repeat(x, n_periods),
        }
    )
    truth = {name: float(theta[name]) for name in ("alpha", "b", "sigma_a", "k")}
    truth[f"log_rr[{arm}]"] = float(theta["log_rr"])
    truth[f"sigma_d[{arm}]"] = float(theta["sigma_d"])
    truth.update(
        {f"period_effect[{p}]": float(period_effect[p - 1]) for p in range(2, n_periods + 1)}
    )
    truth["patient_log_rr[S001]"] = float(own[0])
    return frame, truth


def crossover_sbc_runner(cores: int, *, arm: str, n: int, cycles: int) -> ReplicateRunner:
    """Return a runner of SBC replicates of the default :class:`Crossover` (production sampler)."""
    model = Crossover()

    def run(seed: np.random.SeedSequence) -> Replicate:
        data_seed, fit_seed = seed.spawn(2)
        frame, truth = simulate_crossover_prior(
            np.random.default_rng(data_seed), model, arm=arm, n=n, cycles=cycles
        )
        idata = model.fit(frame, seed=int(fit_seed.generate_state(1)[0]), cores=cores)
        report = diagnose(idata)
        post = idata["posterior"]
        own = post["log_rr"].sel(arm=arm) + post["d"].isel(subject=0).sel(arm=arm)
        draws = {
            f"log_rr[{arm}]": draws_of(post, "log_rr", arm=arm),
            f"sigma_d[{arm}]": draws_of(post, "sigma_d", arm=arm),
            "patient_log_rr[S001]": np.asarray(own.values, dtype=float).reshape(-1),
            **{name: draws_of(post, name) for name in ("alpha", "b", "sigma_a", "k")},
            **{
                f"period_effect[{p}]": draws_of(post, "period_effect", period=str(p))
                for p in range(2, 2 * cycles + 1)
            },
        }
        estimates = [Estimate(name, truth[name], draws[name]) for name in truth]
        return Replicate(estimates, report["status"] == "ok", "; ".join(report["reasons"]))

    return run


# ---- several trials ---------------------------------------------------------------------------
def _active_arms(network: Mapping[str, list[str]]) -> list[str]:
    """Return the active arms of a network (each trial's arms, control first), sorted."""
    return sorted({arm for arms in network.values() for arm in arms[1:]})


def simulate_network_prior(
    rng: np.random.Generator,
    model: MultiTrial,
    network: Mapping[str, list[str]],
    n_per_arm: int,
) -> tuple[pd.DataFrame, dict[str, float]]:
    """Draw a network's parameters from ``model``'s prior and its trials from its likelihood.

    Each trial has ``n_per_arm`` subjects an arm, 56 treatment days with 5 % missing and 8 %
    dropout on a uniform day. Model (:mod:`crampstats.models.multi_trial`, default config)::

        y_i ~ NegBin(e_i exp(alpha_t + b_t (x_i - mean_t x) + theta_{t,a_i}), k_t)
        theta_{t,a} = log_rr[a] + tau (sqrt(rho) u_t + sqrt(1 - rho) z_{t,a}),  theta_{t,0} = 0

    Returns
    -------
    periods : pandas.DataFrame
        All trials' ``periods`` rows.
    truth : dict
        Target name -> true value: ``log_rr[a]`` of every active arm, ``tau``, and for the first
        trial ``alpha[t]``, ``b[t]``, ``k[t]`` and ``log_rr_trial[t/a]`` of its first active arm.
    """
    cfg = model.model_config
    rho = float(cfg["re_correlation"])
    actives = _active_arms(network)
    log_rr = {a: rng.normal(0.0, cfg["prior_log_rr_sd"]) for a in actives}
    tau = abs(rng.normal(0.0, cfg["prior_tau_sd"]))
    frames, truth = [], {f"log_rr[{a}]": float(v) for a, v in log_rr.items()}
    truth["tau"] = float(tau)
    for i, (trial, arms) in enumerate(network.items()):
        alpha = rng.normal(cfg["prior_alpha_mu"], cfg["prior_alpha_sd"])
        b = rng.normal(cfg["prior_b_mu"], cfg["prior_b_sd"])
        k = rng.lognormal(cfg["prior_k_mu"], cfg["prior_k_sd"])
        u = rng.standard_normal()
        theta = {arms[0]: 0.0}
        for arm in arms[1:]:
            z = rng.standard_normal()
            theta[arm] = log_rr[arm] + tau * (np.sqrt(rho) * u + np.sqrt(1.0 - rho) * z)
        arm = np.repeat(arms, n_per_arm)
        x = rng.normal(np.log(0.9), BASELINE_SD, arm.size)
        days = _treatment_exposure(rng, arm.size)
        mean = days * np.exp(alpha + b * (x - x.mean()) + np.array([theta[a] for a in arm]))
        frames.append(
            pd.DataFrame(
                {
                    "trial_id": trial,
                    "subject_id": [f"{trial}-{j + 1:03d}" for j in range(arm.size)],
                    "arm": arm,
                    "period": "treatment",
                    "count": _negative_binomial(rng, mean, k),
                    "exposure_days": days,
                    "log_baseline_rate": x,
                }
            )
        )
        if i == 0:
            truth.update({f"alpha[{trial}]": alpha, f"b[{trial}]": b, f"k[{trial}]": k})
            cell = cell_label(trial, arms[1])
            truth[f"log_rr_trial[{cell}]"] = float(theta[arms[1]])
    return pd.concat(frames, ignore_index=True), {k: float(v) for k, v in truth.items()}


def network_sbc_runner(cores: int) -> ReplicateRunner:
    """Return a runner of SBC replicates of the default :class:`MultiTrial` (production sampler)."""
    model = MultiTrial()
    network = network_case.NETWORK
    trial, arms = next(iter(network.items()))
    # target name -> (posterior variable, selection), as simulate_network_prior names them
    targets: dict[str, tuple[str, dict[str, str]]] = {
        **{f"log_rr[{a}]": ("log_rr", {"arm": a}) for a in _active_arms(network)},
        "tau": ("tau", {}),
        **{f"{var}[{trial}]": (var, {"trial": trial}) for var in ("alpha", "b", "k")},
        f"log_rr_trial[{cell_label(trial, arms[1])}]": (
            "log_rr_trial",
            {"trial_arm": cell_label(trial, arms[1])},
        ),
    }

    def run(seed: np.random.SeedSequence) -> Replicate:
        data_seed, fit_seed = seed.spawn(2)
        periods, truth = simulate_network_prior(
            np.random.default_rng(data_seed), model, network, network_case.N_PER_ARM
        )
        idata = model.fit(periods, seed=int(fit_seed.generate_state(1)[0]), cores=cores)
        report = diagnose(idata)
        post = idata["posterior"]
        estimates = [
            Estimate(name, truth[name], draws_of(post, var, **sel))
            for name, (var, sel) in targets.items()
        ]
        return Replicate(estimates, report["status"] == "ok", "; ".join(report["reasons"]))

    return run


ABBA = {"arm": "mexiletine", "n": 20, "cycles": 1}
NOF1 = {"arm": "quinine", "n": 24, "cycles": 3}
_MODULES = (MODEL_COMMON, sys.modules[__name__])

CROSSOVER_ABBA_SBC = CalibrationCase(
    name="crossover_abba_sbc",
    model="crossover",
    description=(
        "SBC: AB/BA crossover (20 subjects, 28-day periods, 5 % missing days, 8 % dropout) with "
        "every parameter drawn from the default prior; all parameters and one patient's own "
        "log rate ratio."
    ),
    modules=(crossover, *_MODULES),
    start=lambda cores: crossover_sbc_runner(cores, **ABBA),
    primary=True,
    sbc=True,
)

CROSSOVER_NOF1_SBC = CalibrationCase(
    name="crossover_nof1_sbc",
    model="crossover",
    description=(
        "SBC: aggregated N-of-1 series (24 patients x 3 blocks of two 28-day periods) with every "
        "parameter drawn from the default prior; all parameters and one patient's own log rate "
        "ratio."
    ),
    modules=(crossover, *_MODULES),
    start=lambda cores: crossover_sbc_runner(cores, **NOF1),
    primary=True,
    sbc=True,
)

MULTI_TRIAL_SBC = CalibrationCase(
    name="multi_trial_sbc",
    model="multi_trial",
    description=(
        "SBC: the six-trial network (placebo + 1-2 of 3 actives, 25 an arm) with every parameter "
        "drawn from the default prior; pooled log rate ratios, tau and the first trial's "
        "baseline, run-in slope, k and trial effect."
    ),
    modules=(multi_trial, network_case, *_MODULES),
    start=network_sbc_runner,
    primary=True,
    sbc=True,
)
