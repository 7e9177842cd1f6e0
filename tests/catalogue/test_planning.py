"""The catalogue and its planner: what runs on which data, seeds, refusals."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from helpers import DATA, EXAMPLE

from crampstats.catalogue import (
    CATALOGUE,
    COUNT_MODELS,
    ENDPOINTS,
    available_data,
    count_entry,
    endpoint_entry,
    plan_folder,
    plan_trial,
)
from crampstats.config import ConfigError, load_trial_config
from crampstats.errors import CrampstatsError
from crampstats.validate import validate


@pytest.fixture(scope="module")
def example():
    result = validate(EXAMPLE, load_trial_config(None, EXAMPLE))
    assert result.ok
    return dict(result.config), result.tables


def _with(config: dict, **analysis) -> dict:
    return {**config, "analysis": {**config.get("analysis", {}), **analysis}}


def _secondary(config: dict, **secondary) -> dict:
    settings = {**config.get("analysis", {}).get("secondary", {}), **secondary}
    return _with(config, secondary=settings)


def _ids(entries) -> list[str]:
    return [e.id for e in entries]


def test_the_catalogue_lists_each_analysis_once_with_a_distinct_seed_key():
    ids = _ids(COUNT_MODELS) + _ids(ENDPOINTS)
    assert len(ids) == len(set(ids)) == len(CATALOGUE)
    keys = [e.seed_key for e in CATALOGUE.values()]
    assert len(keys) == len(set(keys))
    assert all(e.model is not None and e.twin is not None for e in COUNT_MODELS)
    described = [e for e in ENDPOINTS if e.model is None]
    assert all(e.tables is not None for e in described)
    with pytest.raises(KeyError, match="known"):
        count_entry("no_such_model")
    with pytest.raises(KeyError, match="known"):
        endpoint_entry("no_such_endpoint")


def test_seeds_are_stable_children_of_the_root_spawned_by_key():
    seeds = [e.seed(7) for e in CATALOGUE.values()]
    assert seeds == [e.seed(7) for e in CATALOGUE.values()]
    assert count_entry("nb_totals").seed(8) != count_entry("nb_totals").seed(7)
    # the count models' seeds are the children SeedSequence(root).spawn() hands out
    children = np.random.SeedSequence(7).spawn(len(COUNT_MODELS))
    assert [e.seed(7) for e in COUNT_MODELS] == [
        int(c.generate_state(1, dtype=np.uint32)[0]) for c in children
    ]
    child = np.random.SeedSequence(7, spawn_key=(100,))
    assert endpoint_entry("ctf").seed(7) == int(child.generate_state(1, dtype=np.uint32)[0])


def test_available_data_counts_columns_with_a_value():
    tables = {
        "subjects": pd.DataFrame({"subject_id": ["a"], "arm": [pd.NA]}),
        "emg": pd.DataFrame({"subject_id": []}),
    }
    assert available_data(tables) == {"subjects", "subjects.subject_id"}


def test_plan_of_a_parallel_trial_follows_the_data_and_the_config(example):
    config, tables = example
    plan = plan_trial(config, tables)
    assert _ids(plan.models) == ["nb_totals", "frailty_weekly"]
    assert plan.primary.id == "nb_totals"
    assert _ids(plan.endpoints) == _ids(ENDPOINTS) and plan.skipped == {}
    no_emg = {k: v for k, v in tables.items() if k != "emg"}
    plan = plan_trial(config, no_emg)
    assert {"ctf", "afterdischarge", "cramp_potential"} == set(plan.skipped)
    assert "emg.ctf_hz" in plan.skipped["ctf"]
    assert _ids(plan_trial(_secondary(config, endpoints=[]), tables).endpoints) == []
    listed = plan_trial(_secondary(config, endpoints=["safety", "ctf"]), tables)
    assert _ids(listed.endpoints) == ["ctf", "safety"]
    assert _ids(plan_trial(_with(config, models=["nb_glmm"]), tables).models) == ["nb_glmm"]
    assert plan.record()["primary"] == "nb_totals"


def test_plan_of_a_within_subject_design(example):
    config, tables = example
    plan = plan_trial({**config, "design": "crossover"}, tables)
    assert _ids(plan.models) == ["crossover"]
    assert _ids(plan.endpoints) == ["cramp_potential", "location", "outcome_measures"]
    assert set(plan.skipped) == {
        "ctf", "afterdischarge", "intensity", "responder", "safety", "subgroups"
    }  # fmt: skip


def test_what_config_asks_for_but_cannot_run_is_refused_at_start(example):
    config, tables = example
    no_ae = {k: v for k, v in tables.items() if k != "adverse_events"}
    with pytest.raises(ConfigError, match=r"safety \(needs adverse_events"):
        plan_trial(_secondary(config, endpoints=["safety"]), no_ae)
    with pytest.raises(CrampstatsError, match="cannot analyse a parallel design"):
        plan_trial(_with(config, models=["crossover"]), tables)
    with pytest.raises(ConfigError, match="unknown model"):
        plan_trial(_with(config, models=["nb_total"]), tables)


def test_a_minimal_trial_plans_the_count_models_and_skips_the_rest(tmp_path):
    for name in ("subjects.csv", "diary.csv"):
        frame = pd.read_csv(EXAMPLE / name)
        frame = frame.drop(columns=[c for c in ("intensity", "location") if c in frame])
        frame.to_csv(tmp_path / name, index=False)
    plan = plan_folder(tmp_path, load_trial_config(None, tmp_path))
    assert _ids(plan.models) == ["nb_totals", "frailty_weekly"]
    assert _ids(plan.endpoints) == ["responder", "outcome_measures", "subgroups"]
    assert set(plan.skipped) == {"ctf", "afterdischarge", "cramp_potential", "intensity",
                                 "safety", "location"}


def test_a_configured_subgroup_column_alone_plans_the_subgroup_analysis(tmp_path):
    subjects = pd.read_csv(EXAMPLE / "subjects.csv").drop(columns=["cramp_origin", "etiology"])
    subjects.to_csv(tmp_path / "subjects.csv", index=False)
    (tmp_path / "diary.csv").write_bytes((EXAMPLE / "diary.csv").read_bytes())
    config = load_trial_config(None, tmp_path)
    plain = plan_folder(tmp_path, config)
    assert "subgroups" not in _ids(plain.endpoints)
    assert "analysis.subgroups" in plain.skipped["subgroups"]
    mine = plan_folder(tmp_path, _with(config, subgroups=["sex"]))
    assert "subgroups" in _ids(mine.endpoints)
    absent = plan_folder(tmp_path, _with(config, subgroups=["no_such_column"]))
    assert "subgroups" not in _ids(absent.endpoints)


def test_several_trials_make_the_multi_trial_model_primary():
    data = DATA / "example_multi"
    plan = plan_folder(data, {**load_trial_config(None, data), "design": "parallel"})
    assert _ids(plan.models) == ["multi_trial"]


def test_data_that_break_the_contract_stop_the_plan(tmp_path):
    (tmp_path / "subjects.csv").write_text("subject_id,arm\ns1,placebo\n", encoding="utf-8")
    with pytest.raises(CrampstatsError, match="diary"):
        plan_folder(tmp_path, load_trial_config(None, tmp_path))
