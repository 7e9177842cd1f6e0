"""The planner refuses covariates the subjects table cannot supply, before anything is fitted."""

from __future__ import annotations

import pytest
from helpers import EXAMPLE

from crampstats.catalogue import plan_trial
from crampstats.catalogue.planning import check_subject_terms
from crampstats.config import ConfigError, load_trial_config
from crampstats.models import ModelDataError
from crampstats.validate import validate


@pytest.fixture(scope="module")
def example():
    result = validate(EXAMPLE, load_trial_config(None, EXAMPLE))
    assert result.ok
    tables = dict(result.tables)
    subjects = tables["subjects"].copy()
    subjects["bmi"] = 20.0 + (subjects.index % 13)
    subjects["site"] = "site" + (subjects.index % 5).astype(str)
    tables["subjects"] = subjects
    return dict(result.config), tables


def _with(config, **analysis):
    return {**config, "analysis": {**config.get("analysis", {}), **analysis}}


def test_known_subject_columns_are_planned(example):
    config, tables = example
    plan = plan_trial(_with(config, covariates=["age", "bmi"], random_intercepts=["site"]), tables)
    assert plan.primary.id == "nb_totals"


def test_unknown_covariate_is_a_configuration_error_listing_the_columns(example):
    config, tables = example
    with pytest.raises(ConfigError) as info:
        plan_trial(_with(config, covariates=["bmi", "height"]), tables)
    message = str(info.value)
    assert "analysis.covariates: unknown subject column(s) height" in message
    assert "age, sex, etiology, cramp_origin, bmi, site" in message
    with pytest.raises(ConfigError, match=r"analysis.random_intercepts: unknown .* centre"):
        plan_trial(_with(config, random_intercepts=["centre"]), tables)
    # a contract column without any value is not available either
    with pytest.raises(ConfigError, match="stratum holds no value"):
        plan_trial(_with(config, covariates=["stratum"]), tables)
    # identifiers, arm and withdrawal are no covariates
    with pytest.raises(ConfigError, match=r"unknown subject column.s. arm"):
        plan_trial(_with(config, covariates=["arm"]), tables)
    with pytest.raises(ConfigError, match="both name"):
        plan_trial(_with(config, covariates=["site"], random_intercepts=["site"]), tables)


def test_missing_covariate_values_are_refused_naming_the_subjects(example):
    config, tables = example
    holes = dict(tables)
    subjects = holes["subjects"].copy()
    subjects.loc[[3, 17], "bmi"] = None
    holes["subjects"] = subjects
    named = ", ".join(subjects.loc[[3, 17], "subject_id"])
    with pytest.raises(ModelDataError, match=f"bmi .* is missing for 2 subject.s.: {named};"):
        plan_trial(_with(config, covariates=["bmi"]), holes)
    # a declared strategy lets the plan through (the models drop or code the subjects)
    for strategy in ("drop", "indicator"):
        check_subject_terms(_with(config, covariates=["bmi"], covariate_missing=strategy), holes)
