"""Run a calibration case's replicates and summarise them against two-sided binomial bands.

Replicate seeds depend only on the study's root seed, the case's name and the replicate's index
(:func:`replicate_seed`), so the summary does not depend on how replicates were sharded or where
the shards ran. A shard keeps per replicate and target only the truth and the posterior summary
the study needs (mean, SD, the 2.5/25/75/97.5 % quantiles), never draws.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats

from crampstats.calibration.case import CalibrationCase, code_hash
from crampstats.outputs import Progress

#: Central interval levels whose coverage the study checks.
LEVELS = (0.5, 0.95)
#: Family-wise probability that a correctly calibrated study fails any of its checks.
FAMILY_ALPHA = 0.05
#: Two-sided error of each error-rate check (``CalibrationCase.null_rate``): a test of its own,
#: with its own exact band, not one of the coverage family.
ERROR_RATE_ALPHA = 0.05
QUANTILES = (0.025, 0.25, 0.75, 0.975)
ROW_COLUMNS = [
    "case",
    "replicate",
    "target",
    "truth",
    "mean",
    "sd",
    "q025",
    "q250",
    "q750",
    "q975",
    "converged",
    "note",
]


#: Simulation-based calibration: each truth is ranked among this many posterior draws, thinned
#: evenly from the chains (the production sampler's 4 x 1000-2000 draws thinned 40-80 fold are
#: close to independent, which uniform ranks need), and the ranks' uniformity is tested with a
#: chi-square over equal bins (Talts et al. 2018).
SBC_RANKS = 99
SBC_BINS = 10

#: Summary columns of the error-rate check (empty for cases without ``null_rate``).
ERROR_RATE_COLUMNS = (
    "false_positives", "false_positive_rate", "false_positive_band_low", "false_positive_band_high",
)  # fmt: skip


def sbc_rank(draws: np.ndarray, truth: float) -> int:
    """Return the rank of ``truth`` among :data:`SBC_RANKS` draws thinned evenly from ``draws``.

    ``draws`` are chain-major (:func:`crampstats.calibration.case.draws_of`), so the thinned
    draws come from every chain.
    """
    draws = np.asarray(draws, dtype=float).reshape(-1)
    if draws.size < SBC_RANKS:
        raise ValueError(f"SBC needs at least {SBC_RANKS} draws, got {draws.size}")
    thinned = draws[:: draws.size // SBC_RANKS][:SBC_RANKS]
    return int(np.sum(thinned < truth))


def sbc_p_value(ranks: pd.Series) -> float:
    """P-value of the chi-square test that ``ranks`` (0..:data:`SBC_RANKS`) are uniform."""
    bins = np.asarray(ranks, dtype=int) * SBC_BINS // (SBC_RANKS + 1)
    return float(stats.chisquare(np.bincount(bins, minlength=SBC_BINS)).pvalue)


def replicate_seed(root: int, case: str, replicate: int) -> np.random.SeedSequence:
    """Return the seed of one replicate: a function of the root seed, case name and index."""
    name_key = int.from_bytes(hashlib.sha256(case.encode()).digest()[:4], "big")
    return np.random.SeedSequence(root, spawn_key=(name_key, replicate))


def shard_replicates(replicates: int, shards: int, shard: int) -> range:
    """Replicate indices of ``shard`` (1-based) of ``shards``: contiguous, sizes differ by <= 1."""
    if not 1 <= shard <= shards:
        raise ValueError(f"shard {shard} is not in 1..{shards}")
    bounds = np.linspace(0, replicates, shards + 1).round().astype(int)
    return range(int(bounds[shard - 1]), int(bounds[shard]))


def run_shard(
    case: CalibrationCase,
    replicates: int,
    *,
    shards: int = 1,
    shard: int = 1,
    seed: int,
    cores: int = 1,
    progress: Progress | None = None,
) -> pd.DataFrame:
    """Run one shard of ``case``'s study; one row per replicate and target (:data:`ROW_COLUMNS`).

    An SBC case (``case.sbc``) also gets each truth's ``rank`` (:func:`sbc_rank`).

    Parameters
    ----------
    case
        The calibration case.
    replicates
        Replicates of the whole study (all shards).
    shards, shard
        This shard (1-based) of ``shards``.
    seed
        The study's root seed.
    cores
        Chains sampled in parallel.
    progress
        Called after each replicate.
    """
    indices = shard_replicates(replicates, shards, shard)
    run = case.start(cores)
    rows: list[dict] = []
    start = time.perf_counter()
    for done, index in enumerate(indices, start=1):
        result = run(replicate_seed(seed, case.name, index))
        for estimate in result.estimates:
            draws = np.asarray(estimate.draws, dtype=float)
            q = np.quantile(draws, QUANTILES)
            rows.append(
                {
                    "case": case.name,
                    "replicate": index,
                    "target": estimate.target,
                    "truth": float(estimate.truth),
                    "mean": float(draws.mean()),
                    "sd": float(draws.std(ddof=1)),
                    "q025": q[0],
                    "q250": q[1],
                    "q750": q[2],
                    "q975": q[3],
                    "converged": bool(result.converged),
                    "note": result.note,
                }
            )
            if case.sbc:
                rows[-1]["rank"] = sbc_rank(draws, estimate.truth)
        if progress is not None:
            progress(done, len(indices), time.perf_counter() - start)
    return pd.DataFrame(rows, columns=[*ROW_COLUMNS, *(["rank"] if case.sbc else [])])


def coverage_band(n: int, level: float, alpha: float) -> tuple[int, int]:
    """Return the counts of covering intervals a calibrated study shows w.p. >= ``1 - alpha``.

    The central two-sided region of Binomial(``n``, ``level``): at most ``alpha / 2`` of the
    probability lies below the lower bound and at most ``alpha / 2`` above the upper bound.
    """
    # P(X < lo) <= alpha / 2 and P(X > hi) <= alpha / 2
    return int(stats.binom.ppf(alpha / 2, n, level)), int(stats.binom.isf(alpha / 2, n, level))


def summarize(
    rows: pd.DataFrame, cases: Sequence[CalibrationCase], alpha: float = FAMILY_ALPHA
) -> pd.DataFrame:
    """One row per case and target: coverage at :data:`LEVELS` with bands, bias, z-scores.

    Bands are Bonferroni-adjusted over every check in ``rows`` (two levels per case and
    target), so a study of correctly calibrated models fails any check with probability at most
    ``alpha``. ``code_hash`` is the hash of each case's code now (:func:`code_hash`). A case
    with a ``null_rate`` ``a`` also gets ``false_positives`` (replicates whose ``1 - a``
    quantile - the 97.5 % one, :data:`QUANTILES` - lies below the truth), their rate and its
    exact two-sided band at :data:`ERROR_RATE_ALPHA`; the others have these empty. An SBC
    case's targets also get ``sbc_p`` (:func:`sbc_p_value`), one more check of the family.

    Parameters
    ----------
    rows
        Shard rows (:func:`run_shard`) of one or more cases.
    cases
        The cases the rows belong to (for their model name and code hash).
    alpha
        Family-wise error of the checks.
    """
    by_name = {case.name: case for case in cases}
    groups = list(rows.groupby(["case", "target"], sort=False))
    n_sbc = sum(by_name[name].sbc for (name, _), _ in groups)
    per_check = alpha / max(len(LEVELS) * len(groups) + n_sbc, 1)
    out = []
    for (name, target), g in groups:
        n = len(g)
        z = (g["mean"] - g["truth"]) / g["sd"]
        row = {
            "case": name,
            "model": by_name[name].model,
            "target": target,
            "replicates": n,
            "converged": int(g["converged"].sum()),
        }
        passed = True
        for level, lo_col, hi_col in ((0.5, "q250", "q750"), (0.95, "q025", "q975")):
            covered = int(((g[lo_col] < g["truth"]) & (g["truth"] < g[hi_col])).sum())
            lo, hi = coverage_band(n, level, per_check)
            pct = round(100 * level)
            row[f"covered_{pct}"] = covered
            row[f"coverage_{pct}"] = covered / n
            row[f"band_{pct}_low"] = lo / n
            row[f"band_{pct}_high"] = hi / n
            passed &= lo <= covered <= hi
        rate = by_name[name].null_rate
        row.update(dict.fromkeys(ERROR_RATE_COLUMNS, np.nan))
        if rate is not None:
            if not np.isclose(rate, 1 - QUANTILES[-1]):
                raise ValueError(f"{name}: null_rate {rate} needs the {1 - rate:g} quantile")
            hits = int((g["q975"] < g["truth"]).sum())
            lo, hi = coverage_band(n, rate, ERROR_RATE_ALPHA)
            row.update(
                false_positives=hits,
                false_positive_rate=hits / n,
                false_positive_band_low=lo / n,
                false_positive_band_high=hi / n,
            )
            passed &= lo <= hits <= hi
        row["sbc_p"] = np.nan
        if by_name[name].sbc:
            row["sbc_p"] = sbc_p_value(g["rank"])
            passed &= row["sbc_p"] > per_check
        row.update(
            {
                "bias": float((g["mean"] - g["truth"]).mean()),
                "mean_z": float(z.mean()),
                "sd_z": float(z.std(ddof=1)),
                "passed": bool(passed),
                "code_hash": code_hash(by_name[name]),
            }
        )
        out.append(row)
    return pd.DataFrame(out)
