"""Simulation designs: load and check a design file, and pure helpers that resolve it.

A design (``schemas/design.schema.yaml``) names the trial layout, the arms and the true
parameters of the data-generating process. :func:`load_design` reads and validates it (filling
defaults); :func:`resolve_design` turns it into what :mod:`crampstats.simulate` needs.
"""

from __future__ import annotations

import functools
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

from crampstats.config import ConfigError, check, read_yaml

#: Adverse-event categories of the data contract, in output order.
AE_CATEGORIES = (
    "thrombocytopenia", "qt_prolongation", "cinchonism", "visual_disturbance", "gastrointestinal",
    "other",
)

#: Placebo adverse-event profile: minor AEs 94 per 1,000 (docs/calibration.md, Therapy effects:
#: quinine harms, minor AEs 94 -> 127 per 1,000); split between gastrointestinal and other
#: (uncertain).
_PLACEBO_AES = {"gastrointestinal": 0.03, "other": 0.066}

#: Known therapies: default rate ratio versus placebo and adverse-event probabilities over the
#: reference exposure (8 weeks). Rows of docs/calibration.md, Therapy effects.
KNOWN_THERAPIES: dict[str, dict[str, Any]] = {
    "placebo": {"rr": 1.0, "adverse_events": dict(_PLACEBO_AES)},
    # docs/calibration.md, Therapy effects: quinine RR 0.75; minor AEs 94 -> 127 per 1,000
    # (P(any minor) = 1 - 0.97 * 0.934 * 0.973 * 0.99 = 0.127); rare thrombocytopenia and QT
    # prolongation.
    "quinine": {
        "rr": 0.75,
        "adverse_events": {
            **_PLACEBO_AES, "cinchonism": 0.027, "visual_disturbance": 0.01,
            "thrombocytopenia": 0.002, "qt_prolongation": 0.003,
        },
    },
    # docs/calibration.md, Therapy effects: mexiletine RR 0.5 (sweep 0.16-0.66); gastrointestinal
    # intolerance behind the 32 % dropout at 900 mg/day (probability 0.3 is an assumption).
    "mexiletine": {"rr": 0.5, "adverse_events": {**_PLACEBO_AES, "gastrointestinal": 0.30}},
    # docs/calibration.md, Therapy effects: vitamin B complex RR 0.8 (uncertain; sweep 0.5-1.0).
    "vitamin_b_complex": {"rr": 0.8, "adverse_events": dict(_PLACEBO_AES)},
    # docs/calibration.md, Therapy effects: magnesium RR 0.96 (no effect); diarrhoea a little
    # more often than on placebo (uncertain).
    "magnesium": {"rr": 0.96, "adverse_events": {**_PLACEBO_AES, "gastrointestinal": 0.05}},
}

#: Adverse-event terms reported for each category (one drawn per event).
AE_TERMS: dict[str, tuple[str, ...]] = {
    "thrombocytopenia": ("Thrombocytopenia",),
    "qt_prolongation": ("Electrocardiogram QT prolonged",),
    "cinchonism": ("Tinnitus", "Headache", "Hearing impaired", "Nausea"),
    "visual_disturbance": ("Vision blurred", "Visual impairment"),
    "gastrointestinal": ("Nausea", "Diarrhoea", "Dyspepsia", "Abdominal pain", "Vomiting"),
    "other": ("Dizziness", "Fatigue", "Rash", "Headache", "Pruritus"),
}


def load_design(path: str | Path) -> dict[str, Any]:
    """Read a design YAML file, validate it and fill defaults.

    Parameters
    ----------
    path
        Design file following ``schemas/design.schema.yaml``.

    Returns
    -------
    dict
        The design with every default filled in.

    Raises
    ------
    ConfigError
        If the file is unreadable or the design is invalid; the message names the key.
    """
    return validate_design(read_yaml(path), str(path))


def validate_design(design: dict[str, Any], source: str = "design") -> dict[str, Any]:
    """Check a design against the schema and the rules the schema cannot express.

    Parameters
    ----------
    design
        Parsed design mapping.
    source
        Where the design came from, used in error messages.

    Returns
    -------
    dict
        A copy with defaults filled.

    Raises
    ------
    ConfigError
        Naming the offending key.
    """
    filled = check(design, "design", source)
    _semantic_checks(filled, source)
    return filled


def _fail(source: str, key: str, message: str) -> None:
    raise ConfigError(f"{source}: key {key}: {message}")


def _semantic_checks(d: dict[str, Any], source: str) -> None:
    arms = d["arms"]
    if d["control_arm"] not in arms:
        _fail(source, "control_arm", f"{d['control_arm']!r} is not one of the arms {sorted(arms)}")
    for name, spec in arms.items():
        spec = spec or {}
        if "rr" not in spec and name not in KNOWN_THERAPIES and name != d["control_arm"]:
            known = ", ".join(KNOWN_THERAPIES)
            _fail(source, f"arms.{name}.rr",
                  f"required for an arm that is not a known therapy ({known})")
        if name == d["control_arm"] and spec.get("rr", 1.0) != 1.0:
            _fail(source, f"arms.{name}.rr", "the control arm's rate ratio is 1 by definition")
    if isinstance(d["n_per_arm"], dict):
        unknown = sorted(set(d["n_per_arm"]) - set(arms))
        if unknown:
            _fail(source, "n_per_arm", f"arms {unknown} are not in arms")
        lacking = sorted(set(arms) - set(d["n_per_arm"]))
        if lacking and d["type"] == "parallel":
            _fail(source, "n_per_arm", f"no size for arms {lacking}")
    if d["type"] == "crossover" and len(arms) != 2:
        _fail(source, "arms", f"a crossover design needs exactly two arms, got {len(arms)}")
    if d["type"] != "parallel" and len(arms) > 26:
        _fail(source, "arms", "at most 26 treatments can be coded by letters")
    if "letters" in d:
        letters = d["letters"]
        if sorted(letters.values()) != sorted(arms):
            _fail(source, "letters", f"must map one letter to each arm {sorted(arms)}")
    for i, trial in enumerate(trial_entries(d)):
        for arm in trial.get("arms") or []:
            if arm not in arms:
                _fail(source, f"trials.{i}.arms", f"{arm!r} is not one of the arms {sorted(arms)}")
        sizes = trial.get("n_per_arm")
        if d["type"] == "parallel" and isinstance(sizes, dict):
            lacking = sorted(set(trial.get("arms") or arms) - set(sizes))
            if lacking:
                _fail(source, f"trials.{i}.n_per_arm", f"no size for arms {lacking}")
        if d["type"] == "crossover" and trial.get("arms") and len(trial["arms"]) != 2:
            _fail(source, f"trials.{i}.arms", "a crossover trial needs exactly two arms")
    ids = [t["id"] for t in trial_entries(d)]
    if len(set(ids)) != len(ids):
        _fail(source, "trials", f"trial ids are not unique: {ids}")
    try:
        between_subject_shape(d["k"], d["within_subject"]["sd"], d["within_subject"]["rho"],
                              period_weeks(d))
    except ValueError as exc:
        _fail(source, "within_subject.sd", str(exc))
    mechanism = d.get("dropout_mechanism", {})
    if mechanism.get("mechanism") == "mar_early_response" and (
        mechanism["early_weeks"] >= period_weeks(d)
    ):
        _fail(source, "dropout_mechanism.early_weeks",
              f"must be shorter than the first treatment period ({period_weeks(d)} weeks)")
    probs = d["emg"]["afterdischarge_probs"]
    if sum(probs) <= 0:
        _fail(source, "emg.afterdischarge_probs", "probabilities must not all be zero")
    if sum(d["covariates"]["cramp_origin"].values()) <= 0:
        _fail(source, "covariates.cramp_origin", "probabilities must not all be zero")
    if sum(d["locations"].values()) <= 0:
        _fail(source, "locations", "probabilities must not all be zero")
    proto = d["emg"]["protocol"]
    if proto["max_hz"] < proto["start_hz"]:
        _fail(source, "emg.protocol.max_hz", "is below start_hz")


def trial_entries(design: dict[str, Any]) -> list[dict[str, Any]]:
    """Return one ``{id, ...}`` mapping per trial of a (validated) design.

    Parameters
    ----------
    design
        Validated design.

    Returns
    -------
    list of dict
        ``trials: n`` gives ids ``<trial_id>1`` .. ``<trial_id>n`` (just ``trial_id`` when n is 1).
    """
    trials = design["trials"]
    if isinstance(trials, int):
        if trials == 1:
            return [{"id": design["trial_id"]}]
        return [{"id": f"{design['trial_id']}{i + 1}"} for i in range(trials)]
    return [{"id": t} if isinstance(t, str) else dict(t) for t in trials]


def period_weeks(design: dict[str, Any]) -> int:
    """Weeks of one treatment period: parallel treatment, crossover period or N-of-1 block."""
    return design["nof1"]["block_weeks"] if design["type"] == "nof1" else design["treatment_weeks"]


def ar1_mean_variance(sd: float, rho: float, weeks: int) -> float:
    """Variance of the mean of ``weeks`` lognormal AR(1) multipliers with mean 1.

    Parameters
    ----------
    sd, rho
        Stationary SD and autocorrelation of the weekly Gaussian log fluctuation ``z``; the
        multiplier is ``exp(z - sd**2 / 2)``.
    weeks
        Number of weeks averaged.

    Returns
    -------
    float
        ``Var(mean_t exp(z_t - sd^2/2))``, using ``Cov = exp(sd^2 rho^|t-u|) - 1``.
    """
    lags = np.arange(weeks)
    cov = np.expm1(sd**2 * rho**lags)
    weights = np.where(lags == 0, weeks, 2 * (weeks - lags))
    return float(np.sum(weights * cov) / weeks**2)


def between_subject_shape(k: float, sd: float, rho: float, weeks: int) -> float:
    """Gamma shape of subject rates giving NB size ``k`` on a ``weeks``-long period total.

    With subject rate ``lambda ~ Gamma(shape, mean mu)`` and weekly multipliers of variance-of-mean
    ``V`` (:func:`ar1_mean_variance`), the period total has ``1/k = (1 + 1/shape)(1 + V) - 1``.

    Parameters
    ----------
    k
        Target negative-binomial size of the period total (docs/calibration.md, Cramp
        frequency: k = 3).
    sd, rho
        Within-subject fluctuation.
    weeks
        Period length in weeks.

    Returns
    -------
    float
        The between-subject gamma shape (``inf`` when no between-subject spread is left).

    Raises
    ------
    ValueError
        If the within-subject fluctuation alone is more overdispersed than ``k`` allows.
    """
    v = ar1_mean_variance(sd, rho, weeks)
    ratio = (1.0 + 1.0 / k) / (1.0 + v) - 1.0
    if ratio <= 0:
        raise ValueError(
            f"within-subject fluctuation (variance of a period mean {v:.3f}) exceeds the "
            f"overdispersion 1/k = {1 / k:.3f}; lower within_subject.sd or k"
        )
    return 1.0 / ratio


def lognormal_sigma(median: float, sd: float) -> float:
    """Log-scale SD of a lognormal with the given median and (arithmetic) SD.

    Solves ``sd^2 = median^2 * exp(s^2) * (exp(s^2) - 1)`` for ``s``.
    """
    r = (sd / median) ** 2
    e = (1.0 + math.sqrt(1.0 + 4.0 * r)) / 2.0  # e = exp(s^2)
    return math.sqrt(math.log(e))


def ctf_censoring_probability(median: float, sigma: float, max_hz: float) -> float:
    """Probability that a lognormal CTF lies above the protocol maximum (right-censored).

    Parameters
    ----------
    median, sigma
        Median and log-scale SD of the latent threshold.
    max_hz
        Highest stimulation frequency of the protocol.

    Returns
    -------
    float
        ``P(CTF > max_hz)``.
    """
    return float(stats.norm.sf((math.log(max_hz) - math.log(median)) / sigma))


@dataclass(frozen=True)
class Segment:
    """A contiguous stretch of study days with one period label.

    Attributes
    ----------
    label
        Diary ``period`` value: ``run-in``, ``treatment``, ``washout`` or ``1``, ``2``, ...
    start
        First study day.
    days
        Number of days.
    slot
        Treatment slot index (0-based) for treatment periods, ``-1`` for run-in and washout.
    after_slot
        For washouts, the slot before them (for carry-over), else ``-1``.
    """

    label: str
    start: int
    days: int
    slot: int = -1
    after_slot: int = -1


def schedule(design: dict[str, Any]) -> list[Segment]:
    """Return the study's segments in time order (run-in days are <= 0, first dose is day 1)."""
    run_in = 7 * design["run_in_weeks"]
    segs = [Segment("run-in", 1 - run_in, run_in)]
    day = 1
    if design["type"] == "parallel":
        return [*segs, Segment("treatment", 1, 7 * design["treatment_weeks"], 0)]
    if design["type"] == "crossover":
        n_periods, length, washout = 2, 7 * design["treatment_weeks"], 7 * design["washout_weeks"]
    else:
        n_treat = len(design["arms"])
        n_periods = design["nof1"]["cycles"] * n_treat
        length, washout = 7 * design["nof1"]["block_weeks"], 7 * design["nof1"]["washout_weeks"]
    for p in range(n_periods):
        if p > 0 and washout > 0:
            segs.append(Segment("washout", day, washout, -1, p - 1))
            day += washout
        segs.append(Segment(str(p + 1), day, length, p))
        day += length
    return segs


def letters(design: dict[str, Any]) -> dict[str, str]:
    """Sequence letter -> arm: the design's ``letters``, else A = control, then the rest sorted."""
    if "letters" in design:
        return dict(sorted(design["letters"].items()))
    others = sorted(a for a in design["arms"] if a != design["control_arm"])
    names = [design["control_arm"], *others]
    return {chr(ord("A") + i): name for i, name in enumerate(names)}


def arm_table(design: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Resolve every arm's true parameters from the design and the known-therapy defaults.

    Returns
    -------
    dict
        Arm -> ``rr``, ``log_rr``, ``dropout``, ``ctf_effect``, ``intensity_shift`` and
        ``adverse_events`` (category -> probability over the reference exposure).
    """
    out = {}
    emg = design["emg"]
    for name in sorted(design["arms"]):
        spec = design["arms"][name] or {}
        known = KNOWN_THERAPIES.get(name, {})
        rr = 1.0 if name == design["control_arm"] else float(spec.get("rr", known.get("rr", 1.0)))
        ae = dict.fromkeys(AE_CATEGORIES, 0.0)
        ae.update(known.get("adverse_events", _PLACEBO_AES))
        ae.update(spec.get("adverse_events", {}))
        default_ctf = emg["ctf_effect"] if rr <= emg["effective_rr"] else 0.0
        out[name] = {
            "rr": rr,
            "log_rr": math.log(rr),
            "dropout": float(spec.get("dropout", design["dropout"])),
            "ctf_effect": float(spec.get("ctf_effect", default_ctf)),
            "intensity_shift": float(spec.get("intensity_shift", 0.0)),
            "adverse_events": {c: float(ae[c]) for c in AE_CATEGORIES},
        }
    return out


@dataclass
class ResolvedDesign:
    """A validated design with everything :mod:`crampstats.simulate` derives from it.

    Attributes
    ----------
    design
        The validated design (defaults filled).
    arms
        :func:`arm_table` output.
    arm_names
        Arm names in a fixed (sorted) order; integer arm codes index this tuple.
    letters
        Sequence letter -> arm name (crossover / N-of-1).
    segments
        :func:`schedule` output.
    trials
        :func:`trial_entries` output.
    k_between
        Between-subject gamma shape (:func:`between_subject_shape`).
    ctf_sigma
        Total log-scale SD of the cramp threshold frequency.
    """

    design: dict[str, Any]
    arms: dict[str, dict[str, Any]]
    arm_names: tuple[str, ...]
    letters: dict[str, str]
    segments: list[Segment]
    trials: list[dict[str, Any]]
    k_between: float
    ctf_sigma: float
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def first_day(self) -> int:
        """First study day (first run-in day)."""
        return self.segments[0].start

    @property
    def n_days(self) -> int:
        """Days from the first run-in day to the last study day."""
        last = self.segments[-1]
        return last.start + last.days - self.first_day

    @property
    def n_slots(self) -> int:
        """Number of treatment periods."""
        return 1 + max(s.slot for s in self.segments)


def resolve_design(design: dict[str, Any]) -> ResolvedDesign:
    """Validate a design (filling defaults) and resolve arms, schedule and derived parameters.

    Results are cached by the design's content, so power simulations that call
    :func:`crampstats.simulate.simulate` thousands of times validate once.

    Parameters
    ----------
    design
        A design mapping (raw or already filled).

    Returns
    -------
    ResolvedDesign
        Treat as read-only: it is shared between calls.

    Raises
    ------
    ConfigError
        If the design is invalid.
    """
    return _resolve_cached(json.dumps(design, sort_keys=True, default=str))


@functools.lru_cache(maxsize=64)
def _resolve_cached(text: str) -> ResolvedDesign:
    d = validate_design(json.loads(text))
    emg = d["emg"]
    return ResolvedDesign(
        design=d,
        arms=arm_table(d),
        arm_names=tuple(sorted(d["arms"])),
        letters=letters(d),
        segments=schedule(d),
        trials=trial_entries(d),
        k_between=between_subject_shape(
            d["k"], d["within_subject"]["sd"], d["within_subject"]["rho"], period_weeks(d)
        ),
        ctf_sigma=lognormal_sigma(emg["median_hz"], emg["sd_hz"]),
    )
