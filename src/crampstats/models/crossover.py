"""``crossover``: within-subject analysis of crossover trials and aggregated N-of-1 series.

One row per subject ``i`` and numbered treatment period ``p`` (the derived ``crossover``
frame; washout and run-in are not analysed, periods with ``exposure_days == 0`` are dropped)::

    y_ip ~ NegBin(mu_ip, k)                            (variance mu + mu^2 / k)
    log mu_ip = log exposure_ip + a_i + pi_p
                + (log_rr[t_ip] + d_i[t_ip]) * [t_ip is active]
                + gamma[t_i,p-1] * [t_i,p-1 is active]          (only with carryover=True)
    a_i ~ Normal(alpha + b * (x_i - mean x) + beta' z_i + s[site_i], sigma_a)
    d_i[a] ~ Normal(0, sigma_d[a])

``a_i`` is subject ``i``'s control log daily rate in the reference period (the first period in
the data), ``x_i`` the run-in log rate, ``z_i`` optional subject covariates, ``s`` optional
random intercepts of groupings such as the site (config ``random_intercepts``, non-centred,
``sigma_group ~ HalfNormal(0.5)``; between-subject terms, so they move ``a_i`` only), ``t_ip`` the
treatment taken; ``log_rr[a]`` is the population mean log rate ratio of active arm ``a``
versus the control arm (config ``control_arm``) and ``d_i[a]`` the patient's own deviation
from it, so ``exp(log_rr[a] + d_i[a])`` is patient ``i``'s rate ratio (Zucker et al. 1997,
2010: aggregated N-of-1 trials with hierarchical shrinkage of the individual effects;
docs/calibration.md, "N-of-1 and crossover"). Several active arms are allowed (one ``log_rr``,
``sigma_d`` and ``d_i`` per arm).

Period effect ``pi_p`` (config ``period_effects``): ``"categorical"`` (default; the standard
crossover analysis with one free effect per period after the first, all with the same
``Normal(0, prior_period_sd)`` prior) or ``"linear"`` (``pi_p = g * (p - p_1)``, one
parameter, for long N-of-1 series; the simulator's ``period_effect`` is of this form).

Carry-over (config ``carryover``, default ``False``): first-order additive carry-over,
``gamma[a]`` added to the log rate of every period that follows a period on active arm ``a``
whatever is taken in it (the simulator's ``carryover`` acts this way, with the subject's own
effect; the model's ``gamma`` is common to all subjects). Off by default because designs
with an adequate washout are planned on its absence, because estimating it costs precision
and because in a two-period AB/BA design it is not estimable within subjects at all (it is
aliased with the sequence-by-period interaction; Senn, *Cross-over Trials in Clinical
Research*, 2002, ch. 3). :meth:`Crossover.prepare` checks that every treatment, period and
carry-over term is estimable from within-subject contrasts and refuses the data otherwise
(:class:`~crampstats.models._common.ModelDataError` naming the aliased terms).

Why negative binomial rather than Poisson-lognormal
---------------------------------------------------
A period total is a sum of daily counts over a rate that drifts from week to week (the
simulator's AR(1) on the weekly log rate, ``within_subject`` in the design schema); a
lognormal period multiplier is the closest description, and the NB's gamma multiplier with
the same variance is practically indistinguishable from it at the overdispersion seen within
subjects (``k`` ~ 10-30: period-mean log variance 0.03-0.1). The NB integrates that
subject-period multiplier out exactly, whereas Poisson-lognormal needs one latent variable
per subject-period (3-7 times as many parameters as subjects, each weakly identified, the
funnel geometry that docs/design.md's measurements warn about). ``k`` here is *within-subject*
overdispersion, not the between-subject ``k = 3`` of a parallel trial's totals.

Parameterisation and sampler settings (docs/design.md: formulation matters more than sampler)
-----------------------------------------------------------------------------------------
Both subject-level terms are non-centred by default (``a = mean_a + sigma_a * a_raw``,
``d = sigma_d * d_raw``; config ``centred_intercepts``, ``centred_effects``):

- ``d_i``: a patient's effect rests on the contrast of a few periods (SE 0.25-0.4, as large
  as ``sigma_d``), and ``sigma_d`` is weakly identified, above all in a two-period crossover
  where only the prior and the difference between the variances of active and control
  periods separate it from the within-subject noise ``1 / k``: the funnel case. Centred,
  10 of 12 fits of the bundled crossover example and 6 of 12 of the N-of-1 example failed the
  convergence gate (R-hat up to 1.56, divergences).
- ``a_i``: each subject has tens to hundreds of cramps, but the run-in rate explains most
  of the between-subject spread (``sigma_a`` ~ 0.25), so the data pin ``a_i`` only about as
  tightly as the hierarchy does. Centred, fits of the examples had divergences in 14 of 16
  seeds (up to 70 in 4000 draws); non-centred, 2 of 16 (at most 3).

The remaining difficulty is the trade-off between ``sigma_d``, ``sigma_a`` and ``k`` (all
describe variance within subjects) and a funnel along ``log k``: near the Poisson limit
(large ``k``) counts of 100+ a period pin every subject's rates far more tightly than at
``k`` ~ 10. The divergences left are all in that tail. Measured on the bundled examples
(seeds 0-11 each) and on 12 simulated 20-subject AB/BA trials at ALS rates:

========================  ===============================================================
sampler (4 chains)        fits failing the default gate (R-hat 1.01, ESS 400, 0 divergences)
========================  ===============================================================
1000 draws, accept 0.8    3 of 16 examples (1-3 divergences, R-hat up to 1.015)
1000 draws, accept 0.9    3 of 24 examples (R-hat of sigma_d / sigma_a 1.011-1.015)
2000 draws, accept 0.9    0 of 24 examples; 3 of 12 simulated AB/BA (1-4 divergences)
2000 draws, accept 0.95   0 of 24 examples (R-hat <= 1.009, ESS >= 950); 0 of 12 simulated
========================  ===============================================================

The model's sampler defaults are therefore 2000 draws per chain and ``target_accept = 0.95``
(a few seconds per warm fit). A low-rank mass matrix adaptation (nutpie) did not help (same
ESS, 30 % slower).

Priors (docs/calibration.md rows cited; the shared ones as in :mod:`crampstats.models.nb_totals`)
---------------------------------------------------------------------------------------------
- ``alpha ~ Normal(log 0.9, 1)``, ``log_rr ~ Normal(0, 1)``, ``b ~ Normal(0, 1)``,
  ``beta ~ Normal(0, 1)``: as for ``nb_totals``.
- ``sigma_a ~ HalfNormal(1)``: between-subject SD of the log rate after the run-in
  adjustment; the calibrated gamma heterogeneity (k = 3) is an SD of about 0.55 before it.
- ``sigma_d ~ HalfNormal(0.5)``: heterogeneity of the treatment effect (docs/calibration.md, N-of-1:
  about 3 of 10 completers benefited from quinine, i.e. an SD of the order of the mean
  effect; not published as such). Median 0.34, 95 % below 1.0 (individual rate ratios
  spread over a factor e^2 either way would be extreme).
- ``pi_p ~ Normal(0, 0.5)`` per period (or per period step when linear): far wider than
  the placebo response (-29 % over 4 weeks, docs/calibration.md).
- ``gamma ~ Normal(0, 0.5)``: carry-over of at most the order of a treatment effect.
- ``k ~ LogNormal(log 10, 1)``: within-subject overdispersion is not published
  (docs/calibration.md gaps; the simulator's ``within_subject`` is marked uncertain); the
  between-subject total's k = 3 bounds it from below, so the prior is centred above it
  (95 % on 1.4-71).

Structure and compile cache
---------------------------
``a`` and ``d`` have a subject dimension, so the number of subjects is part of the compiled
model: :meth:`Crossover.structure_key` adds it to the key (data with another number of
subjects compile once more; data with the same number re-sample the cached model). The
compiled model's subject coordinate is a placeholder ``0..n-1``; :meth:`Crossover.fit`
relabels the posterior with the data's subject keys (``trial_id/subject_id``).

Outputs
-------
``log_rr`` (dim ``arm``) for the decision tables, :meth:`Crossover.patient_effects` (each
patient's rate ratio and P(own benefit), the latter only where the design identifies it,
:func:`own_effect_identified`, with its sensitivity to the ``sigma_d`` prior,
:func:`sigma_d_prior_sensitivity`), :meth:`Crossover.pointwise_log_likelihood` (per
subject, conditional on ``a_i`` and ``d_i``), :meth:`Crossover.moment_match_functions` (the
log density in the unconstrained space, for moment-matched LOO), :meth:`Crossover.subject_log_rate`,
:meth:`Crossover.predictive_pmf` (units = subject-periods). The frequentist twin
:func:`crossover_twin` fits the same fixed terms with subject fixed effects (statsmodels NB2).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

import arviz_stats  # noqa: F401  (registers the .azstats accessor used for PSIS)
import numpy as np
import pandas as pd
import statsmodels.api as sm
import xarray as xr
from scipy import optimize, special

from crampstats.engine import CountModel, PreparedData, thinned_fit
from crampstats.models._common import (
    COMMON_MODEL_CONFIG,
    ModelDataError,
    SubjectTerms,
    SubjectTermsModel,
    arm_coding,
    as_float,
    baseline_covariate,
    check_counts,
    drop_incomplete,
    drop_zero_exposure,
    nb_logpmf,
    nb_pmf_table,
    require_columns,
    subject_keys,
    twin_coefficients,
    twin_columns,
)

if TYPE_CHECKING:
    import pymc as pm

__all__ = [
    "Crossover",
    "crossover_twin",
    "own_effect_identified",
    "sigma_d_prior_sensitivity",
]

REQUIRED = ("subject_id", "period", "treatment", "count", "exposure_days", "log_baseline_rate")
PERIOD_EFFECTS = ("categorical", "linear")
#: Periods on an arm and on control needed for a patient's own effect to be identified.
MIN_PERIODS_IDENTIFIED = 2
#: Scale factors of the sigma_d prior in the per-patient sensitivity columns.
SIGMA_D_PRIOR_FACTORS = {"half": 0.5, "double": 2.0}
#: Largest Pareto k of importance weights whose reweighted estimates are reported.
PARETO_K_LIMIT = 0.7
_Z975 = 1.959963984540054


class Crossover(SubjectTermsModel):
    """Hierarchical NB model of crossover and aggregated N-of-1 trials (per subject-period).

    Parameters
    ----------
    model_config
        Overrides of :attr:`default_model_config`:

        ``control_arm`` (``"placebo"``), ``arms`` (all treatments, or ``None`` for those in the
        data), ``covariates`` and ``random_intercepts`` (subject-level columns of the frame,
        entering the mean of ``a_i``; the workflow joins them from ``periods``),
        ``covariate_missing``, ``missing_baseline`` (``"error"`` or ``"mean"``), ``carryover``
        (``False``),
        ``period_effects`` (``"categorical"`` or ``"linear"``), ``centred_intercepts``
        (``True``), ``centred_effects`` (``False``) and the priors ``prior_alpha_mu``,
        ``prior_alpha_sd``, ``prior_log_rr_sd``, ``prior_b_mu``, ``prior_b_sd``,
        ``prior_beta_sd``, ``prior_sigma_group_sd``, ``prior_sigma_a_sd``, ``prior_sigma_d_sd``,
        ``prior_period_sd``,
        ``prior_carryover_sd``, ``prior_k_mu`` (of log k), ``prior_k_sd``. The module
        docstring justifies each.
    sampler_config
        Overrides of the sampler defaults (see :class:`crampstats.engine.BayesModel`).

    Examples
    --------
    >>> model = Crossover({"control_arm": "placebo"})  # doctest: +SKIP
    >>> idata = model.fit(crossover_frame, seed=1, cores=2)  # doctest: +SKIP
    >>> model.patient_effects(idata)  # doctest: +SKIP
    """

    name: ClassVar[str] = "crossover"
    #: More draws and a higher acceptance target than the engine's defaults (module docstring).
    default_sampler_config: ClassVar[dict[str, Any]] = {
        **CountModel.default_sampler_config,
        "draws": 2000,
        "target_accept": 0.95,
    }
    default_model_config: ClassVar[dict[str, Any]] = {
        # `period` (which rows of `periods` to analyse) does not apply: every numbered period is
        **{key: value for key, value in COMMON_MODEL_CONFIG.items() if key != "period"},
        "carryover": False,
        "period_effects": "categorical",
        "centred_intercepts": False,
        "centred_effects": False,
        "prior_sigma_a_sd": 1.0,
        "prior_sigma_d_sd": 0.5,
        "prior_period_sd": 0.5,
        "prior_carryover_sd": 0.5,
        "prior_k_mu": float(np.log(10.0)),
        "prior_k_sd": 1.0,
    }

    def __init__(
        self,
        model_config: Mapping[str, Any] | None = None,
        sampler_config: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(model_config, sampler_config)
        if self.model_config["period_effects"] not in PERIOD_EFFECTS:
            raise ValueError(
                f"period_effects must be one of {PERIOD_EFFECTS}, "
                f"got {self.model_config['period_effects']!r}"
            )

    # ---- identity ---------------------------------------------------------------------------
    def structure_key(self, prepared: PreparedData) -> str:
        """Compile-cache key: model id, structural coordinates and the number of subjects.

        The subject intercepts and effects are parameters with a subject dimension, so a
        compiled model fits only data with the same number of subjects.
        """
        return f"{super().structure_key(prepared)}-n{prepared.n_subjects}"

    # ---- data -------------------------------------------------------------------------------
    def select(self, data: pd.DataFrame) -> pd.DataFrame:
        """Rows analysed: exposure > 0, sorted by subject and period, one row per subject-period.

        With ``covariate_missing="drop"`` the rows of subjects missing a covariate or grouping
        value are left out as well.
        """
        return self._rows(data)[0]

    def _rows(self, data: pd.DataFrame) -> tuple[pd.DataFrame, int]:
        """Rows analysed and the number of subjects dropped for missing covariate values."""
        columns = [*REQUIRED, *(["previous_treatment"] if self.model_config["carryover"] else [])]
        require_columns(data, columns, "crossover data")
        data, n_dropped = drop_incomplete(
            data, self.subject_columns(), self.setting("covariate_missing")
        )
        frame = drop_zero_exposure(data)
        if frame.empty:
            raise ModelDataError("crossover data: no period with exposure_days > 0")
        period = as_float(frame["period"])
        if np.any(~np.isfinite(period)) or np.any(period != np.round(period)):
            raise ModelDataError("crossover data: period must be an integer period number")
        if frame["treatment"].isna().any():
            raise ModelDataError("crossover data: treatment is missing in a treatment period")
        frame = frame.assign(_subject=subject_keys(frame).to_numpy(), _period=period.astype(int))
        dup = frame.duplicated(["_subject", "_period"])
        if dup.any():
            raise ModelDataError(
                "crossover data: more than one row for subject-period(s) "
                f"{list(frame.loc[dup, ['_subject', '_period']].itertuples(index=False))[:5]}"
            )
        frame = frame.sort_values(["_subject", "_period"], kind="stable")
        return frame.reset_index(drop=True), n_dropped

    def prepare(self, data: pd.DataFrame) -> PreparedData:
        """Turn a ``crossover`` frame into model arrays (rows = subject x period)."""
        cfg = self.model_config
        frame, n_dropped = self._rows(data)
        arms = arm_coding(frame["treatment"], cfg["control_arm"], cfg["arms"])
        codes, subjects = pd.factorize(frame["_subject"], sort=True)
        n_sub = len(subjects)
        first = frame.groupby("_subject", sort=True).head(1).reset_index(drop=True)
        _check_constant_within_subject(frame, ["log_baseline_rate", *self.subject_columns()])
        terms = SubjectTerms.from_frame(first, cfg, n_dropped)
        x_c, x_centre, n_imputed = baseline_covariate(first, cfg["missing_baseline"])
        y = check_counts(frame)
        arm_idx = arms.index(frame["treatment"])
        periods = np.unique(frame["_period"].to_numpy())
        period_number = frame["_period"].to_numpy()
        arrays: dict[str, np.ndarray] = {
            "y": y,
            "lgamma_y1": special.gammaln(y + 1.0),
            "log_exposure": np.log(as_float(frame["exposure_days"])),
            "subject_idx": codes.astype(np.int64),
            "arm_idx": arm_idx,
            "x_baseline": x_c,
        }
        if cfg["period_effects"] == "categorical":
            arrays["period_idx"] = np.searchsorted(periods, period_number).astype(np.int64)
            period_coord = [str(p) for p in periods[1:]]
        else:
            arrays["period_t"] = (period_number - periods[0]).astype(float)
            period_coord = []
        if cfg["carryover"]:
            prev = frame["previous_treatment"]
            known = prev.notna()
            carry = np.zeros(len(frame), dtype=np.int64)
            carry[known.to_numpy()] = arms.index(prev[known])
            arrays["carry_idx"] = carry
        arrays.update(terms.arrays(first))
        _check_within_subject_estimable(arrays, arms.active, period_coord, n_sub)

        # per-subject summaries for patient_effects and the absolute effects
        n_arms = len(arms.all)
        count = np.zeros((n_sub, n_arms))
        days = np.zeros((n_sub, n_arms))
        n_on = np.zeros((n_sub, n_arms), dtype=np.int64)
        np.add.at(count, (codes, arm_idx), y)
        np.add.at(days, (codes, arm_idx), as_float(frame["exposure_days"]))
        np.add.at(n_on, (codes, arm_idx), 1)
        with np.errstate(divide="ignore", invalid="ignore"):
            rate = count / days
            observed = rate[:, 1:] / rate[:, :1]
        observed = np.where(np.isfinite(observed), observed, np.nan)
        subject_data = xr.Dataset(
            {
                "subject_id": ("subject", first["subject_id"].astype(str).to_numpy()),
                "x_baseline": ("subject", x_c),
                "n_periods": ("subject", n_on.sum(axis=1)),
                "n_periods_arm": (("subject", "arm"), n_on[:, 1:]),
                "observed_ratio": (("subject", "arm"), observed),
                "count": ("subject", np.bincount(codes, weights=y, minlength=n_sub)),
            },
            coords={
                "subject": np.asarray(subjects, dtype=str),
                "arm": list(arms.active),
                "period_number": periods,
            },
        )
        if "trial_id" in first.columns:
            subject_data["trial_id"] = ("subject", first["trial_id"].astype(str).to_numpy())
        subject_data = terms.add_to(subject_data, arrays)
        coords = terms.coords()
        return PreparedData(
            data=arrays,
            coords={
                "arm": list(arms.active),
                "covariate": coords.pop("covariate"),
                "period": period_coord,
                **coords,
            },
            constants={
                "log_baseline_rate_centre": x_centre,
                "n_baseline_imputed": n_imputed,
                "control_arm": arms.control,
                "reference_period": int(periods[0]),
                **terms.constants(),
            },
            subject_data=subject_data,
        )

    # ---- model ------------------------------------------------------------------------------
    def _build(self, prepared: PreparedData) -> pm.Model:
        import pymc as pm
        import pytensor.tensor as pt

        cfg = self.model_config
        d = prepared.data
        n_sub = prepared.n_subjects
        coords: dict[str, Any] = {k: v for k, v in prepared.coords.items() if v}
        # placeholder labels: the compiled model is reused for other subjects (fit relabels)
        coords["subject"] = list(range(n_sub))
        with pm.Model(coords=coords) as model:
            y = pm.Data("y", d["y"])
            lgamma_y1 = pm.Data("lgamma_y1", d["lgamma_y1"])
            log_exposure = pm.Data("log_exposure", d["log_exposure"])
            subject_idx = pm.Data("subject_idx", d["subject_idx"])
            arm_idx = pm.Data("arm_idx", d["arm_idx"])
            x = pm.Data("x_baseline", d["x_baseline"])

            alpha = pm.Normal("alpha", cfg["prior_alpha_mu"], cfg["prior_alpha_sd"])
            b = pm.Normal("b", cfg["prior_b_mu"], cfg["prior_b_sd"])
            mean_a = alpha + b * x
            if "covariate" in coords:
                X = pm.Data("X_cov", d["X_cov"])
                beta = pm.Normal("beta", 0.0, cfg["prior_beta_sd"], dims="covariate")
                mean_a = mean_a + pt.dot(X, beta)
            if "group_level" in coords:
                mean_a = mean_a + self.group_intercepts(prepared)
            sigma_a = pm.HalfNormal("sigma_a", cfg["prior_sigma_a_sd"])
            if cfg["centred_intercepts"]:
                a = pm.Normal("a", mean_a, sigma_a, dims="subject")
            else:
                a_raw = pm.Normal("a_raw", 0.0, 1.0, dims="subject")
                a = pm.Deterministic("a", mean_a + sigma_a * a_raw, dims="subject")

            log_rr = pm.Normal("log_rr", 0.0, cfg["prior_log_rr_sd"], dims="arm")
            sigma_d = pm.HalfNormal("sigma_d", cfg["prior_sigma_d_sd"], dims="arm")
            if cfg["centred_effects"]:
                dev = pm.Normal("d", 0.0, sigma_d, dims=("subject", "arm"))
            else:
                d_raw = pm.Normal("d_raw", 0.0, 1.0, dims=("subject", "arm"))
                dev = pm.Deterministic("d", d_raw * sigma_d, dims=("subject", "arm"))
            # subject x treatment log rate ratio, control column 0
            effect = pt.concatenate([pt.zeros((n_sub, 1)), log_rr[None, :] + dev], axis=1)
            eta = log_exposure + a[subject_idx] + effect[subject_idx, arm_idx]

            if cfg["period_effects"] == "categorical":
                period_idx = pm.Data("period_idx", d["period_idx"])
                if "period" in coords:
                    pi = pm.Normal("period_effect", 0.0, cfg["prior_period_sd"], dims="period")
                    eta = eta + pt.concatenate([pt.zeros(1), pi])[period_idx]
                else:  # one period only: nothing to estimate (the container keeps data swappable)
                    eta = eta + 0.0 * period_idx
            else:
                period_t = pm.Data("period_t", d["period_t"])
                g = pm.Normal("period_trend", 0.0, cfg["prior_period_sd"])
                eta = eta + g * period_t
            if cfg["carryover"]:
                carry_idx = pm.Data("carry_idx", d["carry_idx"])
                gamma = pm.Normal("carryover", 0.0, cfg["prior_carryover_sd"], dims="arm")
                eta = eta + pt.concatenate([pt.zeros(1), gamma])[carry_idx]

            k = pm.LogNormal("k", cfg["prior_k_mu"], cfg["prior_k_sd"])
            # NB2 log pmf written out as in nb_totals (one gammaln per row; the k-only terms
            # once): lgamma(y+k) - lgamma(k) - lgamma(y+1) + k log k + y eta
            #        - (k+y) log(k + exp(eta))
            per_row = (
                pt.gammaln(y + k)
                - lgamma_y1
                + y * eta
                - (k + y) * pt.logaddexp(pt.log(k), eta)
            )
            n = y.shape[0]
            pm.Potential("nb_loglik", pt.sum(per_row) + n * (k * pt.log(k) - pt.gammaln(k)))
        return model

    # ---- fitting ----------------------------------------------------------------------------
    def fit(
        self,
        data: pd.DataFrame | PreparedData,
        seed: int,
        chains: int | None = None,
        cores: int | None = None,
        draws: int | None = None,
        tune: int | None = None,
        *,
        log_likelihood: bool = False,
        progress: bool = False,
    ) -> xr.DataTree:
        """Sample the posterior; the subject dimension is labelled with the data's subject keys.

        Parameters and return value as :meth:`crampstats.engine.BayesModel.fit`; the
        posterior's ``subject`` coordinate holds ``trial_id/subject_id`` (or ``subject_id``).
        """
        prepared = data if isinstance(data, PreparedData) else self.prepare(data)
        idata = super().fit(
            prepared, seed, chains, cores, draws, tune, log_likelihood=False, progress=progress
        )
        post = idata["posterior"].to_dataset()
        if "subject" in post.dims:
            attrs = post.attrs
            post = post.assign_coords(subject=prepared.subject_data["subject"].values)
            post.attrs = attrs
            idata["posterior"] = xr.DataTree(post)
        if log_likelihood:
            idata = self.add_log_likelihood(idata, prepared)
        return idata

    # ---- post-processing --------------------------------------------------------------------
    def _period_log_effects(self, post: xr.Dataset, periods: np.ndarray) -> np.ndarray:
        """Period effects of every analysed period, ``(chain, draw, len(periods))``."""
        n_chain, n_draw = post.sizes["chain"], post.sizes["draw"]
        if "period_trend" in post:
            g = post["period_trend"].transpose("chain", "draw").values[..., None]
            return g * (periods - periods[0])
        if "period_effect" in post:
            pi = post["period_effect"].transpose("chain", "draw", "period").values
            return np.concatenate([np.zeros((n_chain, n_draw, 1)), pi], axis=-1)
        return np.zeros((n_chain, n_draw, len(periods)))

    def _rows_log_mu(
        self, idata: xr.DataTree, prepared: PreparedData, rows: np.ndarray | None = None
    ) -> np.ndarray:
        """Log mean of every subject-period row given ``a_i`` and ``d_i``: (chain, draw, row).

        ``rows`` (indices) restricts the computation to those rows.
        """
        post = idata["posterior"]
        d = prepared.data
        if rows is not None:
            keys = ("subject_idx", "arm_idx", "log_exposure", "period_idx", "period_t", "carry_idx")
            d = {key: d[key][rows] for key in keys if key in d}
        a = post["a"].transpose("chain", "draw", "subject").values
        log_rr = post["log_rr"].transpose("chain", "draw", "arm").values
        dev = post["d"].transpose("chain", "draw", "subject", "arm").values
        effect = np.concatenate([np.zeros((*a.shape, 1)), log_rr[:, :, None, :] + dev], axis=-1)
        s, arm = d["subject_idx"], d["arm_idx"]
        log_mu = d["log_exposure"] + a[..., s] + effect[:, :, s, arm]
        periods = prepared.subject_data["period_number"].values
        if "period_idx" in d:
            log_mu = log_mu + self._period_log_effects(post, periods)[..., d["period_idx"]]
        else:
            log_mu = log_mu + post["period_trend"].values[..., None] * d["period_t"]
        if "carry_idx" in d:
            gamma = post["carryover"].transpose("chain", "draw", "arm").values
            full = np.concatenate([np.zeros((*gamma.shape[:2], 1)), gamma], axis=-1)
            log_mu = log_mu + full[..., d["carry_idx"]]
        return log_mu

    def subject_log_rate(self, idata: xr.DataTree) -> xr.DataArray:
        """Log expected cramps per day of each subject under control, per draw.

        ``a_i`` plus the period effects averaged on the rate scale over the periods analysed
        (equal weights), i.e. the control rate over the trial's treatment periods.
        """
        sd = idata["constant_data"].to_dataset()
        post = idata["posterior"]
        a = post["a"].transpose("chain", "draw", "subject").values
        pe = self._period_log_effects(post.to_dataset(), sd["period_number"].values)
        value = a + np.log(np.exp(pe).mean(axis=-1))[..., None]
        return xr.DataArray(
            value,
            dims=("chain", "draw", "subject"),
            coords={"chain": post["chain"], "draw": post["draw"], "subject": sd["subject"]},
        )

    def pointwise_log_likelihood(self, idata: xr.DataTree, prepared: PreparedData) -> xr.DataArray:
        """NB log-likelihood of each subject's period counts, summed per subject, per draw.

        Conditional on the subject's own ``a_i`` and ``d_i`` (they are parameters, not
        integrated out): PSIS-LOO over subjects then approximates leaving out a subject's
        periods while keeping their parameters' posterior, which is optimistic and makes
        Pareto k values high with few periods per subject; compare such LOO values only with
        other conditional ones.
        """
        post = idata["posterior"]
        d, sd = prepared.data, prepared.subject_data
        log_mu = self._rows_log_mu(idata, prepared)
        k = post["k"].transpose("chain", "draw").values[..., None]
        rows = nb_logpmf(d["y"], np.exp(log_mu), k)
        value = np.zeros((*rows.shape[:2], prepared.n_subjects))
        np.add.at(value.T, d["subject_idx"], rows.T)  # sum each subject's rows
        return xr.DataArray(
            value,
            dims=("chain", "draw", "subject"),
            coords={"chain": post["chain"], "draw": post["draw"], "subject": sd["subject"]},
            name="y",
        )

    def predictive_pmf(
        self, idata: xr.DataTree, prepared: PreparedData, max_count: int, n_draws: int = 200
    ) -> tuple[np.ndarray, np.ndarray]:
        """Subject-period counts and their posterior predictive NB pmf given ``a_i``, ``d_i``."""
        thinned = thinned_fit(idata, n_draws)
        post = thinned["posterior"]
        mu = np.exp(self._rows_log_mu(thinned, prepared))
        pmf = nb_pmf_table(mu, post["k"].transpose("chain", "draw").values[..., None], max_count)
        return prepared.data["y"], pmf

    # ---- moment matching of PSIS-LOO (arviz_stats.loo_moment_match) -----------------------
    def moment_match_functions(
        self, idata: xr.DataTree, prepared: PreparedData
    ) -> tuple[Any, Any, xr.DataArray] | None:
        """Return the inputs of :func:`arviz_stats.loo_moment_match` for a fit of this model.

        PSIS-LOO over subjects has high Pareto k here because each subject's periods inform
        parameters of their own (``a_i``, ``d_i``): leaving the subject out moves those far
        from their posterior. Moment matching (Paananen et al. 2021, Stat Comput 31:16) shifts
        and scales the draws in the unconstrained space towards each leave-one-out posterior;
        it needs the log posterior density there, which is written out below in NumPy (the
        model's priors, the same NB likelihood as :meth:`pointwise_log_likelihood`, and the
        Jacobians of the log transforms of ``sigma_a``, ``sigma_d`` and ``k``), so nothing is
        compiled or sampled. Random intercepts (``random_intercepts``) are not written out:
        ``None`` is returned for such fits and the caller keeps plain PSIS.

        Returns
        -------
        tuple or None
            ``(log_prob_upars, log_lik_i_upars, upars)``: the log posterior density of
            unconstrained draws ``(chain, draw, upar)``, the log-likelihood of subject ``i``
            at them, and the fit's draws in that space.
        """
        if "group_level" in prepared.coords:
            return None
        post = idata["posterior"].to_dataset()
        layout = self._unconstrained_layout(prepared)
        columns = []
        for name, size, transform in layout:
            value = post[name].transpose("chain", "draw", ...).values.reshape(
                post.sizes["chain"], post.sizes["draw"], size
            )
            columns.append(np.log(value) if transform == "log" else value)
        labels = [f"{name}[{j}]" for name, size, _ in layout for j in range(size)]
        upars = xr.DataArray(
            np.concatenate(columns, axis=-1),
            dims=("chain", "draw", "upar"),
            coords={"chain": post["chain"], "draw": post["draw"], "upar": labels},
        )
        subjects = prepared.subject_data["subject"].values
        n_sub = prepared.n_subjects

        def constrained(u: xr.DataArray) -> tuple[xr.DataTree, dict[str, np.ndarray]]:
            return self._from_unconstrained(u, layout, prepared, subjects)

        y = prepared.data["y"]
        subject_rows = [np.flatnonzero(prepared.data["subject_idx"] == i) for i in range(n_sub)]

        def row_loglik(tree: xr.DataTree, rows: np.ndarray | None) -> np.ndarray:
            # as pointwise_log_likelihood, on the rows asked for and summed over them
            log_mu = self._rows_log_mu(tree, prepared, rows)
            k = tree["posterior"]["k"].transpose("chain", "draw").values[..., None]
            return nb_logpmf(y if rows is None else y[rows], np.exp(log_mu), k).sum(axis=-1)

        def log_prob_upars(u: xr.DataArray) -> xr.DataArray:
            tree, values = constrained(u)
            out = row_loglik(tree, None) + self._log_prior_unconstrained(values, prepared)
            return xr.DataArray(out, dims=("chain", "draw"), coords=_sample_coords(u))

        def log_lik_i_upars(u: xr.DataArray, i: int) -> xr.DataArray:
            tree, _ = constrained(u)
            value = row_loglik(tree, subject_rows[int(i)])
            return xr.DataArray(value, dims=("chain", "draw"), coords=_sample_coords(u))

        return log_prob_upars, log_lik_i_upars, upars

    def _unconstrained_layout(self, prepared: PreparedData) -> list[tuple[str, int, str]]:
        """Free parameters as sampled: ``(name, size, "log" or "")``, in a fixed order."""
        cfg = self.model_config
        n_sub, n_arm = prepared.n_subjects, len(prepared.coords["arm"])
        layout = [("alpha", 1, ""), ("b", 1, "")]
        if prepared.coords.get("covariate"):
            layout.append(("beta", len(prepared.coords["covariate"]), ""))
        layout += [
            ("sigma_a", 1, "log"),
            ("a" if cfg["centred_intercepts"] else "a_raw", n_sub, ""),
            ("log_rr", n_arm, ""),
            ("sigma_d", n_arm, "log"),
            ("d" if cfg["centred_effects"] else "d_raw", n_sub * n_arm, ""),
        ]
        if cfg["period_effects"] == "categorical":
            if prepared.coords.get("period"):
                layout.append(("period_effect", len(prepared.coords["period"]), ""))
        else:
            layout.append(("period_trend", 1, ""))
        if cfg["carryover"]:
            layout.append(("carryover", n_arm, ""))
        layout.append(("k", 1, "log"))
        return layout

    def _from_unconstrained(
        self,
        upars: xr.DataArray,
        layout: list[tuple[str, int, str]],
        prepared: PreparedData,
        subjects: np.ndarray,
    ) -> tuple[xr.DataTree, dict[str, np.ndarray]]:
        """Constrained parameters (and ``a``, ``d``) of unconstrained draws, as a posterior."""
        u = upars.transpose("chain", "draw", "upar").values
        n_chain, n_draw = u.shape[:2]
        n_sub, n_arm = prepared.n_subjects, len(prepared.coords["arm"])
        values: dict[str, np.ndarray] = {}
        start = 0
        for name, size, _ in layout:
            values[name] = u[..., start : start + size]  # unconstrained, for the prior
            start += size
        d = prepared.data
        mean_a = values["alpha"] + values["b"] * d["x_baseline"]
        if "beta" in values:
            mean_a = mean_a + values["beta"] @ d["X_cov"].T
        sigma_a = np.exp(values["sigma_a"])
        sigma_d = np.exp(values["sigma_d"])
        if "a_raw" in values:
            a = mean_a + sigma_a * values["a_raw"]
        else:
            a = values["a"]
        dev_free = values["d_raw" if "d_raw" in values else "d"].reshape(
            n_chain, n_draw, n_sub, n_arm
        )
        dev = dev_free * sigma_d[:, :, None, :] if "d_raw" in values else dev_free
        dims = ("chain", "draw")
        post = xr.Dataset(
            {
                "a": ((*dims, "subject"), a),
                "log_rr": ((*dims, "arm"), values["log_rr"]),
                "d": ((*dims, "subject", "arm"), dev),
                "k": (dims, np.exp(values["k"][..., 0])),
            },
            coords={**_sample_coords(upars), "subject": subjects, "arm": prepared.coords["arm"]},
        )
        if "period_effect" in values:
            post["period_effect"] = ((*dims, "period"), values["period_effect"])
        if "period_trend" in values:
            post["period_trend"] = (dims, values["period_trend"][..., 0])
        if "carryover" in values:
            post["carryover"] = ((*dims, "arm"), values["carryover"])
        values["_mean_a"] = mean_a
        return xr.DataTree.from_dict({"posterior": post}), values

    def _log_prior_unconstrained(
        self, values: Mapping[str, np.ndarray], prepared: PreparedData
    ) -> np.ndarray:
        """Log prior density of unconstrained draws, with the log transforms' Jacobians."""
        cfg = self.model_config
        norm = _normal_logpdf
        lp = norm(values["alpha"], cfg["prior_alpha_mu"], cfg["prior_alpha_sd"]).sum(-1)
        lp += norm(values["b"], cfg["prior_b_mu"], cfg["prior_b_sd"]).sum(-1)
        if "beta" in values:
            lp += norm(values["beta"], 0.0, cfg["prior_beta_sd"]).sum(-1)
        # HalfNormal(s) of sigma = exp(u), times the Jacobian exp(u)
        for name, scale in (("sigma_a", "prior_sigma_a_sd"), ("sigma_d", "prior_sigma_d_sd")):
            u = values[name]
            lp += (np.log(2.0) + norm(np.exp(u), 0.0, cfg[scale]) + u).sum(-1)
        if "a_raw" in values:
            lp += norm(values["a_raw"], 0.0, 1.0).sum(-1)
        else:
            sigma_a = np.exp(values["sigma_a"])
            lp += norm(values["a"], values["_mean_a"], sigma_a).sum(-1)
        lp += norm(values["log_rr"], 0.0, cfg["prior_log_rr_sd"]).sum(-1)
        if "d_raw" in values:
            lp += norm(values["d_raw"], 0.0, 1.0).sum(-1)
        else:
            n_arm = values["sigma_d"].shape[-1]
            sigma_d = np.tile(np.exp(values["sigma_d"]), values["d"].shape[-1] // n_arm)
            lp += norm(values["d"], 0.0, sigma_d).sum(-1)
        for name in ("period_effect", "period_trend"):
            if name in values:
                lp += norm(values[name], 0.0, cfg["prior_period_sd"]).sum(-1)
        if "carryover" in values:
            lp += norm(values["carryover"], 0.0, cfg["prior_carryover_sd"]).sum(-1)
        # LogNormal(mu, sd) of k = exp(u), times the Jacobian: Normal(mu, sd) of u
        lp += norm(values["k"], cfg["prior_k_mu"], cfg["prior_k_sd"]).sum(-1)
        return lp

    def patient_effects(self, idata: xr.DataTree, level: float = 0.95) -> pd.DataFrame:
        """Each patient's rate ratio on each active arm they took, and P(their own benefit).

        P(own benefit) is reported only where the design identifies the patient's own effect
        (:func:`own_effect_identified`: at least :data:`MIN_PERIODS_IDENTIFIED` periods on the
        arm and on control) and is withheld (NaN, with the reason) elsewhere. Beside it, the
        same probability under the prior of ``sigma_d`` with its scale halved and doubled
        (:func:`sigma_d_prior_sensitivity`, importance reweighting of this fit).

        Parameters
        ----------
        idata
            A fit of this model (``posterior`` with ``log_rr``, ``d`` and ``sigma_d``, and
            ``constant_data``).
        level
            Mass of the equal-tailed interval.

        Returns
        -------
        pandas.DataFrame
            One row per subject and active arm the subject received: ``trial_id`` (when the
            data had it), ``subject_id, arm``, ``effect_median, effect_lower, effect_upper``
            (the patient's rate ratio ``exp(log_rr + d_i)``), ``p_own_benefit``
            (``P(log_rr + d_i < 0)``; NaN when not identified), ``p_own_benefit_sd_half`` and
            ``p_own_benefit_sd_double`` (the same under the ``sigma_d`` prior scale times 0.5
            and 2; NaN when not identified or when the reweighting's Pareto k exceeds 0.7),
            ``sensitivity_k`` (the larger Pareto k of the two reweightings of the arm),
            ``identified`` and ``reason`` (empty when identified), ``n_periods`` (periods
            analysed for the subject), ``n_periods_arm`` (of them on the arm),
            ``n_periods_control`` (on control) and ``observed_ratio`` (the crude ratio of the
            subject's rates on the arm and on control; NaN without control cramps or without
            both treatments).
        """
        if not 0 < level < 1:
            raise ValueError(f"level must be in (0, 1), got {level}")
        sd = idata["constant_data"].to_dataset()
        post = idata["posterior"]
        log_rr = post["log_rr"].transpose("chain", "draw", "arm").values
        dev = post["d"].transpose("chain", "draw", "subject", "arm").values
        own = (log_rr[:, :, None, :] + dev).reshape(-1, *dev.shape[2:])  # (sample, subject, arm)
        tail = (1.0 - level) / 2.0
        lower, median, upper = np.quantile(own, [tail, 0.5, 1.0 - tail], axis=0)
        benefit = own < 0
        p_benefit = benefit.mean(axis=0)
        arms = [str(a) for a in post["arm"].values]
        n_sub = dev.shape[2]
        # per arm: normalised PSIS log weights of the halved / doubled sigma_d prior scale
        p_alt, k_alt = {}, np.zeros(len(arms))
        for label, factor in SIGMA_D_PRIOR_FACTORS.items():
            p_alt[label] = np.empty_like(p_benefit)
            for j, arm in enumerate(arms):
                weights, k = sigma_d_prior_sensitivity(
                    post["sigma_d"].sel(arm=arm), self.model_config["prior_sigma_d_sd"], factor
                )
                p_alt[label][:, j] = weights @ benefit[:, :, j]
                k_alt[j] = max(k_alt[j], k)
        n_arm = sd["n_periods_arm"].transpose("subject", "arm").values
        n_control = sd["n_periods"].values - n_arm.sum(axis=1)
        control = str(self.model_config["control_arm"])
        identified, reason = own_effect_identified(
            n_arm, np.repeat(n_control[:, None], len(arms), axis=1), arms, control
        )
        reliable = np.tile(k_alt <= PARETO_K_LIMIT, n_sub)
        frame = pd.DataFrame(
            {
                "subject_id": np.repeat(sd["subject_id"].values.astype(str), len(arms)),
                "arm": np.tile(arms, n_sub),
                "effect_median": np.exp(median).ravel(),
                "effect_lower": np.exp(lower).ravel(),
                "effect_upper": np.exp(upper).ravel(),
                "p_own_benefit": np.where(identified, p_benefit, np.nan).ravel(),
                "p_own_benefit_sd_half": np.where(
                    identified.ravel() & reliable, p_alt["half"].ravel(), np.nan
                ),
                "p_own_benefit_sd_double": np.where(
                    identified.ravel() & reliable, p_alt["double"].ravel(), np.nan
                ),
                "sensitivity_k": np.tile(k_alt, n_sub),
                "identified": identified.ravel(),
                "reason": reason.ravel(),
                "n_periods": np.repeat(sd["n_periods"].values, len(arms)),
                "n_periods_arm": n_arm.ravel(),
                "n_periods_control": np.repeat(n_control, len(arms)),
                "observed_ratio": sd["observed_ratio"].transpose("subject", "arm").values.ravel(),
            }
        )
        if "trial_id" in sd:
            frame.insert(0, "trial_id", np.repeat(sd["trial_id"].values.astype(str), len(arms)))
        frame = frame[frame["n_periods_arm"] > 0].reset_index(drop=True)
        frame.attrs["level"] = level
        return frame


def _normal_logpdf(x: Any, mu: Any, sd: Any) -> Any:
    return -0.5 * ((x - mu) / sd) ** 2 - np.log(sd) - 0.5 * np.log(2.0 * np.pi)


def _sample_coords(upars: xr.DataArray) -> dict[str, Any]:
    return {"chain": upars["chain"].values, "draw": upars["draw"].values}


# --------------------------------------------------------------------------------------------
# per-patient effects: identification and prior sensitivity
# --------------------------------------------------------------------------------------------
def own_effect_identified(
    n_arm: np.ndarray, n_control: np.ndarray, arms: list[str], control: str
) -> tuple[np.ndarray, np.ndarray]:
    """Whether the data identify each patient's own effect on each arm, and why not.

    A patient's own log rate ratio ``log_rr + d_i`` is separated from the period-to-period
    variation within the patient only by replicated contrasts: with a single period on the arm
    or on control (an AB/BA crossover), ``d_i`` and that period's NB noise enter the likelihood
    only through their sum, so how much of the patient's observed contrast is their own effect
    depends on the prior of ``sigma_d`` against ``k`` (Senn 2016, Stat Med 35:966: a
    two-period crossover cannot estimate individual response; Araujo, Julious & Senn 2016, PLoS
    One 11:e0167167: repeated periods per treatment make it estimable). With at least
    :data:`MIN_PERIODS_IDENTIFIED` periods on each, the patient's own replicates measure the
    within-patient variation (N-of-1 series with repeated blocks).

    Parameters
    ----------
    n_arm, n_control
        Periods analysed on each active arm and on control, ``(subject, arm)``.
    arms, control
        Active arm names (columns) and the control arm's name, for the reasons.

    Returns
    -------
    identified : numpy.ndarray of bool
        ``(subject, arm)``.
    reason : numpy.ndarray of str
        ``(subject, arm)``; empty where identified.
    """
    n_arm = np.asarray(n_arm, dtype=int)
    n_control = np.asarray(n_control, dtype=int)
    identified = (n_arm >= MIN_PERIODS_IDENTIFIED) & (n_control >= MIN_PERIODS_IDENTIFIED)
    reason = np.full(n_arm.shape, "", dtype=object)
    for (i, j), ok in np.ndenumerate(identified):
        if not ok:
            reason[i, j] = (
                f"{n_arm[i, j]} period(s) on {arms[j]} and {n_control[i, j]} on {control}: "
                f"fewer than {MIN_PERIODS_IDENTIFIED} on each, so the patient's own effect "
                "cannot be separated from period-to-period variation within the patient and "
                "P(own benefit) would reflect the prior of sigma_d"
            )
    return identified, reason


def sigma_d_prior_sensitivity(
    sigma_d: xr.DataArray, prior_sd: float, factor: float
) -> tuple[np.ndarray, float]:
    """Reweight a fit from ``sigma_d ~ HalfNormal(s)`` to ``HalfNormal(c s)`` (importance weights).

    The joint prior factorises as ``p(sigma_d) p(d | sigma_d) p(rest)`` and the likelihood
    does not involve the prior, so the posterior under the new scale is this posterior times
    ``HN(sigma_d; c s) / HN(sigma_d; s)``, a function of ``sigma_d`` alone (in either
    parameterisation of ``d``)::

        log w = -log c + sigma_d^2 / (2 s^2) * (1 - 1 / c^2)

    The weights are Pareto-smoothed (PSIS, ArviZ; Vehtari et al. 2024, JMLR 25:72); their
    Pareto k says whether the reweighted estimate can be trusted (k <= 0.7). Halving the scale
    (``c < 1``) gives bounded weights; doubling it gives weights growing in ``sigma_d``, which
    are reliable only while the posterior's upper tail of ``sigma_d`` is light.

    Parameters
    ----------
    sigma_d
        Posterior draws of one arm's ``sigma_d``, dims ``(chain, draw)``.
    prior_sd
        The fit's prior scale ``s`` (``prior_sigma_d_sd``).
    factor
        ``c``.

    Returns
    -------
    weights : numpy.ndarray
        Normalised weights, flattened as ``(chain, draw)`` (sum 1).
    pareto_k : float
    """
    if prior_sd <= 0 or factor <= 0:
        raise ValueError(f"prior_sd and factor must be > 0, got {prior_sd}, {factor}")
    sigma = sigma_d.transpose("chain", "draw")
    log_w = -np.log(factor) + sigma**2 / (2.0 * prior_sd**2) * (1.0 - 1.0 / factor**2)
    # ArviZ's psislw takes log-likelihood-like values and smooths exp(-value) (the LOO
    # convention, ratios 1 / p(y_i | theta)), hence the minus sign
    smoothed, k = (-log_w).azstats.psislw(dim=["chain", "draw"])
    weights = np.exp(smoothed.transpose("chain", "draw").values.ravel())
    return weights / weights.sum(), float(k)


# --------------------------------------------------------------------------------------------
# data checks
# --------------------------------------------------------------------------------------------
def _check_constant_within_subject(frame: pd.DataFrame, columns: list[str]) -> None:
    for col in columns:
        if col not in frame.columns:
            continue
        varying = frame.groupby("_subject", sort=False)[col].nunique(dropna=False) > 1
        if varying.any():
            raise ModelDataError(
                f"crossover data: column {col!r} changes within subject(s) "
                f"{list(varying.index[varying][:5])}; it must be constant per subject"
            )


def _fixed_columns(
    arrays: Mapping[str, np.ndarray], active: tuple[str, ...] | list[str], period_coord: list[str]
) -> dict[str, np.ndarray]:
    """Return the fixed within-subject terms as columns (treatment, period, carry-over)."""
    cols: dict[str, np.ndarray] = {}
    for j, arm in enumerate(active, start=1):
        cols[f"treatment {arm}"] = (arrays["arm_idx"] == j).astype(float)
    if "period_idx" in arrays:
        for j, label in enumerate(period_coord, start=1):
            cols[f"period {label}"] = (arrays["period_idx"] == j).astype(float)
    else:
        cols["period trend"] = np.asarray(arrays["period_t"], dtype=float)
    if "carry_idx" in arrays:
        for j, arm in enumerate(active, start=1):
            cols[f"carry-over {arm}"] = (arrays["carry_idx"] == j).astype(float)
    return cols


def _check_within_subject_estimable(
    arrays: Mapping[str, np.ndarray],
    active: tuple[str, ...] | list[str],
    period_coord: list[str],
    n_sub: int,
) -> None:
    """Refuse data whose within-subject contrasts cannot separate the fixed terms.

    Each term is centred within subjects (what remains after subject intercepts); a term that
    is a linear combination of the ones before it is aliased. Terms absent from the data
    (an arm listed in the config but never taken) are left to their prior and not checked.
    """
    idx = arrays["subject_idx"]
    counts = np.bincount(idx, minlength=n_sub)
    kept: list[np.ndarray] = []
    aliased: list[str] = []
    rank = 0
    for name, col in _fixed_columns(arrays, active, period_coord).items():
        if not np.any(col):
            continue
        centred = col - (np.bincount(idx, weights=col, minlength=n_sub) / counts)[idx]
        trial = np.column_stack([*kept, centred])
        new_rank = np.linalg.matrix_rank(trial, tol=1e-8 * max(1.0, np.sqrt(len(col))))
        if new_rank > rank:
            kept.append(centred)
            rank = new_rank
        else:
            aliased.append(name)
    if aliased:
        raise ModelDataError(
            f"crossover data: {aliased} cannot be estimated from within-subject contrasts "
            "(aliased with the subject, treatment or period terms before them; e.g. carry-over "
            "in a two-period AB/BA design is aliased with the sequence-by-period interaction); "
            "set carryover=False, use period_effects='linear', or check the sequences"
        )


# --------------------------------------------------------------------------------------------
# frequentist twin
# --------------------------------------------------------------------------------------------
def crossover_twin(
    crossover_frame: pd.DataFrame,
    control_arm: str = "placebo",
    arms: list[str] | None = None,
    carryover: bool = False,
    period_effects: str = "categorical",
    covariates: list[str] | None = None,
    random_intercepts: list[str] | None = None,
    covariate_missing: str = "error",
) -> pd.DataFrame:
    """Frequentist twin of :class:`Crossover`: NB2 GLM with subject fixed effects (statsmodels).

    Same rows and fixed terms as the Bayesian model (treatment, period, optional carry-over),
    with one free intercept per subject instead of the hierarchical ``a_i`` and no random
    treatment deviations; ``offset = log(exposure_days)``. The NB dispersion is estimated by
    maximising the profile likelihood over ``log alpha`` (statsmodels ``GLM`` with the NB2
    family refitted by IRLS for each ``alpha``, as ``MASS::glm.nb`` does). Standard errors are
    cluster-robust with subjects as clusters (sandwich at the estimated ``alpha``, factor
    ``G / (G - 1)``), so that patients' differing effects widen them as ``sigma_d`` widens
    the Bayesian interval; the model-based ones (which assume one common effect) are in
    ``attrs["se_model"]``. The run-in rate, covariates and groupings are absorbed by the
    subject effects; the covariates' coefficients (the model's ``beta``, between-subject terms
    in the mean of ``a_i``) are estimated in a second stage, by ordinary least squares of the
    estimated subject intercepts on the centred run-in rate, the covariates and the groupings
    as fixed effects (subjects with at least one cramp; an all-zero subject's intercept is
    minus infinity).

    Parameters
    ----------
    crossover_frame
        The derived ``crossover`` frame (one row per subject x period).
    control_arm, arms, carryover, period_effects
        As in :attr:`Crossover.default_model_config`.
    covariates, random_intercepts, covariate_missing
        As in :attr:`Crossover.default_model_config`: the same subjects are analysed (with
        ``covariate_missing="drop"``), and the second stage estimates ``beta``.

    Returns
    -------
    pandas.DataFrame
        One row per active arm: ``arm, log_rr, se, lower, upper`` (Wald 95 %),
        ``rate_ratio``; NaN for an arm absent from the data. ``attrs`` hold ``k`` (= 1 / alpha;
        with few periods per subject the subject fixed effects bias it upwards, the
        incidental-parameter problem), ``converged``, ``n_subjects``, ``beta`` and ``beta_se``
        (second stage, covariate column -> estimate, OLS standard error; empty without
        covariates) and, with carry-over, ``carryover`` (arm -> estimate).

    Notes
    -----
    With one common effect both estimate the same log rate ratio. With heterogeneous patient
    effects they differ in estimand: the Bayesian ``log_rr`` is the mean of the patients' log
    rate ratios, the fixed-effects estimator pools rates and lands between that mean and
    ``log E[RR_i] = log_rr + sigma_d^2 / 2`` (Poisson weights pool on the rate scale). In
    60-subject N-of-1 simulations with ``sigma_d = 0.5`` the twin sat 0.05-0.07 above the
    Bayesian median, which tracked the mean of the simulated patient effects within 0.02.
    """
    model = Crossover(
        {
            "control_arm": control_arm,
            "arms": arms,
            "carryover": carryover,
            "period_effects": period_effects,
            # the twin ignores the run-in rate; never refuse data for a missing one
            "missing_baseline": "mean",
            "covariates": list(covariates or []),
            "random_intercepts": list(random_intercepts or []),
            "covariate_missing": covariate_missing,
        }
    )
    prepared = model.prepare(crossover_frame)
    d = prepared.data
    active = prepared.coords["arm"]
    n_sub = prepared.n_subjects
    fixed = _fixed_columns(d, active, prepared.coords["period"])
    present = {name: col for name, col in fixed.items() if np.any(col)}
    subject_dummies = (d["subject_idx"][:, None] == np.arange(n_sub)).astype(float)
    X = np.column_stack([subject_dummies, *present.values()])
    names = [f"subject {i}" for i in range(n_sub)] + list(present)

    def fit(log_alpha: float) -> Any:
        family = sm.families.NegativeBinomial(alpha=float(np.exp(log_alpha)))
        return sm.GLM(d["y"], X, family=family, offset=d["log_exposure"]).fit()

    # Profile likelihood over log alpha (as MASS::glm.nb): IRLS is robust for fixed alpha,
    # where joint Newton steps on (beta, alpha) overflow with many subject dummies.
    best = optimize.minimize_scalar(
        lambda la: -fit(la).llf, bounds=(-12.0, 3.0), method="bounded",
        options={"xatol": 1e-6},
    )
    family = sm.families.NegativeBinomial(alpha=float(np.exp(best.x)))
    glm = sm.GLM(d["y"], X, family=family, offset=d["log_exposure"])
    model_based = glm.fit()
    # Subjects as clusters, so that patients' differing effects enter the SE as they enter
    # the Bayesian model through sigma_d; small-sample factor G / (G - 1) only (the subject
    # fixed effects are nested in the clusters, so no (N - 1) / (N - K) factor).
    result = glm.fit(
        cov_type="cluster", cov_kwds={"groups": d["subject_idx"], "use_correction": False}
    )
    params = pd.Series(np.asarray(result.params), index=names)
    bse = pd.Series(np.asarray(result.bse) * np.sqrt(n_sub / (n_sub - 1.0)), index=names)
    bse_model = pd.Series(np.asarray(model_based.bse), index=names)
    out = pd.DataFrame(
        {
            "arm": active,
            "log_rr": [params.get(f"treatment {a}", np.nan) for a in active],
            "se": [bse.get(f"treatment {a}", np.nan) for a in active],
        }
    )
    out["lower"] = out["log_rr"] - _Z975 * out["se"]
    out["upper"] = out["log_rr"] + _Z975 * out["se"]
    out["rate_ratio"] = np.exp(out["log_rr"])
    out.attrs.update(
        k=float(np.exp(-best.x)),
        converged=bool(best.success and result.converged),
        se_model={a: float(bse_model.get(f"treatment {a}", np.nan)) for a in active},
        n_subjects=n_sub,
        **_second_stage(prepared, params.to_numpy()[:n_sub]),
    )
    if carryover:
        out.attrs["carryover"] = {a: float(params.get(f"carry-over {a}", np.nan)) for a in active}
    return out


def _second_stage(prepared: PreparedData, intercepts: np.ndarray) -> dict[str, dict[str, float]]:
    """Covariate coefficients from the twin's subject intercepts (OLS, subjects with cramps).

    The subject intercepts estimate ``a_i``, whose mean the Bayesian model writes as
    ``alpha + b x_i + beta' z_i + s[site_i]``; regressing them on those terms (groupings as
    fixed effects) estimates ``beta``.
    """
    d = prepared.data
    names = list(prepared.coords["covariate"])
    if not names:
        return {"beta": {}, "beta_se": {}}
    has_cramps = prepared.subject_data["count"].to_numpy() > 0
    extra, _ = twin_columns(d.get("X_cov"), d.get("group_idx"), prepared.coords)
    X = np.column_stack([np.ones(len(intercepts)), d["x_baseline"], *extra])
    ok = has_cramps & np.isfinite(intercepts)
    result = sm.OLS(intercepts[ok], X[ok]).fit()
    return twin_coefficients(names, np.asarray(result.params), np.asarray(result.bse), 2)
