"""Report sentences on per-patient benefit (``crampstats.report.checks``; LOO: tests/compare)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from crampstats.report.checks import patient_benefit_summary


def _patients(p, identified, half=None, double=None, k=0.2):
    n = len(p)
    return pd.DataFrame(
        {
            "subject_id": [f"s{i}" for i in range(n)], "arm": "quinine",
            "p_own_benefit": p, "identified": identified,
            "p_own_benefit_sd_half": half if half is not None else [np.nan] * n,
            "p_own_benefit_sd_double": double if double is not None else [np.nan] * n,
            "sensitivity_k": k,
        }
    )  # fmt: skip


def test_abba_counts_no_likely_benefit_and_says_why():
    # as read back from CSV: withheld probabilities are empty, flags are strings
    pts = _patients([np.nan] * 4, ["False"] * 4)
    out = patient_benefit_summary(pts, "placebo")
    assert not out["any_identified"] and out["n_likely"] == "0" and out["n_withheld"] == "4"
    assert out["withheld"].startswith("P(own benefit) is not reported for 4 of 4 ")
    assert "fewer than 2 periods on the treatment or on placebo" in out["withheld"]


def test_identified_patients_are_counted_with_their_prior_sensitivity():
    p = [0.95, 0.97, 0.5, 0.05, 0.99]
    half = [0.97, 0.98, 0.6, 0.2, 0.99]
    double = [0.93, 0.85, 0.45, 0.03, 0.99]
    out = patient_benefit_summary(
        _patients(p, [True, True, True, True, False], half, double), "placebo"
    )
    # the fifth pair is not identified: not counted although its P is high
    assert (out["n_identified"], out["n_likely"], out["n_likely_robust"]) == ("4", "2", "1")
    assert out["n_unlikely"] == "1" and out["has_sensitivity"]
    assert "1 of 5" in out["withheld"] and out["unreliable_sensitivity"] == ""
    bad = patient_benefit_summary(_patients(p, [True] * 5, half, double, k=0.9), "placebo")
    assert bad["unreliable_sensitivity"].startswith("The prior sensitivity of 5 pairs")


def test_old_table_without_the_columns_counts_every_row():
    pts = pd.DataFrame({"subject_id": ["a", "b"], "p_own_benefit": [0.95, 0.2]})
    out = patient_benefit_summary(pts, "placebo")
    assert out["any_identified"] and out["n_likely"] == "1" and out["withheld"] == ""
    assert not out["has_sensitivity"]
