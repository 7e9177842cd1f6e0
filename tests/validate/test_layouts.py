"""Export layouts through the column mapping: dates, cramp events, scales, wide diaries, several
files, MedDRA terms; each gives the canonical tables, and each bad mapping is refused in words."""

from __future__ import annotations

import datetime as dt
import json
import runpy
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
import yaml
from helpers import DATA, EXAMPLE, ROOT, SMALL_TRIAL_ARMS, Frames, small_trial, write_csv

from crampstats.cli import main
from crampstats.config import ConfigError, check, load_trial_config
from crampstats.validate import validate
from crampstats.validate.contract import AE_CATEGORIES, CANONICAL
from crampstats.validate.layouts import meddra_categories, parse_date, study_day

CONFIG = {"trial_id": "t1", "design": "parallel", "arms": SMALL_TRIAL_ARMS}
START = dt.date(2024, 3, 1)


def _tables(folder: Path, tables: dict | None = None) -> dict[str, pd.DataFrame]:
    result = validate(folder, check(dict(CONFIG, tables=tables or {}), "trial"))
    assert result.ok, "\n".join(str(p) for p in result.problems)
    return {n: t[list(CANONICAL[n])] for n, t in result.tables.items()}


def _canonical(frames: Frames, folder: Path) -> dict[str, pd.DataFrame]:
    return _tables(write_csv(frames, folder))


def _same(got: dict[str, pd.DataFrame], want: dict[str, pd.DataFrame], *names: str) -> None:
    for name in names or want:
        pd.testing.assert_frame_equal(got[name], want[name], check_exact=True)


def _randomised(frames: Frames) -> dict[str, dt.date]:
    ids = frames["subjects"]["subject_id"]
    return {s: START + dt.timedelta(days=7 * i) for i, s in enumerate(ids)}


def _date(ref: dt.date, day: str, fmt: str = "%Y-%m-%d") -> str:
    return "" if day == "" else (ref + dt.timedelta(days=int(day) - 1)).strftime(fmt)


def _dated(frames: Frames, fmt: str = "%Y-%m-%d") -> Frames:
    """The small trial with dates instead of study days (subjects: RANDDT, WDDT)."""
    ref = _randomised(frames)
    out = {k: v.copy() for k, v in frames.items()}
    s = out["subjects"]
    s["RANDDT"] = [ref[x].strftime(fmt) for x in s["subject_id"]]
    s["WDDT"] = [_date(ref[x], d, fmt) for x, d in zip(s["subject_id"], s["withdrawal_day"],
                                                       strict=True)]
    out["subjects"] = s.drop(columns="withdrawal_day")
    for name, column in (("diary", "DIARYDT"), ("emg", "EGDT"), ("adverse_events", "AESTDT")):
        t = out[name]
        t[column] = [_date(ref[x], d, fmt) + (" 08:30" if name == "emg" and fmt == "%Y-%m-%d"
                                              else "")
                     for x, d in zip(t["subject_id"], t["study_day"], strict=True)]
        out[name] = t.drop(columns="study_day")
    return out


def _date_tables(fmt: str | None = None) -> dict:
    extra = {"date_format": fmt} if fmt else {}
    return {
        "subjects": {"reference_date": "RANDDT", "dates": {"withdrawal_day": "WDDT"}, **extra},
        "diary": {"dates": {"study_day": "DIARYDT"}, **extra},
        "emg": {"dates": {"study_day": "EGDT"}, **extra},
        "adverse_events": {"dates": {"study_day": "AESTDT"}, **extra},
    }


# ----------------------------------------------------------------------------------------------
# dates
# ----------------------------------------------------------------------------------------------
def test_study_day_counts_the_reference_date_as_day_1():
    ref = dt.date(2024, 3, 1)
    assert study_day(ref, ref) == 1
    assert study_day(dt.date(2024, 2, 29), ref) == 0  # run-in: the day before is day 0
    assert study_day(dt.date(2024, 2, 16), ref) == -13
    assert study_day(dt.date(2024, 3, 8), ref) == 8
    assert parse_date("2024-03-01T23:59:59Z") == ref
    assert parse_date("01/03/2024", "%d/%m/%Y") == ref
    assert parse_date(pd.Timestamp("2024-03-01 05:00")) == ref
    assert parse_date("") is None
    for bad in ("2024-02-30", "2024-03", "1/3/2024", 20240301):
        with pytest.raises(ValueError):
            parse_date(bad)


@pytest.mark.parametrize("fmt", [None, "%d/%m/%Y", "parquet"])
def test_dates_give_the_canonical_study_days(tmp_path, fmt):
    frames = small_trial()
    want = _canonical(frames, tmp_path / "canonical")
    dated = _dated(frames, "%Y-%m-%d" if fmt in (None, "parquet") else fmt)
    folder = write_csv(dated, tmp_path / "dated")
    if fmt == "parquet":  # real date and timestamp types, as SAS or a database export them
        for name, frame in dated.items():
            frame = frame.copy()
            for column in ("RANDDT", "WDDT", "DIARYDT", "EGDT", "AESTDT"):
                if column in frame.columns:
                    frame[column] = pd.to_datetime(frame[column].replace("", None))
            (folder / f"{name}.csv").unlink()
            frame.to_parquet(folder / f"{name}.parquet", index=False)
    got = _tables(folder, _date_tables(fmt if fmt != "parquet" else None))
    _same(got, want)


# ----------------------------------------------------------------------------------------------
# an SDTM CM export as the medications table
# ----------------------------------------------------------------------------------------------
def test_sdtm_concomitant_medications_give_the_medications_table(tmp_path):
    frames = small_trial()
    meds = pd.DataFrame({
        "subject_id": ["S1", "S2", "S2"], "medication": ["quinine", "magnesium", "paracetamol"],
        "start_day": ["2", "-3", "4"], "end_day": ["3", "", "4"],
        "rescue": ["true", "false", "false"]})
    want = _tables(write_csv({**frames, "medications": meds}, tmp_path / "canonical"))
    ref = _randomised(frames)
    cm = pd.DataFrame({
        "STUDYID": "T1", "DOMAIN": "CM", "USUBJID": meds["subject_id"], "CMTRT": meds["medication"],
        "CMCAT": ["RESCUE MEDICATION", "CONCOMITANT MEDICATION", "CONCOMITANT MEDICATION"],
        "CMSTDTC": [_date(ref[x], d) for x, d in zip(meds["subject_id"], meds["start_day"],
                                                      strict=True)],
        "CMENDTC": [_date(ref[x], d) for x, d in zip(meds["subject_id"], meds["end_day"],
                                                      strict=True)]})
    subjects = frames["subjects"].assign(RANDDT=[ref[x].isoformat()
                                                 for x in frames["subjects"]["subject_id"]])
    folder = write_csv({**frames, "subjects": subjects, "cm": cm}, tmp_path / "sdtm")
    got = _tables(folder, {
        "subjects": {"reference_date": "RANDDT", "extra_columns": "drop"},
        "medications": {
            "file": "cm", "extra_columns": "drop",
            "columns": {"subject_id": "USUBJID", "medication": "CMTRT", "rescue": "CMCAT"},
            "dates": {"start_day": "CMSTDTC", "end_day": "CMENDTC"},
            "values": {"rescue": {"RESCUE MEDICATION": True, "CONCOMITANT MEDICATION": False}},
        },
    })
    _same(got, want, "subjects", "medications")
    assert got["medications"]["rescue"].tolist() == [True, False, False]


# ----------------------------------------------------------------------------------------------
# one row per cramp event + diary completion
# ----------------------------------------------------------------------------------------------
def _events(diary: pd.DataFrame) -> pd.DataFrame:
    """One row per cramp (rated 10x the 0-10 intensity), in the order of the diary."""
    rows = []
    for rec in diary.itertuples(index=False):
        for j in range(int(rec.cramp_count or 0)):
            rows.append({"SUBJ": rec.subject_id, "DAY": rec.study_day, "TIME": f"0{j}:15",
                         "VAS": str(round(float(rec.intensity) * 10)), "SITE": rec.location})
    return pd.DataFrame(rows)


def _with_uncompleted_day(frames: Frames) -> Frames:
    diary = frames["diary"]
    gap = (diary["subject_id"] == "S1") & (diary["study_day"] == "2")
    diary.loc[gap, ["cramp_count", "intensity", "location"]] = ""
    return frames


def _completed(want: dict[str, pd.DataFrame]) -> pd.DataFrame:
    diary = want["diary"]
    return diary.loc[diary["cramp_count"].notna()].reset_index(drop=True)


EVENT_COLUMNS = {"subject_id": "SUBJ", "study_day": "DAY", "intensity": "VAS", "location": "SITE"}


def test_events_become_daily_counts_with_a_completion_file(tmp_path):
    frames = _with_uncompleted_day(small_trial())
    want = _canonical(frames, tmp_path / "canonical")
    diary = frames["diary"]
    folder = write_csv({"subjects": frames["subjects"]}, tmp_path / "events")
    _events(diary).to_csv(folder / "cramps.csv", index=False)
    pd.DataFrame({"SUBJ": diary["subject_id"], "DAY": diary["study_day"],
                  "DONE": ["N" if c == "" else "Y" for c in diary["cramp_count"]]}).to_csv(
        folder / "diary_days.csv", index=False)
    got = _tables(folder, {"diary": {
        "file": "cramps", "columns": EVENT_COLUMNS, "rescale": {"intensity": {"from": [0, 100]}},
        "events": {"completion": {"file": "diary_days", "filter": {"DONE": "Y"}}}}})
    completed = _completed(want)
    assert len(got["diary"]) == len(completed) == len(want["diary"]) - 1  # the gap stays missing
    assert (got["diary"]["cramp_count"] == 0).sum() > 0  # completed days without cramps count 0
    pd.testing.assert_frame_equal(got["diary"], completed, check_exact=True)


def test_events_with_no_cramp_rows_in_the_same_file(tmp_path):
    """The completion record is the diary file itself: one row per event or per day without."""
    frames = _with_uncompleted_day(small_trial())
    want = _canonical(frames, tmp_path / "canonical")
    diary = frames["diary"]
    events = _events(diary).assign(CRAMP="Y")
    none = diary.loc[diary["cramp_count"] == "0"]
    quiet = pd.DataFrame({"SUBJ": none["subject_id"], "DAY": none["study_day"], "CRAMP": "N"})
    folder = write_csv({"subjects": frames["subjects"]}, tmp_path / "events")
    pd.concat([events, quiet]).sample(frac=1.0, random_state=3).to_csv(folder / "cramps.csv",
                                                                        index=False)
    got = _tables(folder, {"diary": {
        "file": "cramps", "filter": {"CRAMP": "Y"}, "columns": EVENT_COLUMNS,
        "rescale": {"intensity": {"from": [0, 100]}}, "events": {"completion": {}}}})
    pd.testing.assert_frame_equal(got["diary"], _completed(want), check_exact=True)


def test_events_on_a_day_not_completed_are_counted_and_warned_about(tmp_path):
    frames = small_trial()
    diary = frames["diary"]
    folder = write_csv({"subjects": frames["subjects"]}, tmp_path / "events")
    _events(diary).to_csv(folder / "cramps.csv", index=False)
    done = diary.loc[~((diary["subject_id"] == "S2") & (diary["cramp_count"] != "0"))]
    pd.DataFrame({"SUBJ": done["subject_id"], "DAY": done["study_day"]}).to_csv(
        folder / "diary_days.csv", index=False)
    result = validate(folder, check(dict(CONFIG, tables={"diary": {
        "file": "cramps", "columns": EVENT_COLUMNS, "rescale": {"intensity": {"from": [0, 100]}},
        "events": {"completion": {"file": "diary_days"}}}}), "trial"))
    assert result.ok, [str(p) for p in result.problems]
    warned = [w for w in result.warnings if w.kind == "events_without_completion"]
    assert [w.subject for w in warned] == ["S2"]
    assert "cramp events on 8 day(s)" in warned[0].message
    assert len(result.tables["diary"]) == len(diary)


# ----------------------------------------------------------------------------------------------
# intensity scales
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("scale", ["0-100", "1-5"])
def test_intensity_scales(tmp_path, scale):
    frames = small_trial()
    frames["diary"]["intensity"] = frames["diary"]["intensity"].replace({"4.5": "5", "5": "7.5"})
    want = _canonical(frames, tmp_path / "canonical")
    if scale == "0-100":
        recode = {"": "", "5": "50", "7.5": "75"}
        mapping = {"rescale": {"intensity": {"from": [0, 100]}}}
    else:  # a 1-5 Likert rating recoded by a value map
        recode = {"": "", "5": "3", "7.5": "4"}
        mapping = {"values": {"intensity": {1: 0, 2: 2.5, 3: 5, 4: 7.5, 5: 10}}}
    frames["diary"]["SEV"] = frames["diary"]["intensity"].map(recode)
    frames["diary"] = frames["diary"].drop(columns="intensity")
    got = _tables(write_csv(frames, tmp_path / "scaled"),
                  {"diary": {"columns": {"intensity": "SEV"}, **mapping}})
    _same(got, want, "diary")


# ----------------------------------------------------------------------------------------------
# wide diaries
# ----------------------------------------------------------------------------------------------
def test_wide_daily_diary(tmp_path):
    frames = small_trial()
    frames["diary"] = frames["diary"][["subject_id", "study_day", "cramp_count", "intensity"]]
    want = _canonical(frames, tmp_path / "canonical")
    diary = frames["diary"]
    number = (diary["study_day"].astype(int) + 4).astype(str)  # day -3 is d1
    wide = diary.assign(n=number).pivot(index="subject_id", columns="n",
                                        values=["cramp_count", "intensity"])
    wide.columns = [f"{'CNT' if c == 'cramp_count' else 'sev'}_d{n}" for c, n in wide.columns]
    wide = wide.reset_index().rename(columns={"subject_id": "PATIENT"})
    wide.loc[wide["PATIENT"] == "S3", ["CNT_d12", "sev_d12"]] = ""  # not diarised: no record
    want["diary"] = want["diary"].drop(index=want["diary"].index[
        (want["diary"]["subject_id"] == "S3") & (want["diary"]["study_day"] == 8)]).reset_index(
        drop=True)
    folder = write_csv({"subjects": frames["subjects"], "diary_wide": wide}, tmp_path / "wide")
    got = _tables(folder, {"diary": {
        "file": "diary_wide", "columns": {"subject_id": "PATIENT"},
        "wide": {"columns": {"cramp_count": "cnt_d{n}", "intensity": "SEV_D{n}"}, "start": -3}}})
    _same(got, want, "diary")


def test_wide_weekly_diary(tmp_path):
    frames = small_trial()
    frames["diary"] = pd.DataFrame({"subject": ["S1", "S2", "S3", "S4"], "week_0": [3, 5, "", 2],
                                    "week_1": [1, 0, 4, ""], "week_2": [0, 2, 2, 6]})
    folder = write_csv(frames, tmp_path / "wide")
    got = _tables(folder, {"diary": {"columns": {"subject_id": "subject"},
                                     "wide": {"columns": {"cramp_count": "week_{n}"},
                                              "unit": "week"}}})
    diary = got["diary"]
    assert diary["study_day"].tolist() == [-6, 1, 8, -6, 1, 8, 1, 8, -6, 8]
    assert set(diary["days"]) == {7}
    assert diary["cramp_count"].tolist() == [3, 1, 0, 5, 0, 2, 4, 2, 2, 6]
    assert diary["period"].tolist()[:3] == ["run-in", "treatment", "treatment"]


# ----------------------------------------------------------------------------------------------
# several files for one table
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("spec", ["diary_site*", ["diary_site_b", "diary_site_a"]])
def test_several_files_make_one_table(tmp_path, spec):
    frames = small_trial()
    want = _canonical(frames, tmp_path / "canonical")
    diary = frames.pop("diary")
    folder = write_csv(frames, tmp_path / "sites")
    site_a = diary["subject_id"].isin(["S1", "S3"])
    diary.loc[site_a].to_csv(folder / "diary_site_a.csv", index=False)
    diary.loc[~site_a].to_csv(folder / "diary_site_b.csv", index=False)
    result = validate(folder, check(dict(CONFIG, tables={"diary": {"file": spec}}), "trial"))
    assert result.ok, [str(p) for p in result.problems]
    _same({n: t[list(CANONICAL[n])] for n, t in result.tables.items()}, want)
    assert {k: p.name for k, p in result.inputs.items() if k.startswith("diary")} == {
        "diary/diary_site_a.csv": "diary_site_a.csv", "diary/diary_site_b.csv": "diary_site_b.csv"}


def test_each_record_keeps_its_own_file_and_row(tmp_path):
    frames = small_trial()
    diary = frames.pop("diary")
    folder = write_csv(frames, tmp_path / "sites")
    site_a = diary["subject_id"].isin(["S1", "S3"])
    diary.loc[site_a].to_csv(folder / "diary_site_a.csv", index=False)
    b = diary.loc[~site_a].reset_index(drop=True)
    b.loc[3, "cramp_count"] = "-1"
    b.loc[5, "subject_id"] = "S9"
    b.to_parquet(folder / "diary_site_b.parquet", index=False)
    result = validate(folder, check(dict(CONFIG, tables={"diary": {"file": "diary_site*"}}),
                                    "trial"))
    assert [str(p) for p in result.problems] == [
        "diary_site_b.parquet row 4, column cramp_count: -1 is negative (counts are integers "
        ">= 0)",
        'diary_site_b.parquet row 6, column subject_id: "S9" is not in subjects (not randomised)',
    ]


# ----------------------------------------------------------------------------------------------
# MedDRA preferred terms
# ----------------------------------------------------------------------------------------------
def test_meddra_mapping_file_covers_the_quinine_signals():
    table = meddra_categories()
    text = (ROOT / "src/crampstats/validate/data/meddra_categories.yaml").read_text()
    listed = [t for terms in yaml.safe_load(text).values() for t in terms]
    assert len(listed) == len({t.casefold() for t in listed}), "a term is listed twice"
    assert set(table.values()) == set(AE_CATEGORIES)
    for term, category in [
        ("Thrombocytopenia", "thrombocytopenia"), ("Platelet count decreased", "thrombocytopenia"),
        ("Immune thrombocytopenia", "thrombocytopenia"),
        ("Electrocardiogram QT prolonged", "qt_prolongation"),
        ("Long QT syndrome", "qt_prolongation"), ("Torsade de pointes", "qt_prolongation"),
        ("Cinchonism", "cinchonism"), ("Tinnitus", "cinchonism"),
        ("Hearing impaired", "cinchonism"), ("Vertigo", "cinchonism"),
        ("Vision blurred", "visual_disturbance"), ("Visual impairment", "visual_disturbance"),
        ("Nausea", "gastrointestinal"), ("Diarrhoea", "gastrointestinal"),
        ("Headache", "other"), ("Dizziness", "other"),
    ]:
        assert table[term.casefold()] == category, term


def test_meddra_terms_give_categories_and_unknown_terms_are_warned_about(tmp_path, capsys):
    frames = small_trial()
    frames["adverse_events"] = pd.DataFrame({
        "subject_id": ["S1", "S2", "S2", "S3", "S4", "S4"],
        "AEDECOD": ["  tinnitus", "Platelet count decreased", "Headache", "Petechiae",
                    "Electrocardiogram QT prolonged", "Muscle twitching"],
        "serious": ["N", "Y", "N", "N", "N", "N"], "study_day": ["2", "3", "4", "5", "6", "7"]})
    folder = write_csv(frames, tmp_path / "ae")
    config = tmp_path / "trial.yaml"
    config.write_text(yaml.safe_dump(dict(CONFIG, tables={"adverse_events": {
        "columns": {"term": "AEDECOD"},
        "categories": {"from_term": "meddra", "overrides": {"headache": "cinchonism"}}}})))
    code = main(["validate", str(folder), "--config", str(config), "--out", str(tmp_path / "v")])
    out = capsys.readouterr().out
    assert code == 0
    meta = json.loads((tmp_path / "v" / "validation.json").read_text())
    ae = pd.read_parquet(tmp_path / "v" / "adverse_events.parquet")
    assert ae["category"].tolist() == ["cinchonism", "thrombocytopenia", "cinchonism", "other",
                                       "qt_prolongation", "other"]
    warned = [w for w in meta["warnings"] if w["kind"] == "unmapped_ae_terms"]
    assert len(warned) == 1 and "Muscle twitching; Petechiae" in warned[0]["message"]
    assert "not in the MedDRA category mapping" in out


def test_a_category_in_the_file_wins_over_the_term(tmp_path):
    frames = small_trial()
    frames["adverse_events"].loc[1, "category"] = ""
    folder = write_csv(frames, tmp_path / "ae")
    got = _tables(folder, {"adverse_events": {"categories": {"from_term": "meddra"}}})
    assert got["adverse_events"]["category"].tolist() == ["gastrointestinal", "cinchonism"]


# ----------------------------------------------------------------------------------------------
# bad mappings: refused with file, row, column and value (exit 1), or a config error (exit 2)
# ----------------------------------------------------------------------------------------------
def _events_folder(folder: Path) -> Path:
    frames = small_trial()
    write_csv({"subjects": _dated(frames)["subjects"]}, folder)
    ref = _randomised(frames)
    diary = frames["diary"]
    events = _events(diary)
    events["DT"] = [_date(ref[s], d) for s, d in zip(events["SUBJ"], events["DAY"], strict=True)]
    events.drop(columns="DAY").to_csv(folder / "cramps.csv", index=False)
    pd.DataFrame({"SUBJ": diary["subject_id"], "DT": [
        _date(ref[s], d) for s, d in zip(diary["subject_id"], diary["study_day"], strict=True)]}
    ).to_csv(folder / "days.csv", index=False)
    return folder


EVENTS_MAP = {
    "subjects": {"reference_date": "RANDDT"},
    "diary": {"file": "cramps", "columns": {"subject_id": "SUBJ", "intensity": "VAS",
                                            "location": "SITE"},
              "dates": {"study_day": "DT"}, "rescale": {"intensity": {"from": [0, 100]}},
              "events": {"completion": {"file": "days"}}},
}


def _edit(file: str, row: int, column: str, value: str) -> Callable[[Path], None]:
    """Set a cell of a CSV (row as a spreadsheet shows it: header = row 1)."""
    def breaker(folder: Path) -> None:
        frame = pd.read_csv(folder / file, dtype=str, keep_default_na=False)
        frame.loc[row - 2, column] = value
        frame.to_csv(folder / file, index=False)
    return breaker


def _mapping(**changes: dict) -> dict:
    out = json.loads(json.dumps(EVENTS_MAP))
    for table, change in changes.items():
        out[table].update(change)
    return out


BAD_MAPPINGS = [
    ("mapped_column_missing", _mapping(diary={"columns": {"subject_id": "SUBJ",
                                                          "intensity": "SEVERITY"}}),
     None, "cramps.csv, column SEVERITY (intensity): is named in the diary mapping (columns) but "
     "the file has no such column"),
    ("reference_date_column_missing", _mapping(subjects={"reference_date": "RANDOMDT"}),
     None, "subjects.csv, column RANDOMDT (reference date): is named in the subjects mapping"),
    ("unparsable_event_date", EVENTS_MAP, _edit("cramps.csv", 4, "DT", "2024-02-31"),
     'cramps.csv row 4, column DT (study_day): "2024-02-31" is not a date (expected an ISO 8601 '
     "date"),
    ("unparsable_completion_date", EVENTS_MAP, _edit("days.csv", 7, "DT", "31/12/2024"),
     'days.csv row 7, column DT (study_day): "31/12/2024" is not a date'),
    ("unparsable_reference_date", EVENTS_MAP, _edit("subjects.csv", 3, "RANDDT", "tomorrow"),
     'subjects.csv row 3, column RANDDT (reference date): "tomorrow" is not a date'),
    ("empty_reference_date", EVENTS_MAP, _edit("subjects.csv", 2, "RANDDT", ""),
     "subjects.csv row 2, column RANDDT (reference date): is empty (each subject needs the "
     "reference date"),
    ("date_not_in_date_format", _mapping(subjects={"date_format": "%d.%m.%Y"}), None,
     'subjects.csv row 2, column RANDDT (reference date): "2024-03-01" is not a date in the '
     "mapping's date_format %d.%m.%Y"),
    ("event_for_unknown_subject", EVENTS_MAP, _edit("cramps.csv", 5, "SUBJ", "S9"),
     'cramps.csv row 5, column SUBJ (subject_id): "S9" is not in subjects (not randomised'),
    ("rescale_range_exceeded", EVENTS_MAP, _edit("cramps.csv", 6, "VAS", "120"),
     'cramps.csv row 6, column VAS (intensity): "120" is outside the declared intensity scale '
     "0-100"),
    ("event_intensity_not_a_number", EVENTS_MAP, _edit("cramps.csv", 6, "VAS", "severe"),
     'cramps.csv row 6, column VAS (intensity): "severe" is not a number'),
    ("completion_file_missing", _mapping(diary={"events": {"completion": {"file": "diary_days"}}}),
     None, "diary_days.*: required diary completion record (tables.diary.events.completion) not "
     "found: none of diary_days.csv"),
    ("glob_matches_nothing", _mapping(diary={"file": "cramps_site*"}), None,
     "cramps_site*.*: required table diary not found: no file matching cramps_site*.csv, "
     ".parquet or .xpt"),
    ("listed_file_missing", _mapping(diary={"file": ["cramps", "cramps_site2"]}), None,
     "cramps_site2.*: is named in the mapping's file list of the table diary but none of "
     "cramps_site2.csv"),
    ("wide_pattern_matches_nothing", {"diary": {"file": "days", "columns": {"subject_id": "SUBJ"},
                                                "wide": {"columns": {"cramp_count": "day_{n}"}}}},
     None, "days.csv, column day_{n} (cramp_count): the wide pattern matches no column of the "
     "file (its columns: SUBJ, DT)"),
]


@pytest.mark.parametrize(("tables", "breaker", "line"),
                         [pytest.param(*c[1:], id=c[0]) for c in BAD_MAPPINGS])
def test_bad_mappings_are_refused_in_words(tmp_path, capsys, tables, breaker, line):
    folder = _events_folder(tmp_path / "data")
    if breaker is not None:
        breaker(folder)
    config = tmp_path / "trial.yaml"
    config.write_text(yaml.safe_dump(dict(CONFIG, tables=tables)))
    out = tmp_path / "out"
    code = main(["validate", str(folder), "--config", str(config), "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 1, err
    assert "Traceback" not in err and not out.exists()
    assert any(ln.strip().startswith(line) for ln in err.splitlines()), f"{line!r} not in\n{err}"


def test_a_bad_wide_cell_names_its_own_column(tmp_path):
    frames = small_trial()
    frames["diary"] = pd.DataFrame({"subject_id": ["S1", "S2", "S3", "S4"],
                                    "day_1": ["1", "0", "2", "1"], "day_2": ["0", "x", "", "3"]})
    result = validate(write_csv(frames, tmp_path / "wide"), check(dict(CONFIG, tables={
        "diary": {"wide": {"columns": {"cramp_count": "day_{n}"}}}}), "trial"))
    assert [str(p) for p in result.problems] == [
        'diary.csv row 3, column day_2 (cramp_count): "x" is not a number (text where a number '
        "is needed)"]


@pytest.mark.parametrize(("tables", "words"), [
    ({"diary": {"dates": {"study_day": "DT"}}}, "needs tables.subjects.reference_date"),
    ({"diary": {"rescale": {"intensity": {"from": [100, 0]}}}}, "must be [low, high]"),
    ({"diary": {"columns": {"study_day": "DAY"}, "dates": {"study_day": "DT"}},
      "subjects": {"reference_date": "R"}}, "study_day is both in columns and in dates"),
    ({"diary": {"wide": {"columns": {"cramp_count": "d{n}"}}, "events": {"completion": {}}}},
     "wide cannot be combined with events"),
    # the schema's part
    ({"emg": {"rescale": {"intensity": {"from": [0, 100]}}}}, "'rescale' was unexpected"),
    ({"diary": {"wide": {"columns": {"cramp_count": "day_n"}}}}, "does not match"),
    ({"adverse_events": {"categories": {"from_term": "whodrug"}}}, "is not one of ['meddra']"),
    ({"subjects": {"dates": {"visit": "VISDT"}}},
     "is not one of ['study_day', 'withdrawal_day', 'discontinuation_day'"),
])
def test_contradictory_mappings_are_config_errors(tmp_path, capsys, tables, words):
    folder = write_csv(small_trial(), tmp_path / "data")
    config = tmp_path / "trial.yaml"
    config.write_text(yaml.safe_dump(dict(CONFIG, tables=tables)))
    code = main(["validate", str(folder), "--config", str(config), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2, err
    assert words in err and "Traceback" not in err
    assert not (tmp_path / "o").exists()


def test_validate_refuses_a_contradictory_mapping_given_in_code(tmp_path):
    folder = write_csv(small_trial(), tmp_path / "data")
    with pytest.raises(ConfigError, match=r"needs tables\.subjects\.reference_date"):
        validate(folder, dict(CONFIG, tables={"diary": {"dates": {"study_day": "DT"}}}))


def test_a_mapping_that_leaves_no_records_is_refused(tmp_path):
    frames = small_trial()
    frames["diary"] = pd.DataFrame({"subject_id": ["S1", "S2"], "day_1": ["", ""]})
    result = validate(write_csv(frames, tmp_path / "wide"), check(dict(CONFIG, tables={
        "diary": {"wide": {"columns": {"cramp_count": "day_{n}"}}}}), "trial"))
    assert [str(p) for p in result.problems] == [
        "diary.csv: gives no diary records after the column mapping (tables.diary)"]


# ----------------------------------------------------------------------------------------------
# data/example_export: the bundled example as a non-canonical export
# ----------------------------------------------------------------------------------------------
def test_example_export_gives_the_example_trial():
    want = validate(EXAMPLE, load_trial_config(ROOT / "config" / "config.yaml", EXAMPLE))
    got = validate(DATA / "example_export", load_trial_config(ROOT / "config" /
                                                              "example_export.yaml"))
    assert got.ok, "\n".join(str(p) for p in got.problems)
    assert not got.warnings
    diary = want.tables["diary"]
    diary = diary.loc[diary["cramp_count"].notna()].reset_index(drop=True)
    columns = ["subject_id", "study_day", "days", "period", "cramp_count", "intensity",
               "location"]
    pd.testing.assert_frame_equal(got.tables["diary"][columns], diary[columns], check_exact=True)
    for name in ("subjects", "adverse_events"):
        canonical = [c for c in CANONICAL[name] if c != "trial_id"]
        pd.testing.assert_frame_equal(got.tables[name][canonical], want.tables[name][canonical],
                                      check_exact=True)


def test_example_export_regenerates_byte_identically(tmp_path):
    here = DATA / "example_export"
    (tmp_path / "example").symlink_to(EXAMPLE)
    copy = tmp_path / "example_export"
    copy.mkdir()
    (copy / "make_export.py").write_bytes((here / "make_export.py").read_bytes())
    runpy.run_path(str(copy / "make_export.py"), run_name="__main__")
    written = sorted(p.name for p in copy.glob("*.csv"))
    assert written == sorted(p.name for p in here.glob("*.csv"))
    for name in written:
        assert (copy / name).read_bytes() == (here / name).read_bytes(), name
