"""Side effects at the edge: atomic output folders, file hashes and provenance records."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, TextIO

import pandas as pd
import rich.console
import rich.progress

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


def _remove(path: Path) -> None:
    """Remove a file or folder if it exists (clean-up of staged or superseded outputs)."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        path.unlink(missing_ok=True)


def _commit(pairs: list[tuple[Path, Path]]) -> None:
    """Move each staged path onto its target, all or none.

    A file target is replaced by one ``os.replace`` (readers never miss it); its old version is
    kept as a hard link until the end. A folder cannot be renamed onto a non-empty folder, so the
    old one is first renamed aside. If any step fails, the targets already replaced get their old
    versions back (or are removed if they had none) before the error propagates: no target is
    left with a new version while another keeps its old one, and none goes missing.
    """
    backups: list[tuple[Path, Path | None]] = []  # (target, its old version or None), in order
    try:
        for staged, target in pairs:
            old = None
            if target.exists() or target.is_symlink():
                old = target.with_name(f".{target.name}.old-{os.getpid()}")
                _remove(old)
                if target.is_dir() and not target.is_symlink():
                    os.rename(target, old)
                    backups.append((target, old))
                    os.rename(staged, target)
                    continue
                try:
                    os.link(target, old)
                except OSError as err:
                    if err.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP):
                        raise
                    shutil.copy2(target, old)  # a file system without hard links
            backups.append((target, old))
            os.replace(staged, target)
    except BaseException:
        for target, old in reversed(backups):
            if old is None:
                _remove(target)
            elif target.exists() and not target.is_dir() and os.path.samefile(old, target):
                old.unlink()  # never replaced: rename(2) between two links of one file is a no-op
            elif old.exists() or old.is_symlink():
                if target.is_dir() and not target.is_symlink():
                    _remove(target)
                os.replace(old, target)
        raise
    for _, old in backups:
        if old is not None:
            _remove(old)


@contextlib.contextmanager
def atomic_outputs(
    folders: Sequence[str | Path] = (), files: Sequence[str | Path] = ()
) -> Iterator[tuple[list[Path], list[Path]]]:
    """Yield staging paths for several outputs that replace their targets together, or not at all.

    Parameters
    ----------
    folders
        Target folders; each gets an empty temporary folder beside it (same file system).
    files
        Target files; each gets a temporary path beside it (not yet created).

    Yields
    ------
    tuple of (list of pathlib.Path, list of pathlib.Path)
        The staging folders and staging file paths, in the order of ``folders`` and ``files``.

    Notes
    -----
    Only when the block finishes are the staged outputs renamed onto their targets, folders
    first, files last (:func:`_commit`). An exception in the block, or in any rename, leaves every
    target as it was and removes the staged paths, so a crash between writing two outputs (e.g.
    the tables and ``provenance.json``) never pairs new tables with an old record.
    """
    folders = [Path(f) for f in folders]
    files = [Path(f) for f in files]
    staged_dirs: list[Path] = []
    staged_files: list[Path] = []
    try:
        for target in folders:
            target.parent.mkdir(parents=True, exist_ok=True)
            staged_dirs.append(
                Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
            )
        for target in files:
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, name = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
            os.close(fd)
            os.unlink(name)  # a fresh name beside the target; the block creates the file
            staged_files.append(Path(name))
        yield staged_dirs, staged_files
        for tmp in staged_dirs:
            os.chmod(tmp, 0o755)  # mkdtemp creates 0700; outputs are meant to be read by others
        for tmp in staged_files:
            if not tmp.is_file():
                raise FileNotFoundError(f"staged output {tmp} was not written")
            os.chmod(tmp, 0o644)
        _commit(list(zip(staged_dirs + staged_files, folders + files, strict=True)))
    finally:
        for tmp in staged_dirs + staged_files:
            _remove(tmp)


@contextlib.contextmanager
def atomic_dir(target: str | Path) -> Iterator[Path]:
    """Yield a temporary folder that replaces ``target`` only if the block finishes.

    The temporary folder sits beside ``target`` (same file system), so the final rename is atomic.
    On any exception - in the block or in either rename - it is removed and ``target`` is left
    as it was: readers never see a partial output folder (:func:`atomic_outputs`).
    """
    with atomic_outputs(folders=[target]) as (folders, _):
        yield folders[0]


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write a text file atomically (temporary file in the same folder, then rename)."""
    with atomic_outputs(files=[path]) as (_, files):
        files[0].write_text(text, encoding="utf-8", newline="\n")


def write_csv(df: pd.DataFrame, path: Path) -> None:
    """Write a table as CSV deterministically (10 significant digits, Unix line ends)."""
    df.to_csv(path, index=False, float_format="%.10g", lineterminator="\n")


def write_tables(tables: dict[str, pd.DataFrame], folder: Path) -> None:
    """Write every result table as ``<folder>/<name>.csv`` (folder must exist)."""
    for name, table in tables.items():
        write_csv(table, folder / f"{name}.csv")


#: ``progress(done, total, elapsed_seconds)``, called after every replicate of a long loop.
Progress = Callable[[int, int, float], None]


def terminal_progress(
    label: str, stream: TextIO | None = None, min_interval: float = 2.0
) -> Progress:
    """Return a callback driving a progress bar: replicates done, rate, elapsed, time left.

    The bar is rich's: live in a terminal; written once, when the shard ends, to a file or a
    CI log, so logs stay short.

    Parameters
    ----------
    label
        The bar's description (e.g. the design and shard).
    stream
        Where to draw; default standard error.
    min_interval
        Seconds between redraws in a terminal.

    Returns
    -------
    callable
        ``progress(done, total, elapsed_seconds)``.
    """
    bar = rich.progress.Progress(
        rich.progress.TextColumn("{task.description}"),
        rich.progress.BarColumn(),
        rich.progress.MofNCompleteColumn(),
        rich.progress.TextColumn("replicates"),
        rich.progress.TimeElapsedColumn(),
        rich.progress.TextColumn("elapsed,"),
        rich.progress.TimeRemainingColumn(),
        rich.progress.TextColumn("left"),
        console=rich.console.Console(file=stream or sys.stderr),
        refresh_per_second=1 / max(min_interval, 0.1),
    )
    tasks: list[rich.progress.TaskID] = []

    def progress(done: int, total: int, elapsed: float) -> None:
        if not tasks:
            bar.start()
            tasks.append(bar.add_task(label, total=total))
        bar.update(tasks[0], completed=done)
        if done >= total:
            bar.stop()

    return progress
