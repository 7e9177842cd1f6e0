"""Slow statistical checks: large simulated trials recover the design's true parameters."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from crampstats.simulate import simulate

pytestmark = pytest.mark.slow

QUIET = {"emg": {"enabled": False}, "missing_days": 0.0, "dropout": 0.0}


def _totals(diary: pd.DataFrame, period: str) -> pd.Series:
    rows = diary[diary["period"] == period]
    return rows.groupby("subject_id")["cramp_count"].sum().astype(float)


@pytest.mark.slow
def test_placebo_rate_and_k_are_recovered_without_threshold():
    design = {**QUIET, "arms": {"placebo": {}}, "n_per_arm": 20000,
              "inclusion": {"min_cramps": 0}, "baseline_rate": 0.9, "k": 3,
              "placebo_effect": 0.8}
    trial = simulate(design, 101)
    y = _totals(trial.tables["diary"], "treatment")
    expected = 0.9 * 0.8 * 56
    assert abs(y.mean() / expected - 1) < 0.02
    k_hat = y.mean() ** 2 / (y.var() - y.mean())
    assert abs(k_hat / 3 - 1) < 0.1, k_hat
    # without selection the run-in mean is the population rate
    r = _totals(trial.tables["diary"], "run-in")
    assert abs(r.mean() / (0.9 * 14) - 1) < 0.02


@pytest.mark.slow
def test_k_is_recovered_with_another_value_and_no_within_subject_fluctuation():
    design = {**QUIET, "arms": {"placebo": {}}, "n_per_arm": 20000, "k": 1.2,
              "inclusion": {"min_cramps": 0}, "within_subject": {"sd": 0.0}}
    y = _totals(simulate(design, 102).tables["diary"], "treatment")
    k_hat = y.mean() ** 2 / (y.var() - y.mean())
    assert abs(k_hat / 1.2 - 1) < 0.1, k_hat


@pytest.mark.slow
def test_arm_rate_ratios_are_recovered():
    design = {**QUIET, "n_per_arm": 8000, "inclusion": {"min_cramps": 0},
              "arms": {"placebo": {}, "mexiletine": {}, "magnesium": {}}}
    trial = simulate(design, 103)
    y = _totals(trial.tables["diary"], "treatment")
    arm = trial.tables["subjects"].set_index("subject_id")["arm"]
    means = y.groupby(arm[y.index].to_numpy()).mean()
    assert abs(means["mexiletine"] / means["placebo"] / 0.5 - 1) < 0.05
    assert abs(means["magnesium"] / means["placebo"] / 0.96 - 1) < 0.05


@pytest.mark.slow
def test_dropout_and_compliance_are_recovered():
    n = 6000
    design = {"arms": {"placebo": {}, "mexiletine": {"dropout": 0.32}}, "n_per_arm": n,
              "missing_days": 0.1, "emg": {"enabled": False}}
    trial = simulate(design, 104)
    subj, diary = trial.tables["subjects"], trial.tables["diary"]
    for arm, p in (("placebo", 0.08), ("mexiletine", 0.32)):
        frac = subj["withdrawal_day"][subj["arm"] == arm].notna().mean()
        assert abs(frac - p) < 4 * math.sqrt(p * (1 - p) / n), (arm, frac)
    # withdrawal days spread over the treatment period (constant hazard)
    wd = subj["withdrawal_day"].dropna().astype(float)
    assert wd.min() >= 1 and wd.max() <= 56 and 20 < wd.median() < 36
    compliance = diary["cramp_count"].notna().mean()
    se = math.sqrt(0.9 * 0.1 / len(diary))
    assert abs(compliance - 0.9) < 4 * se + 0.002
    assert trial.truth["compliance"] == 0.9


@pytest.mark.slow
def test_regression_to_the_mean_emerges_from_the_inclusion_threshold():
    base = {**QUIET, "arms": {"placebo": {}}, "n_per_arm": 20000}
    strict = simulate({**base, "inclusion": {"min_cramps": 10}, "placebo_effect": 0.9}, 105)
    run = _totals(strict.tables["diary"], "run-in").mean() / 14
    treat = _totals(strict.tables["diary"], "treatment").mean() / 56
    assert treat < run  # the placebo arm improves against its run-in ...
    assert treat / run < 0.9 - 0.03  # ... by more than the true placebo effect (regression to mean)
    assert treat > 0.9 * 0.9 * 1.05  # selected subjects have higher true rates than the population
    true_rate = strict.latent["rate"].mean()
    assert abs(treat / (0.9 * true_rate) - 1) < 0.02  # the true path: placebo effect x true rate
    # no threshold and no true placebo effect: no apparent placebo response
    flat = simulate({**base, "inclusion": {"min_cramps": 0}, "placebo_effect": 1.0}, 106)
    run0 = _totals(flat.tables["diary"], "run-in").mean() / 14
    treat0 = _totals(flat.tables["diary"], "treatment").mean() / 56
    assert abs(treat0 / run0 - 1) < 0.02


@pytest.mark.slow
def test_example_placebo_response_matches_calibration():
    design = {"arms": {"placebo": {}}, "n_per_arm": 20000, "emg": {"enabled": False}}
    trial = simulate(design, 107)
    diary = trial.tables["diary"]
    obs = diary.dropna(subset=["cramp_count"])
    run = obs.loc[obs["period"] == "run-in", "cramp_count"].mean()
    treat = obs.loc[obs["period"] == "treatment", "cramp_count"].mean()
    assert 0.72 <= treat / run <= 0.75  # docs/calibration.md, Cramp frequency: placebo response


@pytest.mark.slow
def test_ctf_censoring_matches_the_protocol():
    n = 30000
    design = {**QUIET, "arms": {"placebo": {}}, "n_per_arm": n, "run_in_weeks": 1,
              "treatment_weeks": 1, "emg": {"protocol": {"max_hz": 24}}}
    trial = simulate(design, 108)
    emg = trial.tables["emg"]
    base = emg[emg["visit"] == "baseline"]
    sigma = trial.truth["trials"]["trial"]["emg"]["sigma_log"]
    p = stats.norm.sf(math.log(24 / 16) / sigma)
    assert abs(trial.truth["trials"]["trial"]["emg"]["censoring_probability_baseline"] - p) < 1e-12
    frac = base["ctf_censored"].mean()
    assert abs(frac - p) < 4 * math.sqrt(p * (1 - p) / n), (frac, p)
    assert (base.loc[base["ctf_censored"], "ctf_hz"] == 24).all()
    observed = base.loc[~base["ctf_censored"], "ctf_hz"]
    assert set(np.unique(observed)) <= set(range(4, 25, 2))
    # median of the stepped CTF sits at the first step above the latent median (16 Hz)
    assert observed.median() in (16, 18)
    # after-discharge grades: baseline marginals as designed, negatively related to CTF
    grades = base["afterdischarge_grade"].value_counts(normalize=True).sort_index()
    assert np.allclose(grades.to_numpy(), [0.35, 0.25, 0.2, 0.12, 0.08], atol=0.015)
    assert stats.spearmanr(base["ctf_hz"], base["afterdischarge_grade"])[0] < -0.3


@pytest.mark.slow
def test_ctf_effect_of_effective_arms():
    design = {**QUIET, "arms": {"placebo": {}, "quinine": {}}, "n_per_arm": 8000,
              "run_in_weeks": 1, "treatment_weeks": 1, "emg": {"enabled": True}}
    trial = simulate(design, 109)
    emg = trial.tables["emg"].merge(trial.tables["subjects"][["subject_id", "arm"]])
    wide = emg.pivot_table(index=["subject_id", "arm"], columns="visit", values="ctf_hz")
    change = np.log(wide["end"] / wide["baseline"]).groupby(level="arm").mean()
    assert abs(change["quinine"] - change["placebo"] - math.log(1.10)) < 0.015


@pytest.mark.slow
def test_carryover_appears_when_switched_on():
    base = {**QUIET, "type": "crossover", "arms": {"placebo": {}, "mexiletine": {}},
            "n_subjects": 6000, "baseline_rate": 5.0, "treatment_weeks": 4,
            "inclusion": {"min_cramps": 0}}

    def placebo_ratio(carry: float, seed: int) -> float:
        trial = simulate({**base, "carryover": carry}, seed)
        diary = trial.tables["diary"].merge(trial.tables["subjects"][["subject_id", "sequence"]])
        pl = diary[diary["treatment"] == "placebo"]
        means = pl.groupby(["sequence", "period"])["cramp_count"].mean()
        return float(means[("BA", "2")] / means[("AB", "1")])

    assert abs(placebo_ratio(0.0, 110) - 1.0) < 0.04
    assert abs(placebo_ratio(0.5, 111) - 0.5**0.5) < 0.04


@pytest.mark.slow
def test_between_trial_heterogeneity_appears_when_switched_on():
    base = {**QUIET, "arms": {"placebo": {}, "quinine": {}}, "n_per_arm": 60, "trials": 80,
            "inclusion": {"min_cramps": 0}}

    def spread(tau: float, seed: int) -> tuple[float, float]:
        trial = simulate({**base, "tau": tau}, seed)
        y = _totals(trial.tables["diary"], "treatment")
        subj = trial.tables["subjects"].set_index("subject_id")
        frame = pd.DataFrame({"y": y, "trial": subj.loc[y.index, "trial_id"],
                              "arm": subj.loc[y.index, "arm"]})
        means = frame.groupby(["trial", "arm"])["y"].mean().unstack()
        observed = np.log(means["quinine"] / means["placebo"])
        truth = [t["log_rr"]["quinine"] for t in trial.truth["trials"].values()]
        assert len(set(trial.tables["subjects"]["trial_id"])) == 80
        return float(observed.std()), float(np.std(truth, ddof=1))

    obs_off, true_off = spread(0.0, 112)
    obs_on, true_on = spread(0.4, 113)
    assert true_off < 1e-12
    assert abs(true_on - 0.4) < 0.1
    assert obs_on > obs_off + 0.15


@pytest.mark.slow
def test_adverse_event_incidence_follows_calibration():
    n = 20000
    design = {**QUIET, "arms": {"placebo": {}, "quinine": {}}, "n_per_arm": n,
              "inclusion": {"min_cramps": 0}, "run_in_weeks": 1}
    trial = simulate(design, 114)
    ae = trial.tables["adverse_events"].merge(trial.tables["subjects"][["subject_id", "arm"]])
    minor = ae[~ae["category"].isin(["thrombocytopenia", "qt_prolongation"])]
    # docs/calibration.md: 94 -> 127 per 1,000
    for arm, p in (("placebo", 0.094), ("quinine", 0.127)):
        frac = minor.loc[minor["arm"] == arm, "subject_id"].nunique() / n
        assert abs(frac - p) < 4 * math.sqrt(p * (1 - p) / n), (arm, frac)
    assert (ae.loc[ae["arm"] == "placebo", "category"] != "thrombocytopenia").all()
    assert ae["study_day"].between(1, 56).all()
