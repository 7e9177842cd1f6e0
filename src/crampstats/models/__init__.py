"""Bayesian count and endpoint models with their frequentist twins, and the catalogue's records.

Importing this package does not import PyMC / PyTensor (they are imported when a model is
built), so a process can still choose its PyTensor compile directory
(:func:`crampstats.engine.configure_compiledir`) after importing it. Which models exist, and what
each needs, is registered once in :mod:`crampstats.catalogue` (docs/models.md).
"""

from crampstats.models import afterdischarge, ctf, intensity, responder, safety
from crampstats.models._common import ModelDataError
from crampstats.models.crossover import Crossover, crossover_twin
from crampstats.models.frailty_weekly import FrailtyWeekly, gee_twin
from crampstats.models.multi_trial import MultiTrial, multi_trial_twin
from crampstats.models.nb_glmm import NBGLMM, nb_glmm_twin
from crampstats.models.nb_totals import NBTotals, nb_glm_twin
from crampstats.models.records import (
    ENDPOINT,
    CountEntry,
    EndpointEntry,
    Entry,
    Tables,
    twin_settings,
)
from crampstats.models.zero_inflated import ZINB, Hurdle, hurdle_twin, zinb_twin

__all__ = [
    "ENDPOINT",
    "NBGLMM",
    "ZINB",
    "CountEntry",
    "Crossover",
    "EndpointEntry",
    "Entry",
    "FrailtyWeekly",
    "Hurdle",
    "ModelDataError",
    "MultiTrial",
    "NBTotals",
    "Tables",
    "afterdischarge",
    "crossover_twin",
    "ctf",
    "gee_twin",
    "hurdle_twin",
    "intensity",
    "multi_trial_twin",
    "nb_glm_twin",
    "nb_glmm_twin",
    "responder",
    "safety",
    "twin_settings",
    "zinb_twin",
]
