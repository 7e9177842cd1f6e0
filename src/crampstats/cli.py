"""The ``crampstats`` command line: thin wrappers that parse arguments and call library functions.

Every error a user can act on (:class:`~crampstats.errors.CrampstatsError`) becomes a message on
standard error and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from crampstats import __version__
from crampstats.config import ConfigError, check, load_trial_config, read_yaml, trial_config
from crampstats.errors import CrampstatsError
from crampstats.plan import (
    SINGLE_TRIAL,
    PlanError,
    attach_frozen,
    check_plan,
    freeze_record,
    parse_plan,
    plan_status,
    record_path,
)

if TYPE_CHECKING:
    from crampstats.models import CountEntry, EndpointEntry

# Each command imports its room when it runs: the rooms import statsmodels, ArviZ and PyMC (about
# 2 s), which `validate` and `derive`, a workflow job per trial each, do not need.

#: Exit codes: 0 success, 1 data refused or diagnostics failed, 2 usage or configuration error.
EXIT_OK, EXIT_REFUSED, EXIT_USAGE = 0, 1, 2


def _cmd_validate(args: argparse.Namespace) -> int:
    from crampstats import validate as validation

    config = attach_frozen(load_trial_config(args.config, args.data_dir), args.config)
    result = validation.validate(args.data_dir, config)
    if not result.ok:
        print(validation.refusal_text(result), file=sys.stderr)
        return EXIT_REFUSED
    print(validation.summary_text(result))
    if args.out is not None:
        validation.write_validated(result, args.out)
        print(f"wrote {args.out}")
    return EXIT_OK


def _cmd_init(args: argparse.Namespace) -> int:
    from crampstats.validate.init import init_config

    guess = init_config(args.data_dir, args.out, force=args.force)
    print(f"crampstats init: {args.data_dir}")
    print("\n".join(f"  {line}" for line in guess.recognised))
    config = guess.config
    if "design" in config:
        print(f"  design {config['design']}; arms {', '.join(config.get('arms', [])) or '?'}; "
              f"control arm {config.get('control_arm', '?')}")
    if guess.undecided:
        print("could not decide (set these in the config):")
        print("\n".join(f"  - {item}" for item in guess.undecided))
    print(f"wrote {args.out}; next: crampstats validate {args.data_dir} --config {args.out}")
    return EXIT_OK


def _cmd_derive(args: argparse.Namespace) -> int:
    from crampstats import derive
    from crampstats import validate as validation

    validated = validation.read_validated(args.validated_dir)
    derived = derive.derive_all(validated.tables, validated.config)
    derive.write_derived(derived, args.out, validated)
    print(derive.summary_text(derived))
    print(f"wrote {args.out}")
    return EXIT_OK


def _cmd_simulate(args: argparse.Namespace) -> int:
    from crampstats import simulate
    from crampstats.simulate.design import load_design

    design = load_design(args.design)
    trial = simulate.simulate(design, args.seed)
    simulate.write_trial(trial, args.out)
    print(simulate.summary_text(trial))
    print(f"wrote {args.out}")
    return EXIT_OK


def _cmd_analyze(args: argparse.Namespace) -> int:
    from crampstats.analyze import DataRefused, analyze

    def echo(line: str) -> None:
        if not args.quiet:
            print(line, flush=True)

    try:
        outcome = analyze(
            args.data_dir,
            args.out,
            args.config,
            echo=echo,
            progress=sys.stderr.isatty() and not args.quiet,
        )
    except DataRefused as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_REFUSED
    if outcome.failed:
        print(
            f"crampstats analyze: {len(outcome.failed)} fit(s) failed the diagnostics gate "
            f"({', '.join(outcome.failed)}); they are marked failed in every table",
            file=sys.stderr,
        )
        if args.strict:
            return EXIT_REFUSED
    return EXIT_OK


def _cmd_fit(args: argparse.Namespace) -> int:
    from crampstats.fit import fit_job

    print(f"fitting {args.model.id} to {args.derived_dir}", flush=True)
    fit_job(args.derived_dir, args.model, args.out, cores=args.cores, primary=args.primary)
    print(f"wrote {args.out}")
    return EXIT_OK


def _cmd_secondary(args: argparse.Namespace) -> int:
    from crampstats.secondary import secondary_job

    entries = list({entry.id: entry for entry in args.endpoint}.values())
    print(f"analysing {', '.join(e.id for e in entries)} of {args.derived_dir}", flush=True)
    secondary_job(
        args.derived_dir, entries, args.out, cores=args.cores, echo=lambda s: print(s, flush=True)
    )
    print(f"wrote {args.out}")
    return EXIT_OK


def _cmd_compare(args: argparse.Namespace) -> int:
    from crampstats.compare import compare_job

    outcome = compare_job(
        args.derived_dir,
        args.fits,
        args.out,
        args.provenance,
        secondary=args.secondary,
        validated=args.validated,
    )
    print(f"wrote {args.out} and {args.provenance}")
    if outcome.failed:
        print(
            f"crampstats compare: fit(s) failed the diagnostics gate: {', '.join(outcome.failed)}",
            file=sys.stderr,
        )
        if args.strict:
            return EXIT_REFUSED
    return EXIT_OK


def _trial_configs(path: Path) -> dict[str, dict]:
    """Return the resolved config of a trial config (key ``*``) or of each trial of a main one."""
    raw = read_yaml(path)
    if "trials" not in raw:
        return {SINGLE_TRIAL: check(raw, "trial", str(path))}
    if not isinstance(raw["trials"], dict):
        raise ConfigError(f"{path}: key trials: expected a mapping of trial name -> settings")
    return {
        str(name): trial_config(raw, {"trial_id": str(name), **entry}, str(path))
        for name, entry in raw["trials"].items()
    }


def _cmd_plan(args: argparse.Namespace) -> int:
    from crampstats.outputs import atomic_write_text, to_json

    configs = _trial_configs(args.config)
    plans = {}
    for name, config in configs.items():
        plans[name] = parse_plan(config)
        check_plan(plans[name], config.get("arms"), str(config.get("control_arm", "placebo")))
    target = record_path(args.config)
    if args.action == "freeze":
        if target.exists() and not args.force:
            raise PlanError(f"{target} exists (the plan was frozen before); --force replaces it")
        atomic_write_text(target, to_json(freeze_record(plans, args.config)))
        for name, plan in plans.items():
            print(f"froze plan of {name if name != SINGLE_TRIAL else args.config}: {plan.hash}")
        print(f"wrote {target}")
        return EXIT_OK
    changed = False
    for name, config in configs.items():
        status = plan_status(attach_frozen(config, args.config))
        changed |= bool(status["changed_after_freeze"])
        label = name if name != SINGLE_TRIAL else str(args.config)
        when = f" (frozen {status['frozen_utc']})" if status["frozen_utc"] else ""
        print(f"{label}: plan {status['plan_hash'][:12]}: {status['status']}{when}")
    return EXIT_REFUSED if changed else EXIT_OK


def _cmd_report(args: argparse.Namespace) -> int:
    from crampstats.report import write_report

    out = args.out if args.out is not None else args.results_dir / "report.html"
    write_report(args.results_dir, out)
    print(f"report: {out.resolve()}")
    return EXIT_OK


def _seed(text: str) -> int:
    """Parse a seed: a non-negative integer, as ``numpy.random.SeedSequence`` requires."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a non-negative integer")
    return value


def _count_model(text: str) -> CountEntry:
    """Parse ``--model``: a count model of the catalogue."""
    from crampstats.catalogue import count_entry

    try:
        return count_entry(text)
    except KeyError as exc:
        raise argparse.ArgumentTypeError(exc.args[0]) from None


def _endpoint(text: str) -> EndpointEntry:
    """Parse one ``--endpoint``: a secondary endpoint of the catalogue."""
    from crampstats.catalogue import endpoint_entry

    try:
        return endpoint_entry(text)
    except KeyError as exc:
        raise argparse.ArgumentTypeError(exc.args[0]) from None


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """Return the argument parser for all sub-commands.

    Parameters
    ----------
    command
        The sub-command being run (the first argument that is not an option). ``power`` and
        ``calibration`` get their full parsers only when named here; otherwise they are listed
        for ``--help`` alone, so no other command pays for importing them.
    """
    parser = argparse.ArgumentParser(
        prog="crampstats", description="Bayesian analysis and power simulation for cramp trials."
    )
    parser.add_argument("--version", action="version", version=f"crampstats {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("validate", help="check a trial folder against the data contract")
    p.add_argument("data_dir", type=Path, help="folder with subjects, diary, emg, adverse_events")
    p.add_argument(
        "--config", type=Path,
        help="trial config (design, arms, column mapping), or the main config listing trials",
    )
    p.add_argument(
        "--out", type=Path, help="write validated Parquet tables and validation.json here"
    )
    p.set_defaults(func=_cmd_validate)

    p = sub.add_parser(
        "init", help="guess a starter trial config (design, arms, column mapping) from a folder"
    )
    p.add_argument("data_dir", type=Path, help="folder with the trial's exported files")
    p.add_argument("--out", type=Path, required=True, help="trial config to write (YAML)")
    p.add_argument("--force", action="store_true", help="overwrite --out if it exists")
    p.set_defaults(func=_cmd_init)

    p = sub.add_parser("derive", help="build analysis datasets from a validated folder")
    p.add_argument("validated_dir", type=Path, help="output folder of `crampstats validate --out`")
    p.add_argument("--out", type=Path, required=True, help="folder for the derived datasets")
    p.set_defaults(func=_cmd_derive)

    p = sub.add_parser(
        "analyze", help="validate, derive and fit the cramp-frequency models of a trial folder"
    )
    p.add_argument("data_dir", type=Path, help="folder with subjects, diary, emg, adverse_events")
    p.add_argument(
        "--config", type=Path,
        help="trial config, or the main config listing trials (default: built-in defaults)",
    )
    p.add_argument("--out", type=Path, required=True, help="output folder (replaced atomically)")
    p.add_argument(
        "--strict", action="store_true",
        help="exit 1 when any fit fails the diagnostics gate (outputs are still written)",
    )
    p.add_argument(
        "--quiet", action="store_true", help="no progress lines (errors and warnings still show)"
    )
    p.set_defaults(func=_cmd_analyze)


    p = sub.add_parser("fit", help="fit one model to a derived folder (one workflow job)")
    p.add_argument("derived_dir", type=Path, help="output folder of `crampstats derive`")
    p.add_argument(
        "--model", required=True, type=_count_model, help="catalogue model id (docs/models.md)"
    )
    p.add_argument("--out", type=Path, required=True, help="fit file (.nc)")
    p.add_argument("--cores", type=int, help="chains sampled in parallel")
    p.add_argument(
        "--primary",
        action="store_true",
        help="the trial's primary model: also refit it under the prior-sensitivity priors",
    )
    p.set_defaults(func=_cmd_fit)

    p = sub.add_parser(
        "secondary", help="analyse a trial's secondary endpoints in one process (one workflow job)"
    )
    p.add_argument("derived_dir", type=Path, help="output folder of `crampstats derive`")
    p.add_argument(
        "--endpoint",
        required=True,
        nargs="+",
        type=_endpoint,
        help="secondary endpoint ids",
    )
    p.add_argument(
        "--out", type=Path, required=True, help="parent folder: OUT/<endpoint>/ tables and fit"
    )
    p.add_argument("--cores", type=int, help="chains sampled in parallel")
    p.set_defaults(func=_cmd_secondary)

    p = sub.add_parser("compare", help="result tables from stored fits (one workflow job)")
    p.add_argument("derived_dir", type=Path, help="output folder of `crampstats derive`")
    p.add_argument("--fits", type=Path, nargs="+", required=True, help="fit files, primary first")
    p.add_argument(
        "--secondary", type=Path, nargs="*", default=[], help="folders of `crampstats secondary`"
    )
    p.add_argument("--out", type=Path, required=True, help="folder for the CSV tables")
    p.add_argument("--provenance", type=Path, required=True, help="provenance.json to write")
    p.add_argument(
        "--validated", type=Path, help="`crampstats validate` folder: record what is not analysed"
    )
    p.add_argument("--strict", action="store_true", help="exit 1 when a fit failed the gate")
    p.set_defaults(func=_cmd_compare)

    p = sub.add_parser("report", help="write the self-contained HTML report of a results folder")
    p.add_argument("results_dir", type=Path, help="output folder of analyze (or the workflow)")
    p.add_argument("--out", type=Path, help="HTML file (default RESULTS_DIR/report.html)")
    p.set_defaults(func=_cmd_report)

    p = sub.add_parser("simulate", help="simulate a trial dataset from a design file")
    p.add_argument("--design", type=Path, required=True, help="design YAML")
    p.add_argument("--seed", type=_seed, required=True, help="root seed (non-negative integer)")
    p.add_argument("--out", type=Path, required=True, help="folder for the simulated trial")
    p.set_defaults(func=_cmd_simulate)


    p = sub.add_parser(
        "plan", help="freeze the analysis plan (hash and date beside the config), or verify it"
    )
    p.add_argument("action", choices=["freeze", "verify"], help="freeze the plan, or check it")
    p.add_argument("--config", type=Path, required=True, help="trial config or main config")
    p.add_argument("--force", action="store_true", help="freeze: replace an existing record")
    p.set_defaults(func=_cmd_plan)

    # `power` and `calibration` bring their own parsers, built (and imported) only when called.
    if command == "power":
        from crampstats.power.cli import add_power_parser

        add_power_parser(sub)
    else:
        sub.add_parser("power", help="Bayesian power, assurance and type I error (power -h)")
    if command == "calibration":
        from crampstats.calibration import add_calibration_parser

        add_calibration_parser(sub)
    else:
        sub.add_parser("calibration", help="calibration study of every model (calibration -h)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line and return its exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in argv if not a.startswith("-")), None)
    args = build_parser(command).parse_args(argv)
    from crampstats.engine import use_compile_cache

    use_compile_cache()  # before anything imports PyTensor: one compile cache per machine
    try:
        return args.func(args)
    except (ConfigError, PlanError) as exc:
        print(f"crampstats {args.command}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except CrampstatsError as exc:
        print(f"crampstats {args.command}: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    except OSError as exc:  # e.g. an output folder that cannot be created; nothing partial stays
        print(f"crampstats {args.command}: cannot write output: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    except KeyboardInterrupt:
        print("crampstats: interrupted; no partial output was left", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
