"""Export layouts that the column mapping turns into canonical records.

Dates become study days, one row per cramp event becomes daily counts, wide diaries become long,
intensities on another scale are rescaled onto 0-10, and MedDRA preferred terms get the contract's
adverse-event categories. The functions work on data frames whose index identifies records and
return what went wrong as ``{record: (value, rule)}``; :mod:`crampstats.validate.ingest` turns
those into problems located in the user's files.
"""

from __future__ import annotations

import datetime as dt
import numbers
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from importlib.resources import files
from typing import Any

import numpy as np
import pandas as pd
import yaml

from crampstats.validate.records import norm_value

#: Record -> (offending value, rule).
Failures = dict[int, tuple[Any, str]]

#: The canonical intensity scale that ``rescale`` maps onto.
INTENSITY_SCALE = (0.0, 10.0)
#: Days one number of a wide diary's column stands for.
WIDE_UNITS = {"day": 1, "week": 7}
#: Category given to a term the MedDRA mapping does not know.
UNMAPPED_CATEGORY = "other"

_ISO_DATE = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})"
    r"(?:[T ]\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?(?:Z|[+-]\d{2}(?::?\d{2})?)?)?"
)


# ----------------------------------------------------------------------------------------------
# dates -> study days
# ----------------------------------------------------------------------------------------------
def date_rule(date_format: str | None) -> str:
    """Return the rule broken by a value that is not a date (names the expected format)."""
    if date_format:
        return f"is not a date in the mapping's date_format {date_format}"
    return "is not a date (expected an ISO 8601 date such as 2024-03-01, or set date_format)"


def parse_date(value: Any, date_format: str | None = None) -> dt.date | None:
    """Return the calendar date a cell holds, or ``None`` when it is empty.

    Parameters
    ----------
    value
        A date or timestamp (Parquet, XPT) or text: ISO 8601 ``YYYY-MM-DD``, optionally with a time
        (``2024-03-01T02:15``), or text in ``date_format``.
    date_format
        A :func:`datetime.datetime.strptime` format such as ``%d/%m/%Y``; ``None`` for ISO 8601.

    Returns
    -------
    datetime.date or None

    Raises
    ------
    ValueError
        If the value is not a date (a number, or text in another format, or no such day).
    """
    if isinstance(value, np.datetime64):
        value = pd.Timestamp(value)
    if isinstance(value, dt.datetime):  # pandas Timestamps are datetimes
        return None if pd.isna(value) else value.date()
    if isinstance(value, dt.date):
        return value
    text = norm_value(value)
    if text is pd.NA:
        return None
    if isinstance(value, numbers.Number):
        raise ValueError(f"{value!r} is a number")
    if date_format:
        return dt.datetime.strptime(text, date_format).date()
    match = _ISO_DATE.fullmatch(text)
    if match is None:
        raise ValueError(f"{text!r} is not ISO 8601")
    return dt.date(*(int(part) for part in match.groups()))


def parse_dates(values: pd.Series, date_format: str | None) -> tuple[pd.Series, Failures]:
    """Parse a column of dates; return the dates (``None`` when empty) and the failures."""
    out: list[dt.date | None] = []
    failures: Failures = {}
    for record, value in values.items():
        try:
            out.append(parse_date(value, date_format))
        except ValueError:
            failures[int(record)] = (value, date_rule(date_format))
            out.append(None)
    return pd.Series(out, index=values.index, dtype=object), failures


def study_day(date: dt.date, reference: dt.date) -> int:
    """Return the study day of ``date``: the reference date is day 1, the day before it day 0.

    The contract counts run-in days down from 0 (docs/data-contract.md), so unlike CDISC ``--DY``
    there is a day 0: study day = date - reference date + 1 for every date.
    """
    return (date - reference).days + 1


# ----------------------------------------------------------------------------------------------
# wide diaries -> long
# ----------------------------------------------------------------------------------------------
def wide_regex(pattern: str) -> re.Pattern[str]:
    """Return the regular expression of a wide-column pattern such as ``day_{n}`` (any case)."""
    head, tail = pattern.split("{n}")
    return re.compile(re.escape(head) + r"(-?\d+)" + re.escape(tail), re.IGNORECASE)


def wide_columns(columns: Iterable[str], pattern: str) -> tuple[dict[int, str], str | None]:
    """Return number -> column for the columns matching ``pattern``, and a clash if any.

    Parameters
    ----------
    columns
        The file's column names.
    pattern
        ``day_{n}``-style pattern: ``{n}`` stands for the (possibly negative) number.

    Returns
    -------
    tuple
        ``{n: column}`` (empty when nothing matches) and ``None``, or a sentence naming two
        columns that give the same number (``day_1`` and ``day_01``).
    """
    regex = wide_regex(pattern)
    found: dict[int, str] = {}
    for column in columns:
        match = regex.fullmatch(str(column))
        if match is None:
            continue
        number = int(match.group(1))
        if number in found:
            return found, f"columns {found[number]} and {column} both give number {number}"
        found[number] = str(column)
    return found, None


@dataclass
class Long:
    """Long records made from a wide diary.

    Attributes
    ----------
    frame
        One record per wide row and number with any value (index 0, 1, ...): the wide row's other
        columns, ``study_day``, ``days`` and the canonical value columns.
    parent
        Long record -> the wide record it came from.
    labels
        Canonical value column -> {long record -> the wide column its value came from}.
    """

    frame: pd.DataFrame
    parent: dict[int, int]
    labels: dict[str, dict[int, str]]


def wide_to_long(frame: pd.DataFrame, patterns: Mapping[str, Mapping[int, str]], unit: str,
                 start: int) -> Long:
    """Reshape a wide diary (one column per day or week) to one record per subject and number.

    Number ``n`` covers study days ``start + (n - 1) * length`` onwards (``length`` 1 for days, 7
    for weeks). A number whose cells are all empty gives no record (not diarised).

    Parameters
    ----------
    frame
        Wide records (index identifies them).
    patterns
        Canonical column -> {n: wide column} (from :func:`wide_columns`).
    unit
        ``day`` or ``week``.
    start
        Study day that number 1 starts on.

    Returns
    -------
    Long
    """
    length = WIDE_UNITS[unit]
    numbers_ = sorted(set().union(*(set(m) for m in patterns.values())))
    wide = {c for m in patterns.values() for c in m.values()}
    keep = [c for c in frame.columns if c not in wide]
    parts = []
    for number in numbers_:
        part = frame[keep].copy()
        part["study_day"] = start + (number - 1) * length
        part["days"] = length
        filled = pd.Series(False, index=frame.index)
        for canon, by_number in patterns.items():
            if number in by_number:
                values = frame[by_number[number]].astype(object)
                part[canon] = values
                filled |= _filled(values)
                part[f"\x00{canon}"] = by_number[number]
            else:
                part[canon] = pd.Series(pd.NA, index=frame.index, dtype=object)
                part[f"\x00{canon}"] = None
        part["\x00parent"] = frame.index
        part["\x00number"] = number
        parts.append(part.loc[filled.to_numpy()])
    long = pd.concat(parts) if parts else frame[keep].iloc[:0]
    order = np.lexsort((long["\x00number"].to_numpy(), long["\x00parent"].to_numpy()))
    long = long.iloc[order].reset_index(drop=True)
    parent = {int(r): int(p) for r, p in long["\x00parent"].items()}
    labels = {canon: {int(r): str(c) for r, c in long[f"\x00{canon}"].items() if c is not None}
              for canon in patterns}
    hidden = [c for c in long.columns if str(c).startswith("\x00")]
    return Long(frame=long.drop(columns=hidden), parent=parent, labels=labels)


def _filled(values: pd.Series) -> pd.Series:
    """Return True where a cell holds a value (not empty text, not missing)."""
    return pd.Series([norm_value(v) is not pd.NA for v in values], index=values.index, dtype=bool)


# ----------------------------------------------------------------------------------------------
# intensity scales
# ----------------------------------------------------------------------------------------------
def to_number(value: Any) -> float | None:
    """Return a cell as a float, ``None`` when empty; raise ValueError for text or non-finite."""
    text = norm_value(value)
    if text is pd.NA:
        return None
    number = float(text)
    if not np.isfinite(number):
        raise ValueError(f"{text!r} is not finite")
    return number


def scale_rule(scale: tuple[float, float]) -> str:
    """Return the rule broken by a value outside the declared scale ``from: [lo, hi]``."""
    lo, hi = scale
    return f"is outside the declared intensity scale {lo:g}-{hi:g} (rescale from)"


def rescale(value: float, scale: tuple[float, float]) -> float:
    """Map ``value`` linearly from ``scale`` onto the canonical 0-10 intensity scale.

    ``(value - lo) * 10 / (hi - lo)``: a whole number on a 0-100 scale such as 57 becomes
    exactly the float 5.7.
    """
    lo, hi = scale
    top = INTENSITY_SCALE[1]
    return (value - lo) * top / (hi - lo) + INTENSITY_SCALE[0]


def rescale_column(values: pd.Series, scale: tuple[float, float]) -> tuple[pd.Series, Failures]:
    """Rescale a column onto 0-10; values outside ``scale`` fail and become missing.

    Text that is not a number is left as it is, for the contract to report.
    """
    lo, hi = scale
    out: list[Any] = []
    failures: Failures = {}
    for record, value in values.items():
        try:
            number = to_number(value)
        except ValueError:
            out.append(value)
            continue
        if number is None:
            out.append(pd.NA)
        elif not lo <= number <= hi:
            failures[int(record)] = (value, scale_rule(scale))
            out.append(pd.NA)
        else:
            out.append(rescale(number, scale))
    return pd.Series(out, index=values.index, dtype=object), failures


# ----------------------------------------------------------------------------------------------
# one row per cramp event -> daily counts
# ----------------------------------------------------------------------------------------------
@dataclass
class Daily:
    """Daily diary records built from cramp events and the diary completion record.

    Attributes
    ----------
    frame
        One record per subject and diarised day (index 0, 1, ...), sorted by subject and day.
    completion
        Record -> the completion record that made the day diarised.
    first_event
        Record -> the first event of the day (days with events).
    uncompleted
        Records of days with events but no completion record.
    """

    frame: pd.DataFrame
    completion: dict[int, int]
    first_event: dict[int, int]
    uncompleted: list[int]


def _mode(values: Iterable[Any]) -> Any:
    counts = Counter(v for v in values if v is not pd.NA)
    return counts.most_common(1)[0][0] if counts else pd.NA


def daily_counts(events: pd.DataFrame, completion: pd.DataFrame,
                 carry: Iterable[str] = ()) -> Daily:
    """Aggregate one row per cramp event into one diary record per subject and day.

    A day the completion record marks as diarised counts its events (zero when it has none); a day
    with events but no completion record counts its events too (reported as ``uncompleted``); a day
    without either gets no record, so it stays missing (never zero). ``intensity`` is the mean of
    the day's rated events (missing when none is rated) and ``location`` the most frequent one
    (ties: the first in file order).

    Parameters
    ----------
    events
        ``subject_id`` (text), ``study_day`` (int), optionally ``intensity`` (float, NaN when not
        rated) and ``location`` (text or missing); one row per event, in file order.
    completion
        ``subject_id`` and ``study_day`` of the diarised days, with any other columns (period,
        treatment, extra columns), which the day's record keeps (the first row of a day wins).
    carry
        Columns of ``events`` given to days that have no completion record (e.g. ``period``).

    Returns
    -------
    Daily
    """
    key = ["subject_id", "study_day"]
    firsts = completion.loc[~completion.duplicated(key, keep="first")]
    grouped = events.assign(**{"\x00first": events.index}).groupby(key, sort=False)
    stats = pd.DataFrame({"cramp_count": grouped.size(),
                          "\x00first": grouped["\x00first"].first()})
    if "intensity" in events.columns:
        stats["intensity"] = grouped["intensity"].mean()
    if "location" in events.columns:
        stats["location"] = grouped["location"].agg(_mode)
    base = firsts.drop(columns=[c for c in stats.columns if c in firsts.columns])
    base = base.assign(**{"\x00completion": firsts.index})
    frame = base.merge(stats.reset_index(), on=key, how="outer", sort=False)
    only_events = frame["\x00completion"].isna()
    for column in carry:
        if column in events.columns:
            given = frame["\x00first"].map(events[column])
            frame[column] = (given if column not in frame.columns
                             else frame[column].astype(object).where(~only_events, given))
    frame["cramp_count"] = frame["cramp_count"].fillna(0).astype("int64")
    frame = frame.sort_values(key, kind="mergesort").reset_index(drop=True)
    completed = frame["\x00completion"]
    first = frame["\x00first"]
    daily = Daily(
        frame=frame.drop(columns=["\x00completion", "\x00first"]),
        completion={int(r): int(c) for r, c in completed.items() if pd.notna(c)},
        first_event={int(r): int(e) for r, e in first.items() if pd.notna(e)},
        uncompleted=[int(r) for r in frame.index[completed.isna().to_numpy()]],
    )
    return daily


# ----------------------------------------------------------------------------------------------
# MedDRA preferred terms -> categories
# ----------------------------------------------------------------------------------------------
@cache
def meddra_categories() -> dict[str, str]:
    """Return the shipped mapping: preferred term (case-folded) -> adverse-event category.

    Read from ``crampstats/validate/data/meddra_categories.yaml`` (category -> terms).
    """
    text = files("crampstats.validate").joinpath("data", "meddra_categories.yaml").read_text(
        encoding="utf-8")
    return {str(term).strip().casefold(): str(category)
            for category, terms in yaml.safe_load(text).items() for term in terms}


def categories_from_terms(terms: pd.Series, overrides: Mapping[str, str]
                          ) -> tuple[pd.Series, list[str]]:
    """Give each preferred term its category; unknown terms get ``other``.

    Parameters
    ----------
    terms
        Preferred terms (case and surrounding spaces ignored).
    overrides
        Term -> category, applied over the shipped mapping.

    Returns
    -------
    tuple
        Categories (``other`` for unknown and empty terms) and the unknown terms, sorted.
    """
    table = dict(meddra_categories())
    table.update({str(k).strip().casefold(): str(v) for k, v in overrides.items()})
    out: list[str] = []
    unknown: set[str] = set()
    for value in terms.astype(object):
        text = norm_value(value)
        if text is pd.NA:
            out.append(UNMAPPED_CATEGORY)
            continue
        category = table.get(text.casefold())
        if category is None:
            unknown.add(text)
            category = UNMAPPED_CATEGORY
        out.append(category)
    return pd.Series(out, index=terms.index, dtype=object), sorted(unknown, key=str.casefold)
