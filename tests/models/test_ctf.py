"""Statistical checks of the ``ctf`` model: recovery, censoring, likelihood, twin, refusals.

Simulated data come from the model's own data-generating process (:func:`_simulate`): baseline
CTFs are recorded on the stepped protocol, the end-of-treatment latent CTF is drawn given the
*recorded* baseline exactly as the model assumes, recorded on the protocol, and the bounds are
made by ``crampstats.derive.emg_visits``; so every parameter has a known true value. The
agreement check with the twin uses the bundled example trial (``data/example``, validated and
derived as the workflow does). Fits are module-scoped; the simulated two-arm fits share one
compiled model.
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
    check_recovered,
    draws_of,
    one_draw,
    simulated_derived,
)
from scipy import stats

from crampstats.derive import emg_visits
from crampstats.engine import ATTR_PREFIX, compile_cache_info, diagnose
from crampstats.models._common import ModelDataError
from crampstats.models.ctf import (
    EFFECT_COLUMNS,
    CTFModel,
    _interval_loglik_grad,
    ctf_effects,
    ctf_frame,
    ctf_naive_twin,
    ctf_twin,
    interval_loglik,
)

DEFAULT_PROTOCOL = {"start_hz": 4, "step_hz": 2, "max_hz": 40}
#: Coarse steps and a low maximum: with this ratio about 44 % of end CTFs are right-censored
#: (placebo ~24 %, active ~64 %).
HARSH_PROTOCOL = {"start_hz": 4, "step_hz": 4, "max_hz": 20}
HARSH_RATIO = 1.4


# ---------------------------------------------------------------------------------------------
# Data-generating process of the model
# ---------------------------------------------------------------------------------------------
def _record(latent_hz: np.ndarray, protocol: dict[str, float]) -> tuple[np.ndarray, np.ndarray]:
    """Recorded CTF on the stepped protocol (as crampstats.simulate records it) and censoring."""
    start, step, top = protocol["start_hz"], protocol["step_hz"], protocol["max_hz"]
    steps = np.ceil(np.maximum(latent_hz - start, 0.0) / step - 1e-12)
    return np.minimum(start + step * steps, top), latent_hz > top


def _simulate(
    rng: np.random.Generator,
    n_per_arm: int,
    ratio: float,
    *,
    sigma: float,
    b: float,
    c: float,
    protocol: dict[str, float],
    alpha: float = math.log(16.0),
) -> tuple[pd.DataFrame, dict[str, float]]:
    """Two arms (placebo, active); returns the ctf frame and the true parameters."""
    arm = np.repeat(["placebo", "active"], n_per_arm)
    n = arm.size
    base_hz, base_cens = _record(16.0 * np.exp(0.27 * rng.standard_normal(n)), protocol)
    x = np.log(base_hz)
    mu = (
        alpha + np.where(arm == "active", math.log(ratio), 0.0) + b * (x - x.mean()) + c * base_cens
    )
    end_hz, end_cens = _record(np.exp(mu + sigma * rng.standard_normal(n)), protocol)
    ids = [f"s{i:04d}" for i in range(n)]
    subjects = pd.DataFrame({"trial_id": "sim", "subject_id": ids, "arm": arm})
    emg = pd.DataFrame(
        {
            "subject_id": ids * 2,
            "visit": ["baseline"] * n + ["end"] * n,
            "study_day": [0] * n + [56] * n,
            "ctf_hz": np.concatenate([base_hz, end_hz]),
            "ctf_censored": np.concatenate([base_cens, end_cens]),
        }
    )
    derived = {"emg": emg_visits({"subjects": subjects, "emg": emg}, {"ctf_protocol": protocol})}
    truth = {"log_ratio": math.log(ratio), "sigma": sigma, "b": b, "c": c, "alpha": alpha}
    return ctf_frame(derived), truth


# ---------------------------------------------------------------------------------------------
# Fits (module scope)
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def recovery():
    rng = np.random.default_rng(2026_11_25)
    frame, truth = _simulate(rng, 150, 1.15, sigma=0.2, b=0.8, c=0.0, protocol=DEFAULT_PROTOCOL)
    return frame, truth, CTFModel().fit(frame, seed=71, **SAMPLER)


@pytest.fixture(scope="module")
def censored():
    rng = np.random.default_rng(7)
    frame, truth = _simulate(
        rng, 120, HARSH_RATIO, sigma=0.25, b=0.7, c=0.2, protocol=HARSH_PROTOCOL
    )
    return frame, truth, CTFModel().fit(frame, seed=72, **SAMPLER)


@pytest.fixture(scope="module")
def example(example_derived):
    frame = ctf_frame(example_derived("example"))
    model = CTFModel({"arms": EXAMPLE_ARMS})
    return frame, model.fit(frame, seed=73, log_likelihood=True, **SAMPLER)


# ---------------------------------------------------------------------------------------------
# Recovery and the censoring test
# ---------------------------------------------------------------------------------------------
def test_recovers_effect_sigma_and_slope(recovery):
    _, truth, idata = recovery
    assert diagnose(idata)["status"] == "ok"
    check_recovered(draws_of(idata, "log_ratio", arm="active"), truth["log_ratio"], "log_ratio")
    check_recovered(draws_of(idata, "sigma"), truth["sigma"], "sigma")
    check_recovered(draws_of(idata, "b"), truth["b"], "b")
    check_recovered(draws_of(idata, "alpha"), truth["alpha"], "alpha")


def test_censoring_is_modelled_where_ignoring_it_biases(censored):
    frame, truth, idata = censored
    share = float(np.isinf(frame["ctf_upper"].astype(float)).mean())
    assert share >= 0.4, f"the test needs heavy censoring, got {share:.0%}"
    assert frame["ctf_baseline_censored"].astype(bool).any()
    assert diagnose(idata)["status"] == "ok"
    # the censored likelihood recovers the truth ...
    check_recovered(draws_of(idata, "log_ratio", arm="active"), truth["log_ratio"], "log_ratio")
    check_recovered(draws_of(idata, "sigma"), truth["sigma"], "sigma")
    check_recovered(draws_of(idata, "c"), truth["c"], "c")
    # ... the same data analysed as if the recorded values were exact do not: the active arm
    # reaches the maximum more often, so its ratio is pulled towards 1.
    naive = ctf_naive_twin(frame).iloc[0]
    true_ratio = math.exp(truth["log_ratio"])
    assert naive["upper"] < true_ratio, (
        f"naive interval [{naive['lower']:.3f}, {naive['upper']:.3f}] covers {true_ratio:.3f}"
    )
    twin = ctf_twin(frame).iloc[0]
    assert twin["lower"] < true_ratio < twin["upper"]


def test_refit_with_other_subjects_does_not_recompile(recovery):
    frame, _, _ = recovery
    before = compile_cache_info()
    subset = frame.sample(n=173, random_state=1).reset_index(drop=True)
    idata = CTFModel().fit(subset, seed=74, chains=2, draws=200, tune=200, cores=CORES)
    after = compile_cache_info()
    assert after["compiles"] == before["compiles"]
    assert after["hits"] == before["hits"] + 1
    assert idata["constant_data"].sizes["subject"] == 173


# ---------------------------------------------------------------------------------------------
# Agreement with the frequentist twin
# ---------------------------------------------------------------------------------------------
def _agreement(frame: pd.DataFrame, idata, **twin_kwargs) -> pd.DataFrame:
    """Posterior median and SD of each log ratio against the twin's estimate and SE."""
    twin = ctf_twin(frame, **twin_kwargs)
    rows = []
    for arm, est, se in zip(twin["arm"], twin.attrs["log_ratio"], twin.attrs["se"], strict=True):
        draws = draws_of(idata, "log_ratio", arm=arm)
        rows.append(
            {
                "arm": arm,
                "diff_in_sd": (np.median(draws) - est) / draws.std(),
                "sd_over_se": draws.std() / se,
            }
        )
    return pd.DataFrame(rows)


# Tolerance: with ~170-240 subjects and priors (SD 0.5) ten times wider than the SE (~0.05), the
# posterior is the normal likelihood shape to within the prior's pull (SE^2 / prior SD^2 ~ 1 %
# of the estimate, ~0.02 SE here) and the MLE's downward bias of sigma ((n - p) / n ~ 2 %).
# Monte Carlo error of a posterior median from ~1000 effective draws is ~0.04 SD. A difference
# of 0.2 posterior SDs in the medians, or 15 % in SD versus SE, is therefore not noise.
@pytest.mark.parametrize("fixture", ["example", "censored"])
def test_agrees_with_twin(fixture, request):
    fit = request.getfixturevalue(fixture)
    frame, idata = fit[0], fit[-1]
    table = _agreement(frame, idata)
    assert len(table) == idata["posterior"].sizes["arm"]
    assert (table["diff_in_sd"].abs() < 0.2).all(), table.to_string()
    assert table["sd_over_se"].between(0.85, 1.15).all(), table.to_string()


def test_effects_tables_follow_the_output_contract(example):
    frame, idata = example
    bayes, twin = ctf_effects(idata, level=0.9), ctf_twin(frame, level=0.9)
    for table in (bayes, twin):
        assert list(table.columns) == EFFECT_COLUMNS
        assert (table["comparator"] == "placebo").all()
        assert (table["measure"] == "ratio_of_medians").all()
        assert (table["lower"] < table["estimate_median"]).all()
        assert (table["estimate_median"] < table["upper"]).all()
    assert twin["p_benefit"].isna().all()
    assert sorted(bayes["arm"]) == sorted(twin["arm"])
    # p_benefit is P(ratio > 1) = P(log ratio > 0), and the interval the posterior quantiles
    for row in bayes.itertuples():
        draws = draws_of(idata, "log_ratio", arm=row.arm)
        assert row.p_benefit == pytest.approx(np.mean(draws > 0))
        assert math.log(row.lower) == pytest.approx(np.quantile(draws, 0.05))
    assert idata["log_likelihood"]["y"].dims == ("chain", "draw", "subject")


# ---------------------------------------------------------------------------------------------
# Likelihood
# ---------------------------------------------------------------------------------------------
def _tiny_frame() -> pd.DataFrame:
    """Every kind of observation: first step, interval, right-censored, censored baseline."""
    return pd.DataFrame(
        {
            "subject_id": [f"t{i}" for i in range(8)],
            "arm": ["placebo", "placebo", "placebo", "placebo", "a", "a", "b", "b"],
            "ctf_hz": [4.0, 16.0, 40.0, 22.0, 18.0, 40.0, 6.0, 30.0],
            "ctf_lower": [0.0, 14.0, 40.0, 20.0, 16.0, 40.0, 4.0, 28.0],
            "ctf_upper": [4.0, 16.0, np.inf, 22.0, 18.0, np.inf, 6.0, 30.0],
            "ctf_baseline_hz": [8.0, 15.0, 40.0, 20.0, 17.0, 35.0, 10.0, 25.0],
            "ctf_baseline_censored": [False, False, True, False, False, True, False, False],
        }
    )


def test_graph_logp_equals_priors_plus_pointwise_loglik():
    model = CTFModel()
    prepared = model.prepare(_tiny_frame())
    cfg = model.model_config
    point = {"alpha": 2.7, "log_ratio": np.array([0.2, -0.1]), "b": 0.6, "c": 0.3, "sigma": 0.35}
    pm_model = model.build(prepared)
    logp = pm_model.compile_logp(jacobian=False)(
        {**{k: v for k, v in point.items() if k != "sigma"}, "sigma_log__": np.log(point["sigma"])}
    )
    priors = (
        stats.norm.logpdf(point["alpha"], cfg["prior_alpha_mu"], cfg["prior_alpha_sd"])
        + stats.norm.logpdf(point["log_ratio"], 0.0, cfg["prior_log_ratio_sd"]).sum()
        + stats.norm.logpdf(point["b"], cfg["prior_b_mu"], cfg["prior_b_sd"])
        + stats.norm.logpdf(point["c"], 0.0, cfg["prior_c_sd"])
        + stats.lognorm.logpdf(
            point["sigma"], cfg["prior_sigma_sd"], scale=math.exp(cfg["prior_sigma_mu"])
        )
    )
    loglik = model.pointwise_log_likelihood(one_draw(point, prepared.coords["arm"]), prepared)
    assert loglik.sizes["subject"] == 8
    assert float(logp) == pytest.approx(priors + float(loglik.sum()), rel=1e-10)

    # the pointwise values themselves, from the normal CDF written out (no shared code)
    sd = prepared.subject_data
    effect = np.array([0.0, *point["log_ratio"]])[prepared.data["arm_idx"]]
    mu = point["alpha"] + effect + point["b"] * sd["x_baseline"].values
    mu = mu + point["c"] * sd["baseline_censored"].values
    frame = _tiny_frame()
    cdf = stats.norm.cdf
    with np.errstate(divide="ignore"):
        z_lo = (np.log(frame["ctf_lower"]) - mu) / point["sigma"]
    z_hi = (np.log(frame["ctf_upper"]) - mu) / point["sigma"]
    expected = np.log(cdf(z_hi) - cdf(z_lo))
    np.testing.assert_allclose(loglik.values.ravel(), expected, rtol=1e-10)


def test_interval_loglik_is_stable_in_both_tails():
    mu, sigma = 0.0, 1.0
    # far in the tails 1 - Phi underflows or cancels in a naive log(Phi(b) - Phi(a))
    # expectations from the probabilities themselves: every one is a normal float64 number
    sf, cdf = stats.norm.sf, stats.norm.cdf
    cases = [
        (10.0, 11.0, np.log(sf(10.0) - sf(11.0))),
        (-11.0, -10.0, np.log(cdf(-10.0) - cdf(-11.0))),
        (30.0, 30.5, np.log(sf(30.0) - sf(30.5))),
        (-30.5, -30.0, np.log(cdf(-30.0) - cdf(-30.5))),
        (-0.3, 0.4, np.log(cdf(0.4) - cdf(-0.3))),
        (35.0, np.inf, np.log(sf(35.0))),
        (-np.inf, -35.0, np.log(cdf(-35.0))),
        (2.0, 2.0 + 1e-6, np.log(stats.norm.pdf(2.0 + 5e-7) * 1e-6)),
    ]
    for lo, hi, expected in cases:
        got = float(interval_loglik(lo, hi, mu, sigma))
        assert np.isfinite(got)
        assert got == pytest.approx(expected, rel=1e-6), (lo, hi)


def test_twin_score_is_the_derivative_of_the_loglik():
    # first step, interval, right-censored, and intervals in both tails of mu
    lower = np.array([-np.inf, *np.log([14.0, 40.0, 20.0, 3.0, 30.0])])
    upper = np.array([*np.log([4.0, 16.0]), np.inf, *np.log([22.0, 5.0, 32.0])])
    mu = np.array([2.0, 2.7, 3.9, 3.2, 3.0, 1.5])
    sigma, h = 0.3, 1e-6
    d_mu, d_log_sigma = _interval_loglik_grad(lower, upper, mu, sigma)
    num_mu = (
        interval_loglik(lower, upper, mu + h, sigma) - interval_loglik(lower, upper, mu - h, sigma)
    ) / (2 * h)
    num_ls = (
        interval_loglik(lower, upper, mu, sigma * math.exp(h))
        - interval_loglik(lower, upper, mu, sigma * math.exp(-h))
    ) / (2 * h)
    np.testing.assert_allclose(d_mu, num_mu, rtol=1e-6)
    np.testing.assert_allclose(d_log_sigma, num_ls, rtol=1e-6)


def test_graph_stable_far_from_the_data():
    """Far-off parameters (tiny sigma, medians far from every bound): the compiled likelihood
    equals the NumPy one and its gradient is finite (no NaN from a branch not taken), also when
    PyTensor does not sink products into switches (the rewrite that would otherwise hide it)."""
    from pytensor.compile.mode import get_default_mode

    model = CTFModel()
    prepared = model.prepare(_tiny_frame())
    pm_model = model.build(prepared)
    potential = pm_model.compile_logp(vars=pm_model.potentials, jacobian=False)
    dlogp = pm_model.compile_dlogp(
        jacobian=True, mode=get_default_mode().excluding("local_mul_switch_sink")
    )
    for alpha, sigma in [(2.7, 1e-3), (-5.0, 0.05), (9.0, 0.01), (2.7, 50.0)]:
        point = {"alpha": alpha, "log_ratio": np.array([0.1, 0.0]), "b": 0.5, "c": 0.0}
        values = {**point, "sigma_log__": np.log(sigma)}
        expected = model.pointwise_log_likelihood(
            one_draw({**point, "sigma": sigma}, prepared.coords["arm"]), prepared
        )
        got = float(potential(values))
        assert np.isfinite(got) and got == pytest.approx(float(expected.sum()), rel=1e-9)
        assert np.all(np.isfinite(dlogp(values))), (alpha, sigma)


# ---------------------------------------------------------------------------------------------
# Refusals and data handling
# ---------------------------------------------------------------------------------------------
def _emg_rows(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.assign(visit="end", ctf_censored=np.isinf(frame["ctf_upper"]))


def test_refuses_without_an_end_visit():
    emg = _emg_rows(_tiny_frame()).assign(visit="baseline")
    with pytest.raises(ModelDataError, match="no 'end' visit"):
        ctf_frame({"emg": emg})


def test_refuses_without_emg_or_arms():
    with pytest.raises(ModelDataError, match="`emg` dataset"):
        ctf_frame({"periods": pd.DataFrame({"subject_id": ["x"]})})
    with pytest.raises(ModelDataError, match="parallel design"):
        ctf_frame({"emg": _emg_rows(_tiny_frame()).drop(columns="arm")})


def test_refuses_without_a_control_arm():
    frame = _tiny_frame()
    no_placebo = frame[frame["arm"] != "placebo"]
    with pytest.raises(ModelDataError, match="control arm 'placebo' not found"):
        CTFModel().prepare(no_placebo)
    # listed in the config but without data: the ratio to it cannot be estimated
    with pytest.raises(ModelDataError, match="no subject of the control arm 'placebo'"):
        CTFModel({"arms": ["placebo", "a", "b"]}).prepare(no_placebo)
    with pytest.raises(ModelDataError, match="control arm 'placebo' not found"):
        ctf_twin(no_placebo)


def test_refuses_bad_bounds_and_missing_baseline():
    bad = _tiny_frame()
    bad.loc[1, "ctf_upper"] = 12.0  # upper below lower
    with pytest.raises(ModelDataError, match="0 <= lower < upper"):
        CTFModel().prepare(bad)
    missing = _tiny_frame()
    missing.loc[2, "ctf_baseline_hz"] = np.nan
    with pytest.raises(ModelDataError, match="missing_baseline='mean'"):
        CTFModel().prepare(missing)
    prepared = CTFModel({"missing_baseline": "mean"}).prepare(missing)
    assert prepared.constants["n_baseline_imputed"] == 1
    assert prepared.data["x_baseline"][2] == 0.0


def test_frame_drops_missing_ctf_and_keeps_the_end_visit():
    emg = pd.concat([_emg_rows(_tiny_frame()), _emg_rows(_tiny_frame()).assign(visit="baseline")])
    emg.loc[emg.index[0], ["ctf_lower", "ctf_upper"]] = np.nan
    frame = ctf_frame({"emg": emg})
    assert len(frame) == 7 and frame.attrs["n_missing_ctf"] == 1


def test_baseline_censoring_option_changes_the_structure():
    frame = _tiny_frame()
    with_indicator = CTFModel().prepare(frame)
    assert with_indicator.data["baseline_censored"].sum() == 2
    value_only = CTFModel({"baseline_censored": "value"})
    assert "baseline_censored" not in value_only.prepare(frame).data
    assert "c" not in value_only.build(frame).named_vars
    with pytest.raises(ValueError, match="baseline_censored"):
        CTFModel({"baseline_censored": "drop"})


def test_control_arm_recorded_in_the_fit(recovery):
    idata = recovery[2]
    constants = json.loads(idata["posterior"].attrs[f"{ATTR_PREFIX}constants"])
    assert constants["control_arm"] == "placebo"
    assert list(ctf_effects(idata)["comparator"]) == ["placebo"]


# ---------------------------------------------------------------------------------------------
# Slow: the trial simulator end to end
# ---------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_trial_simulator_effect_recovered_end_to_end():
    design = {
        "trial_id": "ctf",
        "n_per_arm": 150,
        "arms": {"placebo": {}, "active": {"rr": 0.7, "ctf_effect": 0.3}},
        "emg": {"baseline_visits": 2, "protocol": HARSH_PROTOCOL},
    }
    trial, derived = simulated_derived(design, 5, ctf_protocol=HARSH_PROTOCOL)
    frame = ctf_frame(derived)
    idata = CTFModel().fit(frame, seed=75, **SAMPLER)
    truth = math.log1p(trial.truth["arms"]["active"]["ctf_effect"])
    check_recovered(draws_of(idata, "log_ratio", arm="active"), truth, "log_ratio")
