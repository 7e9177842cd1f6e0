"""The records of the analysis catalogue (:mod:`crampstats.catalogue`): what each analysis declares.

A :class:`CountEntry` is a cramp-frequency model (``crampstats fit``); an :class:`EndpointEntry` is
a secondary endpoint (``crampstats secondary``): a Bayesian model with its frequentist twin, or a
descriptive analysis. Each carries what the planner needs to decide whether it can run on a
trial - the designs it analyses and the data it reads, named as contract tables
(``"adverse_events"``) or columns (``"emg.ctf_hz"``) - and its own seed key, so that adding an
analysis to a run never changes the seeds (and results) of the others.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from crampstats.engine import BayesModel, CountModel

#: The endpoint the count models analyse.
ENDPOINT = "cramp_frequency"

#: ``tables(derived, config, seed) -> {table name: frame}``: a descriptive analysis, or the
#: tables a model endpoint adds to its effects (safety's incidence and signals).
Tables = Callable[[Mapping[str, pd.DataFrame], Mapping[str, Any], int], dict[str, pd.DataFrame]]


def twin_settings(
    function: Callable[..., Any], model_config: Mapping[str, Any], exclude: tuple[str, ...] = ()
) -> dict[str, Any]:
    """Return the entries of a model's config that its twin ``function`` accepts as keywords.

    The twin fits the same rows and terms as the Bayesian model it checks (arms, control arm,
    covariates, baseline handling, ...), whatever settings the model was given; names in
    ``exclude`` are the twin's own options, never taken from the model.
    """
    accepted = set(inspect.signature(function).parameters) - set(exclude)
    return {k: v for k, v in model_config.items() if k in accepted}


@dataclass(frozen=True)
class Entry:
    """What every analysis of the catalogue declares.

    Attributes
    ----------
    id : str
        Catalogue id, as config and file names spell it.
    seed_key : int
        Child of the trial's root ``SeedSequence`` that seeds this analysis.
    designs : tuple of str
        Designs it can analyse.
    needs : tuple of str
        Contract data it reads: a table (``"adverse_events"``) or a column
        (``"diary.intensity"``) that must hold at least one value.
    label : str
        One line for help texts and the report.
    """

    id: str
    seed_key: int
    designs: tuple[str, ...]
    needs: tuple[str, ...]
    label: str

    def seed(self, root: int) -> int:
        """Integer seed of this analysis: child ``seed_key`` of ``SeedSequence(root)``."""
        child = np.random.SeedSequence(int(root), spawn_key=(self.seed_key,))
        return int(child.generate_state(1, dtype=np.uint32)[0])


@dataclass(frozen=True)
class CountEntry(Entry):
    """A cramp-frequency model and its frequentist twin.

    Attributes
    ----------
    model : type
        The :class:`~crampstats.engine.CountModel` subclass.
    data : str
        The derived dataset it reads (``periods``, ``weekly``, ``crossover``).
    twin : callable
        ``twin(frame, **settings) -> DataFrame(arm, log_rr, se, ...)``.
    twin_label : str
        How tables name the twin.
    default : bool
        Planned when ``analysis.models`` is not set (and the design and data allow it).
    several_trials : bool
        Needs data that hold more than one trial.
    """

    model: type[CountModel] | None = None
    data: str = "periods"
    twin: Callable[..., pd.DataFrame] | None = None
    twin_label: str = ""
    default: bool = False
    several_trials: bool = False

    def fit_twin(self, frame: pd.DataFrame, model: CountModel) -> pd.DataFrame:
        """Fit the twin to the rows ``model`` read, with the model's own settings."""
        if self.twin is None:
            raise ValueError(f"model {self.id} has no twin")
        # the count twins' estimation method is their own choice, not the Bayesian model's
        return self.twin(frame, **twin_settings(self.twin, model.model_config, ("method",)))


@dataclass(frozen=True)
class EndpointEntry(Entry):
    """A secondary endpoint: a Bayesian model with its twin, or a descriptive analysis.

    Attributes
    ----------
    model : type or None
        The :class:`~crampstats.engine.BayesModel` subclass; ``None`` for a descriptive analysis.
    frame : callable or None
        ``frame(derived, **options) -> DataFrame``: the rows the model reads.
    frame_options : tuple of (str, str, Any)
        ``(keyword, analysis.secondary key, default)`` passed to ``frame`` from config.
    effects : callable or None
        ``effects(idata, level) -> DataFrame``: the model's summary measures.
    twin : callable or None
        ``twin(frame, level=..., **settings) -> DataFrame``: the frequentist twin.
    tables : callable or None
        Descriptive tables, or tables added beside the model's effects (:data:`Tables`).
    """

    model: type[BayesModel] | None = None
    frame: Callable[..., pd.DataFrame] | None = None
    frame_options: tuple[tuple[str, str, Any], ...] = field(default_factory=tuple)
    effects: Callable[..., pd.DataFrame] | None = None
    twin: Callable[..., pd.DataFrame] | None = None
    tables: Tables | None = None

    def model_frame(
        self, derived: Mapping[str, pd.DataFrame], settings: Mapping[str, Any]
    ) -> pd.DataFrame:
        """Return the rows the model reads, with the options ``analysis.secondary`` sets."""
        if self.frame is None:
            raise ValueError(f"{self.id} is descriptive: it has no model frame")
        options = {kw: settings.get(key, default) for kw, key, default in self.frame_options}
        return self.frame(derived, **options)

    def fit_twin(self, frame: pd.DataFrame, model: BayesModel, level: float) -> pd.DataFrame:
        """Fit the twin to the rows ``model`` read, at interval ``level``, with its settings."""
        if self.twin is None:
            raise ValueError(f"endpoint {self.id} has no twin")
        return self.twin(frame, level=level, **twin_settings(self.twin, model.model_config))
