"""The records validation passes between its steps: raw tables as read, problems, warnings.

Kept apart from reading (:mod:`.ingest`) and checking (:mod:`.contract`) so that both can use them
without importing each other.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd


@dataclass
class Problem:
    """One reason to refuse the data.

    Attributes
    ----------
    file
        File name (or folder, or ``stem.*`` for a missing table).
    row
        1-based row as a spreadsheet shows the file (CSV header = row 1), or ``None``.
    column
        Column as named in the file (``AVAL (cramp_count)`` when mapped), or ``None``.
    value
        The offending value, or ``None``.
    rule
        What is wrong, in words.
    """

    file: str
    row: int | None
    column: str | None
    value: object
    rule: str

    def __str__(self) -> str:
        where = self.file
        if self.row is not None:
            where += f" row {self.row}"
        if self.column is not None:
            where += f", column {self.column}"
        if self.row is None or self.value is None:
            return f"{where}: {self.rule}"
        shown = f'"{self.value}"' if isinstance(self.value, str) else str(self.value)
        return f"{where}: {shown} {self.rule}"


@dataclass
class DataWarning:
    """A warning about valid data (recorded in ``validation.json`` and shown in the report).

    Attributes
    ----------
    subject
        The subject concerned, or ``None`` for trial-level warnings.
    kind
        ``low_compliance``, ``no_post_baseline``, ``no_control_arm`` or ``diary_after_withdrawal``.
    message
        One sentence.
    """

    subject: str | None
    kind: str
    message: str

    def __str__(self) -> str:
        return self.message


@dataclass
class RawTable:
    """One table as read from its file, with canonical column names where mapped.

    Attributes
    ----------
    name
        Canonical table name (``subjects``, ``diary``, ``emg``, ``adverse_events``).
    path
        The file it was read from.
    frame
        The records; the index is the 1-based row of each record in the source file, values are as
        read (text for CSV, native types for Parquet and XPT).
    columns
        Canonical column name -> source column name, for the columns the mapping renamed (used to
        name the column a user sees in their file).
    """

    name: str
    path: Path
    frame: pd.DataFrame
    columns: dict[str, str] = field(default_factory=dict)
    value_rows: dict[str, dict[int, int]] = field(default_factory=dict)

    def source_row(self, row: int, column: str) -> int:
        """Return the source row holding ``column`` of record ``row`` (a params row if pivoted)."""
        return self.value_rows.get(column, {}).get(row, row)

    @property
    def file(self) -> str:
        """Return the file name used in messages."""
        return self.path.name

    def column_label(self, column: str) -> str:
        """Return ``column`` as the user's file names it (``AVAL (cramp_count)`` when mapped)."""
        source = self.columns.get(column)
        return column if source is None or source == column else f"{source} ({column})"


def norm_value(value: Any) -> Any:
    """Return a value as stripped text for comparison and parsing, or ``pd.NA`` when missing.

    Integral floats lose their ``.0`` (an XPT ``1.0`` compares equal to a CSV ``1``), booleans
    become ``true``/``false`` and blank strings become missing.

    Parameters
    ----------
    value
        Any scalar read from a file.

    Returns
    -------
    str or pandas.NA
    """
    if value is None or value is pd.NA or value is pd.NaT:
        return pd.NA
    if isinstance(value, str):
        text = value.strip()
        return text if text else pd.NA
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, numbers.Real):
        number = float(value)
        if math.isnan(number):
            return pd.NA
        if math.isfinite(number) and number == int(number):
            return str(int(number))
        return repr(number)
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace").strip() or pd.NA
    return str(value).strip() or pd.NA


def norm_series(series: pd.Series) -> pd.Series:
    """Apply :func:`norm_value` to every element, returning an object series with the same index."""
    return pd.Series([norm_value(v) for v in series.astype(object)], index=series.index,
                     dtype=object)
