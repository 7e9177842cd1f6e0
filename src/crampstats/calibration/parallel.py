"""Calibration cases of the parallel-trial count models.

Each trial comes from the models' own data-generating process
(:func:`crampstats.models.synthetic.simulate_parallel_trial`): three arms of 40 (placebo and
rate ratios 0.6 and 0.8), 8 weeks after a 2-week run-in, 0.9 cramps a day, gamma frailty of
shape 3, run-in slope 0.7, 5 % of diary days missing and 8 % dropout (docs/calibration.md
defaults). Targets are the log rate ratios of the two active arms.
"""

from __future__ import annotations

import sys

import numpy as np

from crampstats.calibration.case import (
    MODEL_COMMON,
    CalibrationCase,
    Estimate,
    Replicate,
    ReplicateRunner,
    draws_of,
)
from crampstats.engine import BayesModel, diagnose
from crampstats.models import FrailtyWeekly, NBTotals, frailty_weekly, nb_totals, synthetic

RATE_RATIOS = {"placebo": 1.0, "arm_a": 0.6, "arm_b": 0.8}
N_PER_ARM = 40
WEEKS = 8
MISSING_DAY_PROB = 0.05
DROPOUT = 0.08
# the simulation (this module and the generator) is part of what a recorded study pinned
_COMMON = (synthetic, MODEL_COMMON, sys.modules[__name__])


def log_rr_runner(model: BayesModel, cores: int, *, weekly: bool, trend: float) -> ReplicateRunner:
    """Return a runner fitting ``model`` to a simulated parallel trial; targets ``log_rr[arm]``.

    Parameters
    ----------
    model
        A count model reading the ``periods`` (``weekly=False``) or ``weekly`` frame.
    cores
        Chains sampled in parallel.
    weekly
        Which frame the model reads.
    trend
        True log rate change per week (the weekly model estimates it; the totals model has
        none, so its data have none).
    """

    def run(seed: np.random.SeedSequence) -> Replicate:
        data_seed, fit_seed = seed.spawn(2)
        periods, weekly_frame, truth = synthetic.simulate_parallel_trial(
            np.random.default_rng(data_seed),
            RATE_RATIOS,
            N_PER_ARM,
            weeks=WEEKS,
            trend=trend,
            missing_day_prob=MISSING_DAY_PROB,
            dropout=DROPOUT,
        )
        idata = model.fit(
            weekly_frame if weekly else periods,
            seed=int(fit_seed.generate_state(1)[0]),
            cores=cores,
        )
        report = diagnose(idata)
        post = idata["posterior"]
        estimates = [
            Estimate(
                f"log_rr[{arm}]", float(truth["log_rr"][arm]), draws_of(post, "log_rr", arm=arm)
            )
            for arm in list(RATE_RATIOS)[1:]
        ]
        return Replicate(estimates, report["status"] == "ok", "; ".join(report["reasons"]))

    return run


NB_TOTALS = CalibrationCase(
    name="nb_totals",
    model="nb_totals",
    description=(
        "NB totals with run-in adjustment; 3 arms x 40, 8 weeks, 5 % missing days, 8 % dropout; "
        "targets log rate ratios 0.6 and 0.8 vs placebo."
    ),
    modules=(nb_totals, *_COMMON),
    start=lambda cores: log_rr_runner(NBTotals(), cores, weekly=False, trend=0.0),
    primary=True,
)

FRAILTY_WEEKLY = CalibrationCase(
    name="frailty_weekly",
    model="frailty_weekly",
    description=(
        "Gamma-frailty weekly counts with a week trend of -2 %/week; 3 arms x 40, 8 weeks, 5 % "
        "missing days, 8 % dropout; targets log rate ratios 0.6 and 0.8 vs placebo."
    ),
    modules=(frailty_weekly, *_COMMON),
    start=lambda cores: log_rr_runner(FrailtyWeekly(), cores, weekly=True, trend=-0.02),
    primary=True,
)
