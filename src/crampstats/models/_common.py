"""Data preparation shared by the count models: arm coding, centring, covariate design.

Everything here is NumPy / pandas only (no PyMC), so the frequentist twins and the Bayesian
models turn the same ``DataFrame`` into the same design, term for term.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from crampstats.errors import CrampstatsError
from crampstats.numerics import centre_covariate

# Re-exported: the count and endpoint models import them from here; their home is numerics.
from crampstats.numerics import interval_bounds as interval_bounds
from crampstats.numerics import nb_logpmf as nb_logpmf

#: Prior mean of the control arm's log daily rate: docs/calibration.md, "baseline rate, NLC" row
#: (0.6-1.2 cramps a day, 0.9/day in the example trial).
LOG_RATE_PRIOR_MU = float(np.log(0.9))

#: Model-config entries every count model shares: structure (arms, covariates, missing run-in
#: rate, period analysed) and the priors of the terms they have in common (docstring of
#: :mod:`crampstats.models.nb_totals` cites their sources). Models add their own entries.
COMMON_MODEL_CONFIG: dict[str, Any] = {
    "control_arm": "placebo",
    "arms": None,
    "covariates": [],
    "missing_baseline": "error",
    "period": "treatment",
    "prior_alpha_mu": LOG_RATE_PRIOR_MU,
    "prior_alpha_sd": 1.0,
    "prior_log_rr_sd": 1.0,
    "prior_b_mu": 0.0,
    "prior_b_sd": 1.0,
    "prior_beta_sd": 1.0,
}


class ModelDataError(CrampstatsError):
    """The analysis data cannot be fitted by the requested model (message says why and where)."""


@dataclass(frozen=True)
class ArmCoding:
    """Arm labels in model order: the control arm first, then the active arms.

    Attributes
    ----------
    control : str
        Label of the control arm (intercept).
    active : tuple of str
        Labels of the other arms, one log rate ratio each.
    """

    control: str
    active: tuple[str, ...]

    @property
    def all(self) -> tuple[str, ...]:
        """All arms, control first."""
        return (self.control, *self.active)

    def index(self, arms: pd.Series) -> np.ndarray:
        """Map arm labels to integer codes (control 0, active arms 1..); unknown arms raise."""
        lookup = {arm: i for i, arm in enumerate(self.all)}
        unknown = sorted(set(arms.astype(str)) - set(lookup))
        if unknown:
            raise ModelDataError(
                f"arm(s) {unknown} are not among the model's arms {list(self.all)}; "
                "list every arm in the model config `arms` or refit"
            )
        return arms.astype(str).map(lookup).to_numpy(dtype=np.int64)


def arm_coding(arms: pd.Series, control_arm: str, arm_order: Sequence[str] | None) -> ArmCoding:
    """Decide the arm coding from the data and the config.

    Parameters
    ----------
    arms
        The ``arm`` column of the analysis data.
    control_arm
        Label of the control arm (config ``control_arm``).
    arm_order
        Config ``arms``: all arms of the design in the order wanted in tables. When ``None`` the
        arms present in the data are used, sorted, control first.

    Returns
    -------
    ArmCoding
        Control arm and active arms.

    Raises
    ------
    ModelDataError
        If the control arm is neither in the data nor in ``arm_order``.
    """
    present = sorted(set(arms.astype(str)))
    listed = list(arm_order) if arm_order is not None else present
    if control_arm not in listed:
        raise ModelDataError(
            f"control arm {control_arm!r} not found (arms: {listed}); "
            "set `control_arm` in the model config"
        )
    return ArmCoding(control_arm, tuple(a for a in listed if a != control_arm))


@dataclass
class CovariateDesign:
    """How optional subject covariates enter the linear predictor.

    Numeric columns are centred and divided by their standard deviation (priors are per SD);
    text / categorical columns become 0/1 indicators with the first level (sorted) as reference.

    Attributes
    ----------
    columns : tuple of str
        Names of the design columns (``age``, ``sex[M]``, ...); part of the model structure.
    spec : dict
        Per source column: ``("numeric", mean, sd)`` or ``("categorical", levels)``.
    """

    columns: tuple[str, ...] = ()
    spec: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_frame(cls, frame: pd.DataFrame, covariates: Sequence[str]) -> CovariateDesign:
        """Learn centring, scaling and levels from ``frame``."""
        columns: list[str] = []
        spec: dict[str, Any] = {}
        for name in covariates:
            if name not in frame.columns:
                raise ModelDataError(f"covariate column {name!r} is not in the analysis data")
            col = frame[name]
            if col.isna().any():
                rows = list(frame.index[col.isna()][:5])
                raise ModelDataError(
                    f"covariate {name!r} is missing for {int(col.isna().sum())} subject(s) "
                    f"(first rows {rows}); impute or drop it before fitting"
                )
            if pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col):
                values = as_float(col)
                sd = float(values.std()) or 1.0
                spec[name] = ("numeric", float(values.mean()), sd)
                columns.append(name)
            else:
                levels = sorted(set(col.astype(str)))
                spec[name] = ("categorical", levels)
                columns.extend(f"{name}[{lev}]" for lev in levels[1:])
        return cls(tuple(columns), spec)

    def matrix(self, frame: pd.DataFrame) -> np.ndarray:
        """Return the ``(n, len(columns))`` design matrix of ``frame``."""
        blocks: list[np.ndarray] = []
        for name, rule in self.spec.items():
            col = frame[name]
            if rule[0] == "numeric":
                blocks.append(((as_float(col) - rule[1]) / rule[2])[:, None])
            else:
                text = col.astype(str).to_numpy()
                blocks.append(np.column_stack([text == lev for lev in rule[1][1:]]).astype(float))
        if not blocks:
            return np.zeros((len(frame), 0))
        return np.column_stack(blocks).reshape(len(frame), -1)


def as_float(values: pd.Series) -> np.ndarray:
    """Return a float array from any numeric pandas dtype; NA (also nullable ``Float64``) -> NaN."""
    return values.to_numpy(dtype=float, na_value=np.nan)


def require_columns(frame: pd.DataFrame, columns: Sequence[str], what: str) -> None:
    """Raise :class:`ModelDataError` naming the columns of ``frame`` that are missing."""
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ModelDataError(f"{what} lacks column(s) {missing}")


def drop_zero_exposure(frame: pd.DataFrame) -> pd.DataFrame:
    """Drop rows with ``exposure_days == 0`` (nothing observed); negative exposure raises."""
    exposure = as_float(frame["exposure_days"])
    if np.any(exposure < 0) or np.any(np.isnan(exposure)):
        raise ModelDataError("exposure_days must be >= 0 and not missing")
    return frame.loc[exposure > 0].reset_index(drop=True)


def check_counts(frame: pd.DataFrame) -> np.ndarray:
    """Return the ``count`` column as int64, refusing missing, negative or fractional counts."""
    values = as_float(frame["count"])
    bad = np.isnan(values) | (values < 0) | (values != np.round(values))
    if bad.any():
        raise ModelDataError(
            f"count must be an integer >= 0; {int(bad.sum())} row(s) break this "
            f"(first rows {list(np.flatnonzero(bad)[:5])})"
        )
    return values.astype(np.int64)


def baseline_covariate(
    frame: pd.DataFrame, missing: str = "error"
) -> tuple[np.ndarray, float, int]:
    """Return the centred ``log_baseline_rate``, its centre and the number of values imputed.

    Parameters
    ----------
    frame
        One row per subject.
    missing
        ``"error"`` (default): refuse missing values (a subject without run-in days).
        ``"mean"``: set them to the mean of the others (0 after centring). In a randomised trial
        mean imputation of a baseline covariate leaves the treatment effect unbiased (White &
        Thompson 2005, Stat Med 24:993); the number imputed is recorded in the fit.

    Returns
    -------
    x_centred : numpy.ndarray
        ``log_baseline_rate - mean`` (mean over the non-missing values).
    centre : float
        The mean.
    n_imputed : int
        How many values were imputed.
    """
    values = as_float(frame["log_baseline_rate"])
    bad = ~np.isfinite(values)
    if bad.any() and missing != "mean":
        raise ModelDataError(
            f"log_baseline_rate is missing or infinite for {int(bad.sum())} subject(s) "
            f"(e.g. {list(frame['subject_id'].astype(str)[bad][:5])}); the models adjust for the "
            "run-in rate: supply it, or set model config missing_baseline='mean'"
        )
    if missing not in ("error", "mean"):
        raise ValueError(f"missing_baseline must be 'error' or 'mean', got {missing!r}")
    return centre_covariate(values, bad)


def subject_keys(frame: pd.DataFrame) -> pd.Series:
    """One string key per row identifying the subject across trials (``trial_id/subject_id``)."""
    if "trial_id" in frame.columns:
        return frame["trial_id"].astype(str) + "/" + frame["subject_id"].astype(str)
    return frame["subject_id"].astype(str)


def arm_effect(log_rr: xr.DataArray, arm_idx: np.ndarray, subject_data: xr.Dataset) -> xr.DataArray:
    """Per-subject arm log rate ratio (0 for control) from the posterior ``log_rr``."""
    values = log_rr.transpose("chain", "draw", "arm").values
    full = np.concatenate([np.zeros((*values.shape[:2], 1)), values], axis=-1)
    return xr.DataArray(
        full[..., arm_idx],
        dims=("chain", "draw", "subject"),
        coords={
            "chain": log_rr["chain"],
            "draw": log_rr["draw"],
            "subject": subject_data["subject"],
        },
    )


def nb_pmf_table(mu: np.ndarray, k: np.ndarray | float, max_count: int) -> np.ndarray:
    """Posterior-averaged NB2 pmf of every unit at counts ``0 .. max_count``.

    Parameters
    ----------
    mu
        Means, shape ``(chain, draw, unit)``.
    k
        Size (broadcasting against ``mu``, e.g. ``(chain, draw, 1)``).
    max_count
        Largest count tabulated; the last column holds ``P(y >= max_count)``.

    Returns
    -------
    numpy.ndarray
        ``(unit, max_count + 1)``, rows summing to 1.
    """
    from scipy import stats

    k = np.broadcast_to(k, mu.shape)
    p = k / (k + mu)
    counts = np.arange(max_count)
    out = np.empty((mu.shape[-1], max_count + 1))
    for c in counts:
        out[:, c] = stats.nbinom.pmf(c, k, p).mean(axis=(0, 1))
    out[:, max_count] = stats.nbinom.sf(max_count - 1, k, p).mean(axis=(0, 1))
    return out
