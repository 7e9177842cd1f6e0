"""Bayesian count models of the catalogue (design.md) and their frequentist twins.

Importing this package does not import PyMC / PyTensor (they are imported when a model is
built), so a process can still choose its PyTensor compile directory
(:func:`crampstats.engine.configure_compiledir`) after importing it.
"""

from __future__ import annotations

from typing import Any

from crampstats.engine import BayesModel
from crampstats.models._common import ModelDataError
from crampstats.models.frailty_weekly import FrailtyWeekly, gee_twin
from crampstats.models.nb_totals import NBTotals, nb_glm_twin

#: Catalogue id -> model class.
MODELS: dict[str, type[BayesModel]] = {
    NBTotals.name: NBTotals,
    FrailtyWeekly.name: FrailtyWeekly,
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
    "FrailtyWeekly",
    "ModelDataError",
    "NBTotals",
    "gee_twin",
    "get_model",
    "nb_glm_twin",
]
