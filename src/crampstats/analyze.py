"""``crampstats analyze``: validate, derive, fit every configured model, write tables and fits.

The one place where the steps meet side effects. Everything is written into a temporary folder
beside the output folder and renamed into place at the end (:func:`crampstats.outputs.atomic_dir`),
so an interrupted or refused run leaves the previous output (or nothing), never a mixture.

Output layout (``DIR``)::

    tables/{effects,frequentist,diagnostics,loo,rankings,patients,ppc,course}.csv
    tables/{effects_secondary,diagnostics_secondary,outcome_measures,...}.csv (secondary)
    fits/cramp_frequency__<model>.nc
    fits/<endpoint>__<endpoint>.nc  (secondary endpoint models)
    validated/                  the accepted tables and validation.json (warnings, counts)
    derived/*.parquet           the analysis datasets the models read
    provenance.json             input hashes, resolved config, versions, commit, seeds, run time
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from crampstats import compare, derive, validation
from crampstats.config import load_trial_config
from crampstats.engine import save_fit
from crampstats.errors import CrampstatsError
from crampstats.fit import (
    ENDPOINT,
    fit_model,
    fit_path,
    make_model,
    model_frame,
    model_seed,
    trial_id_of,
)
from crampstats.fit import plan_models as _plan_models
from crampstats.outputs import atomic_dir, provenance, to_json, write_parquet
from crampstats.secondary import (
    EndpointResult,
    combine,
    endpoint_seed,
    plan_endpoints,
    read_endpoint,
    run_endpoint,
)


class DataRefused(CrampstatsError):
    """The trial's data broke the contract; the message is the refusal report."""


@dataclass
class AnalysisOutcome:
    """What :func:`analyze` produced.

    Attributes
    ----------
    out : pathlib.Path
        The output folder.
    tables : dict
        Table name -> data frame (as written to ``tables/``).
    failed : list of str
        Models whose fit failed the diagnostics gate.
    seconds : float
        Wall time of the whole analysis.
    """

    out: Path
    tables: dict[str, pd.DataFrame]
    failed: list[str] = field(default_factory=list)
    seconds: float = 0.0


def write_csv(df: pd.DataFrame, path: Path) -> None:
    """Write a table as CSV deterministically (10 significant digits, Unix line ends)."""
    df.to_csv(path, index=False, float_format="%.10g", lineterminator="\n")


def analyze(
    data_dir: str | Path,
    out: str | Path,
    config_path: str | Path | None = None,
    *,
    echo: Callable[[str], None] = print,
    progress: bool = False,
) -> AnalysisOutcome:
    """Run the cramp-frequency analysis of one trial folder.

    Parameters
    ----------
    data_dir
        Folder with the trial's tables (contract in docs/data-contract.md).
    out
        Output folder (replaced atomically).
    config_path
        Trial config or main config (``None``: defaults).
    echo
        Where progress lines go (one line per step; plain text, suitable for logs).
    progress
        Show the sampler's progress bar (terminals).

    Returns
    -------
    AnalysisOutcome
        Tables, failed models and timing.

    Raises
    ------
    DataRefused
        If the data break the contract (message: the refusal report).
    crampstats.config.ConfigError
        If the configuration is invalid.
    """
    started = time.perf_counter()
    data_dir, out = Path(data_dir), Path(out)
    config = load_trial_config(config_path, data_dir)
    echo(f"validating {data_dir}")
    result = validation.validate(data_dir, config)
    if not result.ok:
        raise DataRefused(validation.refusal_text(result))
    if result.warnings:
        echo(f"{len(result.warnings)} validation warning(s); see derived/ and the report")
    trial_config = dict(result.config)
    derived = derive.derive_all(result.tables, trial_config)
    trial_config["trial_id"] = trial_id_of(trial_config, derived["periods"], data_dir)
    plan = _plan_models(trial_config, derived)
    echo(f"trial {trial_config['trial_id']} ({trial_config.get('design')}): models {plan}")

    records: dict[str, compare.FitRecord] = {}
    seeds: dict[str, int] = {}
    for i, name in enumerate(plan, start=1):
        echo(f"[{i}/{len(plan)}] fitting {name}")
        tic = time.perf_counter()
        model = make_model(name, trial_config)
        frame = model_frame(name, derived, trial_config)
        idata = fit_model(name, derived, trial_config, progress=progress)
        seeds[name] = model_seed(trial_config.get("seed", 0), name)
        records[name] = compare.FitRecord(name, model, idata, frame, model.prepare(frame))
        echo(f"[{i}/{len(plan)}] {name} sampled in {time.perf_counter() - tic:.1f} s")

    echo("summarising: effects, twins, diagnostics, LOO, rankings, rootograms")
    tables = compare.result_tables(records, trial_config, derived["weekly"])

    endpoints = plan_endpoints(trial_config, derived)
    secondary: list[EndpointResult] = []
    for i, endpoint in enumerate(endpoints, start=1):
        echo(f"[{i}/{len(endpoints)}] secondary endpoint {endpoint}")
        secondary.append(run_endpoint(endpoint, derived, trial_config, progress=progress))
        seeds[endpoint] = endpoint_seed(trial_config.get("seed", 0), endpoint)
    tables.update(combine([r.tables for r in secondary]))
    failed = _failed(tables)
    for table in ("diagnostics", "diagnostics_secondary"):
        for _, row in tables[table].loc[tables[table]["status"] != "ok"].iterrows():
            echo(f"FAILED diagnostics: {row['model']}: {row['reasons']}")

    seconds = time.perf_counter() - started
    record = provenance(
        {f"data/{k}": v for k, v in sorted(result.inputs.items())},
        trial_config,
        **_run_record(plan, seeds, trial_config, failed, seconds),
        secondary_endpoints=endpoints,
        validation_warnings=[w.message for w in result.warnings],
    )
    with atomic_dir(out) as tmp:
        (tmp / "tables").mkdir()
        write_tables(tables, tmp / "tables")
        (tmp / "fits").mkdir()
        for name, rec in records.items():
            save_fit(rec.idata, fit_path(tmp, name))
        for done in secondary:
            if done.idata is not None:
                save_fit(done.idata, fit_path(tmp, done.endpoint, done.endpoint))
        (tmp / "validated").mkdir()
        validation.write_validated_into(result, tmp / "validated")
        (tmp / "derived").mkdir()
        for name, df in derived.items():
            write_parquet(df, tmp / "derived" / f"{name}.parquet")
        (tmp / "provenance.json").write_text(to_json(record), encoding="utf-8")
    echo(f"wrote {out} in {seconds:.1f} s")
    return AnalysisOutcome(out, tables, failed, seconds)


def _run_record(
    plan: list[str],
    seeds: dict[str, int],
    config: dict[str, Any],
    failed: list[str],
    seconds: float,
) -> dict[str, Any]:
    return {
        "endpoint": ENDPOINT,
        "models": plan,
        "seeds": {"root": config.get("seed"), **seeds},
        "failed_models": failed,
        "started_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        "run_seconds": round(seconds, 1),
    }


def _failed(tables: dict[str, pd.DataFrame]) -> list[str]:
    """Models (count and secondary) whose fit failed the diagnostics gate."""
    failed = []
    for table in ("diagnostics", "diagnostics_secondary"):
        if table in tables:
            diag = tables[table]
            failed += diag.loc[diag["status"] != "ok", "model"].astype(str).tolist()
    return failed


def write_tables(tables: dict[str, pd.DataFrame], folder: Path) -> None:
    """Write every result table as ``<folder>/<name>.csv`` (folder must exist)."""
    for name, table in tables.items():
        write_csv(table, folder / f"{name}.csv")


def summarize_fits(
    derived_dir: str | Path,
    fits: list[str | Path],
    tables_out: str | Path,
    provenance_out: str | Path,
    secondary: list[str | Path] | None = None,
) -> AnalysisOutcome:
    """Build the result tables from stored fits (the workflow's compare step).

    Parameters
    ----------
    derived_dir
        Output folder of ``crampstats derive``.
    fits
        Fit files ``<endpoint>__<model>.nc``; the first is the primary model. Each is checked
        against the current model's id (:func:`crampstats.engine.load_fit`): a fit made by another
        configuration or package version is refused, never silently reused.
    tables_out
        Folder for the CSV tables (replaced atomically).
    provenance_out
        ``provenance.json`` of the run: hashes of the derived datasets and fits, the data hashes
        recorded at validation, config, versions, commit, seeds.
    secondary
        Folders written by ``crampstats secondary`` (one per endpoint); their tables are
        gathered into ``effects_secondary.csv``, ``outcome_measures.csv`` and the others
        (:func:`crampstats.secondary.combine`).

    Returns
    -------
    AnalysisOutcome
        Tables and failed models.
    """
    import json

    from crampstats.engine import load_fit
    from crampstats.fit import read_derived
    from crampstats.outputs import atomic_write_text

    started = time.perf_counter()
    derived_dir = Path(derived_dir)
    derived, config = read_derived(derived_dir)
    records: dict[str, compare.FitRecord] = {}
    seeds: dict[str, int] = {}
    for path in map(Path, fits):
        name = path.stem.split("__", 1)[-1]
        model = make_model(name, config)
        frame = model_frame(name, derived, config)
        idata = load_fit(path, model)
        seeds[name] = int(idata["posterior"].attrs["crampstats_seed"])
        records[name] = compare.FitRecord(name, model, idata, frame, model.prepare(frame))
    tables = compare.result_tables(records, config, derived.get("weekly"))
    folders = [Path(f) for f in secondary or []]
    tables.update(combine([read_endpoint(f) for f in folders]))
    failed = _failed(tables)
    analysed = [f.name for f in folders if not (f / "SKIPPED").exists()]
    seeds.update({name: endpoint_seed(config.get("seed", 0), name) for name in analysed})
    upstream = json.loads((derived_dir / "provenance.json").read_text(encoding="utf-8"))
    inputs = {f"derived/{p.stem}": p for p in sorted(derived_dir.glob("*.parquet"))}
    inputs.update({f"fits/{Path(p).name}": Path(p) for p in fits})
    inputs.update(
        {f"secondary/{f.name}/{p.name}": p for f in folders for p in sorted(f.iterdir())}
    )
    record = provenance(
        inputs,
        config,
        **_run_record(list(records), seeds, config, failed, time.perf_counter() - started),
        secondary_endpoints=analysed,
        data_inputs=upstream.get("validation_inputs", {}),
    )
    with atomic_dir(tables_out) as tmp:
        write_tables(tables, tmp)
    atomic_write_text(provenance_out, to_json(record))
    return AnalysisOutcome(Path(tables_out), tables, failed, time.perf_counter() - started)
