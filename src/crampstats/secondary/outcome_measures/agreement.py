"""Agreement between diary cramp frequency and the CTF: Spearman correlations, Fisher-z interval.

:func:`agreement`: Spearman correlation between the run-in cramp rate and the baseline CTF, and
between their changes (treatment minus run-in cramps per week; log end minus log baseline
CTF); the interval is Fisher's z with the Bonett & Wright (2000, Psychometrika 65:23) variance
``(1 + r^2 / 2) / (n - 3)``.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats

from crampstats.models._common import (
    ModelDataError,
    as_float,
    require_columns,
    subject_keys,
)
from crampstats.secondary.outcome_measures.changes import ctf_changes, frequency_changes
from crampstats.secondary.outcome_measures.data import as_bool
from crampstats.secondary.outcome_measures.names import WEEK_DAYS

__all__ = ["agreement", "spearman_interval"]


def spearman_interval(x: np.ndarray, y: np.ndarray, level: float = 0.95) -> dict[str, float]:
    """Spearman's rho with a Fisher-z interval (Bonett & Wright 2000 variance).

    Returns
    -------
    dict
        ``estimate, lower, upper, n``; NaN when fewer than 4 pairs or a constant variable.
    """
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    n = int(x.size)
    if n < 4 or np.ptp(stats.rankdata(x)) == 0 or np.ptp(stats.rankdata(y)) == 0:
        return {"estimate": math.nan, "lower": math.nan, "upper": math.nan, "n": n}
    rho = float(stats.spearmanr(x, y).statistic)
    se = math.sqrt((1.0 + rho**2 / 2.0) / (n - 3))
    z = stats.norm.ppf(0.5 + level / 2.0)
    zr = math.atanh(min(max(rho, -0.999999), 0.999999))
    return {
        "estimate": rho,
        "lower": math.tanh(zr - z * se),
        "upper": math.tanh(zr + z * se),
        "n": n,
    }


def agreement(periods: pd.DataFrame, emg: pd.DataFrame, level: float = 0.95) -> pd.DataFrame:
    """Agreement between diary cramp frequency and CTF (Spearman, pooled over arms).

    ``spearman_runin``: run-in cramps per week against the baseline CTF (geometric mean of the
    baseline visits; a right-censored baseline ranks above every observed one, which is what
    it is: above the protocol maximum). ``spearman_change``: change in cramps per week
    (treatment minus run-in) against the change in log CTF (end minus baseline), subjects with
    an uncensored CTF at every visit (a censored value leaves the change unknown). Changes are
    pooled over arms, so arms that move both measures move the correlation too: it answers
    "do the two measures change together", not "within an arm".

    Parameters
    ----------
    periods
        Derived ``periods`` (parallel design for the change).
    emg
        Derived ``emg`` visits.
    level
        Interval level (Fisher z, Bonett & Wright 2000).

    Returns
    -------
    pandas.DataFrame
        ``property, estimate, lower, upper, n, note`` (rows ``spearman_runin``,
        ``spearman_change``); a row that cannot be computed has NaN and says why.
    """
    rows = []
    require_columns(periods, ["subject_id", "runin_count", "runin_days"], "periods")
    first = periods.drop_duplicates("subject_id")
    days = as_float(first["runin_days"])
    with np.errstate(divide="ignore", invalid="ignore"):
        runin = pd.Series(
            np.where(days > 0, WEEK_DAYS * as_float(first["runin_count"]) / days, np.nan),
            index=subject_keys(first).to_numpy(),
        )
    note_runin = "run-in cramps/week vs baseline CTF"
    try:
        require_columns(emg, ["ctf_baseline_hz", "ctf_baseline_censored"], "emg")
        base = emg.drop_duplicates("subject_id")
        ctf = pd.Series(
            np.where(
                as_bool(base["ctf_baseline_censored"]), np.inf, as_float(base["ctf_baseline_hz"])
            ),
            index=subject_keys(base).to_numpy(),
        )
        pair = pd.concat([runin.rename("x"), ctf.rename("y")], axis=1, join="inner").dropna()
        res = spearman_interval(pair["x"].to_numpy(), pair["y"].to_numpy(), level)
        n_cens = int(np.isinf(pair["y"]).sum())
        if n_cens:
            note_runin += f" ({n_cens} censored baseline(s) ranked highest)"
    except ModelDataError as exc:
        res, note_runin = (
            {"estimate": math.nan, "lower": math.nan, "upper": math.nan, "n": 0},
            (str(exc)),
        )
    rows.append({"property": "spearman_runin", **res, "note": note_runin})
    note_change = "change in cramps/week vs change in log CTF (end minus baseline)"
    try:
        freq = frequency_changes(periods).set_index("subject")["change"]
        ctf_change, n_cens = ctf_changes(periods, emg)
        pair = pd.concat(
            [freq.rename("x"), ctf_change.set_index("subject")["change"].rename("y")],
            axis=1,
            join="inner",
        ).dropna()
        res = spearman_interval(pair["x"].to_numpy(), pair["y"].to_numpy(), level)
        if n_cens:
            note_change += f"; {n_cens} subject(s) with a censored CTF excluded"
    except ModelDataError as exc:
        res = {"estimate": math.nan, "lower": math.nan, "upper": math.nan, "n": 0}
        note_change = str(exc)
    rows.append({"property": "spearman_change", **res, "note": note_change})
    return pd.DataFrame(rows)
