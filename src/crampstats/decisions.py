"""Decision quantities from a posterior of log rate ratios versus control.

Pure functions: they read posterior draws and return ``pandas.DataFrame`` tables (one row per
arm); nothing is fitted, written or printed. Inputs may be a fit (``xarray.DataTree`` with a
``posterior`` group), a posterior ``Dataset`` or the ``log_rr`` ``DataArray`` itself, with
sample dims ``chain, draw`` (or an already stacked ``sample``) and an ``arm`` dim of the active
arms.

Quantities (docs/design.md, "compare"): rate ratio median and equal-tailed interval, P(RR < 1),
P(RR < threshold) with the default threshold 0.75 (docs/calibration.md, "Gaps": no published MCID,
a 25 % reduction is the named assumption), the absolute difference in cramps per week
standardised over the trial's subjects, and ranking probabilities with SUCRA.

The decision rule "P(RR < threshold | data) > probability" is :func:`probability_below` and
:func:`rule_met`; the analysis tables and the power simulation (:mod:`crampstats.power.run`)
both call them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from crampstats.numerics import interval_bounds

VERDICT_COLUMNS = ["arm", "rule", "quantity", "probability", "threshold", "met", "multiplicity"]

__all__ = [
    "absolute_difference",
    "decision_table",
    "nb_parameters",
    "probability_below",
    "rank_probabilities",
    "rate_ratio_summary",
    "rule_met",
    "success_verdicts",
]

DEFAULT_THRESHOLD = 0.75  # docs/calibration.md, Gaps: MCID assumption, RR 0.75


def _draws(obj: xr.DataTree | xr.Dataset | xr.DataArray, var_name: str) -> xr.DataArray:
    """Return ``var_name`` draws with sample dims stacked into ``sample`` (last dim)."""
    if isinstance(obj, xr.DataTree):
        obj = obj["posterior"].to_dataset() if "posterior" in obj.children else obj.to_dataset()
    if isinstance(obj, xr.Dataset):
        obj = obj[var_name]
    if "sample" not in obj.dims:
        sample_dims = [d for d in ("chain", "draw") if d in obj.dims]
        if not sample_dims:
            raise ValueError(f"{var_name}: no sample dims (chain/draw or sample) in {obj.dims}")
        obj = obj.stack(sample=sample_dims)
    if "sample" in obj.indexes:
        obj = obj.drop_vars(["sample", *[c for c in ("chain", "draw") if c in obj.coords]])
    return obj.transpose(..., "sample")


def nb_parameters(
    model: Any, idata: xr.DataTree, exposure_days: Any, size: str = "k"
) -> dict[str, float]:
    """Control daily rate (standardised over subjects), size ``k`` and mean exposure of a fit.

    Parameters
    ----------
    model
        The fitted negative binomial totals model (its ``subject_log_rate(idata)``: each
        subject's log control rate per day, draws x subjects).
    idata
        Its fit, with the size in the posterior.
    exposure_days
        The analysed subjects' exposure.
    size
        The posterior variable of a subject total's negative-binomial size (``phi``, the
        gamma frailty's shape, for ``frailty_weekly``).

    Returns
    -------
    dict
        ``rate`` (posterior median of ``mean_i exp(c_i)``), ``k`` (posterior median) and
        ``exposure`` (mean days): the inputs of :func:`crampstats.multiplicity.null_variance`.
    """
    control = np.exp(model.subject_log_rate(idata)).mean("subject")
    return {
        "rate": float(np.median(control.values)),
        "k": float(np.median(idata["posterior"][size].values)),
        "exposure": float(np.mean(np.asarray(exposure_days, dtype=float))),
    }


def probability_below(log_rr: Any, log_threshold: float) -> np.ndarray:
    """Posterior probability that the rate ratio is below ``exp(log_threshold)``.

    ``P(RR < t | data) = (1/S) sum_s 1[log_rr_s < log t]`` over the ``S`` draws.

    Parameters
    ----------
    log_rr
        Draws of the log rate ratio, draws on the last axis (any leading axes, e.g. arms).
    log_threshold
        ``log t`` (0 for ``P(RR < 1)``).

    Returns
    -------
    numpy.ndarray
        The probabilities, shape of ``log_rr`` without its last axis (0-d for one arm).
    """
    return (np.asarray(log_rr) < log_threshold).mean(axis=-1)


def rule_met(probability: Any, required: float) -> np.ndarray:
    """Decision rule: success when ``P(RR < threshold | data) > required`` (strictly).

    Parameters
    ----------
    probability
        :func:`probability_below` of the rule's threshold.
    required
        The rule's probability (e.g. 0.975).

    Returns
    -------
    numpy.ndarray
        Boolean, shape of ``probability``.
    """
    return np.asarray(probability) > required


def rate_ratio_summary(
    posterior: xr.DataTree | xr.Dataset | xr.DataArray,
    level: float = 0.95,
    threshold: float = DEFAULT_THRESHOLD,
    var_name: str = "log_rr",
) -> pd.DataFrame:
    """Rate ratio versus control per arm: median, equal-tailed interval, P(RR<1), P(RR<threshold).

    Parameters
    ----------
    posterior
        Fit, posterior dataset or ``log_rr`` draws (dims ``arm`` and chain/draw or sample).
    level
        Probability mass of the equal-tailed interval.
    threshold
        Rate ratio for ``p_rr_lt_threshold`` (default 0.75, the MCID assumption).
    var_name
        Name of the log rate ratio variable.

    Returns
    -------
    pandas.DataFrame
        Columns ``arm, rr_median, rr_lower, rr_upper, p_rr_lt_1, p_rr_lt_threshold``;
        ``attrs`` hold ``level`` and ``threshold``.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> draws = xr.DataArray(np.log([[0.5, 0.6, 0.7, 0.8, 1.1]]), dims=("arm", "sample"),
    ...                      coords={"arm": ["quinine"]})
    >>> rate_ratio_summary(draws)[["arm", "rr_median", "p_rr_lt_1"]]
           arm  rr_median  p_rr_lt_1
    0  quinine        0.7        0.8
    """
    if threshold <= 0:
        raise ValueError(f"threshold must be a positive rate ratio, got {threshold}")
    lo, hi = interval_bounds(level)
    draws = _draws(posterior, var_name)
    values = draws.values.reshape(-1, draws.sizes["sample"])
    q = np.quantile(values, [0.5, lo, hi], axis=-1)
    out = pd.DataFrame(
        {
            "arm": [str(a) for a in draws["arm"].values],
            "rr_median": np.exp(q[0]),
            "rr_lower": np.exp(q[1]),
            "rr_upper": np.exp(q[2]),
            "p_rr_lt_1": probability_below(values, 0),
            "p_rr_lt_threshold": probability_below(values, np.log(threshold)),
        }
    )
    out.attrs.update(level=level, threshold=threshold)
    return out


def absolute_difference(
    posterior: xr.DataTree | xr.Dataset | xr.DataArray,
    control_log_rate: xr.DataArray,
    level: float = 0.95,
    days: float = 7.0,
    var_name: str = "log_rr",
) -> pd.DataFrame:
    """Difference in cramps per week (arm minus control), standardised over the trial's subjects.

    For every draw ``s`` and arm ``a``::

        control_s = days * mean_i exp(c_is)
        arm_s     = days * mean_i exp(c_is + log_rr_as)
        diff_as   = arm_s - control_s

    where ``c_is`` is subject ``i``'s log daily rate under control (from
    ``model.subject_log_rate(idata)``): every subject of the trial is predicted under each arm
    and the predictions are averaged, so arms are compared on the same population.

    Parameters
    ----------
    posterior
        Fit, posterior dataset or ``log_rr`` draws.
    control_log_rate
        Log daily rate under control, dims ``(chain, draw, subject)`` or ``(sample, subject)``,
        drawn jointly with ``log_rr`` (same chains and draws).
    level
        Probability mass of the equal-tailed interval.
    days
        Days per reporting unit (7: cramps per week).
    var_name
        Name of the log rate ratio variable.

    Returns
    -------
    pandas.DataFrame
        Columns ``arm, control_per_week, arm_per_week`` (posterior means),
        ``difference_mean, difference_median, difference_lower, difference_upper``.
    """
    lo, hi = interval_bounds(level)
    draws = _draws(posterior, var_name)
    rate = _draws(control_log_rate, "control_log_rate")
    if rate.sizes["sample"] != draws.sizes["sample"]:
        raise ValueError("control_log_rate and log_rr must come from the same draws")
    control = days * np.exp(rate).mean("subject").values  # (sample,)
    rr = np.exp(draws.values)  # (arm, sample)
    arm_rate = control[None, :] * rr
    diff = arm_rate - control[None, :]
    q = np.quantile(diff, [0.5, lo, hi], axis=-1)
    out = pd.DataFrame(
        {
            "arm": [str(a) for a in draws["arm"].values],
            "control_per_week": control.mean(),
            "arm_per_week": arm_rate.mean(axis=-1),
            "difference_mean": diff.mean(axis=-1),
            "difference_median": q[0],
            "difference_lower": q[1],
            "difference_upper": q[2],
        }
    )
    out.attrs.update(level=level, days=days)
    return out


def rank_probabilities(
    posterior: xr.DataTree | xr.Dataset | xr.DataArray,
    control_arm: str = "placebo",
    lower_is_better: bool = True,
    var_name: str = "log_rr",
) -> pd.DataFrame:
    """Probability of each rank, P(best), mean rank and SUCRA for all arms including control.

    Control has log rate ratio 0 in every draw. Rank 1 is best: fewest cramps when
    ``lower_is_better``. SUCRA = ``(n_arms - mean_rank) / (n_arms - 1)``, 1 for an arm that is
    best in every draw and 0 for one that is always worst.

    Parameters
    ----------
    posterior
        Fit, posterior dataset or ``log_rr`` draws.
    control_arm
        Label of the control arm (added with log RR 0).
    lower_is_better
        Rank low rates first.
    var_name
        Name of the log rate ratio variable.

    Returns
    -------
    pandas.DataFrame
        Columns ``arm, p_best, mean_rank, sucra, p_rank_1 .. p_rank_n``, sorted by SUCRA.
    """
    draws = _draws(posterior, var_name)
    labels = [control_arm, *(str(a) for a in draws["arm"].values)]
    values = np.vstack([np.zeros((1, draws.sizes["sample"])), draws.values])
    score = values if lower_is_better else -values
    ranks = score.argsort(axis=0).argsort(axis=0) + 1  # (arm, sample), 1 = best
    n = len(labels)
    p_rank = np.stack([(ranks == r).mean(axis=1) for r in range(1, n + 1)], axis=1)
    mean_rank = ranks.mean(axis=1)
    out = pd.DataFrame(
        {
            "arm": labels,
            "p_best": p_rank[:, 0],
            "mean_rank": mean_rank,
            "sucra": (n - mean_rank) / (n - 1) if n > 1 else np.ones(n),
        }
    )
    for r in range(n):
        out[f"p_rank_{r + 1}"] = p_rank[:, r]
    return out.sort_values("sucra", ascending=False, kind="stable").reset_index(drop=True)


def decision_table(
    posterior: xr.DataTree | xr.Dataset | xr.DataArray,
    control_log_rate: xr.DataArray | None = None,
    control_arm: str = "placebo",
    level: float = 0.95,
    threshold: float = DEFAULT_THRESHOLD,
    var_name: str = "log_rr",
) -> pd.DataFrame:
    """All per-arm decision quantities in one table (active arms only).

    Parameters
    ----------
    posterior
        Fit, posterior dataset or ``log_rr`` draws.
    control_log_rate
        As in :func:`absolute_difference`; omitted: no absolute-effect columns.
    control_arm, level, threshold, var_name
        As in the component functions.

    Returns
    -------
    pandas.DataFrame
        :func:`rate_ratio_summary` columns, then those of :func:`absolute_difference` (if
        ``control_log_rate`` is given), then ``p_best, sucra``.
    """
    table = rate_ratio_summary(posterior, level, threshold, var_name)
    if control_log_rate is not None:
        table = table.merge(
            absolute_difference(posterior, control_log_rate, level, var_name=var_name), on="arm"
        )
    ranks = rank_probabilities(posterior, control_arm, var_name=var_name)
    table = table.merge(ranks[["arm", "p_best", "sucra"]], on="arm")
    table.attrs.update(level=level, threshold=threshold, control_arm=control_arm)
    return table


def success_verdicts(
    posterior: xr.DataTree | xr.Dataset | xr.DataArray,
    criteria: Sequence[tuple[float, float]],
    strategy: str = "none",
    order: Sequence[str] = (),
    calibrated: float | None = None,
    var_name: str = "log_rr",
    difference: bool = False,
) -> pd.DataFrame:
    """Verdict of every active arm under a success rule and a family-wise strategy.

    A comparison succeeds when every criterion ``P(RR < rate_ratio | data) >= probability``
    holds (note ``>=``, as the plan states it; :func:`rule_met` keeps its strict ``>`` for the
    power module); with ``difference`` the draws are differences (intensity) and each criterion
    reads ``P(difference < bound | data) >= probability``. Strategies (docs/analysis-plan.md):
    ``none`` - each arm on its own; ``fixed_sequence`` - arms tested in ``order``, an arm
    succeeds only if every arm before it did; ``calibrated`` and ``exchangeable`` - the
    probability of the no-effect criterion (``rate_ratio == 1``; ``difference == 0``) is
    replaced by ``calibrated``, the common threshold from
    :func:`crampstats.multiplicity.calibrated_probability` (``exchangeable`` expects draws from
    the hierarchical-prior fit).

    Parameters
    ----------
    posterior
        Fit, posterior dataset or ``log_rr`` draws (dims ``arm`` and chain/draw or sample).
    criteria
        ``(rate_ratio, probability)`` pairs (``(difference, probability)`` with
        ``difference``), all required.
    strategy
        ``none``, ``fixed_sequence``, ``calibrated`` or ``exchangeable``.
    order
        Testing order (``fixed_sequence``): every active arm once.
    calibrated
        Common threshold of the P(RR < 1) criterion (``calibrated``, ``exchangeable``).
    var_name
        Name of the log rate ratio variable (of the differences, with ``difference``).
    difference
        Whether the draws and criteria are differences rather than (log) rate ratios.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`VERDICT_COLUMNS`: per arm one row per criterion (``probability`` the
        posterior probability, ``threshold`` the required one, ``met``) and a row with
        ``rule == "success"`` (all criteria and the strategy; probability and threshold empty).
        Arms in ``order`` for ``fixed_sequence``, else in the posterior's order.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> draws = xr.DataArray(np.log([[0.5, 0.6, 0.7, 0.8, 1.1]]), dims=("arm", "sample"),
    ...                      coords={"arm": ["quinine"]})
    >>> success_verdicts(draws, [(1.0, 0.75)])[["rule", "probability", "met"]]
                    rule  probability   met
    0  P(RR < 1) >= 0.75          0.8  True
    1            success          NaN  True
    """
    if strategy not in ("none", "fixed_sequence", "calibrated", "exchangeable"):
        raise ValueError(f"unknown multiplicity strategy {strategy!r}")
    if strategy in ("calibrated", "exchangeable") and calibrated is None:
        raise ValueError(f"strategy {strategy} needs the calibrated threshold")
    draws = _draws(posterior, var_name)
    arms = [str(a) for a in draws["arm"].values]
    values = dict(zip(arms, draws.values.reshape(len(arms), -1), strict=True))
    if strategy == "fixed_sequence":
        if sorted(order) != sorted(arms):
            raise ValueError(f"fixed_sequence order {list(order)} must list the arms {arms} once")
        arms = [str(a) for a in order]
    rows = []
    still_testing = True
    for position, arm in enumerate(arms, start=1):
        met_all = True
        note = strategy
        if strategy == "fixed_sequence":
            note = f"fixed_sequence: position {position} of {len(arms)}"
            if not still_testing:
                note += " (not reached: an earlier comparison failed)"
        for bound, required in criteria:
            calibrate = calibrated is not None and strategy != "fixed_sequence"
            null = bound == (0.0 if difference else 1.0)
            needed = float(calibrated) if calibrate and null else float(required)
            p = float(probability_below(values[arm], bound if difference else np.log(bound)))
            met = p >= needed
            met_all &= met
            label = f"P({'difference' if difference else 'RR'} < {bound:g})"
            rows.append([arm, f"{label} >= {needed:.4g}", label, p, needed, met, note])
        success = met_all and still_testing
        if strategy == "fixed_sequence":
            still_testing = success
        rows.append([arm, "success", "all criteria", np.nan, np.nan, success, note])
    columns = list(zip(*rows, strict=True)) if rows else [()] * len(VERDICT_COLUMNS)
    return pd.DataFrame(dict(zip(VERDICT_COLUMNS, map(list, columns), strict=True)))
