"""The report's prior sensitivity section, from ``tables/prior_sensitivity.csv``.

Per active arm of the primary model, one sentence saying whether the conclusion (the side of no
change the interval lies on, and the decision on ``P(RR < 1)``) is the same under every prior
tried, with the numbers under each; then one sentence per model naming the parameters whose
posterior moves when the prior is power-scaled. Neutral words only: "depends on the prior" or
"is the same under every prior tried", never a verdict on the treatment.
"""

from __future__ import annotations

import json
from typing import Any

import pandas as pd

from crampstats.report.common import Column, ReportContext, cell_text, digits_of, table
from crampstats.report.load import read_csv_table
from crampstats.report.text import interval, label, prob

__all__ = ["power_scaling_sentences", "prior_sensitivity_section", "refit_sentences"]

#: The table's file inside a results folder.
SOURCE = "tables/prior_sensitivity.csv"


def _prior_name(name: str, settings: Any) -> str:
    """Name a prior for prose, e.g. ``the sceptical prior (log RR ~ Normal(0, 0.2245))``."""
    if name == "default":
        return "the configured prior"
    try:
        values = json.loads(str(settings)) if not pd.isna(settings) else {}
    except (TypeError, ValueError):
        values = {}
    sd = values.get("prior_log_rr_sd")
    if sd is not None and len(values) == 1:
        return f"the {label(name)} prior (log RR ~ Normal(0, {float(sd):g}))"
    return f"the {label(name)} prior"


def _flag(value: Any) -> bool:
    return str(value).strip().lower() in ("true", "1")


def refit_sentences(
    rows: pd.DataFrame, control: str, level_text: str, probability: float = 0.975
) -> list[str]:
    """One sentence per arm of the primary model's refit rows.

    Parameters
    ----------
    rows
        Rows of ``prior_sensitivity.csv`` with ``method == "refit"`` (one model).
    control
        The control arm.
    level_text
        Interval level as text, e.g. ``95 %``.
    probability
        The decision probability of ``P(RR < 1)`` (``analysis.prior_sensitivity``).

    Returns
    -------
    list of str
        Plain text (the template escapes it).
    """
    out = []
    for arm, part in rows.groupby("arm", sort=False):
        flagged = part[part["flag"].map(_flag)]
        numbers = "; ".join(
            f"under {_prior_name(r['prior'], r['prior_settings'])} P(RR < 1) is "
            f"{prob(r['p_rr_below_1'])} ({level_text} CrI {interval(r['rr_lower'], r['rr_upper'])})"
            + (
                ""
                if str(r.get("status", "ok")) == "ok"
                else ", a fit that failed the convergence gate"
            )
            for r in part.to_dict("records")
        )
        numbers = numbers[:1].upper() + numbers[1:]
        head = f"{label(arm, capital=True)} versus {label(control)}"
        if len(flagged):
            which = ", ".join(label(p) for p in flagged["prior"])
            reasons = "; ".join(str(r) for r in flagged["reason"] if str(r).strip())
            out.append(
                f"{head}: the conclusion depends on the prior ({which}: {reasons}). {numbers}."
            )
        else:
            out.append(
                f"{head}: the conclusion (the interval's side of no change, and whether P(RR < 1) "
                f"exceeds {probability:g}) is the same under every prior tried. {numbers}."
            )
    return out


def power_scaling_sentences(rows: pd.DataFrame) -> list[str]:
    """One sentence per model: which parameters' posteriors move when the prior is power-scaled."""
    out = []
    for model, part in rows.groupby("model", sort=False):
        flagged = part[part["flag"].map(_flag)]
        effects = part[part["parameter"] == "log_rr"]
        rr_flagged = effects[effects["flag"].map(_flag)]
        names = ", ".join(
            f"{p}{f' ({label(a)})' if str(a).strip() and not pd.isna(a) else ''}"
            for p, a in zip(flagged["parameter"], flagged["arm"], strict=True)
        )
        if not len(flagged):
            out.append(
                f"{model}: power-scaling the prior moves no parameter's posterior beyond the "
                "threshold; the data dominate the priors."
            )
            continue
        rr_text = (
            "including the log rate ratio of " + ", ".join(label(a) for a in rr_flagged["arm"])
            if len(rr_flagged)
            else "not the log rate ratios"
        )
        out.append(
            f"{model}: power-scaling the prior moves the posterior of {names} ({rr_text}); "
            f"{'these parameters are' if len(flagged) > 1 else 'it is'} informed by the prior as "
            "well as the data."
        )
    return out


def prior_sensitivity_section(ctx: ReportContext) -> dict[str, Any] | None:
    """Sentences and the table of the prior sensitivity analysis, or ``None`` without one."""
    path = ctx.results.path / SOURCE
    if not path.is_file():
        return None
    frame = read_csv_table(path)
    if frame.empty or "method" not in frame.columns:
        return None
    refits = frame[(frame["method"] == "refit") & frame["primary"].map(_flag)]
    scaling = frame[frame["method"] == "power_scaling"]
    columns: list[Column] = [
        ("model", "Model", cell_text),
        ("method", "Method", cell_text),
        ("prior", "Prior", cell_text),
        ("parameter", "Parameter", cell_text),
        ("arm", "Arm", cell_text),
        ("rr_median", "RR", digits_of(2)),
        ("rr_lower", "Lower", digits_of(2)),
        ("rr_upper", "Upper", digits_of(2)),
        ("p_rr_below_1", "P(RR < 1)", prob),
        ("psense_prior", "Prior sens.", digits_of(3)),
        ("psense_likelihood", "Lik. sens.", digits_of(3)),
        ("flag", "Flag", lambda x: "yes" if _flag(x) else ""),
        ("reason", "Reason", cell_text),
    ]
    settings = (getattr(ctx, "analysis", None) or {}).get("prior_sensitivity") or {}
    probability = float(settings.get("decision_probability", 0.975))
    return {
        "refit": refit_sentences(refits, ctx.control, ctx.level_text, probability),
        "power_scaling": power_scaling_sentences(scaling),
        "table": table(frame, columns, source=SOURCE),
    }
