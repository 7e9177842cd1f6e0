"""Monte Carlo intervals of simulated rates (power, type I error, family-wise rates).

A simulated rate is a binomial proportion over independent replicates, so its interval is a
binomial one: exact Clopper-Pearson or Wilson, both from statsmodels
(:func:`statsmodels.stats.proportion.proportion_confint`). Unlike the Wald interval they stay
inside [0, 1] and keep their coverage near 0 and 1, where type I errors and high powers live.
"""

from __future__ import annotations

from statsmodels.stats.proportion import proportion_confint

#: Configuration name -> statsmodels method.
METHODS = {"clopper_pearson": "beta", "wilson": "wilson"}


def rate_interval(
    successes: int, trials: int, method: str = "clopper_pearson", level: float = 0.95
) -> tuple[float, float]:
    """Two-sided interval of a binomial rate ``successes / trials``.

    Parameters
    ----------
    successes, trials
        Counts (``trials >= 1``).
    method
        ``"clopper_pearson"`` (exact) or ``"wilson"``.
    level
        Coverage.

    Returns
    -------
    tuple of float
        ``(lower, upper)``.

    Examples
    --------
    >>> lo, hi = rate_interval(0, 20)
    >>> (lo, round(hi, 4))  # the exact upper bound 1 - 0.025 ** (1 / 20)
    (0.0, 0.1684)
    """
    if trials < 1:
        raise ValueError(f"trials must be >= 1, got {trials}")
    if method not in METHODS:
        raise ValueError(f"method must be one of {sorted(METHODS)}, got {method!r}")
    lo, hi = proportion_confint(successes, trials, alpha=1.0 - level, method=METHODS[method])
    return float(lo), float(hi)
