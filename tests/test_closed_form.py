"""The within-patient closed form (crampstats.closed_form.within_subject_variance).

Checked against the conditional-Poisson information it reduces to, and against the sampling
variance of the crossover model's frequentist twin (statsmodels NB2 GLM with subject fixed
effects, an independent estimator) over simulated crossover and N-of-1 trials.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from crampstats.closed_form import within_subject_variance
from crampstats.models.crossover import crossover_twin


def test_poisson_limit_is_the_conditional_poisson_information():
    # given a patient's total m_i over one period on each, the active count is
    # Binomial(m_i, rr / (1 + rr)): information sum_i mu_i rr / (1 + rr) for log rr
    mu = np.array([10.0, 25.0, 40.0, 80.0])
    rr = 0.6
    v = within_subject_variance(mu, [1] * 4, [1] * 4, rr, math.inf)
    assert 1 / v == pytest.approx(np.sum(mu * rr / (1 + rr)), rel=1e-12)


def test_replicated_periods_and_heterogeneity_enter_per_patient():
    # two identical patients: the variance halves; sigma_d adds to each patient's variance
    one = within_subject_variance([30.0], [3], [3], 0.8, 10.0, 0.4)
    two = within_subject_variance([30.0, 30.0], [3, 3], [3, 3], 0.8, 10.0, 0.4)
    assert two == pytest.approx(one / 2, rel=1e-12)
    within = (1 / (0.8 * 30) + 1 / 10) / 3 + (1 / 30 + 1 / 10) / 3
    assert one == pytest.approx(within + 0.4**2, rel=1e-12)
    # a patient without a control period adds nothing; nobody on both is refused
    assert within_subject_variance([30.0, 30.0], [3, 3], [3, 0], 0.8, 10.0, 0.4) == one
    with pytest.raises(ValueError, match="no patient"):
        within_subject_variance([30.0], [1], [0], 0.8, 10.0)


def _trial(rng, n, cycles, k, sigma_d, rr=0.7, days=28):
    """A crossover (cycles 1, AB/BA balanced) or N-of-1 trial with known per-patient means."""
    mu = days * np.exp(rng.normal(np.log(1.5), 0.5, n))
    if cycles == 1:
        first = rng.permutation(np.resize([False, True], n))[:, None]
        active = np.concatenate([first, ~first], axis=1)
    else:
        active = np.concatenate(
            [rng.permuted(np.tile([False, True], (n, 1)), axis=1) for _ in range(cycles)], axis=1
        )
    own = np.log(rr) + sigma_d * rng.standard_normal(n)
    mean = mu[:, None] * np.exp(np.where(active, own[:, None], 0.0))
    counts = rng.poisson(rng.gamma(k, mean / k))
    periods = 2 * cycles
    frame = pd.DataFrame(
        {
            "trial_id": "t",
            "subject_id": np.repeat([f"S{i:03d}" for i in range(n)], periods),
            "period": np.tile(np.arange(1, periods + 1), n),
            "treatment": np.where(active, "drug", "placebo").ravel(),
            "count": counts.ravel(),
            "exposure_days": days,
            "log_baseline_rate": np.repeat(np.log(mu / days), periods),
        }
    )
    return frame, mu


@pytest.mark.slow
@pytest.mark.parametrize(
    ("n", "cycles", "k", "sigma_d"),
    [(24, 1, 20.0, 0.3), (12, 3, 10.0, 0.5), (30, 1, 5.0, 0.0)],
    ids=["abba-heterogeneous", "nof1", "abba-overdispersed"],
)
def test_formula_matches_the_twins_sampling_variance(n, cycles, k, sigma_d):
    # 400 trials: the empirical variance of 400 near-normal estimates has a relative SE of
    # sqrt(2 / 399) = 7.1 %; 3 SE plus 5 % for the delta method and the twin's weights (the ML
    # fit does not weight patients exactly by 1 / V_i) gives the 26 % bound. Dropping
    # sigma_d^2 or the 2 / k term would make the first design's formula about 36 % or 40 % too
    # small (ratios near 1.6 and 1.7).
    rng = np.random.default_rng(2026_12_04)
    estimates, formula = [], []
    for _ in range(400):
        frame, mu = _trial(rng, n, cycles, k, sigma_d)
        estimates.append(float(crossover_twin(frame)["log_rr"].iloc[0]))
        formula.append(within_subject_variance(mu, [cycles] * n, [cycles] * n, 0.7, k, sigma_d))
    ratio = np.var(estimates, ddof=1) / np.mean(formula)
    print(f"empirical / closed-form variance {ratio:.3f}")
    assert abs(ratio - 1) < 0.26
