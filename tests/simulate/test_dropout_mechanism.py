"""Dropout mechanisms of the simulator (design key ``dropout_mechanism``).

Each mechanism must do what it says: MCAR dropout is unrelated to the subject's rates, MAR
dropout follows an observed quantity (the diarised run-in rate; the diarised early response,
and only after the early weeks), MNAR dropout follows the latent rate even among subjects with
the same observed run-in rate. Without the key (or with ``mcar``, or any mechanism at strength
0) the data are identical to those of the design without it, seed for seed.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from crampstats.config import ConfigError
from crampstats.simulate import simulate
from crampstats.simulate.design import validate_design

N_PER_ARM = 1500
BASE = {
    "trial_id": "t",
    "arms": {"placebo": {}, "mexiletine": {}},
    "n_per_arm": N_PER_ARM,
    "dropout": 0.3,
    "emg": {"enabled": False},
}
SMALL = {**BASE, "n_per_arm": 30, "emg": {}}


def _with(mechanism: str, strength: float = 1.0, **extra) -> dict:
    return {**BASE, "dropout_mechanism": {"mechanism": mechanism, "strength": strength, **extra}}


def _frames(trial) -> pd.DataFrame:
    """Per subject: dropped, withdrawal day, arm, log run-in rate and log latent rate on arm."""
    subjects = trial.tables["subjects"].set_index("subject_id")
    latent = trial.latent.set_index("subject_id").loc[subjects.index]
    log_rr = pd.Series(trial.truth["trials"]["t"]["log_rr"])
    return pd.DataFrame(
        {
            "dropped": subjects["withdrawal_day"].notna().to_numpy(float),
            "day": subjects["withdrawal_day"].astype(float).to_numpy(),
            "log_runin": np.log(latent["run_in_rate"].to_numpy(float) + 0.5 / 14),
            "log_latent": np.log(latent["rate"].to_numpy(float))
            + log_rr[subjects["arm"].to_numpy(str)].to_numpy(),
        },
        index=subjects.index,
    )


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a, b)[0, 1])


def _within_bins_corr(frame: pd.DataFrame, x: str, by: str, bins: int = 20) -> float:
    """Mean correlation of ``dropped`` with ``x`` within quantile bins of ``by``."""
    groups = pd.qcut(frame[by], bins, labels=False, duplicates="drop")
    values = [_corr(g["dropped"].to_numpy(), g[x].to_numpy()) for _, g in frame.groupby(groups)]
    return float(np.mean(values))


@pytest.fixture(scope="module")
def trials():
    return {m: _frames(simulate(_with(m), 31)) for m in ("mcar", "mar_runin", "mnar")}


# Under independence a correlation over n pairs has SE about 1 / sqrt(n); the mean of 20
# within-bin correlations (n / 20 pairs each) has the same SE. 4 SEs: false alarm < 1e-4.
SE = 1.0 / math.sqrt(2 * N_PER_ARM)


def test_absent_mcar_and_zero_strength_give_the_same_data():
    plain = simulate(SMALL, 7)
    for mechanism in ("mcar", "mar_runin", "mar_early_response", "mnar"):
        strength = 1.0 if mechanism == "mcar" else 0.0
        design = {**SMALL, "dropout_mechanism": {"mechanism": mechanism, "strength": strength}}
        other = simulate(design, 7)
        for name, table in plain.tables.items():
            pd.testing.assert_frame_equal(table, other.tables[name], obj=f"{mechanism} {name}")
    assert "dropout_mechanism" not in plain.truth


def test_mcar_dropout_ignores_the_rates(trials):
    frame = trials["mcar"]
    assert abs(_corr(frame["dropped"], frame["log_runin"])) < 4 * SE
    assert abs(_corr(frame["dropped"], frame["log_latent"])) < 4 * SE


def test_mar_runin_dropout_follows_the_run_in_rate_and_nothing_else(trials):
    frame = trials["mar_runin"]
    # exact dropout probabilities: cumulative hazard -log(0.7) times exp(z) / mean(exp(z))
    z = (frame["log_runin"] - frame["log_runin"].mean()) / frame["log_runin"].std(ddof=0)
    m = np.exp(z) / np.exp(z).mean()
    p = 1.0 - np.exp(math.log(0.7) * m)
    for part in (z < z.quantile(0.25), z > z.quantile(0.75), z == z):
        observed, expected = frame["dropped"][part].sum(), p[part].sum()
        assert abs(observed - expected) < 4 * math.sqrt((p[part] * (1 - p[part])).sum())
    assert frame["dropped"][z > z.quantile(0.75)].mean() > frame["dropped"][z < 0].mean() + 0.1
    # given the run-in rate, the latent rate carries no more information (missing at random)
    assert abs(_corr(frame["dropped"] - p, frame["log_latent"])) < 4 * SE
    assert abs(_within_bins_corr(frame, "log_latent", "log_runin")) < 4 * SE


def test_mnar_dropout_follows_the_latent_rate_beyond_the_run_in(trials):
    frame = trials["mnar"]
    assert _corr(frame["dropped"], frame["log_latent"]) > 10 * SE
    # among subjects with the same observed run-in rate the latent rate still matters
    assert _within_bins_corr(frame, "log_latent", "log_runin") > 6 * SE
    # placebo subjects (higher latent rates) leave more often than those on mexiletine (RR 0.5)
    arm = simulate(_with("mnar"), 31).tables["subjects"].set_index("subject_id")["arm"]
    rates = frame["dropped"].groupby(arm.loc[frame.index].to_numpy(str)).mean()
    assert rates["placebo"] > rates["mexiletine"] + 0.1


def test_early_response_dropout_starts_after_the_early_weeks_and_follows_the_diary():
    trial = simulate(_with("mar_early_response", early_weeks=2), 32)
    frame = _frames(trial)
    n = len(frame)
    # days 1-14 carry the arm's constant hazard: P(withdrawn by day 14) = 1 - 0.7^(14/56)
    p_early = 1.0 - 0.7 ** (14 / 56)
    early = (frame["day"] <= 14).mean()
    assert abs(early - p_early) < 4 * math.sqrt(p_early * (1 - p_early) / n)
    # later dropout follows the diarised early response (weeks 1-2 over run-in), read here
    # from the written diary as an analyst would
    diary = trial.tables["diary"]
    rows = diary[(diary["period"] == "treatment") & diary["cramp_count"].notna()]
    rows = rows[rows["study_day"] <= 14]
    count = rows.groupby("subject_id")["cramp_count"].sum().astype(float)
    days = rows.groupby("subject_id")["days"].sum().astype(float)
    stay = frame[frame["day"].isna() | (frame["day"] > 14)]
    ratio = np.log((count + 0.5) / days).reindex(stay.index) - stay["log_runin"]
    ok = ratio.notna()
    assert _corr(stay["dropped"][ok], ratio[ok]) > 10 / math.sqrt(ok.sum())
    # while the latent rate, given the early response, matters little: run-in-adjusted
    # response is what the mechanism reads, not the rate itself
    assert abs(_corr(stay["dropped"][ok], stay["log_latent"][ok])) < _corr(
        stay["dropped"][ok], ratio[ok]
    )


def test_early_weeks_must_fit_in_the_first_period():
    design = {**BASE, "dropout_mechanism": {"mechanism": "mar_early_response", "early_weeks": 8}}
    with pytest.raises(ConfigError, match=r"dropout_mechanism\.early_weeks"):
        validate_design(design, "d.yaml")
    with pytest.raises(ConfigError, match="dropout_mechanism"):
        validate_design({**BASE, "dropout_mechanism": {"mechanism": "sometimes"}}, "d.yaml")
