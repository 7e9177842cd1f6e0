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
from pathlib import Path

from crampstats.catalogue import plan_trial
from crampstats.compare import (
    AnalysisOutcome,
    FitRecord,
    endpoint_verdict_tables,
    failed_fits,
    result_tables,
    run_record,
)
from crampstats.compare.missing import tipping_point_tables
from crampstats.config import load_trial_config
from crampstats.derive import derive_all, trial_id_of
from crampstats.engine import save_fit
from crampstats.errors import CrampstatsError
from crampstats.fit import fit_model, fit_path, make_model, model_frame
from crampstats.outputs import atomic_dir, provenance, to_json, write_parquet, write_tables
from crampstats.plan import attach_frozen
from crampstats.secondary import EndpointResult, combine, run_endpoint_or_fail
from crampstats.validate import refusal_text, validate, write_validated_into


class DataRefused(CrampstatsError):
    """The trial's data broke the contract; the message is the refusal report."""


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
        Where progress lines go: one line per stage, prefixed with the seconds elapsed (plain
        text, suitable for logs); pass a function that drops them for quiet runs.
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

    def stage(message: str) -> None:
        echo(f"[{time.perf_counter() - started:6.1f} s] {message}")

    data_dir, out = Path(data_dir), Path(out)
    # the frozen-plan record beside the config (crampstats plan freeze) travels with the config
    config = attach_frozen(load_trial_config(config_path, data_dir), config_path)
    stage(f"validating {data_dir}")
    result = validate(data_dir, config)
    if not result.ok:
        raise DataRefused(refusal_text(result))
    if result.warnings:
        stage(f"{len(result.warnings)} validation warning(s); see derived/ and the report")
    trial_config = dict(result.config)
    plan = plan_trial(trial_config, result.tables)
    derived = derive_all(result.tables, trial_config)
    trial_config["trial_id"] = trial_id_of(trial_config, derived["periods"], data_dir)
    models = [m.id for m in plan.models]
    stage(f"trial {trial_config['trial_id']} ({trial_config.get('design')}): models {models}")
    for skipped, reason in plan.skipped.items():
        stage(f"not analysed: {skipped}: {reason}")

    root = trial_config.get("seed", 0)
    records: dict[str, FitRecord] = {}
    seeds: dict[str, int] = {}
    for i, entry in enumerate(plan.models, start=1):
        stage(f"[{i}/{len(plan.models)}] fitting {entry.id}")
        tic = time.perf_counter()
        model = make_model(entry, trial_config)
        frame = model_frame(entry, derived, trial_config)
        idata = fit_model(entry, derived, trial_config, progress=progress, primary=i == 1)
        seeds[entry.id] = entry.seed(root)
        records[entry.id] = FitRecord(entry, model, idata, frame, model.prepare(frame))
        stage(f"[{i}/{len(plan.models)}] {entry.id} sampled in {time.perf_counter() - tic:.1f} s")

    stage("summarising: effects, twins, diagnostics, LOO, rankings, rootograms")
    tables = result_tables(records, trial_config, derived["weekly"])
    tables.update(tipping_point_tables(records, derived, trial_config))

    secondary: list[EndpointResult] = []
    for i, entry in enumerate(plan.endpoints, start=1):
        stage(f"[{i}/{len(plan.endpoints)}] secondary endpoint {entry.id}")
        secondary.append(run_endpoint_or_fail(entry, derived, trial_config, progress=progress))
        seeds[entry.id] = entry.seed(root)
    tables.update(combine([r.tables for r in secondary]))
    fits = {r.endpoint: r.idata for r in secondary if r.idata is not None}
    tables.update(endpoint_verdict_tables(fits, trial_config))
    failed = failed_fits(tables)
    for table in ("diagnostics", "diagnostics_secondary"):
        for _, row in tables[table].loc[tables[table]["status"] != "ok"].iterrows():
            stage(f"FAILED diagnostics: {row['model']}: {row['reasons']}")

    seconds = time.perf_counter() - started
    record = provenance(
        {f"data/{k}": v for k, v in sorted(result.inputs.items())},
        trial_config,
        **run_record(models, seeds, trial_config, failed, seconds),
        secondary_endpoints=[e.id for e in plan.endpoints],
        not_analysed=plan.skipped,
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
        write_validated_into(result, tmp / "validated")
        (tmp / "derived").mkdir()
        for name, df in derived.items():
            write_parquet(df, tmp / "derived" / f"{name}.parquet")
        (tmp / "provenance.json").write_text(to_json(record), encoding="utf-8")
    stage(f"wrote {out} in {seconds:.1f} s")
    return AnalysisOutcome(out, tables, failed, seconds)
