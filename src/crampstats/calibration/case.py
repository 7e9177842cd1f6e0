"""What a calibration case is: a simulator with known truth and the model that must recover it.

A :class:`CalibrationCase` names one model under one simulated design. Its ``start`` builds the
model once (so the compile-once engine pays the compile once per process) and returns a function
that runs one replicate: draw a trial from the case's own generator with the replicate's seed,
fit it with the model's production sampler settings, and return an :class:`Estimate` per target
(the true value and the posterior draws). The study (:mod:`crampstats.calibration.study`) turns
estimates into interval coverage, bias and z-scores; docs/validation.md records the results with
each case's code hash (:func:`code_hash`), so a changed model cannot ship with a stale study.
"""

from __future__ import annotations

import hashlib
import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import ModuleType

import numpy as np
import xarray as xr

from crampstats.models import ModelDataError


@dataclass(frozen=True)
class Estimate:
    """One target of one replicate: its true value and its posterior draws."""

    target: str
    truth: float
    draws: np.ndarray


@dataclass(frozen=True)
class Replicate:
    """What one replicate returns: every target's estimate and whether the fit converged.

    ``converged`` is the engine's diagnostic gate (:func:`crampstats.engine.diagnose`);
    ``note`` says why not. Replicates that fail the gate stay in the study (dropping them would
    bias coverage); the study reports how many there were.
    """

    estimates: Sequence[Estimate]
    converged: bool = True
    note: str = ""


#: ``run(seed)``: simulate one trial from ``seed`` and fit it.
ReplicateRunner = Callable[[np.random.SeedSequence], Replicate]


@dataclass(frozen=True)
class CalibrationCase:
    """One model under one simulated design.

    Attributes
    ----------
    name
        Identifier used in file names and docs/validation.md (``[a-z0-9_]+``).
    model
        The catalogue name of the model calibrated (several cases may share one).
    description
        One sentence: the design simulated and the targets.
    modules
        Modules whose source defines the model and the simulation; their hash pins the
        recorded study (:func:`code_hash`).
    start
        ``start(cores)`` builds the model and returns the replicate runner.
    primary
        Whether the model can be a trial's primary analysis. Every such model needs a
        simulation-based calibration (``sbc``) case or SBC in the slow tests
        (tests/calibration/test_recorded_study.py checks it).
    expect_calibrated
        ``False`` for a case that shows where an analysis's assumptions fail (e.g. data missing
        not at random): its coverage is recorded as a finding, not required to pass.
    replicates
        Replicates of this case's study, overriding the study's (an error-rate case needs more
        than a coverage check).
    null_rate
        For a case whose truth is the null of a one-sided rule: the rule's nominal error rate
        ``a``. The study then also checks the share of replicates whose ``1 - a`` posterior
        quantile lies below the truth (those in which ``P(theta < truth | data) >= 1 - a``
        would declare an effect) against the exact binomial band around ``a``.
    sbc
        ``True`` for simulation-based calibration: every replicate draws all parameters from
        the model's prior, so besides coverage the study checks that the rank of each truth
        among the posterior draws is uniform (:func:`crampstats.calibration.study.sbc_rank`).
    """

    name: str
    model: str
    description: str
    modules: tuple[ModuleType, ...]
    start: Callable[[int], ReplicateRunner] = field(repr=False)
    primary: bool = False
    expect_calibrated: bool = True
    replicates: int | None = None
    null_rate: float | None = None
    sbc: bool = False


#: The models' shared helpers (``crampstats.models._common``): part of every model's code.
MODEL_COMMON: ModuleType = inspect.getmodule(ModelDataError)  # type: ignore[assignment]


def code_hash(case: CalibrationCase) -> str:
    """SHA-256 (first 16 hex digits) of the source of ``case.modules``, in name order."""
    digest = hashlib.sha256()
    for module in sorted(case.modules, key=lambda m: m.__name__):
        digest.update(module.__name__.encode())
        digest.update(inspect.getsource(module).encode())
    return digest.hexdigest()[:16]


def draws_of(posterior: xr.Dataset, var: str, **sel: str) -> np.ndarray:
    """Flattened draws of ``posterior[var]`` at ``sel`` (e.g. ``arm="mexiletine"``)."""
    values = posterior[var]
    if sel:
        values = values.sel(sel)
    return np.asarray(values.values, dtype=float).reshape(-1)
