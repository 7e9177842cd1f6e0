"""The data contract (docs/data-contract.md) as code: canonical tables, dtypes, rules and warnings.

Values read by :mod:`crampstats.validate.ingest` are first parsed cell by cell into the canonical
dtypes (so a cell of text where a number is needed is reported with its row and column),
defaults are filled, and each table is then checked lazily by a pandera ``DataFrameSchema``
built for the trial (its design, its config ``arms`` and the randomised subjects, which is how
the cross-table rules are expressed). Every pandera failure case becomes a
:class:`~crampstats.validate.Problem` with a human message.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pandera.pandas as pa
from pandera.errors import SchemaErrors

from crampstats.validate.records import DataWarning, Problem, RawTable, norm_series

TABLES = ("subjects", "diary", "emg", "adverse_events", "medications")
REQUIRED_TABLES = ("subjects", "diary")
OPTIONAL_TABLES = ("emg", "adverse_events", "medications")
DESIGNS = ("parallel", "crossover", "nof1")

ETIOLOGIES = (
    "idiopathic", "nlc_elderly", "pregnancy", "cirrhosis", "haemodialysis", "als", "cmt",
    "neuropathy", "radiculopathy", "metabolic_myopathy", "other",
)
SEXES = ("F", "M", "other")
CRAMP_ORIGINS = ("neurogenic", "myogenic", "unknown")
AE_CATEGORIES = (
    "thrombocytopenia", "qt_prolongation", "cinchonism", "visual_disturbance", "gastrointestinal",
    "other",
)
#: Diary periods that are not treatment periods.
NON_TREATMENT_PERIODS = ("run-in", "washout")
PERIOD_PATTERN = r"^(run-in|treatment|washout|[1-9][0-9]*)$"

#: pandas dtype of each kind of canonical column.
DTYPES: dict[str, Any] = {
    "string": pd.StringDtype(),
    "int": pd.Int64Dtype(),
    "float": pd.Float64Dtype(),
    "bool": pd.BooleanDtype(),
}

_TRUE = frozenset({"true", "1", "yes", "y"})
_FALSE = frozenset({"false", "0", "no", "n"})


@dataclass(frozen=True)
class Spec:
    """A canonical column: its kind (``string``, ``int``, ``float``, ``bool``) and type hint."""

    kind: str
    required: bool = False
    hint: str = ""


_DAY = "study days are integers"
SPECS: dict[str, dict[str, Spec]] = {
    "subjects": {
        "subject_id": Spec("string", True),
        "trial_id": Spec("string"),
        "arm": Spec("string"),
        "sequence": Spec("string"),
        "age": Spec("float", hint="age is a number of years"),
        "sex": Spec("string"),
        "etiology": Spec("string"),
        "cramp_origin": Spec("string"),
        "stratum": Spec("string"),
        "withdrawal_day": Spec("int", hint=_DAY),
        "discontinuation_day": Spec("int", hint=_DAY),
    },
    "diary": {
        "subject_id": Spec("string", True),
        "study_day": Spec("int", True, hint=_DAY),
        "days": Spec("int", hint="days covered are integers >= 1"),
        "period": Spec("string"),
        "treatment": Spec("string"),
        "cramp_count": Spec("int", True, hint="counts are integers >= 0"),
        "intensity": Spec("float", hint="intensity is a 0-10 rating"),
        "location": Spec("string"),
    },
    "emg": {
        "subject_id": Spec("string", True),
        "visit": Spec("string", True),
        "study_day": Spec("int", hint=_DAY),
        "ctf_hz": Spec("float", hint="cramp threshold frequency in Hz"),
        "ctf_censored": Spec("bool"),
        "afterdischarge_grade": Spec("int", hint="grades are integers 0-4"),
        "cramp_potential_hz": Spec("float", hint="frequency in Hz"),
    },
    "adverse_events": {
        "subject_id": Spec("string", True),
        "term": Spec("string", True),
        "category": Spec("string", True),
        "serious": Spec("bool"),
        "study_day": Spec("int", hint=_DAY),
    },
    "medications": {
        "subject_id": Spec("string", True),
        "medication": Spec("string", True),
        "start_day": Spec("int", True, hint=_DAY),
        "end_day": Spec("int", hint=_DAY),
        "rescue": Spec("bool"),
    },
}
#: Canonical column names per table, in output order.
CANONICAL: dict[str, tuple[str, ...]] = {t: tuple(cols) for t, cols in SPECS.items()}
#: Columns the analysis datasets compute (``crampstats.derive``) and the models use internally.
DERIVED_COLUMNS: frozenset[str] = frozenset({
    "period", "treatment", "count", "exposure_days", "runin_count", "runin_days",
    "log_baseline_rate", "withdrawn", "week", "n_records", "cycle", "previous_treatment",
    "_subject", "_period",
})
#: Names an extra subjects column may not have: the canonical columns of every table and
#: :data:`DERIVED_COLUMNS` (docs/data-contract.md). Extra subject columns are carried into the
#: derived ``periods`` table, where such a name would be ambiguous.
RESERVED_SUBJECT_COLUMNS: frozenset[str] = frozenset(
    {c for cols in CANONICAL.values() for c in cols} | DERIVED_COLUMNS
)
#: Row order of every validated table (stable sort on these columns).
SORT_KEYS: dict[str, list[str]] = {
    "subjects": ["subject_id"],
    "diary": ["subject_id", "study_day"],
    "emg": ["subject_id", "visit"],
    "adverse_events": ["subject_id", "study_day", "term"],
    "medications": ["subject_id", "start_day", "medication"],
}
_UNIQUE_KEYS: dict[str, tuple[list[str], str]] = {
    "diary": (["subject_id", "study_day"],
              "is a duplicated diary record (same subject and study_day as an earlier row)"),
    "emg": (["subject_id", "visit"],
            "is a duplicated EMG assessment (same subject and visit as an earlier row)"),
}


@dataclass
class ContractResult:
    """Typed canonical tables with the problems and warnings found.

    Attributes
    ----------
    tables
        Canonical name -> typed frame (canonical columns first, then extra columns; sorted rows).
    problems
        Refusals found in the tables.
    warnings
        Warnings (only computed when there are no problems).
    design
        The design used (from config or inferred).
    design_inferred
        True when the config had no ``design``.
    compliance
        Diary compliance per subject (only computed when there are no problems).
    """

    tables: dict[str, pd.DataFrame]
    problems: list[Problem]
    warnings: list[DataWarning] = field(default_factory=list)
    design: str = "parallel"
    design_inferred: bool = False
    compliance: pd.Series | None = None


# ----------------------------------------------------------------------------------------------
# parsing text into canonical dtypes
# ----------------------------------------------------------------------------------------------
def _fmt(value: Any) -> str:
    return f'"{value}"' if isinstance(value, str) else str(value)


def _parse(series: pd.Series, spec: Spec) -> tuple[pd.Series, dict[Any, tuple[Any, str]]]:
    """Parse one column into its canonical dtype; return it and {row: (value, rule)} failures."""
    text = norm_series(series)
    failures: dict[Any, tuple[Any, str]] = {}
    dtype = DTYPES[spec.kind]
    if spec.kind == "string":
        return pd.Series(text, dtype=dtype), failures
    original = series.astype(object)
    if spec.kind == "bool":
        lower = [v.lower() if isinstance(v, str) else v for v in text]
        values: list[Any] = []
        for row, low in zip(text.index, lower, strict=True):
            if low is pd.NA:
                values.append(pd.NA)
            elif low in _TRUE:
                values.append(True)
            elif low in _FALSE:
                values.append(False)
            else:
                values.append(pd.NA)
                failures[row] = (original[row], "is not a boolean (use true/false, 1/0, yes/no or "
                                 "Y/N)")
        return pd.Series(values, index=text.index, dtype=dtype), failures
    numbers = pd.to_numeric(text, errors="coerce").astype("float64")
    out: list[Any] = []
    for row, raw, number in zip(text.index, text, numbers, strict=True):
        if raw is pd.NA:
            out.append(pd.NA)
            continue
        if math.isnan(number):
            failures[row] = (original[row], "is not a number (text where a number is needed)")
        elif not math.isfinite(number):
            failures[row] = (original[row], "is not a finite number")
        elif spec.kind == "int" and number != math.floor(number):
            failures[row] = (original[row], f"is not an integer ({spec.hint})")
        elif spec.kind == "int" and abs(number) > 2**53:
            failures[row] = (original[row], "is too large an integer")
        else:
            out.append(int(number) if spec.kind == "int" else number)
            continue
        out.append(pd.NA)
    return pd.Series(out, index=text.index, dtype=dtype), failures


def coerce_table(raw: RawTable) -> tuple[pd.DataFrame, list[Problem], set[tuple[int, str]]]:
    """Parse the canonical columns of a table into their dtypes, cell by cell.

    Parameters
    ----------
    raw
        A table as read and mapped by :mod:`crampstats.validate.ingest`.

    Returns
    -------
    tuple
        The frame (canonical columns typed, extra columns of the subjects table typed by
        :func:`type_extra_column`, other extra columns untouched, index = source rows), one
        problem per cell that cannot be parsed or extra subjects column whose name is reserved
        (:data:`RESERVED_SUBJECT_COLUMNS`), and the unparseable cells as
        ``(row, canonical column)``.
    """
    frame = raw.frame.copy()
    problems: list[Problem] = []
    cells: set[tuple[int, str]] = set()
    for column, spec in SPECS[raw.name].items():
        if column not in frame.columns:
            continue
        parsed, failures = _parse(frame[column], spec)
        frame[column] = parsed
        for row, (value, rule) in failures.items():
            problems.append(Problem(*raw.locate(int(row), column), _plain(value), rule))
            cells.add((int(row), column))
    if raw.name == "subjects":
        for column in [c for c in frame.columns if c not in SPECS["subjects"]]:
            if column in RESERVED_SUBJECT_COLUMNS:
                problems.append(Problem(raw.file, None, raw.column_label(str(column)), None, (
                    "is an extra subject column whose name is reserved (a column of another "
                    "table or of the analysis datasets); rename it")))
            else:
                frame[column] = type_extra_column(frame[column])
    return frame, problems, cells


def type_extra_column(series: pd.Series) -> pd.Series:
    """Type an extra subjects column: number when every value present parses as one, else text.

    Parameters
    ----------
    series
        The column as read (text from CSV, numbers from Parquet or XPT).

    Returns
    -------
    pandas.Series
        ``Float64`` when every non-missing value is a finite number (``27.5``, ``3``), else
        ``string`` (e.g. a site code ``S01``); blank cells are missing either way. A numerically
        coded category (sites ``1, 2, 3``) is therefore numeric: as a covariate it enters as a
        number, as a random-intercept grouping it is a category whatever its type.
    """
    text = norm_series(series)
    present = text.notna().to_numpy(dtype=bool)
    numbers = pd.to_numeric(text, errors="coerce").astype("float64")
    finite = np.isfinite(numbers.to_numpy())
    if present.any() and bool(np.all(finite[present])):
        return pd.Series(numbers.where(present), index=series.index, dtype=DTYPES["float"])
    return pd.Series(text, index=series.index, dtype=DTYPES["string"])


# ----------------------------------------------------------------------------------------------
# design and defaults
# ----------------------------------------------------------------------------------------------
def _treatment_periods(diary: pd.DataFrame | None) -> int:
    """Return the largest number of distinct numbered periods of any subject in the diary."""
    if diary is None or not {"subject_id", "period"} <= set(diary.columns):
        return 0
    numbered = diary.loc[diary["period"].str.fullmatch(r"[1-9][0-9]*").fillna(False).astype(bool)]
    if numbered.empty:
        return 0
    return int(numbered.groupby("subject_id", observed=True)["period"].nunique().max())


def infer_design(subjects: pd.DataFrame | None, diary: pd.DataFrame | None) -> str:
    """Infer the design from the data (docs/data-contract.md, Design).

    ``sequence`` present and ``arm`` absent or all missing means crossover, or N-of-1 when a subject
    has more than two treatment periods (numbered diary periods, or a sequence longer than two);
    anything else is parallel.

    Parameters
    ----------
    subjects, diary
        Typed tables (either may be ``None``).

    Returns
    -------
    str
        ``parallel``, ``crossover`` or ``nof1``.
    """
    if subjects is None or "sequence" not in subjects.columns:
        return "parallel"
    if subjects["sequence"].isna().all():
        return "parallel"
    if "arm" in subjects.columns and subjects["arm"].notna().any():
        return "parallel"
    longest = int(subjects["sequence"].str.len().max())
    return "nof1" if max(_treatment_periods(diary), longest) > 2 else "crossover"


def apply_defaults(name: str, frame: pd.DataFrame, config: Mapping[str, Any]) -> pd.DataFrame:
    """Fill documented defaults of absent columns and empty cells.

    ``trial_id`` (config ``trial_id``, else ``trial``), ``days`` (1), ``period`` (``run-in`` when
    the record ends on day <= 0, else ``treatment``), ``ctf_censored``, ``serious`` and
    ``rescue`` (false).

    Parameters
    ----------
    name
        Canonical table name.
    frame
        Typed table.
    config
        Trial configuration.

    Returns
    -------
    pandas.DataFrame
        A copy with defaults filled.
    """
    frame = frame.copy()

    def fill(column: str, value: Any) -> None:
        dtype = DTYPES[SPECS[name][column].kind]
        if column not in frame.columns:
            frame[column] = pd.Series(value, index=frame.index, dtype=dtype)
        else:
            frame[column] = frame[column].fillna(value)

    if name == "subjects":
        fill("trial_id", config.get("trial_id") or "trial")
    elif name == "diary":
        fill("days", 1)
        if "study_day" in frame.columns:
            end = frame["study_day"] + frame["days"] - 1
            derived = pd.Series(
                np.where(end.le(0).fillna(False).to_numpy(bool), "run-in", "treatment"),
                index=frame.index, dtype=DTYPES["string"],
            ).mask(frame["study_day"].isna())
            if "period" in frame.columns:
                frame["period"] = frame["period"].fillna(derived)
            else:
                frame["period"] = derived
    elif name == "emg":
        fill("ctf_censored", False)
    elif name == "adverse_events":
        fill("serious", False)
    elif name == "medications":
        fill("rescue", False)
    return frame


# ----------------------------------------------------------------------------------------------
# pandera schemas
# ----------------------------------------------------------------------------------------------
@dataclass
class Context:
    """What the per-table schemas need to know about the whole trial."""

    design: str
    arms: list[str] | None
    subject_ids: list[str] | None


def _overlap_ok(frame: pd.DataFrame) -> pd.Series:
    """Return False for diary records starting inside an earlier record of the same subject.

    Exact duplicates (same subject and ``study_day``) are left to the uniqueness rule.
    """
    ok = pd.Series(True, index=frame.index)
    if not {"subject_id", "study_day"} <= set(frame.columns):
        return ok
    days = frame["days"] if "days" in frame.columns else pd.Series(1, index=frame.index)
    d = pd.DataFrame({"subject_id": frame["subject_id"], "start": frame["study_day"],
                      "days": days.fillna(1).clip(lower=1)})
    d = d.dropna(subset=["subject_id", "start"])
    d = d.loc[~d.duplicated(["subject_id", "start"], keep="first")]
    if d.empty:
        return ok
    d = d.sort_values(["subject_id", "start"], kind="mergesort")
    start = d["start"].to_numpy("int64")
    end = start + d["days"].to_numpy("int64") - 1
    reach = pd.Series(end, index=d.index).groupby(d["subject_id"].to_numpy(), sort=False).cummax()
    previous = reach.groupby(d["subject_id"].to_numpy(), sort=False).shift()
    bad = previous.notna().to_numpy() & (start <= previous.fillna(0).to_numpy())
    ok.loc[d.index[bad]] = False
    return ok


def _treatment_given(frame: pd.DataFrame) -> pd.Series:
    """Return False for treatment-period diary records without ``treatment``."""
    ok = pd.Series(True, index=frame.index)
    if not {"period", "treatment"} <= set(frame.columns):
        return ok
    in_treatment = ~frame["period"].isin(NON_TREATMENT_PERIODS).fillna(True).astype(bool)
    in_treatment &= frame["period"].notna().to_numpy()
    return ok & ~(in_treatment & frame["treatment"].isna()).astype(bool)


def _discontinued_on_study(frame: pd.DataFrame) -> pd.Series:
    """Return False where treatment ends after the last day on study."""
    if not {"discontinuation_day", "withdrawal_day"} <= set(frame.columns):
        return pd.Series(True, index=frame.index)
    late = frame["discontinuation_day"] > frame["withdrawal_day"]
    return ~late.fillna(False).astype(bool)


def _ends_after_start(frame: pd.DataFrame) -> pd.Series:
    """Return False where a medication's ``end_day`` is before its ``start_day``."""
    if not {"start_day", "end_day"} <= set(frame.columns):
        return pd.Series(True, index=frame.index)
    early = frame["end_day"] < frame["start_day"]
    return ~early.fillna(False).astype(bool)


_OVERLAP = "overlaps an earlier record of the same subject (study_day + days covered)"
_NO_TREATMENT = "is empty in a treatment period (a crossover / N-of-1 record needs its treatment)"
_DISCONTINUED_LATE = (
    "is after withdrawal_day (treatment cannot end after the subject left the study)"
)
_ENDS_EARLY = "is before start_day (a medication cannot end before it starts)"
#: Data-frame-level checks -> the column their problems are reported in.
_FRAME_CHECK_COLUMN = {
    _OVERLAP: "study_day", _NO_TREATMENT: "treatment", _DISCONTINUED_LATE: "discontinuation_day",
    _ENDS_EARLY: "end_day",
}


def _isin(values: list[str], error: str) -> pa.Check:
    return pa.Check.isin(values, error=error)


def table_schema(name: str, ctx: Context) -> pa.DataFrameSchema:
    """Build the pandera schema of one canonical table for this trial.

    Parameters
    ----------
    name
        Canonical table name.
    ctx
        Design, configured arms and randomised subjects (for cross-table rules).

    Returns
    -------
    pandera.DataFrameSchema
    """
    crossover = ctx.design in ("crossover", "nof1")
    arms_note = f"is not in the config's arms ({', '.join(ctx.arms)})" if ctx.arms else ""

    def col(column: str, checks: list[pa.Check] | None = None, *, nullable: bool = True,
            required: bool | None = None, unique: bool = False) -> pa.Column:
        spec = SPECS[name][column]
        return pa.Column(DTYPES[spec.kind], checks=checks or [], nullable=nullable, unique=unique,
                         required=spec.required if required is None else required, coerce=False)

    subject_checks = []
    if name != "subjects" and ctx.subject_ids is not None:
        subject_checks.append(_isin(ctx.subject_ids, "is not in subjects (not randomised)"))
    subject = col("subject_id", subject_checks, nullable=False, unique=name == "subjects")
    checks: list[pa.Check] = []
    if name == "subjects":
        columns = {
            "subject_id": subject,
            "trial_id": col("trial_id", nullable=False),
            "arm": col("arm", [_isin(ctx.arms, arms_note)] if ctx.arms else None,
                       nullable=crossover, required=ctx.design == "parallel"),
            "sequence": col("sequence", nullable=not crossover, required=crossover),
            "age": col("age", [pa.Check.in_range(0, 120, include_min=False, include_max=False,
                                                 error="is outside 0 < age < 120")]),
            "sex": col("sex", [_isin(list(SEXES), "is not one of F, M, other")]),
            "etiology": col("etiology", [_isin(
                list(ETIOLOGIES), f"is not a known etiology ({', '.join(ETIOLOGIES)})")]),
            "cramp_origin": col("cramp_origin", [_isin(
                list(CRAMP_ORIGINS), "is not one of neurogenic, myogenic, unknown")]),
            "stratum": col("stratum"),
            "withdrawal_day": col("withdrawal_day", [pa.Check.ge(
                1, error="is before the first dose (withdrawal_day is the last study day on study, "
                "first dose is day 1)")]),
            "discontinuation_day": col("discontinuation_day", [pa.Check.ge(
                1, error="is before the first dose (discontinuation_day is the last study day on "
                "randomised treatment, first dose is day 1)")]),
        }
        checks.append(pa.Check(_discontinued_on_study, error=_DISCONTINUED_LATE))
    elif name == "diary":
        columns = {
            "subject_id": subject,
            "study_day": col("study_day", nullable=False),
            "days": col("days", [pa.Check.ge(1, error="is less than 1 (days covered are integers "
                                             ">= 1)")], nullable=False),
            "period": col("period", [pa.Check.str_matches(
                PERIOD_PATTERN, error="is not run-in, treatment, washout or a period number 1, 2, "
                "...")]),
            "treatment": col("treatment", [_isin(ctx.arms, arms_note)] if ctx.arms else None,
                             required=crossover),
            "cramp_count": col("cramp_count", [pa.Check.ge(0, error="is negative (counts are "
                                                           "integers >= 0)")]),
            "intensity": col("intensity", [pa.Check.in_range(0, 10, error="is outside 0-10 "
                                                             "(intensity is a 0-10 rating)")]),
            "location": col("location"),
        }
        checks.append(pa.Check(_overlap_ok, error=_OVERLAP))
        if crossover:
            checks.append(pa.Check(_treatment_given, error=_NO_TREATMENT))
    elif name == "emg":
        columns = {
            "subject_id": subject,
            "visit": col("visit", nullable=False),
            "study_day": col("study_day"),
            "ctf_hz": col("ctf_hz", [pa.Check.gt(0, error="is not positive (CTF must be > 0 Hz)")]),
            "ctf_censored": col("ctf_censored", nullable=False),
            "afterdischarge_grade": col("afterdischarge_grade", [pa.Check.in_range(
                0, 4, error="is outside 0-4 (grades are integers 0-4)")]),
            "cramp_potential_hz": col("cramp_potential_hz", [pa.Check.gt(
                0, error="is not positive (cramp-potential frequency must be > 0 Hz)")]),
        }
    elif name == "medications":
        columns = {
            "subject_id": subject,
            "medication": col("medication", nullable=False),
            "start_day": col("start_day", nullable=False),
            "end_day": col("end_day"),
            "rescue": col("rescue", nullable=False),
        }
        checks.append(pa.Check(_ends_after_start, error=_ENDS_EARLY))
    else:
        columns = {
            "subject_id": subject,
            "term": col("term", nullable=False),
            "category": col("category", nullable=False),
            "serious": col("serious", nullable=False),
            "study_day": col("study_day"),
        }
    unique = _UNIQUE_KEYS.get(name)
    return pa.DataFrameSchema(
        columns, checks=checks, strict=False, name=name,
        unique=unique[0] if unique else None, report_duplicates="exclude_first",
    )


_MISSING_COLUMN = {
    ("subjects", "arm"): "required column is missing (a parallel design needs each subject's arm)",
    ("subjects", "sequence"): "required column is missing (a crossover / N-of-1 design needs each "
                              "subject's sequence)",
    ("diary", "treatment"): "required column is missing (a crossover / N-of-1 design needs the "
                            "treatment of each record)",
}
_EMPTY_CELL = {
    ("subjects", "arm"): "is empty (a parallel design needs each subject's arm)",
    ("subjects", "sequence"): "is empty (a crossover / N-of-1 design needs each subject's "
                              "sequence)",
}


def schema_problems(raw: RawTable, frame: pd.DataFrame, schema: pa.DataFrameSchema,
                    already: set[tuple[int, str]]) -> list[Problem]:
    """Validate ``frame`` lazily and turn pandera's failure cases into problems.

    Parameters
    ----------
    raw
        The table as read (file name and source column names for messages).
    frame
        Typed table with defaults, indexed by source row.
    schema
        From :func:`table_schema`.
    already
        ``(row, column)`` cells already reported (unparseable), skipped here.

    Returns
    -------
    list of Problem
    """
    try:
        schema.validate(frame, lazy=True)
    except SchemaErrors as exc:
        cases = exc.failure_cases
    else:
        return []
    name = raw.name
    unique = _UNIQUE_KEYS.get(name)
    problems: list[Problem] = []
    seen: set[tuple[Any, ...]] = set()
    for case in cases.itertuples(index=False):
        check, column, value = str(case.check), case.column, case.failure_case
        row = None if case.index is None or _isna(case.index) else int(case.index)
        if check == "column_in_dataframe":
            column = str(value)
            rule = _MISSING_COLUMN.get((name, column), "required column is missing")
            problems.append(Problem(raw.file, None, raw.column_label(column), None, rule))
            continue
        if check == "multiple_fields_uniqueness":
            if unique is None or column != unique[0][-1]:
                continue
            rule = unique[1]
        elif check in _FRAME_CHECK_COLUMN:
            # pandera lists each non-missing cell of a failing row; report the row once
            column = _FRAME_CHECK_COLUMN[check]
            rule = check
            value = frame.at[row, column] if row is not None and column in frame.columns else None
        elif check == "not_nullable":
            rule = _EMPTY_CELL.get((name, column), "is empty (a value is required)")
        elif check == "field_uniqueness":
            rule = f"is duplicated ({column} must be unique)"
        else:
            rule = check
        if row is not None and (row, column) in already:
            continue
        if row is not None and column in frame.columns and row in frame.index:
            value = frame.at[row, column]  # the parsed value, whatever pandera's report holds
        key = (row, column, rule)
        if key in seen:
            continue
        seen.add(key)
        file, label = raw.file, raw.column_label(str(column)) if column else None
        if row is not None and column:
            file, row, label = raw.locate(row, str(column))
        problems.append(Problem(file, row, label, None if _isna(value) else _plain(value), rule))
    return problems


def _isna(value: Any) -> bool:
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def _plain(value: Any) -> Any:
    """Return numpy scalars as Python scalars (for messages and JSON)."""
    return value.item() if isinstance(value, np.generic) else value


# ----------------------------------------------------------------------------------------------
# warnings
# ----------------------------------------------------------------------------------------------
def compliance(subjects: pd.DataFrame, diary: pd.DataFrame) -> pd.DataFrame:
    """Return per-subject diary compliance.

    Compliance is diarised days (days covered by records with a ``cramp_count``) divided by the
    expected days from the trial's first diary day to its last, or to the subject's
    ``withdrawal_day``.

    Parameters
    ----------
    subjects, diary
        Validated canonical tables.

    Returns
    -------
    pandas.DataFrame
        Indexed by ``subject_id``: ``expected``, ``diarised`` and ``compliance``.
    """
    start = int(diary["study_day"].min())
    last = int((diary["study_day"] + diary["days"] - 1).max())
    ends = subjects.set_index("subject_id")["withdrawal_day"].astype("Float64")
    ends = ends.fillna(last).clip(upper=last).astype("float64")
    filled = diary.loc[diary["cramp_count"].notna()]
    rec_start = filled["study_day"].astype("float64").to_numpy()
    rec_end = rec_start + filled["days"].astype("float64").to_numpy() - 1
    subject_end = filled["subject_id"].map(ends).astype("float64").to_numpy()
    covered = np.minimum(rec_end, subject_end) - np.maximum(rec_start, start) + 1
    covered = pd.Series(np.clip(covered, 0, None), index=filled.index)
    diarised = covered.groupby(filled["subject_id"].to_numpy()).sum()
    out = pd.DataFrame({"expected": (ends - start + 1).clip(lower=1)})
    out["diarised"] = diarised.reindex(out.index).fillna(0.0)
    out["compliance"] = (out["diarised"] / out["expected"]).clip(upper=1.0)
    return out


def trial_warnings(tables: Mapping[str, pd.DataFrame], config: Mapping[str, Any],
                   design: str) -> tuple[list[DataWarning], pd.DataFrame]:
    """Return the contract's warnings and the compliance table for valid tables.

    Parameters
    ----------
    tables
        Validated canonical tables.
    config
        Trial configuration (``compliance_threshold``, ``control_arm``).
    design
        The trial design.

    Returns
    -------
    tuple
        Warnings, and the table of :func:`compliance`.
    """
    subjects, diary = tables["subjects"], tables["diary"]
    out: list[DataWarning] = []
    comp = compliance(subjects, diary)
    threshold = float(config.get("compliance_threshold", 0.8))
    for sid, rec in comp.iterrows():
        if rec["compliance"] < threshold:
            out.append(DataWarning(str(sid), "low_compliance", (
                f"subject {sid}: diary compliance {rec['compliance']:.2f} is below "
                f"{threshold:g} ({rec['diarised']:.0f} of {rec['expected']:.0f} expected days)")))
    post = diary.loc[diary["cramp_count"].notna() & ~diary["period"].isin(NON_TREATMENT_PERIODS)]
    diarised = set(post["subject_id"])
    for sid in subjects["subject_id"]:
        if sid not in diarised:
            out.append(DataWarning(str(sid), "no_post_baseline", (
                f"subject {sid}: no post-baseline (treatment-period) diary data")))
    control = str(config.get("control_arm", "placebo"))
    present = diary["treatment"] if design != "parallel" else subjects["arm"]
    if control not in set(present.dropna()):
        seen = ", ".join(sorted(set(present.dropna()))) or "none"
        out.append(DataWarning(None, "no_control_arm", (
            f"no control arm: {control} (config control_arm) is not in the data (found: {seen})")))
    withdrawal = subjects.set_index("subject_id")["withdrawal_day"]
    after = diary.loc[diary["study_day"] > diary["subject_id"].map(withdrawal).astype("Int64")]
    for sid, recs in after.groupby("subject_id", sort=True, observed=True):
        out.append(DataWarning(str(sid), "diary_after_withdrawal", (
            f"subject {sid}: {len(recs)} diary record(s) after withdrawal_day "
            f"{int(withdrawal[sid])} (first on day {int(recs['study_day'].min())})")))
    return out, comp


# ----------------------------------------------------------------------------------------------
# the whole contract
# ----------------------------------------------------------------------------------------------
def finish_table(name: str, frame: pd.DataFrame) -> pd.DataFrame:
    """Add absent canonical columns (all missing), order columns and rows, reset the index.

    Parameters
    ----------
    name
        Canonical table name.
    frame
        Typed, valid table.

    Returns
    -------
    pandas.DataFrame
        Canonical columns in contract order, then extra columns; rows sorted stably by
        :data:`SORT_KEYS`.
    """
    frame = frame.copy()
    for column, spec in SPECS[name].items():
        if column not in frame.columns:
            frame[column] = pd.Series(pd.NA, index=frame.index, dtype=DTYPES[spec.kind])
    extras = [c for c in frame.columns if c not in SPECS[name]]
    frame = frame[list(SPECS[name]) + extras]
    frame = frame.sort_values(SORT_KEYS[name], kind="mergesort", na_position="last")
    return frame.reset_index(drop=True)


def cast_canonical(name: str, frame: pd.DataFrame) -> pd.DataFrame:
    """Return ``frame`` with its canonical columns cast to their contract dtypes (no checks)."""
    frame = frame.copy()
    for column, spec in SPECS[name].items():
        if column in frame.columns:
            frame[column] = frame[column].astype(DTYPES[spec.kind])
    return frame


def check_tables(raw: Mapping[str, RawTable], config: Mapping[str, Any]) -> ContractResult:
    """Parse, default and check every table read; compute warnings when everything is valid.

    Parameters
    ----------
    raw
        Tables as read by :func:`crampstats.validate.ingest.read_trial`.
    config
        Trial configuration.

    Returns
    -------
    ContractResult
    """
    problems: list[Problem] = []
    typed: dict[str, pd.DataFrame] = {}
    bad_cells: dict[str, set[tuple[int, str]]] = {}
    for name, table in raw.items():
        frame, found, bad_cells[name] = coerce_table(table)
        problems.extend(found)
        typed[name] = frame
    design = config.get("design")
    inferred = design is None
    if inferred:
        design = infer_design(typed.get("subjects"), typed.get("diary"))
    for name in typed:
        typed[name] = apply_defaults(name, typed[name], config)
    subject_ids = None
    if "subjects" in typed and "subject_id" in typed["subjects"].columns:
        subject_ids = sorted(set(typed["subjects"]["subject_id"].dropna()))
    ctx = Context(design=design, arms=config.get("arms"), subject_ids=subject_ids)
    for name in TABLES:
        if name not in typed:
            continue
        frame = typed[name]
        canonical = frame[[c for c in frame.columns if c in SPECS[name]]]
        problems.extend(schema_problems(raw[name], canonical, table_schema(name, ctx),
                                        bad_cells[name]))
    problems = _ordered(problems)
    result = ContractResult(tables={}, problems=problems, design=design, design_inferred=inferred)
    if problems or not set(REQUIRED_TABLES) <= set(typed):
        return result
    result.tables = {name: finish_table(name, typed[name]) for name in TABLES if name in typed}
    result.warnings, result.compliance = trial_warnings(result.tables, config, design)
    return result


def _ordered(problems: list[Problem]) -> list[Problem]:
    """Sort problems by file, then file-level before rows, then row (stable otherwise)."""
    files: dict[str, int] = {}
    for p in problems:
        files.setdefault(p.file, len(files))
    key: Callable[[Problem], tuple[int, int, int]] = lambda p: (  # noqa: E731
        files[p.file], 0 if p.row is None else 1, p.row or 0)
    return sorted(problems, key=key)
