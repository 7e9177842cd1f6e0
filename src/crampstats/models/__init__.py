"""Bayesian count models of the catalogue (design.md) and their frequentist twins.

Importing this package does not import PyMC / PyTensor (they are imported when a model is
built), so a process can still choose its PyTensor compile directory
(:func:`crampstats.engine.configure_compiledir`) after importing it.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import pandas as pd

from crampstats.engine import CountModel
from crampstats.models._common import ModelDataError
from crampstats.models.crossover import Crossover, crossover_twin
from crampstats.models.frailty_weekly import FrailtyWeekly, gee_twin
from crampstats.models.multi_trial import MultiTrial, multi_trial_twin
from crampstats.models.nb_glmm import NBGLMM, nb_glmm_twin
from crampstats.models.nb_totals import NBTotals, nb_glm_twin
from crampstats.models.zero_inflated import ZINB, Hurdle, hurdle_twin, zinb_twin

#: Catalogue id -> model class.
MODELS: dict[str, type[CountModel]] = {
    cls.name: cls for cls in (NBTotals, FrailtyWeekly, NBGLMM, ZINB, Hurdle, Crossover, MultiTrial)
}

Twin = Callable[[pd.DataFrame, CountModel], pd.DataFrame]


def _twin(function: Callable[..., pd.DataFrame], label: str) -> Twin:
    """Adapt a twin ``function(frame, **settings)`` to ``twin(frame, model)``.

    The model's config supplies every setting the twin accepts (arms, covariates, trend, ...), so
    the twin fits the same rows and terms as the Bayesian model it checks.
    """
    accepted = set(inspect.signature(function).parameters) - {"method"}

    def twin(frame: pd.DataFrame, model: CountModel) -> pd.DataFrame:
        settings = {k: v for k, v in model.model_config.items() if k in accepted}
        return function(frame, **settings)

    twin.twin_name = label  # type: ignore[attr-defined]
    twin.__name__ = function.__name__
    return twin


#: Catalogue id -> frequentist twin ``f(frame, model) -> DataFrame(arm, log_rr, se, ...)``.
TWINS: dict[str, Twin] = {
    "nb_totals": _twin(nb_glm_twin, "statsmodels NB2 GLM"),
    "frailty_weekly": _twin(gee_twin, "statsmodels NB GEE, exchangeable"),
    "nb_glmm": _twin(nb_glmm_twin, "statsmodels NB GLM, subject-clustered SE"),
    "zinb": _twin(zinb_twin, "statsmodels ZINB (totals)"),
    "hurdle": _twin(hurdle_twin, "statsmodels NB hurdle (totals)"),
    "crossover": _twin(crossover_twin, "statsmodels NB GLM, subject fixed effects"),
    "multi_trial": _twin(multi_trial_twin, "per-trial NB GLMs, DerSimonian-Laird pooling"),
}


def get_model(
    name: str,
    model_config: dict[str, Any] | None = None,
    sampler_config: dict[str, Any] | None = None,
) -> CountModel:
    """Instantiate the catalogue model ``name`` with optional config overrides.

    Parameters
    ----------
    name
        Catalogue id, e.g. ``"nb_totals"``.
    model_config, sampler_config
        Overrides of the model's defaults.

    Returns
    -------
    CountModel
        The model object.

    Raises
    ------
    KeyError
        If ``name`` is not (yet) implemented.
    """
    try:
        cls = MODELS[name]
    except KeyError:
        raise KeyError(f"unknown model {name!r}; implemented: {sorted(MODELS)}") from None
    return cls(model_config, sampler_config)


__all__ = [
    "MODELS",
    "NBGLMM",
    "TWINS",
    "ZINB",
    "Crossover",
    "FrailtyWeekly",
    "Hurdle",
    "ModelDataError",
    "MultiTrial",
    "NBTotals",
    "crossover_twin",
    "gee_twin",
    "get_model",
    "hurdle_twin",
    "multi_trial_twin",
    "nb_glm_twin",
    "nb_glmm_twin",
    "zinb_twin",
]
