"""Shared pytest fixtures (shared plain helpers: ``tests/helpers.py``)."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

from crampstats.engine import use_compile_cache

# Every test process compiles as the command line does: into the machine's compile cache, with
# IEEE arithmetic (docs/design.md, "Compile once per machine"). Called before anything imports
# PyTensor; without it a worker's flags depended on whether a test that runs the command line came
# before its first model, and with Numba's fastmath the draws then depended on the test order.
use_compile_cache()

import helpers  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture
def rng() -> np.random.Generator:
    """A seeded generator, so every test is reproducible."""
    return np.random.default_rng(20261125)


@pytest.fixture(scope="session")
def example_results(tmp_path_factory) -> Callable[[str], Path]:
    """``example_results(trial)``: the results folder of a bundled example trial.

    Holds ``validated/`` and ``derived/`` of ``data/<trial>`` (``example``,
    ``example_crossover``, ``example_nof1``), written as ``make run`` writes them (the
    workflow's validate and derive rules, :func:`helpers.write_example_results`) into a
    session temporary folder, each on first use; no fits. Tests read it, never write to it.
    """
    root = tmp_path_factory.mktemp("results")

    def build(trial: str) -> Path:
        out = root / trial
        if not out.is_dir():  # built aside and renamed: a failed build leaves no half folder
            partial = root / f"{trial}.partial"
            shutil.rmtree(partial, ignore_errors=True)
            helpers.write_example_results(trial, partial).rename(out)
        return out

    return build


@pytest.fixture(scope="session")
def example_derived(example_results) -> Callable[[str], dict]:
    """``example_derived(trial)``: the derived datasets of a bundled example trial, read afresh
    from :func:`example_results` (so a test may change its copy)."""
    from crampstats.derive import read_derived

    def read(trial: str = "example") -> dict:
        return read_derived(example_results(trial) / "derived")[0]

    return read
