"""Build the reviewer's report of one trial: a single self-contained, script-free HTML file.

:func:`build_report` reads a results folder of ``crampstats analyze`` and returns the HTML;
:func:`write_report` writes it atomically. The page holds no script, font, image or style sheet
from elsewhere: CSS is inline, figures are inline SVG (text drawn as paths), and a
Content-Security-Policy forbids the browser from loading anything. Every data-derived string
goes through Jinja2's autoescaping. Identical inputs give byte-identical output: the only dates
shown are those recorded in ``provenance.json``.

Each section is built by one function returning the template's context for it, or ``None``
when its data are absent, in which case the section and its entry in the contents are left out.
The sections of the secondary endpoints (EMG, intensity and responders, safety, outcome
measures) are built in :mod:`crampstats.report.secondary`.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from importlib.metadata import PackageNotFoundError, version
from importlib.resources import files
from pathlib import Path
from typing import Any

import jinja2
import numpy as np
import pandas as pd
import yaml
from markupsafe import Markup

from crampstats.catalogue import count_entry
from crampstats.outputs import atomic_write_text
from crampstats.plan import parse_plan
from crampstats.report import checks, figures, secondary, text
from crampstats.report.common import (
    MAX_WARNINGS,
    Column,
    ReportContext,
    cell_text,
    digits_of,
    failed_row,
    table,
)
from crampstats.report.contrasts import active_section, multi_trial_section, subgroups_section
from crampstats.report.load import Results, read_results
from crampstats.report.missing import tipping_point_section
from crampstats.report.prior_sensitivity import prior_sensitivity_section
from crampstats.report.text import integer, interval, num, prob
from crampstats.report.verdict import verdict_section
from crampstats.validate.contract import compliance


def failed_diagnostics(ctx: ReportContext) -> list[dict[str, str]]:
    """Fits whose status is not ``ok``, with the reasons (count and secondary models)."""
    # imported where used: crampstats.report.secondary builds on this module's helpers

    diag = ctx.tables["diagnostics"]
    out = []
    if len(diag):
        for rec in diag[diag["status"].astype(str) != "ok"].to_dict("records"):
            out.append(
                {
                    "id": cell_text(rec["model"]),
                    "model": cell_text(rec["model"]),
                    "status": cell_text(rec["status"]),
                    "reasons": cell_text(rec.get("reasons")),
                }
            )
    out += secondary.failed_fits(ctx.tables)
    listed = {f["id"] for f in out}
    for model in ctx.results.provenance.get("failed_models") or []:
        if str(model) not in listed:
            out.append({"model": str(model), "status": "failed", "reasons": "see diagnostics"})
    return out


def summary_section(ctx: ReportContext) -> dict[str, Any] | None:
    """Plain sentences of the primary result, one per active arm."""
    effects = ctx.model_rows("effects", ctx.primary)
    if not len(effects):
        return None
    sentences = []
    for rec in effects.to_dict("records"):
        sentences.append(
            {
                "arm": cell_text(rec["arm"]),
                "text": text.summary_sentence(rec, ctx.control, ctx.level, ctx.threshold),
                "failed": str(rec.get("status")) != "ok",
            }
        )
    n = ctx.model_rows("diagnostics", ctx.primary)
    n_subjects = integer(n["n_subjects"].iloc[0]) if len(n) else text.MISSING
    return {
        "primary": ctx.primary,
        "role": text.MODEL_ROLE.get(str(ctx.primary), ""),
        # the plan may make another endpoint primary: cramp frequency is then a secondary one
        "frequency_primary": parse_plan(ctx.config).endpoint == "cramp_frequency",
        "n_subjects": n_subjects,
        "sentences": sentences,
        "threshold": f"{ctx.threshold:g}",
        "threshold_phrase": text.threshold_phrase(ctx.threshold),
    }


# ---------------------------------------------------------------------------------------------
# 2. Trial and data
# ---------------------------------------------------------------------------------------------
def _subjects(ctx: ReportContext) -> pd.DataFrame:
    """One row per subject: validated subjects, else the derived periods deduplicated."""
    subjects = ctx.results.subjects
    if len(subjects) and "subject_id" in subjects:
        return subjects
    periods = ctx.results.periods
    if len(periods) and "subject_id" in periods:
        return periods.drop_duplicates("subject_id").reset_index(drop=True)
    return pd.DataFrame()


def _group_column(ctx: ReportContext, frame: pd.DataFrame) -> str | None:
    col = "sequence" if ctx.within else "arm"
    return col if col in frame.columns else None


def _groups(ctx: ReportContext, frame: pd.DataFrame, col: str) -> list[str]:
    values = frame[col].astype("string").fillna("(missing)")
    present = list(dict.fromkeys(values))
    return ctx.arm_order(present) if col == "arm" else sorted(present)


def trial_section(ctx: ReportContext) -> dict[str, Any] | None:
    """CONSORT-style flow, diary completeness and compliance, validation warnings."""
    subjects = _subjects(ctx)
    counts = ctx.results.validation.get("counts") or {}
    warnings = _warnings(ctx)
    if not len(subjects) and not counts and not warnings:
        return None
    out: dict[str, Any] = {
        "design": ctx.design or "not recorded",
        "group_word": "sequence" if ctx.within else "arm",
        "screened": counts.get("screened"),
        "warnings": warnings[:MAX_WARNINGS],
        "n_warnings": len(warnings),
        "warning_kinds": _warning_kinds(warnings),
        "flow": None,
        "diary": _diary_counts(counts, ctx),
        "compliance": None,
        "not_analysed": [
            {"analysis": str(k), "reason": str(v)}
            for k, v in sorted((ctx.results.provenance.get("not_analysed") or {}).items())
        ],
    }
    col = _group_column(ctx, subjects) if len(subjects) else None
    if col is None:
        return out
    groups = _groups(ctx, subjects, col)
    labels = subjects[col].astype("string").fillna("(missing)")
    withdrawn = (
        subjects["withdrawal_day"].notna()
        if "withdrawal_day" in subjects
        else pd.Series(False, index=subjects.index)
    )
    analysed = _analysed(ctx, subjects)
    rows = []
    for group in [*groups, None]:
        mask = labels == group if group is not None else pd.Series(True, index=subjects.index)
        n, w = int(mask.sum()), int((mask & withdrawn).sum())
        day = (
            subjects.loc[mask & withdrawn, "withdrawal_day"] if w else pd.Series([], dtype="Int64")
        )
        rows.append(
            {
                "group": group if group is not None else "All",
                "randomised": n,
                "withdrawn": w,
                "withdrawal_day": num(day.astype("float64").median(), 0) if w else text.MISSING,
                "completed": n - w,
                "analysed": int((mask & analysed).sum()) if analysed is not None else None,
            }
        )
    out["flow"] = {"rows": rows, "groups": rows[:-1], "total": rows[-1]}
    out["compliance"] = _compliance(ctx, subjects, col, groups)
    return out


def _analysed(ctx: ReportContext, subjects: pd.DataFrame) -> pd.Series | None:
    """Subjects in the primary analysis: at least one diarised treatment day (derived periods)."""
    periods = ctx.results.periods
    if not len(periods) or "exposure_days" not in periods:
        return None
    treated = periods
    if not ctx.within and "period" in periods:
        treated = periods[periods["period"].astype(str) == "treatment"]
    ids = set(treated.loc[treated["exposure_days"] > 0, "subject_id"].astype(str))
    return subjects["subject_id"].astype(str).isin(ids)


def _diary_counts(counts: Mapping[str, Any], ctx: ReportContext) -> dict[str, Any] | None:
    if "diary_records" not in counts:
        return None
    days = counts.get("diary_days_by_period") or {}
    comp = counts.get("compliance") or {}
    return {
        "records": integer(counts.get("diary_records")),
        "missing": integer(counts.get("diary_records_missing_count")),
        "days": [
            {"period": _period_name(k), "days": integer(days[k])}
            for k in sorted(days, key=_period_key)
        ],
        "median": num(comp.get("median")),
        "min": num(comp.get("min")),
        "threshold": f"{float(ctx.config.get('compliance_threshold', 0.8)):g}",
    }


def _period_key(period: str) -> tuple[int, float, str]:
    """Diary periods in study order: run-in, numbered or treatment periods, washout last."""
    period = str(period)
    if period == "run-in":
        return (0, 0.0, period)
    if period.isdigit():
        return (1, float(period), period)
    return (1 if period == "treatment" else 2, 0.0, period)


def _period_name(period: str) -> str:
    return f"period {period}" if str(period).isdigit() else str(period)


def _compliance(
    ctx: ReportContext, subjects: pd.DataFrame, col: str, groups: Sequence[str]
) -> dict[str, Any] | None:
    """Per-group diary compliance (contract definition: diarised / expected days)."""
    diary = ctx.results.diary
    if not len(diary) or not {"study_day", "days", "cramp_count"} <= set(diary.columns):
        return None

    try:
        comp = compliance(subjects, diary)
    except (KeyError, ValueError, TypeError):  # an older or partial validated folder
        return None
    labels = subjects.set_index(subjects["subject_id"].astype(str))[col]
    comp = comp.assign(group=labels.reindex(comp.index.astype(str)).astype("string").to_numpy())
    comp["group"] = comp["group"].fillna("(missing)")
    limit = float(ctx.config.get("compliance_threshold", 0.8))
    rows = []
    for group in [*groups, None]:
        part = comp if group is None else comp[comp["group"] == group]
        values = part["compliance"].astype(float)
        rows.append(
            [
                group if group is not None else "All",
                integer(len(values)),
                num(values.median()),
                num(values.quantile(0.25)) + " to " + num(values.quantile(0.75)),
                num(values.min()),
                integer((values < limit).sum()),
            ]
        )
    headers = [
        "Sequence" if ctx.within else "Arm",
        "Subjects",
        "Median",
        "IQR",
        "Minimum",
        f"Below {limit:g}",
    ]
    return {
        "headers": headers,
        "rows": [{"cells": r, "cls": "total" if r[0] == "All" else ""} for r in rows],
        "numeric": [False, True, True, True, True, True],
        "note": None,
    }


def _warnings(ctx: ReportContext) -> list[dict[str, str]]:
    listed = ctx.results.validation.get("warnings")
    if listed is None:
        listed = [
            {"kind": "", "subject": None, "message": m}
            for m in ctx.results.provenance.get("validation_warnings") or []
        ]
    out = []
    for w in listed:
        if isinstance(w, Mapping):
            out.append(
                {
                    "kind": cell_text(w.get("kind") or ""),
                    "subject": cell_text(w.get("subject")),
                    "message": cell_text(w.get("message")),
                }
            )
        else:
            out.append({"kind": "", "subject": text.MISSING, "message": str(w)})
    return out


def _warning_kinds(warnings: Sequence[Mapping[str, str]]) -> list[dict[str, str]]:
    kinds: dict[str, int] = {}
    for w in warnings:
        kinds[w["kind"] or "other"] = kinds.get(w["kind"] or "other", 0) + 1
    return [{"kind": k, "n": integer(v)} for k, v in sorted(kinds.items())]


# ---------------------------------------------------------------------------------------------
# 3. Baseline characteristics
# ---------------------------------------------------------------------------------------------
def _median_iqr(values: pd.Series, digits: int = 1) -> str:
    values = values.dropna().astype(float)
    if not len(values):
        return text.MISSING
    q = values.quantile([0.25, 0.5, 0.75]).to_numpy()
    return f"{q[1]:.{digits}f} [{q[0]:.{digits}f} to {q[2]:.{digits}f}]"


def _mean_sd(values: pd.Series, digits: int = 1) -> str:
    values = values.dropna().astype(float)
    if not len(values):
        return text.MISSING
    sd = values.std() if len(values) > 1 else float("nan")
    return f"{values.mean():.{digits}f} ({num(sd, digits)})"


def baseline_section(ctx: ReportContext) -> dict[str, Any] | None:
    """Baseline characteristics by arm (parallel) or sequence (within-subject designs)."""
    periods = ctx.results.periods
    if not len(periods) or "subject_id" not in periods:
        return None
    subjects = periods.drop_duplicates("subject_id").reset_index(drop=True)
    col = _group_column(ctx, subjects)
    if col is None:
        return None
    groups = _groups(ctx, subjects, col)
    labels = subjects[col].astype("string").fillna("(missing)")
    parts = [subjects[labels == g] for g in groups] + [subjects]
    headers = ["Characteristic", *groups, "All"]
    rows: list[dict[str, Any]] = [
        {"cells": ["Subjects, n", *[integer(len(p)) for p in parts]], "cls": ""}
    ]
    if {"runin_count", "runin_days"} <= set(subjects.columns):

        def runin(p: pd.DataFrame) -> pd.Series:
            days = p["runin_days"].astype(float)
            return (7 * p["runin_count"].astype(float) / days.where(days > 0)).dropna()

        rows.append(
            {
                "cells": [
                    "Run-in cramps per week, median [IQR]",
                    *[_median_iqr(runin(p)) for p in parts],
                ],
                "cls": "",
            }
        )
        no_runin = [int((p["runin_days"].astype(float) <= 0).sum()) for p in parts]
        if any(no_runin):
            rows.append(
                {"cells": ["No run-in diary, n", *[integer(v) for v in no_runin]], "cls": ""}
            )
    if "age" in subjects and subjects["age"].notna().any():
        rows.append(
            {"cells": ["Age (years), mean (SD)", *[_mean_sd(p["age"]) for p in parts]], "cls": ""}
        )
    for column, title in (
        ("sex", "Sex"),
        ("etiology", "Etiology"),
        ("cramp_origin", "Cramp origin"),
        ("stratum", "Stratum"),
    ):
        if column not in subjects or not subjects[column].notna().any():
            continue
        rows.append({"cells": [f"{title}, n (%)", *[""] * len(parts)], "cls": "group"})
        values = subjects[column].astype("string").fillna("(missing)")
        for level in sorted(dict.fromkeys(values)):
            cells = []
            for p in parts:
                v = p[column].astype("string").fillna("(missing)")
                k = int((v == level).sum())
                cells.append(f"{k} ({100 * k / len(p):.0f} %)" if len(p) else text.MISSING)
            rows.append({"cells": [f"  {level}", *cells], "cls": "level"})
    return {
        "table": {
            "headers": headers,
            "rows": rows,
            "numeric": [False] + [True] * len(parts),
            "note": None,
        },
        "group_word": "sequence" if ctx.within else "arm",
    }


# ---------------------------------------------------------------------------------------------
# 4-5. Primary analysis and decision quantities
# ---------------------------------------------------------------------------------------------
def primary_section(ctx: ReportContext) -> dict[str, Any] | None:
    """Forest plot and table of the primary model's rate ratios."""
    effects = ctx.model_rows("effects", ctx.primary)
    if not len(effects):
        return None
    rows = [
        figures.ForestRow(str(r["arm"]), r["rr_median"], r["rr_lower"], r["rr_upper"])
        for r in effects.to_dict("records")
    ]
    svg = figures.forest(
        rows,
        threshold=ctx.threshold,
        fig_id="fig-forest",
        title=f"Rate ratios versus {ctx.control}, {ctx.primary}, {ctx.level_text} intervals",
    )
    cols: list[Column] = [
        ("arm", "Arm", cell_text),
        ("comparator", "Versus", cell_text),
        ("rr_median", "Rate ratio", digits_of(2)),
        ("rr_lower", f"{ctx.level_text} CrI lower", digits_of(2)),
        ("rr_upper", f"{ctx.level_text} CrI upper", digits_of(2)),
        ("p_rr_below_1", "P(RR < 1)", prob),
        ("p_rr_below_threshold", f"P(RR < {ctx.threshold:g})", prob),
        ("status", "Fit", cell_text),
    ]
    return {
        "figure": svg,
        "table": table(effects, cols, row_class=failed_row),
        "primary": ctx.primary,
        "threshold": f"{ctx.threshold:g}",
    }


def decisions_section(ctx: ReportContext) -> dict[str, Any] | None:
    """Decision quantities per arm and ranking probabilities (primary model)."""
    effects = ctx.model_rows("effects", ctx.primary)
    ranks = ctx.model_rows("rankings", ctx.primary)
    if not len(effects) and not len(ranks):
        return None
    out: dict[str, Any] = {"effects": None, "ranks": None, "primary": ctx.primary}
    if len(effects):
        df = effects.assign(
            abs_interval=[
                interval(lo, hi, 2)
                for lo, hi in zip(
                    effects["abs_diff_per_week_lower"],
                    effects["abs_diff_per_week_upper"],
                    strict=True,
                )
            ]
        )
        cols: list[Column] = [
            ("arm", "Arm", cell_text),
            ("p_rr_below_1", "P(any reduction)", prob),
            ("p_rr_below_threshold", f"P({text.threshold_phrase(ctx.threshold)})", prob),
            ("abs_diff_per_week_median", "Difference in cramps per week", digits_of(2)),
            ("abs_interval", f"{ctx.level_text} CrI", cell_text),
        ]
        out["effects"] = table(df, cols, row_class=failed_row)
    if len(ranks):
        ranks = ranks.sort_values(["mean_rank", "arm"]).reset_index(drop=True)
        rank_cols = sorted(
            (c for c in ranks.columns if c.startswith("p_rank_")),
            key=lambda c: int(c.rsplit("_", 1)[1]),
        )
        cols = [
            ("arm", "Arm", cell_text),
            ("p_best", "P(best)", digits_of(2)),
            ("mean_rank", "Mean rank", digits_of(2)),
            ("sucra", "SUCRA", digits_of(2)),
        ]
        cols += [(c, f"P(rank {c.rsplit('_', 1)[1]})", digits_of(2)) for c in rank_cols]
        out["ranks"] = table(ranks, cols)
    return out


# ---------------------------------------------------------------------------------------------
# 6. Sensitivity analyses
# ---------------------------------------------------------------------------------------------
def sensitivity_section(ctx: ReportContext) -> dict[str, Any] | None:
    """Every model's estimate and the frequentist twins beside the primary, arm by arm."""
    effects, freq = ctx.tables["effects"], ctx.tables["frequentist"]
    n_models = effects["model"].nunique() if len(effects) else 0
    if n_models < 2 and not len(freq):
        return None
    arms = list(dict.fromkeys(effects["arm"].astype(str))) if len(effects) else []
    arms += (
        [a for a in dict.fromkeys(freq["arm"].astype(str)) if a not in arms] if len(freq) else []
    )
    model_order = {m: i for i, m in enumerate(ctx.models)}
    rows, forest_rows = [], []
    for arm in arms:
        forest_rows.append(figures.ForestRow(arm, kind="header"))
        bayes = effects[effects["arm"].astype(str) == arm] if len(effects) else None
        if bayes is not None:
            bayes = bayes.assign(order=bayes["model"].astype(str).map(model_order).fillna(99))
        for rec in (
            [] if bayes is None else bayes.sort_values(["order", "model"]).to_dict("records")
        ):
            primary = str(rec["model"]) == ctx.primary
            kind = "primary" if primary else "bayes"
            label = f"{rec['model']}{' (primary)' if primary else ''}"
            forest_rows.append(
                figures.ForestRow(label, rec["rr_median"], rec["rr_lower"], rec["rr_upper"], kind)
            )
            rows.append(
                {
                    "arm": arm,
                    "estimate": label,
                    "kind": "Bayesian",
                    "rr": rec["rr_median"],
                    "lower": rec["rr_lower"],
                    "upper": rec["rr_upper"],
                    "p1": rec["p_rr_below_1"],
                    "note": "" if str(rec["status"]) == "ok" else f"fit {rec['status']}",
                    "status": rec["status"],
                }
            )
        if not len(freq):
            continue
        twins = freq[freq["arm"].astype(str) == arm]
        twins = twins.assign(order=twins["model"].astype(str).map(model_order).fillna(99))
        for rec in twins.sort_values(["order", "model"]).to_dict("records"):
            label = f"{rec['twin']} (twin of {rec['model']})"
            forest_rows.append(
                figures.ForestRow(label, rec["rr"], rec["rr_lower"], rec["rr_upper"], "twin")
            )
            rows.append(
                {
                    "arm": arm,
                    "estimate": label,
                    "kind": "frequentist",
                    "rr": rec["rr"],
                    "lower": rec["rr_lower"],
                    "upper": rec["rr_upper"],
                    "p1": np.nan,
                    "note": (
                        cell_text(rec.get("note")) if not text.is_missing(rec.get("note")) else ""
                    ),
                    "status": "ok",
                }
            )
    df = pd.DataFrame(rows)
    svg = figures.forest(
        forest_rows,
        threshold=ctx.threshold,
        fig_id="fig-sensitivity",
        title="Rate ratios of every model and frequentist twin, by arm",
    )
    cols: list[Column] = [
        ("arm", "Arm", cell_text),
        ("estimate", "Estimate", cell_text),
        ("kind", "Kind", cell_text),
        ("rr", "Rate ratio", digits_of(2)),
        ("lower", f"{ctx.level_text} lower", digits_of(2)),
        ("upper", f"{ctx.level_text} upper", digits_of(2)),
        ("p1", "P(RR < 1)", prob),
        ("note", "Note", cell_text),
    ]
    return {"figure": svg, "table": table(df, cols, row_class=failed_row), "level": ctx.level_text}


# ---------------------------------------------------------------------------------------------
# 7. Course over time
# ---------------------------------------------------------------------------------------------
def course_section(ctx: ReportContext) -> dict[str, Any] | None:
    """Observed weekly cramps per arm with the models' fitted courses."""
    course = ctx.tables["course"]
    if not len(course) or not {"arm", "week", "per_week", "model"} <= set(course.columns):
        return None
    arms = ctx.arm_order(list(dict.fromkeys(course["arm"].astype(str))))
    svg = figures.course(
        course,
        arms,
        str(ctx.primary),
        fig_id="fig-course",
        title="Cramps per week by arm and study week: observed and fitted",
    )
    fitted = [m for m in dict.fromkeys(course["model"].astype(str)) if m != "observed"]
    return {"figure": svg, "fitted": fitted, "level": ctx.level_text, "primary": ctx.primary}


# ---------------------------------------------------------------------------------------------
# 8. Model checking
# ---------------------------------------------------------------------------------------------
def checking_section(ctx: ReportContext) -> dict[str, Any] | None:
    """Diagnostics, rootograms, LOO comparison and the place of a prior sensitivity analysis."""
    diag, ppc, loo = ctx.tables["diagnostics"], ctx.tables["ppc"], ctx.tables["loo"]
    limits = ctx.analysis.get("diagnostics") or {}
    out: dict[str, Any] = {
        "diagnostics": None,
        "reasons": [],
        "rootograms": [],
        "loo": None,
        "limits": {k: f"{v:g}" for k, v in sorted(limits.items()) if isinstance(v, int | float)},
        "prior_sensitivity": None,
    }
    if len(diag):
        cols: list[Column] = [
            ("model", "Model", cell_text),
            ("status", "Status", cell_text),
            ("rhat_max", "Max R-hat", digits_of(3)),
            ("ess_bulk_min", "Min bulk ESS", integer),
            ("ess_tail_min", "Min tail ESS", integer),
            ("divergences", "Divergences", integer),
            ("n_subjects", "Subjects", integer),
            ("chains", "Chains", integer),
            ("draws", "Draws", integer),
            ("tune", "Tune", integer),
        ]
        out["diagnostics"] = table(diag, cols, row_class=failed_row)
        out["reasons"] = [
            {"model": cell_text(r["model"]), "reasons": cell_text(r["reasons"])}
            for r in diag.to_dict("records")
            if not text.is_missing(r.get("reasons")) and str(r["reasons"]).strip()
        ]
    if len(ppc):
        for i, model in enumerate(dict.fromkeys(ppc["model"].astype(str))):
            part = ppc[ppc["model"].astype(str) == model]
            unit = str(part["unit"].iloc[0]) if "unit" in part else "unit"
            svg = figures.rootogram(
                part,
                model,
                unit,
                fig_id=f"fig-rootogram-{i + 1}",
                title=f"Hanging rootogram of {model} ({unit})",
            )
            out["rootograms"].append({"model": model, "unit": unit, "figure": svg})
    if len(loo):
        cols = [
            ("data", "Data", cell_text),
            ("model", "Model", cell_text),
            ("elpd_loo", "ELPD", digits_of(1)),
            ("se", "SE", digits_of(1)),
            ("p_loo", "p_loo", digits_of(1)),
            ("elpd_diff", "ELPD diff.", digits_of(1)),
            ("dse", "SE diff.", digits_of(1)),
            ("weight", "Weight", digits_of(2)),
            ("pareto_k_max", "Max k", digits_of(2)),
            ("n_pareto_k_high", "k > 0.7", integer),
            ("n_subjects", "Subjects", integer),
        ]
        # rankings that cannot be trusted are blanked and explained (report/checks.py)
        loo, out["loo_unreliable"] = checks.loo_reliability(loo)
        out["loo_has_method"] = "method" in loo
        if "method" in loo:
            cols[-3:-1] = [
                ("max_k", "Max k", digits_of(2)),
                ("n_high_k", "High k", integer),
                ("method", "Method", cell_text),
                ("reliable", "Reliable", cell_text),
            ]
        out["loo"] = table(loo, cols)
    out["prior_sensitivity"] = prior_sensitivity_section(ctx)
    if not (len(diag) or len(ppc) or len(loo)):
        return None
    return out


# ---------------------------------------------------------------------------------------------
# 9. Crossover / N-of-1: per-patient effects
# ---------------------------------------------------------------------------------------------
def patients_section(ctx: ReportContext) -> dict[str, Any] | None:
    """Per-patient effects with P(own benefit), table and plot per model and arm."""
    pts = ctx.tables["patients"]
    if not len(pts):
        return None
    bounds = pts[["effect_median", "effect_lower", "effect_upper"]].astype(float)
    # effects are rate ratios when every bound is positive, else log rate ratios
    ratio = bool((bounds.dropna() > 0).all().all())
    figs = []
    combos = pts[["model", "arm"]].astype(str).drop_duplicates().to_numpy().tolist()
    for i, (model, arm) in enumerate(combos[:6]):
        part = pts[(pts["model"].astype(str) == model) & (pts["arm"].astype(str) == arm)]
        svg = figures.patients(
            part,
            ratio=ratio,
            fig_id=f"fig-patients-{i + 1}",
            title=f"Per-patient effects of {arm} ({model})",
        )
        figs.append({"model": model, "arm": arm, "figure": svg, "n": integer(len(part))})
    benefit = pts["p_own_benefit"].astype(float)
    cols: list[Column] = [("subject_id", "Subject", cell_text), ("arm", "Treatment", cell_text)]
    # a column with one value in every row is named once in the text instead
    common = {c: str(pts[c].iloc[0]) for c in ("comparator", "model") if pts[c].nunique() <= 1}
    cols += [
        (c, h, cell_text)
        for c, h in (("comparator", "Versus"), ("model", "Model"))
        if c not in common
    ]
    cols += [
        ("effect_median", "Effect" if not ratio else "Rate ratio", digits_of(2)),
        ("effect_lower", f"{ctx.level_text} lower", digits_of(2)),
        ("effect_upper", f"{ctx.level_text} upper", digits_of(2)),
        ("p_own_benefit", "P(own benefit)", prob),
        ("n_periods", "Periods", integer),
    ]
    benefit_summary = checks.patient_benefit_summary(pts, str(ctx.control))
    if benefit_summary["has_sensitivity"]:  # P under the sigma_d prior scale x 0.5 and x 2
        cols[-1:-1] = [
            ("p_own_benefit_sd_half", "P, prior SD halved", prob),
            ("p_own_benefit_sd_double", "P, prior SD doubled", prob),
        ]
    ordered = pts.sort_values(["model", "arm", "subject_id"]).reset_index(drop=True)
    return {
        "figures": figs,
        "more_figures": max(0, len(combos) - 6),
        "table": table(ordered, cols, source="tables/patients.csv"),
        "ratio": ratio,
        "common": common,
        "n": integer(pts["subject_id"].nunique()),
        "n_likely": integer((benefit > 0.9).sum()),
        "n_unlikely": integer((benefit < 0.1).sum()),
        "benefit": benefit_summary,
    }


# ---------------------------------------------------------------------------------------------
# 10. Methods
# ---------------------------------------------------------------------------------------------
def _model_config(ctx: ReportContext, model: str) -> tuple[dict[str, Any], str]:
    """Return the model config a fit used (stored with it), else config overrides on defaults."""
    attrs = ctx.results.fit_attrs.get(model) or {}
    if isinstance(attrs.get("model_config"), Mapping):
        return dict(attrs["model_config"]), "recorded with the fit"
    overrides = (ctx.analysis.get("model_config") or {}).get(model) or {}
    try:
        defaults = dict(count_entry(model).model.default_model_config)
    except KeyError:  # a results folder written by another version of the catalogue
        defaults = {}
    source = (
        "model defaults with the configured overrides"
        if defaults
        else ("configured overrides only (model defaults not available in this installation)")
    )
    return {**defaults, **overrides}, source


def _sampler(ctx: ReportContext, model: str) -> dict[str, Any]:
    attrs = ctx.results.fit_attrs.get(model) or {}
    if isinstance(attrs.get("sampler_config"), Mapping):
        return dict(attrs["sampler_config"])
    return dict(ctx.analysis.get("sampler") or {})


def methods_section(ctx: ReportContext) -> dict[str, Any]:
    """Methods in words, from the resolved config and the fits' recorded settings."""
    versions = ctx.results.provenance.get("versions") or {}
    arms = [str(a) for a in ctx.config.get("arms") or []]
    freq = ctx.tables["frequentist"]
    twins = {}
    if len(freq):
        for rec in freq.drop_duplicates("model").to_dict("records"):
            twins[str(rec["model"])] = str(rec["twin"])
    models = []
    for i, model in enumerate(ctx.models):
        config, source = _model_config(ctx, model)
        models.append(
            {
                "id": model,
                "role": "primary" if i == 0 else "sensitivity",
                "what": text.MODEL_ROLE.get(model, ""),
                "text": text.MODEL_TEXT.get(
                    model, "No description of this model is available in this report version."
                ),
                "priors": text.prior_lines(config),
                "settings": text.setting_lines(config),
                "source": source,
                "twin": twins.get(model),
            }
        )
    sampler = _sampler(ctx, ctx.primary) if ctx.primary else dict(ctx.analysis.get("sampler") or {})
    limits = {
        **{"rhat_max": 1.01, "ess_bulk_min": 400, "ess_tail_min": 400, "divergences_max": 0},
        **(ctx.analysis.get("diagnostics") or {}),
    }
    diary = ctx.results.validation.get("counts") or {}
    return {
        "design": ctx.design or "not recorded",
        "trial_id": ctx.trial_id,
        "arms": arms,
        "control": ctx.control,
        "models": models,
        "sampler": {k: cell_text(v) for k, v in sorted(sampler.items())},
        "chains": cell_text(sampler.get("chains")),
        "draws": cell_text(sampler.get("draws")),
        "tune": cell_text(sampler.get("tune")),
        "target_accept": cell_text(sampler.get("target_accept")),
        "seed": cell_text(ctx.config.get("seed")),
        "limits": {k: f"{float(v):g}" for k, v in limits.items()},
        "level": ctx.level_text,
        "threshold": f"{ctx.threshold:g}",
        "threshold_phrase": text.threshold_phrase(ctx.threshold),
        "covariates": [str(c) for c in ctx.analysis.get("covariates") or []],
        "missing_baseline": cell_text(ctx.analysis.get("missing_baseline", "error")),
        "compliance_threshold": f"{float(ctx.config.get('compliance_threshold', 0.8)):g}",
        "twins": bool(ctx.analysis.get("twins", True)) and bool(twins),
        "versions": {k: cell_text(v) for k, v in sorted(versions.items())},
        "nutpie": cell_text(versions.get("nutpie")),
        "pymc": cell_text(versions.get("pymc")),
        "arviz": cell_text(versions.get("arviz")),
        "statsmodels": cell_text(versions.get("statsmodels")),
        "crampstats": cell_text(versions.get("crampstats")),
        "has_diary_counts": bool(diary),
        "secondary": secondary.methods_models(ctx),
        "secondary_notes": secondary.methods_notes(ctx),
    }


# ---------------------------------------------------------------------------------------------
# 11. Provenance
# ---------------------------------------------------------------------------------------------
def _report_versions() -> dict[str, str]:
    out = {}
    for name in ("crampstats", "matplotlib", "jinja2"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "not installed"
    return out


def provenance_section(ctx: ReportContext) -> dict[str, Any] | None:
    """Input hashes, config, versions, commit, seeds and run time of the analysis."""
    prov = ctx.results.provenance
    if not prov:
        return None
    inputs = []
    for label, entry in sorted((prov.get("inputs") or {}).items()):
        entry = entry if isinstance(entry, Mapping) else {"sha256": entry}
        inputs.append(
            {
                "label": str(label),
                "path": cell_text(entry.get("path")),
                "sha256": cell_text(entry.get("sha256")),
            }
        )
    config_text = yaml.safe_dump(
        prov.get("config") or {}, sort_keys=True, default_flow_style=False, allow_unicode=True
    )
    validated = ctx.results.validation.get("table_sha256") or {}
    return {
        "inputs": inputs,
        "validated": [{"label": str(k), "sha256": str(v)} for k, v in sorted(validated.items())],
        "git_commit": cell_text(prov.get("git_commit")),
        "seeds": [
            {"name": str(k), "seed": cell_text(v)}
            for k, v in sorted((prov.get("seeds") or {}).items())
        ],
        "started": cell_text(prov.get("started_utc")),
        "run_seconds": cell_text(prov.get("run_seconds")),
        "versions": [
            {"name": str(k), "version": cell_text(v)}
            for k, v in sorted((prov.get("versions") or {}).items())
        ],
        "report_versions": [{"name": k, "version": v} for k, v in _report_versions().items()],
        "config": config_text,
        "failed_models": [str(m) for m in prov.get("failed_models") or []],
        "endpoint": cell_text(prov.get("endpoint")),
    }


# ---------------------------------------------------------------------------------------------
# Assembly
# ---------------------------------------------------------------------------------------------
@functools.cache
def _environment():
    """Return the Jinja2 environment (one per process, so templates compile once)."""
    return jinja2.Environment(
        loader=jinja2.PackageLoader("crampstats.report", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def report_context(results: Results) -> dict[str, Any]:
    """Everything the template shows, section by section (``None`` for an absent section).

    Parameters
    ----------
    results
        A results folder read by :func:`crampstats.report.load.read_results`.

    Returns
    -------
    dict
        Template context.
    """
    ctx = ReportContext(results)
    sections = {
        "verdict": verdict_section(ctx),
        "summary": summary_section(ctx),
        "trial": trial_section(ctx),
        "baseline": baseline_section(ctx),
        "primary": primary_section(ctx),
        "decisions": decisions_section(ctx),
        "sensitivity": sensitivity_section(ctx),
        "missing_data": tipping_point_section(ctx),
        "active": active_section(ctx),
        "several_trials": multi_trial_section(ctx),
        "subgroups": subgroups_section(ctx),
        "course": course_section(ctx),
        "checking": checking_section(ctx),
        "patients": patients_section(ctx),
        "emg": secondary.emg_section(ctx),
        "intensity": secondary.intensity_section(ctx),
        "safety": secondary.safety_section(ctx),
        "outcomes": secondary.outcomes_section(ctx),
        "methods": methods_section(ctx),
        "provenance": provenance_section(ctx),
    }
    titles = [
        ("verdict", "Verdict"),
        ("summary", "Summary"),
        ("trial", "Trial and data"),
        ("baseline", "Baseline"),
        ("primary", "Primary analysis"),
        ("decisions", "Decision quantities"),
        ("sensitivity", "Sensitivity analyses"),
        ("missing_data", "Missing-data sensitivity"),
        ("active", "Active versus active"),
        ("several_trials", "Several trials"),
        ("subgroups", "Subgroups (exploratory)"),
        ("course", "Course over time"),
        ("checking", "Model checking"),
        ("patients", "Per-patient effects"),
        ("emg", "EMG endpoints"),
        ("intensity", "Intensity and responders"),
        ("safety", "Safety"),
        ("outcomes", "Outcome-measure properties"),
        ("methods", "Methods"),
        ("provenance", "Provenance"),
    ]
    nav = [{"id": key, "title": title} for key, title in titles if sections.get(key) is not None]
    css = files("crampstats.report").joinpath("templates/report.css").read_text("utf-8")
    return {
        **sections,
        "nav": nav,
        "css": Markup(css),  # packaged, trusted file
        "failures": failed_diagnostics(ctx),
        "trial_id": ctx.trial_id,
        "design": ctx.design or "not recorded",
        "endpoint": str(results.provenance.get("endpoint") or "cramp_frequency"),
        "started": cell_text(results.provenance.get("started_utc")),
        "git_commit": cell_text(results.provenance.get("git_commit")),
        "models": ctx.models,
        "primary_model": ctx.primary,
        "control": ctx.control,
        "level": ctx.level_text,
        "threshold": f"{ctx.threshold:g}",
    }


def build_report(results_dir: str | Path) -> str:
    """Build the reviewer's HTML report of a results folder.

    Pure: reads the folder written by ``crampstats analyze`` and returns the page; nothing is
    written. The page is self-contained (inline CSS and SVG, no script, no external resource)
    and identical for identical inputs.

    Parameters
    ----------
    results_dir
        Output folder of ``crampstats analyze`` (``tables/``, ``derived/``, ``validated/``,
        ``fits/``, ``provenance.json``).

    Returns
    -------
    str
        The HTML document.

    Raises
    ------
    crampstats.errors.CrampstatsError
        If the folder is missing or is not a results folder.
    """
    results = read_results(results_dir)
    template = _environment().get_template("report.html.j2")
    return template.render(**report_context(results))


def write_report(results_dir: str | Path, out_path: str | Path) -> Path:
    """Build the report of ``results_dir`` and write it atomically to ``out_path``.

    Parameters
    ----------
    results_dir
        Output folder of ``crampstats analyze``.
    out_path
        The HTML file to write (replaced atomically; folders are created).

    Returns
    -------
    pathlib.Path
        ``out_path``.
    """
    html = build_report(results_dir)
    atomic_write_text(out_path, html)
    return Path(out_path)
