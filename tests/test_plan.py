"""The analysis plan: schema defaults and refusals, checks against the trial, hash, freeze."""

from __future__ import annotations

import json

import pytest
import yaml

from crampstats import plan as plan_mod
from crampstats.cli import main
from crampstats.config import ConfigError, check
from crampstats.plan import (
    PlanError,
    attach_frozen,
    check_plan,
    freeze_record,
    parse_plan,
    plan_status,
    read_record,
    record_path,
)

ARMS = ["placebo", "a", "b", "c"]
#: An intensity primary endpoint with criteria on the difference in mean intensity.
INTENSITY = {
    "endpoint": "intensity",
    "summary_measure": "difference_in_mean_intensity",
    "success": {"criteria": [{"difference": 0, "probability": 0.975},
                             {"difference": -1, "probability": 0.5}]},
}  # fmt: skip


def resolved(plan: dict | None = None, **analysis) -> dict:
    """A trial config resolved by the schema, with ``analysis.plan = plan``."""
    block = dict(analysis)
    if plan is not None:
        block["plan"] = plan
    return check({"analysis": block}, "trial")


# ---------------------------------------------------------------------------------------------
# Schema
# ---------------------------------------------------------------------------------------------
def test_schema_defaults_are_the_modules_defaults_and_todays_analysis():
    filled = resolved()["analysis"]["plan"]
    assert filled == plan_mod.DEFAULT_PLAN
    # a config resolved before the plan existed parses to the same plan
    assert parse_plan({"analysis": {"threshold": 0.75}}) == parse_plan(resolved())
    plan = parse_plan(resolved())
    assert plan.rule == "P(RR < 1) >= 0.975 and P(RR < 0.75) >= 0.5"
    assert plan.strategy == "none" and plan.planning_rate_ratio == 0.75
    assert set(plan.intercurrent_events.values()) == {"hypothetical"}


@pytest.mark.parametrize(
    ("plan", "key"),
    [
        ({"multiplicity": {"strategy": "bonferroni"}}, "analysis.plan.multiplicity.strategy"),
        ({"success": {"criteria": [{"rate_ratio": 1, "probability": 1.2}]}}, "probability"),
        ({"success": {"criteria": []}}, "analysis.plan.success.criteria"),
        ({"success": {"criteria": [{"rate_ratio": 1}]}}, "criteria.0"),
        ({"intercurrent_events": {"death": "composite"}}, "intercurrent_events"),
        ({"intercurrent_events": {"withdrawal": "ignore"}}, "withdrawal"),
        ({"endpoint": "ctf"}, "analysis.plan.endpoint"),
        ({"estimand": "x"}, "analysis.plan"),
        ({"multiplicity": {"alpha": 0.9}}, "alpha"),
    ],
)
def test_schema_refuses_bad_plans_naming_the_key(plan, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        resolved(plan)


# ---------------------------------------------------------------------------------------------
# Checks against the trial
# ---------------------------------------------------------------------------------------------
def test_fixed_sequence_order_must_list_each_active_arm_once():
    def sequence(order):
        multiplicity = {"strategy": "fixed_sequence", "order": order}
        return parse_plan(resolved({"multiplicity": multiplicity}))

    check_plan(sequence(["c", "a", "b"]), ARMS, "placebo")
    bad = sequence(["a", "x"])
    with pytest.raises(PlanError) as err:
        check_plan(bad, ARMS, "placebo")
    message = str(err.value)
    assert "['x'] are not active arms" in message and "missing ['b', 'c']" in message
    none = parse_plan(resolved({"multiplicity": {"strategy": "fixed_sequence"}}))
    with pytest.raises(PlanError, match="needs the testing order"):
        check_plan(none, None, "placebo")


@pytest.mark.parametrize(
    ("plan", "arms", "primary", "message"),
    [
        ({"multiplicity": {"strategy": "exchangeable"}}, ["placebo", "a"], None, "at least two"),
        ({"multiplicity": {"strategy": "exchangeable"}}, ARMS, "crossover", "nb_totals"),
        ({"multiplicity": {"strategy": "calibrated"}}, ARMS, "crossover", "parallel arms"),
        (
            {
                "multiplicity": {"strategy": "calibrated"},
                "success": {"criteria": [{"rate_ratio": 0.8, "probability": 0.9}]},
            },
            ARMS, None, "has none",
        ),
        ({"multiplicity": {"order": ["a"]}}, ARMS, None, "only used by fixed_sequence"),
        ({"intercurrent_events": {"withdrawal": "composite"}}, ARMS, None, "cannot express"),
        ({"endpoint": "intensity"}, ARMS, None, "its summary measure is difference_in_mean"),
        (INTENSITY | {"success": {}}, ARMS, None, r"P\(RR < 1\) >= 0.975.*another scale"),
        ({"summary_measure": "difference_in_mean_intensity"}, ARMS, None, "measure is rate_ratio"),
        ({"success": {"criteria": [{"difference": 0, "probability": 0.9}]}}, ARMS, None,
         "another scale"),
        (
            INTENSITY | {"success": {"criteria": [
                {"difference": 0, "rate_ratio": 1, "probability": 0.9}]}},
            ARMS, None, "no rate_ratio",
        ),
        (INTENSITY | {"multiplicity": {"strategy": "exchangeable"}}, ARMS, None,
         "analysis is intensity"),
        (INTENSITY | {"intercurrent_events": {"withdrawal": "composite"}}, ARMS, None,
         "a mean intensity cannot express"),
        (
            INTENSITY | {
                "multiplicity": {"strategy": "calibrated"},
                "success": {"criteria": [{"difference": -1, "probability": 0.9}]},
            },
            ARMS, None, r"has none \(add \{difference: 0",
        ),
    ],
)  # fmt: skip
def test_plans_the_trial_cannot_carry_out_are_refused(plan, arms, primary, message):
    with pytest.raises(PlanError, match=message):
        check_plan(parse_plan(resolved(plan)), arms, "placebo", primary)


def test_an_intensity_plan_is_decided_on_the_difference_and_needs_its_analysis():
    plan = parse_plan(resolved(INTENSITY))
    assert plan.rule == "P(difference < 0) >= 0.975 and P(difference < -1) >= 0.5"
    assert [c.is_null for c in plan.criteria] == [True, False]
    assert [c.bound for c in plan.criteria] == [0.0, -1.0]
    check_plan(plan, ARMS, "placebo", "nb_totals", ["intensity", "ctf"])
    with pytest.raises(PlanError, match="intensity analysis does not run"):
        check_plan(plan, ARMS, "placebo", "nb_totals", ["ctf"])
    # a rate-ratio criterion keeps the keys (and so the hash) it had before intensity existed
    first = parse_plan(resolved()).as_dict()["criteria"][0]
    assert first == {"rate_ratio": 1.0, "probability": 0.975}
    assert plan.hash != parse_plan(resolved()).hash


# ---------------------------------------------------------------------------------------------
# Hash
# ---------------------------------------------------------------------------------------------
def test_hash_changes_with_the_plan_and_not_otherwise():
    base = parse_plan(resolved()).hash
    assert len(base) == 64 and base == parse_plan(resolved()).hash
    # explicit defaults, key order and settings outside the plan leave it unchanged
    explicit = {
        "multiplicity": {"alpha": 0.025, "strategy": "none"},
        "success": {"criteria": [{"probability": 0.975, "rate_ratio": 1.0}, {"probability": 0.5}]},
    }
    assert parse_plan(resolved(explicit)).hash == base
    assert parse_plan(resolved(level=0.9, twins=False)).hash == base
    # anything that decides a verdict changes it
    changed = [
        resolved({"multiplicity": {"strategy": "calibrated"}}),
        resolved({"multiplicity": {"alpha": 0.05}}),
        resolved({"success": {"criteria": [{"rate_ratio": 1.0, "probability": 0.95}]}}),
        resolved({"success": {"planning_rate_ratio": 0.6}}),
        resolved({"intercurrent_events": {"withdrawal": "composite"}}),
        resolved(threshold=0.8),  # the null criterion resolves to analysis.threshold
    ]
    hashes = {parse_plan(c).hash for c in changed}
    assert len(hashes) == len(changed) and base not in hashes


# ---------------------------------------------------------------------------------------------
# Freeze and verify
# ---------------------------------------------------------------------------------------------
def write_config(path, plan):
    path.write_text(
        yaml.safe_dump({"trial_id": "t1", "arms": ARMS, "analysis": {"plan": plan}}),
        encoding="utf-8",
    )


def test_freeze_then_verify_and_detect_a_change(tmp_path, capsys):
    config = tmp_path / "trial.yaml"
    write_config(config, {"multiplicity": {"strategy": "fixed_sequence", "order": ["a", "b", "c"]}})
    assert main(["plan", "verify", "--config", str(config)]) == 0
    assert "not frozen" in capsys.readouterr().out
    assert main(["plan", "freeze", "--config", str(config)]) == 0
    assert record_path(config) == tmp_path / "trial.plan-freeze.json"
    record = read_record(config)
    digest = parse_plan(check(yaml.safe_load(config.read_text()), "trial")).hash
    assert record["plans"]["*"]["plan_hash"] == digest
    assert record["frozen_utc"].endswith("+00:00")
    capsys.readouterr()
    assert main(["plan", "verify", "--config", str(config)]) == 0
    assert ": frozen (frozen " in capsys.readouterr().out
    # freezing twice needs --force
    assert main(["plan", "freeze", "--config", str(config)]) == 2
    assert "--force" in capsys.readouterr().err
    # a changed plan: verify exits 1, the status says so, provenance would record it
    write_config(config, {"multiplicity": {"strategy": "fixed_sequence", "order": ["c", "b", "a"]}})
    assert main(["plan", "verify", "--config", str(config)]) == 1
    assert "changed after freezing" in capsys.readouterr().out
    attached = attach_frozen(check(yaml.safe_load(config.read_text()), "trial"), config)
    status = plan_status(attached)
    assert status["changed_after_freeze"] is True and status["frozen_hash"] == digest
    assert status["plan_hash"] != digest and status["record"] == "trial.plan-freeze.json"


def test_freeze_refuses_a_plan_naming_unknown_arms_and_writes_nothing(tmp_path, capsys):
    config = tmp_path / "trial.yaml"
    write_config(config, {"multiplicity": {"strategy": "fixed_sequence", "order": ["a", "zz"]}})
    assert main(["plan", "freeze", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert "['zz'] are not active arms" in err and "Traceback" not in err
    assert not record_path(config).exists()


def test_main_config_records_each_trial_and_attach_picks_its_own(tmp_path):
    main_config = {
        "analysis": {"threshold": 0.75},
        "trials": {
            "one": {"data": "d1", "arms": ["placebo", "a"]},
            "two": {"data": "d2", "analysis": {"plan": {"success": {"planning_rate_ratio": 0.6}}}},
        },
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(main_config), encoding="utf-8")
    assert main(["plan", "freeze", "--config", str(path)]) == 0
    record = json.loads(record_path(path).read_text())
    assert sorted(record["plans"]) == ["one", "two"]
    assert record["plans"]["one"]["plan_hash"] != record["plans"]["two"]["plan_hash"]
    one = attach_frozen({**resolved(), "trial_id": "one"}, path)
    assert one["plan_frozen"]["plan_hash"] == record["plans"]["one"]["plan_hash"]
    assert plan_status(one)["status"] == "frozen"
    unknown = attach_frozen({**resolved(), "trial_id": "three"}, path)
    assert unknown["plan_frozen"] is None and plan_status(unknown)["status"] == "not frozen"
    # settings handed over on standard input keep their own record
    assert attach_frozen(one, "-")["plan_frozen"] == one["plan_frozen"]


def test_a_damaged_record_is_refused_with_its_name(tmp_path):
    config = tmp_path / "trial.yaml"
    write_config(config, {})
    record_path(config).write_text('{"plans": 3}', encoding="utf-8")
    with pytest.raises(PlanError, match=r"trial\.plan-freeze\.json: not a frozen-plan record"):
        attach_frozen(resolved(), config)
    record = freeze_record({"*": parse_plan(resolved())}, config)
    assert set(record) == {"config", "frozen_utc", "plans"} and record["config"] == "trial.yaml"


def test_the_planner_refuses_a_plan_the_data_contradict_before_any_fit():
    """crampstats analyze and the workflow plan through plan_trial: the arms come from the data."""
    import pandas as pd

    from crampstats.catalogue import plan_trial

    subjects = pd.DataFrame({"subject_id": ["s1", "s2", "s3"], "arm": ["placebo", "a", "b"]})
    diary = pd.DataFrame({"subject_id": ["s1"], "study_day": [1], "cramp_count": [0]})
    tables = {"subjects": subjects, "diary": diary}
    config = resolved({"multiplicity": {"strategy": "fixed_sequence", "order": ["a", "c"]}})
    config["design"] = "parallel"
    with pytest.raises(PlanError, match=r"\['c'\] are not active arms.*\n.*missing \['b'\]"):
        plan_trial(config, tables)
    config["analysis"]["plan"]["multiplicity"]["order"] = ["b", "a"]
    assert plan_trial(config, tables).models[0].id == "nb_totals"
