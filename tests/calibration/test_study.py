"""The study's mechanics on cases whose posterior is exact: seeds, shards, bands, verdicts."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from crampstats.calibration import (
    coverage_band,
    replicate_seed,
    run_shard,
    sbc_rank,
    shard_replicates,
    summarize,
)


def test_shards_partition_the_replicates():
    for replicates, shards in [(200, 4), (7, 3), (5, 5)]:
        got = [i for s in range(1, shards + 1) for i in shard_replicates(replicates, shards, s)]
        assert got == list(range(replicates))
    with pytest.raises(ValueError, match=r"not in 1\.\.4"):
        shard_replicates(10, 4, 5)


def test_seeds_depend_on_root_case_and_index_only():
    def state(*args):
        return replicate_seed(*args).generate_state(2).tolist()

    assert state(1, "a", 0) == state(1, "a", 0)
    assert len({str(state(*k)) for k in [(1, "a", 0), (2, "a", 0), (1, "b", 0), (1, "a", 1)]}) == 4


def test_sharded_rows_equal_the_unsharded_study(exact_case):
    whole = run_shard(exact_case, 9, seed=3)
    parts = pd.concat(
        [run_shard(exact_case, 9, shards=3, shard=s, seed=3) for s in (1, 2, 3)],
        ignore_index=True,
    )
    pd.testing.assert_frame_equal(whole, parts)


@pytest.mark.parametrize(
    ("n", "level", "alpha"), [(200, 0.95, 0.05 / 40), (200, 0.5, 0.01), (37, 0.9, 0.1)]
)
def test_band_is_the_central_binomial_region(n, level, alpha):
    lo, hi = coverage_band(n, level, alpha)
    assert stats.binom.cdf(lo - 1, n, level) <= alpha / 2 < stats.binom.cdf(lo, n, level)
    assert stats.binom.sf(hi, n, level) <= alpha / 2 < stats.binom.sf(hi - 1, n, level)


def test_exact_posterior_passes_and_a_too_narrow_one_fails(exact_case, narrow_case):
    # 400 replicates each: under the exact posterior the intervals cover with exactly their
    # nominal probability (truth drawn from the prior), so with family alpha 0.001 the exact
    # case fails with probability <= 0.001 whatever the seed (the bands' construction; the
    # default 0.05 failed 10 of 200 root seeds, as it should); the 0.6x-too-narrow posterior
    # covers 76 % / 32 % (95 % / 50 % intervals), far outside both bands.
    rows = pd.concat(
        [run_shard(c, 400, seed=11) for c in (exact_case, narrow_case)], ignore_index=True
    )
    summary = summarize(rows, [exact_case, narrow_case], alpha=0.001).set_index("case")
    assert summary.loc["exact", "passed"], summary.loc["exact"].to_dict()
    assert not summary.loc["narrow", "passed"]
    narrow = summary.loc["narrow"]
    assert narrow["coverage_95"] == pytest.approx(2 * stats.norm.cdf(1.96 * 0.6) - 1, abs=0.06)
    # the z-scores of the narrow posterior spread by 1 / 0.6
    assert narrow["sd_z"] == pytest.approx(1 / 0.6, rel=0.12)
    assert summary.loc["exact", "sd_z"] == pytest.approx(1.0, rel=0.12)
    assert np.isclose(summary.loc["exact", "replicates"], 400)


def test_error_rate_check_passes_the_exact_test_and_fails_a_biased_one(null_exact_case,
                                                                        null_biased_case):
    # 2,000 null replicates each. The exact one-sided z-test rejects 2.5 % of the time, so it
    # lies in the exact 95 % band (37-64 of 2,000, fixed before any run) with probability >=
    # 0.95 at any root seed; shifting the posterior half an SD towards an effect rejects
    # P(Z < -1.46) = 7.2 %, far outside it.
    exact, biased = null_exact_case, null_biased_case
    rows = pd.concat([run_shard(c, c.replicates, seed=5) for c in (exact, biased)],
                     ignore_index=True)
    summary = summarize(rows, [exact, biased]).set_index("case")
    assert summary.loc["null_exact", "replicates"] == 2000
    lo, hi = coverage_band(2000, 0.025, 0.05)
    assert (lo, hi) == (37, 64)
    assert summary.loc["null_exact", "false_positive_band_low"] == lo / 2000
    assert lo <= summary.loc["null_exact", "false_positives"] <= hi
    assert summary.loc["null_exact", "passed"]
    assert summary.loc["null_biased", "false_positive_rate"] == pytest.approx(
        stats.norm.cdf(-1.96 + 0.5), abs=0.015)
    assert not summary.loc["null_biased", "passed"]


def test_cases_without_a_null_rate_have_no_error_rate(exact_case):
    summary = summarize(run_shard(exact_case, 20, seed=3), [exact_case])
    assert summary[["false_positives", "false_positive_rate"]].isna().all(axis=None)


def test_sbc_rank_counts_thinned_draws_of_every_chain_below_the_truth():
    # 4 chains x 990 draws, chain c holding values c + [0, 1): thinning by 40 takes 25, 25,
    # 25 and 24 draws of the four chains (chain 2's at 2 + (20 + 40 j) / 990), so a truth of
    # 2.5 lies above those of chains 0 and 1 and above 12 of chain 2's (j = 0..11)
    draws = np.concatenate([c + np.linspace(0, 1, 990, endpoint=False) for c in range(4)])
    assert sbc_rank(draws, 2.5) == 25 + 25 + 12
    assert sbc_rank(draws, -1.0) == 0
    assert sbc_rank(draws, 9.0) == 99
    with pytest.raises(ValueError, match="at least 99 draws"):
        sbc_rank(draws[:50], 0.0)


def test_sbc_passes_the_exact_posterior_and_catches_a_shift_coverage_misses(sbc_cases):
    # 400 replicates each, family alpha 0.001 (the exact case fails with probability <= 0.001
    # at any seed). A posterior shifted half an SD still covers 92.1 % / 44.9 % (95 % / 50 %),
    # inside both bands at 400 replicates, but the truth's fractional rank is Phi(Z - 0.5):
    # 22 % of ranks in the lowest tenth, 4 % in the highest: a chi-square noncentrality of
    # about 100 against a critical value of 32.4 (9 degrees of freedom at 0.001 / 6).
    rows = pd.concat([run_shard(c, 400, seed=13) for c in sbc_cases], ignore_index=True)
    assert set(rows["rank"]) <= set(range(100))
    summary = summarize(rows, list(sbc_cases), alpha=0.001).set_index("case")
    assert summary.loc["sbc_exact", "passed"], summary.loc["sbc_exact"].to_dict()
    per_check = 0.001 / (2 * 2 + 2)
    assert summary.loc["sbc_exact", "sbc_p"] > per_check
    shifted_row = summary.loc["sbc_shifted"]
    assert shifted_row["band_95_low"] <= shifted_row["coverage_95"] <= shifted_row["band_95_high"]
    assert shifted_row["band_50_low"] <= shifted_row["coverage_50"] <= shifted_row["band_50_high"]
    assert shifted_row["sbc_p"] < per_check
    assert not shifted_row["passed"]


def test_cases_without_sbc_have_no_rank_or_sbc_p(exact_case):
    rows = run_shard(exact_case, 20, seed=3)
    assert "rank" not in rows
    assert summarize(rows, [exact_case])["sbc_p"].isna().all()
