"""``frailty_weekly``: weekly treatment-period counts with a gamma subject frailty integrated out.

Model, subject ``i``, treatment week ``j`` (rows with ``exposure_days == 0`` dropped)::

    y_ij | u_i ~ Poisson(u_i * mu_ij),   u_i ~ Gamma(phi, phi)  (mean 1)
    mu_ij = exposure_ij * exp(alpha + log_rr[arm_i] + b * (x_i - mean x) + g * (week_ij - w0)
                              + beta' z_i + sum_g s_g[site_i])

Integrating ``u_i`` out exactly gives the negative multinomial likelihood of a subject's weekly
counts (with ``Y_i = sum_j y_ij`` and ``M_i = sum_j mu_ij``)::

    log p_i = lgamma(phi + Y_i) - lgamma(phi) - sum_j lgamma(y_ij + 1)
              + phi * log(phi / (phi + M_i)) + sum_j y_ij * log(mu_ij / (phi + M_i))

which is what the model's ``pm.Potential`` adds up. Because ``mu_ij = e_ij exp(eta_i + g t_j)``,
the rows enter only through per-subject sufficient statistics: ``M_i = exp(eta_i) *
sum_w E_iw exp(g t_w)`` with ``E`` the subject x week exposure matrix (0 for a week without
diary), ``Y_i``, ``sum lgamma(y + 1)`` per subject, ``sum y t`` and the constant
``sum y log e``. One gradient costs a small matrix-vector product and a few special functions
per subject instead of an ``exp`` and a scatter-add per row (about 2x faster sampling, exact).
All of these are ``pm.Data`` containers and no parameter has a subject dimension, so new data
may have any number of subjects and weeks without recompiling, and the posterior has a handful
of parameters instead of one per subject (docs/design.md: 10 s compile + 1.6 s sampling against
62-109 s for the lognormal, non-centred formulation). The per-row form is kept in NumPy for the
pointwise log-likelihood (:meth:`FrailtyWeekly.pointwise_log_likelihood`); a test checks that
the two agree.

``z_i`` are optional subject covariates and ``s_g`` optional random intercepts of groupings such
as the site (config ``random_intercepts``), both as in :mod:`crampstats.models.nb_totals`; they
are constant within subject and enter through the subject's ``eta_i``.

Priors as in :mod:`crampstats.models.nb_totals` (docs/calibration.md rows cited there), plus
``g ~ Normal(0, 0.1)`` per week (a 95 % prior range of +-0.2 log-rate per week, far beyond the
placebo response of ~ -29 % over 4 weeks) and ``phi ~ LogNormal(log 3, 1)`` (overdispersion
row: k = 3; a subject total is NB with size ``phi``).

The frequentist twin :func:`gee_twin` fits a GEE with negative binomial family and
exchangeable working correlation to the same weekly rows (random intercepts as fixed effects).
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
    ModelDataError,
    SubjectTerms,
    SubjectTermsModel,
    arm_coding,
    arm_effect,
    as_float,
    baseline_covariate,
    check_counts,
    drop_incomplete,
    drop_zero_exposure,
    nb_pmf_table,
    require_columns,
    subject_group_term,
    subject_keys,
    twin_coefficients,
    twin_columns,
)
from crampstats.numerics import segment_sum

if TYPE_CHECKING:
    import pymc as pm

REQUIRED = ("subject_id", "arm", "period", "week", "count", "exposure_days", "log_baseline_rate")


class FrailtyWeekly(SubjectTermsModel):
    """Weekly counts, Poisson with gamma subject frailty integrated out (negative multinomial).

    Parameters
    ----------
    model_config
        Overrides of :attr:`default_model_config`: ``control_arm``, ``arms``, ``covariates``
        and ``random_intercepts`` (subject-level columns present in the weekly frame; the
        workflow joins them from ``periods``), ``covariate_missing``, ``missing_baseline``,
        ``period`` (``"treatment"``),
        ``trend`` (include the linear week trend, default ``True``) and priors
        ``prior_alpha_mu``, ``prior_alpha_sd``, ``prior_log_rr_sd``, ``prior_b_mu``,
        ``prior_b_sd``, ``prior_beta_sd``, ``prior_sigma_group_sd``, ``prior_trend_sd``,
        ``prior_phi_mu`` (of log phi), ``prior_phi_sd``.
    sampler_config
        Overrides of the sampler defaults (see :class:`crampstats.engine.BayesModel`).
    """

    name: ClassVar[str] = "frailty_weekly"
    default_model_config: ClassVar[dict[str, Any]] = {
        **COMMON_MODEL_CONFIG,
        "trend": True,
        "prior_trend_sd": 0.1,
        "prior_phi_mu": float(np.log(3.0)),  # docs/calibration.md: overdispersion k = 3
        "prior_phi_sd": 1.0,
    }

    # ---- data -------------------------------------------------------------------------------
    def select(self, weekly: pd.DataFrame) -> pd.DataFrame:
        """Rows analysed: the configured period, exposure > 0, sorted by subject and week.

        With ``covariate_missing="drop"`` the rows of subjects missing a covariate or grouping
        value are left out as well.
        """
        return self._rows(weekly)[0]

    def _rows(self, weekly: pd.DataFrame) -> tuple[pd.DataFrame, int]:
        """Rows analysed and the number of subjects dropped for missing covariate values."""
        require_columns(weekly, REQUIRED, "weekly data")
        frame = weekly.loc[weekly["period"].astype(str) == str(self.model_config["period"])]
        frame, n_dropped = drop_incomplete(
            frame, self.subject_columns(), self.setting("covariate_missing")
        )
        frame = drop_zero_exposure(frame)
        frame = frame.assign(_subject=subject_keys(frame).to_numpy())
        frame = frame.sort_values(["_subject", "week"], kind="stable").reset_index(drop=True)
        return frame, n_dropped

    def prepare(self, data: pd.DataFrame) -> PreparedData:
        """Turn a ``weekly`` frame into model arrays (rows = subject x week)."""
        frame, n_dropped = self._rows(data)
        cfg = self.model_config
        arms = arm_coding(frame["arm"], cfg["control_arm"], cfg["arms"])
        subject_codes, subjects = pd.factorize(frame["_subject"], sort=False)
        first = frame.groupby("_subject", sort=False).head(1).reset_index(drop=True)
        _check_constant_within_subject(frame, ["arm", "log_baseline_rate", *self.subject_columns()])
        terms = SubjectTerms.from_frame(first, cfg, n_dropped)
        x_c, x_centre, n_imputed = baseline_covariate(first, cfg["missing_baseline"])
        week = as_float(frame["week"])
        weeks = np.unique(week)
        week_centre = float(weeks.mean()) if len(weeks) else 0.0
        y = check_counts(frame)
        n_sub = len(subjects)
        week_codes = np.searchsorted(weeks, week)
        exposure = as_float(frame["exposure_days"])
        exposure_week = np.zeros((n_sub, len(weeks)))
        np.add.at(exposure_week, (subject_codes, week_codes), exposure)
        arrays = {
            # per subject
            "y_subject": np.bincount(subject_codes, weights=y, minlength=n_sub).astype(np.int64),
            "lgamma_y1_subject": np.bincount(
                subject_codes, weights=special.gammaln(y + 1.0), minlength=n_sub
            ),
            "arm_idx": arms.index(first["arm"]),
            "x_baseline": x_c,
            # subject x week exposure (0 = no diary that week) and centred weeks
            "exposure_week": exposure_week,
            "week_t": weeks - week_centre,
            # scalars: sum of y * t (trend score) and sum of y * log exposure (a constant)
            "sum_y_t": np.asarray(float(np.sum(y * (week - week_centre)))),
            "sum_y_log_exposure": np.asarray(float(np.sum(y * np.log(exposure)))),
        }
        arrays.update(terms.arrays(first))
        rows = {
            "y": y,
            "log_exposure": np.log(exposure),
            "subject_idx": subject_codes.astype(np.int64),
            "t": week - week_centre,
        }
        subject_data = xr.Dataset(
            {
                "arm": ("subject", first["arm"].astype(str).to_numpy()),
                "x_baseline": ("subject", arrays["x_baseline"]),
                "count": ("subject", arrays["y_subject"]),
                "week_t": ("week", weeks - week_centre),
            },
            coords={"subject": np.asarray(subjects), "week": weeks},
        )
        subject_data = terms.add_to(subject_data, arrays)
        return PreparedData(
            data=arrays,
            coords={"arm": list(arms.active), **terms.coords()},
            constants={
                "log_baseline_rate_centre": x_centre,
                "n_baseline_imputed": n_imputed,
                "week_centre": week_centre,
                "control_arm": arms.control,
                **terms.constants(),
            },
            subject_data=subject_data,
            extra=rows,
        )

    # ---- model ------------------------------------------------------------------------------
    def _build(self, prepared: PreparedData) -> pm.Model:
        import pymc as pm
        import pytensor.tensor as pt

        cfg = self.model_config
        d = prepared.data
        coords = {k: v for k, v in prepared.coords.items() if v}
        with pm.Model(coords=coords) as model:
            y_subject = pm.Data("y_subject", d["y_subject"])
            lgamma_y1 = pm.Data("lgamma_y1_subject", d["lgamma_y1_subject"])
            arm_idx = pm.Data("arm_idx", d["arm_idx"])
            x = pm.Data("x_baseline", d["x_baseline"])
            exposure_week = pm.Data("exposure_week", d["exposure_week"])
            week_t = pm.Data("week_t", d["week_t"])
            sum_y_t = pm.Data("sum_y_t", d["sum_y_t"])
            sum_y_log_exposure = pm.Data("sum_y_log_exposure", d["sum_y_log_exposure"])

            alpha = pm.Normal("alpha", cfg["prior_alpha_mu"], cfg["prior_alpha_sd"])
            log_rr = pm.Normal("log_rr", 0.0, cfg["prior_log_rr_sd"], dims="arm")
            b = pm.Normal("b", cfg["prior_b_mu"], cfg["prior_b_sd"])
            phi = pm.LogNormal("phi", cfg["prior_phi_mu"], cfg["prior_phi_sd"])

            effect = pt.concatenate([pt.zeros(1), log_rr])
            eta = alpha + effect[arm_idx] + b * x
            if "covariate" in coords:
                X = pm.Data("X_cov", d["X_cov"])
                beta = pm.Normal("beta", 0.0, cfg["prior_beta_sd"], dims="covariate")
                eta = eta + pt.dot(X, beta)
            if "group_level" in coords:
                eta = eta + self.group_intercepts(prepared)
            # mu_ij = e_ij exp(eta_i + g t_j), so M_i = exp(eta_i) * sum_j e_ij exp(g t_j) and
            # sum_j y_ij log mu_ij = sum_j y_ij log e_ij + Y_i eta_i + g sum_j y_ij t_j:
            # the weekly rows enter only through these sufficient statistics.
            if cfg["trend"]:
                g = pm.Normal("trend", 0.0, cfg["prior_trend_sd"])
                m_subject = pt.exp(eta) * pt.dot(exposure_week, pt.exp(g * week_t))
                trend_term = g * sum_y_t
            else:
                m_subject = pt.exp(eta) * exposure_week.sum(axis=1)
                trend_term = 0.0
            # Negative multinomial, with
            # phi log(phi/(phi+M)) + Y log(1/(phi+M)) = phi log phi - (phi+Y) log(phi+M);
            # terms in phi alone are added once rather than once per subject.
            per_subject = (
                pt.gammaln(phi + y_subject)
                - lgamma_y1
                - (phi + y_subject) * pt.log(phi + m_subject)
                + y_subject * eta
            )
            n = y_subject.shape[0]
            pm.Potential(
                "negmultinomial_loglik",
                pt.sum(per_subject)
                + n * (phi * pt.log(phi) - pt.gammaln(phi))
                + trend_term
                + sum_y_log_exposure,
            )
        return model

    # ---- post-processing --------------------------------------------------------------------
    def _subject_eta(self, idata: xr.DataTree, subject_data: xr.Dataset) -> xr.DataArray:
        post = idata["posterior"]
        eta = post["alpha"] + post["b"] * subject_data["x_baseline"]
        if "X_cov" in subject_data:
            eta = eta + xr.dot(subject_data["X_cov"], post["beta"], dim="covariate")
        eta = eta + subject_group_term(idata, subject_data)
        return eta.transpose("chain", "draw", "subject")

    def subject_log_rate(self, idata: xr.DataTree) -> xr.DataArray:
        """Log expected cramps per day under control, averaged over the trial's treatment weeks.

        The week trend is averaged on the rate scale over the weeks present in the data, so
        that the weekly rate is the mean over the treatment period.
        """
        sd = idata["constant_data"].to_dataset()
        eta = self._subject_eta(idata, sd)
        post = idata["posterior"]
        if "trend" in post:
            eta = eta + np.log(np.exp(post["trend"] * sd["week_t"]).mean("week"))
        return eta

    def pointwise_log_likelihood(self, idata: xr.DataTree, prepared: PreparedData) -> xr.DataArray:
        """Negative multinomial log-likelihood of each subject's weekly counts, per draw."""
        d, rows, sd = prepared.data, prepared.extra, prepared.subject_data
        post = idata["posterior"]
        log_mu = rows_log_mu(self, idata, prepared)
        n_sub = len(d["y_subject"])
        # segment sums over the row axis, chain by chain to bound memory
        idx = rows["subject_idx"]
        m = np.stack([segment_sum(np.exp(lm), idx, n_sub) for lm in log_mu])
        ylogmu = np.stack([segment_sum(rows["y"] * lm, idx, n_sub) for lm in log_mu])
        phi = post["phi"].values[..., None]
        ys = d["y_subject"]
        value = (
            special.gammaln(phi + ys)
            - special.gammaln(phi)
            - d["lgamma_y1_subject"]
            - phi * np.log1p(m / phi)
            - ys * np.log(phi + m)
            + ylogmu
        )
        return xr.DataArray(
            value,
            dims=("chain", "draw", "subject"),
            coords={"chain": post["chain"], "draw": post["draw"], "subject": sd["subject"]},
            name="y",
        )

    def predictive_pmf(
        self, idata: xr.DataTree, prepared: PreparedData, max_count: int, n_draws: int = 200
    ) -> tuple[np.ndarray, np.ndarray]:
        """Weekly counts and their predictive pmf: marginally NB(mu_ij, phi) under the frailty."""
        thinned = thinned_fit(idata, n_draws)
        post = thinned["posterior"]
        mu = np.exp(rows_log_mu(self, thinned, prepared))
        pmf = nb_pmf_table(mu, post["phi"].values[..., None], max_count)
        return prepared.extra["y"], pmf


def rows_log_mu(model: FrailtyWeekly, idata: xr.DataTree, prepared: PreparedData) -> np.ndarray:
    """Log mean of every weekly row given the frailty is 1, per draw: ``(chain, draw, row)``."""
    d, rows, sd = prepared.data, prepared.extra, prepared.subject_data
    post = idata["posterior"]
    eta = model._subject_eta(idata, sd) + arm_effect(post["log_rr"], d["arm_idx"], sd)
    trend = post["trend"].values[..., None] if "trend" in post else 0.0
    return rows["log_exposure"] + eta.values[..., rows["subject_idx"]] + trend * rows["t"]


def _check_constant_within_subject(frame: pd.DataFrame, columns: list[str]) -> None:
    for col in columns:
        if col not in frame.columns:
            continue
        varying = frame.groupby("_subject", sort=False)[col].nunique(dropna=False) > 1
        if varying.any():
            raise ModelDataError(
                f"weekly data: column {col!r} changes within subject(s) "
                f"{list(varying.index[varying][:5])}; it must be constant per subject"
            )


def gee_twin(
    weekly: pd.DataFrame,
    control_arm: str = "placebo",
    arms: list[str] | None = None,
    covariates: list[str] | None = None,
    trend: bool = True,
    period: str = "treatment",
    missing_baseline: str = "error",
    random_intercepts: list[str] | None = None,
    covariate_missing: str = "error",
) -> pd.DataFrame:
    """Frequentist twin of :class:`FrailtyWeekly`: GEE, NB family, exchangeable correlation.

    Same rows and terms (arm, centred run-in log rate, centred week, covariates) with
    ``offset = log(exposure_days)`` and clusters = subjects; each random-intercept grouping
    (e.g. site) enters as fixed effects, one indicator per level after the first. The NB
    variance parameter is not estimated by GEE; it is set by moments in two steps: a Poisson
    GEE gives fitted means ``m``, then ``alpha = sum((y - m)^2 - m) / sum(m^2)`` (the weekly
    marginal variance under a mean-1 gamma frailty is ``m + m^2 / phi``, so ``alpha``
    estimates ``1 / phi``), and the NB GEE is refitted with it.

    Parameters
    ----------
    weekly
        Weekly rows, as for :class:`FrailtyWeekly`.
    control_arm, arms, covariates, trend, period, missing_baseline
        As in :attr:`FrailtyWeekly.default_model_config`.
    random_intercepts, covariate_missing
        As in :attr:`FrailtyWeekly.default_model_config`.

    Returns
    -------
    pandas.DataFrame
        One row per active arm: ``arm, log_rr, se`` (robust sandwich), ``lower, upper``
        (Wald 95 %), ``rate_ratio``. ``attrs`` hold ``phi`` (= 1 / alpha) and the exchangeable
        correlation ``rho``, ``beta`` and ``beta_se`` (covariate column -> estimate, robust
        standard error; empty without covariates).
    """
    model = FrailtyWeekly(
        {
            "control_arm": control_arm,
            "arms": arms,
            "covariates": list(covariates or []),
            "trend": trend,
            "period": period,
            "missing_baseline": missing_baseline,
            "random_intercepts": list(random_intercepts or []),
            "covariate_missing": covariate_missing,
        }
    )
    prepared = model.prepare(weekly)
    d, rows = prepared.data, prepared.extra
    active = prepared.coords["arm"]
    idx = rows["subject_idx"]
    arm_rows = d["arm_idx"][idx]
    blocks = [
        np.ones((len(idx), 1)),
        (arm_rows[:, None] == np.arange(1, len(active) + 1)).astype(float),
        d["x_baseline"][idx][:, None],
    ]
    if trend:
        blocks.append(rows["t"][:, None])
    extra, _ = twin_columns(
        d["X_cov"][idx] if "X_cov" in d else None,
        d["group_idx"][idx] if "group_idx" in d else None,
        prepared.coords,
    )
    X = np.column_stack(blocks + extra)

    def fit(family: Any) -> Any:
        return sm.GEE(
            rows["y"],
            X,
            groups=idx,
            family=family,
            cov_struct=sm.cov_struct.Exchangeable(),
            offset=rows["log_exposure"],
        ).fit()

    poisson = fit(sm.families.Poisson())
    m = np.asarray(poisson.fittedvalues)
    nb_alpha = max(float(np.sum((rows["y"] - m) ** 2 - m) / np.sum(m**2)), 1e-6)
    result = fit(sm.families.NegativeBinomial(alpha=nb_alpha))
    params, bse = np.asarray(result.params), np.asarray(result.bse)
    sl = slice(1, 1 + len(active))
    out = pd.DataFrame({"arm": active, "log_rr": params[sl], "se": bse[sl]})
    out["lower"] = out["log_rr"] - 1.959963984540054 * out["se"]
    out["upper"] = out["log_rr"] + 1.959963984540054 * out["se"]
    out["rate_ratio"] = np.exp(out["log_rr"])
    out.attrs.update(
        phi=1.0 / nb_alpha,
        rho=float(result.cov_struct.dep_params),
        **twin_coefficients(
            prepared.coords["covariate"], params, bse, 2 + len(active) + int(trend)
        ),
    )
    return out
