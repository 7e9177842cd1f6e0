"""Replicate seeds, true effects and the analysis data of one simulated trial.

Seeds
-----
Replicate ``r`` owns ``SeedSequence(root, spawn_key=(r,))``, which is exactly child ``r`` of
``SeedSequence(root).spawn(...)``. Its own children (spawn keys ``(r, 0)``, ``(r, 1)``,
``(r, 2)``) seed the draw of the true effects (design prior), the data and the MCMC run. A
replicate's numbers therefore depend on nothing but ``(root, r)``: not on the shard it falls in,
nor on the other replicates, and every patients-per-arm value of a sweep reuses them (common
random numbers, so power differences between sample sizes are not blurred by independent noise).

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

import numpy as np
import pandas as pd

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


def simulate_periods(
    design: PowerDesign, n_per_arm: int, rr: dict[str, float], root: int, replicate: int
) -> pd.DataFrame:
    """Simulate one trial and return its ``periods`` frame (one row per randomised patient).

    Parameters
    ----------
    design
        The power design.
    n_per_arm
        Patients randomised per arm.
    rr
        True rate ratio per arm (:func:`draw_effects`).
    root, replicate
        Root seed and replicate index (the data seed is ``replicate_seed(root, replicate,
        DATA)``, shared by every ``n_per_arm``).

    Returns
    -------
    pandas.DataFrame
        ``subject_id, arm, period, count, exposure_days, runin_count, runin_days,
        log_baseline_rate`` sorted by ``subject_id``.
    """
    seed = replicate_seed(root, replicate, DATA)
    if design.generator == "negative_binomial":
        return negative_binomial_periods(design, n_per_arm, rr, np.random.default_rng(seed))

    trial = simulate(simulator_design(design, n_per_arm, rr), seed)
    return periods_from_tables(trial.tables)


def negative_binomial_periods(
    design: PowerDesign, n_per_arm: int, rr: dict[str, float], rng: np.random.Generator
) -> pd.DataFrame:
    """Independent NB totals: mean ``baseline_rate * rr * 7 * treatment_weeks``, size ``k``."""
    spec = design.spec
    days = 7 * int(spec["treatment_weeks"])
    k = float(spec["k"])
    arm = np.repeat(np.array(design.arms, dtype=object), n_per_arm)
    mu = days * float(spec["baseline_rate"]) * np.repeat([rr[a] for a in design.arms], n_per_arm)
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
