"""The verdict tables: decisions.csv and the rule's operating characteristics at the trial's size.

The primary fit is hand-built (posterior draws placed on the example trial's prepared data, no
sampling), so every expected number is known.
"""

from __future__ import annotations

import numpy as np
import pytest
from helpers import INTENSITY_PLAN, hand_built_crossover, hand_built_intensity, hand_built_nb_totals
from scipy import special, stats

from crampstats.closed_form import within_subject_variance, zhu_lakkis_power, zhu_lakkis_variance
from crampstats.compare.verdict import (
    DECISIONS_COLUMNS,
    OPERATING_COLUMNS,
    PosteriorDesign,
    endpoint_verdict_tables,
    operating_rows,
    rule_power,
    verdict_tables,
)
from crampstats.derive import read_derived
from crampstats.models import intensity
from crampstats.multiplicity import calibrated_probability
from crampstats.plan import parse_plan

TRUE_LOG_RR = [-0.6, -0.2, -0.05, 0.0]


@pytest.fixture(scope="module")
def trial(example_results):
    derived, config = read_derived(example_results("example") / "derived")
    config = {**config, "trial_id": "example"}
    return hand_built_nb_totals(derived, config, TRUE_LOG_RR), config


def with_plan(config, **multiplicity):
    out = dict(config)
    out["analysis"] = {**config["analysis"], "plan": {"multiplicity": multiplicity}}
    return out


def test_decisions_follow_the_rule_and_carry_the_plan_hash(trial):
    records, config = trial
    tables = verdict_tables(records, config)
    decisions = tables["decisions"]
    assert list(decisions.columns) == DECISIONS_COLUMNS
    assert decisions["plan_hash"].eq(parse_plan(config).hash).all()
    assert decisions["comparator"].eq("placebo").all() and decisions["trial_id"].eq("example").all()
    crit = decisions[decisions["rule"] != "success"]
    assert (crit["met"] == (crit["probability"] >= crit["threshold"])).all()
    success = decisions[decisions["rule"] == "success"].set_index("arm")["met"]
    # mexiletine (log RR -0.6, sd 0.15) meets both criteria; the others fail P(RR < 1) >= 0.975
    assert success.to_dict() == {
        "mexiletine": True, "quinine": False, "vitamin_b_complex": False, "magnesium": False,
    }  # fmt: skip


def test_calibrated_strategy_uses_the_trials_allocation(trial):
    records, config = trial
    tables = verdict_tables(records, with_plan(config, strategy="calibrated"))
    crit = tables["decisions"].query("quantity == 'P(RR < 1)'")
    expected = calibrated_probability([40] * 5, 0.025, 200_000, 14)
    np.testing.assert_allclose(crit["threshold"], expected)
    assert tables["operating_characteristics"]["family_false_positive_rate"].eq(0.025).all()


def test_operating_characteristics_match_the_closed_form(trial):
    records, config = trial
    plan = parse_plan(config)
    oc = verdict_tables(records, config)["operating_characteristics"]
    assert list(oc.columns) == OPERATING_COLUMNS and len(oc) == 4
    row = oc.iloc[0]
    params = {"rate": row["control_rate_per_day"], "k": 3.0, "exposure": row["exposure_days"]}
    assert row["k"] == 3.0 and row["n_arm"] == row["n_control"] == 40
    # the single criterion P(RR < 1) >= 1 - a is Zhu and Lakkis' one-sided test at level a
    single = parse_plan({"analysis": {"plan": {"success": {"criteria": [
        {"rate_ratio": 1.0, "probability": 0.975}]}}}})  # fmt: skip
    for rr in (0.6, 0.75, 0.9):
        se = np.sqrt(zhu_lakkis_variance(params["rate"], rr, 3.0, params["exposure"]) / 40)
        expected = zhu_lakkis_power(params["rate"], rr, 3.0, params["exposure"], 40)
        assert rule_power(single, se, rr) == pytest.approx(expected, rel=1e-9)
    # at RR 1 the single criterion's false-positive rate is its level
    se = np.sqrt(zhu_lakkis_variance(params["rate"], 1.0, 3.0, params["exposure"]) / 40)
    assert rule_power(single, se, 1.0) == pytest.approx(0.025, rel=1e-9)
    # the default rule adds "estimate below 0.75": at the planning effect 0.75 that is a coin flip
    assert plan.planning_rate_ratio == 0.75
    assert row["power"] == pytest.approx(0.5, abs=1e-9)
    assert 0 < row["false_positive_rate"] < 0.025
    # unadjusted family-wise rate of four actives on one control (P(RR < 1) criterion)
    assert 0.07 < row["family_false_positive_rate"] < 0.09


def test_fixed_sequence_and_exchangeable_rows(trial):
    records, config = trial
    order = ["magnesium", "mexiletine", "quinine", "vitamin_b_complex"]
    tables = verdict_tables(records, with_plan(config, strategy="fixed_sequence", order=order))
    success = tables["decisions"].query("rule == 'success'")
    assert success["arm"].tolist() == order and not success["met"].any()  # magnesium fails first
    exchangeable = with_plan(config, strategy="exchangeable", calibration_draws=20_000)
    tables = verdict_tables(records, exchangeable)
    threshold = tables["decisions"].query("quantity == 'P(RR < 1)'")["threshold"]
    assert threshold.nunique() == 1 and 0.975 < threshold.iloc[0] < 0.9999
    assert tables["decisions"]["multiplicity"].str.startswith("exchangeable: common").all()


def test_rule_power_is_zhu_lakkis_for_a_parallel_design():
    params = {"rate": 0.9, "k": 3.0, "exposure": 56.0}
    single = parse_plan({"analysis": {"plan": {"success": {"criteria": [
        {"rate_ratio": 1.0, "probability": 0.975}]}}}})  # fmt: skip
    for rr in (0.6, 0.75, 0.9):
        se = np.sqrt(zhu_lakkis_variance(params["rate"], rr, 3.0, 56.0, 1.0) / 40)
        expected = zhu_lakkis_power(params["rate"], rr, 3.0, 56.0, 40)
        assert rule_power(single, se, rr) == pytest.approx(expected, rel=1e-9)


@pytest.fixture(scope="module")
def crossover_trial(example_results):
    derived, config = read_derived(example_results("example_crossover") / "derived")
    config = {**config, "trial_id": "example_crossover"}
    return derived, config


def test_crossover_operating_characteristics_follow_the_within_patient_closed_form(
    crossover_trial,
):
    derived, config = crossover_trial
    records = hand_built_crossover(derived, config, log_rr=-0.7, sigma_d=0.3, k=12.0, rate=2.0)
    oc = verdict_tables(records, config)["operating_characteristics"]
    assert list(oc.columns) == OPERATING_COLUMNS and len(oc) == 1
    row = oc.iloc[0]
    sd = records["crossover"].prepared.subject_data
    on_arm = sd["n_periods_arm"].values[:, 0]
    on_control = sd["n_periods"].values - on_arm
    n_both = int(np.sum((on_arm > 0) & (on_control > 0)))
    assert row["n_arm"] == row["n_control"] == n_both
    assert row["k"] == 12.0 and row["patient_effect_sd"] == 0.3
    assert row["control_rate_per_day"] == pytest.approx(2.0)
    # every subject's control mean per period: 2 a day times their mean diarised days a period
    prepared = records["crossover"].prepared
    idx = prepared.data["subject_idx"]
    days = np.bincount(idx, np.exp(prepared.data["log_exposure"])) / np.bincount(idx)
    assert row["exposure_days"] == pytest.approx(days.mean())
    plan = parse_plan(config)
    rr = plan.planning_rate_ratio
    se = np.sqrt(within_subject_variance(2.0 * days, on_arm, on_control, rr, 12.0, 0.3))
    assert row["power"] == pytest.approx(rule_power(plan, se, rr), rel=1e-9)
    # one active arm: the family-wise rate is the comparison's own
    assert row["family_false_positive_rate"] == row["false_positive_rate"]
    assert "within-patient" in row["approximation"]
    # more heterogeneity between patients, less power
    wider = hand_built_crossover(derived, config, log_rr=-0.7, sigma_d=0.6, k=12.0, rate=2.0)
    wider_oc = verdict_tables(wider, config)["operating_characteristics"]
    assert wider_oc["power"].iloc[0] < row["power"]


def test_frailty_weekly_primary_gets_the_two_group_closed_form(trial, example_derived):
    # the same draws on the weekly model: its subject totals are NB with size phi, so the
    # closed form is the two-group one at phi and the subjects' total diarised days
    records, config = trial
    weekly = hand_built_nb_totals(
        example_derived("example"), config, TRUE_LOG_RR, model_name="frailty_weekly"
    )
    oc = verdict_tables(weekly, config)["operating_characteristics"]
    reference = verdict_tables(records, config)["operating_characteristics"]
    assert len(oc) == 4 and oc["k"].eq(3.0).all() and oc["patient_effect_sd"].isna().all()
    prepared = weekly["frailty_weekly"].prepared
    rows = prepared.extra
    days = np.bincount(rows["subject_idx"], np.exp(rows["log_exposure"]))
    assert oc["exposure_days"].iloc[0] == pytest.approx(days.mean())
    # same subjects, rate and size: the same operating characteristics as nb_totals up to the
    # exposure each model counts (weekly rows vs the totals' diarised days)
    for column in ("power", "false_positive_rate"):
        np.testing.assert_allclose(oc[column], reference[column], rtol=0.02)


def test_an_intensity_plan_is_decided_on_the_intensity_fit(trial):
    records, base = trial
    config = {**base, "analysis": {**base["analysis"], "plan": INTENSITY_PLAN}}
    fit, n = hand_built_intensity({"mexiletine": -0.9, "quinine": -0.1})
    tables = endpoint_verdict_tables({"intensity": fit}, config)
    decisions = tables["decisions"]
    assert list(decisions.columns) == DECISIONS_COLUMNS
    assert decisions["endpoint"].eq("intensity").all()
    # operating characteristics at the posterior SD of each difference; no planning difference
    oc = tables["operating_characteristics"].set_index("arm")
    plan = parse_plan(config)
    for arm in ("mexiletine", "quinine"):
        sd = float(np.std(intensity.difference_draws(fit).sel(arm=arm).values))
        expected = rule_power(plan, sd, 0.0, difference=True)
        assert oc.loc[arm, "false_positive_rate"] == pytest.approx(expected, rel=1e-9)
    assert oc["power"].isna().all() and oc["planning_rr"].isna().all()
    success = {**INTENSITY_PLAN["success"], "planning_difference": -1}
    planned = {**INTENSITY_PLAN, "success": success}
    config_planned = {**config, "analysis": {**config["analysis"], "plan": planned}}
    oc = endpoint_verdict_tables({"intensity": fit}, config_planned)["operating_characteristics"]
    # with criteria P(diff < 0) >= 0.975 and P(diff < -1) >= 0.5, a true -1 is a coin flip at most
    assert oc["planning_difference"].eq(-1).all() and oc["power"].between(0.3, 0.5).all()
    # with run-in slope 0 the standardised difference is 10 n / (n - 1) (expit(a + beta) - expit(a))
    post = fit["posterior"]
    alpha = post["alpha"].values.ravel()
    for arm in ("mexiletine", "quinine"):
        beta = post["beta"].sel(arm=arm).values.ravel()
        diff = 10 * n / (n - 1) * (special.expit(alpha + beta) - special.expit(alpha))
        mine = decisions[decisions["arm"] == arm].set_index("quantity")["probability"]
        assert mine["P(difference < 0)"] == pytest.approx(np.mean(diff < 0), abs=1e-12)
        assert mine["P(difference < -1)"] == pytest.approx(np.mean(diff < -1), abs=1e-12)
    success = decisions.query("rule == 'success'").set_index("arm")["met"]
    assert success.to_dict() == {"mexiletine": True, "quinine": False}
    # the count verdict stays silent under an intensity plan; a frequency plan ignores the fit
    assert verdict_tables(records, config)["decisions"].empty
    assert endpoint_verdict_tables({"intensity": fit}, base) == {}
    # an intensity analysis that failed (no fit): no decisions, the diagnostics say why
    assert endpoint_verdict_tables({}, config)["decisions"].empty


def test_a_primary_without_a_closed_form_uses_its_posterior_sd(trial):
    # multi_trial (or a clustered model chosen as primary): the estimate's SE is the fit's
    # posterior SD, the same under the null and the planning effect
    _, config = trial
    plan = parse_plan(config)
    design = PosteriorDesign({"a": 0.2}, {"placebo": 50, "a": 50}, "placebo")
    row = operating_rows(plan, ["placebo", "a"], [50, 50], design, None).iloc[0]
    assert row["false_positive_rate"] == pytest.approx(rule_power(plan, 0.2, 1.0), rel=1e-12)
    # default rule: the estimate must lie below log 1 - 1.96 x 0.2 and below log 0.75; at a
    # true RR 0.75 the first bound binds
    bound = min(-1.959964 * 0.2, np.log(0.75))
    expected = stats.norm.cdf((bound - np.log(0.75)) / 0.2)
    assert row["power"] == pytest.approx(expected, rel=1e-6)
    assert np.isnan(row["control_rate_per_day"]) and np.isnan(row["k"])
    # one comparison: the family-wise rate is its own, not the Monte Carlo bound of P(RR < 1)
    assert row["family_false_positive_rate"] == row["false_positive_rate"]
    assert "posterior SD" in row["approximation"]
