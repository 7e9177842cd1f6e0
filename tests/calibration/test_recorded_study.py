"""The recorded calibration study (docs/validation.md) is complete, current and passing.

A case's record pins the hash of its model's and its simulation's code: when either changes,
this test fails until the case is rerun (``cases: [name]`` in config/calibration.yaml, then
``snakemake -c all calibration_all``), so a changed model cannot ship with a stale study.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from crampstats.calibration import CASES, PENDING, code_hash, read_record, summarize
from crampstats.catalogue import COUNT_MODELS, ENDPOINTS

DOCS = Path(__file__).resolve().parents[2] / "docs"
MIN_REPLICATES = 200
#: Primary models whose simulation-based calibration runs in CI's slow tests
#: (tests/models/test_model_calibration.py) rather than as a recorded case.
SBC_IN_SLOW_TESTS = {"nb_totals", "frailty_weekly"}
RERUN = (
    "rerun it: `cases: [{}]` in config/calibration.yaml, then `snakemake -c all calibration_all`"
)


def test_every_bayesian_model_has_a_case():
    bayesian = {e.id for e in (*COUNT_MODELS, *ENDPOINTS) if getattr(e, "model", None) is not None}
    # every study is recorded: a case written but not yet run (PENDING) must be added knowingly
    assert PENDING == ()
    assert bayesian <= {case.model for case in CASES}
    names = [case.name for case in (*CASES, *PENDING)]
    assert len(set(names)) == len(names)


def test_every_model_that_can_be_primary_has_simulation_based_calibration():
    # the default count models are the ones a trial's primary analysis runs on
    defaults = {e.id for e in COUNT_MODELS if e.default}
    assert {case.model for case in CASES if case.primary} == defaults
    assert defaults - SBC_IN_SLOW_TESTS <= {case.model for case in CASES if case.sbc}


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_the_recorded_study_of_each_case_is_current(case):
    record = read_record(DOCS, case)
    assert record is not None, f"{case.name} has no recorded study; " + RERUN.format(case.name)
    rows, meta = record
    assert meta["code_hash"] == code_hash(case), (
        f"{case.name}: its code changed since the recorded study "
        f"({meta['code_hash']} -> {code_hash(case)}); " + RERUN.format(case.name)
    )
    assert rows["replicate"].nunique() >= MIN_REPLICATES
    assert meta["replicates"] == rows["replicate"].nunique()


def test_the_table_is_the_recorded_rows_summary_and_every_calibrated_case_passes():
    rows = pd.concat([read_record(DOCS, case)[0] for case in CASES], ignore_index=True)
    recomputed = summarize(rows, CASES)
    # blank cells are the error-rate columns of cases without a null rate
    table = pd.read_csv(
        DOCS / "validation" / "calibration.csv", keep_default_na=False, na_values=[""]
    )
    pd.testing.assert_frame_equal(table, recomputed, check_dtype=False, rtol=1e-5)
    expected = {case.name for case in CASES if case.expect_calibrated}
    failing = table[~table["passed"] & table["case"].isin(expected)]
    assert failing.empty, failing[["case", "target", "coverage_50", "coverage_95"]].to_string()
