"""Statistical checks of the ``multi_trial`` model: recovery, network, likelihood, twins.

Data come from a small generator built on ``crampstats.models.synthetic`` (the model's own
data-generating process, so the truth is unambiguous) and, for the data-handling and slow
checks, from the full trial simulator (``crampstats.simulate`` + ``crampstats.derive``).
Fits are module-scoped and share the engine's per-process compile cache.
"""

from __future__ import annotations

import itertools

import arviz_stats as azs
import numpy as np
import pandas as pd
import pytest
from helpers import CORES, interval, simulated_derived
from scipy import stats

# the network, its effects (docs/calibration.md) and generator are the calibration case's
from crampstats.calibration.multi_trial import LOG_RR, NETWORK, simulate_network
from crampstats.compare.contrasts import TWIN_HK, TWIN_WALD, multi_trial_summary
from crampstats.engine import compile_cache_info, diagnose
from crampstats.models import ModelDataError
from crampstats.models.multi_trial import (
    MultiTrial,
    hartung_knapp,
    indirect_comparisons,
    inverse_variance_pool,
    multi_trial_twin,
    network_fixed_effect,
    predictive_log_rr,
    trial_effects,
    trial_nb_glm,
)
from crampstats.models.nb_totals import nb_glm_twin

N_CELLS = sum(len(arms) - 1 for arms in NETWORK.values())


# ---------------------------------------------------------------------------------------------
# Fits: a heterogeneous network (tau = 0.15) and a homogeneous one (tau = 0), same structure
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def network_trials():
    return simulate_network(
        np.random.default_rng(20261125), NETWORK, LOG_RR, tau=0.15, n_per_arm=40
    )


@pytest.fixture(scope="module")
def network_fit(network_trials):
    return MultiTrial().fit(network_trials[0], seed=1, cores=CORES, log_likelihood=True)


@pytest.fixture(scope="module")
def homogeneous_trials():
    # different subjects (50 an arm instead of 40), same trials, arms and pairs
    return simulate_network(np.random.default_rng(7), NETWORK, LOG_RR, tau=0.0, n_per_arm=50)


@pytest.fixture(scope="module")
def homogeneous_fit(network_fit, homogeneous_trials):
    before = compile_cache_info()["compiles"]
    idata = MultiTrial().fit(homogeneous_trials[0], seed=2, cores=CORES)
    return idata, compile_cache_info()["compiles"] - before


# ---------------------------------------------------------------------------------------------
# Structure and representation
# ---------------------------------------------------------------------------------------------
def test_structure_and_trial_effects(network_trials, network_fit):
    prepared = MultiTrial().prepare(network_trials[0])
    assert prepared.coords["trial"] == list(NETWORK)
    assert prepared.coords["arm"] == sorted(LOG_RR)
    assert prepared.coords["trial_arm"] == [
        f"{t}/{a}" for t, arms in NETWORK.items() for a in sorted(arms[1:])
    ]
    post = network_fit["posterior"]
    # no parameter has a subject dimension: new subjects never need a new compile
    assert all("subject" not in var.dims for var in post.data_vars.values())
    assert post["log_rr"].dims == ("chain", "draw", "arm")
    assert post["tau"].dims == ("chain", "draw")
    assert post["log_rr_trial"].sizes["trial_arm"] == N_CELLS
    # rectangular view: NaN exactly where a trial lacks an arm, the draws elsewhere
    rect = trial_effects(network_fit)
    assert rect.dims == ("chain", "draw", "trial", "arm")
    for trial, arm in itertools.product(NETWORK, LOG_RR):
        cell = rect.sel(trial=trial, arm=arm)
        if arm in NETWORK[trial]:
            np.testing.assert_array_equal(
                cell, post["log_rr_trial"].sel(trial_arm=f"{trial}/{arm}")
            )
        else:
            assert bool(cell.isnull().all()), (trial, arm)


def test_fit_converges(network_fit):
    report = diagnose(network_fit)
    assert report["status"] == "ok", report["reasons"]


# ---------------------------------------------------------------------------------------------
# Recovery (6 trials, 40 an arm, true tau 0.15)
# ---------------------------------------------------------------------------------------------
def test_pooled_log_rr_recovered(network_fit, network_trials):
    post = network_fit["posterior"]["log_rr"]
    for arm, true_value in network_trials[1]["log_rr"].items():
        draws = post.sel(arm=arm)
        lo, hi = interval(draws)
        assert lo < true_value < hi, f"{arm}: truth {true_value:.3f} outside [{lo:.3f}, {hi:.3f}]"
        z = (float(draws.median()) - true_value) / float(draws.std())
        assert abs(z) < 2.0, f"{arm}: bias {z:.2f} posterior SDs"
        # 3-5 trials of 40 an arm: within-trial SE ~0.13, plus tau / sqrt(n trials)
        assert float(draws.std()) < 0.2, arm


def test_trial_effects_and_tau_recovered(network_fit, network_trials):
    truth = network_trials[1]
    post = network_fit["posterior"]
    covered = []
    for (trial, arm), value in truth["cells"].items():
        lo, hi = interval(post["log_rr_trial"].sel(trial_arm=f"{trial}/{arm}"))
        covered.append(lo < value < hi)
    # 11 cells at 95 %: P(2 or more misses) is about 0.1 under a correct model
    assert sum(covered) >= N_CELLS - 1, covered
    lo, hi = interval(post["tau"])
    assert lo < truth["tau"] < hi
    # the data inform tau: the HalfNormal(0.5) prior alone has a 97.5 % point of 1.12
    assert hi < 0.6
    assert 0.03 < float(post["tau"].median()) < 0.4


def test_arm_in_some_trials_only_is_estimated(network_fit, network_trials):
    # magnesium is in 3 trials and mexiletine in 3 others: each is estimated from its own
    # trials, and their comparison only indirectly, through placebo and quinine.
    post = network_fit["posterior"]["log_rr"]
    for arm in ("magnesium", "mexiletine"):
        assert float(post.sel(arm=arm).std()) < 0.25  # prior SD is 1
    table = indirect_comparisons(network_fit).set_index(["first", "second"])
    assert not table.loc[("magnesium", "mexiletine"), "direct"]
    assert table.loc[("magnesium", "quinine"), "direct"]
    assert table.loc[("mexiletine", "quinine"), "direct"]
    row = table.loc[("magnesium", "mexiletine")]
    true_rr = np.exp(LOG_RR["magnesium"] - LOG_RR["mexiletine"])  # 1.92
    assert row["lower"] < true_rr < row["upper"]
    assert row["p_first_better"] < 0.05  # mexiletine (RR 0.5) beats magnesium (0.96)


def test_indirect_comparisons_are_differences_of_draws(network_fit):
    table = indirect_comparisons(network_fit, level=0.9)
    log_rr = network_fit["posterior"]["log_rr"]
    assert len(table) == 3 and table.attrs["level"] == 0.9
    for row in table.itertuples():
        diff = (log_rr.sel(arm=row.first) - log_rr.sel(arm=row.second)).values.ravel()
        expected = np.exp(np.quantile(diff, [0.5, 0.05, 0.95]))
        np.testing.assert_allclose([row.rr_median, row.lower, row.upper], expected, rtol=1e-12)
        assert row.p_first_better == pytest.approx(np.mean(diff < 0), abs=1e-12)


def test_predictive_effect_in_a_new_trial(network_fit):
    post = network_fit["posterior"]
    pred = predictive_log_rr(network_fit, seed=5)
    noise = (pred - post["log_rr"]).values.reshape(-1, 3)
    tau = post["tau"].values.ravel()
    # noise = tau * (sqrt(.5) u + sqrt(.5) z_a): mean 0, variance E[tau^2], correlation 0.5
    n = len(tau)
    assert abs(noise.mean()) < 4 * np.sqrt(np.mean(tau**2) / n)
    np.testing.assert_allclose(noise.var(axis=0), np.mean(tau**2), rtol=0.12)
    corr = np.corrcoef(noise.T)[np.triu_indices(3, 1)]
    np.testing.assert_allclose(corr, 0.5, atol=0.06)
    assert pred.dims == ("chain", "draw", "arm")


def test_summary_table_holds_every_several_trial_quantity(network_fit, network_trials):
    """tables/multi_trial.csv: each Bayesian row is the summary of the draws it names (exact),
    the twin's rows are the DL pool with Wald and Hartung-Knapp intervals of the per-trial
    GLMs (recomputed here from the twin's own per-trial estimates)."""
    model = MultiTrial()
    frame = model.select(network_trials[0])
    table = multi_trial_summary(network_fit, frame, model, {"trial_id": "net"}, seed=5)
    bayes = table[table["source"] == "posterior"]
    assert set(bayes["quantity"]) == {
        "pooled_rr", "new_trial_rr", "trial_rr", "between_trial_sd", "indirect_rr"
    }  # fmt: skip
    assert (bayes["quantity"] == "trial_rr").sum() == N_CELLS
    post = network_fit["posterior"]
    for arm in LOG_RR:
        pooled = bayes[(bayes["quantity"] == "pooled_rr") & (bayes["arm"] == arm)].iloc[0]
        draws = post["log_rr"].sel(arm=arm).values.ravel()
        expected = np.exp(np.quantile(draws, [0.5, 0.025, 0.975]))
        values = pooled[["estimate", "lower", "upper"]].to_numpy(dtype=float)
        np.testing.assert_allclose(values, expected, rtol=1e-12)
        new = bayes[(bayes["quantity"] == "new_trial_rr") & (bayes["arm"] == arm)].iloc[0]
        assert new["lower"] < pooled["lower"] and new["upper"] > pooled["upper"]
    tau = bayes[bayes["quantity"] == "between_trial_sd"].iloc[0]
    assert tau["lower"] < 0.15 < tau["upper"]  # the simulated between-trial SD
    indirect = bayes[bayes["quantity"] == "indirect_rr"].set_index(["arm", "comparator"])
    assert indirect.loc[("magnesium", "mexiletine"), "note"].startswith("indirect only")
    twin = multi_trial_twin(frame)
    per_trial = pd.DataFrame(twin.attrs["per_trial"])
    for arm, sel in per_trial.groupby("arm"):
        y, se = sel["log_rr"].to_numpy(), sel["se"].to_numpy()
        tau2 = inverse_variance_pool(y, se)["tau"] ** 2
        hk = hartung_knapp(y, se, tau2)
        row = table[(table["source"] == TWIN_HK) & (table["arm"] == arm)].iloc[0]
        bounds = [float(row["lower"]), float(row["upper"])]
        np.testing.assert_allclose(bounds, np.exp([hk["lower"], hk["upper"]]))
        wald = table[
            (table["source"] == TWIN_WALD) & (table["arm"] == arm)
            & (table["quantity"] == "pooled_rr")
        ].iloc[0]  # fmt: skip
        twin_row = twin.set_index("arm").loc[arm]
        np.testing.assert_allclose(float(wald["lower"]), np.exp(twin_row["lower"]))
        np.testing.assert_allclose(bounds, np.exp([twin_row["hk_lower"], twin_row["hk_upper"]]))


# ---------------------------------------------------------------------------------------------
# Likelihood: graph == NumPy pointwise == scipy, subject rates from each subject's own trial
# ---------------------------------------------------------------------------------------------
def test_graph_logp_equals_pointwise_sum(network_fit, network_trials):
    model = MultiTrial()
    prepared = model.prepare(network_trials[0])
    pm_model = model.build(prepared)
    one = network_fit.isel(chain=[1], draw=[3])
    point = {}
    for rv in pm_model.free_RVs:
        value = one["posterior"][rv.name].values.squeeze()
        transform = pm_model.rvs_to_transforms.get(rv)
        point[pm_model.rvs_to_values[rv].name] = (
            np.log(value) if transform is not None else np.asarray(value, dtype=float)
        )
    likelihood = [p for p in pm_model.potentials if p.name == "nb_loglik"]
    logp_fn = pm_model.compile_logp(vars=likelihood, jacobian=False, mode="FAST_COMPILE")
    expected = model.pointwise_log_likelihood(one, prepared).values.sum()
    assert float(logp_fn(point)) == pytest.approx(expected, rel=1e-9)
    # and it is not trivially so: other trial baselines give another value
    point["alpha"] = point["alpha"] + 0.3
    assert float(logp_fn(point)) != pytest.approx(expected, rel=1e-6)


def test_pointwise_matches_scipy_per_trial(network_fit, network_trials):
    periods = network_trials[0]
    model = MultiTrial()
    prepared = model.prepare(periods)
    one = network_fit.isel(chain=[2], draw=[7])
    loglik = model.pointwise_log_likelihood(one, prepared).values[0, 0]
    p = one["posterior"].to_dataset().squeeze(("chain", "draw"))
    rows = periods[periods["exposure_days"] > 0].reset_index(drop=True)
    assert len(rows) == prepared.n_subjects == len(loglik)
    for trial, group in rows.groupby("trial_id"):
        x = group["log_baseline_rate"] - group["log_baseline_rate"].mean()  # within trial
        theta = np.array(
            [
                0.0
                if arm == "placebo"
                else float(p["log_rr_trial"].sel(trial_arm=f"{trial}/{arm}"))
                for arm in group["arm"]
            ]
        )
        a, b, k = (float(p[name].sel(trial=trial)) for name in ("alpha", "b", "k"))
        mu = group["exposure_days"] * np.exp(a + b * x + theta)
        expected = stats.nbinom.logpmf(group["count"], k, k / (k + mu))
        np.testing.assert_allclose(loglik[group.index], expected, rtol=1e-10)


def test_subject_log_rate_uses_own_trial(network_fit, network_trials):
    rate = MultiTrial().subject_log_rate(network_fit)
    assert rate.dims == ("chain", "draw", "subject")
    post = network_fit["posterior"]
    cd = network_fit["constant_data"]
    periods = network_trials[0]
    for trial in ("T2", "T5"):
        subjects = cd["subject"].values[cd["trial_id"].values == trial]
        x = cd["x_baseline"].sel(subject=subjects)
        expected = post["alpha"].sel(trial=trial) + post["b"].sel(trial=trial) * x
        np.testing.assert_allclose(rate.sel(subject=subjects), expected.drop_vars("trial"))
        # and the trial's observed placebo rate is reproduced on average
        placebo = periods[(periods["trial_id"] == trial) & (periods["arm"] == "placebo")]
        placebo = placebo[placebo["exposure_days"] > 0]
        observed = placebo["count"].sum() / placebo["exposure_days"].sum()
        keys = list(trial + "/" + placebo["subject_id"])
        assert float(np.exp(rate.sel(subject=keys)).mean()) == pytest.approx(observed, rel=0.2)


def test_loo_and_rootogram_inputs(network_fit, network_trials):
    assert network_fit["log_likelihood"]["y"].dims == ("chain", "draw", "subject")
    result = azs.loo(network_fit, pointwise=True)
    assert np.isfinite(result.elpd)
    assert float(np.max(result.pareto_k)) < 0.7
    model = MultiTrial()
    prepared = model.prepare(network_trials[0])
    observed, pmf = model.predictive_pmf(network_fit, prepared, max_count=60, n_draws=100)
    assert pmf.shape == (prepared.n_subjects, 61)
    np.testing.assert_allclose(pmf.sum(axis=1), 1.0, rtol=1e-9)
    np.testing.assert_array_equal(observed, prepared.data["y"])
    # calibration in the large: expected number of zero totals close to observed
    assert pmf[:, 0].sum() == pytest.approx(np.sum(observed == 0), abs=8)


# ---------------------------------------------------------------------------------------------
# Twins
# ---------------------------------------------------------------------------------------------
def test_new_subjects_resample_without_recompiling(homogeneous_fit, homogeneous_trials):
    idata, new_compiles = homogeneous_fit
    assert new_compiles == 0
    kept = int((homogeneous_trials[0]["exposure_days"] > 0).sum())
    assert idata["posterior"].attrs["crampstats_n_subjects"] == kept
    assert kept > 50 * N_CELLS  # more subjects than the fit that compiled the model
    report = diagnose(idata)
    assert report["status"] == "ok", report["reasons"]


def test_agrees_with_dersimonian_laird_twin(homogeneous_fit, homogeneous_trials):
    # Tolerance: on homogeneous data (tau = 0) both estimate the same pooled effect, but the
    # DL twin pools arm by arm with a plug-in tau (0 for most arms) while the model averages
    # over tau's posterior (HalfNormal(0.5) prior, 6 trials) and pools the arms jointly. Over
    # 12 replicate networks (36 arm estimates) |median - DL| / SE_DL was 0.12 (median),
    # 0.58 (largest) and SD_post / SE_DL 0.70-1.49. One SE is ~4 SDs of that difference; a
    # sign, offset or indexing error moves an estimate by several SEs.
    idata, _ = homogeneous_fit
    periods = homogeneous_trials[0]
    twin = multi_trial_twin(periods).set_index("arm")
    assert all(twin.attrs["converged"].values())
    assert twin["k_trials"].to_dict() == {"magnesium": 3, "mexiletine": 3, "quinine": 5}
    post = idata["posterior"]["log_rr"]
    median = post.median(("chain", "draw")).to_series()
    ratio = ((median - twin["log_rr"]).abs() / twin["se"]).round(3)
    assert (ratio <= 1.0).all(), ratio.to_dict()
    sd_ratio = post.std(("chain", "draw")).to_series() / twin["se"]
    assert ((sd_ratio > 0.6) & (sd_ratio < 1.8)).all(), sd_ratio.to_dict()


@pytest.fixture(scope="module")
def fixed_effect_fit(homogeneous_trials):
    # tau ~ HalfNormal(0.01): the fixed-effect limit of the same model (new id: compiles)
    model = MultiTrial({"prior_tau_sd": 0.01})
    return model.fit(homogeneous_trials[0], seed=3, cores=CORES)


def test_fixed_effect_limit_agrees_with_network_gls(fixed_effect_fit, homogeneous_trials):
    # With tau ~ 0 the one-stage model and the two-stage GLS network estimate (per-trial NB
    # GLMs, arm covariances kept) differ only by the normal approximation of each trial's
    # likelihood and Monte Carlo error: over 8 replicate networks (24 arm estimates)
    # |median - GLS| / SE was at most 0.11 (mean 0.03) and SD_post / SE 0.99-1.05.
    periods = homogeneous_trials[0]
    gls = multi_trial_twin(periods, method="network_fixed").set_index("arm")
    post = fixed_effect_fit["posterior"]["log_rr"]
    assert diagnose(fixed_effect_fit)["status"] == "ok"
    median = post.median(("chain", "draw")).to_series()
    ratio = ((median - gls["log_rr"]).abs() / gls["se"]).round(3)
    assert (ratio <= 0.25).all(), ratio.to_dict()
    sd_ratio = post.std(("chain", "draw")).to_series() / gls["se"]
    assert ((sd_ratio > 0.92) & (sd_ratio < 1.12)).all(), sd_ratio.to_dict()
    # arm-by-arm fixed-effect pooling ignores the shared control groups: less precise
    per_arm = multi_trial_twin(periods, method="fixed").set_index("arm")
    assert (per_arm["se"] >= gls["se"] - 1e-12).all()


def test_pooling_matches_statsmodels_meta_analysis():
    from statsmodels.stats.meta_analysis import combine_effects

    y = np.array([-0.52, -0.21, -0.35, 0.04, -0.61])
    se = np.array([0.15, 0.2, 0.12, 0.25, 0.3])
    ours = inverse_variance_pool(y, se)
    ref = combine_effects(y, se**2, method_re="dl")
    frame = ref.summary_frame()
    assert ours["fixed"] == pytest.approx(frame.loc["fixed effect", "eff"], rel=1e-12)
    assert ours["se_fixed"] == pytest.approx(frame.loc["fixed effect", "sd_eff"], rel=1e-12)
    assert ours["random"] == pytest.approx(frame.loc["random effect", "eff"], rel=1e-12)
    assert ours["se_random"] == pytest.approx(frame.loc["random effect", "sd_eff"], rel=1e-12)
    assert ours["tau"] ** 2 == pytest.approx(ref.tau2, rel=1e-12)
    assert ours["q"] == pytest.approx(ref.q, rel=1e-12)
    one = inverse_variance_pool(y[:1], se[:1])
    assert np.isnan(one["tau"]) and one["random"] == one["fixed"] == y[0]


def test_network_gls_reduces_to_inverse_variance_for_two_arm_trials():
    # independent two-arm trials: GLS is per-arm inverse-variance pooling
    estimates = [
        (["a"], np.array([-0.3]), np.array([[0.04]])),
        (["a"], np.array([-0.1]), np.array([[0.01]])),
        (["b"], np.array([0.2]), np.array([[0.09]])),
    ]
    log_rr, cov = network_fixed_effect(estimates, ["a", "b"])
    pooled = inverse_variance_pool(np.array([-0.3, -0.1]), np.array([0.2, 0.1]))
    assert log_rr[0] == pytest.approx(pooled["fixed"])
    assert cov[0, 0] == pytest.approx(pooled["se_fixed"] ** 2)
    assert log_rr[1] == pytest.approx(0.2) and cov[0, 1] == 0


def test_trial_glm_matches_nb_glm_twin(network_trials):
    trial = network_trials[0][network_trials[0]["trial_id"] == "T3"]
    arms, log_rr, cov = trial_nb_glm(trial)
    reference = nb_glm_twin(trial).set_index("arm")
    assert arms == list(reference.index)
    np.testing.assert_allclose(log_rr, reference["log_rr"], rtol=1e-8)
    np.testing.assert_allclose(np.sqrt(np.diag(cov)), reference["se"], rtol=1e-8)
    # two arms against one control group: positively correlated
    assert cov[0, 1] > 0


# ---------------------------------------------------------------------------------------------
# Data from the trial simulator; refusals
# ---------------------------------------------------------------------------------------------
def _simulated_periods(trials: list[dict], seed: int = 3, **extra) -> pd.DataFrame:
    design = {
        "trials": trials,
        "arms": {"placebo": {}, "mexiletine": {}, "quinine": {}, "magnesium": {}},
        "n_per_arm": 12,
        **extra,
    }
    return simulated_derived(design, seed)[1]["periods"]


def test_simulator_network_prepares():
    periods = _simulated_periods(
        [
            {"id": "A1", "arms": ["placebo", "mexiletine", "quinine"]},
            {"id": "A2", "arms": ["placebo", "quinine", "magnesium"]},
        ]
    )
    assert periods["log_baseline_rate"].dtype == "Float64"  # derive's nullable dtypes
    prepared = MultiTrial().prepare(periods)
    assert prepared.coords["trial"] == ["A1", "A2"]
    assert prepared.coords["trial_arm"] == [
        "A1/mexiletine",
        "A1/quinine",
        "A2/magnesium",
        "A2/quinine",
    ]
    kept = periods[periods["exposure_days"] > 0]
    assert prepared.n_subjects == len(kept)
    # the run-in covariate is centred within each trial
    trial_idx = prepared.data["trial_idx"]
    for t in range(2):
        assert prepared.data["x_baseline"][trial_idx == t].mean() == pytest.approx(0, abs=1e-12)
    assert prepared.data["n_per_trial"].sum() == prepared.n_subjects


def test_trial_without_control_arm_refused():
    periods = _simulated_periods(
        [
            {"id": "B1", "arms": ["placebo", "quinine"]},
            {"id": "B2", "arms": ["quinine", "magnesium"]},
        ]
    )
    with pytest.raises(ModelDataError, match=r"trial 'B2' has arms \['magnesium', 'quinine'\]"):
        MultiTrial().prepare(periods)
    with pytest.raises(ModelDataError, match="'B2'"):
        multi_trial_twin(periods)


def test_other_refusals(network_trials):
    periods = network_trials[0]
    with pytest.raises(ModelDataError, match="trial_id"):
        MultiTrial().prepare(periods.drop(columns="trial_id"))
    with pytest.raises(ModelDataError, match="T6"):
        MultiTrial({"trials": ["T1", "T2", "T3", "T4", "T5"]}).prepare(periods)
    with pytest.raises(ModelDataError, match="no trial has an active arm"):
        MultiTrial().prepare(periods[periods["arm"] == "placebo"])
    with pytest.raises(ValueError, match="re_correlation"):
        MultiTrial({"re_correlation": 1.0})
    with pytest.raises(ValueError, match="method"):
        multi_trial_twin(periods, method="bayes")


# ---------------------------------------------------------------------------------------------
# Slow: many simulated trials against DL (coverage over replicate networks: the calibration
# study, crampstats.calibration.multi_trial)
# ---------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_many_simulated_trials_agree_with_dl_and_truth():
    # 12 trials from the full simulator (selection by run-in, placebo response, AR(1) weekly
    # rates, dropout), 40 an arm, tau = 0.1 on the simulator's log rate ratios. With 6-12
    # trials per arm the tau prior matters less and the model and the DL twin agree within
    # the tolerance of test_agrees_with_dersimonian_laird_twin.
    arms_cycle = [
        ["placebo", "mexiletine", "quinine"],
        ["placebo", "quinine", "magnesium"],
        ["placebo", "mexiletine", "magnesium"],
    ]
    trials = [{"id": f"S{i + 1:02d}", "arms": arms_cycle[i % 3]} for i in range(12)]
    design = {
        "trials": trials,
        "arms": {"placebo": {}, "mexiletine": {}, "quinine": {}, "magnesium": {}},
        "n_per_arm": 40,
        "tau": 0.1,
    }
    sim, derived = simulated_derived(design, 11)
    periods = derived["periods"]
    idata = MultiTrial().fit(periods, seed=4, cores=CORES)
    assert diagnose(idata)["status"] == "ok"
    twin = multi_trial_twin(periods).set_index("arm")
    post = idata["posterior"]["log_rr"]
    median = post.median(("chain", "draw")).to_series()
    ratio = (median - twin["log_rr"]).abs() / twin["se"]
    assert (ratio <= 1.0).all(), ratio.to_dict()
    for arm in ("mexiletine", "quinine", "magnesium"):
        lo, hi = interval(post.sel(arm=arm))
        assert lo < sim.truth["arms"][arm]["log_rr"] < hi, arm
    lo, hi = interval(idata["posterior"]["tau"])
    assert lo < 0.1 < hi


# ---------------------------------------------------------------------------------------------
# Configuration variants: graph == NumPy at a random point (no sampling)
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "config",
    [
        {"b_per_trial": False, "k_per_trial": False},
        {"re_correlation": 0.0},
        {"covariates": ["age", "sex"]},
    ],
)
def test_variants_graph_equals_pointwise(config, network_trials):
    import xarray as xr

    model = MultiTrial(config)
    prepared = model.prepare(network_trials[0])
    pm_model = model.build(prepared)
    rng = np.random.default_rng(3)
    point = {
        name: value + 0.3 * rng.standard_normal(np.shape(value))
        for name, value in pm_model.initial_point().items()
    }
    names = ["log_rr", "log_rr_trial"]
    deterministics = pm_model.compile_fn(
        pm_model.replace_rvs_by_values([pm_model[n] for n in names]),
        inputs=pm_model.value_vars,
        on_unused_input="ignore",
        point_fn=True,
        mode="FAST_COMPILE",
    )(point)
    posterior = {}
    for rv in pm_model.free_RVs:
        value = point[pm_model.rvs_to_values[rv].name]
        if pm_model.rvs_to_transforms.get(rv) is not None:
            value = np.exp(value)
        posterior[rv.name] = value
    posterior.update(zip(names, deterministics, strict=True))
    dims = pm_model.named_vars_to_dims
    ds = xr.Dataset(
        {
            name: (("chain", "draw", *dims.get(name, ())), np.asarray(value)[None, None])
            for name, value in posterior.items()
        },
        coords={k: v for k, v in prepared.coords.items() if v},
    )
    idata = xr.DataTree.from_dict({"posterior": ds})
    likelihood = [p for p in pm_model.potentials if p.name == "nb_loglik"]
    logp_fn = pm_model.compile_logp(vars=likelihood, jacobian=False, mode="FAST_COMPILE")
    expected = model.pointwise_log_likelihood(idata, prepared).values.sum()
    assert float(logp_fn(point)) == pytest.approx(expected, rel=1e-9)
    assert ("z_trial" in posterior) == (config.get("re_correlation", 0.5) > 0)
    assert posterior["b"].ndim == (0 if config.get("b_per_trial", True) is False else 1)
