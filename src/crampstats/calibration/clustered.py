"""Calibration cases of the weekly sensitivity models ``nb_glmm``, ``zinb`` and ``hurdle``.

Each model is fitted to weekly diaries drawn from its own process (:func:`simulate_weekly`, the
generator of tests/models/test_sensitivity.py): three arms of 40 (placebo, rate ratios 0.5 and
0.75), 8 treatment weeks at 0.9 cramps a day, run-in slope 0.7, a week trend of -2 %/week,
5 % of diary days missing and 5 % dropout. ``nb_glmm``: log-normal subject effects (SD 0.6)
and NB weeks (within-subject ``k = 5``); ``zinb`` and ``hurdle``: gamma frailty of shape 3
(Poisson weeks) with 15 % complete responders (``zinb``) or 15 % of subjects without any cramp
(``hurdle``, exact zero truncation of the others). Targets are the log rate ratios of the two
active arms and, for ``zinb`` / ``hurdle``, the zero probability (``pi`` / ``pi0``). The models
run with their default configuration (week trend estimated, one zero probability for all arms).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from typing import Any, Literal

import numpy as np
import pandas as pd

from crampstats.calibration.case import (
    MODEL_COMMON,
    CalibrationCase,
    Estimate,
    Replicate,
    ReplicateRunner,
    draws_of,
)
from crampstats.engine import BayesModel, diagnose
from crampstats.models import NBGLMM, ZINB, Hurdle, frailty_weekly, nb_glmm, zero_inflated

RATE_RATIOS = {"placebo": 1.0, "mexiletine": 0.5, "quinine": 0.75}
N_PER_ARM = 40
TREND = -0.02
DROPOUT = 0.05
ZERO_PROBABILITY = 0.15


def simulate_weekly(
    rng: np.random.Generator,
    rate_ratios: Mapping[str, float],
    n_per_arm: int,
    *,
    weeks: int = 8,
    rate: float = 0.9,
    b: float = 0.7,
    baseline_sd: float = 0.5,
    trend: float = 0.0,
    subject: Literal["lognormal", "gamma"] = "lognormal",
    sigma: float = 0.6,
    phi: float = 3.0,
    k_within: float | None = None,
    zero: Literal["zinb", "hurdle"] | None = None,
    pi: float = 0.0,
    missing_day_prob: float = 0.05,
    dropout: float = 0.0,
    trial_id: str = "sim",
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Weekly treatment-period rows of a parallel trial.

    ``log mean_iw = log e_iw + log rate + b (x_i - log rate) + log RR[arm_i] + trend t_w + u_i``
    with ``u_i ~ Normal(0, sigma)`` (``subject="lognormal"``) or ``exp(u_i) ~ Gamma(phi, phi)``
    (``"gamma"``), ``t_w`` the week centred at ``(weeks + 1) / 2``; weeks are Poisson given
    ``u_i`` or, with ``k_within``, NB2 with size ``k_within``. ``zero="zinb"``: each subject is
    a complete responder (all weeks 0) with probability ``pi``. ``zero="hurdle"``: with
    probability ``pi`` the total is 0, otherwise ``(u_i, counts)`` are redrawn until the total
    is positive (exact zero truncation of the count model). Dropout ends a subject's diary
    after week 1..weeks-1 (later weeks kept with exposure 0).

    Returns
    -------
    weekly : pandas.DataFrame
        ``trial_id, subject_id, arm, period, week, count, exposure_days, log_baseline_rate``.
    truth : dict
        ``log_rr`` (active arm -> value), ``b``, ``trend``, ``sigma``, ``phi``, ``k``, ``pi``.
    """
    arms = list(rate_ratios)
    n = n_per_arm * len(arms)
    arm = np.repeat(arms, n_per_arm)
    log_rr = np.log(np.repeat([rate_ratios[a] for a in arms], n_per_arm))
    x = rng.normal(np.log(rate), baseline_sd, size=n)
    eta = np.log(rate) + b * (x - np.log(rate)) + log_rr
    week = np.arange(1, weeks + 1)
    t = week - (weeks + 1) / 2
    exposure = 7 - rng.binomial(7, missing_day_prob, size=(n, weeks))
    last = np.full(n, weeks)
    drops = rng.random(n) < dropout
    last[drops] = rng.integers(1, weeks, size=int(drops.sum()))
    exposure = np.where(week[None, :] <= last[:, None], exposure, 0)

    def draw(rows: np.ndarray) -> np.ndarray:
        if subject == "lognormal":
            u = rng.normal(0.0, sigma, size=len(rows))
        else:
            u = np.log(rng.gamma(phi, 1.0 / phi, size=len(rows)))
        mean = exposure[rows] * np.exp(eta[rows] + u)[:, None] * np.exp(trend * t)[None, :]
        if k_within is not None:
            mean = rng.gamma(k_within, mean / k_within)
        return rng.poisson(mean)

    counts = draw(np.arange(n))
    zero_subject = np.zeros(n, dtype=bool)
    if zero in ("zinb", "hurdle"):
        zero_subject = rng.random(n) < pi
        counts[zero_subject] = 0
    if zero == "hurdle":
        redo = ~zero_subject & (counts.sum(axis=1) == 0)
        while redo.any():
            counts[redo] = draw(np.flatnonzero(redo))
            redo = ~zero_subject & (counts.sum(axis=1) == 0)
    weekly = pd.DataFrame(
        {
            "trial_id": trial_id,
            "subject_id": np.repeat([f"S{i + 1:04d}" for i in range(n)], weeks),
            "arm": np.repeat(arm, weeks),
            "period": "treatment",
            "week": np.tile(week, n),
            "count": counts.ravel(),
            "exposure_days": exposure.ravel(),
            "log_baseline_rate": np.repeat(x, weeks),
        }
    )
    truth = {
        "log_rr": {a: float(np.log(rate_ratios[a])) for a in arms[1:]},
        "b": b,
        "trend": trend,
        "sigma": sigma,
        "phi": phi,
        "k": k_within,
        "pi": pi,
    }
    return weekly, truth


def weekly_runner(
    model: BayesModel, cores: int, simulate: Callable[[np.random.Generator], tuple], zero: str
) -> ReplicateRunner:
    """Return a runner fitting ``model`` to the weekly frame of ``simulate(rng)``.

    Targets ``log_rr[arm]`` of the active arms and, unless ``zero`` is empty, the zero
    probability named ``zero`` (truth ``truth["pi"]``).
    """

    def run(seed: np.random.SeedSequence) -> Replicate:
        data_seed, fit_seed = seed.spawn(2)
        weekly, truth = simulate(np.random.default_rng(data_seed))
        idata = model.fit(weekly, seed=int(fit_seed.generate_state(1)[0]), cores=cores)
        report = diagnose(idata)
        post = idata["posterior"]
        estimates = [
            Estimate(f"log_rr[{arm}]", value, draws_of(post, "log_rr", arm=arm))
            for arm, value in truth["log_rr"].items()
        ]
        if zero:
            estimates.append(Estimate(zero, float(truth["pi"]), draws_of(post, zero)))
        return Replicate(estimates, report["status"] == "ok", "; ".join(report["reasons"]))

    return run


def _glmm_trial(rng: np.random.Generator) -> tuple[pd.DataFrame, dict[str, Any]]:
    return simulate_weekly(
        rng, RATE_RATIOS, N_PER_ARM, subject="lognormal", sigma=0.6, k_within=5.0,
        trend=TREND, dropout=DROPOUT,
    )  # fmt: skip


def _zero_trial(zero: Literal["zinb", "hurdle"]) -> Callable[[np.random.Generator], tuple]:
    def simulate(rng: np.random.Generator) -> tuple[pd.DataFrame, dict[str, Any]]:
        return simulate_weekly(
            rng, RATE_RATIOS, N_PER_ARM, subject="gamma", phi=3.0, zero=zero,
            pi=ZERO_PROBABILITY, trend=TREND, dropout=DROPOUT,
        )  # fmt: skip

    return simulate


_HERE = sys.modules[__name__]

NB_GLMM = CalibrationCase(
    name="nb_glmm",
    model="nb_glmm",
    description=(
        "Weekly NB counts with log-normal subject effects (SD 0.6, within-subject k 5, trend "
        "-2 %/week); 3 arms x 40, 8 weeks, 5 % missing days, 5 % dropout; targets log rate "
        "ratios 0.5 and 0.75 vs placebo."
    ),
    modules=(nb_glmm, frailty_weekly, MODEL_COMMON, _HERE),
    start=lambda cores: weekly_runner(NBGLMM(), cores, _glmm_trial, ""),
)

ZINB_CASE = CalibrationCase(
    name="zinb",
    model="zinb",
    description=(
        "Gamma-frailty weekly counts (shape 3, trend -2 %/week) with 15 % complete responders; "
        "3 arms x 40, 8 weeks, 5 % missing days, 5 % dropout; targets log rate ratios 0.5 and "
        "0.75 vs placebo and pi."
    ),
    modules=(zero_inflated, frailty_weekly, MODEL_COMMON, _HERE),
    start=lambda cores: weekly_runner(ZINB(), cores, _zero_trial("zinb"), "pi"),
)

HURDLE = CalibrationCase(
    name="hurdle",
    model="hurdle",
    description=(
        "Gamma-frailty weekly counts (shape 3, trend -2 %/week), 15 % of subjects without any "
        "cramp and the rest zero-truncated; 3 arms x 40, 8 weeks, 5 % missing days, 5 % "
        "dropout; targets log rate ratios 0.5 and 0.75 vs placebo and pi0."
    ),
    modules=(zero_inflated, frailty_weekly, MODEL_COMMON, _HERE),
    start=lambda cores: weekly_runner(Hurdle(), cores, _zero_trial("hurdle"), "pi0"),
)
