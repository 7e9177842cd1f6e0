"""The power report (crampstats.power.report): self-contained, escaped, figures that say the data.

A fixed-design folder is written by hand (power.csv and a decisions file carrying the run's
description), so the curve's coordinates can be checked against known powers; a sequential
folder comes from the Laplace path (fast, no compile).
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from html.parser import HTMLParser

import numpy as np
import pandas as pd
import pytest

from crampstats.errors import CrampstatsError
from crampstats.power import check_power_config
from crampstats.power.cli import main
from crampstats.power.report import build_power_report, curve_svg, write_power_report
from crampstats.power.run import write_decisions
from crampstats.power.sequential import run_sequential_shard, summarize_sequential

RULE = "P(RR<1)>0.975"  # the natural escaping test: a rule name with < and >
EVIL_ARM = "<img src=x onerror=alert(1)>"


def _fixed_folder(root):
    folder = root / "two_arm"
    folder.mkdir(parents=True)
    n = [20, 40, 60]
    power = [0.2, 0.5, 0.8]
    table = pd.DataFrame(
        {
            "design": "two_arm",
            "n_per_arm": n,
            "arm": EVIL_ARM,
            "effect": "rr=0.75",
            "true_rr": 0.75,
            "rule": RULE,
            "replicates": 500,
            "power": power,
            "lower": [p - 0.04 for p in power],
            "upper": [p + 0.04 for p in power],
            "target_power": 0.8,
            "n_diagnostics_failed": 0,
        }
    )
    table.to_csv(folder / "power.csv", index=False)
    meta = {
        "design": "two_arm",
        "rules": [{"name": RULE, "threshold_rr": 1.0, "probability": 0.975}],
        "model": "nb_totals",
        "mode": "mcmc",
        "sampler": {"chains": 4, "draws": 1000},
        "seed": 1,
    }
    write_decisions(pd.DataFrame({"replicate": [0]}), folder / "decisions-1-of-1.parquet", meta)
    return folder


class _Collect(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


def _check_self_contained(page: str) -> _Collect:
    parser = _Collect()
    parser.feed(page)
    tags = {t for t, _ in parser.tags}
    assert not tags & {"script", "link", "img", "iframe", "object", "embed"}
    for _, attrs in parser.tags:
        assert "src" not in attrs
        assert attrs.get("href", "#").startswith("#")
        assert not any(k.startswith("on") for k in attrs)
    assert "Content-Security-Policy" in page and "default-src 'none'" in page
    assert "url(" not in page and "@import" not in page
    return parser


def test_fixed_design_page_is_escaped_and_self_contained(tmp_path):
    _fixed_folder(tmp_path)
    page = build_power_report(tmp_path)
    _check_self_contained(page)
    assert EVIL_ARM not in page and "&lt;img src=x onerror=alert(1)&gt;" in page
    assert RULE not in page and "P(RR&lt;1)&gt;0.975" in page
    # protocol sentence: the estimate at the first n reaching the target, with its interval
    assert "With 60 patients per arm, the estimated power" in page
    assert "0.800 (95 % Monte Carlo interval 0.760 to 0.840; 500 simulated trials)" in page
    for svg in re.findall(r"<svg.*?</svg>", page, flags=re.S):
        ET.fromstring(svg)  # well-formed XML


def test_curve_points_sit_at_the_powers():
    table = pd.DataFrame(
        {
            "n_per_arm": [10, 20, 30],
            "arm": "a",
            "rule": "r",
            "power": [0.0, 0.5, 1.0],
            "lower": [0.0, 0.4, 0.9],
            "upper": [0.1, 0.6, 1.0],
        }
    )
    svg = ET.fromstring(curve_svg(table, target=0.8))
    ns = {"s": "http://www.w3.org/2000/svg"}
    circles = svg.findall(".//s:circle", ns)
    cx = [float(c.get("cx")) for c in circles]
    cy = [float(c.get("cy")) for c in circles]
    # equally spaced n -> equally spaced x; power 0, 0.5, 1 -> bottom, middle, top
    assert np.diff(cx) == pytest.approx([cx[1] - cx[0]] * 2)
    assert cy[1] == pytest.approx((cy[0] + cy[2]) / 2) and cy[0] > cy[2]


def test_sequential_page_and_cli(tmp_path, capsys):
    raw = {
        "seed": 3,
        "replicates": 4,
        "analysis": {"mode": "laplace"},
        "designs": {
            "seq": {
                "generator": "negative_binomial",
                "arms": {"placebo": {}, "quinine": {"rr": 0.7}},
                "n_per_arm": 40,
                "sequential": {
                    "looks": [0.5, 1.0],
                    "efficacy": {"probability": "obrien_fleming"},
                    "futility": {"probability": 0.2},
                },
            }
        },
    }
    config = check_power_config(raw, "test")
    run_sequential_shard(config, "seq", out_dir=tmp_path / "study" / "seq")
    summarize_sequential(tmp_path / "study" / "seq")
    _fixed_folder(tmp_path / "study")
    assert main(["report", str(tmp_path / "study")]) == 0
    page = (tmp_path / "study" / "report.html").read_text()
    _check_self_contained(page)
    assert "seq (group-sequential)" in page and "two_arm (fixed sample size)" in page
    assert "P(efficacy at look 1)" in page and "expected duration (weeks)" in page
    assert "Laplace approximation" in page  # the mode that produced the run is stated
    assert "wrote" in capsys.readouterr().out


def test_empty_study_is_refused(tmp_path, capsys):
    with pytest.raises(CrampstatsError, match=r"no power\.csv"):
        write_power_report(tmp_path)
    assert main(["report", str(tmp_path)]) == 1
    assert "no power.csv" in capsys.readouterr().err
    assert not (tmp_path / "report.html").exists()
