"""Report sections of the secondary endpoints, their failed fits and their methods.

Sections: EMG endpoints, intensity and responders, safety, outcome-measure properties; failed
secondary fits join the alert at the top of the page, and each secondary model gets its
paragraph under Methods.

Each section builder takes the report's context (:class:`crampstats.report.build.ReportContext`,
whose ``tables`` hold the CSV tables of ``crampstats.secondary``) and returns the template's
context of its section, or ``None`` when none of the section's tables exist, in which case the
section and its entry in the contents are left out, as every optional section is. Builders are
pure: they read only the loaded tables, the run's configuration and the fits' attributes.

Tables may lack optional columns or be empty; a builder shows what is there and leaves the rest
out (a missing cell is a dash). Every string stays plain text: the template escapes it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from crampstats.catalogue import ENDPOINTS, endpoint_entry
from crampstats.models.safety import QUININE_SIGNAL_CATEGORIES
from crampstats.report import figures, text
from crampstats.report.common import Column, ReportContext, cell_text, failed_row, table
from crampstats.report.text import integer, num, prob

#: Categories of quinine's known harms, flagged in any arm from one event (docs/calibration.md,
#: quinine row).
QUININE_SIGNALS = QUININE_SIGNAL_CATEGORIES
#: Endpoints with a Bayesian model and a frequentist twin, in the order of the tables.
MODEL_ENDPOINTS = tuple(e.id for e in ENDPOINTS if e.model is not None)
#: Endpoints of ``outcome_measures.csv`` in report order (others follow, sorted).
OUTCOME_ENDPOINTS = (
    "cramp_frequency", "ctf", "cramp_frequency_vs_ctf", "afterdischarge_grade", "afterdischarge",
    "intensity",
)  # fmt: skip
#: Order of the outcome-measure properties (``srm:<arm>`` sorts as ``srm``).
PROPERTIES = tuple(text.PROPERTY_TEXT)

#: Forest panels: (endpoint, measure) -> title, axis label, log axis, no-effect value, side of
#: benefit.
PANELS: dict[tuple[str, str], tuple[str, str, bool, float, str]] = {
    ("ctf", "ratio_of_medians"): (
        "Cramp threshold frequency",
        "ratio of median CTF, arm / control (log scale)",
        True, 1.0, "above",
    ),
    ("afterdischarge", "odds_ratio_lower_grade"): (
        "After-discharge grade",
        "odds ratio of a lower grade (log scale)",
        True, 1.0, "above",
    ),
    ("intensity", "difference_in_mean_intensity"): (
        "Cramp intensity",
        "difference in mean intensity, arm \u2212 control (0-10 scale)",
        False, 0.0, "below",
    ),
    ("responder", "risk_difference"): (
        "Responders",
        "risk difference, arm \u2212 control",
        False, 0.0, "above",
    ),
}  # fmt: skip

_EFFECT_COLUMNS = ("model", "comparator", "lower", "upper", "p_benefit", "status")


# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------
def _frame(ctx: ReportContext, name: str) -> pd.DataFrame:
    return ctx.tables.get(name, pd.DataFrame())


def _has(df: pd.DataFrame, *columns: str) -> bool:
    """Return True when the frame has rows and every named column."""
    return len(df) > 0 and set(columns) <= set(df.columns)


def _float(x: Any) -> float:
    try:
        return float(x)
    except (TypeError, ValueError):
        return math.nan


def _failed(status: Any) -> bool:
    return not text.is_missing(status) and str(status) not in ("ok", "<NA>", "nan")


def _truthy(x: Any) -> bool:
    if text.is_missing(x):
        return False
    if isinstance(x, str):
        return x.strip().lower() in ("true", "1", "yes")
    return bool(x)


def _with_numeric(t: dict[str, Any], headers: Sequence[str]) -> dict[str, Any]:
    """Right-align the named columns of a table built from preformatted strings."""
    t["numeric"] = [h in headers or n for h, n in zip(t["headers"], t["numeric"], strict=True)]
    return t


def _arm_rank(ctx: ReportContext, arms: pd.Series) -> pd.Series:
    order = ctx.arm_order(list(dict.fromkeys(arms.astype(str))))
    return arms.astype(str).map({a: i for i, a in enumerate(order)})


def _digits(measure: str) -> int:
    # a risk difference is a difference of proportions: two decimals would hide 1 in 200
    return 3 if measure.partition(":")[0] == "risk_difference" else 2


def _kind(model: Any, endpoint: str) -> str:
    model = str(model)
    if model.endswith("_twin"):
        return "twin"
    return "bayes" if model in (endpoint, "<NA>", "nan") else model


def _analysis(kind: str) -> str:
    return {"bayes": "Bayesian", "twin": "twin"}.get(kind, kind)


def secondary_effects(ctx: ReportContext, endpoints: Sequence[str]) -> pd.DataFrame:
    """Rows of ``effects_secondary.csv`` for some endpoints, in report order.

    Adds ``kind`` (``bayes``/``twin``), ``base`` (measure without category), ``category`` (of
    a safety measure, else missing) and fills absent optional columns with missing values.
    Sorted by endpoint, measure, category, arm (control first) and Bayesian before twin.
    """
    eff = _frame(ctx, "effects_secondary")
    if not _has(eff, "endpoint", "arm", "measure", "estimate_median"):
        return pd.DataFrame()
    rows = eff[eff["endpoint"].astype(str).isin(endpoints)].copy()
    if not len(rows):
        return pd.DataFrame()
    for col in _EFFECT_COLUMNS:
        if col not in rows:
            rows[col] = np.nan
    parts = rows["measure"].astype(str).str.partition(":")
    rows["base"] = parts[0]
    rows["category"] = parts[2].where(parts[1] == ":", None)
    rows["kind"] = [_kind(m, e) for m, e in zip(rows["model"], rows["endpoint"], strict=True)]
    rows = rows.assign(
        _e=rows["endpoint"].astype(str).map({e: i for i, e in enumerate(endpoints)}),
        _c=rows["category"].fillna(""),
        _a=_arm_rank(ctx, rows["arm"]),
        _k=(rows["kind"] != "bayes").astype(int),
    )
    rows = rows.sort_values(["_e", "base", "_c", "_a", "_k"], kind="stable")
    return rows.drop(columns=["_e", "_c", "_a", "_k"]).reset_index(drop=True)


def _effects_table(ctx: ReportContext, rows: pd.DataFrame, p_header: str) -> dict[str, Any]:
    """Table of effect rows: measure, arm, (versus,) analysis, estimate, interval, P, fit.

    The comparator gets a column only when it is not the same in every row (the caption names
    it otherwise).
    """
    digits = [_digits(m) for m in rows["base"]]
    shown = pd.DataFrame(
        {
            "measure": [
                text.effect_label(e, m)
                for e, m in zip(rows["endpoint"], rows["measure"], strict=True)
            ],
            "arm": rows["arm"].astype(str),
            "comparator": rows["comparator"],
            "analysis": [_analysis(k) for k in rows["kind"]],
            **{
                col: [num(v, d) for v, d in zip(rows[src], digits, strict=True)]
                for col, src in (
                    ("estimate", "estimate_median"),
                    ("lower", "lower"),
                    ("upper", "upper"),
                )
            },
            "p_benefit": [prob(p) for p in rows["p_benefit"]],
            "status": rows["status"],
        }
    )
    versus = rows["comparator"].astype("string").nunique() > 1
    cols: list[Column] = [
        ("measure", "Measure", cell_text),
        ("arm", "Arm", cell_text),
        *([("comparator", "Versus", cell_text)] if versus else []),
        ("analysis", "Analysis", cell_text),
        ("estimate", "Estimate", cell_text),
        ("lower", f"{ctx.level_text} lower", cell_text),
        ("upper", f"{ctx.level_text} upper", cell_text),
        ("p_benefit", p_header, cell_text),
        ("status", "Fit", cell_text),
    ]
    t = table(shown, cols, source="tables/effects_secondary.csv", row_class=failed_row)
    numeric = ["Estimate", f"{ctx.level_text} lower", f"{ctx.level_text} upper", p_header]
    return _with_numeric(t, numeric)


def _forest(ctx: ReportContext, rows: pd.DataFrame, fig_id: str, title: str) -> Any:
    """Effect panels of the (endpoint, measure) pairs of :data:`PANELS` present in ``rows``."""
    panels, groups = [], []
    for (endpoint, measure), (head, xlabel, log, ref, benefit) in PANELS.items():
        part = rows[(rows["endpoint"].astype(str) == endpoint) & (rows["base"] == measure)]
        if not len(part):
            continue
        points = [
            figures.EffectPoint(
                str(r["arm"]),
                _float(r["estimate_median"]),
                _float(r["lower"]),
                _float(r["upper"]),
                "twin" if r["kind"] == "twin" else "bayes",
                _failed(r["status"]),
            )
            for r in part.to_dict("records")
        ]
        panels.append(figures.EffectPanel(head, xlabel, points, log, ref, benefit))
        groups += [p.group for p in points]
    if not panels:
        return None
    groups = ctx.arm_order(list(dict.fromkeys(groups)))
    return figures.effect_panels(groups, panels, fig_id=fig_id, title=title, level=ctx.level_text)


def _fits_table(ctx: ReportContext, endpoints: Sequence[str]) -> dict[str, Any] | None:
    """Convergence of the endpoints' Bayesian fits (``diagnostics_secondary.csv``)."""
    diag = _frame(ctx, "diagnostics_secondary")
    if not _has(diag, "endpoint"):
        return None
    rows = diag[diag["endpoint"].astype(str).isin(endpoints)].copy()
    if not len(rows):
        return None
    rows["_e"] = rows["endpoint"].astype(str).map({e: i for i, e in enumerate(endpoints)})
    rows = rows.sort_values("_e", kind="stable")
    cols: list[Column] = [
        ("model", "Model", cell_text),
        ("status", "Status", cell_text),
        ("rhat_max", "Max R-hat", lambda x: num(x, 3)),
        ("ess_bulk_min", "Min bulk ESS", integer),
        ("ess_tail_min", "Min tail ESS", integer),
        ("divergences", "Divergences", integer),
        ("reasons", "Reasons", cell_text),
    ]
    return table(rows, cols, row_class=failed_row)


# ---------------------------------------------------------------------------------------------
# EMG endpoints
# ---------------------------------------------------------------------------------------------
def emg_section(ctx: ReportContext) -> dict[str, Any] | None:
    """CTF and after-discharge effects (forest and table), fits, cramp potentials by visit."""
    rows = secondary_effects(ctx, ("ctf", "afterdischarge"))
    fits = _fits_table(ctx, ("ctf", "afterdischarge"))
    potential = _frame(ctx, "cramp_potential")
    potential_table = None
    if _has(potential, "arm"):
        potential = potential.assign(_a=_arm_rank(ctx, potential["arm"]))
        potential = potential.sort_values("_a", kind="stable").reset_index(drop=True)
        quartiles = [
            text.interval(lo, hi, 1)
            for lo, hi in zip(
                potential.get("q1_hz", pd.Series(np.nan, index=potential.index)),
                potential.get("q3_hz", pd.Series(np.nan, index=potential.index)),
                strict=True,
            )
        ]
        cols: list[Column] = [
            ("arm", "Arm", cell_text),
            ("visit", "Visit", cell_text),
            ("n", "n", integer),
            ("median_hz", "Median (Hz)", lambda x: num(x, 1)),
            ("iqr", "Quartiles (Hz)", cell_text),
            ("geometric_mean_hz", "Geometric mean (Hz)", lambda x: num(x, 1)),
            ("sd_log", "SD of log", lambda x: num(x, 2)),
        ]
        potential_table = _with_numeric(
            table(potential.assign(iqr=quartiles), cols, source="tables/cramp_potential.csv"),
            ["Quartiles (Hz)"],
        )
    if not len(rows) and fits is None and potential_table is None:
        return None
    present = list(dict.fromkeys(rows["endpoint"].astype(str))) if len(rows) else []
    return {
        "figure": _forest(
            ctx, rows, "fig-emg", f"EMG endpoints versus {ctx.control}: Bayesian and twin"
        )
        if len(rows)
        else None,
        "effects": _effects_table(ctx, rows, "P(benefit)") if len(rows) else None,
        "fits": fits,
        "cramp_potential": potential_table,
        "has_ctf": "ctf" in present,
        "has_afterdischarge": "afterdischarge" in present,
        "level": ctx.level_text,
    }


# ---------------------------------------------------------------------------------------------
# Intensity and responders
# ---------------------------------------------------------------------------------------------
def intensity_section(ctx: ReportContext) -> dict[str, Any] | None:
    """Intensity and responder effects (forest and table), fits, cramp locations."""
    rows = secondary_effects(ctx, ("intensity", "responder"))
    fits = _fits_table(ctx, ("intensity", "responder"))
    locations = _frame(ctx, "locations")
    locations_table = None
    if _has(locations, "arm"):
        locations = locations.assign(_a=_arm_rank(ctx, locations["arm"]))
        locations = locations.sort_values("_a", kind="stable").reset_index(drop=True)
        cols: list[Column] = [
            ("arm", "Arm", cell_text),
            ("period", "Period", cell_text),
            ("location", "Location", cell_text),
            ("subjects", "Subjects", integer),
            ("cramp_days", "Cramp days", integer),
            ("cramps", "Cramps", integer),
            ("share_of_cramp_days", "Share of cramp days", _percent),
        ]
        locations_table = table(locations, cols, source="tables/locations.csv")
    if not len(rows) and fits is None and locations_table is None:
        return None
    threshold, missing = _responder_settings(ctx)
    present = list(dict.fromkeys(rows["endpoint"].astype(str))) if len(rows) else []
    return {
        "figure": _forest(
            ctx, rows, "fig-intensity", f"Intensity and responders versus {ctx.control}"
        )
        if len(rows)
        else None,
        "effects": _effects_table(ctx, rows, "P(benefit)") if len(rows) else None,
        "fits": fits,
        "locations": locations_table,
        "has_intensity": "intensity" in present,
        "has_responder": "responder" in present,
        "responder_threshold": threshold,
        "responder_missing": missing,
        **_estimand_settings(ctx),
        "level": ctx.level_text,
    }


def _estimand_settings(ctx: ReportContext) -> dict[str, str]:
    """How withdrawal (responders) and absent cramps (intensity) were handled, in words."""
    settings = ctx.analysis.get("secondary") or {}
    withdrawal = str(settings.get("responder_withdrawal", "composite"))
    strategy = str(settings.get("intensity_strategy", "composite"))
    return {
        "responder_withdrawal": (
            "withdrawn patients counted as non-responders (composite strategy)"
            if withdrawal == "composite"
            else "withdrawn patients were judged on the days diarised before withdrawal, "
            "which credits short diaries with responses"
        ),
        "intensity_strategy": (
            "patients with at least a week of treatment-period diary and no cramp scored 0 "
            "(composite strategy: patients compared as randomised)"
            if strategy == "composite"
            else "only patients who still had rated cramps were compared (while on cramps): "
            "not a randomised comparison when a treatment stops cramps in some patients"
        ),
    }


def _responder_settings(ctx: ReportContext) -> tuple[str, str]:
    """Return the responder threshold (``50 %``) and what a missing diary counts as."""
    settings = ctx.analysis.get("secondary") or {}
    threshold = _float(settings.get("responder_threshold", 0.5))
    missing = str(settings.get("responder_missing", "nonresponder"))
    return f"{100 * threshold:g} %", (
        "counted as non-responders" if missing == "nonresponder" else "left out"
    )


def _percent(x: Any) -> str:
    return text.MISSING if text.is_missing(x) else f"{100 * float(x):.0f} %"


# ---------------------------------------------------------------------------------------------
# Safety
# ---------------------------------------------------------------------------------------------
def _categories(present: Sequence[str]) -> list[str]:
    """Categories in report order: quinine signals, others alphabetically, ``other`` last."""
    present = list(dict.fromkeys(str(c) for c in present))
    signals = [c for c in QUININE_SIGNALS if c in present]
    rest = sorted(c for c in present if c not in QUININE_SIGNALS and c != "other")
    return signals + rest + (["other"] if "other" in present else [])


def _incidence(safety: pd.DataFrame) -> pd.Series:
    if "incidence" in safety:
        return safety["incidence"].astype(float)
    if {"n_with_event", "n_subjects"} <= set(safety.columns):
        n = safety["n_subjects"].astype(float)
        return safety["n_with_event"].astype(float) / n.where(n > 0)
    return pd.Series(np.nan, index=safety.index)


def _signals(ctx: ReportContext) -> dict[str, Any]:
    """Return the quinine-signal box: events of the signal categories in any arm.

    ``safety_signals.csv`` lists every arm and signal category, with zero counts; the box shows
    the rows with an event and names the categories without any. Without that table the
    incidence table gives the same counts.
    """
    signals = _frame(ctx, "safety_signals")
    source = "tables/safety_signals.csv"
    if not len(signals.columns):
        safety = _frame(ctx, "safety")
        source = "tables/safety.csv"
        if _has(safety, "category"):
            signals = safety[safety["category"].astype(str).isin(QUININE_SIGNALS)]
        else:
            signals = pd.DataFrame()
    if len(signals) and "n_with_event" in signals:
        signals = signals[signals["n_with_event"].astype(float).fillna(0) > 0]
    rows = None
    seen: set[str] = set()
    if _has(signals, "category"):
        seen = set(signals["category"].astype(str))
        signals = signals.assign(
            _c=signals["category"]
            .astype(str)
            .map({c: i for i, c in enumerate(_categories(signals["category"].astype(str)))}),
            _a=_arm_rank(ctx, signals["arm"]) if "arm" in signals else 0,
        )
        signals = signals.sort_values(["_c", "_a"], kind="stable").reset_index(drop=True)
        if "any_serious" in signals:
            signals["serious"] = ["yes" if _truthy(v) else "no" for v in signals["any_serious"]]
        optional: list[Column] = [
            ("n_events", "Events", integer),
            ("serious", "Any serious", cell_text),
            ("terms", "Terms reported", cell_text),
            ("first_study_day", "First study day", integer),
        ]
        cols: list[Column] = [
            ("category", "Category", cell_text),
            ("arm", "Arm", cell_text),
            ("n_with_event", "Subjects with an event", integer),
            *[c for c in optional if c[0] in signals],
        ]
        rows = table(signals, cols)
    return {
        "rows": rows,
        "categories": _signal_names(),
        "without": [n for c, n in zip(QUININE_SIGNALS, _signal_names(), strict=True)
                    if c not in seen],
        "source": source,
    }  # fmt: skip


def _incidence_table(
    safety: pd.DataFrame, arms: list[str], categories: list[str]
) -> dict[str, Any]:
    """Category x arm: subjects with an event / subjects (incidence), serious ones noted."""
    records = []
    for category in categories:
        rec: dict[str, Any] = {"category": category}
        for j, arm in enumerate(arms):
            part = safety[
                (safety["arm"].astype(str) == arm) & (safety["category"].astype(str) == category)
            ]
            rec[f"arm{j}"] = _incidence_cell(part.iloc[0]) if len(part) else text.MISSING
        records.append(rec)
    cols: list[Column] = [("category", "Category", cell_text)]
    cols += [(f"arm{j}", arm, cell_text) for j, arm in enumerate(arms)]
    t = table(pd.DataFrame(records), cols, max_rows=10_000)
    return _with_numeric(t, arms)


def _incidence_cell(row: pd.Series) -> str:
    """``k/N (x %)``, with ``; s serious`` when any event was serious."""
    k, n = row.get("n_with_event"), row.get("n_subjects")
    share = row.get("incidence")
    if text.is_missing(share) and not text.is_missing(k) and not text.is_missing(n) and float(n):
        share = float(k) / float(n)
    cell = f"{integer(k)}/{integer(n)}"
    if not text.is_missing(share):
        cell += f" ({100 * float(share):.1f} %)"
    serious = row.get("n_serious")
    if not text.is_missing(serious) and float(serious) > 0:
        cell += f"; {integer(serious)} serious"
    return cell


def _safety_effects(ctx: ReportContext) -> dict[str, Any] | None:
    """Risk difference and risk ratio per category and arm, Bayesian and twin side by side."""
    rows = secondary_effects(ctx, ("safety",))
    if not len(rows):
        return None
    rows["category"] = rows["category"].fillna("all categories")
    # categories in the order of the incidence table, then arms and analyses as sorted
    order = {c: i for i, c in enumerate(_categories(rows["category"]))}
    rows = rows.sort_values("category", key=lambda c: c.map(order), kind="stable")
    keys = ["category", "arm", "kind"]
    out = []
    for (category, arm, kind), part in rows.groupby(keys, sort=False, dropna=False):
        failed = any(_failed(s) for s in part["status"])
        # a failed fit is named in the analysis cell (and its row is red): no room for a column
        analysis = _analysis(kind) + (" (failed)" if failed else "")
        rec: dict[str, Any] = {"category": category, "arm": arm, "analysis": analysis}
        by = {str(b): r for b, r in zip(part["base"], part.to_dict("records"), strict=True)}
        for base, prefix in (("risk_difference", "rd"), ("risk_ratio", "rr")):
            r = by.get(base, {})
            # estimate and interval in one cell: the table must fit the page without scrolling
            digits = _digits(base)
            interval = text.interval(r.get("lower"), r.get("upper"), digits)
            rec[prefix] = f"{num(r.get('estimate_median'), digits)} ({interval})"
        # both measures compare the same two incidences, so P(fewer events) is one number
        first = by.get("risk_difference") or by.get("risk_ratio") or {}
        rec["p"] = prob(first.get("p_benefit"))
        rec["status"] = "failed" if failed else "ok"
        out.append(rec)
    cols: list[Column] = [
        ("category", "Category", cell_text),
        ("arm", "Arm", cell_text),
        ("analysis", "Analysis", cell_text),
        ("rd", "Risk difference", cell_text),
        ("rr", "Risk ratio", cell_text),
        ("p", "P(fewer events)", cell_text),
    ]
    t = table(pd.DataFrame(out), cols, source="tables/effects_secondary.csv", row_class=failed_row)
    return _with_numeric(t, [cols[3][1], cols[4][1], "P(fewer events)"])


def safety_section(ctx: ReportContext) -> dict[str, Any] | None:
    """Quinine-signal box, incidence by arm and category (plot, table), effects, serious events."""
    safety = _frame(ctx, "safety")
    serious = _frame(ctx, "serious_events")
    effects = _safety_effects(ctx)
    fits = _fits_table(ctx, ("safety",))
    present = [
        bool(len(safety.columns)),
        bool(len(_frame(ctx, "safety_signals").columns)),
        bool(len(serious.columns)),
        effects is not None,
        fits is not None,
    ]
    if not any(present):
        return None
    figure = incidence_table = None
    if _has(safety, "arm", "category"):
        arms = ctx.arm_order(list(dict.fromkeys(safety["arm"].astype(str))))
        categories = _categories(safety["category"].astype(str))
        shares = safety.assign(incidence=_incidence(safety))
        figure = figures.incidence(
            shares,
            arms,
            categories,
            QUININE_SIGNALS,
            fig_id="fig-safety",
            title="Adverse-event incidence by category and arm",
        )
        incidence_table = _incidence_table(safety, arms, categories)
    serious_table = None
    if len(serious):
        if "arm" in serious:
            serious = serious.assign(_a=_arm_rank(ctx, serious["arm"]))
            order = ["_a", "study_day"] if "study_day" in serious else ["_a"]
            serious = serious.sort_values(order, kind="stable").reset_index(drop=True)
        cols: list[Column] = [
            ("subject_id", "Subject", cell_text),
            ("arm", "Arm", cell_text),
            ("term", "Term", cell_text),
            ("category", "Category", cell_text),
            ("study_day", "Study day", integer),
        ]
        serious_table = table(serious, cols, source="tables/serious_events.csv")
    return {
        "signals": _signals(ctx),
        "figure": figure,
        "incidence": incidence_table,
        "effects": effects,
        "fits": fits,
        "serious": serious_table,
        "serious_known": bool(len(serious.columns)),
        "level": ctx.level_text,
    }


# ---------------------------------------------------------------------------------------------
# Outcome-measure properties
# ---------------------------------------------------------------------------------------------
def _estimate(value: Any, prop: str) -> str:
    if text.is_missing(value):
        return text.MISSING
    if prop == "n_per_arm_for_power":
        # a sample size is rounded up: rounding down would leave the trial short of power
        return f"{math.ceil(float(value)):,}"
    return num(value, 2)


def _om_interval(lower: Any, upper: Any, prop: str) -> str:
    """Interval of a property; a sample size's missing far end is unbounded (outcome_measures)."""
    if text.is_missing(lower) and text.is_missing(upper):
        return text.MISSING
    if prop == "n_per_arm_for_power" and text.is_missing(upper):
        return f"{_estimate(lower, prop)} to \u221e"
    return f"{_estimate(lower, prop)} to {_estimate(upper, prop)}"


def outcomes_section(ctx: ReportContext) -> dict[str, Any] | None:
    """Reliability, measurement error, validity, responsiveness and sample size per endpoint."""
    om = _frame(ctx, "outcome_measures")
    if not _has(om, "endpoint", "property"):
        return None
    om = om.copy()
    for col in ("estimate", "lower", "upper", "unit", "n", "note"):
        if col not in om:
            om[col] = np.nan
    listed = [e for e in OUTCOME_ENDPOINTS if e in set(om["endpoint"].astype(str))]
    endpoints = listed + sorted(set(om["endpoint"].astype(str)) - set(listed))
    parts = om["property"].astype(str).str.partition(":")
    om = om.assign(
        _e=om["endpoint"].astype(str).map({e: i for i, e in enumerate(endpoints)}),
        _p=parts[0].map({p: i for i, p in enumerate(PROPERTIES)}).fillna(len(PROPERTIES)),
        _a=_arm_rank(ctx, parts[2]),
        base=parts[0],
    )
    om = om.sort_values(["_e", "_p", "_a", "property"], kind="stable").reset_index(drop=True)
    # a note repeated on consecutive rows of one endpoint is shown once
    notes = om["note"].astype("string")
    repeated = (notes == notes.shift()) & (om["endpoint"] == om["endpoint"].shift())
    om["shown_note"] = om["note"].where(~repeated.fillna(False).astype(bool), "(as above)")
    shown = pd.DataFrame(
        {
            "endpoint": [text.endpoint_short(e) for e in om["endpoint"]],
            "property": [text.property_label(p) for p in om["property"]],
            "estimate": [_estimate(v, p) for v, p in zip(om["estimate"], om["base"], strict=True)],
            "interval": [
                _om_interval(lo, hi, p)
                for lo, hi, p in zip(om["lower"], om["upper"], om["base"], strict=True)
            ],
            "unit": om["unit"],
            "n": om["n"],
            "note": om["shown_note"],
        }
    )
    cols: list[Column] = [
        ("endpoint", "Endpoint", cell_text),
        ("property", "Property", cell_text),
        ("estimate", "Estimate", cell_text),
        ("interval", f"{ctx.level_text} interval", cell_text),
        ("unit", "Unit", cell_text),
        ("n", "n", integer),
        ("note", "Note", cell_text),
    ]
    t = _with_numeric(
        table(shown, cols, source="tables/outcome_measures.csv"),
        ["Estimate", f"{ctx.level_text} interval"],
    )
    labels = {e: text.endpoint_short(e) for e in endpoints}
    icc = om[om["property"].astype(str) == "icc"]
    icc = pd.DataFrame(
        {
            "endpoint": [labels[str(e)] for e in icc["endpoint"]],
            **{c: icc[c].map(_float).to_numpy() for c in ("estimate", "lower", "upper")},
        }
    )
    needed = om[om["base"] == "n_per_arm_for_power"]
    needed = pd.DataFrame(
        {
            "endpoint": [labels[str(e)] for e in needed["endpoint"]],
            # a row without an arm (one that could not be computed) still needs a legend entry
            "arm": needed["property"]
            .astype(str)
            .str.partition(":")[2]
            .replace("", "(no arm)")
            .to_numpy(),
            "estimate": needed["estimate"].map(_float).to_numpy(),
        }
    )
    figure = None
    if len(icc) or len(needed):
        plotted = set(icc["endpoint"]) | set(needed["endpoint"])
        figure = figures.outcome_properties(
            [labels[e] for e in endpoints if labels[e] in plotted],
            icc,
            needed,
            ctx.arm_order(list(dict.fromkeys(needed["arm"]))),
            colour_order=ctx.arm_order([ctx.control, *needed["arm"]]),
            fig_id="fig-outcomes",
            title="Test-retest reliability and patients per arm needed, by endpoint",
            level=ctx.level_text,
        )
    present = list(dict.fromkeys(om["base"]))
    return {
        "figure": figure,
        "table": t,
        "properties": [
            {"name": text.PROPERTY_TEXT[p][0], "meaning": text.PROPERTY_TEXT[p][1]}
            for p in PROPERTIES
            if p in present
        ],
        "level": ctx.level_text,
    }


# ---------------------------------------------------------------------------------------------
# Failed fits and methods
# ---------------------------------------------------------------------------------------------
def failed_fits(tables: Mapping[str, pd.DataFrame]) -> list[dict[str, str]]:
    """Secondary fits that failed: Bayesian fits failing the gate, twins that did not converge.

    Returns
    -------
    list of dict
        ``id`` (model id as in provenance), ``model`` (id and endpoint, for the alert),
        ``status`` and ``reasons``.
    """
    out: list[dict[str, str]] = []
    diag = tables.get("diagnostics_secondary", pd.DataFrame())
    if _has(diag, "model", "status"):
        for rec in diag[[_failed(s) for s in diag["status"]]].to_dict("records"):
            endpoint = rec.get("endpoint", rec["model"])
            out.append(
                {
                    "id": str(rec["model"]),
                    "model": f"{rec['model']} (secondary endpoint: "
                    f"{text.endpoint_label(endpoint)})",
                    "status": cell_text(rec["status"]),
                    "reasons": cell_text(rec.get("reasons")),
                }
            )
    eff = tables.get("effects_secondary", pd.DataFrame())
    listed = {f["id"] for f in out}
    if _has(eff, "model", "status"):
        for rec in eff[[_failed(s) for s in eff["status"]]].to_dict("records"):
            model = str(rec["model"])
            if model in listed:
                continue
            listed.add(model)
            twin = model.endswith("_twin")
            endpoint = text.endpoint_label(rec.get("endpoint", model))
            out.append(
                {
                    "id": model,
                    "model": f"{model} ({'frequentist twin' if twin else 'secondary endpoint'}: "
                    f"{endpoint})",
                    "status": cell_text(rec["status"]),
                    "reasons": "the statsmodels fit did not converge"
                    if twin
                    else "marked failed in effects_secondary.csv",
                }
            )
    return out


def _model_config(ctx: ReportContext, endpoint: str) -> tuple[dict[str, Any], str]:
    """Return the model config of an endpoint's fit, else the overrides on the defaults."""
    attrs = ctx.results.fit_attrs.get(endpoint) or {}
    if isinstance(attrs.get("model_config"), Mapping):
        return dict(attrs["model_config"]), "recorded with the fit"
    settings = ctx.analysis.get("secondary") or {}
    overrides = (settings.get("model_config") or {}).get(endpoint) or {}
    try:
        model = endpoint_entry(endpoint).model
    except KeyError:  # a results folder written by another version of the catalogue
        model = None
    defaults = dict(model.default_model_config) if model is not None else {}
    if not defaults and not overrides:
        return {}, "not recorded in this results folder"
    source = (
        "model defaults with the configured overrides"
        if defaults
        else "configured overrides only (model defaults not available in this installation)"
    )
    return {**defaults, **overrides}, source


def methods_models(ctx: ReportContext) -> list[dict[str, Any]]:
    """One methods entry per secondary model whose endpoint is in ``effects_secondary.csv``."""
    eff = _frame(ctx, "effects_secondary")
    if not _has(eff, "endpoint"):
        return []
    present = set(eff["endpoint"].astype(str))
    models = eff["model"].astype(str) if "model" in eff else pd.Series(dtype=str)
    out = []
    for endpoint in [e for e in MODEL_ENDPOINTS if e in present]:
        config, source = _model_config(ctx, endpoint)
        if endpoint == "responder" and config.get("adjust_baseline") is False:
            # the unadjusted model has no baseline slope: its prior setting is unused
            config = {k: v for k, v in config.items() if not k.startswith("prior_b_")}
        twin = f"{endpoint}_twin"
        out.append(
            {
                "id": endpoint,
                "title": text.endpoint_label(endpoint),
                "text": text.SECONDARY_MODEL_TEXT.get(
                    endpoint, "No description of this model is available in this report version."
                ),
                # secondary parameters mean other things than the count models' of the same name
                "priors": text.prior_lines(config, known=text.SECONDARY_PRIORS.get(endpoint, {})),
                "source": source,
                "twin": text.twin_text(endpoint, ctx.level_text)
                if (models == twin).any()
                else None,
                "definition": _definition(ctx, endpoint),
            }
        )
    return out


def _definition(ctx: ReportContext, endpoint: str) -> str | None:
    """Return the run's definition of an endpoint in words (responder threshold, signals)."""
    if endpoint == "responder":
        threshold, missing = _responder_settings(ctx)
        return (
            f"A responder had a treatment-period cramp rate at least {threshold} below the "
            f"run-in rate (prespecified in the configuration); subjects without a "
            f"treatment-period diary were {missing}."
        )
    if endpoint == "safety":
        return (
            "Events of quinine's known harms (" + ", ".join(_signal_names()) + ") are flagged "
            "in any arm from a single event, whatever the model says."
        )
    return None


def _signal_names() -> list[str]:
    return [c.replace("_", " ").replace("qt ", "QT ") for c in QUININE_SIGNALS]


def methods_notes(ctx: ReportContext) -> list[str]:
    """Sentences on the descriptive secondary tables and the outcome measures of the run."""
    notes = []
    if len(_frame(ctx, "cramp_potential")):
        notes.append(
            "Cramp potential firing frequencies (Hz) are described by arm and visit without a "
            "model: medians and quartiles, and the geometric mean and SD of the log, as the "
            "frequencies are right-skewed."
        )
    if len(_frame(ctx, "locations")):
        notes.append(
            "Cramp locations are described by arm and period: cramp days and cramps per "
            "recorded location, and each location's share of the cramp days with a location."
        )
    if len(_frame(ctx, "outcome_measures")):
        notes.append(
            "Outcome-measure properties were computed from the data of this trial, not taken "
            "from the literature (no validated cramp outcome measure has been published): "
            "test-retest reliability (ICC) and measurement error (SEM, MDC95) from repeated "
            "measurements before treatment (run-in weeks of the diary, the two baseline EMG "
            "visits), agreement between diary cramp frequency and the CTF (Spearman rank "
            "correlations), responsiveness (standardised response mean per arm), and the "
            "patients per arm each endpoint would need to detect the effect it showed, a "
            "comparison of the measures at one common design rather than a trial plan. Rows the "
            "data could not support carry a note instead of an estimate."
        )
    return notes
