"""The verdict of a trial: each comparison with control under the plan's success rule.

Pure functions from the primary fit and the resolved config to two tables:

- ``decisions`` (:data:`DECISIONS_COLUMNS`): per active arm one row per criterion of the success
  rule and one ``success`` row (all criteria and the family-wise strategy), from
  :func:`crampstats.decisions.success_verdicts`, with the plan's hash;
- ``operating_characteristics`` (:data:`OPERATING_COLUMNS`): the rule's false-positive rate and
  its power at the planning effect at this trial's size, from a closed-form normal
  approximation of the estimated log rate ratio evaluated at the primary fit's posterior
  medians (:mod:`crampstats.closed_form`): two negative-binomial groups (Zhu and Lakkis 2014)
  for a parallel trial (``nb_totals``, ``frailty_weekly``), each patient's own contrast for a
  crossover or N-of-1 trial (``crossover``: within-patient size ``k``, patient-effect SD
  ``sigma_d`` and each patient's periods); for an analysis without a closed form here
  (``multi_trial``, a clustered model chosen as primary, an intensity endpoint) the normal
  approximation with the fit's posterior SD as standard error (:class:`PosteriorDesign`); the
  family-wise rate from :mod:`crampstats.multiplicity`.

An intensity primary endpoint is decided by :func:`endpoint_verdict_tables` from the intensity
fit; :func:`verdict_tables` then returns empty tables.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr
from scipy import stats

from crampstats import decisions
from crampstats.closed_form import within_subject_variance, zhu_lakkis_variance
from crampstats.models import ENDPOINT, Crossover, FrailtyWeekly, NBTotals, intensity
from crampstats.multiplicity import (
    Hierarchical,
    calibrated_probability,
    family_false_positive_rate,
    null_variance,
)
from crampstats.plan import Plan, parse_plan, plan_status

#: A fit record (:class:`crampstats.compare.tables.FitRecord`, which imports this module; duck
#: typed here to keep the import graph acyclic): ``idata``, ``model``, ``prepared``.
FitRecord = Any

DECISIONS_COLUMNS = [
    "trial_id", "endpoint", "arm", "comparator", "rule", "quantity", "probability", "threshold",
    "met", "multiplicity", "plan_hash",
]  # fmt: skip
OPERATING_COLUMNS = [
    "trial_id", "endpoint", "arm", "comparator", "n_arm", "n_control", "control_rate_per_day",
    "k", "exposure_days", "patient_effect_sd", "planning_rr", "planning_difference",
    "false_positive_rate", "family_false_positive_rate", "power", "strategy", "approximation",
    "plan_hash",
]  # fmt: skip


@dataclass(frozen=True)
class ParallelDesign:
    """A parallel trial's closed-form inputs: posterior medians and the arms' sizes.

    ``rate`` is the control cramps a day standardised over the subjects, ``k`` the
    negative-binomial size of a subject's total, ``exposure`` the mean diarised days a subject.
    """

    rate: float
    k: float
    exposure: float
    n: Mapping[str, int]
    control: str

    approximation = (
        "closed-form normal approximation of the negative-binomial log rate ratio of two groups "
        "(Zhu and Lakkis 2014) at this trial's allocation and the primary fit's control rate, "
        "dispersion and mean exposure (posterior medians); family-wise rate by Monte Carlo of "
        "the correlated normal approximation with the shared control"
    )

    def sizes(self, arm: str) -> tuple[int, int]:
        """Subjects on ``arm`` and on control."""
        return self.n[arm], self.n[self.control]

    def variance(self, arm: str, rr: float) -> float:
        """Variance of the estimated log rate ratio of ``arm`` when the true ratio is ``rr``."""
        n_arm, n_control = self.sizes(arm)
        v = zhu_lakkis_variance(self.rate, rr, self.k, self.exposure, n_arm / n_control)
        return v / n_control

    def effect_sd(self, arm: str) -> float:
        """No patient-effect SD in a parallel design's closed form."""
        return float("nan")


@dataclass(frozen=True)
class WithinSubjectDesign:
    """A crossover or N-of-1 trial's closed-form inputs (:func:`within_subject_variance`).

    ``mu`` is each patient's expected control count per period (posterior median rate times the
    patient's mean diarised days per period), ``periods[arm]`` each patient's periods on the arm
    and on control, ``sigma_d[arm]`` the posterior median patient-effect SD; ``rate``, ``k`` and
    ``exposure`` (mean days a period) are shown in the table.
    """

    rate: float
    k: float
    exposure: float
    mu: np.ndarray
    periods: Mapping[str, tuple[np.ndarray, np.ndarray]]
    sigma_d: Mapping[str, float]

    approximation = (
        "closed-form normal approximation of the within-patient log rate ratio (each patient's "
        "contrast of log period totals, delta method, weighted by its inverse variance) at this "
        "trial's periods and the primary fit's control rates, within-patient dispersion and "
        "patient-effect SD (posterior medians); with one period per treatment the patient-effect "
        "SD comes from its prior, and the power with it; family-wise rate for several actives by "
        "the union bound"
    )

    def sizes(self, arm: str) -> tuple[int, int]:
        """Patients with periods on both ``arm`` and control (twice: they are their own control)."""
        on_arm, on_control = self.periods[arm]
        n = int(np.sum((on_arm > 0) & (on_control > 0)))
        return n, n

    def variance(self, arm: str, rr: float) -> float:
        """Variance of the estimated log rate ratio of ``arm`` when the true ratio is ``rr``."""
        on_arm, on_control = self.periods[arm]
        return within_subject_variance(self.mu, on_arm, on_control, rr, self.k, self.sigma_d[arm])

    def effect_sd(self, arm: str) -> float:
        """Posterior median SD of the patients' own log rate ratios on ``arm``."""
        return self.sigma_d[arm]


@dataclass(frozen=True)
class PosteriorDesign:
    """A primary analysis without a closed form: the estimate's SE is this fit's posterior SD.

    Used for ``multi_trial`` (whose power also depends on the between-trial SD and on how the
    arms are spread over the trials), the clustered count models when chosen as primary, and an
    intensity endpoint (``difference``: the effect is a difference in mean intensity, not a log
    rate ratio). ``sd[arm]`` is the posterior SD of the arm's effect on the criteria's scale.
    """

    sd: Mapping[str, float]
    n: Mapping[str, int]
    control: str
    difference: bool = False

    approximation = (
        "normal approximation of the estimated effect with its standard error taken as this "
        "fit's posterior SD, the same under the null and the planning effect (no closed form for "
        "this analysis); family-wise rate by Monte Carlo of the correlated normal approximation "
        "with the shared control"
    )
    # not part of this approximation: empty in the table
    rate = k = exposure = float("nan")

    def sizes(self, arm: str) -> tuple[int, int]:
        """Subjects on ``arm`` and on control."""
        return self.n[arm], self.n[self.control]

    def variance(self, arm: str, effect: float) -> float:
        """Return the posterior variance of the arm's effect, whatever the true effect."""
        return self.sd[arm] ** 2

    def effect_sd(self, arm: str) -> float:
        """No patient-effect SD in this approximation."""
        return float("nan")


Design = ParallelDesign | WithinSubjectDesign | PosteriorDesign


def allocation(rec: FitRecord, control: str) -> tuple[list[str], list[int]]:
    """Arms (control first, then the fit's active arms) and their numbers of subjects.

    Zero subjects everywhere for a within-subject design (crossover), whose subjects take every
    treatment: the plan check refuses the strategies that need an allocation there.
    """
    actives = [str(a) for a in rec.idata["posterior"]["log_rr"]["arm"].values]
    names = [control, *actives]
    if "arm" not in rec.prepared.subject_data.data_vars:  # within-subject designs: no groups
        return names, [0] * len(names)
    arms = pd.Series(rec.prepared.subject_data["arm"].values).astype(str)
    return names, [int((arms == a).sum()) for a in names]


def nb_parameters(rec: FitRecord) -> dict[str, float]:
    """Control daily rate, size ``k`` and mean exposure of an ``nb_totals`` fit record.

    See :func:`crampstats.decisions.nb_parameters`.
    """
    exposure = rec.prepared.subject_data["exposure_days"].values
    return decisions.nb_parameters(rec.model, rec.idata, exposure)


def _median(values: Any) -> float:
    return float(np.median(np.asarray(values, dtype=float)))


def design_inputs(rec: FitRecord, control: str) -> Design:
    """Closed-form inputs of the primary fit (the posterior-SD approximation for other models)."""
    names, n = allocation(rec, control)
    sizes = dict(zip(names, n, strict=True))
    if isinstance(rec.model, NBTotals):
        p = nb_parameters(rec)
        return ParallelDesign(p["rate"], p["k"], p["exposure"], sizes, control)
    post = rec.idata["posterior"]
    if isinstance(rec.model, FrailtyWeekly):
        rows = rec.prepared.extra
        n_sub = rec.prepared.subject_data.sizes["subject"]
        days = np.bincount(rows["subject_idx"], np.exp(rows["log_exposure"]), minlength=n_sub)
        p = decisions.nb_parameters(rec.model, rec.idata, days, size="phi")
        return ParallelDesign(p["rate"], p["k"], p["exposure"], sizes, control)
    if isinstance(rec.model, Crossover):
        d, sd = rec.prepared.data, rec.prepared.subject_data
        n_sub = sd.sizes["subject"]
        idx = d["subject_idx"]
        days = np.bincount(idx, np.exp(d["log_exposure"]), minlength=n_sub)
        per_period = days / np.bincount(idx, minlength=n_sub)
        subject_rate = np.exp(rec.model.subject_log_rate(rec.idata))
        on_arm = sd["n_periods_arm"].transpose("subject", "arm")
        on_control = sd["n_periods"].values - on_arm.sum("arm").values
        return WithinSubjectDesign(
            rate=_median(subject_rate.mean("subject")),
            k=_median(post["k"].values),
            exposure=float(np.mean(per_period)),
            mu=np.median(subject_rate.values, axis=(0, 1)) * per_period,
            periods={a: (on_arm.sel(arm=a).values, on_control) for a in names[1:]},
            sigma_d={a: _median(post["sigma_d"].sel(arm=a).values) for a in names[1:]},
        )
    log_rr = post["log_rr"]
    sd = {a: float(np.std(log_rr.sel(arm=a).values)) for a in names[1:]}
    return PosteriorDesign(sd, sizes, control)


def calibrated_threshold(plan: Plan, n_per_arm: list[int], variance: float | None) -> float | None:
    """Return the common P(RR < 1) threshold of ``calibrated`` and ``exchangeable`` (else None)."""
    if not plan.calibrates:
        return None
    prior = None
    if plan.strategy == "exchangeable":
        if variance is None:
            raise ValueError("the exchangeable calibration needs the per-subject variance")
        prior = Hierarchical(plan.prior_mu_sd, plan.prior_tau_sd)
    return calibrated_probability(
        n_per_arm, plan.alpha, plan.calibration_draws, plan.seed, variance or 1.0, prior
    )


def _primary(records: Mapping[str, FitRecord]) -> FitRecord | None:
    """Return the first (primary) record if it has a per-arm log rate ratio, else None."""
    for rec in records.values():
        post = rec.idata["posterior"]
        return rec if "log_rr" in post and "arm" in post["log_rr"].dims else None
    return None


def verdict_tables(
    records: Mapping[str, FitRecord], config: Mapping[str, Any]
) -> dict[str, pd.DataFrame]:
    """Build ``decisions`` and ``operating_characteristics`` from the primary fit.

    Parameters
    ----------
    records
        Model name -> fit record, primary first.
    config
        Resolved trial configuration (``analysis.plan``, control arm, ``plan_frozen``).

    Returns
    -------
    dict
        ``decisions`` and ``operating_characteristics`` (empty with their columns when the
        primary fit has no per-arm log rate ratio).
    """
    empty = _empty_tables()
    plan = parse_plan(config)
    rec = _primary(records)
    if rec is None or plan.endpoint != ENDPOINT:  # another primary endpoint: endpoint_verdict
        return empty
    control = str(config.get("control_arm", "placebo"))
    head = {
        "trial_id": str(config.get("trial_id", "")),
        "endpoint": ENDPOINT,
        "comparator": control,
    }
    digest = plan_status(config)["plan_hash"]
    arms, n = allocation(rec, control)
    design = design_inputs(rec, control)
    variance = None  # the exchangeable calibration's per-subject variance (nb_totals only)
    if isinstance(rec.model, NBTotals):
        variance = null_variance({"rate": design.rate, "k": design.k, "exposure": design.exposure})
    threshold = calibrated_threshold(plan, n, variance)
    verdicts = decisions.success_verdicts(
        rec.idata,
        [(c.rate_ratio, c.probability) for c in plan.criteria],
        plan.strategy,
        plan.order,
        threshold,
    )
    if threshold is not None:
        verdicts["multiplicity"] = (
            f"{plan.strategy}: common P(RR < 1) threshold {threshold:.4f} keeps the family-wise "
            f"false-positive rate <= {plan.alpha:g} (calibrated under the global null)"
        )
    table = verdicts.assign(**head, plan_hash=digest)[DECISIONS_COLUMNS]
    oc = operating_rows(plan, arms, n, design, threshold)
    return {
        "decisions": table,
        "operating_characteristics": oc.assign(**head, plan_hash=digest)[OPERATING_COLUMNS],
    }


def _empty_tables() -> dict[str, pd.DataFrame]:
    return {
        "decisions": pd.DataFrame(columns=DECISIONS_COLUMNS),
        "operating_characteristics": pd.DataFrame(columns=OPERATING_COLUMNS),
    }


def endpoint_verdict_tables(
    fits: Mapping[str, xr.DataTree], config: Mapping[str, Any]
) -> dict[str, pd.DataFrame]:
    """Build the verdict tables when the plan's primary endpoint is intensity (else none).

    Decisions read the intensity fit's draws of the standardised difference in mean intensity
    (:func:`crampstats.models.intensity.difference_draws`) under the plan's criteria on that
    difference; ``calibrated`` uses the arms' analysed subjects like the count verdict.
    Operating characteristics: :class:`PosteriorDesign` on the difference, power at
    ``success.planning_difference`` (none stated when it is null).

    Parameters
    ----------
    fits
        Secondary endpoint id -> its fit (``intensity`` is read; absent when its analysis
        failed, whose diagnostics row says why: then both tables are empty).
    config
        Resolved trial configuration.

    Returns
    -------
    dict
        ``decisions`` and ``operating_characteristics`` for an intensity plan; empty otherwise.
    """
    plan = parse_plan(config)
    if plan.endpoint != "intensity":
        return {}
    idata = fits.get("intensity")
    if idata is None:
        return _empty_tables()
    draws = intensity.difference_draws(idata)
    control = str(config.get("control_arm", "placebo"))
    arms = pd.Series(idata["constant_data"]["arm"].values).astype(str)
    n = [int((arms == a).sum()) for a in [control, *map(str, draws["arm"].values)]]
    threshold = calibrated_threshold(plan, n, None)
    verdicts = decisions.success_verdicts(
        draws,
        [(c.bound, c.probability) for c in plan.criteria],
        plan.strategy,
        plan.order,
        threshold,
        difference=True,
    )
    if threshold is not None:
        verdicts["multiplicity"] = (
            f"{plan.strategy}: common P(difference < 0) threshold {threshold:.4f} keeps the "
            f"family-wise false-positive rate <= {plan.alpha:g} (calibrated under the global null)"
        )
    head = {
        "trial_id": str(config.get("trial_id", "")),
        "endpoint": "intensity",
        "comparator": control,
        "plan_hash": plan_status(config)["plan_hash"],
    }
    names = [control, *map(str, draws["arm"].values)]
    sd = {a: float(np.std(draws.sel(arm=a).values)) for a in names[1:]}
    design = PosteriorDesign(sd, dict(zip(names, n, strict=True)), control, difference=True)
    oc = operating_rows(plan, names, n, design, threshold)
    return {
        "decisions": verdicts.assign(**head)[DECISIONS_COLUMNS],
        "operating_characteristics": oc.assign(**head)[OPERATING_COLUMNS],
    }


def rule_power(
    plan: Plan, se: float, effect: float, calibrated: float | None = None, difference: bool = False
) -> float:
    """Probability that one comparison meets every criterion when the true effect is ``effect``.

    Normal approximation: the estimate ``y ~ N(theta, se^2)`` (``theta = log rr``, or the
    difference itself with ``difference``; ``se`` from the design at that effect) and a flat
    posterior ``N(y, se^2)``; criterion ``(t, p)`` holds when ``y <= t' - se z_p`` (``t' = log
    t`` for a rate ratio), so all hold when ``y`` is below the smallest of these bounds. With
    the single criterion ``(1, 1 - alpha)`` and the two-group variance this is
    :func:`crampstats.closed_form.zhu_lakkis_power` (tested).
    """
    bounds = []
    for c in plan.criteria:
        p = calibrated if calibrated is not None and c.is_null else c.probability
        bound = c.bound if difference else np.log(c.bound)
        bounds.append(bound - se * stats.norm.ppf(p))
    theta = effect if difference else np.log(effect)
    return float(stats.norm.cdf((min(bounds) - theta) / se))


def operating_rows(
    plan: Plan,
    arms: list[str],
    n: list[int],
    design: Design,
    calibrated: float | None,
) -> pd.DataFrame:
    """Per active arm: false-positive rate and power at the planning effect of the rule.

    ``false_positive_rate`` is :func:`rule_power` at no effect (one comparison), ``power`` at
    ``success.planning_rate_ratio`` (an intensity endpoint: ``success.planning_difference``, no
    power when that is null); ``family_false_positive_rate`` the chance under the global null
    that any comparison succeeds: for parallel arms by Monte Carlo of the correlated normal
    approximation for ``none`` (no-effect criterion only, an upper bound), for a within-subject
    design the union bound (the sum of the comparisons' rates, at most 1); the first
    comparison's rate for ``fixed_sequence``; alpha by construction for ``calibrated`` and
    ``exchangeable``; with one active arm, that comparison's own rate.
    """
    difference = isinstance(design, PosteriorDesign) and design.difference
    null, planning = (
        (0.0, plan.planning_difference) if difference else (1.0, plan.planning_rate_ratio)
    )
    first = next((c for c in plan.criteria if c.is_null), None)
    if plan.calibrates:
        family = plan.alpha
    elif plan.strategy == "fixed_sequence" or isinstance(design, WithinSubjectDesign):
        family = None  # filled from the arms' rates below
    elif first is not None:
        family = family_false_positive_rate(n, first.probability, plan.calibration_draws, plan.seed)
    else:
        family = float("nan")
    rows = []
    for arm in arms[1:]:
        n_arm, n_control = design.sizes(arm)
        fpr = power = np.nan
        if n_control > 0 and n_arm > 0:
            se = np.sqrt(design.variance(arm, null))
            fpr = rule_power(plan, se, null, calibrated, difference)
            if planning is not None:
                se = np.sqrt(design.variance(arm, planning))
                power = rule_power(plan, se, planning, calibrated, difference)
        rows.append(
            {
                "arm": arm,
                "n_arm": n_arm,
                "n_control": n_control,
                "control_rate_per_day": design.rate,
                "k": design.k,
                "exposure_days": design.exposure,
                "patient_effect_sd": design.effect_sd(arm),
                "planning_rr": np.nan if difference else plan.planning_rate_ratio,
                "planning_difference": planning if difference else np.nan,
                "false_positive_rate": fpr,
                "family_false_positive_rate": family,
                "power": power,
                "strategy": plan.strategy,
                "approximation": design.approximation,
            }
        )
    out = pd.DataFrame(rows)
    if not len(out):
        return out
    if plan.strategy == "fixed_sequence":
        first_arm = plan.order[0] if plan.order else out["arm"].iloc[0]
        out["family_false_positive_rate"] = float(
            out.loc[out["arm"] == first_arm, "false_positive_rate"].iloc[0]
        )
    elif family is None or len(out) == 1:
        # within-subject, strategy none: the union bound; one comparison: its own rate exactly
        # (the Monte Carlo reads the no-effect criterion alone, an upper bound)
        out["family_false_positive_rate"] = min(1.0, float(out["false_positive_rate"].sum()))
    return out
