"""Side effects at the edge: atomic output folders, file hashes and provenance records."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Mapping
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import pandas as pd

#: Packages whose versions every provenance record lists.
TRACKED_PACKAGES = (
    "crampstats", "numpy", "scipy", "pandas", "pandera", "pyarrow", "pyreadstat", "statsmodels",
    "pymc", "pytensor", "nutpie", "arviz", "snakemake",
)


def sha256_file(path: str | Path) -> str:
    """Return the hex SHA-256 digest of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def package_versions() -> dict[str, str]:
    """Return installed versions of the packages in :data:`TRACKED_PACKAGES`."""
    out = {}
    for name in TRACKED_PACKAGES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "not installed"
    return out


def git_commit() -> str:
    """Return the git commit of the source tree (``-dirty`` if modified), or ``unknown``."""
    here = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=here, capture_output=True, text=True, check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit + ("-dirty" if dirty else "")


def provenance(inputs: Mapping[str, str | Path], config: Mapping[str, Any], **extra: Any) -> dict:
    """Build a provenance record.

    Parameters
    ----------
    inputs
        Label -> input file path; each file is hashed.
    config
        The resolved configuration used.
    **extra
        Further entries (seeds, design, ...), stored as given.

    Returns
    -------
    dict
        ``inputs`` (label -> sha256), ``config``, ``versions``, ``git_commit`` and the extras.
    """
    return {
        "inputs": {
            label: {"path": str(p), "sha256": sha256_file(p)} for label, p in inputs.items()
        },
        "config": dict(config),
        "versions": package_versions(),
        "git_commit": git_commit(),
        **extra,
    }


def to_json(obj: Any) -> str:
    """Serialise to deterministic, human-readable JSON (sorted keys, trailing newline)."""
    return json.dumps(obj, indent=2, sort_keys=True, default=str, ensure_ascii=False) + "\n"


def write_parquet(df: pd.DataFrame, path: str | Path) -> None:
    """Write a data frame to Parquet deterministically (no pandas index, no creation timestamp)."""
    df.reset_index(drop=True).to_parquet(path, index=False, engine="pyarrow")


@contextlib.contextmanager
def atomic_dir(target: str | Path) -> Iterator[Path]:
    """Yield a temporary folder that replaces ``target`` only if the block finishes.

    The temporary folder sits beside ``target`` (same file system), so the final rename is atomic.
    On any exception it is removed and ``target`` is left as it was: readers never see a partial
    output folder.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        yield tmp
        os.chmod(tmp, 0o755)
        if target.exists():
            old = target.with_name(f".{target.name}.old-{os.getpid()}")
            target.rename(old)
            tmp.rename(target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write a text file atomically (temporary file in the same folder, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fh:
            fh.write(text)
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; outputs are meant to be read by others
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_csv(df: pd.DataFrame, path: Path) -> None:
    """Write a table as CSV deterministically (10 significant digits, Unix line ends)."""
    df.to_csv(path, index=False, float_format="%.10g", lineterminator="\n")


def write_tables(tables: dict[str, pd.DataFrame], folder: Path) -> None:
    """Write every result table as ``<folder>/<name>.csv`` (folder must exist)."""
    for name, table in tables.items():
        write_csv(table, folder / f"{name}.csv")
