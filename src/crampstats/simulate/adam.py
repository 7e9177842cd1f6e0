"""Export canonical tables as CDISC ADaM-shaped SAS transport (XPT) files.

The export is what a sponsor's ADaM deliverable of a cramp trial looks like, and
``config/adam.yaml`` maps it back onto the canonical tables, so that ``export_adam`` followed by
``crampstats validate --config config/adam.yaml`` gives identical tables:

``adsl.xpt`` (ADSL, one row per subject)
    STUDYID, USUBJID, TRT01P (arm), TRTSEQP (sequence), AGE, SEX, ETIOLOGY, CRORIGIN, STRATAR,
    WDRLDY (withdrawal study day).
``adcramp.xpt`` (BDS, one row per subject, diary record and parameter)
    STUDYID, USUBJID, TRTA (treatment), ADY (study_day), ADURN (days covered), APHASE
    (period: ``RUN-IN``, ``TREATMENT``, ``WASHOUT`` or the period number), PARAMCD/PARAM
    (``CRAMPS`` number of cramps, ``INTENS`` mean intensity; INTENS rows only where a rating
    exists), AVAL, CRLOC (location, on CRAMPS rows).
``adeg.xpt`` (one row per subject and EMG visit)
    STUDYID, USUBJID, AVISIT, ADY, CTFHZ, CTFCNSR (1 = censored at the maximum frequency), ADGRADE,
    CRPOTHZ.
``adae.xpt`` (one row per event)
    STUDYID, USUBJID, AEDECOD (term), AECAT (category), AESER (``Y``/``N``), ASTDY.

Missing text is written as an empty string and missing numbers as SAS missing; integers and
booleans travel as XPT numbers (exactly representable) and are parsed back by the contract.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyreadstat

from crampstats.errors import CrampstatsError
from crampstats.outputs import atomic_dir

#: ADaM dataset -> (canonical table, label, {XPT column: (canonical column, label)}).
DATASETS: dict[str, tuple[str, str, dict[str, tuple[str, str]]]] = {
    "adsl": ("subjects", "Subject-Level Analysis Dataset", {
        "STUDYID": ("trial_id", "Study Identifier"),
        "USUBJID": ("subject_id", "Unique Subject Identifier"),
        "TRT01P": ("arm", "Planned Treatment for Period 01"),
        "TRTSEQP": ("sequence", "Planned Sequence of Treatments"),
        "AGE": ("age", "Age (years)"),
        "SEX": ("sex", "Sex"),
        "ETIOLOGY": ("etiology", "Cramp Etiology"),
        "CRORIGIN": ("cramp_origin", "Cramp Origin"),
        "STRATAR": ("stratum", "Randomization Stratum"),
        "WDRLDY": ("withdrawal_day", "Study Day of Withdrawal"),
    }),
    "adcramp": ("diary", "Cramp Diary Analysis Dataset", {
        "STUDYID": ("trial_id", "Study Identifier"),
        "USUBJID": ("subject_id", "Unique Subject Identifier"),
        "TRTA": ("treatment", "Actual Treatment"),
        "ADY": ("study_day", "Analysis Relative Day"),
        "ADURN": ("days", "Days Covered by the Record"),
        "APHASE": ("period", "Phase"),
        "PARAMCD": ("", "Parameter Code"),
        "PARAM": ("", "Parameter"),
        "AVAL": ("", "Analysis Value"),
        "CRLOC": ("location", "Cramp Location"),
    }),
    "adeg": ("emg", "EMG Cramp Threshold Analysis Dataset", {
        "STUDYID": ("trial_id", "Study Identifier"),
        "USUBJID": ("subject_id", "Unique Subject Identifier"),
        "AVISIT": ("visit", "Analysis Visit"),
        "ADY": ("study_day", "Analysis Relative Day"),
        "CTFHZ": ("ctf_hz", "Cramp Threshold Frequency (Hz)"),
        "CTFCNSR": ("ctf_censored", "CTF Censored at Maximum (1 = yes)"),
        "ADGRADE": ("afterdischarge_grade", "Afterdischarge Grade (0-4)"),
        "CRPOTHZ": ("cramp_potential_hz", "Cramp Potential Frequency (Hz)"),
    }),
    "adae": ("adverse_events", "Adverse Events Analysis Dataset", {
        "STUDYID": ("trial_id", "Study Identifier"),
        "USUBJID": ("subject_id", "Unique Subject Identifier"),
        "AEDECOD": ("term", "Dictionary-Derived Term"),
        "AECAT": ("category", "Category for Adverse Event"),
        "AESER": ("serious", "Serious Event (Y/N)"),
        "ASTDY": ("study_day", "Analysis Start Relative Day"),
    }),
}
#: BDS parameters of ``adcramp``: PARAMCD -> (canonical column, PARAM).
DIARY_PARAMS = {"CRAMPS": ("cramp_count", "Number of Cramps"),
                "INTENS": ("intensity", "Mean Cramp Intensity (0-10)")}
#: Canonical period -> APHASE (period numbers are written as they are).
PHASES = {"run-in": "RUN-IN", "treatment": "TREATMENT", "washout": "WASHOUT"}


def _text(series: pd.Series) -> pd.Series:
    return series.astype(object).where(series.notna(), "").astype(str)


def _number(series: pd.Series) -> pd.Series:
    return series.astype("Float64").astype("float64")


def _column(frame: pd.DataFrame, column: str, kind: str) -> pd.Series:
    if column not in frame.columns:
        frame = frame.assign(**{column: pd.NA})
    series = frame[column]
    if kind == "text":
        return _text(series)
    if kind == "flag":
        return _number(series.astype("boolean").astype("Float64"))
    if kind == "yn":
        return series.astype("boolean").map({True: "Y", False: "N"}).fillna("").astype(str)
    return _number(series)


_KINDS = {"AGE": "num", "WDRLDY": "num", "ADY": "num", "ADURN": "num", "AVAL": "num",
          "CTFHZ": "num", "CTFCNSR": "flag", "ADGRADE": "num", "CRPOTHZ": "num", "AESER": "yn",
          "ASTDY": "num"}


def _flat(frame: pd.DataFrame, columns: Mapping[str, tuple[str, str]],
          trial_ids: Mapping[str, str]) -> pd.DataFrame:
    frame = frame.copy()
    if "trial_id" not in frame.columns:
        frame["trial_id"] = frame["subject_id"].map(trial_ids)
    out = {}
    for xpt, (canon, _label) in columns.items():
        if canon:
            out[xpt] = _column(frame, canon, _KINDS.get(xpt, "text"))
    return pd.DataFrame(out)


def _adcramp(diary: pd.DataFrame, trial_ids: Mapping[str, str]) -> pd.DataFrame:
    diary = diary.reset_index(drop=True)
    base = _flat(diary, DATASETS["adcramp"][2], trial_ids)
    base["APHASE"] = diary["period"].map(lambda p: PHASES.get(p, p), na_action="ignore")
    base["APHASE"] = _text(base["APHASE"])
    parts = []
    for order, (code, (canon, label)) in enumerate(DIARY_PARAMS.items()):
        part = base.copy()
        part["PARAMCD"], part["PARAM"] = code, label
        part["AVAL"] = _number(diary[canon])
        part["_record"], part["_order"] = np.arange(len(part)), order
        if code != "CRAMPS":
            part = part.loc[diary[canon].notna().to_numpy()]
            part["CRLOC"] = ""
        parts.append(part)
    long = pd.concat(parts, ignore_index=True).sort_values(["_record", "_order"], kind="mergesort")
    return long[list(DATASETS["adcramp"][2])].reset_index(drop=True)


def export_adam(tables: Mapping[str, pd.DataFrame], out_dir: str | Path) -> dict[str, Path]:
    """Write canonical tables as ADaM-shaped XPT files (``adsl``, ``adcramp``, ``adeg``, ``adae``).

    Read them back with ``crampstats validate OUT_DIR --config config/adam.yaml``. Extra
    (non-canonical) columns are not exported. The folder is written atomically.

    Parameters
    ----------
    tables
        Validated canonical tables (``subjects`` and ``diary`` required; ``emg`` and
        ``adverse_events`` exported when present).
    out_dir
        Target folder (replaced as a whole).

    Returns
    -------
    dict
        Dataset name -> path written (paths inside ``out_dir``).
    """
    subjects = tables["subjects"]
    trial_ids = dict(zip(subjects["subject_id"], subjects["trial_id"], strict=True))
    frames: dict[str, pd.DataFrame] = {
        "adsl": _flat(subjects, DATASETS["adsl"][2], trial_ids),
        "adcramp": _adcramp(tables["diary"], trial_ids),
    }
    for name in ("adeg", "adae"):
        canon = DATASETS[name][0]
        if canon in tables:
            frames[name] = _flat(tables[canon], DATASETS[name][2], trial_ids)
    out_dir = Path(out_dir)
    written: dict[str, Path] = {}
    with atomic_dir(out_dir) as tmp:
        for name, frame in frames.items():
            _check_xpt(name, frame)
            _canon, label, columns = DATASETS[name]
            pyreadstat.write_xport(
                frame, str(tmp / f"{name}.xpt"), file_label=label, table_name=name.upper(),
                column_labels=[columns[c][1] for c in frame.columns], file_format_version=5,
            )
            written[name] = out_dir / f"{name}.xpt"
    return written


def _check_xpt(name: str, frame: pd.DataFrame) -> None:
    """Refuse what XPT version 5 cannot hold (names > 8 characters, text > 200 characters)."""
    for column in frame.columns:
        if len(column) > 8:
            raise CrampstatsError(f"{name}.xpt: column name {column} is longer than 8 characters")
        if frame[column].dtype == object or pd.api.types.is_string_dtype(frame[column]):
            longest = int(frame[column].astype(str).str.len().max()) if len(frame) else 0
            if longest > 200:
                raise CrampstatsError(f"{name}.xpt: column {column} has text longer than 200 "
                                      "characters, which XPT cannot hold")


def adam_mapping() -> dict[str, Any]:
    """Return the ``tables`` mapping reading an :func:`export_adam` folder (``config/adam.yaml``).

    Returns
    -------
    dict
        Canonical table -> ``file``, ``filter``, ``columns``, ``values``, ``params`` and
        ``extra_columns: drop``.
    """
    tables: dict[str, Any] = {}
    for name, (canon, _label, columns) in DATASETS.items():
        mapping: dict[str, Any] = {
            "file": name,
            "columns": {c: x for x, (c, _) in columns.items() if c and c != "trial_id"},
            "extra_columns": "drop",
        }
        if canon == "subjects":
            mapping["columns"]["trial_id"] = "STUDYID"
        if canon == "diary":
            mapping["filter"] = {"PARAMCD": "CRAMPS"}
            mapping["columns"]["cramp_count"] = "AVAL"
            mapping["values"] = {"period": {v: k for k, v in PHASES.items()}}
            mapping["params"] = {"intensity": {"filter": {"PARAMCD": "INTENS"}, "value": "AVAL"}}
        tables[canon] = mapping
    return tables
