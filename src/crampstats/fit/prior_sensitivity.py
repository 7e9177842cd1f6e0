"""What a fit stores for the prior sensitivity analysis: its log prior and refits under priors.

Two analyses (docs/models.md, "Prior sensitivity"), both summarised without sampling by
:func:`crampstats.compare.sensitivity.prior_sensitivity_rows`:

- **Power-scaling** (Kallioinen et al. 2024, Stat Comput 34:57; ArviZ's ``psense``) reweights the
  posterior draws as if the prior were raised to a power near 1. It needs each draw's log prior,
  which :func:`add_log_prior` stores as the fit's ``log_prior`` group (PyMC's
  :func:`pymc.stats.compute_log_prior` over the free variables, plus the model's prior terms
  written as potentials, e.g. ``multi_trial``'s ``log_rr_prior``).
- **Refits** under named alternative priors (``analysis.prior_sensitivity.priors``: a name and
  model-config overrides; by default ``sceptical`` and ``vague`` on the log rate ratio, see
  :data:`DEFAULT_PRIORS`) with the main fit's seed, so that differences come from the prior and
  not from Monte Carlo noise. :func:`add_prior_refits` stores each refit's posterior (variables
  without a subject dimension) and divergences under ``prior_refits/<name>/`` in the primary
  model's fit, so the workflow's ``fit`` job samples and ``compare`` only summarises.

Nothing here changes the main fit's posterior: the groups are added beside it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from crampstats.config import ConfigError
from crampstats.engine import ATTR_PREFIX, BayesModel, CountModel, PreparedData
from crampstats.errors import CrampstatsError
from crampstats.models import CountEntry

__all__ = [
    "DEFAULT_PRIORS",
    "REFITS_GROUP",
    "UNIT_DIMS",
    "add_log_prior",
    "add_prior_refits",
    "add_prior_sensitivity",
    "alternative_config",
    "has_log_prior",
    "prior_refits",
    "sensitivity_settings",
    "stored_refits",
    "top_level",
]

#: SD of the sceptical log rate ratio prior: Normal(0, sd) with P(RR < 0.75) = 0.1 a priori
#: (-log 0.75 / z_0.9 = 0.2245). Spiegelhalter, Freedman and Parmar (1994): a sceptic gives a
#: small chance to the effect the trial was planned to find (0.75, the MCID assumption of
#: docs/calibration.md, "Gaps").
SCEPTICAL_LOG_RR_SD = 0.2245
#: SD of the vague log rate ratio prior: 95 % of its mass on RR 3e-9 to 3e8, flat over any
#: plausible effect, so the posterior is close to the likelihood alone.
VAGUE_LOG_RR_SD = 10.0
#: Named alternative priors (model-config overrides), the schema's default.
DEFAULT_PRIORS: dict[str, dict[str, Any]] = {
    "sceptical": {"prior_log_rr_sd": SCEPTICAL_LOG_RR_SD},
    "vague": {"prior_log_rr_sd": VAGUE_LOG_RR_SD},
}
#: Defaults of ``analysis.prior_sensitivity`` (also in schemas/trial.schema.yaml), used when a
#: derived folder was written under a config without the key.
DEFAULT_SETTINGS: dict[str, Any] = {
    "enabled": True,
    "priors": DEFAULT_PRIORS,
    "threshold": 0.05,
    "decision_probability": 0.975,
}
#: Fit group holding the refits, one child per prior name.
REFITS_GROUP = "prior_refits"
#: Dimensions of unit-level latent variables (subjects, grouping levels, trial x arm cells):
#: their normal "priors" are the hierarchical population distributions, which power-scaling
#: leaves alone (Kallioinen et al. 2024, section 2.5, selective power-scaling), and the refits do
#: not store.
UNIT_DIMS = ("subject", "group_level", "trial_arm")
#: Name prefix of the standardised trial-level latents of multi_trial (``z_trial``), likewise.
LATENT_PREFIX = "z_"
#: Suffix of the potentials that hold a prior term (``multi_trial``: ``log_rr_prior``); the
#: likelihood potentials end in ``_loglik``.
PRIOR_POTENTIAL_SUFFIX = "_prior"


def sensitivity_settings(config: Mapping[str, Any]) -> dict[str, Any]:
    """Return ``analysis.prior_sensitivity`` with its defaults filled."""
    given = (config.get("analysis") or {}).get("prior_sensitivity") or {}
    return {**DEFAULT_SETTINGS, **given}


def top_level(dataset: xr.Dataset) -> list[str]:
    """Return the population-level variables of ``dataset`` (no unit dim, not a ``z_`` latent)."""
    return [
        str(name)
        for name, var in dataset.data_vars.items()
        if not set(var.dims) & set(UNIT_DIMS) and not str(name).startswith(LATENT_PREFIX)
    ]


# --------------------------------------------------------------------------------------------
# Log prior
# --------------------------------------------------------------------------------------------
def add_log_prior(model: BayesModel, prepared: PreparedData, idata: xr.DataTree) -> xr.DataTree:
    """Return ``idata`` with a ``log_prior`` group: each draw's log prior density per variable.

    Parameters
    ----------
    model
        The model the fit came from (rebuilt here, not recompiled for sampling).
    prepared
        The data it was fitted to.
    idata
        The fit; its posterior is left untouched.

    Returns
    -------
    xarray.DataTree
        ``idata`` with ``log_prior``: one variable per free variable (elementwise, the
        posterior's dims and coordinates; densities of the constrained values, no Jacobian) and
        one per prior potential (per draw).
    """
    from pymc.backends.arviz import apply_function_over_dataset
    from pymc.model.transform.conditioning import remove_value_transforms
    from pymc.stats import compute_log_prior

    pm_model = model.build(prepared)
    posterior = idata["posterior"].to_dataset()
    log_prior = compute_log_prior(
        xr.DataTree.from_dict({"posterior": posterior}),
        model=pm_model,
        extend_inferencedata=False,
        progressbar=False,
    )
    potentials = [p for p in pm_model.potentials if p.name.endswith(PRIOR_POTENTIAL_SUFFIX)]
    if potentials:
        umodel = remove_value_transforms(pm_model)
        names = [p.name for p in potentials]
        # potentials are graphs of the random variables: evaluate them at the draws' values
        outs = umodel.replace_rvs_by_values([umodel.named_vars[name] for name in names])
        fn = umodel.compile_fn(inputs=umodel.value_vars, outs=outs, on_unused_input="ignore")
        free = [rv.name for rv in pm_model.free_RVs]
        dtypes = {umodel.rvs_to_values[rv].name: umodel.rvs_to_values[rv].type.dtype
                  for rv in umodel.free_RVs}  # fmt: skip
        extra = apply_function_over_dataset(
            fn,
            posterior[free].astype(dtypes, copy=False),
            output_var_names=names,
            sample_dims=("chain", "draw"),
            dims={},
            coords={},
            progressbar=False,
        )
        log_prior = log_prior.merge(extra)
    # the compiled model may label units 0..n-1 (crossover); use the posterior's labels
    log_prior = log_prior.assign_coords(
        {d: posterior[d].values for d in log_prior.dims if d in posterior.coords}
    )
    idata["log_prior"] = xr.DataTree(log_prior)
    return idata


# --------------------------------------------------------------------------------------------
# Refits under alternative priors
# --------------------------------------------------------------------------------------------
def alternative_config(
    config: Mapping[str, Any], model_id: str, overrides: Mapping[str, Any]
) -> dict[str, Any]:
    """Return the trial config with ``overrides`` added to ``analysis.model_config[model_id]``."""
    analysis = dict(config.get("analysis") or {})
    model_config = {k: dict(v) for k, v in (analysis.get("model_config") or {}).items()}
    model_config[model_id] = {**model_config.get(model_id, {}), **overrides}
    analysis["model_config"] = model_config
    return {**config, "analysis": analysis}


def prior_refits(
    entry: CountEntry,
    frame: pd.DataFrame,
    config: Mapping[str, Any],
    make_model: Callable[[CountEntry, Mapping[str, Any]], CountModel],
    *,
    priors: Mapping[str, Mapping[str, Any]] | None = None,
    cores: int | None = None,
    progress: bool = False,
) -> dict[str, xr.DataTree]:
    """Refit a count model under each named prior, with the main fit's seed.

    Parameters
    ----------
    entry
        The model's catalogue record.
    frame
        The data frame the main fit read (:func:`crampstats.fit.model_frame`).
    config
        Resolved trial configuration.
    make_model
        Builds the model from a trial config (:func:`crampstats.fit.make_model`).
    priors
        Prior name -> model-config overrides; default ``analysis.prior_sensitivity.priors``.
        ``{}`` refits under the configured prior (it reproduces the main fit draw for draw).
    cores
        Chains in parallel.
    progress
        Show the sampler's progress bar.

    Returns
    -------
    dict
        Prior name -> tree with ``posterior`` (population-level variables, :func:`top_level`) and
        ``sample_stats`` (``diverging``); the posterior attrs keep the refit's model id, config
        and seed, plus ``crampstats_prior`` and ``crampstats_prior_overrides``.

    Raises
    ------
    crampstats.config.ConfigError
        If a prior names a model-config key the model does not have.
    """
    if priors is None:
        priors = sensitivity_settings(config)["priors"]
    seed = entry.seed(config.get("seed", 0))
    out: dict[str, xr.DataTree] = {}
    for name, overrides in priors.items():
        try:
            model = make_model(entry, alternative_config(config, entry.id, overrides))
        except CrampstatsError as exc:  # the model refuses unknown keys
            raise ConfigError(f"analysis.prior_sensitivity.priors.{name}: {exc}") from None
        idata = model.fit(frame, seed=seed, cores=cores, progress=progress)
        posterior = idata["posterior"].to_dataset()
        kept = posterior[top_level(posterior)]
        kept.attrs = {
            **posterior.attrs,
            f"{ATTR_PREFIX}prior": str(name),
            f"{ATTR_PREFIX}prior_overrides": json.dumps(dict(overrides), sort_keys=True),
        }
        stats = idata["sample_stats"].to_dataset()[["diverging"]]
        out[str(name)] = xr.DataTree.from_dict({"posterior": kept, "sample_stats": stats})
    return out


def add_prior_refits(idata: xr.DataTree, refits: Mapping[str, xr.DataTree]) -> xr.DataTree:
    """Return ``idata`` with the refits stored under ``prior_refits/<name>/``."""
    groups = {
        f"{name}/{group}": tree[group].to_dataset()
        for name, tree in refits.items()
        for group in ("posterior", "sample_stats")
    }
    idata[REFITS_GROUP] = xr.DataTree.from_dict(groups)
    return idata


def stored_refits(idata: xr.DataTree) -> dict[str, xr.DataTree]:
    """Return the refits stored in a fit (prior name -> tree), empty when there are none."""
    if REFITS_GROUP not in idata.children:
        return {}
    return {str(name): node for name, node in idata[REFITS_GROUP].children.items()}


def has_log_prior(idata: xr.DataTree) -> bool:
    """Whether the fit holds a ``log_prior`` group."""
    return "log_prior" in idata.children and bool(np.size(list(idata["log_prior"].data_vars)))


def add_prior_sensitivity(
    idata: xr.DataTree,
    entry: CountEntry,
    model: CountModel,
    frame: pd.DataFrame,
    config: Mapping[str, Any],
    make_model: Callable[[CountEntry, Mapping[str, Any]], CountModel],
    *,
    primary: bool,
    cores: int | None = None,
    progress: bool = False,
) -> xr.DataTree:
    """Add what the prior sensitivity analysis needs to a fresh fit (the fit step's hook).

    With ``analysis.prior_sensitivity.enabled`` (default): the ``log_prior`` group for every count
    fit, and for the primary model the refits under the named priors (none under the plan's
    exchangeable arm-effect prior, which those priors do not reach). Disabled: ``idata`` as is.
    """
    settings = sensitivity_settings(config)
    if not settings["enabled"]:
        return idata
    idata = add_log_prior(model, model.prepare(frame), idata)
    # the plan's exchangeable prior replaces the arm-effect prior the named priors override, so
    # refits would repeat the main fit; power-scaling (of the hierarchical prior) still applies
    exchangeable = model.model_config.get("log_rr_prior") == "exchangeable"
    if primary and settings["priors"] and not exchangeable:
        refits = prior_refits(
            entry, frame, config, make_model, priors=settings["priors"], cores=cores,
            progress=progress,
        )  # fmt: skip
        idata = add_prior_refits(idata, refits)
    return idata
