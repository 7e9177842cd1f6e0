"""The workflow and `crampstats analyze` plan the same fits: one planner, read by both.

For every bundled configuration (the main one and each `.test/` one, which include crossover,
N-of-1 and a folder that holds several trials), the fit and secondary jobs of the workflow's dry
run are exactly the models and endpoints :func:`crampstats.catalogue.plan_folder` gives the
trial, the function `analyze` plans with.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from crampstats.catalogue import plan_folder
from crampstats.config import load_trial_config

ROOT = Path(__file__).resolve().parents[2]
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
WORKDIRS = [
    ROOT,
    ROOT / ".test",
    *sorted(p.parent.parent for p in ROOT.glob(".test/*/config/config.yaml")),
]


def _dry_run_jobs(workdir: Path) -> dict[str, dict[str, list[str]]]:
    """Trial -> {"fit": models, "secondary": endpoints} of a forced dry run in ``workdir``."""
    done = subprocess.run(
        [
            SNAKEMAKE,
            "-s",
            str(ROOT / "workflow" / "Snakefile"),
            "--directory",
            str(workdir),
            "-n",
            "-p",
            "--forceall",
            "-c",
            "1",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        env={
            **os.environ,
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        },
    )
    assert done.returncode == 0, done.stderr[-3000:]
    jobs: dict[str, dict[str, list[str]]] = {}
    for rule, wildcards in re.findall(
        r"^(?:local)?rule (\w+):\n(?:.*\n)*?\s+wildcards: (.*)$", done.stdout, flags=re.M
    ):
        values = dict(item.split("=", 1) for item in wildcards.split(", "))
        if rule == "fit":
            jobs.setdefault(values["trial"], {"fit": [], "secondary": []})["fit"].append(
                values["model"]
            )
    # one secondary job per trial: its endpoints are the shell command's --endpoint list
    for endpoints, trial in re.findall(
        r"crampstats secondary \S+ --endpoint ([\w ]+?) --out \S*?results/(\w+)/secondary",
        done.stdout,
    ):
        jobs.setdefault(trial, {"fit": [], "secondary": []})["secondary"].extend(endpoints.split())
    return jobs


@pytest.mark.parametrize("workdir", WORKDIRS, ids=lambda p: str(p.relative_to(ROOT)) or ".")
def test_workflow_and_analyze_plan_the_same_fits(workdir, monkeypatch):
    jobs = _dry_run_jobs(workdir)
    config_file = workdir / "config" / "config.yaml"
    import yaml

    trials = yaml.safe_load(config_file.read_text(encoding="utf-8"))["trials"]
    assert set(jobs) == set(trials)
    monkeypatch.chdir(workdir)  # data paths in a config are relative to its working directory
    for name, entry in trials.items():
        plan = plan_folder(entry["data"], load_trial_config(config_file, entry["data"]))
        assert sorted(jobs[name]["fit"]) == sorted(m.id for m in plan.models), name
        assert sorted(jobs[name]["secondary"]) == sorted(e.id for e in plan.endpoints), name


def test_a_users_own_config_file_is_the_whole_config(tmp_path):
    """`--configfile my.yaml` runs exactly my.yaml's trials, validated with my.yaml's settings."""
    mine = tmp_path / "my.yaml"
    mine.write_text(
        "seed: 3\n"
        "analysis: {secondary: {endpoints: [location]}}\n"
        "trials:\n"
        f"  mine: {{data: {ROOT / 'data' / 'example_nof1'}, design: nof1, control_arm: placebo}}\n",
        encoding="utf-8",
    )
    command = [SNAKEMAKE, "-s", str(ROOT / "workflow" / "Snakefile"), "--directory",
               str(tmp_path), "--configfile", str(mine), "-c", "1"]
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    dry = subprocess.run([*command, "-n", "-p"], capture_output=True, text=True, check=False,
                         env=env)
    assert dry.returncode == 0, dry.stderr[-3000:]
    assert set(re.findall(r"wildcards: trial=(\w+)", dry.stdout)) == {"mine"}
    assert re.findall(r"crampstats secondary \S+ --endpoint ([\w ]+?) --out", dry.stdout) == [
        "location"
    ]
    done = subprocess.run([*command, "results/mine/validated"], capture_output=True, text=True,
                          check=False, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    record = json.loads((tmp_path / "results/mine/validated/validation.json").read_text())
    assert record["config"]["seed"] == 3 and record["config"]["trial_id"] == "mine"
