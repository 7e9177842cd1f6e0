"""Result tables of a trial's cramp-frequency fits: effects, twins, diagnostics, LOO, ranks, PPC.

Pure functions from fits (``xarray.DataTree``) and derived data to ``pandas.DataFrame``: nothing
here samples or writes. :func:`result_tables` builds every table ``crampstats analyze`` writes
into ``tables/``; the column lists below are the contract the report and the workflow read.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr
from scipy import stats

from crampstats import decisions
from crampstats.compare.contrasts import contrast_tables
from crampstats.compare.loo_check import checked_loo_table
from crampstats.compare.ppc import rootogram
from crampstats.compare.sensitivity import prior_sensitivity_rows
from crampstats.compare.verdict import verdict_tables
from crampstats.engine import CountModel, PreparedData, diagnose
from crampstats.models import ENDPOINT, CountEntry

EFFECTS_COLUMNS = [
    "trial_id", "endpoint", "model", "primary", "arm", "comparator", "rr_median", "rr_lower",
    "rr_upper", "p_rr_below_1", "p_rr_below_threshold", "threshold", "abs_diff_per_week_median",
    "abs_diff_per_week_lower", "abs_diff_per_week_upper", "rhat_max", "ess_bulk_min",
    "divergences", "status",
]  # fmt: skip
FREQUENTIST_COLUMNS = [
    "trial_id", "endpoint", "model", "twin", "arm", "comparator", "log_rr", "se", "rr", "rr_lower",
    "rr_upper", "rr_bayes_median", "rr_bayes_lower", "rr_bayes_upper", "diff_log_rr", "note",
]  # fmt: skip
DIAGNOSTICS_COLUMNS = [
    "trial_id", "endpoint", "model", "status", "rhat_max", "ess_bulk_min", "ess_tail_min",
    "divergences", "reasons", "n_subjects", "chains", "draws", "tune", "seed", "model_id",
]  # fmt: skip
LOO_COLUMNS = [
    "trial_id", "endpoint", "data", "model", "elpd_loo", "se", "p_loo", "elpd_diff", "dse",
    "weight", "pareto_k_max", "n_pareto_k_high", "n_subjects",
    # after the remedy (compare/loo_check.py): high-k count, max k, method, reliable, why not
    "n_high_k", "max_k", "good_k", "method", "reliable", "note",
]  # fmt: skip
RANKINGS_COLUMNS = ["trial_id", "endpoint", "model", "arm", "p_best", "mean_rank", "sucra"]
PATIENTS_COLUMNS = [
    "trial_id", "endpoint", "model", "subject_id", "arm", "comparator", "effect_median",
    "effect_lower", "effect_upper", "p_own_benefit", "n_periods",
    # P(own benefit) only where identified (models/crossover.py), with its prior sensitivity
    "p_own_benefit_sd_half", "p_own_benefit_sd_double", "sensitivity_k", "identified", "reason",
    "n_periods_arm", "n_periods_control",
]  # fmt: skip
COURSE_COLUMNS = [
    "trial_id", "endpoint", "model", "arm", "period", "week", "per_week", "lower", "upper",
    "n_subjects",
]  # fmt: skip
PPC_COLUMNS = [
    "trial_id", "endpoint", "model", "unit", "count", "label", "observed", "expected",
    "sqrt_observed", "sqrt_expected",
]  # fmt: skip

#: What one count of each model's likelihood is (rootogram units).
UNITS = {
    "nb_totals": "subject total",
    "frailty_weekly": "subject-week",
    "nb_glmm": "subject-week",
    "zinb": "subject total",
    "hurdle": "subject total",
    "crossover": "subject-period",
    "multi_trial": "subject total",
}


@dataclass
class FitRecord:
    """A fit with what is needed to summarise it.

    Attributes
    ----------
    entry : CountEntry
        The model's catalogue record.
    model : CountModel
        The model object (same id as the fit's).
    idata : xarray.DataTree
        The fit (with ``log_likelihood``).
    frame : pandas.DataFrame
        The data frame the model read.
    prepared : PreparedData
        ``model.prepare(frame)``.
    """

    entry: CountEntry
    model: CountModel
    idata: xr.DataTree
    frame: pd.DataFrame
    prepared: PreparedData


def _settings(config: Mapping[str, Any]) -> dict[str, Any]:
    analysis = config.get("analysis", {})
    return {
        "trial_id": str(config.get("trial_id", "")),
        "control": str(config.get("control_arm", "placebo")),
        "level": float(analysis.get("level", 0.95)),
        "threshold": float(analysis.get("threshold", decisions.DEFAULT_THRESHOLD)),
        "thresholds": dict(analysis.get("diagnostics", {})),
        "twins": bool(analysis.get("twins", True)),
        "max_count": analysis.get("rootogram_max_count"),
    }


def diagnostics_rows(records: Mapping[str, FitRecord], config: Mapping[str, Any]) -> pd.DataFrame:
    """One row per fit: the convergence gate's figures, status and reasons, sampler settings."""
    s = _settings(config)
    rows = []
    for name, rec in records.items():
        report = diagnose(rec.idata, s["thresholds"])
        attrs = rec.idata["posterior"].attrs
        sampler = _json_attr(attrs, "sampler_config")
        rows.append(
            {
                "trial_id": s["trial_id"],
                "endpoint": ENDPOINT,
                "model": name,
                "status": report["status"],
                "rhat_max": report["rhat_max"],
                "ess_bulk_min": report["ess_bulk_min"],
                "ess_tail_min": report["ess_tail_min"],
                "divergences": report["divergences"],
                "reasons": "; ".join(report["reasons"]),
                "n_subjects": rec.prepared.n_subjects,
                "chains": sampler.get("chains"),
                "draws": sampler.get("draws"),
                "tune": sampler.get("tune"),
                "seed": attrs.get("crampstats_seed"),
                "model_id": attrs.get("crampstats_model_id"),
            }
        )
    return pd.DataFrame(rows, columns=DIAGNOSTICS_COLUMNS)


def _json_attr(attrs: Mapping[str, Any], key: str) -> dict[str, Any]:
    value = attrs.get(f"crampstats_{key}")
    return json.loads(value) if isinstance(value, str) else {}


def effects_rows(
    records: Mapping[str, FitRecord], diagnostics: pd.DataFrame, config: Mapping[str, Any]
) -> pd.DataFrame:
    """One row per model and active arm: the decision quantities and the fit's gate figures.

    ``primary`` is true on the rows of the primary model, the first of ``records`` (the plan's
    order), so a reader never has to guess which rows decide.
    """
    s = _settings(config)
    frames = []
    primary = next(iter(records), None)
    for name, rec in records.items():
        table = decisions.decision_table(
            rec.idata,
            control_log_rate=rec.model.subject_log_rate(rec.idata),
            control_arm=s["control"],
            level=s["level"],
            threshold=s["threshold"],
        )
        diag = diagnostics.loc[diagnostics["model"] == name].iloc[0]
        frames.append(
            pd.DataFrame(
                {
                    "trial_id": s["trial_id"],
                    "endpoint": ENDPOINT,
                    "model": name,
                    "primary": name == primary,
                    "arm": table["arm"],
                    "comparator": s["control"],
                    "rr_median": table["rr_median"],
                    "rr_lower": table["rr_lower"],
                    "rr_upper": table["rr_upper"],
                    "p_rr_below_1": table["p_rr_lt_1"],
                    "p_rr_below_threshold": table["p_rr_lt_threshold"],
                    "threshold": s["threshold"],
                    "abs_diff_per_week_median": table["difference_median"],
                    "abs_diff_per_week_lower": table["difference_lower"],
                    "abs_diff_per_week_upper": table["difference_upper"],
                    "rhat_max": diag["rhat_max"],
                    "ess_bulk_min": diag["ess_bulk_min"],
                    "divergences": diag["divergences"],
                    "status": diag["status"],
                }
            )
        )
    return _concat(frames, EFFECTS_COLUMNS)


def rankings_rows(records: Mapping[str, FitRecord], config: Mapping[str, Any]) -> pd.DataFrame:
    """Ranking probabilities (all arms, control included) per model."""
    s = _settings(config)
    frames = []
    for name, rec in records.items():
        ranks = decisions.rank_probabilities(rec.idata, control_arm=s["control"])
        head = pd.DataFrame(
            {"trial_id": s["trial_id"], "endpoint": ENDPOINT, "model": name}, index=ranks.index
        )
        frames.append(pd.concat([head, ranks], axis=1))
    if not frames:
        return pd.DataFrame(columns=RANKINGS_COLUMNS)
    return pd.concat(frames, ignore_index=True)


def frequentist_rows(
    records: Mapping[str, FitRecord], effects: pd.DataFrame, config: Mapping[str, Any]
) -> pd.DataFrame:
    """Each model's frequentist twin beside the Bayesian estimate, per active arm.

    Twin intervals are Wald intervals at the configured level on the log scale. A twin that
    fails (e.g. no convergence) gives a row with the reason in ``note`` instead of estimates.
    """
    s = _settings(config)
    z = float(stats.norm.ppf(0.5 + s["level"] / 2))
    frames = []
    for name, rec in records.items():
        if rec.entry.twin is None or not s["twins"]:
            continue
        bayes = effects.loc[effects["model"] == name].set_index("arm")
        try:
            twin = rec.entry.fit_twin(rec.frame, rec.model)
            note = "" if twin.attrs.get("converged", True) else "twin did not converge"
        except Exception as exc:
            twin = pd.DataFrame({"arm": bayes.index, "log_rr": np.nan, "se": np.nan})
            note = f"twin failed: {type(exc).__name__}: {exc}"
        twin = twin.set_index("arm").reindex(bayes.index)
        frames.append(
            pd.DataFrame(
                {
                    "trial_id": s["trial_id"],
                    "endpoint": ENDPOINT,
                    "model": name,
                    "twin": rec.entry.twin_label,
                    "arm": bayes.index,
                    "comparator": s["control"],
                    "log_rr": twin["log_rr"].to_numpy(),
                    "se": twin["se"].to_numpy(),
                    "rr": np.exp(twin["log_rr"].to_numpy()),
                    "rr_lower": np.exp(twin["log_rr"].to_numpy() - z * twin["se"].to_numpy()),
                    "rr_upper": np.exp(twin["log_rr"].to_numpy() + z * twin["se"].to_numpy()),
                    "rr_bayes_median": bayes["rr_median"].to_numpy(),
                    "rr_bayes_lower": bayes["rr_lower"].to_numpy(),
                    "rr_bayes_upper": bayes["rr_upper"].to_numpy(),
                    "diff_log_rr": np.log(bayes["rr_median"].to_numpy())
                    - twin["log_rr"].to_numpy(),
                    "note": note,
                }
            )
        )
    return _concat(frames, FREQUENTIST_COLUMNS)


def loo_rows(records: Mapping[str, FitRecord], config: Mapping[str, Any]) -> pd.DataFrame:
    """PSIS-LOO per fit, compared within groups of models fitted to the same derived data."""
    s = _settings(config)
    frames = []
    groups: dict[str, dict[str, Any]] = {}
    for name, rec in records.items():
        if "log_likelihood" in rec.idata.children:
            groups.setdefault(rec.entry.data, {})[name] = (rec.idata, rec.model, rec.prepared)
    for data, fits in groups.items():
        table = checked_loo_table(fits)  # moment-matched where k is high and supported
        table.insert(0, "data", data)
        table.insert(0, "endpoint", ENDPOINT)
        table.insert(0, "trial_id", s["trial_id"])
        frames.append(table)
    return _concat(frames, LOO_COLUMNS)


def patients_rows(records: Mapping[str, FitRecord], config: Mapping[str, Any]) -> pd.DataFrame:
    """Per-patient effects and P(own benefit) from models that estimate them (crossover)."""
    s = _settings(config)
    frames = []
    for name, rec in records.items():
        effects = getattr(rec.model, "patient_effects", None)
        if effects is None:
            continue
        table = effects(rec.idata, level=s["level"])
        table = table.assign(
            trial_id=table["trial_id"] if "trial_id" in table else s["trial_id"],
            endpoint=ENDPOINT,
            model=name,
            comparator=s["control"],
        )
        frames.append(table)
    return _concat(frames, PATIENTS_COLUMNS)


def ppc_rows(records: Mapping[str, FitRecord], config: Mapping[str, Any]) -> pd.DataFrame:
    """Rootogram data of every fit (observed and expected frequency of each count)."""
    s = _settings(config)
    frames = []
    for name, rec in records.items():
        table = rootogram(rec.model, rec.idata, rec.prepared, max_count=s["max_count"])
        head = {"trial_id": s["trial_id"], "endpoint": ENDPOINT, "model": name}
        frames.append(table.assign(**head, unit=UNITS.get(name, "unit")))
    return _concat(frames, PPC_COLUMNS)


def course_rows(
    records: Mapping[str, FitRecord], weekly: pd.DataFrame, config: Mapping[str, Any]
) -> pd.DataFrame:
    """Cramps per week by arm and week: observed, and each model's fitted course (parallel designs).

    Observed: ``7 * sum(count) / sum(exposure_days)`` over the arm's subjects with a diary that
    week (run-in and treatment weeks). Fitted, per treatment week ``w`` and arm ``a``, standardised
    over the trial's subjects like the absolute effects::

        7 * mean_i exp(c_i + log_rr_a) * exp(g t_w) / mean_w' exp(g t_w')

    with ``c_i`` the model's control log daily rate averaged over the treatment weeks and ``g``
    its week trend (models without a trend give a flat line); median and equal-tailed interval
    over draws.
    """
    s = _settings(config)
    if weekly.empty or "arm" not in weekly.columns or weekly["arm"].isna().all():
        return pd.DataFrame(columns=COURSE_COLUMNS)
    frames = []
    obs = weekly.assign(exposure=weekly["exposure_days"].astype(float))
    obs = obs[obs["exposure"] > 0]
    grouped = obs.groupby(["arm", "period", "week"], sort=True, observed=True)
    observed = grouped.agg(
        count=("count", "sum"), exposure=("exposure", "sum"), n_subjects=("subject_id", "nunique")
    ).reset_index()
    frames.append(
        observed.assign(
            trial_id=s["trial_id"],
            endpoint=ENDPOINT,
            model="observed",
            per_week=7.0 * observed["count"].astype(float) / observed["exposure"],
            lower=np.nan,
            upper=np.nan,
        )
    )
    weeks = np.sort(obs.loc[obs["period"] == "treatment", "week"].astype(float).unique())
    lo, hi = (1 - s["level"]) / 2, (1 + s["level"]) / 2
    for name, rec in records.items():
        post = rec.idata["posterior"]
        if "log_rr" not in post or "arm" not in post["log_rr"].dims:
            continue
        control = np.exp(rec.model.subject_log_rate(rec.idata)).mean("subject")
        control = control.stack(sample=("chain", "draw")).values  # (sample,)
        log_rr = post["log_rr"].stack(sample=("chain", "draw")).transpose("arm", "sample")
        arms = [s["control"], *(str(a) for a in log_rr["arm"].values)]
        effect = np.vstack([np.ones((1, control.size)), np.exp(log_rr.values)])  # (arm, sample)
        if "trend" in post:
            g = post["trend"].stack(sample=("chain", "draw")).values
            t = weeks - weeks.mean()
            shape = np.exp(np.outer(t, g))
            shape = shape / shape.mean(axis=0, keepdims=True)  # (week, sample)
        else:
            shape = np.ones((len(weeks), control.size))
        curve = 7.0 * effect[:, None, :] * control[None, None, :] * shape[None, :, :]
        q = np.quantile(curve, [0.5, lo, hi], axis=-1)  # (3, arm, week)
        for i, arm in enumerate(arms):
            frames.append(
                pd.DataFrame(
                    {
                        "trial_id": s["trial_id"],
                        "endpoint": ENDPOINT,
                        "model": name,
                        "arm": arm,
                        "period": "treatment",
                        "week": weeks,
                        "per_week": q[0, i],
                        "lower": q[1, i],
                        "upper": q[2, i],
                        "n_subjects": rec.prepared.n_subjects,
                    }
                )
            )
    return _concat(frames, COURSE_COLUMNS)


def result_tables(
    records: Mapping[str, FitRecord],
    config: Mapping[str, Any],
    weekly: pd.DataFrame | None = None,
) -> dict[str, pd.DataFrame]:
    """Build every table of ``tables/`` (effects, twins, diagnostics, LOO, ranks, PPC, course).

    Parameters
    ----------
    records
        Model name -> :class:`FitRecord`, primary model first.
    config
        Resolved trial configuration (control arm, level, threshold, diagnostics limits).
    weekly
        The derived weekly table, for the course over time (omitted: empty ``course``).

    Returns
    -------
    dict
        Table name -> data frame with the module's column lists.
    """
    diagnostics = diagnostics_rows(records, config)
    effects = effects_rows(records, diagnostics, config)
    # active versus active (primary fit) and the several-trial quantities (compare.contrasts)
    return contrast_tables(records, config) | {
        "effects": effects,
        "frequentist": frequentist_rows(records, effects, config),
        "diagnostics": diagnostics,
        "loo": loo_rows(records, config),
        "rankings": rankings_rows(records, config),
        "patients": patients_rows(records, config),
        "ppc": ppc_rows(records, config),
        "course": course_rows(records, weekly if weekly is not None else pd.DataFrame(), config),
        # power-scaling of every fit, refits of the primary under named priors (sensitivity.py)
        "prior_sensitivity": prior_sensitivity_rows(records, config),
        # the verdict under the analysis plan: decisions.csv, operating_characteristics.csv
        **verdict_tables(records, config),
    }


def _concat(frames: list[pd.DataFrame], columns: list[str]) -> pd.DataFrame:
    if not frames:
        return pd.DataFrame(columns=columns)
    return pd.concat(frames, ignore_index=True)[columns]
