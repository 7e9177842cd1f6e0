"""Calibration cases of the Bayesian test-retest reliability models (outcome measures).

Each replicate runs the production functions of
:mod:`crampstats.secondary.outcome_measures.reliability` (model defaults; only ``cores``
passed), so the targets are the reliability properties exactly as the table reports them:

- ``frequency_reliability``: two run-in weeks of 150 subjects from the frequency model's own
  data-generating process (subject log rate ~ Normal, weekly counts NB2 with size 5, 10 % of
  weeks with 4-6 diarised days; latent ICC 0.6 at 6 cramps a week). The truth follows from
  these parameters by the formulas of :func:`count_truth`, written out here independently of
  :func:`~crampstats.secondary.outcome_measures.count_reliability`.
- ``ctf_reliability``: two baseline CTFs of 150 subjects (3 arms x 50) from the trial
  simulator (:func:`crampstats.simulate.simulate`, stepped protocol 4/2/40 Hz, log-scale ICC
  0.7), derived as the workflow does (:func:`crampstats.derive.derive_all`). The truth is the
  simulator's between- and within-subject SDs of the log CTF
  (``truth["trials"][id]["emg"]``) through the log-normal formulas of :func:`lognormal_truth`
  (written out here too).

Targets: ``icc``, ``icc_observed``, ``sem``, ``mdc95`` (the CTF table's ``sem_ratio`` and
``mdc95_ratio`` are monotone functions of ``sem`` and ``mdc95``: same coverage, left out).
Reference: ``models.RunInReliability`` and ``models.CTFReliability``; the engine's
:func:`crampstats.engine.diagnose` (run by the production functions) gives ``converged``.
"""

from __future__ import annotations

import math
import sys

import numpy as np
import pandas as pd

import crampstats.derive.datasets as derive_datasets
import crampstats.simulate.design as simulate_design
import crampstats.simulate.trial as simulate_trial
from crampstats import numerics
from crampstats.calibration.case import (
    MODEL_COMMON,
    CalibrationCase,
    Estimate,
    Replicate,
    ReplicateRunner,
)
from crampstats.derive import derive_all
from crampstats.models import nb_glmm
from crampstats.secondary.outcome_measures import (
    ctf_reliability,
    data,
    frequency_reliability,
    likelihood,
    models,
    names,
)
from crampstats.secondary.outcome_measures import reliability as om_reliability
from crampstats.simulate import simulate

#: Properties compared with the truth (the table's rows of both endpoints).
PROPERTIES = ("icc", "icc_observed", "sem", "mdc95")

#: Frequency design: latent ICC, mean cramps per 7-day week, within-subject NB size.
ICC, WEEKLY_MEAN, K_WITHIN = 0.6, 6.0, 5.0
N_SUBJECTS, RUNIN_WEEKS, P_SHORT_WEEK = 150, 2, 0.1

#: CTF design: three arms of 50 with two baseline EMG visits (simulator defaults otherwise).
CTF_DESIGN = {
    "type": "parallel",
    "trial_id": "t",
    "n_per_arm": 50,
    "arms": {"placebo": {}, "quinine": {}, "mexiletine": {}},
    "emg": {"baseline_visits": 2, "icc": 0.7},
}
#: The derive config the CTF bounds come from (the design's protocol).
CTF_CONFIG = {"design": "parallel", "ctf_protocol": {"start_hz": 4, "step_hz": 2, "max_hz": 40}}

_Z95 = 1.959963984540054
_OM = (om_reliability, models, likelihood, data, names, nb_glmm, numerics, MODEL_COMMON)


def count_truth(icc: float, lam: float, k: float) -> dict[str, float]:
    """Parameters and true properties of weekly NB counts with a log-normal subject effect.

    Nakagawa et al. (2017): latent ICC ``s2 / (s2 + log(1 + 1/lam + 1/k))`` with ``lam`` the
    mean weekly count ``exp(mu + s2 / 2)``; solved for ``s2`` given the ICC. Observed scale by
    the law of total variance: ``Var(E[y|b]) = E[m^2] - lam^2``, ``E[Var(y|b)] = lam +
    E[m^2] / k``.
    """
    s2 = icc / (1.0 - icc) * math.log(1.0 + 1.0 / lam + 1.0 / k)
    mu = math.log(lam) - s2 / 2.0
    e_m2 = math.exp(2.0 * mu + 2.0 * s2)
    between = e_m2 - lam**2
    within = lam + e_m2 / k
    sem = math.sqrt(within)
    return {
        "mu": mu,
        "s": math.sqrt(s2),
        "k": k,
        "icc": icc,
        "icc_observed": between / (between + within),
        "sem": sem,
        "mdc95": _Z95 * math.sqrt(2.0) * sem,
    }


def lognormal_truth(s_b: float, s_e: float) -> dict[str, float]:
    """Return the true properties of a log-normal measurement (between SD s_b, within s_e).

    Log scale: ``icc = s_b^2 / (s_b^2 + s_e^2)``, ``sem = s_e`` (the within-subject SD),
    ``mdc95 = 1.96 sqrt(2) s_e``; original scale (log-normal moments): the correlation of two
    measurements ``(exp(s_b^2) - 1) / (exp(s_b^2 + s_e^2) - 1)``.
    """
    total = s_b**2 + s_e**2
    return {
        "icc": s_b**2 / total,
        "icc_observed": math.expm1(s_b**2) / math.expm1(total),
        "sem": s_e,
        "mdc95": _Z95 * math.sqrt(2.0) * s_e,
    }


def simulate_runin(
    rng: np.random.Generator, n: int, truth: dict[str, float], weeks: int, p_short: float
) -> pd.DataFrame:
    """Simulate a ``weekly`` frame of run-in weeks (``truth`` from :func:`count_truth`).

    A fraction ``p_short`` of weeks has 4-6 diarised days (kept by the default 4-day rule, so
    every subject enters and the exposure offset is exercised).
    """
    log_rate = rng.normal(truth["mu"], truth["s"], n)  # per 7-day week
    days = np.where(rng.random((n, weeks)) < p_short, rng.integers(4, 7, (n, weeks)), 7)
    mean = np.exp(log_rate)[:, None] * days / 7.0
    k = truth["k"]
    counts = rng.negative_binomial(k, k / (k + mean))
    week = np.arange(weeks) - weeks + 1
    return pd.DataFrame(
        {
            "trial_id": "g",
            "subject_id": np.repeat([f"s{i:04d}" for i in range(n)], weeks),
            "arm": "placebo",
            "period": "run-in",
            "week": np.tile(week, n),
            "count": counts.ravel(),
            "exposure_days": days.ravel(),
        }
    )


def _replicate(truth: dict[str, float], result: om_reliability.ReliabilityResult) -> Replicate:
    estimates = [Estimate(p, float(truth[p]), np.asarray(result.draws[p])) for p in PROPERTIES]
    diag = result.diagnostics or {"status": "failed", "reasons": ["no diagnostics"]}
    return Replicate(estimates, diag["status"] == "ok", "; ".join(diag["reasons"]))


def frequency_runner(cores: int) -> ReplicateRunner:
    """Runner of :func:`frequency_reliability` on simulated run-in weeks (module docstring)."""
    truth = count_truth(ICC, WEEKLY_MEAN, K_WITHIN)

    def run(seed: np.random.SeedSequence) -> Replicate:
        data_seed, fit_seed = seed.spawn(2)
        weekly = simulate_runin(
            np.random.default_rng(data_seed), N_SUBJECTS, truth, RUNIN_WEEKS, P_SHORT_WEEK
        )
        result = frequency_reliability(
            weekly, seed=int(fit_seed.generate_state(1)[0]), sampler_config={"cores": cores}
        )
        return _replicate(truth, result)

    return run


def ctf_runner(cores: int) -> ReplicateRunner:
    """Runner of :func:`ctf_reliability` on simulated trials' baseline CTFs (module docstring)."""

    def run(seed: np.random.SeedSequence) -> Replicate:
        data_seed, fit_seed = seed.spawn(2)
        trial = simulate(CTF_DESIGN, data_seed)
        emg = derive_all(trial.tables, CTF_CONFIG)["emg"]
        sim = trial.truth["trials"][CTF_DESIGN["trial_id"]]["emg"]
        truth = lognormal_truth(sim["sigma_subject"], sim["sigma_noise"])
        result = ctf_reliability(
            emg, seed=int(fit_seed.generate_state(1)[0]), sampler_config={"cores": cores}
        )
        return _replicate(truth, result)

    return run


_THIS = sys.modules[__name__]

FREQUENCY_RELIABILITY = CalibrationCase(
    name="frequency_reliability",
    model="outcome_measures.runin_reliability",
    description=(
        "Run-in test-retest reliability of weekly cramp counts (NB-lognormal GLMM); 150 "
        "subjects x 2 run-in weeks, latent ICC 0.6, 6 cramps/week, within-subject k 5; targets "
        "icc, icc_observed, sem, mdc95."
    ),
    modules=(*_OM, _THIS),
    start=frequency_runner,
    primary=False,
)

CTF_RELIABILITY = CalibrationCase(
    name="ctf_reliability",
    model="outcome_measures.ctf_reliability",
    description=(
        "Test-retest reliability of two interval-censored baseline log CTFs; trial simulator, "
        "3 arms x 50, log-scale ICC 0.7, protocol 4/2/40 Hz; targets icc, icc_observed, sem, "
        "mdc95 (log Hz)."
    ),
    modules=(*_OM, simulate_trial, simulate_design, derive_datasets, _THIS),
    start=ctf_runner,
    primary=False,
)
