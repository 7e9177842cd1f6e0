"""Measurement properties of the cramp endpoints: reliability, agreement, responsiveness, size.

No validated, reliable cramp outcome measure has been published (docs/calibration.md, "Gaps");
this package computes the properties from a trial's own data, written to
``tables/outcome_measures.csv`` by :func:`outcome_measures_table`. One module per concern:

- :mod:`~crampstats.secondary.outcome_measures.names`: endpoint labels, units, constants;
- :mod:`~crampstats.secondary.outcome_measures.data`: run-in weeks and baseline CTF pairs used
  as repeated measurements;
- :mod:`~crampstats.secondary.outcome_measures.likelihood`: marginal likelihood of
  interval-censored log CTFs (subject effect integrated out);
- :mod:`~crampstats.secondary.outcome_measures.models`: the Bayesian reliability models;
- :mod:`~crampstats.secondary.outcome_measures.reliability`: ICC, SEM and MDC from those
  models and from their maximum-likelihood twins (methods and priors in its docstring);
- :mod:`~crampstats.secondary.outcome_measures.changes`: per-subject change from baseline;
- :mod:`~crampstats.secondary.outcome_measures.agreement`: diary frequency against CTF;
- :mod:`~crampstats.secondary.outcome_measures.responsiveness`: standardised response mean;
- :mod:`~crampstats.secondary.outcome_measures.sample_size`: patients per arm at one design;
- :mod:`~crampstats.secondary.outcome_measures.table`: all of it in one table.
"""

from __future__ import annotations

from crampstats.numerics import interval_logprob
from crampstats.secondary.outcome_measures.agreement import agreement, spearman_interval
from crampstats.secondary.outcome_measures.data import ctf_baseline_pairs, runin_weeks
from crampstats.secondary.outcome_measures.likelihood import ctf_marginal_loglik
from crampstats.secondary.outcome_measures.models import CTFReliability, RunInReliability
from crampstats.secondary.outcome_measures.names import (
    AFTERDISCHARGE,
    AGREEMENT,
    BASELINE_VISITS,
    CHANGE_UNITS,
    CTF,
    FREQUENCY,
    INTENSITY,
    RELIABILITY_UNITS,
    TABLE_COLUMNS,
    WEEK_DAYS,
    Z_MDC,
)
from crampstats.secondary.outcome_measures.reliability import (
    ReliabilityResult,
    count_reliability,
    ctf_reliability,
    ctf_reliability_ml,
    frequency_reliability,
    frequency_reliability_ml,
    lognormal_reliability,
)
from crampstats.secondary.outcome_measures.responsiveness import responsiveness, srm_interval
from crampstats.secondary.outcome_measures.sample_size import (
    normal_n_per_arm,
    sample_size_per_arm,
)
from crampstats.secondary.outcome_measures.table import outcome_measures_table

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
    "CTFReliability",
    "ReliabilityResult",
    "RunInReliability",
    "agreement",
    "count_reliability",
    "ctf_baseline_pairs",
    "ctf_marginal_loglik",
    "ctf_reliability",
    "ctf_reliability_ml",
    "frequency_reliability",
    "frequency_reliability_ml",
    "interval_logprob",
    "lognormal_reliability",
    "normal_n_per_arm",
    "outcome_measures_table",
    "responsiveness",
    "runin_weeks",
    "sample_size_per_arm",
    "spearman_interval",
    "srm_interval",
]
