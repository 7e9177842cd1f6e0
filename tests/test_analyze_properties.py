"""Optional data stay optional: `analyze` completes on any subset of the optional data.

A seeded generator draws which optional tables (EMG, adverse events) and which optional columns
(intensity, location, the EMG measures, subject characteristics) a small simulated trial keeps;
`analyze` must finish every time, fit the count models, and list each analysis it could not run
with its reason in `provenance.json`, never fail because something optional is absent.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from helpers import DATA

from crampstats.analyze import analyze
from crampstats.simulate import load_design, simulate, write_trial

OPTIONAL_COLUMNS = {
    "diary": ("intensity", "location"),
    "emg": ("ctf_hz", "afterdischarge_grade", "cramp_potential_hz"),
    "subjects": ("age", "sex", "etiology", "cramp_origin"),
}
FAST = {
    "seed": 5,
    "analysis": {
        "sampler": {"chains": 2, "draws": 150, "tune": 150},
        "diagnostics": {
            "rhat_max": 1.5,
            "ess_bulk_min": 10,
            "ess_tail_min": 10,
            "divergences_max": 1000,
        },
        "secondary": {"model_config": {"outcome_measures": {"method": "ml"}}},
    },
}


@pytest.fixture(scope="module")
def trial(tmp_path_factory) -> Path:
    spec = yaml.safe_load((DATA / "example" / "design.yaml").read_text(encoding="utf-8"))
    spec["arms"] = {k: v for k, v in spec["arms"].items() if k in ("placebo", "quinine")}
    spec["n_per_arm"] = 20
    path = tmp_path_factory.mktemp("design") / "design.yaml"
    path.write_text(yaml.safe_dump(spec), encoding="utf-8")
    folder = tmp_path_factory.mktemp("trial")
    write_trial(simulate(load_design(path), 17), folder)
    return folder


def _subsets(n: int, seed: int) -> list[tuple[frozenset[str], frozenset[str]]]:
    """``n`` random (optional tables kept, optional columns dropped) pairs.

    Drawn with a seeded generator rather than Hypothesis: PyTensor raises the recursion limit
    while compiling, which Hypothesis reports as an error inside an example.
    """
    rng = np.random.default_rng(seed)
    columns = [f"{t}.{c}" for t, cs in OPTIONAL_COLUMNS.items() for c in cs]
    return [
        (
            frozenset(t for t in ("emg", "adverse_events") if rng.random() < 0.5),
            frozenset(c for c in columns if rng.random() < 0.4),
        )
        for _ in range(n)
    ]


@pytest.mark.slow
@pytest.mark.parametrize(("tables", "dropped"), _subsets(6, seed=20261203))
def test_analyze_completes_on_any_subset_of_the_optional_data(
    trial, tmp_path_factory, tables, dropped
):
    data = tmp_path_factory.mktemp("subset")
    for name in ("subjects", "diary", *sorted(tables)):
        frame = pd.read_csv(trial / f"{name}.csv", dtype=str, keep_default_na=False)
        frame = frame.drop(columns=[c.split(".")[1] for c in dropped if c.startswith(f"{name}.")])
        frame.to_csv(data / f"{name}.csv", index=False)
    config = data / "config.yaml"
    config.write_text(
        yaml.safe_dump({**FAST, "design": "parallel", "arms": ["placebo", "quinine"]})
    )
    out = tmp_path_factory.mktemp("out") / "results"
    outcome = analyze(data, out, config, echo=lambda _line: None)
    assert {"effects", "frequentist", "diagnostics"} <= set(outcome.tables)
    assert set(outcome.tables["effects"]["model"]) == {"nb_totals", "frailty_weekly"}
    record = json.loads((out / "provenance.json").read_text(encoding="utf-8"))
    skipped = record["not_analysed"]
    if "emg" not in tables or "emg.ctf_hz" in dropped:
        assert "ctf" in skipped
    if "adverse_events" not in tables:
        assert "adverse_events" in skipped["safety"]
    if "diary.intensity" in dropped:
        assert "intensity" in skipped
    analysed = set(record["secondary_endpoints"])
    assert not analysed & set(skipped)
    failed = outcome.tables["diagnostics_secondary"]
    assert not failed["reasons"].astype(str).str.startswith("analysis failed").any(), failed
