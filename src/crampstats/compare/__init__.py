"""Result tables of a trial: effects, twins, diagnostics, LOO, rankings (rule ``compare``)."""

from crampstats.compare.fits import AnalysisOutcome, compare_job, failed_fits, run_record
from crampstats.compare.tables import FitRecord, result_tables
from crampstats.compare.verdict import endpoint_verdict_tables

__all__ = [
    "AnalysisOutcome",
    "FitRecord",
    "compare_job",
    "endpoint_verdict_tables",
    "failed_fits",
    "result_tables",
    "run_record",
]
