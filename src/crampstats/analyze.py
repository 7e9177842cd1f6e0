"""``crampstats analyze``: validate, derive, fit every configured model, write tables and fits.

The one place where the steps meet side effects. Everything is written into a temporary folder
beside the output folder and renamed into place at the end (:func:`crampstats.outputs.atomic_dir`),
so an interrupted or refused run leaves the previous output (or nothing), never a mixture.

Output layout (``DIR``)::

    tables/{effects,frequentist,diagnostics,loo,rankings,patients,ppc,course}.csv
    fits/cramp_frequency__<model>.nc
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
from crampstats.fit import ENDPOINT, fit_model, fit_path, make_model, model_frame, model_seed
from crampstats.fit import plan_models as _plan_models
from crampstats.outputs import atomic_dir, provenance, to_json, write_parquet


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


def trial_id_of(config: dict[str, Any], periods: pd.DataFrame, data_dir: Path) -> str:
    """Trial id for the tables: config ``trial_id``, else the data's only one, else the folder."""
    if config.get("trial_id"):
        return str(config["trial_id"])
    ids = periods["trial_id"].dropna().astype(str).unique() if "trial_id" in periods else []
    return str(ids[0]) if len(ids) == 1 else Path(data_dir).resolve().name


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
    diagnostics = tables["diagnostics"]
    failed = diagnostics.loc[diagnostics["status"] != "ok", "model"].tolist()
    for _, row in diagnostics.loc[diagnostics["status"] != "ok"].iterrows():
        echo(f"FAILED diagnostics: {row['model']}: {row['reasons']}")

    seconds = time.perf_counter() - started
    record = provenance(
        {f"data/{k}": v for k, v in sorted(result.inputs.items())},
        trial_config,
        endpoint=ENDPOINT,
        models=plan,
        seeds={"root": trial_config.get("seed"), **seeds},
        failed_models=failed,
        validation_warnings=[w.message for w in result.warnings],
        started_utc=datetime.now(UTC).isoformat(timespec="seconds"),
        run_seconds=round(seconds, 1),
    )
    with atomic_dir(out) as tmp:
        (tmp / "tables").mkdir()
        for name, table in tables.items():
            write_csv(table, tmp / "tables" / f"{name}.csv")
        (tmp / "fits").mkdir()
        for name, rec in records.items():
            save_fit(rec.idata, fit_path(tmp, name))
        (tmp / "validated").mkdir()
        validation.write_validated_into(result, tmp / "validated")
        (tmp / "derived").mkdir()
        for name, df in derived.items():
            write_parquet(df, tmp / "derived" / f"{name}.parquet")
        (tmp / "provenance.json").write_text(to_json(record), encoding="utf-8")
    echo(f"wrote {out} in {seconds:.1f} s")
    return AnalysisOutcome(out, tables, failed, seconds)
