"""``nb_totals``: the primary analysis of a parallel trial.

One row per subject. The cramp count over the treatment period is negative binomial with

    mean_i = exposure_days_i * exp(alpha + log_rr[arm_i] + b * (x_i - mean(x)) + beta' z_i)

where ``alpha`` is the control arm's log daily rate (at the trial's mean run-in rate),
``log_rr`` the log rate ratio of every other arm against control (0 for control),
``x_i = log_baseline_rate`` the run-in log rate, and ``z_i`` optional covariates (numeric
ones standardised, categorical ones as indicators). Variance is ``mean + mean^2 / k``.

Priors (weakly informative; docs/calibration.md rows cited)
------------------------------------------------------
- ``alpha ~ Normal(log 0.9, 1)``: "baseline rate, NLC" row, 0.6-1.2 cramps a day, 0.9/day in the
  example trial. SD 1 on the log scale spans 0.12-6.4 a day (95 %), covering the ALS row (5/day).
- ``log_rr ~ Normal(0, 1)``: centred on no effect because published effects are inflated
  (docs/calibration.md, "Therapy effects" preamble); SD 1 puts 95 % of the mass on RR 0.14-7.1,
  which covers the largest published effect (mexiletine 900 mg RR ~0.16) without favouring it.
  With 40 subjects an arm the prior moves the estimate by about 2 % of its value.
- ``b ~ Normal(0, 1)``: run-in rate association, from none (0) to proportional (1) and beyond.
- ``beta ~ Normal(0, 1)`` per SD of a numeric covariate or per level of a categorical one.
- ``k ~ LogNormal(log 3, 1)``: "overdispersion" row, k = 3 (2.5-3.9 reported, 0.2-3.9 seen);
  95 % prior mass on 0.4-21.

The likelihood is a ``pm.Potential`` (the NB2 log pmf written out, see ``_build``): cheaper
than ``pm.NegativeBinomial`` and identical in value (tested); the pointwise log-likelihood for
LOO is computed after sampling by :meth:`NBTotals.pointwise_log_likelihood`.

The frequentist twin :func:`nb_glm_twin` fits the same terms by maximum likelihood
(statsmodels ``NegativeBinomial``, NB2, offset log exposure).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import pandas as pd
import xarray as xr
from scipy import special

from crampstats.engine import CountModel, PreparedData, thinned_fit
from crampstats.models._common import (
    COMMON_MODEL_CONFIG,
    CovariateDesign,
    arm_coding,
    arm_effect,
    as_float,
    baseline_covariate,
    check_counts,
    drop_zero_exposure,
    nb_logpmf,
    nb_pmf_table,
    require_columns,
    subject_keys,
)

if TYPE_CHECKING:
    import pymc as pm

REQUIRED = ("subject_id", "arm", "count", "exposure_days", "log_baseline_rate")


class NBTotals(CountModel):
    """Negative binomial model of treatment-period totals (primary, parallel designs).

    Parameters
    ----------
    model_config
        Overrides of :attr:`default_model_config`:

        ``control_arm`` (``"placebo"``), ``arms`` (all arms in table order, or ``None`` for
        the arms in the data; set it for power runs so that a replicate missing an arm keeps
        the structure), ``covariates`` (extra subject columns, default none),
        ``missing_baseline`` (``"error"`` or ``"mean"``, see
        :func:`crampstats.models._common.baseline_covariate`),
        ``period`` (rows of ``periods`` to analyse, ``"treatment"``) and the prior
        parameters ``prior_alpha_mu``, ``prior_alpha_sd``, ``prior_log_rr_sd``,
        ``prior_b_mu``, ``prior_b_sd``, ``prior_beta_sd``, ``prior_k_mu`` (of log k),
        ``prior_k_sd``.
    sampler_config
        Overrides of the sampler defaults (see :class:`crampstats.engine.BayesModel`).

    Examples
    --------
    >>> model = NBTotals({"control_arm": "placebo"})  # doctest: +SKIP
    >>> idata = model.fit(periods, seed=1, cores=2)  # doctest: +SKIP
    """

    name: ClassVar[str] = "nb_totals"
    default_model_config: ClassVar[dict[str, Any]] = {
        **COMMON_MODEL_CONFIG,
        "prior_k_mu": float(np.log(3.0)),  # docs/calibration.md: overdispersion k = 3
        "prior_k_sd": 1.0,
    }

    # ---- data -------------------------------------------------------------------------------
    def select(self, periods: pd.DataFrame) -> pd.DataFrame:
        """Rows analysed: the configured period (if a ``period`` column exists), exposure > 0."""
        require_columns(periods, REQUIRED, "periods data")
        frame = periods
        if "period" in frame.columns and self.model_config["period"] is not None:
            frame = frame.loc[frame["period"].astype(str) == str(self.model_config["period"])]
        return drop_zero_exposure(frame)

    def prepare(self, data: pd.DataFrame) -> PreparedData:
        """Turn a ``periods`` frame into model arrays (one row per subject)."""
        frame = self.select(data)
        cfg = self.model_config
        arms = arm_coding(frame["arm"], cfg["control_arm"], cfg["arms"])
        covs = CovariateDesign.from_frame(frame, cfg["covariates"])
        x_c, x_centre, n_imputed = baseline_covariate(frame, cfg["missing_baseline"])
        arrays = {
            "y": check_counts(frame),
            "log_exposure": np.log(as_float(frame["exposure_days"])),
            "arm_idx": arms.index(frame["arm"]),
            "x_baseline": x_c,
        }
        arrays["lgamma_y1"] = special.gammaln(arrays["y"] + 1.0)
        if covs.columns:
            arrays["X_cov"] = covs.matrix(frame)
        subject = subject_keys(frame).to_numpy()
        subject_data = xr.Dataset(
            {
                "arm": ("subject", frame["arm"].astype(str).to_numpy()),
                "x_baseline": ("subject", arrays["x_baseline"]),
                "exposure_days": ("subject", as_float(frame["exposure_days"])),
                "count": ("subject", arrays["y"]),
            },
            coords={"subject": subject},
        )
        if covs.columns:
            subject_data["X_cov"] = (("subject", "covariate"), arrays["X_cov"])
            subject_data = subject_data.assign_coords(covariate=list(covs.columns))
        return PreparedData(
            data=arrays,
            coords={"arm": list(arms.active), "covariate": list(covs.columns)},
            constants={
                "log_baseline_rate_centre": x_centre,
                "n_baseline_imputed": n_imputed,
                "control_arm": arms.control,
            },
            subject_data=subject_data,
        )

    # ---- model ------------------------------------------------------------------------------
    def _build(self, prepared: PreparedData) -> pm.Model:
        import pymc as pm
        import pytensor.tensor as pt

        cfg = self.model_config
        coords = {k: v for k, v in prepared.coords.items() if v}
        with pm.Model(coords=coords) as model:
            y = pm.Data("y", prepared.data["y"])
            log_exposure = pm.Data("log_exposure", prepared.data["log_exposure"])
            arm_idx = pm.Data("arm_idx", prepared.data["arm_idx"])
            x = pm.Data("x_baseline", prepared.data["x_baseline"])
            lgamma_y1 = pm.Data("lgamma_y1", prepared.data["lgamma_y1"])

            alpha = pm.Normal("alpha", cfg["prior_alpha_mu"], cfg["prior_alpha_sd"])
            log_rr = pm.Normal("log_rr", 0.0, cfg["prior_log_rr_sd"], dims="arm")
            b = pm.Normal("b", cfg["prior_b_mu"], cfg["prior_b_sd"])
            k = pm.LogNormal("k", cfg["prior_k_mu"], cfg["prior_k_sd"])

            effect = pt.concatenate([pt.zeros(1), log_rr])
            eta = log_exposure + alpha + effect[arm_idx] + b * x
            if "covariate" in coords:
                X = pm.Data("X_cov", prepared.data["X_cov"])
                beta = pm.Normal("beta", 0.0, cfg["prior_beta_sd"], dims="covariate")
                eta = eta + pt.dot(X, beta)
            # NB2 log-likelihood, written out so that each row costs one gammaln (PyMC's
            # NegativeBinomial costs three, and sampling 2.6x more CPU); the terms that
            # depend on k only are added once, not once per row:
            #   log p = lgamma(y+k) - lgamma(k) - lgamma(y+1) + k log k + y log mu
            #           - (k+y) log(k+mu)
            per_row = pt.gammaln(y + k) - lgamma_y1 + y * eta - (k + y) * pt.log(k + pt.exp(eta))
            n = y.shape[0]
            pm.Potential("nb_loglik", pt.sum(per_row) + n * (k * pt.log(k) - pt.gammaln(k)))
        return model

    # ---- post-processing --------------------------------------------------------------------
    def _linear_predictor(self, idata: xr.DataTree, subject_data: xr.Dataset) -> xr.DataArray:
        """Control-arm log daily rate per subject and draw (no arm effect, no exposure)."""
        post = idata["posterior"]
        eta = post["alpha"] + post["b"] * subject_data["x_baseline"]
        if "X_cov" in subject_data:
            eta = eta + xr.dot(subject_data["X_cov"], post["beta"], dim="covariate")
        return eta.transpose("chain", "draw", "subject")

    def subject_log_rate(self, idata: xr.DataTree) -> xr.DataArray:
        """Log expected cramps per day of each subject under control, per draw."""
        return self._linear_predictor(idata, idata["constant_data"].to_dataset())

    def pointwise_log_likelihood(self, idata: xr.DataTree, prepared: PreparedData) -> xr.DataArray:
        """NB log-probability of each subject's total, per draw (dims chain, draw, subject)."""
        sd = prepared.subject_data
        post = idata["posterior"]
        effect = arm_effect(post["log_rr"], prepared.data["arm_idx"], sd)
        log_mu = self._linear_predictor(idata, sd) + effect + np.log(sd["exposure_days"])
        loglik = nb_logpmf(sd["count"], np.exp(log_mu), post["k"])
        return loglik.transpose("chain", "draw", "subject").rename("y")

    def predictive_pmf(
        self, idata: xr.DataTree, prepared: PreparedData, max_count: int, n_draws: int = 200
    ) -> tuple[np.ndarray, np.ndarray]:
        """Each subject's treatment total and its posterior predictive NB pmf (0..max_count)."""
        sd = prepared.subject_data
        thinned = thinned_fit(idata, n_draws)
        post = thinned["posterior"]
        effect = arm_effect(post["log_rr"], prepared.data["arm_idx"], sd)
        log_mu = self._linear_predictor(thinned, sd) + effect + np.log(sd["exposure_days"])
        pmf = nb_pmf_table(np.exp(log_mu.values), post["k"].values[..., None], max_count)
        return prepared.data["y"], pmf


def nb_glm_twin(
    periods: pd.DataFrame,
    control_arm: str = "placebo",
    arms: list[str] | None = None,
    covariates: list[str] | None = None,
    period: str | None = "treatment",
    missing_baseline: str = "error",
) -> pd.DataFrame:
    """Frequentist twin of :class:`NBTotals`: NB2 maximum likelihood with statsmodels.

    Same rows, arm coding, centred run-in covariate and covariate design as the Bayesian model;
    ``offset = log(exposure_days)``; NB dispersion estimated jointly.

    Parameters
    ----------
    periods
        One row per subject, as for :class:`NBTotals`.
    control_arm, arms, covariates, period, missing_baseline
        As in :attr:`NBTotals.default_model_config`.

    Returns
    -------
    pandas.DataFrame
        One row per active arm: ``arm, log_rr, se, lower, upper`` (Wald 95 %), ``rate_ratio``.
        ``attrs`` hold ``k`` (= 1 / statsmodels' alpha), ``b``, ``converged``.
    """
    import statsmodels.api as sm

    model = NBTotals(
        {
            "control_arm": control_arm,
            "arms": arms,
            "covariates": list(covariates or []),
            "period": period,
            "missing_baseline": missing_baseline,
        }
    )
    prepared = model.prepare(periods)
    data = prepared.data
    active = prepared.coords["arm"]
    arm_cols = (data["arm_idx"][:, None] == np.arange(1, len(active) + 1)).astype(float)
    blocks = [np.ones((len(data["y"]), 1)), arm_cols, data["x_baseline"][:, None]]
    if "X_cov" in data:
        blocks.append(data["X_cov"])
    X = np.column_stack(blocks)
    result = sm.NegativeBinomial(
        data["y"], X, offset=data["log_exposure"], loglike_method="nb2"
    ).fit(disp=0, maxiter=200)
    params, bse = np.asarray(result.params), np.asarray(result.bse)
    sl = slice(1, 1 + len(active))
    out = pd.DataFrame(
        {
            "arm": active,
            "log_rr": params[sl],
            "se": bse[sl],
        }
    )
    out["lower"] = out["log_rr"] - 1.959963984540054 * out["se"]
    out["upper"] = out["log_rr"] + 1.959963984540054 * out["se"]
    out["rate_ratio"] = np.exp(out["log_rr"])
    out.attrs.update(
        k=float(1.0 / params[-1]),
        b=float(params[1 + len(active)]),
        converged=bool(result.mle_retvals["converged"]),
    )
    return out
