"""Closed-form power of the two-group negative-binomial rate comparison (Zhu and Lakkis 2014).

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
