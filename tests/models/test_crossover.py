"""Statistical checks of the ``crossover`` model (crossover and aggregated N-of-1 trials).

Data: the bundled example trials (``derived/crossover.parquet`` as ``make run`` writes it, built
once per session by the ``example_results`` fixture; truth in ``data/<trial>/truth.json``) and
fresh trials from the project's simulator (``crampstats.simulate`` -> ``crampstats.derive``),
whose truth includes every patient's own log rate ratio (``truth["subject_log_rr"]``). Fits are
module-scoped; the fast ones use two model structures only (20 subjects x 2 periods, 13 subjects
x 6 periods), so the file compiles twice.
"""

from __future__ import annotations

import json

import arviz_stats as azs
import numpy as np
import pandas as pd
import pytest
import xarray as xr
from helpers import CORES, DATA, interval, simulated_derived
from scipy import stats

from crampstats.compare.loo_check import checked_loo_table
from crampstats.engine import compile_cache_info, diagnose, load_fit, save_fit
from crampstats.models._common import ModelDataError
from crampstats.models.crossover import (
    Crossover,
    crossover_twin,
    own_effect_identified,
    sigma_d_prior_sensitivity,
)
from crampstats.simulate.design import load_design

EXAMPLES = ("example_crossover", "example_nof1")


def _example(example_results, name):
    frame = pd.read_parquet(example_results(name) / "derived" / "crossover.parquet")
    truth = json.loads((DATA / name / "truth.json").read_text())
    return frame, truth


def _simulated(design, seed):
    trial, derived = simulated_derived(design, seed)
    return derived["crossover"], trial.truth


def _active_arm(truth):
    return next(a for a in truth["arms"] if a != truth["control_arm"])


# ---------------------------------------------------------------------------------------------
# Fits (module scope)
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def examples(example_results):
    return {name: _example(example_results, name) for name in EXAMPLES}


@pytest.fixture(scope="module")
def fits(examples):
    model = Crossover()
    return {
        name: model.fit(frame, seed=1, cores=CORES, log_likelihood=True)
        for name, (frame, _) in examples.items()
    }


@pytest.fixture(scope="module")
def simulated_abba(fits):
    # A fresh AB/BA trial from the example's own design (ALS rates, 20 subjects, sigma_d 0.3):
    # same structure as the example, so the compiled model is re-used with new data.
    design = load_design(DATA / "example_crossover" / "design.yaml")
    frame, truth = _simulated({**design, "trial_id": "sim_abba"}, 4242)
    before = compile_cache_info()
    idata = Crossover().fit(frame, seed=5, cores=CORES)
    return frame, truth, idata, before, compile_cache_info()


# ---------------------------------------------------------------------------------------------
# Recovery and convergence on the bundled examples (simulated, truth known)
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", EXAMPLES)
def test_examples_converge(name, fits):
    report = diagnose(fits[name])
    assert report["status"] == "ok", report["reasons"]


@pytest.mark.parametrize("name", EXAMPLES)
def test_log_rr_recovered_on_examples(name, fits, examples):
    _, truth = examples[name]
    arm = _active_arm(truth)
    draws = fits[name]["posterior"]["log_rr"].sel(arm=arm)
    lo, hi = interval(draws)
    true_value = truth["arms"][arm]["log_rr"]
    assert lo < true_value < hi, f"truth {true_value:.3f} outside [{lo:.3f}, {hi:.3f}]"
    z = (float(draws.median()) - true_value) / float(draws.std())
    assert abs(z) < 2.0
    # The realised mean of the patients' own effects is what the data can tell: closer still.
    realised = np.mean([v[arm] for v in truth["subject_log_rr"].values()])
    assert abs(float(draws.median()) - realised) < 1.5 * float(draws.std())
    # and the interval is informative (20 or 13 patients: SD ~0.1)
    assert float(draws.std()) < 0.15


def test_sigma_d_covered_on_nof1_example(fits, examples):
    _, truth = examples["example_nof1"]
    lo, hi = interval(fits["example_nof1"]["posterior"]["sigma_d"])
    assert lo < truth["effect_sd"] < hi


def test_patient_effects_track_true_patient_effects(fits, examples):
    # N-of-1 example: 13 patients, 3 blocks per treatment, true effect SD 0.4; measured rank
    # correlations 0.85 (posterior median) and 0.86 (P(own benefit)).
    _, truth = examples["example_nof1"]
    arm = _active_arm(truth)
    table = Crossover().patient_effects(fits["example_nof1"])
    true_effect = np.array([truth["subject_log_rr"][s][arm] for s in table["subject_id"]])
    rho = stats.spearmanr(true_effect, np.log(table["effect_median"])).statistic
    assert rho > 0.6, rho
    rho_p = stats.spearmanr(true_effect, -table["p_own_benefit"]).statistic
    assert rho_p > 0.6, rho_p
    # patients whose true effect is harmful (RR > 1) are less likely to be judged to benefit
    harmed = true_effect > 0
    assert harmed.any() and (~harmed).any()
    assert table["p_own_benefit"][harmed].max() < table["p_own_benefit"][~harmed].median()


def test_patient_effects_table(fits, examples):
    frame, _ = examples["example_crossover"]
    table = Crossover().patient_effects(fits["example_crossover"], level=0.9)
    assert list(table.columns) == [
        "trial_id", "subject_id", "arm", "effect_median", "effect_lower", "effect_upper",
        "p_own_benefit", "p_own_benefit_sd_half", "p_own_benefit_sd_double", "sensitivity_k",
        "identified", "reason", "n_periods", "n_periods_arm", "n_periods_control",
        "observed_ratio",
    ]  # fmt: skip
    analysed = frame[frame["exposure_days"] > 0]
    took = analysed[analysed["treatment"] != "placebo"]["subject_id"].nunique()
    assert len(table) == took
    assert (table["effect_lower"] < table["effect_median"]).all()
    assert (table["effect_median"] < table["effect_upper"]).all()
    assert table.attrs["level"] == 0.9
    # hand check of the bookkeeping for one patient
    row = table.iloc[3]
    rows = analysed[analysed["subject_id"] == row["subject_id"]]
    assert row["n_periods"] == len(rows)
    assert row["n_periods_control"] == (rows["treatment"] == "placebo").sum()
    rate = rows.groupby("treatment")[["count", "exposure_days"]].sum()
    rate = rate["count"] / rate["exposure_days"]
    assert row["observed_ratio"] == pytest.approx(rate[row["arm"]] / rate["placebo"])
    post = fits["example_crossover"]["posterior"]
    key = f"{row['trial_id']}/{row['subject_id']}"
    own = post["log_rr"].sel(arm=row["arm"]) + post["d"].sel(subject=key, arm=row["arm"])
    assert row["effect_median"] == pytest.approx(float(np.exp(own.median())))


# ---------------------------------------------------------------------------------------------
# Per-patient benefit: identification and sensitivity to the sigma_d prior
# ---------------------------------------------------------------------------------------------
def test_abba_patient_benefit_withheld_with_reason(fits):
    # AB/BA: one period per treatment per patient, so no patient's own effect is identified
    table = Crossover().patient_effects(fits["example_crossover"])
    assert not table["identified"].any()
    assert (table[["n_periods_arm", "n_periods_control"]] == 1).all().all()
    for col in ("p_own_benefit", "p_own_benefit_sd_half", "p_own_benefit_sd_double"):
        assert table[col].isna().all(), col
    assert table["reason"].str.startswith("1 period(s) on mexiletine and 1 on placebo:").all()
    assert table["reason"].str.contains("prior of sigma_d", regex=False).all()


@pytest.mark.slow
def test_sigma_d_prior_reweighting_matches_refit(fits, examples):
    # Independent check of the importance reweighting: refit the N-of-1 example with the
    # sigma_d prior scale doubled (0.5 -> 1.0). Each patient's reweighted P(own benefit) must
    # match the refit's within 4 Monte Carlo SEs of the difference, each SE sqrt(p (1 - p) /
    # ESS): the refit's ESS of the benefit indicator, and the weighted estimate's Kish ESS
    # 1 / sum w^2 times the base fit's relative efficiency of the indicator.
    frame, _ = examples["example_nof1"]
    base = fits["example_nof1"]
    table = Crossover().patient_effects(base)
    refit = Crossover({"prior_sigma_d_sd": 1.0}).fit(frame, seed=3, cores=CORES)
    weights, k = sigma_d_prior_sensitivity(base["posterior"]["sigma_d"].sel(arm="quinine"), 0.5, 2)
    assert k < 0.7
    kish = 1.0 / np.sum(weights**2)
    for row in table.itertuples():
        key = f"{row.trial_id}/{row.subject_id}"

        def benefit(idata, key=key):
            post = idata["posterior"]
            own = post["log_rr"].sel(arm="quinine") + post["d"].sel(subject=key, arm="quinine")
            return (own < 0).astype(float)

        p_refit = float(benefit(refit).mean())
        p_w = row.p_own_benefit_sd_double
        n_base = base["posterior"].sizes["chain"] * base["posterior"].sizes["draw"]
        # ESS of a constant indicator (P = 0 or 1 in every draw) is undefined: take the draws
        r_eff = min(1.0, np.nan_to_num(float(azs.ess(benefit(base), method="bulk")), nan=n_base)
                    / n_base)  # fmt: skip
        ess_refit = np.nan_to_num(float(azs.ess(benefit(refit), method="bulk")), nan=n_base)
        p = min(max((p_refit + p_w) / 2, 1.0 / n_base), 1.0 - 1.0 / n_base)
        se = np.sqrt(p * (1 - p) * (1.0 / ess_refit + 1.0 / (kish * r_eff)))
        assert abs(p_w - p_refit) < 4 * se, (row.subject_id, p_w, p_refit, se)


def test_identification_rule():
    n_arm = np.array([[1, 2], [2, 3], [3, 0]])
    n_control = np.array([[2, 2], [1, 1], [3, 3]])
    identified, reason = own_effect_identified(n_arm, n_control, ["q", "m"], "placebo")
    assert identified.tolist() == [[False, True], [False, False], [True, False]]
    assert reason[0, 0].startswith("1 period(s) on q and 2 on placebo")
    assert reason[0, 1] == "" and reason[2, 0] == ""


def test_nof1_patient_benefit_reported_and_calibrated(fits, examples):
    # N-of-1 example: 13 patients x 3 blocks per treatment, truth known. Identified, and P(own
    # benefit) is draw-by-draw P(log_rr + d_i < 0).
    _, truth = examples["example_nof1"]
    table = Crossover().patient_effects(fits["example_nof1"])
    assert table["identified"].all() and (table["reason"] == "").all()
    row = table.iloc[2]
    post = fits["example_nof1"]["posterior"]
    key = f"{row['trial_id']}/{row['subject_id']}"
    own = post["log_rr"].sel(arm=row["arm"]) + post["d"].sel(subject=key, arm=row["arm"])
    assert row["p_own_benefit"] == pytest.approx(float((own < 0).mean()))
    # Recovery: if the probabilities are calibrated, the number of true beneficiaries is a sum
    # of independent Bernoulli(p_i) (variance sum p_i (1 - p_i)); 3 SD (+ 0.5 continuity) bound
    # it. True beneficiaries have P > 0.5 more often than not (one-sided binomial band at 1 %).
    true_effect = np.array([truth["subject_log_rr"][s][row["arm"]] for s in table["subject_id"]])
    p = table["p_own_benefit"].to_numpy()
    n_true = int((true_effect < 0).sum())
    assert abs(p.sum() - n_true) < 3 * np.sqrt(np.sum(p * (1 - p))) + 0.5, (p.sum(), n_true)
    hits = int((p[true_effect < 0] > 0.5).sum())
    assert hits > stats.binom.ppf(0.99, n_true, 0.5), (hits, n_true)


def test_sigma_d_prior_sensitivity_direction(fits):
    # Halving the sigma_d prior scale shrinks the patients toward the population effect,
    # doubling it spreads them: sigma_d's reweighted mean moves accordingly (weights monotone
    # in sigma_d, so this holds exactly), and P(own benefit) moves toward / away from
    # P(log_rr < 0) on average over patients.
    idata = fits["example_nof1"]
    post = idata["posterior"]
    sigma = post["sigma_d"].sel(arm="quinine")
    s = sigma.transpose("chain", "draw").values.ravel()
    w_half, k_half = sigma_d_prior_sensitivity(sigma, 0.5, 0.5)
    w_double, k_double = sigma_d_prior_sensitivity(sigma, 0.5, 2.0)
    assert max(k_half, k_double) < 0.7
    assert w_half @ s < s.mean() < w_double @ s
    # PSIS only smooths the largest weights: they agree with the raw ratio of the priors
    for w, c in ((w_half, 0.5), (w_double, 2.0)):
        raw = stats.halfnorm.pdf(s, scale=0.5 * c) / stats.halfnorm.pdf(s, scale=0.5)
        assert np.corrcoef(w, raw / raw.sum())[0, 1] > 0.99
    table = Crossover().patient_effects(idata)
    p_pop = float((post["log_rr"].sel(arm="quinine") < 0).mean())
    dist = {c: np.abs(table[c] - p_pop).mean() for c in
            ("p_own_benefit_sd_half", "p_own_benefit", "p_own_benefit_sd_double")}
    assert dist["p_own_benefit_sd_half"] < dist["p_own_benefit"] < dist["p_own_benefit_sd_double"]
    assert (table["sensitivity_k"] < 0.7).all()


# ---------------------------------------------------------------------------------------------
# Frequentist twin
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", EXAMPLES)
def test_twin_agrees_with_bayesian_median(name, fits, examples):
    # Tolerance: half a twin SE (0.04-0.05 here). Both fit the same fixed terms to the same
    # rows; they differ by the hierarchical shrinkage and by estimand under effect
    # heterogeneity (twin_docstring: up to sigma_d^2 / 2 = 0.045-0.08 at the examples'
    # sigma_d, usually far less); measured 0.003 and 0.009. An offset, sign or coding error
    # moves the estimate by several SEs.
    frame, _ = examples[name]
    twin = crossover_twin(frame).set_index("arm")
    assert twin.attrs["converged"]
    post = fits[name]["posterior"]["log_rr"]
    median = post.median(("chain", "draw")).to_series()
    diff = (median - twin["log_rr"]).abs()
    assert (diff <= 0.5 * twin["se"]).all(), (diff / twin["se"]).to_dict()
    # cluster-robust SE and posterior SD measure the same uncertainty (ratios 1.13-1.17)
    ratio = post.std(("chain", "draw")).to_series() / twin["se"]
    assert ((ratio > 0.8) & (ratio < 1.5)).all(), ratio.to_dict()
    # model-based SEs ignore differing patient effects and are smaller
    assert twin.attrs["se_model"][twin.index[0]] < twin["se"].iloc[0]


def test_twin_with_carryover_on_nof1(examples):
    frame, _ = examples["example_nof1"]
    plain = crossover_twin(frame)
    carry = crossover_twin(frame, carryover=True)
    # no carry-over in the example: the estimate is ~0 and the effect hardly moves
    assert abs(carry.attrs["carryover"]["quinine"]) < 2 * carry["se"].iloc[0]
    assert carry["log_rr"].iloc[0] == pytest.approx(plain["log_rr"].iloc[0], abs=plain["se"][0])
    assert carry["se"].iloc[0] > 0


# ---------------------------------------------------------------------------------------------
# A fresh simulated AB/BA trial through the cached compiled model
# ---------------------------------------------------------------------------------------------
def test_simulated_abba_recovered_with_cached_model(simulated_abba):
    frame, truth, idata, before, after = simulated_abba
    assert after["compiles"] == before["compiles"]  # same structure: no recompilation
    assert after["hits"] == before["hits"] + 1
    # the posterior is labelled with this trial's subjects, not the compiled ones
    analysed = frame[frame["exposure_days"] > 0]
    keys = sorted(set(analysed["trial_id"] + "/" + analysed["subject_id"]))
    assert keys[0].startswith("sim_abba/")
    assert list(idata["posterior"]["subject"].values) == keys
    assert list(idata["constant_data"]["subject"].values) == keys
    assert diagnose(idata)["status"] == "ok"
    arm = _active_arm(truth)
    draws = idata["posterior"]["log_rr"].sel(arm=arm)
    lo, hi = interval(draws)
    assert lo < truth["arms"][arm]["log_rr"] < hi
    twin = crossover_twin(frame)
    assert abs(float(draws.median()) - twin["log_rr"].iloc[0]) <= 0.5 * twin["se"].iloc[0]


# ---------------------------------------------------------------------------------------------
# Likelihood, absolute rates, predictive distribution
# ---------------------------------------------------------------------------------------------
def _point(pm_model, one):
    point = {}
    for rv in pm_model.free_RVs:
        value = one["posterior"][rv.name].values[0, 0]  # drop chain and draw
        transform = pm_model.rvs_to_transforms.get(rv)
        value_var = pm_model.rvs_to_values[rv]
        # HalfNormal / LogNormal parameters are sampled on the log scale
        point[value_var.name] = (
            np.log(value) if transform is not None else np.asarray(value, dtype=float)
        )
    return point


@pytest.mark.parametrize("name", EXAMPLES)
def test_graph_logp_equals_pointwise_sum(name, fits, examples):
    frame, _ = examples[name]
    model = Crossover()
    prepared = model.prepare(frame)
    pm_model = model.build(prepared)
    one = fits[name].isel(chain=[1], draw=[7])
    point = _point(pm_model, one)
    logp_fn = pm_model.compile_logp(vars=pm_model.potentials, jacobian=False, mode="FAST_COMPILE")
    expected = model.pointwise_log_likelihood(one, prepared).values.sum()
    assert float(logp_fn(point)) == pytest.approx(expected, rel=1e-9)
    point["log_rr"] = point["log_rr"] + 0.1  # not trivially so
    assert float(logp_fn(point)) != pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize(
    ("name", "config"),
    [("example_crossover", {}), ("example_nof1", {"carryover": True, "centred_effects": True})],
)
def test_moment_match_density_equals_pymc(name, config, fits, examples):
    # The NumPy log posterior in the unconstrained space (for ArviZ's moment matching) is
    # PyMC's joint log density with Jacobians, to rounding; the other parameterisation and
    # carry-over are checked on draws re-used as values of a model with them.
    frame, _ = examples[name]
    model = Crossover(config)
    prepared = model.prepare(frame)
    idata = fits[name]
    if config:
        post = idata["posterior"].to_dataset()
        post["carryover"] = post["log_rr"] * 0.3
        idata = xr.DataTree.from_dict({"posterior": post})
    log_prob, log_lik_i, upars = model.moment_match_functions(idata, prepared)
    pm_model = model.build(prepared)
    logp_fn = pm_model.compile_logp(jacobian=True, mode="FAST_COMPILE")
    ours = log_prob(upars).values
    for chain, draw in ((0, 0), (1, 7), (3, 1999)):
        point = _point(pm_model, idata.isel(chain=[chain], draw=[draw]))
        assert float(logp_fn(point)) == pytest.approx(ours[chain, draw], rel=1e-10, abs=1e-8)
    if not config:  # the subject term is the stored pointwise log-likelihood
        stored = idata["log_likelihood"]["y"].isel(subject=4).values
        np.testing.assert_allclose(log_lik_i(upars, 4).values, stored, rtol=1e-12)


@pytest.mark.slow
def test_moment_matching_lowers_pareto_k_on_abba(fits, examples):
    # PSIS-LOO of the AB/BA example: k > 0.7 for most of the 20 subjects (each subject's a_i
    # and d_i rest on their own two periods). Moment matching (no refit) leaves far fewer,
    # and whatever remains is reported as unreliable rather than ranked.
    frame, _ = examples["example_crossover"]
    model = Crossover()
    row = checked_loo_table(
        {"crossover": (fits["example_crossover"], model, model.prepare(frame))}
    ).iloc[0]
    assert row["n_pareto_k_high"] >= 10  # measured: 15 of 20, max 1.08
    assert row["method"] == "moment_match"
    assert row["n_high_k"] <= row["n_pareto_k_high"] // 3  # measured: 1, max 0.75
    assert row["reliable"] == (row["n_high_k"] == 0)
    if not row["reliable"]:
        assert "after moment matching" in row["note"] and "unreliable" in row["note"]


def test_pointwise_matches_scipy(fits, examples):
    frame, _ = examples["example_nof1"]
    model = Crossover()
    prepared = model.prepare(frame)
    one = fits["example_nof1"].isel(chain=[2], draw=[11])
    loglik = model.pointwise_log_likelihood(one, prepared).values[0, 0]
    p = one["posterior"]
    d = prepared.data
    a = p["a"].values[0, 0]
    own = np.r_[0.0, p["log_rr"].values[0, 0, 0]] + np.c_[np.zeros(len(a)), p["d"].values[0, 0]]
    period = np.r_[0.0, p["period_effect"].values[0, 0]]
    k = p["k"].item()
    mu = np.exp(
        d["log_exposure"]
        + a[d["subject_idx"]]
        + own[d["subject_idx"], d["arm_idx"]]
        + period[d["period_idx"]]
    )
    rows = stats.nbinom.logpmf(d["y"], k, k / (k + mu))
    expected = np.bincount(d["subject_idx"], weights=rows)
    np.testing.assert_allclose(loglik, expected, rtol=1e-10)
    # and per subject (conditional on a_i, d_i), labelled with the subject keys
    group = fits["example_nof1"]["log_likelihood"]["y"]
    assert group.dims == ("chain", "draw", "subject")
    assert group.sizes["subject"] == 13


def test_subject_log_rate(fits, examples):
    frame, _ = examples["example_nof1"]
    idata = fits["example_nof1"]
    rate = Crossover().subject_log_rate(idata)
    assert rate.dims == ("chain", "draw", "subject")
    post = idata["posterior"]
    periods = np.concatenate(
        [np.zeros((*post["period_effect"].shape[:2], 1)), post["period_effect"].values], axis=-1
    )
    expected = post["a"].values + np.log(np.exp(periods).mean(axis=-1))[..., None]
    np.testing.assert_allclose(rate.values, expected)
    # the placebo rate it implies reproduces the observed one (all patients take placebo)
    placebo = frame[(frame["treatment"] == "placebo") & (frame["exposure_days"] > 0)]
    observed = placebo["count"].sum() / placebo["exposure_days"].sum()
    assert float(np.exp(rate).mean()) == pytest.approx(observed, rel=0.15)


def test_predictive_pmf(fits, examples):
    frame, _ = examples["example_nof1"]
    model = Crossover()
    prepared = model.prepare(frame)
    observed, pmf = model.predictive_pmf(fits["example_nof1"], prepared, max_count=300)
    assert observed.shape == (len(frame[frame["exposure_days"] > 0]),)
    assert pmf.shape == (len(observed), 301)
    np.testing.assert_allclose(pmf.sum(axis=1), 1.0, rtol=1e-9)
    # predictive means (given a_i, d_i) add up to the observed total within a few per cent
    expected_total = float((pmf * np.arange(301)).sum())
    assert expected_total == pytest.approx(observed.sum(), rel=0.05)


def test_fit_survives_netcdf(fits, tmp_path):
    path = save_fit(fits["example_crossover"], tmp_path / "fit.nc")
    loaded = load_fit(path, Crossover())
    a = Crossover().patient_effects(fits["example_crossover"])
    b = Crossover().patient_effects(loaded)
    pd.testing.assert_frame_equal(a, b)


# ---------------------------------------------------------------------------------------------
# Data handling and refusals
# ---------------------------------------------------------------------------------------------
def test_prepare_arrays(examples):
    frame, _ = examples["example_nof1"]
    frame = frame.copy()
    frame.loc[4, "exposure_days"] = 0  # a period without diary: dropped
    prepared = Crossover().prepare(frame)
    d = prepared.data
    assert len(d["y"]) == len(frame) - 1
    assert prepared.coords["period"] == ["2", "3", "4", "5", "6"]
    assert prepared.coords["arm"] == ["quinine"]
    assert np.all(np.diff(d["subject_idx"]) >= 0)
    assert prepared.n_subjects == 13
    linear = Crossover({"period_effects": "linear"}).prepare(frame)
    assert linear.coords["period"] == []
    np.testing.assert_array_equal(linear.data["period_t"], d["period_idx"])


def test_structure_key_counts_subjects(examples):
    frame, _ = examples["example_crossover"]
    model = Crossover()
    fewer = frame[frame["subject_id"] != frame["subject_id"].iloc[0]]
    assert model.structure_key(model.prepare(frame)) != model.structure_key(model.prepare(fewer))
    assert model.structure_key(model.prepare(frame)) == model.structure_key(
        model.prepare(frame.sample(frac=1.0, random_state=1))
    )


def test_carryover_refused_in_two_period_design(examples, example_results):
    frame, _ = examples["example_crossover"]
    with pytest.raises(ModelDataError, match="carry-over mexiletine"):
        Crossover({"carryover": True}).prepare(frame)
    with pytest.raises(ModelDataError, match="carry-over"):
        crossover_twin(frame, carryover=True)
    # in the N-of-1 series it is estimable within subjects
    nof1, _ = _example(example_results, "example_nof1")
    prepared = Crossover({"carryover": True}).prepare(nof1)
    prev = nof1["previous_treatment"].fillna("none").to_numpy()
    np.testing.assert_array_equal(prepared.data["carry_idx"], (prev == "quinine").astype(int))


def test_confounded_treatment_refused(examples):
    frame, _ = examples["example_crossover"]
    one_sequence = frame[frame["sequence"] == "AB"]  # treatment aliased with period
    with pytest.raises(ModelDataError, match="period 2"):
        Crossover().prepare(one_sequence)


def test_bad_data_refused(examples):
    frame, _ = examples["example_crossover"]
    with pytest.raises(ModelDataError, match="more than one row"):
        Crossover().prepare(pd.concat([frame, frame.iloc[[0]]]))
    with pytest.raises(ModelDataError, match="control arm 'placebo'"):
        Crossover().prepare(frame[frame["treatment"] != "placebo"])
    with pytest.raises(ModelDataError, match="lacks column"):
        Crossover().prepare(frame.drop(columns="treatment"))
    odd = frame.copy()
    odd.loc[1, "log_baseline_rate"] = 9.0  # run-in rate must be constant per subject
    with pytest.raises(ModelDataError, match="changes within subject"):
        Crossover().prepare(odd)
    with pytest.raises(ValueError, match="period_effects"):
        Crossover({"period_effects": "quadratic"})
    with pytest.raises(ValueError, match="unknown crossover model_config"):
        Crossover({"period": "treatment"})


# ---------------------------------------------------------------------------------------------
# Slow: larger N-of-1 series, carry-over and period trend (coverage over replicates: the
# calibration study, crampstats.calibration.crossover)
# ---------------------------------------------------------------------------------------------
NOF1_60 = {
    "type": "nof1", "trial_id": "nof1", "n_subjects": 60,
    "arms": {"placebo": {}, "quinine": {}}, "effect_sd": 0.5,
}  # fmt: skip


@pytest.mark.slow
def test_nof1_sigma_d_and_patient_effects_recovered():
    # 60 patients x 3 blocks per treatment: patient effects are identifiable (docs/calibration.md,
    # N-of-1 default design); sigma_d must be recovered and clearly above zero.
    frame, truth = _simulated(NOF1_60, 2)
    model = Crossover()
    idata = model.fit(frame, seed=2, cores=CORES)
    assert diagnose(idata)["status"] == "ok"
    post = idata["posterior"]
    lo, hi = interval(post["sigma_d"])
    assert lo < truth["effect_sd"] < hi
    assert lo > 0.25  # heterogeneity detected
    draws = post["log_rr"].sel(arm="quinine")
    realised = np.mean([v["quinine"] for v in truth["subject_log_rr"].values()])
    lo, hi = interval(draws)
    assert lo < truth["arms"]["quinine"]["log_rr"] < hi
    assert abs(float(draws.median()) - realised) < float(draws.std())
    table = model.patient_effects(idata)
    true_effect = np.array([truth["subject_log_rr"][s]["quinine"] for s in table["subject_id"]])
    assert stats.spearmanr(true_effect, np.log(table["effect_median"])).statistic > 0.7
    # P(own benefit) is withheld exactly for the patients (dropouts) with < 2 periods on an arm
    short = (table["n_periods_arm"] < 2) | (table["n_periods_control"] < 2)
    assert (table["identified"] == ~short).all()
    assert table["p_own_benefit"][short].isna().all()
    ok = table["identified"].to_numpy()
    p, benefits = table["p_own_benefit"].to_numpy()[ok], true_effect[ok] < 0
    # benefit probabilities separate true beneficiaries from the others (AUC)
    auc = stats.mannwhitneyu(p[benefits], p[~benefits]).statistic / (
        benefits.sum() * (~benefits).sum()
    )
    assert auc > 0.75, auc
    # true beneficiaries get P > 0.5 more often than not: above the one-sided 1 % binomial
    # band of a coin; and the expected number of beneficiaries, sum p_i, is within 3 SD of a
    # sum of Bernoulli(p_i) (+ 0.5 continuity) of the true number
    hits = int((p[benefits] > 0.5).sum())
    assert hits > stats.binom.ppf(0.99, benefits.sum(), 0.5), (hits, benefits.sum())
    assert abs(p.sum() - benefits.sum()) < 3 * np.sqrt(np.sum(p * (1 - p))) + 0.5
    # 95 % intervals of the patients' effects cover the truth about 95 % of the time
    inside = (np.log(table["effect_lower"]) < true_effect) & (
        true_effect < np.log(table["effect_upper"])
    )
    assert inside.mean() > 0.85
    # twin: differs by estimand under heterogeneity, at most sigma_d^2 / 2 plus noise
    twin = crossover_twin(frame)
    assert abs(float(draws.median()) - twin["log_rr"].iloc[0]) < 0.5**2 / 2 + 0.5 * twin["se"][0]


@pytest.mark.slow
def test_carryover_and_linear_period_trend_recovered():
    design = {
        **NOF1_60, "n_subjects": 80, "arms": {"placebo": {}, "mexiletine": {}},
        "effect_sd": 0.3, "carryover": 0.5, "period_effect": -0.05,
    }  # fmt: skip
    frame, truth = _simulated(design, 11)
    model = Crossover({"carryover": True, "period_effects": "linear"})
    idata = model.fit(frame, seed=11, cores=CORES)
    assert diagnose(idata)["status"] == "ok"
    post = idata["posterior"]
    log_rr = truth["arms"]["mexiletine"]["log_rr"]
    # the simulator carries over half of the previous period's (patient's own) log RR
    checks = {
        "log_rr": (post["log_rr"].sel(arm="mexiletine"), log_rr),
        "carryover": (post["carryover"].sel(arm="mexiletine"), truth["carryover"] * log_rr),
        "period_trend": (post["period_trend"], truth["period_effect"]),
    }
    for name, (draws, value) in checks.items():
        lo, hi = interval(draws)
        assert lo < value < hi, f"{name}: {value:.3f} outside [{lo:.3f}, {hi:.3f}]"
    twin = crossover_twin(frame, carryover=True, period_effects="linear")
    assert twin.attrs["carryover"]["mexiletine"] == pytest.approx(
        float(post["carryover"].median()), abs=0.1
    )
