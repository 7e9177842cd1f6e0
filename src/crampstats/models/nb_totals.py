"""``nb_totals``: the primary analysis of a parallel trial.

One row per subject. The cramp count over the treatment period is negative binomial with

    mean_i = exposure_days_i * exp(alpha + log_rr[arm_i] + b * (x_i - mean(x)) + beta' z_i
                                   + sum_g s_g[site_i])

where ``alpha`` is the control arm's log daily rate (at the trial's mean run-in rate),
``log_rr`` the log rate ratio of every other arm against control (0 for control),
``x_i = log_baseline_rate`` the run-in log rate, ``z_i`` optional covariates (numeric
ones standardised, categorical ones as indicators) and ``s_g`` optional random intercepts of
groupings such as the site (config ``random_intercepts``; ``s_g[l] = sigma_group[g] *
group_raw[l]``, non-centred, ``group_raw ~ Normal(0, 1)``). Variance is ``mean + mean^2 / k``.

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
- ``sigma_group ~ HalfNormal(0.5)`` per grouping (only with ``random_intercepts``): median
  0.34, 95 % below 0.98 on the log rate; docs/models.md, "Subject covariates and random
  intercepts".
- ``k ~ LogNormal(log 3, 1)``: "overdispersion" row, k = 3 (2.5-3.9 reported, 0.2-3.9 seen);
  95 % prior mass on 0.4-21.

The likelihood is a ``pm.Potential`` (the NB2 log pmf written out, see ``_build``): cheaper
than ``pm.NegativeBinomial`` and identical in value (tested); the pointwise log-likelihood for
LOO is computed after sampling by :meth:`NBTotals.pointwise_log_likelihood`.

The frequentist twin :func:`nb_glm_twin` fits the same terms by maximum likelihood
(statsmodels ``NegativeBinomial``, NB2, offset log exposure), the random intercepts as fixed
effects of each level.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import pandas as pd
import statsmodels.api as sm
import xarray as xr
from scipy import special

from crampstats.engine import PreparedData, thinned_fit
from crampstats.models._common import (
    COMMON_MODEL_CONFIG,
    SubjectTerms,
    SubjectTermsModel,
    arm_coding,
    arm_effect,
    as_float,
    baseline_covariate,
    check_counts,
    drop_incomplete,
    drop_zero_exposure,
    nb_logpmf,
    nb_pmf_table,
    require_columns,
    subject_group_term,
    subject_keys,
    twin_coefficients,
    twin_columns,
)

if TYPE_CHECKING:
    import pymc as pm

REQUIRED = ("subject_id", "arm", "count", "exposure_days", "log_baseline_rate")


class NBTotals(SubjectTermsModel):
    """Negative binomial model of treatment-period totals (primary, parallel designs).

    Parameters
    ----------
    model_config
        Overrides of :attr:`default_model_config`:

        ``control_arm`` (``"placebo"``), ``arms`` (all arms in table order, or ``None`` for
        the arms in the data; set it for power runs so that a replicate missing an arm keeps
        the structure), ``covariates`` (subject columns adjusted for, default none),
        ``random_intercepts`` (grouping columns such as ``site`` with a random intercept,
        default none), ``covariate_missing`` (``"error"``, ``"drop"`` or ``"indicator"``, see
        :data:`crampstats.models._common.COVARIATE_MISSING`),
        ``missing_baseline`` (``"error"`` or ``"mean"``, see
        :func:`crampstats.models._common.baseline_covariate`),
        ``period`` (rows of ``periods`` to analyse, ``"treatment"``) and the prior
        parameters ``prior_alpha_mu``, ``prior_alpha_sd``, ``prior_log_rr_sd``,
        ``prior_b_mu``, ``prior_b_sd``, ``prior_beta_sd``, ``prior_sigma_group_sd``,
        ``prior_k_mu`` (of log k), ``prior_k_sd``.
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
    #: Optional prior of the active arms' log rate ratios, outside :attr:`default_model_config`
    #: so that the default model keeps its config and id: ``log_rr_prior: exchangeable`` gives
    #: ``log_rr[a] = log_rr_mu + log_rr_tau * log_rr_z[a]`` with ``log_rr_mu ~ Normal(0,
    #: prior_log_rr_mu_sd)``, ``log_rr_tau ~ HalfNormal(prior_log_rr_tau_sd)``, ``log_rr_z ~
    #: Normal(0, 1)`` (non-centred, target_accept 0.99 unless set; the plan's ``exchangeable``
    #: strategy, docs/analysis-plan.md).
    optional_model_config: ClassVar[dict[str, Any]] = {
        "log_rr_prior": "independent",
        "prior_log_rr_mu_sd": 1.0,
        "prior_log_rr_tau_sd": 0.5,
    }

    def __init__(
        self,
        model_config: dict[str, Any] | None = None,
        sampler_config: dict[str, Any] | None = None,
    ) -> None:
        config = dict(model_config or {})
        optional = {k: config.pop(k) for k in list(config) if k in self.optional_model_config}
        super().__init__(config, sampler_config)
        prior = optional.get("log_rr_prior", "independent")
        if prior not in ("independent", "exchangeable"):
            raise ValueError(f"log_rr_prior must be independent or exchangeable, got {prior!r}")
        if prior == "exchangeable":
            self.model_config.update({**self.optional_model_config, **optional})
            if "target_accept" not in (sampler_config or {}):
                # small steps for the funnel of the between-arm SD (unless the user chose):
                # at 0.8 the example trial gave 8 divergences, at 0.95 a 5 x 60 simulated
                # trial 2, at 0.99 neither any (centred was worse: 22)
                self.sampler_config["target_accept"] = 0.99

    # ---- data -------------------------------------------------------------------------------
    def select(self, periods: pd.DataFrame) -> pd.DataFrame:
        """Rows analysed: the configured period (if a ``period`` column exists), exposure > 0.

        With ``covariate_missing="drop"`` subjects missing a covariate or grouping value are
        left out as well.
        """
        return self._rows(periods)[0]

    def _rows(self, periods: pd.DataFrame) -> tuple[pd.DataFrame, int]:
        """Rows analysed and the number of subjects dropped for missing covariate values."""
        require_columns(periods, REQUIRED, "periods data")
        frame = periods
        if "period" in frame.columns and self.model_config["period"] is not None:
            frame = frame.loc[frame["period"].astype(str) == str(self.model_config["period"])]
        frame, n_dropped = drop_incomplete(
            frame, self.subject_columns(), self.setting("covariate_missing")
        )
        return drop_zero_exposure(frame), n_dropped

    def prepare(self, data: pd.DataFrame) -> PreparedData:
        """Turn a ``periods`` frame into model arrays (one row per subject)."""
        frame, n_dropped = self._rows(data)
        cfg = self.model_config
        arms = arm_coding(frame["arm"], cfg["control_arm"], cfg["arms"])
        terms = SubjectTerms.from_frame(frame, cfg, n_dropped)
        x_c, x_centre, n_imputed = baseline_covariate(frame, cfg["missing_baseline"])
        arrays = {
            "y": check_counts(frame),
            "log_exposure": np.log(as_float(frame["exposure_days"])),
            "arm_idx": arms.index(frame["arm"]),
            "x_baseline": x_c,
        }
        arrays["lgamma_y1"] = special.gammaln(arrays["y"] + 1.0)
        arrays.update(terms.arrays(frame))
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
        subject_data = terms.add_to(subject_data, arrays)
        return PreparedData(
            data=arrays,
            coords={"arm": list(arms.active), **terms.coords()},
            constants={
                "log_baseline_rate_centre": x_centre,
                "n_baseline_imputed": n_imputed,
                "control_arm": arms.control,
                **terms.constants(),
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
            if cfg.get("log_rr_prior") == "exchangeable":
                mu = pm.Normal("log_rr_mu", 0.0, cfg["prior_log_rr_mu_sd"])
                tau = pm.HalfNormal("log_rr_tau", cfg["prior_log_rr_tau_sd"])
                z = pm.Normal("log_rr_z", 0.0, 1.0, dims="arm")
                log_rr = pm.Deterministic("log_rr", mu + tau * z, dims="arm")
            else:
                log_rr = pm.Normal("log_rr", 0.0, cfg["prior_log_rr_sd"], dims="arm")
            b = pm.Normal("b", cfg["prior_b_mu"], cfg["prior_b_sd"])
            k = pm.LogNormal("k", cfg["prior_k_mu"], cfg["prior_k_sd"])

            effect = pt.concatenate([pt.zeros(1), log_rr])
            eta = log_exposure + alpha + effect[arm_idx] + b * x
            if "covariate" in coords:
                X = pm.Data("X_cov", prepared.data["X_cov"])
                beta = pm.Normal("beta", 0.0, cfg["prior_beta_sd"], dims="covariate")
                eta = eta + pt.dot(X, beta)
            if "group_level" in coords:
                eta = eta + self.group_intercepts(prepared)
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
        eta = eta + subject_group_term(idata, subject_data)
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
    random_intercepts: list[str] | None = None,
    covariate_missing: str = "error",
) -> pd.DataFrame:
    """Frequentist twin of :class:`NBTotals`: NB2 maximum likelihood with statsmodels.

    Same rows, arm coding, centred run-in covariate and covariate design as the Bayesian model;
    ``offset = log(exposure_days)``; NB dispersion estimated jointly. Each random-intercept
    grouping (e.g. site) enters as fixed effects, one indicator per level after the first.

    Parameters
    ----------
    periods
        One row per subject, as for :class:`NBTotals`.
    control_arm, arms, covariates, period, missing_baseline
        As in :attr:`NBTotals.default_model_config`.
    random_intercepts, covariate_missing
        As in :attr:`NBTotals.default_model_config`.

    Returns
    -------
    pandas.DataFrame
        One row per active arm: ``arm, log_rr, se, lower, upper`` (Wald 95 %), ``rate_ratio``.
        ``attrs`` hold ``k`` (= 1 / statsmodels' alpha), ``b``, ``converged``, ``beta`` and
        ``beta_se`` (covariate column -> estimate, standard error; empty without covariates).
    """
    model = NBTotals(
        {
            "control_arm": control_arm,
            "arms": arms,
            "covariates": list(covariates or []),
            "period": period,
            "missing_baseline": missing_baseline,
            "random_intercepts": list(random_intercepts or []),
            "covariate_missing": covariate_missing,
        }
    )
    prepared = model.prepare(periods)
    data = prepared.data
    active = prepared.coords["arm"]
    arm_cols = (data["arm_idx"][:, None] == np.arange(1, len(active) + 1)).astype(float)
    blocks = [np.ones((len(data["y"]), 1)), arm_cols, data["x_baseline"][:, None]]
    extra, _ = twin_columns(data.get("X_cov"), data.get("group_idx"), prepared.coords)
    X = np.column_stack(blocks + extra)
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
        **twin_coefficients(prepared.coords["covariate"], params, bse, 2 + len(active)),
    )
    return out
