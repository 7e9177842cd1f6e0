"""Analysis datasets from a validated trial: periods, weeks, EMG, events (rule ``derive``)."""

from crampstats.derive.datasets import (
    COVARIATES,
    adverse_event_listing,
    ae_incidence,
    crossover_periods,
    derive_all,
    diary_records,
    emg_visits,
    read_derived,
    subject_columns,
    subject_periods,
    subject_weeks,
    summary_text,
    trial_id_of,
    write_derived,
)

__all__ = [
    "COVARIATES",
    "adverse_event_listing",
    "ae_incidence",
    "crossover_periods",
    "derive_all",
    "diary_records",
    "emg_visits",
    "read_derived",
    "subject_columns",
    "subject_periods",
    "subject_weeks",
    "summary_text",
    "trial_id_of",
    "write_derived",
]
