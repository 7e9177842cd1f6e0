from __future__ import annotations

from pathlib import Path

import pytest

from crampstats.config import ConfigError, load_trial_config


def test_defaults_are_filled():
    cfg = load_trial_config(None)
    assert cfg["control_arm"] == "placebo"
    assert cfg["compliance_threshold"] == 0.8
    assert cfg["ctf_protocol"] == {"start_hz": 4, "step_hz": 2, "max_hz": 40}


def test_bad_key_is_named(tmp_path: Path):
    f = tmp_path / "t.yaml"
    f.write_text("compliance_threshold: 1.5\n")
    with pytest.raises(ConfigError, match=r"key compliance_threshold: 1.5 is greater than"):
        load_trial_config(f)


def test_unknown_key_is_refused(tmp_path: Path):
    f = tmp_path / "t.yaml"
    f.write_text("armz: [a]\n")
    with pytest.raises(ConfigError, match="armz"):
        load_trial_config(f)


def test_unreadable_yaml_names_file(tmp_path: Path):
    f = tmp_path / "t.yaml"
    f.write_text("arms: [a\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_trial_config(f)


def test_main_config_picks_trial_by_data_folder(tmp_path: Path):
    mapping = tmp_path / "map.yaml"
    mapping.write_text("design: parallel\narms: [placebo, x]\ncontrol_arm: placebo\n")
    main = tmp_path / "config.yaml"
    main.write_text(
        f"trials:\n  one:\n    data: {tmp_path / 'd1'}\n    arms: [placebo, y]\n"
        f"  two:\n    data: {tmp_path / 'd2'}\n    columns: {mapping}\n    control_arm: x\n"
    )
    one = load_trial_config(main, tmp_path / "d1")
    assert one["trial_id"] == "one" and one["arms"] == ["placebo", "y"]
    two = load_trial_config(main, tmp_path / "d2")
    assert two["trial_id"] == "two" and two["arms"] == ["placebo", "x"]
    assert two["control_arm"] == "x"  # the trial entry overrides its mapping file
    with pytest.raises(ConfigError, match="no trial has data folder"):
        load_trial_config(main, tmp_path / "elsewhere")


def test_analysis_settings_merge_main_then_mapping_file_then_entry(tmp_path: Path):
    from crampstats.config import trial_config

    mapping = tmp_path / "mine.yaml"
    mapping.write_text("analysis: {covariates: [age], sampler: {draws: 500}}\n")
    main = {"seed": 4, "analysis": {"sampler": {"chains": 2, "draws": 300}, "level": 0.9}}
    entry = {
        "trial_id": "t",
        "design": "parallel",
        "columns": str(mapping),
        "analysis": {"sampler": {"tune": 200}},
    }
    analysis = trial_config(main, entry, "test")["analysis"]
    assert analysis["covariates"] == ["age"]  # the mapping file's own analysis is kept
    assert analysis["sampler"]["chains"] == 2 and analysis["level"] == 0.9  # the main config's
    assert analysis["sampler"]["draws"] == 500  # the mapping file wins over the main config
    assert analysis["sampler"]["tune"] == 200  # the entry wins over both
    alone = trial_config({}, {"trial_id": "t", "analysis": {"sampler": {"chains": 3}}}, "test")
    assert alone["analysis"]["sampler"]["chains"] == 3  # an entry's analysis without a main one
