"""Fast checks of the trial simulator: determinism, contract-shaped tables, design validation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers import DATA

from crampstats import cli
from crampstats.config import ConfigError
from crampstats.simulate import COLUMNS, simulate, summary_text, write_trial
from crampstats.simulate.design import load_design, validate_design

PARALLEL = {
    "type": "parallel",
    "trial_id": "t",
    "n_per_arm": 12,
    "arms": {"placebo": None, "quinine": None, "mexiletine": {"dropout": 0.32}},
    "emg": {"baseline_visits": 2},
}
CROSSOVER = {
    "type": "crossover", "n_subjects": 11, "arms": {"placebo": {}, "mexiletine": {}},
    "baseline_rate": 5.0, "treatment_weeks": 3, "washout_weeks": 1, "effect_sd": 0.3,
    "carryover": 0.2,
}
NOF1 = {"type": "nof1", "n_subjects": 7, "arms": {"placebo": {}, "quinine": {}},
        "nof1": {"cycles": 2, "block_weeks": 2, "washout_weeks": 1}, "dropout": 0.3}
MULTI = {**PARALLEL, "tau": 0.3,
         "trials": ["a", {"id": "b", "baseline_rate": 2.0, "arms": ["placebo", "quinine"]}]}
WEEKLY = {**PARALLEL, "diary_days": 7, "treatment_weeks": 3, "dropout": 0.5}
FORTNIGHT = {**CROSSOVER, "diary_days": 14}

DTYPES = {
    "subjects": {"subject_id": "string", "trial_id": "string", "arm": "string",
                 "sequence": "string", "age": "Float64", "sex": "string", "etiology": "string",
                 "cramp_origin": "string", "stratum": "string", "withdrawal_day": "Int64"},
    "diary": {"subject_id": "string", "study_day": "Int64", "days": "Int64", "period": "string",
              "treatment": "string", "cramp_count": "Int64", "intensity": "Float64",
              "location": "string"},
    "emg": {"subject_id": "string", "visit": "string", "study_day": "Int64", "ctf_hz": "Float64",
            "ctf_censored": "boolean", "afterdischarge_grade": "Int64",
            "cramp_potential_hz": "Float64"},
    "adverse_events": {"subject_id": "string", "term": "string", "category": "string",
                       "serious": "boolean", "study_day": "Int64"},
}


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_same_seed_gives_byte_identical_files(tmp_path: Path):
    write_trial(simulate(PARALLEL, 7), tmp_path / "a")
    write_trial(simulate(PARALLEL, 7), tmp_path / "a2")
    a, b = _files(tmp_path / "a"), _files(tmp_path / "a2")
    assert set(a) == {"subjects.csv", "diary.csv", "emg.csv", "adverse_events.csv", "design.yaml",
                      "truth.json"}
    assert a == b
    assert b"\r\n" not in a["diary.csv"]


def test_seed_sequence_is_not_mutated_and_children_are_independent():
    ss = np.random.SeedSequence(123)
    one = simulate(PARALLEL, ss)
    two = simulate(PARALLEL, ss)
    assert ss.n_children_spawned == 0
    pd.testing.assert_frame_equal(one.tables["diary"], two.tables["diary"])
    kids = np.random.SeedSequence(123).spawn(2)
    a, b = simulate(PARALLEL, kids[0]), simulate(PARALLEL, kids[1])
    assert not a.tables["diary"]["cramp_count"].equals(b.tables["diary"]["cramp_count"])
    assert a.truth["seed"]["spawn_key"] == [0]


def test_different_seeds_differ():
    a, b = simulate(PARALLEL, 1), simulate(PARALLEL, 2)
    assert not a.tables["diary"].equals(b.tables["diary"])
    assert not a.tables["subjects"]["age"].equals(b.tables["subjects"]["age"])


@pytest.mark.parametrize("seed", [-1, 1.5, "3", True])
def test_bad_seed_is_refused(seed):
    with pytest.raises(ValueError, match="seed"):
        simulate(PARALLEL, seed)


def _check_contract(trial, design_type: str) -> None:
    t = trial.tables
    for name, cols in COLUMNS.items():
        assert tuple(t[name].columns) == cols, name
        assert {c: str(t[name][c].dtype) for c in cols} == DTYPES[name], name
    subj, diary, emg, ae = t["subjects"], t["diary"], t["emg"], t["adverse_events"]
    assert subj["subject_id"].is_unique and len(subj) > 0
    assert not diary.duplicated(["subject_id", "study_day"]).any()
    assert not emg.duplicated(["subject_id", "visit"]).any()
    ids = set(subj["subject_id"])
    for table in (diary, emg, ae):
        assert set(table["subject_id"]) <= ids
    assert set(diary["subject_id"]) == ids
    counts = diary["cramp_count"].dropna()
    assert (counts >= 0).all()
    assert (diary["days"] >= 1).all()
    # records of one subject never overlap and the run-in ends on day 0
    d = diary.sort_values(["subject_id", "study_day"])
    end = d["study_day"] + d["days"] - 1
    nxt = d.groupby("subject_id")["study_day"].shift(-1)
    assert ((nxt.isna()) | (end < nxt)).all()
    runin = d["period"] == "run-in"
    assert (end[runin] <= 0).all() and (d["study_day"][~runin] >= 1).all()
    # no diary after withdrawal; withdrawal on or after the first dose
    wd = subj.set_index("subject_id")["withdrawal_day"]
    assert (wd.dropna() >= 1).all()
    last = end.groupby(d["subject_id"]).max()
    withdrawn = wd.dropna()
    assert (last[withdrawn.index] <= withdrawn).all()
    assert (emg.set_index("subject_id")["study_day"].groupby(level=0).max()[withdrawn.index]
            <= withdrawn).all()
    # intensity and location only on records with cramps
    has = diary["cramp_count"].fillna(0) > 0
    assert diary["intensity"][has].notna().all() and diary["intensity"][~has].isna().all()
    assert diary["location"][has].notna().all() and diary["location"][~has].isna().all()
    assert diary["intensity"].dropna().between(0, 10).all()
    assert diary["cramp_count"].isna().any()  # missing records stay as rows with empty counts
    # EMG and AE ranges
    assert (emg["ctf_hz"] > 0).all()
    assert emg["afterdischarge_grade"].between(0, 4).all()
    assert emg["cramp_potential_hz"][emg["ctf_censored"]].isna().all()
    assert ae["category"].isin(["thrombocytopenia", "qt_prolongation", "cinchonism",
                                "visual_disturbance", "gastrointestinal", "other"]).all()
    periods = set(diary["period"])
    if design_type == "parallel":
        assert periods == {"run-in", "treatment"}
        assert subj["arm"].notna().all() and subj["sequence"].isna().all()
        assert (diary["treatment"][diary["period"] == "treatment"].notna()).all()
    else:
        assert subj["sequence"].notna().all() and subj["arm"].isna().all()
        treat = ~diary["period"].isin(["run-in", "washout"])
        assert diary["treatment"][treat].notna().all()
        assert diary["treatment"][~treat].isna().all()
        letters = trial.truth["letters"]
        # the treatment of every period matches the subject's sequence letter
        seq = subj.set_index("subject_id")["sequence"]
        rows = diary[treat]
        pos = rows["period"].astype(int) - 1
        letter = [seq[s][p] for s, p in zip(rows["subject_id"], pos, strict=True)]
        assert [letters[x] for x in letter] == list(rows["treatment"])


@pytest.mark.parametrize(
    ("design", "kind"),
    [(PARALLEL, "parallel"), (CROSSOVER, "crossover"), (NOF1, "nof1"), (MULTI, "parallel"),
     (WEEKLY, "parallel"), (FORTNIGHT, "crossover")],
    ids=["parallel", "crossover", "nof1", "multi", "weekly", "fortnightly"],
)
def test_tables_follow_the_contract(design, kind):
    trial = simulate(design, 11)
    _check_contract(trial, kind)
    assert trial.truth["design_type"] == kind


def test_crossover_periods_and_sequences():
    trial = simulate(CROSSOVER, 3)
    diary, subj = trial.tables["diary"], trial.tables["subjects"]
    assert set(diary["period"]) == {"run-in", "1", "washout", "2"}
    assert set(subj["sequence"]) == {"AB", "BA"}
    assert abs((subj["sequence"] == "AB").sum() - (subj["sequence"] == "BA").sum()) <= 1
    assert trial.truth["letters"] == {"A": "placebo", "B": "mexiletine"}
    assert set(trial.truth["subject_log_rr"]) == set(subj["subject_id"])
    assert diary["study_day"].min() == -13
    assert set(trial.tables["emg"]["visit"]) <= {"baseline", "end_1", "end_2"}


def test_nof1_blocks_are_randomised_within_cycles():
    trial = simulate({**NOF1, "n_subjects": 40, "dropout": 0.0}, 5)
    seqs = trial.tables["subjects"]["sequence"]
    assert seqs.str.len().eq(4).all()
    # every cycle holds each treatment once, and orders vary between subjects
    assert all(sorted(s[:2]) == ["A", "B"] and sorted(s[2:]) == ["A", "B"] for s in seqs)
    assert seqs.nunique() > 1
    periods = set(trial.tables["diary"]["period"])
    assert periods == {"run-in", "1", "2", "3", "4", "washout"}


def test_weekly_diary_records_cover_seven_days_and_truncate_at_withdrawal():
    trial = simulate(WEEKLY, 4)
    diary, subj = trial.tables["diary"], trial.tables["subjects"]
    completed = subj["subject_id"][subj["withdrawal_day"].isna()]
    full = diary[diary["subject_id"].isin(completed)]
    assert set(full["days"]) == {7}
    assert set(full["study_day"]) == {-13, -6, 1, 8, 15}
    assert subj["withdrawal_day"].notna().sum() > 0
    wd = subj.set_index("subject_id")["withdrawal_day"].dropna()
    last = diary.assign(end=diary["study_day"] + diary["days"] - 1).groupby("subject_id")["end"]
    assert (last.max()[wd.index] == wd).all()  # the last record ends on the withdrawal day


def test_arm_names_are_data():
    design = {"arms": {"alpha": {"rr": 1.0}, "beta gamma": {"rr": 0.6, "dropout": 0.2}},
              "control_arm": "alpha", "n_per_arm": {"alpha": 5, "beta gamma": 8}}
    trial = simulate(design, 9)
    counts = trial.tables["subjects"]["arm"].value_counts().to_dict()
    assert counts == {"alpha": 5, "beta gamma": 8}
    assert trial.truth["arms"]["beta gamma"]["rr"] == 0.6
    assert set(trial.tables["diary"]["treatment"].dropna()) == {"alpha", "beta gamma"}


def test_known_therapies_take_calibrated_rate_ratios():
    truth = simulate(PARALLEL, 1).truth
    assert truth["arms"]["quinine"]["rr"] == 0.75
    assert truth["arms"]["mexiletine"]["rr"] == 0.5
    assert truth["arms"]["mexiletine"]["dropout"] == 0.32
    assert truth["arms"]["placebo"]["dropout"] == 0.08
    assert truth["k"] == 3


def test_several_trials_make_one_dataset():
    trial = simulate(MULTI, 2)
    subj = trial.tables["subjects"]
    assert set(subj["trial_id"]) == {"a", "b"}
    assert set(subj["arm"][subj["trial_id"] == "b"]) == {"placebo", "quinine"}
    assert (subj["trial_id"] == "a").sum() == 36
    per_trial = trial.truth["trials"]
    assert per_trial["b"]["baseline_rate"] == 2.0
    assert per_trial["a"]["log_rr"]["quinine"] != per_trial["b"]["log_rr"]["quinine"]
    for t in ("a", "b"):
        assert per_trial[t]["n_screened"] >= per_trial[t]["n_randomised_total"]


def test_screen_failures_are_not_randomised():
    design = {**PARALLEL, "inclusion": {"min_cramps": 14}}
    trial = simulate(design, 8)
    assert len(trial.tables["subjects"]) == 36
    assert trial.truth["n_screened"] > 36
    assert (trial.latent["run_in_rate"] * 14 >= 14).all()


@pytest.mark.parametrize(
    ("design", "key"),
    [
        ({"k": -1}, "key k"),
        ({"arms": {"placebo": {}, "alpha": {}}}, "key arms.alpha.rr"),
        ({"n_per_armz": 3}, "n_per_armz"),
        ({"type": "crossover", "arms": {"placebo": {}, "quinine": {}, "magnesium": {}}},
         "key arms"),
        ({"control_arm": "none"}, "key control_arm"),
        ({"diary_days": 3}, "key diary_days"),
        ({"arms": {"placebo": {"rr": 0.5}, "quinine": {}}}, "key arms.placebo.rr"),
        ({"within_subject": {"sd": 2.0}}, "key within_subject.sd"),
        ({"trials": [{"id": "x", "n_per_arm": {"placebo": 3}}]}, "key trials.0.n_per_arm"),
        ({"trials": [{"id": "x", "arms": ["placebo", "zeta"]}]}, "key trials.0.arms"),
    ],
)
def test_bad_designs_name_the_key(design, key):
    with pytest.raises(ConfigError, match=key):
        validate_design(design, "d.yaml")


def test_load_design_fills_defaults_and_names_the_file(tmp_path: Path):
    good = tmp_path / "good.yaml"
    good.write_text("type: parallel\narms: {placebo: {}, quinine: {}}\n")
    d = load_design(good)
    assert d["run_in_weeks"] == 2 and d["inclusion"]["min_cramps"] == 4
    assert d["baseline_rate"] == 0.9 and d["dropout"] == 0.08 and d["missing_days"] == 0.05
    bad = tmp_path / "bad.yaml"
    bad.write_text("missing_days: 1.5\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: key missing_days"):
        load_design(bad)


def test_cli_simulate_writes_a_reloadable_folder(tmp_path: Path, capsys):
    design = tmp_path / "design.yaml"
    design.write_text("type: nof1\nn_subjects: 3\narms: {placebo: {}, quinine: {}}\n")
    out = tmp_path / "out"
    assert cli.main(["simulate", "--design", str(design), "--seed", "5", "--out", str(out)]) == 0
    assert "3 subjects randomised" in capsys.readouterr().out
    first = _files(out)
    # the written design.yaml regenerates the folder byte for byte
    again = tmp_path / "again"
    assert cli.main(["simulate", "--design", str(out / "design.yaml"), "--seed", "5",
                     "--out", str(again)]) == 0
    second = _files(again)
    assert {k: v for k, v in first.items() if k != "design.yaml"} == {
        k: v for k, v in second.items() if k != "design.yaml"}
    bad = tmp_path / "bad.yaml"
    bad.write_text("type: nof2\n")
    assert cli.main(["simulate", "--design", str(bad), "--seed", "5", "--out", str(out)]) == 2
    assert "key type" in capsys.readouterr().err


def test_summary_text_counts():
    trial = simulate(PARALLEL, 3)
    text = summary_text(trial)
    assert "36 subjects randomised" in text and "mexiletine 12" in text
    assert f"diary records: {len(trial.tables['diary'])}" in text


def test_example_folders_match_their_designs():
    for name in ("example", "example_crossover", "example_nof1"):
        folder = DATA / name  # bundled with the repository: a missing design is a failure
        head = (folder / "design.yaml").read_text().splitlines()[2]
        seed = int(head.split("--seed ")[1].split()[0])
        trial = simulate(load_design(folder / "design.yaml"), seed)
        assert (folder / "subjects.csv").stat().st_size < 2_000_000
        expected = trial.tables["subjects"].to_csv(index=False, lineterminator="\n")
        assert (folder / "subjects.csv").read_text() == expected


def test_every_design_key_has_a_description():
    from crampstats.config import schema

    missing = []

    def walk(node: dict, path: str) -> None:
        for key, sub in (node.get("properties") or {}).items():
            if "description" not in sub:
                missing.append(f"{path}.{key}")
            walk(sub, f"{path}.{key}")
        for key in ("additionalProperties", "items"):
            if isinstance(node.get(key), dict):
                walk(node[key], f"{path}.*")
        for sub in node.get("oneOf", []):
            walk(sub, path)

    walk(schema("design"), "")
    assert not missing


@pytest.mark.parametrize("seed", ["-1", "abc"])
def test_cli_refuses_bad_seed_without_traceback(tmp_path: Path, capsys, seed):
    design = DATA / "example" / "design.yaml"
    with pytest.raises(SystemExit) as exc:
        cli.main(["simulate", "--design", str(design), "--seed", seed,
                  "--out", str(tmp_path / "o")])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "not a non-negative integer" in err and "Traceback" not in err
    assert not (tmp_path / "o").exists()
