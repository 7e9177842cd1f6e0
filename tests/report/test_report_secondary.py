"""The report's secondary-endpoint sections: EMG, intensity and responders, safety, outcomes.

No sampling: each test builds a results folder in ``tmp_path`` from fabricated tables that
follow the output contract of ``crampstats.secondary`` (random numbers from a seeded generator,
so every expected cell is computed from the table written, never copied from a run), plus a
provenance record, a small cramp-frequency ``effects.csv`` and one fit file holding only the
attributes the report reads. The HTML is parsed with the standard library's parser
(:class:`helpers.Page`).
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
from helpers import Page, assert_self_contained

from crampstats.report import build_report, report_context
from crampstats.report import load as report_load
from crampstats.report import secondary as report_secondary
from crampstats.report.load import read_results

ARMS = ["placebo", "mexiletine", "quinine", "magnesium"]
CATEGORIES = ["cinchonism", "gastrointestinal", "other", "qt_prolongation", "visual_disturbance"]
HOSTILE = "<script>alert(1)</script>"
HOSTILE_TERM = 'Said "stop" & <b>left</b>'
SECTIONS = {
    "emg": "EMG endpoints",
    "intensity": "Intensity and responders",
    "safety": "Safety",
    "outcomes": "Outcome-measure properties",
}
SECONDARY_TABLES = (
    "effects_secondary", "diagnostics_secondary", "safety", "safety_signals", "serious_events",
    "cramp_potential", "locations", "outcome_measures",
)  # fmt: skip
#: effect measures per endpoint and whether they are ratios (log scale, 1 = no effect)
MEASURES = {
    "ctf": [("ratio_of_medians", True)],
    "afterdischarge": [("odds_ratio_lower_grade", True)],
    "intensity": [("difference_in_mean_intensity", False)],
    "responder": [("risk_difference", False), ("risk_ratio", True)],
}


# ---------------------------------------------------------------------------------------------
# A fabricated results folder
# ---------------------------------------------------------------------------------------------
def _effect(rng, ratio: bool, bayes: bool) -> dict[str, float]:
    centre = rng.normal(0.0, 0.2)
    half = rng.uniform(0.05, 0.3)
    est, lo, hi = centre, centre - half, centre + half
    if ratio:
        est, lo, hi = math.exp(est), math.exp(lo), math.exp(hi)
    return {
        "estimate_median": est,
        "lower": lo,
        "upper": hi,
        "p_benefit": rng.uniform(0.02, 0.98) if bayes else np.nan,
    }


def _tables(rng: np.random.Generator, arms: list[str], categories: list[str]) -> dict:
    control, active = arms[0], arms[1:]
    effects = []
    for endpoint, measures in MEASURES.items():
        for measure, ratio in measures:
            for arm in active[::-1]:  # the report sorts them
                for model in (endpoint, f"{endpoint}_twin"):
                    effects.append(
                        {
                            "trial_id": "fab", "endpoint": endpoint, "model": model, "arm": arm,
                            "comparator": control, "measure": measure,
                            **_effect(rng, ratio, model == endpoint), "status": "ok",
                        }
                    )  # fmt: skip
    safety, signals = [], []
    for arm in arms:
        for category in categories:
            k = int(rng.integers(0, 6))
            serious = int(k > 3)
            safety.append(
                {
                    "trial_id": "fab", "arm": arm, "category": category, "n_subjects": 40,
                    "n_with_event": k, "incidence": k / 40, "n_events": k + int(k > 2),
                    "n_serious": serious,
                }
            )  # fmt: skip
            if category in report_secondary.QUININE_SIGNALS:
                # as crampstats.models.safety.quinine_signals: every arm, zero counts included
                signals.append(
                    {
                        "trial_id": "fab", "arm": arm, "category": category, "n_subjects": 40,
                        "n_with_event": k, "n_events": k + int(k > 2), "n_serious": serious,
                        "any_serious": bool(serious), "flagged": k > 0, "signal": True,
                        "terms": "Tinnitus; Vertigo" if k else "", "first_study_day": 3 + k,
                    }
                )  # fmt: skip
            if arm == control:
                continue
            for measure, ratio in (("risk_difference", False), ("risk_ratio", True)):
                for model in ("safety", "safety_twin"):
                    effects.append(
                        {
                            "trial_id": "fab", "endpoint": "safety", "model": model, "arm": arm,
                            "comparator": control, "measure": f"{measure}:{category}",
                            **_effect(rng, ratio, model == "safety"), "status": "ok",
                        }
                    )  # fmt: skip
    diagnostics = [
        {
            "trial_id": "fab", "endpoint": e, "model": e, "rhat_max": 1 + rng.uniform(0, 0.005),
            "ess_bulk_min": rng.uniform(500, 2000), "ess_tail_min": rng.uniform(500, 2000),
            "divergences": 0, "status": "ok", "reasons": "",
        }
        for e in ("ctf", "afterdischarge", "intensity", "responder", "safety")
    ]  # fmt: skip
    serious_events = [
        {"trial_id": "fab", "subject_id": "fab-0007", "arm": arms[2], "term": HOSTILE_TERM,
         "category": categories[0], "study_day": 12},
        {"trial_id": "fab", "subject_id": "fab-0003", "arm": arms[1], "term": "Syncope",
         "category": "other", "study_day": 30},
    ]  # fmt: skip
    potential = [
        {
            "arm": arm, "visit": visit, "n": 40, "median_hz": med, "q1_hz": med * 0.8,
            "q3_hz": med * 1.25, "geometric_mean_hz": med * 1.02, "sd_log": 0.3,
        }
        for arm in arms[::-1]  # the report puts the control first
        for visit, med in zip(("baseline_1", "baseline_2", "end"), rng.uniform(50, 90, 3),
                              strict=True)
    ]  # fmt: skip
    locations = [
        {
            "arm": arm, "period": period, "location": loc, "subjects": 10, "cramp_days": days,
            "cramps": days + 3, "share_of_cramp_days": days / 60,
        }
        for arm in arms
        for period in ("run-in", "treatment")
        for loc, days in (("calf", 40), ("foot", 20))
    ]  # fmt: skip
    # as crampstats.secondary.outcome_measures writes it: reliability of cramp frequency and CTF,
    # agreement between them, SRM and patients needed per endpoint and arm (far end NaN =
    # unbounded)
    outcome = []
    for endpoint in ("cramp_frequency", "ctf"):
        icc = rng.uniform(0.3, 0.9)
        outcome += [
            {"endpoint": endpoint, "property": "icc", "estimate": icc, "lower": icc - 0.1,
             "upper": min(icc + 0.1, 0.99), "unit": "proportion, log scale", "n": 160,
             "note": ""},
            {"endpoint": endpoint, "property": "sem", "estimate": rng.uniform(1, 3),
             "lower": np.nan, "upper": np.nan, "unit": "cramps/week", "n": 160, "note": ""},
        ]  # fmt: skip
    outcome.append(
        {"endpoint": "cramp_frequency_vs_ctf", "property": "spearman_change",
         "estimate": np.nan, "lower": np.nan, "upper": np.nan, "unit": "Spearman rho",
         "n": 3, "note": "too few subjects"}
    )  # fmt: skip
    for endpoint in ("cramp_frequency", "ctf", "afterdischarge_grade"):
        for arm in active[::-1]:  # the report puts them in configured order
            n_needed = rng.uniform(5, 3000)
            outcome += [
                {"endpoint": endpoint, "property": f"srm:{arm}", "estimate": rng.normal(),
                 "lower": np.nan, "upper": np.nan, "unit": "SRM", "n": 40, "note": ""},
                {"endpoint": endpoint, "property": f"n_per_arm_for_power:{arm}",
                 "estimate": n_needed, "lower": n_needed / 3,
                 "upper": n_needed * 3 if n_needed < 100 else np.nan,
                 "unit": "patients per arm (power 0.8)", "n": 80, "note": "common design"},
            ]  # fmt: skip
    outcome = pd.DataFrame(outcome)
    outcome.insert(0, "trial_id", "fab")
    return {
        "effects_secondary": pd.DataFrame(effects),
        "diagnostics_secondary": pd.DataFrame(diagnostics),
        "safety": pd.DataFrame(safety),
        "safety_signals": pd.DataFrame(signals),
        "serious_events": pd.DataFrame(serious_events),
        "cramp_potential": pd.DataFrame(potential),
        "locations": pd.DataFrame(locations),
        "outcome_measures": outcome,
    }


def _results(
    folder: Path,
    rng: np.random.Generator,
    arms: list[str] = ARMS,
    categories: list[str] = CATEGORIES,
) -> Path:
    """Write a results folder: provenance, a primary effects table, secondary tables, one fit."""
    (folder / "tables").mkdir(parents=True)
    config = {
        "trial_id": "fab", "design": "parallel", "control_arm": arms[0], "arms": arms,
        "seed": 5, "analysis": {"level": 0.95, "threshold": 0.75,
                                "secondary": {"responder_threshold": 0.4}},
    }  # fmt: skip
    provenance = {
        "config": config,
        # as crampstats analyze records them: count models, then the secondary endpoints
        "models": ["nb_totals", "ctf", "afterdischarge", "cramp_potential", "intensity",
                   "responder", "safety", "location", "outcome_measures"],
        "failed_models": [], "endpoint": "cramp_frequency", "started_utc": "2026-01-01T00:00:00",
        "versions": {"crampstats": "test"},
    }  # fmt: skip
    (folder / "provenance.json").write_text(json.dumps(provenance), encoding="utf-8")
    primary = pd.DataFrame(
        {
            "trial_id": "fab", "endpoint": "cramp_frequency", "model": "nb_totals",
            "arm": arms[1:], "comparator": arms[0], "rr_median": 0.8, "rr_lower": 0.6,
            "rr_upper": 1.05, "p_rr_below_1": 0.9, "p_rr_below_threshold": 0.4,
            "abs_diff_per_week_median": -1.0, "abs_diff_per_week_lower": -2.0,
            "abs_diff_per_week_upper": 0.1, "status": "ok",
        }
    )  # fmt: skip
    primary.to_csv(folder / "tables" / "effects.csv", index=False)
    for name, df in _tables(rng, arms, categories).items():
        df.to_csv(folder / "tables" / f"{name}.csv", index=False)
    (folder / "fits").mkdir()
    with h5py.File(folder / "fits" / "ctf__ctf.nc", "w") as fh:
        post = fh.create_group("posterior")
        post.attrs["crampstats_model"] = "ctf"
        post.attrs["crampstats_model_config"] = json.dumps(
            {
                "control_arm": arms[0],
                "prior_log_ratio_sd": 0.37,
                "prior_alpha_mu": math.log(16),
                "prior_alpha_sd": 0.5,
                "prior_new_sd": 2.0,
            }
        )
    return folder


@pytest.fixture
def results(tmp_path, rng) -> Path:
    return _results(tmp_path / "results", rng)


def _csv(folder: Path, name: str) -> pd.DataFrame:
    return report_load.read_csv_table(folder / "tables" / f"{name}.csv")


def _section(html: str, section: str) -> str:
    start = html.index(f'<section id="{section}"')
    return html[start : html.index("</section>", start)]


def _prob(p: float) -> str:
    if np.isnan(p):
        return "\u2013"
    return "> 0.99" if p >= 0.995 else "< 0.01" if p <= 0.005 else f"{p:.2f}"


def _num(x: float, digits: int) -> str:
    return "\u2013" if np.isnan(x) else f"{x:.{digits}f}"


# ---------------------------------------------------------------------------------------------
# Sections, plots and numbers
# ---------------------------------------------------------------------------------------------
def test_each_section_has_heading_plot_table_and_nav_entry(results):
    html = build_report(results)
    assert_self_contained(html)
    page = Page(html)
    assert not page.errors and not page.stack
    nav = [
        a["href"][1:] for t, a in page.tags if t == "a" and str(a.get("href", "")).startswith("#")
    ]
    for section, heading in SECTIONS.items():
        assert page.ids.count(section) == 1, section
        block = _section(html, section)
        assert f"<h2>{heading}</h2>" in block
        assert block.count("<svg") == 1, section
        assert "interpretation" in block, section
        assert section in nav, section
    # contents in page order; the secondary sections between the primary ones and the methods
    order = [i for i in page.ids if i in nav]
    assert order == nav
    assert nav.index("patients" if "patients" in nav else "primary") < nav.index("emg")
    assert nav.index("outcomes") < nav.index("methods")
    # the secondary endpoints listed in provenance are not count models
    context = report_context(read_results(results))
    assert context["models"] == ["nb_totals"]
    assert [m["id"] for m in context["methods"]["models"]] == ["nb_totals"]
    duplicated = {i for i in page.ids if page.ids.count(i) > 1}
    assert not duplicated, sorted(duplicated)[:5]


@pytest.mark.parametrize(
    ("section", "table_id", "endpoints"),
    [("emg", "emg-table", ("ctf", "afterdischarge")),
     ("intensity", "intensity-table", ("intensity", "responder"))],
)  # fmt: skip
def test_effect_tables_match_effects_secondary(results, section, table_id, endpoints):
    effects = _csv(results, "effects_secondary")
    rows = Page(build_report(results)).tables[table_id]
    # one comparator throughout: named in the caption, not in a column
    assert rows[0] == ["Measure", "Arm", "Analysis", "Estimate", "95 % lower", "95 % upper",
                       "P(benefit)", "Fit"]  # fmt: skip
    expected = effects[effects["endpoint"].isin(endpoints)]
    assert len(rows) - 1 == len(expected)
    shown = {(r[0], r[1], r[2]): r for r in rows[1:]}
    heads = {"ctf": "CTF", "afterdischarge": "after-discharge grade", "intensity": "intensity",
             "responder": "responders"}  # fmt: skip
    measures = {"ratio_of_medians": "ratio of medians",
                "odds_ratio_lower_grade": "odds ratio of a lower grade",
                "difference_in_mean_intensity": "difference in means",
                "risk_difference": "risk difference", "risk_ratio": "risk ratio"}  # fmt: skip
    for rec in expected.to_dict("records"):
        analysis = "twin" if rec["model"].endswith("_twin") else "Bayesian"
        measure = f"{heads[rec['endpoint']]}: {measures[rec['measure']]}"
        cells = shown[(measure, rec["arm"], analysis)]
        digits = 3 if rec["measure"] == "risk_difference" else 2
        assert cells[3:6] == [_num(rec[c], digits) for c in ("estimate_median", "lower", "upper")]
        assert cells[6] == _prob(rec["p_benefit"])
        assert cells[7] == "ok"
    # arms in configured order within each measure, Bayesian before its twin
    first = [(r[1], r[2]) for r in rows[1:] if r[0] == rows[1][0]]
    assert first == [(a, k) for a in ARMS[1:] for k in ("Bayesian", "twin")]
    html = build_report(results)
    assert f"effects versus {ARMS[0]}</caption>" in _section(html, section)


def test_safety_incidence_effects_and_serious_events_match_the_tables(results):
    html = build_report(results)
    page = Page(html)
    safety = _csv(results, "safety")
    incidence = page.tables["incidence-table"]
    assert incidence[0] == ["Category", *ARMS]
    # quinine signal categories first, then the others alphabetically, "other" last
    signals = [c for c in report_secondary.QUININE_SIGNALS if c in CATEGORIES]
    rest = sorted(c for c in CATEGORIES if c not in signals and c != "other")
    assert [r[0] for r in incidence[1:]] == [*signals, *rest, "other"]
    for row in incidence[1:]:
        for arm, cell in zip(ARMS, row[1:], strict=True):
            rec = safety[(safety["arm"] == arm) & (safety["category"] == row[0])].iloc[0]
            text = f"{rec['n_with_event']}/{rec['n_subjects']} ({100 * rec['incidence']:.1f} %)"
            if rec["n_serious"]:
                text += f"; {rec['n_serious']} serious"
            assert cell == text
    effects = _csv(results, "effects_secondary")
    effects = effects[effects["endpoint"] == "safety"]
    table = page.tables["safety-effects-table"]
    assert len(table) - 1 == len(effects) // 2  # risk difference and ratio on one row
    for cells in table[1:]:
        category, arm, analysis = cells[:3]
        model = "safety_twin" if analysis == "twin" else "safety"
        part = effects[(effects["arm"] == arm) & (effects["model"] == model)]
        rd = part[part["measure"] == f"risk_difference:{category}"].iloc[0]
        rr = part[part["measure"] == f"risk_ratio:{category}"].iloc[0]
        rd_text = f"{rd['estimate_median']:.3f} ({rd['lower']:.3f} to {rd['upper']:.3f})"
        assert cells[3] == rd_text.replace("-0.000", "0.000")
        assert cells[4] == f"{rr['estimate_median']:.2f} ({rr['lower']:.2f} to {rr['upper']:.2f})"
        assert cells[5] == _prob(rd["p_benefit"])
    serious = page.tables["serious-table"]
    assert serious[0] == ["Subject", "Arm", "Term", "Category", "Study day"]
    # arm order: mexiletine (day 30) before quinine (day 12)
    assert [r[0] for r in serious[1:]] == ["fab-0003", "fab-0007"]
    assert serious[2][2] == HOSTILE_TERM
    block = _section(html, "safety")
    assert "fewer subjects with events" in block and "P(fewer events)" in block


def test_quinine_signal_box_lists_the_signals(results):
    html = build_report(results)
    page = Page(html)
    assert '<div id="quinine-signals" class="signal-box"' in _section(html, "safety")
    box = html[html.index('id="quinine-signals"') :]
    box = box[: box.index('<p class="small">Source')]
    assert "thrombocytopenia, QT prolongation, cinchonism" in box
    signals = _csv(results, "safety_signals")
    flagged = signals[signals["n_with_event"] > 0]
    assert 0 < len(flagged) < len(signals)
    rows = page.tables["signals-table"]
    assert rows[0] == ["Category", "Arm", "Subjects with an event", "Events", "Any serious",
                       "Terms reported", "First study day"]  # fmt: skip
    # only the arms with an event, signal categories in their fixed order, arms in arm order
    assert [(r[0], r[1]) for r in rows[1:]] == [
        (c, a)
        for c in report_secondary.QUININE_SIGNALS
        for a in ARMS
        if ((flagged["category"] == c) & (flagged["arm"] == a)).any()
    ]
    shown = {(r[0], r[1]): r[2:] for r in rows[1:]}
    for rec in flagged.to_dict("records"):
        assert shown[(rec["category"], rec["arm"])] == [
            str(rec["n_with_event"]), str(rec["n_events"]),
            "yes" if rec["any_serious"] else "no", rec["terms"], str(rec["first_study_day"]),
        ]  # fmt: skip
    # a signal category looked for without any event is named as such
    assert "thrombocytopenia" not in set(flagged["category"])
    assert "No event in any arm: thrombocytopenia." in box
    # the box is highlighted: a red border and background in the style sheet
    assert re.search(r"\.signal-box\s*\{[^}]*border:[^;]*var\(--bad\)", html)
    assert re.search(r"\.signal-box\s*\{[^}]*background:\s*var\(--bad-bg\)", html)
    assert "None recorded" not in box


def test_quinine_signal_box_says_none_recorded_or_falls_back_on_incidence(results):
    signals = _csv(results, "safety_signals")
    # every signal category looked for, none with an event
    signals.assign(n_with_event=0, n_events=0, flagged=False).to_csv(
        results / "tables" / "safety_signals.csv", index=False
    )
    html = build_report(results)
    box = html[html.index('id="quinine-signals"') :]
    box = box[: box.index('<p class="small">Source')]
    assert "None recorded: no subject had an event of these categories." in box
    assert "signals-table" not in Page(html).ids
    # an empty signal table says the same
    signals.iloc[0:0].to_csv(results / "tables" / "safety_signals.csv", index=False)
    assert "None recorded: no subject had" in build_report(results)
    # without a signal table the incidence table gives the same rows
    (results / "tables" / "safety_signals.csv").unlink()
    page = Page(build_report(results))
    rows = page.tables["signals-table"]
    flagged = signals[signals["n_with_event"] > 0]
    assert {(r[0], r[1], r[2]) for r in rows[1:]} == {
        (r["category"], r["arm"], str(r["n_with_event"])) for r in flagged.to_dict("records")
    }


def test_outcome_measures_table_and_plot(results):
    html = build_report(results)
    om = _csv(results, "outcome_measures")
    rows = Page(html).tables["outcomes-table"]
    assert rows[0] == ["Endpoint", "Property", "Estimate", "95 % interval", "Unit", "n", "Note"]
    assert len(rows) - 1 == len(om)
    labels = {"icc": "ICC", "sem": "SEM", "n_per_arm_for_power": "Patients per arm needed",
              "spearman_change": "Spearman rho, change", "srm": "SRM"}  # fmt: skip
    names = {"cramp_frequency": "cramp frequency", "ctf": "CTF",
             "afterdischarge_grade": "after-discharge grade",
             "cramp_frequency_vs_ctf": "cramp frequency vs CTF"}  # fmt: skip
    # a note repeated on consecutive rows of one endpoint is written once, then "(as above)"
    previous: tuple[str, str] = ("", "")
    for r in rows[1:]:
        if r[6] == "(as above)":
            assert r[0] == previous[0]
            r[6] = previous[1]
        previous = (r[0], r[6])
    assert sum(r[6] == "common design" for r in rows[1:]) == 3 * (len(ARMS) - 1)
    shown = {(r[0], r[1]): r for r in rows[1:]}
    for rec in om.to_dict("records"):
        prop, _, arm = rec["property"].partition(":")
        cells = shown[(names[rec["endpoint"]], labels[prop] + (f", {arm}" if arm else ""))]
        if prop == "n_per_arm_for_power":
            # rounded up: a sample size rounded down would fall short of the power; a missing
            # far end of its interval is unbounded
            assert cells[2] == f"{math.ceil(rec['estimate']):,}"
            upper = "\u221e" if np.isnan(rec["upper"]) else f"{math.ceil(rec['upper']):,}"
            assert cells[3] == f"{math.ceil(rec['lower']):,} to {upper}"
        else:
            assert cells[2] == _num(rec["estimate"], 2)
        if prop == "icc":
            assert cells[3] == f"{rec['lower']:.2f} to {rec['upper']:.2f}"
        if prop == "sem":
            assert cells[3] == "\u2013"
        assert cells[4] == rec["unit"]
        assert cells[6] == ("\u2013" if pd.isna(rec["note"]) else rec["note"])
    # arms in configured order within a property
    srm = [r[1] for r in rows[1:] if r[0] == "CTF" and r[1].startswith("SRM")]
    assert srm == [f"SRM, {a}" for a in ARMS[1:]]
    # endpoints in report order: cramp frequency, CTF, their agreement, after-discharges
    order = list(dict.fromkeys(r[0] for r in rows[1:]))
    assert order == [names[e] for e in ("cramp_frequency", "ctf", "cramp_frequency_vs_ctf",
                                        "afterdischarge_grade")]  # fmt: skip
    block = _section(html, "outcomes")
    assert block.count("<svg") == 1 and "test-retest reliability" in block


def test_cramp_potential_locations_and_fits_tables(results):
    page = Page(build_report(results))
    potential = _csv(results, "cramp_potential")
    rows = page.tables["cramp-potential-table"]
    assert [r[0] for r in rows[1:]] == [a for a in ARMS for _ in range(3)]
    for cells in rows[1:]:
        rec = potential[(potential["arm"] == cells[0]) & (potential["visit"] == cells[1])].iloc[0]
        assert cells[3] == f"{rec['median_hz']:.1f}"
        assert cells[4] == f"{rec['q1_hz']:.1f} to {rec['q3_hz']:.1f}"
    locations = page.tables["locations-table"]
    assert len(locations) - 1 == len(_csv(results, "locations"))
    assert locations[1][-1] == f"{100 * 40 / 60:.0f} %"
    fits = page.tables["emg-fits-table"]
    diag = _csv(results, "diagnostics_secondary")
    assert [r[0] for r in fits[1:]] == ["ctf", "afterdischarge"]
    assert fits[1][2] == f"{diag['rhat_max'].iloc[0]:.3f}"
    assert [r[0] for r in page.tables["intensity-fits-table"][1:]] == ["intensity", "responder"]
    assert [r[0] for r in page.tables["safety-fits-table"][1:]] == ["safety"]


def test_methods_describe_each_secondary_model(results):
    html = build_report(results)
    methods = _section(html, "methods")
    for endpoint in ("ctf", "afterdischarge", "intensity", "responder", "safety"):
        assert f'id="method-secondary-{endpoint}"' in methods, endpoint
        assert f"Frequentist twin ({endpoint}_twin): " in methods
    ctf = methods[methods.index('id="method-secondary-ctf"') :]
    ctf = ctf[: ctf.index("</div>")]
    # the priors recorded with the fit, with the CTF model's meanings (not the count models')
    assert "Priors (recorded with the fit)" in ctf
    assert "log_ratio ~ Normal(0, 0.37): log ratio of each active arm" in ctf
    assert "alpha ~ Normal(2.773, 0.5), i.e. a median of 16 Hz" in ctf
    assert "cramps a day" not in ctf
    assert "prior new: sd = 2" in ctf  # a prior the report does not know, as it is
    assert "right-censored" in ctf
    # the run's responder definition
    assert "at least 40 % below the run-in rate" in methods
    assert "Outcome-measure properties were computed from the data of this trial" in methods
    # a model whose endpoint is not in effects_secondary gets no paragraph
    effects = _csv(results, "effects_secondary")
    effects[effects["endpoint"] != "afterdischarge"].to_csv(
        results / "tables" / "effects_secondary.csv", index=False
    )
    methods = _section(build_report(results), "methods")
    assert 'id="method-secondary-afterdischarge"' not in methods
    assert 'id="method-secondary-ctf"' in methods


# ---------------------------------------------------------------------------------------------
# Absent tables, failed fits, escaping
# ---------------------------------------------------------------------------------------------
def test_sections_disappear_when_their_tables_are_absent(results):
    for name in SECONDARY_TABLES:
        (results / "tables" / f"{name}.csv").unlink()
    html = build_report(results)
    page = Page(html)
    for section in SECTIONS:
        assert section not in page.ids, section
        assert f'href="#{section}"' not in html
    assert "method-secondary-ctf" not in html and "methods-secondary" not in page.ids
    assert "primary" in page.ids and "methods" in page.ids
    assert not page.errors


@pytest.mark.parametrize(
    ("kept", "present", "absent"),
    [
        ("cramp_potential", {"emg": "cramp-potential-table"}, ["emg-plot", "emg-table"]),
        ("locations", {"intensity": "locations-table"}, ["intensity-plot"]),
        ("serious_events", {"safety": "serious-table"}, ["safety-plot", "incidence-table"]),
        ("outcome_measures", {"outcomes": "outcomes-table"}, ["emg", "safety"]),
    ],
)
def test_a_section_shows_what_its_one_table_holds(results, kept, present, absent):
    for name in SECONDARY_TABLES:
        if name != kept:
            (results / "tables" / f"{name}.csv").unlink()
    html = build_report(results)
    page = Page(html)
    for section, table_id in present.items():
        assert section in page.ids and table_id in page.ids
        assert f'href="#{section}"' in html
        if kept in ("cramp_potential", "locations"):
            # no effects: the lead says so rather than promising a comparison
            assert "not compared between arms in this run" in _section(html, section)
    for other in absent:
        assert other not in page.ids
    shown = {s for s in SECTIONS if s in page.ids}
    assert shown == set(present)
    assert not page.errors


def test_empty_or_headerless_tables_are_treated_as_absent_or_empty(results):
    (results / "tables" / "effects_secondary.csv").write_text("", encoding="utf-8")
    serious = _csv(results, "serious_events")
    serious.iloc[0:0].to_csv(results / "tables" / "serious_events.csv", index=False)
    html = build_report(results)
    page = Page(html)
    assert "emg-table" not in page.ids and "emg-plot" not in page.ids
    assert "emg" in page.ids  # still: cramp potentials and fits
    block = _section(html, "safety")
    assert 'id="serious-events"' in block and "None recorded." in block


def test_missing_optional_columns_degrade_gracefully(results):
    effects = _csv(results, "effects_secondary").drop(columns=["p_benefit", "comparator"])
    effects.to_csv(results / "tables" / "effects_secondary.csv", index=False)
    safety = _csv(results, "safety").drop(columns=["incidence", "n_serious"])
    safety.to_csv(results / "tables" / "safety.csv", index=False)
    _csv(results, "outcome_measures").drop(columns=["note", "unit"]).to_csv(
        results / "tables" / "outcome_measures.csv", index=False
    )
    page = Page(build_report(results))
    rows = page.tables["emg-table"]
    assert rows[0][:3] == ["Measure", "Arm", "Analysis"]
    assert all(r[6] == "\u2013" for r in rows[1:])
    # the incidence is computed from the counts when its column is absent
    cells = page.tables["incidence-table"][1]
    rec = safety[(safety["arm"] == ARMS[0]) & (safety["category"] == cells[0])].iloc[0]
    assert cells[1] == f"{rec['n_with_event']}/40 ({100 * rec['n_with_event'] / 40:.1f} %)"
    assert "outcomes-table" in page.ids and not page.errors


def test_failed_secondary_fits_are_listed_at_the_top(results):
    diag = _csv(results, "diagnostics_secondary")
    diag.loc[diag["model"] == "ctf", ["status", "reasons"]] = ["failed", "R-hat 1.08 > 1.01"]
    diag.to_csv(results / "tables" / "diagnostics_secondary.csv", index=False)
    effects = _csv(results, "effects_secondary")
    effects.loc[effects["model"] == "ctf", "status"] = "failed"
    effects.loc[effects["model"] == "responder_twin", "status"] = "failed"
    effects.to_csv(results / "tables" / "effects_secondary.csv", index=False)
    prov = json.loads((results / "provenance.json").read_text())
    prov["failed_models"] = ["ctf"]
    (results / "provenance.json").write_text(json.dumps(prov))
    html = build_report(results)
    top = html.index('id="failed-diagnostics"')
    assert top < html.index("<main>")
    alert = html[top : html.index("</div>", top)]
    assert 'class="alert"' in alert
    items = re.findall(r"<li>(.*?)</li>", alert, re.DOTALL)
    assert len(items) == 2  # ctf once (not again from provenance), the twin once
    assert "ctf (secondary endpoint: cramp threshold frequency (CTF))" in items[0]
    assert "R-hat 1.08 &gt; 1.01" in items[0]
    assert "responder_twin (frequentist twin: responders)" in items[1]
    page = Page(html)
    emg = page.tables["emg-table"]
    failed_rows = [r for r in emg[1:] if r[7] == "failed"]
    assert len(failed_rows) == len(ARMS) - 1
    assert '<tr class="failed">' in _section(html, "emg")
    assert page.tables["emg-fits-table"][1][1] == "failed"


def test_a_failed_safety_fit_is_named_in_its_rows(results):
    diag = _csv(results, "diagnostics_secondary")
    diag.loc[diag["model"] == "safety", ["status", "reasons"]] = ["failed", "3 divergences"]
    diag.to_csv(results / "tables" / "diagnostics_secondary.csv", index=False)
    effects = _csv(results, "effects_secondary")
    effects.loc[effects["model"] == "safety", "status"] = "failed"
    effects.to_csv(results / "tables" / "effects_secondary.csv", index=False)
    html = build_report(results)
    alert = html[html.index('id="failed-diagnostics"') : html.index("<main>")]
    assert "safety (secondary endpoint: adverse events)" in alert and "3 divergences" in alert
    rows = Page(html).tables["safety-effects-table"][1:]
    assert {r[2] for r in rows} == {"Bayesian (failed)", "twin"}
    block = _section(html, "safety")
    assert block.count('<tr class="failed">') == len(rows) // 2 + 1  # effects rows and the fit


def test_hostile_names_are_escaped(tmp_path, rng):
    # dollar signs would start matplotlib mathtext (a parse error, or a formula) in a figure
    arms = ["placebo", r"mex $\nonsense{$", HOSTILE]
    categories = ["cinchonism", HOSTILE, "other", r"a $\nonsense{$ b"]
    folder = _results(tmp_path / "results", rng, arms=arms, categories=categories)
    html = build_report(folder)
    assert_self_contained(html)
    assert HOSTILE not in html and HOSTILE_TERM not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "Said &#34;stop&#34; &amp; &lt;b&gt;left&lt;/b&gt;" in html
    page = Page(html)
    assert not page.errors
    assert not any(t in ("script", "b") for t, _ in page.tags)
    text = "".join(page.text)
    assert HOSTILE in text and HOSTILE_TERM in text
    # the hostile arm's rows and the hostile category's rows are in the tables as text
    assert any(r[1] == HOSTILE for r in page.tables["emg-table"][1:])
    assert any(r[0] == HOSTILE for r in page.tables["incidence-table"][1:])
    assert page.tables["incidence-table"][0][-1] == HOSTILE
    assert any(r[0] == r"a $\nonsense{$ b" for r in page.tables["incidence-table"][1:])
    for section in SECTIONS:
        assert "<svg" in _section(html, section)


def test_secondary_tables_are_those_the_analysis_writes():
    from crampstats import secondary

    assert set(SECONDARY_TABLES) == set(secondary.TABLES) <= set(report_load.TABLES)


def test_known_secondary_priors_name_the_models_priors():
    """Every prior of a model the report describes has a family and meaning in the report."""
    from crampstats.catalogue import endpoint_entry
    from crampstats.report import text

    for endpoint, known in text.SECONDARY_PRIORS.items():
        config = endpoint_entry(endpoint).model.default_model_config
        stems = {
            k.removeprefix("prior_").removesuffix("_mu").removesuffix("_sd")
            for k in config
            if k.startswith("prior_")
        }
        assert stems == set(known), endpoint
        lines = text.prior_lines(config, known=known)
        for name, (family, meaning, *_) in known.items():
            line = next(x for x in lines if x.startswith((f"{name} ~ ", f"prior {name}: ")))
            assert meaning in line and (not family or f"{name} ~ {family}(" in line), line


def test_numbers_that_round_to_zero_have_no_sign():
    from crampstats.report.text import num

    assert [num(x, 3) for x in (-0.0004, -0.0, 0.0004, -0.0126)] == [
        "0.000", "0.000", "0.000", "-0.013",
    ]  # fmt: skip
    assert num(-0.004, 2) == "0.00" and num(-5, 0) == "-5" and num(float("nan")) == "\u2013"
