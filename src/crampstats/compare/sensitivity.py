"""Prior sensitivity of a trial's count fits: power-scaling diagnostics and refits (table).

Pure functions from fits to ``tables/prior_sensitivity.csv`` (:data:`PRIOR_SENSITIVITY_COLUMNS`),
nothing sampled. Two methods (docs/models.md, "Prior sensitivity"):

``power_scaling``
    ArviZ's :func:`arviz_stats.psense` (Kallioinen et al. 2024, Stat Comput 34:57): how far each
    population-level parameter's posterior moves, in cumulative Jensen-Shannon distance per unit
    of ``log2(alpha)``, when the prior (``psense_prior``) or the likelihood
    (``psense_likelihood``) is raised to a power ``alpha`` near 1, estimated by Pareto-smoothed
    importance weights of the stored draws. Only the priors of population-level parameters are
    scaled (:func:`crampstats.fit.prior_sensitivity.top_level`): subject- and group-level normal
    distributions are part of the hierarchical model, not priors. A parameter is flagged when its
    prior sensitivity reaches ``analysis.prior_sensitivity.threshold`` (0.05, the paper's and
    ArviZ's), with ArviZ's diagnosis as the reason: *prior-data conflict* when the likelihood
    sensitivity is also at least the threshold, *strong prior / weak likelihood* when it is not.
    Every count fit with a ``log_prior`` group gets these rows.

``refit``
    The primary model's rate ratios under the configured prior (``default``, the main fit) and
    under each named alternative prior (refitted by the fit step with the same seed,
    :func:`crampstats.fit.prior_sensitivity.prior_refits`). A row is flagged when its conclusion
    differs from the default's: the side of no change the interval lies on (below 1, includes 1,
    above 1), or whether ``P(RR < 1)`` exceeds ``analysis.prior_sensitivity.decision_probability``
    (0.975) or falls below one minus it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Protocol

import arviz_stats as azs
import pandas as pd
import xarray as xr

from crampstats import decisions
from crampstats.engine import BayesModel, PreparedData, diagnose
from crampstats.fit.prior_sensitivity import (
    add_log_prior,
    has_log_prior,
    sensitivity_settings,
    stored_refits,
    top_level,
)
from crampstats.models import ENDPOINT

__all__ = [
    "PRIOR_SENSITIVITY_COLUMNS",
    "conclusion",
    "power_scaling_rows",
    "prior_sensitivity_rows",
    "refit_rows",
]

PRIOR_SENSITIVITY_COLUMNS = [
    "trial_id", "endpoint", "model", "primary", "method", "prior", "prior_settings", "parameter",
    "arm", "rr_median", "rr_lower", "rr_upper", "p_rr_below_1", "psense_prior",
    "psense_likelihood", "status", "flag", "reason",
]  # fmt: skip
#: Name of the configured prior's rows (the main fit).
DEFAULT_PRIOR = "default"


class FitRecord(Protocol):
    """What this module reads of a fit record (:class:`crampstats.compare.FitRecord`)."""

    idata: xr.DataTree
    model: BayesModel
    prepared: PreparedData


def _label(name: str, index: Mapping[str, Any]) -> tuple[str, str]:
    """``(parameter, arm)`` of one element: the arm apart, other coordinates in brackets."""
    arm = str(index.get("arm", ""))
    rest = [str(v) for d, v in index.items() if d != "arm"]
    return (f"{name}[{','.join(rest)}]" if rest else name), arm


def power_scaling_rows(
    rec: FitRecord, settings: Mapping[str, Any], head: Mapping[str, Any]
) -> list[dict[str, Any]]:
    """Power-scaling sensitivity of each population-level parameter of one fit.

    Parameters
    ----------
    rec
        The fit (its ``log_prior`` group is computed here when the stored fit lacks one).
    settings
        ``analysis.prior_sensitivity`` with defaults (``threshold``).
    head
        Columns common to the fit's rows (trial, endpoint, model, primary).

    Returns
    -------
    list of dict
        One row per parameter element, :data:`PRIOR_SENSITIVITY_COLUMNS` keys.
    """
    idata = rec.idata
    if not has_log_prior(idata):
        idata = add_log_prior(rec.model, rec.prepared, idata.copy())
    prior_vars = top_level(idata["log_prior"].to_dataset())
    posterior = idata["posterior"].to_dataset()
    names = [v for v in top_level(posterior) if v in prior_vars or v == "log_rr"]
    common = {"var_names": names, "alphas": (0.99, 1.01)}
    prior = azs.psense(idata, group="prior", group_var_names=prior_vars, **common)
    like = azs.psense(idata, group="likelihood", **common)
    threshold = float(settings["threshold"])
    rows = []
    for name in names:
        p_da, l_da = prior[name], like[name]
        for index in _elements(p_da):
            p, lik = float(p_da.sel(index).values), float(l_da.sel(index).values)
            flag = p >= threshold
            if flag and lik >= threshold:
                reason = "potential prior-data conflict"
            elif flag:
                reason = "potential strong prior / weak likelihood"
            else:
                reason = ""
            if reason:
                reason += (
                    f" (prior sensitivity {p:.3f} >= {threshold:g}, likelihood sensitivity "
                    f"{lik:.3f})"
                )
            parameter, arm = _label(name, index)
            rows.append(
                {
                    **head,
                    "method": "power_scaling",
                    "prior": DEFAULT_PRIOR,
                    "prior_settings": "",
                    "parameter": parameter,
                    "arm": arm,
                    "psense_prior": p,
                    "psense_likelihood": lik,
                    "flag": flag,
                    "reason": reason,
                }
            )
    return rows


def _elements(da: xr.DataArray) -> list[dict[str, Any]]:
    """Coordinate selections of every element of ``da`` (``[{}]`` for a scalar)."""
    if not da.dims:
        return [{}]
    stacked = da.stack(_element=list(da.dims))
    return [
        dict(zip(da.dims, key if isinstance(key, tuple) else (key,), strict=True))
        for key in stacked["_element"].values
    ]


def conclusion(rr_lower: float, rr_upper: float, p_below_1: float, probability: float) -> dict:
    """Classify a rate ratio's conclusion: the interval's side of 1 and the decision.

    Parameters
    ----------
    rr_lower, rr_upper
        The interval.
    p_below_1
        ``P(RR < 1)``.
    probability
        Decision probability (e.g. 0.975).

    Returns
    -------
    dict
        ``interval``: ``"below 1"``, ``"includes 1"`` or ``"above 1"``; ``decision``:
        ``"lower"`` (``P(RR < 1) > probability``), ``"higher"`` (``P(RR < 1) < 1 -
        probability``) or ``"undecided"``.

    Examples
    --------
    >>> conclusion(0.6, 0.95, 0.99, 0.975)
    {'interval': 'below 1', 'decision': 'lower'}
    """
    side = "below 1" if rr_upper < 1 else "above 1" if rr_lower > 1 else "includes 1"
    if p_below_1 > probability:
        decision = "lower"
    elif p_below_1 < 1 - probability:
        decision = "higher"
    else:
        decision = "undecided"
    return {"interval": side, "decision": decision}


def refit_rows(
    rec: FitRecord, config: Mapping[str, Any], head: Mapping[str, Any]
) -> list[dict[str, Any]]:
    """Rate ratios under the configured prior and every stored refit, flagged where they differ.

    Parameters
    ----------
    rec
        The primary fit, with its ``prior_refits`` group (none: no rows).
    config
        Resolved trial configuration (interval level, threshold, diagnostics gate, settings).
    head
        Columns common to the fit's rows.

    Returns
    -------
    list of dict
        One row per prior and active arm, the configured prior first.
    """
    refits = stored_refits(rec.idata)
    if not refits:
        return []
    analysis = config.get("analysis") or {}
    level = float(analysis.get("level", 0.95))
    probability = float(sensitivity_settings(config)["decision_probability"])
    limits = dict(analysis.get("diagnostics") or {})
    fits = {DEFAULT_PRIOR: rec.idata, **refits}
    reference: dict[str, dict[str, str]] = {}
    rows = []
    for name, fit in fits.items():
        post = fit["posterior"].to_dataset()
        summary = decisions.rate_ratio_summary(post, level=level)
        gate = diagnose(fit, limits, var_names=top_level(post))
        overrides = post.attrs.get("crampstats_prior_overrides", "")
        for r in summary.to_dict("records"):
            found = conclusion(r["rr_lower"], r["rr_upper"], r["p_rr_lt_1"], probability)
            if name == DEFAULT_PRIOR:
                reference[r["arm"]] = found
            base = reference[r["arm"]]
            changed = []
            if found["interval"] != base["interval"]:
                changed.append(
                    f"the {level:.0%} interval {base['interval']} under the default prior but "
                    f"{found['interval']} under {name}"
                )
            if found["decision"] != base["decision"]:
                changed.append(
                    f"{_decision(base['decision'])} under the default prior but "
                    f"{_decision(found['decision'])} under {name}"
                )
            rows.append(
                {
                    **head,
                    "method": "refit",
                    "prior": name,
                    "prior_settings": overrides if name != DEFAULT_PRIOR else _configured(rec),
                    "parameter": "log_rr",
                    "arm": r["arm"],
                    "rr_median": r["rr_median"],
                    "rr_lower": r["rr_lower"],
                    "rr_upper": r["rr_upper"],
                    "p_rr_below_1": r["p_rr_lt_1"],
                    "status": gate["status"],
                    "flag": bool(changed),
                    "reason": "; ".join(changed),
                }
            )
    return rows


def _decision(decision: str) -> str:
    return {"lower": "P(RR < 1) above the decision probability",
            "higher": "P(RR < 1) below one minus the decision probability",
            "undecided": "P(RR < 1) between the decision limits"}[decision]  # fmt: skip


def _configured(rec: FitRecord) -> str:
    """Return the main fit's configured log rate ratio prior settings as JSON."""
    config = json.loads(rec.idata["posterior"].attrs.get("crampstats_model_config", "{}"))
    keys = {k: v for k, v in config.items() if k.startswith("prior_log_rr")}
    return json.dumps(keys, sort_keys=True)


def prior_sensitivity_rows(
    records: Mapping[str, FitRecord], config: Mapping[str, Any]
) -> pd.DataFrame:
    """Build ``tables/prior_sensitivity.csv``: power-scaling for every fit, refits for the primary.

    Parameters
    ----------
    records
        Model name -> fit record, primary model first.
    config
        Resolved trial configuration (``analysis.prior_sensitivity``).

    Returns
    -------
    pandas.DataFrame
        :data:`PRIOR_SENSITIVITY_COLUMNS`; empty when the analysis is disabled.
    """
    settings = sensitivity_settings(config)
    rows: list[dict[str, Any]] = []
    if settings["enabled"]:
        primary = next(iter(records), None)
        for name, rec in records.items():
            head = {
                "trial_id": str(config.get("trial_id", "")),
                "endpoint": ENDPOINT,
                "model": name,
                "primary": name == primary,
            }
            if name == primary:
                rows += refit_rows(rec, config, head)
            rows += power_scaling_rows(rec, settings, head)
    table = pd.DataFrame(rows, columns=PRIOR_SENSITIVITY_COLUMNS)
    return table.astype({"flag": bool, "primary": bool})
