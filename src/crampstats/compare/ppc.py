"""Model checks from fits: rootogram data (LOO is compare/loo_check.py).

- :func:`rootogram`: observed against expected number of units (subjects, subject-weeks, ...) at
  each count, the data of a hanging rootogram (Kleiber & Zeileis 2016, Am Stat 70:296). The
  expected frequencies are posterior predictive: each unit's predictive pmf averaged over draws,
  summed over units.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr

from crampstats.engine import BayesModel, PreparedData

#: Largest count bin used when the 99th percentile is larger (long tails are pooled).
MAX_BINS = 150


def default_max_count(observed: np.ndarray) -> int:
    """Pool counts above the 99th percentile of the observed ones (at least 10, at most 150)."""
    if len(observed) == 0:
        return 10
    return int(np.clip(np.ceil(np.quantile(observed, 0.99)) + 1, 10, MAX_BINS))


def rootogram(
    model: BayesModel,
    idata: xr.DataTree,
    prepared: PreparedData,
    max_count: int | None = None,
    n_draws: int = 200,
) -> pd.DataFrame:
    """Observed and posterior predictive expected frequency of each count.

    Parameters
    ----------
    model
        The model that made ``idata``.
    idata
        The fit.
    prepared
        The data it was fitted to.
    max_count
        Counts ``>= max_count`` are pooled into the last row; default
        :func:`default_max_count` of the observed counts.
    n_draws
        Posterior draws averaged over.

    Returns
    -------
    pandas.DataFrame
        ``count, label, observed, expected, sqrt_observed, sqrt_expected`` with one row per
        count ``0 .. max_count`` (label ``">=max_count"`` for the last); ``attrs['unit_count']``
        is the number of units.
    """
    if max_count is None:
        observed, _ = model.predictive_pmf(idata, prepared, max_count=1, n_draws=1)
        max_count = default_max_count(observed)
    observed, pmf = model.predictive_pmf(idata, prepared, max_count=max_count, n_draws=n_draws)
    counts = np.arange(max_count + 1)
    obs = np.bincount(np.minimum(observed, max_count), minlength=max_count + 1)
    expected = pmf.sum(axis=0)
    out = pd.DataFrame(
        {
            "count": counts,
            "label": [str(c) for c in counts[:-1]] + [f">={max_count}"],
            "observed": obs.astype(np.int64),
            "expected": expected,
            "sqrt_observed": np.sqrt(obs),
            "sqrt_expected": np.sqrt(expected),
        }
    )
    out.attrs["unit_count"] = len(observed)
    return out
