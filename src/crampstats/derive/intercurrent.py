"""Intercurrent events of the primary endpoint and the plan's strategy for each (ICH E9(R1)).

Two events leave diary records behind them, so a strategy decides whether those records count:

- **treatment discontinuation**: subjects ``discontinuation_day`` (the last day on randomised
  treatment; the subject may stay on study and keep the diary). A treatment-period record whose
  first day is after it is *off treatment*.
- **rescue medication**: rows of the optional ``medications`` table with ``rescue`` true, from
  ``start_day`` to ``end_day`` (empty: to the end of the diary). A treatment-period record that
  covers any day of such a row is *on rescue*.

``hypothetical`` (the default: the effect had the event not happened) sets the count of those
records missing, so they leave the exposure like any undiarised day and the models treat them as
missing at random given arm and baseline. ``treatment_policy`` (the effect of being assigned the
arm, whatever happens after) keeps them as collected. Withdrawal leaves no records (the subject
stopped diarising), so its only strategy here is ``hypothetical``; ``composite`` needs an endpoint
that can score the event as a failure - the responder endpoint does (its withdrawal rule) - and
is refused for cramp frequency (:func:`crampstats.plan.check_plan`). Run-in and washout records
are never affected. The strategies apply to the count datasets of the primary endpoint
(``periods``, ``weekly``, ``crossover``); the secondary endpoints keep every completed record and
their own rules (docs/analysis-plan.md, "Intercurrent events").

Pure functions over data frames.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from crampstats.plan import parse_plan

__all__ = ["EVENT_FLAGS", "apply_strategies", "event_summary", "flag_records"]

#: Intercurrent event -> the diary flag it sets (:func:`flag_records`).
EVENT_FLAGS = {"treatment_discontinuation": "off_treatment", "rescue_medication": "on_rescue"}
NON_TREATMENT_PERIODS = ("run-in", "washout")


def flag_records(tables: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """Return the diary with boolean ``off_treatment`` and ``on_rescue`` columns.

    Parameters
    ----------
    tables
        Validated contract tables: ``subjects`` and ``diary``; ``medications`` when present.

    Returns
    -------
    pandas.DataFrame
        A copy of the diary; both flags false for run-in and washout records, and where the
        data carry no such event.
    """
    diary = tables["diary"].copy()
    treated = ~diary["period"].isin(NON_TREATMENT_PERIODS).to_numpy(bool)
    first = diary["study_day"].to_numpy("int64")
    last = first + diary["days"].to_numpy("int64") - 1
    subjects = tables["subjects"]
    off = np.zeros(len(diary), dtype=bool)
    if "discontinuation_day" in subjects:
        stop = diary["subject_id"].map(subjects.set_index("subject_id")["discontinuation_day"])
        stop = stop.astype("Float64").to_numpy("float64", na_value=np.inf)
        off = first > stop
    on_rescue = np.zeros(len(diary), dtype=bool)
    meds = tables.get("medications")
    if meds is not None and len(meds):
        rescue = meds.loc[meds["rescue"].fillna(False).astype(bool), ["subject_id", "start_day",
                                                                     "end_day"]]
        records = pd.DataFrame({"subject_id": diary["subject_id"].to_numpy(object),
                                "record": np.arange(len(diary)), "first": first, "last": last})
        pairs = records.merge(rescue.astype({"subject_id": object}), on="subject_id")
        end = pairs["end_day"].astype("Float64").to_numpy("float64", na_value=np.inf)
        hit = (pairs["last"].to_numpy() >= pairs["start_day"].to_numpy("int64")) & (
            pairs["first"].to_numpy() <= end)
        on_rescue[pairs["record"].to_numpy()[hit]] = True
    diary["off_treatment"] = off & treated
    diary["on_rescue"] = on_rescue & treated
    return diary


def _strategies(config: Mapping[str, Any]) -> dict[str, str]:
    return parse_plan(config).intercurrent_events


def apply_strategies(flagged: pd.DataFrame, config: Mapping[str, Any]) -> pd.DataFrame:
    """Return the diary the primary endpoint is analysed on, under the plan's strategies.

    Parameters
    ----------
    flagged
        The output of :func:`flag_records`.
    config
        Resolved trial configuration (``analysis.plan.intercurrent_events``).

    Returns
    -------
    pandas.DataFrame
        The diary without the flag columns; ``cramp_count`` set missing on the records that a
        ``hypothetical`` strategy excludes.
    """
    strategies = _strategies(config)
    exclude = np.zeros(len(flagged), dtype=bool)
    for event, flag in EVENT_FLAGS.items():
        if strategies.get(event, "hypothetical") == "hypothetical":
            exclude |= flagged[flag].to_numpy(bool)
    diary = flagged.drop(columns=list(EVENT_FLAGS.values()))
    diary["cramp_count"] = diary["cramp_count"].mask(exclude)
    return diary


def event_summary(
    flagged: pd.DataFrame, subjects: pd.DataFrame, config: Mapping[str, Any]
) -> pd.DataFrame:
    """Per arm and event: subjects with the event, diarised days it touches, how they count.

    Parameters
    ----------
    flagged
        The output of :func:`flag_records`.
    subjects
        Validated subjects table (``arm`` for parallel designs; crossover designs report by
        the treatment of the period).
    config
        Resolved trial configuration.

    Returns
    -------
    pandas.DataFrame
        ``event, strategy, arm, subjects, records, diarised_days, used`` - one row per event and
        arm with at least one subject (``used``: whether those records enter the analysis).
    """
    strategies = _strategies(config)
    done = flagged[flagged["cramp_count"].notna()]
    if "arm" in subjects and subjects["arm"].notna().any():
        arm = done["subject_id"].map(subjects.set_index("subject_id")["arm"])
    else:
        arm = done["treatment"]
    rows = []
    for event, flag in EVENT_FLAGS.items():
        hit = done[flag].to_numpy(bool)
        if not hit.any():
            continue
        strategy = strategies.get(event, "hypothetical")
        part = pd.DataFrame({"arm": arm[hit].astype(str).to_numpy(),
                             "subject_id": done.loc[hit, "subject_id"].to_numpy(),
                             "days": done.loc[hit, "days"].to_numpy("int64")})
        for a, g in part.groupby("arm", sort=True):
            rows.append({"event": event, "strategy": strategy, "arm": a,
                         "subjects": int(g["subject_id"].nunique()), "records": len(g),
                         "diarised_days": int(g["days"].sum()),
                         "used": strategy != "hypothetical"})
    cols = ["event", "strategy", "arm", "subjects", "records", "diarised_days", "used"]
    return pd.DataFrame(rows, columns=cols)
