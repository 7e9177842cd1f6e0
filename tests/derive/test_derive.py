"""Derived datasets on hand-built tables whose answers are known."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from crampstats.derive import derive_all, emg_visits, subject_periods, subject_weeks

CFG = {"design": "parallel", "ctf_protocol": {"start_hz": 4, "step_hz": 2, "max_hz": 40}}


def _subjects() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "subject_id": pd.array(["s1", "s2", "s3"], dtype="string"),
            "trial_id": pd.array(["t"] * 3, dtype="string"),
            "arm": pd.array(["placebo", "drug", "drug"], dtype="string"),
            "age": pd.array([70.0, 65.0, 80.0], dtype="Float64"),
            "withdrawal_day": pd.array([pd.NA, 10, pd.NA], dtype="Int64"),
        }
    )


def _diary() -> pd.DataFrame:
    rows = [
        # s1: daily run-in days -1, 0 (3 + 1 cramps); treatment days 1-3 with day 2 missing.
        ("s1", -1, 1, "run-in", 3), ("s1", 0, 1, "run-in", 1),
        ("s1", 1, 1, "treatment", 2), ("s1", 2, 1, "treatment", None),
        ("s1", 3, 1, "treatment", 0),
        # s2: a weekly run-in record and two weekly treatment records, the second missing.
        ("s2", -6, 7, "run-in", 9), ("s2", 1, 7, "treatment", 5), ("s2", 8, 7, "treatment", None),
        # s3: run-in only (no post-baseline data).
        ("s3", -13, 14, "run-in", 0),
    ]
    df = pd.DataFrame(rows, columns=["subject_id", "study_day", "days", "period", "cramp_count"])
    return df.astype({"subject_id": "string", "study_day": "Int64", "days": "Int64",
                      "period": "string", "cramp_count": "Int64"})


def _tables() -> dict[str, pd.DataFrame]:
    return {"subjects": _subjects(), "diary": _diary()}


def test_missing_days_reduce_exposure_and_are_not_zero_counts():
    p = subject_periods(_tables(), CFG).set_index("subject_id")
    assert (p.loc["s1", "count"], p.loc["s1", "exposure_days"]) == (2, 2)
    assert (p.loc["s2", "count"], p.loc["s2", "exposure_days"]) == (5, 7)


def test_log_baseline_rate_formula():
    p = subject_periods(_tables(), CFG).set_index("subject_id")
    assert math.isclose(p.loc["s1", "log_baseline_rate"], math.log(4.5 / 2))
    assert math.isclose(p.loc["s2", "log_baseline_rate"], math.log(9.5 / 7))
    assert math.isclose(p.loc["s3", "log_baseline_rate"], math.log(0.5 / 14))
    assert (p.loc["s3", "runin_count"], p.loc["s3", "runin_days"]) == (0, 14)


def test_subject_without_treatment_diary_is_kept_with_zero_exposure_and_withdrawal_flagged():
    p = subject_periods(_tables(), CFG).set_index("subject_id")
    assert (p.loc["s3", "count"], p.loc["s3", "exposure_days"]) == (0, 0)
    assert p["withdrawn"].to_dict() == {"s1": False, "s2": True, "s3": False}
    assert p.loc["s1", "age"] == 70.0


def test_weeks_assign_records_to_the_week_of_their_first_day():
    w = subject_weeks(_tables(), CFG)
    s2 = w[w["subject_id"] == "s2"].set_index("week")
    assert s2.index.tolist() == [0, 1]  # run-in week 0; week 2's only record is missing
    assert (s2.loc[1, "count"], s2.loc[1, "exposure_days"]) == (5, 7)
    s1 = w[w["subject_id"] == "s1"].set_index("week")
    assert s1.loc[1, "n_records"] == 2 and s1.loc[0, "count"] == 4


def test_crossover_previous_treatment_and_cycles():
    subjects = _subjects().drop(columns="arm").assign(
        sequence=pd.array(["AB", "BA", "AB"], dtype="string"))
    rows = []
    for sid, seq in (("s1", "AB"), ("s2", "BA"), ("s3", "AB")):
        rows.append((sid, -1, 1, "run-in", pd.NA, 2))
        for period, letter in enumerate(seq + seq, start=1):
            treat = "placebo" if letter == "A" else "drug"
            rows.append((sid, 7 * (period - 1) + 1, 7, str(period), treat, period))
    diary = pd.DataFrame(rows, columns=["subject_id", "study_day", "days", "period",
                                        "treatment", "cramp_count"]).astype(
        {"subject_id": "string", "study_day": "Int64", "days": "Int64", "period": "string",
         "treatment": "string", "cramp_count": "Int64"})
    out = derive_all({"subjects": subjects, "diary": diary}, {"design": "nof1"})
    x = out["crossover"]
    s2 = x[x["subject_id"] == "s2"]
    assert s2["treatment"].tolist() == ["drug", "placebo", "drug", "placebo"]
    assert s2["previous_treatment"].tolist()[1:] == ["drug", "placebo", "drug"]
    assert pd.isna(s2["previous_treatment"].iloc[0])
    assert s2["cycle"].tolist() == [1, 1, 2, 2]
    assert s2["count"].tolist() == [1, 2, 3, 4]
    assert set(out["periods"]["arm"]) == {"drug", "placebo"}


def test_emg_interval_bounds_and_censoring():
    emg = pd.DataFrame({
        "subject_id": pd.array(["s1", "s1", "s2", "s2"], dtype="string"),
        "visit": pd.array(["baseline", "end", "baseline", "end"], dtype="string"),
        "ctf_hz": pd.array([4.0, 16.0, 40.0, 18.0], dtype="Float64"),
        "ctf_censored": pd.array([False, False, True, False], dtype="boolean"),
    })
    e = emg_visits({"subjects": _subjects(), "emg": emg}, CFG).set_index(["subject_id", "visit"])
    s1_base = e.loc[("s1", "baseline")]
    assert (s1_base["ctf_lower"], s1_base["ctf_upper"]) == (0, 4)
    assert (e.loc[("s1", "end"), "ctf_lower"], e.loc[("s1", "end"), "ctf_upper"]) == (14, 16)
    assert e.loc[("s2", "baseline"), "ctf_lower"] == 40
    assert np.isinf(e.loc[("s2", "baseline"), "ctf_upper"])
    assert bool(e.loc[("s2", "end"), "ctf_baseline_censored"]) is True
    assert e.loc[("s1", "end"), "ctf_baseline_hz"] == 4.0


def test_ae_incidence_is_zero_filled():
    ae = pd.DataFrame({
        "subject_id": pd.array(["s1", "s1", "s2"], dtype="string"),
        "term": pd.array(["Tinnitus", "Tinnitus", "Nausea"], dtype="string"),
        "category": pd.array(["cinchonism", "cinchonism", "gastrointestinal"], dtype="string"),
        "serious": pd.array([False, True, False], dtype="boolean"),
    })
    out = derive_all({**_tables(), "adverse_events": ae}, CFG)["ae_incidence"]
    assert len(out) == 3 * 2
    s1 = out[(out["subject_id"] == "s1") & (out["category"] == "cinchonism")].iloc[0]
    assert (s1["n_events"], s1["any_event"], s1["any_serious"]) == (2, True, True)
    assert out["any_event"].sum() == 2


def test_inputs_are_not_mutated():
    tables = _tables()
    before = {k: v.copy() for k, v in tables.items()}
    derive_all(tables, CFG)
    for k in tables:
        pd.testing.assert_frame_equal(tables[k], before[k])


@settings(max_examples=25, deadline=None)
@given(st.randoms(use_true_random=False))
def test_row_order_does_not_matter(random):
    tables = _tables()
    expected = derive_all(tables, CFG)
    shuffled = {}
    for name, df in tables.items():
        order = list(range(len(df)))
        random.shuffle(order)
        shuffled[name] = df.iloc[order].reset_index(drop=True)
    got = derive_all(shuffled, CFG)
    for name in expected:
        pd.testing.assert_frame_equal(got[name], expected[name])
