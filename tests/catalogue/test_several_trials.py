"""Several trials in one folder: the primary analysis accounts for trial.

Two simulated trials differ in their placebo (baseline) rate and test different actives:
mexiletine only in the low-rate trial, quinine only in the high-rate one. A single intercept,
run-in slope and dispersion across trials (today's ``nb_totals`` on pooled data) credits
mexiletine with the low trial's low rates and blames quinine for the high trial's; the planner
therefore makes ``multi_trial`` (trial-specific baselines and placebo rates) the primary model.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml
from helpers import DATA

from crampstats.catalogue import count_entry, plan_trial
from crampstats.config import load_trial_config
from crampstats.derive import derive_all
from crampstats.models import multi_trial_twin, nb_glm_twin
from crampstats.simulate import load_design, simulate, write_trial
from crampstats.validate import validate

TRUE_LOG_RR = {"mexiletine": float(np.log(0.5)), "quinine": float(np.log(0.75))}
REPLICATES = 8


@pytest.fixture(scope="module")
def design(tmp_path_factory):
    spec = yaml.safe_load((DATA / "example_multi" / "design.yaml").read_text(encoding="utf-8"))
    spec["trials"] = [
        {"id": "low", "arms": ["placebo", "mexiletine"], "baseline_rate": 0.5},
        {"id": "high", "arms": ["placebo", "quinine"], "baseline_rate": 1.6},
    ]
    spec["arms"] = {k: v for k, v in spec["arms"].items() if k in ("placebo", *TRUE_LOG_RR)}
    spec["arms"]["mexiletine"] = {"rr": 0.5}
    spec["arms"]["quinine"] = {"rr": 0.75}
    spec["n_per_arm"] = 60
    path = tmp_path_factory.mktemp("design") / "design.yaml"
    path.write_text(yaml.safe_dump(spec), encoding="utf-8")
    return load_design(path)


def _replicate(design, seed: int, folder: Path):
    write_trial(simulate(design, seed), folder)
    result = validate(folder, {**load_trial_config(None), "design": "parallel"})
    assert result.ok
    return dict(result.config), result.tables


@pytest.fixture(scope="module")
def replicates(design, tmp_path_factory):
    root = tmp_path_factory.mktemp("trials")
    return [_replicate(design, seed, root / str(seed)) for seed in range(REPLICATES)]


def test_the_plan_makes_the_trial_aware_model_primary(replicates):
    config, tables = replicates[0]
    plan = plan_trial(config, tables)
    assert [m.id for m in plan.models] == ["multi_trial"]
    pooled = plan_trial({**config, "analysis": {"models": ["nb_totals"]}}, tables)
    assert [m.id for m in pooled.models] == ["nb_totals"]  # still available when asked for


def test_trial_specific_baselines_recover_each_arms_rate_ratio_where_pooling_does_not(replicates):
    naive, aware = {a: [] for a in TRUE_LOG_RR}, {a: [] for a in TRUE_LOG_RR}
    for config, tables in replicates:
        periods = derive_all(tables, config)["periods"]
        pooled = nb_glm_twin(periods, control_arm="placebo").set_index("arm")["log_rr"]
        by_trial = multi_trial_twin(periods, control_arm="placebo").set_index("arm")["log_rr"]
        for arm, truth in TRUE_LOG_RR.items():
            naive[arm].append(pooled[arm] - truth)
            aware[arm].append(by_trial[arm] - truth)
    for arm in TRUE_LOG_RR:
        # Monte Carlo error of a mean bias over the replicates: SD / sqrt(R); 3 of them is a
        # two-sided 0.3 % band. Pooling's bias (about 0.13-0.17 on the log scale when the
        # trials' rates differ threefold) lies far outside it; the trial-aware fit's lies inside.
        se_aware = np.std(aware[arm], ddof=1) / np.sqrt(REPLICATES)
        se_naive = np.std(naive[arm], ddof=1) / np.sqrt(REPLICATES)
        assert abs(np.mean(aware[arm])) < 3 * se_aware, (arm, aware[arm])
        assert abs(np.mean(naive[arm])) > 3 * se_naive, (arm, naive[arm])
    assert np.mean(naive["mexiletine"]) < 0 < np.mean(naive["quinine"])


@pytest.mark.slow
def test_the_bayesian_multi_trial_fit_covers_each_true_rate_ratio(replicates):
    config, tables = replicates[0]
    periods = derive_all(tables, config)["periods"]
    model = count_entry("multi_trial").model(
        {"control_arm": "placebo"}, {"chains": 2, "draws": 1000, "tune": 1000}
    )
    idata = model.fit(periods, seed=11, cores=2)
    log_rr = idata["posterior"]["log_rr"]
    for arm, truth in TRUE_LOG_RR.items():
        draws = log_rr.sel(arm=arm).to_numpy().ravel()
        lower, upper = np.quantile(draws, [0.025, 0.975])
        assert lower < truth < upper, (arm, lower, upper)
