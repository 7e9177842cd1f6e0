"""Power configuration: load and check ``config/power.yaml``, resolve one named design.

The schema (``schemas/power.schema.yaml``) fills the defaults; :func:`check_power_config` adds
the rules a JSON Schema cannot say (the control arm exists, arms that are not known therapies
have a rate ratio, rule names are unique, the layout, generator and analysis model fit together,
every arm has at least 2 patients, the simulator design built from each power design is valid)
and replaces every design with a ``grid`` by one design per grid point (:func:`expand_grid`).
:func:`resolve_design` turns one named design into a :class:`PowerDesign`.
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from crampstats.config import ConfigError, check, read_yaml
from crampstats.simulate.design import KNOWN_THERAPIES, validate_design

#: Simulator design keys a power design sets itself (refused under ``simulator:``).
OWN_SIMULATOR_KEYS = (
    "type", "trial_id", "trials", "arms", "control_arm", "n_per_arm", "baseline_rate", "k",
    "placebo_effect", "run_in_weeks", "inclusion", "treatment_weeks", "dropout", "missing_days",
    "n_subjects", "letters",
)  # fmt: skip

#: Analysis model of each layout when the design does not name one (parallel: ``analysis.model``).
WITHIN_SUBJECT = ("crossover", "nof1")
#: Models each layout can be analysed with.
LAYOUT_MODELS = {
    "parallel": ("nb_totals", "frailty_weekly"),
    "crossover": ("crossover",),
    "nof1": ("crossover",),
}
#: Grid keys (``designs.<d>.grid``) -> path of the design setting they replace.
GRID_KEYS = {
    "baseline_rate": ("baseline_rate",),
    "k": ("k",),
    "dropout": ("dropout",),
    "placebo_effect": ("placebo_effect",),
    "diary_compliance": ("diary_compliance",),
    "min_cramps": ("inclusion", "min_cramps"),
}


@dataclass(frozen=True)
class Effect:
    """True rate ratio of one arm: fixed, or a lognormal design prior (assurance).

    Attributes
    ----------
    rr : float or None
        Fixed rate ratio; ``None`` when the arm has a design prior.
    mu, sd : float or None
        Mean and SD of the log rate ratio under the design prior.
    """

    rr: float | None = None
    mu: float | None = None
    sd: float | None = None

    @property
    def is_prior(self) -> bool:
        """Whether the effect is a design prior (one draw per replicate)."""
        return self.rr is None

    @property
    def label(self) -> str:
        """Human-readable description used in tables."""
        if self.is_prior:
            return f"lognormal(mu={self.mu:g}, sd={self.sd:g})"
        return f"rr={self.rr:g}"


@dataclass(frozen=True)
class PowerDesign:
    """One named power design, resolved.

    Attributes
    ----------
    name : str
        Design name (key under ``designs:``).
    spec : dict
        The design as validated (defaults filled).
    control : str
        Control arm.
    arms : tuple of str
        All arms, control first, then the others sorted: the model's arm order.
    effects : dict
        Active arm -> :class:`Effect`.
    n_values : tuple of int
        Patients per arm to simulate, ascending (one value or a sweep); patients in crossover and
        N-of-1 designs.
    model : str
        Analysis model (catalogue id).
    allocation : dict
        Arm -> allocation ratio (parallel designs; 1 for every arm otherwise).
    """

    name: str
    spec: dict[str, Any]
    control: str
    arms: tuple[str, ...]
    effects: dict[str, Effect]
    n_values: tuple[int, ...]
    model: str = "nb_totals"
    allocation: dict[str, float] | None = None

    @property
    def active(self) -> tuple[str, ...]:
        """Arms compared with control."""
        return self.arms[1:]

    @property
    def generator(self) -> str:
        """``"trial"`` or ``"negative_binomial"``."""
        return str(self.spec["generator"])

    @property
    def layout(self) -> str:
        """``"parallel"``, ``"crossover"`` or ``"nof1"``."""
        return str(self.spec.get("type", "parallel"))

    @property
    def family(self) -> str:
        """Name of the design the grid point came from (its own name without a grid)."""
        return str((self.spec.get("scenario") or {}).get("design", self.name))

    @property
    def scenario(self) -> dict[str, float]:
        """Grid values of this design (empty without a grid)."""
        return dict((self.spec.get("scenario") or {}).get("values", {}))

    def arm_sizes(self, n: int) -> dict[str, int]:
        """Patients randomised per arm at sweep value ``n`` (``round(allocation * n)``).

        Crossover and N-of-1 designs: ``n`` patients take every arm.
        """
        ratio = self.allocation or {}
        return {arm: math.floor(n * float(ratio.get(arm, 1.0)) + 0.5) for arm in self.arms}


def load_power_config(path: str | Path) -> dict[str, Any]:
    """Read ``config/power.yaml``, validate it and fill defaults.

    Parameters
    ----------
    path
        Power configuration following ``schemas/power.schema.yaml``.

    Returns
    -------
    dict
        The configuration with defaults filled (``n_per_arm`` always a sorted list).

    Raises
    ------
    ConfigError
        If the file is unreadable or invalid; the message names the key.
    """
    return check_power_config(read_yaml(path), str(path))


def check_power_config(config: dict[str, Any], source: str = "power config") -> dict[str, Any]:
    """Validate a parsed power configuration and fill defaults.

    Parameters
    ----------
    config
        Parsed configuration.
    source
        Where it came from, used in error messages.

    Returns
    -------
    dict
        A copy with defaults filled and every design's ``n_per_arm`` a sorted list.

    Raises
    ------
    ConfigError
        Naming the offending key.
    """
    designs = config.get("designs")
    if isinstance(designs, dict):
        odd = [repr(name) for name in designs if not isinstance(name, str)]
        if odd:  # YAML reads unquoted null, yes, 1 ... as non-text keys
            raise ConfigError(
                f"{source}: key designs: design names must be text, got {', '.join(odd)}; "
                "quote them"
            )
    filled = check(config, "power", source)
    names = [rule["name"] for rule in filled["rules"]]
    if len(set(names)) != len(names):
        raise ConfigError(f"{source}: key rules: rule names are not unique: {names}")
    filled["designs"] = expand_grid(filled["designs"], source)
    for name, spec in filled["designs"].items():
        n = spec["n_per_arm"]
        spec["n_per_arm"] = sorted(n) if isinstance(n, list) else [n]
        _check_design(name, spec, source, filled["analysis"]["model"])
    return filled


def expand_grid(designs: dict[str, Any], source: str = "power config") -> dict[str, Any]:
    """Replace every design with a ``grid`` by one design per point of the cartesian product.

    Parameters
    ----------
    designs
        Design name -> design (defaults filled).
    source
        Where the configuration came from, used in error messages.

    Returns
    -------
    dict
        A grid design ``d`` with ``grid: {k: [2, 3], dropout: [0.05]}`` becomes
        ``d__dropout-0.05__k-2`` and ``d__dropout-0.05__k-3`` (grid keys in alphabetical order),
        each with the values set and ``scenario: {design: d, values: {...}}``.

    Raises
    ------
    ConfigError
        If an expanded name clashes with another design.

    Examples
    --------
    >>> out = expand_grid({"d": {"k": 3, "grid": {"k": [2, 4]}}})
    >>> list(out), out["d__k-4"]["k"], out["d__k-4"]["scenario"]["values"]
    (['d__k-2', 'd__k-4'], 4, {'k': 4})
    """
    out: dict[str, Any] = {}
    for name, spec in designs.items():
        grid = spec.get("grid")
        if not grid:
            out[name] = spec
            continue
        keys = sorted(grid)
        for values in itertools.product(*(grid[key] for key in keys)):
            point = copy.deepcopy({k: v for k, v in spec.items() if k != "grid"})
            for key, value in zip(keys, values, strict=True):
                *parents, leaf = GRID_KEYS[key]
                target = point
                for parent in parents:
                    target = target.setdefault(parent, {})
                target[leaf] = value
            label = "__".join(f"{key}-{value:g}" for key, value in zip(keys, values, strict=True))
            point["scenario"] = {"design": name, "values": dict(zip(keys, values, strict=True))}
            new = f"{name}__{label}"
            if new in designs or new in out:
                raise ConfigError(f"{source}: key designs.{name}.grid: {new!r} is already a design")
            out[new] = point
    return out


def _check_design(name: str, spec: dict[str, Any], source: str, default_model: str) -> None:
    where = f"designs.{name}"
    arms = spec["arms"]
    control = spec["control_arm"]
    if control not in arms:
        raise ConfigError(
            f"{source}: key {where}.control_arm: {control!r} is not one of the arms {sorted(arms)}"
        )
    layout = spec.get("type", "parallel")
    model = design_model(spec, default_model)
    if model not in LAYOUT_MODELS[layout]:
        raise ConfigError(
            f"{source}: key {where}.model: a {layout} design is analysed with "
            f"{' or '.join(LAYOUT_MODELS[layout])}, not {model}"
        )
    if spec["generator"] == "negative_binomial" and (layout != "parallel" or model != "nb_totals"):
        raise ConfigError(
            f"{source}: key {where}.generator: negative_binomial makes subject totals of a "
            "parallel trial for nb_totals; use generator trial"
        )
    if layout != "parallel":
        odd = sorted(a for a, e in arms.items() if (e or {}).get("allocation") is not None)
        if odd:
            raise ConfigError(
                f"{source}: key {where}.arms.{odd[0]}.allocation: allocation ratios apply to "
                "parallel designs (every patient takes every treatment here)"
            )
    smallest = spec["n_per_arm"][0]
    for arm, entry in arms.items():
        size = math.floor(smallest * float((entry or {}).get("allocation", 1.0)) + 0.5)
        if size < 2:
            raise ConfigError(
                f"{source}: key {where}.n_per_arm: arm {arm!r} gets {size} patient(s) at "
                f"n_per_arm {smallest}; every arm needs at least 2"
            )
    for arm, entry in arms.items():
        rr = (entry or {}).get("rr")
        if arm == control and rr is not None and rr != 1.0:
            raise ConfigError(
                f"{source}: key {where}.arms.{arm}.rr: the control arm's rate ratio is 1"
            )
        if arm != control and rr is None and arm not in KNOWN_THERAPIES:
            raise ConfigError(
                f"{source}: key {where}.arms.{arm}.rr: required for an arm that is not a known "
                f"therapy ({', '.join(KNOWN_THERAPIES)})"
            )
    clash = sorted(set(spec["simulator"]) & set(OWN_SIMULATOR_KEYS))
    if clash:
        raise ConfigError(
            f"{source}: key {where}.simulator: {clash} are set by the power design itself"
        )
    if spec["generator"] == "trial":
        # build the simulator design once now, so that a bad `simulator:` key fails at loading
        design = resolve_design(
            {"designs": {name: spec}, "analysis": {"model": default_model}}, name
        )
        rr = {arm: 1.0 for arm in design.arms}
        validate_design(simulator_design(design, spec["n_per_arm"][0], rr), f"{source} ({where})")


def design_model(spec: dict[str, Any], default_model: str = "nb_totals") -> str:
    """Analysis model of a design: its own ``model``, else crossover or ``analysis.model``."""
    if spec.get("model"):
        return str(spec["model"])
    return "crossover" if spec.get("type", "parallel") in WITHIN_SUBJECT else default_model


def resolve_design(config: dict[str, Any], name: str) -> PowerDesign:
    """Resolve the named design of a validated power configuration.

    Parameters
    ----------
    config
        Output of :func:`load_power_config` (or :func:`check_power_config`).
    name
        Key under ``designs:``.

    Returns
    -------
    PowerDesign
        Arms in model order and each active arm's :class:`Effect`.

    Raises
    ------
    ConfigError
        If there is no such design.
    """
    designs = config["designs"]
    if name not in designs:
        raise ConfigError(f"power config: no design {name!r}; designs: {sorted(designs)}")
    spec = designs[name]
    control = spec["control_arm"]
    others = sorted(a for a in spec["arms"] if a != control)
    effects: dict[str, Effect] = {}
    for arm in others:
        rr = (spec["arms"][arm] or {}).get("rr", KNOWN_THERAPIES.get(arm, {}).get("rr"))
        if isinstance(rr, dict):
            prior = rr["lognormal"]
            effects[arm] = Effect(mu=float(prior["mu"]), sd=float(prior["sd"]))
        else:
            effects[arm] = Effect(rr=float(rr))
    n = spec["n_per_arm"]
    n_values = tuple(sorted(n)) if isinstance(n, list) else (int(n),)
    allocation = {
        arm: float((spec["arms"][arm] or {}).get("allocation", 1.0)) for arm in (control, *others)
    }
    default_model = config.get("analysis", {}).get("model", "nb_totals")
    return PowerDesign(
        name=name,
        spec=spec,
        control=control,
        arms=(control, *others),
        effects=effects,
        n_values=n_values,
        model=design_model(spec, default_model),
        allocation=allocation,
    )


def simulator_design(design: PowerDesign, n_per_arm: int, rr: dict[str, float]) -> dict[str, Any]:
    """Build the :mod:`crampstats.simulate` design of one replicate at one design point.

    Parameters
    ----------
    design
        The power design.
    n_per_arm
        Sweep value: patients per arm with allocation 1 (parallel), patients (crossover, N-of-1).
    rr
        True rate ratio of every arm (control 1) for this replicate.

    Returns
    -------
    dict
        A design following ``schemas/design.schema.yaml`` (EMG off: the power analysis does not
        read it, and it costs simulation time).
    """
    spec = design.spec
    arms: dict[str, dict[str, Any]] = {}
    for arm in design.arms:
        entry: dict[str, Any] = {}
        if arm != design.control:
            entry["rr"] = float(rr[arm])
        dropout = (spec["arms"][arm] or {}).get("dropout")
        if dropout is not None:
            entry["dropout"] = float(dropout)
        arms[arm] = entry
    out: dict[str, Any] = {
        "type": design.layout,
        "trial_id": "power",
        "arms": arms,
        "control_arm": design.control,
        "baseline_rate": spec["baseline_rate"],
        "k": spec["k"],
        "placebo_effect": spec["placebo_effect"],
        "run_in_weeks": spec["run_in_weeks"],
        "inclusion": dict(spec["inclusion"]),
        "treatment_weeks": spec["treatment_weeks"],
        "dropout": spec["dropout"],
        "missing_days": round(1.0 - spec["diary_compliance"], 12),
        "emg": {"enabled": False},
    }
    if design.layout == "parallel":
        sizes = design.arm_sizes(n_per_arm)
        equal = len(set(sizes.values())) == 1
        out["n_per_arm"] = next(iter(sizes.values())) if equal else sizes
    else:
        out["n_subjects"] = int(n_per_arm)
    for key, value in spec["simulator"].items():
        if key == "emg":
            out["emg"] = {**value, "enabled": False}
        else:
            out[key] = value
    return out


def config_digest(config: dict[str, Any], design_name: str) -> str:
    """Hash of what determines a design's decisions (design, analysis, rules, seed).

    Files from runs with different digests must not be summarised together.
    """
    payload = {
        "design": config["designs"][design_name],
        "analysis": config["analysis"],
        "patient_benefit_probability": config.get("patient_benefit_probability"),
        "multiplicity": config.get("multiplicity"),
        "rules": config["rules"],
        "seed": config["seed"],
    }
    text = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def rule_log_thresholds(config: dict[str, Any]) -> list[tuple[str, float, float]]:
    """``(name, log threshold_rr, probability)`` of every decision rule, in config order."""
    return [
        (r["name"], math.log(float(r["threshold_rr"])), float(r["probability"]))
        for r in config["rules"]
    ]
