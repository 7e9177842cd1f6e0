"""The catalogue of analyses (count models, secondary endpoints) and the planner every run uses."""

from crampstats.catalogue.entries import (
    CATALOGUE,
    COUNT_MODELS,
    ENDPOINTS,
    count_entry,
    endpoint_entry,
)
from crampstats.catalogue.planning import (
    TrialPlan,
    available_data,
    n_trials,
    plan_folder,
    plan_trial,
)

__all__ = [
    "CATALOGUE",
    "COUNT_MODELS",
    "ENDPOINTS",
    "TrialPlan",
    "available_data",
    "count_entry",
    "endpoint_entry",
    "n_trials",
    "plan_folder",
    "plan_trial",
]
