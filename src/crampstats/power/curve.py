"""A monotone power curve over patients per arm, and the sample size that reaches a target.

The curve is a logistic in ``log n`` fitted by binomial likelihood to every replicate's decision
at every swept ``n``::

    P(success | n) = expit(a + b log n)

(statsmodels GLM, binomial family). It is monotone in ``n`` by construction (increasing when
``b > 0``) and smooths the Monte Carlo noise of the points, so the sample size reaching a target
power ``pi`` is read off the curve, ``n* = exp((logit(pi) - a) / b)``, rather than off the grid.

Uncertainty. The nested trials of a sweep (:mod:`crampstats.power.generate`) make one
replicate's decisions at different ``n`` positively correlated, so the independent-binomial
covariance would be too small. The covariance of ``(a, b)`` is therefore the cluster-robust
(sandwich) covariance with the replicate as cluster; the curve's 95 % band is the delta-method
interval of ``a + b log n`` mapped through ``expit``, and the interval of ``n*`` the delta-method
interval of ``log n* = (logit(pi) - a) / b`` (gradient ``(-1 / b, -(logit(pi) - a) / b^2)``),
exponentiated. ``n*`` outside the swept range is flagged as extrapolated.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
import statsmodels.api as sm
from scipy import special, stats

_Z = float(stats.norm.ppf(0.975))
_LOG_N_MAX = 30.0  # exp(30) = 1e13 patients: beyond it a curve is flat, not informative


@dataclass(frozen=True)
class PowerCurve:
    """A fitted logistic power curve ``expit(a + b log n)`` with its cluster-robust covariance.

    Attributes
    ----------
    a, b : float
        Intercept and slope on the ``log n`` scale.
    cov : numpy.ndarray
        2 x 2 covariance of ``(a, b)`` (replicates as clusters).
    n_min, n_max : int
        Swept range.
    """

    a: float
    b: float
    cov: np.ndarray
    n_min: int
    n_max: int

    def power(self, n: np.ndarray | float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Fitted power at ``n`` with its 95 % band: ``(power, lower, upper)``."""
        x = np.log(np.asarray(n, dtype=float))
        eta = self.a + self.b * x
        var = self.cov[0, 0] + 2 * x * self.cov[0, 1] + x**2 * self.cov[1, 1]
        se = np.sqrt(np.maximum(var, 0.0))
        return special.expit(eta), special.expit(eta - _Z * se), special.expit(eta + _Z * se)

    def n_for(self, target: float) -> tuple[float, float, float, bool]:
        """Patients per arm reaching ``target`` power: ``(n, lower, upper, extrapolated)``.

        NaN when the curve does not increase (``b <= 0``), and NaN flagged as extrapolated when
        the curve is so flat that ``n`` or its interval leaves ``1 .. e^30``.
        """
        if not self.b > 0:
            return math.nan, math.nan, math.nan, False
        logit = float(special.logit(target))
        log_n = (logit - self.a) / self.b
        grad = np.array([-1.0 / self.b, -(logit - self.a) / self.b**2])
        se = float(np.sqrt(max(grad @ self.cov @ grad, 0.0)))
        if not abs(log_n) + _Z * se < _LOG_N_MAX:  # a flat curve: no meaningful sample size
            return math.nan, math.nan, math.nan, True
        n = math.exp(log_n)
        extrapolated = not self.n_min <= n <= self.n_max
        return n, math.exp(log_n - _Z * se), math.exp(log_n + _Z * se), extrapolated


def fit_power_curve(n: np.ndarray, success: np.ndarray, replicate: np.ndarray) -> PowerCurve | None:
    """Fit the logistic power curve to one arm's and rule's decisions over a sweep.

    Parameters
    ----------
    n
        Patients per arm of each decision.
    success
        The decisions (bool).
    replicate
        Replicate of each decision (the cluster of the robust covariance).

    Returns
    -------
    PowerCurve or None
        ``None`` when the curve cannot be estimated: fewer than two swept ``n``, fewer than two
        replicates, every decision equal, or (quasi-)separation (all successes above some ``n``
        and none below).

    Examples
    --------
    >>> rng = np.random.default_rng(1)
    >>> n = np.repeat([20, 40, 80], 400)
    >>> rep = np.tile(np.arange(400), 3)
    >>> y = rng.random(n.size) < 1 / (1 + np.exp(-(-6 + 1.7 * np.log(n))))
    >>> curve = fit_power_curve(n, y, rep)
    >>> bool(abs(curve.b - 1.7) < 0.5)
    True
    """
    n = np.asarray(n, dtype=float)
    y = np.asarray(success, dtype=float)
    groups = pd.factorize(np.asarray(replicate))[0]
    if np.unique(n).size < 2 or np.unique(groups).size < 2 or y.min() == y.max():
        return None
    X = np.column_stack([np.ones_like(n), np.log(n)])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        try:
            fit = sm.GLM(y, X, family=sm.families.Binomial()).fit(
                cov_type="cluster", cov_kwds={"groups": groups}
            )
        except (Warning, np.linalg.LinAlgError, ValueError):
            return None
    params = np.asarray(fit.params, dtype=float)
    cov = np.asarray(fit.cov_params(), dtype=float)
    if not (np.all(np.isfinite(params)) and np.all(np.isfinite(cov))):
        return None
    return PowerCurve(float(params[0]), float(params[1]), cov, int(n.min()), int(n.max()))


def curve_columns(group: pd.DataFrame, column: str, target: float) -> dict[str, pd.Series | float]:
    """Curve values of one design, arm and rule for the power table.

    Parameters
    ----------
    group
        Decisions rows of one design and arm (every swept ``n``), with ``replicate`` and
        ``n_per_arm``.
    column
        The decision column.
    target
        Target power.

    Returns
    -------
    dict
        ``power_fit, power_fit_lower, power_fit_upper`` (Series by ``n_per_arm``),
        ``n_target_curve, n_target_lower, n_target_upper, n_target_extrapolated``.
    """
    curve = fit_power_curve(
        group["n_per_arm"].to_numpy(), group[column].astype(bool).to_numpy(),
        group["replicate"].to_numpy(),
    )  # fmt: skip
    ns = np.sort(group["n_per_arm"].unique())
    if curve is None:
        nan = pd.Series(np.nan, index=ns)
        return {
            "power_fit": nan, "power_fit_lower": nan, "power_fit_upper": nan,
            "n_target_curve": math.nan, "n_target_lower": math.nan, "n_target_upper": math.nan,
            "n_target_extrapolated": pd.NA,
        }  # fmt: skip
    p, lo, hi = curve.power(ns)
    n_star, n_lo, n_hi, extrapolated = curve.n_for(target)
    return {
        "power_fit": pd.Series(p, index=ns),
        "power_fit_lower": pd.Series(lo, index=ns),
        "power_fit_upper": pd.Series(hi, index=ns),
        "n_target_curve": n_star,
        "n_target_lower": n_lo,
        "n_target_upper": n_hi,
        "n_target_extrapolated": extrapolated if math.isfinite(n_star) else pd.NA,
    }
