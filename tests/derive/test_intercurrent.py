"""Intercurrent events of the primary endpoint: which diary records count under each strategy.

Hand-built tables give the exact exposure and counts; simulated trials whose truth is known show
that each strategy estimates its own estimand (statsmodels' negative binomial GLM on the derived
``periods``: the estimand is what the data say, whichever model reads them); the validation
cases go through ``crampstats validate`` as a user would.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
import yaml
from helpers import SMALL_TRIAL_ARMS, small_trial, write_csv

from crampstats.cli import main
from crampstats.derive import derive_all, event_summary, flag_records, subject_periods
from crampstats.plan import PlanError, check_plan, parse_plan


def _config(**events: str) -> dict:
    return {"design": "parallel", "analysis": {"plan": {"intercurrent_events": events}}}


def _tables() -> dict[str, pd.DataFrame]:
    """s1 (drug) stops treatment after day 3 and keeps the diary to day 6; s2 (placebo) takes
    rescue medication on days 4-5; s3 (drug) keeps weekly records, rescue from day 10 on."""
    subjects = pd.DataFrame({
        "subject_id": pd.array(["s1", "s2", "s3"], dtype="string"),
        "trial_id": pd.array(["t"] * 3, dtype="string"),
        "arm": pd.array(["drug", "placebo", "drug"], dtype="string"),
        "withdrawal_day": pd.array([pd.NA] * 3, dtype="Int64"),
        "discontinuation_day": pd.array([3, pd.NA, pd.NA], dtype="Int64"),
    })
    rows = [("s1", 0, 1, "run-in", 4)] + [("s1", d, 1, "treatment", d) for d in range(1, 7)]
    rows += [("s2", 0, 1, "run-in", 2)] + [("s2", d, 1, "treatment", 1) for d in range(1, 7)]
    rows += [("s3", -6, 7, "run-in", 7), ("s3", 1, 7, "treatment", 3),
             ("s3", 8, 7, "treatment", 5), ("s3", 15, 7, "treatment", 2)]
    diary = pd.DataFrame(rows, columns=["subject_id", "study_day", "days", "period",
                                        "cramp_count"])
    diary = diary.astype({"subject_id": "string", "study_day": "Int64", "days": "Int64",
                          "period": "string", "cramp_count": "Int64"})
    meds = pd.DataFrame({
        "subject_id": pd.array(["s2", "s3", "s1"], dtype="string"),
        "medication": pd.array(["quinine", "quinine", "paracetamol"], dtype="string"),
        "start_day": pd.array([4, 10, -3], dtype="Int64"),
        "end_day": pd.array([5, pd.NA, 2], dtype="Int64"),
        "rescue": pd.array([True, True, False], dtype="boolean"),
    })
    return {"subjects": subjects, "diary": diary, "medications": meds}


def test_records_are_flagged_by_their_days():
    flagged = flag_records(_tables()).set_index(["subject_id", "study_day"])
    off = flagged["off_treatment"]
    assert off.loc["s1"].to_dict() == {0: False, 1: False, 2: False, 3: False, 4: True,
                                       5: True, 6: True}
    rescue = flagged["on_rescue"]
    assert [d for d, v in rescue.loc["s2"].items() if v] == [4, 5]
    # weekly records: days 8-14 reach day 10 (open-ended rescue), and so do days 15-21
    assert [d for d, v in rescue.loc["s3"].items() if v] == [8, 15]
    assert not rescue.loc["s1"].any()  # not a rescue medication
    assert not flagged.loc[flagged["period"] == "run-in", ["off_treatment", "on_rescue"]].any(
        axis=None)


def test_hypothetical_leaves_out_the_records_after_the_event():
    p = subject_periods(_tables(), _config()).set_index("subject_id")
    assert (p.loc["s1", "count"], p.loc["s1", "exposure_days"]) == (1 + 2 + 3, 3)
    assert (p.loc["s2", "count"], p.loc["s2", "exposure_days"]) == (4, 4)
    assert (p.loc["s3", "count"], p.loc["s3", "exposure_days"]) == (3, 7)


def test_treatment_policy_uses_the_records_as_collected():
    cfg = _config(treatment_discontinuation="treatment_policy",
                  rescue_medication="treatment_policy")
    p = subject_periods(_tables(), cfg).set_index("subject_id")
    assert (p.loc["s1", "count"], p.loc["s1", "exposure_days"]) == (21, 6)
    assert (p.loc["s2", "count"], p.loc["s2", "exposure_days"]) == (6, 6)
    assert (p.loc["s3", "count"], p.loc["s3", "exposure_days"]) == (10, 21)
    # one event each way: only the rescue records leave
    mixed = subject_periods(_tables(), _config(treatment_discontinuation="treatment_policy"))
    assert mixed.set_index("subject_id").loc["s1", "exposure_days"] == 6
    assert mixed.set_index("subject_id").loc["s2", "exposure_days"] == 4


def test_weekly_and_run_in_follow_the_same_records():
    derived = derive_all(_tables(), _config())
    weekly = derived["weekly"]
    assert weekly.loc[weekly["subject_id"] == "s1", "exposure_days"].sum() == 1 + 3
    assert derived["periods"].set_index("subject_id").loc["s1", "runin_count"] == 4


def test_an_intensity_primary_endpoint_reads_the_records_its_strategies_leave():
    tables = _tables()
    tables["diary"]["intensity"] = pd.array([pd.NA] + [5.0] * 6 + [pd.NA] + [4.0] * 6
                                            + [pd.NA, 3.0, 3.0, 3.0], dtype="Float64")
    intensity = {"endpoint": "intensity", "summary_measure": "difference_in_mean_intensity"}

    def days(config):
        diary = derive_all(tables, config)["diary"]
        treated = diary[diary["period"] == "treatment"]
        return treated.groupby("subject_id")["study_day"].apply(list).to_dict()

    # cramp frequency primary: the secondary endpoints keep every completed record
    every = {"s1": [1, 2, 3, 4, 5, 6], "s2": [1, 2, 3, 4, 5, 6], "s3": [1, 8, 15]}
    assert days(_config()) == every
    # intensity primary under hypothetical strategies: off-treatment and rescue records leave
    config = _config()
    config["analysis"]["plan"].update(intensity)
    assert days(config) == {"s1": [1, 2, 3], "s2": [1, 2, 3, 6], "s3": [1]}
    # under treatment policy they stay
    config["analysis"]["plan"]["intercurrent_events"] = {
        "treatment_discontinuation": "treatment_policy", "rescue_medication": "treatment_policy"}
    assert days(config) == every


def test_event_summary_counts_subjects_and_days_per_arm():
    cfg = _config(rescue_medication="treatment_policy")
    summary = event_summary(flag_records(_tables()), _tables()["subjects"], cfg)
    rows = {(r["event"], r["arm"]): r for r in summary.to_dict("records")}
    assert rows[("treatment_discontinuation", "drug")] == {
        "event": "treatment_discontinuation", "strategy": "hypothetical", "arm": "drug",
        "subjects": 1, "records": 3, "diarised_days": 3, "used": False}
    assert rows[("rescue_medication", "placebo")]["diarised_days"] == 2
    assert rows[("rescue_medication", "drug")]["diarised_days"] == 14
    assert rows[("rescue_medication", "drug")]["used"]
    assert "intercurrent" in derive_all(_tables(), cfg)
    plain = {k: v for k, v in _tables().items() if k != "medications"}
    plain["subjects"] = plain["subjects"].assign(discontinuation_day=pd.NA)
    assert "intercurrent" not in derive_all(plain, cfg)


@pytest.mark.parametrize(
    ("event", "strategy", "words"),
    [
        ("withdrawal", "composite", "responder endpoint"),
        ("treatment_discontinuation", "composite", "cannot express"),
        ("withdrawal", "treatment_policy", "tipping-point"),
    ],
)
def test_strategies_without_an_analysis_are_refused(event, strategy, words):
    plan = parse_plan(_config(**{event: strategy}))
    with pytest.raises(PlanError, match=words):
        check_plan(plan, ["placebo", "drug"], "placebo")


def test_the_strategies_that_exist_pass_the_plan_check():
    cfg = _config(treatment_discontinuation="treatment_policy",
                  rescue_medication="treatment_policy", withdrawal="hypothetical")
    check_plan(parse_plan(cfg), ["placebo", "drug"], "placebo")


# ---------------------------------------------------------------------------------------------
# Each strategy estimates its own estimand (simulated trials with known truth)
# ---------------------------------------------------------------------------------------------
DAYS = 56
N_ARM = 2500
ON_RR = 0.6


def _simulate(rng: np.random.Generator, event: str) -> tuple[dict, float]:
    """A two-arm trial with daily diaries; return tables and the treatment-policy rate ratio.

    Rates are Gamma(k=4) frailties around 1 cramp/day. ``discontinuation``: 60 % of subjects
    stop treatment on a uniform day and go back to their untreated rate. ``rescue``: on each
    subject's rescue days (two weeks; 80 % of placebo subjects, 10 % on the drug) the rate falls
    to 0.2 of what it would be. The treatment-policy rate ratio is the ratio of the arms'
    expected totals over the realised events, since the frailty is independent of them (the NB
    GLM's arm-only fit is the ratio of arm means).
    """
    n = 2 * N_ARM
    arm = np.repeat(["placebo", "drug"], N_ARM)
    drug = arm == "drug"
    lam = rng.gamma(4.0, 1 / 4.0, n)
    day = np.arange(1, DAYS + 1)
    mult = np.where(drug[:, None], ON_RR, 1.0) * np.ones((n, DAYS))
    subjects = {"subject_id": [f"p{i:05d}" for i in range(n)], "trial_id": "sim", "arm": arm}
    meds = None
    if event == "discontinuation":
        stops = rng.random(n) < 0.6
        stop_day = np.where(stops, rng.integers(1, DAYS, n), DAYS)
        mult = np.where(day[None, :] > stop_day[:, None], 1.0, mult)
        subjects["discontinuation_day"] = pd.Series(stop_day).where(stops).astype("Int64")
    else:
        start = rng.integers(1, DAYS - 14, n)
        takes = rng.random(n) < np.where(drug, 0.1, 0.8)
        on = takes[:, None] & (day[None, :] >= start[:, None]) & (day[None, :] < start[:, None]
                                                                  + 14)
        mult = np.where(on, 0.2 * mult, mult)
        meds = pd.DataFrame({
            "subject_id": pd.array(np.array(subjects["subject_id"])[takes], dtype="string"),
            "medication": pd.array(["quinine"] * int(takes.sum()), dtype="string"),
            "start_day": pd.array(start[takes], dtype="Int64"),
            "end_day": pd.array(start[takes] + 13, dtype="Int64"),
            "rescue": pd.array([True] * int(takes.sum()), dtype="boolean"),
        })
    counts = rng.poisson(lam[:, None] * mult)
    diary = pd.DataFrame({
        "subject_id": np.repeat(subjects["subject_id"], DAYS),
        "study_day": np.tile(day, n), "days": 1, "period": "treatment",
        "cramp_count": counts.ravel(),
    }).astype({"subject_id": "string", "study_day": "Int64", "days": "Int64",
               "period": "string", "cramp_count": "Int64"})
    frame = pd.DataFrame(subjects).astype({"subject_id": "string", "arm": "string"})
    tables = {"subjects": frame, "diary": diary}
    if meds is not None:
        tables["medications"] = meds
    policy_rr = mult[drug].mean() / mult[~drug].mean()
    return tables, policy_rr


def _nb_log_rr(periods: pd.DataFrame) -> tuple[float, float]:
    """statsmodels NB2 GLM log rate ratio (drug vs placebo) with its SE, offset log exposure."""
    x = sm.add_constant((periods["arm"] == "drug").astype(float).to_numpy())
    y = periods["count"].to_numpy(float)
    offset = np.log(periods["exposure_days"].to_numpy(float))
    fit = sm.NegativeBinomial(y, x, offset=offset).fit(disp=0)
    return float(fit.params[1]), float(fit.bse[1])


@pytest.mark.parametrize("event", ["discontinuation", "rescue"])
def test_each_strategy_recovers_its_own_estimand(event):
    rng = np.random.default_rng(20261203 + (event == "rescue"))
    tables, policy_rr = _simulate(rng, event)
    name = {"discontinuation": "treatment_discontinuation", "rescue": "rescue_medication"}[event]
    truths = {"hypothetical": math.log(ON_RR), "treatment_policy": math.log(policy_rr)}
    # the estimands lie further apart than two bands, so the test tells the strategies apart
    _, se = _nb_log_rr(subject_periods(tables, _config(**{name: "hypothetical"})))
    assert abs(truths["hypothetical"] - truths["treatment_policy"]) > 2 * 3.5 * se
    for strategy, truth in truths.items():
        periods = subject_periods(tables, _config(**{name: strategy}))
        est, se = _nb_log_rr(periods[periods["exposure_days"] > 0])
        # 3.5 SE: a correct estimator fails this about once in 2,000 trials
        assert abs(est - truth) < 3.5 * se, (strategy, est, truth, se)


# ---------------------------------------------------------------------------------------------
# The contract: the medications table and discontinuation_day through `crampstats validate`
# ---------------------------------------------------------------------------------------------
def _validate(capsys, data, tmp_path) -> tuple[int, str]:
    cfg = tmp_path / "trial.yaml"
    cfg.write_text(yaml.safe_dump({"trial_id": "t1", "design": "parallel",
                                   "arms": SMALL_TRIAL_ARMS}))
    code = main(["validate", str(data), "--config", str(cfg), "--out", str(tmp_path / "out")])
    return code, capsys.readouterr().err


def test_a_medications_table_and_discontinuation_day_are_read_and_derived(tmp_path, capsys):
    frames = small_trial()
    frames["subjects"]["discontinuation_day"] = ["", "5", "", "6"]
    frames["medications"] = pd.DataFrame({
        "subject_id": ["S1", "S2"], "medication": ["quinine", "magnesium"],
        "start_day": ["2", "-3"], "end_day": ["3", ""], "rescue": ["yes", "no"]})
    code, err = _validate(capsys, write_csv(frames, tmp_path / "data"), tmp_path)
    assert code == 0, err
    meds = pd.read_parquet(tmp_path / "out" / "medications.parquet")
    assert meds["rescue"].tolist() == [True, False]  # "yes", "no"; sorted by subject
    assert pd.isna(meds.loc[1, "end_day"])
    # derive: S2 and S4 (mexiletine) stop after days 5 and 6 of 8, S1 (placebo) is on rescue
    # on days 2-3; by default (hypothetical) those records leave the primary endpoint's data
    assert main(["derive", str(tmp_path / "out"), "--out", str(tmp_path / "derived")]) == 0
    events = pd.read_parquet(tmp_path / "derived" / "intercurrent.parquet")
    days = events.set_index(["event", "arm"])["diarised_days"].to_dict()
    assert days == {("rescue_medication", "placebo"): 2,
                    ("treatment_discontinuation", "mexiletine"): 3 + 2}
    assert not events["used"].any()
    periods = pd.read_parquet(tmp_path / "derived" / "periods.parquet").set_index("subject_id")
    assert periods["exposure_days"].to_dict() == {"S1": 6, "S2": 5, "S3": 8, "S4": 6}


@pytest.mark.parametrize(
    ("table", "column", "values", "prefix", "words"),
    [
        ("subjects", "discontinuation_day", ["", "", "", "9"], "subjects.csv row 5, column "
         "discontinuation_day", ("after withdrawal_day",)),
        ("subjects", "discontinuation_day", ["0", "", "", ""], "subjects.csv row 2, column "
         "discontinuation_day", ("before the first dose",)),
        ("medications", "end_day", ["1", ""], "medications.csv row 2, column end_day",
         ("before start_day",)),
        ("medications", "subject_id", ["S1", "S9"], "medications.csv row 3, column subject_id",
         ("not in subjects",)),
    ],
)
def test_bad_intercurrent_event_data_are_refused(tmp_path, capsys, table, column, values,
                                                 prefix, words):
    frames = small_trial()
    frames["medications"] = pd.DataFrame({
        "subject_id": ["S1", "S2"], "medication": ["quinine", "magnesium"],
        "start_day": ["2", "3"], "end_day": ["3", ""], "rescue": ["true", "false"]})
    frames[table][column] = values
    code, err = _validate(capsys, write_csv(frames, tmp_path / "data"), tmp_path)
    assert code == 1
    assert "Traceback" not in err
    assert not (tmp_path / "out").exists()
    lines = [ln.strip() for ln in err.splitlines()]
    assert any(ln.startswith(prefix) and all(w in ln for w in words) for ln in lines), err
