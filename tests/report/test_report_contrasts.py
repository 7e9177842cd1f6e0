"""Report sections of subgroups, active versus active and several trials, from fabricated tables."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from crampstats.compare.contrasts import ACTIVE_COLUMNS, MULTI_TRIAL_COLUMNS
from crampstats.report.build import build_report
from crampstats.secondary.subgroups import COLUMNS as SUBGROUP_COLUMNS

EVIL = "<script>alert(1)</script>"


def _results(folder: Path) -> Path:
    (folder / "tables").mkdir(parents=True)
    config = {"trial_id": "fab", "design": "parallel", "control_arm": "placebo",
              "arms": ["placebo", "a", "b"], "analysis": {"level": 0.95}}  # fmt: skip
    provenance = {"config": config, "models": ["multi_trial"], "endpoint": "cramp_frequency"}
    (folder / "provenance.json").write_text(json.dumps(provenance), encoding="utf-8")
    sub = pd.DataFrame(
        [
            {"variable": "cramp_origin", "level": lvl, "arm": arm, "n": 10, "n_control": 9,
             "rr_median": 0.8, "rr_lower": 0.6, "rr_upper": 1.1, "interaction_median": 1.1,
             "p_interaction": 0.7, "rr_twin": 0.79, "rr_twin_lower": 0.55, "rr_twin_upper": 1.15,
             "label": "exploratory", "status": "ok", "note": ""}
            for lvl in ("neurogenic", EVIL) for arm in ("a", "b")
        ]
        + [{"variable": "etiology", "status": "not analysed", "label": "exploratory",
            "note": "etiology: fewer than two levels"}]
    ).reindex(columns=SUBGROUP_COLUMNS)  # fmt: skip
    sub.to_csv(folder / "tables" / "subgroups.csv", index=False)
    active = pd.DataFrame(
        [{"trial_id": "fab", "endpoint": "cramp_frequency", "model": "multi_trial", "first": "a",
          "second": "b", "rr_median": 0.9, "rr_lower": 0.7, "rr_upper": 1.2,
          "p_first_better": 0.8, "direct": False, "twin": "GLM", "rr_twin": 0.88,
          "rr_twin_lower": 0.7, "rr_twin_upper": 1.1, "p_twin_one_sided": 0.2, "status": "ok"}]
    )[ACTIVE_COLUMNS]  # fmt: skip
    active.to_csv(folder / "tables" / "active_vs_active.csv", index=False)
    rows = [
        {"source": "posterior", "quantity": "pooled_rr", "arm": "a", "comparator": "placebo",
         "estimate": 0.7, "lower": 0.5, "upper": 0.9, "p_below_1": 0.99, "k_trials": 2},
        {"source": "posterior", "quantity": "trial_rr", "trial": "t1", "arm": "a",
         "comparator": "placebo", "estimate": 0.6, "lower": 0.4, "upper": 0.9},
        {"source": "posterior", "quantity": "between_trial_sd", "estimate": 0.1, "lower": 0.01,
         "upper": 0.4, "note": "log rate ratio"},
        {"source": "DL (Hartung-Knapp)", "quantity": "pooled_rr", "arm": "a",
         "comparator": "placebo", "estimate": 0.7, "lower": 0.3, "upper": 1.6},
    ]  # fmt: skip
    pd.DataFrame(rows).reindex(columns=MULTI_TRIAL_COLUMNS).to_csv(
        folder / "tables" / "multi_trial.csv", index=False
    )
    return folder


def test_sections_render_escaped_and_labelled_exploratory(tmp_path):
    html = build_report(_results(tmp_path / "res"))
    for section in ('id="subgroups"', 'id="active"', 'id="several_trials"'):
        assert section in html
    assert EVIL not in html and "&lt;script&gt;" in html
    assert "Exploratory: these subgroups were not named in the analysis plan" in html
    assert "Not analysed: etiology" in html
    assert "no (indirect)" in html  # a and b never randomised together
    assert "Hartung-Knapp" in html
    assert html.count("<svg") >= 3


def test_sections_absent_without_their_tables(tmp_path):
    folder = _results(tmp_path / "res")
    for name in ("subgroups", "active_vs_active", "multi_trial"):
        (folder / "tables" / f"{name}.csv").unlink()
    html = build_report(folder)
    for section in ('id="subgroups"', 'id="active"', 'id="several_trials"'):
        assert section not in html
