"""The prespecified analysis plan: parse it from a trial config, check it, hash it, freeze it.

The plan (config ``analysis.plan``, schema ``schemas/trial.schema.yaml#/$defs/analysis_plan``,
keys in docs/analysis-plan.md) states the estimand in the terms of ICH E9(R1) - population,
endpoint, intercurrent events with a strategy each, summary measure - the success rule of every
comparison with control and the family-wise strategy for several actives.

Its identity is :func:`plan_hash`: SHA-256 of the canonical JSON (sorted keys, no spaces,
ASCII) of the *resolved* plan, in which a criterion's ``rate_ratio: null`` is replaced by
``analysis.threshold``; so the hash changes when anything that decides a verdict changes and
not otherwise (comments, key order, settings outside the plan). ``crampstats plan freeze
--config FILE`` writes :func:`freeze_record` to :func:`record_path` beside the config
(``FILE.stem + ".plan-freeze.json"``); reading a config attaches the record
(:func:`attach_frozen`) so that provenance and the report can say whether the plan changed after
it was frozen (:func:`plan_status`).

Ground floor: imports nothing of crampstats but :mod:`crampstats.errors`; files are read here
but written by the caller (atomically, :mod:`crampstats.outputs`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from crampstats.errors import CrampstatsError

__all__ = [
    "ENDPOINT_MEASURES",
    "RECORD_SUFFIX",
    "SINGLE_TRIAL",
    "STRATEGIES",
    "TREATMENT_POLICY_EVENTS",
    "Criterion",
    "Plan",
    "PlanError",
    "attach_frozen",
    "check_plan",
    "freeze_record",
    "parse_plan",
    "plan_hash",
    "plan_status",
    "read_record",
    "record_path",
]

#: Name of the frozen-plan record beside a config: ``config.yaml`` -> ``config.plan-freeze.json``.
RECORD_SUFFIX = ".plan-freeze.json"
#: Each primary endpoint's summary measure; its criteria are on that scale (a rate ratio, or a
#: difference in mean 0-10 intensity).
ENDPOINT_MEASURES = {"cramp_frequency": "rate_ratio", "intensity": "difference_in_mean_intensity"}
#: Family-wise strategies (docs/analysis-plan.md).
STRATEGIES = ("none", "fixed_sequence", "calibrated", "exchangeable")
#: Intercurrent events whose diary after the event can be used (treatment_policy).
TREATMENT_POLICY_EVENTS = ("treatment_discontinuation", "rescue_medication")
#: Key of a trial config's single plan in a freeze record (a main config keys by trial name).
SINGLE_TRIAL = "*"

# The schema's defaults (schemas/trial.schema.yaml, analysis_plan), for configs resolved before
# the plan existed; tests/test_plan.py checks that the two agree.
DEFAULT_CRITERIA = (
    {"rate_ratio": 1.0, "probability": 0.975},
    {"rate_ratio": None, "probability": 0.5},
)
DEFAULT_PLAN: dict[str, Any] = {
    "population": "full_analysis_set",
    "endpoint": "cramp_frequency",
    "intercurrent_events": {
        "treatment_discontinuation": "hypothetical",
        "withdrawal": "hypothetical",
        "rescue_medication": "hypothetical",
    },
    "summary_measure": "rate_ratio",
    "success": {
        "criteria": list(DEFAULT_CRITERIA),
        "planning_rate_ratio": None,
        "planning_difference": None,
    },
    "multiplicity": {
        "strategy": "none",
        "order": [],
        "alpha": 0.025,
        "calibration_draws": 200000,
        "seed": 14,
        "prior_mu_sd": 1.0,
        "prior_tau_sd": 0.5,
    },
}
DEFAULT_THRESHOLD = 0.75  # analysis.threshold's default (docs/calibration.md, Gaps)


class PlanError(CrampstatsError):
    """The analysis plan contradicts the trial (unknown arms, strategy the design cannot use)."""


@dataclass(frozen=True)
class Criterion:
    """One criterion of the success rule, on the primary endpoint's scale.

    Cramp frequency: ``P(RR < rate_ratio | data) >= probability``; intensity (``difference``
    set, ``rate_ratio`` None): ``P(difference < difference | data) >= probability``, the
    difference in mean 0-10 intensity versus control (lower is better).
    """

    rate_ratio: float | None
    probability: float
    difference: float | None = None

    @property
    def bound(self) -> float:
        """The threshold on the criterion's own scale (a rate ratio or a difference)."""
        value = self.difference if self.difference is not None else self.rate_ratio
        if value is None:
            raise ValueError("a criterion needs a rate ratio or a difference")
        return float(value)

    @property
    def is_null(self) -> bool:
        """Whether the criterion reads the probability of any benefit (RR < 1, difference < 0)."""
        return self.difference == 0.0 if self.difference is not None else self.rate_ratio == 1.0

    @property
    def quantity(self) -> str:
        """The posterior probability it reads, e.g. ``P(RR < 0.75)``, ``P(difference < -1)``."""
        name = "difference" if self.difference is not None else "RR"
        return f"P({name} < {self.bound:g})"

    @property
    def rule(self) -> str:
        """The criterion in words, e.g. ``P(RR < 1) >= 0.975``."""
        return f"{self.quantity} >= {self.probability:g}"

    def as_dict(self) -> dict[str, Any]:
        """Plain form; a rate-ratio criterion keeps the keys it had before intensity existed."""
        out = asdict(self)
        if self.difference is None:
            del out["difference"]
        return out


@dataclass(frozen=True)
class Plan:
    """A resolved analysis plan (every default filled, thresholds resolved).

    Attributes mirror the config keys (docs/analysis-plan.md); ``criteria`` is the success rule
    of each comparison with control (all must hold).
    """

    population: str = "full_analysis_set"
    endpoint: str = "cramp_frequency"
    intercurrent_events: dict[str, str] = field(default_factory=dict)
    summary_measure: str = "rate_ratio"
    criteria: tuple[Criterion, ...] = ()
    planning_rate_ratio: float = DEFAULT_THRESHOLD
    planning_difference: float | None = None
    strategy: str = "none"
    order: tuple[str, ...] = ()
    alpha: float = 0.025
    calibration_draws: int = 200000
    seed: int = 14
    prior_mu_sd: float = 1.0
    prior_tau_sd: float = 0.5

    def as_dict(self) -> dict[str, Any]:
        """Plain, JSON-ready form (the hashed content)."""
        out = asdict(self)
        out["criteria"] = [c.as_dict() for c in self.criteria]
        if self.planning_difference is None:  # plans frozen before intensity keep their hash
            del out["planning_difference"]
        out["order"] = list(self.order)
        return out

    @property
    def hash(self) -> str:
        """:func:`plan_hash` of this plan."""
        return plan_hash(self)

    @property
    def rule(self) -> str:
        """The success rule in words, criteria joined by ``and``."""
        return " and ".join(c.rule for c in self.criteria)

    @property
    def calibrates(self) -> bool:
        """Whether the strategy calibrates the probability of the no-effect criterion.

        That is P(RR < 1) for cramp frequency, P(difference < 0) for intensity.
        """
        return self.strategy in ("calibrated", "exchangeable")


def _criterion(raw: Mapping[str, Any], threshold: float) -> Criterion:
    """One criterion: a difference (intensity) as given, a missing rate ratio -> ``threshold``."""
    rate_ratio, probability = raw.get("rate_ratio"), float(raw["probability"])
    if raw.get("difference") is not None:  # both set is refused by check_plan
        ratio = None if rate_ratio is None else float(rate_ratio)
        return Criterion(ratio, probability, float(raw["difference"]))
    return Criterion(float(threshold if rate_ratio is None else rate_ratio), probability)


def parse_plan(config: Mapping[str, Any]) -> Plan:
    """Return the resolved plan of a trial configuration.

    Parameters
    ----------
    config
        Resolved trial configuration (``analysis.plan`` filled by the schema; a config resolved
        before the plan existed gets the defaults).

    Returns
    -------
    Plan
        Criteria with ``rate_ratio: null`` resolved to ``analysis.threshold``; the planning
        rate ratio likewise.
    """
    analysis = config.get("analysis") or {}
    threshold = float(analysis.get("threshold", DEFAULT_THRESHOLD))
    raw = analysis.get("plan") or {}
    success = {**DEFAULT_PLAN["success"], **(raw.get("success") or {})}
    multiplicity = {**DEFAULT_PLAN["multiplicity"], **(raw.get("multiplicity") or {})}
    events = {**DEFAULT_PLAN["intercurrent_events"], **(raw.get("intercurrent_events") or {})}
    criteria = tuple(_criterion(c, threshold) for c in success["criteria"])
    planning = success.get("planning_rate_ratio")
    return Plan(
        population=str(raw.get("population", DEFAULT_PLAN["population"])),
        endpoint=str(raw.get("endpoint", DEFAULT_PLAN["endpoint"])),
        intercurrent_events={k: str(v) for k, v in sorted(events.items())},
        summary_measure=str(raw.get("summary_measure", DEFAULT_PLAN["summary_measure"])),
        criteria=criteria,
        planning_rate_ratio=float(threshold if planning is None else planning),
        planning_difference=(
            None
            if success.get("planning_difference") is None
            else float(success["planning_difference"])
        ),
        strategy=str(multiplicity["strategy"]),
        order=tuple(str(a) for a in multiplicity["order"]),
        alpha=float(multiplicity["alpha"]),
        calibration_draws=int(multiplicity["calibration_draws"]),
        seed=int(multiplicity["seed"]),
        prior_mu_sd=float(multiplicity["prior_mu_sd"]),
        prior_tau_sd=float(multiplicity["prior_tau_sd"]),
    )


def check_plan(
    plan: Plan,
    arms: Sequence[str] | None,
    control: str,
    primary_model: str | None = None,
    endpoints: Sequence[str] | None = None,
) -> None:
    """Refuse a plan the trial cannot carry out, listing every problem.

    Parameters
    ----------
    plan
        The resolved plan.
    arms
        The trial's arms (control included), from the config or the data; ``None`` when not
        known (the checks that need them are skipped).
    control
        The control arm.
    primary_model
        The primary count model (``None``: not known yet).
    endpoints
        The secondary endpoints the trial analyses (``None``: not known yet); an intensity
        primary endpoint needs ``intensity`` among them.

    Raises
    ------
    PlanError
        One line per problem, each naming the config key.
    """
    key = "analysis.plan"
    problems = []
    known = arms is not None
    actives = [str(a) for a in arms or () if str(a) != control]
    if plan.strategy not in STRATEGIES:
        problems.append(f"{key}.multiplicity.strategy: {plan.strategy!r} not in {STRATEGIES}")
    if plan.strategy == "fixed_sequence" and not plan.order:
        problems.append(f"{key}.multiplicity.order: fixed_sequence needs the testing order")
    elif plan.strategy == "fixed_sequence" and known:
        unknown = [a for a in plan.order if a not in actives]
        missing = [a for a in actives if a not in plan.order]
        if unknown:
            problems.append(
                f"{key}.multiplicity.order: {unknown} are not active arms of this trial "
                f"(active arms: {actives}; control: {control})"
            )
        if missing:
            problems.append(
                f"{key}.multiplicity.order: fixed_sequence needs every active arm once; "
                f"missing {missing}"
            )
    elif plan.order and plan.strategy != "fixed_sequence":
        problems.append(
            f"{key}.multiplicity.order: only used by fixed_sequence (strategy is {plan.strategy})"
        )
    intensity = plan.endpoint == "intensity"
    if plan.calibrates and not any(c.is_null for c in plan.criteria):
        null = "{difference: 0, ...}" if intensity else "{rate_ratio: 1, ...}"
        problems.append(
            f"{key}.success.criteria: strategy {plan.strategy} calibrates the no-effect "
            f"criterion, and the rule has none (add {null} with its probability)"
        )
    if plan.strategy == "calibrated" and primary_model == "crossover":
        problems.append(
            f"{key}.multiplicity.strategy: calibrated assumes parallel arms sharing one control "
            "group; the primary model is crossover (use fixed_sequence)"
        )
    if plan.strategy == "exchangeable":
        if known and len(actives) < 2:
            problems.append(
                f"{key}.multiplicity.strategy: exchangeable needs at least two active arms "
                f"(this trial has {actives})"
            )
        if intensity or (primary_model is not None and primary_model != "nb_totals"):
            problems.append(
                f"{key}.multiplicity.strategy: exchangeable is a prior option of nb_totals; "
                f"the primary analysis is {'intensity' if intensity else primary_model}"
            )
    problems += _endpoint_problems(plan, endpoints)
    for event, strategy in plan.intercurrent_events.items():
        if strategy == "composite":
            measure = "a mean intensity" if intensity else "a cramp rate"
            problems.append(
                f"{key}.intercurrent_events.{event}: composite scores the event as a failure, "
                f"which {measure} cannot express without an arbitrary score; the responder "
                "endpoint does "
                "(analysis.secondary.responder_withdrawal: composite). Use hypothetical"
                + (" or treatment_policy" if event in TREATMENT_POLICY_EVENTS else "")
            )
        elif strategy == "treatment_policy" and event not in TREATMENT_POLICY_EVENTS:
            problems.append(
                f"{key}.intercurrent_events.{event}: treatment_policy needs the diary after the "
                "event, and a withdrawn subject has none; the analysis treats it as missing at "
                "random (hypothetical) - the tipping-point analysis (analysis.tipping_point) shows "
                "what another post-withdrawal rate would change"
            )
    if problems:
        raise PlanError("analysis plan refused:\n" + "\n".join(f"  {p}" for p in problems))


def _endpoint_problems(plan: Plan, endpoints: Sequence[str] | None) -> list[str]:
    """Problems of the endpoint, its summary measure and the scale of the criteria."""
    key = "analysis.plan"
    measure = ENDPOINT_MEASURES.get(plan.endpoint)
    if measure is None:
        return [f"{key}.endpoint: {plan.endpoint!r} not in {sorted(ENDPOINT_MEASURES)}"]
    problems = []
    if plan.summary_measure != measure:
        problems.append(
            f"{key}.summary_measure: {plan.summary_measure} does not summarise {plan.endpoint}; "
            f"its summary measure is {measure}"
        )
    intensity = plan.endpoint == "intensity"
    if intensity:  # a difference, and no rate ratio beside it
        wrong = [c.rule for c in plan.criteria if c.difference is None or c.rate_ratio is not None]
    else:
        wrong = [c.rule for c in plan.criteria if c.difference is not None]
    if wrong:
        scale = (
            "{difference: d, probability: p} (P(difference in mean intensity < d) >= p; no "
            "rate_ratio)"
            if intensity
            else "{rate_ratio: r, probability: p} (no difference)"
        )
        problems.append(
            f"{key}.success.criteria: {plan.endpoint} is decided on its {measure}; criteria "
            f"{wrong} are on another scale: write each as {scale}"
        )
    if intensity and endpoints is not None and "intensity" not in endpoints:
        problems.append(
            f"{key}.endpoint: intensity is the primary endpoint, but this trial's intensity "
            "analysis does not run (it needs a parallel design, the diary's intensity column, "
            "and intensity in analysis.secondary.endpoints when that list is set)"
        )
    return problems


def plan_hash(plan: Plan) -> str:
    """SHA-256 (hex) of the canonical JSON of the resolved plan.

    Canonical: sorted keys, ``,``/``:`` separators, ASCII, floats as Python prints them; so
    key order, comments and settings outside the plan do not change it.
    """
    text = json.dumps(plan.as_dict(), sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode("ascii")).hexdigest()


def record_path(config_path: str | Path) -> Path:
    """Return the path of a config's frozen-plan record: ``<stem>.plan-freeze.json`` beside it."""
    path = Path(config_path)
    return path.with_name(path.stem + RECORD_SUFFIX)


def freeze_record(
    plans: Mapping[str, Plan], config_path: str | Path, now: datetime | None = None
) -> dict[str, Any]:
    """Return the frozen-plan record of a config: each trial's plan hash, the UTC time.

    Parameters
    ----------
    plans
        Trial name -> resolved plan (a trial config: one entry, key ``"*"``).
    config_path
        The config file (recorded by name).
    now
        Time of freezing (default: now, UTC).

    Returns
    -------
    dict
        ``{"config": name, "frozen_utc": ISO time, "plans": {trial: {"plan_hash", "plan"}}}``.
    """
    now = now or datetime.now(UTC)
    return {
        "config": Path(config_path).name,
        "frozen_utc": now.astimezone(UTC).isoformat(timespec="seconds"),
        "plans": {
            name: {"plan_hash": plan.hash, "plan": plan.as_dict()}
            for name, plan in sorted(plans.items())
        },
    }


def read_record(config_path: str | Path) -> dict[str, Any] | None:
    """Read the frozen-plan record beside ``config_path`` (``None`` when there is none).

    Raises
    ------
    PlanError
        If the record exists but is not a record written by ``crampstats plan freeze``.
    """
    path = record_path(config_path)
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PlanError(f"{path}: not a frozen-plan record ({exc})") from None
    plans = record.get("plans") if isinstance(record, dict) else None
    if not isinstance(plans, dict) or not isinstance(record.get("frozen_utc"), str) or not all(
        isinstance(p, dict) and isinstance(p.get("plan_hash"), str) for p in plans.values()
    ):
        raise PlanError(
            f"{path}: not a frozen-plan record (expected frozen_utc and plans with a plan_hash "
            "each); write it with `crampstats plan freeze --config CONFIG`"
        )
    return record


def attach_frozen(config: dict[str, Any], config_path: str | Path | None) -> dict[str, Any]:
    """Return ``config`` with ``plan_frozen`` set from the record beside ``config_path``.

    The trial's entry is the one named by its ``trial_id`` (a main config), else the single
    plan of a trial config. No record, or no entry for this trial: ``plan_frozen`` is ``None``.
    ``config_path`` ``None`` or ``-`` (standard input) keeps the config's own ``plan_frozen``.
    """
    out = dict(config)
    if config_path is None or str(config_path) == "-":
        # settings handed over on standard input (the workflow) carry their record already
        out.setdefault("plan_frozen", None)
        return out
    out["plan_frozen"] = None
    record = read_record(config_path)
    if record is None:
        return out
    plans = record["plans"]
    entry = plans.get(str(config.get("trial_id", ""))) or plans.get(SINGLE_TRIAL)
    if entry is not None:
        out["plan_frozen"] = {
            "plan_hash": entry["plan_hash"],
            "frozen_utc": record["frozen_utc"],
            "record": record_path(config_path).name,
        }
    return out


def plan_status(config: Mapping[str, Any]) -> dict[str, Any]:
    """Return the plan's hash and whether it changed after freezing (provenance, report).

    Returns
    -------
    dict
        ``plan_hash``, ``frozen_hash``, ``frozen_utc``, ``record`` (``None`` when not frozen),
        ``changed_after_freeze`` (``None`` when not frozen) and ``status``: ``"frozen"``
        (hash equals the frozen one), ``"changed after freezing"`` or ``"not frozen"``.
    """
    current = parse_plan(config).hash
    frozen = config.get("plan_frozen") or None
    if not frozen:
        return {
            "plan_hash": current,
            "frozen_hash": None,
            "frozen_utc": None,
            "record": None,
            "changed_after_freeze": None,
            "status": "not frozen",
        }
    changed = frozen["plan_hash"] != current
    return {
        "plan_hash": current,
        "frozen_hash": frozen["plan_hash"],
        "frozen_utc": frozen.get("frozen_utc"),
        "record": frozen.get("record"),
        "changed_after_freeze": changed,
        "status": "changed after freezing" if changed else "frozen",
    }
