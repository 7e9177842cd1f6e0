"""Calibration cases of the secondary-endpoint models (parallel designs).

Each case simulates trials from its model's own data-generating process, so the true value of
every reported effect is known exactly, and fits them as the secondary job does
(:func:`crampstats.secondary.endpoints.run_endpoint`: ``model.fit`` with the model's default
sampler settings, the trial's arms in the model config). Targets are the effects the report
shows, on the scale where their intervals are read:

- ``ctf_heavy_censoring``: log ratio of median CTF (reported as its exponential), a coarse
  stimulation protocol censoring ~48 % of end-of-treatment CTFs;
- ``afterdischarge``: ``beta`` of every active arm (the reported odds ratio of a lower grade is
  ``exp(-beta)``);
- ``intensity``: the standardised difference in mean 0-10 intensity, per arm;
- ``responder``, ``responder_adjusted``: risk difference and log risk ratio of response, per
  arm (standardised over the patients' run-in rates when adjusted);
- ``safety_prior``: risk difference and log risk ratio per arm and adverse-event category, the
  truths drawn from the model's own priors (a hierarchical model is calibrated averaged over
  its prior, whatever the sparsity of a cell).

A posterior interval of a risk ratio is the exponential of the log risk ratio's (quantiles
follow a monotone map), so its coverage is the log's; the log is the scale on which bias and
z-scores are comparable across arms. The simulators are those of the models' former coverage
tests (``tests/models/test_<model>.py``), written out here; the intensity simulator also varies
the days rated, so the precision's slope on them (``g``) is in play.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Callable, Mapping

import numpy as np
import pandas as pd
import xarray as xr
from scipy import special

from crampstats import numerics
from crampstats.calibration.case import (
    MODEL_COMMON,
    CalibrationCase,
    Estimate,
    Replicate,
    ReplicateRunner,
    draws_of,
)
from crampstats.derive import datasets as derive_datasets
from crampstats.derive import emg_visits
from crampstats.engine import ATTR_PREFIX, BayesModel, diagnose
from crampstats.models import afterdischarge, ctf, intensity, responder, safety

#: Arms of the five-arm designs (the example trial's).
ARMS = ("placebo", "mexiletine", "quinine", "vitamin_b_complex", "magnesium")
#: This module: its simulators are part of every case's code.
_SELF = sys.modules[__name__]

#: ``simulate(rng) -> (frame, truth)``: one trial and whatever its targets' truths need.
Simulator = Callable[[np.random.Generator], tuple[pd.DataFrame, Mapping]]
#: ``targets(idata, truth) -> estimates``.
Targets = Callable[[xr.DataTree, Mapping], list[Estimate]]


def endpoint_runner(
    model: BayesModel, cores: int, simulate: Simulator, targets: Targets
) -> ReplicateRunner:
    """Build the runner: simulate one trial with ``simulate``, fit ``model`` to it.

    Parameters
    ----------
    model
        The endpoint model, built once (its compiled form is re-used by every replicate).
    cores
        Chains sampled in parallel.
    simulate
        The trial generator.
    targets
        The estimates of one fit, given the simulated truth.
    """

    def run(seed: np.random.SeedSequence) -> Replicate:
        data_seed, fit_seed = seed.spawn(2)
        frame, truth = simulate(np.random.default_rng(data_seed))
        idata = model.fit(frame, seed=int(fit_seed.generate_state(1)[0]), cores=cores)
        report = diagnose(idata)
        return Replicate(
            targets(idata, truth), report["status"] == "ok", "; ".join(report["reasons"])
        )

    return run


# --------------------------------------------------------------------------------------------
# ctf: interval-censored log-normal CTF, heavy censoring
# --------------------------------------------------------------------------------------------
#: Coarse steps and a low maximum: ~27 % of placebo and ~69 % of active end CTFs are
#: right-censored at ratio 1.4 (~48 % in all), ~20 % of baselines too (30 simulated trials).
CTF_PROTOCOL = {"start_hz": 4, "step_hz": 4, "max_hz": 20}
CTF_RATIO = 1.4
CTF_N_PER_ARM = 60
CTF_TRUTH = {"alpha": math.log(16.0), "sigma": 0.25, "b": 0.7, "c": 0.2}


def record_ctf(
    latent_hz: np.ndarray, protocol: Mapping[str, float]
) -> tuple[np.ndarray, np.ndarray]:
    """CTF recorded on the stepped protocol (as the trial simulator records it), and censoring.

    The recorded value is the first step at or above the latent threshold, the maximum when
    the threshold lies above it (right-censored).
    """
    start, step, top = protocol["start_hz"], protocol["step_hz"], protocol["max_hz"]
    steps = np.ceil(np.maximum(latent_hz - start, 0.0) / step - 1e-12)
    return np.minimum(start + step * steps, top), latent_hz > top


def simulate_ctf(rng: np.random.Generator) -> tuple[pd.DataFrame, dict[str, float]]:
    """Two arms (placebo, active) from the ``ctf`` model's data-generating process.

    Baseline CTFs (log-normal around 16 Hz, log SD 0.27) are recorded on the protocol; the end
    latent CTF is drawn given the *recorded* baseline exactly as the model assumes
    (``alpha + log ratio + b (x - mean x) + c d``, log SD ``sigma``), recorded, and turned
    into bounds by :func:`crampstats.derive.emg_visits`, then :func:`~crampstats.models.ctf.
    ctf_frame`. Returns the frame and the true log ratio.
    """
    arm = np.repeat(["placebo", "active"], CTF_N_PER_ARM)
    n = arm.size
    t = CTF_TRUTH
    base_hz, base_cens = record_ctf(16.0 * np.exp(0.27 * rng.standard_normal(n)), CTF_PROTOCOL)
    x = np.log(base_hz)
    mu = (
        t["alpha"]
        + np.where(arm == "active", math.log(CTF_RATIO), 0.0)
        + t["b"] * (x - x.mean())
        + t["c"] * base_cens
    )
    end_hz, end_cens = record_ctf(np.exp(mu + t["sigma"] * rng.standard_normal(n)), CTF_PROTOCOL)
    ids = [f"s{i:04d}" for i in range(n)]
    subjects = pd.DataFrame({"trial_id": "sim", "subject_id": ids, "arm": arm})
    emg = pd.DataFrame(
        {
            "subject_id": ids * 2,
            "visit": ["baseline"] * n + ["end"] * n,
            "study_day": [0] * n + [56] * n,
            "ctf_hz": np.concatenate([base_hz, end_hz]),
            "ctf_censored": np.concatenate([base_cens, end_cens]),
        }
    )
    derived = {
        "emg": emg_visits({"subjects": subjects, "emg": emg}, {"ctf_protocol": CTF_PROTOCOL})
    }
    return ctf.ctf_frame(derived), {"log_ratio": math.log(CTF_RATIO)}


def ctf_targets(idata: xr.DataTree, truth: Mapping) -> list[Estimate]:
    """Return the active arm's log ratio of median CTF."""
    draws = draws_of(idata["posterior"], "log_ratio", arm="active")
    return [Estimate("log_ratio[active]", truth["log_ratio"], draws)]


CTF_HEAVY_CENSORING = CalibrationCase(
    name="ctf_heavy_censoring",
    model="ctf",
    description=(
        "Interval-censored log-normal CTF; 2 arms x 60, protocol 4-20 Hz in 4 Hz steps (~48 % "
        "of end CTFs right-censored), baseline-adjusted with censored baselines; target the "
        "log ratio of median CTF, true ratio 1.4."
    ),
    # the censored likelihood itself lives in numerics (censored_logprob_pt)
    modules=(ctf, numerics, derive_datasets, MODEL_COMMON, _SELF),
    start=lambda cores: endpoint_runner(ctf.CTFModel(), cores, simulate_ctf, ctf_targets),
)


# --------------------------------------------------------------------------------------------
# afterdischarge: cumulative logit of the end-of-treatment grade
# --------------------------------------------------------------------------------------------
#: statsmodels sign: negative beta = lower grades = benefit (odds ratio exp(-beta) > 1).
AD_BETA = {"mexiletine": -0.9, "quinine": -0.4, "vitamin_b_complex": 0.0, "magnesium": 0.3}
AD_CUTPOINTS = np.array([-0.6, 0.5, 1.6, 2.8])
AD_B = 0.6
AD_BASELINE_PROBS = (0.35, 0.25, 0.2, 0.12, 0.08)
AD_N_PER_ARM = 40


def simulate_afterdischarge(rng: np.random.Generator) -> tuple[pd.DataFrame, dict[str, float]]:
    """End grades with ``P(y <= j) = expit(c_j - beta[arm] - b (x - mean x))``.

    Baseline grades 0-4 are drawn with :data:`AD_BASELINE_PROBS`; returns the frame and the
    true ``beta`` per active arm.
    """
    arm = np.repeat(ARMS, AD_N_PER_ARM)
    base = rng.choice(5, size=arm.size, p=AD_BASELINE_PROBS).astype(float)
    shift = np.array([AD_BETA.get(a, 0.0) for a in arm])
    eta = shift + AD_B * (base - base.mean())
    cdf = special.expit(AD_CUTPOINTS[None, :] - eta[:, None])
    grade = (rng.random(arm.size)[:, None] > cdf).sum(axis=1)
    frame = pd.DataFrame(
        {
            "trial_id": "sim",
            "subject_id": [f"s{i:04d}" for i in range(arm.size)],
            "arm": arm,
            "afterdischarge_grade": pd.array(grade, dtype="Int64"),
            "afterdischarge_baseline": pd.array(base, dtype="Float64"),
        }
    )
    return frame, AD_BETA


def afterdischarge_targets(idata: xr.DataTree, truth: Mapping) -> list[Estimate]:
    """``beta`` of every active arm (minus the log odds ratio of a lower grade)."""
    post = idata["posterior"]
    return [Estimate(f"beta[{a}]", truth[a], draws_of(post, "beta", arm=a)) for a in ARMS[1:]]


AFTERDISCHARGE = CalibrationCase(
    name="afterdischarge",
    model="afterdischarge",
    description=(
        "Cumulative-logit after-discharge grade (0-4), baseline grade adjusted; 5 arms x 40; "
        "targets beta (log odds ratio of a higher grade) -0.9, -0.4, 0 and 0.3 vs placebo."
    ),
    modules=(afterdischarge, MODEL_COMMON, _SELF),
    start=lambda cores: endpoint_runner(
        afterdischarge.AfterdischargeModel({"arms": list(ARMS)}),
        cores,
        simulate_afterdischarge,
        afterdischarge_targets,
    ),
)


# --------------------------------------------------------------------------------------------
# intensity: beta regression of the subject's mean intensity
# --------------------------------------------------------------------------------------------
INT_ALPHA = float(special.logit(0.55))
INT_BETA = {"mexiletine": -0.3, "quinine": -0.15, "vitamin_b_complex": 0.0, "magnesium": 0.1}
INT_B = 0.9
INT_PHI = 80.0
#: Precision slope on the centred log days rated; days vary from 8 to 40.
INT_G = 0.6
INT_DAYS = (8, 40)
INT_N_PER_ARM = 30


def simulate_intensity(rng: np.random.Generator) -> tuple[pd.DataFrame, dict[str, float]]:
    """Subject means from the ``intensity`` model's beta regression.

    Run-in means lie around 5.5 (logit SD 0.6); the squeezed treatment-period mean is
    ``Beta(mu phi_i, (1 - mu) phi_i)`` with ``logit mu = alpha + beta[arm] + b x`` (``x`` the
    centred logit of the squeezed run-in mean, as the model computes it) and ``log phi_i = log
    phi + g d_i`` (``d_i`` the centred log days rated). Returns the frame and the true
    standardised difference of every active arm: the expected mean intensity (0-10) under the
    arm minus under placebo, averaged over these subjects, as
    :func:`~crampstats.models.intensity.standardised_difference` defines it.
    """
    arm = np.repeat(ARMS, INT_N_PER_ARM)
    n = arm.size
    runin = 10.0 * special.expit(INT_ALPHA + 0.6 * rng.standard_normal(n))
    x = special.logit(intensity.squeeze(runin / 10.0, n))
    x = x - x.mean()
    days = rng.integers(INT_DAYS[0], INT_DAYS[1] + 1, size=n)
    log_days = np.log(days) - np.log(days).mean()
    shift = np.array([INT_BETA.get(a, 0.0) for a in arm])
    mu = special.expit(INT_ALPHA + shift + INT_B * x)
    phi = INT_PHI * np.exp(INT_G * log_days)
    y = rng.beta(mu * phi, (1 - mu) * phi)
    # the squeeze undone (the model squeezes back to y); a mean outside 0-10 needs y within
    # 0.5 / n of 0 or 1, probability below 1e-12 at these parameters
    mean = np.clip(10.0 * (n * y - 0.5) / (n - 1), 0.0, 10.0)
    frame = pd.DataFrame(
        {
            "trial_id": "sim",
            "subject_id": [f"s{i:04d}" for i in range(n)],
            "arm": arm,
            "intensity_mean": mean,
            "n_rated_days": days,
            "runin_intensity_mean": runin,
            "runin_rated_days": 8,
        }
    )
    truth = {
        a: float(intensity.standardised_difference(INT_ALPHA, beta, INT_B, x, n))
        for a, beta in INT_BETA.items()
    }
    return frame, truth


def intensity_targets(idata: xr.DataTree, truth: Mapping) -> list[Estimate]:
    """Standardised difference in mean intensity of every active arm (the reported measure)."""
    post = idata["posterior"]
    n = json.loads(post.attrs[f"{ATTR_PREFIX}constants"])["n_squeeze"]
    x = idata["constant_data"]["x_baseline"].values
    alpha, b = draws_of(post, "alpha"), draws_of(post, "b")
    return [
        Estimate(
            f"difference[{a}]",
            truth[a],
            intensity.standardised_difference(alpha, draws_of(post, "beta", arm=a), b, x, n),
        )
        for a in ARMS[1:]
    ]


INTENSITY = CalibrationCase(
    name="intensity",
    model="intensity",
    description=(
        "Beta regression of the mean 0-10 intensity, run-in adjusted, precision by days rated "
        "(8-40); 5 arms x 30; targets the standardised differences in mean intensity (about "
        "-0.7, -0.4, 0 and +0.2 points) vs placebo."
    ),
    modules=(intensity, MODEL_COMMON, _SELF),
    start=lambda cores: endpoint_runner(
        intensity.IntensityModel({"arms": list(ARMS)}), cores, simulate_intensity, intensity_targets
    ),
)


# --------------------------------------------------------------------------------------------
# responder: logistic model of response by arm
# --------------------------------------------------------------------------------------------
#: True response probabilities: magnesium as placebo (null arm), the others better.
RESP_P = {
    "placebo": 0.2,
    "mexiletine": 0.6,
    "quinine": 0.35,
    "vitamin_b_complex": 0.28,
    "magnesium": 0.2,
}
RESP_N_PER_ARM = 40
#: Slope of the log odds of response on the standardised run-in log rate (adjusted case).
RESP_B = 1.2


def simulate_responder(
    rng: np.random.Generator, b: float = 0.0
) -> tuple[pd.DataFrame, dict[str, float]]:
    """Responder status per patient: ``logit p_i = logit RESP_P[arm_i] + b z_i``.

    ``z_i`` is the run-in log rate (log 0.9 + 0.5 N(0, 1)) standardised over the sample, as the
    adjusted model standardises it. Returns the frame and, per arm, the true standardised
    probability of response: ``p_i`` under the arm averaged over all patients, what
    :func:`~crampstats.models.responder.response_probabilities` estimates (``RESP_P`` itself
    when ``b = 0``, the unadjusted model's case).
    """
    arm = np.repeat(ARMS, RESP_N_PER_ARM)
    log_rate = math.log(0.9) + 0.5 * rng.standard_normal(arm.size)
    z = (log_rate - log_rate.mean()) / log_rate.std()
    logit = {a: float(special.logit(p)) for a, p in RESP_P.items()}
    p = special.expit(np.array([logit[a] for a in arm]) + b * z)
    frame = pd.DataFrame(
        {
            "subject_id": [f"s{i:05d}" for i in range(arm.size)],
            "arm": arm,
            "log_baseline_rate": log_rate,
            "responder": (rng.random(arm.size) < p).astype(np.int64),
        }
    )
    return frame, {a: float(special.expit(logit[a] + b * z).mean()) for a in ARMS}


def risk_estimates(
    label: str, p: np.ndarray, p0: np.ndarray, true_p: float, true_p0: float
) -> list[Estimate]:
    """Risk difference and log risk ratio of ``p`` against ``p0`` (draws) with their truths."""
    return [
        Estimate(f"risk_difference[{label}]", true_p - true_p0, p - p0),
        Estimate(f"log_risk_ratio[{label}]", math.log(true_p / true_p0), np.log(p / p0)),
    ]


def responder_targets(idata: xr.DataTree, truth: Mapping) -> list[Estimate]:
    """Risk difference and log risk ratio of response, every active arm against placebo."""
    probs = responder.response_probabilities(idata)
    p0 = np.ravel(probs.sel(arm="placebo").values)
    out: list[Estimate] = []
    for a in ARMS[1:]:
        p = np.ravel(probs.sel(arm=a).values)
        out += risk_estimates(a, p, p0, truth[a], truth["placebo"])
    return out


RESPONDER = CalibrationCase(
    name="responder",
    model="responder",
    description=(
        "Logistic responder model (unadjusted, the default); 5 arms x 40, response 20 % on "
        "placebo and 60, 35, 28 and 20 % on the active arms; targets risk differences and log "
        "risk ratios vs placebo."
    ),
    modules=(responder, MODEL_COMMON, _SELF),
    start=lambda cores: endpoint_runner(
        responder.ResponderModel({"arms": list(ARMS)}), cores, simulate_responder, responder_targets
    ),
)

RESPONDER_ADJUSTED = CalibrationCase(
    name="responder_adjusted",
    model="responder",
    description=(
        "Logistic responder model adjusted for the standardised run-in log rate (slope 1.2); "
        "5 arms x 40, response 20 % on placebo and 60, 35, 28 and 20 % on the active arms at "
        "the mean run-in; targets standardised risk differences and log risk ratios vs placebo."
    ),
    modules=(responder, MODEL_COMMON, _SELF),
    start=lambda cores: endpoint_runner(
        responder.ResponderModel({"arms": list(ARMS), "adjust_baseline": True}),
        cores,
        lambda rng: simulate_responder(rng, RESP_B),
        responder_targets,
    ),
)


# --------------------------------------------------------------------------------------------
# safety: hierarchical binomial adverse-event incidence, truths from the prior
# --------------------------------------------------------------------------------------------
SAFETY_ARMS = ("placebo", "a", "b")
SAFETY_CATEGORIES = ("c1", "c2", "c3", "c4")
SAFETY_N_PER_ARM = 60


def simulate_safety(
    rng: np.random.Generator, config: Mapping[str, float]
) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """Incidence drawn from the ``safety`` model's priors, then every patient's events.

    ``mu_c``, ``d_a``, ``sigma_a`` and ``z[a, c]`` from the priors in ``config`` (the model's
    config), ``p = expit(mu_c + delta[a, c])`` (``delta`` 0 for placebo); every patient has an
    event of each category independently. Returns the frame (one row per patient and category)
    and ``p`` (arms x categories, placebo first).
    """
    n_arm, n_cat = len(SAFETY_ARMS), len(SAFETY_CATEGORIES)
    mu = rng.normal(config["prior_mu_mu"], config["prior_mu_sd"], n_cat)
    d = rng.normal(0.0, config["prior_d_sd"], n_arm - 1)
    sigma = np.abs(rng.normal(0.0, config["prior_sigma_sd"], n_arm - 1))
    delta = d[:, None] + sigma[:, None] * rng.standard_normal((n_arm - 1, n_cat))
    p = special.expit(mu[None, :] + np.vstack([np.zeros(n_cat), delta]))
    events = rng.random((n_arm, SAFETY_N_PER_ARM, n_cat)) < p[:, None, :]
    frame = pd.DataFrame(
        {
            "subject_id": np.repeat([f"s{i:04d}" for i in range(n_arm * SAFETY_N_PER_ARM)], n_cat),
            "arm": np.repeat(SAFETY_ARMS, SAFETY_N_PER_ARM * n_cat),
            "category": np.tile(SAFETY_CATEGORIES, n_arm * SAFETY_N_PER_ARM),
            "any_event": events.reshape(-1).astype(np.int64),
        }
    )
    return frame, {"p": p}


def safety_targets(idata: xr.DataTree, truth: Mapping) -> list[Estimate]:
    """Risk difference and log risk ratio of every active arm and category against placebo."""
    probs = safety.incidence_probabilities(idata)
    p = truth["p"]
    out: list[Estimate] = []
    for i, a in enumerate(SAFETY_ARMS[1:], start=1):
        for j, c in enumerate(SAFETY_CATEGORIES):
            p0_draws = np.ravel(probs.sel(arm="placebo", category=c).values)
            p_draws = np.ravel(probs.sel(arm=a, category=c).values)
            out += risk_estimates(f"{a}:{c}", p_draws, p0_draws, p[i, j], p[0, j])
    return out


def _safety_start(cores: int) -> ReplicateRunner:
    model = safety.SafetyModel({"arms": list(SAFETY_ARMS), "categories": list(SAFETY_CATEGORIES)})
    config = model.model_config
    return endpoint_runner(model, cores, lambda rng: simulate_safety(rng, config), safety_targets)


SAFETY_PRIOR = CalibrationCase(
    name="safety_prior",
    model="safety",
    description=(
        "Hierarchical binomial adverse-event incidence; 3 arms x 60, 4 categories, incidences "
        "drawn from the model's priors each replicate; targets risk differences and log risk "
        "ratios per arm and category vs placebo."
    ),
    modules=(safety, MODEL_COMMON, _SELF),
    start=_safety_start,
)
