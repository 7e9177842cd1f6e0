"""Fixtures shared by the report tests: one hostile analysis for the whole test run."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml
from filelock import FileLock
from helpers import HOSTILE_ARM, HOSTILE_ID, hostile_copy

from crampstats.analyze import analyze

HOSTILE_ARMS = ["placebo", "mexiletine", "quinine", "vitamin_b_complex", HOSTILE_ARM]


def _hostile_analysis(root: Path) -> None:
    shutil.rmtree(root, ignore_errors=True)  # what a failed attempt left
    hostile_copy(root / "data", arm=HOSTILE_ARM, subject=HOSTILE_ID)
    config = {
        "trial_id": "example",
        "design": "parallel",
        "control_arm": "placebo",
        "arms": HOSTILE_ARMS,
        "seed": 3,
        "analysis": {
            "models": ["nb_totals", "frailty_weekly"],
            "sampler": {"chains": 2, "draws": 150, "tune": 150, "cores": 2},
            # out of reach of 300 draws: every fit fails the gate, so the alert is shown
            "diagnostics": {"ess_bulk_min": 5000},
        },
    }
    (root / "trial.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    outcome = analyze(root / "data", root / "results", root / "trial.yaml", echo=lambda _: None)
    (root / "failed.json").write_text(json.dumps(list(outcome.failed)), encoding="utf-8")


@pytest.fixture(scope="session")
def hostile_results(tmp_path_factory, worker_id) -> tuple[Path, list[str]]:
    """The results folder of the example trial analysed under hostile names, and the models
    that failed the diagnostics gate (all of them: the sampler is far too short).

    The analysis costs minutes (every secondary model compiles), and the report and browser
    tests both need it: parallel test workers share one copy through a lock in the run's
    common temporary folder (pytest-xdist's recipe for once-per-run fixtures). Tests read it,
    never write to it.
    """
    # under xdist each worker's temporary folder sits in the run's own folder
    shared = tmp_path_factory.getbasetemp()
    if worker_id != "master":
        shared = shared.parent
    root = shared / "hostile-analysis"
    with FileLock(str(shared / "hostile-analysis.lock")):
        if not (root / "failed.json").is_file():
            _hostile_analysis(root)
    return root / "results", json.loads((root / "failed.json").read_text(encoding="utf-8"))
