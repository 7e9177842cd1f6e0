"""Per-subject change from baseline of every endpoint (parallel designs).

Cramps per week (treatment-period rate minus run-in rate), log CTF (``end`` minus the mean of
the baseline logs; subjects with a right-censored CTF excluded), after-discharge grade (``end``
minus the mean baseline grade), intensity (mean treatment-period rating minus mean run-in
rating). Used by agreement, responsiveness and the sample-size comparison.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from crampstats.models._common import (
    ModelDataError,
    as_float,
    require_columns,
    subject_keys,
)
from crampstats.secondary.outcome_measures.data import as_bool
from crampstats.secondary.outcome_measures.names import (
    AFTERDISCHARGE,
    CTF,
    FREQUENCY,
    INTENSITY,
    WEEK_DAYS,
)

__all__ = [
    "ctf_changes",
    "endpoint_changes",
    "frequency_changes",
    "grade_changes",
    "intensity_changes",
    "require_parallel",
]


def _is_parallel(periods: pd.DataFrame) -> bool:
    return bool(
        len(periods)
        and (periods["period"].astype(str) == "treatment").all()
        and periods["subject_id"].is_unique
    )


def require_parallel(periods: pd.DataFrame, what: str) -> None:
    """Raise :class:`ModelDataError` unless ``periods`` is a parallel design (``what`` needs it)."""
    require_columns(
        periods,
        ["subject_id", "arm", "period", "count", "exposure_days", "runin_count", "runin_days"],
        "periods",
    )
    if not _is_parallel(periods):
        raise ModelDataError(f"{what} needs a parallel design (one treatment period per subject)")


def frequency_changes(periods: pd.DataFrame) -> pd.DataFrame:
    """Run-in and treatment cramps per week per subject (both periods with diary days)."""
    require_parallel(periods, "change in cramp frequency")
    exposure, runin_days = as_float(periods["exposure_days"]), as_float(periods["runin_days"])
    ok = (exposure > 0) & (runin_days > 0)
    p = periods.loc[ok]
    before = WEEK_DAYS * as_float(p["runin_count"]) / runin_days[ok]
    after = WEEK_DAYS * as_float(p["count"]) / exposure[ok]
    return pd.DataFrame(
        {
            "subject": subject_keys(p).to_numpy(),
            "arm": p["arm"].astype(str).to_numpy(),
            "baseline": before,
            "change": after - before,
        }
    )


def _emg_by_visit(emg: pd.DataFrame, column: str) -> pd.DataFrame:
    """``subject x visit`` table of one EMG column (float; NaN where not measured)."""
    require_columns(emg, ["subject_id", "visit", column], "emg")
    frame = pd.DataFrame(
        {
            "subject": subject_keys(emg).to_numpy(),
            "visit": emg["visit"].astype(str).to_numpy(),
            "value": as_float(emg[column]),
        }
    )
    return frame.pivot_table(index="subject", columns="visit", values="value", aggfunc="mean")


def _arms(periods: pd.DataFrame) -> pd.Series:
    return pd.Series(periods["arm"].astype(str).to_numpy(), index=subject_keys(periods).to_numpy())


def ctf_changes(periods: pd.DataFrame, emg: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """Log CTF change (end minus mean of the baseline logs), uncensored subjects only.

    Returns the changes and how many subjects were dropped for a right-censored CTF (the
    change is then unknown in one direction).
    """
    require_parallel(periods, "change in CTF")
    require_columns(emg, ["ctf_hz", "ctf_censored"], "emg")
    log_ctf = emg.assign(ctf_hz=np.log(as_float(emg["ctf_hz"])))
    values = _emg_by_visit(log_ctf, "ctf_hz")
    censored = _emg_by_visit(emg.assign(cens=as_bool(emg["ctf_censored"]).astype(float)), "cens")
    base_cols = [c for c in values.columns if c.startswith("baseline")]
    if "end" not in values.columns or not base_cols:
        raise ModelDataError("change in CTF needs a baseline and an `end` EMG visit")
    baseline = values[base_cols].mean(axis=1, skipna=False)
    any_cens = censored[[*base_cols, "end"]].fillna(0.0).max(axis=1) > 0
    change = values["end"] - baseline
    measured = change.notna()
    keep = measured & ~any_cens
    out = pd.DataFrame({"baseline": baseline[keep], "change": change[keep]})
    out = out.join(_arms(periods).rename("arm"), how="inner")
    return out.rename_axis("subject").reset_index(), int((measured & any_cens).sum())


def grade_changes(periods: pd.DataFrame, emg: pd.DataFrame) -> pd.DataFrame:
    """After-discharge grade at ``end`` minus the mean of the baseline grades."""
    require_parallel(periods, "change in after-discharge grade")
    values = _emg_by_visit(emg, "afterdischarge_grade")
    base_cols = [c for c in values.columns if c.startswith("baseline")]
    if "end" not in values.columns or not base_cols:
        raise ModelDataError("change in after-discharge grade needs a baseline and an `end` visit")
    baseline = values[base_cols].mean(axis=1, skipna=False)
    change = (values["end"] - baseline).dropna()
    out = pd.DataFrame({"baseline": baseline[change.index], "change": change})
    out = out.join(_arms(periods).rename("arm"), how="inner")
    return out.rename_axis("subject").reset_index()


def intensity_changes(periods: pd.DataFrame, diary: pd.DataFrame) -> pd.DataFrame:
    """Mean intensity of treatment-period records minus that of run-in records, per subject."""
    require_parallel(periods, "change in intensity")
    require_columns(diary, ["subject_id", "period", "intensity"], "diary")
    frame = pd.DataFrame(
        {
            "subject": subject_keys(diary).to_numpy(),
            "period": diary["period"].astype(str).to_numpy(),
            "intensity": as_float(diary["intensity"]),
        }
    ).dropna(subset=["intensity"])
    means = frame.pivot_table(index="subject", columns="period", values="intensity")
    if "run-in" not in means.columns or "treatment" not in means.columns:
        raise ModelDataError("change in intensity needs ratings in the run-in and treatment")
    change = (means["treatment"] - means["run-in"]).dropna()
    out = pd.DataFrame({"baseline": means.loc[change.index, "run-in"], "change": change})
    out = out.join(_arms(periods).rename("arm"), how="inner")
    return out.rename_axis("subject").reset_index()


def endpoint_changes(
    periods: pd.DataFrame, emg: pd.DataFrame | None, diary: pd.DataFrame | None
) -> dict[str, pd.DataFrame | str]:
    """Per-endpoint change frames, or the reason (str) an endpoint has none."""
    out: dict[str, pd.DataFrame | str] = {}
    builders = {
        FREQUENCY: lambda: frequency_changes(periods),
        CTF: lambda: ctf_changes(periods, emg)[0] if emg is not None else "no EMG data",
        AFTERDISCHARGE: lambda: grade_changes(periods, emg) if emg is not None else "no EMG data",
        INTENSITY: lambda: (
            intensity_changes(periods, diary)
            if diary is not None and "intensity" in diary
            else "no intensity ratings in the diary"
        ),
    }
    for endpoint, build in builders.items():
        try:
            out[endpoint] = build()
        except ModelDataError as exc:
            out[endpoint] = str(exc)
    return out
