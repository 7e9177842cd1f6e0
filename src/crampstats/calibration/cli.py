"""``crampstats calibration run`` and ``crampstats calibration summarize``: argument parsing."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import pandas as pd

from crampstats.calibration.case import CalibrationCase
from crampstats.calibration.record import record_study
from crampstats.calibration.registry import CASES, PENDING, case_named
from crampstats.calibration.study import run_shard
from crampstats.config import ConfigError, check, read_yaml
from crampstats.outputs import atomic_write_text, terminal_progress


def load_calibration_config(path: str | Path) -> dict[str, Any]:
    """Read and validate ``config/calibration.yaml`` (defaults filled, case names checked)."""
    config = check(read_yaml(path), "calibration", str(path))
    selected_cases(config, str(path))
    return config


def selected_cases(
    config: dict[str, Any], source: str = "calibration config"
) -> list[CalibrationCase]:
    """Return the cases the configuration names (``all``: every registered case)."""
    if config["cases"] == "all":
        return list(CASES)
    try:
        return [case_named(name) for name in config["cases"]]
    except KeyError as err:
        raise ConfigError(f"{source}: key cases: {err.args[0]}") from None


def shard_path(results: str | Path, case: str, shards: int, shard: int) -> Path:
    """Return the file of one shard of one case."""
    return Path(results) / case / f"rows-{shard}-of-{shards}.csv"


def _cmd_run(args: argparse.Namespace) -> int:
    config = load_calibration_config(args.config)
    try:
        case = case_named(args.case)
    except KeyError as err:
        raise ConfigError(err.args[0]) from None
    shards, shard = config["shards"], args.shard
    if not 1 <= shard <= shards:
        raise ConfigError(f"--shard {shard} is not in 1..{shards} (shards in {args.config})")
    progress = None if args.quiet else terminal_progress(f"{case.name} shard {shard}/{shards}")
    rows = run_shard(
        case,
        case.replicates or config["replicates"],
        shards=shards,
        shard=shard,
        seed=config["seed"],
        cores=args.cores or config["cores"],
        progress=progress,
    )
    out = shard_path(config["results"], case.name, shards, shard)
    atomic_write_text(out, rows.to_csv(index=False, lineterminator="\n", float_format="%.8g"))
    print(f"wrote {out}")
    return 0


def _cmd_summarize(args: argparse.Namespace) -> int:
    config = load_calibration_config(args.config)
    shards = config["shards"]
    frames = []
    for case in selected_cases(config, args.config):
        for shard in range(1, shards + 1):
            path = shard_path(config["results"], case.name, shards, shard)
            if not path.is_file():
                raise ConfigError(
                    f"{path} is missing: run `crampstats calibration run` for it first"
                )
            frames.append(pd.read_csv(path, keep_default_na=False))
    summary = record_study(
        config["docs"],
        pd.concat(frames, ignore_index=True),
        (*CASES, *PENDING),
        seed=config["seed"],
    )
    failed = summary[~summary["passed"]]
    print(
        f"recorded {len(summary)} targets of {summary['case'].nunique()} cases in {config['docs']}"
    )
    for _, row in failed.iterrows():
        print(f"outside band: {row['case']} {row['target']}")
    return 0


def add_calibration_parser(sub: Any) -> None:
    """Register ``calibration run|summarize`` on the main parser's sub-commands."""
    parser = sub.add_parser("calibration", help="calibration study of every Bayesian model")
    inner = parser.add_subparsers(dest="calibration_command", required=True)
    p = inner.add_parser("run", help="one shard of one case (a workflow job)")
    p.add_argument("--config", default="config/calibration.yaml")
    p.add_argument("--case", required=True)
    p.add_argument("--shard", type=int, required=True)
    p.add_argument("--cores", type=int, default=None)
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_cmd_run)
    p = inner.add_parser("summarize", help="record the study in docs/validation.md")
    p.add_argument("--config", default="config/calibration.yaml")
    p.set_defaults(func=_cmd_summarize)
