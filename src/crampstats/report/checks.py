"""Sentences that say when a per-patient probability or a LOO comparison cannot be trusted.

Pure functions from ``tables/patients.csv`` and ``tables/loo.csv`` to plain strings and counts
(the templates escape them). Tables written before these columns existed are read as they
were: every patient identified, every LOO row taken at face value.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from crampstats.report.text import integer, num

#: P(own benefit) above which a patient is counted as likely to benefit (below 1 - it: unlikely).
LIKELY = 0.9


def _flag(frame: pd.DataFrame, column: str, default: bool) -> pd.Series:
    """Return a boolean column read back from CSV (``True``/``False`` strings or bools)."""
    if column not in frame:
        return pd.Series(default, index=frame.index)
    values = frame[column]
    if values.dtype == bool:
        return values
    return values.astype(str).str.strip().str.lower().isin({"true", "1", "1.0"})


def patient_benefit_summary(pts: pd.DataFrame, comparator: str) -> dict[str, Any]:
    """Count likely / unlikely benefit among identified patient-treatment pairs; say why not.

    Parameters
    ----------
    pts
        ``tables/patients.csv``.
    comparator
        The control arm's name, for the sentence.

    Returns
    -------
    dict
        ``n_identified``, ``n_likely`` (P > 0.9), ``n_likely_robust`` (also under the
        halved and doubled ``sigma_d`` prior scale), ``n_unlikely`` (P < 0.1), ``n_withheld``
        (formatted counts), ``has_sensitivity`` and ``withheld`` (a sentence, empty when
        nothing was withheld), ``unreliable_sensitivity`` (a sentence, empty when every
        reweighting was reliable).
    """
    identified = _flag(pts, "identified", True)
    p = pd.to_numeric(pts["p_own_benefit"], errors="coerce").where(identified)
    half = pd.to_numeric(pts.get("p_own_benefit_sd_half", pd.Series(np.nan, pts.index)))
    double = pd.to_numeric(pts.get("p_own_benefit_sd_double", pd.Series(np.nan, pts.index)))
    has_sensitivity = bool((half.notna() | double.notna()).any())
    likely = p > LIKELY
    robust = likely & (half > LIKELY) & (double > LIKELY)
    n_withheld = int((~identified).sum())
    withheld = ""
    if n_withheld:
        withheld = (
            f"P(own benefit) is not reported for {integer(n_withheld)} of {integer(len(pts))} "
            f"patient-treatment pairs: they had fewer than 2 periods on the treatment or on "
            f"{comparator} (an AB/BA crossover has one of each), so a patient's own effect "
            "cannot be separated from the variation between periods within the same patient, "
            "and the probability would reflect the assumed spread of patients' effects (the "
            "prior of sigma_d) rather than the data. Their intervals are shown, but they rest "
            "on the same assumption: these data inform the mean effect, not each patient's own."
        )
    unreliable = ""
    k = pd.to_numeric(pts.get("sensitivity_k", pd.Series(np.nan, pts.index)), errors="coerce")
    bad = identified & (k > 0.7)
    if bad.any():
        unreliable = (
            f"The prior sensitivity of {integer(bad.sum())} pairs is not shown: importance "
            f"reweighting was unreliable (Pareto k up to {num(k[bad].max(), 2)} > 0.7)."
        )
    return {
        "n_identified": integer(identified.sum()),
        "n_likely": integer(likely.sum()),
        "n_likely_robust": integer(robust.sum()),
        "n_unlikely": integer((p < 1 - LIKELY).sum()),
        "n_withheld": integer(n_withheld),
        "any_identified": bool(identified.any()),
        "has_sensitivity": has_sensitivity,
        "withheld": withheld,
        "unreliable_sensitivity": unreliable,
    }


def loo_reliability(loo: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """Blank the ranking of LOO comparisons that cannot be trusted, and say why in words.

    Parameters
    ----------
    loo
        ``tables/loo.csv``.

    Returns
    -------
    table : pandas.DataFrame
        ``loo`` with ``elpd_diff``, ``dse`` and ``weight`` set to NaN in every group of models
        (same ``data``) that holds an unreliable row, so no ranking is shown as if it were
        reliable.
    sentences : list of str
        One per unreliable row: model, data and the reason (``note``).
    """
    if "reliable" not in loo:  # a table written before the reliability columns
        return loo, []
    reliable = _flag(loo, "reliable", True)
    group = loo["data"].astype(str) if "data" in loo else pd.Series("", index=loo.index)
    bad_groups = set(group[~reliable])
    out = loo.copy()
    masked = group.isin(bad_groups)
    for col in ("elpd_diff", "dse", "weight"):
        if col in out:
            out[col] = out[col].astype(float).where(~masked)
    sentences = []
    for i in loo.index[~reliable]:
        several = int((group == group[i]).sum()) > 1
        sentences.append(
            f"{loo.at[i, 'model']} ({group[i]} data): {loo.at[i, 'note']}."
            + (" The models of this data set are therefore not ranked." if several else "")
        )
    return out, sentences
