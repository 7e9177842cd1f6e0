"""Statistical checks of the ``safety`` endpoint: tables, signals, recovery, likelihood, twin.

Simulated trials come from the trial simulator with per-arm adverse-event probabilities and no
dropout, so every patient is exposed for the probabilities' reference period and the true
incidence of each arm and category is the design's probability
(``trial.truth["adverse_events"]["probabilities"]``). Calibration of the intervals (truths drawn
from the model's own priors) is a case of the calibration study
(``crampstats.calibration.secondary``). The descriptive tables are checked on a hand-made
trial whose counts are known by construction.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from helpers import CORES, SAMPLER, check_recovered, simulated_derived
from scipy import special, stats

from crampstats.derive import adverse_event_listing, ae_incidence
from crampstats.engine import compile_cache_info, diagnose
from crampstats.models._common import ModelDataError
from crampstats.models.responder import EFFECT_COLUMNS
from crampstats.models.safety import (
    QUININE_SIGNAL_CATEGORIES,
    SafetyModel,
    incidence_probabilities,
    quinine_signals,
    safety_effects,
    safety_frame,
    safety_table,
    safety_twin,
    serious_events,
)

SIM_ARMS = ["placebo", "quinine", "mexiletine"]
#: Adverse-event probabilities of the simulated trial; quinine's unlisted categories take the
#: simulator's quinine defaults (thrombocytopenia 0.002, QT prolongation 0.003).
SIM_AES = {
    "placebo": {"gastrointestinal": 0.1, "other": 0.2},
    "quinine": {
        "gastrointestinal": 0.1,
        "other": 0.2,
        "cinchonism": 0.15,
        "visual_disturbance": 0.05,
    },
    "mexiletine": {"gastrointestinal": 0.35, "other": 0.2},
}


# ---------------------------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------------------------
def _simulated_trial(n_per_arm: int, seed: int):
    design = {
        "trial_id": "safety",
        "n_per_arm": n_per_arm,
        "dropout": 0.0,
        "arms": {arm: {"rr": 1.0, "adverse_events": aes} for arm, aes in SIM_AES.items()},
        "emg": {"enabled": False},
    }
    return simulated_derived(design, seed)


def _hand_tables() -> dict[str, pd.DataFrame]:
    """Three placebo and three quinine patients; every count below is known by construction."""
    subjects = pd.DataFrame(
        {
            "trial_id": "t",
            "subject_id": ["p1", "p2", "p3", "q1", "q2", "q3"],
            "arm": ["placebo"] * 3 + ["quinine"] * 3,
        }
    )
    adverse_events = pd.DataFrame(
        {
            "subject_id": ["q1", "q2", "q2", "p1", "p2", "q3", "q3"],
            "term": [
                "Thrombocytopenia",
                "Tinnitus",
                "Headache",
                "Nausea",
                "Dizziness",
                "Nausea",
                "Rash",
            ],
            "category": [
                "thrombocytopenia",
                "cinchonism",
                "cinchonism",
                "gastrointestinal",
                "other",
                "gastrointestinal",
                "other",
            ],
            "serious": pd.array([True, False, False, False, None, False, True], dtype="boolean"),
            "study_day": [10, 3, 5, 2, 7, 30, 12],
        }
    )
    return {"subjects": subjects, "adverse_events": adverse_events}


def _hand_incidence() -> pd.DataFrame:
    return ae_incidence(_hand_tables(), {})


def _rd_draws(idata: xr.DataTree, arm: str, category: str) -> np.ndarray:
    probs = incidence_probabilities(idata).sel(category=category)
    return np.ravel((probs.sel(arm=arm) - probs.isel(arm=0)).values)


# ---------------------------------------------------------------------------------------------
# Fits (module scope)
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def simulated():
    trial, derived = _simulated_trial(300, 3)
    frame = safety_frame(derived)
    idata = SafetyModel({"arms": SIM_ARMS}).fit(frame, seed=91, **SAMPLER)
    return trial, frame, idata


@pytest.fixture(scope="module")
def example(example_derived):
    frame = safety_frame({"ae_incidence": example_derived("example")["ae_incidence"]})
    model = SafetyModel()
    idata = model.fit(frame, seed=92, chains=4, draws=1000, tune=1000, cores=CORES)
    return frame, model.add_log_likelihood(idata, frame)


# ---------------------------------------------------------------------------------------------
# Descriptive tables
# ---------------------------------------------------------------------------------------------
def test_safety_table_counts_patients_events_and_serious():
    table = safety_table(_hand_incidence()).set_index(["arm", "category"])
    assert list(table.columns) == [
        "n_subjects",
        "n_with_event",
        "incidence",
        "n_events",
        "n_serious",
    ]
    assert (table["n_subjects"] == 3).all()
    cin = table.loc[("quinine", "cinchonism")]
    assert (cin["n_with_event"], cin["n_events"], cin["n_serious"]) == (1, 2, 0)
    assert cin["incidence"] == pytest.approx(1 / 3)
    assert table.loc[("quinine", "other"), "n_serious"] == 1
    # a missing `serious` flag is not serious
    assert table.loc[("placebo", "other"), "n_serious"] == 0
    assert table.loc[("placebo", "thrombocytopenia"), "n_with_event"] == 0
    assert table["n_events"].sum() == len(_hand_tables()["adverse_events"])


def test_quinine_signals_flag_a_single_event_in_any_arm():
    tables = _hand_tables()
    signals = quinine_signals(_hand_incidence(), adverse_event_listing(tables, {}))
    assert signals["category"].tolist() == [
        c for c in QUININE_SIGNAL_CATEGORIES for _ in ("placebo", "quinine")
    ]
    rows = signals.set_index(["arm", "category"])
    # one thrombocytopenia event (quinine) flags the category; placebo listed with zero
    assert rows.loc[("quinine", "thrombocytopenia"), "flagged"]
    assert not rows.loc[("placebo", "thrombocytopenia"), "flagged"]
    assert rows.xs("thrombocytopenia", level="category")["signal"].all()
    assert bool(rows.loc[("quinine", "thrombocytopenia"), "any_serious"])
    assert rows.loc[("quinine", "thrombocytopenia"), "first_study_day"] == 10
    assert rows.loc[("quinine", "cinchonism"), "terms"] == "Headache; Tinnitus"
    assert rows.loc[("quinine", "cinchonism"), "n_events"] == 2
    # QT prolongation: no event anywhere, still listed, not a signal
    qt = rows.xs("qt_prolongation", level="category")
    assert (qt["n_with_event"] == 0).all() and not qt["signal"].any()
    assert (qt["n_subjects"] == 3).all()


def test_quinine_signals_match_category_spellings():
    incidence = _hand_incidence()
    incidence["category"] = incidence["category"].replace(
        {"thrombocytopenia": "Thrombocytopenia", "gastrointestinal": "QT prolongation"}
    )
    rows = quinine_signals(incidence).set_index(["arm", "category"])
    assert rows.loc[("quinine", "thrombocytopenia"), "n_with_event"] == 1
    # the renamed gastrointestinal events now count as QT prolongation, one per arm
    assert rows.xs("qt_prolongation", level="category")["n_with_event"].tolist() == [1, 1]
    assert "terms" not in rows.columns


def test_serious_events_lists_every_serious_event():
    tables = _hand_tables()
    listed = serious_events(tables["adverse_events"], _hand_incidence())
    assert list(listed.columns) == ["subject_id", "arm", "term", "category", "study_day"]
    assert listed["subject_id"].tolist() == ["q1", "q3"]
    assert listed["arm"].tolist() == ["quinine", "quinine"]
    assert listed["term"].tolist() == ["Thrombocytopenia", "Rash"]
    # the derived listing carries the arm itself; the subjects table works as the lookup too
    pd.testing.assert_frame_equal(
        serious_events(adverse_event_listing(tables, {})), listed, check_dtype=False
    )
    pd.testing.assert_frame_equal(
        serious_events(tables["adverse_events"], tables["subjects"]), listed, check_dtype=False
    )
    none = serious_events(tables["adverse_events"].assign(serious=False), tables["subjects"])
    assert none.empty and list(none.columns) == list(listed.columns)


def test_serious_events_refusals():
    tables = _hand_tables()
    with pytest.raises(ModelDataError, match="pass the randomised subjects"):
        serious_events(tables["adverse_events"])
    stranger = tables["adverse_events"].assign(subject_id="x9")
    with pytest.raises(ModelDataError, match="not randomised"):
        serious_events(stranger, tables["subjects"])
    with pytest.raises(ModelDataError, match="lacks column"):
        serious_events(tables["adverse_events"].drop(columns="serious"), tables["subjects"])


def test_example_tables_agree_with_the_event_listing(example_results):
    """Counts of the example trial's tables recomputed from the validated events."""
    folder = example_results("example")
    incidence = pd.read_parquet(folder / "derived" / "ae_incidence.parquet")
    events = pd.read_parquet(folder / "validated" / "adverse_events.parquet")
    arm = incidence.drop_duplicates("subject_id").set_index("subject_id")["arm"]
    events = events.assign(arm=events["subject_id"].map(arm))
    table = safety_table(incidence).set_index(["arm", "category"])
    by_cell = events.groupby(["arm", "category"])
    np.testing.assert_array_equal(
        table.loc[by_cell.size().index, "n_events"], by_cell.size().to_numpy()
    )
    np.testing.assert_array_equal(
        table.loc[by_cell.size().index, "n_with_event"], by_cell["subject_id"].nunique()
    )
    n_subjects = table.groupby("arm")["n_subjects"].first()
    assert n_subjects.to_dict() == arm.value_counts().to_dict()
    listed = serious_events(events, incidence)
    assert len(listed) == int(events["serious"].fillna(False).sum())


# ---------------------------------------------------------------------------------------------
# Frame and model refusals
# ---------------------------------------------------------------------------------------------
def test_frame_and_model_refusals():
    incidence = _hand_incidence()
    with pytest.raises(ModelDataError, match="needs the derived `ae_incidence`"):
        safety_frame({})
    with pytest.raises(ModelDataError, match="no `arm` column"):
        safety_frame({"ae_incidence": incidence.drop(columns="arm")})
    with pytest.raises(ModelDataError, match="every patient under every category"):
        safety_frame({"ae_incidence": incidence.iloc[1:]})
    with pytest.raises(ModelDataError, match="more than one row"):
        safety_frame({"ae_incidence": pd.concat([incidence, incidence.iloc[:1]])})
    frame = safety_frame({"ae_incidence": incidence})
    with pytest.raises(ModelDataError, match="control arm 'control' not found"):
        SafetyModel({"control_arm": "control"}).prepare(frame)
    with pytest.raises(ModelDataError, match="only the control arm"):
        SafetyModel().prepare(frame[frame["arm"] == "placebo"])
    with pytest.raises(ModelDataError, match="control arm 'placebo' has no patients"):
        SafetyModel({"arms": ["placebo", "quinine"]}).prepare(frame[frame["arm"] == "quinine"])
    with pytest.raises(ModelDataError, match="no patients"):
        SafetyModel().prepare(frame.iloc[:0])
    with pytest.raises(ModelDataError, match="not among the model's categories"):
        SafetyModel({"categories": ["other"]}).prepare(frame)
    with pytest.raises(ModelDataError, match="control arm"):
        safety_twin(frame, control_arm="control")


def test_prepare_counts_patients_with_events():
    frame = safety_frame({"ae_incidence": _hand_incidence()})
    categories = ["cinchonism", "gastrointestinal", "other", "thrombocytopenia", "visual"]
    prepared = SafetyModel({"categories": categories}).prepare(frame)
    assert prepared.coords == {"arm": ["quinine"], "category": categories}
    np.testing.assert_array_equal(prepared.data["n_subjects"], [3, 3])
    # placebo: p1 gastrointestinal, p2 other; quinine: q2 cinchonism (2 events, 1 patient),
    # q3 gastrointestinal and other, q1 thrombocytopenia; "visual" never occurs
    np.testing.assert_array_equal(prepared.data["events"], [[0, 1, 1, 0, 0], [1, 1, 1, 1, 0]])
    assert prepared.subject_data["event"].sum() == prepared.data["events"].sum()


# ---------------------------------------------------------------------------------------------
# Recovery, the twin, the output contract
# ---------------------------------------------------------------------------------------------
def test_recovers_incidence_differences(simulated):
    trial, _, idata = simulated
    assert diagnose(idata)["status"] == "ok"
    truth = trial.truth["adverse_events"]["probabilities"]
    categories = incidence_probabilities(idata)["category"].values
    assert {"cinchonism", "gastrointestinal", "other"} <= set(categories)
    for arm in SIM_ARMS[1:]:
        for category in categories:
            true_rd = truth[arm][category] - truth["placebo"][category]
            rd = _rd_draws(idata, arm, category)
            check_recovered(rd, true_rd, f"RD {arm} {category}", closed=True)
    # the control incidence of a common category, and a risk ratio with finite truth
    probs = incidence_probabilities(idata)
    p0 = np.ravel(probs.sel(arm="placebo", category="gastrointestinal").values)
    check_recovered(
        p0, truth["placebo"]["gastrointestinal"], "p placebo gastrointestinal", closed=True
    )
    p = np.ravel(probs.sel(arm="mexiletine", category="gastrointestinal").values)
    check_recovered(
        np.log(p / p0), np.log(0.35 / 0.1), "log RR mexiletine gastrointestinal", closed=True
    )


def test_refit_with_other_subjects_does_not_recompile(simulated):
    _, frame, _ = simulated
    before = compile_cache_info()
    keep = frame["subject_id"].drop_duplicates().sample(n=511, random_state=1)
    subset = frame[frame["subject_id"].isin(keep)].reset_index(drop=True)
    idata = SafetyModel({"arms": SIM_ARMS}).fit(subset, seed=93, chains=2, draws=200, tune=200)
    after = compile_cache_info()
    assert after["compiles"] == before["compiles"]
    assert after["hits"] == before["hits"] + 1
    assert idata["constant_data"].sizes["subject"] == 511


def _joined(frame: pd.DataFrame, idata: xr.DataTree) -> pd.DataFrame:
    bayes = safety_effects(idata)
    twin = safety_twin(frame)
    out = bayes.merge(twin, on=["arm", "measure"], suffixes=("_b", "_t"), validate="one_to_one")
    assert len(out) == len(bayes) == len(twin)
    return out[out["measure"].str.startswith("risk_difference:")]


def test_agrees_with_twin_where_events_are_common(simulated):
    """In cells with >= 10 events in both arms the medians are within 0.25 twin SEs of the MLE.

    Tolerance: there the likelihood dominates (300 patients an arm): the prior moves a logit
    by O(1/n) and pooling shrinks a log odds ratio towards its arm's mean by the factor
    se^2 / (se^2 + sigma^2), a few per cent here, i.e. well under 0.1 SE of the difference; the
    shared control logit adds as much again; Monte Carlo error is ~0.05 SE.
    """
    _, frame, idata = simulated
    joined = _joined(frame, idata)
    counts = frame.groupby(["arm", "category"])["any_event"].sum()
    common = [
        counts[(a, m.split(":")[1])] >= 10 and counts[("placebo", m.split(":")[1])] >= 10
        for a, m in zip(joined["arm"], joined["measure"], strict=True)
    ]
    rows = joined[common]
    assert len(rows) >= 3
    se = (rows["upper_t"] - rows["lower_t"]) / (2 * stats.norm.ppf(0.975))
    diff = (rows["estimate_median_b"] - rows["estimate_median_t"]).abs() / se
    assert (diff < 0.25).all(), rows.assign(diff=diff).to_string()


def test_agrees_with_twin_on_the_example(example):
    """Each analysis's estimate lies inside the other's 95 % interval, in every cell.

    Tolerance: with 40 patients an arm and mostly zero to three events per cell, the pooled
    model pulls sparse cells towards no difference (module docstring), so the medians are not
    close to the unpooled maximum-likelihood estimates (mexiletine gastrointestinal, 7/40
    against 0/40: ~0.12 against 0.175); but both describe the same data, so neither estimate
    may fall outside the other's interval.
    """
    frame, idata = example
    assert diagnose(idata)["status"] == "ok"
    joined = _joined(frame, idata)
    assert len(joined) == 4 * frame["category"].nunique()
    inside_twin = joined["estimate_median_b"].between(joined["lower_t"], joined["upper_t"])
    inside_bayes = joined["estimate_median_t"].between(joined["lower_b"], joined["upper_b"])
    assert inside_twin.all(), joined[~inside_twin].to_string()
    assert inside_bayes.all(), joined[~inside_bayes].to_string()
    # the clear harm (mexiletine gastrointestinal, 7 against 0) is seen by both
    row = joined.set_index(["arm", "measure"]).loc[
        ("mexiletine", "risk_difference:gastrointestinal")
    ]
    assert row["lower_b"] > 0 and row["lower_t"] > 0 and row["p_benefit_b"] < 0.05


def test_effects_follow_the_output_contract(example):
    frame, idata = example
    bayes, twin = safety_effects(idata, level=0.9), safety_twin(frame, level=0.9)
    categories = sorted(frame["category"].unique())
    arms = ["magnesium", "mexiletine", "quinine", "vitamin_b_complex"]
    for table in (bayes, twin):
        assert list(table.columns) == EFFECT_COLUMNS
        assert (table["comparator"] == "placebo").all()
        assert table["arm"].tolist() == [a for a in arms for _ in range(2 * len(categories))]
        assert table["measure"].tolist() == [
            f"{m}:{c}" for _ in arms for c in categories for m in ("risk_difference", "risk_ratio")
        ]
        assert (table["lower"] < table["upper"]).all()
    assert twin["p_benefit"].isna().all() and twin.attrs["converged"] is True
    # the twin's ratio estimate is NaN exactly where the control arm had no event
    placebo_events = frame[frame["arm"] == "placebo"].groupby("category")["any_event"].sum()
    ratio = twin[twin["measure"].str.startswith("risk_ratio:")]
    no_control = ratio["measure"].str.split(":").str[1].map(placebo_events) == 0
    assert (ratio["estimate_median"].isna() == no_control).all()
    for row in bayes.itertuples():
        measure, category = row.measure.split(":")
        rd = _rd_draws(idata, row.arm, category)
        # fewer events is better: p_benefit = P(RD < 0) on both rows
        assert row.p_benefit == pytest.approx(np.mean(rd < 0))
        if measure == "risk_difference":
            assert row.lower == pytest.approx(np.quantile(rd, 0.05))
            assert row.estimate_median == pytest.approx(np.median(rd))
    assert np.isfinite(bayes[["estimate_median", "lower", "upper"]].to_numpy()).all()
    assert idata["log_likelihood"]["y"].dims == ("chain", "draw", "subject")
    assert idata["log_likelihood"].sizes["subject"] == frame["subject_id"].nunique()


# ---------------------------------------------------------------------------------------------
# Likelihood
# ---------------------------------------------------------------------------------------------
def test_graph_logp_equals_priors_plus_pointwise_loglik():
    frame = safety_frame({"ae_incidence": _hand_incidence()})
    model = SafetyModel()
    prepared = model.prepare(frame)
    cfg = model.model_config
    n_cat = len(prepared.coords["category"])
    rng = np.random.default_rng(3)
    point = {
        "mu": rng.normal(-2.0, 1.0, n_cat),
        "d": np.array([0.4]),
        "sigma": np.array([0.7]),
        "z": rng.normal(size=(1, n_cat)),
    }
    values = {**{k: v for k, v in point.items() if k != "sigma"}, "sigma_log__": np.log([0.7])}
    logp = float(model.build(prepared).compile_logp(jacobian=False)(values))
    priors = (
        stats.norm.logpdf(point["mu"], cfg["prior_mu_mu"], cfg["prior_mu_sd"]).sum()
        + stats.norm.logpdf(point["d"], 0.0, cfg["prior_d_sd"]).sum()
        + stats.halfnorm.logpdf(point["sigma"], scale=cfg["prior_sigma_sd"]).sum()
        + stats.norm.logpdf(point["z"]).sum()
    )
    posterior = xr.Dataset(
        {
            "mu": (("chain", "draw", "category"), point["mu"][None, None]),
            "d": (("chain", "draw", "arm"), point["d"][None, None]),
            "sigma": (("chain", "draw", "arm"), point["sigma"][None, None]),
            "z": (("chain", "draw", "arm", "category"), point["z"][None, None]),
        },
        coords=prepared.coords,
        attrs={"crampstats_constants": '{"control_arm": "placebo"}'},
    )
    loglik = model.pointwise_log_likelihood(
        xr.DataTree.from_dict({"posterior": posterior}), prepared
    )
    assert loglik.dims == ("chain", "draw", "subject") and loglik.sizes["subject"] == 6
    assert logp == pytest.approx(priors + float(loglik.sum()), rel=1e-10)
    # per patient, from scipy's Bernoulli pmf (no shared code)
    delta = point["d"][0] + point["sigma"][0] * point["z"][0]
    wide = frame.pivot(index="subject_id", columns="category", values="any_event")
    for subject, events in wide.iterrows():
        arm = frame.loc[frame["subject_id"] == subject, "arm"].iloc[0]
        p = special.expit(point["mu"] + (delta if arm == "quinine" else 0.0))
        expected = stats.bernoulli.logpmf(events.to_numpy(), p).sum()
        # subjects are keyed trial_id/subject_id
        got = loglik.sel(subject=f"t/{subject}").values.item()
        assert got == pytest.approx(expected, rel=1e-10)
