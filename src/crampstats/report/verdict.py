"""The report's verdict panel: each comparison met or not met under the plan's rule.

Reads ``tables/decisions.csv``, ``tables/operating_characteristics.csv`` and the plan's entry of
``provenance.json`` (:func:`crampstats.plan.plan_status`); builds the context of the panel at
the top of the page. Nothing here computes a verdict: it shows what the compare step decided.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from crampstats.plan import parse_plan
from crampstats.report import text
from crampstats.report.common import ReportContext, cell_text

#: Plain words for the plan's keys (docs/analysis-plan.md).
STRATEGY_TEXT = {
    "none": "none: each comparison with control is judged on its own rule",
    "fixed_sequence": "fixed testing order, stopping at the first comparison that fails",
    "calibrated": (
        "a common threshold for the probability of any benefit (P(RR < 1); P(difference < 0) "
        "for intensity), calibrated by simulation under the global null so that the chance of "
        "any false-positive verdict is at most alpha"
    ),
    "exchangeable": (
        "an exchangeable (hierarchical) prior over the active arms' log rate ratios, with the "
        "P(RR < 1) threshold calibrated under the global null as for 'calibrated'"
    ),
}
EVENT_TEXT = {
    "hypothetical": "hypothetical (diary the event affects treated as missing at random)",
    "treatment_policy": "treatment policy (diary the event affects used as collected)",
    "composite": "composite",
}


def event_counts(intercurrent: pd.DataFrame, event: str) -> str:
    """Say how many subjects had ``event`` and what became of their diary, or ``""`` if none."""
    if not len(intercurrent):
        return ""
    mine = intercurrent[intercurrent["event"].astype(str) == event]
    if not len(mine):
        return ""
    per_arm = ", ".join(
        f"{text.label(str(r['arm']))} {int(r['subjects'])}" for r in mine.to_dict("records")
    )
    days = int(mine["diarised_days"].sum())
    fate = "used" if bool(mine["used"].iloc[0]) else "left out"
    return f"subjects per arm: {per_arm}; {days} diarised days the event affects {fate}"


def rate_text(x: Any) -> str:
    """Format a probability as a percentage: one decimal, two significant digits below 1 %."""
    if text.is_missing(x):
        return text.MISSING
    pct = 100 * float(x)
    return f"{pct:.2g} %" if pct < 1 else f"{pct:.1f} %"


def _sizes_text(op: pd.Series | None) -> str:
    """Subjects of a comparison: arm vs control, or patients who are their own control."""
    if op is None:
        return ""
    if not text.is_missing(op["patient_effect_sd"]):
        return f"{int(op['n_arm'])} patients, each their own control"
    return f"{int(op['n_arm'])} vs {int(op['n_control'])}"


def _failed_primary(ctx: ReportContext, endpoint: str) -> dict[str, Any]:
    """Return the panel of a plan whose primary endpoint (an endpoint model) made no decisions.

    Its analysis failed or did not run: the panel says so and why, rather than leaving the page
    without a verdict while other sections call that endpoint primary.
    """
    diag = ctx.tables.get("diagnostics_secondary", pd.DataFrame())
    mine = diag[diag["endpoint"].astype(str) == endpoint] if len(diag) else diag
    reason = f"the {endpoint} analysis did not run"
    if len(mine):
        reason = f"the {endpoint} analysis did not complete ({cell_text(mine['reasons'].iloc[0])})"
    return {"no_verdict": reason, "endpoint": endpoint}


def verdict_section(ctx: ReportContext) -> dict[str, Any] | None:
    """Return the verdict panel's context, or ``None`` when the run made no decisions.

    A plan whose primary endpoint is intensity gets a panel even without decisions: it says that
    no comparison was decided, and why.
    """
    decisions = ctx.tables.get("decisions", pd.DataFrame())
    plan = parse_plan(ctx.config)
    if not len(decisions):
        return _failed_primary(ctx, plan.endpoint) if plan.endpoint == "intensity" else None
    status = ctx.results.provenance.get("analysis_plan") or {}
    oc = ctx.tables.get("operating_characteristics", pd.DataFrame())
    oc = oc.set_index(oc["arm"].astype(str)) if len(oc) else oc
    rows = []
    for arm in dict.fromkeys(decisions["arm"].astype(str)):
        mine = decisions[decisions["arm"].astype(str) == arm]
        success = mine[mine["rule"].astype(str) == "success"]
        met = bool(len(success)) and str(success["met"].iloc[0]).lower() == "true"
        criteria = [
            f"{cell_text(r['quantity'])} = {text.prob(r['probability'])} "
            f"(needs >= {float(r['threshold']):.4g})"
            for r in mine[mine["rule"].astype(str) != "success"].to_dict("records")
        ]
        op = oc.loc[arm] if len(oc) and arm in oc.index else None
        rows.append(
            {
                "arm": text.label(arm, capital=True),
                "met": met,
                "verdict": "met" if met else "not met",
                "criteria": "; ".join(criteria),
                "multiplicity": cell_text(mine["multiplicity"].iloc[0]),
                "n": _sizes_text(op),
                "fpr": rate_text(op["false_positive_rate"]) if op is not None else text.MISSING,
                "power": rate_text(op["power"]) if op is not None else text.MISSING,
            }
        )
    family = text.MISSING
    approximation = ""
    if len(oc):
        family = rate_text(oc["family_false_positive_rate"].iloc[0])
        approximation = str(oc["approximation"].iloc[0])
    frozen = status.get("status") or "not recorded"
    planning = f"RR {plan.planning_rate_ratio:g}"
    if plan.endpoint == "intensity":
        target = plan.planning_difference
        planning = "" if target is None else f"difference {target:g}"
    return {
        "rule": plan.rule,
        "strategy": STRATEGY_TEXT.get(plan.strategy, plan.strategy),
        "alpha": f"{plan.alpha:g}",
        "population": plan.population.replace("_", " "),
        "endpoint": plan.endpoint.replace("_", " "),
        "summary_measure": plan.summary_measure.replace("_", " "),
        "events": [
            {
                "event": e.replace("_", " "),
                "strategy": EVENT_TEXT.get(s, s),
                "counts": event_counts(ctx.results.intercurrent, e),
            }
            for e, s in plan.intercurrent_events.items()
        ],
        "planning": planning,
        "rows": rows,
        "family_fpr": family,
        "approximation": approximation,
        "plan_hash": cell_text(status.get("plan_hash") or decisions["plan_hash"].iloc[0]),
        "frozen_status": frozen,
        "frozen_utc": cell_text(status.get("frozen_utc")),
        "frozen_hash": cell_text(status.get("frozen_hash")),
        "changed": bool(status.get("changed_after_freeze")),
        "has_oc": bool(len(oc)),
    }
