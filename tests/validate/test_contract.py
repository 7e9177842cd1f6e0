"""The data contract: one bad-input case per refusal rule, through the command line."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from helpers import SMALL_TRIAL_ARMS, Frames, small_trial, write_csv

from crampstats.cli import main
from crampstats.validate import Problem, validate
from crampstats.validate.contract import infer_design

ARMS = SMALL_TRIAL_ARMS


def write_config(tmp_path: Path, design: str = "parallel", **extra) -> Path:
    path = tmp_path / "trial.yaml"
    cfg = {"trial_id": "t1", "design": design, "arms": ARMS, "control_arm": "placebo", **extra}
    path.write_text(yaml.safe_dump(cfg))
    return path


def run(capsys, data: Path, config: Path, out: Path) -> tuple[int, str, str]:
    code = main(["validate", str(data), "--config", str(config), "--out", str(out)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# --------------------------------------------------------------------------------------------
# one case per refusal rule: (id, design, break function, file, row, column, words in the rule)
# rows are spreadsheet rows: CSV header = row 1, so frame position i is row i + 2
# --------------------------------------------------------------------------------------------
def _set(table: str, pos: int, column: str, value: object) -> Callable[[Frames], None]:
    def breaker(f: Frames) -> None:
        f[table].loc[pos, column] = value
    return breaker


def _drop(table: str, column: str) -> Callable[[Frames], None]:
    def breaker(f: Frames) -> None:
        f[table] = f[table].drop(columns=column)
    return breaker


def _append_copy(table: str, pos: int) -> Callable[[Frames], None]:
    def breaker(f: Frames) -> None:
        f[table] = pd.concat([f[table], f[table].iloc[[pos]]], ignore_index=True)
    return breaker


def _header_only(table: str) -> Callable[[Frames], None]:
    def breaker(f: Frames) -> None:
        f[table] = f[table].iloc[:0]
    return breaker


def _weekly_over_daily(f: Frames) -> None:
    f["diary"].loc[4, "days"] = "7"  # S1 day 1 now covers days 1-7; row of day 2 overlaps


CASES = [
    ("missing_column", "parallel", _drop("diary", "cramp_count"),
     "diary.csv", None, "cramp_count", "required column is missing"),
    ("text_for_number", "parallel", _set("diary", 5, "cramp_count", "three"),
     "diary.csv", 7, "cramp_count", "is not a number"),
    ("non_integer_count", "parallel", _set("diary", 6, "cramp_count", "2.5"),
     "diary.csv", 8, "cramp_count", "is not an integer"),
    ("non_integer_grade", "parallel", _set("emg", 2, "afterdischarge_grade", "1.5"),
     "emg.csv", 4, "afterdischarge_grade", "is not an integer"),
    ("not_boolean", "parallel", _set("adverse_events", 1, "serious", "maybe"),
     "adverse_events.csv", 3, "serious", "is not a boolean"),
    ("negative_count", "parallel", _set("diary", 12, "cramp_count", "-2"),
     "diary.csv", 14, "cramp_count", "-2 is negative (counts are integers >= 0)"),
    ("duplicated_subject", "parallel", _append_copy("subjects", 0),
     "subjects.csv", 6, "subject_id", "is duplicated"),
    ("duplicated_diary_record", "parallel", _append_copy("diary", 3),
     "diary.csv", 50, "study_day", "duplicated diary record"),
    ("duplicated_emg_visit", "parallel", _append_copy("emg", 1),
     "emg.csv", 10, "visit", "duplicated EMG assessment"),
    ("days_below_one", "parallel", _set("diary", 2, "days", "0"),
     "diary.csv", 4, "days", "is less than 1"),
    ("intensity_above_10", "parallel", _set("diary", 7, "intensity", "11"),
     "diary.csv", 9, "intensity", "outside 0-10"),
    ("grade_above_4", "parallel", _set("emg", 3, "afterdischarge_grade", "5"),
     "emg.csv", 5, "afterdischarge_grade", "outside 0-4"),
    ("ctf_not_positive", "parallel", _set("emg", 0, "ctf_hz", "0"),
     "emg.csv", 2, "ctf_hz", "CTF must be > 0"),
    ("cramp_potential_not_positive", "parallel", _set("emg", 0, "cramp_potential_hz", "-3"),
     "emg.csv", 2, "cramp_potential_hz", "must be > 0"),
    ("enumeration_sex", "parallel", _set("subjects", 1, "sex", "X"),
     "subjects.csv", 3, "sex", "is not one of F, M, other"),
    ("enumeration_etiology", "parallel", _set("subjects", 2, "etiology", "flu"),
     "subjects.csv", 4, "etiology", "not a known etiology"),
    ("enumeration_period", "parallel", _set("diary", 9, "period", "during"),
     "diary.csv", 11, "period", "is not run-in, treatment, washout"),
    ("age_out_of_range", "parallel", _set("subjects", 0, "age", "130"),
     "subjects.csv", 2, "age", "outside 0 < age < 120"),
    ("empty_table_header_only", "parallel", _header_only("adverse_events"),
     "adverse_events.csv", None, None, "no records"),
    ("subject_not_randomised", "parallel", _set("diary", 20, "subject_id", "S9"),
     "diary.csv", 22, "subject_id", "not in subjects (not randomised)"),
    ("emg_subject_not_randomised", "parallel", _set("emg", 5, "subject_id", "S9"),
     "emg.csv", 7, "subject_id", "not randomised"),
    ("ae_subject_not_randomised", "parallel", _set("adverse_events", 0, "subject_id", "S0"),
     "adverse_events.csv", 2, "subject_id", "not randomised"),
    ("overlapping_records", "parallel", _weekly_over_daily,
     "diary.csv", 7, "study_day", "overlaps an earlier record"),
    ("crossover_without_treatment", "crossover", _set("diary", 6, "treatment", ""),
     "diary.csv", 8, "treatment", "needs its treatment"),
    ("arm_not_in_config", "parallel", _set("subjects", 3, "arm", "aspirin"),
     "subjects.csv", 5, "arm", "is not in the config's arms"),
    ("treatment_not_in_config", "crossover", _set("diary", 10, "treatment", "aspirin"),
     "diary.csv", 12, "treatment", "is not in the config's arms"),
    ("withdrawal_before_first_dose", "parallel", _set("subjects", 1, "withdrawal_day", "0"),
     "subjects.csv", 3, "withdrawal_day", "before the first dose"),
    ("parallel_without_arm", "parallel", _set("subjects", 2, "arm", ""),
     "subjects.csv", 4, "arm", "parallel design needs each subject's arm"),
    ("parallel_without_arm_column", "parallel", _drop("subjects", "arm"),
     "subjects.csv", None, "arm", "parallel design needs"),
    ("crossover_without_sequence", "crossover", _set("subjects", 1, "sequence", ""),
     "subjects.csv", 3, "sequence", "crossover / N-of-1 design needs"),
    ("empty_required_cell", "parallel", _set("diary", 0, "study_day", ""),
     "diary.csv", 2, "study_day", "is empty"),
]


@pytest.mark.parametrize(
    ("design", "breaker", "file", "row", "column", "words"),
    [pytest.param(*case[1:], id=case[0]) for case in CASES],
)
def test_each_refusal_rule(tmp_path, capsys, design, breaker, file, row, column, words):
    frames = small_trial(design)
    breaker(frames)
    data = write_csv(frames, tmp_path / "data")
    out = tmp_path / "out"
    code, stdout, err = run(capsys, data, write_config(tmp_path, design), out)
    assert code == 1, stdout + err
    assert "Traceback" not in err
    assert not out.exists()
    lines = [ln.strip() for ln in err.splitlines() if ln.strip().startswith(file)]
    prefix = file + (f" row {row}" if row is not None else "")
    if column is not None:
        prefix += f", column {column}"
    matching = [ln for ln in lines if ln.startswith(prefix) and words in ln]
    assert matching, f"expected a line starting {prefix!r} containing {words!r}; got:\n{err}"


def _write_raw(name: str, content: bytes | None) -> Callable[[Path], None]:
    def breaker(folder: Path) -> None:
        path = folder / name
        path.unlink()
        if content is None:
            path.mkdir()  # a folder where a file should be: unreadable whoever runs the test
        else:
            path.write_bytes(content)
    return breaker


def _second_format(folder: Path) -> None:
    pd.read_csv(folder / "diary.csv", dtype=str).to_parquet(folder / "diary.parquet")


FILE_CASES = [
    ("unreadable", _write_raw("diary.csv", None), "diary.csv", "cannot be read"),
    ("binary", _write_raw("diary.csv", np.random.default_rng(7).bytes(2000)), "diary.csv",
     "binary"),
    ("empty_0_bytes", _write_raw("subjects.csv", b""), "subjects.csv", "is empty (0 bytes)"),
    ("header_only", _write_raw("diary.csv", b"subject_id,study_day,cramp_count\n"), "diary.csv",
     "no records"),
    ("latin1_text", _write_raw("emg.csv", "subject_id,visit\nS1,d\xe9but\n".encode("latin-1")),
     "emg.csv", "not UTF-8"),
    ("ragged_csv", _write_raw("adverse_events.csv", b"subject_id,term\nS1,a,b,c\nS2\n"),
     "adverse_events.csv", "cannot be parsed as CSV"),
    ("damaged_parquet", lambda d: (d / "emg.csv").rename(d / "emg.parquet"), "emg.parquet",
     "cannot be read as Parquet"),
    ("damaged_xpt", lambda d: (d / "emg.csv").rename(d / "emg.xpt"), "emg.xpt",
     "cannot be read as SAS transport"),
    ("two_formats", _second_format, "diary.csv", "more than one format"),
    ("missing_required_table", lambda d: (d / "subjects.csv").unlink(), "subjects.*",
     "required table subjects not found"),
]


@pytest.mark.parametrize(("breaker", "file", "words"),
                         [pytest.param(*c[1:], id=c[0]) for c in FILE_CASES])
def test_file_level_refusals(tmp_path, capsys, breaker, file, words):
    data = write_csv(small_trial(), tmp_path / "data")
    breaker(data)
    out = tmp_path / "out"
    code, _stdout, err = run(capsys, data, write_config(tmp_path), out)
    assert code == 1
    assert "Traceback" not in err
    assert not out.exists()
    assert any(ln.strip().startswith(f"{file}: ") and words in ln for ln in err.splitlines()), err


def test_missing_folder_is_a_problem(tmp_path, capsys):
    out = tmp_path / "out"
    code, _stdout, err = run(capsys, tmp_path / "nowhere", write_config(tmp_path), out)
    assert code == 1
    assert "nowhere: data folder does not exist" in err
    assert not out.exists()


def test_valid_trial_exits_0_and_writes(tmp_path, capsys):
    data = write_csv(small_trial(), tmp_path / "data")
    out = tmp_path / "out"
    code, stdout, err = run(capsys, data, write_config(tmp_path), out)
    assert code == 0, err
    assert "parallel design (from config), 4 subjects" in stdout
    assert "subjects per arm: mexiletine 2, placebo 2" in stdout
    assert sorted(p.name for p in out.iterdir()) == [
        "adverse_events.parquet", "diary.parquet", "emg.parquet", "subjects.parquet",
        "validation.json",
    ]


def test_many_problems_are_capped(tmp_path, capsys):
    frames = small_trial()
    frames["diary"]["cramp_count"] = "-1"
    data = write_csv(frames, tmp_path / "data")
    out = tmp_path / "out"
    config = write_config(tmp_path, max_problems=5)
    code, _stdout, err = run(capsys, data, config, out)
    assert code == 1
    listed = [ln for ln in err.splitlines() if ln.strip().startswith("diary.csv row")]
    assert len(listed) == 5
    assert "... and 43 more" in err
    assert "48 problems" in err


def test_problem_text():
    p = Problem("diary.csv", 14, "cramp_count", -2, "is negative (counts are integers >= 0)")
    assert str(p) == (
        "diary.csv row 14, column cramp_count: -2 is negative (counts are integers >= 0)")
    assert str(Problem("diary.csv", None, None, None, "is empty (0 bytes)")) == (
        "diary.csv: is empty (0 bytes)")
    assert str(Problem("diary.csv", 3, "subject_id", "S9", "is not in subjects")) == (
        'diary.csv row 3, column subject_id: "S9" is not in subjects')


def test_warnings(tmp_path):
    frames = small_trial()
    diary = frames["diary"]
    diary.loc[diary["subject_id"] == "S1", "cramp_count"] = ""  # no diary at all for S1
    s3_treatment = (diary["subject_id"] == "S3") & (diary["period"] == "treatment")
    frames["diary"] = diary.loc[~s3_treatment]  # S3: run-in only
    frames["subjects"].loc[3, "withdrawal_day"] = "6"  # S4 keeps diarising to day 8
    frames["subjects"]["arm"] = frames["subjects"]["arm"].replace("placebo", "mexiletine")
    data = write_csv(frames, tmp_path / "data")
    cfg = {"design": "parallel", "arms": ARMS, "control_arm": "placebo",
           "compliance_threshold": 0.8}
    result = validate(data, cfg)
    assert result.ok, [str(p) for p in result.problems]
    kinds = {(w.kind, w.subject) for w in result.warnings}
    assert ("low_compliance", "S1") in kinds
    assert ("low_compliance", "S3") in kinds
    assert ("no_post_baseline", "S1") in kinds
    assert ("no_post_baseline", "S3") in kinds
    assert ("no_control_arm", None) in kinds
    assert ("diary_after_withdrawal", "S4") in kinds
    assert ("low_compliance", "S2") not in kinds


def test_defaults_and_dtypes(tmp_path):
    frames = small_trial()
    frames["diary"] = frames["diary"].drop(columns=["days", "period"])
    frames["subjects"] = frames["subjects"].drop(columns=["trial_id"])
    frames["emg"] = frames["emg"].drop(columns=["ctf_censored"])
    frames["adverse_events"] = frames["adverse_events"].drop(columns=["serious"])
    data = write_csv(frames, tmp_path / "data")
    result = validate(data, {"arms": ARMS})
    assert result.ok, [str(p) for p in result.problems]
    t = result.tables
    assert result.config["design"] == "parallel" and result.design_inferred
    assert set(t["subjects"]["trial_id"]) == {"trial"}
    assert (t["diary"]["days"] == 1).all()
    assert list(t["diary"].loc[t["diary"]["study_day"] <= 0, "period"].unique()) == ["run-in"]
    assert list(t["diary"].loc[t["diary"]["study_day"] > 0, "period"].unique()) == ["treatment"]
    assert not t["emg"]["ctf_censored"].any() and not t["adverse_events"]["serious"].any()
    assert str(t["diary"]["cramp_count"].dtype) == "Int64"
    assert str(t["diary"]["intensity"].dtype) == "Float64"
    assert str(t["subjects"]["subject_id"].dtype) == "string"
    assert str(t["emg"]["ctf_censored"].dtype) == "boolean"
    assert t["subjects"]["withdrawal_day"].tolist()[3] == 8


def test_design_inference(tmp_path):
    data = write_csv(small_trial("crossover"), tmp_path / "data")
    result = validate(data, {"arms": ARMS})
    assert result.ok and result.config["design"] == "crossover"
    subjects = pd.DataFrame({"sequence": pd.array(["ABAB"], dtype="string")})
    assert infer_design(subjects, None) == "nof1"
    assert infer_design(None, None) == "parallel"
