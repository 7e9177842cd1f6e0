"""The subgroup analysis in the catalogue: planned only with a subgroup column, reasons recorded."""

from __future__ import annotations

import pandas as pd

from crampstats.catalogue import plan_trial
from crampstats.secondary.subgroups import COLUMNS, subgroup_tables, subgroup_variables


def _tables(**subject_columns: list) -> dict[str, pd.DataFrame]:
    subjects = pd.DataFrame({"subject_id": ["s1", "s2"], "arm": ["placebo", "x"],
                             **subject_columns})  # fmt: skip
    diary = pd.DataFrame({"subject_id": ["s1", "s2"], "study_day": [1, 1], "cramp_count": [1, 0]})
    return {"subjects": subjects, "diary": diary}


def test_planned_only_when_a_subgroup_column_holds_values():
    config = {"design": "parallel"}
    plan = plan_trial(config, _tables())
    assert "subgroups" not in [e.id for e in plan.endpoints]
    assert plan.skipped["subgroups"] == (
        "needs subjects.cramp_origin or subjects.etiology or analysis.subgroups, absent from this "
        "trial"
    )
    plan = plan_trial(config, _tables(etiology=["als", None]))
    assert "subgroups" in [e.id for e in plan.endpoints]


def test_absent_columns_are_rows_with_the_reason_and_nothing_is_fitted():
    periods = pd.DataFrame(
        {"subject_id": ["s1", "s2"], "arm": ["placebo", "x"], "period": "treatment",
         "count": [3, 1], "exposure_days": [28.0, 28.0], "log_baseline_rate": [0.0, 0.1]}
    )  # fmt: skip
    config = {"trial_id": "t", "control_arm": "placebo", "analysis": {"subgroups": ["bmi"]}}
    assert subgroup_variables(config) == ["cramp_origin", "etiology", "bmi"]
    out = subgroup_tables({"periods": periods}, config, seed=1)
    table = out["subgroups"]
    assert list(table.columns) == COLUMNS
    assert list(table["variable"]) == ["cramp_origin", "etiology", "bmi"]
    assert (table["status"] == "not analysed").all()
    assert table["note"].str.contains("absent or holds no value").all()
    assert (table["label"] == "exploratory").all() and out["diagnostics_secondary"].empty
