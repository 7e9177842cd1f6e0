"""Regenerate data/example_export (a non-canonical export) from the bundled example trial.

Run from the repository root: ``.venv/bin/python data/example_export/make_export.py``. Reads
``data/example`` and rewrites, byte for byte the same every time:

``dm.csv``
    one row per subject: USUBJID, SITEID, ARM (labels such as ``Vitamin B complex``), RANDDT
    (randomisation date = study day 1), AGE, SEX, ETIOLOGY, CRORIGIN, WDRLDT (date of the last
    day on study of withdrawn subjects).
``cramp_events_site01.csv``, ``cramp_events_site02.csv``
    one row per cramp: USUBJID, CRDTC (ISO date and time), CRSEV (intensity 0-100 = 10 x the 0-10
    rating), CRLOC; one file per site.
``diary_completion.csv``
    one row per scheduled diary day: USUBJID, DIARYDT, DIARYCMP (``Y`` completed, ``N`` not).
``ae.csv``
    one row per adverse event: USUBJID, AETERM, AEDECOD (MedDRA preferred term), AESER (Y/N),
    AESTDTC.

A diary day with ``cramp_count`` k becomes k events (each rated with the day's intensity, at the
day's location); a day with count 0 is a completed day without events; a day without a count is
``DIARYCMP = N``. Study day d of a subject is the date RANDDT + d - 1, so run-in day 0 is the day
before randomisation. ``config/example_export.yaml`` maps these files back onto the contract.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd

HERE = Path(__file__).resolve().parent
SOURCE = HERE.parent / "example"
#: Randomisation date of the first subject; each next subject is randomised two days later.
FIRST_RANDOMISATION = dt.date(2024, 1, 8)
ARM_LABELS = {"placebo": "Placebo", "mexiletine": "Mexiletine", "quinine": "Quinine",
              "vitamin_b_complex": "Vitamin B complex", "magnesium": "Magnesium"}


def _date(randomised: dt.date, day: int) -> dt.date:
    return randomised + dt.timedelta(days=day - 1)


def _write(frame: pd.DataFrame, name: str) -> None:
    frame.to_csv(HERE / name, index=False, lineterminator="\n")


def main() -> None:
    """Write the export files beside this script."""
    subjects = pd.read_csv(SOURCE / "subjects.csv", dtype=str, keep_default_na=False)
    diary = pd.read_csv(SOURCE / "diary.csv", dtype=str, keep_default_na=False)
    events = pd.read_csv(SOURCE / "adverse_events.csv", dtype=str, keep_default_na=False)

    randomised = {sid: FIRST_RANDOMISATION + dt.timedelta(days=2 * i)
                  for i, sid in enumerate(subjects["subject_id"])}
    site = {sid: "01" if i % 3 else "02" for i, sid in enumerate(subjects["subject_id"])}

    withdrawal = [
        _date(randomised[sid], int(day)).isoformat() if day else ""
        for sid, day in zip(subjects["subject_id"], subjects["withdrawal_day"], strict=True)
    ]
    _write(pd.DataFrame({
        "USUBJID": subjects["subject_id"],
        "SITEID": subjects["subject_id"].map(site),
        "ARM": subjects["arm"].map(ARM_LABELS),
        "RANDDT": [randomised[s].isoformat() for s in subjects["subject_id"]],
        "AGE": subjects["age"],
        "SEX": subjects["sex"],
        "ETIOLOGY": subjects["etiology"],
        "CRORIGIN": subjects["cramp_origin"],
        "WDRLDT": withdrawal,
    }), "dm.csv")

    completion, cramps = [], []
    for rec in diary.itertuples(index=False):
        day = _date(randomised[rec.subject_id], int(rec.study_day))
        completion.append((rec.subject_id, day.isoformat(), "Y" if rec.cramp_count else "N"))
        for j in range(int(rec.cramp_count or 0)):
            hour, minute = (1 + 3 * j) % 24, (17 * j + int(rec.study_day)) % 60
            severity = round(float(rec.intensity) * 10)
            cramps.append((rec.subject_id, f"{day.isoformat()}T{hour:02d}:{minute:02d}",
                           str(severity), rec.location))
    _write(pd.DataFrame(completion, columns=["USUBJID", "DIARYDT", "DIARYCMP"]),
           "diary_completion.csv")
    cramps_frame = pd.DataFrame(cramps, columns=["USUBJID", "CRDTC", "CRSEV", "CRLOC"])
    for code in ("01", "02"):
        _write(cramps_frame.loc[cramps_frame["USUBJID"].map(site) == code],
               f"cramp_events_site{code}.csv")

    _write(pd.DataFrame({
        "USUBJID": events["subject_id"],
        "AETERM": events["term"].str.lower(),
        "AEDECOD": events["term"],
        "AESER": events["serious"].map({"true": "Y", "false": "N"}),
        "AESTDTC": [_date(randomised[s], int(d)).isoformat()
                    for s, d in zip(events["subject_id"], events["study_day"], strict=True)],
    }), "ae.csv")


if __name__ == "__main__":
    main()
