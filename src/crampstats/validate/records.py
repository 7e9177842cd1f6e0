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
        ``low_compliance``, ``no_post_baseline``, ``no_control_arm``, ``diary_after_withdrawal``,
        or from the column mapping ``unmapped_ae_terms`` (adverse-event terms the MedDRA mapping
        does not know; their category is ``other``) and ``events_without_completion`` (cramp
        events on days the completion record does not mark as diarised; counted).
    message
        One sentence.
    """

    subject: str | None
    kind: str
    message: str

    def __str__(self) -> str:
        return self.message


#: Where a value came from: (file name, 1-based row as a spreadsheet shows the file).
Origin = tuple[str, int]


@dataclass
class RawTable:
    """One table as read from its file(s), with canonical column names where mapped.

    Attributes
    ----------
    name
        Canonical table name (``subjects``, ``diary``, ``emg``, ``adverse_events``).
    path
        The file it was read from (the first, when several files make up the table).
    frame
        The records; values are as read (text for CSV, native types for Parquet and XPT) or as the
        mapping built them (study days from dates, rescaled intensities, daily counts of events).
        The index identifies records; :meth:`locate` says where each came from.
    columns
        Canonical column name -> source column name, for the columns the mapping renamed (used to
        name the column a user sees in their file).
    origin
        Record -> (file, row) it came from; a record not listed is row ``record`` of ``path``.
    value_origin
        Canonical column -> {record -> (file, row)} for values taken from another row than their
        record's (a ``params`` row, the first event of a day).
    labels
        Canonical column -> {record -> source column} when the source column differs per record
        (a wide diary's ``day_12``).
    paths
        Every file read for the table (``[path]`` when one file).
    warnings
        Warnings raised while mapping (terms without a category, events on days without a
        completed diary).
    """

    name: str
    path: Path
    frame: pd.DataFrame
    columns: dict[str, str] = field(default_factory=dict)
    origin: dict[int, Origin] = field(default_factory=dict)
    value_origin: dict[str, dict[int, Origin]] = field(default_factory=dict)
    labels: dict[str, dict[int, str]] = field(default_factory=dict)
    paths: list[Path] = field(default_factory=list)
    warnings: list[DataWarning] = field(default_factory=list)

    @property
    def file(self) -> str:
        """Return the file name(s) used in messages about the whole table."""
        return " + ".join(p.name for p in self.paths) if self.paths else self.path.name

    def column_label(self, column: str) -> str:
        """Return ``column`` as the user's file names it (``AVAL (cramp_count)`` when mapped)."""
        source = self.columns.get(column)
        return column if source is None or source == column else f"{source} ({column})"

    def locate(self, record: int, column: str) -> tuple[str, int, str]:
        """Return the file, row and column label of ``column`` in record ``record``.

        Parameters
        ----------
        record
            A label of :attr:`frame`'s index.
        column
            Canonical column name.

        Returns
        -------
        tuple
            File name, 1-based source row, and the column as the file names it.
        """
        file, row = self.value_origin.get(column, {}).get(
            record, self.origin.get(record, (self.path.name, record)))
        source = self.labels.get(column, {}).get(record)
        label = self.column_label(column) if source is None else f"{source} ({column})"
        return file, row, label


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
