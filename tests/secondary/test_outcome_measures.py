"""Outcome-measure properties: reliability recovery, twins, identities, agreement, SRM, sample size.

Known truths come from two places: a generator written here from the reliability model's own
data-generating process (subject log rate ~ Normal, weekly counts negative binomial; the true
ICCs, SEM and MDC follow from its parameters by the formulas below, written independently of
the module), and the trial simulator, whose EMG block fixes the CTF's log-scale ICC and
within-subject SD (``crampstats.simulate._emg``). Bayesian fits are module-scoped and share the
engine's compile cache.
"""

from __future__ import annotations

import math

import arviz_stats as azs
import numpy as np
import pandas as pd
import pytest
from scipy import integrate, special, stats

from crampstats.calibration.reliability import (
    P_SHORT_WEEK,
    RUNIN_WEEKS,
    count_truth,
    simulate_runin,
)
from crampstats.derive import derive_all
from crampstats.models._common import ModelDataError
from crampstats.secondary import outcome_measures as om
from crampstats.simulate import simulate

SAMPLER = {"chains": 2, "draws": 1000, "tune": 700, "cores": 2}
CFG = {"design": "parallel", "ctf_protocol": {"start_hz": 4, "step_hz": 2, "max_hz": 40}}
Z95 = stats.norm.ppf(0.975)


# ---------------------------------------------------------------------------------------------
# Truth: the calibration case's generator and closed forms (crampstats.calibration.reliability)
# ---------------------------------------------------------------------------------------------
def _row(summary: pd.DataFrame, prop: str) -> pd.Series:
    return summary.set_index("property").loc[prop]


# ---------------------------------------------------------------------------------------------
# Formulas
# ---------------------------------------------------------------------------------------------
def test_count_formulas_match_a_large_simulation():
    truth = count_truth(0.6, 6.0, 3.0)
    rng = np.random.default_rng(1)
    n = 400_000
    mean = np.exp(rng.normal(truth["mu"], truth["s"], n))[:, None] * np.ones(2)
    y = rng.negative_binomial(3.0, 3.0 / (3.0 + mean)).astype(float)
    got = om.count_reliability(truth["mu"] - math.log(7.0), truth["s"], 3.0)
    assert got["lambda"] == pytest.approx(6.0)
    assert got["icc"] == pytest.approx(0.6)
    # observed-scale ICC = correlation of two weeks; SEM = SD of their difference / sqrt(2)
    assert np.corrcoef(y[:, 0], y[:, 1])[0, 1] == pytest.approx(got["icc_observed"], abs=0.01)
    assert y.std() == pytest.approx(got["sd_total"], rel=0.01)
    assert (y[:, 0] - y[:, 1]).std() / math.sqrt(2) == pytest.approx(got["sem"], rel=0.01)
    assert got["sem"] == pytest.approx(truth["sem"])
    assert got["icc_observed"] == pytest.approx(truth["icc_observed"])
    # Poisson limit: no distribution-specific variance beyond 1 / lambda
    poisson = om.count_reliability(0.0, 0.5, np.inf)
    assert poisson["icc"] == pytest.approx(0.25 / (0.25 + math.log1p(1 / poisson["lambda"])))


def test_lognormal_formulas_match_a_large_simulation():
    rng = np.random.default_rng(2)
    s_b, s_e = 0.25, 0.15
    b = rng.normal(0, s_b, 400_000)[:, None]
    x = np.log(16.0) + b + rng.normal(0, s_e, (400_000, 2))
    got = om.lognormal_reliability(s_b, s_e)
    assert got["icc"] == pytest.approx(s_b**2 / (s_b**2 + s_e**2))
    assert np.corrcoef(np.exp(x).T)[0, 1] == pytest.approx(got["icc_observed"], abs=0.01)
    assert got["sem"] == pytest.approx(s_e)
    assert got["mdc95"] == pytest.approx(Z95 * math.sqrt(2) * s_e)
    assert got["mdc95_ratio"] == pytest.approx(math.exp(got["mdc95"]))
    # a change of one MDC is exceeded by measurement error alone in 5 % of test-retest pairs
    diff = x[:, 0] - x[:, 1]
    assert np.mean(np.abs(diff) > got["mdc95"]) == pytest.approx(0.05, abs=0.003)


def test_interval_logprob_is_accurate_in_both_tails():
    lower = np.array([-np.inf, -1.0, 2.0, 8.0, -9.0, 3.0])
    upper = np.array([0.5, 1.0, 2.5, 9.0, -8.0, np.inf])
    got = om.interval_logprob(lower, upper)
    # upper tails by sf, lower tails by cdf: both accurate where they are used
    expected = np.where(
        lower > 0,
        np.log(stats.norm.sf(lower) - stats.norm.sf(upper)),
        np.log(stats.norm.cdf(upper) - stats.norm.cdf(lower)),
    )
    np.testing.assert_allclose(got, expected, rtol=1e-10)
    assert np.all(np.isfinite(got))


def test_ctf_marginal_likelihood_matches_numerical_integration():
    # subject 0 near the median, 1 right-censored, 2 at the first protocol step (CTF <= 4 Hz)
    lower = np.log([10.0, 14.0, 40.0, 38.0, 4.0, 4.0])
    upper = np.log([12.0, 16.0, 40.0, 40.0, 4.0, 6.0])
    lower[4], upper[2] = -30.0, 30.0  # 0 and infinity, as the models bound them
    idx = np.array([0, 0, 1, 1, 2, 2])
    m, s_b, s_e = math.log(16.0), 0.23, 0.15
    got = om.ctf_marginal_loglik(lower, upper, idx, 3, [m], [s_b], [s_e])[0]
    for i in range(3):
        rows = idx == i

        def integrand(b, rows=rows):
            p = stats.norm.cdf((upper[rows] - m - b) / s_e) - stats.norm.cdf(
                (lower[rows] - m - b) / s_e
            )
            return np.prod(p) * stats.norm.pdf(b, 0, s_b)

        value, _ = integrate.quad(integrand, -2.0, 2.0, points=[0.0], limit=200)
        assert got[i] == pytest.approx(math.log(value), abs=1e-7)


def test_model_densities_match_numpy():
    rng = np.random.default_rng(3)
    weekly = simulate_runin(rng, 12, count_truth(0.5, 6.0, 4.0), RUNIN_WEEKS, P_SHORT_WEEK)
    model = om.RunInReliability()
    prepared = model.prepare(weekly)
    pm_model = model.build(prepared)
    point = pm_model.initial_point()
    z = rng.normal(size=prepared.n_subjects)
    point.update(alpha=-0.3, sigma_log__=math.log(0.4), k_log__=math.log(5.0), z=z)
    density = pm_model.compile_logp(vars=pm_model.potentials, jacobian=False)(point)
    d = prepared.data
    mu = np.exp(d["log_exposure"] - 0.3 + 0.4 * z[d["subject_idx"]])
    expected = stats.nbinom.logpmf(d["y"], 5.0, 5.0 / (5.0 + mu)).sum()
    assert density == pytest.approx(expected + special.gammaln(d["y"] + 1.0).sum(), rel=1e-10)

    design = {"type": "parallel", "n_per_arm": 6, "arms": {"placebo": {}}}
    trial = simulate({**design, "emg": {"baseline_visits": 2}}, 4)
    emg = derive_all(trial.tables, CFG)["emg"]
    ctf = om.CTFReliability()
    prepared = ctf.prepare(emg)
    pm_model = ctf.build(prepared)
    point = pm_model.initial_point()
    z = rng.normal(size=prepared.n_subjects)
    point.update(m=2.7, s_b_log__=math.log(0.2), s_e_log__=math.log(0.15), z=z)
    density = pm_model.compile_logp(vars=pm_model.potentials, jacobian=False)(point)
    d = prepared.data
    mean = 2.7 + 0.2 * z[d["subject_idx"]]
    zl, zu = (d["log_lower"] - mean) / 0.15, (d["log_upper"] - mean) / 0.15
    p = np.where(
        zl > 0, stats.norm.sf(zl) - stats.norm.sf(zu), stats.norm.cdf(zu) - stats.norm.cdf(zl)
    )
    # PyMC's normal_lcdf (PyTensor erfc/erfcx) is accurate to ~3e-8 per value, not to 1e-15
    assert density == pytest.approx(np.log(p).sum(), abs=5e-8 * p.size)
    np.testing.assert_allclose(om.interval_logprob(zl, zu), np.log(p), rtol=1e-12)


# ---------------------------------------------------------------------------------------------
# Data selection
# ---------------------------------------------------------------------------------------------
def _weekly(rows: list[tuple]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["subject_id", "period", "week", "count", "exposure_days"])


def test_runin_week_selection_drops_short_weeks_and_single_week_subjects():
    weekly = _weekly(
        [
            ("a", "run-in", -1, 7, 7),
            ("a", "run-in", 0, 3, 6),
            ("a", "treatment", 1, 2, 7),
            ("b", "run-in", -1, 9, 7),
            ("b", "run-in", 0, 1, 2),  # short week 0: b drops out
            ("c", "run-in", -1, 4, 4),
            ("c", "run-in", 0, 5, 7),
            ("d", "washout", -1, 4, 7),
            ("d", "run-in", 0, 5, 7),
        ]
    )
    rows, info = om.runin_weeks(weekly, min_exposure_days=4)
    assert list(rows["subject"]) == ["a", "a", "c", "c"]
    assert rows["rate_per_week"].tolist() == pytest.approx([7, 3.5, 7, 5])
    assert info == {
        "weeks_runin": 7,
        "weeks_short": 1,
        "subjects_runin": 4,
        "subjects_single": 2,
        "subjects": 2,
        "weeks": 4,
    }
    with pytest.raises(ModelDataError, match="two run-in weeks"):
        om.runin_weeks(weekly, min_exposure_days=7)


# ---------------------------------------------------------------------------------------------
# Recovery of the frequency ICC (Bayesian and twin) at two known ICCs
# ---------------------------------------------------------------------------------------------
SETTINGS = {"icc_0.4": (0.4, 7.0, 4.0, 11), "icc_0.8": (0.8, 7.0, 10.0, 12)}


@pytest.fixture(scope="module", params=sorted(SETTINGS))
def frequency_fits(request):
    icc, lam, k, seed = SETTINGS[request.param]
    truth = count_truth(icc, lam, k)
    weekly = simulate_runin(np.random.default_rng(seed), 150, truth, RUNIN_WEEKS, P_SHORT_WEEK)
    bayes = om.frequency_reliability(weekly, seed=seed, sampler_config=SAMPLER)
    ml = om.frequency_reliability_ml(weekly)
    return truth, bayes, ml


PROPERTIES = ["icc", "icc_observed", "sem", "mdc95"]


def test_frequency_reliability_recovered(frequency_fits):
    truth, bayes, ml = frequency_fits
    assert bayes.n_subjects == 150
    for prop in PROPERTIES:
        row = _row(bayes.summary, prop)
        assert row["lower"] < truth[prop] < row["upper"], f"bayes {prop}: {truth[prop]:.3f} {row}"
        z = (row["estimate"] - truth[prop]) / np.std(bayes.draws[prop])
        assert abs(z) < 2.5, f"{prop}: bias {z:.2f} posterior SDs"
        ml_row = _row(ml.summary, prop)
        assert ml_row["lower"] < truth[prop] < ml_row["upper"], f"ml {prop}"
    post = bayes.idata["posterior"]
    for name in ("alpha", "sigma", "k"):
        assert float(azs.rhat(post[name])) < 1.01


def test_frequency_bayes_agrees_with_ml_twin(frequency_fits):
    # With 150 subjects the priors (weakly informative, centred on calibration values) move the
    # posterior by a small fraction of its SD; half a posterior SD is the tolerance, and the
    # intervals (equal-tailed posterior vs delta-method Wald) must have similar widths.
    _, bayes, ml = frequency_fits
    for prop in PROPERTIES:
        b, m = _row(bayes.summary, prop), _row(ml.summary, prop)
        sd = np.std(bayes.draws[prop])
        assert abs(b["estimate"] - m["estimate"]) < 0.5 * sd, prop
        ratio = (b["upper"] - b["lower"]) / (m["upper"] - m["lower"])
        assert 0.7 < ratio < 1.4, f"{prop}: width ratio {ratio:.2f}"


def test_sem_and_mdc_identities(frequency_fits):
    _, bayes, ml = frequency_fits
    d = bayes.draws
    np.testing.assert_allclose(d["sem"], d["sd_total"] * np.sqrt(1 - d["icc_observed"]))
    np.testing.assert_allclose(d["mdc95"], Z95 * math.sqrt(2) * d["sem"])
    for result in (bayes, ml):
        sem, mdc = _row(result.summary, "sem"), _row(result.summary, "mdc95")
        for col in ("estimate", "lower", "upper"):
            assert mdc[col] == pytest.approx(Z95 * math.sqrt(2) * sem[col], rel=1e-9)
    # the twin's SEM is the within-subject SD of a 7-day count at the MLE, written out here
    a = ml.summary.attrs
    lam = 7.0 * math.exp(a["alpha"] + a["sigma"] ** 2 / 2)
    within = lam + lam**2 * math.exp(a["sigma"] ** 2) / a["k"]
    between = lam**2 * math.expm1(a["sigma"] ** 2)
    assert _row(ml.summary, "sem")["estimate"] == pytest.approx(math.sqrt(within))
    assert _row(ml.summary, "icc_observed")["estimate"] == pytest.approx(
        between / (between + within)
    )


# ---------------------------------------------------------------------------------------------
# CTF reliability from the trial simulator
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module", params=[0.7, 0.4])
def ctf_fits(request):
    design = {
        "type": "parallel",
        "trial_id": "t",
        "n_per_arm": 50,
        "arms": {"placebo": {}, "quinine": {}, "mexiletine": {}},
        "emg": {"baseline_visits": 2, "icc": request.param},
    }
    # one replicate per ICC; calibration over replicates is test_ctf_ml_coverage_over_replicates
    trial = simulate(design, 22)
    emg = derive_all(trial.tables, CFG)["emg"]
    bayes = om.ctf_reliability(emg, seed=5, sampler_config=SAMPLER)
    ml = om.ctf_reliability_ml(emg)
    return trial.truth["trials"]["t"]["emg"], bayes, ml


def test_ctf_icc_recovered_from_the_trial_simulator(ctf_fits):
    truth, bayes, ml = ctf_fits
    expected = {
        "icc": truth["icc"],
        "sem": truth["sigma_noise"],
        "mdc95": Z95 * math.sqrt(2) * truth["sigma_noise"],
    }
    for prop, value in expected.items():
        for result in (bayes, ml):
            row = _row(result.summary, prop)
            assert row["lower"] < value < row["upper"], f"{result.method} {prop}: {value} {row}"
        z = (_row(bayes.summary, prop)["estimate"] - value) / np.std(bayes.draws[prop])
        assert abs(z) < 2.5
    # agreement with the twin: same likelihood, priors weak against 150 subjects
    for prop in ("icc", "icc_observed", "sem", "mdc95_ratio"):
        b, m = _row(bayes.summary, prop), _row(ml.summary, prop)
        assert abs(b["estimate"] - m["estimate"]) < 0.5 * np.std(bayes.draws[prop]), prop
    d = bayes.draws
    np.testing.assert_allclose(d["sem"], d["s_e"])
    np.testing.assert_allclose(d["mdc95_ratio"], np.exp(Z95 * math.sqrt(2) * d["s_e"]))


def test_ctf_pairs_need_both_baselines():
    emg = pd.DataFrame(
        {
            "subject_id": ["a", "a", "b", "c", "c"],
            "visit": ["baseline_1", "baseline_2", "baseline_1", "baseline_1", "end"],
            "ctf_lower": [10.0, 12.0, 8.0, 6.0, 6.0],
            "ctf_upper": [12.0, 14.0, 10.0, 8.0, 8.0],
        }
    )
    with pytest.raises(ModelDataError, match="two baseline"):
        om.ctf_baseline_pairs(emg)
    more = pd.concat([emg, emg.iloc[:2].assign(subject_id="d", ctf_upper=[np.inf, 14.0])])
    rows, info = om.ctf_baseline_pairs(more)
    assert info == {"subjects": 2, "censored": 1, "subjects_single": 2}
    assert rows["log_upper"].tolist()[2] == np.inf


# ---------------------------------------------------------------------------------------------
# Agreement
# ---------------------------------------------------------------------------------------------
def test_spearman_interval_covers_the_population_value():
    rho, n, reps = 0.5, 60, 400
    target = 6.0 / math.pi * math.asin(rho / 2.0)  # Spearman of a bivariate normal
    rng = np.random.default_rng(6)
    cover, estimates = 0, []
    for _ in range(reps):
        x = rng.multivariate_normal([0, 0], [[1, rho], [rho, 1]], n)
        res = om.spearman_interval(x[:, 0], x[:, 1])
        cover += res["lower"] < target < res["upper"]
        estimates.append(res["estimate"])
    assert abs(np.mean(estimates) - target) < 0.02
    assert 0.92 < cover / reps < 0.98


def _mini_trial() -> tuple[pd.DataFrame, pd.DataFrame]:
    ids = [f"s{i}" for i in range(8)]
    runin = np.array([4, 8, 6, 12, 10, 3, 7, 9])
    periods = pd.DataFrame(
        {
            "trial_id": "t",
            "subject_id": ids,
            "arm": ["placebo", "drug"] * 4,
            "period": "treatment",
            "count": [20, 12, 30, 6, 25, 18, 14, 20],
            "exposure_days": [56, 56, 56, 28, 56, 56, 56, 56],
            "runin_count": runin,
            "runin_days": 14,
        }
    )
    base_ctf = 10.0 + runin  # monotone in the run-in rate
    emg_rows = []
    for i, s in enumerate(ids):
        b1, b2 = base_ctf[i] - 1, base_ctf[i] + 1
        end = base_ctf[i] * (1.1 + 0.01 * i)
        grades = (i % 3, (i + 1) % 4, (2 * i) % 5)
        for visit, hz, grade in zip(
            ("baseline_1", "baseline_2", "end"), (b1, b2, end), grades, strict=True
        ):
            emg_rows.append((s, visit, hz, grade))
    emg = pd.DataFrame(emg_rows, columns=["subject_id", "visit", "ctf_hz", "afterdischarge_grade"])
    emg["trial_id"] = "t"
    emg["arm"] = emg["subject_id"].map(dict(zip(ids, periods["arm"], strict=True)))
    emg["ctf_censored"] = False
    gm = (
        emg[emg["visit"] != "end"]
        .groupby("subject_id")["ctf_hz"]
        .apply(lambda v: math.exp(np.log(v).mean()))
    )
    emg["ctf_baseline_hz"] = emg["subject_id"].map(gm)
    emg["ctf_baseline_censored"] = False
    return periods, emg


def test_agreement_pairs_the_right_subjects():
    periods, emg = _mini_trial()
    out = om.agreement(periods, emg).set_index("property")
    assert out.loc["spearman_runin", "estimate"] == pytest.approx(1.0)
    assert out.loc["spearman_runin", "n"] == 8
    # changes by hand
    change_rate = 7 * periods["count"] / periods["exposure_days"] - 7 * periods["runin_count"] / 14
    gm = emg.drop_duplicates("subject_id").set_index("subject_id")["ctf_baseline_hz"]
    end = emg[emg["visit"] == "end"].set_index("subject_id")["ctf_hz"]
    change_ctf = np.log(end) - np.log(gm)
    expected = stats.spearmanr(change_rate, change_ctf.loc[periods["subject_id"]]).statistic
    assert out.loc["spearman_change", "estimate"] == pytest.approx(expected)
    # a censored baseline ranks highest; a censored end visit leaves that change out
    censored = emg.copy()
    first = censored["subject_id"] == "s0"
    censored.loc[first, "ctf_baseline_censored"] = True
    censored.loc[first & (censored["visit"] == "end"), "ctf_censored"] = True
    out = om.agreement(periods, censored).set_index("property")
    assert out.loc["spearman_change", "n"] == 7
    assert "censored" in out.loc["spearman_change", "note"]
    x = 7 * periods["runin_count"] / 14
    y = np.where(periods["subject_id"] == "s0", np.inf, 10.0 + periods["runin_count"])
    assert out.loc["spearman_runin", "estimate"] == pytest.approx(stats.spearmanr(x, y).statistic)


# ---------------------------------------------------------------------------------------------
# Responsiveness and sample size against closed forms
# ---------------------------------------------------------------------------------------------
def test_srm_and_its_interval():
    rng = np.random.default_rng(7)
    x = rng.normal(1.0, 2.0, 40)
    res = om.srm_interval(x)
    assert res["estimate"] == pytest.approx(x.mean() / x.std(ddof=1))
    # large-sample SE of the SRM: sqrt(1/n + srm^2 / (2n)); exact and approximate agree roughly
    se = math.sqrt(1 / 40 + res["estimate"] ** 2 / 80)
    assert res["upper"] - res["lower"] == pytest.approx(2 * Z95 * se, rel=0.1)
    mirrored = om.srm_interval(-x)
    assert mirrored["lower"] == pytest.approx(-res["upper"])
    # coverage of the true mean / SD under normality
    cover = sum(
        (r := om.srm_interval(rng.normal(0.5, 1.0, 25)))["lower"] < 0.5 < r["upper"]
        for _ in range(300)
    )
    assert 0.91 < cover / 300 < 0.985
    # a large SRM stays solvable (scipy's noncentral t is NaN in its far tails)
    big = om.srm_interval(rng.normal(-3.0, 1.0, 40))
    assert big["lower"] < big["estimate"] < big["upper"] < 0


def test_responsiveness_by_hand():
    periods, emg = _mini_trial()
    diary = pd.DataFrame(
        {
            "trial_id": "t",
            "subject_id": np.repeat(periods["subject_id"], 4),
            "period": ["run-in", "run-in", "treatment", "treatment"] * 8,
            "intensity": np.random.default_rng(9).integers(0, 11, 32).astype(float),
        }
    )
    out = om.responsiveness(periods, emg, diary).set_index(["endpoint", "arm"])
    rate = 7 * periods["count"] / periods["exposure_days"] - 7 * periods["runin_count"] / 14
    for arm in ("drug", "placebo"):
        chg = rate[periods["arm"] == arm]
        assert out.loc[("cramp_frequency", arm), "estimate"] == pytest.approx(
            chg.mean() / chg.std(ddof=1)
        )
        sel = diary["subject_id"].isin(periods.loc[periods["arm"] == arm, "subject_id"])
        means = diary[sel].groupby(["subject_id", "period"])["intensity"].mean().unstack()
        chg = means["treatment"] - means["run-in"]
        assert out.loc[("intensity", arm), "estimate"] == pytest.approx(
            chg.mean() / chg.std(ddof=1)
        )
        grades = emg[emg["arm"] == arm].pivot(
            index="subject_id", columns="visit", values="afterdischarge_grade"
        )
        chg = grades["end"] - (grades["baseline_1"] + grades["baseline_2"]) / 2
        assert out.loc[("afterdischarge_grade", arm), "estimate"] == pytest.approx(
            chg.mean() / chg.std(ddof=1)
        )


def test_sample_size_against_closed_forms():
    from statsmodels.stats.power import NormalIndPower

    design = {
        "type": "parallel",
        "n_per_arm": 40,
        "arms": {"placebo": {}, "mexiletine": {}},
        "emg": {"baseline_visits": 2},
    }
    trial = simulate(design, 8)
    d = derive_all(trial.tables, CFG)
    out = om.sample_size_per_arm(d["periods"], d["emg"], d["diary"]).set_index("endpoint")
    # frequency: Zhu & Lakkis (2014) written out here
    row = out.loc["cramp_frequency"]
    p = d["periods"]
    ctrl = p[(p["arm"] == "placebo") & (p["exposure_days"] > 0)]
    assert row["rate"] == pytest.approx(ctrl["count"].sum() / ctrl["exposure_days"].sum())
    assert row["exposure"] == pytest.approx(p.loc[p["exposure_days"] > 0, "exposure_days"].mean())
    mu0 = row["rate"] * row["exposure"]
    v = (1 / mu0 + 1 / row["k"]) + (1 / (row["effect"] * mu0) + 1 / row["k"])
    n = math.ceil((Z95 + stats.norm.ppf(0.8)) ** 2 * v / math.log(row["effect"]) ** 2)
    assert row["estimate"] == n
    assert row["lower"] <= n
    # continuous endpoints: standardised difference by hand, n from statsmodels' solver
    ctf = d["emg"]
    wide = ctf.pivot(index="subject_id", columns="visit", values="ctf_hz").astype(float)
    cens = ctf.groupby("subject_id")["ctf_censored"].any()
    change = np.log(wide["end"]) - np.log(wide[["baseline_1", "baseline_2"]]).mean(axis=1)
    change = change[~cens.reindex(change.index).astype(bool)].dropna()
    arm = d["periods"].set_index("subject_id")["arm"].reindex(change.index)
    a, c = change[arm == "mexiletine"], change[arm == "placebo"]
    pooled = math.sqrt(((len(a) - 1) * a.var() + (len(c) - 1) * c.var()) / (len(a) + len(c) - 2))
    effect = (a.mean() - c.mean()) / pooled
    row = out.loc["ctf"]
    assert row["effect"] == pytest.approx(effect)
    solved = NormalIndPower().solve_power(effect_size=abs(effect), alpha=0.05, power=0.8)
    assert row["estimate"] == math.ceil(solved)
    assert row["n"] == len(a) + len(c)


# ---------------------------------------------------------------------------------------------
# The table
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def small_trial():
    design = {
        "type": "parallel",
        "trial_id": "t",
        "n_per_arm": 50,
        "arms": {"placebo": {}, "quinine": {}, "mexiletine": {}},
        "emg": {"baseline_visits": 2, "icc": 0.7},
    }
    return derive_all(simulate(design, 21).tables, CFG)


def test_table_columns_properties_and_determinism(small_trial):
    sampler = {"chains": 2, "draws": 300, "tune": 300, "cores": 2}
    one = om.outcome_measures_table(small_trial, seed=3, sampler_config=sampler)
    two = om.outcome_measures_table(small_trial, seed=3, sampler_config=sampler)
    pd.testing.assert_frame_equal(one, two)
    assert list(one.columns) == om.TABLE_COLUMNS
    assert not one.duplicated(["endpoint", "property"]).any()
    props = set(zip(one["endpoint"], one["property"], strict=True))
    for endpoint in ("cramp_frequency", "ctf"):
        assert {(endpoint, p) for p in PROPERTIES} <= props
    assert ("cramp_frequency_vs_ctf", "spearman_runin") in props
    assert ("cramp_frequency_vs_ctf", "spearman_change") in props
    for endpoint in ("cramp_frequency", "ctf", "afterdischarge_grade", "intensity"):
        for arm in ("placebo", "quinine", "mexiletine"):
            assert (endpoint, f"srm:{arm}") in props
        for arm in ("quinine", "mexiletine"):
            assert (endpoint, f"n_per_arm_for_power:{arm}") in props
    assert one["estimate"].notna().all()
    # another seed moves only the sampled rows
    other = om.outcome_measures_table(small_trial, seed=4, sampler_config=sampler)
    sampled = one["property"].isin(om.RELIABILITY_UNITS["ctf"]) & one["endpoint"].isin(
        ["cramp_frequency", "ctf"]
    )
    assert not np.allclose(one.loc[sampled, "estimate"], other.loc[sampled, "estimate"])
    pd.testing.assert_frame_equal(one[~sampled], other[~sampled])


def test_missing_data_give_note_rows_not_errors(small_trial):
    no_emg = {k: v for k, v in small_trial.items() if k not in ("emg", "diary")}
    weekly = small_trial["weekly"]
    no_emg["weekly"] = weekly[~((weekly["period"] == "run-in") & (weekly["week"] == -1))]
    table = om.outcome_measures_table(no_emg, seed=1, method="ml").set_index(
        ["endpoint", "property"]
    )
    assert np.isnan(table.loc[("cramp_frequency", "icc"), "estimate"])
    assert "two run-in weeks" in table.loc[("cramp_frequency", "icc"), "note"]
    assert "no derived `emg`" in table.loc[("ctf", "icc"), "note"]
    assert np.isnan(table.loc[("cramp_frequency_vs_ctf", "spearman_runin"), "estimate"])
    assert "no EMG" in table.loc[("afterdischarge_grade", "srm"), "note"]
    assert "intensity" in table.loc[("intensity", "n_per_arm_for_power"), "note"]
    # the frequency SRM needs only periods
    assert np.isfinite(table.loc[("cramp_frequency", "srm:quinine"), "estimate"])
    # a design without one treatment period per subject: no arm comparisons, still a table
    periods = small_trial["periods"]
    crossover = pd.concat([periods.assign(period="1"), periods.assign(period="2")])
    table = om.outcome_measures_table(
        {"weekly": weekly, "periods": crossover, "emg": small_trial["emg"]}, seed=1, method="ml"
    ).set_index(["endpoint", "property"])
    assert np.isfinite(table.loc[("cramp_frequency", "icc"), "estimate"])
    assert np.isfinite(table.loc[("ctf", "icc"), "estimate"])
    assert "parallel design" in table.loc[("cramp_frequency", "srm"), "note"]
    assert "parallel design" in table.loc[("cramp_frequency_vs_ctf", "spearman_change"), "note"]


# ---------------------------------------------------------------------------------------------
# Coverage (slow)
# ---------------------------------------------------------------------------------------------
# The Bayesian models' coverage is the calibration study's (cases frequency_reliability and
# ctf_reliability, crampstats.calibration.reliability); the ML twins' is checked here.
@pytest.mark.slow
def test_ml_twin_coverage_over_replicates():
    for icc, lam, k in ((0.4, 7.0, 4.0), (0.8, 7.0, 10.0)):
        truth = count_truth(icc, lam, k)
        rng = np.random.default_rng(int(icc * 100))
        hits = {p: 0 for p in PROPERTIES}
        reps = 150
        for _ in range(reps):
            summary = om.frequency_reliability_ml(
                simulate_runin(rng, 150, truth, RUNIN_WEEKS, P_SHORT_WEEK)
            ).summary
            for p in PROPERTIES:
                row = _row(summary, p)
                hits[p] += row["lower"] < truth[p] < row["upper"]
        for p, h in hits.items():
            assert 0.89 < h / reps < 0.99, f"icc {icc} {p}: coverage {h / reps:.3f}"


@pytest.mark.slow
def test_ctf_ml_coverage_over_replicates():
    reps = 60
    for icc in (0.4, 0.7):
        design = {
            "type": "parallel",
            "trial_id": "t",
            "n_per_arm": 50,
            "arms": {"placebo": {}, "quinine": {}, "mexiletine": {}},
            "emg": {"baseline_visits": 2, "icc": icc},
        }
        hits, estimates = {"icc": 0, "sem": 0}, []
        for rep in range(reps):
            trial = simulate(design, 1000 + rep)
            truth = trial.truth["trials"]["t"]["emg"]
            summary = om.ctf_reliability_ml(derive_all(trial.tables, CFG)["emg"]).summary
            for prop, value in (("icc", truth["icc"]), ("sem", truth["sigma_noise"])):
                row = _row(summary, prop)
                hits[prop] += row["lower"] < value < row["upper"]
            estimates.append(_row(summary, "icc")["estimate"])
        # P(at most 51 of 60 | 95 % coverage) = 0.004
        assert min(hits.values()) >= 52, hits
        # mean over replicates within 3 Monte Carlo SEs of the truth
        mc_se = np.std(estimates) / math.sqrt(reps)
        assert abs(np.mean(estimates) - icc) < 3 * mc_se
