"""The outcome-measures table: reliability, agreement, responsiveness and sample size, one table.

Reliability needs only the run-in and the baseline EMG, so it is computed in any design; the
arm comparisons (changes, SRM by arm, sample size) need a parallel design. Whatever the data
cannot support becomes a table row with a NaN estimate and the reason in ``note``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from crampstats.models._common import ModelDataError
from crampstats.secondary.outcome_measures.agreement import agreement
from crampstats.secondary.outcome_measures.names import (
    AGREEMENT,
    CHANGE_UNITS,
    CTF,
    FREQUENCY,
    RELIABILITY_UNITS,
    TABLE_COLUMNS,
)
from crampstats.secondary.outcome_measures.reliability import (
    ctf_reliability,
    frequency_reliability,
)
from crampstats.secondary.outcome_measures.responsiveness import responsiveness
from crampstats.secondary.outcome_measures.sample_size import sample_size_per_arm

__all__ = ["outcome_measures_table"]


def _note_rows(endpoint: str, properties: list[str], reason: str) -> list[dict[str, Any]]:
    return [
        {
            "endpoint": endpoint,
            "property": prop,
            "estimate": math.nan,
            "lower": math.nan,
            "upper": math.nan,
            "unit": RELIABILITY_UNITS.get(endpoint, {}).get(prop, ""),
            "n": 0,
            "note": reason,
        }
        for prop in properties
    ]


def outcome_measures_table(
    derived: dict[str, pd.DataFrame],
    level: float = 0.95,
    seed: int = 0,
    *,
    method: str = "bayes",
    control_arm: str = "placebo",
    power: float = 0.8,
    alpha: float = 0.05,
    min_exposure_days: int = 4,
    sampler_config: Mapping[str, Any] | None = None,
) -> pd.DataFrame:
    """Reliability, agreement, responsiveness and sample size of every endpoint, one table.

    Parameters
    ----------
    derived
        Derived datasets (``crampstats.derive.derive_all``): ``weekly``, ``periods`` and,
        when present, ``emg`` and ``diary`` (with ``intensity``).
    level
        Interval level.
    seed
        Root seed; the two reliability fits use children of ``SeedSequence(seed)``, so the
        table is identical for the same data and seed.
    method
        ``"bayes"`` (default) or ``"ml"`` for the reliability models.
    control_arm, power, alpha
        Comparator and design of :func:`sample_size_per_arm`.
    min_exposure_days
        Run-in weeks with fewer diary days are dropped (:func:`runin_weeks`).
    sampler_config
        Overrides of the reliability models' sampler settings.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`TABLE_COLUMNS`: one row per endpoint x property. Properties: ``icc``,
        ``icc_observed``, ``sem``, ``mdc95`` (``cramp_frequency`` and ``ctf``; ``ctf`` adds
        ``sem_ratio`` and ``mdc95_ratio``), ``spearman_runin`` and ``spearman_change``
        (endpoint ``cramp_frequency_vs_ctf``), ``srm:<arm>`` and
        ``n_per_arm_for_power:<arm>`` (each active arm against ``control_arm``) per endpoint.
        What the data cannot support is a row with NaN estimate and the reason in ``note``.
    """
    seeds = [
        int(s.generate_state(1, dtype=np.uint32)[0])
        for s in np.random.SeedSequence(int(seed)).spawn(2)
    ]
    rows: list[dict[str, Any]] = []
    weekly, periods = derived.get("weekly"), derived.get("periods")
    emg, diary = derived.get("emg"), derived.get("diary")

    # ---- reliability -----------------------------------------------------------------------------
    for endpoint, data, run, seed_i in (
        (FREQUENCY, weekly, frequency_reliability, seeds[0]),
        (CTF, emg, ctf_reliability, seeds[1]),
    ):
        props = list(RELIABILITY_UNITS[endpoint])
        if data is None or data.empty:
            name = "weekly" if endpoint == FREQUENCY else "emg"
            rows += _note_rows(endpoint, props, f"no derived `{name}` data")
            continue
        kwargs: dict[str, Any] = {"level": level, "seed": seed_i, "method": method}
        if method == "bayes":
            kwargs["sampler_config"] = sampler_config
        if endpoint == FREQUENCY:
            kwargs["min_exposure_days"] = min_exposure_days
        try:
            result = run(data, **kwargs)
        except ModelDataError as exc:
            rows += _note_rows(endpoint, props, str(exc))
            continue
        rows += result.summary.assign(endpoint=endpoint).to_dict("records")

    # ---- agreement -------------------------------------------------------------------------------
    agree_props = ["spearman_runin", "spearman_change"]
    if periods is None or emg is None or emg.empty:
        rows += _note_rows(AGREEMENT, agree_props, "needs derived `periods` and `emg` data")
    else:
        for rec in agreement(periods, emg, level).to_dict("records"):
            rows.append({"endpoint": AGREEMENT, "unit": "Spearman rho", **rec})

    # ---- responsiveness and sample size ----------------------------------------------------------
    if periods is None or periods.empty:
        for endpoint in CHANGE_UNITS:
            rows += _note_rows(endpoint, ["srm", "n_per_arm_for_power"], "no derived `periods`")
    else:
        for rec in responsiveness(periods, emg, diary, level).to_dict("records"):
            prop = "srm" if pd.isna(rec["arm"]) else f"srm:{rec['arm']}"
            rows.append(
                {
                    "endpoint": rec["endpoint"],
                    "property": prop,
                    "estimate": rec["estimate"],
                    "lower": rec["lower"],
                    "upper": rec["upper"],
                    "unit": f"SRM of change in {rec['unit']}",
                    "n": rec["n"],
                    "note": rec["note"],
                }
            )
        sizes = sample_size_per_arm(
            periods, emg, diary, power=power, alpha=alpha, control_arm=control_arm, level=level
        )
        for rec in sizes.to_dict("records"):
            arm = rec["arm"]
            prop = "n_per_arm_for_power" if pd.isna(arm) else f"n_per_arm_for_power:{arm}"
            rows.append(
                {
                    "endpoint": rec["endpoint"],
                    "property": prop,
                    "estimate": rec["estimate"],
                    "lower": rec["lower"],
                    "upper": rec["upper"],
                    "unit": f"patients per arm (power {power:g}, two-sided alpha {alpha:g})",
                    "n": rec["n"],
                    "note": rec["note"],
                }
            )
    table = pd.DataFrame(rows, columns=TABLE_COLUMNS)
    for col in ("estimate", "lower", "upper"):
        table[col] = table[col].astype(float)
    table["n"] = table["n"].fillna(0).astype(np.int64)
    table["note"] = table["note"].fillna("")
    return table.reset_index(drop=True)
