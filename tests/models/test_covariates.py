"""Subject covariates and site random intercepts in the count models and their twins.

Data: :func:`helpers.covariate_trial`, the count models' own process (gamma frailty, run-in
covariate as the models assume) plus known effects of a numeric covariate (``bmi``, 0.04 log
rate per kg/m2), a categorical one (``severity``: +0.3 moderate, +0.6 severe against mild) and
a site effect per subject (12 sites, between-site SD 0.4). Fast fits use 2 chains x 500 draws
(the convergence gate is not the point here: the site intercepts' SD mixes slowest, bulk ESS
~200 of 1000, see ``SubjectTermsModel.group_intercepts``); the other models' fits are ``slow``.

Tolerances of the Bayesian-versus-twin checks are in units of the twin's standard error
(``|posterior median - twin estimate| / SE``), for the arms' log rate ratios and the covariate
coefficients alike:

- same likelihood (``nb_totals`` and the NB2 GLM; ``zinb`` / ``hurdle`` without trend and their
  totals twins), sites random in the model and fixed in the twin: the gap is the prior's pull
  (``N(0, 1)`` on estimates with SE ~0.1: below 0.05 SE), Monte Carlo error of 2 x 500 draws and
  the shrinkage of the site intercepts (12 sites of ~20 subjects), which moves a covariate that
  is by chance unevenly spread over the sites. Measured over 8 replicate trials of this design
  (40 estimates, seeds 100-107): median gap 0.09 SE, SD 0.09, largest 0.38 SE (severity); on the
  trial with that gap, without sites and with 4 x 2000 draws, it fell to <= 0.06 SE. Tolerance
  0.6 SE, 1.6 times the largest gap seen; a sign, offset, scaling or level-coding error moves an
  estimate by an SE or more. The posterior SD must match the ML SE within 25 % (0.95-1.14 in
  the replicates).
- different estimators of the same quantity (``frailty_weekly`` / GEE, ``nb_glmm`` /
  clustered GLM, ``crossover`` / subject fixed effects and second stage, ``multi_trial`` /
  two-stage pooling): 1 SE, as the existing twin checks of these models (tests/models/
  test_count_models.py, test_sensitivity.py, test_multi_trial.py). For ``frailty_weekly`` the
  same replicates gave a largest gap of 0.51 SE and posterior SD / robust SE of 0.91-1.41.
"""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pandas as pd
import pytest
from helpers import (
    CORES,
    check_joint,
    covariate_trial,
    interval,
    model_scale_beta,
    one_draw,
    subject_covariates,
)

from crampstats.engine import package_versions
from crampstats.models import (
    NBGLMM,
    ZINB,
    Crossover,
    FrailtyWeekly,
    Hurdle,
    ModelDataError,
    MultiTrial,
    NBTotals,
    crossover_twin,
    gee_twin,
    hurdle_twin,
    multi_trial_twin,
    nb_glm_twin,
    nb_glmm_twin,
    twin_settings,
    zinb_twin,
)
from crampstats.models._common import (
    COMMON_MODEL_CONFIG,
    MISSING_LEVEL,
    SUBJECT_TERM_DEFAULTS,
    CovariateDesign,
    GroupDesign,
    twin_columns,
)

RATE_RATIOS = {"placebo": 1.0, "mexiletine": 0.5, "quinine": 0.75}
TERMS = {"covariates": ["bmi", "severity"], "random_intercepts": ["site"]}
SMALL = {"chains": 2, "draws": 500, "tune": 500, "cores": CORES}
#: |posterior median - twin| / twin SE: same likelihood, then other estimators (docstring).
SAME_LIKELIHOOD_TOL = 0.6
OTHER_ESTIMATOR_TOL = 1.0


@pytest.fixture(scope="module")
def trial():
    return covariate_trial(np.random.default_rng(2026_12_01), RATE_RATIOS, 80, dropout=0.05)


@pytest.fixture(scope="module")
def nb_fit(trial):
    return NBTotals(TERMS).fit(trial[0], seed=31, log_likelihood=True, **SMALL)


@pytest.fixture(scope="module")
def fw_fit(trial):
    return FrailtyWeekly(TERMS).fit(trial[1], seed=32, log_likelihood=True, **SMALL)


def _median(idata, name):
    return idata["posterior"][name].median(("chain", "draw")).to_series()


def _analysed(periods):
    return periods[periods["exposure_days"] > 0]


def _twin_gap(idata, twin):
    """Posterior medians of log_rr and beta minus the twin's, in twin SEs; and SD / SE."""
    arms = twin.set_index("arm")
    est = pd.concat([arms["log_rr"], pd.Series(twin.attrs["beta"])])
    se = pd.concat([arms["se"], pd.Series(twin.attrs["beta_se"])])
    median = pd.concat([_median(idata, "log_rr"), _median(idata, "beta")])
    sd = pd.concat([
        idata["posterior"][v].std(("chain", "draw")).to_series() for v in ("log_rr", "beta")
    ])
    return ((median - est).abs() / se).round(3), (sd / se).round(3)


# ---------------------------------------------------------------------------------------------
# Designs (no sampling)
# ---------------------------------------------------------------------------------------------
def test_design_of_covariates_and_sites(trial):
    periods = trial[0]
    prepared = NBTotals(TERMS).prepare(periods)
    assert prepared.coords["covariate"] == ["bmi", "severity[moderate]", "severity[severe]"]
    assert prepared.coords["group"] == ["site"]
    assert prepared.coords["group_level"] == [f"site[site{j:02d}]" for j in range(1, 13)]
    kept = _analysed(periods)
    X = prepared.data["X_cov"]
    assert X[:, 0].mean() == pytest.approx(0.0, abs=1e-12)
    assert X[:, 0].std() == pytest.approx(1.0)
    np.testing.assert_array_equal(X[:, 2], (kept["severity"] == "severe").to_numpy(float))
    levels = np.array(prepared.coords["group_level"])[prepared.data["group_idx"][:, 0]]
    np.testing.assert_array_equal(levels, "site[" + kept["site"].to_numpy() + "]")
    # the twins' columns: the covariates, then one indicator per site after the first
    blocks, names = twin_columns(X, prepared.data["group_idx"], prepared.coords)
    assert names[:3] == prepared.coords["covariate"] and names[3:] == [
        f"site[site{j:02d}]" for j in range(2, 13)
    ]
    design = np.column_stack(blocks)
    assert design.shape == (len(kept), 14)
    np.testing.assert_array_equal(design[:, 3:].sum(axis=1), (kept["site"] != "site01"))
    # the weekly models code the same subjects the same way
    weekly = FrailtyWeekly(TERMS).prepare(trial[1])
    assert weekly.coords == {**prepared.coords}
    np.testing.assert_allclose(weekly.data["X_cov"], X)
    np.testing.assert_array_equal(weekly.data["group_idx"], prepared.data["group_idx"])


def test_without_terms_the_model_config_and_id_are_unchanged():
    # The subject-term settings are left out of the model config (hence of its id and of what
    # a fit records) at their neutral values: the id is the hash the model had before them.
    before = {k: v for k, v in COMMON_MODEL_CONFIG.items() if k not in SUBJECT_TERM_DEFAULTS}
    config = {**before, "prior_k_mu": float(np.log(3.0)), "prior_k_sd": 1.0}
    assert NBTotals().model_config == config
    payload = {"name": "nb_totals", "config": config, **package_versions()}
    text = json.dumps(payload, sort_keys=True, default=str)
    assert NBTotals().id == hashlib.sha256(text.encode()).hexdigest()[:16]
    assert NBTotals({"random_intercepts": [], "covariate_missing": "error"}).id == NBTotals().id
    assert NBTotals(TERMS).id != NBTotals().id
    with_sites = NBTotals(TERMS).model_config
    assert with_sites["random_intercepts"] == ["site"] and with_sites["prior_sigma_group_sd"] == 0.5
    assert with_sites["centred_groups"] is False and "covariate_missing" not in with_sites
    assert NBTotals({"covariate_missing": "drop"}).model_config["covariate_missing"] == "drop"
    # the twins receive the settings a model holds (crampstats.models.twin_settings)
    assert twin_settings(nb_glm_twin, NBTotals(TERMS).model_config)["random_intercepts"] == [
        "site"
    ]


def test_numeric_site_codes_are_levels_and_nested_in_trials():
    frame = pd.DataFrame({
        "trial_id": ["a", "a", "b", "b"],
        "subject_id": ["1", "2", "1", "2"],
        "site": pd.array([3.0, 1.0, 3.0, None], dtype="Float64"),
    })
    with pytest.raises(ModelDataError, match=r"grouping 'site' is missing for 1 subject\(s\): b/2"):
        GroupDesign.from_frame(frame, ["site"])
    design = GroupDesign.from_frame(frame, ["site"], missing="indicator")
    assert design.labels == ["site[a/1]", "site[a/3]", f"site[b/{MISSING_LEVEL}]", "site[b/3]"]
    np.testing.assert_array_equal(design.index(frame)[:, 0], [1, 0, 3, 2])
    single = GroupDesign.from_frame(frame[frame["trial_id"] == "a"], ["site"])
    assert single.labels == ["site[1]", "site[3]"]


def test_missing_covariates_error_drop_and_indicator(trial):
    periods = trial[0].copy()
    hole = periods.index[periods["exposure_days"] > 0][[2, 5]]
    periods.loc[hole[0], "bmi"] = np.nan
    periods.loc[hole[1], "severity"] = None
    names = periods.loc[hole, "subject_id"].tolist()
    refusal = f"covariate 'bmi' is missing for 1 subject.*{names[0]}.*'drop'.*'indicator'"
    with pytest.raises(ModelDataError, match=refusal):
        NBTotals(TERMS).prepare(periods)
    full = NBTotals(TERMS).prepare(trial[0])
    dropped = NBTotals({**TERMS, "covariate_missing": "drop"}).prepare(periods)
    assert dropped.n_subjects == full.n_subjects - 2
    assert dropped.constants["n_covariate_dropped"] == 2
    assert not set(names) & {s.split("/")[-1] for s in dropped.subject_data["subject"].values}
    # the weekly models drop the same subjects
    weekly = trial[1].merge(
        periods[["subject_id", "bmi", "severity"]], on="subject_id", suffixes=("_old", "")
    )
    fw = FrailtyWeekly({**TERMS, "covariate_missing": "drop"}).prepare(weekly)
    assert fw.n_subjects == dropped.n_subjects
    coded = NBTotals({**TERMS, "covariate_missing": "indicator"}).prepare(periods)
    assert coded.n_subjects == full.n_subjects
    assert coded.coords["covariate"] == [
        "bmi", "bmi[missing]", "severity[moderate]", "severity[severe]",
        f"severity[{MISSING_LEVEL}]",
    ]  # fmt: skip
    X = pd.DataFrame(coded.data["X_cov"], columns=coded.coords["covariate"])
    rows = _analysed(periods).reset_index(drop=True)
    at = rows.index[rows["subject_id"] == names[0]][0]
    assert X.loc[at, "bmi"] == 0.0 and X.loc[at, "bmi[missing]"] == 1.0
    assert X["bmi[missing]"].sum() == 1.0 and X[f"severity[{MISSING_LEVEL}]"].sum() == 1.0
    observed = X["bmi"][X["bmi[missing]"] == 0]
    assert observed.mean() == pytest.approx(0.0, abs=1e-12)


def test_column_named_as_covariate_and_intercept_refused():
    with pytest.raises(ValueError, match="both"):
        NBTotals({"covariates": ["site"], "random_intercepts": ["site"]})
    with pytest.raises(ValueError, match="covariate_missing"):
        NBTotals({"covariate_missing": "impute"})
    with pytest.raises(ModelDataError, match="'height' is not in the analysis data"):
        CovariateDesign.from_frame(pd.DataFrame({"age": [1.0]}), ["height"])


# ---------------------------------------------------------------------------------------------
# nb_totals and frailty_weekly: recovery, twins, likelihoods
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("which", ["nb", "fw"])
def test_arm_and_covariate_effects_recovered(which, request, trial):
    idata = request.getfixturevalue(f"{which}_fit")
    post = idata["posterior"]
    assert float(post["log_rr"].std(("chain", "draw")).max()) < 0.15
    truth = {**trial[2]["log_rr"], **model_scale_beta(_analysed(trial[0]), trial[2])}
    names = list(truth)
    draws = np.column_stack(
        [post["log_rr"].sel(arm=n).values.ravel() for n in trial[2]["log_rr"]]
        + [post["beta"].sel(covariate=n).values.ravel() for n in names[2:]]
    )
    check_joint(draws, np.array([truth[n] for n in names]), names)
    assert int(idata["sample_stats"]["diverging"].sum()) < 5


@pytest.mark.parametrize("which", ["nb", "fw"])
def test_site_intercept_recovers_between_site_sd(which, request, trial):
    # Roughly: 12 sites identify the SD to about +-40 %; the truth (0.4) must be inside the
    # 95 % interval, and the site effects must line up with the simulated ones (a level coding
    # error would scramble them).
    post = request.getfixturevalue(f"{which}_fit")["posterior"]
    lo, hi = interval(post["sigma_group"])
    assert lo < trial[2]["site_sd"] < hi, (lo, hi)
    assert 0.2 < float(post["sigma_group"].median()) < 0.8
    effects = post["group_effect"].median(("chain", "draw")).to_series()
    truth = pd.Series(trial[2]["site_effects"])
    truth.index = "site[" + truth.index + "]"
    centred = truth - truth.mean()
    assert np.corrcoef(effects[truth.index], centred)[0, 1] > 0.85


def test_nb_totals_agrees_with_nb2_glm_with_site_fixed_effects(nb_fit, trial):
    twin = nb_glm_twin(trial[0], **TERMS)
    assert twin.attrs["converged"]
    gap, sd_ratio = _twin_gap(nb_fit, twin)
    assert (gap <= SAME_LIKELIHOOD_TOL).all(), gap.to_dict()
    assert ((sd_ratio - 1).abs() < 0.25).all(), sd_ratio.to_dict()
    assert float(nb_fit["posterior"]["k"].median()) == pytest.approx(twin.attrs["k"], rel=0.2)


def test_frailty_weekly_agrees_with_gee(fw_fit, trial):
    twin = gee_twin(trial[1], **TERMS)
    gap, sd_ratio = _twin_gap(fw_fit, twin)
    assert (gap <= OTHER_ESTIMATOR_TOL).all(), gap.to_dict()
    assert ((sd_ratio > 0.7) & (sd_ratio < 1.5)).all(), sd_ratio.to_dict()


@pytest.mark.parametrize(("model_cls", "which"), [(NBTotals, "nb"), (FrailtyWeekly, "fw")])
def test_graph_logp_equals_pointwise_sum(model_cls, which, request, trial):
    # The post-processing (pointwise log-likelihood for LOO, rootograms, absolute effects)
    # adds the site intercepts exactly as the sampled density does.
    idata = request.getfixturevalue(f"{which}_fit")
    model = model_cls(TERMS)
    prepared = model.prepare(trial[0] if which == "nb" else trial[1])
    _check_graph_equals_pointwise(model, prepared, idata.isel(chain=[1], draw=[7]))


def _check_graph_equals_pointwise(model, prepared, one, pointwise=None, *, perturb=True):
    """The sampled likelihood at a posterior draw equals the sum of the post-processing's
    pointwise log-likelihood (``pointwise``: another per-subject function, e.g. nb_glmm's
    conditional one), and moves with the site effects (``perturb``; not where they enter only
    the prior of the subject intercepts); every transform of these models is a log."""
    pm_model = model.build(prepared)
    point = {}
    for rv in pm_model.free_RVs:
        value = np.asarray(one["posterior"][rv.name].values[0, 0], dtype=float)
        transformed = pm_model.rvs_to_transforms.get(rv) is not None
        point[pm_model.rvs_to_values[rv].name] = np.log(value) if transformed else value
    likelihood = [p for p in pm_model.potentials if p.name.endswith("loglik")]
    assert len(likelihood) == 1
    logp = pm_model.compile_logp(vars=likelihood, jacobian=False, mode="FAST_COMPILE")
    pointwise = pointwise or model.pointwise_log_likelihood
    expected = pointwise(one, prepared).values.sum()
    assert float(logp(point)) == pytest.approx(expected, rel=1e-9)
    if perturb:
        point["group_raw"] = point["group_raw"] + 0.3  # the site terms do enter
        assert float(logp(point)) != pytest.approx(expected, rel=1e-6)


def test_subject_log_rate_adds_the_site_effect(nb_fit, trial):
    model = NBTotals(TERMS)
    rate = model.subject_log_rate(nb_fit)
    post = nb_fit["posterior"]
    cd = nb_fit["constant_data"]
    expected = (
        post["alpha"]
        + post["b"] * cd["x_baseline"]
        + (cd["X_cov"] * post["beta"]).sum("covariate")
        + post["group_effect"].isel(group_level=cd["group_idx"].isel(group=0))
    )
    np.testing.assert_allclose(rate, expected.transpose("chain", "draw", "subject"), rtol=1e-12)


def test_one_draw_post_processing_without_sampling(trial):
    # A fit of one draw at known values: the pointwise log-likelihood is the NB2 log pmf at
    # mu = exposure * exp(alpha + log_rr + b x + beta' z + site effect).
    from scipy import stats

    model = NBTotals(TERMS)
    prepared = model.prepare(trial[0])
    d = prepared.data
    values = {"alpha": -0.1, "log_rr": [-0.7, -0.3], "b": 0.7, "k": 3.0, "beta": [0.1, 0.3, 0.6]}
    effects = np.linspace(-0.5, 0.5, 12)
    idata = one_draw(
        {**values, "group_effect": effects},
        ["mexiletine", "quinine"],
        dims={"beta": ("covariate",), "group_effect": ("group_level",)},
        coords={"covariate": prepared.coords["covariate"],
                "group_level": prepared.coords["group_level"]},
    )  # fmt: skip
    loglik = model.pointwise_log_likelihood(idata, prepared).values[0, 0]
    eta = (
        -0.1 + np.r_[0.0, -0.7, -0.3][d["arm_idx"]] + 0.7 * d["x_baseline"]
        + d["X_cov"] @ np.array(values["beta"]) + effects[d["group_idx"][:, 0]]
    )  # fmt: skip
    mu = np.exp(d["log_exposure"] + eta)
    np.testing.assert_allclose(loglik, stats.nbinom.logpmf(d["y"], 3.0, 3.0 / (3.0 + mu)))


# ---------------------------------------------------------------------------------------------
# The other count models (slow: one fit each)
# ---------------------------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize(
    ("model_cls", "twin", "config", "tol"),
    [
        (NBGLMM, nb_glmm_twin, {}, OTHER_ESTIMATOR_TOL),
        (ZINB, zinb_twin, {"trend": False}, SAME_LIKELIHOOD_TOL),
        (Hurdle, hurdle_twin, {"trend": False}, SAME_LIKELIHOOD_TOL),
    ],
    ids=["nb_glmm", "zinb", "hurdle"],
)
def test_weekly_sensitivity_models_with_covariates_and_sites(model_cls, twin, config, tol, trial):
    weekly = trial[1]
    model = model_cls({**TERMS, **config})
    idata = model.fit(weekly, seed=33, log_likelihood=True, **SMALL)
    post = idata["posterior"]
    truth = model_scale_beta(_analysed(trial[0]), trial[2])
    for name, value in truth.items():
        lo, hi = interval(post["beta"].sel(covariate=name))
        assert lo < value < hi, (name, value, lo, hi)
    lo, hi = interval(post["sigma_group"])
    assert lo < trial[2]["site_sd"] < hi
    fitted = twin(weekly, **TERMS)
    gap, _ = _twin_gap(idata, fitted)
    assert (gap <= tol).all(), gap.to_dict()
    prepared = model.prepare(weekly)
    # nb_glmm: the sites enter the prior of the subject log rates `a`, so the density given
    # `a` (the conditional likelihood) does not move with them
    glmm = model_cls is NBGLMM
    _check_graph_equals_pointwise(
        model, prepared, idata.isel(chain=[0], draw=[3]),
        model.conditional_log_likelihood if glmm else None, perturb=not glmm,
    )  # fmt: skip
    rate = model.subject_log_rate(idata)
    assert rate.sizes["subject"] == prepared.n_subjects and np.isfinite(rate.values).all()


def _crossover_trial(rng, n_subjects=60, log_rr=-0.4, sigma_a=0.3, k=10.0, days=28):
    """AB/BA crossover rows (the derived ``crossover`` frame) with covariates and sites."""
    columns, term, truth = subject_covariates(rng, n_subjects, n_sites=8, site_sd=0.4)
    x = rng.normal(np.log(0.9), 0.5, n_subjects)
    a = np.log(0.9) + 0.7 * (x - np.log(0.9)) + term + rng.normal(0, sigma_a, n_subjects)
    rows = []
    for i in range(n_subjects):
        order = ["placebo", "mexiletine"] if i % 2 == 0 else ["mexiletine", "placebo"]
        for p, treatment in enumerate(order, start=1):
            mu = days * np.exp(a[i] + (log_rr if treatment != "placebo" else 0.0) + 0.1 * (p - 1))
            rows.append({
                "trial_id": "x", "subject_id": f"X{i:03d}", "sequence": "AB" if i % 2 else "BA",
                "period": p, "cycle": 1, "treatment": treatment,
                "previous_treatment": None if p == 1 else order[0],
                "count": int(rng.poisson(rng.gamma(k, mu / k))), "exposure_days": days,
                "log_baseline_rate": x[i],
            })  # fmt: skip
    frame = pd.DataFrame(rows)
    columns.insert(0, "subject_id", [f"X{i:03d}" for i in range(n_subjects)])
    return frame.merge(columns, on="subject_id"), {**truth, "log_rr": log_rr}


@pytest.mark.slow
def test_crossover_with_covariates_and_sites():
    frame, truth = _crossover_trial(np.random.default_rng(11))
    model = Crossover(TERMS)
    idata = model.fit(frame, seed=34, log_likelihood=True, **SMALL)
    post = idata["posterior"]
    lo, hi = interval(post["log_rr"])
    assert lo < truth["log_rr"] < hi
    twin = crossover_twin(frame, **TERMS)
    # between-subject terms: the twin's second stage regresses the subject intercepts on them
    gap, _ = _twin_gap(idata, twin)
    assert (gap <= OTHER_ESTIMATOR_TOL).all(), gap.to_dict()
    first = frame.drop_duplicates("subject_id")
    for name, value in model_scale_beta(first, truth).items():
        lo, hi = interval(post["beta"].sel(covariate=name))
        assert lo < value < hi, (name, value, lo, hi)


@pytest.mark.slow
def test_multi_trial_with_covariates_and_nested_sites():
    rng = np.random.default_rng(12)
    parts = [
        covariate_trial(rng, RATE_RATIOS, 40, trial_id=t, n_sites=4, dropout=0.05)
        for t in ("t1", "t2", "t3")
    ]
    periods = pd.concat([p[0] for p in parts], ignore_index=True)
    model = MultiTrial(TERMS)
    prepared = model.prepare(periods)
    assert len(prepared.coords["group_level"]) == 12  # site01-04 in each of 3 trials
    assert prepared.coords["group_level"][0] == "site[t1/site01]"
    idata = model.fit(periods, seed=35, log_likelihood=True, **SMALL)
    twin = multi_trial_twin(periods, method="fixed", **TERMS)
    gap, _ = _twin_gap(idata, twin)
    assert (gap <= OTHER_ESTIMATOR_TOL).all(), gap.to_dict()
    _check_graph_equals_pointwise(model, prepared, idata.isel(chain=[0], draw=[3]))
