"""Report sections of the subgroups, the active-versus-active contrasts and the several trials.

Read ``tables/subgroups.csv``, ``tables/active_vs_active.csv`` and ``tables/multi_trial.csv``
(:mod:`crampstats.secondary.subgroups`, :mod:`crampstats.compare.contrasts`); every section is
``None`` when its table is absent or empty, so older runs and trials without the data render as
before.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from crampstats.report import figures
from crampstats.report.common import Column, ReportContext, cell_text, failed_row, table
from crampstats.report.text import interval, num, prob

__all__ = ["active_section", "multi_trial_section", "subgroups_section"]


def _frame(ctx: ReportContext, name: str) -> pd.DataFrame:
    return ctx.tables.get(name, pd.DataFrame())


def _rr(row: Any, median: str = "rr_median", lower: str = "rr_lower", upper: str = "rr_upper"):
    return float(row[median]), float(row[lower]), float(row[upper])


def subgroups_section(ctx: ReportContext) -> dict[str, Any] | None:
    """Forest plot and table of the arm-by-subgroup rate ratios, labelled exploratory."""
    df = _frame(ctx, "subgroups")
    if not len(df) or "variable" not in df:
        return None
    analysed = df[df["status"].astype(str) != "not analysed"]
    skipped = [str(r["note"]) for r in df.to_dict("records") if r["status"] == "not analysed"]
    labels = sorted(set(analysed["label"].astype(str))) if len(analysed) else []
    out: dict[str, Any] = {
        "skipped": skipped,
        "exploratory": labels != ["prespecified"],
        "figure": None,
        "table": None,
        "level": ctx.level_text,
        "notes": [
            f"{v}: {n}"
            for v, n in analysed.groupby("variable", sort=False)["note"].first().items()
            if isinstance(n, str) and n
        ],
    }
    if not len(analysed):
        return out
    rows: list[figures.ForestRow] = []
    arms = ctx.arm_order(analysed["arm"].astype(str).unique())
    for arm in (a for a in arms if a != ctx.control):
        rows.append(figures.ForestRow(f"{arm} vs {ctx.control}", kind="header"))
        for r in analysed[analysed["arm"].astype(str) == arm].to_dict("records"):
            rows.append(
                figures.ForestRow(f"  {r['variable']}: {r['level']} (n {int(r['n'])})", *_rr(r))
            )
    out["figure"] = figures.forest(
        rows,
        threshold=None,
        fig_id="fig-subgroups",
        title=f"Rate ratios within subgroups, {ctx.level_text} intervals (exploratory)",
    )
    shown = analysed.assign(
        interval=[interval(lo, hi) for lo, hi in zip(analysed["rr_lower"], analysed["rr_upper"],
                                                     strict=True)],
        twin=[
            f"{num(m)} ({interval(lo, hi)})"
            for m, lo, hi in zip(analysed["rr_twin"], analysed["rr_twin_lower"],
                                 analysed["rr_twin_upper"], strict=True)
        ],
        counts=[f"{int(n)} / {int(c)}" for n, c in zip(analysed["n"], analysed["n_control"],
                                                       strict=True)],
    )  # fmt: skip
    cols: list[Column] = [
        ("variable", "Subgroup", cell_text),
        ("level", "Level", cell_text),
        ("arm", "Arm", cell_text),
        ("counts", f"n (arm / {ctx.control})", cell_text),
        ("rr_median", "Rate ratio", lambda x: num(x)),
        ("interval", f"{ctx.level_text} CrI", cell_text),
        ("interaction_median", "Ratio to other levels", lambda x: num(x)),
        ("p_interaction", "P(interaction sign)", prob),
        ("twin", "NB GLM, unshrunk (95 % CI)", cell_text),
        ("label", "Label", cell_text),
        ("status", "Fit", cell_text),
    ]
    out["table"] = table(shown, cols, source="tables/subgroups.csv", row_class=failed_row)
    return out


def active_section(ctx: ReportContext) -> dict[str, Any] | None:
    """Pairwise rate ratios between active arms (primary model) with P(better) and the twin."""
    df = _frame(ctx, "active_vs_active")
    if not len(df) or "first" not in df:
        return None
    rows = [
        figures.ForestRow(f"{r['first']} vs {r['second']}", *_rr(r)) for r in df.to_dict("records")
    ]
    svg = figures.forest(
        rows,
        threshold=None,
        fig_id="fig-active",
        title=f"Rate ratios between active arms, {ctx.level_text} intervals",
        xlabel="rate ratio first / second arm (log scale)",
    )
    shown = df.assign(
        interval=[interval(lo, hi) for lo, hi in zip(df["rr_lower"], df["rr_upper"], strict=True)],
        twin_text=[
            f"{num(m)} ({interval(lo, hi)})"
            for m, lo, hi in zip(df["rr_twin"], df["rr_twin_lower"], df["rr_twin_upper"],
                                 strict=True)
        ],
        direct_text=["yes" if str(d).lower() == "true" else "no (indirect)" for d in df["direct"]],
    )  # fmt: skip
    cols: list[Column] = [
        ("first", "Arm", cell_text),
        ("second", "Versus", cell_text),
        ("rr_median", "Rate ratio", lambda x: num(x)),
        ("interval", f"{ctx.level_text} CrI", cell_text),
        ("p_first_better", "P(first better)", prob),
        ("direct", "Randomised together", cell_text),
        ("twin_text", "NB GLM contrast (95 % CI)", cell_text),
        ("status", "Fit", cell_text),
    ]
    shown["direct"] = shown["direct_text"]
    twin = str(df["twin"].dropna().iloc[0]) if df["twin"].notna().any() else ""
    return {
        "figure": svg,
        "table": table(shown, cols, row_class=failed_row),
        "model": str(df["model"].iloc[0]),
        "twin": twin,
    }


QUANTITY_TEXT = {
    "pooled_rr": "Mean rate ratio over trials",
    "new_trial_rr": "Rate ratio expected in a new trial",
    "trial_rr": "Trial's own rate ratio",
    "between_trial_sd": "Between-trial SD (log rate ratio)",
    "indirect_rr": "Active versus active",
}


def multi_trial_section(ctx: ReportContext) -> dict[str, Any] | None:
    """Between-trial SD, trial-specific and predicted effects, indirect comparisons, twin."""
    df = _frame(ctx, "multi_trial")
    if not len(df) or "quantity" not in df:
        return None
    order = {q: i for i, q in enumerate(QUANTITY_TEXT)}
    df = df.assign(
        _q=df["quantity"].map(order).fillna(len(order)), _twin=df["source"] != "posterior"
    )
    df = df.sort_values(["_q", "arm", "_twin", "trial"], kind="stable", na_position="first")
    rows: list[figures.ForestRow] = []
    bayes = df[df["source"] == "posterior"]
    for arm in ctx.arm_order(bayes.loc[bayes["quantity"] == "pooled_rr", "arm"].astype(str)):
        if arm == ctx.control:
            continue
        rows.append(figures.ForestRow(f"{arm} vs {ctx.control}", kind="header"))
        sel = bayes[bayes["arm"].astype(str) == arm]
        for r in sel[sel["quantity"] == "trial_rr"].to_dict("records"):
            estimate = _rr(r, "estimate", "lower", "upper")
            rows.append(figures.ForestRow(f"  trial {r['trial']}", *estimate, kind="bayes"))
        for q in ("pooled_rr", "new_trial_rr"):
            for r in sel[sel["quantity"] == q].to_dict("records"):
                rows.append(figures.ForestRow(f"  {QUANTITY_TEXT[q].lower()}",
                                              *_rr(r, "estimate", "lower", "upper")))  # fmt: skip
    svg = None
    if rows:
        svg = figures.forest(
            rows,
            threshold=ctx.threshold,
            fig_id="fig-multi-trial",
            title=f"Trial-specific, mean and predicted rate ratios, {ctx.level_text} intervals",
        )
    shown = df.assign(
        what=[QUANTITY_TEXT.get(str(q), str(q)) for q in df["quantity"]],
        versus=[
            f"{a} vs {c}" if isinstance(c, str) and c else cell_text(a)
            for a, c in zip(df["arm"], df["comparator"], strict=True)
        ],
        value=[
            num(e, 3) if q == "between_trial_sd" else num(e)
            for e, q in zip(df["estimate"], df["quantity"], strict=True)
        ],
        range=[
            interval(lo, hi, 3) if np.isfinite(lo) else cell_text(None)
            for lo, hi in zip(df["lower"].astype(float), df["upper"].astype(float), strict=True)
        ],
    )
    cols: list[Column] = [
        ("what", "Quantity", cell_text),
        ("versus", "Comparison", cell_text),
        ("trial", "Trial", cell_text),
        ("source", "Source", cell_text),
        ("value", "Estimate", cell_text),
        ("range", "Interval", cell_text),
        ("p_below_1", "P(RR < 1)", prob),
        ("note", "Note", cell_text),
    ]
    return {
        "figure": svg,
        "table": table(shown, cols, source="tables/multi_trial.csv"),
        "level": ctx.level_text,
    }
