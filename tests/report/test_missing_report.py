"""The report's missing-data sensitivity section (:mod:`crampstats.report.missing`): the
sentences say what the table says (flip, no flip, no withdrawal) and the figure is safe inline
SVG even with a hostile arm name."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from crampstats.report.missing import tipping_figure, tipping_sentences


def _rows(arm: str, p_values: list[float], n_withdrawn: int = 12) -> pd.DataFrame:
    deltas = [1.0, 1.5, 2.0]
    met = [p <= 0.025 for p in p_values]
    flips = [d for d, m in zip(deltas, met, strict=True) if m != met[0]]
    return pd.DataFrame(
        {
            "arm": arm,
            "delta": deltas,
            "rr": [0.7, 0.8, 0.9],
            "lower": [0.55, 0.62, 0.7],
            "upper": [0.9, 1.02, 1.15],
            "p_or_pvalue": p_values,
            "verdict": np.where(met, "met", "not met"),
            "n_imputations": 20,
            "n_withdrawn": n_withdrawn,
            "tipping_delta": min(flips) if flips else np.nan,
        }
    )


def test_sentences_name_the_tipping_delta_or_its_absence():
    frame = pd.concat(
        [
            _rows("mexiletine", [0.003, 0.04, 0.1]),
            _rows("quinine", [0.2, 0.3, 0.4]),
            _rows("magnesium", [0.2, 0.3, 0.4], n_withdrawn=0),
        ]
    )
    mex, qui, mag = tipping_sentences(frame, "placebo", 0.975)
    assert mex.startswith("Mexiletine versus placebo")
    assert "is met; it becomes not met at delta 1.5 (a post-withdrawal rate 50 % above" in mex
    assert "one-sided p 0.003" in mex and "12 withdrawn patients" in mex
    assert "is not met, and stays not met up to delta 2" in qui and "100 % above" in qui
    assert "no patient on this arm withdrew" in mag
    # neutral wording: the sentences report the rule, never a verdict on the treatment
    for sentence in (mex, qui, mag):
        assert "effective" not in sentence and "reduced" not in sentence
    # a primary Bayesian verdict on the other side of the rule is named
    mex, qui, _ = tipping_sentences(frame, "placebo", 0.975, {"mexiletine": 0.999, "quinine": 0.98})
    assert "primary Bayesian" not in mex  # both met
    assert "P(RR < 1) 0.98, so the rule is met there" in qui


def test_figure_is_self_contained_and_escapes_names():
    hostile = 'b<script>alert("x")</script>$\\frac{1}{2}$'
    frame = pd.concat([_rows("mexiletine", [0.003, 0.04, 0.1]), _rows(hostile, [0.2, 0.3, 0.4])])
    svg = str(tipping_figure(frame, ["mexiletine", hostile], fig_id="fig-t", title=hostile))
    assert svg.startswith("<svg") and "<script" not in svg
    assert "&lt;script&gt;" in svg  # the title is escaped text
    assert "http://" not in svg and "https://" not in svg and "javascript:" not in svg
    assert all(ref.startswith("#") for ref in re.findall(r'href="([^"]*)"', svg))
    again = str(tipping_figure(frame, ["mexiletine", hostile], fig_id="fig-t", title=hostile))
    assert again == svg  # deterministic bytes
