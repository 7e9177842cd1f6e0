"""What every section builder of the report shares: the context, table rows, cell text.

Kept apart from :mod:`.build` (the main sections) and :mod:`.secondary` (the secondary endpoints'
sections) so that both use it without importing each other.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pandas as pd

from crampstats.report import text
from crampstats.report.load import Results
from crampstats.report.text import num

#: Rows shown of a long table (the full table is in ``tables/``).
MAX_ROWS = 200
#: Validation warnings listed one by one.
MAX_WARNINGS = 100

Column = tuple[str, str, Callable[[Any], str]]


def cell_text(x: Any) -> str:
    """Return a cell as text, with the report's mark for a missing value."""
    return text.MISSING if text.is_missing(x) else str(x)


def digits_of(digits: int) -> Callable[[Any], str]:
    """Return a formatter of numbers with ``digits`` significant digits."""
    return lambda x: num(x, digits)


def table(
    df: pd.DataFrame,
    columns: Sequence[Column],
    *,
    source: str | None = None,
    max_rows: int = MAX_ROWS,
    row_class: Callable[[Mapping[str, Any]], str] | None = None,
) -> dict[str, Any]:
    """Turn a data frame into rows of formatted strings for the table macro.

    Parameters
    ----------
    df
        The data.
    columns
        ``(column, header, formatter)`` triples; ``formatter`` turns a cell into text.
    source
        File holding the full table, named in the truncation note.
    max_rows
        Rows shown; the note says how many were left out.
    row_class
        Optional CSS class of each row (e.g. ``failed``).

    Returns
    -------
    dict
        ``headers``, ``rows`` (lists of ``cells`` and a ``cls``), ``numeric`` (right-aligned
        columns) and ``note`` (``None`` unless truncated).
    """
    shown = df.head(max_rows)
    rows = []
    for record in shown.to_dict("records"):
        rows.append(
            {
                "cells": [fmt(record.get(col)) for col, _, fmt in columns],
                "cls": row_class(record) if row_class else "",
            }
        )
    numeric = [
        col in df.columns and pd.api.types.is_numeric_dtype(df[col]) and fmt is not cell_text
        for col, _, fmt in columns
    ]
    note = None
    if len(df) > max_rows:
        where = f"; the full table is {source}" if source else ""
        note = f"Showing the first {max_rows:,} of {len(df):,} rows{where}."
    return {"headers": [h for _, h, _ in columns], "rows": rows, "numeric": numeric, "note": note}


class ReportContext:
    """Settings shared by the section builders (from the run's resolved config)."""

    def __init__(self, results: Results) -> None:
        self.results = results
        self.config = results.config
        analysis = self.config.get("analysis") or {}
        self.analysis = analysis
        self.level = float(analysis.get("level", 0.95))
        self.threshold = float(analysis.get("threshold", 0.75))
        self.control = str(self.config.get("control_arm", "placebo"))
        self.design = str(self.config.get("design") or results.validation.get("design") or "")
        self.within = self.design in ("crossover", "nof1")
        self.models = results.models
        self.primary = self.models[0] if self.models else None
        self.trial_id = str(self.config.get("trial_id") or results.path.name)
        self.tables = results.tables
        self.level_text = text.percent_level(self.level)

    def arm_order(self, present: Sequence[str]) -> list[str]:
        """Arms in report order: control, then the configured order, then any others sorted."""
        listed = [str(a) for a in self.config.get("arms") or []]
        order = [self.control, *[a for a in listed if a != self.control]]
        present = [str(a) for a in present]
        known = [a for a in order if a in present]
        return known + sorted(a for a in dict.fromkeys(present) if a not in known)

    def model_rows(self, name: str, model: str | None) -> pd.DataFrame:
        """Return the rows of table ``name`` that belong to ``model`` (none without a model)."""
        df = self.tables.get(name, pd.DataFrame())
        if not len(df) or model is None:
            return df.iloc[0:0]
        return df[df["model"].astype(str) == model].reset_index(drop=True)


def failed_row(rec: Mapping[str, Any]) -> str:
    """Return the CSS class of a table row: ``failed`` when its status is not ``ok``."""
    return "failed" if str(rec.get("status", "ok")) not in ("ok", "<NA>", "nan") else ""
