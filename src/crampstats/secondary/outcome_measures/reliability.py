"""Test-retest reliability of cramp frequency and CTF: ICC, SEM, MDC (Bayesian and ML).

Test-retest reliability of weekly cramp frequency
-------------------------------------------------
The run-in weeks (period ``run-in``, ``week <= 0``) are repeated measurements taken before any
treatment: with the usual two-week run-in they are the two halves of the run-in; with a longer
run-in every week is a replicate. A week enters when at least ``min_exposure_days`` (default 4
of 7) of its days were diarised: a week with fewer days says little about the rate and its
7-day scaling is noisy. A subject enters with at least two such weeks. The model (class
:class:`RunInReliability`), subject ``i``, run-in week ``j``::

    y_ij ~ NegBin(mu_ij, k)                     (NB2: variance mu + mu^2 / k)
    log mu_ij = log exposure_days_ij + alpha + u_i,     u_i ~ Normal(0, sigma)

a negative binomial GLMM with log-normal subject effects and an intercept only, so that a
systematic change between the run-in weeks counts as measurement error (absolute agreement,
McGraw & Wong 1996, Psychol Methods 1:30). It is fitted with PyMC through the engine; the
frequentist twin :func:`frequency_reliability_ml` maximises the same marginal likelihood
(subject effect integrated out by adaptive Gauss-Hermite quadrature; scipy.optimize, because
statsmodels has no negative-binomial GLMM).

Why a count GLMM rather than the ANOVA ICC of weekly rates: a week's count of a few cramps
carries Poisson-type noise whose size depends on the subject's own rate, so the ANOVA ICC mixes
the between-subject spread of the underlying rate with the sampling noise of the counts; the
count model separates the two (latent-scale ICC, Nakagawa, Johnson & Schielzeth 2017) and
still gives the observed-scale ICC. Why Bayesian: the ICC is a non-linear function of
``alpha``, ``sigma`` and ``k``, and two weeks per subject identify the within-subject ``k``
only weakly (on the trial simulator's data the twin's MLE of ``k`` runs to the Poisson
boundary); the posterior carries that uncertainty into the ICC without a delta method and
without a boundary problem. Both give the same answer where ``k`` is well identified (tested:
within half a posterior SD on 150 simulated subjects).

Formulas, with ``lambda = 7 exp(alpha + sigma^2 / 2)`` the mean cramps in a 7-day week
(Nakagawa, Johnson & Schielzeth 2017, J R Soc Interface 14:20170213, section on Poisson and
negative binomial GLMMs, lognormal approximation):

- latent (log) scale ICC: ``icc = sigma^2 / (sigma^2 + s2_d)`` with the distribution-specific
  variance ``s2_d = log(1 + 1/lambda + 1/k)`` (Poisson: ``k -> inf``);
- observed scale (cramps per week), the correlation of two weekly counts of one subject::

      V_between = lambda^2 (exp(sigma^2) - 1)
      V_within  = lambda + lambda^2 exp(sigma^2) / k
      icc_observed = V_between / (V_between + V_within)

  (law of total variance for the NB-lognormal mixture);
- standard error of measurement ``sem = SD_total sqrt(1 - icc_observed)`` in cramps per week,
  ``SD_total = sqrt(V_between + V_within)`` (Weir 2005, J Strength Cond Res 19:231; de Vet et
  al. 2006, J Clin Epidemiol 59:1033); it equals ``sqrt(V_within)``, the root-mean-square
  within-subject SD of one week's count;
- minimal detectable change ``mdc95 = 1.96 sqrt(2) sem`` (the smallest change between two
  weeks that exceeds measurement error with 95 % confidence; Weir 2005); always the 95 % MDC,
  whatever the interval level of the table.

All of them refer to one full 7-day week of diary. Every quantity is computed per posterior
draw; the table reports the posterior median and the equal-tailed interval. Selection matters:
subjects were enrolled because their run-in count passed a threshold, so the ICC describes the
enrolled population (between-subject variance truncated from below, which lowers it) rather
than all patients with cramps.

Priors (:class:`RunInReliability`, docs/calibration.md rows)
-------------------------------------------------------
- ``alpha ~ Normal(log 0.9, 1)``: "baseline rate, NLC" row (0.6-1.2 cramps a day; 0.9 in the
  example), as ``nb_totals``.
- ``sigma ~ HalfNormal(1)``: "overdispersion" row, k = 3 corresponds to a log-scale SD of
  ``sqrt(trigamma(3)) = 0.63``; median 0.67, as ``nb_glmm``.
- ``k ~ LogNormal(log 10, 1)``: week-to-week overdispersion within a subject is not published
  (docs/calibration.md gaps); centred above the between-subject k = 3, as ``nb_glmm``.

Subject effects are non-centred (``u_i = sigma z_i``): two weeks per subject are thin data.

Reliability of the cramp threshold frequency (CTF)
--------------------------------------------------
Two baseline measurements (visits ``baseline_1`` and ``baseline_2``) per subject. A CTF recorded
at protocol step ``s`` means the threshold lies in ``(s - step, s]`` (``(0, s]`` at the first
step) and a right-censored one in ``(max, inf)``; ``crampstats.derive.emg_visits`` gives these
bounds (``ctf_lower``, ``ctf_upper``). The model (class :class:`CTFReliability`) is an
interval-censored normal random-intercept model on the log scale::

    log CTF*_ij ~ Normal(m + b_i, s_e),   b_i ~ Normal(0, s_b),
    observed: log CTF*_ij in (log lower_ij, log upper_ij]

so both the protocol steps (2 Hz by default) and right-censoring at the maximum enter the
likelihood exactly (no pair is dropped for censoring). ``icc = s_b^2 / (s_b^2 + s_e^2)`` on the
log scale, ``icc_observed = (exp(s_b^2) - 1) / (exp(s_b^2 + s_e^2) - 1)`` on the Hz scale
(lognormal moments), ``sem = SD_total sqrt(1 - icc) = s_e`` in log Hz, ``mdc95 = 1.96 sqrt(2)
s_e`` in log Hz; ``sem_ratio = exp(sem)`` and ``mdc95_ratio = exp(mdc95)`` express them as a
factor on the CTF (a change by more than ``mdc95_ratio``-fold is detectable). Priors: ``m ~
Normal(log 16, 0.5)`` ("CTF, cramp-prone" row: median 16 Hz), ``s_b, s_e ~ HalfNormal(0.5)``
(the row's SD 4.5 Hz on 16 Hz is a total log-scale SD of 0.28). Twin:
:func:`ctf_reliability_ml`.

Bayesian fits: :mod:`~crampstats.secondary.outcome_measures.models`; the CTF's marginal
likelihood: :mod:`~crampstats.secondary.outcome_measures.likelihood`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr
from scipy import optimize, special, stats
from statsmodels.tools.numdiff import approx_fprime, approx_hess3

from crampstats.engine import PreparedData, diagnose
from crampstats.models.nb_glmm import marginal_log_likelihood
from crampstats.secondary.outcome_measures.likelihood import ctf_marginal_loglik, midpoints
from crampstats.secondary.outcome_measures.models import CTFReliability, RunInReliability
from crampstats.secondary.outcome_measures.names import (
    BASELINE_VISITS,
    CTF,
    FREQUENCY,
    RELIABILITY_UNITS,
    WEEK_DAYS,
    Z_MDC,
)

__all__ = [
    "ReliabilityResult",
    "count_reliability",
    "ctf_reliability",
    "ctf_reliability_ml",
    "frequency_reliability",
    "frequency_reliability_ml",
    "lognormal_reliability",
]


# --------------------------------------------------------------------------------------------
# Derived reliability quantities (NumPy; per draw or at a point estimate)
# --------------------------------------------------------------------------------------------
def count_reliability(
    alpha: Any, sigma: Any, k: Any, unit_days: float = WEEK_DAYS
) -> dict[str, np.ndarray]:
    """Reliability of a count per ``unit_days`` from an NB-lognormal random-intercept model.

    Parameters
    ----------
    alpha
        Log daily rate of the median subject (the model's intercept).
    sigma
        SD of the log-normal subject effect.
    k
        NB size of the within-subject distribution (``numpy.inf`` for Poisson).
    unit_days
        Length of the measurement (7: cramps per week).

    Returns
    -------
    dict
        Arrays ``lambda`` (mean count per unit), ``icc`` (latent scale, Nakagawa et al. 2017),
        ``icc_observed``, ``sd_total``, ``sem``, ``mdc95`` (count scale); formulas in the module
        docstring. Inputs broadcast.
    """
    alpha, sigma, k = (np.asarray(v, dtype=float) for v in (alpha, sigma, k))
    s2 = sigma**2
    lam = unit_days * np.exp(alpha + s2 / 2.0)
    s2_d = np.log1p(1.0 / lam + 1.0 / k)
    v_between = lam**2 * np.expm1(s2)
    v_within = lam + lam**2 * np.exp(s2) / k
    sd_total = np.sqrt(v_between + v_within)
    icc_observed = v_between / (v_between + v_within)
    sem = sd_total * np.sqrt(1.0 - icc_observed)
    return {
        "lambda": lam,
        "icc": s2 / (s2 + s2_d),
        "icc_observed": icc_observed,
        "sd_total": sd_total,
        "sem": sem,
        "mdc95": Z_MDC * math.sqrt(2.0) * sem,
    }


def lognormal_reliability(s_b: Any, s_e: Any) -> dict[str, np.ndarray]:
    """Reliability of a log-normal measurement with between SD ``s_b`` and within SD ``s_e``.

    Returns
    -------
    dict
        ``icc`` (log scale), ``icc_observed`` (original scale), ``sd_total`` (log),
        ``sem`` and ``mdc95`` (log), ``sem_ratio`` and ``mdc95_ratio`` (their exponentials).
    """
    s_b, s_e = np.asarray(s_b, dtype=float), np.asarray(s_e, dtype=float)
    total = s_b**2 + s_e**2
    icc = s_b**2 / total
    sd_total = np.sqrt(total)
    sem = sd_total * np.sqrt(1.0 - icc)
    mdc95 = Z_MDC * math.sqrt(2.0) * sem
    return {
        "icc": icc,
        "icc_observed": np.expm1(s_b**2) / np.expm1(total),
        "sd_total": sd_total,
        "sem": sem,
        "mdc95": mdc95,
        "sem_ratio": np.exp(sem),
        "mdc95_ratio": np.exp(mdc95),
    }


# --------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------
@dataclass
class ReliabilityResult:
    """Test-retest reliability of one endpoint.

    Attributes
    ----------
    endpoint : str
        ``cramp_frequency`` or ``ctf``.
    method : str
        ``"bayes"`` (posterior median, equal-tailed interval) or ``"ml"`` (maximum likelihood
        estimate, interval from draws of the Wald approximation of the MLE).
    summary : pandas.DataFrame
        ``property, estimate, lower, upper, unit, n, note``, one row per property.
    draws : dict
        Per posterior (or Wald) draw: the model parameters and every property.
    n_subjects, n_measurements : int
        Subjects and measurements (weeks, CTFs) used.
    selection : str
        How the data were selected (weeks or pairs dropped and why).
    diagnostics : dict or None
        :func:`crampstats.engine.diagnose` of a Bayesian fit.
    idata : xarray.DataTree or None
        The Bayesian fit.
    """

    endpoint: str
    method: str
    summary: pd.DataFrame
    draws: dict[str, np.ndarray]
    n_subjects: int
    n_measurements: int
    selection: str
    diagnostics: dict[str, Any] | None = None
    idata: xr.DataTree | None = field(default=None, repr=False)


def _interval(values: np.ndarray, level: float) -> tuple[float, float]:
    tail = (1.0 - level) / 2.0
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return math.nan, math.nan
    lo, hi = np.quantile(finite, [tail, 1.0 - tail])
    return float(lo), float(hi)


def _summary(
    endpoint: str, draws: dict[str, np.ndarray], level: float, n: int, note: str
) -> pd.DataFrame:
    """Posterior median and equal-tailed interval of every reliability property."""
    rows = []
    for prop, unit in RELIABILITY_UNITS[endpoint].items():
        values = np.asarray(draws[prop], dtype=float).reshape(-1)
        lo, hi = _interval(values, level)
        rows.append(
            {
                "property": prop,
                "estimate": float(np.median(values)),
                "lower": lo,
                "upper": hi,
                "unit": unit,
                "n": n,
                "note": note,
            }
        )
    return pd.DataFrame(rows)


def _fit_note(diag: dict[str, Any], cfg: Mapping[str, Any]) -> str:
    text = f"PyMC/nutpie {cfg['chains']} chains x {cfg['draws']} draws"
    if diag["status"] != "ok":
        text += "; DIAGNOSTICS FAILED: " + "; ".join(diag["reasons"])
    return text


def _posterior_draws(idata: xr.DataTree, names: tuple[str, ...]) -> dict[str, np.ndarray]:
    post = idata["posterior"]
    return {name: post[name].values.reshape(-1) for name in names}


# --------------------------------------------------------------------------------------------
# Maximum likelihood twins
# --------------------------------------------------------------------------------------------
#: Scale on which each property's Wald interval is symmetric (forward, inverse): ICCs on the
#: logit scale, SDs on the log scale, ratios ``exp(x)`` on the log of their log.
_WALD_SCALES: dict[str, tuple[Any, Any]] = {
    "icc": (special.logit, special.expit),
    "icc_observed": (special.logit, special.expit),
    "sem": (np.log, np.exp),
    "mdc95": (np.log, np.exp),
    "sem_ratio": (lambda x: np.log(np.log(x)), lambda x: np.exp(np.exp(x))),
    "mdc95_ratio": (lambda x: np.log(np.log(x)), lambda x: np.exp(np.exp(x))),
}


def _ml_summary(
    endpoint: str,
    negloglik: Any,
    theta: np.ndarray,
    free: np.ndarray,
    properties: Any,
    level: float,
    n: int,
    note: str,
) -> tuple[pd.DataFrame, bool]:
    """Plug-in estimates and delta-method Wald intervals of the reliability properties.

    ``properties(theta)`` maps the working parameters to the property dict; the covariance is
    the inverse numerical Hessian of ``negloglik`` over the ``free`` parameters (those not on
    a boundary), and each property's interval is symmetric on its :data:`_WALD_SCALES` scale.
    """
    point = properties(theta)

    def on_free(values: np.ndarray) -> np.ndarray:
        full = theta.copy()
        full[free] = values
        return full

    hess = approx_hess3(theta[free], lambda v: negloglik(on_free(v)))
    try:
        cov = np.linalg.inv(hess)
        np.linalg.cholesky(cov)
        ok = True
    except np.linalg.LinAlgError:
        ok = False
    z = stats.norm.ppf(0.5 + level / 2.0)
    rows = []
    for prop, unit in RELIABILITY_UNITS[endpoint].items():
        forward, inverse = _WALD_SCALES[prop]
        estimate = float(point[prop])
        lo = hi = math.nan
        if ok and np.isfinite(forward(estimate)):
            grad = approx_fprime(
                theta[free],
                lambda v, p=prop, f=forward: f(properties(on_free(v))[p]),
                centered=True,
            )
            se = math.sqrt(max(float(grad @ cov @ grad), 0.0))
            centre = float(forward(estimate))
            lo, hi = float(inverse(centre - z * se)), float(inverse(centre + z * se))
        rows.append(
            {
                "property": prop,
                "estimate": estimate,
                "lower": lo,
                "upper": hi,
                "unit": unit,
                "n": n,
                "note": note,
            }
        )
    return pd.DataFrame(rows), ok


def frequency_reliability_ml(
    weekly: pd.DataFrame,
    *,
    min_exposure_days: int = 4,
    level: float = 0.95,
    n_nodes: int = 25,
) -> ReliabilityResult:
    """Frequentist twin of :class:`RunInReliability`: maximum likelihood, same rows and model.

    The marginal likelihood (``u`` integrated out by adaptive Gauss-Hermite quadrature,
    :func:`crampstats.models.nb_glmm.marginal_log_likelihood`) is maximised over
    ``(alpha, log sigma, log k)`` with L-BFGS-B (scipy: statsmodels has no NB GLMM).
    Estimates are the plug-in values at the MLE, intervals delta-method Wald intervals on the
    logit (ICCs) or log (SEM, MDC) scale from the inverse numerical Hessian. When ``k`` runs to
    its upper bound (no overdispersion beyond Poisson in the within-subject weeks) it is fixed
    at infinity, the Poisson-lognormal boundary, and left out of the covariance.

    Parameters
    ----------
    weekly
        Derived ``weekly`` rows.
    min_exposure_days, level
        As :func:`frequency_reliability`.
    n_nodes
        Quadrature nodes.

    Returns
    -------
    ReliabilityResult
        ``method = "ml"``, ``draws`` empty; ``summary.attrs`` hold ``alpha, sigma, k``,
        ``converged``, ``loglik``.
    """
    model = RunInReliability({"min_exposure_days": min_exposure_days})
    prepared = model.prepare(weekly)
    d = prepared.data
    y, log_e, idx = d["y"], d["log_exposure"], d["subject_idx"]
    n = prepared.n_subjects

    def negloglik(theta: np.ndarray) -> float:
        alpha, log_sigma, log_k = theta
        value = marginal_log_likelihood(
            (alpha + log_e)[None, :],
            y,
            idx,
            n,
            np.array([math.exp(log_k)]),
            np.array([math.exp(log_sigma)]),
            n_nodes=n_nodes,
        )
        return -float(value.sum())

    def properties(theta: np.ndarray) -> dict[str, np.ndarray]:
        k = math.inf if theta[2] >= _LOG_K_MAX else math.exp(theta[2])
        return count_reliability(theta[0], math.exp(theta[1]), k)

    rate = np.bincount(idx, weights=y) / np.bincount(idx, weights=np.exp(log_e))
    start = np.array([math.log(max(rate.mean(), 1e-3)), math.log(0.5), math.log(5.0)])
    fit = optimize.minimize(
        negloglik, start, method="L-BFGS-B", bounds=[(-10, 10), (-6, 2), (-4, _LOG_K_MAX)]
    )
    theta = fit.x
    boundary = theta[2] >= _LOG_K_MAX - 1e-3
    if boundary:
        theta[2] = _LOG_K_MAX
    free = np.array([True, True, not boundary])
    selection = _frequency_selection(prepared, min_exposure_days)
    note = "ML twin, delta-method Wald intervals" + (
        "; k at the Poisson boundary (fixed at infinity)" if boundary else ""
    )
    if not fit.success:
        note += f"; optimiser: {fit.message}"
    summary, ok = _ml_summary(
        FREQUENCY, negloglik, theta, free, properties, level, n, f"{note}; {selection}"
    )
    summary.attrs.update(
        alpha=float(theta[0]),
        sigma=math.exp(theta[1]),
        k=math.inf if boundary else math.exp(theta[2]),
        converged=bool(fit.success and ok),
        loglik=-float(fit.fun),
    )
    return ReliabilityResult(FREQUENCY, "ml", summary, {}, n, len(y), selection)


#: Upper bound of log k in the twin's optimisation (k = 8100: Poisson for weekly counts).
_LOG_K_MAX = 9.0


def ctf_reliability_ml(
    emg: pd.DataFrame, *, level: float = 0.95, n_nodes: int = 30
) -> ReliabilityResult:
    """Frequentist twin of :class:`CTFReliability`: interval-censored random-intercept ML.

    Maximises the marginal likelihood (:func:`ctf_marginal_loglik`) over
    ``(m, log s_b, log s_e)``; estimates and intervals as :func:`frequency_reliability_ml`.
    """
    model = CTFReliability()
    prepared = model.prepare(emg)
    d = prepared.data
    lower, upper, idx = d["log_lower"], d["log_upper"], d["subject_idx"]
    n = prepared.n_subjects

    def negloglik(theta: np.ndarray) -> float:
        m, log_sb, log_se = theta
        value = ctf_marginal_loglik(
            lower,
            upper,
            idx,
            n,
            np.array([m]),
            np.array([math.exp(log_sb)]),
            np.array([math.exp(log_se)]),
            n_nodes=n_nodes,
        )
        return -float(value.sum())

    def properties(theta: np.ndarray) -> dict[str, np.ndarray]:
        return lognormal_reliability(math.exp(theta[1]), math.exp(theta[2]))

    mid = midpoints(lower, upper)
    sd = max(float(np.std(mid)), 0.05)
    start = np.array([float(np.mean(mid)), math.log(sd / math.sqrt(2)), math.log(sd / 2)])
    fit = optimize.minimize(negloglik, start, method="L-BFGS-B", bounds=[(-5, 8), (-8, 2), (-8, 2)])
    theta = fit.x
    selection = _ctf_selection(prepared)
    note = "ML twin, delta-method Wald intervals"
    if not fit.success:
        note += f"; optimiser: {fit.message}"
    summary, ok = _ml_summary(
        CTF, negloglik, theta, np.ones(3, bool), properties, level, n, f"{note}; {selection}"
    )
    summary.attrs.update(
        m=float(theta[0]),
        s_b=math.exp(theta[1]),
        s_e=math.exp(theta[2]),
        converged=bool(fit.success and ok),
        loglik=-float(fit.fun),
    )
    return ReliabilityResult(CTF, "ml", summary, {}, n, len(idx), selection)


def _frequency_selection(prepared: PreparedData, min_exposure_days: int) -> str:
    c = prepared.constants
    text = (
        f"{int(c['weeks'])} run-in weeks of {int(c['subjects'])} subjects with >= "
        f"{min_exposure_days} diary days"
    )
    dropped = []
    if c["weeks_short"]:
        dropped.append(f"{int(c['weeks_short'])} week(s) with fewer days")
    if c["subjects_single"]:
        dropped.append(f"{int(c['subjects_single'])} subject(s) with one such week")
    return text + (f" (dropped {', '.join(dropped)})" if dropped else "")


def _ctf_selection(prepared: PreparedData) -> str:
    c = prepared.constants
    text = (
        f"{int(c['subjects'])} subjects with {' and '.join(BASELINE_VISITS)}; protocol steps "
        f"and {int(c['censored'])} right-censored value(s) as interval-censored likelihood"
    )
    if c["subjects_single"]:
        text += f" ({int(c['subjects_single'])} subject(s) with one baseline CTF dropped)"
    return text


# --------------------------------------------------------------------------------------------
# Public reliability functions
# --------------------------------------------------------------------------------------------
def frequency_reliability(
    weekly: pd.DataFrame,
    *,
    min_exposure_days: int = 4,
    level: float = 0.95,
    seed: int = 0,
    method: str = "bayes",
    sampler_config: Mapping[str, Any] | None = None,
    model_config: Mapping[str, Any] | None = None,
) -> ReliabilityResult:
    """Test-retest reliability of weekly cramp frequency from the run-in weeks.

    Parameters
    ----------
    weekly
        Derived ``weekly`` rows; the run-in weeks are used (:func:`runin_weeks`).
    min_exposure_days
        Weeks with fewer diarised days are dropped (default 4 of 7); every other week is
        scaled to 7 days through its exposure (offset ``log exposure_days``).
    level
        Interval level (the MDC itself is always the 95 % MDC).
    seed
        Sampler seed (``method="bayes"``; the ML twin is deterministic).
    method
        ``"bayes"`` (:class:`RunInReliability` through the engine) or ``"ml"``
        (:func:`frequency_reliability_ml`).
    sampler_config, model_config
        Overrides for the Bayesian model.

    Returns
    -------
    ReliabilityResult
        Rows ``icc`` (latent log scale, Nakagawa et al. 2017), ``icc_observed`` (cramps/week),
        ``sem`` and ``mdc95`` (cramps/week); formulas in the module docstring.

    Raises
    ------
    ModelDataError
        If fewer than two subjects have two usable run-in weeks.
    """
    if method == "ml":
        return frequency_reliability_ml(weekly, min_exposure_days=min_exposure_days, level=level)
    if method != "bayes":
        raise ValueError(f"method must be 'bayes' or 'ml', got {method!r}")
    config = {**(model_config or {}), "min_exposure_days": min_exposure_days}
    model = RunInReliability(config, sampler_config)
    prepared = model.prepare(weekly)
    idata = model.fit(prepared, seed=int(seed))
    params = _posterior_draws(idata, ("alpha", "sigma", "k"))
    draws = {**params, **count_reliability(params["alpha"], params["sigma"], params["k"])}
    diag = diagnose(idata)
    selection = _frequency_selection(prepared, min_exposure_days)
    note = (
        f"NB-lognormal GLMM, {_fit_note(diag, model.resolved_sampler_config())}; {selection}; "
        f"lambda {float(np.median(draws['lambda'])):.2g} cramps/week"
    )
    summary = _summary(FREQUENCY, draws, level, prepared.n_subjects, note)
    return ReliabilityResult(
        FREQUENCY,
        "bayes",
        summary,
        draws,
        prepared.n_subjects,
        len(prepared.data["y"]),
        selection,
        diag,
        idata,
    )


def ctf_reliability(
    emg: pd.DataFrame,
    *,
    level: float = 0.95,
    seed: int = 0,
    method: str = "bayes",
    sampler_config: Mapping[str, Any] | None = None,
    model_config: Mapping[str, Any] | None = None,
) -> ReliabilityResult:
    """Test-retest reliability of log CTF from the two baseline measurements.

    Parameters
    ----------
    emg
        Derived ``emg`` visits with ``ctf_lower``/``ctf_upper`` (protocol steps and
        right-censoring enter as intervals; module docstring).
    level, seed, method, sampler_config, model_config
        As :func:`frequency_reliability`; ``"ml"`` is :func:`ctf_reliability_ml`.

    Returns
    -------
    ReliabilityResult
        Rows ``icc`` (log scale), ``icc_observed`` (Hz scale), ``sem`` and ``mdc95`` (log Hz),
        ``sem_ratio`` and ``mdc95_ratio`` (as a factor on the CTF).

    Raises
    ------
    ModelDataError
        If fewer than two subjects have both baseline CTFs.
    """
    if method == "ml":
        return ctf_reliability_ml(emg, level=level)
    if method != "bayes":
        raise ValueError(f"method must be 'bayes' or 'ml', got {method!r}")
    model = CTFReliability(model_config, sampler_config)
    prepared = model.prepare(emg)
    idata = model.fit(prepared, seed=int(seed))
    params = _posterior_draws(idata, ("m", "s_b", "s_e"))
    draws = {**params, **lognormal_reliability(params["s_b"], params["s_e"])}
    diag = diagnose(idata)
    note = (
        f"interval-censored lognormal random intercept, "
        f"{_fit_note(diag, model.resolved_sampler_config())}; {_ctf_selection(prepared)}"
    )
    summary = _summary(CTF, draws, level, prepared.n_subjects, note)
    return ReliabilityResult(
        CTF,
        "bayes",
        summary,
        draws,
        prepared.n_subjects,
        len(prepared.data["subject_idx"]),
        _ctf_selection(prepared),
        diag,
        idata,
    )
