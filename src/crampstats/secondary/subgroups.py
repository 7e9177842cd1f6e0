"""The subgroup analysis of a trial: one hierarchical fit per subject column, with its twin.

:func:`subgroup_tables` is the catalogue's ``tables`` callable of the ``subgroups`` analysis
(``tables(derived, config, seed)``). It analyses ``cramp_origin`` and ``etiology`` (the
contract's subject columns, docs/data-contract.md) and every column of ``analysis.subgroups``,
each with :class:`~crampstats.models.subgroups.Subgroups` (sampled) and
:func:`~crampstats.models.subgroups.subgroup_twin`, and returns

- ``subgroups``: :data:`COLUMNS`, one row per variable, level and active arm; a variable that
  cannot be analysed (column absent, a single level) is one row with ``status = not analysed``
  and the reason in ``note``: optional data stay optional;
- ``diagnostics_secondary``: the convergence of each fit (model ``subgroups[<variable>]``).
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from crampstats.engine import diagnose
from crampstats.models import ModelDataError
from crampstats.models.subgroups import (
    DEFAULT_VARIABLES,
    Subgroups,
    plan_label,
    subgroup_effects,
    subgroup_frame,
    subgroup_twin,
)
from crampstats.secondary.endpoints import DIAGNOSTICS_COLUMNS

__all__ = ["COLUMNS", "subgroup_tables", "subgroup_variables"]

COLUMNS = [
    "trial_id", "variable", "level", "arm", "comparator", "n", "n_control", "rr_median",
    "rr_lower", "rr_upper", "p_rr_below_1", "interaction_median", "interaction_lower",
    "interaction_upper", "p_interaction", "tau_median", "rr_twin", "rr_twin_lower",
    "rr_twin_upper", "label", "status", "note",
]  # fmt: skip


def subgroup_variables(config: Mapping[str, Any]) -> list[str]:
    """Return the contract's subgroup columns, then ``analysis.subgroups`` (each once, in order)."""
    named = list((config.get("analysis") or {}).get("subgroups") or [])
    return list(dict.fromkeys([*DEFAULT_VARIABLES, *(str(v) for v in named)]))


def _seed(root: int, variable: str) -> int:
    """Seed of one variable's fit: independent of which other variables are analysed."""
    child = np.random.SeedSequence(int(root), spawn_key=(zlib.crc32(variable.encode()),))
    return int(child.generate_state(1, dtype=np.uint32)[0])


def subgroup_tables(
    derived: Mapping[str, pd.DataFrame], config: Mapping[str, Any], seed: int
) -> dict[str, pd.DataFrame]:
    """Fit every subgroup analysis of a trial and return its tables (module docstring).

    Parameters
    ----------
    derived
        Derived datasets; reads ``periods``.
    config
        Resolved trial configuration (``control_arm``, ``arms``, ``analysis.subgroups``,
        ``analysis.level``, ``analysis.sampler``, ``analysis.diagnostics``,
        ``analysis.secondary.model_config.subgroups`` for prior overrides).
    seed
        The analysis's seed (each variable's fit gets its own child).

    Returns
    -------
    dict
        ``subgroups`` and ``diagnostics_secondary``.
    """
    analysis = config.get("analysis") or {}
    level = float(analysis.get("level", 0.95))
    trial_id = str(config.get("trial_id", ""))
    control = str(config.get("control_arm", "placebo"))
    overrides = dict(
        ((analysis.get("secondary") or {}).get("model_config") or {}).get("subgroups") or {}
    )
    min_per_arm = int(overrides.pop("min_per_arm", 3))
    sampler = {k: v for k, v in (analysis.get("sampler") or {}).items() if v is not None}
    rows: list[pd.DataFrame] = []
    diagnostics = []
    for variable in subgroup_variables(config):
        head = {"trial_id": trial_id, "variable": variable, "comparator": control}
        head["label"] = plan_label(variable, config)
        try:
            sub = subgroup_frame(derived["periods"], variable, control, min_per_arm)
        except ModelDataError as exc:
            rows.append(pd.DataFrame([{**head, "status": "not analysed", "note": str(exc)}]))
            continue
        model_config = {"control_arm": control, "levels": sub.levels, **overrides}
        if config.get("arms"):
            present = set(sub.frame["arm"].astype(str))
            model_config["arms"] = [a for a in config["arms"] if a in present]
        model = Subgroups(model_config, sampler or None)
        idata = model.fit(sub.frame, seed=_seed(seed, variable))
        diag = diagnose(idata, analysis.get("diagnostics"))
        effects = subgroup_effects(idata, level=level)
        twin = subgroup_twin(
            sub.frame, sub.levels, control, model_config.get("arms"), level=level
        ).set_index(["arm", "level"])
        keys = pd.MultiIndex.from_frame(effects[["arm", "level"]])
        twin = twin.reindex(keys)
        note = "; ".join(sub.notes + ([] if twin["converged"].all() else ["twin did not converge"]))
        rows.append(
            effects.assign(
                **head,
                rr_twin=twin["rr"].to_numpy(),
                rr_twin_lower=twin["rr_lower"].to_numpy(),
                rr_twin_upper=twin["rr_upper"].to_numpy(),
                status=diag["status"],
                note=note,
            )
        )
        diagnostics.append(
            {
                "trial_id": trial_id,
                "endpoint": "subgroups",
                "model": f"subgroups[{variable}]",
                **{k: diag[k] for k in DIAGNOSTICS_COLUMNS[3:8]},
                "reasons": "; ".join(diag["reasons"]),
            }
        )
    table = pd.concat(rows, ignore_index=True).reindex(columns=COLUMNS)
    return {
        "subgroups": table,
        "diagnostics_secondary": pd.DataFrame(diagnostics, columns=DIAGNOSTICS_COLUMNS),
    }
