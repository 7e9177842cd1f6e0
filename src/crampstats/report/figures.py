"""The report's figures as inline SVG strings: forest plots, course over time, rootograms.

Figures are drawn on a bare :class:`matplotlib.figure.Figure` (no pyplot, no global backend or
state) inside :func:`matplotlib.rc_context`, so building a report changes nothing in the
caller's matplotlib settings. The SVG is made safe and deterministic for inlining into HTML:

- text is drawn as paths (``svg.fonttype = "path"``), so no font is needed and no data string
  (an arm name) appears in the SVG as text; the comments matplotlib writes beside each text
  path are removed; dollar signs in data strings are escaped, so a name is never parsed as
  mathtext (a formula, or a parse error);
- ``svg.hashsalt`` is fixed and the metadata (date, creator) removed, so identical inputs give
  identical bytes;
- the XML prolog, DOCTYPE and namespace declarations are dropped (HTML does not need them, and
  the report holds no ``http`` address at all), and every ``id`` is prefixed with the figure's
  id, so the clip paths of different figures in one page cannot collide.
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

import matplotlib
import numpy as np
import pandas as pd
from markupsafe import Markup, escape
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import FixedLocator, NullLocator

from crampstats.report.text import prob

#: Colour-blind safe palette (Okabe & Ito 2008), control arm first.
PALETTE = (
    "#555555", "#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442",
    "#000000",
)  # fmt: skip

RC = {
    "svg.fonttype": "path",
    "svg.hashsalt": "crampstats-report",
    "font.family": "DejaVu Sans",
    "font.size": 9.0,
    "axes.titlesize": 9.5,
    "axes.labelsize": 9.0,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": False,
    "legend.frameon": False,
    "legend.fontsize": 8.0,
}

_ID = re.compile(r'\bid="([^"]+)"')
_HREF = re.compile(r'(xlink:href|href)="#([^"]+)"')
_URL = re.compile(r"url\(#([^)]+)\)")
_FORBIDDEN = re.compile(r"<script|<foreignObject|javascript:|https?://|@import", re.IGNORECASE)


class UnsafeFigure(ValueError):
    """An SVG figure contained something a self-contained, script-free report must not hold."""


def svg_string(fig, fig_id: str, title: str) -> Markup:
    """Render a figure as cleaned inline SVG markup.

    Parameters
    ----------
    fig
        A :class:`matplotlib.figure.Figure`.
    fig_id
        Id of the figure in the page (prefix of every id inside it).
    title
        Accessible title (escaped).

    Returns
    -------
    markupsafe.Markup
        The ``<svg>`` element.

    Raises
    ------
    UnsafeFigure
        If the SVG holds a script, foreign object, ``javascript:`` or remote reference.
    """
    buf = io.StringIO()
    fig.savefig(
        buf,
        format="svg",
        bbox_inches="tight",
        pad_inches=0.05,
        metadata={"Date": None, "Creator": None, "Format": None, "Type": None},
    )
    text = buf.getvalue()
    text = re.sub(r"<\?xml[^>]*\?>\s*", "", text)
    text = re.sub(r"<!DOCTYPE[^>]*>\s*", "", text)
    text = re.sub(r"<metadata>.*?</metadata>\s*", "", text, flags=re.DOTALL)
    text = re.sub(r"<!--.*?-->\s*", "", text, flags=re.DOTALL)
    text = re.sub(r"<style[^>]*>.*?</style>\s*", "", text, flags=re.DOTALL)
    text = _ID.sub(lambda m: f'id="{fig_id}-{m.group(1)}"', text)
    text = _HREF.sub(lambda m: f'{m.group(1)}="#{fig_id}-{m.group(2)}"', text)
    text = _URL.sub(lambda m: f"url(#{fig_id}-{m.group(1)})", text)
    match = re.search(r"<svg\b[^>]*>", text)
    if match is None:
        raise UnsafeFigure(f"{fig_id}: matplotlib returned no <svg> element")
    attrs = dict(re.findall(r'([\w:-]+)="([^"]*)"', match.group(0)))
    width = attrs.get("width", "").removesuffix("pt")
    view_box = attrs.get("viewBox", "")
    head = (
        f'<svg class="figure" viewBox="{view_box}" role="img" '
        f'aria-labelledby="{fig_id}-title" style="max-width: {width}pt">'
        f'<title id="{fig_id}-title">{escape(title)}</title>'
    )
    text = head + text[match.end() :]
    if _FORBIDDEN.search(text):
        raise UnsafeFigure(f"{fig_id}: the SVG holds a script or remote reference")
    return Markup(text.strip())


def _plain(text: str) -> str:
    """Return a data string for a matplotlib label: ``$`` escaped, so no mathtext is parsed."""
    return str(text).replace("$", r"\$")


def _prob(p: float) -> str:
    return prob(p)


def _figure(width: float, height: float):
    return Figure(figsize=(width, height), dpi=100)


def _rc():
    return matplotlib.rc_context(RC)


# ---------------------------------------------------------------------------------------------
# Forest plots
# ---------------------------------------------------------------------------------------------
@dataclass
class ForestRow:
    """One line of a forest plot.

    Attributes
    ----------
    label : str
        Text at the left.
    median, lower, upper : float
        Point estimate and interval (rate ratios; NaN: not estimable).
    kind : str
        ``primary`` (filled circle), ``bayes`` (open circle), ``twin`` (square) or ``header``
        (a group heading without estimate).
    """

    label: str
    median: float = math.nan
    lower: float = math.nan
    upper: float = math.nan
    kind: str = "primary"


def _ratio_ticks(lo: float, hi: float) -> list[float]:
    nice = [0.05, 0.1, 0.2, 0.25, 0.33, 0.5, 0.67, 0.75, 1, 1.5, 2, 3, 4, 5, 10, 20]
    ticks = [t for t in nice if lo <= t <= hi]
    return ticks if len(ticks) >= 2 else [lo, 1.0, hi]


def forest(
    rows: Sequence[ForestRow],
    *,
    threshold: float | None,
    fig_id: str,
    title: str,
    xlabel: str = "rate ratio versus control (log scale)",
) -> Markup:
    """Forest plot of rate ratios with intervals on a log axis.

    A solid line marks no effect (1) and a dashed line the decision threshold; each row's
    estimate and interval are written at the right.

    Parameters
    ----------
    rows
        Rows from top to bottom.
    threshold
        Rate ratio of a clinically meaningful reduction (``None``: no line).
    fig_id, title
        Id and accessible title of the figure.
    xlabel
        Axis label.

    Returns
    -------
    markupsafe.Markup
        Inline SVG.
    """
    values = [v for r in rows for v in (r.lower, r.upper, r.median) if np.isfinite(v) and v > 0]
    values += [1.0] + ([threshold] if threshold else [])
    lo, hi = min(values) / 1.15, max(values) * 1.15
    n = len(rows)
    with _rc():
        fig = _figure(7.2, 0.9 + 0.28 * n)
        ax = fig.add_subplot()
        ax.set_xscale("log")
        ys = np.arange(n)[::-1]
        for y, row in zip(ys, rows, strict=True):
            if row.kind == "header" or not np.isfinite(row.median):
                if row.kind != "header":
                    ax.text(
                        1.02,
                        y,
                        "not estimable",
                        transform=ax.get_yaxis_transform(),
                        va="center",
                        fontsize=8,
                    )
                continue
            marker, face = {
                "primary": ("o", "#0072B2"),
                "bayes": ("o", "white"),
                "twin": ("s", "white"),
            }.get(row.kind, ("o", "#0072B2"))
            color = "#0072B2" if row.kind != "twin" else "#D55E00"
            ax.plot([row.lower, row.upper], [y, y], color=color, lw=1.6, solid_capstyle="butt")
            ax.plot([row.median], [y], marker=marker, ms=6, mfc=face, mec=color, mew=1.4, ls="none")
            ax.text(
                1.02,
                y,
                f"{row.median:.2f} ({row.lower:.2f} to {row.upper:.2f})",
                transform=ax.get_yaxis_transform(),
                va="center",
                fontsize=8,
            )
        ax.axvline(1.0, color="#333333", lw=0.9)
        if threshold:
            ax.axvline(threshold, color="#333333", lw=0.9, ls=(0, (4, 3)))
            ax.text(
                threshold,
                n - 0.35,
                f"threshold {threshold:g}",
                ha="center",
                va="bottom",
                fontsize=7.5,
                color="#333333",
            )
        ax.set_yticks(ys)
        ax.set_yticklabels([_plain(r.label) for r in rows])
        for tick, row in zip(ax.get_yticklabels(), rows, strict=True):
            if row.kind == "header":
                tick.set_fontweight("bold")
        ax.tick_params(axis="y", length=0)
        ax.set_ylim(-0.7, n - 0.1 + (0.45 if threshold else 0))
        ax.set_xlim(lo, hi)
        ax.xaxis.set_major_locator(FixedLocator(_ratio_ticks(lo, hi)))
        ax.xaxis.set_minor_locator(NullLocator())
        ax.xaxis.set_major_formatter(lambda x, _pos: f"{x:g}")
        ax.spines["left"].set_visible(False)
        ax.set_xlabel(xlabel)
        return svg_string(fig, fig_id, title)


# ---------------------------------------------------------------------------------------------
# Course over time
# ---------------------------------------------------------------------------------------------
def course(
    table: pd.DataFrame, arms: Sequence[str], primary: str, *, fig_id: str, title: str
) -> Markup:
    """Observed weekly cramps per arm with each model's fitted course.

    Observed values are points joined by thin lines; the primary model's fitted course is a
    solid line with its interval as a band, other models are dashed lines.

    Parameters
    ----------
    table
        ``course.csv`` (``model`` is ``observed`` for the data).
    arms
        Arms in legend order (control first).
    primary
        The primary model id.
    fig_id, title
        Id and accessible title of the figure.

    Returns
    -------
    markupsafe.Markup
        Inline SVG.
    """
    models = [m for m in dict.fromkeys(table["model"].astype(str)) if m != "observed"]
    with _rc():
        fig = _figure(7.2, 3.9)
        ax = fig.add_subplot()
        handles = []
        for i, arm in enumerate(arms):
            color = PALETTE[i % len(PALETTE)]
            rows = table[table["arm"].astype(str) == arm]
            obs = _with_gaps(rows[rows["model"].astype(str) == "observed"])
            if len(obs):
                ax.plot(
                    obs["week"], obs["per_week"], color=color, lw=0.8, marker="o", ms=3.2, alpha=0.9
                )
            for model in models:
                fit = _with_gaps(rows[rows["model"].astype(str) == model])
                if not len(fit):
                    continue
                if model == primary:
                    ax.fill_between(
                        fit["week"], fit["lower"], fit["upper"], color=color, alpha=0.13, lw=0
                    )
                    ax.plot(fit["week"], fit["per_week"], color=color, lw=1.8)
                else:
                    ax.plot(fit["week"], fit["per_week"], color=color, lw=1.1, ls=(0, (4, 2)))
            handles.append(Line2D([], [], color=color, lw=1.8, label=_plain(arm)))
        weeks = table["week"].astype(float)
        if (weeks <= 0).any() and (weeks > 0).any():
            ax.axvline(0.5, color="#999999", lw=0.8, ls=":")
            ax.text(
                0.5,
                1.0,
                " treatment starts",
                transform=ax.get_xaxis_transform(),
                fontsize=7.5,
                va="top",
                color="#555555",
            )
        ax.set_xlabel(
            "study week (weeks 0 and earlier: run-in)" if (weeks <= 0).any() else "study week"
        )
        ax.set_ylabel("cramps per week")
        ax.set_ylim(bottom=0)
        keys = [Line2D([], [], color="#333333", lw=0.8, marker="o", ms=3.2, label="observed")]
        if primary in models:
            keys.append(Line2D([], [], color="#333333", lw=1.8, label=f"{primary} (fitted)"))
        keys += [
            Line2D([], [], color="#333333", lw=1.1, ls=(0, (4, 2)), label=f"{m} (fitted)")
            for m in models
            if m != primary
        ]
        first = ax.legend(
            handles=handles,
            loc="upper left",
            bbox_to_anchor=(1.01, 1.0),
            title="arm",
            title_fontsize=8,
        )
        ax.add_artist(first)
        first.set_clip_on(False)  # add_artist clips to the axes; this legend sits outside them
        ax.legend(handles=keys, loc="lower left", bbox_to_anchor=(1.01, 0.0))
        return svg_string(fig, fig_id, title)


def _with_gaps(rows: pd.DataFrame) -> pd.DataFrame:
    """Rows sorted by week, with a NaN row in every gap so that lines break (e.g. washout)."""
    rows = rows.sort_values("week")
    weeks = rows["week"].astype(float).to_numpy()
    if len(weeks) < 2:
        return rows
    gaps = weeks[1:][np.diff(weeks) > 1] - 0.5
    if not len(gaps):
        return rows
    filler = pd.DataFrame({"week": gaps})
    return pd.concat([rows, filler], ignore_index=True).sort_values("week", kind="stable")


# ---------------------------------------------------------------------------------------------
# Rootograms
# ---------------------------------------------------------------------------------------------
def rootogram(table: pd.DataFrame, model: str, unit: str, *, fig_id: str, title: str) -> Markup:
    """Hanging rootogram of one model (Kleiber & Zeileis 2016).

    Bars of height sqrt(observed frequency) hang from the curve of sqrt(expected frequency):
    a bar ending below zero means more units with that count than the model expects, a bar
    ending above zero fewer.

    Parameters
    ----------
    table
        The model's rows of ``ppc.csv`` (``count, label, sqrt_observed, sqrt_expected``).
    model, unit
        Model id and what one count is (``subject total``, ``subject-week``, ...).
    fig_id, title
        Id and accessible title of the figure.

    Returns
    -------
    markupsafe.Markup
        Inline SVG.
    """
    rows = table.sort_values("count")
    x = np.arange(len(rows))
    expected = rows["sqrt_expected"].to_numpy(float)
    observed = rows["sqrt_observed"].to_numpy(float)
    with _rc():
        fig = _figure(3.6, 2.7)
        ax = fig.add_subplot()
        ax.bar(
            x,
            observed,
            bottom=expected - observed,
            width=0.85,
            color="#BBBBBB",
            edgecolor="#777777",
            linewidth=0.4,
        )
        ax.plot(x, expected, color="#D55E00", lw=1.4, marker="o", ms=2.2)
        ax.axhline(0, color="#333333", lw=0.8)
        step = max(1, math.ceil(len(x) / 8))
        ticks = [int(t) for t in x[::step]]
        if len(x) and ticks[-1] != x[-1]:
            # the pooled last bin always gets a label; drop a regular one too close to it
            if x[-1] - ticks[-1] < max(2, step * 0.75):
                ticks.pop()
            ticks.append(int(x[-1]))
        ax.xaxis.set_major_locator(FixedLocator(ticks))
        labels = rows["label"].astype(str).to_numpy()
        ax.set_xticklabels([labels[int(t)].replace(">=", "≥") for t in ticks])
        ax.set_xlabel(f"count per {unit}")
        ax.set_ylabel("√ frequency")
        ax.set_title(model)
        return svg_string(fig, fig_id, title)


# ---------------------------------------------------------------------------------------------
# Per-patient effects
# ---------------------------------------------------------------------------------------------
def patients(table: pd.DataFrame, *, ratio: bool, fig_id: str, title: str) -> Markup:
    """Per-patient treatment effects with intervals, sorted by the estimate.

    Parameters
    ----------
    table
        Rows of ``patients.csv`` for one model and arm (``subject_id, effect_median,
        effect_lower, effect_upper, p_own_benefit``).
    ratio
        True when the effects are rate ratios (log axis, line at 1), False for log rate
        ratios (linear axis, line at 0).
    fig_id, title
        Id and accessible title of the figure.

    Returns
    -------
    markupsafe.Markup
        Inline SVG; subject ids are shown when there are at most 60 patients.
    """
    rows = table.sort_values(["effect_median", "subject_id"])
    n = len(rows)
    y = np.arange(n)
    labelled = n <= 60
    with _rc():
        fig = _figure(7.2, min(12.0, 1.1 + (0.2 if labelled else 0.06) * n))
        ax = fig.add_subplot()
        if ratio:
            ax.set_xscale("log")
        ax.hlines(y, rows["effect_lower"], rows["effect_upper"], color="#0072B2", lw=1.2)
        ax.plot(rows["effect_median"], y, "o", color="#0072B2", ms=3.5)
        ax.axvline(1.0 if ratio else 0.0, color="#333333", lw=0.9)
        if labelled:
            ax.set_yticks(y)
            ax.set_yticklabels([_plain(s) for s in rows["subject_id"]])
            for yi, p in zip(y, rows["p_own_benefit"], strict=True):
                ax.text(
                    1.02,
                    yi,
                    f"P(benefit) {_prob(p)}" if np.isfinite(p) else "",
                    transform=ax.get_yaxis_transform(),
                    va="center",
                    fontsize=7.5,
                )
        else:
            ax.set_yticks([])
            ax.set_ylabel(f"{n} patients, sorted by estimate")
        ax.tick_params(axis="y", length=0, labelsize=7.5)
        ax.set_ylim(-1, n)
        ax.invert_yaxis()
        bounds = pd.concat([rows["effect_lower"], rows["effect_upper"]]).astype(float)
        bounds = bounds[np.isfinite(bounds)]
        if ratio:
            lo = min(float(bounds.min()) if len(bounds) else 1.0, 1.0) / 1.15
            hi = max(float(bounds.max()) if len(bounds) else 1.0, 1.0) * 1.15
            ax.set_xlim(lo, hi)
            ax.xaxis.set_major_locator(FixedLocator(_ratio_ticks(lo, hi)))
            ax.xaxis.set_minor_locator(NullLocator())
            ax.xaxis.set_major_formatter(lambda v, _pos: f"{v:g}")
        elif len(bounds):
            span = max(float(bounds.max()), 0.0) - min(float(bounds.min()), 0.0)
            ax.set_xlim(
                min(float(bounds.min()), 0.0) - 0.08 * span,
                max(float(bounds.max()), 0.0) + 0.08 * span,
            )
        ax.set_xlabel(
            "patient's own rate ratio (log scale)" if ratio else "patient's own log rate ratio"
        )
        return svg_string(fig, fig_id, title)


# ---------------------------------------------------------------------------------------------
# Secondary endpoints
# ---------------------------------------------------------------------------------------------
#: Colour of a failed fit's estimates (the report's ``--bad``).
BAD = "#B00020"


def _finite(x: object) -> bool:
    """Return True for a finite number (False for None, NaN, pandas' NA, non-numbers)."""
    try:
        return bool(np.isfinite(float(x)))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False


@dataclass
class EffectPoint:
    """One estimate with its interval in an effect panel.

    Attributes
    ----------
    group : str
        Row of the panel it belongs to (an arm).
    median, lower, upper : float
        Estimate and interval (NaN: not estimable).
    kind : str
        ``bayes`` (filled circle, drawn above the row's centre) or ``twin`` (open square, below).
    failed : bool
        The fit failed its checks: drawn in red.
    """

    group: str
    median: float = math.nan
    lower: float = math.nan
    upper: float = math.nan
    kind: str = "bayes"
    failed: bool = False


@dataclass
class EffectPanel:
    """One panel of :func:`effect_panels`: one effect measure on its own axis.

    Attributes
    ----------
    title, xlabel : str
        Panel title and axis label.
    points : list of EffectPoint
        The estimates.
    log : bool
        Log axis (ratios) rather than linear (differences).
    reference : float
        Value of no effect (1 for ratios, 0 for differences), drawn as a solid line.
    benefit : str
        ``above`` or ``below``: the side of ``reference`` that favours the arm (labelled).
    """

    title: str
    xlabel: str
    points: list[EffectPoint]
    log: bool = False
    reference: float = 0.0
    benefit: str = "above"


def _limits(values: list[float], log: bool) -> tuple[float, float]:
    lo, hi = min(values), max(values)
    if log:
        return lo / 1.15, hi * 1.15
    span = (hi - lo) or max(abs(hi), 1.0)
    return lo - 0.08 * span, hi + 0.08 * span


#: Tick candidates of a ratio axis in a narrow panel (finer near 1 than :func:`_ratio_ticks`).
_PANEL_TICKS = (
    0.01, 0.02, 0.05, 0.1, 0.2, 0.25, 0.33, 0.5, 0.67, 0.75, 0.8, 0.9, 1, 1.1, 1.25, 1.5, 2, 3,
    4, 5, 10, 20, 50, 100,
)  # fmt: skip


def _sparse_ticks(lo: float, hi: float, min_share: float = 0.14) -> list[float]:
    """Ratio ticks at least ``min_share`` of the log range apart (1 always kept): narrow panels.

    Falls back on the ends rounded to two significant digits when fewer than two candidates
    lie in the range.
    """
    gap = min_share * math.log(hi / lo)
    candidates = [t for t in _PANEL_TICKS if lo <= t <= hi]
    if len(candidates) < 2:
        candidates = sorted({float(f"{lo * 1.02:.2g}"), 1.0, float(f"{hi / 1.02:.2g}")})
        candidates = [t for t in candidates if lo <= t <= hi]
    kept: list[float] = [1.0] if lo <= 1.0 <= hi else []
    for t in sorted(candidates, key=lambda t: (t != 1.0, abs(math.log(t)))):
        if all(abs(math.log(t / k)) >= gap for k in kept):
            kept.append(t)
    return sorted(kept)


def effect_panels(
    groups: Sequence[str],
    panels: Sequence[EffectPanel],
    *,
    fig_id: str,
    title: str,
    level: str,
) -> Markup:
    """Forest plot of one or more effect measures side by side, one row per arm.

    In every row the Bayesian estimate (filled circle) sits just above the frequentist twin's
    (open square), each with its interval; a solid line marks no effect and a label the side
    that favours the arm. Estimates of a failed fit are red.

    Parameters
    ----------
    groups
        Row labels from top to bottom (arms).
    panels
        The measures, left to right.
    fig_id, title
        Id and accessible title of the figure.
    level
        Interval level for the legend, e.g. ``95 %``.

    Returns
    -------
    markupsafe.Markup
        Inline SVG.
    """
    n = len(groups)
    rows = {g: n - 1 - i for i, g in enumerate(groups)}
    offset = {"bayes": 0.15, "twin": -0.15}
    failed = False
    with _rc():
        fig = _figure(7.2, 1.5 + 0.42 * n)
        axes = fig.subplots(1, len(panels), sharey=True, squeeze=False)[0]
        for ax, panel in zip(axes, panels, strict=True):
            if panel.log:
                ax.set_xscale("log")
            values = [panel.reference]
            for point in panel.points:
                if point.group not in rows or not _finite(point.median):
                    continue
                if panel.log and point.median <= 0:
                    continue
                y = rows[point.group] + offset.get(point.kind, 0.0)
                color = BAD if point.failed else ("#D55E00" if point.kind == "twin" else "#0072B2")
                failed |= point.failed
                bounds = [b for b in (point.lower, point.upper) if _finite(b)]
                bounds = [b for b in bounds if b > 0] if panel.log else bounds
                if len(bounds) == 2:
                    ax.plot(bounds, [y, y], color=color, lw=1.6, solid_capstyle="butt")
                marker, face = ("s", "white") if point.kind == "twin" else ("o", color)
                ax.plot([point.median], [y], marker=marker, ms=5.5, mfc=face, mec=color, mew=1.3)
                values += [point.median, *bounds]
            lo, hi = _limits(values, panel.log)
            ax.set_xlim(lo, hi)
            if panel.log:
                ax.xaxis.set_major_locator(FixedLocator(_sparse_ticks(lo, hi)))
                ax.xaxis.set_minor_locator(NullLocator())
                ax.xaxis.set_major_formatter(lambda x, _pos: f"{x:g}")
            ax.axvline(panel.reference, color="#333333", lw=0.9)
            above = panel.benefit == "above"
            ax.text(
                panel.reference,
                1.0,
                " favours arm \u2192" if above else "\u2190 favours arm ",
                transform=ax.get_xaxis_transform(),
                ha="left" if above else "right",
                va="bottom",
                fontsize=7.5,
                color="#333333",
            )
            ax.set_title(panel.title, pad=14)
            ax.set_xlabel(panel.xlabel)
            ax.spines["left"].set_visible(False)
            ax.tick_params(axis="y", length=0)
        axes[0].set_yticks(list(rows.values()))
        axes[0].set_yticklabels([_plain(g) for g in rows])
        axes[0].set_ylim(-0.6, n - 0.4)
        keys = [
            Line2D([], [], color="#0072B2", marker="o", ms=5.5, lw=1.6,
                   label=f"Bayesian: posterior median, {level} CrI"),
            Line2D([], [], color="#D55E00", marker="s", ms=5.5, mfc="white", lw=1.6,
                   label=f"frequentist twin: estimate, {level} CI"),
        ]  # fmt: skip
        if failed:
            keys.append(Line2D([], [], color=BAD, marker="o", ms=5.5, lw=1.6, label="failed fit"))
        fig.legend(handles=keys, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=len(keys))
        return svg_string(fig, fig_id, title)


def incidence(
    table: pd.DataFrame,
    arms: Sequence[str],
    categories: Sequence[str],
    highlight: Sequence[str],
    *,
    fig_id: str,
    title: str,
) -> Markup:
    """Dot chart of adverse-event incidence by category and arm.

    Each category is a band with one lollipop per arm (share of the arm's subjects with at
    least one event of the category); highlighted categories (quinine's known harms) have a red
    band and label.

    Parameters
    ----------
    table
        ``arm, category, incidence`` (0-1), one row per arm and category.
    arms
        Arms in legend order (control first).
    categories
        Categories from top to bottom.
    highlight
        Categories to highlight.
    fig_id, title
        Id and accessible title of the figure.

    Returns
    -------
    markupsafe.Markup
        Inline SVG.
    """
    n, m = len(categories), max(1, len(arms))
    step = 0.8 / m
    with _rc():
        fig = _figure(7.2, 1.0 + n * (0.18 + 0.11 * m))
        ax = fig.add_subplot()
        top = 0.05
        for i, category in enumerate(categories):
            centre = n - 1 - i
            if category in highlight:
                ax.axhspan(centre - 0.48, centre + 0.48, color="#FDECEE", lw=0, zorder=0)
            for j, arm in enumerate(arms):
                rows = table[
                    (table["arm"].astype(str) == arm) & (table["category"].astype(str) == category)
                ]
                if not len(rows) or not _finite(float(rows["incidence"].iloc[0])):
                    continue
                share = 100 * float(rows["incidence"].iloc[0])
                top = max(top, share)
                y = centre + 0.4 - step * (j + 0.5)
                color = PALETTE[j % len(PALETTE)]
                ax.plot([0, share], [y, y], color=color, lw=1.0, alpha=0.7)
                ax.plot([share], [y], "o", color=color, ms=4.5)
        ax.set_yticks(list(range(n - 1, -1, -1)))
        ax.set_yticklabels([_plain(c).replace("_", " ") for c in categories])
        for tick, category in zip(ax.get_yticklabels(), categories, strict=True):
            if category in highlight:
                tick.set_color(BAD)
                tick.set_fontweight("bold")
        ax.tick_params(axis="y", length=0)
        ax.set_ylim(-0.55, n - 0.45)
        ax.set_xlim(0, top * 1.1)
        ax.set_xlabel("subjects with at least one event (%)")
        ax.spines["left"].set_visible(False)
        handles = [
            Line2D([], [], color=PALETTE[j % len(PALETTE)], marker="o", ms=4.5, label=_plain(a))
            for j, a in enumerate(arms)
        ]
        if any(c in highlight for c in categories):
            handles.append(Patch(facecolor="#FDECEE", edgecolor=BAD, label="quinine signal"))
        ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), title="arm")
        return svg_string(fig, fig_id, title)


def outcome_properties(
    endpoints: Sequence[str],
    icc: pd.DataFrame,
    needed: pd.DataFrame,
    arms: Sequence[str],
    *,
    fig_id: str,
    title: str,
    level: str,
    colour_order: Sequence[str] = (),
) -> Markup:
    """Reliability and sample size per endpoint: ICC with intervals, and patients per arm.

    Parameters
    ----------
    endpoints
        Row labels from top to bottom.
    icc
        ``endpoint, estimate, lower, upper``: one row per endpoint with an ICC (may be empty).
    needed
        ``endpoint, arm, estimate``: patients per arm a trial would need to detect each arm's
        effect (may be empty); one bar per arm, coloured in the order of ``arms``.
    arms
        Arms of ``needed`` in legend order.
    colour_order
        Arms in the order of :data:`PALETTE` (control first, as in the other figures); arms
        not in it take the next colours.
    fig_id, title
        Id and accessible title of the figure.
    level
        Interval level for the axis label, e.g. ``95 %``.

    Returns
    -------
    markupsafe.Markup
        Inline SVG; a panel is left out when its frame is empty, and an estimate that could
        not be computed is labelled so. Patients are on a log axis when they span more than
        a factor of 20.
    """
    panels = [p for p, df in (("icc", icc), ("needed", needed)) if len(df)]
    n, m = len(endpoints), max(1, len(arms))
    rows = {e: n - 1 - i for i, e in enumerate(endpoints)}
    step = 0.8 / m
    order = list(dict.fromkeys([*colour_order, *arms]))
    colour = {a: PALETTE[order.index(a) % len(PALETTE)] for a in arms}
    drawn: set[str] = set()
    with _rc():
        fig = _figure(7.2, 1.2 + n * (0.25 + (0.1 * m if "needed" in panels else 0.1)))
        axes = fig.subplots(1, max(1, len(panels)), sharey=True, squeeze=False)[0]
        for ax, panel in zip(axes, panels, strict=False):
            frame = icc if panel == "icc" else needed
            for rec in frame.to_dict("records"):
                y = rows.get(str(rec["endpoint"]))
                if y is None:
                    continue
                if panel == "needed":
                    j = list(arms).index(rec["arm"]) if rec.get("arm") in arms else 0
                    y = y + 0.4 - step * (j + 0.5)
                if not _finite(rec.get("estimate")):
                    ax.text(0.02, y, "not estimable", transform=ax.get_yaxis_transform(),
                            va="center", fontsize=7, color="#555555")  # fmt: skip
                    continue
                if panel == "icc":
                    if _finite(rec.get("lower")) and _finite(rec.get("upper")):
                        ax.plot([rec["lower"], rec["upper"]], [y, y], color="#0072B2", lw=1.6)
                    ax.plot([rec["estimate"]], [y], "o", color="#0072B2", ms=5.5)
                else:
                    value = math.ceil(float(rec["estimate"]))
                    ax.barh([y], [value], height=step * 0.85, color=colour.get(rec["arm"]))
                    drawn.add(rec["arm"])
                    ax.text(value, y, f" {value:,}", va="center", fontsize=7)
            if panel == "icc":
                ax.set_xlim(0, 1)
                for x, word in ((0.5, "moderate"), (0.75, "good"), (0.9, "excellent")):
                    ax.axvline(x, color="#999999", lw=0.8, ls=(0, (4, 3)))
                    ax.text(x, 1.0, word, transform=ax.get_xaxis_transform(), ha="center",
                            va="bottom", fontsize=7, color="#555555")  # fmt: skip
                ax.set_xlabel(f"ICC (test-retest reliability), {level} interval")
            else:
                values = frame["estimate"].astype(float)
                values = values[np.isfinite(values) & (values > 0)]
                if len(values) and values.max() / values.min() > 20:
                    ax.set_xscale("log")
                    ax.set_xlim(values.min() / 1.5, values.max() * 4)
                else:
                    ax.set_xlim(0, (values.max() if len(values) else 1.0) * 1.25)
                ax.set_xlabel("patients per arm needed" + (" (log scale)" if
                              ax.get_xscale() == "log" else ""))  # fmt: skip
                handles = [
                    Line2D([], [], color=colour[a], lw=6, label=_plain(a))
                    for a in arms
                    if a in drawn
                ]
                ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0),
                          title="effect of arm")  # fmt: skip
            ax.spines["left"].set_visible(False)
            ax.tick_params(axis="y", length=0)
        axes[0].set_yticks(list(rows.values()))
        axes[0].set_yticklabels([_plain(e) for e in rows])
        axes[0].set_ylim(-0.55, n - 0.45)
        return svg_string(fig, fig_id, title)
