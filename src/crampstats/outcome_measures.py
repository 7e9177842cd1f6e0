"""Measurement properties of the cramp endpoints (issue 7): reliability, agreement, responsiveness.

No validated, reliable cramp outcome measure has been published (calibration.md, "Gaps"); this
module computes the properties from a trial's own data, written to
``tables/outcome_measures.csv`` by :func:`outcome_measures_table`.

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

Priors (:class:`RunInReliability`, calibration.md rows)
-------------------------------------------------------
- ``alpha ~ Normal(log 0.9, 1)``: "baseline rate, NLC" row (0.6-1.2 cramps a day; 0.9 in the
  example), as ``nb_totals``.
- ``sigma ~ HalfNormal(1)``: "overdispersion" row, k = 3 corresponds to a log-scale SD of
  ``sqrt(trigamma(3)) = 0.63``; median 0.67, as ``nb_glmm``.
- ``k ~ LogNormal(log 10, 1)``: week-to-week overdispersion within a subject is not published
  (calibration.md gaps); centred above the between-subject k = 3, as ``nb_glmm``.

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

Agreement, responsiveness, sample size
--------------------------------------
:func:`agreement`: Spearman correlation between the run-in cramp rate and the baseline CTF, and
between their changes (treatment minus run-in cramps per week; log end minus log baseline
CTF); the interval is Fisher's z with the Bonett & Wright (2000, Psychometrika 65:23) variance
``(1 + r^2 / 2) / (n - 3)``. :func:`responsiveness`: standardised response mean ``SRM = mean
change / SD of change`` (Husted et al. 2000, J Clin Epidemiol 53:459) per endpoint and arm with
the exact interval under normal changes (noncentral t). :func:`sample_size_per_arm`: patients
per arm each endpoint would need for the same power to detect the effect it showed; it
compares measures at one common design, it is not a trial plan.

Reliability needs only the run-in and the baseline EMG, so it is computed in any design; the
arm comparisons (changes, SRM by arm, sample size) need a parallel design. Whatever the data
cannot support becomes a table row with a NaN estimate and the reason in ``note``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import pandas as pd
import xarray as xr
from scipy import optimize, special, stats

from crampstats.engine import BayesModel, PreparedData, diagnose
from crampstats.models._common import (
    ModelDataError,
    as_float,
    require_columns,
    subject_keys,
)

if TYPE_CHECKING:
    import pymc as pm

__all__ = [
    "TABLE_COLUMNS",
    "CTFReliability",
    "ReliabilityResult",
    "RunInReliability",
    "agreement",
    "count_reliability",
    "ctf_reliability",
    "ctf_reliability_ml",
    "frequency_reliability",
    "frequency_reliability_ml",
    "lognormal_reliability",
    "outcome_measures_table",
    "responsiveness",
    "runin_weeks",
    "sample_size_per_arm",
]

#: Columns of ``tables/outcome_measures.csv`` (before the integrator's ``trial_id``).
TABLE_COLUMNS = ["endpoint", "property", "estimate", "lower", "upper", "unit", "n", "note"]

#: z of the 95 % minimal detectable change (fixed by definition, whatever the table's level).
Z_MDC = 1.959963984540054
#: Days in the week to which weekly cramp frequency is scaled.
WEEK_DAYS = 7.0
#: Baseline EMG visits whose test-retest reliability is assessed.
BASELINE_VISITS = ("baseline_1", "baseline_2")
#: Endpoint labels in the table.
FREQUENCY, CTF, AFTERDISCHARGE, INTENSITY = (
    "cramp_frequency",
    "ctf",
    "afterdischarge_grade",
    "intensity",
)
AGREEMENT = "cramp_frequency_vs_ctf"
RELIABILITY_UNITS = {
    FREQUENCY: {
        "icc": "proportion, log scale",
        "icc_observed": "proportion, cramps/week",
        "sem": "cramps/week",
        "mdc95": "cramps/week",
    },
    CTF: {
        "icc": "proportion, log scale",
        "icc_observed": "proportion, Hz",
        "sem": "log Hz",
        "mdc95": "log Hz",
        "sem_ratio": "ratio",
        "mdc95_ratio": "ratio",
    },
}
#: Per endpoint of the responsiveness analysis: unit of the change and which direction is better.
CHANGE_UNITS = {
    FREQUENCY: "cramps/week",
    CTF: "log Hz",
    AFTERDISCHARGE: "grade",
    INTENSITY: "0-10 rating",
}


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
# Data selection
# --------------------------------------------------------------------------------------------
def runin_weeks(
    weekly: pd.DataFrame, min_exposure_days: int = 4
) -> tuple[pd.DataFrame, dict[str, int]]:
    """Run-in weeks usable as repeated measurements of the weekly cramp rate.

    Parameters
    ----------
    weekly
        Derived ``weekly`` rows (``crampstats.derive.subject_weeks``).
    min_exposure_days
        A week enters when at least this many of its days were diarised.

    Returns
    -------
    rows : pandas.DataFrame
        ``subject, week, count, exposure_days, rate_per_week`` sorted by subject and week, for
        subjects with at least two usable weeks.
    info : dict
        ``weeks_runin`` (run-in subject-weeks), ``weeks_short`` (dropped for exposure),
        ``subjects_runin``, ``subjects_single`` (dropped: fewer than two usable weeks),
        ``subjects`` and ``weeks`` kept.

    Raises
    ------
    ModelDataError
        If fewer than two subjects have two usable run-in weeks.
    """
    require_columns(weekly, ["subject_id", "period", "week", "count", "exposure_days"], "weekly")
    runin = weekly.loc[
        (weekly["period"].astype(str) == "run-in") & (weekly["week"].astype("int64") <= 0)
    ]
    frame = pd.DataFrame(
        {
            "subject": subject_keys(runin).to_numpy(),
            "week": runin["week"].astype("int64").to_numpy(),
            "count": as_float(runin["count"]),
            "exposure_days": as_float(runin["exposure_days"]),
        }
    )
    enough = frame["exposure_days"] >= min_exposure_days
    usable = frame.loc[enough]
    n_weeks = usable.groupby("subject")["week"].transform("size")
    kept = usable.loc[n_weeks >= 2].sort_values(["subject", "week"]).reset_index(drop=True)
    kept["count"] = kept["count"].astype(np.int64)
    kept["rate_per_week"] = WEEK_DAYS * kept["count"] / kept["exposure_days"]
    info = {
        "weeks_runin": len(frame),
        "weeks_short": int((~enough).sum()),
        "subjects_runin": int(frame["subject"].nunique()),
        "subjects_single": int(usable["subject"].nunique() - kept["subject"].nunique()),
        "subjects": int(kept["subject"].nunique()),
        "weeks": len(kept),
    }
    if info["subjects"] < 2:
        raise ModelDataError(
            f"test-retest reliability of cramp frequency needs two run-in weeks with >= "
            f"{min_exposure_days} diary days per subject; {info['subjects']} subject(s) of "
            f"{info['subjects_runin']} with run-in data have them"
        )
    return kept, info


def _bool(values: pd.Series) -> np.ndarray:
    return values.astype("boolean").fillna(False).to_numpy(dtype=bool)


def ctf_baseline_pairs(emg: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, int]]:
    """Baseline CTF measurements as log-scale intervals, subjects with both baseline visits.

    Parameters
    ----------
    emg
        Derived ``emg`` visits (``crampstats.derive.emg_visits``) with ``ctf_lower`` and
        ``ctf_upper``.

    Returns
    -------
    rows : pandas.DataFrame
        ``subject, visit, log_lower, log_upper, censored`` (``log_lower = -inf`` at the first
        protocol step, ``log_upper = inf`` when right-censored), two rows per subject.
    info : dict
        ``subjects``, ``censored`` (measurements right-censored), ``subjects_single`` (with
        only one baseline CTF, dropped).

    Raises
    ------
    ModelDataError
        If fewer than two subjects have two baseline CTF measurements.
    """
    require_columns(emg, ["subject_id", "visit", "ctf_lower", "ctf_upper"], "emg")
    base = emg.loc[emg["visit"].astype(str).isin(BASELINE_VISITS)]
    lower, upper = as_float(base["ctf_lower"]), as_float(base["ctf_upper"])
    ok = ~np.isnan(lower) & ~np.isnan(upper)
    base = base.loc[ok]
    with np.errstate(divide="ignore"):
        frame = pd.DataFrame(
            {
                "subject": subject_keys(base).to_numpy(),
                "visit": base["visit"].astype(str).to_numpy(),
                "log_lower": np.log(lower[ok]),
                "log_upper": np.log(upper[ok]),
            }
        )
    frame["censored"] = np.isinf(frame["log_upper"])
    n_visits = frame.groupby("subject")["visit"].transform("nunique")
    kept = frame.loc[n_visits == 2].sort_values(["subject", "visit"]).reset_index(drop=True)
    info = {
        "subjects": int(kept["subject"].nunique()),
        "censored": int(kept["censored"].sum()),
        "subjects_single": int(frame["subject"].nunique() - kept["subject"].nunique()),
    }
    if info["subjects"] < 2:
        raise ModelDataError(
            "test-retest reliability of the CTF needs two baseline measurements "
            f"({' and '.join(BASELINE_VISITS)}); {info['subjects']} subject(s) have both"
        )
    return kept, info


# --------------------------------------------------------------------------------------------
# Interval-censored normal log-probability (NumPy and PyTensor, same algebra)
# --------------------------------------------------------------------------------------------
def _log1mexp(x: np.ndarray) -> np.ndarray:
    """``log(1 - exp(x))`` for ``x <= 0`` (Maechler 2012)."""
    x = np.asarray(x, dtype=float)
    with np.errstate(divide="ignore"):
        return np.where(x > -math.log(2.0), np.log(-np.expm1(x)), np.log1p(-np.exp(x)))


def interval_logprob(z_lower: np.ndarray, z_upper: np.ndarray) -> np.ndarray:
    """``log(Phi(z_upper) - Phi(z_lower))`` without cancellation in either tail.

    When the interval's midpoint is above 0 the mirrored interval ``(-z_upper, -z_lower)`` is
    used (same probability, far from 1 where ``Phi`` loses digits).
    """
    flip = (z_lower + z_upper) > 0
    a = np.where(flip, -z_upper, z_lower)
    b = np.where(flip, -z_lower, z_upper)
    log_b = special.log_ndtr(b)
    return log_b + _log1mexp(special.log_ndtr(a) - log_b)


def _interval_logprob_pt(z_lower: Any, z_upper: Any) -> Any:
    """PyTensor version of :func:`interval_logprob`.

    The switch acts on the inputs, not on two computed results, so the gradient never passes
    through a branch that evaluated to an infinity.
    """
    import pytensor.tensor as pt
    from pymc.distributions.dist_math import normal_lcdf

    flip = pt.gt(z_lower + z_upper, 0.0)
    a = pt.switch(flip, -z_upper, z_lower)
    b = pt.switch(flip, -z_lower, z_upper)
    log_b = normal_lcdf(0.0, 1.0, b)
    return log_b + pt.log1mexp(normal_lcdf(0.0, 1.0, a) - log_b)


#: Bounds of the log CTF used instead of +-inf (e^-30 and e^30 Hz): z stays finite, the
#: probability mass beyond them is nil for any plausible parameter.
_LOG_HZ_BOUND = 30.0


def _finite_log_bounds(rows: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    lower = np.clip(rows["log_lower"].to_numpy(float), -_LOG_HZ_BOUND, _LOG_HZ_BOUND)
    upper = np.clip(rows["log_upper"].to_numpy(float), -_LOG_HZ_BOUND, _LOG_HZ_BOUND)
    return lower, upper


def _midpoints(log_lower: np.ndarray, log_upper: np.ndarray) -> np.ndarray:
    """Return a point inside each log-scale interval (midpoint; 0.1 inside a one-sided one)."""
    # bounds beyond e^-15 and e^15 Hz stand for 0 and infinity
    low_open = log_lower <= -_LOG_HZ_BOUND / 2
    high_open = log_upper >= _LOG_HZ_BOUND / 2
    return np.where(
        low_open, log_upper - 0.1, np.where(high_open, log_lower + 0.1, (log_lower + log_upper) / 2)
    )


#: Upper bound on the floats of one (draws x rows x nodes) block of the CTF quadrature.
_BLOCK_FLOATS = 2_000_000


def ctf_marginal_loglik(
    log_lower: np.ndarray,
    log_upper: np.ndarray,
    subject_idx: np.ndarray,
    n_subjects: int,
    m: Any,
    s_b: Any,
    s_e: Any,
    n_nodes: int = 30,
) -> np.ndarray:
    """Per-subject marginal log-likelihood of interval-censored log CTFs, ``b`` integrated out.

    Gauss-Hermite quadrature centred and scaled at the normal approximation of each subject's
    posterior of ``b`` (a point inside each interval as data, precision ``1/s_b^2 + n_i/s_e^2``),
    with the ratio ``Normal(b; 0, s_b) / Normal(b; c_i, t_i)`` in the integrand (adaptive
    quadrature, Liu & Pierce 1994, Biometrika 81:624).

    Parameters
    ----------
    log_lower, log_upper
        ``(R,)`` log bounds of each measurement (finite, within +-30), rows sorted by subject.
    subject_idx
        ``(R,)`` subject of each row, sorted, ``0 .. n_subjects - 1`` all present.
    n_subjects
        Number of subjects.
    m, s_b, s_e
        ``(S,)`` parameters per draw.
    n_nodes
        Quadrature nodes.

    Returns
    -------
    numpy.ndarray
        ``(S, n_subjects)``.
    """
    from crampstats.models.nb_glmm import _segment_starts

    m, s_b, s_e = (np.atleast_1d(np.asarray(v, dtype=float)) for v in (m, s_b, s_e))
    starts = _segment_starts(subject_idx, n_subjects)
    nodes, weights = np.polynomial.hermite.hermgauss(n_nodes)
    log_w = np.log(weights / math.sqrt(math.pi))
    mid = _midpoints(log_lower, log_upper)
    n_i = np.add.reduceat(np.ones_like(mid), starts)
    sum_i = np.add.reduceat(mid, starts)
    out = np.empty((m.size, n_subjects))
    block = max(1, _BLOCK_FLOATS // max(1, log_lower.size * n_nodes))
    for lo in range(0, m.size, block):
        sl = slice(lo, min(lo + block, m.size))
        mm, sb, se = m[sl, None], s_b[sl, None], s_e[sl, None]
        prec = 1.0 / sb**2 + n_i / se**2  # (s, n)
        t = 1.0 / np.sqrt(prec)
        c = (sum_i - n_i * mm) / se**2 / prec
        b = c[:, :, None] + math.sqrt(2.0) * t[:, :, None] * nodes  # (s, n, Q)
        mean = mm[:, :, None] + b[:, subject_idx, :]  # (s, R, Q)
        logp = interval_logprob(
            (log_lower[None, :, None] - mean) / se[:, :, None],
            (log_upper[None, :, None] - mean) / se[:, :, None],
        )
        per_subject = np.add.reduceat(logp, starts, axis=1)
        log_ratio = stats.norm.logpdf(b, 0.0, sb[:, :, None]) - stats.norm.logpdf(
            b, c[:, :, None], t[:, :, None]
        )
        out[sl] = special.logsumexp(per_subject + log_ratio + log_w, axis=2)
    return out


# --------------------------------------------------------------------------------------------
# Bayesian models
# --------------------------------------------------------------------------------------------
class _RandomInterceptModel(BayesModel):
    """Shared pieces of the two reliability models (subject dimension in the compiled model)."""

    default_sampler_config: ClassVar[dict[str, Any]] = {
        "chains": 4,
        "draws": 1000,
        "tune": 1000,
        "cores": None,
        "target_accept": 0.9,
    }

    def structure_key(self, prepared: PreparedData) -> str:
        """Compile-cache key: model id and the number of subjects (``z`` has one per subject)."""
        return f"{super().structure_key(prepared)}-n{prepared.n_subjects}"

    @staticmethod
    def _subject_index(rows: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        labels, idx = np.unique(rows["subject"].to_numpy(dtype=str), return_inverse=True)
        return labels, idx.astype(np.int64)

    def _per_subject(
        self, values: np.ndarray, idata: xr.DataTree, prepared: PreparedData
    ) -> xr.DataArray:
        post = idata["posterior"]
        return xr.DataArray(
            values.reshape(post.sizes["chain"], post.sizes["draw"], prepared.n_subjects),
            dims=("chain", "draw", "subject"),
            coords={
                "chain": post["chain"],
                "draw": post["draw"],
                "subject": prepared.subject_data["subject"],
            },
            name="y",
        )


class RunInReliability(_RandomInterceptModel):
    """Weekly run-in counts, NB2 with a log-normal subject effect (module docstring).

    Parameters
    ----------
    model_config
        Overrides of :attr:`default_model_config`: ``min_exposure_days`` (4), priors
        ``prior_alpha_mu``, ``prior_alpha_sd``, ``prior_sigma_sd``, ``prior_k_mu`` (of log k),
        ``prior_k_sd`` and ``quadrature_nodes`` of the marginal log-likelihood (25). The model
        has no arms: the run-in precedes randomisation.
    sampler_config
        Overrides of the sampler defaults (target_accept 0.9).
    """

    name: ClassVar[str] = "runin_reliability"
    default_model_config: ClassVar[dict[str, Any]] = {
        "min_exposure_days": 4,
        "prior_alpha_mu": float(np.log(0.9)),  # calibration.md: baseline rate, NLC
        "prior_alpha_sd": 1.0,
        "prior_sigma_sd": 1.0,  # calibration.md: k = 3 <=> log-scale SD 0.63
        "prior_k_mu": float(np.log(10.0)),  # within-subject: above the between-subject k = 3
        "prior_k_sd": 1.0,
        "quadrature_nodes": 25,
    }

    def prepare(self, data: pd.DataFrame) -> PreparedData:
        """Select the usable run-in weeks of a ``weekly`` frame (:func:`runin_weeks`)."""
        rows, info = runin_weeks(data, int(self.model_config["min_exposure_days"]))
        labels, idx = self._subject_index(rows)
        y = rows["count"].to_numpy(np.int64)
        exposure = rows["exposure_days"].to_numpy(float)
        subject_data = xr.Dataset(
            {
                "n_weeks": ("subject", np.bincount(idx, minlength=len(labels))),
                "count": ("subject", np.bincount(idx, weights=y, minlength=len(labels))),
                "exposure_days": (
                    "subject",
                    np.bincount(idx, weights=exposure, minlength=len(labels)),
                ),
            },
            coords={"subject": labels},
        )
        return PreparedData(
            data={"y": y, "log_exposure": np.log(exposure), "subject_idx": idx},
            coords={},
            constants={key: float(v) for key, v in info.items()},
            subject_data=subject_data,
            extra={"rate_per_week": rows["rate_per_week"].to_numpy(float)},
        )

    def _build(self, prepared: PreparedData) -> pm.Model:
        import pymc as pm
        import pytensor.tensor as pt

        cfg = self.model_config
        d = prepared.data
        with pm.Model(coords={"subject": list(range(prepared.n_subjects))}) as model:
            y = pm.Data("y", d["y"])
            log_exposure = pm.Data("log_exposure", d["log_exposure"])
            subject_idx = pm.Data("subject_idx", d["subject_idx"])
            alpha = pm.Normal("alpha", cfg["prior_alpha_mu"], cfg["prior_alpha_sd"])
            sigma = pm.HalfNormal("sigma", cfg["prior_sigma_sd"])
            k = pm.LogNormal("k", cfg["prior_k_mu"], cfg["prior_k_sd"])
            z = pm.Normal("z", 0.0, 1.0, dims="subject")
            eta = log_exposure + alpha + sigma * z[subject_idx]
            # NB2 log pmf written out (nb_totals); lgamma(y + 1) is constant and left out
            per_row = (
                pt.gammaln(y + k)
                - pt.gammaln(k)
                + k * pt.log(k)
                + y * eta
                - (k + y) * pt.logaddexp(pt.log(k), eta)
            )
            pm.Potential("nb_loglik", pt.sum(per_row))
        return model

    def pointwise_log_likelihood(self, idata: xr.DataTree, prepared: PreparedData) -> xr.DataArray:
        """Marginal log-likelihood of each subject's run-in weeks (``u`` integrated out)."""
        from crampstats.models.nb_glmm import marginal_log_likelihood

        post = idata["posterior"]
        alpha, sigma, k = (post[v].values.reshape(-1) for v in ("alpha", "sigma", "k"))
        d = prepared.data
        value = marginal_log_likelihood(
            alpha[:, None] + d["log_exposure"][None, :],
            d["y"],
            d["subject_idx"],
            prepared.n_subjects,
            k,
            sigma,
            n_nodes=int(self.model_config["quadrature_nodes"]),
        )
        return self._per_subject(value, idata, prepared)


class CTFReliability(_RandomInterceptModel):
    """Two baseline log CTFs per subject, interval-censored normal random intercept.

    Parameters
    ----------
    model_config
        Overrides of :attr:`default_model_config`: ``prior_m_mu``, ``prior_m_sd``,
        ``prior_sb_sd``, ``prior_se_sd`` (HalfNormal scales) and ``quadrature_nodes`` (30).
    sampler_config
        Overrides of the sampler defaults (target_accept 0.9).
    """

    name: ClassVar[str] = "ctf_reliability"
    default_model_config: ClassVar[dict[str, Any]] = {
        "prior_m_mu": float(np.log(16.0)),  # calibration.md: CTF cramp-prone, median 16 Hz
        "prior_m_sd": 0.5,
        "prior_sb_sd": 0.5,  # calibration.md: SD 4.5 Hz on 16 Hz, total log SD 0.28
        "prior_se_sd": 0.5,
        "quadrature_nodes": 30,
    }

    def prepare(self, data: pd.DataFrame) -> PreparedData:
        """Select the two baseline CTFs of each subject (:func:`ctf_baseline_pairs`)."""
        rows, info = ctf_baseline_pairs(data)
        labels, idx = self._subject_index(rows)
        lower, upper = _finite_log_bounds(rows)
        subject_data = xr.Dataset(
            {
                "n_censored": (
                    "subject",
                    np.bincount(idx, weights=rows["censored"].astype(float), minlength=len(labels)),
                )
            },
            coords={"subject": labels},
        )
        return PreparedData(
            data={"log_lower": lower, "log_upper": upper, "subject_idx": idx},
            coords={},
            constants={key: float(v) for key, v in info.items()},
            subject_data=subject_data,
        )

    def _build(self, prepared: PreparedData) -> pm.Model:
        import pymc as pm
        import pytensor.tensor as pt

        cfg = self.model_config
        d = prepared.data
        with pm.Model(coords={"subject": list(range(prepared.n_subjects))}) as model:
            log_lower = pm.Data("log_lower", d["log_lower"])
            log_upper = pm.Data("log_upper", d["log_upper"])
            subject_idx = pm.Data("subject_idx", d["subject_idx"])
            m = pm.Normal("m", cfg["prior_m_mu"], cfg["prior_m_sd"])
            s_b = pm.HalfNormal("s_b", cfg["prior_sb_sd"])
            s_e = pm.HalfNormal("s_e", cfg["prior_se_sd"])
            z = pm.Normal("z", 0.0, 1.0, dims="subject")
            mean = m + s_b * z[subject_idx]
            logp = _interval_logprob_pt((log_lower - mean) / s_e, (log_upper - mean) / s_e)
            pm.Potential("interval_loglik", pt.sum(logp))
        return model

    def pointwise_log_likelihood(self, idata: xr.DataTree, prepared: PreparedData) -> xr.DataArray:
        """Marginal log-likelihood of each subject's two baseline CTFs (``b`` integrated out)."""
        post = idata["posterior"]
        m, s_b, s_e = (post[v].values.reshape(-1) for v in ("m", "s_b", "s_e"))
        d = prepared.data
        value = ctf_marginal_loglik(
            d["log_lower"],
            d["log_upper"],
            d["subject_idx"],
            prepared.n_subjects,
            m,
            s_b,
            s_e,
            n_nodes=int(self.model_config["quadrature_nodes"]),
        )
        return self._per_subject(value, idata, prepared)


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
    from statsmodels.tools.numdiff import approx_fprime, approx_hess3

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
    from crampstats.models.nb_glmm import marginal_log_likelihood

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

    mid = _midpoints(lower, upper)
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


# --------------------------------------------------------------------------------------------
# Per-subject changes
# --------------------------------------------------------------------------------------------
def _is_parallel(periods: pd.DataFrame) -> bool:
    return bool(
        len(periods)
        and (periods["period"].astype(str) == "treatment").all()
        and periods["subject_id"].is_unique
    )


def _require_parallel(periods: pd.DataFrame, what: str) -> None:
    require_columns(
        periods,
        ["subject_id", "arm", "period", "count", "exposure_days", "runin_count", "runin_days"],
        "periods",
    )
    if not _is_parallel(periods):
        raise ModelDataError(f"{what} needs a parallel design (one treatment period per subject)")


def _frequency_changes(periods: pd.DataFrame) -> pd.DataFrame:
    """Run-in and treatment cramps per week per subject (both periods with diary days)."""
    _require_parallel(periods, "change in cramp frequency")
    exposure, runin_days = as_float(periods["exposure_days"]), as_float(periods["runin_days"])
    ok = (exposure > 0) & (runin_days > 0)
    p = periods.loc[ok]
    before = WEEK_DAYS * as_float(p["runin_count"]) / runin_days[ok]
    after = WEEK_DAYS * as_float(p["count"]) / exposure[ok]
    return pd.DataFrame(
        {
            "subject": subject_keys(p).to_numpy(),
            "arm": p["arm"].astype(str).to_numpy(),
            "baseline": before,
            "change": after - before,
        }
    )


def _emg_by_visit(emg: pd.DataFrame, column: str) -> pd.DataFrame:
    """``subject x visit`` table of one EMG column (float; NaN where not measured)."""
    require_columns(emg, ["subject_id", "visit", column], "emg")
    frame = pd.DataFrame(
        {
            "subject": subject_keys(emg).to_numpy(),
            "visit": emg["visit"].astype(str).to_numpy(),
            "value": as_float(emg[column]),
        }
    )
    return frame.pivot_table(index="subject", columns="visit", values="value", aggfunc="mean")


def _arms(periods: pd.DataFrame) -> pd.Series:
    return pd.Series(periods["arm"].astype(str).to_numpy(), index=subject_keys(periods).to_numpy())


def _ctf_changes(periods: pd.DataFrame, emg: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """Log CTF change (end minus mean of the baseline logs), uncensored subjects only.

    Returns the changes and how many subjects were dropped for a right-censored CTF (the
    change is then unknown in one direction).
    """
    _require_parallel(periods, "change in CTF")
    require_columns(emg, ["ctf_hz", "ctf_censored"], "emg")
    log_ctf = emg.assign(ctf_hz=np.log(as_float(emg["ctf_hz"])))
    values = _emg_by_visit(log_ctf, "ctf_hz")
    censored = _emg_by_visit(emg.assign(cens=_bool(emg["ctf_censored"]).astype(float)), "cens")
    base_cols = [c for c in values.columns if c.startswith("baseline")]
    if "end" not in values.columns or not base_cols:
        raise ModelDataError("change in CTF needs a baseline and an `end` EMG visit")
    baseline = values[base_cols].mean(axis=1, skipna=False)
    any_cens = censored[[*base_cols, "end"]].fillna(0.0).max(axis=1) > 0
    change = values["end"] - baseline
    measured = change.notna()
    keep = measured & ~any_cens
    out = pd.DataFrame({"baseline": baseline[keep], "change": change[keep]})
    out = out.join(_arms(periods).rename("arm"), how="inner")
    return out.rename_axis("subject").reset_index(), int((measured & any_cens).sum())


def _grade_changes(periods: pd.DataFrame, emg: pd.DataFrame) -> pd.DataFrame:
    """After-discharge grade at ``end`` minus the mean of the baseline grades."""
    _require_parallel(periods, "change in after-discharge grade")
    values = _emg_by_visit(emg, "afterdischarge_grade")
    base_cols = [c for c in values.columns if c.startswith("baseline")]
    if "end" not in values.columns or not base_cols:
        raise ModelDataError("change in after-discharge grade needs a baseline and an `end` visit")
    baseline = values[base_cols].mean(axis=1, skipna=False)
    change = (values["end"] - baseline).dropna()
    out = pd.DataFrame({"baseline": baseline[change.index], "change": change})
    out = out.join(_arms(periods).rename("arm"), how="inner")
    return out.rename_axis("subject").reset_index()


def _intensity_changes(periods: pd.DataFrame, diary: pd.DataFrame) -> pd.DataFrame:
    """Mean intensity of treatment-period records minus that of run-in records, per subject."""
    _require_parallel(periods, "change in intensity")
    require_columns(diary, ["subject_id", "period", "intensity"], "diary")
    frame = pd.DataFrame(
        {
            "subject": subject_keys(diary).to_numpy(),
            "period": diary["period"].astype(str).to_numpy(),
            "intensity": as_float(diary["intensity"]),
        }
    ).dropna(subset=["intensity"])
    means = frame.pivot_table(index="subject", columns="period", values="intensity")
    if "run-in" not in means.columns or "treatment" not in means.columns:
        raise ModelDataError("change in intensity needs ratings in the run-in and treatment")
    change = (means["treatment"] - means["run-in"]).dropna()
    out = pd.DataFrame({"baseline": means.loc[change.index, "run-in"], "change": change})
    out = out.join(_arms(periods).rename("arm"), how="inner")
    return out.rename_axis("subject").reset_index()


def _changes(
    periods: pd.DataFrame, emg: pd.DataFrame | None, diary: pd.DataFrame | None
) -> dict[str, pd.DataFrame | str]:
    """Per-endpoint change frames, or the reason (str) an endpoint has none."""
    out: dict[str, pd.DataFrame | str] = {}
    builders = {
        FREQUENCY: lambda: _frequency_changes(periods),
        CTF: lambda: _ctf_changes(periods, emg)[0] if emg is not None else "no EMG data",
        AFTERDISCHARGE: lambda: _grade_changes(periods, emg) if emg is not None else "no EMG data",
        INTENSITY: lambda: (
            _intensity_changes(periods, diary)
            if diary is not None and "intensity" in diary
            else "no intensity ratings in the diary"
        ),
    }
    for endpoint, build in builders.items():
        try:
            out[endpoint] = build()
        except ModelDataError as exc:
            out[endpoint] = str(exc)
    return out


# --------------------------------------------------------------------------------------------
# Agreement
# --------------------------------------------------------------------------------------------
def spearman_interval(x: np.ndarray, y: np.ndarray, level: float = 0.95) -> dict[str, float]:
    """Spearman's rho with a Fisher-z interval (Bonett & Wright 2000 variance).

    Returns
    -------
    dict
        ``estimate, lower, upper, n``; NaN when fewer than 4 pairs or a constant variable.
    """
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    n = int(x.size)
    if n < 4 or np.ptp(stats.rankdata(x)) == 0 or np.ptp(stats.rankdata(y)) == 0:
        return {"estimate": math.nan, "lower": math.nan, "upper": math.nan, "n": n}
    rho = float(stats.spearmanr(x, y).statistic)
    se = math.sqrt((1.0 + rho**2 / 2.0) / (n - 3))
    z = stats.norm.ppf(0.5 + level / 2.0)
    zr = math.atanh(min(max(rho, -0.999999), 0.999999))
    return {
        "estimate": rho,
        "lower": math.tanh(zr - z * se),
        "upper": math.tanh(zr + z * se),
        "n": n,
    }


def agreement(periods: pd.DataFrame, emg: pd.DataFrame, level: float = 0.95) -> pd.DataFrame:
    """Agreement between diary cramp frequency and CTF (Spearman, pooled over arms).

    ``spearman_runin``: run-in cramps per week against the baseline CTF (geometric mean of the
    baseline visits; a right-censored baseline ranks above every observed one, which is what
    it is: above the protocol maximum). ``spearman_change``: change in cramps per week
    (treatment minus run-in) against the change in log CTF (end minus baseline), subjects with
    an uncensored CTF at every visit (a censored value leaves the change unknown). Changes are
    pooled over arms, so arms that move both measures move the correlation too: it answers
    "do the two measures change together", not "within an arm".

    Parameters
    ----------
    periods
        Derived ``periods`` (parallel design for the change).
    emg
        Derived ``emg`` visits.
    level
        Interval level (Fisher z, Bonett & Wright 2000).

    Returns
    -------
    pandas.DataFrame
        ``property, estimate, lower, upper, n, note`` (rows ``spearman_runin``,
        ``spearman_change``); a row that cannot be computed has NaN and says why.
    """
    rows = []
    require_columns(periods, ["subject_id", "runin_count", "runin_days"], "periods")
    first = periods.drop_duplicates("subject_id")
    days = as_float(first["runin_days"])
    with np.errstate(divide="ignore", invalid="ignore"):
        runin = pd.Series(
            np.where(days > 0, WEEK_DAYS * as_float(first["runin_count"]) / days, np.nan),
            index=subject_keys(first).to_numpy(),
        )
    note_runin = "run-in cramps/week vs baseline CTF"
    try:
        require_columns(emg, ["ctf_baseline_hz", "ctf_baseline_censored"], "emg")
        base = emg.drop_duplicates("subject_id")
        ctf = pd.Series(
            np.where(
                _bool(base["ctf_baseline_censored"]), np.inf, as_float(base["ctf_baseline_hz"])
            ),
            index=subject_keys(base).to_numpy(),
        )
        pair = pd.concat([runin.rename("x"), ctf.rename("y")], axis=1, join="inner").dropna()
        res = spearman_interval(pair["x"].to_numpy(), pair["y"].to_numpy(), level)
        n_cens = int(np.isinf(pair["y"]).sum())
        if n_cens:
            note_runin += f" ({n_cens} censored baseline(s) ranked highest)"
    except ModelDataError as exc:
        res, note_runin = (
            {"estimate": math.nan, "lower": math.nan, "upper": math.nan, "n": 0},
            (str(exc)),
        )
    rows.append({"property": "spearman_runin", **res, "note": note_runin})
    note_change = "change in cramps/week vs change in log CTF (end minus baseline)"
    try:
        freq = _frequency_changes(periods).set_index("subject")["change"]
        ctf_change, n_cens = _ctf_changes(periods, emg)
        pair = pd.concat(
            [freq.rename("x"), ctf_change.set_index("subject")["change"].rename("y")],
            axis=1,
            join="inner",
        ).dropna()
        res = spearman_interval(pair["x"].to_numpy(), pair["y"].to_numpy(), level)
        if n_cens:
            note_change += f"; {n_cens} subject(s) with a censored CTF excluded"
    except ModelDataError as exc:
        res = {"estimate": math.nan, "lower": math.nan, "upper": math.nan, "n": 0}
        note_change = str(exc)
    rows.append({"property": "spearman_change", **res, "note": note_change})
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------------
# Responsiveness
# --------------------------------------------------------------------------------------------
def srm_interval(change: np.ndarray, level: float = 0.95) -> dict[str, float]:
    """Standardised response mean and its exact interval under normal changes.

    ``SRM = mean / SD`` (SD with ``n - 1``). ``sqrt(n) * SRM`` is noncentral t with ``n - 1``
    degrees of freedom and noncentrality ``sqrt(n) * delta``; the interval inverts its cdf in
    ``delta`` (Steiger & Fouladi 1997; the one-sample case of Hedges & Olkin 1985).

    Returns
    -------
    dict
        ``estimate, lower, upper, n, mean, sd``.
    """
    change = np.asarray(change, dtype=float)
    change = change[np.isfinite(change)]
    n = int(change.size)
    nan = {
        "estimate": math.nan,
        "lower": math.nan,
        "upper": math.nan,
        "n": n,
        "mean": math.nan,
        "sd": math.nan,
    }
    if n < 3:
        return nan
    mean, sd = float(change.mean()), float(change.std(ddof=1))
    if sd == 0:
        return {**nan, "mean": mean, "sd": sd}
    srm = mean / sd
    # solved for |t| and mirrored (the noncentral t is symmetric under t, nc -> -t, -nc)
    t_obs = math.sqrt(n) * abs(srm)
    df = n - 1
    # the cdf at t_obs falls as the noncentrality rises; the roots lie about 2 large-sample SEs
    # (sqrt(1 + t^2 / (2 df))) from t_obs, and a bracket of 4 SEs keeps scipy's nct away from
    # the far tails, where it returns NaN
    half_width = 4.0 * math.sqrt(1.0 + t_obs**2 / (2.0 * df)) + 0.5

    def bound(p: float) -> float:
        return optimize.brentq(
            lambda nc: float(stats.nct.cdf(t_obs, df, nc)) - p,
            t_obs - half_width,
            t_obs + half_width,
        ) / math.sqrt(n)

    tail = (1.0 - level) / 2.0
    lo, hi = bound(1.0 - tail), bound(tail)
    if srm < 0:
        lo, hi = -hi, -lo
    return {"estimate": srm, "lower": lo, "upper": hi, "n": n, "mean": mean, "sd": sd}


def responsiveness(
    periods: pd.DataFrame,
    emg: pd.DataFrame | None = None,
    diary: pd.DataFrame | None = None,
    level: float = 0.95,
) -> pd.DataFrame:
    """Standardised response mean of each endpoint in each arm.

    Changes per subject (treatment minus baseline): cramps per week (treatment-period rate
    minus run-in rate), log CTF (``end`` minus the mean of the baseline logs; subjects with a
    right-censored CTF excluded), after-discharge grade (``end`` minus the mean baseline grade),
    intensity (mean treatment-period rating minus mean run-in rating). For every endpoint a
    *fall* in cramps, grade or intensity and a *rise* in CTF is improvement, so a responsive
    measure has a large ``|SRM|`` with the sign of its better direction.

    Parameters
    ----------
    periods
        Derived ``periods`` (parallel design).
    emg, diary
        Derived ``emg`` visits and the validated ``diary`` with ``intensity`` (optional).
    level
        Interval level (noncentral t, :func:`srm_interval`).

    Returns
    -------
    pandas.DataFrame
        ``endpoint, arm, estimate, lower, upper, n, mean, sd, unit, note``; an endpoint
        without data has one row with ``arm`` NA and the reason in ``note``.
    """
    rows = []
    for endpoint, changes in _changes(periods, emg, diary).items():
        if isinstance(changes, str):
            rows.append(
                {
                    "endpoint": endpoint,
                    "arm": None,
                    "estimate": math.nan,
                    "lower": math.nan,
                    "upper": math.nan,
                    "n": 0,
                    "mean": math.nan,
                    "sd": math.nan,
                    "unit": CHANGE_UNITS[endpoint],
                    "note": changes,
                }
            )
            continue
        for arm, group in changes.groupby("arm", sort=True):
            res = srm_interval(group["change"].to_numpy(), level)
            rows.append(
                {
                    "endpoint": endpoint,
                    "arm": arm,
                    **res,
                    "unit": CHANGE_UNITS[endpoint],
                    "note": f"mean change / SD of change ({CHANGE_UNITS[endpoint]})",
                }
            )
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------------
# Sample size at a common design
# --------------------------------------------------------------------------------------------
def normal_n_per_arm(d: float, power: float = 0.8, alpha: float = 0.05) -> float:
    """Patients per arm of a two-sided two-sample z test for standardised difference ``d``.

    ``n = 2 (z_{1-alpha/2} + z_{power})^2 / d^2``, rounded up (inf when ``d = 0``).
    """
    if not np.isfinite(d):
        return math.nan
    if d == 0:
        return math.inf
    z = stats.norm.ppf(1.0 - alpha / 2.0) + stats.norm.ppf(power)
    return float(math.ceil(2.0 * z**2 / d**2))


def _n_bounds(n_at: Any, effect: float, lo: float, hi: float, null: float) -> tuple[float, float]:
    """Interval of ``n`` from the effect's interval (``n`` falls as the effect leaves ``null``)."""
    if effect < null:
        small, large = n_at(lo), (n_at(hi) if hi < null else math.nan)
    else:
        small, large = n_at(hi), (n_at(lo) if lo > null else math.nan)
    return small, large


def sample_size_per_arm(
    periods: pd.DataFrame,
    emg: pd.DataFrame | None = None,
    diary: pd.DataFrame | None = None,
    *,
    power: float = 0.8,
    alpha: float = 0.05,
    control_arm: str = "placebo",
    level: float = 0.95,
) -> pd.DataFrame:
    """Patients per arm each endpoint would need to detect the effect it showed, same power.

    This compares the measures at one common design (two arms, equal allocation, the trial's
    treatment length, two-sided ``alpha``, ``power``) on the effect each showed in this trial;
    it is not a trial plan (observed effects are noisy and biased upwards when selected).

    - Cramp frequency: the negative-binomial formula of Zhu & Lakkis (2014, Stat Med 33:376,
      method 3; :func:`crampstats.power.closed_form.zhu_lakkis_n` at one-sided ``alpha / 2``),
      with the rate ratio and NB size ``k`` of the run-in-adjusted NB2 regression
      (:func:`crampstats.models.nb_totals.nb_glm_twin`, the primary analysis' twin), the
      control arm's treatment-period rate (the control mean of the formula; the run-in rate
      would overstate it by the placebo response) and the mean treatment exposure.
    - Continuous endpoints (log CTF, after-discharge grade, intensity): change from baseline,
      ``d = (mean change in the arm - mean change in control) / pooled SD of change``, and
      ``n = 2 (z_{1-alpha/2} + z_{power})^2 / d^2``.

    The interval of ``n`` is ``n`` at the ends of the effect's interval (Wald for the rate
    ratio; ``d +- z sqrt(1/n1 + 1/n2 + d^2 / (2 (n1 + n2)))``, Hedges & Olkin 1985); its far
    end is NaN (unbounded) when the effect's interval includes no effect.

    Returns
    -------
    pandas.DataFrame
        ``endpoint, arm, effect, effect_lower, effect_upper, effect_scale, estimate, lower,
        upper, n`` (subjects in the two arms), ``note``; inputs of the frequency formula in
        ``rate, k, exposure`` (NaN for other endpoints). An endpoint without data has one row
        with ``arm`` NA and the reason in ``note``.
    """
    from crampstats.power.closed_form import zhu_lakkis_n

    z_level = stats.norm.ppf(0.5 + level / 2.0)
    rows: list[dict[str, Any]] = []

    def missing(endpoint: str, reason: str) -> None:
        rows.append({"endpoint": endpoint, "arm": None, "note": reason})

    # ---- cramp frequency: Zhu & Lakkis on the NB2 regression -----------------------------------
    try:
        _require_parallel(periods, "the sample size comparison")
        from crampstats.models.nb_totals import nb_glm_twin

        twin = nb_glm_twin(periods, control_arm=control_arm, missing_baseline="mean")
        exposure = as_float(periods["exposure_days"])
        control = (periods["arm"].astype(str) == control_arm).to_numpy() & (exposure > 0)
        rate = float(as_float(periods["count"])[control].sum() / exposure[control].sum())
        t_mean = float(exposure[exposure > 0].mean())
        k = float(twin.attrs["k"])

        def n_freq(rr: float) -> float:
            if not np.isfinite(rr) or rr <= 0:
                return math.nan
            if rr == 1.0:
                return math.inf
            return float(zhu_lakkis_n(rate, rr, k, t_mean, power=power, alpha=alpha / 2.0))

        for row in twin.itertuples():
            rr, lo, hi = row.rate_ratio, math.exp(row.lower), math.exp(row.upper)
            n_lo, n_hi = _n_bounds(n_freq, rr, lo, hi, 1.0)
            n_subj = int(periods["arm"].astype(str).isin([row.arm, control_arm]).sum())
            rows.append(
                {
                    "endpoint": FREQUENCY,
                    "arm": row.arm,
                    "effect": rr,
                    "effect_lower": lo,
                    "effect_upper": hi,
                    "effect_scale": "rate ratio",
                    "estimate": n_freq(rr),
                    "lower": n_lo,
                    "upper": n_hi,
                    "n": n_subj,
                    "rate": rate,
                    "k": k,
                    "exposure": t_mean,
                    "note": (
                        f"Zhu-Lakkis NB: RR {rr:.3g}, control rate {rate:.3g}/day, k {k:.3g}, "
                        f"{t_mean:.0f} days; common design, not a trial plan"
                    ),
                }
            )
    except ModelDataError as exc:
        missing(FREQUENCY, str(exc))

    # ---- continuous endpoints: two-sample normal formula on the change ------------------------
    for endpoint, changes in _changes(periods, emg, diary).items():
        if endpoint == FREQUENCY:
            continue
        if isinstance(changes, str):
            missing(endpoint, changes)
            continue
        ctrl = changes.loc[changes["arm"] == control_arm, "change"].to_numpy(float)
        if ctrl.size < 2:
            missing(endpoint, f"fewer than two {control_arm} subjects with a change")
            continue
        for arm, group in changes.groupby("arm", sort=True):
            if arm == control_arm:
                continue
            act = group["change"].to_numpy(float)
            n1, n0 = act.size, ctrl.size
            if n1 < 2:
                rows.append(
                    {
                        "endpoint": endpoint,
                        "arm": arm,
                        "n": n1 + n0,
                        "note": "fewer than two subjects with a change",
                    }
                )
                continue
            pooled = math.sqrt(
                ((n1 - 1) * act.var(ddof=1) + (n0 - 1) * ctrl.var(ddof=1)) / (n1 + n0 - 2)
            )
            d = (act.mean() - ctrl.mean()) / pooled if pooled > 0 else math.nan
            se = math.sqrt(1.0 / n1 + 1.0 / n0 + d**2 / (2.0 * (n1 + n0)))
            lo, hi = d - z_level * se, d + z_level * se
            n_lo, n_hi = _n_bounds(lambda v: normal_n_per_arm(v, power, alpha), d, lo, hi, 0.0)
            rows.append(
                {
                    "endpoint": endpoint,
                    "arm": arm,
                    "effect": d,
                    "effect_lower": lo,
                    "effect_upper": hi,
                    "effect_scale": "standardised difference in change",
                    "estimate": normal_n_per_arm(d, power, alpha),
                    "lower": n_lo,
                    "upper": n_hi,
                    "n": n1 + n0,
                    "note": (
                        f"two-sample normal: d {d:.3g} vs {control_arm} "
                        f"(change in {CHANGE_UNITS[endpoint]}); common design, not a trial plan"
                    ),
                }
            )
    columns = [
        "endpoint",
        "arm",
        "effect",
        "effect_lower",
        "effect_upper",
        "effect_scale",
        "estimate",
        "lower",
        "upper",
        "n",
        "rate",
        "k",
        "exposure",
        "note",
    ]
    out = pd.DataFrame(rows, columns=columns)
    out["n"] = out["n"].fillna(0).astype(np.int64)
    return out


# --------------------------------------------------------------------------------------------
# The table
# --------------------------------------------------------------------------------------------
def _note_rows(endpoint: str, properties: list[str], reason: str) -> list[dict[str, Any]]:
    return [
        {
            "endpoint": endpoint,
            "property": prop,
            "estimate": math.nan,
            "lower": math.nan,
            "upper": math.nan,
            "unit": RELIABILITY_UNITS.get(endpoint, {}).get(prop, ""),
            "n": 0,
            "note": reason,
        }
        for prop in properties
    ]


def outcome_measures_table(
    derived: dict[str, pd.DataFrame],
    level: float = 0.95,
    seed: int = 0,
    *,
    method: str = "bayes",
    control_arm: str = "placebo",
    power: float = 0.8,
    alpha: float = 0.05,
    min_exposure_days: int = 4,
    sampler_config: Mapping[str, Any] | None = None,
) -> pd.DataFrame:
    """Reliability, agreement, responsiveness and sample size of every endpoint, one table.

    Parameters
    ----------
    derived
        Derived datasets (``crampstats.derive.derive_all``): ``weekly``, ``periods`` and,
        when present, ``emg`` and ``diary`` (with ``intensity``).
    level
        Interval level.
    seed
        Root seed; the two reliability fits use children of ``SeedSequence(seed)``, so the
        table is identical for the same data and seed.
    method
        ``"bayes"`` (default) or ``"ml"`` for the reliability models.
    control_arm, power, alpha
        Comparator and design of :func:`sample_size_per_arm`.
    min_exposure_days
        Run-in weeks with fewer diary days are dropped (:func:`runin_weeks`).
    sampler_config
        Overrides of the reliability models' sampler settings.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`TABLE_COLUMNS`: one row per endpoint x property. Properties: ``icc``,
        ``icc_observed``, ``sem``, ``mdc95`` (``cramp_frequency`` and ``ctf``; ``ctf`` adds
        ``sem_ratio`` and ``mdc95_ratio``), ``spearman_runin`` and ``spearman_change``
        (endpoint ``cramp_frequency_vs_ctf``), ``srm:<arm>`` and
        ``n_per_arm_for_power:<arm>`` (each active arm against ``control_arm``) per endpoint.
        What the data cannot support is a row with NaN estimate and the reason in ``note``.
    """
    seeds = [
        int(s.generate_state(1, dtype=np.uint32)[0])
        for s in np.random.SeedSequence(int(seed)).spawn(2)
    ]
    rows: list[dict[str, Any]] = []
    weekly, periods = derived.get("weekly"), derived.get("periods")
    emg, diary = derived.get("emg"), derived.get("diary")

    # ---- reliability -----------------------------------------------------------------------------
    for endpoint, data, run, seed_i in (
        (FREQUENCY, weekly, frequency_reliability, seeds[0]),
        (CTF, emg, ctf_reliability, seeds[1]),
    ):
        props = list(RELIABILITY_UNITS[endpoint])
        if data is None or data.empty:
            name = "weekly" if endpoint == FREQUENCY else "emg"
            rows += _note_rows(endpoint, props, f"no derived `{name}` data")
            continue
        kwargs: dict[str, Any] = {"level": level, "seed": seed_i, "method": method}
        if method == "bayes":
            kwargs["sampler_config"] = sampler_config
        if endpoint == FREQUENCY:
            kwargs["min_exposure_days"] = min_exposure_days
        try:
            result = run(data, **kwargs)
        except ModelDataError as exc:
            rows += _note_rows(endpoint, props, str(exc))
            continue
        rows += result.summary.assign(endpoint=endpoint).to_dict("records")

    # ---- agreement -------------------------------------------------------------------------------
    agree_props = ["spearman_runin", "spearman_change"]
    if periods is None or emg is None or emg.empty:
        rows += _note_rows(AGREEMENT, agree_props, "needs derived `periods` and `emg` data")
    else:
        for rec in agreement(periods, emg, level).to_dict("records"):
            rows.append({"endpoint": AGREEMENT, "unit": "Spearman rho", **rec})

    # ---- responsiveness and sample size ----------------------------------------------------------
    if periods is None or periods.empty:
        for endpoint in CHANGE_UNITS:
            rows += _note_rows(endpoint, ["srm", "n_per_arm_for_power"], "no derived `periods`")
    else:
        for rec in responsiveness(periods, emg, diary, level).to_dict("records"):
            prop = "srm" if pd.isna(rec["arm"]) else f"srm:{rec['arm']}"
            rows.append(
                {
                    "endpoint": rec["endpoint"],
                    "property": prop,
                    "estimate": rec["estimate"],
                    "lower": rec["lower"],
                    "upper": rec["upper"],
                    "unit": f"SRM of change in {rec['unit']}",
                    "n": rec["n"],
                    "note": rec["note"],
                }
            )
        sizes = sample_size_per_arm(
            periods, emg, diary, power=power, alpha=alpha, control_arm=control_arm, level=level
        )
        for rec in sizes.to_dict("records"):
            arm = rec["arm"]
            prop = "n_per_arm_for_power" if pd.isna(arm) else f"n_per_arm_for_power:{arm}"
            rows.append(
                {
                    "endpoint": rec["endpoint"],
                    "property": prop,
                    "estimate": rec["estimate"],
                    "lower": rec["lower"],
                    "upper": rec["upper"],
                    "unit": f"patients per arm (power {power:g}, two-sided alpha {alpha:g})",
                    "n": rec["n"],
                    "note": rec["note"],
                }
            )
    table = pd.DataFrame(rows, columns=TABLE_COLUMNS)
    for col in ("estimate", "lower", "upper"):
        table[col] = table[col].astype(float)
    table["n"] = table["n"].fillna(0).astype(np.int64)
    table["note"] = table["note"].fillna("")
    return table.reset_index(drop=True)
