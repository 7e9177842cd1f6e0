"""Missing-data sensitivity of the primary count endpoint: a delta-adjusted tipping-point analysis.

The primary analysis (``nb_totals``) treats the diary days a withdrawn subject never recorded as
missing at random (MAR): their cramp rate after withdrawal is assumed to be the one the model
predicts for them on their arm. This module asks how far that assumption may fail before a
conclusion changes (Ratitch et al. 2013, Pharm Stat 12:337; EMA guideline on missing data in
confirmatory trials, 2010; ICH E9(R1) section A.5.2.3).

Method
------
For each withdrawn subject ``i`` analysed by ``nb_totals``, the unobserved days are those from
the day after ``withdrawal_day`` to the planned end of treatment, ``D_i`` days (the end is the
last day any treatment-period diary record of the trial covers, the definition validation
uses for compliance; intermittently missing days before withdrawal stay MAR). For
``m = 1..M`` (``n_imputations``) posterior draws ``s_m`` of the stored fit (chosen by the seeded
generator, no new sampling):

1. the subject's on-arm daily rate without frailty, ``r_i = exp(eta_i + log_rr[arm_i])``
   (:meth:`~crampstats.models.NBTotals.subject_log_rate` plus the arm effect), and the gamma
   frailty drawn from its conditional posterior given the subject's own diary,
   ``u_i ~ Gamma(k + y_i, rate k + E_i r_i)`` (the NB2 of the model is Poisson given
   ``u_i ~ Gamma(k, k)``);
2. the post-withdrawal count ``z_i ~ Poisson(delta_i * r_i * u_i * D_i)`` with ``delta_i = delta``
   in every active arm and 1 in the control arm (delta > 1: withdrawn subjects on an active
   arm fare worse than the model predicts, losing part of the benefit). The Poisson draws use
   common uniforms across deltas (inverse CDF), so each imputed count grows monotonically with
   delta and the curve is smooth;
3. the complete data (``y_i + z_i`` cramps over ``E_i + D_i`` days) are analysed by the
   frequentist twin of ``nb_totals`` (statsmodels NB2, same terms), warm-started at the
   observed-data fit;

and the ``M`` log rate ratios and their variances are combined with Rubin's rules (Rubin 1987,
Multiple Imputation for Nonresponse in Surveys), with the Barnard-Rubin (1999, Biometrika
86:948) degrees of freedom (complete-data df ``n - p``). ``delta = 1`` is the MAR analysis by
multiple imputation.

Verdict
-------
The plan's default rule is ``P(RR < 1) >= 0.975`` (``analysis.plan.success``: the criterion with
``rate_ratio`` 1). Its frequentist counterpart, used here, is the one-sided test of ``RR >= 1``:
the rule is ``met`` when the one-sided p-value ``p_or_pvalue`` (Student t with the Rubin df) is at
most ``1 - 0.975``, equivalently when the upper bound of the two-sided 95 % interval is below 1
(under a flat prior ``P(RR < 1 | data)`` is about ``1 - p``). ``tipping_delta`` is the smallest
delta of the grid at which an arm's verdict differs from its verdict at delta 1 (empty if it
never does): the departure from MAR that would overturn the conclusion.

Seeds: ``SeedSequence(root, spawn_key=(200,))`` (after the count models and the secondary
endpoints), so the same fit and seed give the same table byte for byte.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import statsmodels.api as sm
import xarray as xr
from scipy import stats
from statsmodels.tools.sm_exceptions import ConvergenceWarning, HessianInversionWarning

from crampstats.engine import CountModel, PreparedData
from crampstats.models import ENDPOINT

__all__ = [
    "DEFAULT_DELTAS",
    "DEFAULT_N_IMPUTATIONS",
    "SEED_KEY",
    "TIPPING_COLUMNS",
    "ImputationBasis",
    "RubinResult",
    "complete_data_design",
    "delta_adjusted_mi",
    "imputation_basis",
    "post_withdrawal_days",
    "rubin",
    "success_probability",
    "tipping_point",
    "tipping_point_tables",
]

TIPPING_COLUMNS = [
    "trial_id", "endpoint", "model", "arm", "comparator", "delta", "rr", "lower", "upper",
    "p_or_pvalue", "verdict", "n_imputations", "log_rr", "se", "df", "fmi", "n_withdrawn",
    "imputed_days", "tipping_delta",
]  # fmt: skip
#: Default grid of multipliers of the active arms' post-withdrawal rate.
DEFAULT_DELTAS = tuple(round(1.0 + 0.1 * i, 1) for i in range(11))
DEFAULT_N_IMPUTATIONS = 40
#: Spawn key of the analysis' seed under the trial's root seed.
SEED_KEY = 200
#: The plan's default success probability of the P(RR < 1) criterion.
DEFAULT_PROBABILITY = 0.975
NON_TREATMENT_PERIODS = ("run-in", "washout")
#: Uniforms are kept inside (0, 1), where the Poisson inverse CDF is finite.
_EDGE = 1e-12


# --------------------------------------------------------------------------------------------
# Rubin's rules
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RubinResult:
    """Rubin's rules for ``M`` imputations of one or more scalar estimands (arrays per estimand).

    Attributes
    ----------
    estimate
        ``Q = mean_m q_m``.
    within, between
        ``W = mean_m u_m`` and ``B = var_m q_m`` (ddof 1).
    total
        ``T = W + (1 + 1/M) B``.
    df
        Barnard-Rubin degrees of freedom (``inf`` when ``B = 0`` and the complete-data df is
        infinite).
    fmi
        Fraction of missing information ``(r + 2 / (df + 3)) / (r + 1)``,
        ``r = (1 + 1/M) B / W`` (0 when ``B = 0``).
    """

    estimate: np.ndarray
    within: np.ndarray
    between: np.ndarray
    total: np.ndarray
    df: np.ndarray
    fmi: np.ndarray


def rubin(estimates: Any, variances: Any, df_complete: float = np.inf) -> RubinResult:
    """Combine complete-data estimates and variances with Rubin's rules.

    Parameters
    ----------
    estimates, variances
        ``(M, ...)``: one row per imputed data set (``M >= 2``).
    df_complete
        Degrees of freedom of the complete-data analysis (``n - p``; ``inf``: normal).

    Returns
    -------
    RubinResult
        Arrays of the trailing shape.

    Examples
    --------
    >>> r = rubin([[1.0], [2.0], [3.0]], [[0.5], [0.5], [0.5]])
    >>> float(r.total[0])  # 0.5 + (1 + 1/3) * 1
    1.8333333333333333
    """
    q = np.asarray(estimates, dtype=float)
    u = np.asarray(variances, dtype=float)
    m = q.shape[0]
    if m < 2 or q.shape != u.shape:
        raise ValueError("Rubin's rules need >= 2 imputations and matching shapes")
    estimate, within = q.mean(axis=0), u.mean(axis=0)
    between = q.var(axis=0, ddof=1)
    inflated = (1.0 + 1.0 / m) * between
    total = within + inflated
    with np.errstate(divide="ignore", invalid="ignore"):
        lam = np.where(total > 0, inflated / total, 0.0)
        df_old = np.where(lam > 0, (m - 1) / lam**2, np.inf)
        if np.isinf(df_complete):
            df = df_old
        else:
            df_obs = (df_complete + 1.0) / (df_complete + 3.0) * df_complete * (1.0 - lam)
            df = np.where(np.isinf(df_old), df_obs, df_old * df_obs / (df_old + df_obs))
        r = np.where(within > 0, inflated / within, np.inf)
        fmi = np.where(np.isinf(df), r / (r + 1.0), (r + 2.0 / (df + 3.0)) / (r + 1.0))
        fmi = np.where(between > 0, fmi, 0.0)  # identical imputations: nothing was missing
    return RubinResult(estimate, within, between, total, df, fmi)


# --------------------------------------------------------------------------------------------
# Data: unobserved days, the imputation model's draws, the complete-data design
# --------------------------------------------------------------------------------------------
def post_withdrawal_days(rows: pd.DataFrame, diary: pd.DataFrame | None) -> np.ndarray:
    """Unobserved treatment days after each subject's withdrawal, in ``rows`` order.

    Parameters
    ----------
    rows
        Subject rows (``subject_id``, ``withdrawal_day``, ``trial_id`` when present).
    diary
        The derived ``diary`` records (``subject_id, study_day, days, period``; ``trial_id``).

    Returns
    -------
    numpy.ndarray
        ``max(end - withdrawal_day, 0)`` for withdrawn subjects, 0 for the others, where
        ``end`` is the last day any treatment-period record of the subject's trial covers.
    """
    n = len(rows)
    if "withdrawal_day" not in rows.columns or diary is None or diary.empty:
        return np.zeros(n)
    treated = diary.loc[~diary["period"].astype(str).isin(NON_TREATMENT_PERIODS)]
    if treated.empty:
        return np.zeros(n)
    last = treated["study_day"].astype(float) + treated["days"].astype(float) - 1.0
    if "trial_id" in treated.columns and "trial_id" in rows.columns:
        ends = last.groupby(treated["trial_id"].astype(str)).max()
        end = rows["trial_id"].astype(str).map(ends).to_numpy(dtype=float)
    else:
        end = np.full(n, float(last.max()))
    withdrawal = pd.to_numeric(rows["withdrawal_day"], errors="coerce").to_numpy(dtype=float)
    days = np.where(np.isnan(withdrawal), 0.0, end - withdrawal)
    return np.clip(np.nan_to_num(days, nan=0.0), 0.0, None)


@dataclass(frozen=True)
class ImputationBasis:
    """What the imputation needs from a fit, for ``S`` posterior draws and ``n`` subjects.

    Attributes
    ----------
    log_rate
        ``(S, n)``: each subject's log expected cramps per day on their own arm, without the
        subject's frailty.
    k
        ``(S,)``: NB2 size (gamma frailty shape and rate).
    """

    log_rate: np.ndarray
    k: np.ndarray


def imputation_basis(
    model: CountModel, idata: xr.DataTree, prepared: PreparedData
) -> ImputationBasis:
    """Return draws of each subject's on-arm log daily rate and of ``k`` from an ``nb_totals`` fit.

    ``subject_log_rate`` (control-arm log rate from the fit's ``constant_data``) plus the arm's
    ``log_rr``; draws stacked over chains in chain-major order.
    """
    post = idata["posterior"]
    base = model.subject_log_rate(idata).transpose("chain", "draw", "subject").values
    log_rr = post["log_rr"].transpose("chain", "draw", "arm").values
    effect = np.concatenate([np.zeros((*log_rr.shape[:2], 1)), log_rr], axis=-1)
    own = base + effect[..., np.asarray(prepared.data["arm_idx"], dtype=np.int64)]
    s = own.shape[0] * own.shape[1]
    k = post["k"].transpose("chain", "draw").values.reshape(s)
    return ImputationBasis(own.reshape(s, -1), k)


def complete_data_design(prepared: PreparedData) -> tuple[np.ndarray, int]:
    """Design matrix of the ``nb_totals`` twin (:func:`~crampstats.models.nb_glm_twin`).

    Intercept, one indicator per active arm, the centred run-in log rate, the covariates and one
    indicator per level after the first of each random-intercept grouping (as fixed effects).

    Returns
    -------
    X : numpy.ndarray
        ``(n, p)``.
    n_active : int
        Active arms: their log rate ratios are columns ``1..n_active``.
    """
    data = prepared.data
    n_active = len(prepared.coords["arm"])
    n = len(data["y"])
    arm_cols = (data["arm_idx"][:, None] == np.arange(1, n_active + 1)).astype(float)
    blocks = [np.ones((n, 1)), arm_cols, np.asarray(data["x_baseline"], dtype=float)[:, None]]
    if "X_cov" in data and np.asarray(data["X_cov"]).shape[1]:
        blocks.append(np.asarray(data["X_cov"], dtype=float))
    if "group_idx" in data:
        group_idx = np.asarray(data["group_idx"], dtype=np.int64)
        for j in range(group_idx.shape[1]):
            levels = np.unique(group_idx[:, j])[1:]
            blocks.append((group_idx[:, j][:, None] == levels[None, :]).astype(float))
    return np.column_stack(blocks), n_active


def _nb2_fit(
    y: np.ndarray, X: np.ndarray, offset: np.ndarray, start: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """Statsmodels NB2 maximum likelihood: parameters (last: 1/k) and their covariance.

    Warm-started Newton from ``start`` (the observed-data fit); a fit that does not converge is
    redone from statsmodels' own start. Statsmodels' warnings are checked here instead (a
    result is accepted only when converged with a finite covariance).
    """
    model = sm.NegativeBinomial(y, X, offset=offset, loglike_method="nb2")
    attempts = [{"disp": 0, "maxiter": 400}]
    if start is not None:
        attempts.insert(0, {"start_params": start, "method": "newton", "disp": 0, "maxiter": 50})
    for kwargs in attempts:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            warnings.simplefilter("ignore", HessianInversionWarning)
            warnings.simplefilter("ignore", RuntimeWarning)
            result = model.fit(**kwargs)
        params, cov = np.asarray(result.params), np.asarray(result.cov_params())
        ok = result.mle_retvals.get("converged", True) and np.isfinite(cov).all()
        if ok and np.isfinite(params).all():
            return params, cov
    raise RuntimeError("the NB2 fit of an imputed data set did not converge")


# --------------------------------------------------------------------------------------------
# The analysis
# --------------------------------------------------------------------------------------------
def delta_adjusted_mi(
    y: np.ndarray,
    exposure: np.ndarray,
    missing_days: np.ndarray,
    active: np.ndarray,
    X: np.ndarray,
    n_active: int,
    basis: ImputationBasis,
    deltas: Sequence[float],
    n_imputations: int,
    rng: np.random.Generator,
) -> dict[str, np.ndarray]:
    """Delta-adjusted multiple imputation of post-withdrawal counts, analysed and pooled.

    Parameters
    ----------
    y, exposure
        Observed treatment-period counts and diarised days, ``(n,)``.
    missing_days
        Unobserved post-withdrawal days ``D_i`` (0 for completers), ``(n,)``.
    active
        ``(n,)`` bool: the subject is on an active arm (their post-withdrawal rate is multiplied
        by delta).
    X, n_active
        Complete-data design (:func:`complete_data_design`); columns ``1..n_active`` are the
        active arms' log rate ratios.
    basis
        Posterior draws of the imputation model (:func:`imputation_basis`).
    deltas
        Multipliers analysed.
    n_imputations
        ``M``: imputed data sets per delta, each from its own posterior draw.
    rng
        Seeded generator (draw choice, frailties, Poisson uniforms).

    Returns
    -------
    dict
        ``(n_deltas, n_active)`` arrays ``log_rr``, ``se`` (``sqrt T``), ``df``, ``fmi``; and
        ``draws``, the posterior draws used.
    """
    n_draws = basis.k.shape[0]
    m = int(n_imputations)
    draws = np.sort(rng.choice(n_draws, size=m, replace=n_draws < m))
    rate = np.exp(basis.log_rate[draws])  # (M, n)
    k = basis.k[draws][:, None]
    frailty = rng.gamma(k + y[None, :], 1.0 / (k + exposure[None, :] * rate))
    lam = rate * frailty * missing_days[None, :]
    uniforms = np.clip(rng.random(lam.shape), _EDGE, 1.0 - _EDGE)
    total_exposure = exposure + missing_days
    offset = np.log(total_exposure)
    start = _nb2_fit(y.astype(float), X, np.log(exposure), None)[0]
    cols = slice(1, 1 + n_active)
    df_complete = float(X.shape[0] - X.shape[1] - 1)
    out = {name: np.empty((len(deltas), n_active)) for name in ("log_rr", "se", "df", "fmi")}
    for d, delta in enumerate(deltas):
        mult = np.where(active, float(delta), 1.0)
        imputed = stats.poisson.ppf(uniforms, lam * mult[None, :])
        q = np.empty((m, n_active))
        u = np.empty((m, n_active))
        for j in range(m):
            params, cov = _nb2_fit(y + imputed[j], X, offset, start)
            q[j], u[j] = params[cols], np.diag(cov)[cols]
        pooled = rubin(q, u, df_complete)
        out["log_rr"][d] = pooled.estimate
        out["se"][d] = np.sqrt(pooled.total)
        out["df"][d] = pooled.df
        out["fmi"][d] = pooled.fmi
    out["draws"] = draws
    return out


def success_probability(config: Mapping[str, Any]) -> float:
    """Probability of the plan's ``P(RR < 1)`` criterion (default 0.975)."""
    success = (config.get("analysis", {}).get("plan") or {}).get("success") or {}
    for criterion in success.get("criteria") or []:
        if criterion.get("rate_ratio") is not None and float(criterion["rate_ratio"]) == 1.0:
            return float(criterion["probability"])
    return DEFAULT_PROBABILITY


def tipping_point(
    model: CountModel,
    idata: xr.DataTree,
    frame: pd.DataFrame,
    diary: pd.DataFrame | None,
    config: Mapping[str, Any],
) -> pd.DataFrame:
    """Build the tipping-point table of an ``nb_totals`` fit (module docstring).

    Parameters
    ----------
    model, idata
        The primary model and its stored fit.
    frame
        The ``periods`` frame the model read (``withdrawal_day`` holds withdrawals).
    diary
        The derived ``diary`` records (the planned end of treatment).
    config
        Resolved trial config: ``seed``, ``control_arm``, ``analysis.level``,
        ``analysis.tipping_point`` (``deltas``, ``n_imputations``) and the plan's rule.

    Returns
    -------
    pandas.DataFrame
        :data:`TIPPING_COLUMNS`, one row per active arm and delta; empty (with the columns) when
        no analysed subject withdrew with days left to impute.
    """
    analysis = config.get("analysis", {})
    settings = analysis.get("tipping_point") or {}
    deltas = [float(d) for d in settings.get("deltas") or DEFAULT_DELTAS]
    m = int(settings.get("n_imputations") or DEFAULT_N_IMPUTATIONS)
    level = float(analysis.get("level", 0.95))
    probability = success_probability(config)

    prepared = model.prepare(frame)
    rows = model.select(frame)
    missing_days = post_withdrawal_days(rows, diary)
    if not (missing_days > 0).any():
        return pd.DataFrame(columns=TIPPING_COLUMNS)
    data = prepared.data
    X, n_active = complete_data_design(prepared)
    active = np.asarray(data["arm_idx"]) > 0
    seed = np.random.SeedSequence(int(config.get("seed", 0)), spawn_key=(SEED_KEY,))
    result = delta_adjusted_mi(
        np.asarray(data["y"], dtype=float),
        np.exp(np.asarray(data["log_exposure"], dtype=float)),
        missing_days,
        active,
        X,
        n_active,
        imputation_basis(model, idata, prepared),
        deltas,
        m,
        np.random.default_rng(seed),
    )
    arms = list(prepared.coords["arm"])
    arm_idx = np.asarray(data["arm_idx"])
    withdrawn = missing_days > 0
    frames = []
    for j, arm in enumerate(arms):
        log_rr, se, df = result["log_rr"][:, j], result["se"][:, j], result["df"][:, j]
        crit = stats.t.ppf(0.5 + level / 2.0, df)
        p_value = stats.t.cdf(log_rr / se, df)
        met = p_value <= 1.0 - probability
        frames.append(
            pd.DataFrame(
                {
                    "trial_id": str(config.get("trial_id", "")),
                    "endpoint": ENDPOINT,
                    "model": model.name,
                    "arm": arm,
                    "comparator": str(prepared.constants["control_arm"]),
                    "delta": deltas,
                    "rr": np.exp(log_rr),
                    "lower": np.exp(log_rr - crit * se),
                    "upper": np.exp(log_rr + crit * se),
                    "p_or_pvalue": p_value,
                    "verdict": np.where(met, "met", "not met"),
                    "n_imputations": m,
                    "log_rr": log_rr,
                    "se": se,
                    "df": df,
                    "fmi": result["fmi"][:, j],
                    "n_withdrawn": int((withdrawn & (arm_idx == j + 1)).sum()),
                    "imputed_days": float(missing_days[arm_idx == j + 1].sum()),
                    "tipping_delta": _tipping_delta(deltas, met),
                }
            )
        )
    return pd.concat(frames, ignore_index=True)[TIPPING_COLUMNS]


def _tipping_delta(deltas: Sequence[float], met: np.ndarray) -> float:
    """Smallest delta whose verdict differs from the verdict at delta 1 (NaN if none)."""
    grid = np.asarray(deltas, dtype=float)
    ref = int(np.argmin(np.abs(grid - 1.0)))
    flips = [d for d, v in zip(grid, met, strict=True) if d > grid[ref] and v != met[ref]]
    return float(min(flips)) if flips else np.nan


def tipping_point_tables(
    records: Mapping[str, Any], derived: Mapping[str, pd.DataFrame], config: Mapping[str, Any]
) -> dict[str, pd.DataFrame]:
    """``{"tipping_point": table}`` when ``nb_totals`` was fitted to a parallel trial, else ``{}``.

    Parameters
    ----------
    records
        Model name -> :class:`~crampstats.compare.FitRecord` (its ``model``, ``idata``,
        ``frame``).
    derived
        The trial's derived datasets (``diary``).
    config
        Resolved trial config.
    """
    record = records.get("nb_totals")
    if record is None:
        return {}
    try:
        table = tipping_point(
            record.model, record.idata, record.frame, derived.get("diary"), config
        )
    except Exception as exc:  # a sensitivity analysis never takes the primary results down
        row = dict.fromkeys(TIPPING_COLUMNS, np.nan)
        row.update(
            trial_id=str(config.get("trial_id", "")),
            endpoint=ENDPOINT,
            model="nb_totals",
            verdict=f"analysis failed: {type(exc).__name__}: {exc}",
        )
        table = pd.DataFrame([row], columns=TIPPING_COLUMNS)
    return {"tipping_point": table}
