"""Extra subject columns reach the derived ``periods`` table; the weekly frames get them joined."""

from __future__ import annotations

import pandas as pd
import pytest

from crampstats.catalogue import count_entry
from crampstats.config import ConfigError
from crampstats.derive import derive_all, subject_columns, subject_periods
from crampstats.errors import CrampstatsError
from crampstats.fit import model_frame

CFG = {"design": "parallel"}


def _tables(**extra) -> dict[str, pd.DataFrame]:
    subjects = pd.DataFrame({
        "subject_id": pd.array(["s1", "s2", "s3"], dtype="string"),
        "trial_id": pd.array(["t"] * 3, dtype="string"),
        "arm": pd.array(["placebo", "drug", "drug"], dtype="string"),
        "age": pd.array([70.0, 65.0, 80.0], dtype="Float64"),
        "stratum": pd.array([None, None, None], dtype="string"),
        "withdrawal_day": pd.array([pd.NA, 10, pd.NA], dtype="Int64"),
    })
    for name, values in extra.items():
        subjects[name] = values
    rows = [("s1", 0, "run-in", 3), ("s1", 1, "treatment", 2), ("s2", 0, "run-in", 1),
            ("s2", 1, "treatment", 0), ("s3", 0, "run-in", 4), ("s3", 1, "treatment", 5)]
    diary = pd.DataFrame(rows, columns=["subject_id", "study_day", "period", "cramp_count"])
    diary["days"] = 1
    diary = diary.astype({"subject_id": "string", "study_day": "Int64", "days": "Int64",
                          "period": "string", "cramp_count": "Int64"})
    return {"subjects": subjects, "diary": diary}


EXTRAS = {
    "bmi": pd.array([24.5, None, 31.0], dtype="Float64"),
    "site": pd.array(["A", "B", "A"], dtype="string"),
}


def test_extra_subject_columns_are_carried_into_periods_with_their_types():
    periods = subject_periods(_tables(**EXTRAS), CFG).set_index("subject_id")
    assert str(periods["bmi"].dtype) == "Float64" and periods["site"].dtype == "string"
    assert periods.loc["s1", "bmi"] == 24.5 and pd.isna(periods.loc["s2", "bmi"])
    assert periods["site"].tolist() == ["A", "B", "A"]
    # after the contract's columns, before the derived `withdrawn`
    cols = list(periods.columns)
    assert cols.index("withdrawal_day") < cols.index("bmi") < cols.index("site")
    assert cols[-1] == "withdrawn"


def test_without_extras_periods_are_as_before():
    assert list(subject_periods(_tables(), CFG).columns) == [
        "trial_id", "subject_id", "arm", "period", "count", "exposure_days", "runin_count",
        "runin_days", "log_baseline_rate", "age", "stratum", "withdrawal_day", "withdrawn",
    ]  # fmt: skip


def test_subject_columns_lists_covariate_candidates_with_values():
    tables = _tables(**EXTRAS)
    assert subject_columns(tables["subjects"]) == ["age", "bmi", "site"]  # stratum is empty
    periods = subject_periods(tables, CFG)
    assert subject_columns(periods) == ["age", "bmi", "site"]


def test_a_subject_column_named_like_a_derived_one_is_refused():
    with pytest.raises(CrampstatsError, match=r"\['count'\] clash"):
        subject_periods(_tables(count=[1, 2, 3]), CFG)


def test_weekly_frame_gets_subject_columns_joined():
    derived = derive_all(_tables(**EXTRAS), CFG)
    assert "site" not in derived["weekly"].columns
    config = {"analysis": {"covariates": ["bmi"], "random_intercepts": ["site"]}}
    frame = model_frame(count_entry("frailty_weekly"), derived, config)
    assert len(frame) == len(derived["weekly"])
    by_subject = frame.drop_duplicates("subject_id").set_index("subject_id")
    assert by_subject["site"].to_dict() == {"s1": "A", "s2": "B", "s3": "A"}
    assert pd.isna(by_subject.loc["s2", "bmi"])
    with pytest.raises(ConfigError, match=r"\['height'\].*subject columns: age, bmi, site"):
        model_frame(count_entry("frailty_weekly"), derived,
                    {"analysis": {"covariates": ["height"]}})
