"""LOO that says when it cannot be trusted (``crampstats.compare.loo_check``).

Truth known in closed form: a normal mean with known variance and a flat prior, whose posterior
is ``N(ybar, 1/n)`` and whose exact leave-one-out predictive is ``N(ybar_-i, 1 + 1/(n-1))``;
one far outlier makes PSIS's Pareto k high. The moment-matched estimate (ArviZ) is checked
against the exact LOO; a well-behaved ``nb_totals`` fit is not flagged. The crossover model's
own moment matching is tested with its fits in ``tests/models/test_crossover.py``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from helpers import CORES
from scipy import stats

from crampstats.compare.loo_check import LOO_CHECK_COLUMNS, checked_loo, checked_loo_table
from crampstats.models import NBTotals
from crampstats.models.synthetic import simulate_parallel_trial
from crampstats.report.checks import loo_reliability


class NormalMean:
    """``y_i ~ N(mu, 1)``, flat prior on ``mu``: its moment-matching functions in closed form."""

    def __init__(self, y: np.ndarray) -> None:
        self.y = y

    def moment_match_functions(self, idata, prepared):
        upars = idata["posterior"]["mu"].expand_dims(upar=["mu"], axis=-1)

        def log_lik(u):
            return stats.norm.logpdf(self.y, u.transpose("chain", "draw", "upar").values, 1.0)

        def log_prob(u):
            return xr.DataArray(log_lik(u).sum(-1), dims=("chain", "draw"))

        def log_lik_i(u, i):
            return xr.DataArray(log_lik(u)[..., i], dims=("chain", "draw"))

        return log_prob, log_lik_i, upars


def _normal_fit(y: np.ndarray, rng: np.random.Generator, draws: int = 1000) -> xr.DataTree:
    """Exact posterior draws (4 chains) and the pointwise log-likelihood (dim ``subject``)."""
    mu = rng.normal(y.mean(), 1.0 / np.sqrt(len(y)), size=(4, draws))
    loglik = stats.norm.logpdf(y, mu[..., None], 1.0)
    return xr.DataTree.from_dict(
        {
            "posterior": xr.Dataset({"mu": (("chain", "draw"), mu)}),
            "log_likelihood": xr.Dataset({"y": (("chain", "draw", "subject"), loglik)}),
        }
    )


def _exact_elpd(y: np.ndarray) -> float:
    n = len(y)
    loo_mean = (y.sum() - y) / (n - 1)
    return float(stats.norm.logpdf(y, loo_mean, np.sqrt(1.0 + 1.0 / (n - 1))).sum())


def _outlier_data(rng: np.random.Generator) -> np.ndarray:
    # 9 standard normal values and one at 14: leaving it out moves mu by ~1.4, i.e. ~4.5
    # posterior SDs, far beyond what importance sampling from the full posterior can reach
    return np.append(rng.normal(size=9), 14.0)


def test_influential_point_is_flagged_without_a_remedy(rng):
    y = _outlier_data(rng)
    table = checked_loo_table({"normal": (_normal_fit(y, rng), None, None)})
    assert list(table.columns) == LOO_CHECK_COLUMNS
    row = table.iloc[0]
    assert row["method"] == "psis" and not row["reliable"]
    assert row["n_high_k"] >= 1 and row["max_k"] > 0.7 and row["good_k"] == pytest.approx(0.7)
    assert row["n_high_k"] == row["n_pareto_k_high"] and row["max_k"] == row["pareto_k_max"]
    assert f"for {row['n_high_k']} of 10 subjects (max {row['max_k']:.2f})" in row["note"]
    assert "unreliable" in row["note"]


def test_well_behaved_normal_case_is_reliable_and_exact(rng):
    # no outlier: PSIS alone is reliable; its ELPD matches the exact LOO within 4 Monte Carlo
    # SEs (the SE of a sum of n = 30 self-normalised importance-sampling estimates, each with
    # the relative variance of the LOO predictive density under the posterior, ~1 / n_eff_i)
    y = rng.normal(size=30)
    idata = _normal_fit(y, rng)
    check = checked_loo(idata)
    assert check.method == "psis" and (check.k < 0.7).all()
    ll = idata["log_likelihood"]["y"].values.reshape(-1, len(y))
    ratio = np.exp(-ll - (-ll).max(axis=0))
    cv2 = ratio.var(axis=0) / ratio.mean(axis=0) ** 2  # weights' relative variance
    se = np.sqrt(np.sum(cv2 / ll.shape[0]))
    assert abs(float(check.result.elpd) - _exact_elpd(y)) < 4 * se + 1e-3


def test_moment_matching_recovers_exact_loo():
    # 20 independent data sets with a far outlier: plain PSIS always has k > 0.7; moment
    # matching (ArviZ) brings every k below 0.7 and its ELPD is unbiased for the exact LOO:
    # the mean error over the replicates is within 4 SEs (their SD / sqrt(20)) of zero.
    errors = []
    for seed in range(20):
        rng = np.random.default_rng(100 + seed)
        y = _outlier_data(rng)
        check = checked_loo(_normal_fit(y, rng), NormalMean(y), prepared=object())
        assert check.psis_k.max() > 0.7
        assert check.method == "moment_match" and (check.k <= check.good_k).all()
        errors.append(float(check.result.elpd) - _exact_elpd(y))
    errors = np.asarray(errors)
    assert abs(errors.mean()) < 4 * errors.std(ddof=1) / np.sqrt(len(errors)), errors
    # and the table says it: reliable, moment_match, with a note on the plain PSIS k values
    rng = np.random.default_rng(100)
    y = _outlier_data(rng)
    row = checked_loo_table({"normal": (_normal_fit(y, rng), NormalMean(y), object())}).iloc[0]
    assert row["reliable"] and row["method"] == "moment_match" and row["n_high_k"] == 0
    assert row["n_pareto_k_high"] >= 1 and "moment matching brought every k below" in row["note"]


def test_report_blanks_an_unreliable_ranking():
    loo = pd.DataFrame(
        {
            "data": ["crossover", "periods", "periods"],
            "model": ["crossover", "nb_totals", "zinb"],
            "elpd_diff": [0.0, 0.0, 1.5], "dse": [0.0, 0.0, 0.8], "weight": [1.0, 0.9, 0.1],
            "reliable": ["False", "True", "True"],
            "note": ["Pareto k > 0.70 for 15 of 20 subjects (max 1.19): ...", "", ""],
        }
    )  # fmt: skip
    shown, sentences = loo_reliability(loo)
    assert shown.loc[0, ["elpd_diff", "dse", "weight"]].isna().all()
    assert shown.loc[1:, "weight"].tolist() == [0.9, 0.1]  # a reliable group keeps its ranking
    assert sentences == ["crossover (crossover data): Pareto k > 0.70 for 15 of 20 subjects "
                         "(max 1.19): ...."]  # fmt: skip
    # an old table without the columns is shown as it was
    assert loo_reliability(loo.drop(columns=["reliable", "note"]))[1] == []


def test_well_behaved_nb_totals_is_not_flagged():
    # nb_totals integrates each subject's gamma frailty out: no subject-level parameter, so
    # leaving a subject out barely moves the posterior (5 arms x 40 subjects; the arms of
    # tests/models/test_count_models.py, so the compiled model is shared)
    rng = np.random.default_rng(7)
    ratios = {"placebo": 1.0, "mexiletine": 0.5, "quinine": 0.75, "vitamin_b_complex": 0.8,
              "magnesium": 0.96}  # fmt: skip
    periods, _, _ = simulate_parallel_trial(rng, ratios, 40, weeks=8, k=3.0)
    model = NBTotals()
    idata = model.fit(periods, seed=3, cores=CORES, draws=500, tune=500, log_likelihood=True)
    row = checked_loo_table({"nb_totals": (idata, model, model.prepare(periods))}).iloc[0]
    assert row["reliable"] and row["method"] == "psis" and row["n_high_k"] == 0
    assert row["max_k"] < 0.7 and row["note"] == ""
