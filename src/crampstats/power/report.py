"""The power report: one self-contained HTML page per power study.

A power study is a results folder (``results/power``) with one sub-folder per design, each
holding the ``power.csv`` of ``crampstats power summarize`` and its decisions files. The page
shows, per design (one scenario of a grid is one design): power (or assurance, or the
false-positive rate) against patients per arm with its 95 % Monte Carlo interval as an inline
SVG, the decision rules, and an operating-characteristics table with a sentence ready for a
protocol's sample-size section; sequential designs show their looks, thresholds, stopping
probabilities per look, expected sample size and duration. Every data string is escaped; the
page loads nothing (inline CSS and SVG, a Content-Security-Policy forbidding every source).
Wording states estimates with their intervals and never claims more.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from crampstats.errors import CrampstatsError
from crampstats.outputs import atomic_write_text
from crampstats.power.run import read_decisions

__all__ = ["build_power_report", "curve_svg", "stopping_svg", "write_power_report"]

PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000")
CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
CSS = """
body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;
color:#222;line-height:1.45}
h1{font-size:1.6rem}h2{font-size:1.3rem;border-bottom:1px solid #ccc;margin-top:2.5rem}
h3{font-size:1.05rem}table{border-collapse:collapse;font-size:.85rem;margin:.5rem 0}
td,th{border:1px solid #ddd;padding:.2rem .45rem;text-align:right}
th{background:#f4f4f4}td:first-child,th:first-child{text-align:left}
.protocol{background:#f7f9fc;border-left:4px solid #0072B2;padding:.5rem 1rem}
.note{color:#555;font-size:.85rem}svg{max-width:100%;height:auto}.wide{overflow-x:auto}
"""


def _e(value: Any) -> str:
    """Escape any value for HTML text and attributes."""
    return html.escape(str(value), quote=True)


def _fmt(x: Any, digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return ""
    if isinstance(x, float | np.floating):
        return f"{float(x):.{digits}g}" if abs(x) >= 1 else f"{float(x):.{digits}f}"
    return str(x)


# --------------------------------------------------------------------------------------------
# Inline SVG figures (hand-written: deterministic, no fonts or scripts)
# --------------------------------------------------------------------------------------------
def _axes(
    width: int, height: int, x_ticks: Sequence[float], x_range: tuple[float, float], xlabel: str
) -> tuple[list[str], Any, Any]:
    left, right, top, bottom = 48, 12, 10, 36
    x0, x1 = x_range
    span = (x1 - x0) or 1.0

    def sx(x: float) -> float:
        return left + (x - x0) / span * (width - left - right)

    def sy(y: float) -> float:
        return top + (1.0 - y) * (height - top - bottom)

    parts = [
        f'<line x1="{left}" y1="{sy(0):.1f}" x2="{width - right}" y2="{sy(0):.1f}" stroke="#444"/>',
        f'<line x1="{left}" y1="{sy(0):.1f}" x2="{left}" y2="{sy(1):.1f}" stroke="#444"/>',
    ]
    for y in (0.0, 0.2, 0.4, 0.6, 0.8, 1.0):
        parts.append(
            f'<line x1="{left}" y1="{sy(y):.1f}" x2="{width - right}" y2="{sy(y):.1f}" '
            'stroke="#eee"/>'
            f'<text x="{left - 4}" y="{sy(y) + 3:.1f}" font-size="10" '
            f'text-anchor="end">{y:.1f}</text>'
        )
    for x in x_ticks:
        parts.append(
            f'<text x="{sx(x):.1f}" y="{sy(0) + 13:.1f}" font-size="10" '
            f'text-anchor="middle">{_e(_fmt(x))}</text>'
        )
    parts.append(
        f'<text x="{(left + width - right) / 2:.1f}" y="{height - 4}" font-size="11" '
        f'text-anchor="middle">{_e(xlabel)}</text>'
    )
    return parts, sx, sy


def curve_svg(table: pd.DataFrame, target: float | None = None, width: int = 560) -> str:
    """Power against patients per arm, one curve per arm and rule, 95 % intervals as bands.

    Parameters
    ----------
    table
        Rows of one design's ``power.csv``: ``n_per_arm, arm, rule, power, lower, upper``
        (``power_fit`` drawn dashed when present).
    target
        Target power, drawn as a grey line.
    width
        Width in pixels (the height follows).

    Returns
    -------
    str
        An ``<svg>`` element with a ``<title>``.
    """
    height = 262 + 16 * (table[["arm", "rule"]].drop_duplicates().shape[0])
    plot_h = 250
    n = table["n_per_arm"].astype(float)
    lo, hi = float(n.min()), float(n.max())
    if lo == hi:
        lo, hi = lo - 1, hi + 1
    ticks = sorted(set(table["n_per_arm"].astype(float)))
    parts, sx, sy = _axes(width, plot_h, ticks, (lo, hi), "patients per arm")
    if target is not None and math.isfinite(target):
        parts.append(
            f'<line x1="{sx(lo):.1f}" y1="{sy(target):.1f}" x2="{sx(hi):.1f}" '
            f'y2="{sy(target):.1f}" stroke="#999" stroke-dasharray="5 3"/>'
        )
    legend = []
    for i, ((arm, rule), g) in enumerate(table.groupby(["arm", "rule"], sort=False)):
        g = g.sort_values("n_per_arm")
        colour = PALETTE[i % len(PALETTE)]
        xs = g["n_per_arm"].astype(float).to_numpy()
        band = [(sx(x), sy(u)) for x, u in zip(xs, g["upper"], strict=True)]
        band += [(sx(x), sy(v)) for x, v in zip(xs[::-1], g["lower"].to_numpy()[::-1], strict=True)]
        if len(xs) > 1:
            pts = " ".join(f"{a:.1f},{b:.1f}" for a, b in band)
            parts.append(f'<polygon points="{pts}" fill="{colour}" fill-opacity="0.18"/>')
        for x, v, u in zip(xs, g["lower"], g["upper"], strict=True):
            parts.append(
                f'<line x1="{sx(x):.1f}" y1="{sy(v):.1f}" x2="{sx(x):.1f}" y2="{sy(u):.1f}" '
                f'stroke="{colour}"/>'
            )
        line = " ".join(f"{sx(x):.1f},{sy(p):.1f}" for x, p in zip(xs, g["power"], strict=True))
        parts.append(f'<polyline points="{line}" fill="none" stroke="{colour}" stroke-width="2"/>')
        for x, p in zip(xs, g["power"], strict=True):
            parts.append(f'<circle cx="{sx(x):.1f}" cy="{sy(p):.1f}" r="3" fill="{colour}"/>')
        if "power_fit" in g and g["power_fit"].notna().all() and len(xs) > 1:
            fit = " ".join(
                f"{sx(x):.1f},{sy(p):.1f}" for x, p in zip(xs, g["power_fit"], strict=True)
            )
            parts.append(
                f'<polyline points="{fit}" fill="none" stroke="{colour}" stroke-dasharray="3 3"/>'
            )
        y = plot_h + 8 + 16 * i
        legend.append(
            f'<rect x="48" y="{y}" width="12" height="10" fill="{colour}"/>'
            f'<text x="66" y="{y + 9}" font-size="11">{_e(arm)}: {_e(rule)}</text>'
        )
    title = "Power against patients per arm with 95 % Monte Carlo intervals"
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" role="img">'
        f"<title>{_e(title)}</title>{''.join(parts)}{''.join(legend)}</svg>"
    )


def stopping_svg(table: pd.DataFrame, width: int = 560) -> str:
    """Probability of stopping at each look, for efficacy and for futility, per arm.

    Parameters
    ----------
    table
        Operating characteristics (:func:`crampstats.power.sequential.operating_characteristics`),
        columns ``p_efficacy[j]`` and ``p_futility[j]``; one panel row per design and arm.

    Returns
    -------
    str
        A standalone SVG document (also valid inline in HTML).
    """
    looks = sorted(int(c[len("p_efficacy[") : -1]) for c in table if c.startswith("p_efficacy["))
    rows = table.to_dict("records")  # column names such as p_efficacy[1] kept
    panel_h, height = 150, 170 * max(1, len(rows)) + 20
    parts = []
    for r, values in enumerate(rows):
        off = 170 * r
        axes, sx, sy = _axes(width, panel_h, looks, (0.5, len(looks) + 0.5), "look")
        parts.append(f'<g transform="translate(0,{off})">{"".join(axes)}')
        for j in looks:
            for k, (key, colour) in enumerate((("efficacy", "#009E73"), ("futility", "#D55E00"))):
                p = float(values.get(f"p_{key}[{j}]", 0.0))
                x = sx(j) - 18 + 18 * k
                parts.append(
                    f'<rect x="{x:.1f}" y="{sy(p):.1f}" width="16" height="{sy(0) - sy(p):.1f}" '
                    f'fill="{colour}"><title>look {j}: P(stop for {key}) = {p:.3f}</title></rect>'
                )
        label = f"{values.get('design', '')} {values.get('arm', '')} ({values.get('effect', '')})"
        parts.append(f'<text x="52" y="12" font-size="11">{_e(label.strip())}</text></g>')
    legend_y = height - 12
    parts.append(
        f'<rect x="48" y="{legend_y - 9}" width="12" height="10" fill="#009E73"/>'
        f'<text x="64" y="{legend_y}" font-size="11">stop for efficacy</text>'
        f'<rect x="180" y="{legend_y - 9}" width="12" height="10" fill="#D55E00"/>'
        f'<text x="196" y="{legend_y}" font-size="11">stop for futility</text>'
    )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" role="img">'
        "<title>Probability of stopping at each look</title>" + "".join(parts) + "</svg>\n"
    )


# --------------------------------------------------------------------------------------------
# Page
# --------------------------------------------------------------------------------------------
def _table_html(frame: pd.DataFrame, columns: dict[str, str]) -> str:
    cols = [c for c in columns if c in frame]
    head = "".join(f"<th>{_e(columns[c])}</th>" for c in cols)
    body = "".join(
        "<tr>" + "".join(f"<td>{_e(_fmt(row[c]))}</td>" for c in cols) + "</tr>"
        for _, row in frame.iterrows()
    )
    return (
        f'<div class="wide"><table><thead><tr>{head}</tr></thead>'
        f"<tbody>{body}</tbody></table></div>"
    )


def _meta(directory: Path) -> dict[str, Any]:
    files = sorted(directory.glob("decisions-*-of-*.parquet"))
    return read_decisions(files[0])[1] if files else {}


def _mode_text(table: pd.DataFrame, meta: dict[str, Any]) -> str:
    sampler = meta.get("sampler") or {}
    mode = meta.get("mode", "mcmc")
    what = {
        "mcmc": "full MCMC",
        "laplace": "a Laplace approximation corrected by Pareto-smoothed importance sampling "
        "(replicates with a Pareto k-hat above the limit were re-analysed by MCMC)",
    }.get(mode, mode)
    return (
        f"Each simulated trial was analysed with the model {_e(meta.get('model', ''))} "
        f"by {_e(what)}"
        + (
            f" ({_e(sampler.get('chains'))} chains x {_e(sampler.get('draws'))} draws)"
            if mode == "mcmc" and sampler
            else ""
        )
        + f"; seed {_e(meta.get('seed', ''))}."
    )


def _fixed_section(name: str, table: pd.DataFrame, meta: dict[str, Any]) -> str:
    target = float(table["target_power"].iloc[0]) if "target_power" in table else None
    rules = meta.get("rules") or []
    rule_items = "".join(
        f"<li>{_e(r['name'])}: success when P(RR &lt; {_e(r['threshold_rr'])} | data) &gt; "
        f"{_e(r['probability'])}</li>"
        for r in rules
    )
    columns = {
        "n_per_arm": "patients per arm",
        "arm": "arm",
        "effect": "true effect",
        "rule": "rule",
        "replicates": "simulated trials",
        "power": "P(success)",
        "lower": "95 % lower",
        "upper": "95 % upper",
        "n_diagnostics_failed": "fits failing diagnostics",
    }
    sentences = []
    for (arm, rule), g in table.groupby(["arm", "rule"], sort=False):
        g = g.sort_values("n_per_arm")
        reached = g[g["power"] >= (target if target is not None else 2.0)]
        row = reached.iloc[0] if len(reached) else g.iloc[-1]
        what = "assurance" if str(row.get("effect", "")).startswith("lognormal") else "power"
        if "true_rr" in row and row.get("true_rr") == 1.0:
            what = "false-positive rate"
        if isinstance(row.get("label"), str) and row["label"]:
            what = row["label"]  # the summary's name of the rate, at the rule's own null
        sentences.append(
            f"With {_e(int(row['n_per_arm']))} patients per arm, the estimated {_e(what)} of rule "
            f"&ldquo;{_e(rule)}&rdquo; for {_e(arm)} ({_e(row.get('effect', ''))}) is "
            f"{_e(_fmt(row['power']))} (95 % Monte Carlo interval {_e(_fmt(row['lower']))} to "
            f"{_e(_fmt(row['upper']))}; {_e(int(row['replicates']))} simulated trials)."
        )
    return (
        f"<h3>Decision rules</h3><ul>{rule_items}</ul>"
        f"<h3>Power against sample size</h3>{curve_svg(table, target)}"
        f'<p class="note">Points: estimated probability of success; bands and bars: 95 % '
        f"Monte Carlo intervals; grey dashed line: target {_e(_fmt(target))}.</p>"
        f"<h3>Operating characteristics</h3>{_table_html(table, columns)}"
        f'<div class="protocol"><p>{" ".join(sentences)}</p><p>{_mode_text(table, meta)}</p>'
        "</div>"
    )


def _sequential_section(name: str, table: pd.DataFrame, meta: dict[str, Any]) -> str:
    plan = meta.get("plan") or {}
    looks = plan.get("looks", [])
    fut = plan.get("futility") or [None] * len(looks)
    rows = "".join(
        f"<tr><td>{j + 1}</td><td>{_e(_fmt(float(f)))}</td>"
        f"<td>{_e(_fmt(float(e), 5))}</td><td>{_e(_fmt(g) if g is not None else 'none')}</td></tr>"
        for j, (f, e, g) in enumerate(zip(looks, plan.get("efficacy", []), fut, strict=False))
    )
    plan_html = (
        f"<p>Efficacy: P(RR &lt; {_e(plan.get('efficacy_rr'))} | data) above the look's "
        f"threshold ({_e(plan.get('boundary', ''))}); futility at interim looks: "
        f"P(RR &lt; {_e(plan.get('futility_rr'))} | data) below the look's threshold. "
        f"Arms {'stop on their own' if plan.get('drop_arms') else 'move together'}. Recruitment "
        f"{_e(plan.get('accrual_per_week'))} patients a week over the open arms; follow-up "
        f"{_e(plan.get('follow_up_weeks'))} weeks (durations depend on these assumptions).</p>"
        "<table><thead><tr><th>look</th><th>information fraction</th>"
        "<th>efficacy threshold</th><th>futility threshold</th></tr></thead>"
        f"<tbody>{rows}</tbody></table>"
    )
    columns = {
        "n_per_arm": "max patients per arm",
        "arm": "arm",
        "effect": "true effect",
        "replicates": "simulated trials",
        "p_success": "P(success)",
        "lower": "95 % lower",
        "upper": "95 % upper",
        **{f"p_efficacy[{j + 1}]": f"P(efficacy at look {j + 1})" for j in range(len(looks))},
        **{f"p_futility[{j + 1}]": f"P(futility at look {j + 1})" for j in range(len(looks))},
        "expected_n": "expected patients analysed",
        "expected_n_randomised": "expected patients randomised",
        "expected_duration_weeks": "expected duration (weeks)",
        "n_max": "maximum patients",
    }
    sentences = []
    for row in table.to_dict("records"):
        what = "false-positive rate" if row.get("true_rr") == 1.0 else "probability of success"
        sentences.append(
            f"With at most {_e(int(row['n_per_arm']))} patients per arm and looks at "
            f"information fractions {_e(', '.join(_fmt(float(f)) for f in looks))}, the "
            f"estimated {_e(what)} for {_e(row['arm'])} ({_e(row['effect'])}) is "
            f"{_e(_fmt(float(row['p_success'])))} (95 % Monte Carlo interval "
            f"{_e(_fmt(row['lower']))} to {_e(_fmt(row['upper']))}); the expected number of "
            "patients analysed is "
            f"{_e(_fmt(row['expected_n']))} of {_e(row['n_max'])} and the expected duration "
            f"{_e(_fmt(row['expected_duration_weeks']))} weeks ({_e(int(row['replicates']))} "
            "simulated trials)."
        )
    return (
        f"<h3>Looks and decision rules</h3>{plan_html}"
        f"<h3>Stopping at each look</h3>{stopping_svg(table)}"
        f"<h3>Operating characteristics</h3>{_table_html(table, columns)}"
        f'<div class="protocol"><p>{" ".join(sentences)}</p><p>{_mode_text(table, meta)}</p>'
        "</div>"
    )


def build_power_report(study: str | Path, title: str = "Power study") -> str:
    """Build the HTML page of a power study.

    Parameters
    ----------
    study
        Folder with one sub-folder per design, each with ``power.csv`` and its decisions files
        (a single design's folder works too).
    title
        Page title.

    Returns
    -------
    str
        The page.

    Raises
    ------
    CrampstatsError
        If no design folder holds a ``power.csv``.
    """
    study = Path(study)
    folders = (
        [study]
        if (study / "power.csv").is_file()
        else sorted(p.parent for p in study.glob("*/power.csv"))
    )
    if not folders:
        raise CrampstatsError(f"{study}: no power.csv to report (run crampstats power summarize)")
    sections, summary = [], []
    for folder in folders:
        table = pd.read_csv(folder / "power.csv", keep_default_na=True)
        meta = _meta(folder)
        for design, sub in table.groupby("design", sort=False):
            sequential = meta.get("kind") == "sequential"
            body = (_sequential_section if sequential else _fixed_section)(design, sub, meta)
            anchor = f"design-{len(sections) + 1}"
            kind = "group-sequential" if sequential else "fixed sample size"
            sections.append(f'<h2 id="{anchor}">{_e(design)} ({kind})</h2>{body}')
            summary.append(
                f'<li><a href="#{anchor}">{_e(design)}</a>: {kind}, '
                f"{_e(int(sub['replicates'].max()))} simulated trials per design point</li>"
            )
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        f"<title>{_e(title)}</title><style>{CSS}</style></head><body>"
        f"<h1>{_e(title)}</h1><p>Bayesian operating characteristics estimated by simulation "
        "(crampstats power). Every rate is a Monte Carlo estimate shown with its 95 % "
        f"interval.</p><ul>{''.join(summary)}</ul>{''.join(sections)}</body></html>\n"
    )


def write_power_report(study: str | Path, out: str | Path | None = None) -> Path:
    """Write :func:`build_power_report` of ``study`` to ``out`` (default ``study/report.html``)."""
    out = Path(out) if out is not None else Path(study) / "report.html"
    atomic_write_text(out, build_power_report(study))
    return out
