"""The reviewer's report: sections, numbers against the tables, safety, escaping, determinism.

Two small analyses of the bundled example trial are run once per module (``crampstats analyze``
in-process, reduced sampler): a normal one, and a hostile one whose arm and subject names are
HTML/JS and whose tiny sampler makes the fit fail its diagnostics. The HTML is parsed with the
standard library's :class:`html.parser.HTMLParser` only (``helpers.Page``).
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml
from helpers import (
    DATA,
    EXAMPLE,
    EXAMPLE_ARMS,
    HOSTILE_ARM,
    HOSTILE_ID,
    Page,
    assert_self_contained,
)

from crampstats.analyze import analyze
from crampstats.report import build_report, write_report
from crampstats.report import text as report_text
from crampstats.report.load import read_csv_table

ARMS = EXAMPLE_ARMS
SECTIONS = [
    "summary", "trial", "baseline", "primary", "decisions", "sensitivity", "missing_data", "course",
    "checking", "emg", "intensity", "safety", "methods", "provenance",
]  # fmt: skip


def _config(path: Path, arms: list[str], **analysis) -> Path:
    cfg = {
        "trial_id": "example",
        "design": "parallel",
        "control_arm": "placebo",
        "arms": arms,
        "seed": 11,
        "analysis": {
            "sampler": {"chains": 4, "draws": 300, "tune": 300, "cores": 2},
            # 300 draws a chain: R-hat may exceed 1.01 by chance; the gate itself is tested below
            "diagnostics": {"ess_bulk_min": 100, "ess_tail_min": 100, "rhat_max": 1.03},
            **analysis,
        },
    }
    path.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("report")
    # a prior override, to check that the methods report the prior actually used
    config = _config(tmp / "trial.yaml", ARMS, model_config={"nb_totals": {"prior_log_rr_sd": 0.8}})
    analyze(EXAMPLE, tmp / "results", config, echo=lambda _line: None)
    return tmp / "results"


@pytest.fixture(scope="module")
def html(results) -> str:
    return build_report(results)


@pytest.fixture(scope="module")
def hostile(hostile_results) -> tuple[Path, str]:
    results, failed = hostile_results
    # the secondary endpoints' models (same sampler) fail the gate too, after the count models
    assert failed[:2] == ["nb_totals", "frailty_weekly"]
    return results, build_report(results)


def _effects(results: Path, model: str = "nb_totals") -> pd.DataFrame:
    effects = read_csv_table(results / "tables" / "effects.csv")
    return effects[effects["model"] == model].reset_index(drop=True)


def _prob_matches(shown: str, p: float) -> bool:
    if shown == "> 0.99":
        return p >= 0.99
    if shown == "< 0.01":
        return p <= 0.01
    return abs(float(shown) - p) <= 0.0051


def _bound_to_rr(words: str, headline: str) -> float:
    m = re.fullmatch(r"(\d+) %(?: (reduction|increase))?|no change", words.strip())
    assert m, words
    if words.strip() == "no change":
        return 1.0
    direction = m.group(2) or headline
    pct = int(m.group(1)) / 100
    return 1 - pct if direction == "reduction" else 1 + pct


# ---------------------------------------------------------------------------------------------
# Structure
# ---------------------------------------------------------------------------------------------
def test_every_section_is_present_once_and_the_page_is_well_formed(html):
    page = Page(html)
    assert html.startswith("<!DOCTYPE html>")
    for section in SECTIONS:
        assert page.ids.count(section) == 1, section
    for sub in (
        "diagnostics",
        "rootograms",
        "loo",
        "prior-sensitivity",
        "consort",
        "validation-warnings",
    ):
        assert sub in page.ids, sub
    # a parallel trial has no per-patient effects
    assert "patients" not in page.ids
    assert not page.errors, page.errors[:5]
    assert not page.stack, page.stack
    # ids are unique, also across the inline SVG figures (prefixed per figure)
    duplicated = {i for i in page.ids if page.ids.count(i) > 1}
    assert not duplicated, sorted(duplicated)[:5]
    figures = [a for t, a in page.tags if t == "svg"]
    assert len(figures) >= 5  # forest, sensitivity, course, two rootograms


def test_summary_sentences_match_effects(results, html):
    effects = _effects(results)
    page = Page(html)
    sentences = {str(attrs["data-arm"]): text for attrs, text in page.results}
    assert list(sentences) == list(effects["arm"])
    pattern = re.compile(
        r"(?P<arm>.+?) (?P<verb>reduced|increased) cramp frequency by (?P<pct>\d+) % versus "
        r"placebo \(95 % CrI (?P<low>.+?) to (?P<high>.+?)\); probability of any reduction "
        r"(?P<p1>.+?), of a reduction of at least 25 % (?P<p2>.+?)\.$"
    )
    neutral = re.compile(
        r"(?P<arm>.+?): cramp frequency estimated (?P<pct>\d+) % (?P<dir>lower|higher) than "
        r"with placebo; 95 % CrI from (?P<first>\d+) % (?P<d1>lower|higher) to (?P<second>\d+) % "
        r"(?P<d2>lower|higher); probability of any reduction (?P<p1>.+?), of a reduction of at "
        r"least 25 % (?P<p2>.+?)\.$"
    )
    for row in effects.to_dict("records"):
        sentence = sentences[row["arm"]]
        # a verb only when the interval excludes RR 1 (issue 14: neutral wording otherwise)
        if row["rr_lower"] <= 1 <= row["rr_upper"]:
            m = neutral.match(sentence)
            assert m, sentence
            rr = row["rr_median"]
            assert (m["dir"] == "lower") == (rr < 1)
            assert int(m["pct"]) == round(100 * abs(1 - rr))
            assert _prob_matches(m["p1"], row["p_rr_below_1"])
            continue
        m = pattern.match(sentence)
        assert m, sentence
        assert m["arm"] == row["arm"].replace("_", " ").capitalize()
        rr = row["rr_median"]
        headline = "reduction" if m["verb"] == "reduced" else "increase"
        assert (rr < 1) == (headline == "reduction")
        assert int(m["pct"]) == round(100 * abs(1 - rr))
        # bounds: the smaller change first
        first, second = (
            (row["rr_upper"], row["rr_lower"]) if rr < 1 else (row["rr_lower"], row["rr_upper"])
        )
        assert _bound_to_rr(m["low"], headline) == pytest.approx(first, abs=0.0051)
        assert _bound_to_rr(m["high"], headline) == pytest.approx(second, abs=0.0051)
        assert _prob_matches(m["p1"], row["p_rr_below_1"]), (m["p1"], row["p_rr_below_1"])
        assert _prob_matches(m["p2"], row["p_rr_below_threshold"])


def test_primary_table_matches_effects(results, html):
    effects = _effects(results)
    rows = Page(html).tables["primary-table"]
    header, body = rows[0], rows[1:]
    assert header[:5] == ["Arm", "Versus", "Rate ratio", "95 % CrI lower", "95 % CrI upper"]
    assert len(body) == len(effects)
    for cells, row in zip(body, effects.to_dict("records"), strict=True):
        assert cells[0] == row["arm"] and cells[1] == "placebo"
        for cell, col in zip(cells[2:5], ("rr_median", "rr_lower", "rr_upper"), strict=True):
            assert cell == f"{row[col]:.2f}"
        assert _prob_matches(cells[5], row["p_rr_below_1"])
        assert _prob_matches(cells[6], row["p_rr_below_threshold"])
        assert cells[7] == row["status"] == "ok"


def test_decision_and_ranking_tables_match_the_csv(results, html):
    page = Page(html)
    effects = _effects(results)
    decisions = page.tables["decision-table"][1:]
    for cells, row in zip(decisions, effects.to_dict("records"), strict=True):
        assert cells[0] == row["arm"]
        assert cells[3] == f"{row['abs_diff_per_week_median']:.2f}"
    ranks = read_csv_table(results / "tables" / "rankings.csv")
    ranks = ranks[ranks["model"] == "nb_totals"]
    shown = {cells[0]: cells for cells in page.tables["ranking-table"][1:]}
    assert set(shown) == set(ranks["arm"])  # control included
    for row in ranks.to_dict("records"):
        assert shown[row["arm"]][1] == f"{row['p_best']:.2f}"
        assert shown[row["arm"]][3] == f"{row['sucra']:.2f}"


def test_methods_report_the_priors_and_sampler_used(html):
    methods = html[html.index('<section id="methods"') :]
    methods = methods[: methods.index("</section>")]
    nb = methods[methods.index('id="method-nb_totals"') : methods.index('id="method-frailty')]
    # the configured override, not the default SD of 1
    assert "log_rr ~ Normal(0, 0.8)" in nb
    fw = methods[methods.index('id="method-frailty_weekly"') :]
    assert "log_rr ~ Normal(0, 1)" in fw and "trend ~ Normal(0, 0.1)" in fw
    assert "4 chains of 300 draws after 300 tuning iterations" in methods
    assert "bulk and tail effective sample sizes were at least 100 and 100" in methods
    assert "statsmodels NB2 GLM" in methods


# ---------------------------------------------------------------------------------------------
# Safety: nothing executable, nothing remote
# ---------------------------------------------------------------------------------------------
def test_report_has_no_script_and_no_remote_reference(html):
    assert_self_contained(html)
    # figures: text is drawn as paths, so no data string can hide in SVG text
    assert "<text" not in html


def test_hostile_names_are_escaped(hostile):
    _, html = hostile
    assert_self_contained(html)
    assert HOSTILE_ARM not in html
    assert HOSTILE_ID not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "O&#39;Brien &amp; &#34;Sons&#34;" in html
    page = Page(html)
    # the parser sees the names as text, never as tags
    text = "".join(page.text)
    assert HOSTILE_ARM in text and HOSTILE_ID in text
    assert not page.errors, page.errors[:5]
    arms = [str(a["data-arm"]) for a, _ in page.results]
    assert HOSTILE_ARM in arms


def test_failed_diagnostics_are_shown_in_red_at_the_top(hostile, html):
    _, bad = hostile
    top = bad.index('id="failed-diagnostics"')
    assert top < bad.index('<section id="summary"')
    block = bad[top : bad.index("</div>", top)]
    assert 'class="alert"' in block and "nb_totals" in block and "ESS" in block
    # red: the alert's colour and the failed rows' class
    assert re.search(r"--bad:\s*#b00020", bad)
    assert re.search(r"\.alert\s*\{[^}]*color:\s*var\(--bad\)", bad)
    assert 'class="result failed"' in bad and "do not rely on it" in bad
    page = Page(bad)
    assert all(cells[7] == "failed" for cells in page.tables["primary-table"][1:])
    # a report whose fits passed has no such block
    assert 'id="failed-diagnostics"' not in html


# ---------------------------------------------------------------------------------------------
# Determinism, writing, partial folders
# ---------------------------------------------------------------------------------------------
def test_rebuild_is_byte_identical_and_independent_of_the_folder(results, html, tmp_path):
    # (how long a build takes is a benchmark, not a test: it depends on the machine's load)
    assert build_report(results) == html
    moved = tmp_path / "elsewhere"
    shutil.copytree(results, moved)
    assert build_report(moved) == html


def test_write_report_writes_atomically(results, html, tmp_path, monkeypatch):
    out = tmp_path / "sub" / "report.html"
    assert write_report(results, out) == out
    assert out.read_text(encoding="utf-8") == html
    assert sorted(p.name for p in out.parent.iterdir()) == ["report.html"]
    # the final rename fails: the previous report stays whole, nothing is left beside it
    out.write_text("previous report", encoding="utf-8")

    def fail(*args, **kwargs):
        raise OSError("injected failure of the final rename")

    monkeypatch.setattr("os.replace", fail)
    with pytest.raises(OSError, match="injected"):
        write_report(results, out)
    monkeypatch.undo()
    assert out.read_text(encoding="utf-8") == "previous report"
    assert sorted(p.name for p in out.parent.iterdir()) == ["report.html"]


def test_sections_are_left_out_when_their_data_are_absent(results, tmp_path):
    partial = tmp_path / "partial"
    shutil.copytree(results, partial)
    for name in ("course", "ppc", "loo", "diagnostics", "frequentist", "rankings"):
        (partial / "tables" / f"{name}.csv").unlink()
    shutil.rmtree(partial / "fits")
    page = Page(build_report(partial))
    for present in ("summary", "primary", "sensitivity", "methods", "provenance", "emg"):
        assert present in page.ids, present
    for absent in ("course", "checking", "rootograms", "loo", "rankings"):
        assert absent not in page.ids, absent
    # methods fall back on the configuration and the models' defaults
    assert not page.errors


def test_missing_folder_is_refused(tmp_path):
    from crampstats.errors import CrampstatsError

    with pytest.raises(CrampstatsError, match="no such results folder"):
        build_report(tmp_path / "nothing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CrampstatsError, match="not a results folder"):
        build_report(tmp_path / "empty")


def test_patient_effects_section_with_truncated_table(results, tmp_path):
    """Per-patient effects (crossover / N-of-1) with a long table: plot, truncation, escaping."""
    folder = tmp_path / "crossover"
    shutil.copytree(results, folder)
    n = 250
    rr = [0.5 + i / n for i in range(n)]
    patients = pd.DataFrame(
        {
            "trial_id": "example", "endpoint": "cramp_frequency", "model": "crossover",
            "subject_id": [HOSTILE_ID] + [f"p{i:03d}" for i in range(1, n)],
            "arm": "mexiletine", "comparator": "placebo", "effect_median": rr,
            "effect_lower": [r * 0.7 for r in rr], "effect_upper": [r * 1.4 for r in rr],
            "p_own_benefit": [max(0.0, min(1.0, 1.5 - r)) for r in rr], "n_periods": 4,
        }
    )  # fmt: skip
    patients.to_csv(folder / "tables" / "patients.csv", index=False)
    html = build_report(folder)
    assert_self_contained(html)
    page = Page(html)
    assert "patients" in page.ids and "patients-table" in page.ids
    assert len(page.tables["patients-table"]) == 1 + 200
    assert "Showing the first 200 of 250 rows; the full table is tables/patients.csv." in html
    assert HOSTILE_ID not in html and "O&#39;Brien &amp; &#34;Sons&#34;" in html
    assert any(t == "figure" and "patients-plot" in (a.get("class") or "") for t, a in page.tags)


def test_sentences_handle_increases_and_uncertain_direction():
    row = {
        "arm": "magnesium",
        "rr_median": 1.31,
        "rr_lower": 1.1,
        "rr_upper": 1.52,
        "p_rr_below_1": 0.001,
        "p_rr_below_threshold": 0.0,
    }
    assert report_text.summary_sentence(row, "placebo", 0.9, 0.8) == (
        "Magnesium increased cramp frequency by 31 % versus placebo (90 % CrI 10 % to 52 %); "
        "probability of any reduction < 0.01, of a reduction of at least 20 % < 0.01."
    )
    row = {
        "arm": "quinine",
        "rr_median": 0.86,
        "rr_lower": 0.73,
        "rr_upper": 1.04,
        "p_rr_below_1": 0.95,
        "p_rr_below_threshold": 0.06,
    }
    assert report_text.summary_sentence(row, "placebo", 0.95, 0.75).startswith(
        "Quinine: cramp frequency estimated 14 % lower than with placebo; 95 % CrI from 4 % "
        "higher to 27 % lower; probability of any reduction 0.95"
    )
    row = {
        "arm": "b",
        "rr_median": 1.002,
        "rr_lower": 0.9,
        "rr_upper": 1.1,
        "p_rr_below_1": 0.49,
        "p_rr_below_threshold": 0.0,
    }
    assert report_text.summary_sentence(row, "a", 0.95, 0.75).startswith(
        "B: cramp frequency estimated unchanged versus a (rate ratio 1.00); 95 % CrI from 10 % "
        "lower to 10 % higher;"
    )


@pytest.mark.parametrize(
    ("interval", "expected"),
    [
        # below 1: the verb is earned
        ((0.58, 0.48, 0.69), "Quinine reduced cramp frequency by 42 % versus placebo (95 % CrI "
         "31 % to 52 %);"),
        # above 1
        ((1.31, 1.10, 1.52), "Quinine increased cramp frequency by 31 % versus placebo (95 % "
         "CrI 10 % to 52 %);"),
        # across 1, estimate below: the example report's vitamin B complex (issue 14)
        ((0.94, 0.79, 1.11), "Quinine: cramp frequency estimated 6 % lower than with placebo; "
         "95 % CrI from 11 % higher to 21 % lower;"),
        # across 1, estimate above
        ((1.08, 0.90, 1.30), "Quinine: cramp frequency estimated 8 % higher than with placebo; "
         "95 % CrI from 10 % lower to 30 % higher;"),
        # across 1 by a hair: 2 % higher at the upper bound still forbids "reduced"
        ((0.76, 0.56, 1.02), "Quinine: cramp frequency estimated 24 % lower than with placebo; "
         "95 % CrI from 2 % higher to 44 % lower;"),
    ],
)
def test_wording_claims_a_direction_only_when_the_interval_excludes_1(interval, expected):
    rr, lower, upper = interval
    row = {
        "arm": "quinine",
        "rr_median": rr,
        "rr_lower": lower,
        "rr_upper": upper,
        "p_rr_below_1": 0.5,
        "p_rr_below_threshold": 0.1,
    }
    sentence = report_text.summary_sentence(row, "placebo", 0.95, 0.75)
    assert sentence.startswith(expected), sentence
    excludes_1 = upper < 1 or lower > 1
    assert (" reduced " in sentence or " increased " in sentence) == excludes_1


def test_within_subject_trial_sections_group_by_sequence(tmp_path):
    """A crossover trial's flow and baseline tables are by sequence (no fits needed)."""
    from crampstats import derive
    from crampstats import validate as validation
    from crampstats.config import load_trial_config
    from crampstats.outputs import to_json, write_parquet

    config_path = tmp_path / "trial.yaml"
    config_path.write_text(
        yaml.safe_dump(
            {
                "trial_id": "xo",
                "design": "crossover",
                "control_arm": "placebo",
                "arms": ["placebo", "mexiletine"],
            }
        ),
        encoding="utf-8",
    )
    data = DATA / "example_crossover"
    result = validation.validate(data, load_trial_config(config_path, data))
    assert result.ok
    folder = tmp_path / "results"
    validation.write_validated(result, folder / "validated")
    (folder / "derived").mkdir()
    periods = derive.derive_all(result.tables, result.config)["periods"]
    write_parquet(periods, folder / "derived" / "periods.parquet")
    (folder / "provenance.json").write_text(to_json({"config": result.config, "models": []}))
    html = build_report(folder)
    assert_self_contained(html)
    page = Page(html)
    flow = page.tables["consort-table"]
    subjects = pd.read_csv(data / "subjects.csv")
    by_sequence = subjects.groupby("sequence")["withdrawal_day"]
    assert [row[0] for row in flow[1:]] == [*sorted(by_sequence.groups), "All"]
    for row in flow[1:-1]:
        assert int(row[1]) == by_sequence.size()[row[0]]
        assert int(row[2]) == by_sequence.count()[row[0]]
    assert flow[-1][1] == str(len(subjects))
    assert page.tables["baseline-table"][0] == [
        "Characteristic",
        *sorted(by_sequence.groups),
        "All",
    ]
    for absent in ("summary", "primary", "checking", "patients"):
        assert absent not in page.ids


def test_sentence_without_estimate():
    row = {
        "arm": "x",
        "rr_median": float("nan"),
        "rr_lower": float("nan"),
        "rr_upper": float("nan"),
        "p_rr_below_1": float("nan"),
        "p_rr_below_threshold": float("nan"),
    }
    assert report_text.summary_sentence(row, "placebo", 0.95, 0.75) == (
        "X: no estimate of the rate ratio versus placebo is available."
    )
