"""Properties across modules: simulated trials satisfy the contract, and derived datasets do not
depend on the file format or on row order."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pandas as pd
from helpers import ROOT
from hypothesis import given, settings
from hypothesis import strategies as st

from crampstats.config import check
from crampstats.derive import derive_all
from crampstats.simulate import simulate, write_trial
from crampstats.simulate.adam import export_adam
from crampstats.validate import validate

DESIGNS = {
    "parallel": {"type": "parallel", "n_per_arm": 6, "treatment_weeks": 3,
                 "arms": {"placebo": None, "quinine": None, "my arm": {"rr": 0.6}}},
    "weekly": {"type": "parallel", "n_per_arm": 5, "diary_days": 7, "dropout": 0.4,
               "arms": {"placebo": None, "magnesium": None}},
    "crossover": {"type": "crossover", "n_subjects": 6, "treatment_weeks": 2,
                  "washout_weeks": 1, "arms": {"placebo": {}, "mexiletine": {}}},
    "nof1": {"type": "nof1", "n_subjects": 4, "arms": {"placebo": {}, "quinine": {}},
             "nof1": {"cycles": 2, "block_weeks": 1, "washout_weeks": 0}},
    "multi": {"type": "parallel", "n_per_arm": 4, "tau": 0.3, "trials": ["a", "b"],
              "arms": {"placebo": None, "quinine": None}},
}
FORMATS = ("parquet", "xpt")


def _config(design: dict, trial) -> dict:
    arms = sorted(trial.tables["subjects"]["arm"].dropna().unique()) or None
    if design["type"] != "parallel":
        arms = sorted(trial.tables["diary"]["treatment"].dropna().unique())
    return check({"design": design["type"], "arms": list(arms)}, "trial")


def _rewrite(tables: dict[str, pd.DataFrame], folder: Path, fmt: str) -> None:
    folder.mkdir()
    for name, df in tables.items():
        if df.empty:  # the contract refuses header-only tables
            continue
        if fmt == "parquet":
            df.to_parquet(folder / f"{name}.parquet", index=False)
        else:
            df.to_csv(folder / f"{name}.csv", index=False)


@settings(max_examples=10, deadline=None)
@given(kind=st.sampled_from(sorted(DESIGNS)), seed=st.integers(0, 2**32 - 1))
def test_every_simulated_trial_validates(kind, seed):
    design = DESIGNS[kind]
    trial = simulate(design, seed)
    with tempfile.TemporaryDirectory() as tmp:
        write_trial(trial, Path(tmp) / "t")
        result = validate(Path(tmp) / "t", _config(design, trial))
    assert result.ok, "\n".join(map(str, result.problems))


@settings(max_examples=4, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), shuffle_seed=st.integers(0, 1000))
def test_csv_parquet_xpt_and_row_order_give_identical_derived_datasets(seed, shuffle_seed):
    design = DESIGNS["parallel"]
    trial = simulate(design, seed)
    config = _config(design, trial)
    adam_config = check({**_adam(), "arms": config["arms"]}, "trial")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        write_trial(trial, tmp / "csv")
        reference = validate(tmp / "csv", config)
        assert reference.ok
        expected = derive_all(reference.tables, reference.config)
        shuffled = {name: df.sample(frac=1, random_state=shuffle_seed)
                    for name, df in trial.tables.items()}
        _rewrite(shuffled, tmp / "shuffled", "csv")
        _rewrite(trial.tables, tmp / "parquet", "parquet")
        export_adam(reference.tables, tmp / "xpt")
        for folder, cfg in (("shuffled", config), ("parquet", config), ("xpt", adam_config)):
            other = validate(tmp / folder, cfg)
            assert other.ok, (folder, [str(p) for p in other.problems])
            got = derive_all(other.tables, other.config)
            assert got.keys() == expected.keys()
            for name in expected:
                pd.testing.assert_frame_equal(got[name], expected[name], obj=f"{folder}/{name}")


def _adam() -> dict:
    import yaml

    return yaml.safe_load((ROOT / "config" / "adam.yaml").read_text())
