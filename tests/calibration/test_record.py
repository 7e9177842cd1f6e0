"""Recording the study in a docs folder: merged with earlier records, atomic, byte-stable."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from crampstats.calibration import code_hash, read_record, record_study, run_shard
from crampstats.calibration.record import BEGIN, END
from crampstats.errors import CrampstatsError


@pytest.fixture
def docs(tmp_path):
    page = f"# Validation\n\nintro\n\n{BEGIN}\nold\n{END}\n\ntail\n"
    (tmp_path / "validation.md").write_text(page)
    return tmp_path


def _files(folder):
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_records_a_case_and_keeps_the_page_around_the_table(docs, exact_case, narrow_case):
    rows = run_shard(exact_case, 20, seed=1)
    summary = record_study(docs, rows, [exact_case, narrow_case], seed=1)
    page = (docs / "validation.md").read_text()
    assert page.startswith("# Validation\n\nintro\n\n") and page.endswith(f"{END}\n\ntail\n")
    assert "old" not in page and "| exact | `mu` | 20 |" in page
    recorded, meta = read_record(docs, exact_case)
    pd.testing.assert_frame_equal(recorded, rows, check_dtype=False)
    assert meta["code_hash"] == code_hash(exact_case) and meta["replicates"] == 20
    assert read_record(docs, narrow_case) is None
    assert list(summary["case"]) == ["exact"]


def test_a_later_run_of_one_case_keeps_the_others_and_rebands_the_whole_study(
    docs, exact_case, narrow_case
):
    record_study(docs, run_shard(exact_case, 20, seed=1), [exact_case, narrow_case], seed=1)
    first = (docs / "validation" / "calibration" / "exact.csv").read_bytes()
    summary = record_study(
        docs, run_shard(narrow_case, 20, seed=1), [exact_case, narrow_case], seed=1
    )
    assert (docs / "validation" / "calibration" / "exact.csv").read_bytes() == first
    assert list(summary["case"]) == ["exact", "narrow"]
    # two cases x two levels: the bands now hold alpha / 4 per check, wider than alpha / 2
    table = pd.read_csv(docs / "validation" / "calibration.csv")
    assert len(table) == 2 and table["band_95_low"].nunique() == 1


def test_an_sbc_case_records_its_ranks_table_and_rank_plot(docs, exact_case, sbc_cases):
    exact_sbc = sbc_cases[0]
    rows = pd.concat([run_shard(c, 20, seed=1) for c in (exact_case, exact_sbc)])
    summary = record_study(docs, rows, [exact_case, exact_sbc], seed=1).set_index("case")
    page = (docs / "validation.md").read_text()
    sbc_table = page.partition("Simulation-based calibration")[2]
    assert f"| sbc_exact | `mu` | 20 | {summary.loc['sbc_exact', 'sbc_p']:.3f} |" in sbc_table
    assert "| exact |" not in sbc_table  # a case without SBC has no rank test
    recorded, _ = read_record(docs, exact_sbc)
    assert recorded["rank"].between(0, 99).all()
    assert "fractional rank" in (docs / "validation" / "calibration" / "sbc_exact.svg").read_text()
    assert "fractional rank" not in (docs / "validation" / "calibration" / "exact.svg").read_text()


def test_rerun_is_byte_identical(docs, exact_case):
    record_study(docs, run_shard(exact_case, 20, seed=1), [exact_case], seed=1)
    before = _files(docs)
    record_study(docs, run_shard(exact_case, 20, seed=1), [exact_case], seed=1)
    assert _files(docs) == before


def test_missing_markers_or_unknown_cases_refused_and_nothing_written(tmp_path, exact_case):
    (tmp_path / "validation.md").write_text("# no markers\n")
    rows = run_shard(exact_case, 3, seed=1)
    with pytest.raises(CrampstatsError, match="markers are missing"):
        record_study(tmp_path, rows, [exact_case], seed=1)
    (tmp_path / "validation.md").write_text(f"{BEGIN}\n{END}\n")
    with pytest.raises(CrampstatsError, match="unknown calibration cases: exact"):
        record_study(tmp_path, rows, [], seed=1)
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["validation.md"]


def test_a_crash_while_writing_leaves_the_record_as_it_was(docs, exact_case, monkeypatch):
    record_study(docs, run_shard(exact_case, 5, seed=1), [exact_case], seed=1)
    before = _files(docs)

    # the third file written (of seven) fails: the two already staged must not land
    calls = []
    write_text = Path.write_text

    def failing_third(self, *args, **kwargs):
        calls.append(self)
        if len(calls) == 3:
            raise OSError("disk full")
        return write_text(self, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", failing_third)
    with pytest.raises(OSError, match="disk full"):
        record_study(docs, run_shard(exact_case, 6, seed=2), [exact_case], seed=2)
    assert _files(docs) == before
