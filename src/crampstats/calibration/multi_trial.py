"""Calibration case of the ``multi_trial`` model: a six-trial network with heterogeneous effects.

Every replicate draws a network from the model's own process (:func:`simulate_network`, the
generator of tests/models/test_multi_trial.py): six parallel trials, each with placebo and one
or two of three active arms, 25 subjects an arm (mexiletine and magnesium never meet in a
trial, so their contrast is indirect), trial baselines ``0.9 * exp(0.25 N(0, 1))`` cramps a
day, overdispersion 2, 3 and 4 in turn, run-in slope 0.7, 5 % dropout, and trial effects
``log_rr[a] + tau (sqrt(rho) u_t + sqrt(1 - rho) z_ta)`` with ``rho = 0.5`` (the model's
``re_correlation``).

With six trials ``tau`` is barely identified and its posterior leans on its prior, so at a
fixed true ``tau`` neither its intervals nor (through ``tau``) the pooled effects' are expected
to cover at the nominal rate. Each replicate therefore draws ``tau`` from the model's prior
(``HalfNormal(prior_tau_sd)``), which makes nominal coverage the right expectation; the pooled
log rate ratios are fixed at docs/calibration.md's therapy effects.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping

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
from crampstats.models import MultiTrial, multi_trial, synthetic

#: docs/calibration.md therapy effects.
LOG_RR = {
    "mexiletine": float(np.log(0.5)),
    "quinine": float(np.log(0.75)),
    "magnesium": float(np.log(0.96)),
}
#: Trials and their arms, control first; mexiletine and magnesium are compared indirectly only.
NETWORK = {
    "T1": ["placebo", "mexiletine", "quinine"],
    "T2": ["placebo", "mexiletine", "quinine"],
    "T3": ["placebo", "quinine", "magnesium"],
    "T4": ["placebo", "quinine", "magnesium"],
    "T5": ["placebo", "mexiletine"],
    "T6": ["placebo", "quinine", "magnesium"],
}
#: 25 an arm, not the 40 of tests/models/test_multi_trial.py: sampling cost grows with the
#: subjects, and 40 an arm cost about 6 s a replicate at the production sampler settings.
N_PER_ARM = 25


def simulate_network(
    rng: np.random.Generator,
    network: Mapping[str, list[str]],
    log_rr: Mapping[str, float],
    tau: float,
    n_per_arm: int = N_PER_ARM,
    rho: float = 0.5,
    ks: tuple[float, ...] = (2.0, 3.0, 4.0),
    rate_sd: float = 0.25,
) -> tuple[pd.DataFrame, dict]:
    """Several trials' ``periods`` frames from the model's own process, with known truth.

    Trial ``t`` has a baseline rate ``0.9 * exp(rate_sd * N(0, 1))``, overdispersion ``ks``
    in turn and arm effects ``log_rr[a] + tau * (sqrt(rho) u_t + sqrt(1 - rho) z_ta)``;
    subjects follow :func:`crampstats.models.synthetic.simulate_parallel_trial` (run-in
    covariate entering with b = 0.7, 5 % dropout).

    Returns
    -------
    periods : pandas.DataFrame
        All trials' rows.
    truth : dict
        ``log_rr`` (arm -> pooled value), ``tau`` and ``cells`` ((trial, arm) -> trial effect).
    """
    frames, cells = [], {}
    for i, (trial, arms) in enumerate(network.items()):
        u = rng.standard_normal()
        rate_ratios = {arms[0]: 1.0}
        for arm in arms[1:]:
            z = rng.standard_normal()
            cells[(trial, arm)] = log_rr[arm] + tau * (np.sqrt(rho) * u + np.sqrt(1 - rho) * z)
            rate_ratios[arm] = float(np.exp(cells[(trial, arm)]))
        periods, _, _ = synthetic.simulate_parallel_trial(
            rng,
            rate_ratios,
            n_per_arm,
            weeks=8,
            rate=0.9 * float(np.exp(rate_sd * rng.standard_normal())),
            k=ks[i % len(ks)],
            b=0.7,
            baseline="independent",
            dropout=0.05,
            trial_id=trial,
        )
        frames.append(periods)
    truth = {"log_rr": dict(log_rr), "tau": tau, "cells": cells}
    return pd.concat(frames, ignore_index=True), truth


def network_runner(cores: int) -> ReplicateRunner:
    """Return a runner fitting the default :class:`MultiTrial`; targets ``log_rr[arm]``, ``tau``."""
    model = MultiTrial()
    tau_sd = float(model.model_config["prior_tau_sd"])
    rho = float(model.model_config["re_correlation"])

    def run(seed: np.random.SeedSequence) -> Replicate:
        data_seed, fit_seed = seed.spawn(2)
        rng = np.random.default_rng(data_seed)
        tau = abs(tau_sd * float(rng.standard_normal()))
        periods, truth = simulate_network(rng, NETWORK, LOG_RR, tau, rho=rho)
        idata = model.fit(periods, seed=int(fit_seed.generate_state(1)[0]), cores=cores)
        report = diagnose(idata)
        post = idata["posterior"]
        estimates = [
            Estimate(f"log_rr[{arm}]", value, draws_of(post, "log_rr", arm=arm))
            for arm, value in truth["log_rr"].items()
        ]
        estimates.append(Estimate("tau", tau, draws_of(post, "tau")))
        return Replicate(estimates, report["status"] == "ok", "; ".join(report["reasons"]))

    return run


MULTI_TRIAL = CalibrationCase(
    name="multi_trial",
    model="multi_trial",
    description=(
        "Six-trial network from the model's own process (placebo + 1-2 of 3 active arms, 25 "
        "an arm, trial baselines and k differing, mexiletine vs magnesium indirect only), "
        "tau drawn from its HalfNormal(0.5) prior; targets the pooled log rate ratios 0.5, "
        "0.75, 0.96 and tau."
    ),
    modules=(multi_trial, synthetic, MODEL_COMMON, sys.modules[__name__]),
    start=network_runner,
    # the only default model for data holding several parallel trials, so their primary
    primary=True,
)
