"""Summarise decisions files: power, Monte Carlo SE, assurance, type I error, sample size.

Definitions (per design, patients per arm, arm and rule; ``R`` replicates)
-------------------------------------------------------------------------
- ``power``: share of replicates whose rule declared success. A replicate the model could not
  analyse (status ``error``) counts as no success; one that failed the convergence gate keeps its
  decision and is counted in ``n_diagnostics_failed``.
- ``mcse``: binomial Monte Carlo SE ``sqrt(power (1 - power) / R)``; the figure's bands are
  ``power +- 1.96 mcse``.
- ``type_i_error``: ``power`` of an arm whose true rate ratio is fixed at 1 (else empty).
- ``assurance``: ``power`` of an arm whose true effect is a design prior, i.e. power averaged
  over the prior (else empty).
- ``n_for_target``: the smallest patients per arm of the sweep whose power reaches
  ``target_power`` (empty when none does). The sweep shares random numbers across sample sizes,
  so the power curve is smooth in ``n`` and this search is not thrown by independent noise.
- ``rr_median_q05 / q50 / q95``: distribution of the posterior median rate ratio over replicates.
"""

from __future__ import annotations

import io
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
from crampstats.power.run import read_decisions

#: Columns of ``power.csv``, in order.
POWER_COLUMNS = (
    "design", "n_per_arm", "arm", "effect", "true_rr", "rule", "replicates", "power", "mcse",
    "lower", "upper", "assurance", "type_i_error", "n_error", "n_diagnostics_failed",
    "rr_median_q05", "rr_median_q50", "rr_median_q95", "target_power", "n_for_target",
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
        for rule in meta["rules"]:
            success = group[f"decision[{rule['name']}]"].astype(bool).to_numpy()
            r = success.size
            p = float(success.mean())
            se = math.sqrt(p * (1.0 - p) / r)
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
                    "mcse": se,
                    "lower": max(0.0, p - 1.959963984540054 * se),
                    "upper": min(1.0, p + 1.959963984540054 * se),
                    "assurance": p if prior else np.nan,
                    "type_i_error": p if (not prior and true_rr == 1.0) else np.nan,
                    "n_error": int((~ok).sum()),
                    "n_diagnostics_failed": int((group["status"] == "diagnostics_failed").sum()),
                    "rr_median_q05": float(q[0]),
                    "rr_median_q50": float(q[1]),
                    "rr_median_q95": float(q[2]),
                    "target_power": target,
                }
            )
    table = pd.DataFrame(rows, columns=[c for c in POWER_COLUMNS if c != "n_for_target"])
    table["n_for_target"] = _n_for_target(table)
    order = {rule["name"]: i for meta in metas.values() for i, rule in enumerate(meta["rules"])}
    table["_rule"] = table["rule"].map(order)
    table = table.sort_values(["design", "arm", "_rule", "n_per_arm"], kind="stable")
    return table.drop(columns="_rule").reset_index(drop=True)[list(POWER_COLUMNS)]


def _n_for_target(table: pd.DataFrame) -> pd.Series:
    out = pd.Series(pd.NA, index=table.index, dtype="Int64")
    for _, group in table.groupby(["design", "arm", "rule"], sort=False):
        reached = group.loc[group["power"] >= group["target_power"], "n_per_arm"]
        if len(reached):
            out.loc[group.index] = int(reached.min())
    return out


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
        The power table (:func:`power_table`), also written to ``directory/power.csv``.
    svg : pathlib.Path
        ``directory/power.svg``: power (or assurance) against patients per arm with Monte Carlo
        bands, one panel per design.
    """
    directory = Path(directory)
    frame, metas = collect_decisions(directory)
    table = power_table(frame, metas, target_power)
    csv, svg = directory / "power.csv", directory / "power.svg"
    atomic_write_text(csv, table.to_csv(index=False, float_format="%.6g"))
    atomic_write_text(svg, power_svg(table))
    for path in (csv, svg):
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
    curves = list(sub.groupby(["arm", "rule"], sort=False))
    for i, ((arm, rule), g) in enumerate(curves):
        g = g.sort_values("n_per_arm")
        colour = PALETTE[i % len(PALETTE)]
        label = f"{arm} ({g['effect'].iloc[0]}): {rule}"
        x = g["n_per_arm"].to_numpy(float)
        ax.fill_between(x, g["lower"], g["upper"], color=colour, alpha=0.18, linewidth=0)
        ax.plot(x, g["power"], marker="o", markersize=3.5, color=colour, label=label)
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
