"""Model checks from fits: rootogram data and LOO comparison.

- :func:`rootogram`: observed against expected number of units (subjects, subject-weeks, ...) at
  each count, the data of a hanging rootogram (Kleiber & Zeileis 2016, Am Stat 70:296). The
  expected frequencies are posterior predictive: each unit's predictive pmf averaged over draws,
  summed over units.
- :func:`loo_table`: PSIS-LOO (ArviZ) of models fitted to the same data, with one pointwise term
  per subject, so models of weekly counts are compared subject by subject.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping

import arviz_stats as azs
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


def loo_table(fits: Mapping[str, xr.DataTree]) -> pd.DataFrame:
    """PSIS-LOO of each fit and the comparison between fits of the same data.

    Parameters
    ----------
    fits
        Model name -> fit with a ``log_likelihood`` group (variable ``y``, dim ``subject``),
        all fitted to the same subjects.

    Returns
    -------
    pandas.DataFrame
        One row per model, best first: ``model, elpd_loo, se, p_loo, elpd_diff, dse, weight``
        (stacking), ``pareto_k_max`` and ``n_pareto_k_high`` (k > 0.7: the estimate for that
        subject is unreliable), ``n_subjects``.
    """
    rows = []
    loos = {}
    for name, idata in fits.items():
        # ArviZ warns about high Pareto k; the table reports k per model instead, and the
        # report flags it, so the warning would only duplicate that (and abort strict runs).
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Estimated shape parameter of Pareto")
            result = azs.loo(idata, pointwise=True)
        loos[name] = result
        k = np.asarray(result.pareto_k)
        rows.append(
            {
                "model": name,
                "elpd_loo": float(result.elpd),
                "se": float(result.se),
                "p_loo": float(result.p),
                "pareto_k_max": float(np.max(k)),
                "n_pareto_k_high": int(np.sum(k > 0.7)),
                "n_subjects": int(k.size),
            }
        )
    table = pd.DataFrame(rows)
    if len(loos) > 1:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Estimated shape parameter of Pareto")
            cmp = azs.compare(loos, round_to="none")
        cmp = cmp.rename_axis("model").reset_index()[["model", "elpd_diff", "dse", "weight"]]
        table = table.merge(cmp, on="model")
    else:
        table = table.assign(elpd_diff=0.0, dse=0.0, weight=1.0)
    table = table.sort_values("elpd_loo", ascending=False, kind="stable").reset_index(drop=True)
    return table[
        [
            "model",
            "elpd_loo",
            "se",
            "p_loo",
            "elpd_diff",
            "dse",
            "weight",
            "pareto_k_max",
            "n_pareto_k_high",
            "n_subjects",
        ]
    ]
