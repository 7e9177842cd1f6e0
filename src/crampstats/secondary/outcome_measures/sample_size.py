"""Patients per arm each endpoint would need to detect the effect it showed, at one design.

It compares the measures at one common design; it is not a trial plan. Cramp frequency uses the
closed-form negative-binomial sample size (:func:`crampstats.closed_form.zhu_lakkis_n`), the
continuous endpoints the two-sample normal formula on the change from baseline.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from crampstats.closed_form import zhu_lakkis_n
from crampstats.models._common import ModelDataError, as_float
from crampstats.models.nb_totals import nb_glm_twin
from crampstats.secondary.outcome_measures.changes import endpoint_changes, require_parallel
from crampstats.secondary.outcome_measures.names import CHANGE_UNITS, FREQUENCY

__all__ = ["normal_n_per_arm", "sample_size_per_arm"]


def normal_n_per_arm(d: float, power: float = 0.8, alpha: float = 0.05) -> float:
    """Patients per arm of a two-sided two-sample z test for standardised difference ``d``.

    ``n = 2 (z_{1-alpha/2} + z_{power})^2 / d^2``, rounded up (inf when ``d = 0``).
    """
    if not np.isfinite(d):
        return math.nan
    if d == 0:
        return math.inf
    z = stats.norm.ppf(1.0 - alpha / 2.0) + stats.norm.ppf(power)
    return float(math.ceil(2.0 * z**2 / d**2))


def _n_bounds(n_at: Any, effect: float, lo: float, hi: float, null: float) -> tuple[float, float]:
    """Interval of ``n`` from the effect's interval (``n`` falls as the effect leaves ``null``)."""
    if effect < null:
        small, large = n_at(lo), (n_at(hi) if hi < null else math.nan)
    else:
        small, large = n_at(hi), (n_at(lo) if lo > null else math.nan)
    return small, large


def sample_size_per_arm(
    periods: pd.DataFrame,
    emg: pd.DataFrame | None = None,
    diary: pd.DataFrame | None = None,
    *,
    power: float = 0.8,
    alpha: float = 0.05,
    control_arm: str = "placebo",
    level: float = 0.95,
) -> pd.DataFrame:
    """Patients per arm each endpoint would need to detect the effect it showed, same power.

    This compares the measures at one common design (two arms, equal allocation, the trial's
    treatment length, two-sided ``alpha``, ``power``) on the effect each showed in this trial;
    it is not a trial plan (observed effects are noisy and biased upwards when selected).

    - Cramp frequency: the negative-binomial formula of Zhu & Lakkis (2014, Stat Med 33:376,
      method 3; :func:`crampstats.closed_form.zhu_lakkis_n` at one-sided ``alpha / 2``),
      with the rate ratio and NB size ``k`` of the run-in-adjusted NB2 regression
      (:func:`crampstats.models.nb_totals.nb_glm_twin`, the primary analysis' twin), the
      control arm's treatment-period rate (the control mean of the formula; the run-in rate
      would overstate it by the placebo response) and the mean treatment exposure.
    - Continuous endpoints (log CTF, after-discharge grade, intensity): change from baseline,
      ``d = (mean change in the arm - mean change in control) / pooled SD of change``, and
      ``n = 2 (z_{1-alpha/2} + z_{power})^2 / d^2``.

    The interval of ``n`` is ``n`` at the ends of the effect's interval (Wald for the rate
    ratio; ``d +- z sqrt(1/n1 + 1/n2 + d^2 / (2 (n1 + n2)))``, Hedges & Olkin 1985); its far
    end is NaN (unbounded) when the effect's interval includes no effect.

    Returns
    -------
    pandas.DataFrame
        ``endpoint, arm, effect, effect_lower, effect_upper, effect_scale, estimate, lower,
        upper, n`` (subjects in the two arms), ``note``; inputs of the frequency formula in
        ``rate, k, exposure`` (NaN for other endpoints). An endpoint without data has one row
        with ``arm`` NA and the reason in ``note``.
    """
    z_level = stats.norm.ppf(0.5 + level / 2.0)
    rows: list[dict[str, Any]] = []

    def missing(endpoint: str, reason: str) -> None:
        rows.append({"endpoint": endpoint, "arm": None, "note": reason})

    # ---- cramp frequency: Zhu & Lakkis on the NB2 regression -----------------------------------
    try:
        require_parallel(periods, "the sample size comparison")

        twin = nb_glm_twin(periods, control_arm=control_arm, missing_baseline="mean")
        exposure = as_float(periods["exposure_days"])
        control = (periods["arm"].astype(str) == control_arm).to_numpy() & (exposure > 0)
        rate = float(as_float(periods["count"])[control].sum() / exposure[control].sum())
        t_mean = float(exposure[exposure > 0].mean())
        k = float(twin.attrs["k"])

        def n_freq(rr: float) -> float:
            if not np.isfinite(rr) or rr <= 0:
                return math.nan
            if rr == 1.0:
                return math.inf
            return float(zhu_lakkis_n(rate, rr, k, t_mean, power=power, alpha=alpha / 2.0))

        for row in twin.itertuples():
            rr, lo, hi = row.rate_ratio, math.exp(row.lower), math.exp(row.upper)
            n_lo, n_hi = _n_bounds(n_freq, rr, lo, hi, 1.0)
            n_subj = int(periods["arm"].astype(str).isin([row.arm, control_arm]).sum())
            rows.append(
                {
                    "endpoint": FREQUENCY,
                    "arm": row.arm,
                    "effect": rr,
                    "effect_lower": lo,
                    "effect_upper": hi,
                    "effect_scale": "rate ratio",
                    "estimate": n_freq(rr),
                    "lower": n_lo,
                    "upper": n_hi,
                    "n": n_subj,
                    "rate": rate,
                    "k": k,
                    "exposure": t_mean,
                    "note": (
                        f"Zhu-Lakkis NB: RR {rr:.3g}, control rate {rate:.3g}/day, k {k:.3g}, "
                        f"{t_mean:.0f} days; common design, not a trial plan"
                    ),
                }
            )
    except ModelDataError as exc:
        missing(FREQUENCY, str(exc))

    # ---- continuous endpoints: two-sample normal formula on the change ------------------------
    for endpoint, changes in endpoint_changes(periods, emg, diary).items():
        if endpoint == FREQUENCY:
            continue
        if isinstance(changes, str):
            missing(endpoint, changes)
            continue
        ctrl = changes.loc[changes["arm"] == control_arm, "change"].to_numpy(float)
        if ctrl.size < 2:
            missing(endpoint, f"fewer than two {control_arm} subjects with a change")
            continue
        for arm, group in changes.groupby("arm", sort=True):
            if arm == control_arm:
                continue
            act = group["change"].to_numpy(float)
            n1, n0 = act.size, ctrl.size
            if n1 < 2:
                rows.append(
                    {
                        "endpoint": endpoint,
                        "arm": arm,
                        "n": n1 + n0,
                        "note": "fewer than two subjects with a change",
                    }
                )
                continue
            pooled = math.sqrt(
                ((n1 - 1) * act.var(ddof=1) + (n0 - 1) * ctrl.var(ddof=1)) / (n1 + n0 - 2)
            )
            d = (act.mean() - ctrl.mean()) / pooled if pooled > 0 else math.nan
            se = math.sqrt(1.0 / n1 + 1.0 / n0 + d**2 / (2.0 * (n1 + n0)))
            lo, hi = d - z_level * se, d + z_level * se
            n_lo, n_hi = _n_bounds(lambda v: normal_n_per_arm(v, power, alpha), d, lo, hi, 0.0)
            rows.append(
                {
                    "endpoint": endpoint,
                    "arm": arm,
                    "effect": d,
                    "effect_lower": lo,
                    "effect_upper": hi,
                    "effect_scale": "standardised difference in change",
                    "estimate": normal_n_per_arm(d, power, alpha),
                    "lower": n_lo,
                    "upper": n_hi,
                    "n": n1 + n0,
                    "note": (
                        f"two-sample normal: d {d:.3g} vs {control_arm} "
                        f"(change in {CHANGE_UNITS[endpoint]}); common design, not a trial plan"
                    ),
                }
            )
    columns = [
        "endpoint",
        "arm",
        "effect",
        "effect_lower",
        "effect_upper",
        "effect_scale",
        "estimate",
        "lower",
        "upper",
        "n",
        "rate",
        "k",
        "exposure",
        "note",
    ]
    out = pd.DataFrame(rows, columns=columns)
    out["n"] = out["n"].fillna(0).astype(np.int64)
    return out
