"""`crampstats init`: a starter config that validates without hand edits; what it cannot tell."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import pytest
import yaml
from helpers import DATA, EXAMPLE, ROOT, small_trial, write_csv

from crampstats.catalogue import plan_folder
from crampstats.cli import main
from crampstats.config import check, load_trial_config
from crampstats.validate import validate
from crampstats.validate.contract import CANONICAL
from crampstats.validate.init import (
    date_format_of,
    guess_config,
    init_config,
    read_folder,
    render,
)

START = dt.date(2024, 3, 1)


def _init(capsys, data: Path, out: Path) -> str:
    assert main(["init", str(data), "--out", str(out)]) == 0
    return capsys.readouterr().out


def _validates(capsys, data: Path, config: Path) -> None:
    code = main(["validate", str(data), "--config", str(config)])
    captured = capsys.readouterr()
    assert code == 0, captured.err


@pytest.mark.parametrize("trial", ["example_adam", "example_export"])
def test_init_then_validate_and_plan_without_edits(tmp_path, capsys, trial):
    data = DATA / trial
    config = tmp_path / "trial.yaml"
    printed = _init(capsys, data, config)
    assert f"next: crampstats validate {data} --config {config}" in printed
    _validates(capsys, data, config)
    plan = plan_folder(data, load_trial_config(config))
    assert plan.models, "nothing planned"


def test_init_on_adam_guesses_the_shipped_mapping(tmp_path):
    data = DATA / "example_adam"
    guess = init_config(data, tmp_path / "trial.yaml")
    shipped = validate(data, load_trial_config(ROOT / "config" / "adam.yaml"))
    guessed = validate(data, load_trial_config(tmp_path / "trial.yaml"))
    assert guessed.ok and not guess.undecided, guess.undecided
    for name, table in shipped.tables.items():  # extra columns (STUDYID) are kept, not dropped
        canonical = list(CANONICAL[name])
        pd.testing.assert_frame_equal(guessed.tables[name][canonical], table[canonical],
                                      check_exact=True)
    assert guess.config["tables"]["diary"]["filter"] == {"PARAMCD": "CRAMPS"}


def test_init_on_the_export_counts_events_from_dates(tmp_path):
    guess = init_config(DATA / "example_export", tmp_path / "trial.yaml")
    diary = guess.config["tables"]["diary"]
    assert diary["file"] == "cramp_events_site*"
    assert diary["dates"] == {"study_day": "CRDTC"}
    assert diary["rescale"] == {"intensity": {"from": [0, 100]}}
    assert diary["events"]["completion"] == {"file": "diary_completion",
                                             "dates": {"study_day": "DIARYDT"},
                                             "filter": {"DIARYCMP": "Y"}}
    assert guess.config["tables"]["subjects"]["reference_date"] == "RANDDT"
    assert guess.config["tables"]["adverse_events"]["categories"] == {"from_term": "meddra"}
    assert guess.config["control_arm"] == "Placebo"
    assert not guess.undecided, guess.undecided


def test_init_on_the_canonical_example_writes_a_near_empty_config(tmp_path, capsys):
    config = tmp_path / "trial.yaml"
    printed = _init(capsys, EXAMPLE, config)
    written = yaml.safe_load(config.read_text())
    assert written == {"trial_id": "example", "design": "parallel", "control_arm": "placebo",
                       "arms": ["magnesium", "mexiletine", "placebo", "quinine",
                                "vitamin_b_complex"]}
    assert "could not decide" not in printed
    _validates(capsys, EXAMPLE, config)


def test_the_written_yaml_is_the_guess_with_comments(tmp_path):
    files, notes = read_folder(DATA / "example_export")
    guess = guess_config(files, "example_export")
    text = render(guess, "data/example_export", "trial.yaml")
    assert yaml.safe_load(text) == guess.config
    assert check(guess.config, "trial")
    assert "rescale:  # CRSEV reaches 100: assumed a 0-100 scale" in text
    assert not notes


def _sdtm(folder: Path) -> Path:
    """The small trial as SDTM-like domains: DM, a long QS diary with dates, AE."""
    frames = small_trial()
    subjects, diary, ae = frames["subjects"], frames["diary"], frames["adverse_events"]
    ref = {s: START + dt.timedelta(days=5 * i) for i, s in enumerate(subjects["subject_id"])}

    def dtc(s: str, day: str) -> str:
        return (ref[s] + dt.timedelta(days=int(day) - 1)).isoformat()

    def cdisc_day(day: str) -> int:  # CDISC --DY has no day 0
        return int(day) if int(day) >= 1 else int(day) - 1

    folder.mkdir()
    pd.DataFrame({"STUDYID": "T1", "USUBJID": subjects["subject_id"],
                  "ARM": subjects["arm"].str.title(), "ACTARM": subjects["arm"].str.title(),
                  "RFSTDTC": [ref[s].isoformat() for s in subjects["subject_id"]],
                  "AGE": subjects["age"], "SEX": subjects["sex"]}).to_csv(folder / "dm.csv",
                                                                           index=False)
    rows = []
    for rec in diary.itertuples(index=False):
        base = {"USUBJID": rec.subject_id, "QSDTC": dtc(rec.subject_id, rec.study_day),
                "QSDY": cdisc_day(rec.study_day)}
        rows.append({**base, "QSTESTCD": "CRAMPCNT", "QSSTRESN": rec.cramp_count})
        if rec.intensity:
            rows.append({**base, "QSTESTCD": "CRINTENS", "QSSTRESN": rec.intensity})
    pd.DataFrame(rows).to_csv(folder / "qs.csv", index=False)
    pd.DataFrame({"USUBJID": ae["subject_id"], "AETERM": ae["term"].str.upper(),
                  "AEDECOD": ae["term"], "AESER": ae["serious"].map({"false": "N", "Y": "Y"}),
                  "AESTDTC": [dtc(s, d) for s, d in zip(ae["subject_id"], ae["study_day"],
                                                        strict=True)],
                  "AESTDY": [cdisc_day(d) for d in ae["study_day"]]}).to_csv(folder / "ae.csv",
                                                                              index=False)
    return folder


def test_init_on_sdtm_like_domains_counts_days_from_dates(tmp_path, capsys):
    data = _sdtm(tmp_path / "sdtm")
    config = tmp_path / "trial.yaml"
    printed = _init(capsys, data, config)
    written = yaml.safe_load(config.read_text())
    diary = written["tables"]["diary"]
    assert diary["filter"] == {"QSTESTCD": "CRAMPCNT"}
    assert diary["dates"] == {"study_day": "QSDTC"}  # not QSDY: CDISC days skip day 0
    assert diary["params"]["intensity"] == {"filter": {"QSTESTCD": "CRINTENS"},
                                            "value": "QSSTRESN"}
    assert written["tables"]["subjects"]["reference_date"] == "RFSTDTC"
    assert written["tables"]["subjects"]["columns"]["arm"] == "ARM"
    assert written["control_arm"] == "Placebo"
    assert "could not decide" not in printed
    got = validate(data, load_trial_config(config))
    assert got.ok, [str(p) for p in got.problems]
    want = validate(write_csv(small_trial(), tmp_path / "canonical"),
                    check({"design": "parallel"}, "trial"))
    for name, columns in (("diary", ["subject_id", "study_day", "cramp_count", "intensity"]),
                          ("adverse_events", list(CANONICAL["adverse_events"]))):
        pd.testing.assert_frame_equal(got.tables[name][columns], want.tables[name][columns])


def test_init_notes_cdisc_study_days_without_day_0(tmp_path):
    data = _sdtm(tmp_path / "sdtm")
    for name in ("qs.csv", "ae.csv"):  # no dates: only the --DY study days are left
        frame = pd.read_csv(data / name, dtype=str)
        frame.drop(columns=[c for c in frame.columns if c.endswith("DTC")]).to_csv(data / name,
                                                                                  index=False)
    guess = init_config(data, tmp_path / "trial.yaml")
    assert guess.config["tables"]["diary"]["columns"]["study_day"] == "QSDY"
    assert any("QSDY has run-in days but no day 0" in u for u in guess.undecided), guess.undecided
    assert "reference_date" not in guess.config["tables"]["subjects"]
    assert validate(data, load_trial_config(tmp_path / "trial.yaml")).ok


def test_init_says_what_it_could_not_decide(tmp_path, capsys):
    data = tmp_path / "wide"
    data.mkdir()
    pd.DataFrame({"patient": ["P1", "P2", "P3"], "group": ["A", "B", "A"]}).to_csv(
        data / "patients.csv", index=False)
    wide = pd.DataFrame({"patient": ["P1", "P2", "P3"]})
    for day in range(1, 8):
        wide[f"cramps_day{day}"] = [day % 3, (day + 1) % 2, ""]
    wide.to_csv(data / "cramp_diary.csv", index=False)
    config = tmp_path / "trial.yaml"
    printed = _init(capsys, data, config)
    assert "could not tell the control arm: arms A, B; set control_arm" in printed
    assert "check tables.diary.wide.start" in printed
    written = yaml.safe_load(config.read_text())
    assert written["tables"]["diary"]["wide"] == {"columns": {"cramp_count": "cramps_day{n}"},
                                                  "unit": "day", "start": 1}
    assert "control_arm" not in written
    assert "could not tell the control arm" in config.read_text()  # listed in the file too
    code = main(["validate", str(data), "--config", str(config)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "no control arm: placebo" in captured.out  # what remains to be set


def test_init_events_with_no_cramp_rows_and_a_day_month_date_format(tmp_path, capsys):
    frames = small_trial()
    diary = frames["diary"]
    ref = {s: START + dt.timedelta(days=3 * i) for i, s in enumerate(frames["subjects"]
                                                                    ["subject_id"])}
    data = tmp_path / "epro"
    data.mkdir()
    subjects = frames["subjects"][["subject_id", "arm"]].assign(
        randomisation_date=[ref[s].strftime("%d/%m/%Y") for s in frames["subjects"]
                            ["subject_id"]])
    subjects.to_csv(data / "subjects.csv", index=False)
    rows = []
    for rec in diary.itertuples(index=False):
        date = (ref[rec.subject_id] + dt.timedelta(days=int(rec.study_day) - 1)).strftime(
            "%d/%m/%Y")
        count = int(rec.cramp_count)
        rows += [{"subject_id": rec.subject_id, "date": date, "cramp": "yes",
                  "intensity": rec.intensity}] * count
        if not count:
            rows.append({"subject_id": rec.subject_id, "date": date, "cramp": "no",
                         "intensity": ""})
    pd.DataFrame(rows).to_csv(data / "cramp_events.csv", index=False)
    guess = init_config(data, tmp_path / "trial.yaml")
    diary_map = guess.config["tables"]["diary"]
    assert diary_map["filter"] == {"cramp": "yes"}
    assert diary_map["events"] == {"completion": {}}
    assert diary_map["date_format"] == "%d/%m/%Y"
    assert not guess.undecided, guess.undecided  # 14/03/2024 cannot be month/day
    got = validate(data, load_trial_config(tmp_path / "trial.yaml"))
    assert got.ok, [str(p) for p in got.problems]
    counts = got.tables["diary"].set_index(["subject_id", "study_day"])["cramp_count"]
    want = diary.assign(study_day=diary["study_day"].astype(int),
                        cramp_count=diary["cramp_count"].astype(int))
    assert counts.to_dict() == want.set_index(["subject_id", "study_day"])[
        "cramp_count"].to_dict()


def test_init_refuses_to_overwrite_and_needs_a_folder(tmp_path, capsys):
    config = tmp_path / "trial.yaml"
    config.write_text("keep: me\n")
    assert main(["init", str(EXAMPLE), "--out", str(config)]) == 1
    assert "exists; choose another --out or pass --force" in capsys.readouterr().err
    assert config.read_text() == "keep: me\n"
    assert main(["init", str(EXAMPLE), "--out", str(config), "--force"]) == 0
    assert main(["init", str(tmp_path / "nowhere"), "--out", str(tmp_path / "x.yaml")]) == 1
    assert "no such folder" in capsys.readouterr().err


def test_date_formats_are_told_apart():
    iso, fmt, ambiguous = date_format_of(pd.Series(["2024-03-01", "2024-03-02T08:00", ""]))
    assert (iso, fmt, ambiguous) == (True, None, False)
    assert date_format_of(pd.Series(["01/02/2024", "03/04/2024"])) == (True, "%d/%m/%Y", True)
    assert date_format_of(pd.Series(["02/13/2024"])) == (True, "%m/%d/%Y", False)
    assert date_format_of(pd.Series(["01MAR2024", "15APR2024"])) == (True, "%d%b%Y", False)
    assert date_format_of(pd.Series(["3", "4.5"]))[0] is False
