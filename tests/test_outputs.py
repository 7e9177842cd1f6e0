from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from crampstats.outputs import (
    atomic_dir,
    atomic_outputs,
    atomic_write_text,
    provenance,
    sha256_file,
)


def test_atomic_dir_replaces_whole_folder(tmp_path: Path):
    target = tmp_path / "out"
    with atomic_dir(target) as tmp:
        (tmp / "a.txt").write_text("first")
    with atomic_dir(target) as tmp:
        (tmp / "b.txt").write_text("second")
    assert sorted(p.name for p in target.iterdir()) == ["b.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_atomic_dir_leaves_nothing_on_failure(tmp_path: Path):
    target = tmp_path / "out"
    with pytest.raises(RuntimeError), atomic_dir(target) as tmp:
        (tmp / "half.txt").write_text("half")
        raise RuntimeError("crash mid-write")
    assert list(tmp_path.iterdir()) == []


def test_atomic_dir_keeps_previous_output_on_failure(tmp_path: Path):
    target = tmp_path / "out"
    with atomic_dir(target) as tmp:
        (tmp / "good.txt").write_text("good")
    with pytest.raises(RuntimeError), atomic_dir(target) as tmp:
        raise RuntimeError("crash")
    assert (target / "good.txt").read_text() == "good"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_atomic_write_text_and_provenance(tmp_path: Path):
    f = tmp_path / "x.txt"
    atomic_write_text(f, "hello\n")
    rec = provenance({"x": f}, {"seed": 1}, seeds=[1])
    assert rec["inputs"]["x"]["sha256"] == sha256_file(f)
    assert rec["inputs"]["x"]["sha256"].startswith("5891b5b5")  # sha256("hello\n")
    assert rec["versions"]["pandas"] != "not installed"
    assert rec["seeds"] == [1]
    assert [p.name for p in tmp_path.iterdir()] == ["x.txt"]


def test_cli_reports_unwritable_output_without_traceback(tmp_path: Path, capsys):
    from crampstats import cli

    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    root = Path(__file__).resolve().parents[1]
    code = cli.main(["simulate", "--design", str(root / "data/example_nof1/design.yaml"),
                     "--seed", "1", "--out", str(blocker / "out")])
    assert code == 1
    err = capsys.readouterr().err
    assert "cannot write output" in err and "Traceback" not in err


# ---------------------------------------------------------------------------------------------
# Injected failures: every rename, link or replace of a commit can fail, and then no target is
# partial, none is missing and none pairs a new version with an old one
# ---------------------------------------------------------------------------------------------
class FailAt:
    """Counts the file-system moves (``os.rename``, ``os.replace``, ``os.link``) and makes the
    ``n``-th one raise (``n = 0``: count only). Later calls (the rollback) go through."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, n: int):
        self.n, self.calls = n, 0
        for name in ("rename", "replace", "link"):
            monkeypatch.setattr(os, name, self._wrap(getattr(os, name)))

    def _wrap(self, real):
        def move(*args, **kwargs):
            self.calls += 1
            if self.calls == self.n:
                raise OSError(f"injected failure at file-system move {self.n}")
            return real(*args, **kwargs)

        return move


def _snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (hidden ones too) with its bytes."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def _write_outputs(root: Path, version: str) -> None:
    with atomic_outputs(folders=[root / "tables"], files=[root / "provenance.json"]) as (
        [tables],
        [record],
    ):
        (tables / "effects.csv").write_text(f"effects {version}\n")
        (tables / "diagnostics.csv").write_text(f"diagnostics {version}\n")
        record.write_text(f'{{"version": "{version}"}}\n')


def _moves_of(monkeypatch, action) -> int:
    """How many file-system moves ``action`` makes when nothing fails."""
    with monkeypatch.context() as m:
        counter = FailAt(m, 0)
        action()
    return counter.calls


def test_atomic_outputs_survive_a_failure_at_every_move(tmp_path: Path, monkeypatch):
    _write_outputs(tmp_path, "old")
    before = _snapshot(tmp_path)
    n_moves = _moves_of(monkeypatch, lambda: _write_outputs(tmp_path / "probe", "x"))
    # replacing an existing folder and file: folder aside, folder in, file linked, file in
    assert _moves_of(monkeypatch, lambda: _write_outputs(tmp_path, "old")) == 4 > n_moves
    for n in range(1, 5):
        with monkeypatch.context() as m:
            FailAt(m, n)
            with pytest.raises(OSError, match=f"injected failure at file-system move {n}"):
                _write_outputs(tmp_path, "new")
        current = {k: v for k, v in _snapshot(tmp_path).items() if not k.startswith("probe")}
        assert current == before, f"failure at move {n}"
        assert sorted(p.name for p in tmp_path.iterdir()) == ["probe", "provenance.json", "tables"]
    _write_outputs(tmp_path, "new")  # and without a failure, both are replaced
    assert (tmp_path / "provenance.json").read_text() == '{"version": "new"}\n'
    assert (tmp_path / "tables" / "effects.csv").read_text() == "effects new\n"


def test_atomic_outputs_first_write_leaves_nothing_on_failure(tmp_path: Path, monkeypatch):
    for n in (1, 2):  # folder in, file in
        with monkeypatch.context() as m:
            FailAt(m, n)
            with pytest.raises(OSError, match="injected"):
                _write_outputs(tmp_path, "new")
        assert list(tmp_path.iterdir()) == [], f"failure at move {n}"


def test_atomic_outputs_failure_in_the_block_between_outputs(tmp_path: Path):
    _write_outputs(tmp_path, "old")
    before = _snapshot(tmp_path)
    with pytest.raises(RuntimeError), atomic_outputs(
        folders=[tmp_path / "tables"], files=[tmp_path / "provenance.json"]
    ) as ([tables], [_record]):
        (tables / "effects.csv").write_text("effects new\n")
        raise RuntimeError("crash after the tables, before provenance.json")
    assert _snapshot(tmp_path) == before
    # a staged file the block never wrote is an error too, not a silently missing record
    with pytest.raises(FileNotFoundError, match="was not written"), atomic_outputs(
        folders=[tmp_path / "tables"], files=[tmp_path / "provenance.json"]
    ) as ([tables], _):
        (tables / "effects.csv").write_text("effects new\n")
    assert _snapshot(tmp_path) == before


@pytest.mark.parametrize("n", [1, 2])
def test_atomic_dir_survives_a_failure_between_its_renames(tmp_path: Path, monkeypatch, n):
    target = tmp_path / "out"
    with atomic_dir(target) as tmp:
        (tmp / "good.txt").write_text("good")
    with monkeypatch.context() as m:
        FailAt(m, n)  # 1: the old folder aside; 2: the new one into place
        with pytest.raises(OSError, match="injected"), atomic_dir(target) as tmp:
            (tmp / "new.txt").write_text("new")
    assert _snapshot(tmp_path) == {"out/good.txt": b"good"}


@pytest.mark.parametrize("n", [1, 2])
def test_atomic_write_text_survives_a_failure_at_each_move(tmp_path: Path, monkeypatch, n):
    path = tmp_path / "report.html"
    atomic_write_text(path, "old\n")
    with monkeypatch.context() as m:
        FailAt(m, n)  # 1: the old version's hard link; 2: the new file into place
        with pytest.raises(OSError, match="injected"):
            atomic_write_text(path, "new\n")
    assert _snapshot(tmp_path) == {"report.html": b"old\n"}


def test_fit_is_replaced_only_when_complete(tmp_path: Path, monkeypatch):
    """A fit whose writing fails half-way (or whose final rename fails) leaves the previous one."""
    import numpy as np
    import xarray as xr

    from crampstats.engine import save_fit

    def tree(value: float) -> xr.DataTree:
        posterior = xr.Dataset({"mu": (("chain", "draw"), np.full((1, 3), value))})
        return xr.DataTree.from_dict({"posterior": posterior})

    path = tmp_path / "fit.nc"
    save_fit(tree(1.0), path)
    before = path.read_bytes()
    with monkeypatch.context() as m:
        FailAt(m, 1)
        with pytest.raises(OSError, match="injected"):
            save_fit(tree(2.0), path)
    assert path.read_bytes() == before

    def half_written(self, target, *args, **kwargs):
        Path(target).write_bytes(b"partial")
        raise OSError("disk full")

    with monkeypatch.context() as m:
        m.setattr(xr.DataTree, "to_netcdf", half_written)
        with pytest.raises(OSError, match="disk full"):
            save_fit(tree(2.0), path)
    assert path.read_bytes() == before


@pytest.fixture
def compare_inputs(example_results, monkeypatch):
    """``compare_job``'s inputs without fits: the example trial's derived folder, and the table
    builder replaced by a stub whose version ``compare_inputs.version`` sets."""
    import pandas as pd

    from crampstats.compare import fits as compare_fits

    state = {"version": "old"}

    def tables(records, config, weekly):
        frame = pd.DataFrame({"model": ["nb_totals"], "version": [state["version"]]})
        return {"effects": frame, "diagnostics": frame.assign(status="ok")}

    monkeypatch.setattr(compare_fits, "result_tables", tables)
    return example_results("example") / "derived", state


def _compare(derived: Path, out: Path) -> None:
    from crampstats.compare import compare_job

    compare_job(derived, [], out / "tables", out / "provenance.json")


def test_compare_job_writes_tables_and_provenance_together(tmp_path, compare_inputs, monkeypatch):
    from crampstats.compare import fits as compare_fits

    derived, state = compare_inputs
    out = tmp_path / "results"
    _compare(derived, out)
    before = _snapshot(out)
    assert {"provenance.json", "tables/diagnostics.csv", "tables/effects.csv"} <= set(before)
    state["version"] = "new"
    n_moves = _moves_of(monkeypatch, lambda: _compare(derived, tmp_path / "probe"))
    for n in range(1, 2 * n_moves + 1):  # an existing folder and file take two moves each
        with monkeypatch.context() as m:
            FailAt(m, n)
            with pytest.raises(OSError, match="injected"):
                _compare(derived, out)
        assert _snapshot(out) == before, f"failure at move {n}"
        assert sorted(p.name for p in out.iterdir()) == ["provenance.json", "tables"]

    def crash(obj):
        raise RuntimeError("crash between the tables and provenance.json")

    with monkeypatch.context() as m:
        m.setattr(compare_fits, "to_json", crash)
        with pytest.raises(RuntimeError, match="between the tables"):
            _compare(derived, out)
    assert _snapshot(out) == before
    _compare(derived, out)
    assert "new" in (out / "tables" / "effects.csv").read_text()
    assert json.loads((out / "provenance.json").read_text())["models"] == []
