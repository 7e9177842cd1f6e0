"""Statistical checks of the ``afterdischarge`` model: recovery, likelihood, twin, refusals.

Simulated data come from the model's own data-generating process (:func:`_simulate`: baseline
grades, then end grades from the cumulative logit with known cutpoints, arm shifts and baseline
slope), so every parameter has a known true value. The agreement check with the twin uses the
bundled example trial (``data/example``, validated and derived as the workflow does). Every fit
uses the example trial's five arms, so all of them share one compiled model.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from arviz_stats import mcse
from helpers import (
    CORES,
    EXAMPLE_ARMS,
    SAMPLER,
    check_joint,
    draws_of,
    one_draw,
    simulated_derived,
)
from scipy import optimize, special, stats
from statsmodels.tools.numdiff import approx_hess

from crampstats.engine import ATTR_PREFIX, compile_cache_info, diagnose
from crampstats.models._common import ModelDataError
from crampstats.models.afterdischarge import (
    EFFECT_COLUMNS,
    AfterdischargeModel,
    afterdischarge_effects,
    afterdischarge_frame,
    afterdischarge_twin,
    ordinal_loglik,
)

ARMS = EXAMPLE_ARMS
ACTIVE = ARMS[1:]
#: True values of the recovery fit (statsmodels sign: negative beta = lower grades = benefit).
TRUE_BETA = {"mexiletine": -0.9, "quinine": -0.4, "vitamin_b_complex": 0.0, "magnesium": 0.3}
TRUE_CUT = np.array([-0.6, 0.5, 1.6, 2.8])
TRUE_B = 0.6
BASELINE_PROBS = [0.35, 0.25, 0.2, 0.12, 0.08]


# ---------------------------------------------------------------------------------------------
# Data-generating process of the model
# ---------------------------------------------------------------------------------------------
def _simulate(
    rng: np.random.Generator,
    n_per_arm: int,
    beta: dict[str, float],
    cut: np.ndarray,
    b: float,
) -> pd.DataFrame:
    """End grades with ``P(y <= j) = expit(cut_j - beta[arm] - b (x - mean x))``."""
    arm = np.repeat(ARMS, n_per_arm)
    base = rng.choice(5, size=arm.size, p=BASELINE_PROBS).astype(float)
    eta = np.array([0.0 if a == "placebo" else beta[a] for a in arm]) + b * (base - base.mean())
    cdf = special.expit(cut[None, :] - eta[:, None])
    grade = (rng.random(arm.size)[:, None] > cdf).sum(axis=1)
    return pd.DataFrame(
        {
            "trial_id": "sim",
            "subject_id": [f"s{i:04d}" for i in range(arm.size)],
            "arm": arm,
            "afterdischarge_grade": pd.array(grade, dtype="Int64"),
            "afterdischarge_baseline": pd.array(base, dtype="Float64"),
        }
    )


def _model(**config) -> AfterdischargeModel:
    return AfterdischargeModel({"arms": ARMS, **config})


# ---------------------------------------------------------------------------------------------
# Fits (module scope)
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def recovery():
    frame = _simulate(np.random.default_rng(2026_11_25), 120, TRUE_BETA, TRUE_CUT, TRUE_B)
    return frame, _model().fit(frame, seed=81, **SAMPLER)


@pytest.fixture(scope="module")
def example(example_derived):
    frame = afterdischarge_frame(example_derived("example"))
    return frame, _model().fit(frame, seed=82, log_likelihood=True, **SAMPLER)


# ---------------------------------------------------------------------------------------------
# Recovery
# ---------------------------------------------------------------------------------------------
def test_recovers_known_parameters(recovery):
    _, idata = recovery
    assert diagnose(idata)["status"] == "ok"
    cuts = [f"{j}|{j + 1}" for j in range(4)]
    draws = np.column_stack(
        [draws_of(idata, "beta", arm=a) for a in ACTIVE]
        + [draws_of(idata, "b")]
        + [draws_of(idata, "cutpoints", cutpoint=c) for c in cuts]
    )
    true = np.r_[[TRUE_BETA[a] for a in ACTIVE], TRUE_B, TRUE_CUT]
    check_joint(draws, true, [*(f"beta[{a}]" for a in ACTIVE), "b", *cuts])


def test_effect_sign_convention(recovery):
    """Lower grades in an arm (beta < 0) are an odds ratio of a lower grade above 1: benefit."""
    _, idata = recovery
    table = afterdischarge_effects(idata).set_index("arm")
    mex = table.loc["mexiletine"]
    assert mex["lower"] < math.exp(0.9) < mex["upper"]
    assert mex["estimate_median"] > 1.0 and mex["p_benefit"] > 0.99
    assert table.loc["magnesium", "p_benefit"] < 0.5  # true beta 0.3: higher grades
    for arm in ACTIVE:
        draws = draws_of(idata, "beta", arm=arm)
        assert table.loc[arm, "p_benefit"] == pytest.approx(np.mean(draws < 0))
        assert table.loc[arm, "estimate_median"] == pytest.approx(math.exp(-np.median(draws)))


def test_refit_with_other_subjects_does_not_recompile(recovery):
    frame, _ = recovery
    before = compile_cache_info()
    subset = frame.sample(n=311, random_state=1).reset_index(drop=True)
    idata = _model().fit(subset, seed=83, chains=2, draws=200, tune=200, cores=CORES)
    after = compile_cache_info()
    assert after["compiles"] == before["compiles"]
    assert after["hits"] == before["hits"] + 1
    assert idata["constant_data"].sizes["subject"] == 311


def _exact_posterior_medians(
    frame: pd.DataFrame, model: AfterdischargeModel, rng: np.random.Generator, n: int = 40_000
) -> tuple[list[str], np.ndarray, np.ndarray, float]:
    """Posterior medians of the arm effects by importance sampling, independent of the sampler.

    The model's posterior written out here (cumulative-logit likelihood from CDF differences,
    its normal priors on beta, b and the ordered cutpoints) on an unconstrained scale (first
    cutpoint, log increments; Jacobian added); proposal a multivariate t (4 df) at the mode with
    the inverse Hessian as scale. Returns the arms, the self-normalised weighted medians, their
    Monte Carlo SEs (1.2533 SD / sqrt(ESS) of the weights) and the weights' ESS.
    """
    cfg, prepared = model.model_config, model.prepare(frame)
    d = prepared.data
    arms, y, arm_idx, x = prepared.coords["arm"], d["grade"], d["arm_idx"], d["x_baseline"]
    n_arm, mu_c = len(arms), model.cutpoint_prior_mu

    def log_post(theta: np.ndarray) -> np.ndarray:
        theta = np.atleast_2d(theta)
        beta, b, z = theta[:, :n_arm], theta[:, n_arm], theta[:, n_arm + 1 :]
        cut = np.cumsum(np.column_stack([z[:, 0], np.exp(z[:, 1:])]), axis=1)
        eta = np.column_stack([np.zeros(len(theta)), beta])[:, arm_idx] + b[:, None] * x
        inf = np.full((len(theta), 1), np.inf)
        padded = np.column_stack([-inf, cut, inf])
        upper = special.expit(padded[:, y + 1] - eta)
        lower = special.expit(padded[:, y] - eta)
        return (
            np.log(upper - lower).sum(axis=1)
            + stats.norm.logpdf(beta, 0.0, cfg["prior_beta_sd"]).sum(axis=1)
            + stats.norm.logpdf(b, cfg["prior_b_mu"], cfg["prior_b_sd"])
            + stats.norm.logpdf(cut, mu_c, cfg["prior_cutpoint_sd"]).sum(axis=1)
            + z[:, 1:].sum(axis=1)  # Jacobian of the log increments
        )

    start = np.r_[np.zeros(n_arm + 1), mu_c[0], np.log(np.diff(mu_c))]
    mode = optimize.minimize(lambda t: -log_post(t)[0], start, method="BFGS").x
    scale = np.linalg.inv(-approx_hess(mode, lambda t: log_post(t)[0]))
    proposal = stats.multivariate_t(mode, scale, df=4, seed=rng)
    theta = proposal.rvs(n)
    log_w = log_post(theta) - proposal.logpdf(theta)
    w = np.exp(log_w - log_w.max())
    w /= w.sum()
    ess = 1.0 / np.sum(w**2)
    medians, mcse = [], []
    for i in range(n_arm):
        order = np.argsort(theta[:, i])
        medians.append(theta[order, i][np.searchsorted(np.cumsum(w[order]), 0.5)])
        sd = math.sqrt(np.sum(w * (theta[:, i] - np.sum(w * theta[:, i])) ** 2))
        mcse.append(1.2533 * sd / math.sqrt(ess))
    return arms, np.array(medians), np.array(mcse), float(ess)


def test_absent_grade_keeps_the_model_identified():
    """No subject reaches grade 4: the top cutpoint rests on its prior, the arm effects on the
    data; the twin fits the observed levels (an empty top category does not move its beta).

    The posterior medians of the arm effects are checked against the exact posterior computed
    independently (:func:`_exact_posterior_medians`), not against the twin's normal
    approximation: with the top cutpoint resting on its prior the approximation itself is off by
    about 0.2 posterior SD (0.19-0.22 measured), so the sampler's Monte Carlo error carried the
    difference across a fixed 0.25-SD bound on some machines (0.22-0.31 seen).
    Tolerance: 4 combined Monte Carlo SEs (the sampler's MCSE of the median, from its ESS, and
    the importance sampler's), false alarm 6e-5 an arm.
    """
    rng = np.random.default_rng(5)
    cut = np.array([-0.6, 0.5, 1.6, 9.0])
    frame = _simulate(rng, 40, TRUE_BETA, cut, TRUE_B)
    frame = frame[frame["afterdischarge_grade"] < 4].reset_index(drop=True)
    assert frame["afterdischarge_grade"].max() == 3
    idata = _model().fit(frame, seed=84, **SAMPLER)
    assert diagnose(idata)["status"] == "ok"
    top = draws_of(idata, "cutpoints", cutpoint="3|4")
    assert np.isfinite(top).all()
    # bounded by the likelihood from below (grade 3 subjects stay below it) and by the prior
    # (mean logit 0.8 = 1.39, SD 2.5) from above
    assert 1.6 < np.median(top) < 1.39 + 3 * 2.5
    twin = afterdischarge_twin(frame, arms=ARMS)
    assert twin.attrs["levels"] == [0, 1, 2, 3] and twin.attrs["converged"]
    arms, exact, exact_mcse, ess = _exact_posterior_medians(frame, _model(), rng)
    assert ess > 5000, f"importance sampling ESS {ess:.0f}: proposal too far from the posterior"
    for arm, median, se in zip(arms, exact, exact_mcse, strict=True):
        chains = idata["posterior"]["beta"].sel(arm=arm).values  # (chain, draw)
        mc = float(mcse(chains, method="median"))
        got = float(np.median(chains))
        assert abs(got - median) < 4.0 * math.hypot(mc, se), (
            f"{arm}: sampler median {got:.4f}, exact {median:.4f} (MCSE {mc:.4f}, IS {se:.4f})"
        )


# ---------------------------------------------------------------------------------------------
# Agreement with the frequentist twin
# ---------------------------------------------------------------------------------------------
def _ordered_fit(frame: pd.DataFrame, model: AfterdischargeModel):
    """statsmodels OrderedModel on the model's design: arms with data, the fit, #coefficients."""
    from statsmodels.miscmodels.ordinal_model import OrderedModel

    prepared = model.prepare(frame)
    data = prepared.data
    present = [
        (i, a) for i, a in enumerate(prepared.coords["arm"], 1) if (data["arm_idx"] == i).any()
    ]
    X = np.column_stack([(data["arm_idx"] == i) * 1.0 for i, _ in present] + [data["x_baseline"]])
    levels = np.unique(data["grade"])
    res = OrderedModel(np.searchsorted(levels, data["grade"]), X, distr="logit").fit(
        method="bfgs", maxiter=2000, disp=False
    )
    return [a for _, a in present], res, X.shape[1]


def _gaussian_posterior(frame: pd.DataFrame, model: AfterdischargeModel):
    """Posterior of the arm effects from the twin's likelihood, approximated as normal, and the
    model's priors: an independent computation of what the sampler should give.

    statsmodels' thresholds are (c_0, log increments); the delta method maps their covariance
    to the cutpoints, on which the prior is stated. Returns the arms, means and SDs.
    """
    cfg = model.model_config
    arms, res, k = _ordered_fit(frame, model)
    params, cov = np.asarray(res.params), np.asarray(res.cov_params())
    z = params[k:]
    n_cut = z.size
    jac = np.eye(k + n_cut)
    for i in range(n_cut):
        jac[k + i, k + 1 : k + i + 1] = np.exp(z[1 : i + 1])
    theta = np.concatenate([params[:k], np.cumsum(np.r_[z[0], np.exp(z[1:])])])
    cov_theta = jac @ cov @ jac.T
    # priors of the cutpoints of the observed levels (those of the full model when all occur)
    prior_mu = np.r_[np.zeros(len(arms)), cfg["prior_b_mu"], model.cutpoint_prior_mu[:n_cut]]
    prior_sd = np.r_[
        np.full(len(arms), cfg["prior_beta_sd"]),
        cfg["prior_b_sd"],
        np.full(n_cut, cfg["prior_cutpoint_sd"]),
    ]
    lik_prec = np.linalg.inv(cov_theta)
    post_cov = np.linalg.inv(lik_prec + np.diag(prior_sd**-2.0))
    post_mean = post_cov @ (lik_prec @ theta + prior_mu / prior_sd**2)
    sl = slice(0, len(arms))
    return arms, post_mean[sl], np.sqrt(np.diag(post_cov)[sl])


def _agreement(frame: pd.DataFrame, idata) -> pd.DataFrame:
    arms, mean, sd = _gaussian_posterior(frame, _model())
    rows = []
    for arm, m, s in zip(arms, mean, sd, strict=True):
        draws = draws_of(idata, "beta", arm=arm)
        rows.append(
            {
                "arm": arm,
                "diff_in_sd": (np.median(draws) - m) / draws.std(),
                "sd_ratio": draws.std() / s,
            }
        )
    return pd.DataFrame(rows)


# Tolerance: the twin's likelihood and the model's normal priors combined under a normal
# approximation predict the posterior of each beta; what is left is Monte Carlo error of a
# median from ~1000 effective draws (~0.04 SD) and the non-normality of the likelihood of an
# odds ratio with ~35 subjects an arm (skewness of order 1/sqrt(n), ~0.1 SD at most). A
# difference of 0.2 posterior SDs, or 15 % in SD, is therefore not noise.
def test_agrees_with_twin_on_the_example_trial(example):
    frame, idata = example
    assert diagnose(idata)["status"] == "ok"
    table = _agreement(frame, idata)
    assert len(table) == len(ACTIVE)
    assert (table["diff_in_sd"].abs() < 0.2).all(), table.to_string()
    assert table["sd_ratio"].between(0.85, 1.15).all(), table.to_string()
    # the twin's table is exp(-beta) of the same maximum-likelihood fit
    twin = afterdischarge_twin(frame, arms=ARMS)
    arms, res, _ = _ordered_fit(frame, _model())
    assert list(twin["arm"]) == arms
    mle = np.asarray(res.params)[: len(arms)]
    np.testing.assert_allclose(np.log(twin["estimate_median"]), -mle, rtol=1e-4, atol=1e-6)


def test_effects_tables_follow_the_output_contract(example):
    frame, idata = example
    bayes, twin = afterdischarge_effects(idata, level=0.9), afterdischarge_twin(frame, level=0.9)
    for table in (bayes, twin):
        assert list(table.columns) == EFFECT_COLUMNS
        assert (table["comparator"] == "placebo").all()
        assert (table["measure"] == "odds_ratio_lower_grade").all()
        assert (table["lower"] < table["estimate_median"]).all()
        assert (table["estimate_median"] < table["upper"]).all()
    assert twin["p_benefit"].isna().all() and bayes["p_benefit"].between(0, 1).all()
    assert sorted(bayes["arm"]) == sorted(twin["arm"]) == sorted(ACTIVE)
    for row in bayes.itertuples():
        draws = -draws_of(idata, "beta", arm=row.arm)
        assert math.log(row.lower) == pytest.approx(np.quantile(draws, 0.05))
        assert math.log(row.upper) == pytest.approx(np.quantile(draws, 0.95))
    loglik = idata["log_likelihood"]["y"]
    assert loglik.dims == ("chain", "draw", "subject") and loglik.sizes["subject"] == len(frame)
    constants = json.loads(idata["posterior"].attrs[f"{ATTR_PREFIX}constants"])
    assert constants["control_arm"] == "placebo"
    assert sum(constants["grade_counts"]) == len(frame)


# ---------------------------------------------------------------------------------------------
# Likelihood
# ---------------------------------------------------------------------------------------------
def _tiny_frame() -> pd.DataFrame:
    """Every grade, every arm, a range of baselines."""
    return pd.DataFrame(
        {
            "subject_id": [f"t{i}" for i in range(10)],
            "arm": ["placebo"] * 4 + ["mexiletine"] * 3 + ["quinine"] * 3,
            "afterdischarge_grade": [0, 1, 4, 2, 0, 3, 1, 2, 4, 0],
            "afterdischarge_baseline": [0.0, 2.0, 4.0, 1.0, 1.0, 3.0, 0.0, 2.0, 3.0, 1.0],
        }
    )


POINT = {"cutpoints": np.array([-1.1, 0.2, 0.9, 2.4]), "beta": np.array([-0.7, 0.4]), "b": 0.5}


def test_graph_logp_equals_priors_plus_pointwise_loglik():
    import pymc as pm

    model = AfterdischargeModel()
    prepared = model.prepare(_tiny_frame())
    cfg = model.model_config
    pm_model = model.build(prepared)
    ordered = pm.distributions.transforms.ordered.forward(POINT["cutpoints"]).eval()
    logp = pm_model.compile_logp(jacobian=False)(
        {"cutpoints_ordered__": ordered, "beta": POINT["beta"], "b": POINT["b"]}
    )
    mu_c = special.logit([0.2, 0.4, 0.6, 0.8])
    priors = (
        stats.norm.logpdf(POINT["cutpoints"], mu_c, cfg["prior_cutpoint_sd"]).sum()
        + stats.norm.logpdf(POINT["beta"], 0.0, cfg["prior_beta_sd"]).sum()
        + stats.norm.logpdf(POINT["b"], cfg["prior_b_mu"], cfg["prior_b_sd"])
    )
    cuts = {"cutpoint": [f"{j}|{j + 1}" for j in range(4)]}
    one = one_draw(POINT, prepared.coords["arm"], dims={"cutpoints": ("cutpoint",)}, coords=cuts)
    loglik = model.pointwise_log_likelihood(one, prepared)
    assert loglik.sizes["subject"] == 10
    assert float(logp) == pytest.approx(priors + float(loglik.sum()), rel=1e-10)

    # the pointwise values from the CDF differences written out (no shared code)
    frame = _tiny_frame()
    arm_shift = {"placebo": 0.0, "mexiletine": POINT["beta"][0], "quinine": POINT["beta"][1]}
    base = frame["afterdischarge_baseline"].to_numpy()
    eta = frame["arm"].map(arm_shift).to_numpy() + POINT["b"] * (base - base.mean())
    padded = np.r_[-np.inf, POINT["cutpoints"], np.inf]
    y = frame["afterdischarge_grade"].to_numpy()
    expected = np.log(special.expit(padded[y + 1] - eta) - special.expit(padded[y] - eta))
    np.testing.assert_allclose(loglik.values.ravel(), expected, rtol=1e-10)


def test_loglik_matches_statsmodels_parameterisation():
    """The same parameters give the same log-likelihood in statsmodels' OrderedModel, whose
    convention is P(y <= j) = F(cut_j - x'beta): this pins down the sign of beta."""
    from statsmodels.miscmodels.ordinal_model import OrderedModel

    frame = _tiny_frame()
    prepared = AfterdischargeModel().prepare(frame)
    idx = prepared.data["arm_idx"]
    X = np.column_stack([idx == 1, idx == 2, prepared.data["x_baseline"]]).astype(float)
    sm_model = OrderedModel(prepared.data["grade"], X, distr="logit")
    c = POINT["cutpoints"]
    params = np.r_[POINT["beta"], POINT["b"], c[0], np.log(np.diff(c))]
    ours = ordinal_loglik(
        prepared.data["grade"], X @ np.r_[POINT["beta"], POINT["b"]], POINT["cutpoints"]
    )
    np.testing.assert_allclose(ours, sm_model.loglikeobs(params), rtol=1e-10)


def test_loglik_is_stable_far_in_the_tails():
    c = POINT["cutpoints"]
    # expectations from the logistic tails written out: log F(t) = -log(1 + exp(-t))
    cases = [
        (4, -60.0, -np.logaddexp(0.0, c[3] + 60.0)),  # 1 - F(c3 + 60) underflows naively
        (0, 60.0, -np.logaddexp(0.0, 60.0 - c[0])),
        # a middle grade far above: F(c2 - 60) - F(c1 - 60) ~ exp(c2 - 60) - exp(c1 - 60)
        (2, 60.0, (c[2] - 60.0) + np.log1p(-np.exp(c[1] - c[2]))),
        # ... and far below: (1 - F(c1 + 60)) - (1 - F(c2 + 60)) ~ exp(-c1 - 60) - exp(-c2 - 60)
        (2, -60.0, -(c[1] + 60.0) + np.log1p(-np.exp(c[1] - c[2]))),
    ]
    for grade, eta, expected in cases:
        got = float(ordinal_loglik(grade, eta, c))
        assert np.isfinite(got) and got == pytest.approx(expected, rel=1e-9), (grade, eta)


def test_graph_gradient_finite_far_from_the_data():
    model = AfterdischargeModel()
    pm_model = model.build(_tiny_frame())
    dlogp = pm_model.compile_dlogp(jacobian=True)
    import pymc as pm

    for shift, spread in [(60.0, 1.0), (-60.0, 1.0), (0.0, 1e-6), (0.0, 30.0)]:
        cut = np.array([-1.5, -0.5, 0.5, 1.5]) * spread
        values = {
            "cutpoints_ordered__": pm.distributions.transforms.ordered.forward(cut).eval(),
            "beta": np.array([shift, -shift]),
            "b": 0.3,
        }
        assert np.all(np.isfinite(dlogp(values))), (shift, spread)


# ---------------------------------------------------------------------------------------------
# Refusals and data handling
# ---------------------------------------------------------------------------------------------
def _emg_rows(frame: pd.DataFrame, visit: str = "end") -> pd.DataFrame:
    return frame.assign(visit=visit)


def test_refuses_without_an_end_visit():
    with pytest.raises(ModelDataError, match="no 'end' visit"):
        afterdischarge_frame({"emg": _emg_rows(_tiny_frame(), "baseline")})


def test_refuses_without_emg_arms_or_grades():
    with pytest.raises(ModelDataError, match="`emg` dataset"):
        afterdischarge_frame({"periods": pd.DataFrame({"subject_id": ["x"]})})
    with pytest.raises(ModelDataError, match="parallel design"):
        afterdischarge_frame({"emg": _emg_rows(_tiny_frame()).drop(columns="arm")})
    with pytest.raises(ModelDataError, match=r"lacks column\(s\) \['afterdischarge_grade'\]"):
        afterdischarge_frame({"emg": _emg_rows(_tiny_frame()).drop(columns="afterdischarge_grade")})
    none = _emg_rows(_tiny_frame()).assign(afterdischarge_grade=pd.NA)
    with pytest.raises(ModelDataError, match="no subject has an after-discharge grade"):
        afterdischarge_frame({"emg": none})


def test_refuses_without_a_control_arm():
    frame = _tiny_frame()
    no_placebo = frame[frame["arm"] != "placebo"]
    with pytest.raises(ModelDataError, match="control arm 'placebo' not found"):
        AfterdischargeModel().prepare(no_placebo)
    with pytest.raises(ModelDataError, match="no subject of the control arm 'placebo'"):
        AfterdischargeModel({"arms": ["placebo", "mexiletine", "quinine"]}).prepare(no_placebo)
    with pytest.raises(ModelDataError, match="control arm 'placebo' not found"):
        afterdischarge_twin(no_placebo)


def test_refuses_bad_grades_and_missing_baseline():
    bad = _tiny_frame().astype({"afterdischarge_grade": float})
    bad.loc[1, "afterdischarge_grade"] = 5
    with pytest.raises(ModelDataError, match="integer 0-4"):
        AfterdischargeModel().prepare(bad)
    bad.loc[1, "afterdischarge_grade"] = 1.5
    with pytest.raises(ModelDataError, match="integer 0-4"):
        AfterdischargeModel().prepare(bad)
    missing = _tiny_frame()
    missing.loc[2, "afterdischarge_baseline"] = np.nan
    with pytest.raises(ModelDataError, match="missing_baseline='mean'"):
        AfterdischargeModel().prepare(missing)
    prepared = AfterdischargeModel({"missing_baseline": "mean"}).prepare(missing)
    assert prepared.constants["n_baseline_imputed"] == 1
    assert prepared.data["x_baseline"][2] == 0.0
    single = _tiny_frame().assign(afterdischarge_grade=2)
    with pytest.raises(ModelDataError, match="two distinct grades"):
        afterdischarge_twin(single)


def test_refuses_bad_config():
    with pytest.raises(ValueError, match="prior_grade_probs"):
        AfterdischargeModel({"prior_grade_probs": [0.5, 0.5]})
    with pytest.raises(ValueError, match="missing_baseline"):
        AfterdischargeModel({"missing_baseline": "drop"})


def test_frame_keeps_the_end_visit_and_drops_missing_grades():
    emg = pd.concat([_emg_rows(_tiny_frame()), _emg_rows(_tiny_frame(), "baseline_1")])
    emg["afterdischarge_grade"] = emg["afterdischarge_grade"].astype("Int64")
    emg.loc[emg.index[0], "afterdischarge_grade"] = pd.NA
    frame = afterdischarge_frame({"emg": emg})
    assert len(frame) == 9 and frame.attrs["n_missing_grade"] == 1
    dup = pd.concat([_emg_rows(_tiny_frame()), _emg_rows(_tiny_frame()).iloc[:1]])
    with pytest.raises(ModelDataError, match="more than one 'end' row"):
        afterdischarge_frame({"emg": dup})


def test_baseline_is_centred_numeric(example):
    frame, _ = example
    prepared = AfterdischargeModel().prepare(frame)
    base = frame["afterdischarge_baseline"].astype(float).to_numpy()
    np.testing.assert_allclose(prepared.data["x_baseline"], base - base.mean())
    assert prepared.constants["afterdischarge_baseline_centre"] == pytest.approx(base.mean())


# ---------------------------------------------------------------------------------------------
# Slow: the trial simulator end to end
# ---------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_trial_simulator_direction_end_to_end():
    """The simulator's grades follow a latent normal tied to the CTF (higher CTF, lower grade:
    correlation -0.5), not this model, so the truth on the odds-ratio scale is not exact; an arm
    that raises the CTF by 60 % must show a clear benefit, a null arm none."""
    design = {
        "trial_id": "ad",
        "n_per_arm": 150,
        "arms": {a: {"ctf_effect": 0.6 if a == "mexiletine" else 0.0} for a in ARMS},
    }
    _, derived = simulated_derived(design, 11)
    frame = afterdischarge_frame(derived)
    idata = _model().fit(frame, seed=85, **SAMPLER)
    table = afterdischarge_effects(idata).set_index("arm")
    assert table.loc["mexiletine", "p_benefit"] > 0.99, table.to_string()
    others = table.drop(index="mexiletine")
    assert ((others["lower"] < 1.0) & (others["upper"] > 1.0)).sum() >= 2, table.to_string()
