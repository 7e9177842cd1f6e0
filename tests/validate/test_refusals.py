"""The refusals of docs/data-contract.md that tests/validate/test_contract.py does not reach.

Each case breaks a valid trial (:func:`helpers.small_trial`) in one way and runs ``crampstats
validate`` as a user would: exit 1, nothing written, no traceback, and one line naming the file,
the row (as a spreadsheet shows it: CSV header = row 1), the column and the rule, as the
contract's "Refusals" section says. The mapping cases read a long diary (one row per subject,
day and parameter, as an ADaM BDS file) through ``tables.diary`` (``filter``, ``params``) or
several site files (``file`` glob).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
import yaml
from helpers import SMALL_TRIAL_ARMS, Frames, small_trial, write_csv

from crampstats.cli import main


def run(capsys, data: Path, tmp_path: Path, design: str = "parallel", **config) -> str:
    """Validate ``data`` through the command line; assert a clean refusal; return stderr."""
    path = tmp_path / "trial.yaml"
    cfg = {"trial_id": "t1", "design": design, "arms": SMALL_TRIAL_ARMS, **config}
    path.write_text(yaml.safe_dump(cfg))
    out = tmp_path / "out"
    code = main(["validate", str(data), "--config", str(path), "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 1, err
    assert "Traceback" not in err
    assert not out.exists()
    return err


def assert_line(err: str, prefix: str, *words: str) -> None:
    """One line of ``err`` starts with ``prefix`` (file, row, column) and holds every word."""
    lines = [ln.strip() for ln in err.splitlines()]
    assert any(ln.startswith(prefix) and all(w in ln for w in words) for ln in lines), (
        f"no line starting {prefix!r} with {words!r} in:\n{err}"
    )


# ---------------------------------------------------------------------------------------------
# The CSV itself: duplicated header names, a BOM, blank lines
# ---------------------------------------------------------------------------------------------
def test_duplicated_header_names_are_refused(tmp_path, capsys):
    data = write_csv(small_trial(), tmp_path / "data")
    text = (data / "emg.csv").read_text()
    header, rest = text.split("\n", 1)
    (data / "emg.csv").write_text(header.replace("study_day", "visit") + "\n" + rest)
    err = run(capsys, data, tmp_path)
    assert_line(err, "emg.csv: ", "cannot be parsed as CSV", "duplicated column name visit")


def test_a_bom_is_allowed_and_does_not_move_rows_or_rename_the_first_column(tmp_path, capsys):
    frames = small_trial()
    frames["diary"].loc[5, "cramp_count"] = "-1"  # record 6: row 7
    data = write_csv(frames, tmp_path / "data")
    for name in ("subjects", "diary"):
        path = data / f"{name}.csv"
        path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    err = run(capsys, data, tmp_path)
    # the only problem is the planted one: subject_id, the first column, is found after the BOM
    assert "1 problem in" in err, err
    assert_line(err, "diary.csv row 7, column cramp_count: -1 is negative")


def test_blank_lines_are_skipped_but_keep_their_row_numbers(tmp_path, capsys):
    frames = small_trial()
    frames["diary"].loc[5, "cramp_count"] = "-1"  # record 6: row 7 without blank lines
    data = write_csv(frames, tmp_path / "data")
    lines = (data / "diary.csv").read_text().splitlines()
    # two blank lines after the header and one (of spaces and commas) before record 6
    lines = [lines[0], "", "", *lines[1:6], " , ,", *lines[6:]]
    (data / "diary.csv").write_text("\n".join(lines) + "\n")
    err = run(capsys, data, tmp_path)
    assert_line(err, "diary.csv row 10, column cramp_count: -1 is negative")
    assert "row 7," not in err


# ---------------------------------------------------------------------------------------------
# Tables and columns
# ---------------------------------------------------------------------------------------------
def test_an_absent_diary_table_is_refused(tmp_path, capsys):
    data = write_csv(small_trial(), tmp_path / "data")
    (data / "diary.csv").unlink()
    err = run(capsys, data, tmp_path)
    assert_line(err, "diary.*: ", "required table diary not found")


@pytest.mark.parametrize(
    ("table", "column"),
    [
        ("subjects", "subject_id"),
        ("diary", "subject_id"),
        ("diary", "study_day"),
        ("emg", "subject_id"),
        ("emg", "visit"),
        ("adverse_events", "subject_id"),
        ("adverse_events", "term"),
        ("adverse_events", "category"),
    ],
)
def test_each_missing_required_column_is_refused(tmp_path, capsys, table, column):
    frames = small_trial()
    frames[table] = frames[table].drop(columns=column)
    err = run(capsys, write_csv(frames, tmp_path / "data"), tmp_path)
    assert_line(err, f"{table}.csv, column {column}: ", "required column is missing")


# ---------------------------------------------------------------------------------------------
# Values
# ---------------------------------------------------------------------------------------------
def _set(table: str, pos: int, column: str, value: str) -> Callable[[Frames], None]:
    def breaker(f: Frames) -> None:
        f[table].loc[pos, column] = value

    return breaker


VALUE_CASES = [
    # (id, table, record position, column, value, words of the rule)
    ("negative_intensity", "diary", 7, "intensity", "-0.5", "outside 0-10"),
    ("negative_grade", "emg", 3, "afterdischarge_grade", "-1", "outside 0-4"),
    ("cramp_origin", "subjects", 2, "cramp_origin", "spinal", "is not one of"),
    ("infinite_count", "diary", 4, "cramp_count", "inf", "is not a finite number"),
    ("infinite_intensity", "diary", 7, "intensity", "Infinity", "is not a finite number"),
    ("nan_text_ctf", "emg", 1, "ctf_hz", "nan", "is not a number"),  # "nan" is text, not NA
    ("minus_infinite_age", "subjects", 0, "age", "-inf", "is not a finite number"),
]


@pytest.mark.parametrize(
    ("table", "pos", "column", "value", "words"),
    [pytest.param(*c[1:], id=c[0]) for c in VALUE_CASES],
)
def test_each_bad_value_is_refused_at_its_row(tmp_path, capsys, table, pos, column, value, words):
    frames = small_trial()
    _set(table, pos, column, value)(frames)
    err = run(capsys, write_csv(frames, tmp_path / "data"), tmp_path)
    assert_line(err, f"{table}.csv row {pos + 2}, column {column}: ", words)


# ---------------------------------------------------------------------------------------------
# Designs
# ---------------------------------------------------------------------------------------------
def test_a_crossover_diary_without_a_treatment_column_is_refused(tmp_path, capsys):
    frames = small_trial("crossover")
    frames["diary"] = frames["diary"].drop(columns="treatment")
    err = run(capsys, write_csv(frames, tmp_path / "data"), tmp_path, design="crossover")
    assert_line(err, "diary.csv, column treatment: ", "crossover / N-of-1")


@pytest.mark.parametrize("design", ["crossover", "nof1"])
def test_subjects_without_a_sequence_column_are_refused(tmp_path, capsys, design):
    frames = small_trial("crossover")
    frames["subjects"] = frames["subjects"].drop(columns="sequence")
    err = run(capsys, write_csv(frames, tmp_path / "data"), tmp_path, design=design)
    assert_line(err, "subjects.csv, column sequence: ", "crossover / N-of-1 design needs")


# ---------------------------------------------------------------------------------------------
# Column mappings (the cases test_layouts.py does not cover): filter, params, several files
# ---------------------------------------------------------------------------------------------
def _long_diary(folder: Path, intensity: dict[int, str] | None = None) -> Path:
    """small_trial with its diary as one row per subject, day and parameter (``long.csv``:
    CRAMPS rows, then INTENS rows; ``intensity`` overrides INTENS values by record position)."""
    frames = small_trial()
    diary = frames.pop("diary")
    write_csv(frames, folder)
    counts = pd.DataFrame(
        {"SUBJ": diary["subject_id"], "DAY": diary["study_day"], "PARAM": "CRAMPS",
         "VAL": diary["cramp_count"]}
    )  # fmt: skip
    values = diary["intensity"].copy()
    for pos, value in (intensity or {}).items():
        values.iloc[pos] = value
    intens = counts.assign(PARAM="INTENS", VAL=values)
    intens = intens.loc[intens["VAL"] != ""]
    pd.concat([counts, intens], ignore_index=True).to_csv(folder / "long.csv", index=False)
    return folder


def _long_mapping(**changes) -> dict:
    diary = {
        "file": "long",
        "filter": {"PARAM": "CRAMPS"},
        "columns": {"subject_id": "SUBJ", "study_day": "DAY", "cramp_count": "VAL"},
        "params": {"intensity": {"filter": {"PARAM": "INTENS"}, "value": "VAL"}},
    }
    diary.update(changes)
    return {"diary": diary}


def test_the_long_diary_mapping_is_valid_as_built(tmp_path, capsys):
    """The starting point of the mapping cases is accepted (so each case breaks one thing)."""
    path = tmp_path / "trial.yaml"
    tables = _long_mapping()
    path.write_text(
        yaml.safe_dump({"trial_id": "t1", "design": "parallel", "arms": SMALL_TRIAL_ARMS,
                        "tables": tables})
    )  # fmt: skip
    code = main(["validate", str(_long_diary(tmp_path / "data")), "--config", str(path)])
    assert code == 0, capsys.readouterr().err


def test_a_filter_column_the_file_lacks_is_refused(tmp_path, capsys):
    data = _long_diary(tmp_path / "data")
    err = run(capsys, data, tmp_path, tables=_long_mapping(filter={"PARAMCD": "CRAMPS"}))
    assert_line(err, "long.csv, column PARAMCD: ", "named in the diary mapping's filter")


def test_a_params_value_column_the_file_lacks_is_refused(tmp_path, capsys):
    data = _long_diary(tmp_path / "data")
    params = {"intensity": {"filter": {"PARAM": "INTENS"}, "value": "AVAL"}}
    err = run(capsys, data, tmp_path, tables=_long_mapping(params=params))
    assert_line(err, "long.csv, column AVAL: ", "params for intensity is missing")


def test_two_params_rows_for_one_subject_and_day_are_refused(tmp_path, capsys):
    data = _long_diary(tmp_path / "data")
    frame = pd.read_csv(data / "long.csv", dtype=str, keep_default_na=False)
    intens = frame.index[frame["PARAM"] == "INTENS"]
    frame = pd.concat([frame, frame.loc[[intens[0]]]], ignore_index=True)
    frame.to_csv(data / "long.csv", index=False)
    err = run(capsys, data, tmp_path, tables=_long_mapping())
    row = len(frame) + 1  # the appended copy: last record
    assert_line(err, f"long.csv row {row}, column DAY: ", "duplicated", "same subject and study")


def test_a_bad_params_value_is_reported_at_the_row_it_came_from(tmp_path, capsys):
    data = _long_diary(tmp_path / "data", intensity={7: "12"})
    frame = pd.read_csv(data / "long.csv", dtype=str, keep_default_na=False)
    row = int(frame.index[(frame["PARAM"] == "INTENS") & (frame["VAL"] == "12")][0]) + 2
    assert row > 48 + 2  # an INTENS row, not the CRAMPS row of the same record (row 9)
    err = run(capsys, data, tmp_path, tables=_long_mapping())
    assert_line(err, f"long.csv row {row}, column VAL (intensity): ", "outside 0-10")


def test_a_record_repeated_in_a_later_site_file_is_refused_there(tmp_path, capsys):
    frames = small_trial()
    diary = frames.pop("diary")
    data = write_csv(frames, tmp_path / "data")
    first, second = diary.iloc[:24], diary.iloc[24:]
    first.to_csv(data / "diary_site1.csv", index=False)
    second = pd.concat([second, first.iloc[[3]]], ignore_index=True)  # S1's record 4 again
    second.to_csv(data / "diary_site2.csv", index=False)
    err = run(capsys, data, tmp_path, tables={"diary": {"file": "diary_site*"}})
    assert_line(
        err, f"diary_site2.csv row {len(second) + 1}, column study_day: ", "duplicated diary record"
    )
    assert "diary_site1.csv row" not in err
