"""Responsiveness: standardised response mean of each endpoint in each arm, exact interval.

``SRM = mean change / SD of change`` (Husted et al. 2000, J Clin Epidemiol 53:459) per endpoint
and arm, with the exact interval under normal changes (noncentral t).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import optimize, stats

from crampstats.secondary.outcome_measures.changes import endpoint_changes
from crampstats.secondary.outcome_measures.names import CHANGE_UNITS

__all__ = ["responsiveness", "srm_interval"]


def srm_interval(change: np.ndarray, level: float = 0.95) -> dict[str, float]:
    """Standardised response mean and its exact interval under normal changes.

    ``SRM = mean / SD`` (SD with ``n - 1``). ``sqrt(n) * SRM`` is noncentral t with ``n - 1``
    degrees of freedom and noncentrality ``sqrt(n) * delta``; the interval inverts its cdf in
    ``delta`` (Steiger & Fouladi 1997; the one-sample case of Hedges & Olkin 1985).

    Returns
    -------
    dict
        ``estimate, lower, upper, n, mean, sd``.
    """
    change = np.asarray(change, dtype=float)
    change = change[np.isfinite(change)]
    n = int(change.size)
    nan = {
        "estimate": math.nan,
        "lower": math.nan,
        "upper": math.nan,
        "n": n,
        "mean": math.nan,
        "sd": math.nan,
    }
    if n < 3:
        return nan
    mean, sd = float(change.mean()), float(change.std(ddof=1))
    if sd == 0:
        return {**nan, "mean": mean, "sd": sd}
    srm = mean / sd
    # solved for |t| and mirrored (the noncentral t is symmetric under t, nc -> -t, -nc)
    t_obs = math.sqrt(n) * abs(srm)
    df = n - 1
    # the cdf at t_obs falls as the noncentrality rises; the roots lie about 2 large-sample SEs
    # (sqrt(1 + t^2 / (2 df))) from t_obs, and a bracket of 4 SEs keeps scipy's nct away from
    # the far tails, where it returns NaN
    half_width = 4.0 * math.sqrt(1.0 + t_obs**2 / (2.0 * df)) + 0.5

    def bound(p: float) -> float:
        return optimize.brentq(
            lambda nc: float(stats.nct.cdf(t_obs, df, nc)) - p,
            t_obs - half_width,
            t_obs + half_width,
        ) / math.sqrt(n)

    tail = (1.0 - level) / 2.0
    lo, hi = bound(1.0 - tail), bound(tail)
    if srm < 0:
        lo, hi = -hi, -lo
    return {"estimate": srm, "lower": lo, "upper": hi, "n": n, "mean": mean, "sd": sd}


def responsiveness(
    periods: pd.DataFrame,
    emg: pd.DataFrame | None = None,
    diary: pd.DataFrame | None = None,
    level: float = 0.95,
) -> pd.DataFrame:
    """Standardised response mean of each endpoint in each arm.

    Changes per subject (treatment minus baseline): cramps per week (treatment-period rate
    minus run-in rate), log CTF (``end`` minus the mean of the baseline logs; subjects with a
    right-censored CTF excluded), after-discharge grade (``end`` minus the mean baseline grade),
    intensity (mean treatment-period rating minus mean run-in rating). For every endpoint a
    *fall* in cramps, grade or intensity and a *rise* in CTF is improvement, so a responsive
    measure has a large ``|SRM|`` with the sign of its better direction.

    Parameters
    ----------
    periods
        Derived ``periods`` (parallel design).
    emg, diary
        Derived ``emg`` visits and the validated ``diary`` with ``intensity`` (optional).
    level
        Interval level (noncentral t, :func:`srm_interval`).

    Returns
    -------
    pandas.DataFrame
        ``endpoint, arm, estimate, lower, upper, n, mean, sd, unit, note``; an endpoint
        without data has one row with ``arm`` NA and the reason in ``note``.
    """
    rows = []
    for endpoint, changes in endpoint_changes(periods, emg, diary).items():
        if isinstance(changes, str):
            rows.append(
                {
                    "endpoint": endpoint,
                    "arm": None,
                    "estimate": math.nan,
                    "lower": math.nan,
                    "upper": math.nan,
                    "n": 0,
                    "mean": math.nan,
                    "sd": math.nan,
                    "unit": CHANGE_UNITS[endpoint],
                    "note": changes,
                }
            )
            continue
        for arm, group in changes.groupby("arm", sort=True):
            res = srm_interval(group["change"].to_numpy(), level)
            rows.append(
                {
                    "endpoint": endpoint,
                    "arm": arm,
                    **res,
                    "unit": CHANGE_UNITS[endpoint],
                    "note": f"mean change / SD of change ({CHANGE_UNITS[endpoint]})",
                }
            )
    return pd.DataFrame(rows)
