"""PSIS-LOO that says when it cannot be trusted: Pareto k, moment matching, reliability.

PSIS-LOO (Vehtari et al. 2017, Stat Comput 27:1413; 2024, JMLR 25:72) approximates leaving
each subject out by importance sampling from the full posterior; its Pareto k diagnoses when
that fails (k above ``min(1 - 1 / log10 S, 0.7)`` for S draws, ArviZ's ``good_k``). It fails
when a subject's data alone inform parameters of their own, as in the ``crossover`` model
(each subject's ``a_i`` and ``d_i``). The remedy used here is ArviZ's moment matching
(:func:`arviz_stats.loo_moment_match`; Paananen et al. 2021, Stat Comput 31:16) for models
that provide their log density in the unconstrained space (a ``moment_match_functions``
method); it needs no refit. K-fold cross-validation would need K refits, which the compare
stage does not run (it samples nothing), so a model without moment matching keeps plain PSIS
and is marked unreliable, with the reason, when its k values are high.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, NamedTuple

import arviz_stats as azs
import numpy as np
import pandas as pd
import xarray as xr

from crampstats.engine import BayesModel, PreparedData

__all__ = ["LOO_CHECK_COLUMNS", "CheckedLoo", "checked_loo", "checked_loo_table"]

#: Columns of :func:`checked_loo_table` (those of ``tables/loo.csv``, without the keys).
LOO_CHECK_COLUMNS = [
    "model", "elpd_loo", "se", "p_loo", "elpd_diff", "dse", "weight", "pareto_k_max",
    "n_pareto_k_high", "n_subjects", "n_high_k", "max_k", "good_k", "method", "reliable", "note",
]  # fmt: skip


class CheckedLoo(NamedTuple):
    """PSIS-LOO of one fit after the remedy, with the plain PSIS diagnostics beside it."""

    result: Any  #: arviz_stats ``ELPDDataLOO`` (moment-matched when ``method`` says so)
    method: str  #: ``"psis"`` or ``"moment_match"``
    psis_k: np.ndarray  #: Pareto k of plain PSIS, per subject
    k: np.ndarray  #: Pareto k after the remedy, per subject
    good_k: float  #: the threshold k is compared with


@contextmanager
def _quiet() -> Iterator[None]:
    """Silence ArviZ's high-k warnings: the table reports k per model instead.

    (The warnings would also abort strict runs and tests that treat warnings as errors.)
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*[Pp]areto.*")
        warnings.filterwarnings("ignore", message=".*shape parameter.*")
        # split moment matching's log-sum-exp evaluates both branches of an xr.where and keeps
        # the one with a non-positive exponent: the overflow is in the discarded branch
        warnings.filterwarnings("ignore", message="overflow encountered in exp")
        yield


def checked_loo(
    idata: xr.DataTree, model: BayesModel | None = None, prepared: PreparedData | None = None
) -> CheckedLoo:
    """PSIS-LOO of a fit, moment-matched where k is high and the model supports it.

    Parameters
    ----------
    idata
        A fit with a ``log_likelihood`` group (variable ``y``, one term per subject).
    model, prepared
        The model that made the fit and its data; moment matching is tried when both are
        given, some k exceeds ``good_k`` and ``model.moment_match_functions`` returns the
        functions.

    Returns
    -------
    CheckedLoo
    """
    with _quiet():
        result = azs.loo(idata, pointwise=True)
        psis_k = np.asarray(result.pareto_k).ravel()
        good_k = float(result.good_k)
        method = "psis"
        functions = None
        if np.any(psis_k > good_k) and model is not None and prepared is not None:
            make = getattr(model, "moment_match_functions", None)
            functions = make(idata, prepared) if make is not None else None
        if functions is not None:
            log_prob, log_lik_i, upars = functions
            result = azs.loo_moment_match(
                idata,
                result,
                log_prob_upars_fn=log_prob,
                log_lik_i_upars_fn=log_lik_i,
                upars=upars,
                k_threshold=good_k,
                pointwise=True,
            )
            method = "moment_match"
    k = np.asarray(result.pareto_k).ravel()
    return CheckedLoo(result, method, psis_k, k, good_k)


def _note(check: CheckedLoo, has_remedy: bool) -> str:
    """Say in words why a LOO estimate is unreliable (empty when it is reliable)."""
    high = check.k > check.good_k
    n_psis = int((check.psis_k > check.good_k).sum())
    if not high.any():
        if check.method == "moment_match":
            return (
                f"plain PSIS had Pareto k > {check.good_k:.2f} for {n_psis} subjects (max "
                f"{check.psis_k.max():.2f}); moment matching brought every k below it"
            )
        return ""
    why = (
        f"Pareto k > {check.good_k:.2f} for {int(high.sum())} of {high.size} subjects "
        f"(max {check.k.max():.2f})"
    )
    if check.method == "moment_match":
        why += (
            f" after moment matching (plain PSIS: {n_psis}, max {check.psis_k.max():.2f})"
        )
    elif not has_remedy:
        why += "; this model offers no moment matching and K-fold refits are not run here"
    return (
        why + ": leaving these subjects out changes the posterior more than importance sampling "
        "can correct (typically because each subject's data inform parameters of their own), so "
        "this ELPD, and any ranking that uses it, is unreliable"
    )


def checked_loo_table(
    fits: Mapping[str, tuple[xr.DataTree, BayesModel | None, PreparedData | None]],
) -> pd.DataFrame:
    """LOO of fits of the same data, compared, with each estimate's reliability.

    Parameters
    ----------
    fits
        Model name -> ``(fit, model, prepared data)``; the fit has a ``log_likelihood`` group
        with one term per subject, the same subjects in every fit.

    Returns
    -------
    pandas.DataFrame
        One row per model, best ELPD first (:data:`LOO_CHECK_COLUMNS`): ``elpd_loo, se, p_loo``
        (after the remedy), ``elpd_diff, dse, weight`` (ArviZ ``compare``, stacking weights),
        ``pareto_k_max, n_pareto_k_high`` (plain PSIS, k > 0.7), ``n_high_k, max_k`` (after the
        remedy, k > ``good_k``), ``method`` (``psis`` or ``moment_match``), ``reliable`` (no k
        above ``good_k`` after the remedy) and ``note`` (why not, in words). A comparison is
        reliable only when every row of it is.
    """
    rows, results = [], {}
    for name, (idata, model, prepared) in fits.items():
        check = checked_loo(idata, model, prepared)
        results[name] = check.result
        has_remedy = model is not None and hasattr(model, "moment_match_functions")
        rows.append(
            {
                "model": name,
                "elpd_loo": float(check.result.elpd),
                "se": float(check.result.se),
                "p_loo": float(check.result.p),
                "pareto_k_max": float(check.psis_k.max()),
                "n_pareto_k_high": int((check.psis_k > 0.7).sum()),
                "n_subjects": int(check.k.size),
                "n_high_k": int((check.k > check.good_k).sum()),
                "max_k": float(check.k.max()),
                "good_k": check.good_k,
                "method": check.method,
                "reliable": bool((check.k <= check.good_k).all()),
                "note": _note(check, has_remedy),
            }
        )
    table = pd.DataFrame(rows)
    if len(results) > 1:
        with _quiet():
            cmp = azs.compare(results, round_to="none")
        cmp = cmp.rename_axis("model").reset_index()[["model", "elpd_diff", "dse", "weight"]]
        table = table.merge(cmp, on="model")
    else:
        table = table.assign(elpd_diff=0.0, dse=0.0, weight=1.0)
    table = table.sort_values("elpd_loo", ascending=False, kind="stable").reset_index(drop=True)
    return table[LOO_CHECK_COLUMNS]
