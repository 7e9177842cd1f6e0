"""``crampstats analyze`` with extra subject columns as covariates (the issue's acceptance check).

The bundled example trial gets two subject columns outside the contract, ``bmi`` (numbers) and
``site`` (text codes), and ``analysis.covariates: [bmi, site]``. The analysis must run, and its
``nb_totals`` rate ratios must match an NB2 regression fitted here, independently of the
package: counts, exposure and run-in rate computed from the raw CSV files, statsmodels'
formula interface (``count ~ arm + log run-in rate + bmi + site``, offset log exposure).
Tolerance 0.05 on the log scale (the issue's): the two fit the same likelihood, so the
posterior median differs from the MLE by the prior's pull (< 0.01 here) and Monte Carlo error
(about 0.005 with 2 x 500 draws).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as smf
import yaml
from helpers import EXAMPLE, EXAMPLE_ARMS

from crampstats import cli

SAMPLER = {"chains": 2, "draws": 500, "tune": 500, "cores": 2}


def _write_config(path: Path, **analysis) -> Path:
    cfg = {
        "trial_id": "example",
        "design": "parallel",
        "control_arm": "placebo",
        "arms": EXAMPLE_ARMS,
        "seed": 11,
        "analysis": {"models": ["nb_totals"], "sampler": SAMPLER,
                     "secondary": {"endpoints": []}, **analysis},
    }
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.fixture(scope="module")
def trial(tmp_path_factory) -> Path:
    """``data/example`` with ``bmi`` and ``site`` columns added to ``subjects.csv``."""
    folder = tmp_path_factory.mktemp("covariates") / "trial"
    shutil.copytree(EXAMPLE, folder)
    subjects = pd.read_csv(folder / "subjects.csv", dtype=str, keep_default_na=False)
    rng = np.random.default_rng(3)
    subjects["bmi"] = [f"{v:.1f}" for v in rng.normal(27, 4, len(subjects))]
    subjects["site"] = [f"S{j}" for j in rng.integers(1, 7, len(subjects))]
    subjects.to_csv(folder / "subjects.csv", index=False)
    return folder


@pytest.fixture(scope="module")
def analysed(trial) -> Path:
    config = _write_config(trial.parent / "trial.yaml", covariates=["bmi", "site"])
    out = trial.parent / "out"
    assert cli.main(["analyze", str(trial), "--config", str(config), "--out", str(out)]) == 0
    return out


def _independent_nb2(trial: Path) -> pd.Series:
    """Log rate ratios of an NB2 GLM fitted from the raw files (statsmodels formula API)."""
    subjects = pd.read_csv(trial / "subjects.csv")
    diary = pd.read_csv(trial / "diary.csv")
    done = diary[diary["cramp_count"].notna()]
    runin = done[done["period"] == "run-in"].groupby("subject_id")[["cramp_count", "days"]].sum()
    treated = done[done["period"] == "treatment"].groupby("subject_id")[
        ["cramp_count", "days"]
    ].sum()
    data = subjects.set_index("subject_id").join(
        treated.rename(columns={"cramp_count": "count"})
    ).join(runin.add_prefix("runin_"))
    data = data[data["days"] > 0].reset_index()
    data["log_runin"] = np.log((data["runin_cramp_count"] + 0.5) / data["runin_days"])
    fit = smf.negativebinomial(
        "count ~ C(arm, Treatment('placebo')) + log_runin + bmi + C(site)",
        data=data,
        offset=np.log(data["days"]),
        loglike_method="nb2",
    ).fit(disp=0, maxiter=500)
    assert fit.mle_retvals["converged"]
    prefix = "C(arm, Treatment('placebo'))[T."
    return pd.Series(
        {name[len(prefix):-1]: value for name, value in fit.params.items()
         if name.startswith(prefix)}
    )  # fmt: skip


def test_analyze_with_extra_subject_columns_matches_an_independent_nb2_fit(analysed, trial):
    effects = pd.read_csv(analysed / "tables" / "effects.csv").set_index("arm")
    bayes = np.log(effects["rr_median"])
    independent = _independent_nb2(trial)
    assert sorted(independent.index) == sorted(bayes.index) == sorted(EXAMPLE_ARMS[1:])
    gap = (bayes - independent[bayes.index]).abs()
    assert (gap <= 0.05).all(), gap.to_dict()
    # the package's own twin fitted the same terms
    freq = pd.read_csv(analysed / "tables" / "frequentist.csv").set_index("arm")
    np.testing.assert_allclose(freq["log_rr"], independent[freq.index], atol=1e-4)
    # the derived periods carry the extra columns with their types
    periods = pd.read_parquet(analysed / "derived" / "periods.parquet")
    assert str(periods["bmi"].dtype) == "Float64" and periods["site"].dtype == "string"


def test_unknown_covariate_refused_at_start_with_the_columns_available(trial, capsys):
    config = _write_config(trial.parent / "unknown.yaml", covariates=["bmi", "height"])
    out = trial.parent / "never"
    code = cli.main(["analyze", str(trial), "--config", str(config), "--out", str(out)])
    assert code == 2
    err = capsys.readouterr().err
    assert "unknown subject column(s) height" in err
    assert "age, sex, etiology, cramp_origin, bmi, site" in err
    assert not out.exists()


def test_missing_covariate_values_refused_naming_the_subjects(trial, tmp_path, capsys):
    holes = tmp_path / "holes"
    shutil.copytree(trial, holes)
    subjects = pd.read_csv(holes / "subjects.csv", dtype=str, keep_default_na=False)
    subjects.loc[[4, 9], "bmi"] = ""
    subjects.to_csv(holes / "subjects.csv", index=False)
    config = _write_config(tmp_path / "trial.yaml", covariates=["bmi"])
    out = tmp_path / "out"
    assert cli.main(["analyze", str(holes), "--config", str(config), "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "bmi (named in analysis.covariates) is missing for 2 subject(s)" in err
    assert all(s in err for s in subjects.loc[[4, 9], "subject_id"])
    assert not out.exists()


@pytest.mark.slow
def test_analyze_with_a_site_random_intercept(trial, tmp_path):
    config = _write_config(
        tmp_path / "trial.yaml", covariates=["bmi"], random_intercepts=["site"],
        models=["nb_totals", "frailty_weekly"],
    )  # fmt: skip
    out = tmp_path / "out"
    assert cli.main(["analyze", str(trial), "--config", str(config), "--out", str(out)]) == 0
    freq = pd.read_csv(out / "tables" / "frequentist.csv")
    assert set(freq["model"]) == {"nb_totals", "frailty_weekly"}
    assert freq["note"].isna().all(), freq["note"].tolist()
    assert (freq["diff_log_rr"].abs() < 0.1).all(), freq["diff_log_rr"].tolist()
