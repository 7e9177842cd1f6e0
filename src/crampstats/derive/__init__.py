"""Analysis datasets from a validated trial: periods, weeks, EMG, events (rule ``derive``)."""

from crampstats.derive.datasets import (
    COVARIATES,
    adverse_event_listing,
    ae_incidence,
    crossover_periods,
    derive_all,
    diary_records,
    emg_visits,
    primary_diary,
    read_derived,
    subject_columns,
    subject_periods,
    subject_weeks,
    summary_text,
    trial_id_of,
    write_derived,
)
from crampstats.derive.intercurrent import event_summary, flag_records

__all__ = [
    "COVARIATES",
    "adverse_event_listing",
    "ae_incidence",
    "crossover_periods",
    "derive_all",
    "diary_records",
    "emg_visits",
    "event_summary",
    "flag_records",
    "primary_diary",
    "read_derived",
    "subject_columns",
    "subject_periods",
    "subject_weeks",
    "summary_text",
    "trial_id_of",
    "write_derived",
]
