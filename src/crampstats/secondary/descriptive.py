"""Descriptive secondary tables: cramp-potential frequency, cramp locations, safety incidence.

Each ``*_tables`` function has the signature the catalogue gives descriptive analyses,
``tables(derived, config, seed) -> {table name: frame}``; the ``*_table`` functions beneath them
are the pure computations.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from crampstats.config import ConfigError
from crampstats.models import safety
from crampstats.secondary.outcome_measures import outcome_measures_table


def _trial_id(config: Mapping[str, Any]) -> str:
    return str(config.get("trial_id", ""))


def cramp_potential_tables(
    derived: Mapping[str, pd.DataFrame], config: Mapping[str, Any], seed: int
) -> dict[str, pd.DataFrame]:
    """Return the ``cramp_potential`` table of a trial (:func:`cramp_potential_table`)."""
    return {"cramp_potential": cramp_potential_table(derived["emg"])}


def location_tables(
    derived: Mapping[str, pd.DataFrame], config: Mapping[str, Any], seed: int
) -> dict[str, pd.DataFrame]:
    """Return the ``locations`` table of a trial (:func:`location_table`)."""
    return {"locations": location_table(derived["diary"], derived["periods"])}


#: Settings of ``analysis.secondary.model_config.outcome_measures``.
OUTCOME_MEASURE_SETTINGS = ("method", "power", "alpha", "min_exposure_days")


def outcome_measures_tables(
    derived: Mapping[str, pd.DataFrame], config: Mapping[str, Any], seed: int
) -> dict[str, pd.DataFrame]:
    """Return the ``outcome_measures`` table: reliability, agreement, responsiveness, sample size.

    Raises
    ------
    ConfigError
        If ``analysis.secondary.model_config.outcome_measures`` has an unknown key.
    """
    analysis = config.get("analysis", {})
    sampler = {k: v for k, v in (analysis.get("sampler") or {}).items() if v is not None}
    secondary = analysis.get("secondary", {})
    settings = secondary.get("model_config", {}).get("outcome_measures", {})
    unknown = set(settings) - set(OUTCOME_MEASURE_SETTINGS)
    if unknown:
        key = "analysis.secondary.model_config.outcome_measures"
        raise ConfigError(f"{key}: unknown key(s) {sorted(unknown)}")
    table = outcome_measures_table(
        dict(derived),
        level=float(analysis.get("level", 0.95)),
        seed=seed,
        control_arm=config.get("control_arm", "placebo"),
        sampler_config=sampler,
        **settings,
    )
    table.insert(0, "trial_id", _trial_id(config))
    return {"outcome_measures": table}


def safety_tables(
    derived: Mapping[str, pd.DataFrame], config: Mapping[str, Any], seed: int
) -> dict[str, pd.DataFrame]:
    """Incidence by arm and category, the quinine signals, and the serious-event listing."""
    ae_incidence = derived["ae_incidence"]
    adverse_events = derived.get("adverse_events")
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

    Firing frequencies are right-skewed (log-normal in docs/calibration.md), so the centre is the
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
