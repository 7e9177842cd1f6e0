"""The verdict panel at the top of the report: verdicts, plan hash and freeze status, OC.

The results folder is the example trial's validated and derived data with verdict tables made
from a hand-built primary fit (no sampling) and a provenance record, so the panel's every
number is known.
"""

from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest
from helpers import (
    INTENSITY_PLAN,
    Page,
    assert_self_contained,
    hand_built_crossover,
    hand_built_intensity,
    hand_built_nb_totals,
)

from crampstats.compare.tables import effects_rows
from crampstats.compare.verdict import endpoint_verdict_tables, verdict_tables
from crampstats.derive import read_derived
from crampstats.outputs import to_json, write_tables
from crampstats.plan import plan_status
from crampstats.report import build_report
from crampstats.report.text import MISSING
from crampstats.report.verdict import rate_text

LOG_RR = [-0.6, -0.2, -0.05, 0.0]  # mexiletine meets the default rule, the others do not


def test_rates_keep_two_digits_below_one_percent():
    assert rate_text(0.0002857) == "0.029 %"
    assert rate_text(0.025) == "2.5 %" and rate_text(0.5) == "50.0 %"


def _copy(example_results, tmp_path, trial: str = "example"):
    """A results folder of the example ``trial`` (validated, derived) and its config."""
    folder = tmp_path / "results"
    shutil.copytree(example_results(trial), folder)
    derived, config = read_derived(folder / "derived")
    return folder, derived, {**config, "trial_id": trial}


def _write(folder, tables, config, model: str) -> None:
    """Write the tables and a provenance record into ``folder``."""
    (folder / "tables").mkdir(exist_ok=True)
    write_tables(tables, folder / "tables")
    record = {"config": config, "models": [model], "analysis_plan": plan_status(config)}
    (folder / "provenance.json").write_text(to_json(record), encoding="utf-8")


def _report(folder) -> str:
    html = build_report(folder)
    assert_self_contained(html)
    return html


def _results(example_results, tmp_path, frozen_hash: str | None):
    folder, derived, config = _copy(example_results, tmp_path)
    if frozen_hash is not None:
        config["plan_frozen"] = {
            "plan_hash": frozen_hash, "frozen_utc": "2026-11-30T09:00:00+00:00",
            "record": "trial.plan-freeze.json",
        }  # fmt: skip
    tables = verdict_tables(hand_built_nb_totals(derived, config, LOG_RR), config)
    _write(folder, tables, config, "nb_totals")
    return folder, tables


@pytest.mark.parametrize("frozen", ["same", "other", None])
def test_verdict_panel_shows_each_comparison_and_the_plans_status(example_results, tmp_path,
                                                                   frozen):
    _, config = read_derived(example_results("example") / "derived")
    current = plan_status(config)["plan_hash"]
    frozen_hash = {"same": current, "other": "0" * 64, None: None}[frozen]
    folder, tables = _results(example_results, tmp_path, frozen_hash)
    html = build_report(folder)
    assert_self_contained(html)
    page = Page(html)
    assert page.ids.index("verdict") < page.ids.index("trial")  # the panel comes first
    rows = page.tables["verdict-table"]
    success = tables["decisions"].query("rule == 'success'")
    assert len(rows) == 1 + len(success)
    expected = {r["arm"]: "met" if r["met"] else "not met" for r in success.to_dict("records")}
    shown = {row[0].lower().replace(" ", "_"): row[1] for row in rows[1:]}
    assert shown == expected and expected["mexiletine"] == "met"
    oc = tables["operating_characteristics"].set_index("arm")
    for row in rows[1:]:
        arm = row[0].lower().replace(" ", "_")
        assert row[4] == rate_text(oc.loc[arm, "false_positive_rate"])
        assert row[5] == rate_text(oc.loc[arm, "power"])
    assert "P(RR &lt; 1) &gt;= 0.975 and P(RR &lt; 0.75) &gt;= 0.5" in html
    assert "Zhu and Lakkis 2014" in html  # the panel names the approximation
    assert current in html
    status = {
        "same": "frozen on 2026-11-30T09:00:00+00:00 and unchanged since",
        "other": "changed after it was frozen",
        None: "not frozen before this analysis",
    }[frozen]
    assert status in html
    provenance = json.loads((folder / "provenance.json").read_text())
    assert provenance["analysis_plan"]["changed_after_freeze"] == {
        "same": False, "other": True, None: None,
    }[frozen]  # fmt: skip


def test_the_panel_says_how_each_intercurrent_event_was_handled(example_results, tmp_path):
    folder, _ = _results(example_results, tmp_path, None)
    events = pd.DataFrame({
        "event": ["treatment_discontinuation", "treatment_discontinuation"],
        "strategy": ["hypothetical"] * 2, "arm": ["mexiletine", "<b>placebo</b>"],
        "subjects": [3, 1], "records": [40, 9], "diarised_days": [40, 9], "used": [False] * 2,
    })
    events.to_parquet(folder / "derived" / "intercurrent.parquet")
    html = build_report(folder)
    assert_self_contained(html)
    assert "treatment discontinuation: hypothetical (diary the event affects treated as missing " \
        "at random) (subjects per arm: mexiletine 3, &lt;b&gt;placebo&lt;/b&gt; 1; 49 diarised " \
        "days the event affects left out)" in html
    assert "<b>placebo</b>" not in html
    assert "rescue medication: hypothetical (diary the event affects treated as missing at " \
        "random);" in html


def test_a_crossover_panel_counts_patients_and_names_its_closed_form(example_results, tmp_path):
    folder, derived, config = _copy(example_results, tmp_path, "example_crossover")
    records = hand_built_crossover(derived, config, log_rr=-0.7, sigma_d=0.3, k=12.0)
    tables = verdict_tables(records, config)
    _write(folder, tables, config, "crossover")
    html = _report(folder)
    row = Page(html).tables["verdict-table"][1]
    n = int(tables["operating_characteristics"]["n_arm"].iloc[0])
    assert row[3] == f"{n} patients, each their own control"
    assert row[5] == rate_text(tables["operating_characteristics"]["power"].iloc[0])
    assert "within-patient log rate ratio" in html
    # results without operating characteristics (an earlier version's) say so
    empty = tables["operating_characteristics"].iloc[0:0]
    write_tables({"operating_characteristics": empty}, folder / "tables")
    html = build_report(folder)
    assert "No operating characteristics were computed for this analysis." in html


def test_an_intensity_plan_shows_its_verdict_and_calls_cramp_frequency_secondary(
    example_results, tmp_path
):
    folder, derived, config = _copy(example_results, tmp_path)
    config["analysis"] = {**config["analysis"], "plan": INTENSITY_PLAN}
    fit, _ = hand_built_intensity({"mexiletine": -0.9, "quinine": -0.1})
    tables = verdict_tables(hand_built_nb_totals(derived, config, LOG_RR), config)
    assert tables["decisions"].empty  # cramp frequency is not what the plan decides on
    tables.update(endpoint_verdict_tables({"intensity": fit}, config))
    # the count model's effects (gate figures of a clean fit), so the summary has sentences
    records = hand_built_nb_totals(derived, config, LOG_RR)
    gate = pd.DataFrame({"model": ["nb_totals"], "rhat_max": [1.0], "ess_bulk_min": [4000.0],
                         "divergences": [0], "status": ["ok"]})  # fmt: skip
    tables["effects"] = effects_rows(records, gate, config)
    _write(folder, tables, config, "nb_totals")
    html = _report(folder)
    rows = Page(html).tables["verdict-table"]
    assert [r[1] for r in rows[1:]] == ["met", "not met"]
    assert "P(difference &lt; 0) &gt;= 0.975 and P(difference &lt; -1) &gt;= 0.5" in html
    # operating characteristics by the posterior-SD approximation; no planning difference set
    assert "no power (the plan states no planning effect: success.planning_difference)" in html
    assert "posterior SD" in html
    assert [r[5] for r in rows[1:]] == [MISSING, MISSING] and rows[0][5] == "Power"
    assert "summary measure difference in mean intensity" in html
    assert "Cramp frequency (a secondary endpoint: the analysis plan's primary endpoint is " \
        "intensity" in html


def test_an_intensity_plan_whose_analysis_failed_says_there_is_no_verdict(
    example_results, tmp_path
):
    folder, _, config = _copy(example_results, tmp_path)
    config["analysis"] = {**config["analysis"], "plan": INTENSITY_PLAN}
    tables = endpoint_verdict_tables({}, config)  # the intensity fit is absent: it failed
    tables["diagnostics_secondary"] = pd.DataFrame({
        "trial_id": ["example"], "endpoint": ["intensity"], "model": ["intensity"],
        "rhat_max": [None], "ess_bulk_min": [None], "ess_tail_min": [None],
        "divergences": [None], "status": ["failed"],
        "reasons": ["analysis failed: ModelDataError: <b>no rated run-in day</b>"],
    })  # fmt: skip
    _write(folder, tables, config, "nb_totals")
    html = _report(folder)
    page = Page(html)
    assert page.ids.index("verdict") < page.ids.index("trial")
    assert "No verdict." in html and "verdict-table" not in page.tables
    assert "the intensity analysis did not complete (analysis failed: ModelDataError: " \
        "&lt;b&gt;no rated run-in day&lt;/b&gt;)" in html
