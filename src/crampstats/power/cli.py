"""``crampstats power run`` and ``crampstats power summarize``: argument parsing only.

:func:`add_power_parser` registers the ``power`` sub-command on the main ``crampstats`` parser
(its sub-commands set ``func`` like every other command); :func:`main` runs the same commands
standalone (``python -m crampstats.power run ...``).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from crampstats.config import ConfigError
from crampstats.errors import CrampstatsError
from crampstats.outputs import terminal_progress
from crampstats.power.config import load_power_config
from crampstats.power.report import write_power_report
from crampstats.power.run import run_shard
from crampstats.power.sequential import (
    is_sequential,
    is_sequential_folder,
    run_sequential_shard,
    summarize_sequential,
)
from crampstats.power.summary import summarize

EXIT_OK, EXIT_REFUSED, EXIT_USAGE = 0, 1, 2


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive integer")
    return value


def _cmd_run(args: argparse.Namespace) -> int:
    config = load_power_config(args.config)
    if args.shard > args.shards:
        raise ConfigError(f"--shard {args.shard} is larger than --shards {args.shards}")
    label = f"power {args.design} shard {args.shard}/{args.shards}"
    progress = None if args.quiet else terminal_progress(label)
    runner = run_sequential_shard if is_sequential(config, args.design) else run_shard
    path = runner(
        config,
        args.design,
        replicates=args.replicates,
        shards=args.shards,
        shard=args.shard,
        out_dir=args.out,
        progress=progress,
        cores=args.cores,
    )
    print(f"wrote {path}")
    return EXIT_OK


def _cmd_summarize(args: argparse.Namespace) -> int:
    if is_sequential_folder(args.directory):  # group-sequential: operating characteristics
        _, svg = summarize_sequential(args.directory)
        print(f"wrote {Path(args.directory) / 'power.csv'} and {svg}")
        return EXIT_OK
    table, svg = summarize(args.directory, target_power=args.target_power)
    curves = table[table["multiplicity"] == "none"].drop_duplicates(["design", "arm", "rule"])
    for row in curves.itertuples():
        if row.kind != "power":
            continue
        if pd.notna(row.n_target_curve):
            where = " (extrapolated)" if row.n_target_extrapolated is True else ""
            print(
                f"{row.design} {row.arm} {row.rule}: power {row.target_power:g} at "
                f"{row.n_target_curve:.0f} patients per arm (95 % interval "
                f"{row.n_target_lower:.0f}-{row.n_target_upper:.0f}){where}"
            )
        elif pd.notna(row.n_for_target):
            print(
                f"{row.design} {row.arm} {row.rule}: power >= {row.target_power:g} "
                f"from {row.n_for_target} patients per arm"
            )
    print(f"wrote {Path(args.directory) / 'power.csv'} and {svg}")
    return EXIT_OK


def _cmd_report(args: argparse.Namespace) -> int:
    print(f"wrote {write_power_report(args.directory, args.out)}")
    return EXIT_OK


def add_power_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add ``power run`` and ``power summarize`` to a ``crampstats`` sub-parser collection.

    Parameters
    ----------
    subparsers
        The object returned by ``parser.add_subparsers(...)`` of the main command line.

    Returns
    -------
    argparse.ArgumentParser
        The ``power`` parser; each of its sub-commands sets ``func(args) -> exit code``.
    """
    power = subparsers.add_parser(
        "power", help="Bayesian power, assurance and type I error by simulation"
    )
    sub = power.add_subparsers(dest="power_command", required=True)

    p = sub.add_parser("run", help="simulate and fit one shard of a design's replicates")
    p.add_argument("--config", type=Path, required=True, help="power config (config/power.yaml)")
    p.add_argument("--design", required=True, help="design name under `designs:`")
    p.add_argument(
        "--replicates", type=_positive, help="replicates over all shards (default: the config's)"
    )
    p.add_argument("--shards", type=_positive, default=1, help="number of shards (default 1)")
    p.add_argument("--shard", type=_positive, default=1, help="this shard, 1..shards (default 1)")
    p.add_argument(
        "--out", type=Path, required=True, help="folder for decisions-SHARD-of-SHARDS.parquet"
    )
    p.add_argument("--cores", type=_positive, help="chains sampled in parallel")
    p.add_argument("--quiet", action="store_true", help="no progress lines on standard error")
    p.set_defaults(func=_cmd_run)

    p = sub.add_parser("summarize", help="power.csv and power.svg from a folder of decisions")
    p.add_argument("directory", type=Path, help="folder of decisions-*.parquet files")
    p.add_argument(
        "--target-power",
        type=float,
        help="power the sample-size search looks for (default: the config's)",
    )
    p.set_defaults(func=_cmd_summarize)

    p = sub.add_parser("report", help="self-contained HTML page of a power study")
    p.add_argument("directory", type=Path, help="study folder (results/power) or one design's")
    p.add_argument("--out", type=Path, help="HTML file (default DIRECTORY/report.html)")
    p.set_defaults(func=_cmd_report)
    return power


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``run ...`` or ``summarize ...`` (the arguments after ``crampstats power``)."""
    parser = argparse.ArgumentParser(prog="crampstats")
    add_power_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["power", *(sys.argv[1:] if argv is None else argv)])
    try:
        return args.func(args)
    except ConfigError as exc:
        print(f"crampstats power {args.power_command}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except CrampstatsError as exc:
        print(f"crampstats power {args.power_command}: {exc}", file=sys.stderr)
        return EXIT_REFUSED


def main_run(argv: Sequence[str]) -> int:
    """``crampstats power run ARGV`` (for tests and scripts)."""
    return main(["run", *argv])


def main_summarize(argv: Sequence[str]) -> int:
    """``crampstats power summarize ARGV``."""
    return main(["summarize", *argv])
