"""Shared numerics (``crampstats.numerics``) against closed forms and SciPy / NumPy references.

One test per function. Each tolerance is stated where it is used, with why it is that size:
the references are exact (high-precision arithmetic), or an independent double-precision
formula whose own rounding error is bounded in the range tested.
"""

from __future__ import annotations

import math
from decimal import Decimal, localcontext

import numpy as np
import pandas as pd
import pytest
from scipy import integrate, special, stats

from crampstats import numerics as nm

#: Unit roundoff of float64.
EPS = np.finfo(float).eps


def _compile(inputs, outputs):
    """Compile a PyTensor function (PyTensor imported here: only these tests need it)."""
    import pytensor

    return pytensor.function(inputs, outputs)


def test_log1mexp():
    # reference: log(1 - exp(x)) in 340-digit decimal arithmetic (exact to the 17 digits kept,
    # even at x = -700 where 1 - exp(x) differs from 1 in the 305th digit)
    x = np.concatenate([-np.logspace(-300, math.log10(700.0), 400), [-math.log(2.0)]])
    with localcontext() as ctx:
        ctx.prec = 340
        ref = np.array([float((1 - Decimal(float(v)).exp()).ln()) for v in x])
    # each branch is one log / log1p of one expm1 / exp (each within an ulp or so): 1e-15 is
    # ~4.5 ulp, so a lost digit anywhere (the naive log(1 - exp(x)) loses up to all of them)
    # fails
    np.testing.assert_allclose(nm.log1mexp(x), ref, rtol=1e-15, atol=0)
    assert nm.log1mexp(0.0) == -np.inf
    assert nm.log1mexp(-np.inf) == 0.0
    # the cap: min(x, -cap), so x = 0 is finite and equals log1mexp(-cap) exactly
    capped = nm.log1mexp(np.array([0.0, -1e-13, -1.0]), cap=1e-12)
    assert capped[0] == capped[1] == nm.log1mexp(-1e-12)
    assert capped[2] == nm.log1mexp(-1.0)
    # inputs of other array types are read as arrays
    assert nm.log1mexp([-1.0])[0] == nm.log1mexp(np.array([-1.0]))[0]


def test_interval_logprob():
    rng = np.random.default_rng(1)
    # safe range, a in [-3, 3], width in [0.01, 3]: the direct difference of CDFs has an
    # absolute error <= 2 eps, so log P is off by <= 2 eps / P, relative 2 eps / (P |log P|)
    # <= ~1e-12 here (P >= phi(3) * 0.01 ~ 4e-5 with |log P| ~ 10; 1 - P >= 1e-3): 1e-10
    a = rng.uniform(-3.0, 3.0, 5000)
    b = a + rng.uniform(0.01, 3.0, 5000)
    direct = np.log(stats.norm.cdf(b) - stats.norm.cdf(a))
    for mirror in ("midpoint", "lower"):
        np.testing.assert_allclose(nm.interval_logprob(a, b, mirror=mirror), direct, rtol=1e-10)
    # tails, where the direct difference is 0 - 0 or 1 - 1: against the integral
    # log P = log phi(lo) + log int_0^w exp(-(lo t + t^2 / 2)) dt (quad to 1e-13 relative on a
    # smooth positive integrand), in the upper tail and mirrored in the lower one
    for lo, width in [(8.0, 0.01), (20.0, 0.5), (37.0, 2.0), (3.0, 1e-6)]:
        q, _ = integrate.quad(
            lambda t, lo=lo: math.exp(-(lo * t + t * t / 2)), 0.0, width, epsabs=0, epsrel=1e-13
        )
        expected = stats.norm.logpdf(lo) + math.log(q)
        for mirror in ("midpoint", "lower"):
            # 1e-11: the quadrature's 1e-13 and the log-CDF difference's cancellation, worst
            # for the 1e-6-wide interval (log1mexp of -7e-6: 5e-11 absolute in log CDFs of
            # size ~5, i.e. ~1e-12 relative in log P)
            upper = nm.interval_logprob(lo, lo + width, mirror=mirror)
            lower = nm.interval_logprob(-lo - width, -lo, mirror=mirror)
            assert upper == pytest.approx(expected, rel=1e-11)
            assert lower == pytest.approx(expected, rel=1e-11)
    # open bounds: log Phi(b) and log Phi(-a) exactly (midpoint rule)
    assert nm.interval_logprob(-np.inf, 0.5) == special.log_ndtr(0.5)
    assert nm.interval_logprob(2.0, np.inf) == special.log_ndtr(-2.0)
    # the gap caps the log1mexp argument: a zero-width interval is finite
    assert nm.interval_logprob(1.0, 1.0) == -np.inf
    assert np.isfinite(nm.interval_logprob(1.0, 1.0, gap=1e-12))
    with pytest.raises(ValueError, match="mirror"):
        nm.interval_logprob(0.0, 1.0, mirror="upper")  # type: ignore[arg-type]


def test_log_ndtr_pt():
    import pytensor
    import pytensor.tensor as pt

    z = pt.dvector("z")
    value = nm.log_ndtr_pt(z)
    f = _compile([z], [value, pytensor.grad(value.sum(), z)])
    zz = np.linspace(-40.0, 10.0, 2001)
    got, grad = f(zz)
    # SciPy's log_ndtr is an independent implementation; both are accurate to a few ulp of
    # log Phi, but erfc / erfcx of float64 carry ~1e-15 relative error each, amplified to
    # ~3e-14 where log Phi is near 0 (z ~ 10): 1e-13
    np.testing.assert_allclose(got, special.log_ndtr(zz), rtol=1e-13)
    # d log Phi / dz = phi(z) / Phi(z) (Mills ratio), finite on both branches: 1e-12 (the
    # gradient of erfcx carries its own ~1e-13 error)
    mills = np.exp(stats.norm.logpdf(zz) - special.log_ndtr(zz))
    np.testing.assert_allclose(grad, mills, rtol=1e-12)


def test_interval_logprob_pt():
    import pytensor
    import pytensor.tensor as pt
    from pymc.distributions.dist_math import normal_lcdf

    rng = np.random.default_rng(2)
    aa = rng.normal(0.0, 8.0, 3000)
    bb = aa + rng.exponential(1.0, 3000)
    a, b = pt.dvectors("a", "b")
    for mirror in ("midpoint", "lower"):
        for gap in (None, 1e-12):
            value = nm.interval_logprob_pt(a, b, mirror=mirror, gap=gap)
            f = _compile([a, b], [value, *pytensor.grad(value.sum(), [a, b])])
            got, grad_a, grad_b = f(aa, bb)
            # the same algebra as the NumPy version on a different log Phi (test_log_ndtr_pt:
            # 1e-13 relative per log Phi; log1mexp can amplify a difference by ~10): 1e-12
            expected = nm.interval_logprob(aa, bb, mirror=mirror, gap=gap)
            np.testing.assert_allclose(got, expected, rtol=1e-12)
            assert np.isfinite(grad_a).all() and np.isfinite(grad_b).all()
    # PyMC's normal_lcdf divides by a float32 sqrt(2) (relative error 3e-8 in its argument,
    # ~1e-7 relative in log P at |z| ~ 8): same values to 1e-6
    value = nm.interval_logprob_pt(a, b, log_ndtr=lambda z: normal_lcdf(0.0, 1.0, z))
    got = _compile([a, b], value)(aa, bb)
    np.testing.assert_allclose(got, nm.interval_logprob(aa, bb), rtol=1e-6)


def test_censored_logprob():
    rng = np.random.default_rng(3)
    a = rng.uniform(-3.0, 3.0, 3000)
    b = a + rng.uniform(0.01, 3.0, 3000)
    has_lo = rng.random(3000) < 0.8
    has_hi = ~has_lo | (rng.random(3000) < 0.8)
    got = nm.censored_logprob(a, b, has_lo, has_hi, gap=1e-12)
    # closed forms with SciPy; the interval by the direct CDF difference (accurate to 1e-10 in
    # this range, test_interval_logprob), the one-sided cases by logcdf / logsf (a few ulp)
    expected = np.where(
        has_lo & has_hi,
        np.log(stats.norm.cdf(b) - stats.norm.cdf(a)),
        np.where(has_hi, stats.norm.logcdf(b), stats.norm.logsf(a)),
    )
    np.testing.assert_allclose(got, expected, rtol=1e-10)
    # the interval part is interval_logprob with mirror="lower", bit for bit
    both = has_lo & has_hi
    np.testing.assert_array_equal(
        got[both], nm.interval_logprob(a[both], b[both], mirror="lower", gap=1e-12)
    )


def test_censored_logprob_pt():
    import pytensor
    import pytensor.tensor as pt

    rng = np.random.default_rng(4)
    # stand-ins 1 SD from the present bound where a bound is absent, as the CTF model has them
    aa = rng.normal(0.0, 6.0, 3000)
    bb = aa + rng.exponential(1.0, 3000)
    has_lo = rng.random(3000) < 0.8
    has_hi = ~has_lo | (rng.random(3000) < 0.8)
    # two far upper-tail rows where both log CDFs are exactly 0 in the branch not taken
    aa[:2], bb[:2], has_lo[:2], has_hi[:2] = 40.0, 41.0, True, True
    a, b = pt.dvectors("a", "b")
    ha, hb = pt.vector("ha", dtype="bool"), pt.vector("hb", dtype="bool")
    value = nm.censored_logprob_pt(a, b, ha, hb, gap=1e-12)
    f = _compile([a, b, ha, hb], [value, *pytensor.grad(value.sum(), [a, b])])
    got, grad_a, grad_b = f(aa, bb, has_lo, has_hi)
    # same algebra as the NumPy version, log Phi within 1e-13 (test_log_ndtr_pt): 1e-12
    expected = nm.censored_logprob(aa, bb, has_lo, has_hi, gap=1e-12)
    np.testing.assert_allclose(got, expected, rtol=1e-12)
    # the gap keeps the gradient finite where a branch not taken is log1mexp(0)
    assert np.isfinite(grad_a).all() and np.isfinite(grad_b).all()


def test_nb_logpmf():
    rng = np.random.default_rng(5)
    y = rng.integers(0, 200, 5000)
    mu = rng.lognormal(0.0, 1.5, 5000).clip(0.01, 100.0)
    k = rng.lognormal(0.0, 1.5, 5000).clip(0.05, 100.0)
    expected = stats.nbinom.logpmf(y, k, k / (k + mu))
    for form in ("ratio", "logaddexp"):
        got = nm.nb_logpmf(y, mu, k, form=form)
        # terms of size up to ~1e3 (lgamma(y + k), k log k) cancel to a log pmf of size ~1-100,
        # and SciPy sums them differently: absolute error ~1e3 * eps ~ 2e-13 per term, so
        # 1e-10 absolute (observed max 1.2e-11)
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-10)
    # a pmf: sums to 1 over the counts (NB mean 3, size 2: the tail beyond 400 is < 1e-60)
    counts = np.arange(400)
    assert np.exp(nm.nb_logpmf(counts, 3.0, 2.0)).sum() == pytest.approx(1.0, abs=1e-14)
    with pytest.raises(ValueError, match="form"):
        nm.nb_logpmf(1, 1.0, 1.0, form="direct")  # type: ignore[arg-type]


def test_segment_starts():
    index = np.array([0, 0, 1, 2, 2, 2, 3])
    starts = nm.segment_starts(index, 4)
    np.testing.assert_array_equal(starts, [0, 2, 3, 6])
    values = np.arange(7.0)
    np.testing.assert_array_equal(np.add.reduceat(values, starts), [1.0, 2.0, 12.0, 6.0])
    for bad, n in [(np.array([0, 2, 1]), 3), (np.array([0, 0, 2]), 3), (np.array([], int), 1)]:
        with pytest.raises(ValueError, match="sorted"):
            nm.segment_starts(bad, n)


def test_segment_sum():
    rng = np.random.default_rng(6)
    index = np.sort(rng.integers(0, 30, 500))
    index = np.unique(index, return_inverse=True)[1]  # every segment present
    n = int(index.max()) + 1
    values = rng.normal(size=(2, 3, index.size))
    # sorted rows: exactly np.add.reduceat over the starts (the same additions, same order)
    expected = np.add.reduceat(values, nm.segment_starts(index, n), axis=-1)
    np.testing.assert_array_equal(nm.segment_sum(values, index, n), expected)
    np.testing.assert_array_equal(
        nm.segment_sum(np.moveaxis(values, -1, 1), index, n, axis=1),
        np.moveaxis(expected, -1, 1),
    )
    # unsorted rows and an empty segment: against pandas groupby; sums of ~20 terms of size ~1
    # in another order: within 1e-13 absolute (a few ulp times the number of terms)
    shuffled = rng.integers(0, 40, 500)
    flat = values.reshape(-1, values.shape[-1])
    grouped = (
        pd.DataFrame(flat.T).groupby(shuffled).sum().reindex(range(40), fill_value=0.0).to_numpy()
    )
    got = nm.segment_sum(values, shuffled, 40).reshape(-1, 40)
    np.testing.assert_allclose(got, grouped.T, rtol=0, atol=1e-13)


def test_centre_covariate():
    values = np.array([1.0, np.nan, 4.0, np.inf, 7.0])
    centred, centre, n_missing = nm.centre_covariate(values)
    assert centre == 4.0 and n_missing == 2
    np.testing.assert_array_equal(centred, [-3.0, 0.0, 0.0, 0.0, 3.0])
    # an explicit mask: the values under it are ignored, whatever they are
    centred, centre, n_missing = nm.centre_covariate(
        np.array([2.0, 99.0, 4.0]), [False, True, False]
    )
    assert centre == 3.0 and n_missing == 1
    np.testing.assert_array_equal(centred, [-1.0, 0.0, 1.0])
    # the present values average to 0 after centring (a mean of a few numbers: 1e-15)
    x = np.random.default_rng(7).normal(3.0, 1.0, 100)
    centred, centre, _ = nm.centre_covariate(x)
    assert centre == pytest.approx(x.mean(), rel=1e-15)
    assert abs(centred.mean()) < 1e-14
    # nothing present: centre 0, everything imputed
    assert nm.centre_covariate(np.array([np.nan, np.nan]))[1:] == (0.0, 2)


def test_interval_bounds():
    assert nm.interval_bounds(0.9) == pytest.approx((0.05, 0.95), abs=1e-15)
    lo, hi = nm.interval_bounds(0.95)
    assert lo + hi == 1.0 and hi - lo == pytest.approx(0.95, abs=1e-15)
    for level in (0.0, 1.0, 1.5, -0.1):
        with pytest.raises(ValueError, match="level"):
            nm.interval_bounds(level)
