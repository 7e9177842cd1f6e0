"""Group-sequential Bayesian designs: looks, efficacy and futility thresholds, arm dropping.

A design with a ``sequential:`` block (``config/power.yaml``) is analysed at *looks*: at
information fraction ``f_j`` the first ``n_j = ceil(f_j n_a)`` patients of every arm still open
(``n_a`` the arm's size under its allocation ratio; enrolment order) have complete
follow-up, and the analysis model is fitted to them. Per active arm still open, with
``p_eff = P(RR < efficacy.threshold_rr | data)`` and
``p_fut = P(RR < futility.threshold_rr | data)``:

- efficacy at look ``j`` when ``p_eff > e_j`` (the arm succeeds and closes);
- futility at an interim look ``j`` when ``p_fut < g_j`` (the arm closes without success);
- at the last look an arm still open succeeds or fails on ``e_J`` alone.

With ``drop_arms: true`` (default) every arm closes on its own and the trial ends when none is
open (the control arm recruits while any arm is open). With ``drop_arms: false`` arms move
together: the trial stops for efficacy when any open arm crosses its efficacy threshold (those
arms succeed), for futility when every open arm crosses futility.

Thresholds ``e_j`` are constant, a list per look, or ``obrien_fleming``: the classical
O'Brien-Fleming boundary ``c_j = C / sqrt(f_j)`` for one-sided ``alpha`` (``C`` solves
``P(any Z_j > c_j) = alpha`` with ``corr(Z_i, Z_j) = sqrt(f_i / f_j)``) mapped to posterior
probabilities ``e_j = Phi(c_j)``. Under a flat prior and a normal likelihood the posterior
probability of benefit is ``Phi(z_j)``, so this rule is the frequentist boundary; under the weak
prior of the analysis model it is close to it (checked against rpact in
``tests/power/test_sequential.py``).

Duration: patients are recruited at ``accrual_per_week`` in total, shared by the open arms in
proportion to their allocation ratios; a look happens when its ``n_j``-th patient of every open
arm (``ceil(f_j n_a)`` of an arm of ``n_a``) completes follow-up (run-in + treatment weeks).
Patients recruited between that patient and the look (overrun) are randomised but not
analysed; ``n_randomised`` counts them, ``n_analysed`` does not.

The decision step (:func:`look_step`) is one function: the MCMC (or Laplace) path
(:func:`run_sequential_shard`) calls it look by look for each replicate, the vectorised
normal-approximation path (:func:`normal_sequential`, used for the rpact check) for all
replicates at once.
"""

from __future__ import annotations

import itertools
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import optimize, stats

from crampstats.config import ConfigError
from crampstats.decisions import probability_below
from crampstats.errors import CrampstatsError
from crampstats.outputs import atomic_write_text
from crampstats.power.config import PowerDesign, config_digest, resolve_design
from crampstats.power.fast import check_mode, posterior_log_rr
from crampstats.power.generate import draw_effects, mcmc_seed, simulate_periods
from crampstats.power.report import stopping_svg
from crampstats.power.run import (
    Progress,
    analysis_model,
    decisions_path,
    read_decisions,
    shard_replicates,
    write_decisions,
)
from crampstats.power.summary import collect_decisions

__all__ = [
    "REASONS",
    "SequentialPlan",
    "apply_looks",
    "is_sequential",
    "is_sequential_folder",
    "look_step",
    "normal_sequential",
    "obrien_fleming_z",
    "operating_characteristics",
    "run_sequential_shard",
    "sequential_plan",
    "summarize_sequential",
    "timeline",
]

#: How an arm ended: 1 efficacy at a look, 2 futility at an interim look, 3 no success at the end.
REASONS = {1: "efficacy", 2: "futility", 3: "final"}


@dataclass(frozen=True)
class SequentialPlan:
    """Looks and thresholds of a group-sequential design.

    Attributes
    ----------
    fractions : tuple of float
        Information fractions of the looks, ascending, the last 1.
    efficacy : numpy.ndarray
        Posterior probability ``e_j`` that ``P(RR < efficacy_rr)`` must exceed, per look.
    futility : numpy.ndarray
        ``g_j`` per look (NaN: no futility stop at that look; always NaN at the last).
    efficacy_rr, futility_rr : float
        Rate-ratio thresholds of the two probabilities.
    drop_arms : bool
        Arms close on their own (True) or move together (False).
    accrual_per_week : float
        Patients recruited per week over all open arms.
    follow_up_weeks : float
        Run-in plus treatment weeks of one patient.
    boundary : str
        ``obrien_fleming``, ``constant`` or ``list`` (how ``efficacy`` was set).
    """

    fractions: tuple[float, ...]
    efficacy: np.ndarray
    futility: np.ndarray
    efficacy_rr: float = 1.0
    futility_rr: float = 1.0
    drop_arms: bool = True
    accrual_per_week: float = 5.0
    follow_up_weeks: float = 10.0
    boundary: str = "constant"

    @property
    def n_looks(self) -> int:
        """Number of looks."""
        return len(self.fractions)

    def look_sizes(self, n_per_arm: int) -> np.ndarray:
        """Patients per arm with complete follow-up at each look, ``ceil(f_j n)``."""
        return np.array([min(n_per_arm, math.ceil(f * n_per_arm - 1e-9)) for f in self.fractions])

    def arm_look_sizes(self, arm_sizes: np.ndarray) -> np.ndarray:
        """Return the ``(looks, arms)`` patients analysed per arm at each look.

        ``ceil(f_j n_a)`` for an arm of ``n_a`` patients (:meth:`look_sizes` per arm).
        """
        return np.stack([self.look_sizes(int(n)) for n in arm_sizes], axis=1)


def obrien_fleming_z(
    fractions: tuple[float, ...] | list[float], alpha: float = 0.025
) -> np.ndarray:
    """Classical O'Brien-Fleming critical values ``c_j = C / sqrt(f_j)``, one-sided ``alpha``.

    Parameters
    ----------
    fractions
        Information fractions of the looks (ascending, last 1).
    alpha
        One-sided overall type I error.

    Returns
    -------
    numpy.ndarray
        ``c_j`` per look. ``C`` solves ``P(Z_j <= c_j for all j) = 1 - alpha`` under the
        canonical joint normal of the sequential z statistics (``corr = sqrt(f_i / f_j)``).

    Examples
    --------
    >>> obrien_fleming_z([1.0]).round(3)
    array([1.96])
    """
    f = np.asarray(fractions, float)
    cov = np.sqrt(np.minimum.outer(f, f) / np.maximum.outer(f, f))
    if f.size == 1:
        return np.array([stats.norm.isf(alpha)])
    mvn = stats.multivariate_normal(mean=np.zeros(f.size), cov=cov, allow_singular=True)
    rng = np.random.default_rng(1)  # the Genz integration is randomised; fix it

    def excess(c: float) -> float:
        return 1.0 - mvn.cdf(c / np.sqrt(f), rng=rng) - alpha

    const = optimize.brentq(excess, stats.norm.isf(alpha) * 0.5, 10.0, xtol=1e-10)
    return const / np.sqrt(f)


def is_sequential(config: dict[str, Any], design_name: str) -> bool:
    """Whether the named design has a ``sequential:`` block."""
    return bool(config["designs"].get(design_name, {}).get("sequential"))


def sequential_plan(design: PowerDesign, where: str = "") -> SequentialPlan:
    """Resolve a design's ``sequential:`` block into a :class:`SequentialPlan`.

    Raises
    ------
    ConfigError
        Looks not ascending or not ending at 1, lists of the wrong length, probabilities
        outside (0, 1).
    """
    spec = design.spec["sequential"]
    where = where or f"designs.{design.name}.sequential"
    if design.layout != "parallel" or design.model != "nb_totals":
        raise ConfigError(
            f"power config: key {where}: sequential designs are parallel, analysed with "
            f"nb_totals (got {design.layout}, {design.model})"
        )
    looks = tuple(float(f) for f in spec["looks"])
    if any(b <= a for a, b in itertools.pairwise(looks)) or looks[-1] != 1.0:
        raise ConfigError(
            f"power config: key {where}.looks: information fractions must increase and end at "
            f"1, got {list(looks)}"
        )
    eff = spec["efficacy"]
    prob = eff["probability"]
    if prob == "obrien_fleming":
        efficacy = stats.norm.cdf(obrien_fleming_z(looks, float(eff["alpha"])))
        boundary = "obrien_fleming"
    elif isinstance(prob, list):
        if len(prob) != len(looks):
            raise ConfigError(
                f"power config: key {where}.efficacy.probability: {len(prob)} values for "
                f"{len(looks)} looks"
            )
        efficacy, boundary = np.asarray(prob, float), "list"
    else:
        efficacy, boundary = np.full(len(looks), float(prob)), "constant"
    fut = spec.get("futility") or {}
    futility = np.full(len(looks), np.nan)
    gp = fut.get("probability")
    if isinstance(gp, list):
        if len(gp) != len(looks) - 1:
            raise ConfigError(
                f"power config: key {where}.futility.probability: {len(gp)} values for "
                f"{len(looks) - 1} interim looks"
            )
        futility[:-1] = gp
    elif gp is not None:
        futility[:-1] = float(gp)
    follow_up = float(design.spec["treatment_weeks"])
    if design.generator == "trial":
        follow_up += float(design.spec["run_in_weeks"])
    return SequentialPlan(
        fractions=looks,
        efficacy=np.asarray(efficacy, float),
        futility=futility,
        efficacy_rr=float(eff["threshold_rr"]),
        futility_rr=float(fut.get("threshold_rr", 1.0)),
        drop_arms=bool(spec["drop_arms"]),
        accrual_per_week=float(spec["accrual_per_week"]),
        follow_up_weeks=follow_up,
        boundary=boundary,
    )


# --------------------------------------------------------------------------------------------
# The decision step, shared by every path
# --------------------------------------------------------------------------------------------
def look_step(
    open_arms: np.ndarray, p_eff: np.ndarray, p_fut: np.ndarray, look: int, plan: SequentialPlan
) -> tuple[np.ndarray, np.ndarray]:
    """Arms that stop at look ``look`` (0-based) for efficacy and for futility.

    Parameters
    ----------
    open_arms
        ``(R, A)`` boolean: arms still open before this look.
    p_eff, p_fut
        ``(R, A)`` posterior probabilities ``P(RR < efficacy_rr)`` and ``P(RR < futility_rr)``
        at this look (ignored where the arm is closed).
    look
        Look index.
    plan
        The design's plan.

    Returns
    -------
    efficacy, futility : numpy.ndarray
        ``(R, A)`` boolean masks of open arms closing now. At the last look every open arm
        closes: for efficacy or (``futility`` False) without success.
    """
    open_arms = np.asarray(open_arms, bool)
    eff = open_arms & (np.asarray(p_eff) > plan.efficacy[look])
    g = plan.futility[look]
    fut = open_arms & ~eff & (np.asarray(p_fut) < g) if np.isfinite(g) else np.zeros_like(eff)
    if not plan.drop_arms:
        # arms move together: futility only when every open arm is futile; a success stops the
        # trial (SequentialState.update closes the other open arms without success)
        open_any = open_arms.any(axis=1, keepdims=True)
        fut = fut & ((fut | ~open_arms).all(axis=1, keepdims=True) & open_any)
    return eff, fut


def apply_looks(
    p_eff: np.ndarray, p_fut: np.ndarray, plan: SequentialPlan
) -> dict[str, np.ndarray]:
    """Run :func:`look_step` over all looks for probabilities known in advance.

    Parameters
    ----------
    p_eff, p_fut
        ``(R, J, A)`` probabilities at every look (an arm's later looks are ignored once it
        closed).
    plan
        The plan.

    Returns
    -------
    dict
        ``stop_look`` (``(R, A)``, 0-based), ``reason`` (``(R, A)``, keys of :data:`REASONS`).
    """
    r, j_max, a = p_eff.shape
    state = SequentialState.start(r, a)
    for j in range(j_max):
        state.update(*look_step(state.open, p_eff[:, j], p_fut[:, j], j, plan), j, plan)
    return {"stop_look": state.stop_look, "reason": state.reason}


@dataclass
class SequentialState:
    """Which arms are open, and when and why each closed (``(R, A)`` arrays)."""

    open: np.ndarray
    stop_look: np.ndarray
    reason: np.ndarray

    @classmethod
    def start(cls, replicates: int, arms: int) -> SequentialState:
        """Every arm open."""
        return cls(
            np.ones((replicates, arms), bool),
            np.full((replicates, arms), -1),
            np.zeros((replicates, arms), int),
        )

    def update(self, eff: np.ndarray, fut: np.ndarray, look: int, plan: SequentialPlan) -> None:
        """Close the arms of :func:`look_step`.

        At the last look, or when the trial stops (``drop_arms: false`` and an arm closed),
        every arm still open closes as ``final``.
        """
        closing = eff | fut
        self.reason[eff] = 1
        self.reason[fut] = 2
        rest = self.open & ~closing
        if look == plan.n_looks - 1 or not plan.drop_arms:
            stop_all = np.full(rest.shape[0], look == plan.n_looks - 1)
            if not plan.drop_arms:
                stop_all |= closing.any(axis=1)
            rest = rest & stop_all[:, None]
            self.reason[rest] = 3
            closing = closing | rest
        self.stop_look[closing] = look
        self.open &= ~closing


# --------------------------------------------------------------------------------------------
# Time line and sample size
# --------------------------------------------------------------------------------------------
def timeline(
    stop_look: np.ndarray,
    n_per_arm: int,
    plan: SequentialPlan,
    allocation: np.ndarray | None = None,
) -> dict[str, Any]:
    """Look times, trial duration and patients randomised / analysed of one replicate.

    Patients are recruited at ``plan.accrual_per_week`` in total, shared by the open arms in
    proportion to their allocation ratios (the control arm stays open while any active arm is),
    so arm ``a`` has enrolled ``w_a E(t)`` patients at time ``t``, where ``E`` grows at
    ``accrual / sum of the open arms' w``. Look ``j`` is due when every open arm's
    ``ceil(f_j n_a)``-th patient has completed follow-up.

    Parameters
    ----------
    stop_look
        ``(A,)`` 0-based look at which each active arm closed.
    n_per_arm
        The sweep value ``n``: arm ``a`` randomises at most ``round(w_a n)`` patients.
    plan
        The plan (accrual and follow-up).
    allocation
        ``(A + 1,)`` allocation ratios, control first (default: all 1).

    Returns
    -------
    dict
        ``duration_weeks`` (time of the trial's last look), ``n_analysed`` and ``n_randomised``
        (all arms, control included).
    """
    stop_look = np.asarray(stop_look, int)
    weights = np.ones(stop_look.size + 1) if allocation is None else np.asarray(allocation, float)
    arm_sizes = np.floor(n_per_arm * weights + 0.5).astype(int)
    sizes = plan.arm_look_sizes(arm_sizes)  # (looks, control + actives)
    last = int(stop_look.max())
    # breakpoints of the recruitment rate per unit of allocation: (time, open arms' weight)
    changes: list[tuple[float, float]] = [(0.0, float(weights.sum()))]
    times = []

    def enrolled(t: float) -> float:
        n, prev_t, prev_m = 0.0, 0.0, changes[0][1]
        for ct, m in changes[1:]:
            if ct >= t:
                break
            n += (ct - prev_t) * plan.accrual_per_week / prev_m
            prev_t, prev_m = ct, m
        return n + (t - prev_t) * plan.accrual_per_week / prev_m

    def when(n: float) -> float:
        return optimize.brentq(lambda t: enrolled(t) - n, 0.0, 1e6, xtol=1e-9)

    for j in range(last + 1):
        open_now = np.concatenate([[True], stop_look >= j])
        times.append(when(float(np.max(sizes[j][open_now] / weights[open_now])))
                     + plan.follow_up_weeks)
        still = stop_look > j
        changes.append((times[-1], float(weights[0] + weights[1:][still].sum())))
    end = times[last]
    active = range(stop_look.size)
    n_rand = sum(
        min(arm_sizes[i + 1], weights[i + 1] * enrolled(times[stop_look[i]])) for i in active
    ) + min(arm_sizes[0], weights[0] * enrolled(end))
    n_anal = int(sum(sizes[stop_look[i], i + 1] for i in active) + sizes[last, 0])
    return {"duration_weeks": end, "n_analysed": n_anal, "n_randomised": float(n_rand)}


# --------------------------------------------------------------------------------------------
# Paths: vectorised normal approximation, and MCMC / Laplace per replicate
# --------------------------------------------------------------------------------------------
def normal_sequential(
    plan: SequentialPlan,
    n_per_arm: int,
    mean_control: float,
    rr: list[float] | np.ndarray,
    k: float,
    replicates: int,
    seed: int,
    prior_sd: float = 1.0,
) -> pd.DataFrame:
    """Normal-approximation path: NB totals, posterior of log RR from the arms' sample means.

    Every replicate draws ``n_per_arm`` NB totals (mean ``mean_control * rr``, size ``k``) per
    arm, stage by stage: the sum of ``m`` independent NB(k, p) totals is NB(m k, p), so only
    the stage sums are drawn. At look ``j`` the log rate ratio of an arm is estimated by
    ``log(mean_arm / mean_control)`` over the first ``n_j`` patients, with the delta-method
    variance ``v = (1 / mean_arm + 1 / k) / n_j + (1 / mean_control + 1 / k) / n_j`` (dispersion
    known, as the SD is in rpact's normal approximation); its posterior under the prior
    ``Normal(0, prior_sd)`` is normal (conjugate), and ``P(RR < t) = Phi((log t - m) / s)``. The
    probabilities then go through :func:`look_step` like the MCMC path's.

    Returns
    -------
    pandas.DataFrame
        :func:`outcome_rows` of the replicates (``replicate, arm, true_rr, stop_look, reason,
        success, n_analysed, n_randomised, duration_weeks``).
    """
    rng = np.random.default_rng(seed)
    rr = np.asarray(rr, float)
    mu = mean_control * np.concatenate([[1.0], rr])
    sizes = plan.look_sizes(n_per_arm)
    stage = np.diff(np.concatenate([[0], sizes]))
    draws = [
        rng.negative_binomial(k * m, k / (k + mu), (replicates, mu.size)) if m else 0 for m in stage
    ]
    sums = np.cumsum(np.stack(np.broadcast_arrays(*draws), axis=1), axis=1).astype(float)
    p_eff = np.empty((replicates, len(sizes), rr.size))
    p_fut = np.empty_like(p_eff)
    for j, n in enumerate(sizes):
        m = np.maximum(sums[:, j] / n, 0.5 / n)  # an all-zero arm: half a count
        v_arm = (1.0 / m + 1.0 / k) / n
        est = np.log(m[:, 1:] / m[:, :1])
        v = v_arm[:, 1:] + v_arm[:, :1]
        shrink = prior_sd**2 / (prior_sd**2 + v)
        post_m, post_s = est * shrink, np.sqrt(v * shrink)
        p_eff[:, j] = stats.norm.cdf((math.log(plan.efficacy_rr) - post_m) / post_s)
        p_fut[:, j] = stats.norm.cdf((math.log(plan.futility_rr) - post_m) / post_s)
    result = apply_looks(p_eff, p_fut, plan)
    arms = [f"arm{i + 1}" for i in range(rr.size)]
    return outcome_rows(result["stop_look"], result["reason"], arms, rr, n_per_arm, plan)


def outcome_rows(
    stop_look: np.ndarray,
    reason: np.ndarray,
    arms: list[str],
    true_rr: np.ndarray,
    n_per_arm: int,
    plan: SequentialPlan,
    replicates: np.ndarray | None = None,
    allocation: np.ndarray | None = None,
) -> pd.DataFrame:
    """One row per replicate and active arm, with the trial's duration and sample sizes.

    ``allocation``: ratios of the control and active arms, as in :func:`timeline`.
    """
    r, a = stop_look.shape
    reps = np.arange(r) if replicates is None else np.asarray(replicates)
    # the time line depends only on when arms stopped: compute it once per pattern
    cache: dict[tuple[int, ...], dict[str, Any]] = {}
    trial = []
    for row in stop_look:
        key = tuple(int(s) for s in row)
        if key not in cache:
            cache[key] = timeline(row, n_per_arm, plan, allocation)
        trial.append(cache[key])
    weights = np.ones(a + 1) if allocation is None else np.asarray(allocation, float)
    sizes = plan.arm_look_sizes(np.floor(n_per_arm * weights + 0.5).astype(int))[:, 1:]
    true_rr = np.broadcast_to(np.asarray(true_rr, float), (r, a))
    return pd.DataFrame(
        {
            "replicate": np.repeat(reps, a),
            "n_per_arm": n_per_arm,
            "arm": np.tile(np.asarray(arms, dtype=object), r),
            "true_rr": true_rr.ravel(),
            "stop_look": stop_look.ravel() + 1,
            "reason": [REASONS[int(x)] for x in reason.ravel()],
            "success": reason.ravel() == 1,
            "n_arm_analysed": sizes[stop_look, np.arange(a)].ravel(),
            "trial_stop_look": np.repeat(stop_look.max(axis=1) + 1, a),
            "n_analysed": np.repeat([t["n_analysed"] for t in trial], a),
            "n_randomised": np.repeat([t["n_randomised"] for t in trial], a),
            "duration_weeks": np.repeat([t["duration_weeks"] for t in trial], a),
            "n_max": int(np.floor(n_per_arm * weights + 0.5).sum()),
        }
    )


def _first_n(periods: pd.DataFrame, n_by_arm: dict[str, int]) -> pd.DataFrame:
    """Keep the first ``n_by_arm[arm]`` randomised patients of every arm (order of ids)."""
    frame = periods.sort_values("subject_id", kind="stable")
    rank = frame.groupby("arm", sort=False).cumcount()
    keep = rank < frame["arm"].map(n_by_arm).astype(int)
    return frame.loc[keep.to_numpy()].reset_index(drop=True)


def run_sequential_shard(
    config: dict[str, Any],
    design_name: str,
    replicates: int | None = None,
    shards: int = 1,
    shard: int = 1,
    out_dir: str | Path = ".",
    progress: Progress | None = None,
    cores: int | None = None,
) -> Path:
    """Simulate shard ``shard`` of ``shards`` of a sequential design, analysing look by look.

    Arguments as :func:`crampstats.power.run_shard`. Each replicate simulates the whole trial
    once (its seeds as in a fixed design), then at every look fits the analysis model (the
    config's ``analysis.mode``) to the patients with complete follow-up of the arms still open,
    and applies :func:`look_step` until every arm is closed.

    Returns
    -------
    pathlib.Path
        ``decisions-I-of-K.parquet`` with one row per replicate x patients per arm x active arm
        (:func:`outcome_rows` columns plus ``design, effect, p_eff[j], p_fut[j]`` per look,
        ``fits, mode, status, error``); the metadata says ``kind: sequential`` and holds the
        plan.
    """
    replicates = int(config["replicates"] if replicates is None else replicates)
    design = resolve_design(config, design_name)
    plan = sequential_plan(design)
    reps = shard_replicates(replicates, shards, shard)
    model = analysis_model(config, design)
    analysis = config["analysis"]
    mode = analysis.get("mode", "mcmc")
    check_mode(model, mode)
    cores = analysis["cores"] if cores is None else cores
    thresholds = dict(analysis["diagnostics"])
    log_eff, log_fut = math.log(plan.efficacy_rr), math.log(plan.futility_rr)
    active = list(design.active)
    allocation = np.array([(design.allocation or {}).get(arm, 1.0)
                           for arm in (design.control, *active)], float)
    frames = []
    start = time.perf_counter()
    for done, r in enumerate(reps, start=1):
        rr = draw_effects(design, config["seed"], r)
        seed = mcmc_seed(config["seed"], r)
        for n in design.n_values:
            periods = simulate_periods(design, n, rr, config["seed"], r)
            arm_sizes = design.arm_sizes(n)
            sizes = plan.arm_look_sizes(
                np.array([arm_sizes[arm] for arm in (design.control, *active)])
            )
            state = SequentialState.start(1, len(active))
            probs = np.full((2, plan.n_looks, len(active)), np.nan)
            modes, errors, status, fits = set(), [], "ok", 0
            for j in range(plan.n_looks):
                if not state.open.any():
                    break
                n_by_arm = {design.control: int(sizes[j, 0])}
                for i, arm in enumerate(active):
                    at = j if state.open[0, i] else int(state.stop_look[0, i])
                    n_by_arm[arm] = int(sizes[at, i + 1])
                data = _first_n(periods, n_by_arm)
                try:
                    fit = posterior_log_rr(
                        model, data, seed + j, mode=mode, cores=cores, thresholds=thresholds,
                        laplace=analysis.get("laplace"),
                    )  # fmt: skip
                except (CrampstatsError, RuntimeError) as exc:
                    # no analysis possible at this look: no arm can stop here
                    errors.append(f"look {j + 1}: {type(exc).__name__}: {exc}")
                    status = "error"
                    p_eff = np.zeros((1, len(active)))
                    p_fut = np.ones((1, len(active)))
                else:
                    fits += 1
                    modes.add(fit.mode)
                    if fit.diagnostics["status"] != "ok" and status == "ok":
                        status = "diagnostics_failed"
                        errors += fit.diagnostics["reasons"]
                    cols = [fit.arms.index(a) for a in active]
                    x = fit.draws[:, cols].T
                    p_eff = probability_below(x, log_eff)[None, :]
                    p_fut = probability_below(x, log_fut)[None, :]
                probs[0, j] = np.where(state.open[0], p_eff[0], np.nan)
                probs[1, j] = np.where(state.open[0], p_fut[0], np.nan)
                state.update(*look_step(state.open, p_eff, p_fut, j, plan), j, plan)
            rows = outcome_rows(
                state.stop_look, state.reason, active, [rr[a] for a in active], n, plan,
                replicates=np.array([r]), allocation=allocation,
            )  # fmt: skip
            rows.insert(0, "design", design.name)
            rows.insert(4, "effect", [design.effects[a].label for a in active])
            for j in range(plan.n_looks):
                rows[f"p_eff[{j + 1}]"] = probs[0, j]
                rows[f"p_fut[{j + 1}]"] = probs[1, j]
            rows["fits"] = fits
            rows["mode"] = "+".join(sorted(modes)) or mode
            rows["status"] = status
            rows["error"] = "; ".join(errors)
            rows["seed"] = seed
            frames.append(rows)
        if progress is not None:
            progress(done, len(reps), time.perf_counter() - start)
    elapsed = time.perf_counter() - start
    meta = {
        "kind": "sequential",
        "design": design_name,
        "digest": config_digest(config, design_name),
        "replicates": replicates,
        "shards": shards,
        "shard": shard,
        "replicate_range": [reps.start, reps.stop],
        "n_values": list(design.n_values),
        "effects": {arm: design.effects[arm].label for arm in active},
        "plan": plan_description(plan),
        "model": analysis["model"],
        "mode": mode,
        "sampler": analysis["sampler"],
        "seed": config["seed"],
        "target_power": config["target_power"],
        "elapsed_seconds": round(elapsed, 3),
    }
    frame = pd.concat(frames, ignore_index=True)
    return write_decisions(frame, decisions_path(out_dir, shards, shard), meta)


def plan_description(plan: SequentialPlan) -> dict[str, Any]:
    """Return the plan as JSON-ready values (stored with the decisions, shown in the report)."""
    return {
        "looks": list(plan.fractions),
        "boundary": plan.boundary,
        "efficacy_rr": plan.efficacy_rr,
        "efficacy": [float(e) for e in plan.efficacy],
        "futility_rr": plan.futility_rr,
        "futility": [None if not np.isfinite(g) else float(g) for g in plan.futility],
        "drop_arms": plan.drop_arms,
        "accrual_per_week": plan.accrual_per_week,
        "follow_up_weeks": plan.follow_up_weeks,
    }


# --------------------------------------------------------------------------------------------
# Operating characteristics
# --------------------------------------------------------------------------------------------
def _exact_interval(successes: int, n: int) -> tuple[float, float]:
    ci = stats.binomtest(int(successes), int(n)).proportion_ci(0.95, method="exact")
    return float(ci.low), float(ci.high)


def operating_characteristics(frame: pd.DataFrame, n_looks: int) -> pd.DataFrame:
    """Operating characteristics per design, patients per arm and arm.

    Parameters
    ----------
    frame
        Rows of :func:`outcome_rows` (or a sequential decisions file), several replicates.
    n_looks
        Looks of the plan.

    Returns
    -------
    pandas.DataFrame
        ``design, n_per_arm, arm, effect, true_rr, replicates, p_success`` (power; the
        false-positive rate of an arm whose true RR is 1) with its exact (Clopper-Pearson) 95 %
        interval ``lower, upper``, ``p_efficacy[j]`` and ``p_futility[j]`` (stopping of the arm
        at look j), ``p_any_success`` (the trial: at least one arm succeeds), ``expected_n`` and
        ``expected_n_randomised`` (all arms) and ``expected_duration_weeks`` with their Monte
        Carlo SE, ``n_max`` (patients if no look stops anything).
    """
    frame = frame.copy()
    if "design" not in frame:
        frame["design"] = ""
    if "effect" not in frame:
        frame["effect"] = [f"rr={x:g}" for x in frame["true_rr"]]
    rows = []
    for (design, n), group in frame.groupby(["design", "n_per_arm"], sort=True):
        trial = group.drop_duplicates("replicate")
        any_success = group.groupby("replicate")["success"].any()
        for arm, g in group.groupby("arm", sort=True):
            r = len(g)
            k = int(g["success"].sum())
            lo, hi = _exact_interval(k, r)
            fixed = g["effect"].iloc[0].startswith("rr=")
            row = {
                "design": design,
                "n_per_arm": int(n),
                "arm": arm,
                "effect": g["effect"].iloc[0],
                "true_rr": float(g["true_rr"].iloc[0]) if fixed else np.nan,
                "replicates": r,
                "p_success": k / r,
                "lower": lo,
                "upper": hi,
            }
            for j in range(1, n_looks + 1):
                at = g["stop_look"] == j
                row[f"p_efficacy[{j}]"] = float((at & (g["reason"] == "efficacy")).mean())
                row[f"p_futility[{j}]"] = float((at & (g["reason"] == "futility")).mean())
            row["p_any_success"] = float(any_success.mean())
            for col, name in (
                ("n_analysed", "expected_n"),
                ("n_randomised", "expected_n_randomised"),
                ("duration_weeks", "expected_duration_weeks"),
            ):
                x = trial[col].to_numpy(float)
                row[name] = float(x.mean())
                row[f"{name}_mcse"] = (
                    float(x.std(ddof=1) / math.sqrt(x.size)) if x.size > 1 else np.nan
                )
            row["n_max"] = int(g["n_max"].iloc[0])
            rows.append(row)
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------------
# Summary files
# --------------------------------------------------------------------------------------------
def is_sequential_folder(directory: str | Path) -> bool:
    """Whether the decisions files of ``directory`` come from a sequential design."""
    files = sorted(Path(directory).glob("decisions-*-of-*.parquet"))
    return bool(files) and read_decisions(files[0])[1].get("kind") == "sequential"


def summarize_sequential(directory: str | Path) -> tuple[pd.DataFrame, Path]:
    """Operating characteristics of the sequential design(s) of ``directory``.

    Writes ``power.csv`` (:func:`operating_characteristics` plus ``mode`` and the plan's looks)
    and ``power.svg`` (stopping probabilities per look,
    :func:`crampstats.power.report.stopping_svg`).

    Raises
    ------
    CrampstatsError
        If files are missing or mixed (:func:`crampstats.power.collect_decisions`) or a design
        of the folder is not sequential.
    """
    directory = Path(directory)
    frame, metas = collect_decisions(directory)
    tables = []
    for name, meta in metas.items():
        if meta.get("kind") != "sequential":
            raise CrampstatsError(f"{directory}: design {name!r} is not sequential")
        sub = frame[frame["design"] == name]
        table = operating_characteristics(sub, len(meta["plan"]["looks"]))
        table["modes"] = "+".join(sorted(set(sub["mode"].astype(str))))
        table["looks"] = " ".join(f"{f:g}" for f in meta["plan"]["looks"])
        tables.append(table)
    table = pd.concat(tables, ignore_index=True)
    csv, svg = directory / "power.csv", directory / "power.svg"
    atomic_write_text(csv, table.to_csv(index=False, float_format="%.6g"))
    atomic_write_text(svg, stopping_svg(table))
    return table, svg
