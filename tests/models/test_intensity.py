"""Statistical checks of the ``intensity`` model: recovery, likelihood, twin, refusals.

Two sources of simulated data with a known truth: the model's own data-generating process
(:func:`_simulate`: squeezed subject means drawn from the beta regression, so every parameter
and the standardised difference are known exactly) and the trial simulator, whose per-arm
``intensity_shift`` moves every treatment-period rating by a known number of points (the true
difference in mean intensity, up to clipping at 0 and 10). The agreement check with the twin
uses the bundled example trial. Every fit uses the example trial's five arms, so all of them
share one compiled model.

Defaults changed by the intercurrent-event work (issue 14, item 8): ``intensity_frame`` now uses
the ``composite`` strategy (a subject with treatment diary but no cramp has mean 0), so the
frame test checks both strategies; the model's precision now grows with the days rated
(``g``), so the likelihood test includes ``g`` and the per-subject precision.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from helpers import (
    CORES,
    EXAMPLE_ARMS,
    SAMPLER,
    check_joint,
    draws_of,
    one_draw,
    simulated_derived,
)
from scipy import special, stats

from crampstats.engine import ATTR_PREFIX, compile_cache_info, diagnose
from crampstats.models._common import ModelDataError
from crampstats.models.intensity import (
    EFFECT_COLUMNS,
    IntensityModel,
    intensity_effects,
    intensity_frame,
    intensity_twin,
)

ARMS = EXAMPLE_ARMS
ACTIVE = ARMS[1:]
TRUTH = {
    "alpha": float(special.logit(0.55)),
    "beta": {"mexiletine": -0.3, "quinine": -0.15, "vitamin_b_complex": 0.0, "magnesium": 0.1},
    "b": 0.9,
    "phi": 80.0,
}
#: Trial-simulator shifts of the 0-10 ratings on treatment (placebo 0).
SHIFTS = {"mexiletine": -1.0, "quinine": -0.5, "vitamin_b_complex": 0.0, "magnesium": 0.0}


# ---------------------------------------------------------------------------------------------
# Data-generating processes
# ---------------------------------------------------------------------------------------------
def _simulate(rng: np.random.Generator, n_per_arm: int) -> tuple[pd.DataFrame, dict[str, float]]:
    """Subject means from the model (written out here); returns the frame and the true
    standardised differences (expected mean intensity under each arm minus under placebo,
    averaged over these subjects)."""
    arm = np.repeat(ARMS, n_per_arm)
    n = arm.size
    runin = 10.0 * special.expit(special.logit(0.55) + 0.6 * rng.standard_normal(n))
    x = np.log((runin / 10 * (n - 1) + 0.5) / (n - (runin / 10 * (n - 1) + 0.5)))
    x = x - x.mean()
    shift = np.array([0.0 if a == "placebo" else TRUTH["beta"][a] for a in arm])
    mu = special.expit(TRUTH["alpha"] + shift + TRUTH["b"] * x)
    y = rng.beta(mu * TRUTH["phi"], (1 - mu) * TRUTH["phi"])
    mean = 10.0 * (n * y - 0.5) / (n - 1)  # the squeeze undone: the model squeezes back to y
    assert ((mean > 0) & (mean < 10)).all()
    frame = pd.DataFrame(
        {
            "trial_id": "sim",
            "subject_id": [f"s{i:04d}" for i in range(n)],
            "arm": arm,
            "intensity_mean": mean,
            "n_rated_days": 30,
            "runin_intensity_mean": runin,
            "runin_rated_days": 8,
        }
    )
    # E[mean_i | arm] = 10 (n mu_i - 0.5) / (n - 1) for the subject's mu under that arm
    mu0 = special.expit(TRUTH["alpha"] + TRUTH["b"] * x)
    truth = {
        a: float(np.mean(10 * n / (n - 1) * (special.expit(np.log(mu0 / (1 - mu0)) + s) - mu0)))
        for a, s in TRUTH["beta"].items()
    }
    return frame, truth


def _simulator_derived(seed: int, n_per_arm: int) -> dict[str, pd.DataFrame]:
    design = {
        "trial_id": "int",
        "n_per_arm": n_per_arm,
        "arms": {a: {"intensity_shift": SHIFTS.get(a, 0.0)} for a in ARMS},
    }
    return simulated_derived(design, seed)[1]


def _model(**config) -> IntensityModel:
    return IntensityModel({"arms": ARMS, **config})


def _difference_draws(idata, arm: str) -> np.ndarray:
    """Standardised difference per draw, computed from the posterior here (not the module)."""
    post = idata["posterior"]
    n = json.loads(post.attrs[f"{ATTR_PREFIX}constants"])["n_squeeze"]
    x = idata["constant_data"]["x_baseline"].values
    eta0 = draws_of(idata, "alpha")[:, None] + draws_of(idata, "b")[:, None] * x
    eta1 = eta0 + draws_of(idata, "beta", arm=arm)[:, None]
    return 10 * n / (n - 1) * (special.expit(eta1) - special.expit(eta0)).mean(axis=1)


# ---------------------------------------------------------------------------------------------
# Fits (module scope)
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def recovery():
    frame, truth = _simulate(np.random.default_rng(2026_11_25), 80)
    return frame, truth, _model().fit(frame, seed=91, **SAMPLER)


@pytest.fixture(scope="module")
def simulator():
    frame = intensity_frame(_simulator_derived(17, 60))
    return frame, _model().fit(frame, seed=92, **SAMPLER)


@pytest.fixture(scope="module")
def example(example_derived):
    frame = intensity_frame(example_derived("example"))
    return frame, _model().fit(frame, seed=93, log_likelihood=True, **SAMPLER)


# ---------------------------------------------------------------------------------------------
# Recovery
# ---------------------------------------------------------------------------------------------
def test_recovers_known_parameters(recovery):
    _, truth, idata = recovery
    assert diagnose(idata)["status"] == "ok"
    names = [*(f"beta[{a}]" for a in ACTIVE), "alpha", "b", "log phi"]
    draws = np.column_stack(
        [draws_of(idata, "beta", arm=a) for a in ACTIVE]
        + [draws_of(idata, "alpha"), draws_of(idata, "b"), np.log(draws_of(idata, "phi"))]
    )
    true = np.r_[
        [TRUTH["beta"][a] for a in ACTIVE], TRUTH["alpha"], TRUTH["b"], np.log(TRUTH["phi"])
    ]
    check_joint(draws, true, names)
    table = intensity_effects(idata).set_index("arm")
    for arm in ACTIVE:
        diff = _difference_draws(idata, arm)
        z = (np.median(diff) - truth[arm]) / diff.std()
        assert abs(z) < 3.0, f"difference[{arm}]: bias {z:.2f} posterior SDs"
        assert table.loc[arm, "estimate_median"] == pytest.approx(np.median(diff))
        assert table.loc[arm, "p_benefit"] == pytest.approx(np.mean(diff < 0))


def test_recovers_the_trial_simulators_shift(simulator):
    """The simulator adds ``intensity_shift`` points to every treatment-period rating: the
    standardised difference in mean intensity is that shift (clipping at 0-10 changes it by
    well under 0.01 at a mean of 5.5)."""
    frame, idata = simulator
    assert diagnose(idata)["status"] == "ok"
    assert frame["runin_intensity_mean"].notna().all()
    table = intensity_effects(idata).set_index("arm")
    diffs = np.column_stack([_difference_draws(idata, arm) for arm in ACTIVE])
    check_joint(diffs, np.array([SHIFTS[a] for a in ACTIVE]), ACTIVE)
    assert table.loc["mexiletine", "p_benefit"] > 0.99
    assert table.loc["mexiletine", "upper"] < 0.0


def test_refit_with_other_subjects_does_not_recompile(recovery):
    frame, _, _ = recovery
    before = compile_cache_info()
    subset = frame.sample(n=257, random_state=1).reset_index(drop=True)
    idata = _model().fit(subset, seed=94, chains=2, draws=200, tune=200, cores=CORES)
    after = compile_cache_info()
    assert after["compiles"] == before["compiles"]
    assert after["hits"] == before["hits"] + 1
    assert idata["constant_data"].sizes["subject"] == 257
    constants = json.loads(idata["posterior"].attrs[f"{ATTR_PREFIX}constants"])
    assert constants["n_squeeze"] == 257


# ---------------------------------------------------------------------------------------------
# Agreement with the frequentist twin
# ---------------------------------------------------------------------------------------------
# Tolerance: priors are weak against ~190 subjects (the arm prior SD 0.5 on the logit scale is
# ten times the SE, ~0.045, so it moves an estimate by ~1 % of itself), so the posterior of the
# standardised difference is the likelihood's shape; the delta-method SE is first-order
# accurate for a nearly linear function of coefficients estimated this precisely. Monte Carlo
# error of a posterior median from ~1000 effective draws is ~0.04 SD. A difference of 0.2
# posterior SDs, or 15 % in SD versus SE, is therefore not noise.
@pytest.mark.parametrize("fixture", ["example", "simulator"])
def test_agrees_with_twin(fixture, request):
    frame, idata = request.getfixturevalue(fixture)
    assert diagnose(idata)["status"] == "ok"
    twin = intensity_twin(frame, arms=ARMS)
    assert twin.attrs["converged"]
    assert list(twin["arm"]) == ACTIVE
    for row, se in zip(twin.itertuples(), twin.attrs["se"], strict=True):
        draws = _difference_draws(idata, row.arm)
        diff_in_sd = (np.median(draws) - row.estimate_median) / draws.std()
        assert abs(diff_in_sd) < 0.2, (row.arm, diff_in_sd)
        assert 0.85 < draws.std() / se < 1.15, (row.arm, draws.std(), se)
    # the run-in slope and precision of the two fits agree as well
    assert np.median(draws_of(idata, "b")) == pytest.approx(twin.attrs["b"], abs=0.05)
    assert np.median(draws_of(idata, "phi")) == pytest.approx(twin.attrs["phi"], rel=0.15)
    if twin.attrs["g"] != 0.0:  # the days vary: the precision slopes agree
        g = draws_of(idata, "g")
        # the prior N(0.5, 0.5) pulls the posterior towards 0.5 by about
        # (posterior SD / prior SD)^2 of the distance (normal approximation), plus 0.2 SD
        pull = (g.std() / 0.5) ** 2 * abs(twin.attrs["g"] - 0.5)
        assert abs(np.median(g) - twin.attrs["g"]) < pull + 0.2 * g.std()


def test_twin_delta_method_matches_numerical_gradient(example):
    """The twin's analytic gradient against finite differences of the fitted-value average."""
    from statsmodels.othermod.betareg import BetaModel

    frame, _ = example
    twin = intensity_twin(frame, arms=ARMS)
    prepared = IntensityModel({"arms": ARMS}).prepare(frame)
    idx, n = prepared.data["arm_idx"], len(frame)
    X = np.column_stack([np.ones(n), *[(idx == i) * 1.0 for i in range(1, 5)]])
    X = np.column_stack([X, prepared.data["x_baseline"]])
    Z = np.column_stack([np.ones(n), prepared.data["log_days"]])
    res = BetaModel(prepared.subject_data["y"].values, X, exog_precision=Z).fit(
        method="newton", disp=False
    )
    coef, cov = np.asarray(res.params)[:6], np.asarray(res.cov_params())[:6, :6]

    def average(c: np.ndarray, j: int) -> float:
        x0 = X.copy()
        x0[:, 1:5] = 0.0
        x1 = x0.copy()
        x1[:, j] = 1.0
        diff = special.expit(x1 @ c) - special.expit(x0 @ c)
        return 10 * n / (n - 1) * float(diff.mean())

    for j, arm in enumerate(ACTIVE, start=1):
        step = 1e-6
        grad = np.array(
            [
                (average(coef + step * e, j) - average(coef - step * e, j)) / (2 * step)
                for e in np.eye(6)
            ]
        )
        row = twin.set_index("arm").loc[arm]
        assert row["estimate_median"] == pytest.approx(average(coef, j), rel=1e-5)
        se = twin.attrs["se"][j - 1]
        assert se == pytest.approx(math.sqrt(grad @ cov @ grad), rel=1e-4)


def test_effects_tables_follow_the_output_contract(example):
    frame, idata = example
    bayes, twin = intensity_effects(idata, level=0.9), intensity_twin(frame, level=0.9)
    for table in (bayes, twin):
        assert list(table.columns) == EFFECT_COLUMNS
        assert (table["comparator"] == "placebo").all()
        assert (table["measure"] == "difference_in_mean_intensity").all()
        assert (table["lower"] < table["estimate_median"]).all()
        assert (table["estimate_median"] < table["upper"]).all()
    assert twin["p_benefit"].isna().all() and bayes["p_benefit"].between(0, 1).all()
    assert sorted(bayes["arm"]) == sorted(twin["arm"]) == sorted(ACTIVE)
    for row in bayes.itertuples():
        draws = _difference_draws(idata, row.arm)
        assert row.lower == pytest.approx(np.quantile(draws, 0.05))
        assert row.upper == pytest.approx(np.quantile(draws, 0.95))
    loglik = idata["log_likelihood"]["y"]
    assert loglik.dims == ("chain", "draw", "subject") and loglik.sizes["subject"] == len(frame)
    constants = json.loads(idata["posterior"].attrs[f"{ATTR_PREFIX}constants"])
    assert constants["control_arm"] == "placebo" and constants["n_squeeze"] == len(frame)


# ---------------------------------------------------------------------------------------------
# Likelihood
# ---------------------------------------------------------------------------------------------
def _tiny_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "subject_id": [f"t{i}" for i in range(8)],
            "arm": ["placebo"] * 3 + ["mexiletine"] * 3 + ["quinine"] * 2,
            "intensity_mean": [5.5, 0.0, 7.25, 3.1, 10.0, 4.4, 6.0, 2.2],
            "n_rated_days": [10, 3, 12, 8, 1, 20, 15, 6],
            "runin_intensity_mean": [6.0, 1.5, 7.0, 5.0, 9.5, 4.0, 6.5, 10.0],
            "runin_rated_days": [5, 2, 6, 4, 1, 7, 6, 3],
        }
    )


POINT = {"alpha": 0.1, "beta": np.array([-0.4, 0.25]), "b": 0.8, "phi": 12.0, "g": 0.6}


def test_graph_logp_equals_priors_plus_pointwise_loglik():
    model = IntensityModel()
    prepared = model.prepare(_tiny_frame())
    cfg = model.model_config
    pm_model = model.build(prepared)
    values = {**{k: v for k, v in POINT.items() if k != "phi"}, "phi_log__": np.log(POINT["phi"])}
    logp = pm_model.compile_logp(jacobian=False)(values)
    priors = (
        stats.norm.logpdf(POINT["alpha"], cfg["prior_alpha_mu"], cfg["prior_alpha_sd"])
        + stats.norm.logpdf(POINT["beta"], 0.0, cfg["prior_beta_sd"]).sum()
        + stats.norm.logpdf(POINT["b"], cfg["prior_b_mu"], cfg["prior_b_sd"])
        + stats.lognorm.logpdf(
            POINT["phi"], cfg["prior_phi_sd"], scale=math.exp(cfg["prior_phi_mu"])
        )
        + stats.norm.logpdf(POINT["g"], cfg["prior_g_mu"], cfg["prior_g_sd"])
    )
    loglik = model.pointwise_log_likelihood(one_draw(POINT, prepared.coords["arm"]), prepared)
    assert loglik.sizes["subject"] == 8
    assert float(logp) == pytest.approx(priors + float(loglik.sum()), rel=1e-10)

    # pointwise values: the squeeze and the beta density from scratch (scipy), and statsmodels'
    # BetaModel log-likelihood at the same parameters
    from statsmodels.othermod.betareg import BetaModel

    frame, n = _tiny_frame(), 8
    y = (frame["intensity_mean"].to_numpy() / 10 * (n - 1) + 0.5) / n
    r = (frame["runin_intensity_mean"].to_numpy() / 10 * (n - 1) + 0.5) / n
    x = np.log(r / (1 - r))
    x = x - x.mean()
    shift = frame["arm"].map({"placebo": 0.0, "mexiletine": -0.4, "quinine": 0.25}).to_numpy()
    mu = special.expit(POINT["alpha"] + shift + POINT["b"] * x)
    log_days = np.log(frame["n_rated_days"].to_numpy(float))
    d = log_days - log_days.mean()
    phi = POINT["phi"] * np.exp(POINT["g"] * d)
    expected = stats.beta.logpdf(y, mu * phi, (1 - mu) * phi)
    np.testing.assert_allclose(loglik.values.ravel(), expected, rtol=1e-10)
    is_arm = [(frame["arm"] == a).to_numpy(float) for a in ("mexiletine", "quinine")]
    X = np.column_stack([np.ones(n), *is_arm, x])
    Z = np.column_stack([np.ones(n), d])
    params = np.r_[POINT["alpha"], POINT["beta"], POINT["b"], np.log(POINT["phi"]), POINT["g"]]
    beta_model = BetaModel(y, X, exog_precision=Z)
    np.testing.assert_allclose(expected, beta_model.loglikeobs(params), rtol=1e-10)


# ---------------------------------------------------------------------------------------------
# Analysis frame, refusals
# ---------------------------------------------------------------------------------------------
def _diary_and_periods() -> dict[str, pd.DataFrame]:
    nan = np.nan
    diary = pd.DataFrame(
        {
            "subject_id": ["a"] * 5 + ["b"] * 4 + ["c"] * 3 + ["d"] * 3,
            "study_day": [-2, -1, 1, 2, 3, -2, -1, 1, 2, -1, 1, 2, -1, 1, 2],
            "period": ["run-in"] * 2
            + ["treatment"] * 3
            + ["run-in"] * 2
            + ["treatment"] * 2
            + ["run-in"]
            + ["treatment"] * 2
            + ["run-in"]
            + ["treatment"] * 2,
            "cramp_count": [1, 2, 0, 1, 3, 1, 0, 2, 1, 1, 0, 0, 0, 1, 1],
            "intensity": [
                6.0,
                8.0,
                nan,
                4.0,
                5.0,
                3.0,
                nan,
                7.0,
                9.0,
                5.0,
                nan,
                nan,
                nan,
                2.0,
                4.0,
            ],
        }
    )
    periods = pd.DataFrame(
        {
            "trial_id": "t",
            "subject_id": ["a", "b", "c", "d"],
            "arm": ["placebo", "quinine", "quinine", "placebo"],
            "period": "treatment",
        }
    )
    return {"diary": diary, "periods": periods}


def test_frame_summarises_ratings_per_subject():
    frame = intensity_frame(_diary_and_periods(), strategy="while_on_cramps")
    assert list(frame["subject_id"]) == ["a", "b", "d"]  # c has no rated treatment day
    assert frame.attrs["n_without_ratings"] == 1 and frame.attrs["n_no_cramps"] == 1
    row = frame.set_index("subject_id")
    assert row.loc["a", "intensity_mean"] == 4.5 and row.loc["a", "n_rated_days"] == 2
    assert row.loc["a", "runin_intensity_mean"] == 7.0 and row.loc["a", "runin_rated_days"] == 2
    assert row.loc["b", "intensity_mean"] == 8.0 and row.loc["b", "runin_rated_days"] == 1
    assert np.isnan(row.loc["d", "runin_intensity_mean"]) and row.loc["d", "runin_rated_days"] == 0
    assert list(row["arm"]) == ["placebo", "quinine", "placebo"]
    assert (row["trial_id"] == "t").all()
    assert list(intensity_frame(_diary_and_periods(), min_rated_days=2)["subject_id"]) == [
        "a",
        "b",
        "d",
    ]
    # composite: c has no cramp on 2 treatment days, so mean 0 (kept whatever min_rated_days
    # asks) once 2 cramp-free days are enough; with the default week it is missing
    assert list(intensity_frame(_diary_and_periods(), min_rated_days=3)["subject_id"]) == []
    two_days = intensity_frame(_diary_and_periods(), min_rated_days=3, min_cramp_free_days=2)
    assert list(two_days["subject_id"]) == ["c"]


def test_composite_strategy_scores_subjects_without_cramps_as_zero():
    frame = intensity_frame(_diary_and_periods(), min_cramp_free_days=2)
    assert frame.attrs == {"strategy": "composite", "n_no_cramps": 1, "n_without_ratings": 0}
    row = frame.set_index("subject_id")
    assert list(row.index) == ["a", "b", "c", "d"]
    assert row.loc["c", "no_cramps"] and row.loc["c", "intensity_mean"] == 0.0
    assert row.loc["c", "n_rated_days"] == 0 and row.loc["c", "weight_days"] == 2  # diarised
    assert row.loc["c", "runin_intensity_mean"] == 5.0
    rated = row.loc[["a", "b", "d"]]
    assert (rated["weight_days"] == rated["n_rated_days"]).all()
    assert not row.loc[["a", "b", "d"], "no_cramps"].any()
    # a subject with cramps but no rating has a missing outcome under either strategy
    derived = _diary_and_periods()
    diary = derived["diary"].copy()
    diary.loc[(diary["subject_id"] == "d") & (diary["period"] == "treatment"), "intensity"] = np.nan
    out = intensity_frame({**derived, "diary": diary}, min_cramp_free_days=2)
    assert "d" not in set(out["subject_id"]) and out.attrs["n_without_ratings"] == 1
    # c's two cramp-free days fall short of the default week: a missing outcome
    short = intensity_frame(_diary_and_periods())
    assert "c" not in set(short["subject_id"]) and short.attrs["n_without_ratings"] == 1
    with pytest.raises(ValueError, match="intensity strategy"):
        intensity_frame(_diary_and_periods(), strategy="hypothetical")


def test_intensity_strategy_comes_from_the_config():
    from crampstats.catalogue import endpoint_entry

    entry = endpoint_entry("intensity")
    assert entry.model_frame(_diary_and_periods(), {}).attrs["strategy"] == "composite"
    settings = {"intensity_strategy": "while_on_cramps"}
    assert entry.model_frame(_diary_and_periods(), settings).attrs["strategy"] == "while_on_cramps"


def test_days_rated_weigh_the_subject_means(rng):
    """A mean of one rated day must not weigh as much as a mean of forty.

    Subject means are simulated from the variance-components model the precision slope stands
    for: true means with between-subject SD 0.6 points, daily ratings with SD 2 around them,
    half the subjects rating 1 day and half 40. The twin (statsmodels BetaModel with the log
    days as precision covariate) must find the precision growing with the days (``g`` > 0 by
    more than 4 SEs; the variance ratio 1-day / 40-day is (0.36 + 4) / (0.36 + 0.1) = 9.5),
    and moving one 1-day subject's mean shifts the estimated difference far less than moving
    one 40-day subject's mean by the same amount. Without the days (all equal) both moves
    weigh the same, so the test can fail.
    """
    n = 400
    arm = np.repeat(["placebo", "quinine"], n // 2)
    days = np.tile([1, 40], n // 2)
    true = 5.0 + 0.6 * rng.standard_normal(n) - 0.5 * (arm == "quinine")
    mean = np.clip(true + 2.0 / np.sqrt(days) * rng.standard_normal(n), 0.0, 10.0)
    frame = pd.DataFrame(
        {
            "subject_id": [f"s{i:03d}" for i in range(n)],
            "arm": arm,
            "intensity_mean": mean,
            "n_rated_days": days,
            "runin_intensity_mean": 5.0 + 0.5 * rng.standard_normal(n),
        }
    )
    twin = intensity_twin(frame)
    assert twin.attrs["converged"] and twin.attrs["g"] > 0.2

    from statsmodels.othermod.betareg import BetaModel

    prepared = IntensityModel().prepare(frame)
    X = np.column_stack([np.ones(n), arm == "quinine", prepared.data["x_baseline"]]).astype(float)
    Z = np.column_stack([np.ones(n), prepared.data["log_days"]])
    res = BetaModel(prepared.subject_data["y"].values, X, exog_precision=Z).fit(
        method="newton", disp=False
    )
    assert res.params[-1] == pytest.approx(twin.attrs["g"], rel=1e-6)
    assert res.params[-1] / res.bse[-1] > 4

    def moved(i: int, **kw) -> float:
        shifted = frame.copy()
        shifted.loc[i, "intensity_mean"] = min(shifted.loc[i, "intensity_mean"] + 3.0, 10.0)
        base = intensity_twin(frame.assign(**kw))["estimate_median"].iloc[0]
        return abs(intensity_twin(shifted.assign(**kw))["estimate_median"].iloc[0] - base)

    one_day, forty_days = n // 2, n // 2 + 1  # quinine subjects rating 1 and 40 days
    assert days[one_day] == 1 and days[forty_days] == 40
    assert moved(one_day) < 0.5 * moved(forty_days)
    unweighted = {"n_rated_days": 30}
    assert moved(one_day, **unweighted) == pytest.approx(moved(forty_days, **unweighted), rel=0.2)


def test_refuses_without_intensity_ratings():
    derived = _diary_and_periods()
    with pytest.raises(ModelDataError, match="no `intensity` column"):
        intensity_frame({**derived, "diary": derived["diary"].drop(columns="intensity")})
    unrated = derived["diary"].assign(
        intensity=np.where(derived["diary"]["period"] == "treatment", np.nan, 5.0)
    )
    with pytest.raises(ModelDataError, match="no treatment-period diary record has an intensity"):
        intensity_frame({**derived, "diary": unrated})
    with pytest.raises(ModelDataError, match="`diary` dataset"):
        intensity_frame({"periods": derived["periods"]})
    high = derived["diary"].assign(intensity=derived["diary"]["intensity"] * 2)
    with pytest.raises(ModelDataError, match="0-10"):
        intensity_frame({**derived, "diary": high})


def test_refuses_non_parallel_or_unknown_subjects():
    derived = _diary_and_periods()
    with pytest.raises(ModelDataError, match="`periods` dataset"):
        intensity_frame({"diary": derived["diary"]})
    crossover = derived["periods"].assign(period=["1", "2", "1", "2"])
    with pytest.raises(ModelDataError, match="parallel design"):
        intensity_frame({**derived, "periods": crossover})
    washout = derived["diary"].assign(period=derived["diary"]["period"].replace("run-in", "1"))
    with pytest.raises(ModelDataError, match="parallel design"):
        intensity_frame({**derived, "diary": washout})
    two_arms = pd.concat([derived["periods"], derived["periods"].iloc[:1].assign(arm="quinine")])
    with pytest.raises(ModelDataError, match=r"\['a'\] have more than one arm"):
        intensity_frame({**derived, "periods": two_arms})
    stranger = pd.concat([derived["diary"], derived["diary"].iloc[:1].assign(subject_id="z")])
    with pytest.raises(ModelDataError, match=r"\['z'\] have no arm"):
        intensity_frame({**derived, "diary": stranger})


def test_refuses_without_a_control_arm():
    frame = _tiny_frame()
    no_placebo = frame[frame["arm"] != "placebo"]
    with pytest.raises(ModelDataError, match="control arm 'placebo' not found"):
        IntensityModel().prepare(no_placebo)
    with pytest.raises(ModelDataError, match="no subject of the control arm 'placebo'"):
        IntensityModel({"arms": ["placebo", "mexiletine", "quinine"]}).prepare(no_placebo)
    with pytest.raises(ModelDataError, match="control arm 'placebo' not found"):
        intensity_twin(no_placebo)


def test_missing_run_in_refused_or_imputed():
    missing = _tiny_frame()
    missing.loc[3, "runin_intensity_mean"] = np.nan
    with pytest.raises(ModelDataError, match="missing_baseline='mean'"):
        IntensityModel().prepare(missing)
    prepared = IntensityModel({"missing_baseline": "mean"}).prepare(missing)
    assert prepared.constants["n_baseline_imputed"] == 1
    assert prepared.data["x_baseline"][3] == 0.0
    with pytest.raises(ModelDataError, match="intensity_mean must lie in 0-10"):
        IntensityModel().prepare(_tiny_frame().assign(intensity_mean=11.0))
    with pytest.raises(ValueError, match="missing_baseline"):
        IntensityModel({"missing_baseline": "drop"})


def test_squeeze_keeps_the_extremes_inside_the_unit_interval():
    prepared = IntensityModel().prepare(_tiny_frame())  # means of 0 and 10, a run-in of 10
    assert np.isfinite(prepared.data["log_y"]).all() and np.isfinite(prepared.data["log1m_y"]).all()
    assert np.isfinite(prepared.data["x_baseline"]).all()
    y = prepared.subject_data["y"].values
    assert y.min() == pytest.approx(0.5 / 8) and y.max() == pytest.approx(7.5 / 8)
