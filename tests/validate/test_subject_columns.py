"""Extra subject columns: kept, typed (number or text), reserved names refused."""

from __future__ import annotations

import pandas as pd
import pytest
import yaml
from helpers import SMALL_TRIAL_ARMS, small_trial, write_csv

from crampstats.config import load_trial_config
from crampstats.validate import read_validated, validate, write_validated
from crampstats.validate.contract import RESERVED_SUBJECT_COLUMNS, type_extra_column

CONFIG = {"trial_id": "t1", "design": "parallel", "arms": SMALL_TRIAL_ARMS,
          "control_arm": "placebo"}


def _trial(tmp_path, **columns):
    frames = small_trial()
    for name, values in columns.items():
        frames["subjects"][name] = values
    return write_csv(frames, tmp_path / "data")


def test_extra_subject_columns_are_kept_and_typed(tmp_path):
    data = _trial(
        tmp_path,
        bmi=["27.5", "", "31", "22.25"],  # numbers, one blank
        site=["S01", "S02", "S01", ""],  # text
        centre=["1", "2", "2", "1"],  # numeric codes: a number (a grouping makes it a level)
        smoker=["yes", "no", "1", "0"],  # not all numbers: text
    )
    result = validate(data, dict(CONFIG))
    assert result.ok, [str(p) for p in result.problems]
    subjects = result.tables["subjects"].set_index("subject_id")
    assert str(subjects["bmi"].dtype) == "Float64"
    assert subjects["bmi"].tolist()[0] == 27.5 and pd.isna(subjects.loc["S2", "bmi"])
    assert subjects["site"].dtype == "string" and pd.isna(subjects.loc["S4", "site"])
    assert str(subjects["centre"].dtype) == "Float64"
    assert subjects["smoker"].dtype == "string" and subjects.loc["S3", "smoker"] == "1"
    # canonical columns first, then the extras in file order; types survive the round trip
    assert list(subjects.columns[-4:]) == ["bmi", "site", "centre", "smoker"]
    write_validated(result, tmp_path / "validated")
    back = read_validated(tmp_path / "validated").tables["subjects"]
    assert back.dtypes.astype(str).to_dict() == result.tables["subjects"].dtypes.astype(
        str
    ).to_dict()


@pytest.mark.parametrize("name", ["count", "period", "exposure_days", "cramp_count", "visit"])
def test_reserved_extra_subject_column_names_are_refused(tmp_path, name):
    assert name in RESERVED_SUBJECT_COLUMNS
    result = validate(_trial(tmp_path, **{name: ["1", "2", "3", "4"]}), dict(CONFIG))
    assert not result.ok
    problem = next(p for p in result.problems if p.column == name)
    assert problem.file == "subjects.csv" and problem.row is None
    assert "reserved" in problem.rule and "rename" in problem.rule


def test_type_extra_column_from_numbers_text_and_blanks():
    assert str(type_extra_column(pd.Series([1, 2.5, None])).dtype) == "Float64"
    assert type_extra_column(pd.Series(["", " ", None])).dtype == "string"  # nothing present
    assert type_extra_column(pd.Series(["1", "inf"])).dtype == "string"  # not finite
    text = type_extra_column(pd.Series([" A ", "B"]))
    assert text.tolist() == ["A", "B"]


def test_config_file_round_trip_keeps_extras(tmp_path):
    # through a trial config file, as `crampstats validate --config` reads it
    (tmp_path / "trial.yaml").write_text(yaml.safe_dump(CONFIG))
    data = _trial(tmp_path, bmi=["20", "21", "22", "23"])
    result = validate(data, load_trial_config(tmp_path / "trial.yaml"))
    assert result.ok
    assert result.tables["subjects"]["bmi"].tolist() == [20.0, 21.0, 22.0, 23.0]
