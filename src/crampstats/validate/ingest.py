"""Find, read and map the raw tables of a trial folder.

Each table is looked up as ``NAME.csv``, ``NAME.parquet`` or ``NAME.xpt`` (or the files that the
trial config's ``tables`` mapping names: a stem, a glob such as ``diary_site*``, or a list), read
without interpreting values (CSV is read as text so that type errors can be reported per cell),
and mapped onto canonical column names: filtered, pivoted, reshaped from wide to long, dates
turned into study days, cramp events counted per day, intensities rescaled, adverse-event terms
given categories (:mod:`crampstats.validate.layouts`). Every record keeps the file and the 1-based
row it came from (:meth:`RawTable.locate`): for CSV the header is row 1 and the first record is
row 2; for Parquet and XPT the first record is row 1. Nothing here raises for bad data: every
failure becomes a :class:`~crampstats.validate.Problem`; an inconsistent mapping raises
:class:`~crampstats.config.ConfigError`.
"""

from __future__ import annotations

import csv
import datetime as dt
import fnmatch
import io
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyreadstat

from crampstats.config import ConfigError
from crampstats.validate import layouts
from crampstats.validate.contract import CANONICAL, REQUIRED_TABLES, SPECS, TABLES
from crampstats.validate.records import DataWarning, Problem, RawTable, norm_series, norm_value

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


def find_files(data_dir: Path, pattern: str) -> list[Path]:
    """Return the files in ``data_dir`` whose stem matches ``pattern``, with an accepted extension.

    Parameters
    ----------
    data_dir
        The trial's data folder.
    pattern
        A file stem (``adsl``) or a glob over stems (``diary_site*``); case is ignored.

    Returns
    -------
    list of Path
        Sorted by stem, and within a stem in the order of :data:`FORMATS`.
    """
    order = {ext: i for i, ext in enumerate(FORMATS)}
    wanted = pattern.casefold()
    try:
        found = [p for p in data_dir.iterdir()
                 if p.suffix.lower().lstrip(".") in order
                 and fnmatch.fnmatchcase(p.stem.casefold(), wanted)]
    except OSError:
        return []
    return sorted(found, key=lambda p: (p.stem.casefold(), order[p.suffix.lower().lstrip(".")]))


def _options(pattern: str) -> str:
    if any(c in pattern for c in "*?["):
        return f"no file matching {pattern}.csv, .parquet or .xpt"
    return "none of " + ", ".join(f"{pattern}.{ext}" for ext in FORMATS)


def resolve_files(data_dir: Path, spec: str | Sequence[str], what: str,
                  required: bool) -> tuple[list[Path], list[Problem]]:
    """Return the files a mapping's ``file`` names (a stem, a glob or a list of them).

    Parameters
    ----------
    data_dir
        The trial's data folder.
    spec
        The mapping's ``file``.
    what
        What the files hold, for messages (``table diary``).
    required
        Whether finding nothing is a problem (otherwise the table is absent).

    Returns
    -------
    tuple
        The files, one per stem, in order (empty when there is any problem), and problems: a
        required table not found, a listed file not found, a stem present in two formats.
    """
    patterns = [spec] if isinstance(spec, str) else list(spec)
    paths: list[Path] = []
    problems: list[Problem] = []
    missing: list[str] = []
    for pattern in patterns:
        found = find_files(data_dir, pattern)
        if not found:
            missing.append(pattern)
        stems: dict[str, list[Path]] = {}
        for path in found:
            stems.setdefault(path.stem.casefold(), []).append(path)
        for same in stems.values():
            if len(same) > 1:
                problems.append(_problem(same[0], f"{what} is present in more than one format "
                                         f"({', '.join(p.name for p in same)}); keep exactly one"))
            elif same[0] not in paths:
                paths.append(same[0])
    if missing and len(missing) == len(patterns) and required:
        problems += [_problem(f"{p}.*", f"required {what} not found: {_options(p)} is in "
                              f"{data_dir}") for p in missing]
    elif missing and len(missing) < len(patterns):
        problems += [_problem(f"{p}.*", f"is named in the mapping's file list of the {what} but "
                              f"{_options(p)} is in {data_dir}") for p in missing]
    return ([] if problems else paths), problems


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


def _listing(frame: pd.DataFrame, limit: int = 12) -> str:
    names = [str(c) for c in frame.columns]
    more = f", ... ({len(names) - limit} more)" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def _absent(frame: pd.DataFrame, name: str, path: Path, mapping: Mapping[str, Any]
            ) -> list[Problem]:
    """Return a problem for each column the mapping names that the file does not have."""
    named = [(canon, source, "columns") for canon, source in (mapping.get("columns") or {}).items()]
    named += [(canon, source, "dates") for canon, source in (mapping.get("dates") or {}).items()]
    if mapping.get("reference_date"):
        named.append(("reference date", mapping["reference_date"], "reference_date"))
    return [_problem(path, f"is named in the {name} mapping ({key}) but the file has no such "
                     f"column (its columns: {_listing(frame)})",
                     column=source if source == canon else f"{source} ({canon})")
            for canon, source, key in named if source not in frame.columns]


def apply_mapping(frame: pd.DataFrame, name: str, path: Path, mapping: Mapping[str, Any]
                  ) -> tuple[RawTable | None, list[Problem]]:
    """Apply one file's part of a table mapping: filter, params, wide reshape, renaming, recoding.

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
        The file's records with canonical names (``None`` when they cannot be built) and problems
        found.
    """
    problems = _absent(frame, name, path, mapping)
    if problems:
        return None, problems
    columns: dict[str, str] = dict(mapping.get("columns") or {})
    conditions = mapping.get("filter") or {}
    main = frame
    if conditions:
        keep = _mask(frame, conditions)
        if isinstance(keep, str):
            problems.append(_problem(path, f"column {keep} named in the {name} mapping's filter "
                                     "is missing", column=keep))
            return None, problems
        main = frame.loc[keep]
        if main.empty:
            problems.append(_problem(path, f"has no records with {_describe(conditions)} "
                                     f"(empty {name} table)"))
            return None, problems
    main = main.copy()
    value_origin: dict[str, dict[int, tuple[str, int]]] = {}
    param_sources: dict[str, str] = {}
    params = mapping.get("params") or {}
    if params:
        day = columns.get("study_day") or (mapping.get("dates") or {}).get("study_day")
        keys = [columns.get("subject_id", "subject_id"), day or "study_day"]
        absent = [k for k in keys if k not in frame.columns]
        if absent:
            for k in absent:
                problems.append(_problem(path, "required column is missing (needed to join the "
                                         f"{name} mapping's params)", column=k))
            return None, problems
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
            value_origin[canon] = {int(r): (path.name, int(rows_of[k]))
                                   for r, k in zip(main.index, main_key, strict=True)
                                   if k in rows_of}
            param_sources[canon] = value_col
    origin = {int(r): (path.name, int(r)) for r in main.index}
    labels: dict[str, dict[int, str]] = {}
    wide = mapping.get("wide")
    if wide:
        patterns: dict[str, dict[int, str]] = {}
        for canon, pattern in wide["columns"].items():
            found, clash = layouts.wide_columns(main.columns, pattern)
            if clash or not found:
                rule = (f"the wide pattern is ambiguous: {clash}" if clash else
                        f"the wide pattern matches no column of the file (its columns: "
                        f"{_listing(main)})")
                problems.append(_problem(path, rule, column=f"{pattern} ({canon})"))
            patterns[canon] = found
        if problems:
            return None, problems
        long = layouts.wide_to_long(main, patterns, wide.get("unit", "day"),
                                    int(wide.get("start", 1)))
        main = long.frame
        origin = {r: origin[p] for r, p in long.parent.items()}
        labels = long.labels
    rename = {}
    for canon, source in columns.items():
        if source != canon:
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
    return RawTable(name=name, path=path, frame=main, columns=columns, origin=origin,
                    value_origin=value_origin, labels=labels, paths=[path]), problems


def _isna(value: Any) -> bool:
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def _concat(pieces: list[RawTable]) -> RawTable:
    """Concatenate the tables read from several files; each record keeps its file and row."""
    if len(pieces) == 1:
        return pieces[0]
    first = pieces[0]
    frames: list[pd.DataFrame] = []
    origin: dict[int, tuple[str, int]] = {}
    value_origin: dict[str, dict[int, tuple[str, int]]] = {}
    labels: dict[str, dict[int, str]] = {}
    offset = 0
    for piece in pieces:
        renumber = {int(r): offset + i for i, r in enumerate(piece.frame.index)}
        frame = piece.frame.astype(object)  # one dtype per column whatever each file held
        frame.index = pd.RangeIndex(offset, offset + len(frame))
        frames.append(frame)
        for old, new in renumber.items():
            origin[new] = piece.origin.get(old, (piece.path.name, old))
        for column, rows in piece.value_origin.items():
            value_origin.setdefault(column, {}).update(
                {renumber[r]: o for r, o in rows.items() if r in renumber})
        for column, rows in piece.labels.items():
            labels.setdefault(column, {}).update(
                {renumber[r]: c for r, c in rows.items() if r in renumber})
        offset += len(frame)
    return RawTable(name=first.name, path=first.path, frame=pd.concat(frames),
                    columns=dict(first.columns), origin=origin, value_origin=value_origin,
                    labels=labels, paths=[p.path for p in pieces])


def _read_pieces(name: str, paths: list[Path], mapping: Mapping[str, Any],
                 cache: dict[Path, pd.DataFrame | str]) -> tuple[RawTable | None, list[Problem]]:
    """Read and map each file of a table, then concatenate them (``None`` if any file fails)."""
    problems: list[Problem] = []
    pieces: list[RawTable] = []
    for path in paths:
        if path not in cache:
            cache[path] = read_file(path)
        read = cache[path]
        if isinstance(read, str):
            problems.append(_problem(path, read))
            continue
        if read.empty:
            problems.append(_problem(path, f"has a header but no records (empty {name} table)"))
            continue
        piece, found = apply_mapping(read, name, path, mapping)
        problems.extend(found)
        if piece is not None:
            pieces.append(piece)
    if len(pieces) < len(paths):
        return None, problems
    return _concat(pieces), problems


#: Subject -> reference date (study day 1); ``None`` when the subject's date is unusable.
References = dict[str, dt.date | None]


def _reference_dates(table: RawTable, column: str, date_format: str | None
                     ) -> tuple[References | None, list[Problem]]:
    """Read each subject's reference date (day 1) from the subjects table."""
    frame = table.frame
    if "subject_id" not in frame.columns:
        return None, []  # the contract reports the missing column
    dates, failures = layouts.parse_dates(frame[column], date_format)
    subjects = norm_series(frame["subject_id"])
    label = f"{column} (reference date)"
    references: References = {}
    problems: list[Problem] = []
    for record, date in dates.items():
        file, row, _label = table.locate(int(record), column)
        if record in failures:
            value, rule = failures[int(record)]
            problems.append(Problem(file, row, label, value, rule))
        elif date is None:
            problems.append(Problem(file, row, label, None, "is empty (each subject needs the "
                                    "reference date that its study day 1 is counted from)"))
        if subjects[record] is not pd.NA:
            references.setdefault(subjects[record], date)
    return references, problems


def _apply_dates(table: RawTable, dates: Mapping[str, str], date_format: str | None,
                 references: References) -> list[Problem]:
    """Turn the mapping's date columns into study days (day 1 = the subject's reference date).

    Records of subjects not in ``subjects`` are reported (their dates cannot be counted) and
    dropped, as are records whose required day is not a date or cannot be counted (the subject's
    reference date is reported in subjects); an optional day stays empty then.
    """
    frame = table.frame
    problems: list[Problem] = []
    drop: set[int] = set()
    unknown: set[int] = set()
    subjects = (norm_series(frame["subject_id"]) if "subject_id" in frame.columns
                else pd.Series(pd.NA, index=frame.index, dtype=object))
    for canon, source in dates.items():
        if canon in frame.columns and canon != source:
            problems.append(_problem(table.file, f"has both column {canon} and column {source}, "
                                     f"which the mapping's dates turn into {canon}", column=canon))
            continue
        table.columns[canon] = source
        parsed, failures = layouts.parse_dates(frame[source], date_format)
        required = SPECS[table.name][canon].required
        days: list[Any] = []
        for record, date in parsed.items():
            record = int(record)
            sid = subjects[record]
            day: Any = pd.NA
            if record in failures:
                value, rule = failures[record]
                problems.append(Problem(*table.locate(record, canon), value, rule))
                if required:
                    drop.add(record)
            elif date is not None and sid is not pd.NA:
                if sid not in references:
                    unknown.add(record)
                elif references[sid] is None:  # reported at the subject's row
                    if required:
                        drop.add(record)
                else:
                    day = layouts.study_day(date, references[sid])
            days.append(day)
        frame[canon] = pd.Series(days, index=frame.index, dtype=object)
    for record in sorted(unknown):
        problems.append(Problem(*table.locate(record, "subject_id"), subjects[record],
                                "is not in subjects (not randomised; its dates cannot be counted "
                                "as study days)"))
    table.frame = frame.drop(index=sorted(drop | unknown))
    return problems


def _keyed(table: RawTable, what: str) -> tuple[pd.DataFrame | None, list[Problem]]:
    """Return ``table``'s records with ``subject_id`` as text and ``study_day`` as int64.

    Records without a subject or day, or with a day that is not an integer, are reported and
    dropped.
    """
    frame = table.frame
    absent = [c for c in ("subject_id", "study_day") if c not in frame.columns]
    if absent:
        return None, [Problem(table.file, None, table.column_label(c), None,
                              f"required column is missing (each {what} needs its subject and "
                              "study day)") for c in absent]
    problems: list[Problem] = []
    subjects = norm_series(frame["subject_id"])
    days: list[int] = []
    keep: list[int] = []
    for record, sid, value in zip(frame.index, subjects, frame["study_day"], strict=True):
        record = int(record)
        try:
            day = layouts.to_number(value)
        except ValueError:
            problems.append(Problem(*table.locate(record, "study_day"), value,
                                    "is not a number (text where a number is needed)"))
            continue
        if sid is pd.NA or day is None:
            column = "subject_id" if sid is pd.NA else "study_day"
            problems.append(Problem(*table.locate(record, column), None,
                                    f"is empty (each {what} needs its subject and study day)"))
        elif day != int(day):
            problems.append(Problem(*table.locate(record, "study_day"), value,
                                    "is not an integer (study days are integers)"))
        else:
            keep.append(record)
            days.append(int(day))
    out = frame.loc[keep].copy()
    out["subject_id"] = subjects.loc[keep].astype(object)
    out["study_day"] = np.asarray(days, dtype="int64")
    return out, problems


def _event_intensity(events: RawTable, frame: pd.DataFrame, scale: tuple[float, float] | None
                     ) -> tuple[pd.Series, list[Problem]]:
    """Return each event's intensity as a float on its source scale (NaN: not rated or bad)."""
    out: list[float] = []
    problems: list[Problem] = []
    for record, value in frame["intensity"].items():
        try:
            number = layouts.to_number(value)
        except ValueError:
            problems.append(Problem(*events.locate(int(record), "intensity"), value,
                                    "is not a number (text where a number is needed)"))
            number = None
        if number is not None and scale is not None and not scale[0] <= number <= scale[1]:
            problems.append(Problem(*events.locate(int(record), "intensity"), value,
                                    layouts.scale_rule(scale)))
            number = None
        out.append(np.nan if number is None else number)
    return pd.Series(out, index=frame.index, dtype="float64"), problems


def _events_to_daily(events: RawTable, completion: RawTable, scale: tuple[float, float] | None
                     ) -> tuple[RawTable | None, list[Problem]]:
    """Count one row per cramp event into daily diary records (completed days without events: 0)."""
    ev, problems = _keyed(events, "cramp event")
    done, found = _keyed(completion, "completion record")
    problems += found
    if ev is None or done is None:
        return None, problems
    ev = ev[[c for c in ("subject_id", "study_day", "intensity", "location", "period", "treatment")
             if c in ev.columns]].copy()
    if "intensity" in ev.columns:
        ev["intensity"], found = _event_intensity(events, ev, scale)
        problems += found
    if "location" in ev.columns:
        ev["location"] = norm_series(ev["location"])
    daily = layouts.daily_counts(ev, done, carry=("period", "treatment"))
    frame = daily.frame
    if "intensity" in frame.columns:
        mean = frame["intensity"].astype("float64")
        if scale is not None:
            mean = mean.map(lambda x: layouts.rescale(x, scale), na_action="ignore")
        frame["intensity"] = mean.astype(object).where(mean.notna(), pd.NA)
    origin = {r: events.origin[e] for r, e in daily.first_event.items()}
    origin.update({r: completion.origin[c] for r, c in daily.completion.items()})
    value_origin = {column: {r: events.origin[e] for r, e in daily.first_event.items()}
                    for column in ("cramp_count", "intensity", "location")
                    if column in frame.columns}
    labels: dict[str, dict[int, str]] = {}
    for column in set(completion.columns) | set(events.columns):
        source = completion.columns.get(column, column)
        if source != events.columns.get(column, column):
            labels[column] = {r: source for r in daily.completion}
    paths = events.paths + [p for p in completion.paths if p not in events.paths]
    table = RawTable(name=events.name, path=events.path, frame=frame, columns=dict(events.columns),
                     origin=origin, value_origin=value_origin, labels=labels, paths=paths)
    late = frame.loc[daily.uncompleted]
    for sid, days in late.groupby("subject_id", sort=True)["study_day"]:
        table.warnings.append(DataWarning(str(sid), "events_without_completion", (
            f"subject {sid}: cramp events on {len(days)} day(s) that the diary completion record "
            f"does not mark as diarised (first on study day {int(days.min())}); counted as "
            "diarised days")))
    return table, problems


def _apply_categories(table: RawTable, spec: Mapping[str, Any]) -> None:
    """Fill empty or absent ``category`` from the MedDRA preferred term; warn about unknown ones."""
    frame = table.frame
    if "term" not in frame.columns:
        return  # the contract reports the missing column
    mapped, unknown = layouts.categories_from_terms(frame["term"], spec.get("overrides") or {})
    if "category" in frame.columns:
        given = norm_series(frame["category"])
        frame["category"] = given.where(given.notna(), mapped)
    else:
        frame["category"] = mapped
    if unknown:
        table.warnings.append(DataWarning(None, "unmapped_ae_terms", (
            f"{len(unknown)} adverse-event term(s) not in the MedDRA category mapping, counted "
            f"as {layouts.UNMAPPED_CATEGORY}: {'; '.join(unknown)} (map them with "
            "tables.adverse_events.categories.overrides)")))


def _completion_mapping(mapping: Mapping[str, Any]) -> dict[str, Any]:
    """Return the mapping of a diary's completion record: its own keys over the diary's.

    The subject and study day columns (``columns`` or ``dates``) and ``date_format`` are the
    diary's unless the completion record names its own; the diary's ``filter`` (which rows are
    events) does not apply.
    """
    spec = mapping["events"]["completion"]
    own_columns = dict(spec.get("columns") or {})
    own_dates = dict(spec.get("dates") or {})
    columns = {k: v for k, v in (mapping.get("columns") or {}).items()
               if k in ("subject_id", "study_day") and k not in own_dates}
    dates = {k: v for k, v in (mapping.get("dates") or {}).items()
             if k == "study_day" and k not in own_columns}
    out: dict[str, Any] = {"columns": {**columns, **own_columns}, "dates": {**dates, **own_dates}}
    for key in ("filter", "date_format"):
        value = spec.get(key, mapping.get(key) if key == "date_format" else None)
        if value:
            out[key] = value
    return out


def check_mapping(maps: Mapping[str, Any]) -> None:
    """Refuse a ``tables`` mapping whose parts contradict each other (the schema checks the rest).

    Parameters
    ----------
    maps
        The trial config's ``tables``.

    Raises
    ------
    ConfigError
        Naming the key: dates without the subjects' ``reference_date``, a canonical column both in
        ``columns`` and ``dates``, a rescale range whose ends are not increasing, a wide diary
        combined with ``params`` or ``events``.
    """
    errors: list[str] = []
    has_reference = bool((maps.get("subjects") or {}).get("reference_date"))
    for name, mapping in maps.items():
        mapping = mapping or {}
        parts = {f"tables.{name}": mapping}
        if mapping.get("events"):
            parts[f"tables.{name}.events.completion"] = mapping["events"]["completion"]
        for key, part in parts.items():
            both = sorted(set(part.get("columns") or {}) & set(part.get("dates") or {}))
            if both:
                errors.append(f"{key}: {', '.join(both)} is both in columns and in dates; keep "
                              "one")
            if part.get("dates") and not has_reference:
                errors.append(f"{key}.dates needs tables.subjects.reference_date (the column of "
                              "each subject's study day 1, e.g. the randomisation date)")
        for canon, spec in (mapping.get("rescale") or {}).items():
            lo, hi = spec["from"]
            if not lo < hi:
                errors.append(f"tables.{name}.rescale.{canon}.from: [{lo}, {hi}] must be [low, "
                              "high] with low < high")
        if mapping.get("wide"):
            errors += [f"tables.{name}: wide cannot be combined with {key}"
                       for key in ("params", "events") if mapping.get(key)]
    if errors:
        raise ConfigError("\n".join(f"config: key {e}" for e in errors))


def _inputs(label: str, paths: list[Path]) -> dict[str, Path]:
    if len(paths) == 1:
        return {label: paths[0]}
    return {f"{label}/{p.name}": p for p in paths}


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
        Tables read (canonical name -> :class:`RawTable`, with the mapping's warnings), problems
        (file-level and mapping problems), and the files read (label -> path: the table name, or
        ``diary/FILE`` when several files make up a table, ``diary_completion`` for the diary's
        completion record).

    Raises
    ------
    ConfigError
        If the ``tables`` mapping contradicts itself (:func:`check_mapping`).
    """
    data_dir = Path(data_dir)
    problems: list[Problem] = []
    tables: dict[str, RawTable] = {}
    inputs: dict[str, Path] = {}
    maps = config.get("tables") or {}
    check_mapping(maps)
    if not data_dir.is_dir():
        what = "is not a folder" if data_dir.exists() else "does not exist"
        problems.append(_problem(str(data_dir), f"data folder {what}"))
        return tables, problems, inputs
    cache: dict[Path, pd.DataFrame | str] = {}
    references: References | None = None
    for name in TABLES:
        mapping = maps.get(name) or {}
        paths, found = resolve_files(data_dir, mapping.get("file", name), f"table {name}",
                                     name in REQUIRED_TABLES)
        problems.extend(found)
        if not paths:
            continue
        inputs.update(_inputs(name, paths))
        table, found = _read_pieces(name, paths, mapping, cache)
        problems.extend(found)
        if table is None:
            continue
        fmt = mapping.get("date_format")
        if name == "subjects" and mapping.get("reference_date"):
            references, found = _reference_dates(table, mapping["reference_date"], fmt)
            problems.extend(found)
        if mapping.get("dates"):
            if references is None:
                continue  # the subjects table or its reference dates are reported already
            problems.extend(_apply_dates(table, mapping["dates"], fmt, references))
        scale = (mapping.get("rescale") or {}).get("intensity", {}).get("from")
        scale = None if scale is None else (float(scale[0]), float(scale[1]))
        if mapping.get("events"):
            table, found = _completed_days(data_dir, table, mapping, cache, references, scale,
                                           inputs)
            problems.extend(found)
            if table is None:
                continue
        elif scale is not None and "intensity" in table.frame.columns:
            table.frame["intensity"], failures = layouts.rescale_column(
                table.frame["intensity"], scale)
            problems += [Problem(*table.locate(r, "intensity"), v, rule)
                         for r, (v, rule) in failures.items()]
        if mapping.get("categories"):
            _apply_categories(table, mapping["categories"])
        if mapping.get("extra_columns", "keep") == "drop":
            table.frame = table.frame[[c for c in table.frame.columns if c in CANONICAL[name]]]
        if table.frame.empty:  # every record was refused (reported above), or none was built
            if not problems:
                problems.append(_problem(table.file, f"gives no {name} records after the column "
                                         f"mapping (tables.{name})"))
            continue
        tables[name] = table
    return tables, problems, inputs


def _completed_days(data_dir: Path, events: RawTable, mapping: Mapping[str, Any],
                    cache: dict[Path, pd.DataFrame | str], references: References | None,
                    scale: tuple[float, float] | None, inputs: dict[str, Path]
                    ) -> tuple[RawTable | None, list[Problem]]:
    """Read the diary's completion record and count the events into daily records."""
    spec = mapping["events"]["completion"]
    own = _completion_mapping(mapping)
    if "file" in spec:
        paths, problems = resolve_files(
            data_dir, spec["file"], f"{events.name} completion record (tables.{events.name}."
            "events.completion)", True)
        if not paths:
            return None, problems
        inputs.update(_inputs(f"{events.name}_completion", paths))
    else:
        paths, problems = events.paths, []
    completion, found = _read_pieces(events.name, paths, own, cache)
    problems += found
    if completion is None:
        return None, problems
    if own["dates"]:
        if references is None:
            return None, problems
        problems += _apply_dates(completion, own["dates"], own.get("date_format"), references)
    table, found = _events_to_daily(events, completion, scale)
    return table, problems + found
