"""Data selection for test-retest reliability: usable run-in weeks, baseline CTF pairs."""

from __future__ import annotations

import numpy as np
import pandas as pd

from crampstats.models._common import (
    ModelDataError,
    as_float,
    require_columns,
    subject_keys,
)
from crampstats.secondary.outcome_measures.names import BASELINE_VISITS, WEEK_DAYS

__all__ = ["as_bool", "ctf_baseline_pairs", "runin_weeks"]


def runin_weeks(
    weekly: pd.DataFrame, min_exposure_days: int = 4
) -> tuple[pd.DataFrame, dict[str, int]]:
    """Run-in weeks usable as repeated measurements of the weekly cramp rate.

    Parameters
    ----------
    weekly
        Derived ``weekly`` rows (``crampstats.derive.subject_weeks``).
    min_exposure_days
        A week enters when at least this many of its days were diarised.

    Returns
    -------
    rows : pandas.DataFrame
        ``subject, week, count, exposure_days, rate_per_week`` sorted by subject and week, for
        subjects with at least two usable weeks.
    info : dict
        ``weeks_runin`` (run-in subject-weeks), ``weeks_short`` (dropped for exposure),
        ``subjects_runin``, ``subjects_single`` (dropped: fewer than two usable weeks),
        ``subjects`` and ``weeks`` kept.

    Raises
    ------
    ModelDataError
        If fewer than two subjects have two usable run-in weeks.
    """
    require_columns(weekly, ["subject_id", "period", "week", "count", "exposure_days"], "weekly")
    runin = weekly.loc[
        (weekly["period"].astype(str) == "run-in") & (weekly["week"].astype("int64") <= 0)
    ]
    frame = pd.DataFrame(
        {
            "subject": subject_keys(runin).to_numpy(),
            "week": runin["week"].astype("int64").to_numpy(),
            "count": as_float(runin["count"]),
            "exposure_days": as_float(runin["exposure_days"]),
        }
    )
    enough = frame["exposure_days"] >= min_exposure_days
    usable = frame.loc[enough]
    n_weeks = usable.groupby("subject")["week"].transform("size")
    kept = usable.loc[n_weeks >= 2].sort_values(["subject", "week"]).reset_index(drop=True)
    kept["count"] = kept["count"].astype(np.int64)
    kept["rate_per_week"] = WEEK_DAYS * kept["count"] / kept["exposure_days"]
    info = {
        "weeks_runin": len(frame),
        "weeks_short": int((~enough).sum()),
        "subjects_runin": int(frame["subject"].nunique()),
        "subjects_single": int(usable["subject"].nunique() - kept["subject"].nunique()),
        "subjects": int(kept["subject"].nunique()),
        "weeks": len(kept),
    }
    if info["subjects"] < 2:
        raise ModelDataError(
            f"test-retest reliability of cramp frequency needs two run-in weeks with >= "
            f"{min_exposure_days} diary days per subject; {info['subjects']} subject(s) of "
            f"{info['subjects_runin']} with run-in data have them"
        )
    return kept, info


def as_bool(values: pd.Series) -> np.ndarray:
    """Boolean array of a (nullable) flag column; missing counts as ``False``."""
    return values.astype("boolean").fillna(False).to_numpy(dtype=bool)


def ctf_baseline_pairs(emg: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, int]]:
    """Baseline CTF measurements as log-scale intervals, subjects with both baseline visits.

    Parameters
    ----------
    emg
        Derived ``emg`` visits (``crampstats.derive.emg_visits``) with ``ctf_lower`` and
        ``ctf_upper``.

    Returns
    -------
    rows : pandas.DataFrame
        ``subject, visit, log_lower, log_upper, censored`` (``log_lower = -inf`` at the first
        protocol step, ``log_upper = inf`` when right-censored), two rows per subject.
    info : dict
        ``subjects``, ``censored`` (measurements right-censored), ``subjects_single`` (with
        only one baseline CTF, dropped).

    Raises
    ------
    ModelDataError
        If fewer than two subjects have two baseline CTF measurements.
    """
    require_columns(emg, ["subject_id", "visit", "ctf_lower", "ctf_upper"], "emg")
    base = emg.loc[emg["visit"].astype(str).isin(BASELINE_VISITS)]
    lower, upper = as_float(base["ctf_lower"]), as_float(base["ctf_upper"])
    ok = ~np.isnan(lower) & ~np.isnan(upper)
    base = base.loc[ok]
    with np.errstate(divide="ignore"):
        frame = pd.DataFrame(
            {
                "subject": subject_keys(base).to_numpy(),
                "visit": base["visit"].astype(str).to_numpy(),
                "log_lower": np.log(lower[ok]),
                "log_upper": np.log(upper[ok]),
            }
        )
    frame["censored"] = np.isinf(frame["log_upper"])
    n_visits = frame.groupby("subject")["visit"].transform("nunique")
    kept = frame.loc[n_visits == 2].sort_values(["subject", "visit"]).reset_index(drop=True)
    info = {
        "subjects": int(kept["subject"].nunique()),
        "censored": int(kept["censored"].sum()),
        "subjects_single": int(frame["subject"].nunique() - kept["subject"].nunique()),
    }
    if info["subjects"] < 2:
        raise ModelDataError(
            "test-retest reliability of the CTF needs two baseline measurements "
            f"({' and '.join(BASELINE_VISITS)}); {info['subjects']} subject(s) have both"
        )
    return kept, info
