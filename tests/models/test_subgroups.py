"""Subgroup model (arm x subgroup interactions, shrunk): data handling, twin, recovery, twin limit.

The fast tests check the analysis frame and the twin's contrast arithmetic without sampling;
the slow ones fit the model to a trial simulated with a known interaction.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from helpers import CORES

from crampstats.engine import diagnose
from crampstats.models import ModelDataError
from crampstats.models.subgroups import (
    OTHER,
    Subgroups,
    interaction_draws,
    plan_label,
    subgroup_effects,
    subgroup_frame,
    subgroup_twin,
)
from crampstats.models.synthetic import simulate_parallel_trial

#: True rate ratio of the active arm in each subgroup: a qualitative-looking interaction
#: (halved in A, none in B), log ratio of rate ratios log 2 = 0.69.
TRUTH = {"A": 0.5, "B": 1.0}


def simulate_subgroups(
    rng: np.random.Generator, truth: dict[str, float], n_per_cell: int
) -> pd.DataFrame:
    """Treatment-period rows of a two-arm trial whose effect differs by ``subgroup``."""
    frames = []
    for level, rr in truth.items():
        periods, _, _ = simulate_parallel_trial(
            rng, {"placebo": 1.0, "active": rr}, n_per_cell, weeks=8, k=3.0, b=0.7
        )
        periods = periods.loc[periods["period"] == "treatment"].copy()
        periods["subject_id"] = level + "-" + periods["subject_id"].astype(str)
        periods["origin"] = level
        frames.append(periods)
    return pd.concat(frames, ignore_index=True)


@pytest.fixture(scope="module")
def trial() -> pd.DataFrame:
    return simulate_subgroups(np.random.default_rng(20261203), TRUTH, 120)


# ---------------------------------------------------------------------------------------------
# Analysis frame (no sampling)
# ---------------------------------------------------------------------------------------------
def _periods(levels: dict[str, dict[str, int]]) -> pd.DataFrame:
    rows = []
    for level, per_arm in levels.items():
        for arm, n in per_arm.items():
            rows += [
                {"subject_id": f"{level}-{arm}-{i}", "arm": arm, "period": "treatment",
                 "count": 3, "exposure_days": 28.0, "log_baseline_rate": -0.1, "origin": level}
                for i in range(n)
            ]  # fmt: skip
    return pd.DataFrame(rows)


def test_small_levels_are_pooled_or_left_out_with_the_reason():
    periods = _periods(
        {
            "big": {"placebo": 10, "x": 10},
            "mid": {"placebo": 4, "x": 5},
            "s1": {"placebo": 2, "x": 1},
            "s2": {"placebo": 1, "x": 2},
        }
    )
    sub = subgroup_frame(periods, "origin", "placebo", min_per_arm=3)
    assert sub.levels == ["big", "mid", OTHER]  # largest first, the pool last
    assert set(sub.frame["subgroup"]) == {"big", "mid", OTHER}
    assert "s1, s2 pooled" in sub.notes[0]
    # with a larger minimum the pool is too small: its subjects are left out, said so
    sub = subgroup_frame(periods, "origin", "placebo", min_per_arm=4)
    assert sub.levels == ["big", "mid"] and len(sub.frame) == 29
    assert "left out (6 subjects" in sub.notes[0]


def test_absent_or_single_level_columns_are_refused_with_the_reason():
    periods = _periods({"only": {"placebo": 5, "x": 5}})
    with pytest.raises(ModelDataError, match="absent or holds no value"):
        subgroup_frame(periods, "etiology")
    with pytest.raises(ModelDataError, match="fewer than two levels"):
        subgroup_frame(periods, "origin")
    periods.loc[:3, "origin"] = None
    with pytest.raises(ModelDataError, match="fewer than two levels"):
        subgroup_frame(periods, "origin")


def test_plan_label_reads_the_analysis_plan():
    assert plan_label("etiology", {}) == "exploratory"
    config = {"analysis": {"plan": {"subgroups": ["etiology"]}}}
    assert plan_label("etiology", config) == "prespecified"
    assert plan_label("cramp_origin", config) == "exploratory"


def test_twin_contrast_equals_the_reparameterised_glm(trial):
    """``beta_arm + beta_arm:level`` with ``sqrt(c' V c)`` is the arm coefficient of the GLM
    whose reference level is that level: the maximum likelihood fit does not depend on the
    parameterisation, so both agree up to the optimiser's tolerance (1e-4 on log RR and SE,
    against SEs of ~0.07)."""
    sub = subgroup_frame(trial, "origin")
    twin = subgroup_twin(sub.frame, sub.levels).set_index("level")
    for ref in sub.levels:
        frame = sub.frame
        x = frame["log_baseline_rate"] - frame["log_baseline_rate"].mean()
        active = (frame["arm"] == "active").astype(float)
        other = (frame["subgroup"] != ref).astype(float)
        X = np.column_stack([np.ones(len(frame)), active, other, active * other, x])
        fit = sm.NegativeBinomial(
            frame["count"].to_numpy(), X, offset=np.log(frame["exposure_days"].to_numpy()),
            loglike_method="nb2",
        ).fit(disp=0, maxiter=500)  # fmt: skip
        assert twin.loc[ref, "log_rr"] == pytest.approx(fit.params[1], abs=1e-4)
        assert twin.loc[ref, "se"] == pytest.approx(fit.bse[1], abs=1e-4)


# ---------------------------------------------------------------------------------------------
# Fits with a known interaction
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def shrunk_fit(trial):
    sub = subgroup_frame(trial, "origin")
    return sub, Subgroups({"levels": sub.levels}).fit(sub.frame, seed=3, cores=CORES)


@pytest.fixture(scope="module")
def unpooled_fit(trial):
    sub = subgroup_frame(trial, "origin")
    model = Subgroups({"levels": sub.levels, "fixed_tau": 10.0})
    return sub, model.fit(sub.frame, seed=4, cores=CORES)


@pytest.mark.slow
def test_known_interaction_is_recovered(shrunk_fit):
    """Each subgroup's true rate ratio lies within 3.5 posterior SDs of the posterior median
    (a calibrated posterior misses that by chance with probability ~5e-4 per cell), and an
    interaction of log 2 with standard error ~0.10 (120 subjects a cell, k = 3) is detected:
    P(sign) > 0.975 for both levels, although tau's prior shrinks it."""
    _, idata = shrunk_fit
    assert diagnose(idata)["status"] == "ok"
    theta = idata["posterior"]["log_rr_subgroup"].sel(arm="active")
    for level, rr in TRUTH.items():
        draws = theta.sel(level=level).values.ravel()
        assert abs(np.median(draws) - np.log(rr)) < 3.5 * draws.std()
    table = subgroup_effects(idata).set_index("level")
    assert (table["p_interaction"] > 0.975).all()
    # the reported interaction of A: its rate ratio over B's (truth 0.5)
    ratio = (theta.sel(level="A") - theta.sel(level="B")).values.ravel()
    assert abs(np.median(ratio) - np.log(0.5)) < 3.5 * ratio.std()
    assert table.loc["A", "interaction_median"] == pytest.approx(np.exp(np.median(ratio)))
    assert table.loc["B", "interaction_median"] == pytest.approx(np.exp(-np.median(ratio)))
    assert table.loc["A", "n"] == 120 and table.loc["A", "n_control"] == 120


@pytest.mark.slow
def test_unpooled_limit_matches_the_glm_twin(unpooled_fit):
    """With tau fixed at 10 the interactions are unpooled and the priors of the cells are flat
    against SEs of ~0.07-0.10, so posterior and likelihood agree: median within 0.2 twin SE
    (posterior median minus MLE is O(SE^2) for a near-normal likelihood) plus 4 Monte Carlo
    SEs, posterior SD within 15 % of the twin's SE (4,000 draws estimate an SD to ~2 %)."""
    sub, idata = unpooled_fit
    twin = subgroup_twin(sub.frame, sub.levels)
    inter = interaction_draws(idata).sel(arm="active", level="B").values.ravel()
    est, se = twin.attrs["interaction"][("active", "B")]
    mcse = inter.std() / np.sqrt(1000)  # conservative: ESS >= 1000 of 4000 draws
    assert abs(np.median(inter) - est) < 0.2 * se + 4 * mcse
    assert inter.std() == pytest.approx(se, rel=0.15)
    theta = idata["posterior"]["log_rr_subgroup"].sel(arm="active")
    for row in twin.itertuples():
        draws = theta.sel(level=row.level).values.ravel()
        assert abs(np.median(draws) - row.log_rr) < 0.2 * row.se + 4 * draws.std() / np.sqrt(1000)
        assert draws.std() == pytest.approx(row.se, rel=0.15)
