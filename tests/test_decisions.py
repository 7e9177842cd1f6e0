"""Decision quantities against closed-form values on synthetic posteriors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from scipy import stats

from crampstats.decisions import (
    absolute_difference,
    decision_table,
    probability_below,
    rank_probabilities,
    rate_ratio_summary,
    rule_met,
    success_verdicts,
)

ARMS = ["mexiletine", "quinine", "magnesium"]
MU = np.array([-0.7, -0.25, 0.05])
SD = np.array([0.15, 0.2, 0.1])
N_CHAIN, N_DRAW = 4, 50_000  # MC error of a probability <= 0.5 / sqrt(200k) ~ 0.0011


@pytest.fixture(scope="module")
def posterior() -> xr.DataTree:
    rng = np.random.default_rng(11)
    draws = rng.normal(MU, SD, size=(N_CHAIN, N_DRAW, len(ARMS)))
    ds = xr.Dataset(
        {"log_rr": (("chain", "draw", "arm"), draws)},
        coords={"chain": np.arange(N_CHAIN), "draw": np.arange(N_DRAW), "arm": ARMS},
    )
    return xr.DataTree.from_dict({"posterior": ds})


def test_rate_ratio_summary_matches_normal_closed_form(posterior):
    table = rate_ratio_summary(posterior, level=0.9, threshold=0.75).set_index("arm")
    z = stats.norm.ppf(0.95)
    np.testing.assert_allclose(table["rr_median"], np.exp(MU), rtol=2e-3)
    np.testing.assert_allclose(table["rr_lower"], np.exp(MU - z * SD), rtol=4e-3)
    np.testing.assert_allclose(table["rr_upper"], np.exp(MU + z * SD), rtol=4e-3)
    np.testing.assert_allclose(table["p_rr_lt_1"], stats.norm.cdf(-MU / SD), atol=4e-3)
    np.testing.assert_allclose(
        table["p_rr_lt_threshold"], stats.norm.cdf((np.log(0.75) - MU) / SD), atol=4e-3
    )
    assert table.attrs == {"level": 0.9, "threshold": 0.75}


def test_level_changes_interval_width(posterior):
    wide = rate_ratio_summary(posterior, level=0.99)
    narrow = rate_ratio_summary(posterior, level=0.5)
    assert (wide["rr_lower"] < narrow["rr_lower"]).all()
    assert (wide["rr_upper"] > narrow["rr_upper"]).all()


def test_accepts_dataset_dataarray_and_stacked_sample(posterior):
    ds = posterior["posterior"].to_dataset()
    a = rate_ratio_summary(posterior)
    b = rate_ratio_summary(ds)
    c = rate_ratio_summary(ds["log_rr"].stack(sample=("chain", "draw")))
    pd.testing.assert_frame_equal(a, b)
    pd.testing.assert_frame_equal(a, c)


def test_bad_arguments_raise(posterior):
    with pytest.raises(ValueError, match="level"):
        rate_ratio_summary(posterior, level=1.5)
    with pytest.raises(ValueError, match="threshold"):
        rate_ratio_summary(posterior, threshold=0)


def test_absolute_difference_matches_lognormal_mean(posterior):
    # Two subject types with fixed daily rates: standardised control rate is their mean.
    rates = np.array([0.5, 1.3])
    c = xr.DataArray(
        np.broadcast_to(np.log(rates), (N_CHAIN, N_DRAW, 2)), dims=("chain", "draw", "subject")
    )
    table = absolute_difference(posterior, c, level=0.95).set_index("arm")
    control = 7 * rates.mean()
    expected = control * (np.exp(MU + SD**2 / 2) - 1)
    np.testing.assert_allclose(table["control_per_week"], control)
    np.testing.assert_allclose(table["difference_mean"], expected, rtol=5e-3, atol=2e-3)
    np.testing.assert_allclose(table["difference_median"], control * (np.exp(MU) - 1), atol=5e-3)
    z = stats.norm.ppf(0.975)
    np.testing.assert_allclose(
        table["difference_lower"], control * (np.exp(MU - z * SD) - 1), atol=1e-2
    )
    np.testing.assert_allclose(table["arm_per_week"], control * np.exp(MU + SD**2 / 2), rtol=5e-3)


def test_absolute_difference_is_standardised_not_rate_of_mean(posterior):
    # A subject-varying control rate that co-varies with nothing: the standardised difference
    # uses the mean of exp(c), not exp(mean c).
    c = xr.DataArray(
        np.broadcast_to(np.log([0.1, 2.0]), (N_CHAIN, N_DRAW, 2)), dims=("chain", "draw", "subject")
    )
    table = absolute_difference(posterior, c).set_index("arm")
    assert table.loc["mexiletine", "control_per_week"] == pytest.approx(7 * 1.05)


def test_absolute_difference_refuses_mismatched_draws(posterior):
    c = xr.DataArray(np.zeros((2, 10, 3)), dims=("chain", "draw", "subject"))
    with pytest.raises(ValueError, match="same draws"):
        absolute_difference(posterior, c)


def test_ranking_trivially_ordered():
    # Deterministic, separated effects: ranks are certain.
    draws = xr.DataArray(
        np.tile(np.array([-1.0, -0.5, 0.3])[:, None], (1, 400)),
        dims=("arm", "sample"),
        coords={"arm": ["a", "b", "c"]},
    )
    table = rank_probabilities(draws, control_arm="placebo").set_index("arm")
    assert list(table.index) == ["a", "b", "placebo", "c"]
    np.testing.assert_allclose(table["p_best"], [1, 0, 0, 0])
    np.testing.assert_allclose(table["mean_rank"], [1, 2, 3, 4])
    np.testing.assert_allclose(table["sucra"], [1, 2 / 3, 1 / 3, 0])
    np.testing.assert_allclose(table.loc["placebo", "p_rank_3"], 1.0)
    higher = rank_probabilities(draws, control_arm="placebo", lower_is_better=False)
    assert higher["arm"].iloc[0] == "c"


def test_ranking_two_arm_symmetry_matches_closed_form():
    # Arm vs control only: P(best) = P(log RR < 0) = Phi(-mu/sd); SUCRA then equals P(best).
    rng = np.random.default_rng(5)
    draws = xr.DataArray(
        rng.normal(-0.2, 0.4, size=(1, 100_000)), dims=("arm", "sample"), coords={"arm": ["x"]}
    )
    table = rank_probabilities(draws).set_index("arm")
    p = stats.norm.cdf(0.2 / 0.4)
    assert table.loc["x", "p_best"] == pytest.approx(p, abs=5e-3)
    assert table.loc["x", "sucra"] == pytest.approx(p, abs=5e-3)
    assert table["p_best"].sum() == pytest.approx(1.0)


def test_ranking_probabilities_rows_and_columns_sum_to_one(posterior):
    table = rank_probabilities(posterior)
    rank_cols = [c for c in table.columns if c.startswith("p_rank_")]
    np.testing.assert_allclose(table[rank_cols].sum(axis=1), 1.0)
    np.testing.assert_allclose(table[rank_cols].sum(axis=0), 1.0)


def test_decision_table_joins_everything(posterior):
    c = xr.DataArray(np.zeros((N_CHAIN, N_DRAW, 1)), dims=("chain", "draw", "subject"))
    table = decision_table(posterior, c)
    assert list(table["arm"]) == ARMS
    for col in ("rr_median", "p_rr_lt_threshold", "difference_mean", "p_best", "sucra"):
        assert col in table
    assert "placebo" not in set(table["arm"])


def test_rule_probability_and_decision(posterior):
    # P(RR < t) is the share of draws strictly below log t; the rule is met strictly above
    draws = np.log([[0.5, 0.7, 0.75, 0.8, 1.2], [0.6, 0.6, 0.6, 0.6, 0.6]])
    p = probability_below(draws, np.log(0.75))
    np.testing.assert_array_equal(p, [0.4, 1.0])
    np.testing.assert_array_equal(rule_met(p, 0.4), [False, True])
    # the table's probabilities are these (the power simulation calls them too)
    table = rate_ratio_summary(posterior, threshold=0.75)
    values = posterior["posterior"]["log_rr"].transpose("arm", "chain", "draw").values
    values = values.reshape(len(ARMS), -1)
    np.testing.assert_array_equal(table["p_rr_lt_1"], probability_below(values, 0.0))
    np.testing.assert_array_equal(
        table["p_rr_lt_threshold"], probability_below(values, np.log(0.75))
    )


# ---------------------------------------------------------------------------------------------
# Verdicts under a success rule and a family-wise strategy (issue 14)
# ---------------------------------------------------------------------------------------------
def _exact_draws(probabilities: dict[str, float], n: int = 1000) -> xr.DataArray:
    """Draws of log RR whose share below 0 is exactly ``p`` per arm and below log 0.75 zero.

    ``round(p * n)`` draws at log 0.9 (an RR between 0.75 and 1), the rest at log 1.1.
    """
    rows = []
    for p in probabilities.values():
        k = round(p * n)
        rows.append(np.r_[np.full(k, np.log(0.9)), np.full(n - k, np.log(1.1))])
    return xr.DataArray(
        np.array(rows), dims=("arm", "sample"), coords={"arm": list(probabilities)}
    )


def test_verdicts_match_the_rule_on_hand_built_posteriors():
    draws = _exact_draws({"a": 0.98, "b": 0.975, "c": 0.974})
    table = success_verdicts(draws, [(1.0, 0.975)])
    crit = table[table["rule"] != "success"].set_index("arm")
    np.testing.assert_allclose(crit["probability"], [0.98, 0.975, 0.974], atol=1e-12)
    # >= as the plan states it: exactly at the threshold is met, one draw less is not
    assert crit["met"].tolist() == [True, True, False]
    success = table[table["rule"] == "success"].set_index("arm")["met"]
    assert success.tolist() == [True, True, False]
    assert set(table["multiplicity"]) == {"none"}
    # a second criterion no draw meets (nothing below RR 0.75) fails every arm
    both = success_verdicts(draws, [(1.0, 0.975), (0.75, 0.5)])
    assert not both.loc[both["rule"] == "success", "met"].any()
    assert both.loc[both["quantity"] == "P(RR < 0.75)", "probability"].eq(0).all()


def test_fixed_sequence_stops_at_the_first_failure():
    draws = _exact_draws({"a": 0.99, "b": 0.5, "c": 0.99})
    met = (
        success_verdicts(draws, [(1.0, 0.975)], "fixed_sequence", ["a", "b", "c"])
        .query("rule == 'success'")
        .set_index("arm")["met"]
    )
    assert met.to_dict() == {"a": True, "b": False, "c": False}  # c passes its own rule
    met = (
        success_verdicts(draws, [(1.0, 0.975)], "fixed_sequence", ["c", "a", "b"])
        .query("rule == 'success'")
        .set_index("arm")["met"]
    )
    assert met.to_dict() == {"c": True, "a": True, "b": False}
    with pytest.raises(ValueError, match="order"):
        success_verdicts(draws, [(1.0, 0.975)], "fixed_sequence", ["a", "b"])


def test_calibrated_threshold_replaces_only_the_rr_1_criterion():
    draws = _exact_draws({"a": 0.99, "b": 0.995})
    table = success_verdicts(draws, [(1.0, 0.975), (1.2, 0.5)], "calibrated", calibrated=0.993)
    crit = table[table["quantity"] == "P(RR < 1)"].set_index("arm")
    assert crit["threshold"].tolist() == [0.993, 0.993]
    assert crit["met"].tolist() == [False, True]
    other = table[table["quantity"] == "P(RR < 1.2)"]
    assert other["threshold"].eq(0.5).all() and other["met"].all()
    with pytest.raises(ValueError, match="calibrated threshold"):
        success_verdicts(draws, [(1.0, 0.975)], "calibrated")


def test_difference_criteria_read_the_draws_as_they_are():
    # intensity: draws are differences in mean intensity; a criterion (d, p) reads P(diff < d)
    a = np.r_[np.full(980, -1.5), np.full(20, 0.5)]
    b = np.r_[np.full(500, -0.5), np.full(500, 0.2)]
    diff = xr.DataArray(np.array([a, b]), dims=("arm", "sample"), coords={"arm": ["a", "b"]})
    table = success_verdicts(diff, [(0.0, 0.975), (-1.0, 0.5)], difference=True)
    crit = table[table["rule"] != "success"].set_index(["arm", "quantity"])["probability"]
    assert crit.to_dict() == {
        ("a", "P(difference < 0)"): 0.98, ("a", "P(difference < -1)"): 0.98,
        ("b", "P(difference < 0)"): 0.5, ("b", "P(difference < -1)"): 0.0,
    }  # fmt: skip
    success = table.query("rule == 'success'").set_index("arm")["met"]
    assert success.to_dict() == {"a": True, "b": False}
    # the calibrated threshold replaces the no-effect criterion, difference 0
    calibrated = success_verdicts(diff, [(0.0, 0.975), (-1.0, 0.5)], "calibrated", calibrated=0.99,
                                  difference=True)  # fmt: skip
    thresholds = calibrated.set_index("quantity")["threshold"].dropna()
    assert thresholds["P(difference < 0)"].eq(0.99).all()
    assert thresholds["P(difference < -1)"].eq(0.5).all()
