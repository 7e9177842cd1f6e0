"""The tipping-point analysis (:mod:`crampstats.compare.missing`): Rubin's rules, the complete-data
estimator, and recovery of a missing-not-at-random (MNAR) delta placed in a simulation.

Data are built here (:func:`_mnar_trial`): subject rates ``0.9 * Gamma(k, k)`` cramps a day, a
14-day run-in, 56 planned treatment days, arm-dependent withdrawal on a uniform day, and after
withdrawal the active arm's rate multiplied by ``delta_true`` (placebo unchanged). The full-data
rate ratio then has a closed form: ``rr * (1 + (delta_true - 1) * p_drop * E[(D - w) / D])`` with
``E[(D - w) / D] = 1/2`` for ``w`` uniform on ``1..D-1``. The NB2 GLM with the run-in covariate
targets it up to 0.0013 on the log scale (checked on 400,000 simulated subjects: -0.3988 against
-0.3975), negligible beside the standard errors below (>= 0.015).

Fast tests use a normal approximation of the observed-data ML fit as the "posterior" (an
``xarray.DataTree`` shaped like an ``nb_totals`` fit), so the whole table path runs without MCMC;
the slow test uses a real ``nb_totals`` fit.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
import xarray as xr
from helpers import CORES
from scipy import stats

from crampstats.compare.missing import (
    TIPPING_COLUMNS,
    ImputationBasis,
    complete_data_design,
    delta_adjusted_mi,
    post_withdrawal_days,
    rubin,
    success_probability,
    tipping_point,
)
from crampstats.models import NBTotals, nb_glm_twin

D = 56
RR, DELTA_TRUE, P_DROP = 0.6, 1.6, (0.1, 0.4)


def _true_log_rr(delta: float = DELTA_TRUE, rr: float = RR, p: float = P_DROP[1]) -> float:
    return float(np.log(rr * (1.0 + (delta - 1.0) * p * 0.5)))


def _mnar_trial(
    rng: np.random.Generator, n: int, delta_true: float = DELTA_TRUE
) -> tuple[pd.DataFrame, pd.DataFrame, np.ndarray]:
    """Observed ``periods``, ``diary`` (one record per subject up to withdrawal), full counts."""
    k = 3.0
    arm = np.repeat(["placebo", "active"], n)
    act = arm == "active"
    lam = 0.9 * rng.gamma(k, 1.0 / k, 2 * n)
    runin = rng.poisson(lam * 14)
    drop = rng.random(2 * n) < np.where(act, P_DROP[1], P_DROP[0])
    w = np.where(drop, rng.integers(1, D, 2 * n), D)
    on_rate = lam * np.where(act, RR, 1.0)
    on = rng.poisson(on_rate * w)
    off = rng.poisson(on_rate * np.where(act, delta_true, 1.0) * (D - w))
    ids = [f"s{i:05d}" for i in range(2 * n)]
    periods = pd.DataFrame(
        {
            "trial_id": "mnar",
            "subject_id": ids,
            "arm": arm,
            "period": "treatment",
            "count": on,
            "exposure_days": w,
            "runin_count": runin,
            "runin_days": 14,
            "log_baseline_rate": np.log((runin + 0.5) / 14),
            "withdrawal_day": pd.array(np.where(drop, w, -1), dtype="Int64"),
        }
    )
    periods.loc[~drop, "withdrawal_day"] = pd.NA
    periods["withdrawn"] = drop
    diary = pd.DataFrame(
        {"trial_id": "mnar", "subject_id": ids, "study_day": 1, "days": w, "period": "treatment"}
    )
    return periods, diary, on + off


def _pseudo_fit(model: NBTotals, periods: pd.DataFrame, n_draws: int, seed: int) -> xr.DataTree:
    """An ``nb_totals``-shaped fit whose draws are the ML fit's normal approximation."""
    prepared = model.prepare(periods)
    X, n_active = complete_data_design(prepared)
    data = prepared.data
    res = sm.NegativeBinomial(data["y"], X, offset=data["log_exposure"], loglike_method="nb2").fit(
        disp=0
    )
    draws = np.random.default_rng(seed).multivariate_normal(res.params, res.cov_params(), n_draws)
    arms = prepared.coords["arm"]
    post = xr.Dataset(
        {
            "alpha": (("chain", "draw"), draws[None, :, 0]),
            "log_rr": (("chain", "draw", "arm"), draws[None, :, 1 : 1 + n_active]),
            "b": (("chain", "draw"), draws[None, :, 1 + n_active]),
            "k": (("chain", "draw"), 1.0 / np.abs(draws[None, :, -1])),
        },
        coords={"chain": [0], "draw": np.arange(n_draws), "arm": arms},
    )
    return xr.DataTree.from_dict({"posterior": post, "constant_data": prepared.subject_data})


def _config(deltas, m=20, seed=7, **extra):
    return {
        "trial_id": "mnar",
        "seed": seed,
        "control_arm": "placebo",
        "analysis": {"tipping_point": {"deltas": list(deltas), "n_imputations": m}, **extra},
    }


# ---------------------------------------------------------------------------------------------
# Rubin's rules
# ---------------------------------------------------------------------------------------------
def test_rubin_matches_the_formulas_on_a_toy():
    """Three imputations worked by hand: Q = 2, W = 0.5, B = 1, T = 0.5 + 4/3."""
    q, u = [[1.0], [2.0], [3.0]], [[0.4], [0.5], [0.6]]
    r = rubin(q, u, df_complete=20)
    total = 0.5 + (4 / 3) * 1.0
    lam = (4 / 3) / total
    df_old = 2 / lam**2
    df_obs = (21 / 23) * 20 * (1 - lam)
    df = df_old * df_obs / (df_old + df_obs)
    riv = (4 / 3) / 0.5
    assert r.estimate[0] == pytest.approx(2.0, rel=1e-14)
    assert r.within[0] == pytest.approx(0.5, rel=1e-14)
    assert r.between[0] == pytest.approx(1.0, rel=1e-14)
    assert r.total[0] == pytest.approx(total, rel=1e-14)
    assert r.df[0] == pytest.approx(df, rel=1e-12)
    assert r.fmi[0] == pytest.approx((riv + 2 / (df + 3)) / (riv + 1), rel=1e-12)
    # identical imputations: nothing missing, T = W and the complete-data df
    same = rubin([[1.0], [1.0]], [[0.3], [0.3]], df_complete=30)
    assert same.total[0] == 0.3 and same.fmi[0] == 0.0
    assert same.df[0] == pytest.approx(31 / 33 * 30)
    with pytest.raises(ValueError):
        rubin([[1.0]], [[1.0]])


def test_rubin_recovers_the_observed_data_variance_of_a_normal_mean(rng):
    """Proper imputation of a normal mean (known sigma, flat prior): as M grows, Rubin's total
    variance tends to sigma^2 / n_obs and the estimate to the observed mean (closed form:
    (n_mis^2 / n_obs + n_mis) sigma^2 / n^2 + sigma^2 / n = sigma^2 / n_obs)."""
    sigma, n_obs, n_mis, m = 2.0, 60, 40, 4000
    y_obs = rng.normal(1.0, sigma, n_obs)
    mu = rng.normal(y_obs.mean(), sigma / np.sqrt(n_obs), m)
    y_mis = rng.normal(mu[:, None], sigma, (m, n_mis))
    n = n_obs + n_mis
    q = (y_obs.sum() + y_mis.sum(axis=1)) / n
    r = rubin(q[:, None], np.full((m, 1), sigma**2 / n))
    exact = sigma**2 / n_obs
    between = exact - sigma**2 / n
    # Monte Carlo SEs: of the mean, sqrt(B / M); of B, B sqrt(2 / (M - 1)); 4-SE bands
    assert abs(r.estimate[0] - y_obs.mean()) < 4 * np.sqrt(between / m)
    assert abs(r.total[0] - exact) < 4 * between * np.sqrt(2 / (m - 1))
    assert r.fmi[0] == pytest.approx(between / exact, abs=0.02)  # 0.4 = n_mis / n


# ---------------------------------------------------------------------------------------------
# Data pieces
# ---------------------------------------------------------------------------------------------
def test_post_withdrawal_days_per_trial():
    rows = pd.DataFrame(
        {
            "trial_id": ["a", "a", "b", "b"],
            "subject_id": ["1", "2", "3", "4"],
            "withdrawal_day": pd.array([pd.NA, 10, 5, 40], dtype="Int64"),
        }
    )
    diary = pd.DataFrame(
        {
            "trial_id": ["a", "a", "a", "b", "b"],
            "subject_id": ["1", "1", "2", "3", "4"],
            "study_day": [-13, 1, 1, 1, 29],
            "days": [14, 28, 10, 5, 7],
            "period": ["run-in", "treatment", "treatment", "treatment", "treatment"],
        }
    )
    # trial a ends on day 28, trial b on day 35; a withdrawal at or after the end leaves nothing
    np.testing.assert_array_equal(post_withdrawal_days(rows, diary), [0, 18, 30, 0])
    assert post_withdrawal_days(rows.drop(columns="withdrawal_day"), diary).sum() == 0


def test_success_probability_follows_the_plan():
    assert success_probability({}) == 0.975
    plan = {"success": {"criteria": [{"rate_ratio": 0.8, "probability": 0.6},
                                     {"rate_ratio": 1.0, "probability": 0.99}]}}  # fmt: skip
    assert success_probability({"analysis": {"plan": plan}}) == 0.99


def test_no_missing_days_reproduces_the_statsmodels_twin(rng):
    """With nothing to impute every imputed data set is the observed one: B = 0, and the pooled
    log RR and SE are the twin's (nb_glm_twin), with a covariate and a site grouping."""
    periods, _, _ = _mnar_trial(rng, 80)
    periods["bmi"] = rng.normal(27, 4, len(periods))
    periods["site"] = rng.choice(["s1", "s2", "s3"], len(periods))
    model = NBTotals({"covariates": ["bmi"], "random_intercepts": ["site"]})
    prepared = model.prepare(periods)
    X, n_active = complete_data_design(prepared)
    y = prepared.data["y"].astype(float)
    basis = ImputationBasis(np.zeros((10, len(y))), np.full(10, 3.0))
    out = delta_adjusted_mi(
        y, np.exp(prepared.data["log_exposure"]), np.zeros(len(y)), np.zeros(len(y), bool),
        X, n_active, basis, [1.0, 2.0], 3, rng,
    )  # fmt: skip
    twin = nb_glm_twin(periods, covariates=["bmi"], random_intercepts=["site"])
    for d in range(2):
        np.testing.assert_allclose(out["log_rr"][d], twin["log_rr"], rtol=1e-6)
        np.testing.assert_allclose(out["se"][d], twin["se"], rtol=1e-5)
    assert np.all(out["fmi"] == 0)


# ---------------------------------------------------------------------------------------------
# Recovery of an MNAR delta (fast: one large trial, normal-approximation posterior)
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def large_mnar():
    periods, diary, full = _mnar_trial(np.random.default_rng(2026), 1000)
    model = NBTotals({"arms": ["placebo", "active"]})
    idata = _pseudo_fit(model, periods, 2000, 1)
    table = tipping_point(model, idata, periods, diary, _config([1.0, DELTA_TRUE, 2.5], m=30))
    return periods, diary, full, model, idata, table


def test_table_follows_the_contract(large_mnar):
    periods, _, _, _, _, table = large_mnar
    assert list(table.columns) == TIPPING_COLUMNS
    assert table["delta"].tolist() == [1.0, DELTA_TRUE, 2.5]
    assert (table["n_imputations"] == 30).all()
    withdrawn = periods["withdrawn"] & (periods["arm"] == "active")
    assert (table["n_withdrawn"] == withdrawn.sum()).all()
    assert table["imputed_days"].iloc[0] == (D - periods.loc[withdrawn, "exposure_days"]).sum()
    # verdict is the one-sided t test at 1 - 0.975; interval and p-value agree with it
    met = table["p_or_pvalue"] <= 0.025
    assert (table["verdict"] == np.where(met, "met", "not met")).all()
    assert ((table["upper"] < 1) == met).all()
    # a larger delta (more cramps after withdrawal on the active arm) raises the RR
    assert table["rr"].is_monotonic_increasing


def test_same_seed_same_table_other_seed_other_draws(rng):
    periods, diary, _ = _mnar_trial(rng, 60)
    model = NBTotals()
    idata = _pseudo_fit(model, periods, 200, 3)
    first = tipping_point(model, idata, periods, diary, _config([1.0, 1.5], m=5, seed=1))
    again = tipping_point(model, idata, periods, diary, _config([1.0, 1.5], m=5, seed=1))
    other = tipping_point(model, idata, periods, diary, _config([1.0, 1.5], m=5, seed=2))
    assert again.to_csv() == first.to_csv()
    assert other["log_rr"].iloc[0] != first["log_rr"].iloc[0]


def test_delta_one_reproduces_the_mar_estimate(large_mnar):
    """At delta 1 the imputation is MAR under the fitted model: the pooled estimate is the
    observed-data ML estimate up to the imputation Monte Carlo error (SE sqrt(B / M), B from the
    analysis) and the posterior's approximation of ML (2 % of an SE)."""
    periods, _, _, _, _, table = large_mnar
    twin = nb_glm_twin(periods, arms=["placebo", "active"]).iloc[0]
    row = table.iloc[0]
    between = row["fmi"] * row["se"] ** 2 / (1 + 1 / 30)  # fmi ~ (1 + 1/M) B / T
    tol = 4 * np.sqrt(between / 30) + 0.02 * twin["se"]
    assert abs(row["log_rr"] - twin["log_rr"]) < tol
    assert row["se"] >= twin["se"] * 0.98  # imputation adds no information


def test_delta_true_recovers_the_full_data_rate_ratio(large_mnar):
    """At delta_true the pooled log RR matches the closed-form full-data truth and the same
    data's full-data estimate; MAR (delta 1) does not, so the test can fail."""
    periods, _, full, _, _, table = large_mnar
    truth = _true_log_rr()
    at_true = table.loc[table["delta"] == DELTA_TRUE].iloc[0]
    mar = table.loc[table["delta"] == 1.0].iloc[0]
    # 3.5 pooled SEs (two-sided 0.05 %) plus the 0.0013 estimand gap (module docstring)
    assert abs(at_true["log_rr"] - truth) < 3.5 * at_true["se"] + 0.0013
    assert abs(mar["log_rr"] - truth) > 3.5 * mar["se"]
    oracle = periods.assign(count=full, exposure_days=D)
    full_fit = nb_glm_twin(oracle, arms=["placebo", "active"]).iloc[0]
    # MI minus full-data estimate: only the missing information's error, variance T - U_full
    extra = max(at_true["se"] ** 2 - full_fit["se"] ** 2, 0.0)
    assert abs(at_true["log_rr"] - full_fit["log_rr"]) < 4 * np.sqrt(extra) + 1e-3


def test_no_withdrawal_gives_an_empty_table(rng):
    periods, diary, _ = _mnar_trial(rng, 30)
    periods["withdrawal_day"] = pd.array([pd.NA] * len(periods), dtype="Int64")
    model = NBTotals()
    idata = _pseudo_fit(model, periods, 100, 2)
    table = tipping_point(model, idata, periods, diary, _config([1.0, 2.0]))
    assert table.empty and list(table.columns) == TIPPING_COLUMNS


# ---------------------------------------------------------------------------------------------
# Slow: coverage over replicates, and a real nb_totals fit
# ---------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_coverage_of_the_full_data_rate_ratio_at_delta_true():
    """95 % intervals at delta_true cover the full-data truth at the nominal rate (200 trials of
    100 an arm, 10 imputations each)."""
    rng = np.random.default_rng(55)
    truth = _true_log_rr()
    n_rep, covered, z = 200, 0, []
    model = NBTotals({"arms": ["placebo", "active"]})
    for rep in range(n_rep):
        periods, diary, _ = _mnar_trial(rng, 100)
        idata = _pseudo_fit(model, periods, 1000, rep)
        cfg = _config([DELTA_TRUE], m=10, seed=rep)
        row = tipping_point(model, idata, periods, diary, cfg).iloc[0]
        covered += np.log(row["lower"]) < truth < np.log(row["upper"])
        z.append((row["log_rr"] - truth) / row["se"])
    # P(<= 181 of 200 | coverage 0.95) = 0.006; mean standardised bias has SE 1/sqrt(200) = 0.07
    assert covered >= 182, f"coverage {covered} of {n_rep}"
    assert abs(np.mean(z)) < 0.25, f"mean bias {np.mean(z):.2f} SEs"


@pytest.mark.slow
def test_real_nb_totals_fit_recovers_delta_and_tips():
    """The compare-step path on a real nb_totals fit: delta_true recovers the truth, MAR agrees
    with the fit's own estimate, and the verdict flips where the grid says it does."""
    periods, diary, _ = _mnar_trial(np.random.default_rng(8), 300)
    model = NBTotals({"arms": ["placebo", "active"]})
    idata = model.fit(periods, seed=3, chains=2, draws=500, tune=500, cores=CORES)
    deltas = [1.0, 1.2, DELTA_TRUE, 2.0, 3.0, 4.0]
    table = tipping_point(model, idata, periods, diary, _config(deltas, m=30))
    at_true = table.loc[table["delta"] == DELTA_TRUE].iloc[0]
    assert abs(at_true["log_rr"] - _true_log_rr()) < 3.5 * at_true["se"] + 0.0013
    post = np.ravel(idata["posterior"]["log_rr"].values)
    mar = table.iloc[0]
    # MAR by imputation vs the posterior: MC error of 30 imputations (B from the fmi) plus 10 %
    # of a posterior SD (posterior median against a pooled ML estimate)
    between = mar["fmi"] * mar["se"] ** 2 / (1 + 1 / 30)
    assert abs(mar["log_rr"] - np.median(post)) < 4 * np.sqrt(between / 30) + 0.1 * post.std()
    met = table["verdict"].eq("met").to_numpy()
    flips = [d for d, v in zip(deltas, met, strict=True) if v != met[0]]
    expected = min(flips) if flips else np.nan
    assert np.allclose(table["tipping_delta"], expected, equal_nan=True)
    assert stats.t.cdf(mar["log_rr"] / mar["se"], mar["df"]) == pytest.approx(mar["p_or_pvalue"])
