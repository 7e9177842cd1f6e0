"""Family-wise error control of several actives against a shared control: normal approximation.

NumPy/SciPy only; used by :mod:`crampstats.decisions` (verdicts), the compare step and the
family-wise study (tests/test_multiplicity.py, docs/validation.md).

The approximation. With ``n_0`` control and ``n_a`` active subjects and a per-subject variance
``v`` of the log rate (``v = 1 / mu + 1 / k`` for a negative binomial with mean count ``mu`` and
size ``k``, the variance of Zhu and Lakkis 2014 under the null), the estimated log rate ratios
``y_a = e_a - e_0`` are jointly normal with

    Cov(y_a, y_b) = v / n_0 + [a = b] v / n_a,

correlated through the shared control (:func:`null_covariance`). Under a flat prior the
posterior of ``log RR_a`` is ``N(y_a, Cov_aa)`` and ``P(RR_a < 1 | y) = Phi(-y_a / sd_a)``.
Under the global null (every ``RR_a = 1``) the family-wise false-positive rate of the criterion
``P(RR_a < 1) >= p`` for every arm is ``P(max_a Phi(-z_a) >= p)``; the calibrated common
threshold is the ``1 - alpha`` quantile of ``max_a P(RR_a < 1 | y)`` over ``y ~ N(0, Cov)``
(:func:`calibrated_probability`), by a seeded Monte Carlo, cached by its inputs.

The exchangeable prior (``log RR_a = mu + tau z_a``, ``mu ~ N(0, s_mu)``, ``tau ~
HalfNormal(s_tau)``, ``z_a ~ N(0, 1)``; :mod:`crampstats.models.nb_totals`) has, given ``tau``,
the normal-normal posterior

    prior cov P = tau^2 I + s_mu^2 J,   M = Cov + P,
    theta | y, tau ~ N(P M^-1 y, P - P M^-1 P),   p(tau | y) ~ p(tau) N(y; 0, M),

integrated over ``tau`` on a grid (:func:`hierarchical_posterior`). Its calibrated threshold is
found the same way under this posterior (:func:`calibrated_probability` with ``hierarchical``).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import special, stats

__all__ = [
    "Hierarchical",
    "calibrated_probability",
    "family_false_positive_rate",
    "flat_probability_below",
    "hierarchical_draws",
    "hierarchical_posterior",
    "null_covariance",
    "null_variance",
]

#: Grid of tau over [0, TAU_GRID_SDS * s_tau]; the HalfNormal mass beyond 5 SDs is 6e-7.
TAU_GRID_POINTS, TAU_GRID_SDS = 41, 5.0
_BLOCK = 20_000  # Monte Carlo draws per block (memory: block x grid x arms doubles)


@dataclass(frozen=True)
class Hierarchical:
    """Scales of the exchangeable prior: ``mu ~ N(0, mu_sd)``, ``tau ~ HalfNormal(tau_sd)``."""

    mu_sd: float = 1.0
    tau_sd: float = 0.5


def null_variance(params: Mapping[str, float]) -> float:
    """Per-subject variance of the log rate under the null, ``1 / mu + 1 / k``, 2 digits.

    ``params``: ``rate`` (control cramps per day), ``k`` and ``exposure`` (days), as
    :func:`crampstats.decisions.nb_parameters` gives them; ``mu = rate * exposure``. Rounded so
    that the exchangeable calibration (cached by its inputs) is re-used by trials that differ
    only in the third digit of their estimated variance.
    """
    v = 1.0 / (params["rate"] * params["exposure"]) + 1.0 / params["k"]
    return float(f"{v:.2g}")


def null_covariance(n_per_arm: Sequence[float], variance: float = 1.0) -> np.ndarray:
    """Covariance of the active arms' estimated log rate ratios against a shared control.

    Parameters
    ----------
    n_per_arm
        Subjects per arm, control first.
    variance
        Per-subject variance ``v`` of the log rate (1: correlation structure only).

    Returns
    -------
    numpy.ndarray
        ``(K, K)``: ``v / n_0`` everywhere plus ``v / n_a`` on the diagonal.
    """
    n = np.asarray(n_per_arm, dtype=float)
    if n.size < 2 or np.any(n <= 0):
        raise ValueError(f"need a control and at least one active arm with subjects, got {n}")
    return variance * (np.full((n.size - 1, n.size - 1), 1.0 / n[0]) + np.diag(1.0 / n[1:]))


def flat_probability_below(y: np.ndarray, cov: np.ndarray, log_threshold: float) -> np.ndarray:
    """``P(log RR_a < log t | y)`` under a flat prior: ``Phi((log t - y_a) / sd_a)``."""
    sd = np.sqrt(np.diag(cov))
    return stats.norm.cdf((log_threshold - np.asarray(y)) / sd)


def _grid(prior: Hierarchical) -> tuple[np.ndarray, np.ndarray]:
    """Tau grid (midpoints) and its prior weights (HalfNormal mass of each cell, normalised)."""
    edges = np.linspace(0.0, TAU_GRID_SDS * prior.tau_sd, TAU_GRID_POINTS + 1)
    mass = np.diff(stats.halfnorm.cdf(edges, scale=prior.tau_sd))
    return 0.5 * (edges[1:] + edges[:-1]), mass / mass.sum()


def _conditionals(cov: np.ndarray, prior: Hierarchical):
    """Per tau grid point: posterior-mean matrix, posterior cov, M^-1 and log det M."""
    k = cov.shape[0]
    taus, weights = _grid(prior)
    gain, post_cov, m_inv, logdet = [], [], [], []
    for tau in taus:
        p = tau**2 * np.eye(k) + prior.mu_sd**2 * np.ones((k, k))
        m = cov + p
        mi = np.linalg.inv(m)
        gain.append(p @ mi)
        post_cov.append(p - p @ mi @ p)
        m_inv.append(mi)
        logdet.append(np.linalg.slogdet(m)[1])
    return weights, np.array(gain), np.array(post_cov), np.array(m_inv), np.array(logdet)


def _tau_weights(y: np.ndarray, weights, m_inv, logdet) -> np.ndarray:
    """Posterior weight of each tau grid point given each row of ``y``: ``(S, G)``."""
    quad = np.einsum("si,gij,sj->sg", y, m_inv, y)
    log_w = np.log(weights)[None, :] - 0.5 * (quad + logdet[None, :])
    log_w -= log_w.max(axis=1, keepdims=True)
    w = np.exp(log_w)
    return w / w.sum(axis=1, keepdims=True)


def hierarchical_posterior(
    y: np.ndarray, cov: np.ndarray, prior: Hierarchical, log_threshold: float = 0.0
) -> np.ndarray:
    """``P(log RR_a < log t | y)`` under the exchangeable prior (normal-normal, tau on a grid).

    Parameters
    ----------
    y
        Estimated log rate ratios, ``(K,)`` or ``(S, K)`` (one row per simulated trial).
    cov
        Their sampling covariance ``(K, K)``.
    prior
        Scales of the exchangeable prior.
    log_threshold
        ``log t``.

    Returns
    -------
    numpy.ndarray
        Probabilities, shape of ``y``.
    """
    y = np.asarray(y, dtype=float)
    rows = np.atleast_2d(y)
    weights, gain, post_cov, m_inv, logdet = _conditionals(np.asarray(cov, float), prior)
    sd = np.sqrt(np.einsum("gii->gi", post_cov))  # (G, K)
    out = np.empty_like(rows)
    for start in range(0, rows.shape[0], _BLOCK):
        block = rows[start : start + _BLOCK]
        w = _tau_weights(block, weights, m_inv, logdet)  # (S, G)
        mean = np.einsum("gij,sj->sgi", gain, block)  # (S, G, K)
        p = special.ndtr((log_threshold - mean) / sd[None, :, :])
        out[start : start + _BLOCK] = np.einsum("sg,sgi->si", w, p)
    return out.reshape(y.shape)


def hierarchical_draws(
    y: np.ndarray, cov: np.ndarray, prior: Hierarchical, n_draws: int, rng: np.random.Generator
) -> np.ndarray:
    """Draws of the log rate ratios from the exchangeable normal-normal posterior of one ``y``.

    Returns
    -------
    numpy.ndarray
        ``(K, n_draws)``: tau drawn from its grid posterior, then ``theta | y, tau``.
    """
    y = np.asarray(y, dtype=float)
    weights, gain, post_cov, m_inv, logdet = _conditionals(np.asarray(cov, float), prior)
    w = _tau_weights(y[None, :], weights, m_inv, logdet)[0]
    g = rng.choice(w.size, size=n_draws, p=w)
    z = rng.standard_normal((n_draws, y.size))
    out = np.empty((n_draws, y.size))
    for j in np.unique(g):
        rows = g == j
        chol = np.linalg.cholesky(post_cov[j] + 1e-12 * np.eye(y.size))
        out[rows] = gain[j] @ y + z[rows] @ chol.T
    return out.T


@functools.lru_cache(maxsize=256)
def _null_max(
    n_per_arm: tuple[float, ...],
    variance: float,
    prior: Hierarchical | None,
    draws: int,
    seed: int,
) -> np.ndarray:
    """Sorted ``max_a P(RR_a < 1 | y)`` over ``draws`` trials simulated under the global null."""
    cov = null_covariance(n_per_arm, variance)
    rng = np.random.default_rng(seed)
    y = rng.multivariate_normal(np.zeros(cov.shape[0]), cov, size=draws, method="cholesky")
    if prior is None:
        p = flat_probability_below(y, cov, 0.0)
    else:
        p = hierarchical_posterior(y, cov, prior)
    out = np.sort(p.max(axis=1))
    out.flags.writeable = False
    return out


def calibrated_probability(
    n_per_arm: Sequence[float],
    alpha: float = 0.025,
    draws: int = 200_000,
    seed: int = 14,
    variance: float = 1.0,
    hierarchical: Hierarchical | None = None,
) -> float:
    """Return the common ``P(RR < 1)`` threshold that keeps the family-wise false-positive rate.

    The ``1 - alpha`` quantile of ``max_a P(RR_a < 1 | y)`` over trials simulated under the
    global null with the trial's allocation (module docstring). Seeded and cached by its
    inputs, so a trial's verdict is reproducible and the study re-uses calibrations.

    Parameters
    ----------
    n_per_arm
        Subjects per arm, control first.
    alpha
        Family-wise one-sided false-positive rate.
    draws, seed
        Monte Carlo size and seed. The quantile's Monte Carlo error moves the attained rate by
        about ``sqrt(alpha (1 - alpha) / draws)`` (0.00035 at the defaults).
    variance
        Per-subject variance of the log rate; matters only with ``hierarchical`` (the flat
        posterior probability is scale-free).
    hierarchical
        Scales of the exchangeable prior, or ``None`` for the flat posterior.

    Returns
    -------
    float
        The threshold ``p*``: declare success when ``P(RR < 1 | data) >= p*``.
    """
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    key = tuple(float(n) for n in n_per_arm)
    scale = float(variance) if hierarchical is not None else 1.0
    values = _null_max(key, scale, hierarchical, int(draws), int(seed))
    return float(np.quantile(values, 1.0 - alpha, method="higher"))


def family_false_positive_rate(
    n_per_arm: Sequence[float],
    probability: float,
    draws: int = 200_000,
    seed: int = 14,
) -> float:
    """Family-wise false-positive rate of ``P(RR_a < 1) >= probability`` for every arm (flat).

    Under the global null and the flat normal approximation: the share of simulated trials in
    which at least one arm meets the criterion.
    """
    values = _null_max(tuple(float(n) for n in n_per_arm), 1.0, None, int(draws), int(seed))
    return float(1.0 - np.searchsorted(values, probability, side="left") / values.size)
