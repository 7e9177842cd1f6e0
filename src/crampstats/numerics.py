"""Small shared numerics: log1mexp, interval-censored normal log-probability, NB log pmf, sums.

Ground floor of the package: imports only NumPy and SciPy (PyTensor / PyMC lazily, inside the
graph builders that need them), so every stage (models, secondary endpoints, decisions, power)
can use one implementation of each formula. Every function here has one test in
``tests/test_numerics.py`` against a closed form or a SciPy / NumPy reference.

Two call sites that computed the same quantity in slightly different floating-point ways keep
their own arithmetic through a keyword (``cap`` of :func:`log1mexp`, ``mirror`` and ``gap`` of
:func:`interval_logprob`, ``form`` of :func:`nb_logpmf`), so that moving the code here changed
no fitted number.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Literal

import numpy as np
from scipy import special

__all__ = [
    "censored_logprob",
    "censored_logprob_pt",
    "centre_covariate",
    "interval_bounds",
    "interval_logprob",
    "interval_logprob_pt",
    "log1mexp",
    "log_ndtr_pt",
    "nb_logpmf",
    "segment_starts",
    "segment_sum",
]

_LN2 = math.log(2.0)
_SQRT2 = math.sqrt(2.0)

Mirror = Literal["midpoint", "lower"]


# --------------------------------------------------------------------------------------------
# log(1 - exp(x))
# --------------------------------------------------------------------------------------------
def log1mexp(x: Any, cap: float | None = None) -> np.ndarray:
    r"""Return ``log(1 - exp(x))`` for ``x <= 0``, accurate near 0 and far below it.

    .. math::

        \operatorname{log1mexp}(x) =
        \begin{cases}
            \log(-\operatorname{expm1}(x)) & -\log 2 < x \le 0 \\
            \operatorname{log1p}(-e^{x})   & x \le -\log 2
        \end{cases}

    (Maechler 2012, "Accurately computing log(1 - exp(-|a|))", Rmpfr vignette): each branch
    is used where it does not cancel.

    Parameters
    ----------
    x
        Values ``<= 0`` (array-like; an ``xarray.DataArray`` is read as its values).
        ``log1mexp(0) = -inf``, ``log1mexp(-inf) = 0``.
    cap
        If given, ``x`` is first replaced by ``min(x, -cap)``, so the result is finite
        (``log1mexp(-cap)`` at most): the CTF likelihood caps at ``1e-12`` so that a branch
        that a switch does not take never yields ``-inf`` (module docstring of
        :mod:`crampstats.models.ctf`).

    Returns
    -------
    numpy.ndarray
        ``log(1 - exp(x))``, float.
    """
    x = np.asarray(x, dtype=float)
    if cap is not None:
        x = np.minimum(x, -cap)
    with np.errstate(divide="ignore"):  # log(0) = -inf at x = 0 is the answer
        return np.where(x > -_LN2, np.log(-np.expm1(x)), np.log1p(-np.exp(x)))


# --------------------------------------------------------------------------------------------
# Interval-censored standard normal
# --------------------------------------------------------------------------------------------
def _mirror_flag(z_lower: Any, z_upper: Any, mirror: Mirror) -> Any:
    if mirror == "midpoint":
        return (z_lower + z_upper) > 0
    if mirror == "lower":
        return z_lower > 0.0
    raise ValueError(f"mirror must be 'midpoint' or 'lower', got {mirror!r}")


def interval_logprob(
    z_lower: Any, z_upper: Any, *, mirror: Mirror = "midpoint", gap: float | None = None
) -> np.ndarray:
    r"""Return ``log(Phi(z_upper) - Phi(z_lower))`` without cancellation in either tail.

    With ``(a, b) = (z_lower, z_upper)``, or the mirrored interval ``(-z_upper, -z_lower)``
    (same probability) when the interval lies in the upper half,

    .. math::

        \log P = \log\Phi(b) + \operatorname{log1mexp}\bigl(\log\Phi(a) - \log\Phi(b)\bigr),

    with ``log Phi`` from :func:`scipy.special.log_ndtr` (accurate deep in the lower tail), so
    two probabilities close to 1 are never subtracted.

    Parameters
    ----------
    z_lower, z_upper
        Standardised bounds, ``z_lower < z_upper`` (broadcasting). One may be infinite:
        ``z_lower = -inf`` gives ``log Phi(z_upper)``; ``z_upper = +inf`` gives
        ``log Phi(-z_lower)`` exactly when ``mirror="midpoint"``.
    mirror
        When to use the mirrored interval: ``"midpoint"`` (default) when ``z_lower + z_upper >
        0``; ``"lower"`` when ``z_lower > 0`` (the interval lies wholly above the mean). Both
        keep the lower bound of the interval used in the lower half, so both are stable; they
        differ in the last bits for intervals that straddle 0. ``"lower"`` is the arithmetic
        of the CTF model (:mod:`crampstats.models.ctf`), ``"midpoint"`` that of the CTF
        reliability model; each keeps its own so that fitted numbers do not move.
    gap
        If given, the log1mexp argument is capped at ``-gap`` (:func:`log1mexp` ``cap``).

    Returns
    -------
    numpy.ndarray
        ``log(Phi(z_upper) - Phi(z_lower))``.
    """
    z_lower, z_upper = np.asarray(z_lower, dtype=float), np.asarray(z_upper, dtype=float)
    flip = _mirror_flag(z_lower, z_upper, mirror)
    a = np.where(flip, -z_upper, z_lower)
    b = np.where(flip, -z_lower, z_upper)
    log_b = special.log_ndtr(b)
    return log_b + log1mexp(special.log_ndtr(a) - log_b, cap=gap)


def log_ndtr_pt(z: Any) -> Any:
    r"""PyTensor ``log Phi(z)``, float64 throughout, safe to differentiate on both branches.

    .. math::

        \log\Phi(z) =
        \begin{cases}
            \log(\operatorname{erfcx}(-z/\sqrt2)/2) - z^2/2 & z < -1 \\
            \operatorname{log1p}(-\operatorname{erfc}(z/\sqrt2)/2) & z \ge -1
        \end{cases}

    (the scaled complementary error function in the lower tail, as SciPy's ``log_ndtr`` and
    PyMC's ``normal_lcdf``). Each branch sees only arguments in its own range (``min(z, -1)``,
    ``max(z, -1)``), so the branch not taken cannot overflow (``erfcx`` of a large negative
    number is ``inf``) and put NaN into the gradient.
    """
    import pytensor.tensor as pt  # heavy optional dependency: only graph builders need it

    tail = pt.minimum(z, -1.0)
    body = pt.maximum(z, -1.0)
    return pt.switch(
        pt.lt(z, -1.0),
        pt.log(pt.erfcx(-tail / _SQRT2) / 2.0) - pt.sqr(tail) / 2.0,
        pt.log1p(-pt.erfc(body / _SQRT2) / 2.0),
    )


def interval_logprob_pt(
    z_lower: Any,
    z_upper: Any,
    *,
    mirror: Mirror = "midpoint",
    gap: float | None = None,
    log_ndtr: Callable[[Any], Any] | None = None,
) -> Any:
    """PyTensor version of :func:`interval_logprob` (same algebra, same keywords).

    The switch acts on the inputs, not on two computed results, so the gradient never passes
    through a branch that evaluated to an infinity.

    Parameters
    ----------
    z_lower, z_upper, mirror, gap
        As :func:`interval_logprob` (tensors; bounds finite).
    log_ndtr
        Graph of ``log Phi``; default :func:`log_ndtr_pt`. The CTF reliability model passes
        PyMC's ``normal_lcdf(0, 1, z)``, which divides by a float32 ``sqrt(2)`` (a relative
        difference of ~1e-8 in its argument), to keep its fitted numbers.

    Returns
    -------
    pytensor.tensor.TensorVariable
        ``log(Phi(z_upper) - Phi(z_lower))``.
    """
    import pytensor.tensor as pt  # heavy optional dependency: only graph builders need it

    if mirror not in ("midpoint", "lower"):
        raise ValueError(f"mirror must be 'midpoint' or 'lower', got {mirror!r}")
    lcdf = log_ndtr_pt if log_ndtr is None else log_ndtr
    flip = pt.gt(z_lower + z_upper, 0.0) if mirror == "midpoint" else pt.gt(z_lower, 0.0)
    a = pt.switch(flip, -z_upper, z_lower)
    b = pt.switch(flip, -z_lower, z_upper)
    log_b = lcdf(b)
    diff = lcdf(a) - log_b
    if gap is not None:
        diff = pt.minimum(diff, -gap)
    return log_b + pt.log1mexp(diff)


def censored_logprob(
    z_lower: Any, z_upper: Any, has_lower: Any, has_upper: Any, *, gap: float | None = None
) -> np.ndarray:
    r"""Log-probability of an interval-, left- or right-censored standard normal observation.

    .. math::

        \log P = \begin{cases}
            \log(\Phi(z_u) - \Phi(z_l)) & \text{both bounds (interval)} \\
            \log\Phi(z_u)               & \text{no lower bound} \\
            \log\Phi(-z_l)              & \text{no upper bound}
        \end{cases}

    The interval term is :func:`interval_logprob` with ``mirror="lower"`` (the upper tail when
    ``z_l > 0``).

    Parameters
    ----------
    z_lower, z_upper
        Standardised bounds; an absent bound holds any finite stand-in (it is not used).
    has_lower, has_upper
        Boolean: whether each bound is present (not both absent).
    gap
        Cap of the log1mexp argument (:func:`log1mexp`); the CTF model uses ``1e-12``.

    Returns
    -------
    numpy.ndarray
        ``log P``.
    """
    interval = interval_logprob(z_lower, z_upper, mirror="lower", gap=gap)
    lcdf_upper, lsf_lower = special.log_ndtr(z_upper), special.log_ndtr(-np.asarray(z_lower))
    return np.where(
        np.logical_and(has_lower, has_upper),
        interval,
        np.where(has_upper, lcdf_upper, lsf_lower),
    )


def censored_logprob_pt(
    z_lower: Any, z_upper: Any, has_lower: Any, has_upper: Any, *, gap: float | None = None
) -> Any:
    """PyTensor version of :func:`censored_logprob` (bounds finite: stand-ins where absent).

    Both tails are computed and the results selected (the tails are needed for the one-sided
    cases anyway, and the graph shares them). A branch that the switch does not take may then
    see a log-CDF difference of exactly 0 (two log CDFs both 0), where ``log1mexp`` is
    ``-inf`` with an infinite derivative, and ``0 * inf`` puts NaN into the gradient unless
    PyTensor happens to rewrite the product into the switch; a ``gap`` (``1e-12`` in the CTF
    model) caps the argument and makes the graph safe without that rewrite. A taken branch
    reaches the cap only for an interval ``gap`` standard deviations wide.
    """
    import pytensor.tensor as pt  # heavy optional dependency: only graph builders need it

    def capped(diff: Any) -> Any:
        return diff if gap is None else pt.minimum(diff, -gap)

    lcdf_lo, lcdf_hi = log_ndtr_pt(z_lower), log_ndtr_pt(z_upper)
    lsf_lo, lsf_hi = log_ndtr_pt(-z_lower), log_ndtr_pt(-z_upper)
    interval = pt.switch(
        pt.gt(z_lower, 0.0),
        lsf_lo + pt.log1mexp(capped(lsf_hi - lsf_lo)),
        lcdf_hi + pt.log1mexp(capped(lcdf_lo - lcdf_hi)),
    )
    return pt.switch(pt.and_(has_lower, has_upper), interval, pt.switch(has_upper, lcdf_hi, lsf_lo))


# --------------------------------------------------------------------------------------------
# Negative binomial
# --------------------------------------------------------------------------------------------
def nb_logpmf(y: Any, mu: Any, k: Any, *, form: Literal["ratio", "logaddexp"] = "ratio") -> Any:
    r"""Negative binomial (NB2) log pmf with mean ``mu`` and size ``k`` (broadcasting).

    .. math::

        \log p(y) = \log\Gamma(y + k) - \log\Gamma(k) - \log\Gamma(y + 1)
                    + k \log\frac{k}{k + \mu} + y \log\frac{\mu}{k + \mu},

    variance ``mu + mu^2 / k``.

    Parameters
    ----------
    y
        Counts.
    mu, k
        Mean and size, ``> 0``.
    form
        ``"ratio"`` (default): the two last terms as logs of the ratios, as written above.
        ``"logaddexp"``: ``log(k + mu)`` formed as ``logaddexp(log k, log mu)`` and subtracted
        from ``log k`` and ``log mu`` (the arithmetic of :mod:`crampstats.models.nb_glmm`).
        Equal up to rounding; each call site keeps its own so that its numbers do not move.
        Arrays of any type NumPy ufuncs accept (``xarray.DataArray`` stays one).

    Returns
    -------
    array
        ``log p(y)``.
    """
    if form == "ratio":
        return (
            special.gammaln(y + k)
            - special.gammaln(k)
            - special.gammaln(y + 1)
            + k * np.log(k / (k + mu))
            + y * np.log(mu / (k + mu))
        )
    if form == "logaddexp":
        log_k_mu = np.logaddexp(np.log(k), np.log(mu))
        return (
            special.gammaln(y + k)
            - special.gammaln(k)
            - special.gammaln(y + 1.0)
            + k * (np.log(k) - log_k_mu)
            + y * (np.log(mu) - log_k_mu)
        )
    raise ValueError(f"form must be 'ratio' or 'logaddexp', got {form!r}")


# --------------------------------------------------------------------------------------------
# Segment sums (rows grouped by subject)
# --------------------------------------------------------------------------------------------
def _sorted_starts(index: np.ndarray, n: int) -> np.ndarray | None:
    """Segment starts when ``index`` is sorted and holds every segment ``0 .. n-1``, else None."""
    index = np.asarray(index)
    if len(index) == 0 or np.any(np.diff(index) < 0) or index[0] != 0 or index[-1] != n - 1:
        return None
    starts = np.flatnonzero(np.r_[True, np.diff(index) != 0])
    return starts if len(starts) == n else None


def segment_starts(index: np.ndarray, n: int) -> np.ndarray:
    """Return the first row of each segment of rows sorted by segment (e.g. by subject).

    ``starts[s] = min{j : index[j] = s}``: the offsets for ``np.add.reduceat(values, starts)``,
    ``sum_{j: index[j] = s} values[j]``.

    Parameters
    ----------
    index
        ``(R,)`` segment of each row: sorted, every segment ``0 .. n - 1`` present.
    n
        Number of segments.

    Returns
    -------
    numpy.ndarray
        ``(n,)`` row offsets.

    Raises
    ------
    ValueError
        If ``index`` is not sorted or misses a segment.
    """
    starts = _sorted_starts(index, n)
    if starts is None:
        raise ValueError("rows must be sorted by subject index 0..n-1 with every subject present")
    return starts


def segment_sum(values: np.ndarray, index: np.ndarray, n: int, axis: int = -1) -> np.ndarray:
    """Sum ``values`` along ``axis`` into ``n`` segments, ``out[s] = sum_{j: index[j]=s} v[j]``.

    Rows sorted by segment with every segment present (the models' layout) are summed with
    ``np.add.reduceat`` over :func:`segment_starts`; any other ``index`` falls back to
    ``np.add.at`` (empty segments sum to 0).

    Parameters
    ----------
    values
        Array whose ``axis`` runs over the rows.
    index
        ``(R,)`` segment ``0 .. n - 1`` of each row.
    n
        Number of segments.
    axis
        Row axis of ``values``.

    Returns
    -------
    numpy.ndarray
        ``values`` with ``axis`` of length ``n``.
    """
    values = np.asarray(values)
    starts = _sorted_starts(index, n)
    if starts is not None:
        return np.add.reduceat(values, starts, axis=axis)
    moved = np.moveaxis(values, axis, -1)
    flat = moved.reshape(-1, moved.shape[-1])
    out = np.zeros((flat.shape[0], n), dtype=np.result_type(values.dtype, float))
    np.add.at(out.T, np.asarray(index), flat.T)
    return np.moveaxis(out.reshape(*moved.shape[:-1], n), -1, axis)


# --------------------------------------------------------------------------------------------
# Covariate centring, interval quantiles
# --------------------------------------------------------------------------------------------
def centre_covariate(
    values: Any, missing: np.ndarray | None = None
) -> tuple[np.ndarray, float, int]:
    r"""Centre a baseline covariate at the mean of its present values; missing values get 0.

    .. math::

        \bar x = \frac{1}{|P|}\sum_{i \in P} x_i, \qquad
        x^c_i = \begin{cases} x_i - \bar x & i \in P \\ 0 & i \notin P \end{cases}

    ``P`` the subjects with a value. Setting a missing baseline to the mean (0 after centring)
    leaves a randomised comparison unbiased (White & Thompson 2005, Stat Med 24:993). Whether
    imputation is allowed at all is the caller's decision (its ``missing_baseline`` setting).

    Parameters
    ----------
    values
        ``(n,)`` covariate (already transformed, e.g. logged); entries at ``missing`` are
        ignored and may be anything.
    missing
        ``(n,)`` boolean mask of missing values; default ``~isfinite(values)``.

    Returns
    -------
    centred : numpy.ndarray
        ``x^c``.
    centre : float
        ``x-bar`` (0.0 when no value is present).
    n_missing : int
        Number of values set to 0.
    """
    values = np.asarray(values, dtype=float)
    missing = ~np.isfinite(values) if missing is None else np.asarray(missing, dtype=bool)
    present = ~missing
    centre = float(values[present].mean()) if present.any() else 0.0
    return np.where(missing, 0.0, values - centre), centre, int(missing.sum())


def interval_bounds(level: float) -> tuple[float, float]:
    """Lower and upper quantiles of the equal-tailed interval with mass ``level``.

    ``((1 - level) / 2, 1 - (1 - level) / 2)``.

    Raises
    ------
    ValueError
        If ``level`` is not in ``(0, 1)``.
    """
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")
    tail = (1.0 - level) / 2.0
    return tail, 1.0 - tail
