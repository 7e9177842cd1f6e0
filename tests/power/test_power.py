"""Power simulation (crampstats.power): configuration, seeds, data, shards, summaries, closed form.

Fast tests use a tiny sampler (2 chains x 100 draws) and one 3-arm structure, so the module
compiles the model once. The slow test runs full MCMC (4 chains x 1000 draws) and checks the
simulated power against the Zhu and Lakkis (2014) formula. The type I error of the same rule on
null trials of the same simulator (2 arms x 60) is the calibration case ``nb_totals_null``
(2,000 trials, docs/validation.md), held current by tests/calibration.
"""

from __future__ import annotations

import io
import math
import re
import xml.etree.ElementTree as ET

import numpy as np
import pandas as pd
import pytest
from helpers import ROOT
from scipy import stats

from crampstats.config import ConfigError
from crampstats.derive import subject_periods
from crampstats.errors import CrampstatsError
from crampstats.power import (
    check_power_config,
    collect_decisions,
    draw_effects,
    load_power_config,
    mcmc_seed,
    periods_from_tables,
    power_table,
    read_decisions,
    replicate_seed,
    resolve_design,
    run_shard,
    shard_replicates,
    simulate_periods,
    simulator_design,
    summarize,
    terminal_progress,
    zhu_lakkis_n,
    zhu_lakkis_power,
)
from crampstats.power.cli import main_run, main_summarize
from crampstats.power.run import write_decisions
from crampstats.simulate import simulate

CORES = 2
TINY_SAMPLER = {"chains": 2, "draws": 100, "tune": 100}


def _config(**designs):
    raw = {
        "seed": 11,
        "replicates": 6,
        "analysis": {
            "sampler": dict(TINY_SAMPLER),
            "diagnostics": {"ess_bulk_min": 50, "ess_tail_min": 50},
        },
        "designs": designs,
    }
    return check_power_config(raw, "test")


THREE_ARM = {
    "arms": {
        "placebo": {},
        "quinine": {"rr": 0.75},
        # design prior: assurance rows
        "mexiletine": {"rr": {"lognormal": {"mu": math.log(0.6), "sd": 0.3}}},
    },
    "n_per_arm": [30, 20],
}


# ---------------------------------------------------------------------------------------------
# Configuration
# ---------------------------------------------------------------------------------------------
def test_project_config_loads_with_calibrated_defaults():
    cfg = load_power_config(ROOT / "config" / "power.yaml")
    d = cfg["designs"]["two_arm"]
    # docs/calibration.md defaults filled by the schema
    assert d["baseline_rate"] == 0.9 and d["k"] == 3 and d["run_in_weeks"] == 2
    assert d["inclusion"] == {"min_cramps": 4, "per_days": 14}
    assert d["dropout"] == 0.08 and d["diary_compliance"] == 0.95 and d["treatment_weeks"] == 8
    assert cfg["analysis"]["model"] == "nb_totals"
    assert cfg["analysis"]["sampler"] == {
        "chains": 4,
        "draws": 1000,
        "tune": 1000,
        "target_accept": 0.8,
    }
    assert [r["name"] for r in cfg["rules"]] == ["P(RR<1)>0.975", "P(RR<0.75)>0.8"]
    assert d["n_per_arm"] == sorted(d["n_per_arm"])
    assert cfg["designs"]["no_effect"]["arms"]["quinine"]["rr"] == 1.0
    prior = resolve_design(cfg, "two_arm_assurance").effects["quinine"]
    assert prior.is_prior and prior.sd > 0


def test_known_therapy_takes_its_calibrated_rate_ratio():
    cfg = _config(d={"arms": {"placebo": None, "quinine": None, "magnesium": {}}})
    design = resolve_design(cfg, "d")
    assert design.arms == ("placebo", "magnesium", "quinine")
    assert design.effects["quinine"].rr == 0.75 and design.effects["magnesium"].rr == 0.96
    assert design.n_values == (60,)


@pytest.mark.parametrize(
    ("design", "rules", "key"),
    [
        ({"arms": {"placebo": {}, "drug_x": {}}}, None, "designs.d.arms.drug_x.rr"),
        ({"arms": {"a": {}, "b": {"rr": 0.5}}}, None, "designs.d.control_arm"),
        ({"arms": {"placebo": {"rr": 0.9}, "quinine": {}}}, None, "designs.d.arms.placebo.rr"),
        ({"arms": {"placebo": {}, "quinine": {}}, "n_per_arm": [1]}, None, "designs.d.n_per_arm"),
        (
            {"arms": {"placebo": {}, "quinine": {}}, "simulator": {"k": 2}},
            None,
            "designs.d.simulator",
        ),
        (
            {"arms": {"placebo": {}, "quinine": {}}, "simulator": {"within_subject": {"sd": -1}}},
            None,
            "within_subject.sd",
        ),
        (
            {"arms": {"placebo": {}, "quinine": {"rr": {"lognormal": {"mu": 0}}}}},
            None,
            "designs.d.arms.quinine",
        ),
        (
            {"arms": {"placebo": {}, "quinine": {}}},
            [{"name": "a", "threshold_rr": 1, "probability": 0.9}] * 2,
            "rules",
        ),
        ({"arms": {"placebo": {}, "quinine": {}}, "colour": 1}, None, "designs.d"),
    ],
)
def test_bad_config_names_the_key(design, rules, key):
    raw = {"designs": {"d": design}}
    if rules is not None:
        raw["rules"] = rules
    with pytest.raises(ConfigError, match=re.escape(key)):
        check_power_config(raw, "test")


def test_unknown_model_config_key_is_a_config_error(tmp_path):
    cfg = _config(d={"arms": {"placebo": {}, "quinine": {}}})
    cfg["analysis"]["model_config"] = {"prior_nonsense": 1}
    with pytest.raises(ConfigError, match="model_config"):
        run_shard(cfg, "d", out_dir=tmp_path)


def test_simulator_design_is_valid_and_carries_the_settings():
    cfg = _config(
        d={
            "arms": {"placebo": {}, "quinine": {"dropout": 0.2}},
            "diary_compliance": 0.9,
            "simulator": {"diary_days": 7},
        }
    )
    design = resolve_design(cfg, "d")
    sim = simulator_design(design, 25, {"placebo": 1.0, "quinine": 0.6})
    assert sim["arms"] == {"placebo": {}, "quinine": {"rr": 0.6, "dropout": 0.2}}
    assert sim["missing_days"] == pytest.approx(0.1) and sim["diary_days"] == 7
    assert sim["n_per_arm"] == 25 and sim["emg"]["enabled"] is False


# ---------------------------------------------------------------------------------------------
# Seeds, shards, effects, data
# ---------------------------------------------------------------------------------------------
def test_replicate_seed_is_the_spawned_child():
    kids = np.random.SeedSequence(42).spawn(5)
    for r in range(5):
        assert (replicate_seed(42, r).generate_state(4) == kids[r].generate_state(4)).all()
        assert (
            replicate_seed(42, r, 1).generate_state(4) == kids[r].spawn(2)[1].generate_state(4)
        ).all()
    assert mcmc_seed(42, 3) == mcmc_seed(42, 3) != mcmc_seed(42, 4)


@pytest.mark.parametrize(("replicates", "shards"), [(7, 3), (3, 3), (10, 1), (5, 4)])
def test_shards_partition_the_replicates(replicates, shards):
    blocks = [list(shard_replicates(replicates, shards, i)) for i in range(1, shards + 1)]
    assert [r for block in blocks for r in block] == list(range(replicates))
    sizes = [len(b) for b in blocks]
    assert max(sizes) - min(sizes) <= 1
    with pytest.raises(ValueError):
        shard_replicates(replicates, shards, shards + 1)


def test_design_prior_draws_follow_the_prior_and_fixed_effects_stay():
    design = resolve_design(_config(d=THREE_ARM), "d")
    draws = [draw_effects(design, 5, r) for r in range(3000)]
    log_rr = np.log([d["mexiletine"] for d in draws])
    # mean and SD of 3000 normal draws: SE 0.3/sqrt(3000) = 0.0055 and about 0.004
    assert abs(log_rr.mean() - math.log(0.6)) < 4 * 0.3 / math.sqrt(3000)
    assert abs(log_rr.std() - 0.3) < 0.02
    assert {d["quinine"] for d in draws} == {0.75} and {d["placebo"] for d in draws} == {1.0}
    assert draw_effects(design, 5, 17) == draw_effects(design, 5, 17)


def test_fast_periods_equal_derive():
    design = {
        "arms": {"placebo": {}, "quinine": {"dropout": 0.3}},
        "n_per_arm": 40,
        "missing_days": 0.2,
        "emg": {"enabled": False},
    }
    tables = simulate(design, 3).tables
    ours = periods_from_tables(tables)
    ref = subject_periods(tables, {"design": "parallel"})
    cols = ["subject_id", "arm", "count", "exposure_days", "runin_count", "runin_days"]
    pd.testing.assert_frame_equal(
        ours[cols].astype({"subject_id": str, "arm": str}),
        ref[cols].astype({"subject_id": str, "arm": str}),
        check_dtype=False,
    )
    np.testing.assert_allclose(ours["log_baseline_rate"], ref["log_baseline_rate"].astype(float))
    assert (ours["exposure_days"] < 56).any()  # dropout and missing days shorten exposure


def test_negative_binomial_generator_moments():
    cfg = _config(
        d={
            "generator": "negative_binomial",
            "arms": {"placebo": {}, "quinine": {}},
            "k": 2.0,
            "baseline_rate": 0.5,
            "treatment_weeks": 4,
        }
    )
    design = resolve_design(cfg, "d")
    periods = simulate_periods(design, 4000, {"placebo": 1.0, "quinine": 0.5}, 1, 0)
    for arm, mu in (("placebo", 14.0), ("quinine", 7.0)):
        y = periods.loc[periods["arm"] == arm, "count"]
        assert abs(y.mean() - mu) < 4 * math.sqrt((mu + mu**2 / 2) / 4000)
        # variance mu + mu^2/k; SE of a sample variance of NB draws is about 5 % here
        assert y.var() == pytest.approx(mu + mu**2 / 2, rel=0.15)
    assert (periods["exposure_days"] == 28).all() and (periods["log_baseline_rate"] == 0).all()


def test_common_random_numbers_across_sample_sizes():
    design = resolve_design(_config(d=THREE_ARM), "d")
    rr = draw_effects(design, 11, 2)
    small = simulate_periods(design, 20, rr, 11, 2)
    again = simulate_periods(design, 20, rr, 11, 2)
    pd.testing.assert_frame_equal(small, again)
    assert len(simulate_periods(design, 30, rr, 11, 2)) == 90


# ---------------------------------------------------------------------------------------------
# Shards with MCMC: identical rows however the replicates are split
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def shard_runs(tmp_path_factory):
    cfg = _config(d=THREE_ARM)
    one = tmp_path_factory.mktemp("one")
    three = tmp_path_factory.mktemp("three")
    lines = io.StringIO()
    run_shard(cfg, "d", 6, 1, 1, one, progress=terminal_progress("t", lines, 0.0), cores=CORES)
    for i in (1, 2, 3):
        run_shard(cfg, "d", 6, 3, i, three, cores=CORES)
    return cfg, one, three, lines.getvalue()


def test_one_and_three_shards_give_identical_rows(shard_runs):
    _, one, three, _ = shard_runs
    a, meta_a = collect_decisions(one)
    b, meta_b = collect_decisions(three)
    assert len(a) == 6 * 2 * 2  # replicates x sample sizes x active arms
    pd.testing.assert_frame_equal(a, b)
    assert meta_a["d"]["digest"] == meta_b["d"]["digest"]
    assert set(a["status"]) <= {"ok", "diagnostics_failed"}


def test_decision_rows_are_consistent(shard_runs):
    cfg, one, _, _ = shard_runs
    frame, _ = collect_decisions(one)
    for rule in cfg["rules"]:
        p = frame[f"p_rr_below_threshold[{rule['name']}]"]
        assert (frame[f"decision[{rule['name']}]"] == (p > rule["probability"])).all()
    assert (frame["p_rr_below_1"] == frame["p_rr_below_threshold[P(RR<1)>0.975]"]).all()
    assert (
        (frame["rr_lower"] <= frame["rr_median"]) & (frame["rr_median"] <= frame["rr_upper"])
    ).all()
    # common random numbers: same true RR and MCMC seed at every sample size of a replicate
    per_rep = frame.groupby(["replicate", "arm"])[["true_rr", "seed"]].nunique()
    assert (per_rep == 1).all().all()
    assert (frame.loc[frame["arm"] == "quinine", "true_rr"] == 0.75).all()
    assert frame.loc[frame["arm"] == "mexiletine", "true_rr"].nunique() == 6
    assert (frame["n_randomised"] == frame["n_per_arm"]).all()


def test_progress_bar_reports_replicates_elapsed_and_time_left(shard_runs):
    # written to a file (not a terminal) the bar is drawn once, when the shard ends
    lines = shard_runs[3].strip().splitlines()
    assert len(lines) == 1
    assert re.fullmatch(r"t .* 6/6 replicates 0:\d\d:\d\d elapsed, 0:00:00 left", lines[0])


def test_cli_run_writes_the_same_shard(shard_runs, tmp_path):
    cfg, _, three, _ = shard_runs
    path = tmp_path / "power.yaml"
    import yaml

    path.write_text(yaml.safe_dump(cfg))
    code = main_run(
        [
            "--config",
            str(path),
            "--design",
            "d",
            "--replicates",
            "6",
            "--shards",
            "3",
            "--shard",
            "2",
            "--out",
            str(tmp_path / "cli"),
            "--cores",
            "2",
            "--quiet",
        ]
    )
    assert code == 0
    got, _ = read_decisions(tmp_path / "cli" / "decisions-2-of-3.parquet")
    want, _ = read_decisions(three / "decisions-2-of-3.parquet")
    pd.testing.assert_frame_equal(got, want)
    assert main_run(["--config", str(path), "--design", "nope", "--out", str(tmp_path)]) == 2
    assert (
        main_run(
            [
                "--config",
                str(path),
                "--design",
                "d",
                "--shards",
                "2",
                "--shard",
                "3",
                "--out",
                str(tmp_path),
            ]
        )
        == 2
    )


def test_summarize_from_shards(shard_runs, tmp_path):
    _, one, three, _ = shard_runs
    table, _ = summarize(three)
    assert (three / "power.csv").read_text() == table.to_csv(index=False, float_format="%.6g")
    again, _ = summarize(one)
    pd.testing.assert_frame_equal(table, again)
    assert len(table) == 2 * 2 * 2  # sizes x arms x rules
    mex = table[table["arm"] == "mexiletine"]
    assert mex["assurance"].notna().all() and mex["true_rr"].isna().all()
    assert table.loc[table["arm"] == "quinine", "assurance"].isna().all()
    assert main_summarize([str(three)]) == 0
    assert main_summarize([str(tmp_path)]) == 1  # no decisions there


# ---------------------------------------------------------------------------------------------
# Summaries from hand-made decisions (no MCMC): the arithmetic
# ---------------------------------------------------------------------------------------------
RULES = [{"name": "any", "threshold_rr": 1.0, "probability": 0.975}]


def _decisions(design, arm, effect, true_rr, n, successes, reps=20, rr_median=None):
    rows = []
    for r in range(reps):
        rows.append(
            {
                "design": design,
                "replicate": r,
                "n_per_arm": n,
                "arm": arm,
                "effect": effect,
                "true_rr": true_rr[r] if isinstance(true_rr, list) else true_rr,
                "rr_median": (rr_median or 0.8) + 0.01 * r,
                "decision[any]": r < successes,
                "status": "error" if r == reps - 1 else "ok",
            }
        )
    return pd.DataFrame(rows)


def _meta(design, shards=1, shard=1, digest="x"):
    return {
        "design": design,
        "digest": digest,
        "replicates": 20,
        "shards": shards,
        "shard": shard,
        "rules": RULES,
        "target_power": 0.7,
    }


def test_power_table_arithmetic(tmp_path):
    frame = pd.concat(
        [
            _decisions("alt", "quinine", "rr=0.75", 0.75, n, s)
            for n, s in ((20, 9), (40, 14), (60, 17))
        ]
        + [
            _decisions("null", "quinine", "rr=1", 1.0, 40, 1),
            _decisions(
                "prior",
                "quinine",
                "lognormal(mu=-0.2, sd=0.2)",
                list(np.linspace(0.6, 1, 20)),
                40,
                12,
            ),
        ]
    )
    metas = {d: _meta(d) for d in ("alt", "null", "prior")}
    table = power_table(frame, metas).set_index(["design", "n_per_arm"])
    row = table.loc[("alt", 40)]
    assert row["power"] == 14 / 20 and row["replicates"] == 20
    assert row["mcse"] == pytest.approx(math.sqrt(0.7 * 0.3 / 20))
    # exact Clopper-Pearson interval of 14 / 20 (beta quantiles), not Wald
    assert row["lower"] == pytest.approx(stats.beta.ppf(0.025, 14, 7))
    assert row["upper"] == pytest.approx(stats.beta.ppf(0.975, 15, 6))
    assert row["n_error"] == 1 and row["n_diagnostics_failed"] == 0
    # smallest n of the sweep with power >= 0.7: 40 (0.45, 0.70, 0.85)
    assert (table.loc["alt", "n_for_target"] == 40).all()
    assert np.isnan(row["type_i_error"]) and np.isnan(row["assurance"])
    assert table.loc[("null", 40), "type_i_error"] == 1 / 20
    assert table.loc[("prior", 40), "assurance"] == 12 / 20
    assert np.isnan(table.loc[("prior", 40), "true_rr"])
    # error rows are left out of the RR distribution: medians 0.80 .. 0.98
    assert table.loc[("alt", 40), "rr_median_q95"] == pytest.approx(
        np.quantile(0.8 + 0.01 * np.arange(19), 0.95)
    )
    assert power_table(frame, metas, target_power=0.9).loc[0:2, "n_for_target"].isna().all()


def test_summarize_writes_csv_and_deterministic_svg(tmp_path):
    frame = pd.concat(
        [
            _decisions("alt", "quinine", "rr=0.75", 0.75, n, s)
            for n, s in ((20, 9), (40, 14), (60, 17))
        ]
    )
    for i, (lo, hi) in enumerate(((0, 8), (8, 20)), start=1):
        part = frame[(frame["replicate"] >= lo) & (frame["replicate"] < hi)]
        write_decisions(part, tmp_path / f"decisions-{i}-of-2.parquet", _meta("alt", 2, i))
    _, svg = summarize(tmp_path)
    first = svg.read_bytes()
    csv = pd.read_csv(tmp_path / "power.csv")
    assert list(csv.columns[:9]) == [
        "design",
        "n_per_arm",
        "arm",
        "effect",
        "true_rr",
        "rule",
        "replicates",
        "power",
        "mcse",
    ]
    assert list(csv["power"]) == [0.45, 0.7, 0.85]
    summarize(tmp_path)
    assert svg.read_bytes() == first  # hash salt fixed, no date
    root = ET.fromstring(first)
    assert root.tag.endswith("svg") and b"<dc:date>" not in first


def test_summarize_refuses_missing_shards_and_mixed_configs(tmp_path):
    frame = _decisions("alt", "quinine", "rr=0.75", 0.75, 20, 9)
    write_decisions(
        frame[frame["replicate"] < 10], tmp_path / "decisions-1-of-2.parquet", _meta("alt", 2, 1)
    )
    with pytest.raises(CrampstatsError, match=r"lacks shard\(s\) \[2\]"):
        summarize(tmp_path)
    write_decisions(
        frame[frame["replicate"] >= 10],
        tmp_path / "decisions-2-of-2.parquet",
        _meta("alt", 2, 2, digest="other"),
    )
    with pytest.raises(CrampstatsError, match="digest"):
        summarize(tmp_path)
    write_decisions(frame, tmp_path / "decisions-2-of-2.parquet", _meta("alt", 2, 2))
    with pytest.raises(CrampstatsError, match="twice"):
        summarize(tmp_path)


# ---------------------------------------------------------------------------------------------
# Closed form
# ---------------------------------------------------------------------------------------------
def test_zhu_lakkis_formula_by_hand():
    # V = (1/mu0 + 1/k) + (1/mu1 + 1/k) with mu0 = 0.9 * 56, mu1 = 0.75 mu0, k = 3
    mu0 = 0.9 * 56
    v = (1 / mu0 + 1 / 3) + (1 / (0.75 * mu0) + 1 / 3)
    expected = stats.norm.cdf(math.sqrt(60) * -math.log(0.75) / math.sqrt(v) - 1.959964)
    assert zhu_lakkis_power(0.9, 0.75, 3.0, 56.0, 60) == pytest.approx(expected, abs=1e-6)
    n = zhu_lakkis_n(0.9, 0.75, 3.0, 56.0, power=0.8)
    assert zhu_lakkis_power(0.9, 0.75, 3.0, 56.0, n) >= 0.8
    assert zhu_lakkis_power(0.9, 0.75, 3.0, 56.0, n - 1) < 0.8
    assert zhu_lakkis_power(0.9, 1.0, 3.0, 56.0, 60) == pytest.approx(0.025)


#: Sampler of the type I error check: nb_totals mixes well, so 2 chains x 1000 draws after 500
#: tuning steps pass the default gate (ESS >= 400).
SLOW_SAMPLER = {"chains": 2, "draws": 1000, "tune": 500}


@pytest.mark.slow
def test_simulated_power_matches_zhu_lakkis(tmp_path):
    """Full MCMC power of P(RR<1) > 0.975 against the NB formula, within 2 Monte Carlo SEs."""
    rate, rr, k, weeks, n, reps = 0.9, 0.8, 3.0, 8, 60, 500
    raw = {
        "seed": 2014,
        "replicates": reps,
        # vague priors: the rule then acts like the one-sided 2.5 % Wald test of the formula;
        # the production sampler (4 x 1000). On these same trials 2 x 1000 draws flip 8 of 500
        # decisions, all with P(RR<1) within 0.0035 of 0.975 (benchmarks/power_chains.py)
        "analysis": {"model_config": {"prior_log_rr_sd": 10.0, "prior_alpha_sd": 10.0}},
        "rules": [{"name": "P(RR<1)>0.975", "threshold_rr": 1.0, "probability": 0.975}],
        "designs": {
            "nb": {
                "generator": "negative_binomial",
                "baseline_rate": rate,
                "k": k,
                "treatment_weeks": weeks,
                "n_per_arm": n,
                "arms": {"placebo": {}, "drug": {"rr": rr}},
            }
        },
    }
    cfg = check_power_config(raw, "test")
    run_shard(cfg, "nb", out_dir=tmp_path, cores=CORES)
    table, _ = summarize(tmp_path)
    row = table.iloc[0]
    expected = zhu_lakkis_power(rate, rr, k, 7 * weeks, n)
    print(f"simulated power {row['power']:.3f} (MCSE {row['mcse']:.3f}), Zhu-Lakkis {expected:.3f}")
    assert 0.3 < expected < 0.8  # a power where the check has teeth
    assert row["n_error"] == 0
    assert abs(row["power"] - expected) < 2 * row["mcse"], (row["power"], expected, row["mcse"])

    # Paired with an independent frequentist fit on the very same data sets (statsmodels NB2,
    # one-sided 2.5 % Wald test): the Bayesian rule must take nearly the same decisions, so a
    # gap to the formula is Monte Carlo noise of the data, not a property of the analysis.
    import statsmodels.api as sm

    frame, _ = collect_decisions(tmp_path)
    design = resolve_design(cfg, "nb")
    wald = []
    for r in frame["replicate"]:
        periods = simulate_periods(design, n, draw_effects(design, 2014, r), 2014, r)
        X = np.column_stack([np.ones(len(periods)), (periods["arm"] == "drug").to_numpy(float)])
        fit = sm.NegativeBinomial(
            periods["count"].to_numpy(),
            X,
            offset=np.log(periods["exposure_days"].to_numpy(float)),
            loglike_method="nb2",
        ).fit(disp=0)
        wald.append(fit.params[1] / fit.bse[1] < stats.norm.ppf(0.025))
    wald = np.array(wald)
    bayes = frame["decision[P(RR<1)>0.975]"].to_numpy()
    agree = np.mean(bayes == wald)
    print(f"Wald power on the same data {wald.mean():.3f}; decisions agree {agree:.3f}")
    assert agree >= 0.97
    assert abs(bayes.mean() - wald.mean()) <= 0.02


