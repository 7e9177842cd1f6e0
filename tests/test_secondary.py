"""Secondary endpoints: planning, seeds, descriptive tables, the gathered tables, the CLI job."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from crampstats import cli, derive, validation
from crampstats.config import load_trial_config
from crampstats.errors import CrampstatsError
from crampstats.secondary import (
    DIAGNOSTICS_COLUMNS,
    EFFECTS_COLUMNS,
    ENDPOINTS,
    combine,
    cramp_potential_table,
    endpoint_seed,
    location_table,
    plan_endpoints,
    read_endpoint,
)

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "data" / "example"


@pytest.fixture(scope="module")
def example():
    config = load_trial_config(None, EXAMPLE)
    result = validation.validate(EXAMPLE, config)
    assert result.ok
    config = dict(result.config)
    config["trial_id"] = "example"
    return derive.derive_all(result.tables, config), config


def _with(config: dict, **secondary) -> dict:
    analysis = dict(config.get("analysis", {}))
    analysis["secondary"] = {**analysis.get("secondary", {}), **secondary}
    return {**config, "analysis": analysis}


def test_plan_follows_the_data_and_the_config(example):
    derived, config = example
    assert plan_endpoints(config, derived) == list(ENDPOINTS)
    no_emg = {k: v for k, v in derived.items() if k != "emg"}
    assert "ctf" not in plan_endpoints(config, no_emg)
    assert "cramp_potential" not in plan_endpoints(config, no_emg)
    assert plan_endpoints(_with(config, endpoints=[]), derived) == []
    assert plan_endpoints(_with(config, endpoints=["safety", "ctf"]), derived) == ["ctf", "safety"]
    crossover = {**config, "design": "crossover"}
    assert set(plan_endpoints(crossover, derived)) == {
        "cramp_potential",
        "location",
        "outcome_measures",
    }


def test_an_endpoint_named_in_config_without_data_is_refused(example):
    derived, config = example
    no_ae = {k: v for k, v in derived.items() if k not in ("ae_incidence", "adverse_events")}
    with pytest.raises(CrampstatsError, match=r"safety \(needs ae_incidence"):
        plan_endpoints(_with(config, endpoints=["safety"]), no_ae)


def test_seeds_are_distinct_stable_children_of_the_root():
    seeds = [endpoint_seed(7, e) for e in ENDPOINTS]
    assert len(set(seeds)) == len(seeds)
    assert seeds == [endpoint_seed(7, e) for e in ENDPOINTS]
    assert endpoint_seed(8, "ctf") != endpoint_seed(7, "ctf")
    child = np.random.SeedSequence(7, spawn_key=(100,))
    assert seeds[0] == int(child.generate_state(1, dtype=np.uint32)[0])


def test_cramp_potential_table_by_hand():
    emg = pd.DataFrame(
        {
            "arm": ["a", "a", "a", "b", "b"],
            "visit": ["end", "end", "end", "baseline", "end"],
            "study_day": [56, 56, 57, 0, 56],
            "cramp_potential_hz": [50.0, 100.0, 200.0, 80.0, np.nan],
        }
    )
    out = cramp_potential_table(emg)
    row = out[(out["arm"] == "a") & (out["visit"] == "end")].iloc[0]
    assert row["n"] == 3
    assert row["median_hz"] == 100.0
    assert row["geometric_mean_hz"] == pytest.approx(100.0)  # (50 * 100 * 200) ** (1/3)
    assert row["sd_log"] == pytest.approx(np.std(np.log([50, 100, 200]), ddof=1))
    assert out[out["arm"] == "b"]["n"].tolist() == [1]  # the missing frequency is not counted


def test_location_table_counts_cramp_days_and_shares(example):
    derived, _ = example
    table = location_table(derived["diary"], derived["periods"])
    diary = derived["diary"]
    days = diary[(diary["cramp_count"] > 0) & diary["location"].notna()]
    assert table["cramp_days"].sum() == len(days)
    assert table["cramps"].sum() == days["cramp_count"].sum()
    shares = table.groupby(["arm", "period"])["share_of_cramp_days"].sum()
    np.testing.assert_allclose(shares, 1.0)
    calf = table[(table["location"] == "calf") & (table["period"] == "treatment")]
    assert (calf["share_of_cramp_days"] > 0.5).all()  # the example's usual location (p = 0.7)


def test_combine_keeps_order_and_gives_empty_tables_their_columns():
    empty = combine([])
    assert list(empty["effects_secondary"].columns) == EFFECTS_COLUMNS
    assert list(empty["diagnostics_secondary"].columns) == DIAGNOSTICS_COLUMNS
    first = pd.DataFrame({"endpoint": ["ctf"]})
    second = pd.DataFrame({"endpoint": ["safety"]})
    out = combine([{"effects_secondary": first}, {"effects_secondary": second, "safety": second}])
    assert out["effects_secondary"]["endpoint"].tolist() == ["ctf", "safety"]
    assert "safety" in out


def test_cli_job_skips_an_endpoint_without_data(tmp_path, capsys):
    validated, derived = tmp_path / "validated", tmp_path / "derived"
    data = tmp_path / "data"
    data.mkdir()
    for name in ("subjects.csv", "diary.csv"):
        (data / name).write_bytes((EXAMPLE / name).read_bytes())
    assert cli.main(["validate", str(data), "--out", str(validated)]) == 0
    assert cli.main(["derive", str(validated), "--out", str(derived)]) == 0
    out = tmp_path / "ctf"
    assert cli.main(["secondary", str(derived), "--endpoint", "ctf", "--out", str(out)]) == 0
    assert "skipped" in capsys.readouterr().out
    assert (out / "SKIPPED").is_file()
    assert read_endpoint(out) == {}
    loc = tmp_path / "location"
    assert cli.main(["secondary", str(derived), "--endpoint", "location", "--out", str(loc)]) == 0
    assert list(read_endpoint(loc)) == ["locations"]


def test_descriptive_tables_of_a_crossover_use_the_treatment_taken():
    data = ROOT / "data" / "example_crossover"
    config = load_trial_config(None, data)
    result = validation.validate(data, config)
    derived = derive.derive_all(result.tables, dict(result.config))
    locations = location_table(derived["diary"], derived["periods"])
    treated = locations[~locations["period"].isin(["run-in", "washout"])]
    treatments = set(derived["diary"]["treatment"].dropna().astype(str))
    assert set(treated["arm"]) <= treatments and len(treated)
    potential = cramp_potential_table(derived["emg"])
    assert set(potential["arm"]) == {"all"}  # EMG visits carry no treatment; one group per visit
    assert potential["n"].sum() == derived["emg"]["cramp_potential_hz"].notna().sum()
