"""Marginal likelihood of interval-censored log CTFs with a normal subject effect integrated out.

The per-measurement term is :func:`crampstats.numerics.interval_logprob`; the subject effect is
integrated by adaptive Gauss-Hermite quadrature (:func:`ctf_marginal_loglik`). Used for the
pointwise log-likelihood of :class:`~crampstats.secondary.outcome_measures.models.CTFReliability`
and by its maximum-likelihood twin.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
from scipy import special, stats

from crampstats.numerics import interval_logprob, segment_starts

__all__ = ["LOG_HZ_BOUND", "ctf_marginal_loglik", "finite_log_bounds", "midpoints"]

#: Bounds of the log CTF used instead of +-inf (e^-30 and e^30 Hz): z stays finite, the
#: probability mass beyond them is nil for any plausible parameter.
LOG_HZ_BOUND = 30.0


def finite_log_bounds(rows: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """``log_lower`` and ``log_upper`` of ``rows`` clipped to +-:data:`LOG_HZ_BOUND`."""
    lower = np.clip(rows["log_lower"].to_numpy(float), -LOG_HZ_BOUND, LOG_HZ_BOUND)
    upper = np.clip(rows["log_upper"].to_numpy(float), -LOG_HZ_BOUND, LOG_HZ_BOUND)
    return lower, upper


def midpoints(log_lower: np.ndarray, log_upper: np.ndarray) -> np.ndarray:
    """Return a point inside each log-scale interval (midpoint; 0.1 inside a one-sided one)."""
    # bounds beyond e^-15 and e^15 Hz stand for 0 and infinity
    low_open = log_lower <= -LOG_HZ_BOUND / 2
    high_open = log_upper >= LOG_HZ_BOUND / 2
    return np.where(
        low_open, log_upper - 0.1, np.where(high_open, log_lower + 0.1, (log_lower + log_upper) / 2)
    )


#: Upper bound on the floats of one (draws x rows x nodes) block of the CTF quadrature.
_BLOCK_FLOATS = 2_000_000


def ctf_marginal_loglik(
    log_lower: np.ndarray,
    log_upper: np.ndarray,
    subject_idx: np.ndarray,
    n_subjects: int,
    m: Any,
    s_b: Any,
    s_e: Any,
    n_nodes: int = 30,
) -> np.ndarray:
    """Per-subject marginal log-likelihood of interval-censored log CTFs, ``b`` integrated out.

    Gauss-Hermite quadrature centred and scaled at the normal approximation of each subject's
    posterior of ``b`` (a point inside each interval as data, precision ``1/s_b^2 + n_i/s_e^2``),
    with the ratio ``Normal(b; 0, s_b) / Normal(b; c_i, t_i)`` in the integrand (adaptive
    quadrature, Liu & Pierce 1994, Biometrika 81:624).

    Parameters
    ----------
    log_lower, log_upper
        ``(R,)`` log bounds of each measurement (finite, within +-30), rows sorted by subject.
    subject_idx
        ``(R,)`` subject of each row, sorted, ``0 .. n_subjects - 1`` all present.
    n_subjects
        Number of subjects.
    m, s_b, s_e
        ``(S,)`` parameters per draw.
    n_nodes
        Quadrature nodes.

    Returns
    -------
    numpy.ndarray
        ``(S, n_subjects)``.
    """
    m, s_b, s_e = (np.atleast_1d(np.asarray(v, dtype=float)) for v in (m, s_b, s_e))
    starts = segment_starts(subject_idx, n_subjects)
    nodes, weights = np.polynomial.hermite.hermgauss(n_nodes)
    log_w = np.log(weights / math.sqrt(math.pi))
    mid = midpoints(log_lower, log_upper)
    n_i = np.add.reduceat(np.ones_like(mid), starts)
    sum_i = np.add.reduceat(mid, starts)
    out = np.empty((m.size, n_subjects))
    block = max(1, _BLOCK_FLOATS // max(1, log_lower.size * n_nodes))
    for lo in range(0, m.size, block):
        sl = slice(lo, min(lo + block, m.size))
        mm, sb, se = m[sl, None], s_b[sl, None], s_e[sl, None]
        prec = 1.0 / sb**2 + n_i / se**2  # (s, n)
        t = 1.0 / np.sqrt(prec)
        c = (sum_i - n_i * mm) / se**2 / prec
        b = c[:, :, None] + math.sqrt(2.0) * t[:, :, None] * nodes  # (s, n, Q)
        mean = mm[:, :, None] + b[:, subject_idx, :]  # (s, R, Q)
        logp = interval_logprob(
            (log_lower[None, :, None] - mean) / se[:, :, None],
            (log_upper[None, :, None] - mean) / se[:, :, None],
        )
        per_subject = np.add.reduceat(logp, starts, axis=1)
        log_ratio = stats.norm.logpdf(b, 0.0, sb[:, :, None]) - stats.norm.logpdf(
            b, c[:, :, None], t[:, :, None]
        )
        out[sl] = special.logsumexp(per_subject + log_ratio + log_w, axis=2)
    return out
