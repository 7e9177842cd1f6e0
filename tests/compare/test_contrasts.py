"""Active-versus-active contrasts and the meta-analysis intervals of the several-trial twin.

Checked against independent computations: R (stored reference values for the Hartung-Knapp
interval, tests/references/hartung_knapp_bcg.R), a weighted least-squares fit in NumPy, the
maximum likelihood fit reparameterised so that the contrast is a coefficient, and normal
posteriors whose probabilities are known in closed form.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from helpers import CORES
from scipy import stats

from crampstats.compare.contrasts import ACTIVE_COLUMNS, active_vs_active, glm_contrasts
from crampstats.models import NBTotals
from crampstats.models.multi_trial import (
    hartung_knapp,
    inverse_variance_pool,
    prediction_interval,
    trial_nb_glm,
)
from crampstats.models.synthetic import simulate_parallel_trial

REFERENCES = Path(__file__).resolve().parents[1] / "references"
ARMS = {"placebo": 1.0, "a": 0.6, "b": 0.8, "c": 1.0}


@pytest.fixture(scope="module")
def bcg():
    data = pd.read_csv(REFERENCES / "hartung_knapp_bcg_data.csv")
    ref = pd.read_csv(REFERENCES / "hartung_knapp_bcg.csv").set_index("quantity")["value"]
    return data["yi"].to_numpy(), np.sqrt(data["vi"].to_numpy()), ref


def test_dersimonian_laird_and_hartung_knapp_match_r(bcg):
    """Closed forms on the 13 BCG trials against R's lm (values stored beside the script):
    agreement to 1e-9, rounding only. DL tau^2 = 0.3088 and estimate -0.7141 are also the
    published metafor results for these data."""
    y, se, ref = bcg
    pooled = inverse_variance_pool(y, se)
    assert pooled["tau"] ** 2 == pytest.approx(ref["tau2"], abs=1e-9)
    assert pooled["q"] == pytest.approx(ref["q_cochran"], abs=1e-9)
    assert pooled["random"] == pytest.approx(ref["estimate"], abs=1e-9)
    assert pooled["se_random"] == pytest.approx(ref["se_wald"], abs=1e-9)
    hk = hartung_knapp(y, se, pooled["tau"] ** 2)
    assert hk["estimate"] == pytest.approx(ref["estimate"], abs=1e-9)
    assert hk["se"] == pytest.approx(ref["se_hk"], abs=1e-9)
    assert (hk["lower"], hk["upper"]) == pytest.approx((ref["hk_lower"], ref["hk_upper"]), abs=1e-9)
    pi = prediction_interval(pooled["random"], pooled["se_random"], pooled["tau"] ** 2, len(y))
    assert pi == pytest.approx((ref["pi_lower"], ref["pi_upper"]), abs=1e-9)


def test_hartung_knapp_is_weighted_least_squares(rng):
    """Independent NumPy computation: the intercept of a WLS fit of y on 1 with weights
    1/(v + tau^2), its SE from the residual variance, a t interval with k - 1 df."""
    for k in (2, 3, 7):
        y, se = rng.normal(-0.3, 0.3, k), rng.uniform(0.1, 0.4, k)
        tau2 = float(rng.uniform(0, 0.1))
        w = 1 / (se**2 + tau2)
        X, Y = np.sqrt(w)[:, None], np.sqrt(w) * y
        beta, res, *_ = np.linalg.lstsq(X, Y, rcond=None)
        sigma2 = float(res[0]) / (k - 1) if res.size else float(np.sum((Y - X @ beta) ** 2))
        se_wls = np.sqrt(sigma2 / np.sum(w))
        t = stats.t.ppf(0.975, k - 1)
        hk = hartung_knapp(y, se, tau2)
        assert hk["estimate"] == pytest.approx(beta[0], abs=1e-12)
        assert hk["lower"] == pytest.approx(beta[0] - t * se_wls, abs=1e-12)
        assert hk["upper"] == pytest.approx(beta[0] + t * se_wls, abs=1e-12)
        modified = hartung_knapp(y, se, tau2, modified=True)
        assert modified["se"] == pytest.approx(max(hk["se"], np.sqrt(1 / np.sum(w))), abs=1e-12)
    one = hartung_knapp(np.array([0.1]), np.array([0.2]), 0.0)
    assert np.isnan(one["lower"]) and np.isnan(prediction_interval(0.1, 0.2, 0.0, 2)[0])


@pytest.fixture(scope="module")
def three_arm_trial() -> pd.DataFrame:
    periods, _, _ = simulate_parallel_trial(np.random.default_rng(14), ARMS, 60, weeks=8)
    return periods


def test_glm_contrast_is_the_reparameterised_coefficient(three_arm_trial):
    """``b_first - b_second`` with ``sqrt(c' V c)`` equals the coefficient of ``first`` in the
    NB GLM with ``second`` as reference (maximum likelihood does not depend on the coding;
    optimiser tolerance 1e-4 against SEs of ~0.15)."""
    arms, log_rr, cov = trial_nb_glm(three_arm_trial, control_arm="placebo")
    table = glm_contrasts(arms, log_rr, cov).set_index(["first", "second"])
    assert len(table) == 3
    for second in ("b", "c"):
        own_arms, own, own_cov = trial_nb_glm(three_arm_trial, control_arm=second)
        i = own_arms.index("a")
        assert table.loc[("a", second), "log_rr"] == pytest.approx(own[i], abs=1e-4)
        assert table.loc[("a", second), "se"] == pytest.approx(np.sqrt(own_cov[i, i]), abs=1e-4)


def _normal_posterior(means: dict[str, float], sds: dict[str, float], n: int = 40000):
    rng = np.random.default_rng(3)
    values = np.stack([rng.normal(means[a], sds[a], (2, n // 2)) for a in means], axis=-1)
    log_rr = xr.DataArray(values, dims=("chain", "draw", "arm"), coords={"arm": list(means)})
    return xr.DataTree.from_dict({"posterior": xr.Dataset({"log_rr": log_rr})})


def test_p_better_matches_the_normal_closed_form():
    """Independent normal posteriors: P(first better) = Phi(-(m1 - m2) / sqrt(s1^2 + s2^2))
    within 4 Monte Carlo SEs (40,000 draws: SE <= 0.0025), the median rate ratio within 4 MC
    SEs of a median (1.25 sd / sqrt(n))."""
    means, sds = {"a": -0.5, "b": -0.3, "c": 0.0}, {"a": 0.2, "b": 0.15, "c": 0.25}
    idata = _normal_posterior(means, sds)
    config = {"trial_id": "t", "analysis": {"level": 0.9, "twins": False}}
    table = active_vs_active("nb_totals", idata, pd.DataFrame(), NBTotals(), config)
    assert list(table.columns) == ACTIVE_COLUMNS and len(table) == 3
    for r in table.itertuples():
        diff, sd = means[r.first] - means[r.second], np.hypot(sds[r.first], sds[r.second])
        p = stats.norm.cdf(-diff / sd)
        assert r.p_first_better == pytest.approx(p, abs=4 * np.sqrt(p * (1 - p) / 40000))
        tol = 4 * 1.25 * sd / np.sqrt(40000)
        assert np.log(r.rr_median) == pytest.approx(diff, abs=tol)
        lo, hi = diff + sd * stats.norm.ppf([0.05, 0.95])
        assert np.log(r.rr_lower) == pytest.approx(lo, abs=3 * tol)
        assert np.log(r.rr_upper) == pytest.approx(hi, abs=3 * tol)
        assert r.direct and np.isnan(r.rr_twin)


@pytest.mark.slow
def test_active_vs_active_agrees_with_the_glm_twin(three_arm_trial):
    """nb_totals on 60 subjects an arm: the posterior median contrast within 0.2 twin SE plus
    4 MC SEs of the GLM contrast (posterior and likelihood are near normal with a Normal(0, 1)
    prior that moves the estimate by ~2 %), the interval ends within 0.25 SE, and P(first
    better) within 0.05 of the twin's one-sided 1 - p (both tail areas of near-equal normals)."""
    # arms in an order other than sorted (the twin's own): each pair keeps the posterior's
    model = NBTotals({"arms": ["placebo", "c", "a", "b"]})
    idata = model.fit(three_arm_trial, seed=5, cores=CORES)
    frame = model.select(three_arm_trial)
    table = active_vs_active("nb_totals", idata, frame, model, {"trial_id": "t"})
    assert [(r.first, r.second) for r in table.itertuples()] == [("c", "a"), ("c", "b"), ("a", "b")]
    arms, log_rr, cov = trial_nb_glm(frame)
    twin = glm_contrasts(arms, log_rr, cov).set_index(["first", "second"])
    for r in table.itertuples():
        if (r.first, r.second) in twin.index:
            ref = twin.loc[(r.first, r.second)]
        else:  # the same contrast the other way round
            ref = twin.loc[(r.second, r.first)].copy()
            ref["log_rr"], ref["rr"] = -ref["log_rr"], 1 / ref["rr"]
            ref["rr_lower"], ref["rr_upper"] = 1 / ref["rr_upper"], 1 / ref["rr_lower"]
        tol = 0.2 * ref["se"] + 4 * ref["se"] / np.sqrt(1000)
        assert np.log(r.rr_median) == pytest.approx(ref["log_rr"], abs=tol)
        assert r.rr_twin == pytest.approx(ref["rr"], rel=1e-9)
        assert np.log(r.rr_lower) == pytest.approx(np.log(ref["rr_lower"]), abs=0.25 * ref["se"])
        assert np.log(r.rr_upper) == pytest.approx(np.log(ref["rr_upper"]), abs=0.25 * ref["se"])
        assert r.p_first_better == pytest.approx(1 - r.p_twin_one_sided, abs=0.05)
        assert r.status == "ok"
