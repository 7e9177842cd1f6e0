"""The contract's minimum runs with no config: subjects (id, arm) and a diary of counts.

`crampstats analyze DIR --out OUT` on such a trial must succeed, skip what the data cannot
support (with reasons), and its `nb_totals` rate ratios must match an NB2 regression fitted
here from the raw files (statsmodels, offset log exposure, log run-in rate as covariate)
within 0.05 on the log scale (the issue's tolerance): both fit the same likelihood, so the
posterior median differs from the MLE by the weak prior's pull and Monte Carlo error, each
well under 0.01 with 200 subjects and 4 x 1000 draws.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from helpers import EXAMPLE

from crampstats import cli


@pytest.fixture(scope="module")
def minimal(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("minimal")
    subjects = pd.read_csv(EXAMPLE / "subjects.csv", dtype=str, keep_default_na=False)
    subjects[["subject_id", "arm"]].to_csv(folder / "subjects.csv", index=False)
    diary = pd.read_csv(EXAMPLE / "diary.csv", dtype=str, keep_default_na=False)
    diary[["subject_id", "study_day", "cramp_count"]].to_csv(folder / "diary.csv", index=False)
    return folder


@pytest.fixture(scope="module")
def analysed(minimal, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("out") / "results"
    assert cli.main(["analyze", str(minimal), "--out", str(out), "--quiet"]) == 0
    return out


def _independent_nb2(folder: Path) -> pd.Series:
    subjects = pd.read_csv(folder / "subjects.csv").set_index("subject_id")
    diary = pd.read_csv(folder / "diary.csv").dropna(subset=["cramp_count"])
    diary["runin"] = diary["study_day"] <= 0
    sums = diary.groupby(["subject_id", "runin"])["cramp_count"].agg(["sum", "size"]).unstack()
    sums.columns = [f"{stat}_{'runin' if runin else 'treated'}" for stat, runin in sums.columns]
    data = subjects.join(sums).dropna()
    count, days = data["sum_treated"], data["size_treated"]
    runin = np.log((data["sum_runin"] + 0.5) / data["size_runin"])
    arms = pd.get_dummies(data["arm"], dtype=float).drop(columns="placebo")
    design = sm.add_constant(pd.concat([arms, (runin - runin.mean()).rename("runin")], axis=1))
    fit = sm.NegativeBinomial(count.astype(float), design, offset=np.log(days)).fit(disp=0)
    return fit.params[arms.columns]


@pytest.mark.slow
def test_a_minimal_trial_analyses_with_no_config_and_matches_nb2(analysed, minimal):
    effects = pd.read_csv(analysed / "tables" / "effects.csv")
    primary = effects[effects["primary"]]
    assert set(primary["model"]) == {"nb_totals"}
    ours = np.log(primary.set_index("arm")["rr_median"])
    nb2 = _independent_nb2(minimal)
    gap = (ours - nb2.reindex(ours.index)).abs()
    assert (gap <= 0.05).all(), gap.to_dict()


@pytest.mark.slow
def test_what_a_minimal_trial_cannot_support_is_skipped_with_reasons(analysed):
    record = json.loads((analysed / "provenance.json").read_text(encoding="utf-8"))
    skipped = record["not_analysed"]
    assert {"ctf", "afterdischarge", "cramp_potential", "intensity", "safety", "location"} <= set(
        skipped
    )
    assert all("absent" in reason for reason in skipped.values())
    assert set(record["secondary_endpoints"]) == {"responder", "outcome_measures"}
