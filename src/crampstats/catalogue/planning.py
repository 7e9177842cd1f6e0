"""Plan a trial's analyses from its configuration and the data it holds.

One function, :func:`plan_trial`, decides which count models are fitted (primary first) and which
secondary endpoints are analysed; ``crampstats analyze`` calls it on the validated tables and the
Snakemake workflow calls it (through :func:`plan_folder`) when it builds its jobs, so the two can
never plan differently. An analysis whose data are absent is skipped with the reason; one that the
config asks for by name but cannot run is a configuration error, raised before anything is fitted.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from crampstats.catalogue.entries import COUNT_MODELS, ENDPOINTS, count_entry
from crampstats.config import ConfigError
from crampstats.derive import subject_columns
from crampstats.errors import CrampstatsError
from crampstats.models import CountEntry, EndpointEntry, ModelDataError
from crampstats.plan import check_plan, parse_plan
from crampstats.validate import refusal_text, validate


@dataclass(frozen=True)
class TrialPlan:
    """The analyses of one trial.

    Attributes
    ----------
    models : tuple of CountEntry
        Count models to fit; the first is the primary analysis.
    endpoints : tuple of EndpointEntry
        Secondary endpoints to analyse, in catalogue order.
    skipped : dict
        Analysis id -> why it is not run (absent data or a design it cannot analyse).
    """

    models: tuple[CountEntry, ...]
    endpoints: tuple[EndpointEntry, ...]
    skipped: dict[str, str] = field(default_factory=dict)

    @property
    def primary(self) -> CountEntry:
        """The primary model."""
        return self.models[0]

    def record(self) -> dict[str, Any]:
        """Return the plan as provenance records it: ids and the reasons for skipping."""
        return {
            "models": [m.id for m in self.models],
            "primary": self.primary.id,
            "secondary_endpoints": [e.id for e in self.endpoints],
            "skipped": dict(self.skipped),
        }


def available_data(tables: Mapping[str, pd.DataFrame]) -> frozenset[str]:
    """Contract tables with records and ``table.column`` names holding at least one value.

    Parameters
    ----------
    tables
        Canonical tables (validated, or read and mapped).

    Returns
    -------
    frozenset of str
        E.g. ``{"subjects", "subjects.arm", "diary", "diary.intensity", ...}``.
    """
    found: set[str] = set()
    for name, frame in tables.items():
        if frame is None or frame.empty:
            continue
        found.add(name)
        found.update(f"{name}.{column}" for column in frame.columns if frame[column].notna().any())
    return frozenset(found)


def configured_data(config: Mapping[str, Any], available: frozenset[str]) -> frozenset[str]:
    """Return the data config declares: ``analysis.subgroups`` if a column it names is present.

    A need may name such a config key (the subgroup analysis runs on the contract's subgroup
    columns or on the subject columns the user configures).
    """
    columns = (config.get("analysis") or {}).get("subgroups") or []
    if any(f"subjects.{c}" in available for c in columns):
        return frozenset({"analysis.subgroups"})
    return frozenset()


def n_trials(tables: Mapping[str, pd.DataFrame]) -> int:
    """Count the distinct ``trial_id`` values of the subjects table (1 without the column)."""
    subjects = tables.get("subjects")
    if subjects is None or "trial_id" not in subjects.columns:
        return 1
    return max(int(subjects["trial_id"].nunique()), 1)


def _missing(needs: tuple[str, ...], available: frozenset[str]) -> list[str]:
    # "a|b": either will do (e.g. the subgroup analysis needs one subgroup column)
    return [
        need.replace("|", " or ")
        for need in needs
        if not any(n in available for n in need.split("|"))
    ]


def _plan_models(
    config: Mapping[str, Any], design: str, available: frozenset[str], trials: int
) -> tuple[CountEntry, ...]:
    listed = (config.get("analysis") or {}).get("models")
    if not listed:
        defaults = [
            e
            for e in COUNT_MODELS
            if e.default and design in e.designs and not _missing(e.needs, available)
        ]
        # several trials: the models that account for trial (own baselines and placebo rates)
        # rather than one intercept, slope and dispersion pooled across trials
        several = [e for e in defaults if e.several_trials]
        if trials > 1 and several:
            return tuple(several)
        return tuple(e for e in defaults if not e.several_trials)
    try:
        entries = tuple(count_entry(m) for m in listed)
    except KeyError as exc:
        raise ConfigError(f"analysis.models: {exc.args[0]}") from None
    wrong = [e.id for e in entries if design not in e.designs]
    if wrong:
        within = design in ("crossover", "nof1")
        raise CrampstatsError(
            f"analysis.models: {wrong} cannot analyse a {design} design "
            f"({'only crossover can' if within else 'crossover needs a crossover or N-of-1'})"
        )
    return entries


def plan_trial(config: Mapping[str, Any], tables: Mapping[str, pd.DataFrame]) -> TrialPlan:
    """Return the analyses of a trial: count models (primary first) and secondary endpoints.

    Parameters
    ----------
    config
        Resolved trial configuration (``design``, ``analysis.models``,
        ``analysis.secondary.endpoints``).
    tables
        The trial's canonical tables (:func:`crampstats.validate.validate`).

    Returns
    -------
    TrialPlan
        ``analysis.models`` when set; otherwise every default model of the design
        (``nb_totals`` and ``frailty_weekly`` for a parallel design, ``crossover`` for a
        crossover or N-of-1 design); when the data hold several trials, the models that
        account for trial (``multi_trial`` for a parallel design) instead.
        Secondary endpoints: ``analysis.secondary.endpoints`` (all when null) whose design and
        data allow them; the others are in ``skipped`` with the reason.

    Raises
    ------
    CrampstatsError
        If a model or endpoint named in config cannot run on this design or these data, or
        a covariate is missing for some subjects (:func:`check_subject_terms`).
    ConfigError
        If ``analysis.covariates`` or ``analysis.random_intercepts`` names an unknown column.
    """
    check_subject_terms(config, tables)
    design = str(config.get("design") or "parallel")
    available = available_data(tables)
    available |= configured_data(config, available)
    models = _plan_models(config, design, available, n_trials(tables))
    listed = ((config.get("analysis") or {}).get("secondary") or {}).get("endpoints")
    endpoints: list[EndpointEntry] = []
    skipped: dict[str, str] = {}
    refused: list[str] = []
    for entry in ENDPOINTS:
        if listed is not None and entry.id not in listed:
            continue
        absent = _missing(entry.needs, available)
        if design not in entry.designs:
            absent.append(f"a {' or '.join(entry.designs)} design")
        if not absent:
            endpoints.append(entry)
        elif listed is not None:
            refused.append(f"{entry.id} (needs {', '.join(absent)})")
        else:
            skipped[entry.id] = f"needs {', '.join(absent)}, absent from this trial"
    if refused:
        raise ConfigError(
            "analysis.secondary.endpoints: cannot analyse " + "; ".join(refused) + " on these data"
        )
    # the analysis plan (docs/analysis-plan.md) is checked against the trial before any fit
    check_plan(
        parse_plan(config),
        _trial_arms(config, tables),
        str(config.get("control_arm", "placebo")),
        models[0].id if models else None,
        [e.id for e in endpoints],
    )
    return TrialPlan(models, tuple(endpoints), skipped)


def _trial_arms(config: Mapping[str, Any], tables: Mapping[str, pd.DataFrame]) -> list[str] | None:
    """Return the trial's arms: the config's list, else the subjects table's (None: unknown)."""
    if config.get("arms"):
        return [str(a) for a in config["arms"]]
    subjects = tables.get("subjects")
    if subjects is not None and "arm" in subjects and subjects["arm"].notna().any():
        return sorted(str(a) for a in subjects["arm"].dropna().unique())
    return None


def check_subject_terms(config: Mapping[str, Any], tables: Mapping[str, pd.DataFrame]) -> None:
    """Refuse covariates and random-intercept groupings the subjects table cannot supply.

    Runs before anything is derived or fitted, for ``crampstats analyze`` and the workflow
    alike (both plan through :func:`plan_trial`).

    Parameters
    ----------
    config
        Resolved trial configuration (``analysis.covariates``, ``analysis.random_intercepts``,
        ``analysis.covariate_missing``).
    tables
        The trial's canonical tables; ``subjects`` holds the columns.

    Raises
    ------
    ConfigError
        A named column is not a subject column holding values (the message lists the
        available ones), or a column is named both as covariate and as random intercept.
    crampstats.models.ModelDataError
        With ``covariate_missing: error`` (the default), a named column is missing for some
        subjects (the message names them).
    """
    analysis = config.get("analysis") or {}
    covariates = list(analysis.get("covariates") or [])
    groupings = list(analysis.get("random_intercepts") or [])
    if not covariates and not groupings:
        return
    both = sorted(set(covariates) & set(groupings))
    if both:
        raise ConfigError(
            f"analysis.covariates and analysis.random_intercepts both name {both}; a column is "
            "either a fixed covariate or a random-intercept grouping"
        )
    subjects = tables["subjects"]
    available = subject_columns(subjects)
    for key, names in (("covariates", covariates), ("random_intercepts", groupings)):
        unknown = [n for n in names if n not in available]
        if unknown:
            empty = [n for n in unknown if n in subjects.columns]
            note = f" ({', '.join(empty)} holds no value)" if empty else ""
            raise ConfigError(
                f"analysis.{key}: unknown subject column(s) {', '.join(unknown)}{note}; the "
                f"subjects table has: {', '.join(available) or 'none'}"
            )
    if analysis.get("covariate_missing", "error") != "error":
        return
    several = "trial_id" in subjects.columns and subjects["trial_id"].nunique() > 1
    for name in [*covariates, *groupings]:
        absent = subjects[name].isna().to_numpy(dtype=bool)
        if absent.any():
            ids = subjects.loc[absent, "subject_id"].astype(str)
            if several:
                ids = subjects.loc[absent, "trial_id"].astype(str) + "/" + ids
            shown = ", ".join(ids[:20]) + (f" and {len(ids) - 20} more" if len(ids) > 20 else "")
            raise ModelDataError(
                f"subjects table: {name} (named in analysis."
                f"{'covariates' if name in covariates else 'random_intercepts'}) is missing for "
                f"{len(ids)} subject(s): {shown}; supply the values, or set "
                "analysis.covariate_missing to drop (leave them out) or indicator (code them "
                "as missing)"
            )


def plan_folder(data_dir: str | Path, config: dict[str, Any]) -> TrialPlan:
    """Validate a trial folder and plan its analyses (what the workflow's jobs are built from).

    Raises
    ------
    CrampstatsError
        If the data break the contract (message: the refusal report) or the plan is refused.
    """
    result = validate(data_dir, config)
    if not result.ok:
        raise CrampstatsError(refusal_text(result))
    return plan_trial(result.config, result.tables)
