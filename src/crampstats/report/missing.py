"""The report's missing-data sensitivity section, from ``tables/tipping_point.csv``.

Per active arm: the rate ratio against delta (the multiplier of the arm's cramp rate after
withdrawal, 1 = missing at random) with its interval, and one sentence saying whether, and at
which delta, the verdict on the plan's ``P(RR < 1)`` rule changes. Neutral words: the sentence
states the rule, the numbers and the delta; it never calls a treatment effective.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import matplotlib
import numpy as np
import pandas as pd
from markupsafe import Markup
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FixedLocator, NullLocator

from crampstats.report import figures
from crampstats.report.common import Column, ReportContext, cell_text, digits_of, table
from crampstats.report.load import read_csv_table
from crampstats.report.text import interval, is_missing, label, num, prob

__all__ = ["tipping_figure", "tipping_point_section", "tipping_sentences"]

#: The table's file inside a results folder.
SOURCE = "tables/tipping_point.csv"


def _p_value(p: Any) -> str:
    if is_missing(p):
        return "NA"
    return "< 0.001" if float(p) < 0.001 else f"{float(p):.3f}"


def tipping_sentences(
    frame: pd.DataFrame,
    control: str,
    probability: float,
    primary: Mapping[str, float] | None = None,
) -> list[str]:
    """One sentence per arm: the MAR result and the delta at which the verdict changes.

    Parameters
    ----------
    frame
        ``tipping_point.csv`` rows with estimates.
    control
        The control arm.
    probability
        The rule's probability (0.975: met when the one-sided p-value is at most 0.025).
    primary
        Arm -> the primary Bayesian fit's ``P(RR < 1)``; where its verdict differs from the
        imputation analysis at delta 1, the sentence says so (the verdict is then fragile
        already under missing at random).

    Returns
    -------
    list of str
        Plain text (the template escapes it).
    """
    alpha = 1.0 - probability
    out = []
    for arm, part in frame.groupby("arm", sort=False):
        part = part.sort_values("delta")
        ref = part.iloc[int(np.argmin(np.abs(part["delta"].to_numpy(float) - 1.0)))]
        verdict = "met" if str(ref["verdict"]) == "met" else "not met"
        head = (
            f"{label(arm, capital=True)} versus {label(control)}: with the cramp rate after "
            f"withdrawal as the model predicts (delta {_delta(ref['delta'])}), RR "
            f"{num(ref['rr'], 2)} ({interval(ref['lower'], ref['upper'])}), one-sided p "
            f"{_p_value(ref['p_or_pvalue'])}: the rule (p at most {alpha:g}) is {verdict}"
        )
        p_bayes = (primary or {}).get(str(arm))
        if p_bayes is not None and not is_missing(p_bayes):
            bayes_met = float(p_bayes) >= probability
            if bayes_met != (verdict == "met"):
                head += (
                    f" (the primary Bayesian analysis gives P(RR < 1) {prob(p_bayes)}, so the "
                    f"rule is {'met' if bayes_met else 'not met'} there: the two analyses sit on "
                    "either side of the rule already under missing at random)"
                )
        tip = part["tipping_delta"].iloc[0]
        n_w = int(part["n_withdrawn"].iloc[0]) if not is_missing(part["n_withdrawn"].iloc[0]) else 0
        if n_w == 0:
            out.append(f"{head}; no patient on this arm withdrew, so delta changes nothing.")
        elif is_missing(tip):
            out.append(
                f"{head}, and stays {verdict} up to delta {_delta(part['delta'].max())} "
                f"(a post-withdrawal rate {_percent(part['delta'].max())} the predicted one, "
                f"{n_w} withdrawn patients)."
            )
        else:
            now = "not met" if verdict == "met" else "met"
            out.append(
                f"{head}; it becomes {now} at delta {_delta(tip)} (a post-withdrawal rate "
                f"{_percent(tip)} the predicted one, {n_w} withdrawn patients)."
            )
    return out


def _delta(delta: Any) -> str:
    return f"{float(delta):g}"


def _percent(delta: Any) -> str:
    change = 100.0 * (float(delta) - 1.0)
    if abs(change) < 0.5:
        return "equal to"
    return f"{abs(change):.0f} % {'above' if change > 0 else 'below'}"


def tipping_figure(frame: pd.DataFrame, arms: list[str], *, fig_id: str, title: str) -> Markup:
    """Rate ratio (log scale) against delta per arm, with its interval and the tipping delta.

    Parameters
    ----------
    frame
        ``tipping_point.csv`` rows with estimates.
    arms
        Active arms in legend order.
    fig_id, title
        Id and accessible title of the figure.

    Returns
    -------
    markupsafe.Markup
        Inline SVG (:func:`crampstats.report.figures.svg_string`).
    """
    with matplotlib.rc_context(figures.RC):
        fig = Figure(figsize=(6.4, 3.6), dpi=100)
        ax = fig.add_subplot()
        handles = []
        for i, arm in enumerate(arms):
            color = figures.PALETTE[(i + 1) % len(figures.PALETTE)]
            part = frame[frame["arm"].astype(str) == arm].sort_values("delta")
            if not len(part):
                continue
            x = part["delta"].to_numpy(float)
            ax.fill_between(x, part["lower"], part["upper"], color=color, alpha=0.13, lw=0)
            ax.plot(x, part["rr"], color=color, lw=1.6, marker="o", ms=3)
            tip = part["tipping_delta"].iloc[0]
            if not is_missing(tip):
                at = part.loc[np.isclose(x, float(tip)), "rr"]
                if len(at):
                    ax.plot([float(tip)], [float(at.iloc[0])], marker="D", ms=6, color=color,
                            markerfacecolor="white", markeredgewidth=1.4)  # fmt: skip
            # "$" escaped: a data string is never parsed as mathtext
            handles.append(Line2D([], [], color=color, lw=1.6, label=str(arm).replace("$", r"\$")))
        ax.axhline(1.0, color="#333333", lw=0.8)
        ax.set_yscale("log")
        values = pd.concat([frame["lower"], frame["upper"], pd.Series([1.0])]).astype(float)
        values = values[np.isfinite(values) & (values > 0)]
        lo, hi = float(values.min()) / 1.05, float(values.max()) * 1.05
        ax.set_ylim(lo, hi)
        ticks = [t for t in (0.25, 0.33, 0.5, 0.67, 0.75, 0.8, 0.9, 1.0, 1.1, 1.25, 1.5, 2.0,
                             3.0, 4.0) if lo <= t <= hi]  # fmt: skip
        ax.yaxis.set_major_locator(FixedLocator(ticks))
        ax.yaxis.set_minor_locator(NullLocator())
        ax.set_yticklabels([f"{t:g}" for t in ticks])
        ax.set_xlabel("delta: post-withdrawal cramp rate on the active arm / predicted rate")
        ax.set_ylabel("rate ratio versus control")
        keys = [Line2D([], [], color="#333333", marker="D", ms=6, ls="none",
                       markerfacecolor="white", label="verdict changes")]  # fmt: skip
        ax.legend(handles=handles + keys, loc="upper left", bbox_to_anchor=(1.01, 1.0))
        return figures.svg_string(fig, fig_id, title)


def tipping_point_section(ctx: ReportContext) -> dict[str, Any] | None:
    """Sentences, figure and table of the tipping-point analysis, or ``None`` without one."""
    path = ctx.results.path / SOURCE
    if not path.is_file():
        return None
    frame = read_csv_table(path)
    if frame.empty or "delta" not in frame.columns:
        return None
    failed = frame[frame["arm"].isna()] if "arm" in frame.columns else frame.iloc[0:0]
    rows = frame[frame["arm"].notna()].copy()
    probability = _probability(ctx)
    out: dict[str, Any] = {
        "failed": [cell_text(v) for v in failed["verdict"]] if len(failed) else [],
        "probability": f"{probability:g}",
        "alpha": f"{1.0 - probability:g}",
        "level": ctx.level_text,
        "n_imputations": int(rows["n_imputations"].iloc[0]) if len(rows) else 0,
        "sentences": [],
        "figure": None,
        "table": None,
    }
    if not len(rows):
        return out
    arms = [a for a in ctx.arm_order(rows["arm"].astype(str).unique()) if a != ctx.control]
    effects = ctx.model_rows("effects", str(rows["model"].iloc[0]) if "model" in rows else None)
    primary = (
        dict(zip(effects["arm"].astype(str), effects["p_rr_below_1"], strict=True))
        if len(effects) and "p_rr_below_1" in effects
        else None
    )
    out["sentences"] = tipping_sentences(rows, ctx.control, probability, primary)
    out["figure"] = tipping_figure(
        rows, arms, fig_id="fig-tipping", title="Rate ratio against the post-withdrawal delta"
    )
    columns: list[Column] = [
        ("arm", "Arm", cell_text),
        ("delta", "Delta", digits_of(2)),
        ("rr", "Rate ratio", digits_of(2)),
        ("lower", f"{ctx.level_text} lower", digits_of(2)),
        ("upper", f"{ctx.level_text} upper", digits_of(2)),
        ("p_or_pvalue", "One-sided p", _p_value),
        ("verdict", "Rule", cell_text),
        ("fmi", "Missing information", digits_of(2)),
        ("n_withdrawn", "Withdrawn", lambda x: cell_text(x if is_missing(x) else int(x))),
    ]
    out["table"] = table(rows, columns, source=SOURCE)
    return out


def _probability(ctx: ReportContext) -> float:
    """Return the plan's probability of the ``P(RR < 1)`` criterion (0.975 by default)."""
    success = (ctx.analysis.get("plan") or {}).get("success") or {}
    for criterion in success.get("criteria") or []:
        ratio = criterion.get("rate_ratio")
        if ratio is not None and math.isclose(float(ratio), 1.0):
            return float(criterion["probability"])
    return 0.975
