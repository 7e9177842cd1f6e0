"""Prior sensitivity table (``crampstats.compare.sensitivity``): power-scaling and refits.

Fast tests use posteriors with a known truth and no sampling: exact draws of a normal-normal
model, whose power-scaled posterior is again normal (closed form), and hand-built rate-ratio
posteriors for the refit rows. The slow tests fit the models to simulated trials (the project's
simulator): an AB/BA crossover, where the between-patient SD of the treatment effect rests on the
prior, and a 200-subject parallel trial, where the rate ratio rests on the data.
"""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from helpers import CORES, DATA, simulated_derived
from scipy import integrate, stats

from crampstats.catalogue import count_entry
from crampstats.compare import FitRecord, result_tables
from crampstats.compare.sensitivity import (
    PRIOR_SENSITIVITY_COLUMNS,
    conclusion,
    power_scaling_rows,
    prior_sensitivity_rows,
    refit_rows,
)
from crampstats.config import load_trial_config
from crampstats.fit import fit_model, make_model, model_frame
from crampstats.fit.prior_sensitivity import (
    DEFAULT_SETTINGS,
    add_prior_refits,
    prior_refits,
)
from crampstats.simulate.design import load_design

HEAD = {"trial_id": "t", "endpoint": "cramp_frequency", "model": "toy", "primary": True}
ALPHAS = (0.99, 1.01)


# ---------------------------------------------------------------------------------------------
# Closed form: power-scaling a normal prior on a normal mean
# ---------------------------------------------------------------------------------------------
def _normal_posterior(alpha: float, prior_sd: float, n: int, ybar: float) -> tuple[float, float]:
    """Posterior of theta under prior Normal(0, prior_sd)^alpha and n unit-variance observations."""
    precision = alpha / prior_sd**2 + n
    return n * ybar / precision, precision**-0.5


def _cjs(lo: float, hi: float, p, q) -> float:
    """Cumulative Jensen-Shannon distance of two CDFs over [lo, hi] (Kallioinen et al. 2024,
    eq. 8, as ArviZ integrates it: over the draws' range, normalised by the CDFs' integrals)."""

    def integral(fun) -> float:
        return integrate.quad(fun, lo, hi, limit=200)[0]

    def xlog2(a, b):
        return a * np.log2(a / b) if a > 0 else 0.0

    def mid(t):
        return 0.5 * (p(t) + q(t))

    ip, iq = integral(p), integral(q)
    pq = integral(lambda t: xlog2(p(t), mid(t))) + 0.5 / np.log(2) * (iq - ip)
    qp = integral(lambda t: xlog2(q(t), mid(t))) + 0.5 / np.log(2) * (ip - iq)
    return float(np.sqrt((max(pq, 0) + max(qp, 0)) / (ip + iq)))


def analytic_sensitivity(draws: np.ndarray, prior_sd: float, n: int, ybar: float) -> float:
    """Power-scaling prior sensitivity from the exact power-scaled posteriors.

    The same functional ArviZ estimates from weighted draws: the CJS distance between the
    posterior and the one under prior^alpha for alpha = 0.99 and 1.01, each divided by
    ``|log2 alpha|``, averaged; the larger of the distances of ``theta`` and ``-theta`` (CDF or
    survival function), integrated over the draws' range.
    """
    lo, hi = float(draws.min()), float(draws.max())
    mu, sd = _normal_posterior(1.0, prior_sd, n, ybar)
    grads = []
    for alpha in ALPHAS:
        base = stats.norm(mu, sd)
        scaled = stats.norm(*_normal_posterior(alpha, prior_sd, n, ybar))
        dist = max(
            _cjs(lo, hi, base.cdf, scaled.cdf),
            _cjs(lo, hi, base.sf, scaled.sf),
        )
        grads.append(dist / abs(np.log2(alpha)))
    return float(np.mean(grads))


def _toy_record(draws: np.ndarray, prior_sd: float, n: int, ybar: float) -> SimpleNamespace:
    """A fit record of the normal-normal toy with its log prior and log likelihood groups."""
    dims = ("chain", "draw")
    idata = xr.DataTree.from_dict(
        {
            "posterior": xr.Dataset({"theta": (dims, draws)}),
            "log_prior": xr.Dataset({"theta": (dims, stats.norm.logpdf(draws, 0, prior_sd))}),
            # ybar is sufficient: the likelihood of the n observations up to a constant
            "log_likelihood": xr.Dataset(
                {"y": (dims, stats.norm.logpdf(ybar, draws, 1 / np.sqrt(n)))}
            ),
        }
    )
    return SimpleNamespace(idata=idata, model=None, prepared=None)


@pytest.mark.parametrize(("prior_sd", "flagged"), [(0.2, True), (2.0, False)])
def test_power_scaling_matches_closed_form(prior_sd, flagged, rng):
    # 20 unit-variance observations, mean 0.5: the likelihood's SD is 0.22. A prior SD of 0.2 is
    # as informative as the data (sensitivity ~0.15, flagged); 2.0 is weak (~0.005).
    n, ybar, replicates = 20, 0.5, 10
    diffs, values = [], []
    for _ in range(replicates):
        mu, sd = _normal_posterior(1.0, prior_sd, n, ybar)
        draws = rng.normal(mu, sd, size=(4, 1000))
        (row,) = power_scaling_rows(_toy_record(draws, prior_sd, n, ybar), DEFAULT_SETTINGS, HEAD)
        exact = analytic_sensitivity(draws, prior_sd, n, ybar)
        diffs.append(row["psense_prior"] - exact)
        values.append(exact)
        assert row["flag"] is flagged
        assert row["parameter"] == "theta" and row["method"] == "power_scaling"
    diffs = np.asarray(diffs)
    # Monte Carlo error of the estimate from 4000 draws (ECDFs and importance weights), measured
    # over the independent replicates: their mean difference lies within 4 standard errors ...
    se = diffs.std(ddof=1) / np.sqrt(replicates)
    assert abs(diffs.mean()) < 4 * se + 1e-12, (diffs.mean(), se)
    # ... and each estimate within 5 of its Monte Carlo SDs, which is ~3 % of the value here
    assert np.all(np.abs(diffs) < 5 * diffs.std(ddof=1)), diffs
    assert np.all(np.abs(diffs) < 0.15 * np.mean(values)), (diffs, np.mean(values))


def test_power_scaling_reason_names_the_kind_of_sensitivity(rng):
    # prior and likelihood equally informative: both sensitivities above 0.05 -> conflict wording
    draws = rng.normal(*_normal_posterior(1.0, 0.2, 20, 0.5), size=(4, 1000))
    (row,) = power_scaling_rows(_toy_record(draws, 0.2, 20, 0.5), DEFAULT_SETTINGS, HEAD)
    assert row["psense_likelihood"] >= 0.05
    assert row["reason"].startswith("potential prior-data conflict")
    assert f"{row['psense_prior']:.3f}" in row["reason"]


# ---------------------------------------------------------------------------------------------
# Refit rows from hand-built posteriors
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("lower", "upper", "p", "expected"),
    [
        (0.6, 0.95, 0.99, {"interval": "below 1", "decision": "lower"}),
        (0.8, 1.1, 0.80, {"interval": "includes 1", "decision": "undecided"}),
        (1.05, 1.5, 0.01, {"interval": "above 1", "decision": "higher"}),
        (0.7, 1.01, 0.97, {"interval": "includes 1", "decision": "undecided"}),
    ],
)
def test_conclusion(lower, upper, p, expected):
    assert conclusion(lower, upper, p, 0.975) == expected


def _posterior(log_rr: np.ndarray, arms: list[str], attrs: dict | None = None) -> xr.Dataset:
    ds = xr.Dataset(
        {"log_rr": (("chain", "draw", "arm"), log_rr)},
        coords={"chain": np.arange(log_rr.shape[0]), "draw": np.arange(log_rr.shape[1]),
                "arm": arms},
    )  # fmt: skip
    ds.attrs = attrs or {}
    return ds


def _stats(shape: tuple[int, int]) -> xr.Dataset:
    return xr.Dataset({"diverging": (("chain", "draw"), np.zeros(shape, dtype=bool))})


def _hand_built_fit(rng) -> SimpleNamespace:
    """Main fit: quinine RR ~0.80 (interval below 1), magnesium ~1.0; two refits.

    Under ``sceptical`` quinine moves to ~0.90 with an interval across 1; under ``vague`` nothing
    moves. Draws are exact normals, 4 x 2000.
    """
    size = (4, 2000)

    def draws(centres, sd):
        return np.stack([rng.normal(np.log(c), sd, size) for c in centres], axis=-1)

    arms = ["quinine", "magnesium"]
    config = json.dumps({"prior_log_rr_sd": 1.0})
    main_attrs = {"crampstats_model_config": config}
    main = xr.DataTree.from_dict(
        {"posterior": _posterior(draws([0.8, 1.0], 0.08), arms, main_attrs),
         "sample_stats": _stats(size)}
    )  # fmt: skip
    refits = {
        name: xr.DataTree.from_dict(
            {
                "posterior": _posterior(
                    draws(centres, 0.07),
                    arms,
                    {"crampstats_prior_overrides": json.dumps({"prior_log_rr_sd": sd})},
                ),
                "sample_stats": _stats(size),
            }
        )
        for name, centres, sd in (("sceptical", [0.9, 1.0], 0.2245), ("vague", [0.8, 1.0], 10.0))
    }
    return SimpleNamespace(idata=add_prior_refits(main, refits), model=None, prepared=None)


def test_refit_rows_flag_a_changed_conclusion(rng):
    rec = _hand_built_fit(rng)
    config = {"trial_id": "t", "analysis": {"prior_sensitivity": {"enabled": True}}}
    # power-scaling needs a log prior; these hand-built fits have none, so ask for refits only
    rows = pd.DataFrame(refit_rows(rec, config, HEAD))
    assert list(rows["prior"]) == ["default"] * 2 + ["sceptical"] * 2 + ["vague"] * 2
    flagged = rows[rows["flag"]]
    assert list(zip(flagged["prior"], flagged["arm"], strict=True)) == [("sceptical", "quinine")]
    reason = flagged["reason"].iloc[0]
    assert "below 1 under the default prior but includes 1 under sceptical" in reason
    assert "P(RR < 1) above the decision probability under the default prior" in reason
    # the default rows are the main fit's posterior summary (P(RR < 1) of an exact normal)
    default = rows[(rows["prior"] == "default") & (rows["arm"] == "quinine")].iloc[0]
    exact = stats.norm.cdf(0, np.log(0.8), 0.08)
    # binomial Monte Carlo SE of a proportion from 8000 independent draws, 4 SEs
    assert abs(default["p_rr_below_1"] - exact) < 4 * np.sqrt(exact * (1 - exact) / 8000)
    assert json.loads(default["prior_settings"]) == {"prior_log_rr_sd": 1.0}
    assert json.loads(flagged["prior_settings"].iloc[0]) == {"prior_log_rr_sd": 0.2245}
    assert set(rows["status"]) == {"ok"}


def test_disabled_gives_an_empty_table_with_the_columns(rng):
    rec = _hand_built_fit(rng)
    config = {"analysis": {"prior_sensitivity": {"enabled": False}}}
    table = prior_sensitivity_rows({"nb_totals": rec}, config)
    assert table.empty and list(table.columns) == PRIOR_SENSITIVITY_COLUMNS


# ---------------------------------------------------------------------------------------------
# Slow: real fits of simulated trials
# ---------------------------------------------------------------------------------------------
def _config(design: str, trial_id: str) -> dict:
    config = load_trial_config(None)
    config.update(design=design, trial_id=trial_id, control_arm="placebo")
    return config


def _record(entry_id: str, derived: dict, config: dict, **fit) -> FitRecord:
    entry = count_entry(entry_id)
    model = make_model(entry, config)
    frame = model_frame(entry, derived, config)
    idata = fit_model(entry, derived, config, cores=CORES, **fit)
    return FitRecord(entry, model, idata, frame, model.prepare(frame))


@pytest.mark.slow
def test_crossover_flags_the_patient_effect_sd():
    # AB/BA, 20 patients, one period per treatment (the bundled example's design, ALS rates,
    # true between-patient SD 0.3): only the prior and the difference between the variances of
    # active and control periods inform sigma_d (models/crossover.py), so power-scaling its
    # prior moves its posterior; the mean log rate ratio rests on within-patient contrasts.
    design = {**load_design(DATA / "example_crossover" / "design.yaml"), "trial_id": "abba"}
    config = _config("crossover", "abba")
    _, derived = simulated_derived(design, 20261203)
    rec = _record("crossover", derived, config)
    table = prior_sensitivity_rows({"crossover": rec}, config)
    scaled = table[table["method"] == "power_scaling"].set_index("parameter")
    assert bool(scaled.loc["sigma_d", "flag"]), scaled
    assert scaled.loc["sigma_d", "psense_prior"] >= 0.05
    assert "sigma_d" in scaled.index and scaled.loc["sigma_d", "arm"] == "mexiletine"
    assert not bool(scaled.loc["log_rr", "flag"]), scaled.loc["log_rr"]
    # subject-level latents are not power-scaled or listed
    assert not scaled.index.str.contains("raw|^a$|^d$", regex=True).any()


@pytest.fixture(scope="module")
def parallel_200():
    design = {
        "type": "parallel",
        "trial_id": "p200",
        "n_per_arm": 100,
        "arms": {"placebo": {}, "quinine": {"rr": 0.75}},
    }
    config = _config("parallel", "p200")
    _, derived = simulated_derived(design, 20261203)
    return derived, config, _record("nb_totals", derived, config, primary=True)


@pytest.mark.slow
def test_parallel_rate_ratio_is_not_flagged(parallel_200):
    derived, config, rec = parallel_200
    tables = result_tables({"nb_totals": rec}, config, derived["weekly"])
    table = tables["prior_sensitivity"]
    scaled = table[(table["method"] == "power_scaling") & (table["parameter"] == "log_rr")]
    assert len(scaled) == 1 and not scaled["flag"].iloc[0], scaled
    assert scaled["psense_prior"].iloc[0] < 0.05
    # the configured prior's refit rows are the main fit's effects, number for number
    effects = tables["effects"].set_index("arm")
    refits = table[table["method"] == "refit"]
    default = refits[refits["prior"] == "default"].set_index("arm")
    for column in ("rr_median", "rr_lower", "rr_upper", "p_rr_below_1"):
        assert default.loc["quinine", column] == effects.loc["quinine", column]
    # 200 subjects: neither alternative prior changes the conclusion
    assert set(refits["prior"]) == {"default", "sceptical", "vague"}
    assert not refits["flag"].any(), refits[["prior", "reason"]]


@pytest.mark.slow
def test_refit_under_the_configured_prior_reproduces_the_main_fit(parallel_200):
    _, config, rec = parallel_200
    entry = count_entry("nb_totals")
    same = prior_refits(
        entry, rec.frame, config, make_model, priors={"configured": {}}, cores=CORES
    )["configured"]
    np.testing.assert_array_equal(
        same["posterior"]["log_rr"].values, rec.idata["posterior"]["log_rr"].values
    )
    # the stored sceptical refit is the same model with only the log RR prior changed
    stored = rec.idata["prior_refits"]["sceptical"]["posterior"]
    settings = json.loads(stored.attrs["crampstats_model_config"])
    assert settings["prior_log_rr_sd"] == pytest.approx(0.2245)
    assert stored.attrs["crampstats_seed"] == rec.idata["posterior"].attrs["crampstats_seed"]
