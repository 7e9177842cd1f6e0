"""Read a trial folder, check it against the data contract, write it typed (rule ``validate``)."""

from crampstats.validate.records import DataWarning, Problem, RawTable
from crampstats.validate.validation import (
    ValidatedTrial,
    ValidationResult,
    read_validated,
    refusal_text,
    summary_text,
    validate,
    write_validated,
    write_validated_into,
)

__all__ = [
    "DataWarning",
    "Problem",
    "RawTable",
    "ValidatedTrial",
    "ValidationResult",
    "read_validated",
    "refusal_text",
    "summary_text",
    "validate",
    "write_validated",
    "write_validated_into",
]
