"""Bayesian count models of the catalogue (design.md) and their frequentist twins.

Importing this package does not import PyMC / PyTensor (they are imported when a model is
built), so a process can still choose its PyTensor compile directory
(:func:`crampstats.engine.configure_compiledir`) after importing it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pandas as pd

from crampstats.engine import BayesModel
from crampstats.models._common import ModelDataError
from crampstats.models.frailty_weekly import FrailtyWeekly, gee_twin
from crampstats.models.nb_totals import NBTotals, nb_glm_twin

#: Catalogue id -> model class.
MODELS: dict[str, type[BayesModel]] = {
    NBTotals.name: NBTotals,
    FrailtyWeekly.name: FrailtyWeekly,
}


def _config_kwargs(model: BayesModel, *keys: str) -> dict[str, Any]:
    return {key: model.model_config[key] for key in keys}


def _nb_totals_twin(frame: pd.DataFrame, model: BayesModel) -> pd.DataFrame:
    keys = ("control_arm", "arms", "covariates", "period", "missing_baseline")
    return nb_glm_twin(frame, **_config_kwargs(model, *keys))


def _frailty_weekly_twin(frame: pd.DataFrame, model: BayesModel) -> pd.DataFrame:
    keys = ("control_arm", "arms", "covariates", "trend", "period", "missing_baseline")
    return gee_twin(frame, **_config_kwargs(model, *keys))


_nb_totals_twin.twin_name = "statsmodels NB2 GLM"  # type: ignore[attr-defined]
_frailty_weekly_twin.twin_name = "statsmodels NB GEE, exchangeable"  # type: ignore[attr-defined]

#: Catalogue id -> frequentist twin ``f(frame, model) -> DataFrame(arm, log_rr, se, ...)``
#: fitted to the same rows and terms as the model (its config supplies arms, covariates, ...).
TWINS: dict[str, Callable[[pd.DataFrame, BayesModel], pd.DataFrame]] = {
    NBTotals.name: _nb_totals_twin,
    FrailtyWeekly.name: _frailty_weekly_twin,
}


def get_model(
    name: str,
    model_config: dict[str, Any] | None = None,
    sampler_config: dict[str, Any] | None = None,
) -> BayesModel:
    """Instantiate the catalogue model ``name`` with optional config overrides.

    Parameters
    ----------
    name
        Catalogue id, e.g. ``"nb_totals"``.
    model_config, sampler_config
        Overrides of the model's defaults.

    Returns
    -------
    BayesModel
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
    "TWINS",
    "FrailtyWeekly",
    "ModelDataError",
    "NBTotals",
    "gee_twin",
    "get_model",
    "nb_glm_twin",
]
