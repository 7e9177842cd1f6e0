"""Every small CI configuration of the workflow (`.test/config/` and `.test/*/config/`) is sound.

Each `.test` folder is a Snakemake working directory whose `config/config.yaml` names its trials'
data folders relative to it. For each one: the config passes the workflow's schema, its data
folders exist, and Snakemake dry-runs and lints the workflow on it. Nothing is fitted, so these
take seconds; the end-to-end runs of the default `.test` config are in the workflow tests.
"""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
SNAKEFILE = ROOT / "workflow" / "Snakefile"
SCHEMA = ROOT / "workflow" / "schemas" / "config.schema.yaml"
TEST_DIR = ROOT / ".test"
BIN = Path(sys.executable).parent

#: Working directories with a config: `.test` itself and every `.test/<name>/`.
WORKDIRS = [
    path.parent.parent
    for path in [
        *sorted(TEST_DIR.glob("config/config.yaml")),
        *sorted(TEST_DIR.glob("*/config/config.yaml")),
    ]
]
IDS = [str(w.relative_to(ROOT)) for w in WORKDIRS]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    return env


def _snakemake(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    """Run Snakemake from the repository root on ``workdir``; fail with its output if it fails."""
    cmd = [
        str(BIN / "snakemake"),
        "-s",
        str(SNAKEFILE.relative_to(ROOT)),
        "--directory",
        str(workdir.relative_to(ROOT)),
        *args,
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=_env(), cwd=ROOT)
    if proc.returncode != 0:
        tail = f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        raise AssertionError(f"{' '.join(cmd)} exited {proc.returncode}:\n{tail}")
    return proc


def _config(workdir: Path) -> dict:
    return yaml.safe_load((workdir / "config" / "config.yaml").read_text(encoding="utf-8"))


def test_the_test_configs_are_found():
    names = {w.name for w in WORKDIRS}
    assert {".test", "crossover", "multi_trial"} <= names


@pytest.mark.parametrize("workdir", WORKDIRS, ids=IDS)
def test_config_follows_the_workflow_schema(workdir):
    from snakemake.utils import validate

    config = _config(workdir)
    validate(copy.deepcopy(config), schema=str(SCHEMA))  # raises WorkflowError naming the key


@pytest.mark.parametrize("workdir", WORKDIRS, ids=IDS)
def test_data_folders_exist_relative_to_the_working_directory(workdir):
    for name, entry in _config(workdir)["trials"].items():
        data = workdir / entry["data"]
        assert data.is_dir(), f"trial {name}: no data folder {data}"
        assert any(p.is_file() for p in data.iterdir()), f"trial {name}: {data} is empty"
        if entry.get("columns"):
            assert (workdir / entry["columns"]).is_file(), f"trial {name}: no {entry['columns']}"


@pytest.mark.parametrize("workdir", WORKDIRS, ids=IDS)
def test_dry_run(workdir):
    _snakemake(workdir, "-n", "-q")


@pytest.mark.parametrize("workdir", WORKDIRS, ids=IDS)
def test_lint(workdir):
    _snakemake(workdir, "--lint")


def test_multi_trial_config_plans_the_network_model():
    proc = _snakemake(TEST_DIR / "multi_trial", "-n")
    out = proc.stdout + proc.stderr
    # several trials in one folder: the primary model accounts for trial; none pools naively
    assert "results/example_multi/fits/cramp_frequency__multi_trial.nc" in out
    assert "cramp_frequency__nb_totals.nc" not in out
