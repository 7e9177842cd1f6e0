"""``crampstats init``: a commented starter trial config guessed from the files of a data folder.

:func:`guess_config` looks at column names and values (data frames in, a :class:`Guess` out):
canonical names, ADaM-like ones (USUBJID, TRT01P, ADY, PARAMCD/AVAL, ...) and SDTM-like ones
(ARM, RFSTDTC, ``--DTC`` dates, ``--DY`` days, ``--TESTCD``/``--STRESN``, AEDECOD, ...), date
columns, one row per cramp event with a diary completion record, wide diaries, one file per site.
It guesses the design, the arms and the control arm, and lists what it could not decide.
:func:`render` writes the config as YAML with comments (plain text: PyYAML loses comments), and
:func:`init_config` reads the folder and writes the file.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from crampstats.config import check
from crampstats.errors import CrampstatsError
from crampstats.validate import layouts
from crampstats.validate.contract import AE_CATEGORIES, TABLES
from crampstats.validate.ingest import FORMATS, read_file
from crampstats.validate.records import norm_series, norm_value

SUBJECT = ("subject_id", "USUBJID", "SUBJID", "SUBJECT_ID", "SUBJECT", "PATIENT_ID", "PATIENT",
           "PATID", "PAT_ID")
#: Canonical column -> names it goes by in exports, most specific first (matched ignoring case).
NAMES: dict[str, dict[str, tuple[str, ...]]] = {
    "subjects": {
        "trial_id": ("trial_id", "STUDYID", "STUDY"),
        "arm": ("arm", "TRT01P", "ARM", "TRTP", "TRT01A", "ACTARM", "TREATMENT_ARM", "GROUP"),
        "sequence": ("sequence", "TRTSEQP", "TRTSEQA", "SEQUENCE", "SEQ"),
        "age": ("age", "AGE"),
        "sex": ("sex", "SEX", "GENDER"),
        "etiology": ("etiology", "ETIOLOGY", "AETIOLOGY"),
        "cramp_origin": ("cramp_origin", "CRORIGIN"),
        "stratum": ("stratum", "STRATAR", "STRATUM", "STRATA"),
        "withdrawal_day": ("withdrawal_day", "WDRLDY", "WDDY"),
    },
    "diary": {
        "study_day": ("study_day", "ADY", "STUDY_DAY", "STUDYDAY", "DAY"),
        "days": ("days", "ADURN", "DAYS"),
        "period": ("period", "APHASE", "APERIOD", "PERIOD", "PHASE", "EPOCH"),
        "treatment": ("treatment", "TRTA", "TREATMENT", "TRT"),
        "cramp_count": ("cramp_count", "CRAMPS", "CRAMP_COUNT", "N_CRAMPS", "NCRAMPS", "CRCNT",
                        "COUNT"),
        "intensity": ("intensity", "INTENS", "INTENSITY", "CRSEV", "SEVERITY", "SEV", "VAS",
                      "NRS"),
        "location": ("location", "CRLOC", "LOCATION", "CRAMP_LOCATION", "LOC"),
    },
    "emg": {
        "visit": ("visit", "AVISIT", "VISIT"),
        "study_day": ("study_day", "ADY", "VISITDY", "STUDY_DAY"),
        "ctf_hz": ("ctf_hz", "CTFHZ", "CTF"),
        "ctf_censored": ("ctf_censored", "CTFCNSR"),
        "afterdischarge_grade": ("afterdischarge_grade", "ADGRADE"),
        "cramp_potential_hz": ("cramp_potential_hz", "CRPOTHZ"),
    },
    "adverse_events": {
        "term": ("term", "AEDECOD", "AEPT", "PREFERRED_TERM", "AETERM"),
        "category": ("category", "AECAT"),
        "serious": ("serious", "AESER"),
        "study_day": ("study_day", "ASTDY", "AESTDY"),
    },
}
#: Source columns of each subject's reference date (study day 1), most specific first.
REFERENCE = ("RANDDT", "RANDDTC", "RANDT", "RANDOMIZATION_DATE", "RANDOMISATION_DATE",
             "RAND_DATE", "TRTSDT", "RFXSTDTC", "RFSTDTC")
WITHDRAWAL_DATE = ("WDRLDT", "WDDT", "WITHDRAWAL_DATE", "DCSDT")
#: File stems that name a table, most usual first.
STEMS = {"subjects": ("subjects", "adsl", "dm", "demographics", "patients"),
         "diary": ("diary", "adcramp"), "emg": ("emg",),
         "adverse_events": ("adverse_events", "adae", "ae")}
#: Formats tried, in order, for dates that are not ISO 8601.
DATE_FORMATS = ("%d/%m/%Y", "%m/%d/%Y", "%d.%m.%Y", "%d-%m-%Y", "%d%b%Y", "%d-%b-%Y", "%Y/%m/%d",
                "%Y%m%d")
_SDTM_DAY = re.compile(r"[A-Z]{2}(ST)?DY", re.IGNORECASE)
_DATE_NAME = re.compile(r".*(DTC|DTM|DT|DATE|DATETIME|TIMESTAMP)", re.IGNORECASE)
_TESTCD = re.compile(r"PARAMCD|[A-Z]{2}TESTCD", re.IGNORECASE)
_RESULT = re.compile(r"AVAL|[A-Z]{2}STRESN", re.IGNORECASE)
_COUNT_CODE = re.compile(r"CRAMP|CRCNT|NCR|COUNT|CNT", re.IGNORECASE)
_INTENSITY_CODE = re.compile(r"INTENS|SEV|VAS|NRS", re.IGNORECASE)
_NUMBERED = re.compile(r"(.*?[A-Za-z_ .-])(-?\d+)")
_WEEK = re.compile(r"week|wk|(^|_)w_?$", re.IGNORECASE)
_FLAG_NAME = re.compile(r"CMP|COMPL|DONE|FILLED|DIARY|ENTERED|CRAMP|EVENT|OCCUR", re.IGNORECASE)
_CRAMP_STEM = re.compile(r"cramp|event|diary|epro|(^|\s)ce($|\s)")
_CONTROL = re.compile(r"placebo|pbo|sham|vehicle|dummy|control", re.IGNORECASE)
_YES = frozenset({"y", "yes", "true", "1"})
_NO = frozenset({"n", "no", "false", "0"})
_PERIODS = {"run-in": "run-in", "runin": "run-in", "run in": "run-in", "treatment": "treatment",
            "washout": "washout", "wash-out": "washout", "wash out": "washout"}

#: Key path in the config -> comment.
Comments = dict[tuple[str, ...], str]


@dataclass
class Source:
    """The file(s) of one table: a file, or several with the same columns (one per site)."""

    spec: str | list[str]
    names: list[str]
    frame: pd.DataFrame

    @property
    def label(self) -> str:
        """Return the files as the messages name them."""
        return ", ".join(self.names)


@dataclass
class Guess:
    """A starter trial config with what was recognised and what was not.

    Attributes
    ----------
    config
        The trial config (``trial_id``, ``design``, ``arms``, ``control_arm``, ``tables``).
    comments
        Key path -> comment written beside the key.
    recognised
        One line per table: which files, in what layout.
    undecided
        What the user has to set by hand, one sentence each.
    """

    config: dict[str, Any] = field(default_factory=dict)
    comments: Comments = field(default_factory=dict)
    recognised: list[str] = field(default_factory=list)
    undecided: list[str] = field(default_factory=list)


# ----------------------------------------------------------------------------------------------
# columns and values
# ----------------------------------------------------------------------------------------------
def _col(frame: pd.DataFrame, names: Iterable[str]) -> str | None:
    """Return the first column named like one of ``names`` (in their order), ignoring case."""
    upper: dict[str, str] = {}
    for column in frame.columns:
        upper.setdefault(str(column).upper(), str(column))
    return next((upper[n.upper()] for n in names if n.upper() in upper), None)


def _values(frame: pd.DataFrame, column: str) -> list[str]:
    """Return the distinct non-empty values of a column as text, in order of appearance."""
    return list(dict.fromkeys(v for v in norm_series(frame[column]) if v is not pd.NA))


def date_format_of(values: pd.Series) -> tuple[bool, str | None, bool]:
    """Tell whether a column holds dates, and in which format.

    Parameters
    ----------
    values
        The column.

    Returns
    -------
    tuple
        Whether every non-empty value is a date, the ``date_format`` (``None`` for ISO 8601 or
        native dates), and whether that format is ambiguous (day/month or month/day).
    """
    sample = [v for v in values.astype(object) if norm_value(v) is not pd.NA][:200]
    if not sample:
        return False, None, False
    if all(_parses(v, None) for v in sample):
        return True, None, False
    fitting = [f for f in DATE_FORMATS if all(_parses(v, f) for v in sample)]
    if not fitting:
        return False, None, False
    ambiguous = fitting[0] == "%d/%m/%Y" and "%m/%d/%Y" in fitting
    return True, fitting[0], ambiguous


def _parses(value: Any, date_format: str | None) -> bool:
    try:
        return layouts.parse_date(value, date_format) is not None
    except ValueError:
        return False


def _numbers(values: Iterable[Any]) -> list[float]:
    out = []
    for value in values:
        try:
            number = layouts.to_number(value)
        except ValueError:
            continue
        if number is not None:
            out.append(number)
    return out


def _flag(frame: pd.DataFrame) -> tuple[str, str] | None:
    """Return a yes/no column with a diary-ish name and its 'yes' value, if any."""
    for column in frame.columns:
        values = _values(frame, column)
        lower = {v.lower() for v in values}
        if values and lower <= _YES | _NO and lower & _YES and _FLAG_NAME.search(str(column)):
            return str(column), next(v for v in values if v.lower() in _YES)
    return None


def _date_column(frame: pd.DataFrame, exclude: Iterable[str] = ()) -> tuple[str, str | None,
                                                                             bool] | None:
    """Return the first date column (by name, then by values), its format and ambiguity."""
    skip = {str(c) for c in exclude}
    candidates = [str(c) for c in frame.columns if str(c) not in skip]
    named = [c for c in candidates if _DATE_NAME.fullmatch(c)]
    for column in named + [c for c in candidates if c not in named]:
        is_date, fmt, ambiguous = date_format_of(frame[column])
        if is_date:
            return column, fmt, ambiguous
    return None


def _wide_groups(frame: pd.DataFrame) -> dict[str, list[str]]:
    """Return pattern -> columns for groups of three or more numbered columns (``day_1``, ...)."""
    groups: dict[tuple[str, str], list[str]] = {}
    for column in frame.columns:
        match = _NUMBERED.fullmatch(str(column))
        if match:
            groups.setdefault((match.group(1).upper(), match.group(1)), []).append(str(column))
    return {f"{head}{{n}}": cols for (_, head), cols in groups.items() if len(cols) >= 3}


# ----------------------------------------------------------------------------------------------
# files -> sources -> tables
# ----------------------------------------------------------------------------------------------
def _sources(files: Mapping[str, pd.DataFrame]) -> tuple[list[Source], list[str]]:
    """Group files with the same columns (one file per site) into sources."""
    groups: dict[tuple[str, ...], list[str]] = {}
    for name, frame in files.items():
        groups.setdefault(tuple(str(c) for c in frame.columns), []).append(name)
    stems = {Path(n).stem for n in files}
    sources: list[Source] = []
    notes: list[str] = []
    for names in groups.values():
        names = sorted(names)
        own = [Path(n).stem for n in names]
        if len(set(own)) < len(own):
            notes.append(f"{', '.join(names)}: the same table in several formats; keep one "
                         "(not mapped)")
            continue
        frame = pd.concat([files[n].astype(object) for n in names], ignore_index=True)
        if len(names) == 1:
            spec: str | list[str] = own[0]
        else:
            prefix = _common_prefix(own).rstrip("0123456789")
            glob = f"{prefix}*"
            matched = {s for s in stems if s.casefold().startswith(prefix.casefold())}
            spec = glob if len(prefix) >= 2 and matched == set(own) else own
        sources.append(Source(spec=spec, names=names, frame=frame))
    return sources, notes


def _common_prefix(words: Sequence[str]) -> str:
    """Return the longest common beginning of ``words`` (character by character)."""
    first, last = min(words), max(words)
    size = next((i for i, (a, b) in enumerate(zip(first, last, strict=False)) if a != b),
                min(len(first), len(last)))
    return first[:size]


def _kind(source: Source) -> str | None:
    """Return what a source holds: a table, ``completion``, ``events`` or ``None``."""
    frame = source.frame
    subject = _col(frame, SUBJECT)
    if subject is None:
        return None
    if _col(frame, NAMES["adverse_events"]["term"]):
        return "adverse_events"
    if _col(frame, (*NAMES["emg"]["ctf_hz"], *NAMES["emg"]["afterdischarge_grade"],
                    *NAMES["emg"]["cramp_potential_hz"])):
        return "emg"
    if _bds(frame) is not None or _col(frame, NAMES["diary"]["cramp_count"]):
        return "diary"
    if _wide_groups(frame):
        return "wide"
    ids = norm_series(frame[subject])
    if ids.notna().all() and ids.is_unique and (
            _col(frame, (*NAMES["subjects"]["arm"], *NAMES["subjects"]["sequence"], *REFERENCE))):
        return "subjects"
    has_day = _col(frame, NAMES["diary"]["study_day"]) or any(
        _SDTM_DAY.fullmatch(str(c)) for c in frame.columns)
    if not (has_day or _date_column(frame, exclude=[subject])):
        return None
    if _col(frame, (*NAMES["diary"]["intensity"], *NAMES["diary"]["location"])):
        return "events"  # ratings or locations belong to cramps, not to diary days
    stem = " ".join(Path(n).stem for n in source.names).lower()
    if "complet" in stem or "compliance" in stem or _flag(frame) is not None:
        return "completion"
    return "events" if _CRAMP_STEM.search(stem) else None  # not vital signs, labs, ...


def _bds(frame: pd.DataFrame) -> tuple[str, str, str, str | None] | None:
    """Return (code column, result column, count code, intensity code) of a long BDS file."""
    code = next((str(c) for c in frame.columns if _TESTCD.fullmatch(str(c))), None)
    result = next((str(c) for c in frame.columns if _RESULT.fullmatch(str(c))), None)
    if code is None or result is None:
        return None
    codes = _values(frame, code)
    intensity = next((c for c in codes if _INTENSITY_CODE.search(c)), None)
    count = next((c for c in codes if _COUNT_CODE.search(c) and c != intensity), None)
    if count is None:
        return None
    return code, result, count, intensity


def _pick(candidates: list[Source], table: str, undecided: list[str]) -> Source | None:
    """Choose among the sources that look like ``table`` (by file stem), noting the others."""
    if not candidates:
        return None
    order = {s: i for i, s in enumerate(STEMS.get(table, ()))}
    ranked = sorted(candidates, key=lambda s: order.get(Path(s.names[0]).stem.lower(),
                                                       len(order)))
    for other in ranked[1:]:
        undecided.append(f"{other.label} also looks like the {table} table; not mapped (name it "
                         f"in tables.{table}.file instead of {_spec_text(ranked[0].spec)} if it "
                         "is the right one)")
    return ranked[0]


def _spec_text(spec: str | list[str]) -> str:
    return spec if isinstance(spec, str) else ", ".join(spec)


# ----------------------------------------------------------------------------------------------
# one table's mapping
# ----------------------------------------------------------------------------------------------
@dataclass
class _Table:
    """A table's mapping being built, with its comments and whether it counts dates."""

    name: str
    source: Source
    mapping: dict[str, Any] = field(default_factory=dict)
    comments: Comments = field(default_factory=dict)
    uses_dates: bool = False

    def column(self, canon: str, source: str | None) -> None:
        if source is not None and source != canon:
            self.mapping.setdefault("columns", {})[canon] = source

    def comment(self, key: tuple[str, ...], text: str) -> None:
        self.comments[("tables", self.name, *key)] = text


def _canonical_columns(table: _Table, names: Mapping[str, tuple[str, ...]],
                       skip: Iterable[str] = ()) -> None:
    taken = set(skip)
    for canon, synonyms in names.items():
        if canon in taken:
            continue
        found = _col(table.source.frame, synonyms)
        if found is not None and found not in taken:
            table.column(canon, found)
            taken.add(found)


def _day_or_date(table: _Table, frame: pd.DataFrame, day_names: Sequence[str],
                 reference: bool, subject: str, undecided: list[str],
                 key: tuple[str, ...] = ()) -> tuple[str, str] | None:
    """Map ``study_day`` from a day column or a date column; return (kind, column) or None."""
    day = _col(frame, day_names) or next(
        (str(c) for c in frame.columns if _SDTM_DAY.fullmatch(str(c))), None)
    date = _date_column(frame, exclude=[subject, *([day] if day else [])])
    target = table.mapping
    for part in key:
        target = target.setdefault(part, {})
    if date is not None and (reference or day is None):
        column, fmt, ambiguous = date
        target.setdefault("dates", {})["study_day"] = column
        if fmt:
            target["date_format"] = fmt
        if ambiguous:
            undecided.append(f"{table.source.label}: the dates of {column} read as both "
                             f"day/month and month/day; assumed {fmt}: check date_format")
        table.uses_dates = True
        if day is not None:
            table.comment((*key, "dates"), f"from the dates rather than {day} (study days "
                          "counted the contract's way: the day before day 1 is day 0)")
        return "date", column
    if day is not None:
        if day != "study_day":
            target.setdefault("columns", {})["study_day"] = day
        days = _numbers(frame[day])
        if any(d < 0 for d in days) and 0 not in days:
            undecided.append(f"{table.source.label}: {day} has run-in days but no day 0 (CDISC "
                             "counting, where day -1 is the day before day 1); the contract "
                             "counts that day as day 0: map dates with "
                             "tables.subjects.reference_date instead, or accept run-in days "
                             "shifted by one")
        return "day", day
    undecided.append(f"{table.source.label}: no study day or date column found; set "
                     f"tables.{table.name}.columns.study_day (or dates.study_day)")
    return None


def _intensity_scale(table: _Table, values: Iterable[Any], column: str,
                     undecided: list[str]) -> None:
    numbers = _numbers(values)
    if not numbers:
        return
    lo, hi = min(numbers), max(numbers)
    if hi <= 10 and lo >= 0:
        if lo >= 1 and hi <= 5 and all(n == int(n) for n in numbers):
            undecided.append(f"{table.source.label}: intensity {column} holds whole numbers "
                             f"{lo:g}-{hi:g}; kept as a 0-10 rating (if it is a 1-5 scale, add "
                             "tables.diary.rescale or values)")
        return
    if lo >= 0 and hi <= 100:
        table.mapping["rescale"] = {"intensity": {"from": [0, 100]}}
        table.comment(("rescale",), f"{column} reaches {hi:g}: assumed a 0-100 scale, "
                      "rescaled onto 0-10")
        return
    undecided.append(f"{table.source.label}: intensity {column} runs {lo:g}-{hi:g}, not 0-10 "
                     "or 0-100; set tables.diary.rescale.intensity.from")


def _period_values(table: _Table, column: str, undecided: list[str]) -> None:
    recode: dict[str, str] = {}
    for value in _values(table.source.frame, column):
        key = value.strip().lower().replace("_", "-")
        number = re.fullmatch(r"(?:period|p)?\s*-?\s*(\d+)", key)
        canonical = _PERIODS.get(key) or (str(int(number.group(1))) if number else None)
        if canonical is None:
            undecided.append(f"{table.source.label}: period {value!r} of {column} is not run-in, "
                             "treatment, washout or a period number; map it in "
                             "tables.diary.values.period")
        elif canonical != value:
            recode[value] = canonical
    if recode:
        table.mapping.setdefault("values", {})["period"] = recode


def _diary(source: Source, layout: str, completion: Source | None, reference: bool,
           undecided: list[str]) -> _Table:
    table = _Table("diary", source)
    frame = source.frame
    subject = _col(frame, SUBJECT) or "subject_id"
    table.column("subject_id", subject)
    names = dict(NAMES["diary"])
    bds = _bds(frame) if layout == "bds" else None
    if bds is not None:
        code, result, count, intensity = bds
        table.mapping["filter"] = {code: count}
        table.column("cramp_count", result)
        if intensity is not None:
            table.mapping["params"] = {"intensity": {"filter": {code: intensity},
                                                     "value": result}}
            rows = norm_series(frame[code]).eq(intensity).fillna(False).astype(bool)
            _intensity_scale(table, frame.loc[rows.to_numpy(), result], result, undecided)
        table.mapping["extra_columns"] = "drop"
        table.comment(("filter",), f"a long (BDS) file: {code} = {count} rows hold the counts")
        names = {k: v for k, v in names.items() if k not in ("cramp_count", "intensity")}
    _day_or_date(table, frame, names.pop("study_day"), reference, subject, undecided)
    day_source = (table.mapping.get("dates") or table.mapping.get("columns") or {}).get(
        "study_day")
    if layout == "wide":
        groups = _wide_groups(frame)
        patterns = {}
        for pattern in groups:
            canon = "intensity" if _INTENSITY_CODE.search(pattern) else "cramp_count"
            patterns.setdefault(canon, pattern)
        unit = "week" if _WEEK.search(patterns["cramp_count" if "cramp_count" in patterns
                                               else "intensity"]) else "day"
        table.mapping["wide"] = {"columns": patterns, "unit": unit, "start": 1}
        first = next(iter(patterns.values())).replace("{n}", "1")
        table.comment(("wide", "start"), f"assumed {first} starts on study day 1 (first dose); "
                      "set the study day number 1 starts on")
        undecided.append(f"{source.label}: a wide diary; check tables.diary.wide.start (the "
                         f"study day that {first} starts on)")
        names = {}
    if layout == "events":
        names = {k: v for k, v in names.items() if k in ("intensity", "location", "period",
                                                          "treatment")}
    _canonical_columns(table, names, skip=[c for c in (subject, day_source) if c])
    period = (table.mapping.get("columns") or {}).get("period", "period")
    if period in frame.columns:
        _period_values(table, period, undecided)
    intensity = (table.mapping.get("columns") or {}).get("intensity", "intensity")
    if layout in ("long", "events") and intensity in frame.columns:
        _intensity_scale(table, frame[intensity], intensity, undecided)
    if layout == "events":
        _events(table, completion, reference, undecided)
    return table


def _events(table: _Table, completion: Source | None, reference: bool,
            undecided: list[str]) -> None:
    """Add the ``events`` part: where the completed diary days are."""
    spec: dict[str, Any] = {}
    table.mapping["events"] = {"completion": spec}
    table.comment(("events",), "one row per cramp event, counted per subject and day")
    if completion is None:
        flag = _flag(table.source.frame)
        if flag is not None:
            table.mapping["filter"] = {flag[0]: flag[1]}
            table.comment(("events", "completion"), f"every row of {table.source.label} marks "
                          f"its day diarised; the rows with {flag[0]} = {flag[1]} are cramps")
        else:
            undecided.append(f"{table.source.label}: one row per cramp event, but no diary "
                             "completion record was found; a day without events cannot be told "
                             "from a day not diarised: set tables.diary.events.completion")
            table.comment(("events", "completion"), "NOT FOUND: only days with events count "
                          "as diarised; name the completion record here")
        return
    frame = completion.frame
    spec["file"] = completion.spec
    subject = _col(frame, SUBJECT) or "subject_id"
    if subject != (table.mapping.get("columns") or {}).get("subject_id", "subject_id"):
        spec.setdefault("columns", {})["subject_id"] = subject
    sub = _Table("diary", completion)
    kind = _day_or_date(sub, frame, NAMES["diary"]["study_day"], reference, subject, undecided)
    table.uses_dates |= sub.uses_dates
    if kind is not None:
        where, column = kind
        own = {"dates" if where == "date" else "columns": {"study_day": column}}
        diary_day = (table.mapping.get("dates" if where == "date" else "columns") or {}).get(
            "study_day")
        if diary_day != column:
            for key, value in own.items():
                spec.setdefault(key, {}).update(value)
        fmt = sub.mapping.get("date_format")
        if fmt and fmt != table.mapping.get("date_format"):
            spec["date_format"] = fmt
    flag = _flag(frame)
    if flag is not None:
        spec["filter"] = {flag[0]: flag[1]}
        table.comment(("events", "completion", "filter"), "the completed diary days")


def _subjects(source: Source, dates_needed: bool, undecided: list[str]) -> _Table:
    table = _Table("subjects", source)
    frame = source.frame
    table.column("subject_id", _col(frame, SUBJECT))
    _canonical_columns(table, NAMES["subjects"])
    reference = _col(frame, REFERENCE)
    if dates_needed:
        if reference is None:
            undecided.append(f"{source.label}: no reference date (randomisation or first dose) "
                             "found for the dates of the other tables; set "
                             "tables.subjects.reference_date")
        else:
            table.mapping["reference_date"] = reference
            table.comment(("reference_date",), "study day 1 of each subject")
            fmt = date_format_of(frame[reference])[1]
            if fmt:
                table.mapping["date_format"] = fmt
            withdrawal = _col(frame, WITHDRAWAL_DATE)
            if "withdrawal_day" not in (table.mapping.get("columns") or {}) and withdrawal:
                table.mapping["dates"] = {"withdrawal_day": withdrawal}
                table.comment(("dates",), "the last day on study of withdrawn subjects")
    return table


def _simple(name: str, source: Source, reference: bool, undecided: list[str]) -> _Table:
    """EMG or adverse events: renamed columns, days or dates, AE categories."""
    table = _Table(name, source)
    frame = source.frame
    subject = _col(frame, SUBJECT) or "subject_id"
    table.column("subject_id", subject)
    names = dict(NAMES[name])
    day_names = names.pop("study_day")
    if name == "adverse_events":
        term = _col(frame, names.pop("term"))
        table.column("term", term)
        if term is not None and term.upper() == "AETERM":
            undecided.append(f"{source.label}: term is the verbatim AETERM (no AEDECOD): "
                             "categories from MedDRA preferred terms may miss many")
        category = _col(frame, names.pop("category"))
        given = _values(frame, category) if category else []
        if category and given and set(given) <= set(AE_CATEGORIES):
            table.column("category", category)
        else:
            table.mapping["categories"] = {"from_term": "meddra"}
            table.comment(("categories",), f"category from the MedDRA preferred term "
                          f"({term}); terms it does not know are warned about")
    _canonical_columns(table, names, skip=[subject])
    if _col(frame, day_names) is None and _date_column(frame, exclude=[subject]) is None:
        return table  # study_day is optional in emg and adverse_events
    _day_or_date(table, frame, day_names, reference, subject, undecided)
    return table


# ----------------------------------------------------------------------------------------------
# design, arms, control arm
# ----------------------------------------------------------------------------------------------
def _design(guess: Guess, subjects: _Table | None, diary: _Table | None) -> None:
    config, undecided = guess.config, guess.undecided
    if subjects is None:
        undecided.append("no subjects table found: set design, arms and control_arm")
        return
    frame, columns = subjects.source.frame, subjects.mapping.get("columns") or {}
    where = subjects.source.label
    arm = columns.get("arm", "arm" if "arm" in frame.columns else None)
    sequence = columns.get("sequence", "sequence" if "sequence" in frame.columns else None)
    arms = _values(frame, arm) if arm else []
    sequences = _values(frame, sequence) if sequence else []
    if arms:
        config["design"] = "parallel"
        guess.comments[("design",)] = f"one arm per subject ({arm} in {where})"
    elif sequences:
        longest = max(len(s) for s in sequences)
        config["design"] = "nof1" if longest > 2 else "crossover"
        guess.comments[("design",)] = f"treatment sequences ({sequence} in {where})"
        treatment = None
        if diary is not None:
            d_columns = diary.mapping.get("columns") or {}
            treatment = d_columns.get("treatment", "treatment")
            if treatment not in diary.source.frame.columns:
                treatment = None
        arms = _values(diary.source.frame, treatment) if diary and treatment else []
        if not arms:
            undecided.append("could not tell the treatments of the crossover: set arms")
    else:
        undecided.append(f"could not tell the design: no arm or sequence column in {where}; set "
                         "design and arms")
        return
    if not arms:
        return
    config["arms"] = sorted(arms, key=str.casefold)
    guess.comments[("arms",)] = "every arm (treatment) in the data"
    control = [a for a in arms if _CONTROL.search(a)]
    if len(control) == 1:
        config["control_arm"] = control[0]
        guess.comments[("control_arm",)] = "the placebo-like arm"
    else:
        which = "placebo-like arms" if control else "arms"
        listed = ", ".join(control or config["arms"])
        undecided.append(f"could not tell the control arm: {which} {listed}; set control_arm")


def _trial_id(subjects: _Table | None, folder: str) -> str:
    if subjects is not None:
        column = (subjects.mapping.get("columns") or {}).get("trial_id", "trial_id")
        if column in subjects.source.frame.columns:
            ids = _values(subjects.source.frame, column)
            if len(ids) == 1:
                return ids[0]
    return folder


#: Order of a table mapping's keys in the written config.
_KEY_ORDER = ("file", "filter", "reference_date", "columns", "dates", "date_format", "values",
              "params", "rescale", "wide", "events", "categories", "extra_columns")


# ----------------------------------------------------------------------------------------------
# the whole guess
# ----------------------------------------------------------------------------------------------
def guess_config(files: Mapping[str, pd.DataFrame], folder: str) -> Guess:
    """Guess a trial config from the tables of a data folder.

    Parameters
    ----------
    files
        File name (``dm.csv``) -> its records as read.
    folder
        The folder's name (the trial id when the data name none).

    Returns
    -------
    Guess
        The config (only non-canonical names are mapped, so a folder in the contract's own layout
        gives no ``tables``), comments, what was recognised and what was not decided.
    """
    guess = Guess()
    sources, guess.undecided = _sources(files)
    kinds: dict[str, list[Source]] = {}
    for source in sources:
        kind = _kind(source)
        if kind is None:
            guess.undecided.append(f"{source.label}: could not tell which table this is; not "
                                   "mapped")
        else:
            kinds.setdefault(kind, []).append(source)
    subjects_source = _pick(kinds.get("subjects", []), "subjects", guess.undecided)
    reference = subjects_source is not None and _col(subjects_source.frame, REFERENCE) is not None
    built: dict[str, _Table] = {}
    layout = "long"
    diary_source = _pick(kinds.get("diary", []) + kinds.get("wide", []), "diary",
                         guess.undecided)
    events = _pick(kinds.get("events", []), "cramp events", guess.undecided)
    completion = _pick(kinds.get("completion", []), "diary completion", guess.undecided)
    if diary_source is not None:
        layout = ("bds" if _bds(diary_source.frame) is not None else
                  "wide" if diary_source in kinds.get("wide", []) else "long")
        built["diary"] = _diary(diary_source, layout, None, reference, guess.undecided)
    elif events is not None:
        built["diary"] = _diary(events, "events", completion, reference, guess.undecided)
        layout = "events"
    else:
        guess.undecided.append("no diary found (cramp counts per day, a long BDS file, a wide "
                               "diary or one row per cramp event): set tables.diary")
    for name in ("emg", "adverse_events"):
        source = _pick(kinds.get(name, []), name, guess.undecided)
        if source is not None:
            built[name] = _simple(name, source, reference, guess.undecided)
    dates_needed = any(t.uses_dates for t in built.values())
    if subjects_source is not None:
        built["subjects"] = _subjects(subjects_source, dates_needed, guess.undecided)
    subjects = built.get("subjects")
    guess.config["trial_id"] = _trial_id(subjects, folder)
    _design(guess, subjects, built.get("diary"))
    tables: dict[str, Any] = {}
    for name in TABLES:
        table = built.get(name)
        if table is None:
            continue
        if table.source.spec != name:
            table.mapping = {"file": table.source.spec, **table.mapping}
            table.comments[("tables", name, "file")] = table.source.label
        what = {"bds": "a long BDS file", "wide": "a wide diary",
                "events": "one row per cramp event", "long": "one record per day"}
        detail = f" ({what[layout]})" if name == "diary" else ""
        if name == "diary" and layout == "events" and completion is not None:
            detail = f" (one row per cramp event; completion: {completion.label})"
        guess.recognised.append(f"{name} <- {table.source.label}{detail}")
        if table.mapping:
            tables[name] = dict(sorted(table.mapping.items(),
                                       key=lambda item: _KEY_ORDER.index(item[0])))
            guess.comments.update(table.comments)
    if tables:
        guess.config["tables"] = tables
    return guess


# ----------------------------------------------------------------------------------------------
# YAML with comments
# ----------------------------------------------------------------------------------------------
_FLOW = frozenset({"filter", "from", "arms"})


def _scalar(value: Any) -> str:
    text = yaml.safe_dump(value, default_flow_style=True, width=10**6, allow_unicode=True)
    return text.removesuffix("\n").removesuffix("\n...").strip()


def _emit(mapping: Mapping[str, Any], path: tuple[str, ...], comments: Comments,
          lines: list[str]) -> None:
    pad = "  " * len(path)
    for key, value in mapping.items():
        here = (*path, str(key))
        note = comments.get(here)
        tail = f"  # {note}" if note else ""
        if isinstance(value, dict) and value and str(key) not in _FLOW:
            lines.append(f"{pad}{_scalar(key)}:{tail}")
            _emit(value, here, comments, lines)
        else:
            lines.append(f"{pad}{_scalar(key)}: {_scalar(value)}{tail}")


def render(guess: Guess, data_dir: str, out: str) -> str:
    """Return the guessed config as commented YAML.

    Parameters
    ----------
    guess
        From :func:`guess_config`.
    data_dir, out
        The data folder and the config file (named in the header's next-step line).

    Returns
    -------
    str
        A header (what to check, the next command, the undecided items), then the config with a
        comment beside each guessed key.
    """
    lines = [
        f"# Trial config guessed by `crampstats init {data_dir}`: check every guess, then run",
        f"#   crampstats validate {data_dir} --config {out}",
        "# Keys: src/crampstats/schemas/trial.schema.yaml; mapping syntax: docs/data-contract.md,",
        '# "Mapping your export".',
    ]
    lines += ["# Recognised:", *(f"#   {line}" for line in guess.recognised)]
    if guess.undecided:
        lines.append("# Could not decide (set by hand):")
        lines += [f"#   - {item}" for item in guess.undecided]
    _emit(guess.config, (), guess.comments, lines)
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------------------------
# the folder and the file
# ----------------------------------------------------------------------------------------------
def read_folder(data_dir: Path) -> tuple[dict[str, pd.DataFrame], list[str]]:
    """Read every CSV, Parquet and XPT file of ``data_dir``.

    Returns
    -------
    tuple
        File name -> records, and one sentence per file that cannot be read or is empty.
    """
    files: dict[str, pd.DataFrame] = {}
    notes: list[str] = []
    for path in sorted(data_dir.iterdir()):
        if path.suffix.lower().lstrip(".") not in FORMATS:
            continue
        read = read_file(path)
        if isinstance(read, str):
            notes.append(f"{path.name}: {read}; not mapped")
        elif read.empty:
            notes.append(f"{path.name}: has no records; not mapped")
        else:
            files[path.name] = read
    return files, notes


def init_config(data_dir: str | Path, out: str | Path, *, force: bool = False) -> Guess:
    """Guess the trial config of a data folder and write it as commented YAML.

    Parameters
    ----------
    data_dir
        The trial's data folder.
    out
        The config file to write.
    force
        Overwrite ``out`` if it exists.

    Returns
    -------
    Guess
        What was written, recognised and left undecided.

    Raises
    ------
    CrampstatsError
        If the folder does not exist, holds no table files, or ``out`` exists (without
        ``force``).
    """
    data_dir, out = Path(data_dir), Path(out)
    if not data_dir.is_dir():
        raise CrampstatsError(f"{data_dir}: no such folder")
    if out.exists() and not force:
        raise CrampstatsError(f"{out} exists; choose another --out or pass --force")
    files, notes = read_folder(data_dir)
    if not files:
        raise CrampstatsError(f"{data_dir}: no readable CSV, Parquet or XPT file")
    guess = guess_config(files, data_dir.name)
    guess.undecided = notes + guess.undecided
    check(guess.config, "trial", "crampstats init")  # what is written must be a valid config
    out.write_text(render(guess, str(data_dir), str(out)), encoding="utf-8", newline="\n")
    return guess
