"""Secondary endpoints: EMG, intensity, responders, safety, outcome measures (``secondary``)."""

from crampstats.secondary.descriptive import (
    cramp_potential_table,
    cramp_potential_tables,
    location_table,
    location_tables,
    outcome_measures_tables,
    safety_tables,
)
from crampstats.secondary.endpoints import (
    DIAGNOSTICS_COLUMNS,
    EFFECTS_COLUMNS,
    TABLES,
    EndpointResult,
    combine,
    failed_endpoint,
    make_endpoint_model,
    read_endpoint,
    run_endpoint,
    run_endpoint_or_fail,
    secondary_job,
    summarize_endpoint,
    write_secondary,
)

__all__ = [
    "DIAGNOSTICS_COLUMNS",
    "EFFECTS_COLUMNS",
    "TABLES",
    "EndpointResult",
    "combine",
    "cramp_potential_table",
    "cramp_potential_tables",
    "failed_endpoint",
    "location_table",
    "location_tables",
    "make_endpoint_model",
    "outcome_measures_tables",
    "read_endpoint",
    "run_endpoint",
    "run_endpoint_or_fail",
    "safety_tables",
    "secondary_job",
    "summarize_endpoint",
    "write_secondary",
]
