"""One secondary endpoint's analysis, and the tables all endpoints make together.

An endpoint is a catalogue record (:class:`~crampstats.models.EndpointEntry`, registered in
:mod:`crampstats.catalogue`): a Bayesian model with its statsmodels twin, or a descriptive
analysis. :func:`run_endpoint` analyses one (:func:`secondary_job` runs a trial's endpoints, one
workflow job);
:func:`combine` gathers their tables (the compare step):

- ``effects_secondary``: ``trial_id, endpoint, model, arm, comparator, measure, estimate_median,
  lower, upper, p_benefit, status``; a twin's rows have ``model = <endpoint>_twin`` and an empty
  ``p_benefit``;
- ``diagnostics_secondary``: convergence of every secondary fit;
- ``safety``, ``safety_signals``, ``serious_events``: incidence per arm and category, the quinine
  signals (flagged from one event), every serious event;
- ``cramp_potential`` and ``locations``: descriptive tables by arm (and visit);
- ``outcome_measures``: reliability, measurement error, agreement, responsiveness and sample size
  of each endpoint.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from crampstats.derive import read_derived
from crampstats.engine import ATTR_PREFIX, BayesModel, diagnose, save_fit
from crampstats.errors import CrampstatsError
from crampstats.models import EndpointEntry
from crampstats.outputs import atomic_dir, write_tables

EFFECTS_COLUMNS = [
    "trial_id",
    "endpoint",
    "model",
    "arm",
    "comparator",
    "measure",
    "estimate_median",
    "lower",
    "upper",
    "p_benefit",
    "status",
]
DIAGNOSTICS_COLUMNS = [
    "trial_id",
    "endpoint",
    "model",
    "rhat_max",
    "ess_bulk_min",
    "ess_tail_min",
    "divergences",
    "status",
    "reasons",
]

@dataclass
class EndpointResult:
    """One endpoint's analysis.

    Attributes
    ----------
    endpoint : str
        Endpoint id (catalogue id).
    tables : dict
        Table name -> data frame (names as in :func:`combine`).
    idata : xarray.DataTree or None
        The Bayesian fit, if the endpoint has a model.
    """

    endpoint: str
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    idata: xr.DataTree | None = None



def _settings(config: Mapping[str, Any]) -> dict[str, Any]:
    return dict(config.get("analysis", {}).get("secondary", {}))


def make_endpoint_model(entry: EndpointEntry, config: Mapping[str, Any]) -> BayesModel:
    """Instantiate the endpoint's model with the trial's arms, priors and sampler settings."""
    if entry.model is None:
        raise ValueError(f"endpoint {entry.id} is descriptive: it has no model")
    analysis = config.get("analysis", {})
    model_config: dict[str, Any] = {"control_arm": config.get("control_arm", "placebo")}
    if config.get("arms") and "arms" in entry.model.default_model_config:
        model_config["arms"] = list(config["arms"])
    model_config.update(_settings(config).get("model_config", {}).get(entry.id, {}))
    sampler = {k: v for k, v in (analysis.get("sampler") or {}).items() if v is not None}
    try:
        return entry.model(model_config, sampler or None)
    except ValueError as exc:
        raise CrampstatsError(f"analysis.secondary.model_config.{entry.id}: {exc}") from None


def _effect_rows(
    table: pd.DataFrame, trial_id: str, endpoint: str, model: str, status: str
) -> pd.DataFrame:
    out = table.copy()
    out.insert(0, "model", model)
    out.insert(0, "endpoint", endpoint)
    out.insert(0, "trial_id", trial_id)
    out["status"] = status
    return out[EFFECTS_COLUMNS]


def run_endpoint(
    entry: EndpointEntry,
    derived: Mapping[str, pd.DataFrame],
    config: Mapping[str, Any],
    *,
    cores: int | None = None,
    progress: bool = False,
) -> EndpointResult:
    """Analyse one secondary endpoint of a trial.

    Parameters
    ----------
    entry
        The endpoint's catalogue record.
    derived
        The trial's derived datasets (``crampstats.derive.derive_all``).
    config
        Resolved trial configuration.
    cores
        Chains sampled in parallel (the workflow passes the job's threads).
    progress
        Show the sampler's progress bar.

    Returns
    -------
    EndpointResult
        Its tables (effects and diagnostics for a model; the descriptive or outcome-measure
        table otherwise) and the fit.
    """
    seed = entry.seed(config.get("seed", 0))
    if entry.model is None:
        tables = entry.tables(derived, config, seed) if entry.tables is not None else {}
        return EndpointResult(entry.id, tables)
    model = make_endpoint_model(entry, config)
    frame = entry.model_frame(derived, _settings(config))
    idata = model.fit(frame, seed=seed, cores=cores, log_likelihood=True, progress=progress)
    idata["posterior"].attrs.update(
        {
            f"{ATTR_PREFIX}endpoint": entry.id,
            f"{ATTR_PREFIX}trial_id": str(config.get("trial_id", "")),
        }
    )
    tables = summarize_endpoint(entry, idata, frame, config, model)
    if entry.tables is not None:
        tables.update(entry.tables(derived, config, seed))
    return EndpointResult(entry.id, tables, idata)


def failed_endpoint(entry: EndpointEntry, config: Mapping[str, Any], reason: str) -> EndpointResult:
    """Return the result of an endpoint whose analysis failed: one ``failed`` diagnostics row.

    The primary analysis and the other endpoints are kept; the row names the reason, the
    report lists it and ``--strict`` turns it into a non-zero exit.
    """
    row = {
        "trial_id": str(config.get("trial_id", "")),
        "endpoint": entry.id,
        "model": entry.id,
        "rhat_max": np.nan,
        "ess_bulk_min": np.nan,
        "ess_tail_min": np.nan,
        "divergences": np.nan,
        "status": "failed",
        "reasons": reason,
    }
    return EndpointResult(
        entry.id, {"diagnostics_secondary": pd.DataFrame([row], columns=DIAGNOSTICS_COLUMNS)}
    )


def run_endpoint_or_fail(
    entry: EndpointEntry,
    derived: Mapping[str, pd.DataFrame],
    config: Mapping[str, Any],
    *,
    cores: int | None = None,
    progress: bool = False,
) -> EndpointResult:
    """Analyse an endpoint like :func:`run_endpoint`; a failure becomes a ``failed`` result.

    A secondary endpoint never takes the primary results down with it: whatever goes wrong in
    its analysis (data it cannot fit, a twin that breaks) is recorded with the reason.
    """
    try:
        return run_endpoint(entry, derived, config, cores=cores, progress=progress)
    except Exception as exc:  # the isolation boundary of one endpoint
        return failed_endpoint(entry, config, f"analysis failed: {type(exc).__name__}: {exc}")


def summarize_endpoint(
    entry: EndpointEntry,
    idata: xr.DataTree,
    frame: pd.DataFrame,
    config: Mapping[str, Any],
    model: BayesModel | None = None,
) -> dict[str, pd.DataFrame]:
    """Tables of a fitted endpoint model: its effects and its twin's, and diagnostics.

    The diagnostics gate of ``analysis.diagnostics`` marks every row of a failing fit
    ``failed``; the twin's rows are ``ok`` unless statsmodels reports no convergence. The twin
    receives every setting of the model's config it accepts (control arm, arms, baseline
    handling, ...), so that it fits the same rows and terms.
    """
    if entry.effects is None:
        raise ValueError(f"endpoint {entry.id} is descriptive: it has no effects")
    model = model if model is not None else make_endpoint_model(entry, config)
    analysis = config.get("analysis", {})
    level = float(analysis.get("level", 0.95))
    trial_id = str(config.get("trial_id", ""))
    diag = diagnose(idata, analysis.get("diagnostics"))
    effects = entry.effects(idata, level=level)
    rows = [_effect_rows(effects, trial_id, entry.id, entry.id, diag["status"])]
    if analysis.get("twins", True):
        twin = entry.fit_twin(frame, model, level)
        converged = twin.attrs.get("converged", True)
        status = "ok" if bool(np.all(converged)) else "failed"
        rows.append(_effect_rows(twin, trial_id, entry.id, f"{entry.id}_twin", status))
    diagnostics = pd.DataFrame(
        [
            {
                "trial_id": trial_id,
                "endpoint": entry.id,
                "model": entry.id,
                **{k: diag[k] for k in DIAGNOSTICS_COLUMNS[3:8]},
                "reasons": "; ".join(diag["reasons"]),
            }
        ],
        columns=DIAGNOSTICS_COLUMNS,
    )
    return {
        "effects_secondary": _ordered(pd.concat(rows, ignore_index=True), config),
        "diagnostics_secondary": diagnostics,
    }


def _ordered(effects: pd.DataFrame, config: Mapping[str, Any]) -> pd.DataFrame:
    """Rows by model (Bayesian first), then arm in config order, then measure as produced."""
    arms = [str(a) for a in config.get("arms") or []]
    rank = {a: i for i, a in enumerate(arms)}
    key = effects.assign(
        _twin=effects["model"].str.endswith("_twin"),
        _arm=effects["arm"].map(lambda a: rank.get(str(a), len(rank))),
        _seen=np.arange(len(effects)),
    )
    key = key.sort_values(["_twin", "_arm", "arm", "_seen"], kind="stable")
    return key[EFFECTS_COLUMNS].reset_index(drop=True)


#: Tables gathered by :func:`combine`, in output order.
#: Tables gathered by :func:`combine`, in output order.
TABLES = (
    "effects_secondary",
    "diagnostics_secondary",
    "safety",
    "safety_signals",
    "serious_events",
    "cramp_potential",
    "locations",
    "outcome_measures",
)


def combine(results: list[dict[str, pd.DataFrame]]) -> dict[str, pd.DataFrame]:
    """Gather the tables of every endpoint (in :data:`ENDPOINTS` order) into one set.

    Parameters
    ----------
    results
        Each endpoint's tables (:attr:`EndpointResult.tables`, or read back from its folder).

    Returns
    -------
    dict
        ``effects_secondary`` and ``diagnostics_secondary`` always (possibly empty, with their
        columns), and every other table some endpoint produced.
    """
    out: dict[str, list[pd.DataFrame]] = {name: [] for name in TABLES}
    for tables in results:
        for name, table in tables.items():
            out.setdefault(name, []).append(table)
    combined = {
        "effects_secondary": pd.DataFrame(columns=EFFECTS_COLUMNS),
        "diagnostics_secondary": pd.DataFrame(columns=DIAGNOSTICS_COLUMNS),
    }
    for name, parts in out.items():
        if parts:
            combined[name] = pd.concat(parts, ignore_index=True)
    return combined


def write_secondary(result: EndpointResult, out: str | Path) -> Path:
    """Write an endpoint's tables (CSV) and fit (netCDF) into folder ``out``, atomically."""
    with atomic_dir(out) as tmp:
        write_tables(result.tables, tmp)
        if result.idata is not None:
            save_fit(result.idata, tmp / f"{result.endpoint}.nc")
    return Path(out)


def read_endpoint(folder: str | Path) -> dict[str, pd.DataFrame]:
    """Read back the tables :func:`write_secondary` wrote."""
    return {p.stem: pd.read_csv(p) for p in sorted(Path(folder).glob("*.csv"))}


def secondary_job(
    derived_dir: str | Path,
    entries: Sequence[EndpointEntry],
    out: str | Path,
    *,
    cores: int | None = None,
    echo: Callable[[str], None] | None = None,
) -> list[EndpointResult]:
    """Analyse a trial's endpoints in one process and write ``out/<endpoint>/`` for each.

    One process per trial rather than one per endpoint: start-up, imports and nutpie's first
    compiled model cost more than most endpoints' sampling (benchmarks/RESULTS.md, "Workflow").
    Each endpoint's folder is written atomically as soon as it is done; a failed analysis is a
    folder with ``status = failed`` (:func:`run_endpoint_or_fail`), never a missing one. The
    workflow plans only the endpoints the data support (:func:`crampstats.catalogue.plan_trial`).

    Parameters
    ----------
    derived_dir
        Output folder of ``crampstats derive``.
    entries
        The endpoints, in the order to analyse them.
    out
        Parent folder of the endpoints' folders.
    cores
        Chains sampled in parallel.
    echo
        Receives one line per endpoint with its elapsed time (the job's log).
    """
    derived, config = read_derived(derived_dir)
    results = []
    for entry in entries:
        started = time.perf_counter()
        result = run_endpoint_or_fail(entry, derived, config, cores=cores)
        write_secondary(result, Path(out) / entry.id)
        results.append(result)
        if echo is not None:
            echo(f"{entry.id}: {time.perf_counter() - started:.1f} s")
    return results
