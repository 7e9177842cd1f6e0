"""Fit the cramp-frequency models a trial's plan names: the model object, its data, its fit.

One function per step so that the Snakemake workflow (one job per model, :func:`fit_job`) and
``crampstats analyze`` (all models in one process) share them:

- :func:`make_model`: the model object with the trial's arms, covariates, random intercepts,
  missing-value handling and prior overrides;
- :func:`model_frame`: the derived dataset a model reads (subject covariates and groupings
  joined on);
- :func:`fit_model`: sample it (compile-once engine) with the pointwise log-likelihood for LOO,
  seeded by the model's catalogue seed key;
- :func:`fit_path`: where the fit is stored, ``fits/<endpoint>__<model>.nc``.

Which models a trial gets is the planner's decision (:func:`crampstats.catalogue.plan_trial`).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import xarray as xr

from crampstats.config import ConfigError
from crampstats.derive import read_derived, subject_columns
from crampstats.engine import ATTR_PREFIX, CountModel, save_fit
from crampstats.errors import CrampstatsError
from crampstats.fit.prior_sensitivity import add_prior_sensitivity
from crampstats.models import ENDPOINT, CountEntry
from crampstats.plan import parse_plan


def make_model(entry: CountEntry, config: Mapping[str, Any]) -> CountModel:
    """Instantiate a count model for a trial: arms, control, covariates, priors, sampler.

    ``analysis.covariates``, ``analysis.random_intercepts`` and ``analysis.covariate_missing``
    become the model config's entries of those names (each model's own
    ``analysis.model_config`` entry may override them).

    Parameters
    ----------
    entry
        The model's catalogue record.
    config
        Resolved trial configuration.

    Returns
    -------
    CountModel
        The model object; its id (hash of this config) is stored with the fit.
    """
    analysis = config.get("analysis", {})
    model_config: dict[str, Any] = {"control_arm": config.get("control_arm", "placebo")}
    if config.get("arms"):
        model_config["arms"] = list(config["arms"])
    if analysis.get("covariates"):
        model_config["covariates"] = list(analysis["covariates"])
    if analysis.get("random_intercepts"):
        model_config["random_intercepts"] = list(analysis["random_intercepts"])
    if analysis.get("covariate_missing", "error") != "error":
        model_config["covariate_missing"] = analysis["covariate_missing"]
    model_config["missing_baseline"] = analysis.get("missing_baseline", "error")
    model_config.update(analysis.get("model_config", {}).get(entry.id, {}))
    plan = parse_plan(config)
    if plan.strategy == "exchangeable" and entry.id == "nb_totals":
        # the plan's exchangeable strategy is a prior of the primary model (docs/analysis-plan.md)
        model_config.update(
            log_rr_prior="exchangeable",
            prior_log_rr_mu_sd=plan.prior_mu_sd,
            prior_log_rr_tau_sd=plan.prior_tau_sd,
        )
    try:
        # unset (null) sampler settings keep the model's own defaults
        sampler = {k: v for k, v in (analysis.get("sampler") or {}).items() if v is not None}
        return entry.model(model_config, sampler or None)
    except (KeyError, ValueError) as exc:
        raise CrampstatsError(f"analysis.model_config.{entry.id}: {exc}") from None


def model_frame(
    entry: CountEntry, derived: Mapping[str, pd.DataFrame], config: Mapping[str, Any]
) -> pd.DataFrame:
    """Return the derived dataset a count model reads, with subject columns joined on.

    Weekly and crossover tables carry no subject characteristics; the covariates named in
    ``analysis.covariates`` and the groupings in ``analysis.random_intercepts`` are joined from
    ``periods`` (one value per subject), which carries every subject column.

    Raises
    ------
    crampstats.config.ConfigError
        If a named column is in neither table (the planner refuses such a config before
        anything is fitted; this guards a derived folder written under another config).
    """
    table = entry.data
    if table not in derived:
        raise CrampstatsError(
            f"model {entry.id} needs the derived {table!r} dataset, which is absent"
        )
    frame = derived[table]
    analysis = config.get("analysis", {})
    wanted = [*analysis.get("covariates", []), *(analysis.get("random_intercepts") or [])]
    missing = [c for c in wanted if c not in frame.columns]
    if missing:
        periods = derived["periods"]
        unknown = [c for c in missing if c not in periods.columns]
        if unknown:
            raise ConfigError(
                f"analysis.covariates / analysis.random_intercepts: {unknown} not in the "
                f"derived data (subject columns: {', '.join(subject_columns(periods))})"
            )
        keys = [k for k in ("trial_id", "subject_id") if k in frame.columns]
        subjects = periods[[*keys, *missing]].drop_duplicates(keys)
        frame = frame.merge(subjects, on=keys, how="left", validate="many_to_one")
    return frame


def fit_model(
    entry: CountEntry,
    derived: Mapping[str, pd.DataFrame],
    config: Mapping[str, Any],
    *,
    cores: int | None = None,
    progress: bool = False,
    primary: bool = False,
) -> xr.DataTree:
    """Fit a count model to a trial's derived data.

    Parameters
    ----------
    entry
        The model's catalogue record.
    derived
        Derived datasets of the trial (``crampstats.derive.derive_all``).
    config
        Resolved trial configuration (seed, arms, analysis settings).
    cores
        Chains sampled in parallel (overrides ``analysis.sampler.cores``; the workflow passes
        the job's threads).
    progress
        Show the sampler's progress bar (for a terminal).
    primary
        The trial's primary model: with ``analysis.prior_sensitivity.enabled`` its refits under
        the named priors are stored in the fit
        (:func:`crampstats.fit.prior_sensitivity.add_prior_sensitivity`).

    Returns
    -------
    xarray.DataTree
        The fit with a ``log_likelihood`` group (and ``log_prior``, ``prior_refits`` for the
        prior sensitivity analysis); posterior attrs add the trial id and endpoint to the
        engine's (model id, seed, sampler settings, versions).
    """
    model = make_model(entry, config)
    frame = model_frame(entry, derived, config)
    idata = model.fit(
        frame,
        seed=entry.seed(config.get("seed", 0)),
        cores=cores,
        log_likelihood=True,
        progress=progress,
    )
    idata["posterior"].attrs.update(
        {
            f"{ATTR_PREFIX}endpoint": ENDPOINT,
            f"{ATTR_PREFIX}trial_id": str(config.get("trial_id", "")),
        }
    )
    return add_prior_sensitivity(
        idata, entry, model, frame, config, make_model, primary=primary, cores=cores,
        progress=progress,
    )  # fmt: skip


def fit_path(out: str | Path, name: str, endpoint: str = ENDPOINT) -> Path:
    """Path of a stored fit: ``<out>/fits/<endpoint>__<model>.nc``."""
    return Path(out) / "fits" / f"{endpoint}__{name}.nc"


def write_fit(idata: xr.DataTree, out: str | Path) -> Path:
    """Save a fit atomically as netCDF (:func:`crampstats.engine.save_fit`)."""
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    return save_fit(idata, out)


def fit_job(
    derived_dir: str | Path,
    entry: CountEntry,
    out: str | Path,
    *,
    cores: int | None = None,
    primary: bool = False,
) -> Path:
    """Fit a count model to a derived folder and save the fit (one workflow job).

    Parameters
    ----------
    derived_dir
        Output folder of ``crampstats derive``.
    entry
        The model's catalogue record.
    out
        Target ``.nc`` file.
    cores
        Chains in parallel (see :func:`fit_model`).
    primary
        The trial's primary model (see :func:`fit_model`).

    Returns
    -------
    pathlib.Path
        ``out``.
    """
    derived, config = read_derived(derived_dir)
    return write_fit(fit_model(entry, derived, config, cores=cores, primary=primary), out)
