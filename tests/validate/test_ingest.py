"""Reading CSV, Parquet and XPT; column mappings; ADaM round trip; writing validated output."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pyreadstat
import pytest
from helpers import ROOT, small_trial, write_csv
from helpers import SMALL_TRIAL_ARMS as ARMS

from crampstats import validate as validation
from crampstats.config import check, load_trial_config
from crampstats.errors import CrampstatsError
from crampstats.simulate.adam import adam_mapping, export_adam
from crampstats.validate import read_validated, validate, write_validated
from crampstats.validate import validation as validation_module
from crampstats.validate.contract import SORT_KEYS

CONFIG = {"trial_id": "t1", "design": "parallel", "arms": ARMS}


def _numeric_copy(frame: pd.DataFrame) -> pd.DataFrame:
    """Turn number-like text columns into float64 (as an XPT or typed Parquet would hold)."""
    out = frame.copy()
    for column in out.columns:
        given = out[column].replace("", None)
        numbers = pd.to_numeric(given, errors="coerce")
        if numbers.notna().sum() == given.notna().sum() and numbers.notna().any():
            out[column] = numbers.astype("float64")
    return out


def _accepted(folder: Path, config: dict | None = None) -> validation.ValidationResult:
    result = validate(folder, check(config or CONFIG, "trial"))
    assert result.ok, "\n".join(str(p) for p in result.problems)
    return result


def _assert_same(a: dict[str, pd.DataFrame], b: dict[str, pd.DataFrame]) -> None:
    assert sorted(a) == sorted(b)
    for name in a:
        pd.testing.assert_frame_equal(a[name], b[name], check_exact=True)


def test_csv_parquet_xpt_give_identical_tables(tmp_path):
    frames = small_trial()
    from_csv = _accepted(write_csv(frames, tmp_path / "csv")).tables
    pq, xpt = tmp_path / "parquet", tmp_path / "xpt"
    mappings = {}
    pq.mkdir()
    xpt.mkdir()
    for name, frame in frames.items():
        _numeric_copy(frame).to_parquet(pq / f"{name}.parquet", index=False)
        short = {c: c[:8] for c in frame.columns}
        pyreadstat.write_xport(_numeric_copy(frame).rename(columns=short), str(xpt / f"{name}.xpt"))
        mappings[name] = {"columns": {c: s for c, s in short.items() if s != c}}
    _assert_same(from_csv, _accepted(pq).tables)
    xpt_config = dict(CONFIG, tables=mappings)
    _assert_same(from_csv, _accepted(xpt, xpt_config).tables)


def test_parquet_row_numbers_start_at_1(tmp_path):
    frames = small_trial()
    frames["diary"].loc[0, "cramp_count"] = "-1"
    folder = write_csv(frames, tmp_path / "d")
    pd.read_csv(folder / "diary.csv", dtype=str).to_parquet(folder / "diary.parquet")
    (folder / "diary.csv").unlink()
    result = validate(folder, check(CONFIG, "trial"))
    assert [str(p) for p in result.problems] == [
        "diary.parquet row 1, column cramp_count: -1 is negative (counts are integers >= 0)"]


@pytest.mark.parametrize("design", ["parallel", "crossover"])
def test_adam_round_trip(tmp_path, design):
    config = dict(CONFIG, design=design)
    canonical = _accepted(write_csv(small_trial(design), tmp_path / "csv"), config).tables
    export_adam(canonical, tmp_path / "adam")
    assert sorted(p.name for p in (tmp_path / "adam").iterdir()) == [
        "adae.xpt", "adcramp.xpt", "adeg.xpt", "adsl.xpt"]
    adam = load_trial_config(ROOT / "config" / "adam.yaml")
    adam.update(design=design, arms=ARMS)
    back = _accepted(tmp_path / "adam", adam).tables
    _assert_same(canonical, back)


def test_config_adam_yaml_matches_the_exporter():
    adam = load_trial_config(ROOT / "config" / "adam.yaml")
    assert adam["tables"] == check({"tables": adam_mapping()}, "trial")["tables"]
    assert adam["arms"] == ["placebo", "mexiletine", "quinine", "vitamin_b_complex", "magnesium"]
    assert adam["design"] == "parallel"


def test_row_numbers_survive_paramcd_filter(tmp_path):
    canonical = _accepted(write_csv(small_trial(), tmp_path / "csv")).tables
    export_adam(canonical, tmp_path / "adam")
    path = tmp_path / "adam" / "adcramp.xpt"
    long, _meta = pyreadstat.read_xport(str(path))
    cramps = long.index[long["PARAMCD"] == "CRAMPS"]
    intens = long.index[long["PARAMCD"] == "INTENS"]
    bad_count, bad_intensity = int(cramps[9]), int(intens[3])
    long.loc[bad_count, "AVAL"] = -4.0
    long.loc[bad_intensity, "AVAL"] = 12.0
    pyreadstat.write_xport(long, str(path))
    config = load_trial_config(ROOT / "config" / "adam.yaml")
    result = validate(tmp_path / "adam", config)
    assert sorted(str(p) for p in result.problems) == sorted([
        f"adcramp.xpt row {bad_count + 1}, column AVAL (cramp_count): -4 is negative "
        "(counts are integers >= 0)",
        f"adcramp.xpt row {bad_intensity + 1}, column AVAL (intensity): 12.0 is outside 0-10 "
        "(intensity is a 0-10 rating)",
    ])


def test_shuffled_rows_give_the_same_tables(tmp_path, rng):
    frames = small_trial()
    ordered = _accepted(write_csv(frames, tmp_path / "a")).tables
    shuffled = {n: f.sample(frac=1.0, random_state=rng.integers(1 << 31)).reset_index(drop=True)
                for n, f in frames.items()}
    again = _accepted(write_csv(shuffled, tmp_path / "b")).tables
    for name in ordered:
        keys = SORT_KEYS[name]
        a = ordered[name].sort_values(keys, kind="mergesort").reset_index(drop=True)
        b = again[name].sort_values(keys, kind="mergesort").reset_index(drop=True)
        pd.testing.assert_frame_equal(a, b)


def test_filter_params_and_recoding(tmp_path):
    folder = tmp_path / "long"
    folder.mkdir()
    write_csv({k: v for k, v in small_trial().items() if k == "subjects"}, folder)
    long = pd.DataFrame({
        "USUBJID": ["S1", "S1", "S1", "S2", "S2"],
        "DAY": ["1", "1", "2", "1", "1"],
        "PARAMCD": ["CRAMPS", "INTENS", "CRAMPS", "CRAMPS", "INTENS"],
        "AVAL": ["2", "6.5", "0", "1", "3"],
        "PH": ["TRT", "TRT", "TRT", "TRT", "TRT"],
    })
    long.to_csv(folder / "adlong.csv", index=False)
    config = dict(CONFIG, tables={"diary": {
        "file": "adlong", "filter": {"PARAMCD": "CRAMPS"},
        "columns": {"subject_id": "USUBJID", "study_day": "DAY", "cramp_count": "AVAL",
                    "period": "PH"},
        "values": {"period": {"TRT": "treatment"}},
        "params": {"intensity": {"filter": {"PARAMCD": "INTENS"}, "value": "AVAL"}},
    }})
    result = validate(folder, check(config, "trial"))
    assert result.ok, [str(p) for p in result.problems]
    diary = result.tables["diary"]
    assert diary["cramp_count"].tolist() == [2, 0, 1]
    assert diary["intensity"].tolist()[0] == 6.5 and pd.isna(diary["intensity"].iloc[1])
    assert set(diary["period"]) == {"treatment"}
    assert "PARAMCD" in diary.columns  # extra columns are kept unless extra_columns: drop


def test_write_is_deterministic_and_reads_back(tmp_path):
    result = _accepted(write_csv(small_trial(), tmp_path / "data"))
    write_validated(result, tmp_path / "v1")
    write_validated(result, tmp_path / "v2")
    for f in (tmp_path / "v1").iterdir():
        assert f.read_bytes() == (tmp_path / "v2" / f.name).read_bytes(), f.name
    back = read_validated(tmp_path / "v1")
    _assert_same(result.tables, back.tables)
    assert back.config["design"] == "parallel"
    assert back.meta["counts"]["subjects"] == 4
    assert set(back.meta["inputs"]) == {"subjects", "diary", "emg", "adverse_events"}


def test_interrupted_write_leaves_nothing(tmp_path, monkeypatch):
    result = _accepted(write_csv(small_trial(), tmp_path / "data"))
    calls = []
    real = validation_module.write_parquet

    def crash(df, path):
        calls.append(path)
        if len(calls) == 2:
            raise RuntimeError("disk full")
        real(df, path)

    monkeypatch.setattr(validation_module, "write_parquet", crash)
    out = tmp_path / "out"
    with pytest.raises(RuntimeError, match="disk full"):
        write_validated(result, out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]


def test_read_validated_refuses_other_folders(tmp_path):
    with pytest.raises(CrampstatsError, match="no such folder"):
        read_validated(tmp_path / "missing")
    with pytest.raises(CrampstatsError, match=r"no validation\.json"):
        read_validated(tmp_path)
    (tmp_path / "validation.json").write_text(json.dumps({"format": "other"}))
    with pytest.raises(CrampstatsError, match="not written by crampstats validate"):
        read_validated(tmp_path)
