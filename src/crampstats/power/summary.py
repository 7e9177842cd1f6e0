"""Summarise decisions files: power, Monte Carlo intervals, assurance, error rates, sample size.

Definitions (per design, patients per arm, arm, rule and family-wise strategy; ``R`` replicates)
-----------------------------------------------------------------------------------------------
- ``power``: share of replicates whose rule declared success. A replicate the model could not
  analyse (status ``error``) counts as no success; one that failed the convergence gate keeps its
  decision and is counted in ``n_diagnostics_failed``.
- ``mcse``: binomial Monte Carlo SE ``sqrt(power (1 - power) / R)``; ``lower`` / ``upper``: the
  95 % Clopper-Pearson (or Wilson, config ``interval``) interval of the rate
  (:mod:`crampstats.power.intervals`), the figure's bands.
- ``kind`` and the rule's null. A rule ``P(RR < t) > q`` tests the null ``RR >= t``
  (``null_rr = t``). For an arm with a fixed true rate ratio: ``kind = power`` when
  ``true_rr < t``; otherwise every success is a false positive, ``kind = false_positive`` and
  ``false_positive_rate`` is filled (the rule's type I error when ``true_rr == t``, its worst
  case). ``type_i_error`` (and ``kind = type_i_error``) only for a rule whose null is RR = 1 and
  an arm at RR = 1 (the classical type I error); ``label`` says which rate a row is. An arm
  with a design prior has ``kind = assurance`` (power averaged over the prior).
- ``power_fit``, ``power_fit_lower`` / ``upper``: the monotone logistic power curve over ``n`` and
  its 95 % band; ``n_target_curve`` (with ``n_target_lower`` / ``upper``): the patients per arm
  at which the curve reaches ``target_power`` (:mod:`crampstats.power.curve`);
  ``n_for_target``: the smallest swept ``n`` whose simulated power reaches it (kept for
  comparison).
- ``patient_sensitivity`` / ``patient_false_positive`` (crossover model): share of patients who
  truly benefit (own RR < 1) / who do not, declared to benefit (posterior P(own RR < 1) >
  ``patient_benefit_probability``), pooled over replicates; their intervals are Wald intervals
  of a ratio estimator with the replicate as cluster (patients of one trial share a posterior,
  so a binomial interval over patients would be too narrow).
- ``rr_median_q05 / q50 / q95``: distribution of the posterior median rate ratio over replicates.

``power_family.csv`` (multi-arm designs, :func:`crampstats.power.decide.family_table`):
P(at least one success), P(every truly effective arm detected) and the family-wise
false-positive rate, per family-wise strategy.
"""

from __future__ import annotations

import io
import json
import math
import re
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from crampstats.errors import CrampstatsError
from crampstats.outputs import atomic_write_text
from crampstats.power.curve import curve_columns
from crampstats.power.decide import decision_column, family_table
from crampstats.power.intervals import rate_interval
from crampstats.power.run import read_decisions

#: Columns of ``power.csv``, in order.
POWER_COLUMNS = (
    "design", "n_per_arm", "arm", "effect", "true_rr", "rule", "replicates", "power", "mcse",
    "lower", "upper", "assurance", "type_i_error", "n_error", "n_diagnostics_failed",
    "rr_median_q05", "rr_median_q50", "rr_median_q95", "target_power", "n_for_target",
    "multiplicity", "null_rr", "kind", "label", "false_positive_rate", "interval",
    "power_fit", "power_fit_lower", "power_fit_upper", "n_target_curve", "n_target_lower",
    "n_target_upper", "n_target_extrapolated", "n_randomised_mean", "patient_sensitivity",
    "patient_sensitivity_lower", "patient_sensitivity_upper", "patient_false_positive",
    "patient_false_positive_lower", "patient_false_positive_upper", "family", "scenario",
)  # fmt: skip

#: Columns computed after the per-point rows (curve, smallest swept n).
_LATER = (
    "n_for_target", "power_fit", "power_fit_lower", "power_fit_upper", "n_target_curve",
    "n_target_lower", "n_target_upper", "n_target_extrapolated",
)  # fmt: skip

_FILE = re.compile(r"^decisions-(\d+)-of-(\d+)\.parquet$")

#: Fixed matplotlib settings: deterministic SVG (hash salt; dates are dropped at saving).
RC = {
    "svg.fonttype": "path",
    "svg.hashsalt": "crampstats-power",
    "font.family": "DejaVu Sans",
    "font.size": 9.0,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "legend.frameon": False,
    "legend.fontsize": 8.0,
}
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000")


def collect_decisions(directory: str | Path) -> tuple[pd.DataFrame, dict[str, dict[str, Any]]]:
    """Read and check every ``decisions-I-of-K.parquet`` in ``directory``.

    Returns
    -------
    frame : pandas.DataFrame
        All rows, sorted by design, patients per arm, arm, replicate.
    meta : dict
        Design -> run description (rules, target power, replicates, ...).

    Raises
    ------
    CrampstatsError
        If there is no decisions file, shards are missing, files of one design come from
        different configurations, or a replicate appears twice.
    """
    directory = Path(directory)
    files = sorted(p for p in directory.glob("decisions-*-of-*.parquet") if _FILE.match(p.name))
    if not files:
        raise CrampstatsError(f"{directory}: no decisions-I-of-K.parquet files to summarise")
    frames, metas = [], {}
    seen: dict[str, set[tuple[int, int]]] = {}
    for path in files:
        frame, meta = read_decisions(path)
        name = meta["design"]
        first = metas.setdefault(name, meta)
        for key in ("digest", "replicates", "shards"):
            if meta[key] != first[key]:
                raise CrampstatsError(
                    f"{path}: {key} {meta[key]!r} differs from the other files of design "
                    f"{name!r} ({first[key]!r}); remove stale files"
                )
        seen.setdefault(name, set()).add((meta["shard"], meta["shards"]))
        frames.append(frame)
    for name, shards in seen.items():
        k = metas[name]["shards"]
        missing = sorted(set(range(1, k + 1)) - {s for s, _ in shards})
        if missing:
            raise CrampstatsError(f"{directory}: design {name!r} lacks shard(s) {missing} of {k}")
    frame = pd.concat(frames, ignore_index=True)
    keys = ["design", "n_per_arm", "arm", "replicate"]
    dup = frame.duplicated(keys)
    if dup.any():
        raise CrampstatsError(f"{directory}: replicates appear twice: {frame.loc[dup, keys][:5]}")
    return frame.sort_values(keys, kind="stable").reset_index(drop=True), metas


def power_table(
    frame: pd.DataFrame, metas: dict[str, dict[str, Any]], target_power: float | None = None
) -> pd.DataFrame:
    """Power, Monte Carlo SE, assurance and type I error per design point, arm and rule.

    Parameters
    ----------
    frame, metas
        Output of :func:`collect_decisions`.
    target_power
        Power the sample-size search looks for; default each design's configured value.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`POWER_COLUMNS` (see the module docstring).
    """
    rows = []
    for (design, n, arm), group in frame.groupby(["design", "n_per_arm", "arm"], sort=True):
        meta = metas[design]
        effect = str(group["effect"].iloc[0])
        prior = effect.startswith("lognormal")
        true_rr = np.nan if prior else float(group["true_rr"].iloc[0])
        ok = group["status"] != "error"
        q = np.quantile(group.loc[ok, "rr_median"], [0.05, 0.5, 0.95]) if ok.any() else [np.nan] * 3
        target = float(meta["target_power"] if target_power is None else target_power)
        method = meta.get("interval", "clopper_pearson")
        patients = _patient_rates(group)
        strategies = (meta.get("multiplicity") or {}).get("strategies", ["none"])
        for rule in meta["rules"]:
            null_rr = float(rule["threshold_rr"])
            kind, label = _kind(prior, true_rr, null_rr)
            for strategy in strategies:
                column = decision_column(rule["name"], strategy)
                if column not in group:
                    continue
                success = group[column].astype(bool).to_numpy()
                r = success.size
                p = float(success.mean())
                lower, upper = rate_interval(int(success.sum()), r, method)
                rows.append(
                    {
                        "design": design,
                        "n_per_arm": int(n),
                        "arm": arm,
                        "effect": effect,
                        "true_rr": true_rr,
                        "rule": rule["name"],
                        "replicates": r,
                        "power": p,
                        "mcse": math.sqrt(p * (1.0 - p) / r),
                        "lower": lower,
                        "upper": upper,
                        "assurance": p if prior else np.nan,
                        "type_i_error": p if kind == "type_i_error" else np.nan,
                        "n_error": int((~ok).sum()),
                        "n_diagnostics_failed": int(
                            (group["status"] == "diagnostics_failed").sum()
                        ),
                        "rr_median_q05": float(q[0]),
                        "rr_median_q50": float(q[1]),
                        "rr_median_q95": float(q[2]),
                        "target_power": target,
                        "multiplicity": strategy,
                        "null_rr": null_rr,
                        "kind": kind,
                        "label": label,
                        "false_positive_rate": p if kind in ("false_positive", "type_i_error")
                        else np.nan,
                        "interval": method,
                        "n_randomised_mean": float(group["n_randomised"].mean())
                        if "n_randomised" in group else np.nan,
                        **patients,
                        "family": meta.get("family", design),
                        "scenario": json.dumps(meta.get("scenario") or {}, sort_keys=True),
                        "_column": column,
                    }
                )
    table = pd.DataFrame(rows, columns=[*(c for c in POWER_COLUMNS if c not in _LATER), "_column"])
    for col in _LATER:
        table[col] = np.nan
    table["n_for_target"] = _n_for_target(table)
    table["n_target_extrapolated"] = table["n_target_extrapolated"].astype(object)
    _add_curves(table, frame)
    order = {rule["name"]: i for meta in metas.values() for i, rule in enumerate(meta["rules"])}
    table["_rule"] = table["rule"].map(order)
    table = table.sort_values(
        ["design", "arm", "_rule", "multiplicity", "n_per_arm"], kind="stable"
    )
    return table.drop(columns=["_rule", "_column"]).reset_index(drop=True)[list(POWER_COLUMNS)]


def _kind(prior: bool, true_rr: float, null_rr: float) -> tuple[str, str]:
    """Return what a rule's success rate is for an arm (power, false positive, assurance)."""
    if prior:
        return "assurance", "assurance (power averaged over the design prior)"
    if true_rr < null_rr:
        return "power", f"power at RR = {true_rr:g} (rule's null RR >= {null_rr:g})"
    if true_rr == null_rr == 1.0:
        return "type_i_error", "type I error (RR = 1, the rule's null)"
    where = "at the rule's null" if true_rr == null_rr else "inside the rule's null"
    return "false_positive", f"false-positive rate at RR = {true_rr:g} ({where}, RR >= {null_rr:g})"


def _patient_rates(group: pd.DataFrame) -> dict[str, float]:
    """Pooled per-patient rates of the crossover model with cluster (replicate) intervals."""
    out: dict[str, float] = {}
    for name, hits, total in (
        ("patient_sensitivity", "patients_benefit_declared", "patients_benefit"),
        ("patient_false_positive", "patients_no_benefit_declared", "patients_no_benefit"),
    ):
        x = group[hits].to_numpy(float) if hits in group else np.array([np.nan])
        m = group[total].to_numpy(float) if total in group else np.array([np.nan])
        keep = np.isfinite(x) & np.isfinite(m)
        x, m = x[keep], m[keep]
        if m.sum() <= 0:
            out.update({name: np.nan, f"{name}_lower": np.nan, f"{name}_upper": np.nan})
            continue
        p = x.sum() / m.sum()
        r = x.size
        # ratio estimator over replicates (clusters): Var(p) = sum (x_r - p m_r)^2 / (sum m)^2
        se = math.sqrt(np.sum((x - p * m) ** 2) * r / max(r - 1, 1)) / m.sum()
        out.update(
            {
                name: float(p),
                f"{name}_lower": max(0.0, float(p - 1.959963984540054 * se)),
                f"{name}_upper": min(1.0, float(p + 1.959963984540054 * se)),
            }
        )
    return out


def _n_for_target(table: pd.DataFrame) -> pd.Series:
    out = pd.Series(pd.NA, index=table.index, dtype="Int64")
    for _, group in table.groupby(["design", "arm", "rule", "multiplicity"], sort=False):
        reached = group.loc[group["power"] >= group["target_power"], "n_per_arm"]
        if len(reached):
            out.loc[group.index] = int(reached.min())
    return out


def _add_curves(table: pd.DataFrame, frame: pd.DataFrame) -> None:
    """Fill the fitted power curve and the curve's sample size (in place)."""
    for (design, arm, _rule, _strategy), rows in table.groupby(
        ["design", "arm", "rule", "multiplicity"], sort=False
    ):
        column = rows["_column"].iloc[0]
        decisions = frame[(frame["design"] == design) & (frame["arm"] == arm)]
        fitted = curve_columns(decisions, column, float(rows["target_power"].iloc[0]))
        n = rows["n_per_arm"].to_numpy()
        for key in ("power_fit", "power_fit_lower", "power_fit_upper"):
            table.loc[rows.index, key] = fitted[key].reindex(n).to_numpy()
        for key in ("n_target_curve", "n_target_lower", "n_target_upper", "n_target_extrapolated"):
            table.loc[rows.index, key] = fitted[key]


def summarize(
    directory: str | Path, target_power: float | None = None
) -> tuple[pd.DataFrame, Path]:
    """Summarise every decisions file of ``directory`` into ``power.csv`` and ``power.svg``.

    Parameters
    ----------
    directory
        Folder written by :func:`crampstats.power.run_shard` (one or several designs).
    target_power
        Override of the configured target power of the sample-size search.

    Returns
    -------
    table : pandas.DataFrame
        The power table (:func:`power_table`), also written to ``directory/power.csv``;
        ``directory/power_family.csv`` holds the family-wise rates
        (:func:`crampstats.power.decide.family_table`).
    svg : pathlib.Path
        ``directory/power.svg``: power (or assurance) against patients per arm with Monte Carlo
        bands, one panel per design.
    """
    directory = Path(directory)
    frame, metas = collect_decisions(directory)
    table = power_table(frame, metas, target_power)
    family = pd.concat(
        [
            family_table(
                frame[frame["design"] == name],
                meta["rules"],
                meta.get("interval", "clopper_pearson"),
                (meta.get("multiplicity") or {}).get("strategies", ["none"]),
            )
            for name, meta in metas.items()
        ],
        ignore_index=True,
    )
    csv, svg = directory / "power.csv", directory / "power.svg"
    family_csv = directory / "power_family.csv"
    atomic_write_text(csv, table.to_csv(index=False, float_format="%.6g"))
    atomic_write_text(family_csv, family.to_csv(index=False, float_format="%.6g"))
    atomic_write_text(svg, power_svg(table))
    for path in (csv, svg, family_csv):
        path.chmod(0o644)  # results are for reading by others (mkstemp makes them private)
    return table, svg


def power_svg(table: pd.DataFrame) -> str:
    """Power curves with Monte Carlo bands as a deterministic SVG document (one panel a design)."""
    with matplotlib.rc_context(RC):
        fig = power_figure(table)
        buf = io.StringIO()
        fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None, "Format": None})
    return buf.getvalue()


def power_figure(table: pd.DataFrame) -> Any:
    """Power (or assurance) against patients per arm, one panel per design.

    Parameters
    ----------
    table
        Output of :func:`power_table`.

    Returns
    -------
    matplotlib.figure.Figure
        Not attached to pyplot; bands are ``power +- 1.96 mcse``, dashed line the target, dotted
        lines the sample size reaching it, dash-dotted 0.025 on designs with type I error rows.
    """
    designs = list(dict.fromkeys(table["design"]))
    fig = Figure(figsize=(6.4, 2.9 * len(designs)), dpi=100)
    axes = fig.subplots(len(designs), 1, squeeze=False)[:, 0]
    for ax, design in zip(axes, designs, strict=True):
        _panel(ax, table[table["design"] == design], design)
    fig.tight_layout()
    return fig


def _panel(ax: Any, sub: pd.DataFrame, design: str) -> None:
    prior = sub["assurance"].notna().any()
    curves = list(sub.groupby(["arm", "rule", "multiplicity"], sort=False))
    for i, ((arm, rule, strategy), g) in enumerate(curves):
        g = g.sort_values("n_per_arm")
        colour = PALETTE[i % len(PALETTE)]
        extra = "" if strategy == "none" else f" [{strategy}]"
        label = f"{arm} ({g['effect'].iloc[0]}): {rule}{extra}"
        x = g["n_per_arm"].to_numpy(float)
        ax.fill_between(x, g["lower"], g["upper"], color=colour, alpha=0.18, linewidth=0)
        ax.plot(x, g["power"], marker="o", markersize=3.5, linewidth=0, color=colour, label=label)
        if g["power_fit"].notna().all():  # the fitted monotone curve between the points
            grid = np.geomspace(x.min(), x.max(), 50)
            ax.plot(grid, np.interp(np.log(grid), np.log(x), g["power_fit"]), color=colour)
        else:
            ax.plot(x, g["power"], color=colour)
        n_target = g["n_for_target"].dropna()
        if len(n_target):
            ax.axvline(float(n_target.iloc[0]), color=colour, linestyle=":", linewidth=0.9)
    target = float(sub["target_power"].iloc[0])
    ax.axhline(target, color="#777777", linestyle="--", linewidth=0.8)
    null_rows = sub["type_i_error"].notna()
    if null_rows.any():
        ax.axhline(0.025, color="#BBBBBB", linestyle="-.", linewidth=0.8)
    ax.set_ylim(0.0, 1.0)
    ax.set_xlabel("patients per arm")
    ax.set_ylabel("assurance" if prior else "P(success)")
    kind = "assurance" if prior else ("type I error" if null_rows.all() else "power")
    ax.set_title(f"{design}: {kind} (bands: 95 % Monte Carlo; dashed: target {target:g})")
    ax.legend(loc="best")
