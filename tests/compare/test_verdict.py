"""The verdict tables: decisions.csv and the rule's operating characteristics at the trial's size.

The primary fit is hand-built (posterior draws placed on the example trial's prepared data, no
sampling), so every expected number is known.
"""

from __future__ import annotations

import numpy as np
import pytest
from helpers import hand_built_nb_totals

from crampstats.closed_form import zhu_lakkis_power
from crampstats.compare.verdict import (
    DECISIONS_COLUMNS,
    OPERATING_COLUMNS,
    rule_power,
    verdict_tables,
)
from crampstats.derive import read_derived
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
        expected = zhu_lakkis_power(params["rate"], rr, 3.0, params["exposure"], 40)
        assert rule_power(single, params, 40, 1.0, rr) == pytest.approx(expected, rel=1e-9)
    # at RR 1 the single criterion's false-positive rate is its level
    assert rule_power(single, params, 40, 1.0, 1.0) == pytest.approx(0.025, rel=1e-9)
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
