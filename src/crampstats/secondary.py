"""Secondary endpoints: which run, one endpoint's analysis, and the tables they make together.

Each endpoint of issue 7 is analysed by its own module (``crampstats.models.<endpoint>`` for
the Bayesian models and their statsmodels twins, :mod:`crampstats.outcome_measures` for the
measurement properties); this module plans them, runs one (:func:`run_endpoint`, one workflow
job) and gathers their tables (:func:`combine`, the compare step):

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

import importlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from crampstats.engine import ATTR_PREFIX, BayesModel, diagnose
from crampstats.errors import CrampstatsError

#: Endpoints with a Bayesian model and a twin: (module, model class, derived datasets needed).
MODELS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "ctf": ("crampstats.models.ctf", "CTFModel", ("emg",)),
    "afterdischarge": ("crampstats.models.afterdischarge", "AfterdischargeModel", ("emg",)),
    "intensity": ("crampstats.models.intensity", "IntensityModel", ("diary", "periods")),
    "responder": ("crampstats.models.responder", "ResponderModel", ("periods",)),
    "safety": ("crampstats.models.safety", "SafetyModel", ("ae_incidence",)),
}
#: Descriptive endpoints and the datasets they need.
DESCRIPTIVE: dict[str, tuple[str, ...]] = {
    "cramp_potential": ("emg",),
    "location": ("diary",),
    "outcome_measures": ("weekly", "periods"),
}
#: Every secondary endpoint in a fixed order: the order of the tables, and of the seeds.
ENDPOINTS = (
    "ctf",
    "afterdischarge",
    "cramp_potential",
    "intensity",
    "responder",
    "safety",
    "location",
    "outcome_measures",
)
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
#: Seeds of secondary fits are spawned after the count models' (crampstats.fit.CATALOGUE).
SEED_OFFSET = 100


@dataclass
class EndpointResult:
    """One endpoint's analysis.

    Attributes
    ----------
    endpoint : str
        Endpoint id (:data:`ENDPOINTS`).
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


def _parallel(config: Mapping[str, Any]) -> bool:
    return config.get("design", "parallel") == "parallel"


def plan_endpoints(config: Mapping[str, Any], derived: Mapping[str, pd.DataFrame]) -> list[str]:
    """Return the secondary endpoints to analyse, in :data:`ENDPOINTS` order.

    ``analysis.secondary.endpoints`` (all when null) restricted to those whose data exist; the
    models (and the outcome-measure comparison of arms) need a parallel design. An endpoint named
    explicitly in config whose data are absent is refused rather than skipped.

    Raises
    ------
    CrampstatsError
        If a listed endpoint cannot run on these data.
    """
    listed = _settings(config).get("endpoints")
    wanted = list(ENDPOINTS) if listed is None else [e for e in ENDPOINTS if e in listed]
    plan, missing = [], []
    for endpoint in wanted:
        needs = MODELS[endpoint][2] if endpoint in MODELS else DESCRIPTIVE[endpoint]
        absent = [d for d in needs if d not in derived or derived[d].empty]
        if endpoint in MODELS and not _parallel(config):
            absent.append("a parallel design")
        if endpoint == "intensity" and "diary" in derived and "intensity" not in derived["diary"]:
            absent.append("diary intensity")
        if endpoint == "location" and "diary" in derived and "location" not in derived["diary"]:
            absent.append("diary location")
        if not absent:
            plan.append(endpoint)
        elif listed is not None:
            missing.append(f"{endpoint} (needs {', '.join(absent)})")
    if missing:
        raise CrampstatsError(
            "analysis.secondary.endpoints: cannot analyse " + "; ".join(missing) + " on these data"
        )
    return plan


def endpoint_seed(root: int, endpoint: str) -> int:
    """Integer seed of a secondary endpoint, spawned from the trial's root seed.

    Child ``SEED_OFFSET + ENDPOINTS.index(endpoint)`` of ``SeedSequence(root)``: independent of the
    count models' seeds and of which other endpoints run.
    """
    child = np.random.SeedSequence(int(root), spawn_key=(SEED_OFFSET + ENDPOINTS.index(endpoint),))
    return int(child.generate_state(1, dtype=np.uint32)[0])


def make_endpoint_model(endpoint: str, config: Mapping[str, Any]) -> BayesModel:
    """Instantiate the endpoint's model with the trial's arms, priors and sampler settings."""
    module, cls_name, _ = MODELS[endpoint]
    cls = getattr(importlib.import_module(module), cls_name)
    analysis = config.get("analysis", {})
    model_config: dict[str, Any] = {"control_arm": config.get("control_arm", "placebo")}
    if config.get("arms") and "arms" in cls.default_model_config:
        model_config["arms"] = list(config["arms"])
    model_config.update(_settings(config).get("model_config", {}).get(endpoint, {}))
    sampler = {k: v for k, v in (analysis.get("sampler") or {}).items() if v is not None}
    try:
        return cls(model_config, sampler or None)
    except ValueError as exc:
        raise CrampstatsError(f"analysis.secondary.model_config.{endpoint}: {exc}") from None


def _frame(
    endpoint: str, derived: Mapping[str, pd.DataFrame], config: Mapping[str, Any]
) -> pd.DataFrame:
    module = importlib.import_module(MODELS[endpoint][0])
    build = getattr(module, f"{endpoint}_frame")
    if endpoint == "responder":
        settings = _settings(config)
        return build(
            derived,
            threshold=settings.get("responder_threshold", 0.5),
            missing=settings.get("responder_missing", "nonresponder"),
        )
    return build(derived)


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
    endpoint: str,
    derived: Mapping[str, pd.DataFrame],
    config: Mapping[str, Any],
    *,
    cores: int | None = None,
    progress: bool = False,
) -> EndpointResult:
    """Analyse one secondary endpoint of a trial.

    Parameters
    ----------
    endpoint
        Endpoint id (:data:`ENDPOINTS`).
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
    trial_id = str(config.get("trial_id", ""))
    level = float(config.get("analysis", {}).get("level", 0.95))
    seed = endpoint_seed(config.get("seed", 0), endpoint)
    if endpoint == "cramp_potential":
        return EndpointResult(endpoint, {"cramp_potential": cramp_potential_table(derived["emg"])})
    if endpoint == "location":
        table = location_table(derived["diary"], derived["periods"])
        return EndpointResult(endpoint, {"locations": table})
    if endpoint == "outcome_measures":
        from crampstats.outcome_measures import outcome_measures_table

        analysis = config.get("analysis", {})
        sampler = {k: v for k, v in (analysis.get("sampler") or {}).items() if v is not None}
        settings = _settings(config).get("model_config", {}).get("outcome_measures", {})
        unknown = set(settings) - {"method", "power", "alpha", "min_exposure_days"}
        if unknown:
            key = "analysis.secondary.model_config.outcome_measures"
            raise CrampstatsError(f"{key}: unknown key(s) {sorted(unknown)}")
        table = outcome_measures_table(
            dict(derived),
            level=level,
            seed=seed,
            control_arm=config.get("control_arm", "placebo"),
            sampler_config=sampler,
            **settings,
        )
        table.insert(0, "trial_id", trial_id)
        return EndpointResult(endpoint, {"outcome_measures": table})

    model = make_endpoint_model(endpoint, config)
    frame = _frame(endpoint, derived, config)
    idata = model.fit(frame, seed=seed, cores=cores, log_likelihood=True, progress=progress)
    idata["posterior"].attrs.update(
        {f"{ATTR_PREFIX}endpoint": endpoint, f"{ATTR_PREFIX}trial_id": trial_id}
    )
    tables = summarize_endpoint(endpoint, idata, frame, config, model)
    if endpoint == "safety":
        tables.update(safety_tables(derived["ae_incidence"], config, derived.get("adverse_events")))
    return EndpointResult(endpoint, tables, idata)


def summarize_endpoint(
    endpoint: str,
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
    import inspect

    module = importlib.import_module(MODELS[endpoint][0])
    model = model if model is not None else make_endpoint_model(endpoint, config)
    analysis = config.get("analysis", {})
    level = float(analysis.get("level", 0.95))
    trial_id = str(config.get("trial_id", ""))
    diag = diagnose(idata, analysis.get("diagnostics"))
    effects = getattr(module, f"{endpoint}_effects")(idata, level=level)
    rows = [_effect_rows(effects, trial_id, endpoint, endpoint, diag["status"])]
    if analysis.get("twins", True):
        twin_fn = getattr(module, f"{endpoint}_twin")
        accepted = set(inspect.signature(twin_fn).parameters)
        settings = {k: v for k, v in model.model_config.items() if k in accepted}
        twin = twin_fn(frame, level=level, **settings)
        converged = twin.attrs.get("converged", True)
        status = "ok" if bool(np.all(converged)) else "failed"
        rows.append(_effect_rows(twin, trial_id, endpoint, f"{endpoint}_twin", status))
    diagnostics = pd.DataFrame(
        [
            {
                "trial_id": trial_id,
                "endpoint": endpoint,
                "model": endpoint,
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


def safety_tables(
    ae_incidence: pd.DataFrame,
    config: Mapping[str, Any],
    adverse_events: pd.DataFrame | None = None,
) -> dict[str, pd.DataFrame]:
    """Incidence by arm and category, the quinine signals, and the serious-event listing."""
    from crampstats.models import safety

    trial_id = str(config.get("trial_id", ""))
    tables = {
        "safety": safety.safety_table(ae_incidence),
        "safety_signals": safety.quinine_signals(ae_incidence, adverse_events),
    }
    if adverse_events is not None:
        tables["serious_events"] = safety.serious_events(adverse_events, ae_incidence)
    for table in tables.values():
        table.insert(0, "trial_id", trial_id)
    return tables


def _group_labels(frame: pd.DataFrame) -> pd.Series:
    """Arm of each row; in crossover and N-of-1 data (no arm) the treatment taken, else "all"."""
    labels = pd.Series("all", index=frame.index, dtype="string")
    for column in ("treatment", "arm"):  # the arm wins where both exist
        if column in frame:
            labels = frame[column].astype("string").fillna(labels)
    return labels


def cramp_potential_table(emg: pd.DataFrame) -> pd.DataFrame:
    """Cramp-potential firing frequency (Hz) by arm (or "all" without arms) and visit.

    Firing frequencies are right-skewed (log-normal in calibration.md), so the centre is the
    median and the geometric mean, the spread the quartiles and the SD of the log.

    Returns
    -------
    pandas.DataFrame
        ``arm, visit, n, median_hz, q1_hz, q3_hz, geometric_mean_hz, sd_log``; visits in
        time order (by mean study day).
    """
    hz = emg.dropna(subset=["cramp_potential_hz"]).copy()
    hz["arm"] = _group_labels(hz)
    hz["cramp_potential_hz"] = hz["cramp_potential_hz"].astype(float)
    hz = hz[hz["cramp_potential_hz"] > 0]
    log_hz = np.log(hz["cramp_potential_hz"])
    g = hz.assign(log_hz=log_hz).groupby(["arm", "visit"], observed=True)
    out = g.agg(
        n=("cramp_potential_hz", "size"),
        median_hz=("cramp_potential_hz", "median"),
        q1_hz=("cramp_potential_hz", lambda v: v.quantile(0.25)),
        q3_hz=("cramp_potential_hz", lambda v: v.quantile(0.75)),
        geometric_mean_hz=("log_hz", lambda v: float(np.exp(v.mean()))),
        sd_log=("log_hz", lambda v: float(v.std(ddof=1)) if len(v) > 1 else np.nan),
        day=("study_day", "mean"),
    ).reset_index()
    out = out.sort_values(["arm", "day", "visit"]).drop(columns="day").reset_index(drop=True)
    return out


def location_table(diary: pd.DataFrame, periods: pd.DataFrame) -> pd.DataFrame:
    """Where cramps happen, by arm (or treatment taken) and period: cramp days and cramps.

    Returns
    -------
    pandas.DataFrame
        ``arm, period, location, subjects, cramp_days, cramps, share_of_cramp_days`` (share
        among the arm-period's cramp days with a recorded location).
    """
    days = diary[(diary["cramp_count"] > 0) & diary["location"].notna()].copy()
    if "arm" not in days and "arm" in periods:
        days = days.merge(periods[["subject_id", "arm"]].drop_duplicates(), on="subject_id")
    days["arm"] = _group_labels(days)
    days["location"] = days["location"].astype(str)
    g = days.groupby(["arm", "period", "location"], observed=True)
    out = g.agg(
        subjects=("subject_id", "nunique"),
        cramp_days=("cramp_count", "size"),
        cramps=("cramp_count", "sum"),
    ).reset_index()
    total = out.groupby(["arm", "period"])["cramp_days"].transform("sum")
    out["share_of_cramp_days"] = out["cramp_days"] / total
    out["cramps"] = out["cramps"].astype("int64")
    return out.sort_values(["arm", "period", "location"]).reset_index(drop=True)


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


def write_endpoint(result: EndpointResult, out: str | Path) -> Path:
    """Write an endpoint's tables (CSV) and fit (netCDF) into folder ``out``, atomically."""
    from crampstats.analyze import write_tables
    from crampstats.engine import save_fit
    from crampstats.outputs import atomic_dir

    with atomic_dir(out) as tmp:
        write_tables(result.tables, tmp)
        if result.idata is not None:
            save_fit(result.idata, tmp / f"{result.endpoint}.nc")
    return Path(out)


def read_endpoint(folder: str | Path) -> dict[str, pd.DataFrame]:
    """Read back the tables :func:`write_endpoint` wrote."""
    return {p.stem: pd.read_csv(p) for p in sorted(Path(folder).glob("*.csv"))}


def endpoint_to_folder(
    derived_dir: str | Path, endpoint: str, out: str | Path, *, cores: int | None = None
) -> EndpointResult | None:
    """Analyse one endpoint of a derived folder and write its folder (one workflow job).

    An endpoint whose data are absent (or that the design does not support) writes an empty
    folder with a ``SKIPPED`` note when the config leaves the choice to the data; one named in
    ``analysis.secondary.endpoints`` is refused instead (:func:`plan_endpoints`).

    Returns
    -------
    EndpointResult or None
        The result, or ``None`` when skipped.
    """
    from crampstats.fit import read_derived
    from crampstats.outputs import atomic_dir

    derived, config = read_derived(derived_dir)
    if endpoint not in plan_endpoints(config, derived):
        with atomic_dir(out) as tmp:
            (tmp / "SKIPPED").write_text(
                f"{endpoint}: the data (or the {config.get('design', 'parallel')} design) do not "
                "support this endpoint\n",
                encoding="utf-8",
            )
        return None
    result = run_endpoint(endpoint, derived, config, cores=cores)
    write_endpoint(result, out)
    return result
