from __future__ import annotations

from pathlib import Path

import pytest

from crampstats.outputs import atomic_dir, atomic_write_text, provenance, sha256_file


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
