"""Closed-form power of negative-binomial rate comparisons: two groups, and within patients.

Two groups (parallel trials) follow Zhu and Lakkis 2014; within-patient designs (crossover, N-of-1)
follow :func:`within_subject_variance` below.

Zhu H, Lakkis H. Sample size calculation for comparing two negative binomial rates. *Statistics
in Medicine* 2014; 33(3): 376-387. With control mean count ``mu0 = rate * t`` over exposure ``t``,
treated mean ``mu1 = rr * mu0``, dispersion ``kappa = 1 / k`` (variance ``mu + kappa mu^2``) and
allocation ratio ``r = n1 / n0``, the Wald statistic of the log rate ratio has per-patient
variance

    V = (1 / mu0 + kappa) + (1 / r) (1 / mu1 + kappa),

so with ``n0`` control patients a one-sided level-``alpha`` test has power

    Phi( sqrt(n0) |log rr| / sqrt(V) - z_{1 - alpha} )

and needs ``n0 = (z_{1-alpha} + z_{1-beta})^2 V / log(rr)^2`` patients for power ``1 - beta``
(their method 3, variance evaluated at the true rates under both hypotheses; it is also the
formula of Friede and Schmidli 2010). The Bayesian rule ``P(RR < 1) > 0.975`` with vague priors
behaves like this test at one-sided ``alpha = 0.025``.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats


def _variance(rate: float, rr: float, k: float, exposure: float, ratio: float) -> float:
    mu0 = rate * exposure
    mu1 = rr * mu0
    kappa = 1.0 / k
    return (1.0 / mu0 + kappa) + (1.0 / mu1 + kappa) / ratio


def zhu_lakkis_variance(
    rate: float, rr: float, k: float, exposure: float, ratio: float = 1.0
) -> float:
    """Per-control-patient variance ``V`` of the log rate ratio (module docstring).

    The estimated log rate ratio with ``n_control`` control patients has variance
    ``V / n_control``; :func:`zhu_lakkis_power` and :func:`zhu_lakkis_n` use the same ``V``.
    """
    return _variance(rate, rr, k, exposure, ratio)


def zhu_lakkis_power(
    rate: float,
    rr: float,
    k: float,
    exposure: float,
    n_control: int,
    alpha: float = 0.025,
    ratio: float = 1.0,
) -> float:
    """Power of the one-sided Wald test of an NB rate ratio (Zhu and Lakkis 2014, method 3).

    Parameters
    ----------
    rate
        Control event rate per unit of exposure (cramps per day).
    rr
        True rate ratio treated / control.
    k
        Negative-binomial size (variance ``mu + mu^2 / k``).
    exposure
        Exposure per patient (days).
    n_control
        Control patients; ``ratio * n_control`` are treated.
    alpha
        One-sided level.
    ratio
        Allocation ratio treated / control.

    Returns
    -------
    float
        Probability of rejecting ``RR >= 1`` in favour of ``RR < 1``.

    Examples
    --------
    >>> round(zhu_lakkis_power(0.9, 0.75, 3.0, 56.0, 60), 3)
    0.751
    """
    v = _variance(rate, rr, k, exposure, ratio)
    z = math.sqrt(n_control) * abs(math.log(rr)) / math.sqrt(v) - stats.norm.ppf(1.0 - alpha)
    return float(stats.norm.cdf(z))


def zhu_lakkis_n(
    rate: float,
    rr: float,
    k: float,
    exposure: float,
    power: float = 0.8,
    alpha: float = 0.025,
    ratio: float = 1.0,
) -> int:
    """Control patients needed for ``power`` (rounded up; see :func:`zhu_lakkis_power`)."""
    v = _variance(rate, rr, k, exposure, ratio)
    z = stats.norm.ppf(1.0 - alpha) + stats.norm.ppf(power)
    return math.ceil(z**2 * v / math.log(rr) ** 2)


def within_subject_variance(
    mu: ArrayLike,
    n_active: ArrayLike,
    n_control: ArrayLike,
    rr: float,
    k: float,
    sigma_d: float = 0.0,
) -> float:
    """Variance of the estimated log rate ratio of a crossover or N-of-1 trial.

    Patient ``i`` has ``n_active_i`` periods on the active arm and ``n_control_i`` on control,
    with negative-binomial period totals of mean ``mu_i`` (control) and ``rr mu_i`` (active)
    given the patient, within-patient size ``k`` (variance ``mu + mu^2 / k``) and their own log
    rate ratio ``log rr + d_i``, ``d_i ~ Normal(0, sigma_d^2)`` (the ``crossover`` model). By
    the delta method the log of a period total varies by ``1 / mu + 1 / k`` around its mean, so
    the patient's contrast of mean log totals has variance

        V_i = (1 / (rr mu_i) + 1 / k) / n_active_i + (1 / mu_i + 1 / k) / n_control_i + sigma_d^2

    and the inverse-variance weighted mean over patients has variance ``1 / sum_i 1 / V_i``
    (period effects, nearly orthogonal to the treatment in a balanced design, are ignored). With
    Poisson counts (``k`` infinite), one period on each and ``sigma_d = 0`` this is the inverse
    of the conditional-Poisson information ``sum_i mu_i rr / (1 + rr)`` (given the patient's
    total, the active period's count is Binomial with probability ``rr / (1 + rr)``). Patients
    without a period on both contribute nothing.

    Parameters
    ----------
    mu
        Each patient's expected control count per period.
    n_active, n_control
        Each patient's periods on the active arm and on control.
    rr
        True rate ratio active / control.
    k
        Within-patient negative-binomial size (``numpy.inf`` for Poisson).
    sigma_d
        SD of the patients' own log rate ratios.

    Examples
    --------
    >>> mu = [20.0] * 30
    >>> v = within_subject_variance(mu, [1] * 30, [1] * 30, 0.8, float("inf"))
    >>> round(1 / v, 6) == round(30 * 20 * 0.8 / 1.8, 6)
    True
    """
    mu = np.asarray(mu, dtype=float)
    n_active = np.asarray(n_active, dtype=float)
    n_control = np.asarray(n_control, dtype=float)
    both = (n_active > 0) & (n_control > 0)
    if not both.any():
        raise ValueError("no patient has periods on both the active arm and control")
    mu, n_active, n_control = mu[both], n_active[both], n_control[both]
    v = (1 / (rr * mu) + 1 / k) / n_active + (1 / mu + 1 / k) / n_control + sigma_d**2
    return float(1.0 / np.sum(1.0 / v))
