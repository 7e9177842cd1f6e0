"""`crampstats validate`: read a trial folder, check it against the data contract, write it typed.

:func:`validate` never raises for bad data: every problem is collected (file, row, column,
value, rule) and the result is refused when there is any. :func:`write_validated` writes the
canonical tables as Parquet plus ``validation.json`` atomically; :func:`read_validated` reads
such a folder back.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from crampstats.errors import CrampstatsError
from crampstats.outputs import atomic_dir, provenance, sha256_file, to_json, write_parquet
from crampstats.validate import contract, ingest
from crampstats.validate.contract import REQUIRED_TABLES, cast_canonical
from crampstats.validate.records import DataWarning, Problem

#: Marks a folder written by :func:`write_validated`.
FORMAT = "crampstats-validated"
FORMAT_VERSION = 1
VALIDATION_JSON = "validation.json"


@dataclass
class ValidationResult:
    """The outcome of :func:`validate`.

    Attributes
    ----------
    tables
        Canonical typed tables (empty when refused).
    problems
        Every problem found.
    warnings
        Warnings (only when there are no problems): the column mapping's (unmapped
        adverse-event terms, events on days without a completed diary), then the contract's.
    counts
        Subjects, records and compliance summaries (JSON-serialisable).
    inputs
        Table name -> file read.
    config
        The resolved trial configuration (with the design, inferred if the config had none).
    n_problems_total
        Number of problems found.
    """

    tables: dict[str, pd.DataFrame]
    problems: list[Problem]
    warnings: list[DataWarning]
    counts: dict[str, Any]
    inputs: dict[str, Path]
    config: dict[str, Any]
    n_problems_total: int
    data_dir: Path = field(default_factory=Path)
    design_inferred: bool = False

    @property
    def ok(self) -> bool:
        """Return True when the data can be used (no problems)."""
        return self.n_problems_total == 0


@dataclass
class ValidatedTrial:
    """A folder written by :func:`write_validated`, read back.

    Attributes
    ----------
    tables
        Canonical typed tables.
    config
        The resolved trial configuration used to validate.
    meta
        The contents of ``validation.json``.
    path
        The folder.
    """

    tables: dict[str, pd.DataFrame]
    config: dict[str, Any]
    meta: dict[str, Any]
    path: Path


def _copy_config(config: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(config))


def validate(data_dir: str | Path, config: dict[str, Any]) -> ValidationResult:
    """Read a trial folder and check it against the data contract.

    Parameters
    ----------
    data_dir
        Folder holding ``subjects``, ``diary`` and optionally ``emg`` and ``adverse_events`` (CSV,
        Parquet or XPT, or the files the config's ``tables`` mapping names).
    config
        Trial configuration from :func:`crampstats.config.load_trial_config`.

    Returns
    -------
    ValidationResult
        Refused (``ok`` false) when any problem was found; never raises for bad data.

    Raises
    ------
    ConfigError
        If the config's ``tables`` mapping contradicts itself (e.g. dates without the subjects'
        ``reference_date``).
    """
    data_dir = Path(data_dir)
    resolved = _copy_config(config)
    raw, problems, inputs = ingest.read_trial(data_dir, resolved)
    checked = contract.check_tables(raw, resolved)
    problems = problems + checked.problems
    resolved["design"] = checked.design
    mapping_warnings = [w for table in raw.values() for w in table.warnings]
    result = ValidationResult(
        tables=checked.tables if not problems else {},
        problems=problems,
        warnings=mapping_warnings + checked.warnings if not problems else [],
        counts={},
        inputs=inputs,
        config=resolved,
        n_problems_total=len(problems),
        data_dir=data_dir,
        design_inferred=checked.design_inferred,
    )
    if result.ok:
        result.counts = _counts(result.tables, checked.design, checked.compliance)
    return result


def _round(x: float) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else round(float(x), 4)


def _period_order(diary: pd.DataFrame) -> list[str]:
    first = diary.groupby("period", observed=True)["study_day"].min().sort_values(kind="mergesort")
    return [str(p) for p in first.index]


def _counts(tables: dict[str, pd.DataFrame], design: str,
            comp: pd.DataFrame | None) -> dict[str, Any]:
    subjects, diary = tables["subjects"], tables["diary"]
    group = "arm" if design == "parallel" else "sequence"
    by_group = subjects[group].fillna("(missing)").value_counts().sort_index()
    filled = diary.loc[diary["cramp_count"].notna()]
    days = filled.groupby("period", observed=True)["days"].sum()
    counts: dict[str, Any] = {
        "design": design,
        "subjects": len(subjects),
        f"subjects_by_{group}": {str(k): int(v) for k, v in by_group.items()},
        "withdrawn": int(subjects["withdrawal_day"].notna().sum()),
        "diary_records": len(diary),
        "diary_records_missing_count": int(diary["cramp_count"].isna().sum()),
        "diary_days_by_period": {p: int(days.get(p, 0)) for p in _period_order(diary)},
    }
    if comp is not None and len(comp):
        counts["compliance"] = {"median": _round(comp["compliance"].median()),
                                "min": _round(comp["compliance"].min())}
    if "emg" in tables:
        counts["emg_assessments"] = len(tables["emg"])
        counts["emg_subjects"] = int(tables["emg"]["subject_id"].nunique())
    if "adverse_events" in tables:
        ae = tables["adverse_events"]
        counts["adverse_events"] = len(ae)
        counts["serious_adverse_events"] = int(ae["serious"].sum())
    return counts


def refusal_text(result: ValidationResult) -> str:
    """Return the problems as lines, capped at the config's ``max_problems``.

    Parameters
    ----------
    result
        A refused :class:`ValidationResult`.

    Returns
    -------
    str
        A heading, one line per problem, and ``... and N more`` when capped.
    """
    cap = int(result.config.get("max_problems", 50))
    n = result.n_problems_total
    lines = [f"data refused: {n} problem{'s' if n != 1 else ''} in {result.data_dir} "
             "(nothing was written)"]
    lines += [f"  {p}" for p in result.problems[:cap]]
    if n > cap:
        lines.append(f"  ... and {n - cap} more")
    return "\n".join(lines)


def summary_text(result: ValidationResult, max_warnings: int = 12) -> str:
    """Return a one-screen summary of valid data.

    Parameters
    ----------
    result
        An accepted :class:`ValidationResult`.
    max_warnings
        Warnings listed before ``... and N more``.

    Returns
    -------
    str
        Design, subjects per arm (or sequence), diary days per period, compliance, EMG and AE
        counts, and warnings.
    """
    c = result.counts
    design = c.get("design", result.config.get("design"))
    how = "inferred from the data" if result.design_inferred else "from config"
    trial = result.config.get("trial_id")
    if not trial and "subjects" in result.tables:
        trial = ", ".join(sorted(set(result.tables["subjects"]["trial_id"].dropna())))
    lines = [f"trial {trial}: {design} design ({how}), {c.get('subjects', 0)} subjects, "
             f"{c.get('withdrawn', 0)} withdrawn"]
    for key, label in (("subjects_by_arm", "per arm"), ("subjects_by_sequence", "per sequence")):
        if key in c:
            lines.append(f"  subjects {label}: "
                         + ", ".join(f"{k} {v}" for k, v in c[key].items()))
    lines.append(f"  diary: {c.get('diary_records', 0)} records "
                 f"({c.get('diary_records_missing_count', 0)} without a count); diarised days per "
                 "period: " + ", ".join(f"{k} {v}" for k, v in c["diary_days_by_period"].items()))
    if "compliance" in c:
        lines.append(f"  diary compliance: median {c['compliance']['median']:.2f}, "
                     f"min {c['compliance']['min']:.2f} "
                     f"(threshold {result.config.get('compliance_threshold', 0.8):g})")
    if "emg_assessments" in c:
        lines.append(f"  EMG: {c['emg_assessments']} assessments of {c['emg_subjects']} subjects")
    if "adverse_events" in c:
        lines.append(f"  adverse events: {c['adverse_events']} "
                     f"({c['serious_adverse_events']} serious)")
    n = len(result.warnings)
    lines.append(f"warnings: {n}" if n else "warnings: none")
    lines += [f"  {w}" for w in result.warnings[:max_warnings]]
    if n > max_warnings:
        lines.append(f"  ... and {n - max_warnings} more (all in validation.json)")
    return "\n".join(lines)


def _meta(result: ValidationResult, outputs: dict[str, str]) -> dict[str, Any]:
    return provenance(
        result.inputs, result.config,
        format=FORMAT, format_version=FORMAT_VERSION,
        design=result.config.get("design"), design_inferred=result.design_inferred,
        warnings=[asdict(w) for w in result.warnings],
        counts=result.counts,
        tables=outputs,
    )


def write_validated(result: ValidationResult, out: str | Path) -> None:
    """Write accepted data atomically: Parquet tables and ``validation.json``.

    Writes ``subjects.parquet``, ``diary.parquet`` and, when present, ``emg.parquet`` and
    ``adverse_events.parquet``, plus ``validation.json`` (warnings, counts, input hashes, resolved
    config, package versions, git commit; nothing time-dependent, so a rerun gives identical
    bytes). The folder appears only when everything is written.

    Parameters
    ----------
    result
        An accepted :class:`ValidationResult`.
    out
        Target folder (replaced as a whole).

    Raises
    ------
    CrampstatsError
        If ``result`` was refused.
    """
    if not result.ok:
        raise CrampstatsError("refused data cannot be written; fix the problems listed first")
    with atomic_dir(out) as tmp:
        write_validated_into(result, tmp)


def write_validated_into(result: ValidationResult, folder: Path) -> None:
    """Write the tables and ``validation.json`` of :func:`write_validated` into an existing folder.

    Not atomic by itself: callers write into a temporary folder (``atomic_dir``).
    """
    outputs: dict[str, str] = {}
    for name, frame in result.tables.items():
        path = folder / f"{name}.parquet"
        write_parquet(frame, path)
        outputs[name] = path.name
    meta = _meta(result, outputs)
    meta["table_sha256"] = {n: sha256_file(folder / f) for n, f in outputs.items()}
    (folder / VALIDATION_JSON).write_text(to_json(meta), encoding="utf-8", newline="\n")


def read_validated(path: str | Path) -> ValidatedTrial:
    """Read a folder written by :func:`write_validated`.

    Parameters
    ----------
    path
        The folder (output of ``crampstats validate --out``).

    Returns
    -------
    ValidatedTrial
        Tables with canonical dtypes, the resolved config and the ``validation.json`` contents.

    Raises
    ------
    CrampstatsError
        If the folder is missing or is not a validated output.
    """
    path = Path(path)
    hint = "run `crampstats validate DATA_DIR --out FOLDER` first"
    if not path.is_dir():
        raise CrampstatsError(f"{path}: no such folder; {hint}")
    meta_path = path / VALIDATION_JSON
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CrampstatsError(f"{path}: not a validated folder (no {VALIDATION_JSON}); "
                              f"{hint}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CrampstatsError(f"{meta_path}: cannot be read ({exc})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CrampstatsError(f"{meta_path}: not written by crampstats validate; {hint}")
    if meta.get("format_version") != FORMAT_VERSION:
        raise CrampstatsError(f"{meta_path}: format version {meta.get('format_version')} is not "
                              f"{FORMAT_VERSION}; validate the data again")
    listed = meta.get("tables") or {}
    tables: dict[str, pd.DataFrame] = {}
    for name, file in listed.items():
        try:
            frame = pd.read_parquet(path / file, engine="pyarrow")
        except Exception as exc:  # pyarrow raises many error types for a damaged file
            raise CrampstatsError(f"{path / file}: cannot be read ({exc})") from None
        tables[name] = cast_canonical(name, frame)
    missing = [t for t in REQUIRED_TABLES if t not in tables]
    if missing:
        raise CrampstatsError(f"{path}: validated folder lacks {', '.join(missing)}; {hint}")
    return ValidatedTrial(tables=tables, config=dict(meta.get("config") or {}), meta=meta,
                          path=path)
