"""crampstats against reference values from R, stored beside the R scripts that made them.

``tests/references/*.R`` fit the models' frequentist counterparts in R (MASS, glmmTMB, ordinal,
survival) on the bundled example trial - its model frames exported by :func:`export_frames`
into ``tests/references/data/`` - and on public data sets that the R packages ship, and write
``tests/references/<script>.csv`` (committed: the stored outside reference). Each test here
compares crampstats with the stored CSV, whether or not R is installed; when ``Rscript`` is on
the PATH, the script is rerun into a temporary folder and must reproduce the stored CSV (CI
installs R, README "Tests"). Tolerances are stated once, below and in
``tests/references/README.md``.
"""

from __future__ import annotations

import io
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers import EXAMPLE, EXAMPLE_ARMS, SAMPLER, draws_of, validate_and_derive

from crampstats.engine import diagnose
from crampstats.models.afterdischarge import (
    AfterdischargeModel,
    afterdischarge_frame,
    afterdischarge_twin,
    ordinal_loglik,
)
from crampstats.models.ctf import CTFModel, ctf_frame, ctf_twin
from crampstats.models.nb_glmm import NBGLMM, marginal_log_likelihood
from crampstats.models.nb_totals import NBTotals, nb_glm_twin
from crampstats.models.zero_inflated import ZINB, zinb_twin
from crampstats.numerics import nb_logpmf

HERE = Path(__file__).resolve().parent
DATA = HERE / "data"
RSCRIPT = shutil.which("Rscript")
SCRIPTS = ("nb_totals", "nb_glmm", "zinb", "afterdischarge", "ctf")

# Tolerances, stated once (tests/references/README.md explains them).
#: Maximum likelihood against maximum likelihood (statsmodels or crampstats' own code against R):
#: both maximise the same likelihood, so estimates differ only by where each optimiser stops
#: (gradient tolerances ~1e-6 put that below 1e-3 SE) and standard errors by numerical against
#: analytic curvature (second differences: relative error ~1e-4); bounds 100x those.
ML_ESTIMATE_TOL = 0.01  # x the reference's SE
ML_SE_RTOL = 0.01
#: A log-likelihood evaluated by crampstats at R's ML estimate: the same density summed in
#: floating point (R writes 15 significant digits), or adaptive quadrature (25 nodes, ~1e-10).
LOGLIK_RTOL = 1e-8
#: A rerun of an R script against the stored CSV: the same code; R and package versions may move
#: optimisers' stopping points by ~1e-7 relative.
RERUN_RTOL, RERUN_ATOL = 1e-5, 1e-8
#: A Bayesian fit under its weak priors against R's ML fit combined with the same (normal)
#: priors under a normal approximation of the likelihood (:func:`gaussian_posterior`). Left
#: over: Monte Carlo error of the posterior median, at most 1.2533 / sqrt(400) = 0.063
#: posterior SD under the diagnostics gate (bulk ESS >= 400, asserted), i.e. 0.22 SE at
#: 3.5 MCSE (the 46 checks together alarm falsely at most ~2 % of the time), plus the likelihood's
#: departure from normality (median - mean ~ skewness / 6 ~ 0.03 SE for these samples) ->
#: 0.25 SE. The posterior SD: relative Monte Carlo error sqrt(1 / (2 ESS)) = 0.035 at ESS 400,
#: 3.5x = 0.12, plus curvature of the likelihood beyond the quadratic (O(1/n), ~0.03) -> 0.15.
BAYES_LOCATION_TOL = 0.25  # x the reference's SE
BAYES_SCALE_RTOL = 0.15


# ---------------------------------------------------------------------------------------------
# The example trial's model frames, as R reads them
# ---------------------------------------------------------------------------------------------
def export_frames(derived: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """Each model's prepared design of the example trial as a flat table for R.

    The rows, responses, offsets and centred covariates are exactly what the Bayesian models
    and their twins fit (their ``prepare``), so R fits the same data, not a re-derivation.
    """
    cfg = {"arms": EXAMPLE_ARMS}
    p = NBTotals(cfg).prepare(derived["periods"])
    arms = np.array(EXAMPLE_ARMS)
    subjects = p.subject_data["subject"].values
    totals = pd.DataFrame(
        {
            "subject": subjects,
            "arm": arms[p.data["arm_idx"]],
            "y": p.data["y"],
            "log_exposure": p.data["log_exposure"],
            "x": p.data["x_baseline"],
        }
    )
    g = NBGLMM(cfg).prepare(derived["weekly"])
    rows = g.extra
    sub = g.subject_data["subject"].values
    weekly = pd.DataFrame(
        {
            "subject": sub[rows["subject_idx"]],
            "arm": arms[g.data["arm_idx"]][rows["subject_idx"]],
            "y": rows["y"],
            "log_exposure": rows["log_exposure"],
            "x": g.data["x_baseline"][rows["subject_idx"]],
            "t": rows["t"],
        }
    )
    z = ZINB({**cfg, "trend": False}).prepare(derived["weekly"])
    zinb_totals = pd.DataFrame(
        {
            "subject": z.subject_data["subject"].values,
            "arm": arms[z.data["arm_idx"]],
            "y": z.data["y_subject"],
            "log_exposure": np.log(z.data["exposure_week"].sum(axis=1)),
            "x": z.data["x_baseline"],
        }
    )
    a = AfterdischargeModel(cfg).prepare(afterdischarge_frame(derived))
    grades = pd.DataFrame(
        {
            "subject": a.subject_data["subject"].values,
            "arm": arms[a.data["arm_idx"]],
            "grade": a.data["grade"],
            "x": a.data["x_baseline"],
        }
    )
    c = CTFModel(cfg).prepare(ctf_frame(derived))
    sd = c.subject_data
    ctf = pd.DataFrame(
        {
            "subject": sd["subject"].values,
            "arm": arms[c.data["arm_idx"]],
            "lower": np.exp(sd["log_lower"].values),  # 0 at the first step
            "upper": np.exp(sd["log_upper"].values),  # inf when right-censored
            "x": sd["x_baseline"].values,
            "d": sd["baseline_censored"].values,
        }
    )
    return {
        "example_totals": totals,
        "example_weekly": weekly,
        "example_zinb_totals": zinb_totals,
        "example_grades": grades,
        "example_ctf": ctf,
    }


def frame_csv(frame: pd.DataFrame) -> str:
    """The CSV text R reads: every float to 17 significant digits (exact round trip)."""
    return frame.to_csv(index=False, float_format="%.17g", lineterminator="\n")


@pytest.fixture(scope="module")
def example_frames(example_derived) -> dict[str, pd.DataFrame]:
    return export_frames(example_derived("example"))


def reference(script: str, dataset: str) -> pd.DataFrame:
    """Rows of the stored ``<script>.csv`` for ``dataset``, indexed by term."""
    table = pd.read_csv(HERE / f"{script}.csv", keep_default_na=False, na_values=[""])
    return table.loc[table["dataset"] == dataset].set_index("term")


def values(ref: pd.DataFrame, name: str) -> np.ndarray:
    """The indexed rows ``name[1]``, ``name[2]``, ... of a reference, in order."""
    rows = ref.loc[ref.index.str.match(rf"^{name}\[\d+\]$"), "estimate"]
    order = rows.index.str.extract(r"\[(\d+)\]", expand=False).astype(int)
    return rows.to_numpy(dtype=float)[np.argsort(order)]


def check_ml(label: str, got: float, ref: pd.DataFrame, term: str, se: float | None = None):
    """An ML estimate (and its SE) against R's, within the stated tolerances."""
    est, ref_se = float(ref.loc[term, "estimate"]), float(ref.loc[term, "se"])
    assert abs(got - est) < ML_ESTIMATE_TOL * ref_se, (
        f"{label} {term}: {got:.6g} vs R {est:.6g} ({(got - est) / ref_se:.3g} SE)"
    )
    if se is not None:
        assert se == pytest.approx(ref_se, rel=ML_SE_RTOL), f"{label} {term} SE: {se} vs {ref_se}"


# ---------------------------------------------------------------------------------------------
# The stored references: inputs current, scripts reproducible
# ---------------------------------------------------------------------------------------------
def test_exported_frames_are_current(example_frames):
    """The frames R reads are what the models read from data/example today."""
    for name, frame in example_frames.items():
        stored = pd.read_csv(DATA / f"{name}.csv")
        fresh = pd.read_csv(io.StringIO(frame_csv(frame)))
        pd.testing.assert_frame_equal(stored, fresh, check_exact=False, rtol=1e-15)


@pytest.mark.parametrize("script", SCRIPTS)
def test_r_script_reproduces_the_stored_csv(script, tmp_path):
    if RSCRIPT is None:
        pytest.skip("Rscript not found: the stored CSV is used without rerunning its R script")
    proc = subprocess.run(
        [RSCRIPT, str(HERE / f"{script}.R"), str(tmp_path)], capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    stored = pd.read_csv(HERE / f"{script}.csv", keep_default_na=False, na_values=[""])
    fresh = pd.read_csv(tmp_path / f"{script}.csv", keep_default_na=False, na_values=[""])
    pd.testing.assert_frame_equal(
        stored, fresh, check_exact=False, rtol=RERUN_RTOL, atol=RERUN_ATOL
    )


# ---------------------------------------------------------------------------------------------
# Maximum likelihood (twins) and likelihoods at R's estimates
# ---------------------------------------------------------------------------------------------
def test_nb_totals_twin_matches_glm_nb(example_derived):
    ref = reference("nb_totals", "example")
    twin = nb_glm_twin(example_derived("example")["periods"], arms=EXAMPLE_ARMS)
    assert list(twin["arm"]) == EXAMPLE_ARMS[1:]
    for row in twin.itertuples():
        check_ml("nb_glm_twin", row.log_rr, ref, f"log_rr[{row.arm}]", row.se)
    check_ml("nb_glm_twin", twin.attrs["b"], ref, "x")
    check_ml("nb_glm_twin", twin.attrs["k"], ref, "k")


def test_nb_likelihood_at_the_glm_nb_estimate_of_quine():
    """MASS::quine (146 children, days absent): crampstats' NB2 log pmf at R's fitted means and
    size sums to R's maximised log-likelihood."""
    ref = reference("nb_totals", "quine")
    y, mu = values(ref, "y"), values(ref, "mu")
    assert len(y) == len(mu) == 146
    total = float(np.sum(nb_logpmf(y, mu, float(ref.loc["k", "estimate"]))))
    assert total == pytest.approx(float(ref.loc["logLik", "estimate"]), rel=LOGLIK_RTOL)


@pytest.mark.parametrize("dataset", ["example", "salamanders"])
def test_nb_glmm_marginal_likelihood_at_the_glmmtmb_estimate(dataset, example_frames):
    """The model's LOO likelihood (u integrated out by adaptive Gauss-Hermite quadrature) at
    glmmTMB's estimate equals R's integrate() to 1e-8; glmmTMB's Laplace value differs."""
    ref = reference("nb_glmm", dataset)
    eta = values(ref, "eta")
    if dataset == "example":
        rows = example_frames["example_weekly"]
        y, group = rows["y"].to_numpy(float), pd.factorize(rows["subject"])[0]
    else:
        y, group = values(ref, "y"), values(ref, "site").astype(int) - 1
    order = np.argsort(group, kind="stable")
    k = np.exp(float(ref.loc["log_k", "estimate"]))
    sigma = np.exp(float(ref.loc["log_sigma", "estimate"]))
    loglik = marginal_log_likelihood(
        eta[order][None, :], y[order], group[order], group.max() + 1, np.array([k]),
        np.array([sigma]),
    )  # fmt: skip
    exact = float(ref.loc["logLik_exact", "estimate"])
    assert float(loglik.sum()) == pytest.approx(exact, rel=LOGLIK_RTOL)
    assert abs(float(ref.loc["logLik_laplace", "estimate"]) - exact) > 1e-3  # not the Laplace


def salamanders_weekly() -> pd.DataFrame:
    """glmmTMB::Salamanders (stored in zinb.csv) as weekly rows: one week, one day each."""
    ref = reference("zinb", "salamanders")
    y = values(ref, "y").astype(int)
    return pd.DataFrame(
        {
            "subject_id": [f"s{i:03d}" for i in range(len(y))],
            "arm": np.where(values(ref, "mined_no") == 1.0, "no", "yes"),
            "period": "treatment",
            "week": 1,
            "count": y,
            "exposure_days": 1,
            "log_baseline_rate": values(ref, "cover"),
        }
    )


def test_zinb_twin_matches_glmmtmb_ziformula(example_derived):
    ref = reference("zinb", "example")  # no zero excess: the twin must still find the NB fit
    twin = zinb_twin(example_derived("example")["weekly"], arms=EXAMPLE_ARMS)
    assert list(twin["arm"]) == EXAMPLE_ARMS[1:]
    for row in twin.itertuples():
        check_ml("zinb_twin example", row.log_rr, ref, f"log_rr[{row.arm}]", row.se)
    ref = reference("zinb", "salamanders")
    twin = zinb_twin(salamanders_weekly(), control_arm="yes", arms=["yes", "no"])
    assert twin.attrs["converged"]
    row = twin.iloc[0]
    check_ml("zinb_twin salamanders", row["log_rr"], ref, "log_rr[no]", row["se"])
    check_ml("zinb_twin salamanders", twin.attrs["b"], ref, "cover")
    logit_pi = float(np.log(twin.attrs["pi"] / (1.0 - twin.attrs["pi"])))
    check_ml("zinb_twin salamanders", logit_pi, ref, "logit_pi")
    check_ml("zinb_twin salamanders", float(np.log(twin.attrs["phi"])), ref, "log_k")


def test_afterdischarge_twin_and_likelihood_match_clm(example_derived):
    ref = reference("afterdischarge", "example")
    frame = afterdischarge_frame(example_derived("example"))
    twin = afterdischarge_twin(frame, arms=EXAMPLE_ARMS)
    assert list(twin["arm"]) == EXAMPLE_ARMS[1:]
    for arm, beta, se in zip(twin["arm"], twin.attrs["beta"], twin.attrs["se"], strict=True):
        check_ml("afterdischarge_twin", beta, ref, f"beta[{arm}]", se)
    check_ml("afterdischarge_twin", twin.attrs["b"], ref, "x")
    # crampstats' ordinal log-likelihood at clm's estimate is clm's maximum
    grades = pd.read_csv(DATA / "example_grades.csv")
    beta = grades["arm"].map(
        {"placebo": 0.0, **{a: ref.loc[f"beta[{a}]", "estimate"] for a in EXAMPLE_ARMS[1:]}}
    )
    eta = beta.to_numpy(float) + ref.loc["x", "estimate"] * grades["x"].to_numpy()
    cuts = ref.loc[[f"cutpoint[{j}|{j + 1}]" for j in range(4)], "estimate"].to_numpy(float)
    total = float(ordinal_loglik(grades["grade"].to_numpy(), eta, cuts).sum())
    assert total == pytest.approx(float(ref.loc["logLik", "estimate"]), rel=LOGLIK_RTOL)


def test_ordinal_likelihood_at_the_clm_estimate_of_wine():
    """ordinal::wine (72 ratings 1-5 ~ temperature + contact): crampstats' cumulative-logit
    log-likelihood at clm's estimate equals clm's maximum."""
    ref = reference("afterdischarge", "wine")
    grade, eta = values(ref, "grade").astype(int), values(ref, "eta")
    cuts = ref.loc[["1|2", "2|3", "3|4", "4|5"], "estimate"].to_numpy(float)
    total = float(ordinal_loglik(grade, eta, cuts).sum())
    assert len(grade) == 72
    assert total == pytest.approx(float(ref.loc["logLik", "estimate"]), rel=LOGLIK_RTOL)


def lung_ctf_frame() -> pd.DataFrame:
    """survival::lung in 30-day steps (stored in ctf.csv) as a ctf frame: arm = sex."""
    ref = reference("ctf", "lung")
    lower = values(ref, "lower")
    return pd.DataFrame(
        {
            "subject_id": [f"l{i:03d}" for i in range(len(lower))],
            "arm": np.where(values(ref, "female") == 1.0, "female", "male"),
            "ctf_lower": lower,
            "ctf_upper": values(ref, "upper"),
            "ctf_baseline_hz": values(ref, "age"),  # the model's baseline term is its log
            "ctf_baseline_censored": False,
        }
    )


def test_ctf_twin_matches_interval_censored_survreg(example_derived):
    for dataset, frame, cfg in [
        ("example", ctf_frame(example_derived("example")), {"arms": EXAMPLE_ARMS}),
        ("lung", lung_ctf_frame(), {"arms": ["male", "female"], "control_arm": "male"}),
    ]:
        ref = reference("ctf", dataset)
        twin = ctf_twin(frame, **cfg)
        assert twin.attrs["converged"] and list(twin["arm"]) == cfg["arms"][1:]
        for arm, est, se in zip(
            twin["arm"], twin.attrs["log_ratio"], twin.attrs["se"], strict=True
        ):
            check_ml(f"ctf_twin {dataset}", est, ref, f"log_ratio[{arm}]", se)
        check_ml(f"ctf_twin {dataset}", twin.attrs["b"], ref, "x")
        check_ml(f"ctf_twin {dataset}", float(np.log(twin.attrs["sigma"])), ref, "log_sigma")


# ---------------------------------------------------------------------------------------------
# Bayesian fits under weak priors against maximum likelihood (slow: MCMC)
# ---------------------------------------------------------------------------------------------
def gaussian_posterior(
    ref: pd.DataFrame, terms: list[str], prior_mu: np.ndarray, prior_sd: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """R's estimate and covariance of ``terms`` (a normal likelihood) times independent normal
    priors: the posterior means and SDs a sampler should find."""
    theta = ref.loc[terms, "estimate"].to_numpy(float)
    cov = np.array([[ref.loc[f"cov[{a},{b}]", "estimate"] for b in terms] for a in terms])
    lik_prec = np.linalg.inv(cov)
    post_cov = np.linalg.inv(lik_prec + np.diag(np.asarray(prior_sd, float) ** -2.0))
    mean = post_cov @ (lik_prec @ theta + np.asarray(prior_mu, float) / np.square(prior_sd))
    return mean, np.sqrt(np.diag(post_cov))


def check_bayes(label, idata, ref, block, compared):
    """The posterior of each compared parameter against the Gaussian posterior from R's fit.

    ``block``: R term -> (posterior variable, selection, prior mean, prior SD), every term of
    R's coefficient block (the priors of all of them shape the posterior); ``compared``: the
    terms checked.
    """
    # the gate on the compared variables: ESS >= 400 is the premise of the tolerances
    diag = diagnose(idata, var_names=sorted({block[t][0] for t in compared}))
    assert diag["status"] == "ok", diag
    terms = list(block)
    mean, sd = gaussian_posterior(
        ref, terms, np.array([block[t][2] for t in terms]), np.array([block[t][3] for t in terms])
    )
    rows = []
    for term in compared:
        i = terms.index(term)
        var, sel = block[term][:2]
        draws = draws_of(idata, var, **sel)
        se = float(ref.loc[term, "se"])
        rows.append((term, (np.median(draws) - mean[i]) / se, draws.std() / sd[i] - 1.0))
    table = pd.DataFrame(rows, columns=["term", "median_minus_ref_in_se", "sd_ratio_minus_1"])
    text = f"{label}\n{table.to_string()}"
    print(text)  # shown with -s, and on failure
    assert (table["median_minus_ref_in_se"].abs() < BAYES_LOCATION_TOL).all(), text
    assert (table["sd_ratio_minus_1"].abs() < BAYES_SCALE_RTOL).all(), text


def count_block(cfg, arms, intercept="(Intercept)", slope="x", effect="log_rr", effect_sd=None):
    """R term -> posterior variable and prior of the count models' shared terms."""
    effect_sd = cfg[f"prior_{effect}_sd"] if effect_sd is None else effect_sd
    block = {intercept: ("alpha", {}, cfg["prior_alpha_mu"], cfg["prior_alpha_sd"])}
    block.update({f"{effect}[{a}]": (effect, {"arm": a}, 0.0, effect_sd) for a in arms})
    block[slope] = ("b", {}, cfg["prior_b_mu"], cfg["prior_b_sd"])
    return block


@pytest.mark.slow
def test_nb_totals_posterior_matches_glm_nb(example_derived):
    model = NBTotals({"arms": EXAMPLE_ARMS})
    idata = model.fit(example_derived("example")["periods"], seed=301, **SAMPLER)
    block = count_block(model.model_config, EXAMPLE_ARMS[1:])
    check_bayes("nb_totals", idata, reference("nb_totals", "example"), block,
                [*list(block)[1:]])  # fmt: skip


@pytest.mark.slow
def test_nb_glmm_posterior_matches_glmmtmb(example_derived):
    model = NBGLMM({"arms": EXAMPLE_ARMS})
    idata = model.fit(example_derived("example")["weekly"], seed=302, **SAMPLER)
    cfg = model.model_config
    block = count_block(cfg, EXAMPLE_ARMS[1:])
    block["t"] = ("trend", {}, 0.0, cfg["prior_trend_sd"])
    check_bayes("nb_glmm", idata, reference("nb_glmm", "example"), block, list(block)[1:])


@pytest.mark.slow
def test_zinb_posterior_matches_glmmtmb_ziformula():
    """Salamanders as one-week subjects: the count part and the zero inflation (its prior,
    Normal(-3, 1.5) on the logit, is part of the Gaussian combination)."""
    # the zero component is weakly identified (SE of logit pi 1.4): 1000 draws a chain (500 left
    # R-hat 1.02) and smaller steps (at the default target 0.8, one divergence)
    model = ZINB(
        {"arms": ["yes", "no"], "control_arm": "yes", "trend": False}, {"target_accept": 0.95}
    )
    idata = model.fit(salamanders_weekly(), seed=303, **{**SAMPLER, "draws": 1000, "tune": 1000})
    cfg = model.model_config
    block = count_block(cfg, ["no"], slope="cover")
    block["logit_pi"] = ("logit_pi", {}, cfg["prior_logit_pi_mu"], cfg["prior_logit_pi_sd"])
    check_bayes("zinb", idata, reference("zinb", "salamanders"), block, ["log_rr[no]", "cover"])


@pytest.mark.slow
def test_afterdischarge_posterior_matches_clm(example_derived):
    model = AfterdischargeModel({"arms": EXAMPLE_ARMS})
    idata = model.fit(afterdischarge_frame(example_derived("example")), seed=304, **SAMPLER)
    cfg = model.model_config
    block = {
        f"cutpoint[{j}|{j + 1}]": (
            "cutpoints", {"cutpoint": f"{j}|{j + 1}"}, model.cutpoint_prior_mu[j],
            cfg["prior_cutpoint_sd"],
        )
        for j in range(4)
    }  # fmt: skip
    block.update(
        {f"beta[{a}]": ("beta", {"arm": a}, 0.0, cfg["prior_beta_sd"]) for a in EXAMPLE_ARMS[1:]}
    )
    block["x"] = ("b", {}, cfg["prior_b_mu"], cfg["prior_b_sd"])
    compared = [t for t in block if not t.startswith("cutpoint")]
    check_bayes("afterdischarge", idata, reference("afterdischarge", "example"), block, compared)


@pytest.mark.slow
def test_ctf_posterior_matches_survreg(example_derived):
    model = CTFModel({"arms": EXAMPLE_ARMS})
    idata = model.fit(ctf_frame(example_derived("example")), seed=305, **SAMPLER)
    block = count_block(model.model_config, EXAMPLE_ARMS[1:], effect="log_ratio")
    check_bayes("ctf", idata, reference("ctf", "example"), block, list(block)[1:])


# regenerate the exported frames: PYTHONPATH=tests python tests/references/test_references.py
if __name__ == "__main__":
    derived, _ = validate_and_derive(EXAMPLE)
    DATA.mkdir(exist_ok=True)
    for name, frame in export_frames(derived).items():
        (DATA / f"{name}.csv").write_text(frame_csv(frame), encoding="utf-8")
