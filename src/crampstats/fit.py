"""Fit the cramp-frequency models a trial's configuration names: model choice, data, seeds.

One function per step so that the Snakemake workflow (one job per model) and
``crampstats analyze`` (all models in one process) share them:

- :func:`plan_models`: which models to fit, from config and design;
- :func:`make_model`: the model object with the trial's arms, covariates and prior overrides;
- :func:`model_frame`: the derived dataset a model reads (covariates joined on);
- :func:`model_seed`: the model's integer seed, spawned from the trial's root seed;
- :func:`fit_model`: sample it (compile-once engine) with the pointwise log-likelihood for LOO;
- :func:`fit_path`: where the fit is stored, ``fits/<endpoint>__<model>.nc``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from crampstats.engine import ATTR_PREFIX, CountModel
from crampstats.errors import CrampstatsError

#: Endpoint id of the count models (secondary endpoints come with their own modules).
ENDPOINT = "cramp_frequency"

#: Every catalogue model, in a fixed order: a model's seed is spawned by its position here, so
#: adding a model to a run never changes the seeds (and results) of the others.
CATALOGUE = ("nb_totals", "frailty_weekly", "nb_glmm", "zinb", "hurdle", "crossover", "multi_trial")

#: The derived dataset each model reads.
DATA_TABLE = {
    "nb_totals": "periods",
    "frailty_weekly": "weekly",
    "nb_glmm": "weekly",
    "zinb": "weekly",
    "hurdle": "weekly",
    "crossover": "crossover",
    "multi_trial": "periods",
}

PARALLEL_DEFAULT = ("nb_totals", "frailty_weekly")
WITHIN_SUBJECT_DEFAULT = ("crossover",)


def n_trials(derived: Mapping[str, pd.DataFrame]) -> int:
    """Count the distinct ``trial_id`` values of the derived ``periods`` table."""
    periods = derived["periods"]
    return int(periods["trial_id"].nunique()) if "trial_id" in periods.columns else 1


def plan_models(config: Mapping[str, Any], derived: Mapping[str, pd.DataFrame]) -> list[str]:
    """Return the models to fit, primary first.

    Parameters
    ----------
    config
        Resolved trial configuration (``design`` and ``analysis.models``).
    derived
        The derived datasets (to see whether several trials are present).

    Returns
    -------
    list of str
        ``analysis.models`` when set; otherwise ``nb_totals`` and ``frailty_weekly`` for a
        parallel design, ``crossover`` for a crossover or N-of-1 design, plus ``multi_trial``
        when the data hold several trials.

    Raises
    ------
    CrampstatsError
        If a named model cannot analyse this design.
    """
    design = config.get("design", "parallel")
    listed = config.get("analysis", {}).get("models")
    if listed:
        within = design in ("crossover", "nof1")
        wrong = [m for m in listed if (m == "crossover") != within]
        if wrong:
            raise CrampstatsError(
                f"analysis.models: {wrong} cannot analyse a {design} design "
                f"({'only crossover can' if within else 'crossover needs a crossover or N-of-1'})"
            )
        return list(listed)
    if design in ("crossover", "nof1"):
        return list(WITHIN_SUBJECT_DEFAULT)
    plan = list(PARALLEL_DEFAULT)
    if n_trials(derived) > 1:
        plan.append("multi_trial")
    return plan


def make_model(name: str, config: Mapping[str, Any]) -> CountModel:
    """Instantiate model ``name`` for a trial: arms, control, covariates, priors, sampler.

    Parameters
    ----------
    name
        Catalogue id.
    config
        Resolved trial configuration.

    Returns
    -------
    CountModel
        The model object; its id (hash of this config) is stored with the fit.
    """
    from crampstats.models import get_model

    analysis = config.get("analysis", {})
    model_config: dict[str, Any] = {"control_arm": config.get("control_arm", "placebo")}
    if config.get("arms"):
        model_config["arms"] = list(config["arms"])
    if analysis.get("covariates"):
        model_config["covariates"] = list(analysis["covariates"])
    model_config["missing_baseline"] = analysis.get("missing_baseline", "error")
    model_config.update(analysis.get("model_config", {}).get(name, {}))
    try:
        # unset (null) sampler settings keep the model's own defaults
        sampler = {k: v for k, v in (analysis.get("sampler") or {}).items() if v is not None}
        return get_model(name, model_config, sampler or None)
    except (KeyError, ValueError) as exc:
        raise CrampstatsError(f"analysis.model_config.{name}: {exc}") from None


def model_frame(
    name: str, derived: Mapping[str, pd.DataFrame], config: Mapping[str, Any]
) -> pd.DataFrame:
    """Return the derived dataset model ``name`` reads, with subject covariates joined on.

    Weekly and crossover tables carry no subject characteristics; the covariates named in
    ``analysis.covariates`` are joined from ``periods`` (one value per subject).
    """
    table = DATA_TABLE[name]
    if table not in derived:
        raise CrampstatsError(f"model {name} needs the derived {table!r} dataset, which is absent")
    frame = derived[table]
    covariates = list(config.get("analysis", {}).get("covariates", []))
    missing = [c for c in covariates if c not in frame.columns]
    if missing:
        keys = [k for k in ("trial_id", "subject_id") if k in frame.columns]
        subjects = derived["periods"][[*keys, *missing]].drop_duplicates(keys)
        frame = frame.merge(subjects, on=keys, how="left", validate="many_to_one")
    return frame


def model_seed(root: int, name: str) -> int:
    """Integer seed of model ``name``: child ``CATALOGUE.index(name)`` of ``SeedSequence(root)``."""
    child = np.random.SeedSequence(int(root)).spawn(len(CATALOGUE))[CATALOGUE.index(name)]
    return int(child.generate_state(1, dtype=np.uint32)[0])


def fit_model(
    name: str,
    derived: Mapping[str, pd.DataFrame],
    config: Mapping[str, Any],
    *,
    cores: int | None = None,
    progress: bool = False,
) -> xr.DataTree:
    """Fit model ``name`` to a trial's derived data.

    Parameters
    ----------
    name
        Catalogue id.
    derived
        Derived datasets of the trial (``crampstats.derive.derive_all``).
    config
        Resolved trial configuration (seed, arms, analysis settings).
    cores
        Chains sampled in parallel (overrides ``analysis.sampler.cores``; the workflow passes
        the job's threads).
    progress
        Show the sampler's progress bar (for a terminal).

    Returns
    -------
    xarray.DataTree
        The fit with a ``log_likelihood`` group; posterior attrs add the trial id and endpoint
        to the engine's (model id, seed, sampler settings, versions).
    """
    model = make_model(name, config)
    frame = model_frame(name, derived, config)
    idata = model.fit(
        frame,
        seed=model_seed(config.get("seed", 0), name),
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
    return idata


def fit_path(out: str | Path, name: str, endpoint: str = ENDPOINT) -> Path:
    """Path of a stored fit: ``<out>/fits/<endpoint>__<model>.nc``."""
    return Path(out) / "fits" / f"{endpoint}__{name}.nc"


def trial_id_of(config: Mapping[str, Any], periods: pd.DataFrame, data_dir: str | Path) -> str:
    """Trial id for the tables: config ``trial_id``, else the data's only one, else the folder."""
    if config.get("trial_id"):
        return str(config["trial_id"])
    ids = periods["trial_id"].dropna().astype(str).unique() if "trial_id" in periods else []
    return str(ids[0]) if len(ids) == 1 else Path(data_dir).resolve().name


def read_derived(derived_dir: str | Path) -> tuple[dict[str, pd.DataFrame], dict[str, Any]]:
    """Read a folder written by ``crampstats derive``: the datasets and the resolved config.

    Returns
    -------
    derived : dict
        Dataset name -> data frame.
    config : dict
        The trial configuration recorded at validation (``provenance.json``), with ``trial_id``.
    """
    import json

    derived_dir = Path(derived_dir)
    record = derived_dir / "provenance.json"
    if not record.is_file():
        raise CrampstatsError(f"{derived_dir}: not a derived folder (no provenance.json)")
    derived = {p.stem: pd.read_parquet(p) for p in sorted(derived_dir.glob("*.parquet"))}
    from crampstats.config import check

    # defaults filled again: a folder derived by an older version may lack newer settings
    config = check(json.loads(record.read_text(encoding="utf-8"))["config"], "trial", str(record))
    config["trial_id"] = trial_id_of(config, derived["periods"], derived_dir.parent)
    return derived, config


def fit_to_file(
    derived_dir: str | Path, name: str, out: str | Path, *, cores: int | None = None
) -> Path:
    """Fit model ``name`` to a derived folder and save the fit atomically (netCDF).

    Parameters
    ----------
    derived_dir
        Output folder of ``crampstats derive``.
    name
        Catalogue id.
    out
        Target ``.nc`` file.
    cores
        Chains in parallel (see :func:`fit_model`).

    Returns
    -------
    pathlib.Path
        ``out``.
    """
    from crampstats.engine import save_fit

    derived, config = read_derived(derived_dir)
    idata = fit_model(name, derived, config, cores=cores)
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    return save_fit(idata, out)
