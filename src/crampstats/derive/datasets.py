"""Analysis datasets derived from validated contract tables.

Pure functions over data frames: no I/O except :func:`write_derived`. Outputs are sorted by their
keys, so they do not depend on the order of input rows. Missing diary records (``cramp_count`` NA)
reduce exposure; they are never counted as zero cramps.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from crampstats.config import check
from crampstats.derive.intercurrent import apply_strategies, event_summary, flag_records
from crampstats.errors import CrampstatsError
from crampstats.outputs import atomic_dir, provenance, to_json, write_parquet
from crampstats.plan import parse_plan
from crampstats.validate.contract import DERIVED_COLUMNS, RESERVED_SUBJECT_COLUMNS

if TYPE_CHECKING:
    from crampstats.validate import ValidatedTrial

#: The contract's subject covariates, carried into ``periods`` in this order.
COVARIATES = ("age", "sex", "etiology", "cramp_origin", "stratum")
#: Subject columns that are not covariates: identifiers, design, post-randomisation.
NOT_COVARIATES = (
    "trial_id", "subject_id", "arm", "sequence", "withdrawal_day", "discontinuation_day",
)
NON_TREATMENT_PERIODS = ("run-in", "washout")


def primary_diary(tables: dict[str, pd.DataFrame], config: Mapping[str, Any]) -> pd.DataFrame:
    """Return the diary the primary endpoint is analysed on.

    Records that an intercurrent event's ``hypothetical`` strategy excludes (off treatment, on
    rescue medication; :mod:`crampstats.derive.intercurrent`) have their count set missing.
    """
    return apply_strategies(flag_records(tables), config)


def _diarised(diary: pd.DataFrame) -> pd.DataFrame:
    """Return diary records with a completed count, with ``days`` as exposure."""
    done = diary[diary["cramp_count"].notna()].copy()
    done["cramp_count"] = done["cramp_count"].astype("int64")
    done["days"] = done["days"].astype("int64")
    return done


def _runin(diary: pd.DataFrame, subject_ids: pd.Series) -> pd.DataFrame:
    """Run-in count, days and ``log_baseline_rate`` per subject (NA rate without run-in days)."""
    done = _diarised(diary)
    runin = done[done["period"] == "run-in"].groupby("subject_id")[["cramp_count", "days"]].sum()
    runin = runin.reindex(pd.Index(subject_ids, name="subject_id"), fill_value=0)
    out = pd.DataFrame(
        {
            "subject_id": runin.index.astype("string"),
            "runin_count": runin["cramp_count"].to_numpy("int64"),
            "runin_days": runin["days"].to_numpy("int64"),
        }
    )
    with np.errstate(divide="ignore", invalid="ignore"):
        rate = np.log((out["runin_count"] + 0.5) / out["runin_days"].where(out["runin_days"] > 0))
    out["log_baseline_rate"] = pd.array(rate, dtype="Float64")
    return out


def subject_columns(frame: pd.DataFrame) -> list[str]:
    """Subject columns of ``frame`` that can be covariates: holding a value, not derived.

    Parameters
    ----------
    frame
        A subjects table (validated) or the derived ``periods`` dataset.

    Returns
    -------
    list of str
        The contract's covariates (``age``, ``sex``, ...) and the subjects table's extra
        columns (``bmi``, ``site``, ...), in table order, each with at least one value;
        identifiers, arm, sequence, withdrawal and the derived columns are left out.
    """
    skip = {*NOT_COVARIATES, *DERIVED_COLUMNS}
    return [c for c in frame.columns if c not in skip and frame[c].notna().any()]


def _subject_info(subjects: pd.DataFrame) -> pd.DataFrame:
    """Per-subject columns carried into ``periods``: ids, arm, covariates, extras, withdrawal.

    Extra subject columns (outside the contract, e.g. ``bmi`` or ``site``) follow the
    contract's, so that any of them can be a covariate or a random-intercept grouping.
    """
    cols = ["trial_id", "subject_id"] + [
        c for c in ("arm", "sequence", *COVARIATES, "withdrawal_day", "discontinuation_day")
        if c in subjects
    ]
    extras = [c for c in subjects.columns if c not in cols]
    clash = [c for c in extras if c in RESERVED_SUBJECT_COLUMNS]
    if clash:
        raise CrampstatsError(
            f"subjects table: column(s) {clash} clash with the names of the analysis datasets; "
            "rename them"
        )
    info = subjects[cols + extras].copy()
    info["withdrawn"] = (
        info["withdrawal_day"].notna() if "withdrawal_day" in info else False
    )
    return info


def _sum_by(done: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Sum counts and exposure days of diarised records over ``keys``."""
    g = done.groupby(keys, dropna=False)
    out = g.agg(count=("cramp_count", "sum"), exposure_days=("days", "sum"))
    out["n_records"] = g.size()
    return out.reset_index()


def subject_periods(tables: dict[str, pd.DataFrame], config: dict[str, Any]) -> pd.DataFrame:
    """One row per subject x analysis period, the input of the totals models.

    Parameters
    ----------
    tables
        Validated contract tables (``subjects`` and ``diary`` at least).
    config
        Resolved trial config; ``design`` decides the analysis periods.

    Returns
    -------
    pandas.DataFrame
        ``trial_id, subject_id, arm, period, count, exposure_days, runin_count, runin_days,
        log_baseline_rate``, the covariates present, ``withdrawal_day``, the subjects table's
        extra columns (typed by validation), ``withdrawn``. Parallel
        designs have one ``treatment`` row per randomised subject, zero exposure when the subject
        has no treatment diary; crossover and N-of-1 designs have one row per numbered period, with
        ``arm`` the treatment taken.
    """
    subjects, diary = tables["subjects"], primary_diary(tables, config)
    info = _subject_info(subjects)
    runin = _runin(diary, subjects["subject_id"])
    done = _diarised(diary)
    if config.get("design", "parallel") == "parallel":
        treated = done[~done["period"].isin(NON_TREATMENT_PERIODS)]
        sums = _sum_by(treated, ["subject_id"]).drop(columns="n_records")
        base = info[["subject_id"]].merge(sums, on="subject_id", how="left")
        base["period"] = "treatment"
        base[["count", "exposure_days"]] = base[["count", "exposure_days"]].fillna(0)
    else:
        base = crossover_periods(tables, config)[
            ["subject_id", "period", "treatment", "count", "exposure_days"]
        ].rename(columns={"treatment": "arm"})
        base["period"] = base["period"].astype("string")
        info = info.drop(columns=["arm"], errors="ignore")
    out = info.merge(base, on="subject_id").merge(runin, on="subject_id")
    out["count"] = out["count"].astype("int64")
    out["exposure_days"] = out["exposure_days"].astype("int64")
    first = ["trial_id", "subject_id", "arm", "period", "count", "exposure_days",
             "runin_count", "runin_days", "log_baseline_rate"]
    rest = [c for c in out.columns if c not in first]
    return out[first + rest].sort_values(["subject_id", "period"]).reset_index(drop=True)


def week_of(study_day: pd.Series) -> pd.Series:
    """Study week of a day: days 1-7 are week 1, 8-14 week 2; days -6..0 week 0, -13..-7 week -1."""
    return (study_day.astype("int64") - 1) // 7 + 1


def subject_weeks(tables: dict[str, pd.DataFrame], config: dict[str, Any]) -> pd.DataFrame:
    """One row per subject x study week with a diarised day, for longitudinal models.

    A record covering several days belongs to the week of its first day, so weekly diaries map one
    to one onto weeks. Weeks without any diarised day are omitted (they carry no information).

    Returns
    -------
    pandas.DataFrame
        ``trial_id, subject_id, arm, period, week, count, exposure_days, n_records,
        log_baseline_rate``; ``arm`` is the randomised arm, or the treatment taken in crossover
        and N-of-1 designs.
    """
    subjects, diary = tables["subjects"], primary_diary(tables, config)
    done = _diarised(diary)
    done["week"] = week_of(done["study_day"])
    keys = ["subject_id", "period", "week"]
    crossover = config.get("design", "parallel") != "parallel"
    if crossover:
        done["arm"] = done["treatment"].astype("string")
        keys.append("arm")
    out = _sum_by(done, keys)
    cols = ["trial_id", "subject_id"] + ([] if crossover else ["arm"])
    out = subjects[cols].merge(out, on="subject_id")
    runin = _runin(diary, subjects["subject_id"])[["subject_id", "log_baseline_rate"]]
    out = out.merge(runin, on="subject_id")
    out["week"] = out["week"].astype("int64")
    order = ["trial_id", "subject_id", "arm", "period", "week", "count", "exposure_days",
             "n_records", "log_baseline_rate"]
    return out[order].sort_values(["subject_id", "week", "period"]).reset_index(drop=True)


def crossover_periods(tables: dict[str, pd.DataFrame], config: dict[str, Any]) -> pd.DataFrame:
    """One row per subject x numbered period x treatment (crossover and N-of-1 designs).

    Returns
    -------
    pandas.DataFrame
        ``trial_id, subject_id, sequence, period`` (int), ``cycle`` (pairs of periods),
        ``treatment, previous_treatment`` (NA in period 1; for carry-over), ``count,
        exposure_days, log_baseline_rate``. Run-in and washout records are excluded.
    """
    subjects, diary = tables["subjects"], primary_diary(tables, config)
    done = _diarised(diary)
    numbered = done[~done["period"].isin(NON_TREATMENT_PERIODS)].copy()
    numbered["period"] = numbered["period"].astype("int64")
    sums = _sum_by(numbered, ["subject_id", "period", "treatment"]).drop(columns="n_records")
    # Periods with every record missing still belong to the schedule: keep them with exposure 0.
    schedule = diary[~diary["period"].isin(NON_TREATMENT_PERIODS)][
        ["subject_id", "period", "treatment"]
    ].drop_duplicates()
    schedule["period"] = schedule["period"].astype("int64")
    out = schedule.merge(sums, on=["subject_id", "period", "treatment"], how="left")
    out[["count", "exposure_days"]] = out[["count", "exposure_days"]].fillna(0).astype("int64")
    out = out.sort_values(["subject_id", "period"]).reset_index(drop=True)
    out["previous_treatment"] = out.groupby("subject_id")["treatment"].shift(1)
    out["cycle"] = (out["period"] - 1) // 2 + 1
    cols = ["trial_id", "subject_id"] + (["sequence"] if "sequence" in subjects else [])
    out = subjects[cols].merge(out, on="subject_id")
    runin = _runin(diary, subjects["subject_id"])[["subject_id", "log_baseline_rate"]]
    out = out.merge(runin, on="subject_id")
    order = [c for c in ("trial_id", "subject_id", "sequence", "period", "cycle", "treatment",
                         "previous_treatment", "count", "exposure_days", "log_baseline_rate")
             if c in out]
    return out[order].sort_values(["subject_id", "period"]).reset_index(drop=True)


def emg_visits(tables: dict[str, pd.DataFrame], config: dict[str, Any]) -> pd.DataFrame:
    """One row per subject x EMG visit, with censoring bounds and baseline values.

    A CTF recorded at protocol step ``s`` means the threshold lies in ``(s - step, s]`` (the first
    step: ``(0, s]``); a right-censored CTF lies in ``(max, inf)``. The baseline is the visit
    ``baseline``, or the geometric mean of ``baseline_1``/``baseline_2`` when two baseline
    measurements exist (censored if either is), with the worse after-discharge grade rounded.

    Returns
    -------
    pandas.DataFrame
        ``trial_id, subject_id, arm, visit, study_day, ctf_hz, ctf_censored, ctf_lower, ctf_upper,
        afterdischarge_grade, cramp_potential_hz, ctf_baseline_hz, ctf_baseline_censored,
        afterdischarge_baseline``.
    """
    emg = tables["emg"].copy()
    proto = config.get("ctf_protocol", {"start_hz": 4, "step_hz": 2, "max_hz": 40})
    for col, default in (("study_day", pd.NA), ("ctf_hz", np.nan), ("ctf_censored", False),
                         ("afterdischarge_grade", pd.NA), ("cramp_potential_hz", np.nan)):
        if col not in emg:
            emg[col] = default
    ctf = emg["ctf_hz"].astype("Float64")
    censored = emg["ctf_censored"].fillna(False).astype("boolean")
    lower = (ctf - proto["step_hz"]).where(ctf > proto["start_hz"], 0.0)
    emg["ctf_lower"] = lower.where(~censored, ctf).astype("Float64")
    emg["ctf_upper"] = ctf.where(~censored, np.inf).astype("Float64")
    base = emg[emg["visit"].astype("string").str.startswith("baseline")]
    log_ctf = np.log(base["ctf_hz"].astype("Float64"))
    baseline = (
        base.assign(log_ctf=log_ctf, cens=base["ctf_censored"].fillna(False).astype(bool),
                    grade=base["afterdischarge_grade"].astype("Float64"))
        .groupby("subject_id")
        .agg(log_ctf=("log_ctf", "mean"), ctf_baseline_censored=("cens", "max"),
             afterdischarge_baseline=("grade", "mean"))
        .reset_index()
    )
    baseline["ctf_baseline_hz"] = np.exp(baseline.pop("log_ctf")).astype("Float64")
    baseline["afterdischarge_baseline"] = baseline["afterdischarge_baseline"].round()
    baseline["ctf_baseline_censored"] = baseline["ctf_baseline_censored"].astype("boolean")
    subjects = tables["subjects"]
    arm_cols = ["trial_id", "subject_id"] + (["arm"] if "arm" in subjects else [])
    out = subjects[arm_cols].merge(emg, on="subject_id").merge(baseline, on="subject_id",
                                                               how="left")
    order = ["trial_id", "subject_id", "arm", "visit", "study_day", "ctf_hz", "ctf_censored",
             "ctf_lower", "ctf_upper", "afterdischarge_grade", "cramp_potential_hz",
             "ctf_baseline_hz", "ctf_baseline_censored", "afterdischarge_baseline"]
    out = out[[c for c in order if c in out]]
    return out.sort_values(["subject_id", "visit"]).reset_index(drop=True)


def ae_incidence(tables: dict[str, pd.DataFrame], config: dict[str, Any]) -> pd.DataFrame:
    """One row per randomised subject x adverse-event category seen in the trial, zero-filled.

    Returns
    -------
    pandas.DataFrame
        ``trial_id, subject_id, arm, category, n_events, any_event, any_serious``; every
        randomised subject appears under every category, so incidence denominators are right.
    """
    subjects, ae = tables["subjects"], tables["adverse_events"]
    serious = ae["serious"].fillna(False).astype(bool) if "serious" in ae else False
    events = (
        ae.assign(serious_=serious)
        .groupby(["subject_id", "category"])
        .agg(n_events=("term", "size"), any_serious=("serious_", "sum"))
    )
    grid = pd.MultiIndex.from_product(
        [subjects["subject_id"].sort_values().unique(), sorted(ae["category"].unique())],
        names=["subject_id", "category"],
    )
    events = events.reindex(grid, fill_value=0).reset_index()
    events["n_events"] = events["n_events"].astype("int64")
    events["any_event"] = events["n_events"] > 0
    events["any_serious"] = events["any_serious"] > 0
    cols = ["trial_id", "subject_id"] + (["arm"] if "arm" in subjects else [])
    out = subjects[cols].merge(events, on="subject_id")
    return out.sort_values(["subject_id", "category"]).reset_index(drop=True)


def diary_records(tables: dict[str, pd.DataFrame], config: dict[str, Any]) -> pd.DataFrame:
    """Completed diary records with their intensity and location, for the secondary endpoints.

    When the analysis plan's primary endpoint is intensity, its intercurrent-event strategies
    shape these records as they shape the count datasets for cramp frequency: the records a
    ``hypothetical`` strategy excludes (:func:`primary_diary`) are left out.

    Returns
    -------
    pandas.DataFrame
        ``trial_id, subject_id, arm, study_day, days, period, treatment, cramp_count`` and
        whichever of ``intensity, location`` the diary has; one row per completed record.
    """
    intensity_primary = parse_plan(config).endpoint == "intensity"
    done = _diarised(primary_diary(tables, config) if intensity_primary else tables["diary"])
    cols = ["subject_id", "study_day", "days", "period", "treatment", "cramp_count"]
    cols += [c for c in ("intensity", "location") if c in done]
    subjects = tables["subjects"]
    info = ["trial_id", "subject_id"] + (["arm"] if "arm" in subjects else [])
    out = subjects[info].merge(done[[c for c in cols if c in done]], on="subject_id")
    return out.sort_values(["subject_id", "study_day"]).reset_index(drop=True)


def adverse_event_listing(tables: dict[str, pd.DataFrame], config: dict[str, Any]) -> pd.DataFrame:
    """Every adverse event with the subject's trial and arm (serious-event listing, signals)."""
    subjects = tables["subjects"]
    info = ["trial_id", "subject_id"] + (["arm"] if "arm" in subjects else [])
    out = subjects[info].merge(tables["adverse_events"], on="subject_id")
    keys = [c for c in ("subject_id", "study_day", "category", "term") if c in out]
    return out.sort_values(keys).reset_index(drop=True)


def derive_all(tables: dict[str, pd.DataFrame], config: dict[str, Any]) -> dict[str, pd.DataFrame]:
    """Build every analysis dataset the tables support.

    Returns
    -------
    dict
        ``periods`` and ``weekly`` always; ``crossover`` for crossover and N-of-1 designs;
        ``diary`` (completed records) when the diary has intensity or location; ``emg``,
        ``ae_incidence`` and ``adverse_events`` when those tables exist and are not empty;
        ``intercurrent`` (:func:`~crampstats.derive.intercurrent.event_summary`) when any
        treatment-period record is off treatment or on rescue medication.
    """
    out = {"periods": subject_periods(tables, config), "weekly": subject_weeks(tables, config)}
    if config.get("design", "parallel") != "parallel":
        out["crossover"] = crossover_periods(tables, config)
    if {"intensity", "location"} & set(tables["diary"].columns):
        out["diary"] = diary_records(tables, config)
    if tables.get("emg") is not None and len(tables["emg"]):
        out["emg"] = emg_visits(tables, config)
    if tables.get("adverse_events") is not None and len(tables["adverse_events"]):
        out["ae_incidence"] = ae_incidence(tables, config)
        out["adverse_events"] = adverse_event_listing(tables, config)
    events = event_summary(flag_records(tables), tables["subjects"], config)
    if len(events):
        out["intercurrent"] = events
    return out


def write_derived(
    derived: dict[str, pd.DataFrame], out: str | Path, validated: ValidatedTrial
) -> None:
    """Write each dataset as ``<name>.parquet`` plus ``provenance.json``, atomically."""
    inputs = {p.stem: p for p in sorted(Path(validated.path).glob("*.parquet"))}
    record = provenance(
        inputs, validated.config, validation_inputs=validated.meta.get("inputs", {}),
        datasets={name: len(df) for name, df in derived.items()},
    )
    with atomic_dir(out) as tmp:
        for name, df in derived.items():
            write_parquet(df, tmp / f"{name}.parquet")
        (tmp / "provenance.json").write_text(to_json(record), encoding="utf-8")


def summary_text(derived: dict[str, pd.DataFrame]) -> str:
    """Describe the derived datasets in a few lines."""
    periods = derived["periods"]
    lines = ["derived datasets: " + ", ".join(f"{k} ({len(v)} rows)" for k, v in derived.items())]
    per_arm = periods.groupby("arm")["subject_id"].nunique()
    lines.append("subjects per arm: " + ", ".join(f"{a} {n}" for a, n in per_arm.items()))
    lines.append(f"mean exposure days per analysis period: {periods['exposure_days'].mean():.1f}")
    rate = np.exp(periods["log_baseline_rate"].astype("float64")).mean()
    lines.append(f"mean run-in rate: {rate:.2f} cramps/day")
    return "\n".join(lines)


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
    derived_dir = Path(derived_dir)
    record = derived_dir / "provenance.json"
    if not record.is_file():
        raise CrampstatsError(f"{derived_dir}: not a derived folder (no provenance.json)")
    derived = {p.stem: pd.read_parquet(p) for p in sorted(derived_dir.glob("*.parquet"))}
    # defaults filled again: a folder derived by an older version may lack newer settings
    config = check(json.loads(record.read_text(encoding="utf-8"))["config"], "trial", str(record))
    config["trial_id"] = trial_id_of(config, derived["periods"], derived_dir.parent)
    return derived, config
