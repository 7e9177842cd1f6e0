"""The primary model on trials of the project's realistic simulator, derived the production way.

Shared by the missing-data cases (:mod:`crampstats.calibration.missing_data`) and the type I
error case (:mod:`crampstats.calibration.error_rates`): each replicate simulates a trial with
:func:`crampstats.simulate.simulate` (docs/calibration.md defaults unless the design says
otherwise), derives its ``periods`` with :func:`crampstats.derive.derive_all` and fits
:class:`~crampstats.models.NBTotals` with its default priors and sampler; the targets are the
simulator's true log rate ratios of the named arms.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from crampstats.calibration.case import Estimate, Replicate, ReplicateRunner, draws_of
from crampstats.derive import derive_all
from crampstats.engine import diagnose
from crampstats.models import NBTotals
from crampstats.simulate import simulate


def simulator_runner(
    trial_design: Mapping[str, Any], arms: Sequence[str], cores: int
) -> ReplicateRunner:
    """Build :class:`NBTotals` once; return a runner on trials of ``trial_design``.

    Parameters
    ----------
    trial_design
        A parallel design of the simulator (``trial_id`` names the trial whose truth is read).
    arms
        Active arms whose ``log_rr`` are the targets.
    cores
        Chains sampled in parallel.
    """
    model = NBTotals()
    trial_id = str(trial_design["trial_id"])

    def run(seed: np.random.SeedSequence) -> Replicate:
        data_seed, fit_seed = seed.spawn(2)
        trial = simulate(dict(trial_design), data_seed)
        periods = derive_all(trial.tables, {"design": "parallel"})["periods"]
        idata = model.fit(periods, seed=int(fit_seed.generate_state(1)[0]), cores=cores)
        report = diagnose(idata)
        post = idata["posterior"]
        log_rr = trial.truth["trials"][trial_id]["log_rr"]
        estimates = [
            Estimate(f"log_rr[{arm}]", float(log_rr[arm]), draws_of(post, "log_rr", arm=arm))
            for arm in arms
        ]
        return Replicate(estimates, report["status"] == "ok", "; ".join(report["reasons"]))

    return run
