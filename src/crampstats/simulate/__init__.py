"""Calibrated simulated trials in the data contract, from a design (``crampstats simulate``)."""

from crampstats.simulate.adam import adam_mapping, export_adam
from crampstats.simulate.design import load_design, resolve_design, validate_design
from crampstats.simulate.trial import COLUMNS, SimulatedTrial, simulate, summary_text, write_trial

__all__ = [
    "COLUMNS",
    "SimulatedTrial",
    "adam_mapping",
    "export_adam",
    "load_design",
    "resolve_design",
    "simulate",
    "summary_text",
    "validate_design",
    "write_trial",
]
