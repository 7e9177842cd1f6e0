"""The recorded study: per-case rows and metadata in docs/validation/, a table in validation.md.

Layout (under the docs folder)::

    validation/calibration/<case>.csv    one row per replicate and target (study.ROW_COLUMNS)
    validation/calibration/<case>.json   code hash, replicates, root seed, package versions, commit
    validation/calibration/<case>.svg    coverage against its bands and the z-scores' histogram
    validation/calibration.csv           the summary of every recorded case (study.summarize)
    validation.md                        the summary table, between two marker comments

The summary is recomputed over every recorded case, so the Bonferroni bands always cover the
whole study, however many cases the last run touched.
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from crampstats.calibration.case import CalibrationCase, code_hash
from crampstats.calibration.study import FAMILY_ALPHA, LEVELS, SBC_RANKS, summarize
from crampstats.errors import CrampstatsError
from crampstats.outputs import atomic_outputs, git_commit, package_versions

BEGIN = "<!-- calibration-table:begin (written by `crampstats calibration summarize`) -->"
END = "<!-- calibration-table:end -->"


def case_paths(docs: Path, name: str) -> dict[str, Path]:
    """Return where a case's rows, metadata and plot are recorded."""
    folder = docs / "validation" / "calibration"
    return {ext: folder / f"{name}.{ext}" for ext in ("csv", "json", "svg")}


def read_record(docs: Path, case: CalibrationCase) -> tuple[pd.DataFrame, dict[str, Any]] | None:
    """Return a case's recorded rows and metadata, or ``None`` when it has no recorded study."""
    paths = case_paths(docs, case.name)
    if not paths["csv"].is_file() or not paths["json"].is_file():
        return None
    meta = json.loads(paths["json"].read_text(encoding="utf-8"))
    return pd.read_csv(paths["csv"], keep_default_na=False), meta


def case_plot(summary: pd.DataFrame, rows: pd.DataFrame) -> str:
    """Return an SVG: coverage of each target at both levels against its band, and the z-scores."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    targets = list(summary["target"])
    ranked = "rank" in rows and rows["rank"].notna().any()
    fig, axes = plt.subplots(
        1, 3 if ranked else 2, figsize=(12 if ranked else 8, 0.45 * len(targets) + 1.6)
    )
    ax, hx = axes[:2]
    for i, (_, s) in enumerate(summary.iterrows()):
        for level, colour in zip(LEVELS, ("tab:blue", "tab:orange"), strict=True):
            pct = round(100 * level)
            low, high = s[f"band_{pct}_low"], s[f"band_{pct}_high"]
            ax.plot([low, high], [i, i], color=colour, alpha=0.35, lw=6, solid_capstyle="butt")
            ax.plot(
                s[f"coverage_{pct}"],
                i,
                "o",
                color=colour,
                label=f"{pct} % interval" if i == 0 else None,
            )
    ax.set_yticks(range(len(targets)), targets, fontsize=8)
    ax.set_xlim(0.3, 1.0)
    ax.set_xlabel("coverage (band: calibrated models)")
    ax.legend(fontsize=7, loc="lower left")
    z = (rows["mean"] - rows["truth"]) / rows["sd"]
    hx.hist(z, bins=30, density=True, color="0.6")
    grid = np.linspace(-4, 4, 161)
    hx.plot(grid, stats.norm.pdf(grid), "k-", lw=1)
    hx.set_xlabel("z = (posterior mean - truth) / posterior SD")
    hx.set_yticks([])
    if ranked:
        # SBC's ECDF-difference plot (Säilynoja et al. 2022): fractional rank against the
        # uniform, one line per target; a calibrated model stays near 0
        rx = axes[2]
        grid = np.linspace(0, 1, 101)
        for target, g in rows.groupby("target", sort=False):
            u = (np.sort(g["rank"].to_numpy(dtype=float)) + 0.5) / (SBC_RANKS + 1)
            rx.plot(grid, np.searchsorted(u, grid, side="right") / len(u) - grid, lw=1,
                    label=target)  # fmt: skip
        rx.axhline(0, color="k", lw=0.8)
        rx.set_xlabel("fractional rank of the truth (SBC)")
        rx.set_ylabel("ECDF - uniform")
        rx.legend(fontsize=6, loc="lower left")
    fig.tight_layout()
    buf = io.StringIO()
    # a fixed salt for the SVG's element ids, and no date: byte-identical across reruns
    with matplotlib.rc_context({"svg.hashsalt": "crampstats-calibration"}):
        fig.savefig(buf, format="svg", metadata={"Date": None})
    plt.close(fig)
    return buf.getvalue()


def markdown_table(summary: pd.DataFrame, cases: Sequence[CalibrationCase]) -> str:
    """Return the summary as a Markdown table (one row per case and target)."""
    flags = {c.name: c.expect_calibrated for c in cases}
    lines = [
        "| case | target | replicates | converged | 50 % coverage (band) | 95 % coverage (band) "
        "| bias | mean z | SD z | result | code hash |",
        "|---|---|---:|---:|---|---|---:|---:|---:|---|---|",
    ]
    for _, s in summary.iterrows():
        if s["passed"]:
            verdict = "pass"
        else:
            verdict = "outside band" + ("" if flags.get(s["case"], True) else " (expected)")
        lines.append(
            f"| {s['case']} | `{s['target']}` | {s['replicates']} | {s['converged']} "
            f"| {s['coverage_50']:.3f} ({s['band_50_low']:.3f}-{s['band_50_high']:.3f}) "
            f"| {s['coverage_95']:.3f} ({s['band_95_low']:.3f}-{s['band_95_high']:.3f}) "
            f"| {s['bias']:+.3f} | {s['mean_z']:+.2f} | {s['sd_z']:.2f} | {verdict} "
            f"| `{s['code_hash']}` |"
        )
    rates = summary[summary["false_positives"].notna()] if "false_positives" in summary else []
    if len(rates):
        lines += [
            "",
            "Error rates (cases whose truth is the null of a one-sided rule; exact two-sided 95 % "
            "binomial band around the nominal rate):",
            "",
            "| case | target | replicates | false positives | rate (band) | result |",
            "|---|---|---:|---:|---|---|",
        ]
        for _, s in rates.iterrows():
            lines.append(
                f"| {s['case']} | `{s['target']}` | {s['replicates']} "
                f"| {int(s['false_positives'])} | {s['false_positive_rate']:.4f} "
                f"({s['false_positive_band_low']:.4f}-{s['false_positive_band_high']:.4f}) "
                f"| {'pass' if s['passed'] else 'outside band'} |"
            )
    sbc = summary[summary["sbc_p"].notna()] if "sbc_p" in summary else []
    if len(sbc):
        lines += [
            "",
            "Simulation-based calibration (every parameter drawn from the prior; uniformity of "
            "the truth's rank among 99 thinned posterior draws, chi-square over 10 bins; the "
            "threshold is the Bonferroni share of the family-wise 0.05, as for the bands):",
            "",
            "| case | target | replicates | rank uniformity p | result |",
            "|---|---|---:|---:|---|",
        ]
        for _, s in sbc.iterrows():
            lines.append(
                f"| {s['case']} | `{s['target']}` | {s['replicates']} | {s['sbc_p']:.3f} "
                f"| {'pass' if s['passed'] else 'outside band'} |"
            )
    return "\n".join(lines)


def record_study(
    docs: str | Path,
    new_rows: pd.DataFrame,
    cases: Sequence[CalibrationCase],
    *,
    seed: int,
) -> pd.DataFrame:
    """Record the cases in ``new_rows`` and rewrite the summary of every recorded case.

    Parameters
    ----------
    docs
        The project's docs folder (``docs/validation.md`` must exist and hold the markers).
    new_rows
        Rows of the cases just run (all shards; :func:`crampstats.calibration.study.run_shard`).
    cases
        Every known case (the registry).
    seed
        The study's root seed.

    Returns
    -------
    pandas.DataFrame
        The summary of every recorded case.
    """
    docs = Path(docs)
    page = docs / "validation.md"
    text = page.read_text(encoding="utf-8") if page.is_file() else ""
    if BEGIN not in text or END not in text:
        raise CrampstatsError(
            f"{page}: the calibration table's markers are missing ({BEGIN} ... {END})"
        )
    by_name = {case.name: case for case in cases}
    unknown = sorted(set(new_rows["case"]) - set(by_name))
    if unknown:
        raise CrampstatsError(f"rows of unknown calibration cases: {', '.join(unknown)}")
    fresh = {
        name: rows.reset_index(drop=True) for name, rows in new_rows.groupby("case", sort=False)
    }
    recorded: dict[str, pd.DataFrame] = {}
    for case in cases:
        if case.name in fresh:
            recorded[case.name] = fresh[case.name]
        elif (old := read_record(docs, case)) is not None:
            recorded[case.name] = old[0]
    all_rows = pd.concat(recorded.values(), ignore_index=True)
    summary = summarize(all_rows, [by_name[n] for n in recorded])
    versions = package_versions()
    commit = git_commit()
    files: list[Path] = [docs / "validation" / "calibration.csv", page]
    payload: list[str] = [summary.to_csv(index=False, lineterminator="\n", float_format="%.6g")]
    head, _, rest = text.partition(BEGIN)
    _, _, tail = rest.partition(END)
    table = markdown_table(summary, cases)
    payload.append(f"{head}{BEGIN}\n{table}\n{END}{tail}")
    for name, rows in fresh.items():
        paths = case_paths(docs, name)
        meta = {
            "case": name,
            "model": by_name[name].model,
            "code_hash": code_hash(by_name[name]),
            "replicates": int(rows["replicate"].nunique()),
            "seed": int(seed),
            "family_alpha": FAMILY_ALPHA,
            "git_commit": commit,
            "packages": versions,
        }
        files += [paths["csv"], paths["json"], paths["svg"]]
        payload += [
            rows.to_csv(index=False, lineterminator="\n", float_format="%.8g"),
            json.dumps(meta, indent=2, sort_keys=True) + "\n",
            case_plot(summary[summary["case"] == name], rows),
        ]
    with atomic_outputs(files=files) as (_, staged):
        for path, body in zip(staged, payload, strict=True):
            path.write_text(body, encoding="utf-8", newline="\n")
    return summary
