"""Fixtures of the calibration tests: cases whose posterior is known exactly (no sampling)."""

from __future__ import annotations

import sys
from collections.abc import Callable

import numpy as np
import pytest

from crampstats.calibration import CalibrationCase, Estimate, Replicate

N_OBS = 10
N_DRAWS = 4000


def conjugate_case(
    name: str, sd_scale: float = 1.0, shift: float = 0.0, sbc: bool = False
) -> CalibrationCase:
    """Normal mean, known unit variance, N(0, 1) prior; truth drawn from the prior.

    With the truth drawn from the prior, the exact posterior's central intervals cover it with
    exactly their nominal probability (the Bayesian guarantee), and the truth's rank among
    its draws is uniform (SBC); ``sd_scale`` != 1 makes the posterior too narrow or too wide,
    ``shift`` moves it by that many posterior SDs.
    """

    def start(cores: int) -> Callable[[np.random.SeedSequence], Replicate]:
        def run(seed: np.random.SeedSequence) -> Replicate:
            rng = np.random.default_rng(seed)
            mu = rng.normal()
            y = rng.normal(mu, 1.0, size=N_OBS)
            mean, sd = y.sum() / (N_OBS + 1), np.sqrt(1 / (N_OBS + 1))
            draws = rng.normal(mean + shift * sd, sd * sd_scale, size=N_DRAWS)
            return Replicate([Estimate("mu", mu, draws)])

        return run

    return CalibrationCase(
        name=name,
        model="conjugate_normal",
        description="Conjugate normal mean (test case).",
        modules=(sys.modules[__name__],),
        start=start,
        sbc=sbc,
    )


@pytest.fixture
def exact_case() -> CalibrationCase:
    return conjugate_case("exact")


@pytest.fixture
def narrow_case() -> CalibrationCase:
    return conjugate_case("narrow", sd_scale=0.6)


@pytest.fixture
def sbc_cases() -> tuple[CalibrationCase, CalibrationCase]:
    """The exact posterior and one shifted by half a posterior SD, both checked by SBC."""
    return conjugate_case("sbc_exact", sbc=True), conjugate_case("sbc_shifted", 1.0, 0.5, True)


def null_case(name: str, shift: float = 0.0, replicates: int = 2000) -> CalibrationCase:
    """Normal mean with known unit variance and a flat prior; the truth is 0, the null.

    The exact posterior ``N(ybar, 1 / n)`` puts its 97.5 % quantile below 0 in exactly 2.5 % of
    trials (the one-sided z-test); ``shift`` (in posterior SDs) moves it towards an effect.
    """

    def start(cores: int) -> Callable[[np.random.SeedSequence], Replicate]:
        def run(seed: np.random.SeedSequence) -> Replicate:
            rng = np.random.default_rng(seed)
            y = rng.normal(0.0, 1.0, size=N_OBS)
            sd = np.sqrt(1 / N_OBS)
            draws = rng.normal(y.mean() - shift * sd, sd, size=N_DRAWS)
            return Replicate([Estimate("mu", 0.0, draws)])

        return run

    return CalibrationCase(
        name=name,
        model="conjugate_normal",
        description="Flat-prior normal mean under the null (test case).",
        modules=(sys.modules[__name__],),
        start=start,
        replicates=replicates,
        null_rate=0.025,
    )


@pytest.fixture
def null_exact_case() -> CalibrationCase:
    return null_case("null_exact")


@pytest.fixture
def null_biased_case() -> CalibrationCase:
    return null_case("null_biased", shift=0.5)
