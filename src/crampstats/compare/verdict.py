"""The verdict of a trial: each comparison with control under the plan's success rule.

Pure functions from the primary fit and the resolved config to two tables:

- ``decisions`` (:data:`DECISIONS_COLUMNS`): per active arm one row per criterion of the success
  rule and one ``success`` row (all criteria and the family-wise strategy), from
  :func:`crampstats.decisions.success_verdicts`, with the plan's hash;
- ``operating_characteristics`` (:data:`OPERATING_COLUMNS`): the rule's false-positive rate and
  its power at the planning effect at this trial's size, from the closed-form normal
  approximation of the negative-binomial Wald statistic (Zhu and Lakkis 2014,
  :mod:`crampstats.closed_form`) evaluated at the primary fit's control rate, dispersion and
  mean exposure; the family-wise rate from :mod:`crampstats.multiplicity`.

Only an ``nb_totals`` primary (a parallel trial) gets operating characteristics: the closed form
is that of two independent negative-binomial groups.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from crampstats import decisions
from crampstats.closed_form import zhu_lakkis_variance
from crampstats.models import ENDPOINT
from crampstats.multiplicity import (
    Hierarchical,
    calibrated_probability,
    family_false_positive_rate,
    null_variance,
)
from crampstats.plan import Plan, parse_plan, plan_status

#: A fit record (:class:`crampstats.compare.tables.FitRecord`, which imports this module; duck
#: typed here to keep the import graph acyclic): ``idata``, ``model``, ``prepared``.
FitRecord = Any

DECISIONS_COLUMNS = [
    "trial_id", "endpoint", "arm", "comparator", "rule", "quantity", "probability", "threshold",
    "met", "multiplicity", "plan_hash",
]  # fmt: skip
OPERATING_COLUMNS = [
    "trial_id", "endpoint", "arm", "comparator", "n_arm", "n_control", "control_rate_per_day",
    "k", "exposure_days", "planning_rr", "false_positive_rate", "family_false_positive_rate",
    "power", "strategy", "approximation", "plan_hash",
]  # fmt: skip
#: How the operating characteristics were computed (shown in the report's verdict panel).
APPROXIMATION = (
    "closed-form normal approximation of the negative-binomial log rate ratio (Zhu and Lakkis "
    "2014) at this trial's allocation and the primary fit's control rate, dispersion and mean "
    "exposure; family-wise rate by Monte Carlo of the correlated normal approximation with the "
    "shared control"
)


def allocation(rec: FitRecord, control: str) -> tuple[list[str], list[int]]:
    """Arms (control first, then the fit's active arms) and their numbers of subjects.

    Zero subjects everywhere for a within-subject design (crossover), whose subjects take every
    treatment: the plan check refuses the strategies that need an allocation there.
    """
    actives = [str(a) for a in rec.idata["posterior"]["log_rr"]["arm"].values]
    names = [control, *actives]
    if "arm" not in rec.prepared.subject_data.data_vars:  # within-subject designs: no groups
        return names, [0] * len(names)
    arms = pd.Series(rec.prepared.subject_data["arm"].values).astype(str)
    return names, [int((arms == a).sum()) for a in names]


def nb_parameters(rec: FitRecord) -> dict[str, float]:
    """Control daily rate, size ``k`` and mean exposure of a fit record.

    See :func:`crampstats.decisions.nb_parameters`.
    """
    exposure = rec.prepared.subject_data["exposure_days"].values
    return decisions.nb_parameters(rec.model, rec.idata, exposure)


def calibrated_threshold(plan: Plan, n_per_arm: list[int], variance: float | None) -> float | None:
    """Return the common P(RR < 1) threshold of ``calibrated`` and ``exchangeable`` (else None)."""
    if not plan.calibrates:
        return None
    prior = None
    if plan.strategy == "exchangeable":
        if variance is None:
            raise ValueError("the exchangeable calibration needs the per-subject variance")
        prior = Hierarchical(plan.prior_mu_sd, plan.prior_tau_sd)
    return calibrated_probability(
        n_per_arm, plan.alpha, plan.calibration_draws, plan.seed, variance or 1.0, prior
    )


def _primary(records: Mapping[str, FitRecord]) -> tuple[str, FitRecord] | None:
    for name, rec in records.items():
        post = rec.idata["posterior"]
        if "log_rr" in post and "arm" in post["log_rr"].dims:
            return name, rec
        return None
    return None


def verdict_tables(
    records: Mapping[str, FitRecord], config: Mapping[str, Any]
) -> dict[str, pd.DataFrame]:
    """Build ``decisions`` and ``operating_characteristics`` from the primary fit.

    Parameters
    ----------
    records
        Model name -> fit record, primary first.
    config
        Resolved trial configuration (``analysis.plan``, control arm, ``plan_frozen``).

    Returns
    -------
    dict
        ``decisions`` and ``operating_characteristics`` (empty with their columns when the
        primary fit has no per-arm log rate ratio).
    """
    empty = {
        "decisions": pd.DataFrame(columns=DECISIONS_COLUMNS),
        "operating_characteristics": pd.DataFrame(columns=OPERATING_COLUMNS),
    }
    primary = _primary(records)
    if primary is None:
        return empty
    name, rec = primary
    plan = parse_plan(config)
    control = str(config.get("control_arm", "placebo"))
    head = {
        "trial_id": str(config.get("trial_id", "")),
        "endpoint": ENDPOINT,
        "comparator": control,
    }
    digest = plan_status(config)["plan_hash"]
    arms, n = allocation(rec, control)
    params = nb_parameters(rec) if name == "nb_totals" else None
    variance = null_variance(params) if params else None
    threshold = calibrated_threshold(plan, n, variance)
    verdicts = decisions.success_verdicts(
        rec.idata,
        [(c.rate_ratio, c.probability) for c in plan.criteria],
        plan.strategy,
        plan.order,
        threshold,
    )
    if threshold is not None:
        verdicts["multiplicity"] = (
            f"{plan.strategy}: common P(RR < 1) threshold {threshold:.4f} keeps the family-wise "
            f"false-positive rate <= {plan.alpha:g} (calibrated under the global null)"
        )
    table = verdicts.assign(**head, plan_hash=digest)[DECISIONS_COLUMNS]
    out = {"decisions": table, "operating_characteristics": empty["operating_characteristics"]}
    if params is not None:
        out["operating_characteristics"] = operating_rows(plan, arms, n, params, threshold).assign(
            **head, plan_hash=digest
        )[OPERATING_COLUMNS]
    return out


def rule_power(
    plan: Plan, params: Mapping[str, float], n_control: int, ratio: float, rr: float,
    calibrated: float | None = None,
) -> float:  # fmt: skip
    """Probability that one comparison meets every criterion when the true rate ratio is ``rr``.

    Normal approximation: the estimate ``y ~ N(log rr, se^2)`` with ``se^2 = V / n_control``
    (:func:`crampstats.closed_form.zhu_lakkis_variance` at ``rr``) and a flat posterior
    ``N(y, se^2)``; criterion ``(t, p)`` holds when ``y <= log t - se z_p``, so all hold when
    ``y`` is below the smallest of these bounds. With the single criterion ``(1, 1 - alpha)``
    this is :func:`crampstats.closed_form.zhu_lakkis_power` (tested).
    """
    se = np.sqrt(
        zhu_lakkis_variance(params["rate"], rr, params["k"], params["exposure"], ratio) / n_control
    )
    bounds = []
    for c in plan.criteria:
        p = calibrated if calibrated is not None and c.rate_ratio == 1.0 else c.probability
        bounds.append(np.log(c.rate_ratio) - se * stats.norm.ppf(p))
    return float(stats.norm.cdf((min(bounds) - np.log(rr)) / se))


def operating_rows(
    plan: Plan,
    arms: list[str],
    n: list[int],
    params: Mapping[str, float],
    calibrated: float | None,
) -> pd.DataFrame:
    """Per active arm: false-positive rate and power at the planning effect of the rule.

    ``false_positive_rate`` is :func:`rule_power` at RR 1 (one comparison);
    ``family_false_positive_rate`` the chance under the global null that any comparison
    succeeds: by Monte Carlo of the correlated normal approximation for ``none`` (P(RR < 1)
    criterion only, an upper bound), the first comparison's rate for ``fixed_sequence``, and
    alpha by construction for ``calibrated`` and ``exchangeable``.
    """
    n_control = n[0]
    first = next((c for c in plan.criteria if c.rate_ratio == 1.0), None)
    if plan.calibrates:
        family = plan.alpha
    elif plan.strategy == "fixed_sequence":
        family = None  # filled from the first arm's rate below
    elif first is not None:
        family = family_false_positive_rate(n, first.probability, plan.calibration_draws, plan.seed)
    else:
        family = float("nan")
    rows = []
    for arm, n_arm in zip(arms[1:], n[1:], strict=True):
        ratio = n_arm / n_control if n_control else float("nan")
        ok = n_control > 0 and n_arm > 0
        fpr = rule_power(plan, params, n_control, ratio, 1.0, calibrated) if ok else np.nan
        power = (
            rule_power(plan, params, n_control, ratio, plan.planning_rate_ratio, calibrated)
            if ok
            else np.nan
        )
        rows.append(
            {
                "arm": arm,
                "n_arm": n_arm,
                "n_control": n_control,
                "control_rate_per_day": params["rate"],
                "k": params["k"],
                "exposure_days": params["exposure"],
                "planning_rr": plan.planning_rate_ratio,
                "false_positive_rate": fpr,
                "family_false_positive_rate": family,
                "power": power,
                "strategy": plan.strategy,
                "approximation": APPROXIMATION,
            }
        )
    out = pd.DataFrame(rows)
    if plan.strategy == "fixed_sequence" and len(out):
        first_arm = plan.order[0] if plan.order else out["arm"].iloc[0]
        out["family_false_positive_rate"] = float(
            out.loc[out["arm"] == first_arm, "false_positive_rate"].iloc[0]
        )
    return out
