"""Group-sequential designs (crampstats.power.sequential) and the fast analysis mode (fast.py).

Truth-known checks: the decision step on hand-made probabilities, the time line by hand, the
O'Brien-Fleming boundary against rpact. Independent computation: rpact's operating
characteristics of the same design (tests/references/rpact/obf_sequential.{R,csv}) against the
vectorised normal-approximation path, within Monte Carlo error; the Laplace + PSIS posterior
against full MCMC (slow), within the Monte Carlo error of both.
"""

from __future__ import annotations

import math
import shutil
import subprocess

import numpy as np
import pandas as pd
import pytest
from helpers import ROOT
from scipy import stats

from crampstats.config import ConfigError
from crampstats.power import check_power_config, read_decisions, resolve_design
from crampstats.power.fast import NBTotalsLogPosterior, posterior_log_rr
from crampstats.power.generate import draw_effects, mcmc_seed, simulate_periods
from crampstats.power.run import analysis_model
from crampstats.power.sequential import (
    SequentialPlan,
    apply_looks,
    look_step,
    normal_sequential,
    obrien_fleming_z,
    operating_characteristics,
    run_sequential_shard,
    sequential_plan,
    summarize_sequential,
    timeline,
)

REF = ROOT / "tests" / "references" / "rpact"
CORES = 2


def _reference() -> pd.DataFrame:
    return pd.read_csv(REF / "obf_sequential.csv", keep_default_na=False, na_values=["NA"])


def _value(ref: pd.DataFrame, scenario: str, quantity: str, look: int | None = None) -> float:
    sel = (ref["scenario"] == scenario) & (ref["quantity"] == quantity)
    if look is not None:
        sel &= ref["look"] == look
    return float(ref.loc[sel, "value"].iloc[0])


def _plan(**kw) -> SequentialPlan:
    base = {
        "fractions": (0.5, 1.0),
        "efficacy": np.array([0.99, 0.975]),
        "futility": np.array([0.2, np.nan]),
    }
    return SequentialPlan(**{**base, **kw})


# ---------------------------------------------------------------------------------------------
# Decision step and time line: truth known
# ---------------------------------------------------------------------------------------------
def test_look_step_stops_arms_for_efficacy_and_futility():
    plan = _plan()
    open_arms = np.ones((4, 1), bool)
    p_eff = np.array([[0.995], [0.98], [0.5], [0.1]])
    p_fut = np.array([[0.995], [0.98], [0.5], [0.1]])
    eff, fut = look_step(open_arms, p_eff, p_fut, 0, plan)
    assert eff[:, 0].tolist() == [True, False, False, False]  # 0.98 < 0.99 at the interim
    assert fut[:, 0].tolist() == [False, False, False, True]  # 0.1 < 0.2
    # last look: 0.98 > 0.975 succeeds; no futility threshold there
    eff, fut = look_step(open_arms, p_eff, p_fut, 1, plan)
    assert eff[:, 0].tolist() == [True, True, False, False] and not fut.any()
    # closed arms never stop again
    eff, fut = look_step(np.zeros((4, 1), bool), p_eff, p_fut, 0, plan)
    assert not eff.any() and not fut.any()


def test_apply_looks_drops_arms_or_moves_them_together():
    # one replicate, two arms: A crosses efficacy at look 1, B is futile at look 1
    p_eff = np.array([[[0.995, 0.1], [0.999, 0.999]]])
    p_fut = p_eff.copy()
    dropping = apply_looks(p_eff, p_fut, _plan(drop_arms=True))
    assert dropping["stop_look"].tolist() == [[0, 0]]
    assert dropping["reason"].tolist() == [[1, 2]]  # efficacy, futility
    together = apply_looks(p_eff, p_fut, _plan(drop_arms=False))
    # a success stops the trial; B closes without success ("final"), not for futility
    assert together["stop_look"].tolist() == [[0, 0]]
    assert together["reason"].tolist() == [[1, 3]]
    # B futile alone does not stop anything when arms move together
    p_eff = np.array([[[0.5, 0.1], [0.99, 0.5]]])
    together = apply_looks(p_eff, p_eff.copy(), _plan(drop_arms=False))
    assert together["stop_look"].tolist() == [[1, 1]] and together["reason"].tolist() == [[1, 3]]
    dropping = apply_looks(p_eff, p_eff.copy(), _plan(drop_arms=True))
    assert dropping["stop_look"].tolist() == [[1, 0]] and dropping["reason"].tolist() == [[1, 2]]


def test_timeline_by_hand():
    # 3 arms (control, A, B), 6 patients a week -> 2 per arm and week; 2 weeks of follow-up
    plan = _plan(accrual_per_week=6.0, follow_up_weeks=2.0)
    # A stops at look 1: 10 per arm enrolled at week 5, look at week 7 (14 per arm enrolled);
    # then 3 a week for control and B: the 20th at week 9, the last look at week 11
    got = timeline(np.array([0, 1]), 20, plan)
    assert got["duration_weeks"] == pytest.approx(11.0)
    assert got["n_randomised"] == pytest.approx(14 + 20 + 20)
    assert got["n_analysed"] == 10 + 20 + 20
    # everything stops at look 1: 14 per arm randomised, 10 per arm analysed
    got = timeline(np.array([0, 0]), 20, plan)
    assert got["duration_weeks"] == pytest.approx(7.0)
    assert got["n_randomised"] == pytest.approx(42.0) and got["n_analysed"] == 30


def test_timeline_with_unequal_allocation_by_hand():
    # control 2 : A 1 : B 1 at n = 10 -> 20, 10, 10 patients; 8 a week -> 2 units of
    # allocation a week (control 4, A 2, B 2 patients); 2 weeks of follow-up
    plan = _plan(accrual_per_week=8.0, follow_up_weeks=2.0)
    allocation = np.array([2.0, 1.0, 1.0])
    # look 1 (10, 5, 5 analysed) when 5 units are enrolled: week 2.5 + 2; A stops there with
    # 9 randomised; then 8 / 3 units a week for control and B: 10 units at week 4.875 + 2
    got = timeline(np.array([0, 1]), 10, plan, allocation)
    assert got["duration_weeks"] == pytest.approx(6.875)
    assert got["n_randomised"] == pytest.approx(9 + 10 + 20)
    assert got["n_analysed"] == 5 + 10 + 20
    # all equal ratios give the equal-allocation time line
    equal = timeline(np.array([0, 1]), 20, _plan(accrual_per_week=6.0, follow_up_weeks=2.0))
    assert timeline(
        np.array([0, 1]), 20, _plan(accrual_per_week=6.0, follow_up_weeks=2.0), np.ones(3)
    ) == equal


# ---------------------------------------------------------------------------------------------
# O'Brien-Fleming and rpact
# ---------------------------------------------------------------------------------------------
def test_obrien_fleming_boundary_equals_rpact():
    ref = _reference()
    fractions = [_value(ref, "design", "information_fraction", j) for j in (1, 2, 3)]
    want = [_value(ref, "design", "critical_z", j) for j in (1, 2, 3)]
    # the Genz integration behind the multivariate normal cdf is accurate to ~1e-5 in
    # probability; 1e-3 in z is ~2e-5 in the alpha spent at the last look
    np.testing.assert_allclose(obrien_fleming_z(fractions, 0.025), want, atol=1e-3)
    assert obrien_fleming_z([1.0])[0] == pytest.approx(stats.norm.isf(0.025))


@pytest.mark.skipif(shutil.which("Rscript") is None, reason="Rscript not installed")
def test_rpact_reference_is_reproducible(tmp_path):
    probe = subprocess.run(["Rscript", "-e", "library(rpact)"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip("R package rpact not installed")
    out = tmp_path / "obf.csv"
    subprocess.run(
        ["Rscript", str(REF / "obf_sequential.R"), str(out)], check=True, capture_output=True
    )
    got = pd.read_csv(out, keep_default_na=False, na_values=["NA"])
    want = _reference()
    pd.testing.assert_frame_equal(got.drop(columns="value"), want.drop(columns="value"))
    np.testing.assert_allclose(got["value"], want["value"], rtol=1e-8)


@pytest.mark.parametrize("scenario", ["null", "alternative"])
def test_obrien_fleming_thresholds_give_rpacts_operating_characteristics(scenario):
    """Posterior thresholds Phi(c_j) reproduce rpact's rejection rates within Monte Carlo error.

    Normal-approximation path (normal_sequential): NB totals, log rate ratio of the arm means
    with its delta-method variance, the analysis model's weak prior Normal(0, 1) on log RR.
    Tolerance: 4 binomial Monte Carlo SEs of the simulated rate (and 4 SEs of the mean sample
    size); the weak prior and the normal approximation move the rates by far less at 100-200
    patients per arm (prior shrinkage of z below 1 %).
    """
    ref = _reference()
    fractions = tuple(_value(ref, "design", "information_fraction", j) for j in (1, 2, 3))
    plan = SequentialPlan(
        fractions=fractions,
        efficacy=stats.norm.cdf(obrien_fleming_z(fractions, 0.025)),
        futility=np.array([stats.norm.cdf(0.0)] * 2 + [np.nan]),  # z < 0 <=> P(RR < 1) < 0.5
        boundary="obrien_fleming",
    )
    replicates = 40_000
    rows = normal_sequential(
        plan,
        int(_value(ref, "design", "n_per_arm")),
        _value(ref, "design", "mu0"),
        [_value(ref, scenario, "rr")],
        _value(ref, "design", "k"),
        replicates,
        seed=20261203,
    )
    oc = operating_characteristics(rows, 3).iloc[0]

    def close(got: float, want: float) -> None:
        se = math.sqrt(max(want * (1 - want), 1e-6) / replicates)
        assert abs(got - want) < 4 * se, (got, want, se)

    close(oc["p_success"], _value(ref, scenario, "reject"))
    for j in (1, 2, 3):
        close(oc[f"p_efficacy[{j}]"], _value(ref, scenario, "reject_at_look", j))
    for j in (1, 2):
        close(oc[f"p_futility[{j}]"], _value(ref, scenario, "futility_at_look", j))
    want_n = _value(ref, scenario, "expected_n_total")
    assert abs(oc["expected_n"] - want_n) < 4 * oc["expected_n_mcse"]


# ---------------------------------------------------------------------------------------------
# Configuration and the per-replicate path
# ---------------------------------------------------------------------------------------------
def _config(mode: str = "laplace", **sequential) -> dict:
    seq = {
        "looks": [0.5, 1.0],
        "efficacy": {"probability": "obrien_fleming"},
        "futility": {"probability": 0.2},
        **sequential,
    }
    raw = {
        "seed": 7,
        "replicates": 6,
        "analysis": {
            "mode": mode,
            "sampler": {"chains": 2, "draws": 200, "tune": 200},
            "diagnostics": {"ess_bulk_min": 50, "ess_tail_min": 50},
        },
        "designs": {
            "seq": {
                "generator": "negative_binomial",
                "arms": {"placebo": {}, "quinine": {"rr": 0.6}, "magnesium": {"rr": 1.0}},
                "n_per_arm": 40,
                "sequential": seq,
            }
        },
    }
    return check_power_config(raw, "test")


@pytest.mark.parametrize(
    ("sequential", "match"),
    [
        ({"looks": [0.5, 0.9]}, "end at 1"),
        ({"looks": [0.6, 0.5, 1.0]}, "increase"),
        ({"efficacy": {"probability": [0.99, 0.98, 0.97]}}, "3 values for 2 looks"),
        ({"futility": {"probability": [0.1, 0.2]}}, "2 values for 1 interim"),
    ],
)
def test_bad_sequential_blocks_name_the_key(sequential, match):
    config = _config(**sequential)
    with pytest.raises(ConfigError, match=match):
        sequential_plan(resolve_design(config, "seq"))


def test_a_sequential_design_needs_parallel_nb_totals():
    raw = _config()
    raw["designs"]["seq"].update(model="frailty_weekly", generator="trial")
    with pytest.raises(ConfigError, match=r"designs\.seq\.sequential: .*analysed with nb_totals"):
        sequential_plan(resolve_design(check_power_config(raw, "test"), "seq"))


def test_obrien_fleming_plan_maps_z_to_posterior_probabilities():
    plan = sequential_plan(resolve_design(_config(), "seq"))
    np.testing.assert_allclose(plan.efficacy, stats.norm.cdf(obrien_fleming_z((0.5, 1.0))))
    assert plan.futility[0] == 0.2 and np.isnan(plan.futility[1])
    assert plan.follow_up_weeks == 8.0  # negative_binomial: treatment weeks, no run-in


@pytest.fixture(scope="module")
def laplace_shards(tmp_path_factory):
    config = _config("laplace")
    root = tmp_path_factory.mktemp("seq")
    one = run_sequential_shard(config, "seq", out_dir=root / "one", cores=CORES)
    three = [
        run_sequential_shard(config, "seq", shards=3, shard=i, out_dir=root / "three")
        for i in (1, 2, 3)
    ]
    return config, root, one, three


def test_sequential_rows_do_not_depend_on_sharding(laplace_shards):
    _, _, one, three = laplace_shards
    a = read_decisions(one)[0]
    b = pd.concat([read_decisions(p)[0] for p in three], ignore_index=True)
    pd.testing.assert_frame_equal(a, b)
    assert set(a["mode"]) <= {"laplace", "laplace+laplace->mcmc", "laplace->mcmc"}


def test_recorded_probabilities_reproduce_the_decisions(laplace_shards):
    """The per-replicate path decided with look_step: apply_looks on its probabilities agrees."""
    config, _, one, _ = laplace_shards
    frame, meta = read_decisions(one)
    assert meta["kind"] == "sequential" and meta["mode"] == "laplace"
    plan = sequential_plan(resolve_design(config, "seq"))
    wide = frame.pivot(index="replicate", columns="arm")
    arms = sorted(frame["arm"].unique())
    p_eff = np.stack([wide[f"p_eff[{j}]"][arms].to_numpy() for j in (1, 2)], axis=1)
    p_fut = np.stack([wide[f"p_fut[{j}]"][arms].to_numpy() for j in (1, 2)], axis=1)
    got = apply_looks(np.nan_to_num(p_eff), np.nan_to_num(p_fut, nan=1.0), plan)
    assert (got["stop_look"] + 1 == wide["stop_look"][arms].to_numpy()).all()
    reasons = {1: "efficacy", 2: "futility", 3: "final"}
    assert (np.vectorize(reasons.get)(got["reason"]) == wide["reason"][arms].to_numpy()).all()
    # an arm's probabilities are recorded only while it is open
    closed = frame["stop_look"] == 1
    assert frame.loc[closed, "p_eff[2]"].isna().all()
    assert frame.loc[~closed, "p_eff[2]"].notna().all()
    # the look-1 probability is the posterior of the first 20 patients per arm
    r = int(frame["replicate"].iloc[0])
    design = resolve_design(config, "seq")
    periods = simulate_periods(design, 40, draw_effects(design, 7, r), 7, r)
    first = periods.sort_values("subject_id").groupby("arm", sort=False).head(20)
    fit = posterior_log_rr(analysis_model(config, design), first, mcmc_seed(7, r), mode="laplace")
    want = (fit.draws[:, fit.arms.index("quinine")] < 0).mean()
    got = frame.loc[(frame["replicate"] == r) & (frame["arm"] == "quinine"), "p_eff[1]"]
    assert float(got.iloc[0]) == pytest.approx(want)


def test_unequal_allocation_analyses_each_arms_share_and_does_not_depend_on_sharding(tmp_path):
    config = _config("laplace")
    config["designs"]["seq"]["arms"]["placebo"] = {"allocation": 2.0}
    config = check_power_config(config, "test")
    one = run_sequential_shard(config, "seq", replicates=4, out_dir=tmp_path / "one")
    three = [
        run_sequential_shard(config, "seq", 4, shards=3, shard=i, out_dir=tmp_path / "three")
        for i in (1, 2, 3)
    ]
    frame = read_decisions(one)[0]
    pd.testing.assert_frame_equal(
        frame, pd.concat([read_decisions(p)[0] for p in three], ignore_index=True)
    )
    # 80 on placebo, 40 on each active: 20 analysed at look 1, 40 at the end
    assert set(frame.loc[frame["stop_look"] == 1, "n_arm_analysed"]) <= {20}
    assert set(frame.loc[frame["stop_look"] == 2, "n_arm_analysed"]) <= {40}
    assert set(frame["n_max"]) == {160}
    # the look-1 probability is the posterior of the first 40 placebo and 20 active patients
    r = int(frame["replicate"].iloc[0])
    design = resolve_design(config, "seq")
    periods = simulate_periods(design, 40, draw_effects(design, 7, r), 7, r)
    sizes = {"placebo": 40, "quinine": 20, "magnesium": 20}
    ordered = periods.sort_values("subject_id")
    first = ordered[ordered.groupby("arm").cumcount() < ordered["arm"].map(sizes)]
    fit = posterior_log_rr(analysis_model(config, design), first, mcmc_seed(7, r), mode="laplace")
    want = (fit.draws[:, fit.arms.index("quinine")] < 0).mean()
    got = frame.loc[(frame["replicate"] == r) & (frame["arm"] == "quinine"), "p_eff[1]"]
    assert float(got.iloc[0]) == pytest.approx(want)


def test_summarize_sequential_writes_operating_characteristics(laplace_shards):
    _, root, _, _ = laplace_shards
    table, svg = summarize_sequential(root / "three")
    assert (root / "three" / "power.csv").is_file() and svg.read_text().startswith("<svg")
    assert set(table["arm"]) == {"quinine", "magnesium"}
    # stopping probabilities per look plus the final analysis account for every replicate
    for _, row in table.iterrows():
        assert row["p_efficacy[1]"] + row["p_futility[1]"] <= 1.0
        assert row["lower"] <= row["p_success"] <= row["upper"]
        assert 0 < row["expected_n"] <= row["n_max"] == 40 * 3


# ---------------------------------------------------------------------------------------------
# Fast mode (Laplace + PSIS)
# ---------------------------------------------------------------------------------------------
def test_laplace_gradient_and_hessian_are_exact():
    config = _config()
    design = resolve_design(config, "seq")
    model = analysis_model(config, design)
    periods = simulate_periods(design, 40, draw_effects(design, 7, 0), 7, 0)
    post = NBTotalsLogPosterior.from_prepared(model.prepare(periods), model.model_config)
    theta = post.start() + 0.05
    grad, hess = post.grad_hess(theta)
    eps = 1e-6  # central differences: error O(eps^2) times third derivatives ~ 1e-8
    eye = np.eye(post.dim)
    num_grad = [(post.logp(theta + eps * e) - post.logp(theta - eps * e)) / (2 * eps) for e in eye]
    num_hess = [
        (post.grad_hess(theta + eps * e)[0] - post.grad_hess(theta - eps * e)[0]) / (2 * eps)
        for e in eye
    ]
    np.testing.assert_allclose(grad, num_grad, atol=1e-4 * (1 + np.abs(grad).max()))
    np.testing.assert_allclose(hess, num_hess, atol=1e-4 * (1 + np.abs(hess).max()))


@pytest.mark.slow
def test_laplace_posterior_probabilities_match_mcmc():
    """P(RR < t) by Laplace + PSIS equals full MCMC within the Monte Carlo error of both."""
    config = _config("mcmc")
    config["analysis"]["sampler"] = {"chains": 4, "draws": 1000, "tune": 1000}
    design = resolve_design(config, "seq")
    model = analysis_model(config, design)
    for r in range(3):
        periods = simulate_periods(design, 40, draw_effects(design, 7, r), 7, r)
        fast = posterior_log_rr(model, periods, 100 + r, mode="laplace")
        mcmc = posterior_log_rr(model, periods, 100 + r, mode="mcmc", cores=CORES)
        assert fast.mode == "laplace" and fast.khat <= 0.7
        for arm in ("quinine", "magnesium"):
            a = fast.draws[:, fast.arms.index(arm)]
            b = mcmc.draws[:, mcmc.arms.index(arm)]
            for t in (np.log(0.75), 0.0):
                pa, pb = (a < t).mean(), (b < t).mean()
                # SE of each from its effective sample size (MCMC: ess_tail_min)
                var = pa * (1 - pa) / fast.diagnostics["ess_bulk_min"]
                var += pb * (1 - pb) / mcmc.diagnostics["ess_tail_min"]
                assert abs(pa - pb) < 4 * math.sqrt(var) + 1e-3, (r, arm, t, pa, pb)


@pytest.mark.slow
def test_sequential_mcmc_path_uses_the_same_decisions(tmp_path):
    config = _config("mcmc")
    config["replicates"] = 3
    path = run_sequential_shard(config, "seq", out_dir=tmp_path, cores=CORES)
    frame, meta = read_decisions(path)
    assert meta["mode"] == "mcmc" and set(frame["mode"]) == {"mcmc"}
    plan = sequential_plan(resolve_design(config, "seq"))
    for _, row in frame.iterrows():
        p1 = row["p_eff[1]"]
        if row["reason"] == "efficacy" and row["stop_look"] == 1:
            assert p1 > plan.efficacy[0]
        if row["reason"] == "futility":
            assert row["p_fut[1]"] < plan.futility[0]
