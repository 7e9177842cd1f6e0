"""Statistical checks of the count models: recovery, likelihoods, twins, LOO.

Fits are module-scoped and share the engine's per-process compile cache. Data come from
``crampstats.models.synthetic`` (the models' own data-generating process), never from
``crampstats.derive``.
"""

from __future__ import annotations

import arviz_stats as azs
import numpy as np
import pandas as pd
import pytest
from helpers import CORES, interval
from scipy import integrate, stats

from crampstats.decisions import decision_table
from crampstats.engine import diagnose
from crampstats.models import FrailtyWeekly, ModelDataError, NBTotals, gee_twin, nb_glm_twin
from crampstats.models.synthetic import simulate_parallel_trial

# docs/calibration.md defaults for the arms (therapy effects table)
RATE_RATIOS = {
    "placebo": 1.0,
    "mexiletine": 0.5,
    "quinine": 0.75,
    "vitamin_b_complex": 0.8,
    "magnesium": 0.96,
}


# ---------------------------------------------------------------------------------------------
# Recovery: 5 arms x 80 subjects, covariate entering exactly as the models assume
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def recovery_trial():
    rng = np.random.default_rng(2026_11_25)
    return simulate_parallel_trial(
        rng,
        RATE_RATIOS,
        80,
        weeks=8,
        k=3.0,
        b=0.7,
        baseline="independent",
        trend=-0.03,
        missing_day_prob=0.05,
        dropout=0.08,
    )


@pytest.fixture(scope="module")
def nb_fit(recovery_trial):
    periods, _, _ = recovery_trial
    return NBTotals().fit(periods, seed=11, cores=CORES, log_likelihood=True)


@pytest.fixture(scope="module")
def fw_fit(recovery_trial):
    _, weekly, _ = recovery_trial
    return FrailtyWeekly().fit(weekly, seed=12, cores=CORES, log_likelihood=True)


@pytest.mark.parametrize("fit_name", ["nb_fit", "fw_fit"])
def test_log_rr_recovered(fit_name, request, recovery_trial):
    idata = request.getfixturevalue(fit_name)
    truth = recovery_trial[2]["log_rr"]
    post = idata["posterior"]["log_rr"]
    assert sorted(post["arm"].values) == sorted(truth)
    for arm, true_value in truth.items():
        draws = post.sel(arm=arm)
        lo, hi = interval(draws)
        assert lo < true_value < hi, f"{arm}: truth {true_value:.3f} outside [{lo:.3f}, {hi:.3f}]"
        z = (float(draws.median()) - true_value) / float(draws.std())
        assert abs(z) < 2.0, f"{arm}: bias {z:.2f} posterior SDs"
        assert float(draws.std()) < 0.15  # 80 a arm, k = 3: SE ~ sqrt(2 * 0.36 / 80) ~ 0.095


@pytest.mark.parametrize(("fit_name", "name"), [("nb_fit", "k"), ("fw_fit", "phi")])
def test_overdispersion_recovered(fit_name, name, request, recovery_trial):
    draws = request.getfixturevalue(fit_name)["posterior"][name]
    lo, hi = interval(draws)
    assert lo < recovery_trial[2]["k"] < hi
    assert 2.0 < float(draws.median()) < 4.5  # roughly 3


def test_baseline_and_trend_recovered(nb_fit, fw_fit, recovery_trial):
    truth = recovery_trial[2]
    for idata in (nb_fit, fw_fit):
        lo, hi = interval(idata["posterior"]["b"])
        assert lo < truth["b"] < hi
    lo, hi = interval(fw_fit["posterior"]["trend"])
    assert lo < truth["trend"] < hi
    assert hi < 0  # a -3 %/week trend over 8 weeks x 400 subjects is detectable


def test_fits_converge(nb_fit, fw_fit):
    for idata in (nb_fit, fw_fit):
        report = diagnose(idata)
        assert report["status"] == "ok", report["reasons"]


def test_weekly_and_total_models_agree(nb_fit, fw_fit):
    # Under a gamma frailty the subject total carries all information on the arm effect (the
    # multinomial split over weeks does not depend on arm), so the two models must agree
    # closely; the small differences come from the week trend with unequal exposure.
    diff = nb_fit["posterior"]["log_rr"].median(("chain", "draw")) - fw_fit["posterior"][
        "log_rr"
    ].median(("chain", "draw"))
    assert float(np.abs(diff).max()) < 0.03


def test_zero_exposure_rows_dropped(recovery_trial):
    periods, weekly, _ = recovery_trial
    prepared = NBTotals().prepare(periods)
    assert prepared.n_subjects == int((periods["exposure_days"] > 0).sum()) < len(periods)
    fw = FrailtyWeekly().prepare(weekly)
    treated = weekly[(weekly["period"] == "treatment") & (weekly["exposure_days"] > 0)]
    assert len(fw.extra["y"]) == len(treated)
    assert np.all(np.isfinite(fw.extra["log_exposure"]))
    assert fw.data["y_subject"].sum() == treated["count"].sum()
    assert fw.data["exposure_week"].sum() == treated["exposure_days"].sum()
    assert fw.data["exposure_week"].shape == (fw.n_subjects, 8)
    assert fw.n_subjects == prepared.n_subjects


# ---------------------------------------------------------------------------------------------
# Likelihoods: graph == NumPy pointwise == numerical integration over the frailty
# ---------------------------------------------------------------------------------------------
def _negmultinomial_by_quadrature(y, mu, phi):
    def integrand(u):
        return np.exp(
            stats.poisson.logpmf(y, u * mu).sum() + stats.gamma.logpdf(u, phi, scale=1 / phi)
        )

    value, _ = integrate.quad(integrand, 0, np.inf, limit=200, epsabs=0, epsrel=1e-10)
    return np.log(value)


def test_negative_multinomial_matches_integral(fw_fit, recovery_trial):
    _, weekly, _ = recovery_trial
    model = FrailtyWeekly()
    prepared = model.prepare(weekly)
    one = fw_fit.isel(chain=[0], draw=[0])
    loglik = model.pointwise_log_likelihood(one, prepared).values[0, 0]
    post = {k: one["posterior"][k].values.squeeze() for k in ("alpha", "b", "trend", "phi")}
    log_rr = np.r_[0.0, one["posterior"]["log_rr"].values.ravel()]
    d, r = prepared.data, prepared.extra
    for i in [0, 7, 150, prepared.n_subjects - 1]:
        rows = r["subject_idx"] == i
        eta = post["alpha"] + log_rr[d["arm_idx"][i]] + post["b"] * d["x_baseline"][i]
        mu = np.exp(r["log_exposure"][rows] + eta + post["trend"] * r["t"][rows])
        expected = _negmultinomial_by_quadrature(r["y"][rows], mu, post["phi"])
        assert loglik[i] == pytest.approx(expected, rel=1e-7, abs=1e-7)


@pytest.mark.parametrize(("model_cls", "which"), [(NBTotals, 0), (FrailtyWeekly, 1)])
def test_graph_logp_equals_pointwise_sum(model_cls, which, nb_fit, fw_fit, recovery_trial):
    # The sampled density (PyMC graph: hand-written NB2 / negative multinomial on sufficient
    # statistics) and the LOO log-likelihood (NumPy, per row, checked against scipy and
    # quadrature) are the same function.
    data = recovery_trial[which]
    idata = nb_fit if model_cls is NBTotals else fw_fit
    model = model_cls()
    prepared = model.prepare(data)
    pm_model = model.build(prepared)
    one = idata.isel(chain=[1], draw=[3])
    point = {}
    for rv in pm_model.free_RVs:
        value = one["posterior"][rv.name].values.squeeze()
        transform = pm_model.rvs_to_transforms.get(rv)
        value_var = pm_model.rvs_to_values[rv]
        point[value_var.name] = (
            np.log(value) if transform is not None else np.asarray(value, dtype=float)
        )
    logp_fn = pm_model.compile_logp(
        vars=pm_model.observed_RVs + pm_model.potentials, jacobian=False, mode="FAST_COMPILE"
    )
    expected = model.pointwise_log_likelihood(one, prepared).values.sum()
    assert float(logp_fn(point)) == pytest.approx(expected, rel=1e-9)
    # and it is not trivially so: another point gives another value
    point["alpha"] = point["alpha"] + 0.1
    assert float(logp_fn(point)) != pytest.approx(expected, rel=1e-6)


def test_nb_pointwise_matches_scipy(nb_fit, recovery_trial):
    periods = recovery_trial[0]
    model = NBTotals()
    prepared = model.prepare(periods)
    one = nb_fit.isel(chain=[2], draw=[5])
    loglik = model.pointwise_log_likelihood(one, prepared).values[0, 0]
    p = one["posterior"]
    log_rr = np.r_[0.0, p["log_rr"].values.ravel()]
    d = prepared.data
    eta = p["alpha"].item() + log_rr[d["arm_idx"]] + p["b"].item() * d["x_baseline"]
    mu = np.exp(d["log_exposure"] + eta)
    k = p["k"].item()
    np.testing.assert_allclose(loglik, stats.nbinom.logpmf(d["y"], k, k / (k + mu)), rtol=1e-10)


def test_loo_available(nb_fit, fw_fit):
    for idata in (nb_fit, fw_fit):
        assert idata["log_likelihood"]["y"].dims == ("chain", "draw", "subject")
        result = azs.loo(idata, pointwise=True)
        assert np.isfinite(result.elpd)
        assert float(np.max(result.pareto_k)) < 0.7


def test_subject_log_rate_is_control_prediction(nb_fit, recovery_trial):
    # Under control, a subject at the mean run-in rate expects exp(alpha) cramps a day.
    rate = NBTotals().subject_log_rate(nb_fit)
    assert rate.dims == ("chain", "draw", "subject")
    alpha = nb_fit["posterior"]["alpha"]
    x = nb_fit["constant_data"]["x_baseline"]
    np.testing.assert_allclose(rate, alpha + nb_fit["posterior"]["b"] * x)
    # and the control arm's observed rate is reproduced on average
    periods = recovery_trial[0]
    placebo = periods[(periods["arm"] == "placebo") & (periods["exposure_days"] > 0)]
    observed = placebo["count"].sum() / placebo["exposure_days"].sum()
    predicted = float(np.exp(rate.sel(subject=list("sim/" + placebo["subject_id"]))).mean())
    assert predicted == pytest.approx(observed, rel=0.15)


# ---------------------------------------------------------------------------------------------
# Twins: 200-subject trial (5 arms x 40), realistic run-in covariate
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def twin_trial():
    rng = np.random.default_rng(7)
    return simulate_parallel_trial(
        rng,
        RATE_RATIOS,
        40,
        weeks=8,
        baseline="runin",
        trend=-0.02,
        missing_day_prob=0.05,
        dropout=0.08,
    )


def test_nb_totals_agrees_with_statsmodels(twin_trial):
    periods = twin_trial[0]
    idata = NBTotals().fit(periods, seed=3, cores=CORES)
    twin = nb_glm_twin(periods).set_index("arm")
    assert twin.attrs["converged"]
    median = idata["posterior"]["log_rr"].median(("chain", "draw")).to_series()
    diff = (median - twin["log_rr"]).abs()
    assert diff.max() <= 0.05, diff.to_dict()
    k = float(idata["posterior"]["k"].median())
    assert k == pytest.approx(twin.attrs["k"], rel=0.2)


def test_frailty_weekly_agrees_with_gee(twin_trial):
    # Tolerance: both estimate the same (collapsible) log rate ratio, but with different
    # weights, so they differ by a random amount whose SD is about 0.25 GEE standard errors
    # (15 replicate trials x 4 arms, largest 0.66 SE; benchmarks notes in the report).
    # One robust SE is about 4 SDs of that difference; a sign, offset or segment error moves
    # the estimate by several SEs.
    weekly = twin_trial[1]
    idata = FrailtyWeekly().fit(weekly, seed=4, cores=CORES)
    twin = gee_twin(weekly).set_index("arm")
    median = idata["posterior"]["log_rr"].median(("chain", "draw")).to_series()
    ratio = ((median - twin["log_rr"]).abs() / twin["se"]).round(3)
    assert (ratio <= 1.0).all(), ratio.to_dict()
    sd = idata["posterior"]["log_rr"].std(("chain", "draw")).to_series()
    assert ((sd / twin["se"]) > 0.8).all() and ((sd / twin["se"]) < 1.5).all()


# ---------------------------------------------------------------------------------------------
# Data errors
# ---------------------------------------------------------------------------------------------
def test_unknown_or_missing_arms_refused(recovery_trial):
    periods = recovery_trial[0]
    model = NBTotals({"arms": list(RATE_RATIOS)})
    odd = periods.assign(arm=periods["arm"].replace({"quinine": "quinine_500"}))
    with pytest.raises(ModelDataError, match="quinine_500"):
        model.prepare(odd)
    with pytest.raises(ModelDataError, match="control arm 'placebo'"):
        NBTotals().prepare(periods[periods["arm"] != "placebo"])


def _nullable(frame):
    """The dtypes crampstats.derive writes: Int64 / Float64 / string, NA for missing."""
    out = frame.copy()
    for col in out.columns:
        if pd.api.types.is_integer_dtype(out[col]):
            out[col] = out[col].astype("Int64")
        elif pd.api.types.is_float_dtype(out[col]):
            out[col] = out[col].astype("Float64")
        else:
            out[col] = out[col].astype("string")
    return out


@pytest.mark.parametrize(("model_cls", "which"), [(NBTotals, 0), (FrailtyWeekly, 1)])
def test_nullable_dtypes_and_missing_baseline(model_cls, which, recovery_trial):
    plain = recovery_trial[which]
    nullable = _nullable(plain)
    a, b = model_cls().prepare(plain), model_cls().prepare(nullable)
    for key, value in a.data.items():
        np.testing.assert_array_equal(value, b.data[key], err_msg=key)
    # a subject without run-in days: NA rate (as derive writes it)
    first = nullable["subject_id"].iloc[0]
    nullable.loc[nullable["subject_id"] == first, "log_baseline_rate"] = pd.NA
    with pytest.raises(ModelDataError, match="missing_baseline='mean'"):
        model_cls().prepare(nullable)
    imputed = model_cls({"missing_baseline": "mean"}).prepare(nullable)
    assert imputed.constants["n_baseline_imputed"] == 1
    assert imputed.data["x_baseline"][0] == 0.0
    assert imputed.data["x_baseline"][1:].mean() == pytest.approx(0.0, abs=1e-12)


def test_missing_baseline_and_bad_counts_refused(recovery_trial):
    periods = recovery_trial[0].copy()
    periods.loc[3, "log_baseline_rate"] = np.nan
    with pytest.raises(ModelDataError, match="log_baseline_rate"):
        NBTotals().prepare(periods)
    periods = recovery_trial[0].copy()
    periods["count"] = periods["count"].astype(float)
    periods.loc[0, "count"] = 2.5
    with pytest.raises(ModelDataError, match="integer"):
        NBTotals().prepare(periods)


def test_covariate_design(recovery_trial):
    periods = recovery_trial[0]
    prepared = NBTotals({"covariates": ["age", "sex"]}).prepare(periods)
    assert prepared.coords["covariate"] == ["age", "sex[M]"]
    X = prepared.data["X_cov"]
    assert X[:, 0].mean() == pytest.approx(0, abs=1e-12)
    assert X[:, 0].std() == pytest.approx(1)
    kept = periods[periods["exposure_days"] > 0]
    np.testing.assert_array_equal(X[:, 1], (kept["sex"] == "M").to_numpy(dtype=float))
    missing = periods.assign(age=periods["age"].where(periods.index != 5))
    with pytest.raises(ModelDataError, match="age"):
        NBTotals({"covariates": ["age"]}).prepare(missing)


def test_weekly_subject_level_columns_must_be_constant(recovery_trial):
    weekly = recovery_trial[1].copy()
    weekly.loc[weekly.index[weekly["period"] == "treatment"][0], "arm"] = "quinine"
    with pytest.raises(ModelDataError, match="changes within subject"):
        FrailtyWeekly().prepare(weekly)


def test_decision_table_from_a_fit(nb_fit, recovery_trial):
    # End to end: model -> subject_log_rate -> standardised absolute effect.
    model = NBTotals()
    table = decision_table(nb_fit, model.subject_log_rate(nb_fit)).set_index("arm")
    periods = recovery_trial[0]
    placebo = periods[(periods["arm"] == "placebo") & (periods["exposure_days"] > 0)]
    observed_week = 7 * placebo["count"].sum() / placebo["exposure_days"].sum()
    assert table["control_per_week"].iloc[0] == pytest.approx(observed_week, rel=0.15)
    mex = table.loc["mexiletine"]
    # difference = control * (RR - 1) draw by draw, so its median is close to that product
    assert mex["difference_median"] == pytest.approx(
        mex["control_per_week"] * (mex["rr_median"] - 1), rel=0.1
    )
    assert mex["difference_upper"] < 0 and mex["p_rr_lt_1"] > 0.99
    assert table["sucra"].idxmax() == "mexiletine"


def test_frailty_weekly_without_trend_fits(recovery_trial):
    # its week-time containers are unused by the density; the engine must not pass them to nutpie
    idata = FrailtyWeekly({"trend": False}).fit(recovery_trial[1], seed=3, cores=CORES, draws=300)
    assert "trend" not in idata["posterior"]
    assert set(idata["posterior"]["log_rr"]["arm"].values) == set(recovery_trial[2]["log_rr"])
