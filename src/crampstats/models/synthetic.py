"""Minimal generator of parallel-trial analysis data with known truth, for model checks.

This is *not* the project's trial simulator (that one lives in ``crampstats.simulate`` and
models selection, placebo response and diaries in detail). It produces exactly the two frames
the count models read (``periods``, ``weekly``) from the models' own data-generating process,
so that recovery and twin-agreement tests have an unambiguous truth.

Process (gamma frailty, docs/calibration.md defaults: 0.9 cramps/day, k = 3, 2-week run-in)::

    u_i ~ Gamma(shape=k, rate=k)                     # mean 1, frailty
    weekly count_iw ~ Poisson(exposure_iw * rate_i * u_i * RR[arm_i] * exp(trend * t_w))

so a subject's weekly counts are negative multinomial and the treatment total is NB with size
``k``. ``extra_log_rate`` adds a known per-subject term to ``log rate_i`` (covariate or site
effects drawn by the caller), so that tests of covariates and random intercepts have a truth.
``baseline="independent"`` draws the run-in log rate ``x_i`` first and sets
``log rate_i = log(rate) + b * (x_i - log(rate))`` (the covariate enters exactly as the models
assume); ``baseline="runin"`` derives ``x_i`` from a simulated run-in count of the same frailty
(realistic, but then the frailty left after adjustment is not exactly gamma(k)).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import numpy as np
import pandas as pd


def simulate_parallel_trial(
    rng: np.random.Generator,
    rate_ratios: Mapping[str, float],
    n_per_arm: int,
    *,
    weeks: int = 8,
    runin_weeks: int = 2,
    rate: float = 0.9,
    k: float = 3.0,
    b: float = 0.7,
    baseline: Literal["independent", "runin"] = "independent",
    baseline_sd: float = 0.5,
    trend: float = 0.0,
    missing_day_prob: float = 0.0,
    dropout: float = 0.0,
    trial_id: str = "sim",
    extra_log_rate: np.ndarray | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    """Simulate a parallel trial's ``periods`` and ``weekly`` frames.

    Parameters
    ----------
    rng
        Random generator.
    rate_ratios
        True rate ratio of every arm versus control, control first with 1.0.
    n_per_arm
        Subjects per arm.
    weeks, runin_weeks
        Treatment and run-in length in weeks.
    rate
        Cramps per day at the mean run-in rate, control arm (docs/calibration.md: 0.9/day).
    k
        Gamma frailty shape (NB size of a subject's total; docs/calibration.md: 3).
    b
        Coefficient of the centred log run-in rate (``baseline="independent"`` only).
    baseline
        How ``log_baseline_rate`` arises (module docstring).
    baseline_sd
        SD of the true log run-in rate between subjects (``"independent"``).
    trend
        Log-rate change per treatment week; weeks are centred at ``(weeks + 1) / 2``.
    missing_day_prob
        Probability that a diary day is missing (shortens that week's exposure).
    dropout
        Probability a subject drops out at a uniformly chosen week; later weeks are kept as
        rows with ``exposure_days == 0`` (the models must drop them).
    trial_id
        Value of ``trial_id``.
    extra_log_rate
        Added to every subject's log rate (length ``n_per_arm * len(rate_ratios)``, subjects
        arm by arm in the order of ``rate_ratios``); ``None`` adds nothing and draws nothing,
        so the other outputs are those of the same call without it.

    Returns
    -------
    periods : pandas.DataFrame
        One row per subject (treatment period).
    weekly : pandas.DataFrame
        One row per subject x week, run-in weeks ``0, -1, ...`` and treatment weeks ``1..``.
    truth : dict
        ``log_rr`` (dict arm -> value, active arms), ``k``, ``b``, ``trend``, ``rate``.
    """
    arms = list(rate_ratios)
    n = n_per_arm * len(arms)
    arm = np.repeat(arms, n_per_arm)
    rr = np.repeat([rate_ratios[a] for a in arms], n_per_arm)
    u = rng.gamma(k, 1.0 / k, size=n)
    runin_days = np.full(n, 7 * runin_weeks)
    if baseline == "independent":
        x = rng.normal(np.log(rate), baseline_sd, size=n)
        runin_count = rng.poisson(runin_days * np.exp(x))
        subject_rate = np.exp(np.log(rate) + b * (x - np.log(rate)))
    elif baseline == "runin":
        runin_count = rng.poisson(runin_days * rate * u)
        x = np.log((runin_count + 0.5) / runin_days)
        subject_rate = np.full(n, rate)
    else:
        raise ValueError(f"unknown baseline {baseline!r}")
    if extra_log_rate is not None:
        extra = np.asarray(extra_log_rate, dtype=float)
        if extra.shape != (n,):
            raise ValueError(f"extra_log_rate must have {n} values, got shape {extra.shape}")
        subject_rate = subject_rate * np.exp(extra)

    week = np.arange(1, weeks + 1)
    t = week - (weeks + 1) / 2
    last_week = np.full(n, weeks)
    drops = rng.random(n) < dropout
    last_week[drops] = rng.integers(0, weeks, size=int(drops.sum()))
    exposure = 7 - rng.binomial(7, missing_day_prob, size=(n, weeks))
    exposure = np.where(week[None, :] <= last_week[:, None], exposure, 0)
    mean = exposure * (subject_rate * u * rr)[:, None] * np.exp(trend * t)[None, :]
    counts = rng.poisson(mean)

    subject_id = np.array([f"S{i + 1:04d}" for i in range(n)])
    age = np.round(rng.normal(68, 9, size=n), 1)
    sex = rng.choice(np.array(["F", "M"]), size=n)
    periods = pd.DataFrame(
        {
            "trial_id": trial_id,
            "subject_id": subject_id,
            "arm": arm,
            "period": "treatment",
            "count": counts.sum(axis=1),
            "exposure_days": exposure.sum(axis=1),
            "runin_count": runin_count,
            "runin_days": runin_days,
            "log_baseline_rate": x,
            "age": age,
            "sex": sex,
        }
    )

    runin_split = rng.multinomial(runin_count, np.full(runin_weeks, 1.0 / runin_weeks))
    runin_weeks_idx = np.arange(-runin_weeks + 1, 1)
    weekly = pd.concat(
        [
            pd.DataFrame(
                {
                    "trial_id": trial_id,
                    "subject_id": np.repeat(subject_id, runin_weeks),
                    "arm": np.repeat(arm, runin_weeks),
                    "period": "run-in",
                    "week": np.tile(runin_weeks_idx, n),
                    "count": runin_split.ravel(),
                    "exposure_days": 7,
                    "n_records": 7,
                    "log_baseline_rate": np.repeat(x, runin_weeks),
                }
            ),
            pd.DataFrame(
                {
                    "trial_id": trial_id,
                    "subject_id": np.repeat(subject_id, weeks),
                    "arm": np.repeat(arm, weeks),
                    "period": "treatment",
                    "week": np.tile(week, n),
                    "count": counts.ravel(),
                    "exposure_days": exposure.ravel(),
                    "n_records": exposure.ravel(),
                    "log_baseline_rate": np.repeat(x, weeks),
                }
            ),
        ],
        ignore_index=True,
    )
    truth = {
        "log_rr": {a: float(np.log(rate_ratios[a])) for a in arms[1:]},
        "k": k,
        "b": b if baseline == "independent" else None,
        "trend": trend,
        "rate": rate,
    }
    return periods, weekly, truth
