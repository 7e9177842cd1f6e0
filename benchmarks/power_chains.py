"""Decisions of the power check under 2 x 1000 and 4 x 1000 draws, on the same simulated trials.

The closed-form power check (tests/power/test_power.py, ``test_simulated_power_matches_zhu_lakkis``)
once moved by 0.05 when its sampler went from 4 to 2 chains. Both settings here analyse the very
same 500 trials (data seeds do not depend on the sampler; the MCMC seed of a replicate is the
same), so every difference is a decision that flips because the posterior probability
P(RR < 1) is estimated from other draws. The script prints both powers, the flips in each
direction, the posterior probabilities of the flipped trials, the Monte Carlo SE such a
probability has near 0.975, and the wall time of each setting.

Run: ``.venv/bin/python benchmarks/power_chains.py [--replicates 500]`` (about 15 CPU minutes).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from crampstats.engine import use_compile_cache

use_compile_cache()  # before anything imports PyTensor: the machine's compile cache

from crampstats.power import check_power_config, collect_decisions, run_shard  # noqa: E402

RULE = "P(RR<1)>0.975"


def config(replicates: int, chains: int) -> dict:
    """The closed-form check's power config, with ``chains`` x 1000 draws."""
    raw = {
        "seed": 2014,
        "replicates": replicates,
        "analysis": {
            "model_config": {"prior_log_rr_sd": 10.0, "prior_alpha_sd": 10.0},
            "sampler": {"chains": chains, "draws": 1000},
        },
        "rules": [{"name": RULE, "threshold_rr": 1.0, "probability": 0.975}],
        "designs": {
            "nb": {
                "generator": "negative_binomial",
                "baseline_rate": 0.9,
                "k": 3.0,
                "treatment_weeks": 8,
                "n_per_arm": 60,
                "arms": {"placebo": {}, "drug": {"rr": 0.8}},
            }
        },
    }
    return check_power_config(raw, "power_chains")


def main() -> None:
    """Run both settings and print the comparison."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replicates", type=int, default=500)
    parser.add_argument("--cores", type=int, default=2)
    args = parser.parse_args()
    frames, seconds = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for chains in (4, 2):
            out = Path(tmp) / f"c{chains}"
            start = time.perf_counter()
            run_shard(config(args.replicates, chains), "nb", out_dir=out, cores=args.cores)
            seconds[chains] = time.perf_counter() - start
            frames[chains], _ = collect_decisions(out)
    a, b = (frames[c].set_index("replicate") for c in (4, 2))
    da, db = a[f"decision[{RULE}]"].astype(bool), b[f"decision[{RULE}]"].astype(bool)
    lost, gained = (da & ~db), (~da & db)
    print(f"replicates {len(a)}; power 4 x 1000: {da.mean():.3f}, 2 x 1000: {db.mean():.3f}")
    print(f"decisions that flip: {int(lost.sum())} success -> failure, "
          f"{int(gained.sum())} failure -> success")
    flipped = lost | gained
    for r in np.flatnonzero(flipped.to_numpy()):
        idx = a.index[r]
        print(f"  replicate {idx}: P(RR<1) {a.loc[idx, 'p_rr_below_1']:.4f} (4 chains), "
              f"{b.loc[idx, 'p_rr_below_1']:.4f} (2 chains)")
    diff = (a["p_rr_below_1"] - b["p_rr_below_1"]).abs()
    near = (a["p_rr_below_1"] - 0.975).abs() < 0.01
    print(f"|P4 - P2|: median {diff.median():.4f}, 99th percentile {diff.quantile(0.99):.4f}; "
          f"trials with P within 0.01 of 0.975: {int(near.sum())}")
    ess = float(b["ess_tail_min"].median())
    print(f"Monte Carlo SE of P = 0.975 at the 2-chain median tail ESS {ess:.0f}: "
          f"{np.sqrt(0.975 * 0.025 / ess):.4f}")
    print(f"wall: 4 x 1000 {seconds[4]:.0f} s, 2 x 1000 {seconds[2]:.0f} s")


if __name__ == "__main__":
    main()
