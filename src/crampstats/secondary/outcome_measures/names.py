"""Endpoint labels, units and fixed constants of the outcome-measures table."""

from __future__ import annotations

__all__ = [
    "AFTERDISCHARGE",
    "AGREEMENT",
    "BASELINE_VISITS",
    "CHANGE_UNITS",
    "CTF",
    "FREQUENCY",
    "INTENSITY",
    "RELIABILITY_UNITS",
    "TABLE_COLUMNS",
    "WEEK_DAYS",
    "Z_MDC",
]

#: Columns of ``tables/outcome_measures.csv`` (before the integrator's ``trial_id``).
TABLE_COLUMNS = ["endpoint", "property", "estimate", "lower", "upper", "unit", "n", "note"]

#: z of the 95 % minimal detectable change (fixed by definition, whatever the table's level).
Z_MDC = 1.959963984540054
#: Days in the week to which weekly cramp frequency is scaled.
WEEK_DAYS = 7.0
#: Baseline EMG visits whose test-retest reliability is assessed.
BASELINE_VISITS = ("baseline_1", "baseline_2")
#: Endpoint labels in the table.
FREQUENCY, CTF, AFTERDISCHARGE, INTENSITY = (
    "cramp_frequency",
    "ctf",
    "afterdischarge_grade",
    "intensity",
)
AGREEMENT = "cramp_frequency_vs_ctf"
RELIABILITY_UNITS = {
    FREQUENCY: {
        "icc": "proportion, log scale",
        "icc_observed": "proportion, cramps/week",
        "sem": "cramps/week",
        "mdc95": "cramps/week",
    },
    CTF: {
        "icc": "proportion, log scale",
        "icc_observed": "proportion, Hz",
        "sem": "log Hz",
        "mdc95": "log Hz",
        "sem_ratio": "ratio",
        "mdc95_ratio": "ratio",
    },
}
#: Per endpoint of the responsiveness analysis: unit of the change and which direction is better.
CHANGE_UNITS = {
    FREQUENCY: "cramps/week",
    CTF: "log Hz",
    AFTERDISCHARGE: "grade",
    INTENSITY: "0-10 rating",
}
