"""The catalogue: every analysis crampstats can run, registered once, with the data it needs.

Count models (``crampstats fit``) and secondary endpoints (``crampstats secondary``) are records
(:class:`~crampstats.models.CountEntry`, :class:`~crampstats.models.EndpointEntry`) holding the
model class, its frequentist twin, the designs and contract data it needs, and its seed key. Nothing
else lists the catalogue: the planner (:mod:`.planning`), ``crampstats analyze``, the command
line and the Snakemake workflow all read it from here. Models are described in docs/models.md.
"""

from __future__ import annotations

from crampstats.models import (
    NBGLMM,
    ZINB,
    CountEntry,
    Crossover,
    EndpointEntry,
    Entry,
    FrailtyWeekly,
    Hurdle,
    MultiTrial,
    NBTotals,
    afterdischarge,
    crossover_twin,
    ctf,
    gee_twin,
    hurdle_twin,
    intensity,
    multi_trial_twin,
    nb_glm_twin,
    nb_glmm_twin,
    responder,
    safety,
    zinb_twin,
)
from crampstats.secondary import (
    cramp_potential_tables,
    location_tables,
    outcome_measures_tables,
    safety_tables,
)
from crampstats.secondary.subgroups import subgroup_tables

PARALLEL = ("parallel",)
WITHIN_SUBJECT = ("crossover", "nof1")
ALL_DESIGNS = (*PARALLEL, *WITHIN_SUBJECT)

COUNT_MODELS: tuple[CountEntry, ...] = (
    CountEntry(
        "nb_totals", 0, PARALLEL, ("diary",), "NB on subject totals (primary)",
        model=NBTotals, data="periods", twin=nb_glm_twin, twin_label="statsmodels NB2 GLM",
        default=True,
    ),
    CountEntry(
        "frailty_weekly", 1, PARALLEL, ("diary",), "weekly counts, gamma frailty",
        model=FrailtyWeekly, data="weekly", twin=gee_twin,
        twin_label="statsmodels NB GEE, exchangeable", default=True,
    ),
    CountEntry(
        "nb_glmm", 2, PARALLEL, ("diary",), "weekly counts, lognormal subject effects",
        model=NBGLMM, data="weekly", twin=nb_glmm_twin,
        twin_label="statsmodels NB GLM, subject-clustered SE",
    ),
    CountEntry(
        "zinb", 3, PARALLEL, ("diary",), "zero-inflated NB (complete responders)",
        model=ZINB, data="weekly", twin=zinb_twin, twin_label="statsmodels ZINB (totals)",
    ),
    CountEntry(
        "hurdle", 4, PARALLEL, ("diary",), "NB hurdle (complete responders)",
        model=Hurdle, data="weekly", twin=hurdle_twin, twin_label="statsmodels NB hurdle (totals)",
    ),
    CountEntry(
        "crossover", 5, WITHIN_SUBJECT, ("diary",), "within-subject crossover / N-of-1 model",
        model=Crossover, data="crossover", twin=crossover_twin,
        twin_label="statsmodels NB GLM, subject fixed effects", default=True,
    ),
    CountEntry(
        "multi_trial", 6, PARALLEL, ("diary",), "several trials, shared effects",
        model=MultiTrial, data="periods", twin=multi_trial_twin,
        twin_label="per-trial NB GLMs, DerSimonian-Laird pooling", default=True,
        several_trials=True,
    ),
)  # fmt: skip

#: Secondary endpoints, in the order of their tables; seeds are spawned after the count models'.
ENDPOINTS: tuple[EndpointEntry, ...] = (
    EndpointEntry(
        "ctf", 100, PARALLEL, ("emg.ctf_hz",), "cramp threshold frequency (interval-censored)",
        model=ctf.CTFModel, frame=ctf.ctf_frame, effects=ctf.ctf_effects, twin=ctf.ctf_twin,
    ),
    EndpointEntry(
        "afterdischarge", 101, PARALLEL, ("emg.afterdischarge_grade",),
        "after-discharge grade (cumulative logit)", model=afterdischarge.AfterdischargeModel,
        frame=afterdischarge.afterdischarge_frame, effects=afterdischarge.afterdischarge_effects,
        twin=afterdischarge.afterdischarge_twin,
    ),
    EndpointEntry(
        "cramp_potential", 102, ALL_DESIGNS, ("emg.cramp_potential_hz",),
        "cramp-potential firing frequency (descriptive)", tables=cramp_potential_tables,
    ),
    EndpointEntry(
        "intensity", 103, PARALLEL, ("diary.intensity",), "cramp intensity (beta regression)",
        model=intensity.IntensityModel, frame=intensity.intensity_frame,
        frame_options=(("strategy", "intensity_strategy", "composite"),),
        effects=intensity.intensity_effects, twin=intensity.intensity_twin,
    ),
    EndpointEntry(
        "responder", 104, PARALLEL, ("diary",), "responders (rate at least halved)",
        model=responder.ResponderModel, frame=responder.responder_frame,
        frame_options=(
            ("threshold", "responder_threshold", 0.5),
            ("missing", "responder_missing", "nonresponder"),
            ("withdrawal", "responder_withdrawal", "composite"),
        ),
        effects=responder.responder_effects, twin=responder.responder_twin,
    ),
    EndpointEntry(
        "safety", 105, PARALLEL, ("adverse_events",), "adverse events (hierarchical binomial)",
        model=safety.SafetyModel, frame=safety.safety_frame, effects=safety.safety_effects,
        twin=safety.safety_twin, tables=safety_tables,
    ),
    EndpointEntry(
        "location", 106, ALL_DESIGNS, ("diary.location",), "where cramps happen (descriptive)",
        tables=location_tables,
    ),
    EndpointEntry(
        "outcome_measures", 107, ALL_DESIGNS, ("diary",),
        "reliability, measurement error, agreement, responsiveness", tables=outcome_measures_tables,
    ),
    EndpointEntry(
        "subgroups", 108, PARALLEL, (
            "diary", "subjects.cramp_origin|subjects.etiology|analysis.subgroups"
        ),
        "subgroups (exploratory; arm x subgroup interactions shrunk)", tables=subgroup_tables,
    ),
)  # fmt: skip

#: Catalogue id -> entry, every analysis.
CATALOGUE: dict[str, Entry] = {e.id: e for e in (*COUNT_MODELS, *ENDPOINTS)}


def count_entry(model_id: str) -> CountEntry:
    """Return the count model ``model_id``.

    Raises
    ------
    KeyError
        If no count model has that id (message lists those that do).
    """
    for entry in COUNT_MODELS:
        if entry.id == model_id:
            return entry
    raise KeyError(f"unknown model {model_id!r}; known: {[e.id for e in COUNT_MODELS]}")


def endpoint_entry(endpoint_id: str) -> EndpointEntry:
    """Return the secondary endpoint ``endpoint_id`` (``KeyError`` naming the known ones)."""
    for entry in ENDPOINTS:
        if entry.id == endpoint_id:
            return entry
    raise KeyError(f"unknown endpoint {endpoint_id!r}; known: {[e.id for e in ENDPOINTS]}")
