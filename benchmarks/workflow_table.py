"""Summarise the workflow's Snakemake `benchmark:` files into a Markdown table per rule.

Run after a workflow run (`make run`, or `snakemake ...` in any working directory):

    .venv/bin/python benchmarks/workflow_table.py [WORKDIR]

Every job writes `logs/benchmarks/<trial>/<rule>[_<wildcard>].tsv` (Snakemake's columns: `s`
wall seconds, `max_rss` MiB, `cpu_time` seconds, ...). The table gives, per rule, the number
of jobs, the total and largest wall time, the total CPU time and the largest peak memory.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd


def rule_of(path: Path) -> str:
    """The rule a benchmark file belongs to: the file stem up to its first wildcard."""
    stem = path.stem
    for rule in ("fit", "secondary", "shard"):
        if stem.startswith(f"{rule}_") or stem.startswith(f"{rule}-"):
            return "power_shard" if rule == "shard" else rule
    return "power_summarize" if stem == "summarize" else stem


def table(workdir: Path) -> pd.DataFrame:
    """One row per rule: jobs, wall time (total, max), CPU time, peak memory."""
    rows = []
    for path in sorted((workdir / "logs" / "benchmarks").rglob("*.tsv")):
        frame = pd.read_csv(path, sep="\t")
        rows.append(
            {
                "rule": rule_of(path),
                "wall_s": float(frame["s"].iloc[-1]),
                "cpu_s": float(frame["cpu_time"].iloc[-1]),
                "max_rss_mib": float(frame["max_rss"].iloc[-1]),
            }
        )
    jobs = pd.DataFrame(rows, columns=["rule", "wall_s", "cpu_s", "max_rss_mib"])
    return (
        jobs.groupby("rule", sort=False)
        .agg(
            jobs=("wall_s", "size"),
            wall_total_s=("wall_s", "sum"),
            wall_max_s=("wall_s", "max"),
            cpu_total_s=("cpu_s", "sum"),
            peak_rss_mib=("max_rss_mib", "max"),
        )
        .round(1)
        .reset_index()
    )


if __name__ == "__main__":
    summary = table(Path(sys.argv[1]) if len(sys.argv) > 1 else Path.cwd())
    print(summary.to_markdown(index=False) if len(summary) else "no benchmark files found")
