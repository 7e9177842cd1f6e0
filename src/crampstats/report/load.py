"""Read a results folder written by ``crampstats analyze`` into plain Python objects.

Everything is optional except the folder itself: a missing table, Parquet file or fit gives an
empty frame (or ``None``), and the report leaves out the sections that need it. Nothing here
writes or samples; reading a results folder twice gives equal objects.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pandas as pd

from crampstats.catalogue import ENDPOINTS
from crampstats.errors import CrampstatsError

#: The tables ``crampstats analyze`` writes into ``tables/``: the cramp-frequency tables
#: (crampstats.compare column lists), then the secondary endpoints' (crampstats.secondary.TABLES).
TABLES = (
    "effects", "frequentist", "diagnostics", "loo", "rankings", "patients", "ppc", "course",
    "effects_secondary", "diagnostics_secondary", "safety", "safety_signals", "serious_events",
    "cramp_potential", "locations", "outcome_measures",
)  # fmt: skip
#: The verdict under the analysis plan (crampstats.compare.verdict); absent in older runs.
TABLES = (*TABLES, "decisions", "operating_characteristics")
#: Subgroups (secondary), active versus active and several trials (crampstats.compare.contrasts).
TABLES = (*TABLES, "subgroups", "active_vs_active", "multi_trial")

#: Secondary endpoints of the catalogue; older runs' provenance.json named them beside the count
#: models in one list.
SECONDARY_ENDPOINTS = tuple(e.id for e in ENDPOINTS)

#: Columns read as text whatever they look like: ids such as ``NA`` or ``001`` stay as written.
TEXT_COLUMNS = (
    "trial_id", "endpoint", "model", "arm", "comparator", "subject_id", "twin", "note",
    "status", "reasons", "label", "unit", "data", "period", "model_id", "measure", "category",
    "visit", "location", "property", "term",
)  # fmt: skip


@dataclass
class Results:
    """The contents of one results folder.

    Attributes
    ----------
    path : pathlib.Path
        The folder.
    tables : dict
        Table name -> data frame (``tables/*.csv``); empty frames for absent tables.
    provenance : dict
        ``provenance.json`` (empty when absent).
    validation : dict
        ``validated/validation.json`` (empty when absent).
    periods : pandas.DataFrame
        ``derived/periods.parquet`` (empty when absent).
    subjects, diary : pandas.DataFrame
        ``validated/subjects.parquet`` and ``validated/diary.parquet`` (empty when absent).
    intercurrent : pandas.DataFrame
        ``derived/intercurrent.parquet``: the intercurrent events of the primary endpoint per
        arm and how their diary counted (empty when the trial has none).
    fit_attrs : dict
        Model name -> the ``crampstats_*`` attributes of its fit's posterior group (model config
        and sampler config actually used), read without loading the draws.
    """

    path: Path
    tables: dict[str, pd.DataFrame]
    provenance: dict[str, Any] = field(default_factory=dict)
    validation: dict[str, Any] = field(default_factory=dict)
    periods: pd.DataFrame = field(default_factory=pd.DataFrame)
    subjects: pd.DataFrame = field(default_factory=pd.DataFrame)
    diary: pd.DataFrame = field(default_factory=pd.DataFrame)
    intercurrent: pd.DataFrame = field(default_factory=pd.DataFrame)
    fit_attrs: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def config(self) -> dict[str, Any]:
        """The resolved trial configuration of the run (``provenance.json["config"]``)."""
        config = self.provenance.get("config") or self.validation.get("config") or {}
        return dict(config)

    @property
    def models(self) -> list[str]:
        """Count models of the run, primary first (provenance, else the order of ``effects.csv``).

        The secondary endpoints that provenance lists beside the count models are left out:
        their results are in the secondary tables, not in ``effects.csv``.
        """
        listed = self.provenance.get("models")
        if listed:
            return [str(m) for m in listed if str(m) not in SECONDARY_ENDPOINTS]
        effects = self.tables["effects"]
        return list(dict.fromkeys(effects["model"].astype(str))) if len(effects) else []


def read_csv_table(path: Path) -> pd.DataFrame:
    """Read one result table; id-like columns as text, only empty cells as missing.

    An empty file (not even a header) gives an empty frame without columns, as an absent one.
    """
    if path.stat().st_size == 0:
        return pd.DataFrame()
    header = pd.read_csv(path, nrows=0).columns
    dtype = {c: "string" for c in header if c in TEXT_COLUMNS}
    return pd.read_csv(path, dtype=dtype, keep_default_na=False, na_values=[""])


def _read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CrampstatsError(f"{path}: cannot be read ({exc})") from None
    return data if isinstance(data, dict) else {}


def _read_parquet(path: Path) -> pd.DataFrame:
    if not path.is_file():
        return pd.DataFrame()
    return pd.read_parquet(path, engine="pyarrow")


def read_fit_attrs(path: Path) -> dict[str, Any]:
    """Return the ``crampstats_*`` attributes of a fit's posterior group (JSON values decoded).

    Reads only the attributes of the netCDF/HDF5 file (``h5py``), not the draws, so it is quick
    even for large fits. An unreadable file gives an empty dict (the report then falls back on
    the configuration).
    """
    out: dict[str, Any] = {}
    try:
        with h5py.File(path, "r") as fh:
            if "posterior" not in fh:
                return {}
            for key, value in fh["posterior"].attrs.items():
                if not key.startswith("crampstats_"):
                    continue
                if isinstance(value, bytes):
                    value = value.decode("utf-8")
                if isinstance(value, np.ndarray):
                    value = value.tolist()
                    if isinstance(value, list) and len(value) == 1:
                        value = value[0]
                if isinstance(value, str) and value[:1] in "[{":
                    try:
                        value = json.loads(value)
                    except json.JSONDecodeError:
                        pass
                out[key.removeprefix("crampstats_")] = value
    except OSError:
        return {}
    return out


def read_results(results_dir: str | Path) -> Results:
    """Read a results folder of ``crampstats analyze``.

    Parameters
    ----------
    results_dir
        The output folder of ``crampstats analyze``.

    Returns
    -------
    Results
        Tables, provenance, validation record, derived periods, validated subjects and diary,
        and the fits' attributes.

    Raises
    ------
    CrampstatsError
        If the folder does not exist or holds neither tables nor a provenance record.
    """
    path = Path(results_dir)
    if not path.is_dir():
        raise CrampstatsError(f"{path}: no such results folder; run `crampstats analyze` first")
    tables = {}
    for name in TABLES:
        file = path / "tables" / f"{name}.csv"
        tables[name] = read_csv_table(file) if file.is_file() else pd.DataFrame()
    provenance = _read_json(path / "provenance.json")
    if not provenance and not any(len(t) for t in tables.values()):
        raise CrampstatsError(
            f"{path}: not a results folder of `crampstats analyze` (no tables/, no provenance.json)"
        )
    fit_attrs = {}
    for fit in sorted((path / "fits").glob("*.nc")):
        attrs = read_fit_attrs(fit)
        name = str(attrs.get("model") or fit.stem.split("__")[-1])
        fit_attrs[name] = attrs
    return Results(
        path=path,
        tables=tables,
        provenance=provenance,
        validation=_read_json(path / "validated" / "validation.json"),
        periods=_read_parquet(path / "derived" / "periods.parquet"),
        subjects=_read_parquet(path / "validated" / "subjects.parquet"),
        diary=_read_parquet(path / "validated" / "diary.parquet"),
        intercurrent=_read_parquet(path / "derived" / "intercurrent.parquet"),
        fit_attrs=fit_attrs,
    )
