"""Secondary endpoints: descriptive tables, the gathered tables, failures, the CLI job."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from helpers import DATA, EXAMPLE, validate_and_derive

from crampstats import cli
from crampstats.catalogue import endpoint_entry
from crampstats.secondary import (
    DIAGNOSTICS_COLUMNS,
    EFFECTS_COLUMNS,
    combine,
    cramp_potential_table,
    location_table,
    read_endpoint,
    run_endpoint_or_fail,
)


@pytest.fixture(scope="module")
def example():
    derived, config = validate_and_derive(EXAMPLE, None)
    return derived, {**config, "trial_id": "example"}


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


def test_a_failing_endpoint_is_recorded_not_raised(example):
    derived, config = example
    broken = {**derived, "emg": derived["emg"].drop(columns=["ctf_hz"])}
    result = run_endpoint_or_fail(endpoint_entry("ctf"), broken, config)
    row = result.tables["diagnostics_secondary"].iloc[0]
    assert list(result.tables) == ["diagnostics_secondary"] and result.idata is None
    assert row["status"] == "failed" and row["endpoint"] == "ctf"
    assert row["reasons"].startswith("analysis failed: ")


def test_cli_job_writes_an_endpoint_folder(tmp_path, capsys):
    validated, derived = tmp_path / "validated", tmp_path / "derived"
    data = tmp_path / "data"
    data.mkdir()
    for name in ("subjects.csv", "diary.csv"):
        (data / name).write_bytes((EXAMPLE / name).read_bytes())
    assert cli.main(["validate", str(data), "--out", str(validated)]) == 0
    assert cli.main(["derive", str(validated), "--out", str(derived)]) == 0
    out = tmp_path / "secondary"
    args = ["secondary", str(derived), "--endpoint", "location", "responder", "--out", str(out)]
    assert cli.main(args) == 0
    assert list(read_endpoint(out / "location")) == ["locations"]
    assert {"effects_secondary", "diagnostics_secondary"} <= set(read_endpoint(out / "responder"))
    printed = capsys.readouterr().out
    assert "location: " in printed and "responder: " in printed and "wrote" in printed


def test_descriptive_tables_of_a_crossover_use_the_treatment_taken():
    derived, _ = validate_and_derive(DATA / "example_crossover", None)
    locations = location_table(derived["diary"], derived["periods"])
    treated = locations[~locations["period"].isin(["run-in", "washout"])]
    treatments = set(derived["diary"]["treatment"].dropna().astype(str))
    assert set(treated["arm"]) <= treatments and len(treated)
    potential = cramp_potential_table(derived["emg"])
    assert set(potential["arm"]) == {"all"}  # EMG visits carry no treatment; one group per visit
    assert potential["n"].sum() == derived["emg"]["cramp_potential_hz"].notna().sum()
