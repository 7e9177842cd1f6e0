"""Find, read and map the raw tables of a trial folder.

Each table is looked up as ``NAME.csv``, ``NAME.parquet`` or ``NAME.xpt`` (or the ``file`` stem
that the trial config's ``tables`` mapping gives), read without interpreting values (CSV is read as
text so that type errors can be reported per cell), and mapped onto canonical column names. Every
record keeps the 1-based row it had in its source file as the frame's index: for CSV the header is
row 1 and the first record is row 2; for Parquet and XPT the first record is row 1. Nothing here
raises for bad data: every failure becomes a :class:`~crampstats.validate.Problem`.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from crampstats.validate.contract import CANONICAL, REQUIRED_TABLES, TABLES
from crampstats.validate.records import Problem, RawTable, norm_series, norm_value

#: File formats accepted, in the order they are looked for.
FORMATS = ("csv", "parquet", "xpt")

_SNIFF_BYTES = 1 << 16


def _problem(path: Path | str, rule: str, row: int | None = None, column: str | None = None,
             value: Any = None) -> Problem:
    name = path.name if isinstance(path, Path) else str(path)
    return Problem(file=name, row=row, column=column, value=value, rule=rule)


def _read_csv(path: Path, data: bytes) -> pd.DataFrame | str:
    head = data[:_SNIFF_BYTES]
    if b"\x00" in head:
        return "is a binary file, not CSV text"
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        return (f"is not UTF-8 text (binary content or another encoding; byte {exc.start}); "
                "save it as UTF-8 CSV")
    if not text.strip():
        return "is empty (no header, no records)"
    try:
        records = list(csv.reader(io.StringIO(text, newline="")))
    except csv.Error as exc:
        return f"cannot be parsed as CSV ({exc})"
    header = [h.strip() for h in records[0]]
    if any(not h for h in header):
        return "cannot be parsed as CSV (the header has an empty column name)"
    duplicated = sorted({h for h in header if header.count(h) > 1})
    if duplicated:
        return f"cannot be parsed as CSV (duplicated column name {', '.join(duplicated)})"
    rows, index, ragged = [], [], []
    for number, record in enumerate(records[1:], start=2):
        if not any(field.strip() for field in record):
            continue  # blank line: skipped, but it keeps its row number
        if len(record) != len(header):
            ragged.append(f"row {number} has {len(record)} fields")
            continue
        rows.append(record)
        index.append(number)
    if ragged:
        more = f" (and {len(ragged) - 1} more such rows)" if len(ragged) > 1 else ""
        return (f"cannot be parsed as CSV: {ragged[0]} but the header has {len(header)}{more}")
    return pd.DataFrame(rows, columns=header, index=pd.Index(index, dtype="int64"), dtype=object)


def _read_parquet(path: Path) -> pd.DataFrame | str:
    try:
        frame = pd.read_parquet(path, engine="pyarrow")
    except Exception as exc:  # pyarrow raises many types for a damaged file
        return f"cannot be read as Parquet ({str(exc).strip() or type(exc).__name__})"
    named_index = any(n is not None for n in frame.index.names)
    frame = frame.reset_index(drop=not named_index)
    frame.index = pd.RangeIndex(1, 1 + len(frame))
    return frame


def _read_xpt(path: Path) -> pd.DataFrame | str:
    import pyreadstat

    try:
        frame, _meta = pyreadstat.read_xport(str(path))
    except Exception as exc:  # pyreadstat raises its own error types for a damaged file
        return f"cannot be read as SAS transport (XPT) ({str(exc).strip() or type(exc).__name__})"
    frame.index = pd.RangeIndex(1, 1 + len(frame))
    return frame


def read_file(path: Path) -> pd.DataFrame | str:
    """Read one table file without interpreting its values.

    Parameters
    ----------
    path
        A ``.csv``, ``.parquet`` or ``.xpt`` file.

    Returns
    -------
    pandas.DataFrame or str
        The records indexed by their 1-based source row, or a sentence saying why the file cannot be
        read (unreadable, empty, binary, damaged).
    """
    try:
        data = path.read_bytes()
    except IsADirectoryError:
        return "cannot be read (it is a folder, not a file)"
    except OSError as exc:
        return f"cannot be read ({exc.strerror or exc})"
    if not data:
        return "is empty (0 bytes)"
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return _read_csv(path, data)
    if suffix == ".parquet":
        return _read_parquet(path)
    return _read_xpt(path)


def find_table(data_dir: Path, stem: str) -> list[Path]:
    """Return the files in ``data_dir`` named ``stem`` with an accepted extension (any case)."""
    wanted = {f"{stem}.{ext}".lower(): i for i, ext in enumerate(FORMATS)}
    try:
        found = [p for p in data_dir.iterdir() if p.name.lower() in wanted]
    except OSError:
        return []
    return sorted(found, key=lambda p: wanted[p.name.lower()])


def _mask(frame: pd.DataFrame, conditions: Mapping[str, Any]) -> pd.Series | str:
    """Return rows whose columns equal ``conditions`` (compared as text), or a missing column."""
    keep = pd.Series(True, index=frame.index)
    for column, wanted in conditions.items():
        if column not in frame.columns:
            return column
        keep &= norm_series(frame[column]).eq(norm_value(wanted)).fillna(False).astype(bool)
    return keep


def _join_keys(frame: pd.DataFrame, columns: list[str]) -> pd.Series:
    parts = [norm_series(frame[c]).fillna("\x00NA") for c in columns]
    key = parts[0].astype(str)
    for part in parts[1:]:
        key = key + "\x1f" + part.astype(str)
    return key


def _describe(conditions: Mapping[str, Any]) -> str:
    return ", ".join(f"{k} = {v}" for k, v in conditions.items())


def apply_mapping(
    frame: pd.DataFrame, name: str, path: Path, mapping: Mapping[str, Any]
) -> tuple[pd.DataFrame | None, dict[str, str], dict[str, dict[int, int]], list[Problem]]:
    """Apply one table's config mapping: filter, params pivot, renaming, recoding, extra columns.

    Parameters
    ----------
    frame
        The file's records, indexed by source row.
    name
        Canonical table name.
    path
        The source file (for messages).
    mapping
        The table's entry of the trial config's ``tables`` (may be empty).

    Returns
    -------
    tuple
        The mapped frame (``None`` when it cannot be built), canonical -> source column names,
        canonical column -> {record row: source row of its value} for ``params`` columns, and
        problems found.
    """
    problems: list[Problem] = []
    columns: dict[str, str] = dict(mapping.get("columns") or {})
    conditions = mapping.get("filter") or {}
    main = frame
    if conditions:
        keep = _mask(frame, conditions)
        if isinstance(keep, str):
            problems.append(_problem(path, f"column {keep} named in the {name} mapping's filter "
                                     "is missing", column=keep))
            return None, columns, {}, problems
        main = frame.loc[keep]
        if main.empty:
            problems.append(_problem(path, f"has no records with {_describe(conditions)} "
                                     f"(empty {name} table)"))
            return None, columns, {}, problems
    main = main.copy()
    value_rows: dict[str, dict[int, int]] = {}
    param_sources: dict[str, str] = {}
    params = mapping.get("params") or {}
    if params:
        keys = [columns.get("subject_id", "subject_id"), columns.get("study_day", "study_day")]
        absent = [k for k in keys if k not in frame.columns]
        if absent:
            for k in absent:
                problems.append(_problem(path, "required column is missing (needed to join the "
                                         f"{name} mapping's params)", column=k))
            return None, columns, {}, problems
        main_key = _join_keys(main, keys)
        for canon, spec in params.items():
            rows = _mask(frame, spec["filter"])
            value_col = spec["value"]
            if isinstance(rows, str) or value_col not in frame.columns:
                missing = rows if isinstance(rows, str) else value_col
                problems.append(_problem(path, f"column {missing} named in the {name} mapping's "
                                         f"params for {canon} is missing", column=missing))
                continue
            sub = frame.loc[rows]
            sub_key = _join_keys(sub, keys)
            dup = sub_key.duplicated(keep="first")
            for row in sub.index[dup.to_numpy()]:
                problems.append(_problem(
                    path, f"duplicated {_describe(spec['filter'])} record (same subject and "
                    f"study day; gives {canon})", row=int(row), column=keys[1],
                    value=frame.at[row, keys[1]]))
            kept = sub.loc[~dup.to_numpy()]
            lookup = dict(zip(sub_key[~dup], kept[value_col], strict=True))
            rows_of = dict(zip(sub_key[~dup], kept.index, strict=True))
            main[canon] = pd.Series([lookup.get(k, pd.NA) for k in main_key], index=main.index,
                                    dtype=object)
            value_rows[canon] = {int(r): int(rows_of[k]) for r, k in zip(main.index, main_key,
                                                                          strict=True)
                                 if k in rows_of}
            param_sources[canon] = value_col
    rename = {}
    for canon, source in columns.items():
        if source in main.columns and source != canon:
            if canon in main.columns:
                problems.append(_problem(path, f"has both column {canon} and column {source}, "
                                         f"which the mapping maps onto {canon}", column=canon))
                continue
            rename[source] = canon
    main = main.rename(columns=rename)
    columns.update(param_sources)
    for canon, recode in (mapping.get("values") or {}).items():
        if canon not in main.columns:
            continue
        table = {norm_value(k): v for k, v in recode.items()}
        recoded = [table.get(norm_value(v), v) if not _isna(v) else v
                   for v in main[canon].astype(object)]
        main[canon] = pd.Series(recoded, index=main.index, dtype=object)
    if mapping.get("extra_columns", "keep") == "drop":
        main = main[[c for c in main.columns if c in CANONICAL[name]]]
    return main, columns, value_rows, problems


def _isna(value: Any) -> bool:
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def read_trial(
    data_dir: str | Path, config: Mapping[str, Any]
) -> tuple[dict[str, RawTable], list[Problem], dict[str, Path]]:
    """Find, read and map every table of a trial folder.

    Parameters
    ----------
    data_dir
        The trial's data folder.
    config
        The trial configuration (its ``tables`` mapping is applied).

    Returns
    -------
    tuple
        Tables read (canonical name -> :class:`RawTable`), problems (file-level and mapping
        problems), and the files read (table name -> path).
    """
    data_dir = Path(data_dir)
    problems: list[Problem] = []
    tables: dict[str, RawTable] = {}
    inputs: dict[str, Path] = {}
    if not data_dir.is_dir():
        what = "is not a folder" if data_dir.exists() else "does not exist"
        problems.append(_problem(str(data_dir), f"data folder {what}"))
        return tables, problems, inputs
    maps = config.get("tables") or {}
    cache: dict[Path, pd.DataFrame | str] = {}
    for name in TABLES:
        mapping = maps.get(name) or {}
        stem = mapping.get("file", name)
        found = find_table(data_dir, stem)
        if not found:
            if name in REQUIRED_TABLES:
                options = ", ".join(f"{stem}.{ext}" for ext in FORMATS)
                problems.append(_problem(f"{stem}.*", f"required table {name} not found: none of "
                                         f"{options} is in {data_dir}"))
            continue
        if len(found) > 1:
            problems.append(_problem(found[0], f"table {name} is present in more than one format "
                                     f"({', '.join(p.name for p in found)}); keep exactly one"))
            continue
        path = found[0]
        inputs[name] = path
        if path not in cache:
            cache[path] = read_file(path)
        read = cache[path]
        if isinstance(read, str):
            problems.append(_problem(path, read))
            continue
        if read.empty:
            problems.append(_problem(path, f"has a header but no records (empty {name} table)"))
            continue
        frame, columns, value_rows, found = apply_mapping(read, name, path, mapping)
        problems.extend(found)
        if frame is not None:
            tables[name] = RawTable(name=name, path=path, frame=frame, columns=columns,
                                    value_rows=value_rows)
    return tables, problems, inputs
