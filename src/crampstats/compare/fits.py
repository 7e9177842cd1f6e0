"""The compare step: result tables of a trial from its fits and secondary-endpoint folders.

:func:`compare_job` is the workflow's ``compare`` job (``crampstats compare``); ``crampstats
analyze`` builds the same tables in one process from the same functions, so the two agree.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from crampstats.catalogue import count_entry, endpoint_entry, plan_trial
from crampstats.compare.missing import tipping_point_tables
from crampstats.compare.tables import FitRecord, result_tables
from crampstats.compare.verdict import endpoint_verdict_tables
from crampstats.derive import read_derived
from crampstats.engine import load_fit
from crampstats.fit import make_model, model_frame
from crampstats.models import ENDPOINT
from crampstats.outputs import atomic_outputs, provenance, to_json, write_tables
from crampstats.plan import parse_plan, plan_status
from crampstats.secondary import combine, make_endpoint_model, read_endpoint
from crampstats.validate import read_validated


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


def run_record(
    plan: list[str],
    seeds: dict[str, int],
    config: dict[str, Any],
    failed: list[str],
    seconds: float,
) -> dict[str, Any]:
    """Return the run's entries of ``provenance.json``: models, seeds, failed fits, time."""
    return {
        "endpoint": ENDPOINT,
        "models": plan,
        "seeds": {"root": config.get("seed"), **seeds},
        "failed_models": failed,
        # the plan's hash and whether it changed after `crampstats plan freeze`
        "analysis_plan": plan_status(config),
        "started_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        "run_seconds": round(seconds, 1),
    }


def failed_fits(tables: dict[str, pd.DataFrame]) -> list[str]:
    """Models (count and secondary) whose fit failed the diagnostics gate."""
    failed = []
    for table in ("diagnostics", "diagnostics_secondary"):
        if table in tables:
            diag = tables[table]
            failed += diag.loc[diag["status"] != "ok", "model"].astype(str).tolist()
    return failed


def not_analysed(validated: str | Path) -> dict[str, str]:
    """Return the analyses the planner skips for a validated trial, with the reasons."""
    trial = read_validated(validated)
    return plan_trial(trial.config, trial.tables).skipped


def compare_job(
    derived_dir: str | Path,
    fits: list[str | Path],
    tables_out: str | Path,
    provenance_out: str | Path,
    secondary: list[str | Path] | None = None,
    validated: str | Path | None = None,
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
    validated
        Output folder of ``crampstats validate``; when given, the analyses its data do not
        support are recorded in ``provenance.json`` (``not_analysed``) with the planner's reasons.

    Returns
    -------
    AnalysisOutcome
        Tables and failed models.
    """
    started = time.perf_counter()
    derived_dir = Path(derived_dir)
    derived, config = read_derived(derived_dir)
    records: dict[str, FitRecord] = {}
    seeds: dict[str, int] = {}
    for path in map(Path, fits):
        entry = count_entry(path.stem.split("__", 1)[-1])
        model = make_model(entry, config)
        frame = model_frame(entry, derived, config)
        idata = load_fit(path, model)
        seeds[entry.id] = int(idata["posterior"].attrs["crampstats_seed"])
        records[entry.id] = FitRecord(entry, model, idata, frame, model.prepare(frame))
    tables = result_tables(records, config, derived.get("weekly"))
    tables.update(tipping_point_tables(records, derived, config))
    folders = [Path(f) for f in secondary or []]
    tables.update(combine([read_endpoint(f) for f in folders]))
    # a primary endpoint analysed by a secondary-endpoint model (intensity) is decided here
    primary = parse_plan(config).endpoint
    endpoint_fits = {
        f.name: load_fit(fit, make_endpoint_model(endpoint_entry(f.name), config))
        for f in folders
        if f.name == primary and (fit := f / f"{f.name}.nc").is_file()
    }
    tables.update(endpoint_verdict_tables(endpoint_fits, config))
    failed = failed_fits(tables)
    analysed = [f.name for f in folders]
    seeds.update({name: endpoint_entry(name).seed(config.get("seed", 0)) for name in analysed})
    upstream = json.loads((derived_dir / "provenance.json").read_text(encoding="utf-8"))
    inputs = {f"derived/{p.stem}": p for p in sorted(derived_dir.glob("*.parquet"))}
    inputs.update({f"fits/{Path(p).name}": Path(p) for p in fits})
    inputs.update(
        {f"secondary/{f.name}/{p.name}": p for f in folders for p in sorted(f.iterdir())}
    )
    record = provenance(
        inputs,
        config,
        **run_record(list(records), seeds, config, failed, time.perf_counter() - started),
        secondary_endpoints=analysed,
        not_analysed=not_analysed(validated) if validated is not None else {},
        data_inputs=upstream.get("validation_inputs", {}),
    )
    # tables and record replace the previous ones together or not at all (a crash between them
    # never pairs new tables with an old provenance.json)
    with atomic_outputs(folders=[tables_out], files=[provenance_out]) as ([tmp], [prov]):
        write_tables(tables, tmp)
        prov.write_text(to_json(record), encoding="utf-8", newline="\n")
    return AnalysisOutcome(Path(tables_out), tables, failed, time.perf_counter() - started)
