"""Calibration cases of the ``crossover`` model: an AB/BA crossover and an N-of-1 series.

Trials come from the model's own likelihood (:func:`simulate_crossover`), not from the trial
simulator (:mod:`crampstats.simulate`): that one moves each subject's weekly rate by an AR(1)
process which the model only approximates by its NB period multiplier, so coverage there would
mix calibration with misspecification. The design magnitudes are those of the bundled examples
(data/example_crossover, data/example_nof1; docs/calibration.md): 28-day periods with 5 % of
diary days missing, 8 % dropout after a random period, within-subject NB size ``k = 20``
(the simulator's AR(1) gives a period-mean log variance of about 0.05), run-in slope 0.7 and
between-subject SD 0.25 after it.
"""

from __future__ import annotations

import sys

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
from crampstats.engine import diagnose
from crampstats.models import Crossover, crossover

CONTROL = "placebo"
PERIOD_DAYS = 28
MISSING_DAY_PROB = 0.05
DROPOUT = 0.08
K_WITHIN = 20.0
B = 0.7
SIGMA_A = 0.25
BASELINE_SD = 0.5

#: AB/BA: data/example_crossover (ALS rates, 5 cramps a day, mexiletine RR 0.5, sigma_d 0.3).
ABBA = {"arm": "mexiletine", "n": 20, "cycles": 1, "rate": 5.0, "log_rr": float(np.log(0.5)),
        "sigma_d": 0.3, "period_effects": (0.0, -0.1)}  # fmt: skip
#: N-of-1: 24 patients x 3 blocks (data/example_nof1 has 13; tests/models/test_crossover.py
#: recovers sigma_d with 60, at 3-4 times the cost of a fit); 0.9 cramps a day, quinine RR
#: 0.75, patient effect SD 0.5, a placebo-like drift over the six periods.
NOF1 = {"arm": "quinine", "n": 24, "cycles": 3, "rate": 0.9, "log_rr": float(np.log(0.75)),
        "sigma_d": 0.5, "period_effects": (0.0, -0.05, -0.1, -0.1, -0.15, -0.15)}  # fmt: skip


def simulate_crossover(
    rng: np.random.Generator,
    *,
    arm: str,
    n: int,
    cycles: int,
    rate: float,
    log_rr: float,
    sigma_d: float,
    period_effects: tuple[float, ...],
) -> tuple[pd.DataFrame, np.ndarray]:
    """Draw one trial's ``crossover`` frame from the likelihood of :class:`Crossover`.

    Each cycle is a pair of periods in random order (AB/BA balanced over subjects when
    ``cycles == 1``, independently permuted per subject and cycle otherwise)::

        x_i ~ Normal(log rate, BASELINE_SD)                (log run-in rate, as observed)
        a_i = log rate + B * (x_i - log rate) + SIGMA_A * N(0, 1)
        d_i ~ Normal(0, sigma_d)
        y_ip ~ NegBin(e_ip * exp(a_i + pi_p + (log_rr + d_i) [active]), K_WITHIN)

    Parameters
    ----------
    rng
        Random generator.
    arm, n, cycles, rate, log_rr, sigma_d, period_effects
        Active arm, subjects, cycles, cramps a day, population log rate ratio, SD of the
        patients' own log rate ratios and each period's log effect (first 0).

    Returns
    -------
    frame : pandas.DataFrame
        ``trial_id, subject_id, period, treatment, previous_treatment, count, exposure_days,
        log_baseline_rate``; periods after dropout have ``exposure_days == 0``.
    subject_log_rr : numpy.ndarray
        Each patient's own log rate ratio ``log_rr + d_i``.
    """
    n_periods = 2 * cycles
    if len(period_effects) != n_periods:
        raise ValueError(f"need {n_periods} period effects, got {len(period_effects)}")
    if cycles == 1:
        first = rng.permutation(np.resize([False, True], n))[:, None]
        active = np.concatenate([first, ~first], axis=1)
    else:
        active = np.concatenate(
            [rng.permuted(np.tile([False, True], (n, 1)), axis=1) for _ in range(cycles)], axis=1
        )
    x = rng.normal(np.log(rate), BASELINE_SD, n)
    a = np.log(rate) + B * (x - np.log(rate)) + SIGMA_A * rng.standard_normal(n)
    own = log_rr + sigma_d * rng.standard_normal(n)
    exposure = PERIOD_DAYS - rng.binomial(PERIOD_DAYS, MISSING_DAY_PROB, (n, n_periods))
    # a dropout leaves after period 1..n_periods-1: every subject keeps period 1, so the
    # number of subjects (part of the compiled model) never changes
    last = np.where(rng.random(n) < DROPOUT, rng.integers(1, n_periods, n), n_periods)
    exposure = np.where(np.arange(1, n_periods + 1)[None, :] <= last[:, None], exposure, 0)
    log_mu = (
        np.log(np.maximum(exposure, 1))
        + a[:, None]
        + np.asarray(period_effects)[None, :]
        + np.where(active, own[:, None], 0.0)
    )
    counts = rng.poisson(rng.gamma(K_WITHIN, np.exp(log_mu) / K_WITHIN))
    counts = np.where(exposure > 0, counts, 0)
    treatment = np.where(active, arm, CONTROL)
    previous = np.concatenate([np.full((n, 1), None, dtype=object), treatment[:, :-1]], axis=1)
    frame = pd.DataFrame(
        {
            "trial_id": "sim",
            "subject_id": np.repeat([f"S{i + 1:03d}" for i in range(n)], n_periods),
            "period": np.tile(np.arange(1, n_periods + 1), n),
            "treatment": treatment.ravel(),
            "previous_treatment": previous.ravel(),
            "count": counts.ravel(),
            "exposure_days": exposure.ravel(),
            "log_baseline_rate": np.repeat(x, n_periods),
        }
    )
    return frame, own


def crossover_runner(design: dict, cores: int, *, sigma_d_target: bool) -> ReplicateRunner:
    """Return a runner fitting the default :class:`Crossover` to trials of ``design``.

    Targets ``log_rr[arm]`` and, with ``sigma_d_target``, ``sigma_d[arm]`` (identified only
    with replicated periods per treatment, i.e. in N-of-1 series).
    """
    model = Crossover()
    arm = design["arm"]

    def run(seed: np.random.SeedSequence) -> Replicate:
        data_seed, fit_seed = seed.spawn(2)
        frame, _ = simulate_crossover(np.random.default_rng(data_seed), **design)
        idata = model.fit(frame, seed=int(fit_seed.generate_state(1)[0]), cores=cores)
        report = diagnose(idata)
        post = idata["posterior"]
        log_rr = draws_of(post, "log_rr", arm=arm)
        estimates = [Estimate(f"log_rr[{arm}]", design["log_rr"], log_rr)]
        if sigma_d_target:
            estimates.append(
                Estimate(f"sigma_d[{arm}]", design["sigma_d"], draws_of(post, "sigma_d", arm=arm))
            )
        return Replicate(estimates, report["status"] == "ok", "; ".join(report["reasons"]))

    return run


_MODULES = (crossover, MODEL_COMMON, sys.modules[__name__])

CROSSOVER_ABBA = CalibrationCase(
    name="crossover_abba",
    model="crossover",
    description=(
        "AB/BA crossover from the model's own NB likelihood (20 subjects, 28-day periods, 5 "
        "cramps a day, within-subject k 20, patient effect SD 0.3, period effect -0.1, 8 % "
        "dropout); target the mean log rate ratio log 0.5."
    ),
    modules=_MODULES,
    start=lambda cores: crossover_runner(ABBA, cores, sigma_d_target=False),
    primary=True,
)

CROSSOVER_NOF1 = CalibrationCase(
    name="crossover_nof1",
    model="crossover",
    description=(
        "Aggregated N-of-1 series from the model's own NB likelihood (24 patients x 3 blocks "
        "of 28-day periods, 0.9 cramps a day, within-subject k 20, placebo-like period drift, "
        "8 % dropout); targets the mean log rate ratio log 0.75 and the patient effect SD 0.5."
    ),
    modules=_MODULES,
    start=lambda cores: crossover_runner(NOF1, cores, sigma_d_target=True),
    primary=True,
)
