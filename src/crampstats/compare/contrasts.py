"""Active-versus-active contrasts and the several-trial summaries, beside their frequentist twins.

Pure functions from fits and their data to tables (nothing is sampled or written):

- ``active_vs_active`` (:data:`ACTIVE_COLUMNS`): every pair of active arms of the primary model,
  the rate ratio ``first / second`` from the draws of ``log_rr[first] - log_rr[second]``
  (median, equal-tailed interval) and ``P(first better) = P(RR < 1)`` (fewer cramps on the
  first); beside it the NB GLM twin's contrast ``b_first - b_second`` with its variance
  ``c' V c`` from the coefficients' covariance (one trial: :func:`trial_nb_glm`; several:
  the fixed-effect network of the per-trial GLMs, :func:`network_fixed_effect`);
- ``multi_trial`` (:data:`MULTI_TRIAL_COLUMNS`, several trials): the ``multi_trial`` fit's
  pooled rate ratios, between-trial SD, trial-specific rate ratios, the rate ratio expected
  in a new trial and the indirect comparisons between actives (``quantity`` names each), and
  the two-stage twin's (per-trial NB GLMs, DerSimonian-Laird) with Wald and Hartung-Knapp
  intervals and the prediction interval (``source``).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from crampstats.engine import CountModel, diagnose
from crampstats.models import ENDPOINT, twin_settings
from crampstats.models.multi_trial import (
    hartung_knapp,
    indirect_comparisons,
    inverse_variance_pool,
    multi_trial_twin,
    network_fixed_effect,
    prediction_interval,
    predictive_log_rr,
    trial_effects,
    trial_nb_glm,
)
from crampstats.numerics import interval_bounds

__all__ = [
    "ACTIVE_COLUMNS",
    "MULTI_TRIAL_COLUMNS",
    "active_vs_active",
    "contrast_tables",
    "glm_contrasts",
    "multi_trial_summary",
]

ACTIVE_COLUMNS = [
    "trial_id", "endpoint", "model", "first", "second", "rr_median", "rr_lower", "rr_upper",
    "p_first_better", "direct", "twin", "rr_twin", "rr_twin_lower", "rr_twin_upper",
    "p_twin_one_sided", "status",
]  # fmt: skip
MULTI_TRIAL_COLUMNS = [
    "trial_id", "endpoint", "model", "source", "quantity", "trial", "arm", "comparator",
    "estimate", "lower", "upper", "p_below_1", "k_trials", "note",
]  # fmt: skip

BAYES = "posterior"
TWIN_WALD = "per-trial NB GLMs, DerSimonian-Laird (Wald)"
TWIN_HK = "per-trial NB GLMs, DerSimonian-Laird (Hartung-Knapp)"
TWIN_TRIAL = "per-trial NB GLM"


def glm_contrasts(
    arms: list[str], log_rr: np.ndarray, cov: np.ndarray, level: float = 0.95
) -> pd.DataFrame:
    """Every pair of arms compared through GLM coefficients and their covariance.

    Parameters
    ----------
    arms
        Active arms, in the order of ``log_rr``.
    log_rr, cov
        Log rate ratios against control and their covariance.
    level
        Mass of the Wald interval.

    Returns
    -------
    pandas.DataFrame
        ``first, second, log_rr, se, rr, rr_lower, rr_upper, p_one_sided`` with ``log_rr =
        b_first - b_second``, ``se = sqrt(V_ff + V_ss - 2 V_fs)`` and ``p_one_sided =
        Phi(log_rr / se)``, the one-sided p-value against ``RR >= 1`` (the frequentist
        counterpart of ``1 - P(first better)``).
    """
    z = float(stats.norm.ppf(0.5 + level / 2.0))
    rows = []
    for i, j in itertools.combinations(range(len(arms)), 2):
        c = np.zeros(len(arms))
        c[i], c[j] = 1.0, -1.0
        est, se = float(c @ log_rr), float(np.sqrt(c @ cov @ c))
        rows.append(
            {
                "first": arms[i],
                "second": arms[j],
                "log_rr": est,
                "se": se,
                "rr": np.exp(est),
                "rr_lower": np.exp(est - z * se),
                "rr_upper": np.exp(est + z * se),
                "p_one_sided": float(stats.norm.cdf(est / se)),
            }
        )
    columns = ["first", "second", "log_rr", "se", "rr", "rr_lower", "rr_upper", "p_one_sided"]
    return pd.DataFrame(rows, columns=columns)


def _twin_estimates(
    name: str, frame: pd.DataFrame, model: CountModel
) -> tuple[str, list[str], np.ndarray, np.ndarray]:
    """Return the NB GLM twin's log rate ratios with their covariance (primary's rows)."""
    settings = twin_settings(trial_nb_glm, model.model_config)
    if name == "multi_trial":
        cfg = model.model_config
        per_trial = [
            trial_nb_glm(sub, **settings)
            for _, sub in model.select(frame).groupby("trial_id", sort=True)
            if set(sub["arm"].astype(str)) != {cfg["control_arm"]}
        ]
        arms = [str(a) for a in model.prepare(frame).coords["arm"]]
        arms = [a for a in arms if any(a in t[0] for t in per_trial)]
        log_rr, cov = network_fixed_effect(per_trial, arms)
        return "per-trial NB GLMs, fixed-effect network (GLS)", arms, log_rr, cov
    arms, log_rr, cov = trial_nb_glm(frame, **settings)
    return "statsmodels NB2 GLM", [str(a) for a in arms], log_rr, cov


def active_vs_active(
    name: str,
    idata: Any,
    frame: pd.DataFrame,
    model: CountModel,
    config: Mapping[str, Any],
    status: str = "ok",
) -> pd.DataFrame:
    """Pairwise rate ratios between active arms of one fit, with the NB GLM twin's contrast.

    Parameters
    ----------
    name
        Catalogue id of the model.
    idata
        The fit (posterior ``log_rr`` with dim ``arm``).
    frame
        The rows the model read (for the twin).
    model
        The model object (its settings go to the twin).
    config
        Resolved trial configuration (``trial_id``, ``analysis.level``, ``analysis.twins``).
    status
        The fit's diagnostics status, copied to every row.

    Returns
    -------
    pandas.DataFrame
        :data:`ACTIVE_COLUMNS`; empty with fewer than two active arms. The twin's columns are
        NaN when the model's data are not subject totals (only ``periods`` models have the
        NB GLM twin) or the twin fails.
    """
    analysis = config.get("analysis") or {}
    level = float(analysis.get("level", 0.95))
    bayes = indirect_comparisons(idata, level=level)
    if bayes.empty:
        return pd.DataFrame(columns=ACTIVE_COLUMNS)
    if name != "multi_trial":
        bayes["direct"] = True  # one randomised trial: every pair is compared within it
    twin_label, twin = "", None
    if analysis.get("twins", True) and "log_baseline_rate" in frame.columns:
        try:
            twin_label, arms, log_rr, cov = _twin_estimates(name, frame, model)
            # the posterior's arm order, so that each pair has the Bayesian row's orientation
            posterior_arms = [str(a) for a in idata["posterior"]["log_rr"]["arm"].values]
            idx = [arms.index(a) for a in posterior_arms if a in arms]
            twin = glm_contrasts(
                [arms[i] for i in idx], log_rr[idx], cov[np.ix_(idx, idx)], level
            ).set_index(["first", "second"])
        except Exception as exc:  # a twin never takes the Bayesian table down
            twin_label = f"twin failed: {type(exc).__name__}: {exc}"
    keys = pd.MultiIndex.from_frame(bayes[["first", "second"]])
    twin = (twin if twin is not None else pd.DataFrame(columns=["rr"])).reindex(keys)
    out = bayes.rename(columns={"lower": "rr_lower", "upper": "rr_upper"}).assign(
        trial_id=str(config.get("trial_id", "")),
        endpoint=ENDPOINT,
        model=name,
        twin=twin_label,
        rr_twin=twin["rr"].to_numpy(dtype=float),
        rr_twin_lower=twin.get("rr_lower", pd.Series(np.nan, keys)).to_numpy(dtype=float),
        rr_twin_upper=twin.get("rr_upper", pd.Series(np.nan, keys)).to_numpy(dtype=float),
        p_twin_one_sided=twin.get("p_one_sided", pd.Series(np.nan, keys)).to_numpy(dtype=float),
        status=status,
    )
    return out[ACTIVE_COLUMNS].reset_index(drop=True)


def multi_trial_summary(
    idata: Any,
    frame: pd.DataFrame,
    model: CountModel,
    config: Mapping[str, Any],
    seed: int = 0,
) -> pd.DataFrame:
    """Return the several-trial quantities of a ``multi_trial`` fit and of its two-stage twin.

    Parameters
    ----------
    idata
        The ``multi_trial`` fit.
    frame
        The rows it read (for the twin).
    model
        The model object.
    config
        Resolved trial configuration (``analysis.level``, ``analysis.twins``, ``control_arm``).
    seed
        Seed of the predictive draws (:func:`predictive_log_rr`).

    Returns
    -------
    pandas.DataFrame
        :data:`MULTI_TRIAL_COLUMNS`. ``quantity``: ``pooled_rr`` (mean rate ratio over trials,
        per arm), ``between_trial_sd`` (``tau`` on the log rate ratio; the twin's is
        DerSimonian-Laird's per arm), ``trial_rr`` (each trial's own rate ratio), ``new_trial_rr``
        (the rate ratio expected in a new trial: posterior predictive; the twin's prediction
        interval needs three trials or more) and ``indirect_rr`` (``arm`` versus
        ``comparator``, both active; ``p_below_1`` is P(``arm`` better); ``note`` says whether
        some trial randomised both). Bayesian rows: posterior median and equal-tailed interval.
    """
    analysis = config.get("analysis") or {}
    level = float(analysis.get("level", 0.95))
    control = str(model.model_config.get("control_arm", config.get("control_arm", "placebo")))
    lo, hi = interval_bounds(level)
    post = idata["posterior"]
    rows: list[dict[str, Any]] = []

    def add(source: str, quantity: str, draws: np.ndarray | None = None, **values: Any) -> None:
        if draws is not None:
            q = np.quantile(draws, [0.5, lo, hi])
            values = {
                "estimate": float(np.exp(q[0])),
                "lower": float(np.exp(q[1])),
                "upper": float(np.exp(q[2])),
                "p_below_1": float((draws < 0).mean()),
                **values,
            }
        rows.append({"source": source, "quantity": quantity, **values})

    log_rr = post["log_rr"].stack(sample=("chain", "draw")).transpose("arm", "sample")
    predictive = predictive_log_rr(idata, seed=seed).stack(sample=("chain", "draw"))
    effects = trial_effects(idata).stack(sample=("chain", "draw"))
    k_arm = effects.isel(sample=0).notnull().sum("trial")
    for arm in (str(a) for a in log_rr["arm"].values):
        k = int(k_arm.sel(arm=arm))
        add(BAYES, "pooled_rr", log_rr.sel(arm=arm).values, arm=arm, comparator=control, k_trials=k)
        add(
            BAYES, "new_trial_rr", predictive.sel(arm=arm).values, arm=arm, comparator=control,
            k_trials=k,
        )  # fmt: skip
        for trial in (str(t) for t in effects["trial"].values):
            cell = effects.sel(arm=arm, trial=trial).values
            if np.isfinite(cell).all():
                add(BAYES, "trial_rr", cell, trial=trial, arm=arm, comparator=control)
    tau = post["tau"].values.ravel()
    q = np.quantile(tau, [0.5, lo, hi])
    add(BAYES, "between_trial_sd", estimate=q[0], lower=q[1], upper=q[2], note="log rate ratio")
    log_rr_all = post["log_rr"].transpose("chain", "draw", "arm")
    for r in indirect_comparisons(idata, level=level).itertuples():
        diff = (log_rr_all.sel(arm=r.first) - log_rr_all.sel(arm=r.second)).values.ravel()
        note = "direct and indirect evidence" if r.direct else "indirect only (through control)"
        add(BAYES, "indirect_rr", diff, arm=r.first, comparator=r.second, note=note)
    if analysis.get("twins", True):
        rows.extend(_twin_rows(frame, model, control, level))
    out = pd.DataFrame(rows).reindex(columns=MULTI_TRIAL_COLUMNS)
    numeric = ["estimate", "lower", "upper", "p_below_1", "k_trials"]
    out[numeric] = out[numeric].astype(float)
    return out.assign(
        trial_id=str(config.get("trial_id", "")), endpoint=ENDPOINT, model="multi_trial"
    )[MULTI_TRIAL_COLUMNS]


def _twin_rows(
    frame: pd.DataFrame, model: CountModel, control: str, level: float
) -> list[dict[str, Any]]:
    """Return the two-stage twin's rows of :func:`multi_trial_summary`."""
    settings = twin_settings(multi_trial_twin, model.model_config, ("method",))
    twin = multi_trial_twin(frame, **settings)
    per_trial = pd.DataFrame(twin.attrs["per_trial"])
    z = float(stats.norm.ppf(0.5 + level / 2.0))
    rows: list[dict[str, Any]] = []
    for r in per_trial.itertuples():
        rows.append(
            {
                "source": TWIN_TRIAL, "quantity": "trial_rr", "trial": r.trial, "arm": r.arm,
                "comparator": control, "estimate": np.exp(r.log_rr),
                "lower": np.exp(r.log_rr - z * r.se), "upper": np.exp(r.log_rr + z * r.se),
            }
        )  # fmt: skip
    for arm, sel in per_trial.groupby("arm", sort=False):
        y, se = sel["log_rr"].to_numpy(), sel["se"].to_numpy()
        pooled = inverse_variance_pool(y, se)
        tau2 = 0.0 if len(y) < 2 else pooled["tau"] ** 2
        k = int(pooled["k_trials"])
        mu, s = pooled["random"], pooled["se_random"]
        hk = hartung_knapp(y, se, tau2, level)
        pi = prediction_interval(mu, s, tau2, k, level)
        common = {"arm": arm, "comparator": control, "k_trials": k, "estimate": np.exp(mu)}
        rows += [
            {"source": TWIN_WALD, "quantity": "pooled_rr", **common,
             "lower": np.exp(mu - z * s), "upper": np.exp(mu + z * s)},
            {"source": TWIN_HK, "quantity": "pooled_rr", **common,
             "lower": np.exp(hk["lower"]), "upper": np.exp(hk["upper"])},
            {"source": TWIN_WALD, "quantity": "new_trial_rr", **common,
             "lower": np.exp(pi[0]), "upper": np.exp(pi[1]),
             "note": "" if k >= 3 else "prediction interval needs 3 trials or more"},
            {"source": TWIN_WALD, "quantity": "between_trial_sd", "arm": arm, "k_trials": k,
             "estimate": pooled["tau"], "note": "log rate ratio, DerSimonian-Laird"},
        ]  # fmt: skip
    return rows


def contrast_tables(records: Mapping[str, Any], config: Mapping[str, Any]) -> dict[str, Any]:
    """``active_vs_active`` from the primary fit, and ``multi_trial`` when it was fitted.

    Parameters
    ----------
    records
        Model name -> :class:`~crampstats.compare.tables.FitRecord`, primary first.
    config
        Resolved trial configuration.

    Returns
    -------
    dict
        ``active_vs_active`` always (possibly empty) and ``multi_trial`` when a ``multi_trial``
        fit is among ``records``.
    """
    out: dict[str, pd.DataFrame] = {"active_vs_active": pd.DataFrame(columns=ACTIVE_COLUMNS)}
    if not records:
        return out
    name, rec = next(iter(records.items()))
    if "log_rr" in rec.idata["posterior"] and "arm" in rec.idata["posterior"]["log_rr"].dims:
        status = diagnose(rec.idata, (config.get("analysis") or {}).get("diagnostics"))["status"]
        out["active_vs_active"] = active_vs_active(
            name, rec.idata, rec.frame, rec.model, config, status
        )
    if "multi_trial" in records:
        rec = records["multi_trial"]
        seed = int(rec.idata["posterior"].attrs.get("crampstats_seed", 0))
        out["multi_trial"] = multi_trial_summary(rec.idata, rec.frame, rec.model, config, seed)
    return out
