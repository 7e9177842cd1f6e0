"""The type I error of the primary analysis under the global null, with production settings.

``nb_totals_null``: 2,000 trials from the project's realistic simulator
(:func:`crampstats.simulate.simulate`, defaults of docs/calibration.md: run-in selection >= 4
cramps per 14 days, placebo effect 0.75, AR(1) weekly rates on Poisson days, 5 % missing days,
the design's default dropout) with two arms of 60 and no treatment effect (``rr`` 1), derived
the production way (:func:`crampstats.derive.derive_all`) and fitted by
:class:`~crampstats.models.NBTotals` with its default priors and sampler (4 chains x 1,000
draws). The decision rule of the analysis, ``P(RR < 1 | data) >= 0.975``, succeeds exactly when
the posterior 97.5 % quantile of the log rate ratio lies below 0, the truth: so the share of
replicates whose ``q975`` is below the truth is the rule's type I error, checked against the
exact binomial band around 0.025 (:func:`crampstats.calibration.study.summarize`,
``null_rate``). The replicates also give the usual coverage checks.
"""

from __future__ import annotations

import sys

import crampstats.derive.datasets as derive_datasets
import crampstats.simulate.design as simulate_design
import crampstats.simulate.trial as simulate_trial
from crampstats.calibration import realistic
from crampstats.calibration.case import MODEL_COMMON, CalibrationCase, ReplicateRunner
from crampstats.calibration.realistic import simulator_runner
from crampstats.models import nb_totals

TRIAL_ID = "null"
ACTIVE = "quinine"
#: Replicates of the type I error study: the exact 95 % band around 0.025 is 0.0185-0.0320.
REPLICATES = 2000
#: One-sided rate of the analysis' rule P(RR < 1) >= 0.975 when RR = 1.
NOMINAL = 0.025
NULL_DESIGN = {
    "type": "parallel",
    "trial_id": TRIAL_ID,
    "arms": {"placebo": {}, ACTIVE: {"rr": 1.0}},
    "n_per_arm": 60,
    "emg": {"enabled": False},
}


def null_runner(cores: int) -> ReplicateRunner:
    """Return a runner on null trials (:func:`simulator_runner`)."""
    return simulator_runner(NULL_DESIGN, (ACTIVE,), cores)


NB_TOTALS_NULL = CalibrationCase(
    name="nb_totals_null",
    model="nb_totals",
    description=(
        "NB totals with its production priors and sampler on null trials of the realistic "
        "simulator (2 arms x 60, rr 1, default dropout and missing days); the share of "
        "replicates whose 97.5 % quantile lies below the truth is the type I error of "
        "P(RR < 1) >= 0.975, checked against the exact binomial band around 0.025."
    ),
    modules=(
        nb_totals,
        MODEL_COMMON,
        simulate_trial,
        simulate_design,
        derive_datasets,
        realistic,
        sys.modules[__name__],
    ),
    start=null_runner,
    primary=True,
    replicates=REPLICATES,
    null_rate=NOMINAL,
)
