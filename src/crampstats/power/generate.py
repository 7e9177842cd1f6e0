"""Replicate seeds, true effects and the analysis data of one simulated trial.

Seeds
-----
Replicate ``r`` owns ``SeedSequence(root, spawn_key=(r,))``, which is exactly child ``r`` of
``SeedSequence(root).spawn(...)``. Its own children (spawn keys ``(r, 0)``, ``(r, 1)``,
``(r, 2)``) seed the draw of the true effects (design prior), the data and the MCMC run. A
replicate's numbers therefore depend on nothing but ``(root, r)``: not on the shard it falls in,
nor on the other replicates, and every patients-per-arm value of a sweep reuses them.

Nested trials (common random numbers)
-------------------------------------
A replicate simulates one pool of patients at the largest ``n`` of the sweep
(:func:`simulate_pool`); the trial at a smaller ``n`` is the first patients of that pool
(:func:`pool_trial`): per arm in a parallel design (``round(allocation * n)`` each), per
sequence in an AB/BA crossover (the simulator's balance, ``ceil(n / 2)`` on the first
sequence), the first ``n`` in an N-of-1 series. Screening, randomisation and every count are
drawn once, so the trial at ``n`` is a subset of the trial at ``n' > n`` and the power curve
over ``n`` carries no independent noise between sample sizes. The first ``n`` patients of a pool
have the distribution of a trial simulated at ``n`` (patients pass screening independently and
are randomised by an exchangeable permutation).

Data
----
``generator: trial`` runs the full trial simulator (:func:`crampstats.simulate.simulate`: run-in
screening against the inclusion threshold, placebo response, weekly fluctuation, missing diary
days, dropout), then turns its diary into the ``periods`` frame the totals model reads with
:func:`periods_from_tables`, a vectorised equivalent of :func:`crampstats.derive.subject_periods`
(tested equal on the columns the model uses). Why not ``derive`` itself: simulating a 120-patient
trial takes about 11 ms, deriving it with pandas group-bys another 24 ms; the aggregation here
takes about 2 ms, which matters at thousands of replicates next to a 0.3 s fit.

``generator: negative_binomial`` draws independent NB totals with a common exposure and no run-in
(the assumptions of the Zhu and Lakkis 2014 formula, :mod:`crampstats.closed_form`).
``log_baseline_rate`` is then a constant 0 column: ``nb_totals`` requires the column, and a
constant covariate centres to 0, so its coefficient drops out of the likelihood (its posterior is
its prior) and the model reduces to the two-group NB comparison the formula describes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from crampstats.derive import crossover_periods, subject_weeks
from crampstats.power.config import PowerDesign, simulator_design
from crampstats.simulate import simulate

#: Children of a replicate's SeedSequence.
EFFECT, DATA, MCMC = 0, 1, 2


def replicate_seed(root: int, replicate: int, part: int | None = None) -> np.random.SeedSequence:
    """Seed of replicate ``replicate`` (or of one of its parts ``EFFECT``, ``DATA``, ``MCMC``).

    Parameters
    ----------
    root
        Root seed of the configuration.
    replicate
        Replicate index (0-based).
    part
        ``None`` for the replicate's own sequence, else the child index.

    Returns
    -------
    numpy.random.SeedSequence
        ``SeedSequence(root, spawn_key=(replicate,))`` or its child ``part``.

    Examples
    --------
    >>> a = replicate_seed(7, 3).generate_state(2)
    >>> b = np.random.SeedSequence(7).spawn(4)[3].generate_state(2)
    >>> bool((a == b).all())
    True
    """
    key = (int(replicate),) if part is None else (int(replicate), int(part))
    return np.random.SeedSequence(int(root), spawn_key=key)


def mcmc_seed(root: int, replicate: int) -> int:
    """Integer MCMC seed of a replicate (the same for every design point of a sweep)."""
    return int(replicate_seed(root, replicate, MCMC).generate_state(1, np.uint32)[0])


def draw_effects(design: PowerDesign, root: int, replicate: int) -> dict[str, float]:
    """Return the true rate ratio of every arm (control 1) for one replicate.

    Fixed effects are returned as configured; design priors are drawn once per replicate from
    ``log RR ~ Normal(mu, sd)`` (arms in model order, one standard normal each).
    """
    rng = np.random.default_rng(replicate_seed(root, replicate, EFFECT))
    z = rng.standard_normal(len(design.active))
    out = {design.control: 1.0}
    for arm, zi in zip(design.active, z, strict=True):
        effect = design.effects[arm]
        out[arm] = effect.rr if effect.rr is not None else math.exp(effect.mu + effect.sd * zi)
    return out


@dataclass(frozen=True)
class Pool:
    """The patients of one replicate, simulated once at the largest ``n`` of the sweep.

    Attributes
    ----------
    frame : pandas.DataFrame
        The analysis model's data for every patient of the pool (``periods``, ``weekly`` or
        ``crossover`` frame).
    subjects : pandas.DataFrame
        ``subject_id, group, rank`` in pool order: ``group`` is the arm (parallel), the
        sequence (crossover) or ``"all"`` (N-of-1); ``rank`` the patient's place in it (0-based).
    own_log_rr : dict
        Subject -> active arm -> the patient's true log rate ratio (crossover, N-of-1 and designs
        with ``effect_sd``; empty otherwise).
    """

    frame: pd.DataFrame
    subjects: pd.DataFrame
    own_log_rr: dict[str, dict[str, float]] = field(default_factory=dict)


def group_sizes(design: PowerDesign, n: int, groups: list[str]) -> dict[str, int]:
    """Patients per group in the trial at sweep value ``n`` (see :class:`Pool`).

    Parallel: ``round(allocation * n)`` per arm. Crossover: the simulator balances sequences as
    ``numpy.resize([0, 1], n)`` (first sequence in letter order ``ceil(n / 2)``, the other
    ``floor(n / 2)``). N-of-1: ``n``.
    """
    if design.layout == "parallel":
        return design.arm_sizes(n)
    if design.layout == "crossover":
        ordered = sorted(groups)  # letter order: "AB" before "BA"
        return {g: (n + 1) // 2 if i == 0 else n // 2 for i, g in enumerate(ordered)}
    return {g: n for g in groups}


def simulate_pool(
    design: PowerDesign, rr: dict[str, float], root: int, replicate: int, n_max: int | None = None
) -> Pool:
    """Simulate the pool of one replicate at the largest ``n`` of the design's sweep.

    Parameters
    ----------
    design
        The power design.
    rr
        True rate ratio per arm (:func:`draw_effects`).
    root, replicate
        Root seed and replicate index (the data seed is ``replicate_seed(root, replicate,
        DATA)``).
    n_max
        Pool size (sweep value); default the largest of ``design.n_values``.

    Returns
    -------
    Pool
        The model's data for every patient and each patient's group and rank.
    """
    seed = replicate_seed(root, replicate, DATA)
    n_max = max(design.n_values) if n_max is None else int(n_max)
    if design.generator == "negative_binomial":
        frame = negative_binomial_periods(design, n_max, rr, np.random.default_rng(seed))
        subjects = frame[["subject_id", "arm"]].rename(columns={"arm": "group"})
    else:
        trial = simulate(simulator_design(design, n_max, rr), seed)
        tables = trial.tables
        if design.model == "crossover":
            frame = crossover_periods(tables, {"design": design.layout})
        elif design.model == "frailty_weekly":
            frame = subject_weeks(tables, {"design": "parallel"})
        else:
            frame = periods_from_tables(tables)
        sub = tables["subjects"]
        if design.layout == "parallel":
            group = sub["arm"].astype(str).to_numpy()
        elif design.layout == "crossover":
            group = sub["sequence"].astype(str).to_numpy()
        else:
            group = np.full(len(sub), "all", dtype=object)
        subjects = pd.DataFrame({"subject_id": sub["subject_id"].astype(str), "group": group})
    subjects = subjects.reset_index(drop=True)
    subjects["rank"] = subjects.groupby("group", sort=False).cumcount()
    own = {} if design.generator == "negative_binomial" else dict(trial.truth["subject_log_rr"])
    return Pool(frame=frame.reset_index(drop=True), subjects=subjects, own_log_rr=own)


def pool_subjects(pool: Pool, design: PowerDesign, n: int) -> np.ndarray:
    """Subject ids of the trial at sweep value ``n``: the first patients of each group."""
    groups = pool.subjects["group"].astype(str)
    sizes = group_sizes(design, n, sorted(set(groups)))
    limit = groups.map(sizes).to_numpy()
    return pool.subjects["subject_id"].to_numpy()[pool.subjects["rank"].to_numpy() < limit]


def pool_trial(pool: Pool, design: PowerDesign, n: int) -> pd.DataFrame:
    """Return the analysis data of the trial at sweep value ``n`` (the pool's first patients)."""
    keep = pool.frame["subject_id"].astype(str).isin(pool_subjects(pool, design, n))
    return pool.frame.loc[keep.to_numpy()].reset_index(drop=True)


def simulate_periods(
    design: PowerDesign, n_per_arm: int, rr: dict[str, float], root: int, replicate: int
) -> pd.DataFrame:
    """Simulate one trial and return the analysis model's data (``periods`` for ``nb_totals``).

    The trial is the first ``n_per_arm`` patients (per arm) of the replicate's pool
    (:func:`simulate_pool`, :func:`pool_trial`), so every ``n_per_arm`` of a sweep analyses
    nested data.

    Parameters
    ----------
    design
        The power design.
    n_per_arm
        Sweep value (the pool is simulated at the largest of it and ``design.n_values``).
    rr
        True rate ratio per arm (:func:`draw_effects`).
    root, replicate
        Root seed and replicate index.

    Returns
    -------
    pandas.DataFrame
        For ``nb_totals``: ``subject_id, arm, period, count, exposure_days, runin_count,
        runin_days, log_baseline_rate`` sorted by ``subject_id``; the ``weekly`` or
        ``crossover`` frame for the other models.
    """
    n_max = max(n_per_arm, *design.n_values)
    return pool_trial(simulate_pool(design, rr, root, replicate, n_max), design, n_per_arm)


def negative_binomial_periods(
    design: PowerDesign, n_per_arm: int, rr: dict[str, float], rng: np.random.Generator
) -> pd.DataFrame:
    """Independent NB totals: mean ``baseline_rate * rr * 7 * treatment_weeks``, size ``k``.

    Arms in model order, each ``round(allocation * n_per_arm)`` patients.
    """
    spec = design.spec
    days = 7 * int(spec["treatment_weeks"])
    k = float(spec["k"])
    sizes = design.arm_sizes(n_per_arm)
    counts = [sizes[a] for a in design.arms]
    arm = np.repeat(np.array(design.arms, dtype=object), counts)
    mu = days * float(spec["baseline_rate"]) * np.repeat([rr[a] for a in design.arms], counts)
    count = rng.negative_binomial(k, k / (k + mu))
    n = arm.size
    return pd.DataFrame(
        {
            "subject_id": [f"P{i + 1:05d}" for i in range(n)],
            "arm": arm.astype(str),
            "period": "treatment",
            "count": count.astype(np.int64),
            "exposure_days": np.full(n, days, dtype=np.int64),
            "runin_count": np.zeros(n, dtype=np.int64),
            "runin_days": np.zeros(n, dtype=np.int64),
            "log_baseline_rate": np.zeros(n),
        }
    )


def periods_from_tables(tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Treatment totals and run-in rate per patient from simulated ``subjects`` and ``diary``.

    The same numbers as :func:`crampstats.derive.subject_periods` for a parallel design (records
    with a missing count are not diarised and add no exposure; ``log_baseline_rate =
    log((runin_count + 0.5) / runin_days)``, NaN without run-in days), computed with
    ``numpy.bincount`` instead of group-bys.

    Parameters
    ----------
    tables
        ``subjects`` and ``diary`` of a simulated parallel trial.

    Returns
    -------
    pandas.DataFrame
        One row per randomised patient, sorted by ``subject_id``.
    """
    subjects, diary = tables["subjects"], tables["diary"]
    ids = subjects["subject_id"].astype(str).to_numpy()
    order = np.argsort(ids, kind="stable")
    ids, arms = ids[order], subjects["arm"].astype(str).to_numpy()[order]
    idx = pd.Index(ids).get_indexer(diary["subject_id"].astype(str))
    count = diary["cramp_count"]
    done = count.notna().to_numpy() & (idx >= 0)
    values = count.to_numpy(dtype=float, na_value=0.0)
    days = diary["days"].to_numpy(dtype=float, na_value=0.0)
    period = diary["period"].astype(str).to_numpy()
    runin = period == "run-in"
    treated = ~np.isin(period, ("run-in", "washout"))
    n = ids.size

    def total(weights: np.ndarray, rows: np.ndarray) -> np.ndarray:
        sel = done & rows
        return np.bincount(idx[sel], weights=weights[sel], minlength=n).round().astype(np.int64)

    runin_count, runin_days = total(values, runin), total(days, runin)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_rate = np.where(runin_days > 0, np.log((runin_count + 0.5) / runin_days), np.nan)
    return pd.DataFrame(
        {
            "subject_id": ids,
            "arm": arms,
            "period": "treatment",
            "count": total(values, treated),
            "exposure_days": total(days, treated),
            "runin_count": runin_count,
            "runin_days": runin_days,
            "log_baseline_rate": log_rate,
        }
    )
