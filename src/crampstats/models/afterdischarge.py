"""``afterdischarge``: after-discharge grade at the end-of-treatment EMG visit (parallel designs).

One row per subject with an end-of-treatment grade (the derived ``emg`` dataset,
:func:`crampstats.derive.emg_visits`, visit ``end``; :func:`afterdischarge_frame`). The grade
``y_i`` is 0 (none), 1-3 (levels A-C of increasing after-discharges on 1 Hz repetitive nerve
stimulation) or 4 (D, a continuous cramp potential): docs/calibration.md, "after-discharges on 1 Hz
repetitive nerve stimulation" row, a descriptive scale, not a validated one.

Model (cumulative logit, proportional odds)
-------------------------------------------
With the logistic CDF ``F`` and four ordered cutpoints ``c_0 < c_1 < c_2 < c_3``::

    P(y_i <= j) = F(c_j - eta_i),   j = 0..3   (P(y_i <= 4) = 1)
    eta_i = beta[arm_i] + b * (x_i - mean x)

This is statsmodels ``OrderedModel``'s parameterisation: a positive ``beta`` moves the latent
variable up, towards *higher* grades. ``beta`` is 0 for the control arm. The odds of a grade at
or below ``j`` are ``exp(c_j - eta)`` whatever ``j``, so the arm's odds ratio of a lower grade
against control is the same at every cut::

    odds_ratio_lower_grade = odds(y <= j | arm) / odds(y <= j | control) = exp(-beta[arm])

Fewer or weaker after-discharges are *benefit*: ``odds_ratio_lower_grade > 1``, and
``p_benefit = P(odds_ratio_lower_grade > 1 | data) = P(beta < 0 | data)``.

Baseline covariate
------------------
``x_i`` is the baseline grade (``afterdischarge_baseline``: derive averages two baseline
visits and rounds), entered as a *number* with one slope ``b``, centred at the analysed
subjects' mean. Numeric, because grades are ordered and sparse at the top (a handful of
subjects at baseline grade 4 in a trial of 200): one slope borrows strength across levels where
four indicators would each rest on few subjects, and the model's structure (its parameters and
therefore the compiled model) does not depend on which baseline grades a trial happens to
have. Centred, because the cutpoints are then the log cumulative odds of a control subject at
the trial's average baseline (the prior below is stated on that scale) and are nearly
uncorrelated with ``b``, which helps the sampler; the arm effect itself does not change with
the centring. A missing baseline grade is refused (``missing_baseline="error"``, default) or
set to the mean (``"mean"``, 0 after centring; White & Thompson 2005, Stat Med 24:993).
Subjects without an end-of-treatment grade (dropouts) are not analysed (complete cases).

Likelihood and absent grades
----------------------------
The model always has five categories and four cutpoints, whichever grades occur in the data
(the structure must not depend on the data, and a grade absent from a small trial is still a
possible grade). With ``a = c_{y-1} - eta`` (``-inf`` for ``y = 0``) and ``b = c_y - eta``
(``+inf`` for ``y = 4``) the log-probability is written out stably, with no difference of two
CDFs::

    log(F(b) - F(a)) = log F(b) + log F(-a) + log(1 - exp(a - b))
                     = -softplus(-b) - softplus(a) + log1mexp(-(c_y - c_{y-1}))

(terms with an infinite bound are 0). An absent grade leaves its cutpoint without data on one
side; the proper prior below keeps it finite (a grade-4-free trial gives a top cutpoint drawn
from its prior, bounded below by the likelihood). The likelihood is a ``pm.Potential``;
:func:`ordinal_loglik` is the same density in NumPy for the pointwise log-likelihood.

Priors (weakly informative)
---------------------------
docs/calibration.md ("EMG endpoints" table, after-discharge row) gives the scale but no grade
frequencies and no treatment effect, so the priors are centred on "no information":

- ``cutpoints ~ Normal(logit(0.2, 0.4, 0.6, 0.8), 2.5)``, constrained increasing
  (``pm.distributions.transforms.ordered``): centred on equal probabilities of the five grades
  for a control subject at the mean baseline (``prior_grade_probs``, configurable); a
  cumulative probability of 0.2 may lie anywhere in 0.002-0.97 (95 %). The cutpoints carry the
  control arm's grade distribution, against which every arm's effect is measured, so a tight
  prior here moves every effect: on the example trial (37 placebo subjects) SD 1.5 moved
  every log odds ratio by about 0.12 (0.3 posterior SD) beyond the shrinkage of its own prior,
  SD 2.5 by about 0.05 (0.13 posterior SD).
- ``beta ~ Normal(0, 1)``: centred on no effect (published effects are inflated,
  docs/calibration.md "Therapy effects" preamble); 95 % of the mass on odds ratios 0.14-7.1.
- ``b ~ Normal(0, 1)``: log odds ratio per baseline grade, from none to strong tracking.

Twin: :func:`afterdischarge_twin`, statsmodels ``OrderedModel`` (``distr="logit"``) on the same
rows and design, Wald interval for ``-beta`` exponentiated.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import pandas as pd
import xarray as xr
from scipy import special, stats
from statsmodels.miscmodels.ordinal_model import OrderedModel

from crampstats.engine import ATTR_PREFIX, BayesModel, PreparedData
from crampstats.models._common import (
    ModelDataError,
    arm_coding,
    arm_effect,
    as_float,
    require_columns,
    subject_keys,
)
from crampstats.numerics import centre_covariate, interval_bounds, log1mexp

if TYPE_CHECKING:
    import pymc as pm

__all__ = [
    "AfterdischargeModel",
    "afterdischarge_effects",
    "afterdischarge_frame",
    "afterdischarge_twin",
    "ordinal_loglik",
]

#: Grades 0 (none) to 4 (continuous cramp potential): docs/calibration.md, after-discharge row.
N_GRADES = 5
REQUIRED = ("subject_id", "arm", "afterdischarge_grade", "afterdischarge_baseline")
FRAME_COLUMNS = ("trial_id", *REQUIRED)
MEASURE = "odds_ratio_lower_grade"
EFFECT_COLUMNS = ["arm", "comparator", "measure", "estimate_median", "lower", "upper", "p_benefit"]


# --------------------------------------------------------------------------------------------
# Log-likelihood (NumPy; the graph's twin is AfterdischargeModel._build)
# --------------------------------------------------------------------------------------------
def ordinal_loglik(grade: Any, eta: Any, cutpoints: Any) -> np.ndarray:
    """Cumulative-logit log-probability ``log P(y = grade)`` with ``P(y <= j) = F(c_j - eta)``.

    Parameters
    ----------
    grade
        Integer grades ``0 .. K-1`` (broadcasting against ``eta``).
    eta
        Linear predictor (statsmodels sign: larger = higher grades).
    cutpoints
        Increasing cutpoints, last axis of length ``K - 1``; leading axes broadcast against
        ``eta`` (e.g. ``(chain, draw, 1, K-1)`` against ``(chain, draw, subject)``).

    Returns
    -------
    numpy.ndarray
        ``log(F(c_y - eta) - F(c_{y-1} - eta))`` in the stable form of the module docstring.
    """
    cut = np.asarray(cutpoints, dtype=float)
    eta = np.asarray(eta, dtype=float)[..., None]
    k = np.arange(cut.shape[-1] + 1)
    # Every category's log-probability (last axis), then the observed one. Stand-ins for the
    # infinite bounds of the extreme grades keep the unused terms finite; np.where drops them.
    upper = np.concatenate([cut, cut[..., -1:]], axis=-1)
    lower = np.concatenate([cut[..., :1], cut], axis=-1)
    zero = np.zeros((*cut.shape[:-1], 1))
    gap = np.concatenate([zero, log1mexp(-np.diff(cut, axis=-1)), zero], axis=-1)
    every = (
        np.where(k < k.size - 1, special.log_expit(upper - eta), 0.0)
        + np.where(k > 0, special.log_expit(eta - lower), 0.0)
        + gap
    )
    index = np.broadcast_to(np.asarray(grade, dtype=np.int64), every.shape[:-1])
    return np.take_along_axis(every, index[..., None], axis=-1)[..., 0]


# --------------------------------------------------------------------------------------------
# Analysis frame
# --------------------------------------------------------------------------------------------
def afterdischarge_frame(
    derived: Mapping[str, pd.DataFrame], end_visit: str = "end"
) -> pd.DataFrame:
    """Build the model's input: one row per subject with a grade at the end-of-treatment visit.

    Parameters
    ----------
    derived
        Derived datasets (:func:`crampstats.derive.derive_all`); uses ``emg``.
    end_visit
        Name of the end-of-treatment visit (``end`` in parallel designs).

    Returns
    -------
    pandas.DataFrame
        ``trial_id`` (when present), ``subject_id, arm, afterdischarge_grade,
        afterdischarge_baseline``. ``attrs["n_missing_grade"]`` counts end-visit rows without a
        grade, which are dropped.

    Raises
    ------
    ModelDataError
        No ``emg`` data, no ``arm`` column (not a parallel design), no ``end_visit`` rows, a
        subject with two end-visit rows, or no end-visit grade at all.
    """
    emg = derived.get("emg")
    if emg is None or emg.empty:
        raise ModelDataError(
            "the afterdischarge endpoint needs the derived `emg` dataset; the trial has none"
        )
    if "arm" not in emg.columns:
        raise ModelDataError(
            "the afterdischarge endpoint compares arms of a parallel design; the emg data have no "
            "`arm` column (crossover and N-of-1 designs are not supported)"
        )
    require_columns(emg, [*REQUIRED, "visit"], "emg data")
    end = emg.loc[emg["visit"].astype(str) == end_visit]
    if end.empty:
        visits = sorted(set(emg["visit"].astype(str)))
        raise ModelDataError(
            f"emg data have no {end_visit!r} visit (visits: {visits}); the afterdischarge "
            "endpoint compares arms at the end-of-treatment visit"
        )
    keys = subject_keys(end)
    if keys.duplicated().any():
        raise ModelDataError(
            f"emg data have more than one {end_visit!r} row for subject(s) "
            f"{sorted(set(keys[keys.duplicated()]))[:5]}"
        )
    missing = end["afterdischarge_grade"].isna()
    if missing.all():
        raise ModelDataError(
            f"no subject has an after-discharge grade at the {end_visit!r} visit "
            f"({len(end)} row(s), all missing afterdischarge_grade)"
        )
    out = end.loc[~missing, [c for c in FRAME_COLUMNS if c in end.columns]]
    out = out.reset_index(drop=True)
    out.attrs["n_missing_grade"] = int(missing.sum())
    return out


# --------------------------------------------------------------------------------------------
# Bayesian model
# --------------------------------------------------------------------------------------------
class AfterdischargeModel(BayesModel):
    """Cumulative-logit model of the end-of-treatment after-discharge grade, baseline-adjusted.

    Parameters
    ----------
    model_config
        Overrides of :attr:`default_model_config`: ``control_arm`` (``"placebo"``), ``arms``
        (all arms, or ``None`` for those in the data), ``missing_baseline`` (``"error"`` or
        ``"mean"``) and the priors ``prior_grade_probs`` (five grade probabilities of a control
        subject at the mean baseline, centring the cutpoints), ``prior_cutpoint_sd``,
        ``prior_beta_sd``, ``prior_b_mu``, ``prior_b_sd`` (module docstring).
    sampler_config
        Overrides of the sampler defaults (:class:`crampstats.engine.BayesModel`).

    Examples
    --------
    >>> idata = AfterdischargeModel().fit(afterdischarge_frame(derived), seed=1)  # doctest: +SKIP
    >>> afterdischarge_effects(idata)  # doctest: +SKIP
    """

    name: ClassVar[str] = "afterdischarge"
    default_model_config: ClassVar[dict[str, Any]] = {
        "control_arm": "placebo",
        "arms": None,
        "missing_baseline": "error",
        "prior_grade_probs": [0.2] * N_GRADES,
        "prior_cutpoint_sd": 2.5,
        "prior_beta_sd": 1.0,
        "prior_b_mu": 0.0,
        "prior_b_sd": 1.0,
    }

    def __init__(
        self,
        model_config: Mapping[str, Any] | None = None,
        sampler_config: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(model_config, sampler_config)
        if self.model_config["missing_baseline"] not in ("error", "mean"):
            raise ValueError(
                f"missing_baseline must be 'error' or 'mean', "
                f"got {self.model_config['missing_baseline']!r}"
            )
        probs = np.asarray(self.model_config["prior_grade_probs"], dtype=float)
        if probs.shape != (N_GRADES,) or not (probs > 0).all():
            raise ValueError(
                f"prior_grade_probs must be {N_GRADES} positive numbers (grades 0-4), "
                f"got {self.model_config['prior_grade_probs']!r}"
            )

    @property
    def cutpoint_prior_mu(self) -> np.ndarray:
        """Prior means of the cutpoints: logits of the cumulative ``prior_grade_probs``."""
        probs = np.asarray(self.model_config["prior_grade_probs"], dtype=float)
        return special.logit(np.cumsum(probs / probs.sum())[:-1])

    # ---- data -------------------------------------------------------------------------------
    def prepare(self, data: pd.DataFrame) -> PreparedData:
        """Turn an :func:`afterdischarge_frame` into model arrays (one row per subject).

        Raises
        ------
        ModelDataError
            Missing columns, no rows, duplicated subjects, a grade that is missing or not an
            integer 0-4, a baseline outside 0-4, a missing baseline with
            ``missing_baseline="error"``, or no subject in the control arm.
        """
        require_columns(data, REQUIRED, "afterdischarge data")
        if data.empty:
            raise ModelDataError(
                "afterdischarge data have no rows: no subject has an end-of-treatment grade"
            )
        keys = subject_keys(data)
        if keys.duplicated().any():
            raise ModelDataError(
                f"afterdischarge data need one row per subject; duplicated: "
                f"{sorted(set(keys[keys.duplicated()]))[:5]}"
            )
        cfg = self.model_config
        arms = arm_coding(data["arm"], cfg["control_arm"], cfg["arms"])
        arm_idx = arms.index(data["arm"])
        if not (arm_idx == 0).any():
            raise ModelDataError(
                f"no subject of the control arm {arms.control!r} has an end-of-treatment "
                "after-discharge grade; the odds ratio against it cannot be estimated"
            )
        grade = _grades(data)
        x_c, centre, n_imputed = _baseline(data, cfg["missing_baseline"])
        subject_data = xr.Dataset(
            {
                "arm": ("subject", data["arm"].astype(str).to_numpy()),
                "grade": ("subject", grade),
                "x_baseline": ("subject", x_c),
            },
            coords={"subject": keys.to_numpy()},
        )
        return PreparedData(
            data={"grade": grade, "arm_idx": arm_idx, "x_baseline": x_c},
            coords={"arm": list(arms.active), "cutpoint": [f"{j}|{j + 1}" for j in range(4)]},
            constants={
                "afterdischarge_baseline_centre": centre,
                "n_baseline_imputed": n_imputed,
                "grade_counts": [int(n) for n in np.bincount(grade, minlength=N_GRADES)],
                "control_arm": arms.control,
            },
            subject_data=subject_data,
        )

    # ---- model ------------------------------------------------------------------------------
    def _build(self, prepared: PreparedData) -> pm.Model:
        import pymc as pm
        import pytensor.tensor as pt

        # float64 scalars: PyTensor would store a Python float that float32 represents exactly
        # (2.5) as float32, and the priors' precision terms would be computed in float32.
        cfg = {
            k: np.float64(v)
            for k, v in self.model_config.items()
            if k.startswith("prior_") and k != "prior_grade_probs"
        }
        coords = {k: v for k, v in prepared.coords.items() if v}
        with pm.Model(coords=coords) as model:
            grade = pm.Data("grade", prepared.data["grade"])
            arm_idx = pm.Data("arm_idx", prepared.data["arm_idx"])
            x = pm.Data("x_baseline", prepared.data["x_baseline"])

            cut = pm.Normal(
                "cutpoints",
                self.cutpoint_prior_mu,
                cfg["prior_cutpoint_sd"],
                dims="cutpoint",
                transform=pm.distributions.transforms.ordered,
            )
            beta = pm.Normal("beta", 0.0, cfg["prior_beta_sd"], dims="arm")
            b = pm.Normal("b", cfg["prior_b_mu"], cfg["prior_b_sd"])

            eta = pt.concatenate([pt.zeros(1), beta])[arm_idx] + b * x
            # Stand-ins (c_0 below grade 0, c_3 above grade 4) keep the unused terms finite;
            # the switches drop them (module docstring, "Likelihood").
            lower_cut = pt.concatenate([cut[:1], cut])[grade]
            upper_cut = pt.concatenate([cut, cut[-1:]])[grade]
            gap = pt.concatenate([pt.zeros(1), pt.log1mexp(-pt.diff(cut)), pt.zeros(1)])
            per_row = (
                gap[grade]
                - pt.switch(pt.lt(grade, N_GRADES - 1), pt.softplus(eta - upper_cut), 0.0)
                - pt.switch(pt.gt(grade, 0), pt.softplus(lower_cut - eta), 0.0)
            )
            pm.Potential("afterdischarge_loglik", pt.sum(per_row))
        return model

    # ---- post-processing --------------------------------------------------------------------
    def _eta(self, idata: xr.DataTree, prepared: PreparedData) -> xr.DataArray:
        """Linear predictor of every subject per draw (dims chain, draw, subject)."""
        sd = prepared.subject_data
        post = idata["posterior"]
        eta = arm_effect(post["beta"], prepared.data["arm_idx"], sd) + post["b"] * sd["x_baseline"]
        return eta.transpose("chain", "draw", "subject")

    def pointwise_log_likelihood(self, idata: xr.DataTree, prepared: PreparedData) -> xr.DataArray:
        """Log-probability of each subject's end grade, per draw (dims chain, draw, subject)."""
        eta = self._eta(idata, prepared)
        cut = idata["posterior"]["cutpoints"].transpose("chain", "draw", "cutpoint").values
        values = ordinal_loglik(prepared.data["grade"], eta.values, cut[:, :, None, :])
        return xr.DataArray(values, coords=eta.coords, dims=eta.dims, name="y")


def _grades(data: pd.DataFrame) -> np.ndarray:
    """Return the end grades as int64, refusing missing, fractional or out-of-range values."""
    values = as_float(data["afterdischarge_grade"])
    bad = np.isnan(values) | (values < 0) | (values > N_GRADES - 1) | (values != np.round(values))
    if bad.any():
        raise ModelDataError(
            f"afterdischarge_grade must be an integer 0-4; {int(bad.sum())} subject(s) break "
            f"this, e.g. {list(data['subject_id'].astype(str)[bad][:5])}"
        )
    return values.astype(np.int64)


def _baseline(data: pd.DataFrame, missing: str) -> tuple[np.ndarray, float, int]:
    """Centred baseline grade, its centre and the number imputed (``missing="mean"``)."""
    x = as_float(data["afterdischarge_baseline"])
    absent = np.isnan(x)
    if ((x[~absent] < 0) | (x[~absent] > N_GRADES - 1)).any():
        raise ModelDataError("afterdischarge_baseline must lie in 0-4 (a grade)")
    if absent.any() and missing != "mean":
        raise ModelDataError(
            f"afterdischarge_baseline is missing for {int(absent.sum())} subject(s) "
            f"(e.g. {list(data['subject_id'].astype(str)[absent][:5])}); the afterdischarge "
            "model adjusts for the baseline grade: supply it, or set model config "
            "missing_baseline='mean'"
        )
    if absent.all():
        raise ModelDataError("afterdischarge_baseline is missing for every subject")
    return centre_covariate(x, absent)


# --------------------------------------------------------------------------------------------
# Effects
# --------------------------------------------------------------------------------------------
def afterdischarge_effects(idata: xr.DataTree, level: float = 0.95) -> pd.DataFrame:
    """Odds ratio of a lower grade, every active arm against control, from a fit.

    Parameters
    ----------
    idata
        An :class:`AfterdischargeModel` fit.
    level
        Probability of the equal-tailed credible interval.

    Returns
    -------
    pandas.DataFrame
        ``arm, comparator, measure, estimate_median, lower, upper, p_benefit``; ``measure`` is
        ``odds_ratio_lower_grade = exp(-beta)`` and ``p_benefit = P(odds ratio > 1)`` (lower
        grades: fewer after-discharges).
    """
    lo, hi = interval_bounds(level)
    post = idata["posterior"]
    constants = json.loads(post.attrs[f"{ATTR_PREFIX}constants"])
    rows = []
    for arm in post["beta"]["arm"].values:
        log_or = -np.ravel(post["beta"].sel(arm=arm).values)
        q = np.quantile(log_or, [0.5, lo, hi])
        rows.append(
            {
                "arm": str(arm),
                "comparator": constants["control_arm"],
                "measure": MEASURE,
                "estimate_median": float(np.exp(q[0])),
                "lower": float(np.exp(q[1])),
                "upper": float(np.exp(q[2])),
                "p_benefit": float(np.mean(log_or > 0.0)),
            }
        )
    return pd.DataFrame(rows, columns=EFFECT_COLUMNS)


# --------------------------------------------------------------------------------------------
# Frequentist twin
# --------------------------------------------------------------------------------------------
def afterdischarge_twin(
    frame: pd.DataFrame,
    control_arm: str = "placebo",
    level: float = 0.95,
    arms: Sequence[str] | None = None,
    missing_baseline: str = "error",
) -> pd.DataFrame:
    """Frequentist twin of :class:`AfterdischargeModel`: statsmodels ``OrderedModel`` (logit).

    The same rows, arm coding and centred numeric baseline; ``P(y <= j) = F(c_j - x'beta)`` with
    ``x`` the active-arm indicators (arms with subjects) and the baseline. Maximum likelihood
    needs no prior, so a grade absent from the data has no finite cutpoint; the grades are
    therefore fitted as the levels observed. Collapsing an empty category leaves every
    observation's probability, and so the maximum-likelihood ``beta``, unchanged (its cutpoint
    sits at the boundary: equal to its neighbour, or at infinity for an extreme grade).

    Parameters
    ----------
    frame
        One row per subject (:func:`afterdischarge_frame`).
    control_arm, arms, missing_baseline
        As in :attr:`AfterdischargeModel.default_model_config`.
    level
        Confidence level of the Wald interval (for ``-beta``, then exponentiated).

    Returns
    -------
    pandas.DataFrame
        ``arm, comparator, measure, estimate_median, lower, upper, p_benefit`` (``p_benefit``
        NaN: a frequentist fit gives no posterior probability), one row per active arm with
        data. ``attrs``: ``beta``, ``se`` (lists, statsmodels sign), ``cov`` (covariance of the
        arm coefficients, nested list), ``b``, ``levels`` (grades observed), ``converged``.

    Raises
    ------
    ModelDataError
        As :meth:`AfterdischargeModel.prepare`, or fewer than two distinct grades observed.
    """
    _, hi = interval_bounds(level)
    model = AfterdischargeModel(
        {
            "control_arm": control_arm,
            "arms": None if arms is None else list(arms),
            "missing_baseline": missing_baseline,
        }
    )
    prepared = model.prepare(frame)
    data = prepared.data
    levels = np.unique(data["grade"])
    if levels.size < 2:
        raise ModelDataError(
            f"every analysed subject has grade {int(levels[0])}; the ordinal model needs at "
            "least two distinct grades"
        )
    present = [
        (i, arm)
        for i, arm in enumerate(prepared.coords["arm"], start=1)
        if (data["arm_idx"] == i).any()
    ]
    X = np.column_stack(
        [(data["arm_idx"] == i).astype(float) for i, _ in present] + [data["x_baseline"]]
    )
    names = [*(f"beta[{arm}]" for _, arm in present), "b"]
    endog = np.searchsorted(levels, data["grade"])
    result = OrderedModel(endog, pd.DataFrame(X, columns=names), distr="logit").fit(
        method="bfgs", maxiter=2000, disp=False
    )
    params = np.asarray(result.params)
    cov = np.asarray(result.cov_params())
    n_arm = len(present)
    beta, se = params[:n_arm], np.sqrt(np.diag(cov)[:n_arm])
    crit = stats.norm.ppf(hi)
    out = pd.DataFrame(
        {
            "arm": [arm for _, arm in present],
            "comparator": model.model_config["control_arm"],
            "measure": MEASURE,
            "estimate_median": np.exp(-beta),
            "lower": np.exp(-beta - crit * se),
            "upper": np.exp(-beta + crit * se),
            "p_benefit": np.nan,
        },
        columns=EFFECT_COLUMNS,
    )
    # attrs hold plain Python values: pandas compares attrs when concatenating tables.
    out.attrs.update(
        beta=[float(v) for v in beta],
        se=[float(v) for v in se],
        cov=[[float(v) for v in row] for row in cov[:n_arm, :n_arm]],
        b=float(params[n_arm]),
        levels=[int(v) for v in levels],
        converged=bool(result.mle_retvals["converged"]),
    )
    return out
