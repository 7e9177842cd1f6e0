"""Per-arm decisions of a simulated trial, and the family-wise rates of several arms.

The seam between the power simulation and the analysis plan: :func:`arm_decisions` turns the
posterior draws of one trial into one decision per arm with the analysis' own code, so power and
analysis decide alike. Strategy ``none`` judges every arm on its own with
:func:`crampstats.decisions.probability_below` and :func:`crampstats.decisions.rule_met`
(success when P > probability, strictly, the power module's rule since its first version);
``fixed_sequence``, ``calibrated`` and ``exchangeable`` are the analysis plan's family-wise
strategies, decided by :func:`crampstats.decisions.success_verdicts` (which states its criterion
as P >= probability, as the plan does) with the calibrated threshold of
:func:`crampstats.multiplicity.calibrated_probability` (:func:`calibrated_threshold`;
:func:`exchangeable_threshold` for ``exchangeable``, whose draws come from the hierarchical-prior
fit, as in the analysis).

:func:`family_table` reduces the decisions of a multi-arm design to what a protocol reports:
P(at least one success), P(every truly effective arm detected) and the family-wise
false-positive rate (P(at least one success among arms whose true effect lies in the rule's
null)); under the global null (every arm at the rule's null) the last is the family-wise error
rate.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from crampstats.decisions import probability_below, rule_met, success_verdicts
from crampstats.multiplicity import Hierarchical, calibrated_probability, null_variance
from crampstats.power.intervals import rate_interval

#: Family-wise strategies the power simulation evaluates (``multiplicity.strategies``).
STRATEGIES = ("none", "fixed_sequence", "calibrated", "exchangeable")

#: Columns of ``power_family.csv``, in order.
FAMILY_COLUMNS = (
    "design", "n_per_arm", "rule", "null_rr", "replicates", "n_arms", "n_effective",
    "p_any_success", "p_any_success_lower", "p_any_success_upper",
    "p_all_effective_detected", "p_all_effective_lower", "p_all_effective_upper",
    "family_false_positive", "family_false_positive_lower", "family_false_positive_upper",
    "global_null", "multiplicity", "interval",
)  # fmt: skip


def decision_column(rule: str, strategy: str = "none") -> str:
    """Name of the decisions column of a rule under a strategy (``decision[rule]`` for none)."""
    return f"decision[{rule}]" if strategy == "none" else f"decision[{rule}|{strategy}]"


def calibrated_threshold(sizes: list[int], multiplicity: Mapping[str, Any]) -> float:
    """Return the ``calibrated`` strategy's common P(RR < 1) threshold (sizes: control first)."""
    return calibrated_probability(
        sizes,
        float(multiplicity.get("alpha", 0.025)),
        int(multiplicity.get("calibration_draws", 200_000)),
        int(multiplicity.get("seed", 14)),
    )


def exchangeable_threshold(
    sizes: list[int], params: Mapping[str, float], multiplicity: Mapping[str, Any]
) -> float:
    """Return the ``exchangeable`` strategy's common P(RR < 1) threshold for one trial.

    As the analysis computes it (:func:`crampstats.compare.verdict.calibrated_threshold`): the
    hierarchical normal approximation at the fit's per-subject variance
    (:func:`crampstats.multiplicity.null_variance` of ``params``, from
    :func:`crampstats.decisions.nb_parameters`), with the plan's prior scales; cached by its
    inputs, so trials whose rounded variance agree share one calibration.
    """
    prior = Hierarchical(
        float(multiplicity.get("prior_mu_sd", 1.0)), float(multiplicity.get("prior_tau_sd", 0.5))
    )
    return calibrated_probability(
        sizes,
        float(multiplicity.get("alpha", 0.025)),
        int(multiplicity.get("calibration_draws", 200_000)),
        int(multiplicity.get("seed", 14)),
        null_variance(params),
        prior,
    )


def arm_decisions(
    draws: np.ndarray,
    arms: list[str],
    rule: Mapping[str, Any],
    strategy: str = "none",
    order: list[str] | tuple[str, ...] = (),
    calibrated: float | None = None,
) -> dict[str, bool]:
    """Decide every active arm of one trial under one rule and one family-wise strategy.

    Parameters
    ----------
    draws
        Posterior draws of the log rate ratios, shape ``(draws, len(arms))``.
    arms
        Active arms, in the columns' order.
    rule
        A rule of the power configuration (``threshold_rr``, ``probability``).
    strategy
        ``none``, ``fixed_sequence``, ``calibrated`` or ``exchangeable`` (module docstring;
        ``exchangeable`` expects the draws of the hierarchical-prior fit).
    order
        Testing order of ``fixed_sequence`` (default ``arms``).
    calibrated
        Common threshold of ``calibrated`` (:func:`calibrated_threshold`) or ``exchangeable``
        (:func:`exchangeable_threshold`).

    Returns
    -------
    dict
        Arm -> success.
    """
    t, required = float(rule["threshold_rr"]), float(rule["probability"])
    if strategy == "none":
        p = probability_below(draws.T, np.log(t))
        return {arm: bool(rule_met(p[i], required)) for i, arm in enumerate(arms)}
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}; known: {STRATEGIES}")
    posterior = xr.DataArray(draws.T, dims=("arm", "sample"), coords={"arm": list(arms)})
    table = success_verdicts(
        posterior, [(t, required)], strategy, list(order) or list(arms), calibrated
    )
    success = table[table["rule"] == "success"]
    return {str(a): bool(m) for a, m in zip(success["arm"], success["met"], strict=True)}


def family_table(
    frame: pd.DataFrame,
    rules: list[dict[str, Any]],
    method: str = "clopper_pearson",
    strategies: list[str] | tuple[str, ...] = ("none",),
) -> pd.DataFrame:
    """Family-wise operating characteristics per design, patients per arm and rule.

    Parameters
    ----------
    frame
        Decisions of one or several designs (:func:`crampstats.power.collect_decisions`), one
        row per replicate x ``n_per_arm`` x active arm.
    rules
        The rules of the run (their ``threshold_rr`` sets each rule's null).
    method
        Interval of every rate (:func:`crampstats.power.intervals.rate_interval`).
    strategies
        Family-wise strategies whose decision columns are in ``frame`` (one block of rows each).

    Returns
    -------
    pandas.DataFrame
        Columns :data:`FAMILY_COLUMNS`. An arm is *truly effective* under a rule when its true
        rate ratio (drawn per replicate under a design prior) is below the rule's
        ``threshold_rr``, else it is in the rule's null. ``p_all_effective_detected`` is
        computed over replicates with at least one effective arm, ``family_false_positive``
        over those with at least one null arm; ``global_null`` marks design points whose arms
        are all in the null in every replicate (``family_false_positive`` is then the
        family-wise error rate at RR = ``null_rr``).
    """
    rows = []
    for (design, n), group in frame.groupby(["design", "n_per_arm"], sort=True):
        for rule, strategy in [(r, s) for r in rules for s in strategies]:
            t = float(rule["threshold_rr"])
            column = decision_column(rule["name"], strategy)
            if column not in group:
                continue
            success = group.pivot(index="replicate", columns="arm", values=column)
            true_rr = group.pivot(index="replicate", columns="arm", values="true_rr")
            success = success.astype(bool).to_numpy()
            effective = true_rr.to_numpy(float) < t
            reps = success.shape[0]
            any_success = success.any(axis=1)
            has_eff = effective.any(axis=1)
            all_found = (success | ~effective).all(axis=1)[has_eff]
            has_null = (~effective).any(axis=1)
            false_pos = (success & ~effective).any(axis=1)[has_null]
            row: dict[str, Any] = {
                "design": design,
                "n_per_arm": int(n),
                "rule": rule["name"],
                "null_rr": t,
                "replicates": reps,
                "n_arms": success.shape[1],
                "n_effective": float(effective.sum(axis=1).mean()),
                "global_null": bool((~effective).all()),
                "multiplicity": strategy,
                "interval": method,
            }
            for key, lo, hi, hits in (
                ("p_any_success", "p_any_success_lower", "p_any_success_upper", any_success),
                ("p_all_effective_detected", "p_all_effective_lower", "p_all_effective_upper",
                 all_found),
                ("family_false_positive", "family_false_positive_lower",
                 "family_false_positive_upper", false_pos),
            ):  # fmt: skip
                if hits.size:
                    row[key] = float(hits.mean())
                    row[lo], row[hi] = rate_interval(int(hits.sum()), hits.size, method)
                else:
                    row[key] = row[lo] = row[hi] = np.nan
            rows.append(row)
    return pd.DataFrame(rows, columns=list(FAMILY_COLUMNS))
