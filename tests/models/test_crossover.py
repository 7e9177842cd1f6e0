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

import numpy as np
import pandas as pd
import pytest
from helpers import CORES, DATA, interval, simulated_derived
from scipy import stats

from crampstats.engine import compile_cache_info, diagnose, load_fit, save_fit
from crampstats.models._common import ModelDataError
from crampstats.models.crossover import Crossover, crossover_twin
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
        "p_own_benefit", "n_periods", "n_periods_arm", "observed_ratio",
    ]  # fmt: skip
    analysed = frame[frame["exposure_days"] > 0]
    took = analysed[analysed["treatment"] != "placebo"]["subject_id"].nunique()
    assert len(table) == took
    assert (table["effect_lower"] < table["effect_median"]).all()
    assert (table["effect_median"] < table["effect_upper"]).all()
    assert table["p_own_benefit"].between(0, 1).all()
    assert table.attrs["level"] == 0.9
    # hand check of the bookkeeping for one patient
    row = table.iloc[3]
    rows = analysed[analysed["subject_id"] == row["subject_id"]]
    assert row["n_periods"] == len(rows)
    rate = rows.groupby("treatment")[["count", "exposure_days"]].sum()
    rate = rate["count"] / rate["exposure_days"]
    assert row["observed_ratio"] == pytest.approx(rate[row["arm"]] / rate["placebo"])
    # p_own_benefit is P(log_rr + d_i < 0) draw by draw
    post = fits["example_crossover"]["posterior"]
    key = f"{row['trial_id']}/{row['subject_id']}"
    own = post["log_rr"].sel(arm=row["arm"]) + post["d"].sel(subject=key, arm=row["arm"])
    assert row["p_own_benefit"] == pytest.approx(float((own < 0).mean()))
    assert row["effect_median"] == pytest.approx(float(np.exp(own.median())))


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
# Slow: larger N-of-1 series, carry-over and period trend, calibration over replicates
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
    # benefit probabilities separate true beneficiaries from the others (AUC)
    auc = stats.mannwhitneyu(
        table["p_own_benefit"][true_effect < 0], table["p_own_benefit"][true_effect >= 0]
    ).statistic / ((true_effect < 0).sum() * (true_effect >= 0).sum())
    assert auc > 0.75, auc
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


@pytest.mark.slow
def test_abba_interval_coverage_over_replicates():
    # 40 simulated AB/BA trials (the example's design: ALS rates, 20 patients, sigma_d 0.3,
    # within-subject AR(1) fluctuation that the model approximates by the NB): the 95 %
    # intervals of log_rr must cover the truth at the nominal rate.
    design = load_design(DATA / "example_crossover" / "design.yaml")
    model = Crossover()
    covered, z = [], []
    for i, ss in enumerate(np.random.SeedSequence(31).spawn(40)):
        frame, truth = _simulated(design, ss)
        draws = model.fit(frame, seed=i, cores=CORES, draws=1000)["posterior"]["log_rr"]
        draws = draws.sel(arm="mexiletine")
        value = truth["arms"]["mexiletine"]["log_rr"]
        lo, hi = interval(draws)
        covered.append(lo < value < hi)
        z.append((float(draws.mean()) - value) / float(draws.std()))
    lo, hi = stats.binom.ppf([0.001, 0.999], len(covered), 0.95)
    assert lo <= sum(covered) <= hi, sum(covered)
    assert abs(np.mean(z)) < 4 / np.sqrt(len(z)), np.mean(z)
    assert 0.7 < np.std(z) < 1.3, np.std(z)
