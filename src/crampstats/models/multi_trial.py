"""``multi_trial``: several parallel trials analysed together (one-stage IPD network meta-analysis).

One row per subject ``i`` of trial ``t`` (the ``periods`` frame of several trials, treatment
period, rows with ``exposure_days == 0`` dropped)::

    y_i ~ NegBin(mu_i, k_t)                                   (variance mu + mu^2 / k_t)
    log mu_i = log exposure_i + alpha_t + b_t * (x_i - mean_t x) + beta' z_i + s[site_i]
               + theta_{t,a_i}
    theta_{t,control} = 0
    theta_{t,a} = log_rr[a] + tau * (sqrt(rho) * u_t + sqrt(1 - rho) * z_{t,a})
    u_t, z_{t,a} ~ Normal(0, 1)                               (non-centred random effects)

for the active arms ``a`` present in trial ``t`` only. ``log_rr[a]`` is the pooled (mean) log
rate ratio of arm ``a`` versus the control arm over trials; that is what the decision tables
read. ``theta_{t,a}`` is trial ``t``'s own log rate ratio (posterior ``log_rr_trial``) and
``tau`` the between-trial SD of every log rate ratio. Trials may test different subsets of the
arms (a network), but every trial must have the control arm: relative effects are estimated
within trials against it, and an arm seen in only some trials is still estimated (directly
where it is, indirectly through the control arm and the other arms otherwise).

Modelling choices
-----------------
- **Trial baselines** ``alpha_t`` are independent nuisance parameters (``Normal(log 0.9, 1)``
  each), not drawn from a common distribution. This is the standard contrast-based model
  (Dias, Sutton, Ades & Welton 2013, Med Decis Making 33:607, NICE DSU TSD 2): effects are
  then identified from within-trial, randomised comparisons only, so differences in placebo
  rate between trials (populations, diaries, inclusion thresholds, placebo response) cannot
  leak into the treatment effects, which they can when baselines are exchangeable and trials
  test different arms. Every trial has tens of control subjects, so nothing is lost.
- **Run-in covariate**: ``x`` is centred *within* each trial and ``b_t`` is per trial
  (config ``b_per_trial``, default ``True``). Centring within trial makes ``alpha_t`` the
  control log rate at the trial's typical subject and uncorrelated with ``b_t``; with a
  shared ``b`` (``b_per_trial=False``) it also keeps ``b`` a within-trial association, free of
  between-trial (ecological) confounding. Stratifying nuisance terms by trial is the usual
  recommendation for one-stage IPD meta-analysis (Riley et al. 2020, Stat Med, "One-stage
  individual participant data meta-analysis models ...") and makes the model the one-stage
  analogue of the per-trial GLMs of the twin.
  Optional covariates ``z`` (config ``covariates``) enter with one shared ``beta``,
  standardised over all trials. Optional random intercepts ``s`` of groupings such as the
  site (config ``random_intercepts``, non-centred, ``sigma_group ~ HalfNormal(0.5)``) have
  their levels nested in trials (site ``A`` of two trials is two sites).
- **Overdispersion** ``k_t`` is per trial (config ``k_per_trial``, default ``True``): trials
  recruit different populations and docs/calibration.md reports ``k`` from 0.2 to 3.9 across
  studies; a shared ``k`` would give a trial with noisier counts too much weight. Each trial
  has 100+ subjects, so ``k_t`` is well identified (``LogNormal(log 3, 1)``, as nb_totals).
- **Multi-arm trials** (config ``re_correlation`` ``rho``, default 0.5): the random effects
  of two active arms of one trial have correlation ``rho``. With 0.5 every contrast, also
  active-versus-active within a trial, has between-trial variance ``tau^2``: the usual
  homogeneous-variance network model (Higgins & Whitehead 1996, Stat Med 15:2733; Lu & Ades
  2004, Stat Med 23:3105; TSD 2). ``rho = 0`` gives independent ``z_{t,a}``, under which the
  heterogeneity of an active-active contrast would be ``2 tau^2`` and would depend on which
  arm is the reference.
- **Heterogeneity prior** ``tau ~ HalfNormal(0.5)`` (config ``prior_tau_sd``). With few
  trials ``tau`` is barely identified by the data and its prior sets the width of the pooled
  intervals, so it must be weakly informative rather than vague (Röver et al. 2021, Res Synth
  Methods 12:448). Half-normal priors with scale 0.5 (and 1 as a conservative alternative)
  are the usual weakly informative choice for log ratio scales with few studies (Friede et al.
  2017, Biom J 59:658; Röver et al. 2021). The scale is checked against the empirical
  distribution of Turner et al. 2015 (Stat Med 34:984, Table IV) for pharmacological versus
  placebo comparisons of "signs / symptoms reflecting continuation / end of condition"
  (binary outcomes, log odds ratios): ``log tau^2 ~ Normal(-2.06, 1.51^2)``, median tau 0.36,
  90 % range 0.10-1.24. HalfNormal(0.5) has median 0.34 and 95th percentile 0.98, close to it,
  but unlike the log-normal it keeps mass near 0, where trials run under one protocol (the
  simulator's default, ``tau = 0``) belong. For count rate ratios this is an analogy, not a
  measurement; sensitivity analyses should try ``prior_tau_sd`` 0.25 and 1.
- ``log_rr ~ Normal(0, 1)``, ``b_t ~ Normal(0, 1)``, ``beta ~ Normal(0, 1)``: as nb_totals.

Parameterisation and sampler settings
-------------------------------------
The random effects are non-centred (``z ~ Normal(0, 1)``): with a few trials ``tau`` is
weakly identified and its posterior reaches down to ~0.01, where the centred form has a
funnel (centred, 15 of 16 fits of a 6-trial network at ``target_accept`` 0.8 and 0.9 had
divergences, up to 262). Written
plainly non-centred, ``theta = log_rr + tau * d``, the model still diverged in the upper tail
of ``tau`` (0.15-0.95): there each trial's contrast is pinned by its data (SE ~0.15 with 40 a
arm), so moving ``log_rr[a]`` forces every ``d`` of that arm to move by a ``tau``-dependent
amount, a correlation no diagonal mass matrix can follow (9 of 24 fits with divergences at
``target_accept = 0.9``; 1 of 24 at 0.95, for 20 % more gradient evaluations). The model
therefore samples the mean of each arm's trial effects, ``log_rr_trial_mean[a] = mean over
trials with arm a of theta_{t,a}`` (flat), together with the deviations, and recovers
``log_rr[a] = log_rr_trial_mean[a] - tau * mean_t(d_{t,a})`` deterministically, its
``Normal(0, 1)`` prior added as a potential. The map from ``(log_rr, z)`` is a shear with unit
Jacobian, so the model is unchanged; the likelihood now depends on the arm means and the
deviations separately. With ``target_accept = 0.9`` (the model's default), 0 of 24 fits
(6-trial network, true ``tau`` 0, 0.15 and 0.3, 2 data sets each, 4 seeds) had a divergence,
minimum bulk ESS 707 of 4000 draws; at 0.8 divergences remained in 13 of 24.

Representation of ``log_rr_trial``
----------------------------------
The posterior holds ``log_rr_trial`` with the single dim ``trial_arm``, one entry per
(trial, active arm) pair *present in the data*, labelled ``"<trial>/<arm>"``; pairs a trial
did not test are absent, not NaN, because :func:`crampstats.engine.diagnose` treats any NaN in
the posterior as a failed fit. :func:`trial_effects` returns the rectangular
``(chain, draw, trial, arm)`` array with NaN for absent pairs. Trials, arms and the pairs
present are the model structure (they enter the compile-cache key through
``PreparedData.coords``); subjects are data, so new trials' subjects re-sample without
recompiling.

Likelihood as in nb_totals: the NB2 log pmf written out in a ``pm.Potential`` (one
``gammaln`` per row), per-subject log-likelihood for LOO computed after sampling in NumPy
(:meth:`MultiTrial.pointwise_log_likelihood`; a test checks the two agree).

The frequentist twin :func:`multi_trial_twin` is the two-stage analysis: one statsmodels NB2
GLM per trial (:func:`crampstats.models.nb_totals.nb_glm_twin`), then inverse-variance pooling
of each arm's log rate ratios over the trials that have it, DerSimonian-Laird random effects
(DerSimonian & Laird 1986, Control Clin Trials 7:177) or fixed effect, or a fixed-effect
network estimate by generalised least squares over all arms jointly (``method=
"network_fixed"``, the closest counterpart of the one-stage model with ``tau -> 0``).
"""

from __future__ import annotations

import itertools
import json
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import numpy as np
import pandas as pd
import statsmodels.api as sm
import xarray as xr
from scipy import special, stats

from crampstats.engine import ATTR_PREFIX, CountModel, PreparedData, thinned_fit
from crampstats.models._common import (
    COMMON_MODEL_CONFIG,
    CovariateDesign,
    ModelDataError,
    SubjectTerms,
    SubjectTermsModel,
    arm_coding,
    as_float,
    baseline_covariate,
    check_counts,
    drop_incomplete,
    drop_zero_exposure,
    group_term,
    nb_logpmf,
    nb_pmf_table,
    require_columns,
    subject_keys,
    twin_columns,
)
from crampstats.models.nb_totals import NBTotals, nb_glm_twin

if TYPE_CHECKING:
    import pymc as pm

REQUIRED = ("trial_id", "subject_id", "arm", "count", "exposure_days", "log_baseline_rate")

_Z975 = 1.959963984540054


def cell_label(trial: str, arm: str) -> str:
    """Label of the (trial, active arm) pair in the ``trial_arm`` dim: ``"<trial>/<arm>"``."""
    return f"{trial}/{arm}"


class MultiTrial(SubjectTermsModel):
    """Several parallel trials pooled: trial baselines, shared effects with heterogeneity.

    Parameters
    ----------
    model_config
        Overrides of :attr:`default_model_config`:

        ``control_arm`` (``"placebo"``, must be in every trial), ``arms`` (all arms in table
        order, or ``None`` for the arms in the data), ``trials`` (trial ids in order, or
        ``None`` for the sorted ids in the data), ``covariates``, ``random_intercepts``,
        ``covariate_missing``, ``missing_baseline``,
        ``period`` (as :class:`~crampstats.models.nb_totals.NBTotals`), ``k_per_trial``
        (``True``), ``b_per_trial`` (``True``), ``re_correlation`` (0.5, correlation of the
        random effects of two arms of one trial) and priors ``prior_alpha_mu``,
        ``prior_alpha_sd``, ``prior_log_rr_sd``, ``prior_b_mu``, ``prior_b_sd``,
        ``prior_beta_sd``, ``prior_sigma_group_sd``, ``prior_k_mu``, ``prior_k_sd``,
        ``prior_tau_sd`` (module
        docstring gives the reasons for each).
    sampler_config
        Overrides of the sampler defaults (see :class:`crampstats.engine.BayesModel`).

    Examples
    --------
    >>> model = MultiTrial({"control_arm": "placebo"})  # doctest: +SKIP
    >>> idata = model.fit(periods, seed=1, cores=2)  # doctest: +SKIP
    >>> indirect_comparisons(idata)  # doctest: +SKIP
    """

    name: ClassVar[str] = "multi_trial"
    default_model_config: ClassVar[dict[str, Any]] = {
        **COMMON_MODEL_CONFIG,
        "trials": None,
        "k_per_trial": True,
        "b_per_trial": True,
        "re_correlation": 0.5,
        "prior_k_mu": float(np.log(3.0)),  # docs/calibration.md: overdispersion k = 3
        "prior_k_sd": 1.0,
        "prior_tau_sd": 0.5,  # Röver et al. 2021; Turner et al. 2015 (module docstring)
    }
    #: ``target_accept = 0.9``: the measurements in the module docstring.
    default_sampler_config: ClassVar[dict[str, Any]] = {
        **CountModel.default_sampler_config,
        "target_accept": 0.9,
    }

    def __init__(
        self,
        model_config: dict[str, Any] | None = None,
        sampler_config: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(model_config, sampler_config)
        rho = float(self.model_config["re_correlation"])
        if not 0.0 <= rho < 1.0:
            raise ValueError(f"re_correlation must be in [0, 1), got {rho}")

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
        """Turn a ``periods`` frame of several trials into model arrays (one row per subject).

        Raises
        ------
        ModelDataError
            If a required column is missing, a trial lacks the control arm, a trial or arm is
            not among those configured, no trial has an active arm, or counts / run-in rates
            are invalid.
        """
        frame, n_dropped = self._rows(data)
        cfg = self.model_config
        arms = arm_coding(frame["arm"], cfg["control_arm"], cfg["arms"])
        arm_idx = arms.index(frame["arm"])
        trials, trial_idx = _trial_coding(frame["trial_id"], cfg["trials"])
        present = _check_trials(frame, trials, trial_idx, arms.control)

        cells = [
            (t, a) for t in trials for a in arms.active if a in present.get(t, ())
        ]  # model order: trials, then arms in table order
        labels = [cell_label(t, a) for t, a in cells]
        if not cells:
            raise ModelDataError(
                f"no trial has an active arm besides the control arm {arms.control!r}; "
                "multi_trial needs at least one comparison"
            )
        if len(set(labels)) != len(labels):
            raise ModelDataError(f"trial/arm labels are ambiguous: {labels}")
        cell_lookup = {
            (trials.index(t), arms.all.index(a)): j + 1 for j, (t, a) in enumerate(cells)
        }
        cell_idx = np.array(
            [0 if a == 0 else cell_lookup[(t, a)] for t, a in zip(trial_idx, arm_idx, strict=True)],
            dtype=np.int64,
        )

        # run-in covariate centred within each trial (module docstring)
        x_c = np.zeros(len(frame))
        constants: dict[str, Any] = {"control_arm": arms.control}
        n_imputed = 0
        for t, trial in enumerate(trials):
            rows = np.flatnonzero(trial_idx == t)
            if not len(rows):
                continue
            values, centre, imputed = baseline_covariate(frame.iloc[rows], cfg["missing_baseline"])
            x_c[rows] = values
            constants[f"log_baseline_rate_centre[{trial}]"] = centre
            n_imputed += imputed
        constants["n_baseline_imputed"] = n_imputed

        terms = SubjectTerms.from_frame(frame, cfg, n_dropped)
        constants.update(terms.constants())
        y = check_counts(frame)
        arrays: dict[str, np.ndarray] = {
            "y": y,
            "log_exposure": np.log(as_float(frame["exposure_days"])),
            "trial_idx": trial_idx,
            "cell_idx": cell_idx,
            "x_baseline": x_c,
            "lgamma_y1": special.gammaln(y + 1.0),
            "n_per_trial": np.bincount(trial_idx, minlength=len(trials)).astype(float),
        }
        arrays.update(terms.arrays(frame))
        subject_data = xr.Dataset(
            {
                "arm": ("subject", frame["arm"].astype(str).to_numpy()),
                "trial_id": ("subject", frame["trial_id"].astype(str).to_numpy()),
                "x_baseline": ("subject", x_c),
                "exposure_days": ("subject", as_float(frame["exposure_days"])),
                "count": ("subject", y),
            },
            coords={"subject": subject_keys(frame).to_numpy()},
        )
        subject_data = terms.add_to(subject_data, arrays)
        return PreparedData(
            data=arrays,
            coords={
                "trial": list(trials),
                "arm": list(arms.active),
                "trial_arm": labels,
                **terms.coords(),
            },
            constants=constants,
            subject_data=subject_data,
        )

    # ---- model ------------------------------------------------------------------------------
    def _build(self, prepared: PreparedData) -> pm.Model:
        import pymc as pm
        import pytensor.tensor as pt

        cfg = self.model_config
        d = prepared.data
        coords = {k: v for k, v in prepared.coords.items() if v}
        cell_trial, cell_arm = _cell_indices(prepared.coords)
        # (arm x cell) averaging matrix; rows of arms without any trial stay 0
        mean_matrix = np.zeros((len(prepared.coords["arm"]), len(cell_arm)))
        mean_matrix[cell_arm, np.arange(len(cell_arm))] = 1.0
        mean_matrix /= np.maximum(mean_matrix.sum(axis=1, keepdims=True), 1.0)
        rho = float(cfg["re_correlation"])
        with pm.Model(coords=coords) as model:
            y = pm.Data("y", d["y"])
            log_exposure = pm.Data("log_exposure", d["log_exposure"])
            trial_idx = pm.Data("trial_idx", d["trial_idx"])
            cell_idx = pm.Data("cell_idx", d["cell_idx"])
            x = pm.Data("x_baseline", d["x_baseline"])
            lgamma_y1 = pm.Data("lgamma_y1", d["lgamma_y1"])
            n_per_trial = pm.Data("n_per_trial", d["n_per_trial"])

            alpha = pm.Normal("alpha", cfg["prior_alpha_mu"], cfg["prior_alpha_sd"], dims="trial")
            tau = pm.HalfNormal("tau", cfg["prior_tau_sd"])
            # Non-centred random effects, then shifted so that the likelihood sees the arm
            # means separately from the deviations ("Parameterisation" in the module docstring).
            z_cell = pm.Normal("z_trial_arm", 0.0, 1.0, dims="trial_arm")
            deviation = np.sqrt(1.0 - rho) * z_cell
            if rho > 0:
                z_trial = pm.Normal("z_trial", 0.0, 1.0, dims="trial")
                deviation = deviation + np.sqrt(rho) * z_trial[cell_trial]
            arm_mean = pt.dot(mean_matrix, deviation)  # per arm, over its trials
            # mean over trials of each arm's trial effects: flat here, its prior comes through
            # log_rr below (the map to (log_rr, z) is a shear with unit Jacobian)
            trial_mean = pm.Flat("log_rr_trial_mean", dims="arm")
            log_rr = pm.Deterministic("log_rr", trial_mean - tau * arm_mean, dims="arm")
            pm.Potential(
                "log_rr_prior",
                pm.logp(pm.Normal.dist(0.0, cfg["prior_log_rr_sd"]), log_rr).sum(),
            )
            theta = pm.Deterministic(
                "log_rr_trial",
                trial_mean[cell_arm] + tau * (deviation - arm_mean[cell_arm]),
                dims="trial_arm",
            )
            if cfg["b_per_trial"]:
                b = pm.Normal("b", cfg["prior_b_mu"], cfg["prior_b_sd"], dims="trial")[trial_idx]
            else:
                b = pm.Normal("b", cfg["prior_b_mu"], cfg["prior_b_sd"])
            if cfg["k_per_trial"]:
                k_trial = pm.LogNormal("k", cfg["prior_k_mu"], cfg["prior_k_sd"], dims="trial")
                k = k_trial[trial_idx]
                # terms in k only, once per trial rather than once per row
                k_terms = pt.dot(n_per_trial, k_trial * pt.log(k_trial) - pt.gammaln(k_trial))
            else:
                k = pm.LogNormal("k", cfg["prior_k_mu"], cfg["prior_k_sd"])
                k_terms = y.shape[0] * (k * pt.log(k) - pt.gammaln(k))

            effect = pt.concatenate([pt.zeros(1), theta])
            eta = log_exposure + alpha[trial_idx] + b * x + effect[cell_idx]
            if "covariate" in coords:
                X = pm.Data("X_cov", d["X_cov"])
                beta = pm.Normal("beta", 0.0, cfg["prior_beta_sd"], dims="covariate")
                eta = eta + pt.dot(X, beta)
            if "group_level" in coords:
                eta = eta + self.group_intercepts(prepared)
            # NB2 log pmf written out (see nb_totals):
            #   lgamma(y+k) - lgamma(k) - lgamma(y+1) + k log k + y log mu - (k+y) log(k+mu)
            per_row = pt.gammaln(y + k) - lgamma_y1 + y * eta - (k + y) * pt.log(k + pt.exp(eta))
            pm.Potential("nb_loglik", pt.sum(per_row) + k_terms)
        return model

    # ---- post-processing --------------------------------------------------------------------
    def _control_eta(
        self,
        post: xr.Dataset,
        trial_pos: np.ndarray,
        x: np.ndarray,
        X: np.ndarray | None,
        group_idx: np.ndarray | None = None,
    ) -> np.ndarray:
        """Control-arm log daily rate per draw and subject, ``(chain, draw, subject)``."""
        alpha = post["alpha"].transpose("chain", "draw", "trial").values
        b = post["b"].transpose("chain", "draw", ...).values
        b_rows = b[..., trial_pos] if b.ndim == 3 else b[..., None]
        eta = alpha[..., trial_pos] + b_rows * x
        if X is not None and X.shape[1]:
            beta = post["beta"].transpose("chain", "draw", "covariate").values
            eta = eta + beta @ X.T
        if group_idx is not None:
            eta = eta + group_term(post, group_idx)
        return eta

    def _log_mu(self, post: xr.Dataset, prepared: PreparedData) -> np.ndarray:
        d = prepared.data
        eta = self._control_eta(
            post, d["trial_idx"], d["x_baseline"], d.get("X_cov"), d.get("group_idx")
        )
        theta = post["log_rr_trial"].transpose("chain", "draw", "trial_arm").values
        effect = np.concatenate([np.zeros((*theta.shape[:2], 1)), theta], axis=-1)
        return d["log_exposure"] + eta + effect[..., d["cell_idx"]]

    @staticmethod
    def _k_rows(post: xr.Dataset, trial_idx: np.ndarray) -> np.ndarray:
        k = post["k"].transpose("chain", "draw", ...).values
        return k[..., trial_idx] if k.ndim == 3 else k[..., None]

    def subject_log_rate(self, idata: xr.DataTree) -> xr.DataArray:
        """Log expected cramps per day of each subject under control, in the subject's own trial.

        ``alpha_t + b_t * x_i (+ beta' z_i + s[site_i])`` with ``t`` the subject's trial, per
        draw.
        """
        sd = idata["constant_data"].to_dataset()
        post = idata["posterior"].to_dataset()
        trial_pos = pd.Index([str(t) for t in post["trial"].values]).get_indexer(
            sd["trial_id"].values.astype(str)
        )
        if np.any(trial_pos < 0):
            raise ModelDataError("constant_data names trials that are not in the posterior")
        X = sd["X_cov"].values if "X_cov" in sd else None
        groups = sd["group_idx"].transpose("subject", "group").values if "group_idx" in sd else None
        eta = self._control_eta(post, trial_pos, sd["x_baseline"].values, X, groups)
        return xr.DataArray(
            eta,
            dims=("chain", "draw", "subject"),
            coords={"chain": post["chain"], "draw": post["draw"], "subject": sd["subject"]},
        )

    def pointwise_log_likelihood(self, idata: xr.DataTree, prepared: PreparedData) -> xr.DataArray:
        """NB log-probability of each subject's treatment total, per draw."""
        post = idata["posterior"].to_dataset()
        d = prepared.data
        mu = np.exp(self._log_mu(post, prepared))
        value = nb_logpmf(d["y"], mu, self._k_rows(post, d["trial_idx"]))
        return xr.DataArray(
            value,
            dims=("chain", "draw", "subject"),
            coords={
                "chain": post["chain"],
                "draw": post["draw"],
                "subject": prepared.subject_data["subject"],
            },
            name="y",
        )

    def predictive_pmf(
        self, idata: xr.DataTree, prepared: PreparedData, max_count: int, n_draws: int = 200
    ) -> tuple[np.ndarray, np.ndarray]:
        """Each subject's treatment total and its posterior predictive NB pmf (0..max_count)."""
        post = thinned_fit(idata, n_draws)["posterior"].to_dataset()
        mu = np.exp(self._log_mu(post, prepared))
        k = np.broadcast_to(self._k_rows(post, prepared.data["trial_idx"]), mu.shape)
        return prepared.data["y"], nb_pmf_table(mu, k, max_count)


# --------------------------------------------------------------------------------------------
# Data checks
# --------------------------------------------------------------------------------------------
def _trial_coding(trial_ids: pd.Series, order: list[str] | None) -> tuple[list[str], np.ndarray]:
    """Trial labels in model order and each row's trial code."""
    labels = trial_ids.astype(str)
    present = sorted(set(labels))
    trials = [str(t) for t in order] if order is not None else present
    unknown = sorted(set(present) - set(trials))
    if unknown:
        raise ModelDataError(
            f"trial(s) {unknown} are not among the model's trials {trials}; "
            "list every trial in the model config `trials` or refit"
        )
    lookup = {t: i for i, t in enumerate(trials)}
    return trials, labels.map(lookup).to_numpy(dtype=np.int64)


def _check_trials(
    frame: pd.DataFrame, trials: list[str], trial_idx: np.ndarray, control: str
) -> dict[str, set[str]]:
    """Arms present in each trial; refuse a trial without the control arm."""
    arms = frame["arm"].astype(str).to_numpy()
    present = {trials[t]: set(arms[trial_idx == t]) for t in np.unique(trial_idx)}
    lacking = [t for t, a in present.items() if control not in a]
    if lacking:
        detail = "; ".join(f"trial {t!r} has arms {sorted(present[t])}" for t in lacking)
        raise ModelDataError(
            f"every trial must include the control arm {control!r} (effects are estimated "
            f"against it within trials): {detail}. Drop the trial(s) or set `control_arm`."
        )
    return present


def _cell_indices(coords: dict[str, list[str]]) -> tuple[np.ndarray, np.ndarray]:
    """Trial and arm position (in ``coords['trial']``, ``coords['arm']``) of every cell."""
    lookup = {
        cell_label(t, a): (i, j)
        for i, t in enumerate(coords["trial"])
        for j, a in enumerate(coords["arm"])
    }
    pos = np.array([lookup[label] for label in coords["trial_arm"]], dtype=np.int64)
    return pos[:, 0], pos[:, 1]


# --------------------------------------------------------------------------------------------
# Summaries of a fit
# --------------------------------------------------------------------------------------------
def _posterior(idata: xr.DataTree | xr.Dataset) -> xr.Dataset:
    if isinstance(idata, xr.DataTree):
        return idata["posterior"].to_dataset()
    return idata


def trial_effects(idata: xr.DataTree | xr.Dataset) -> xr.DataArray:
    """Trial-specific log rate ratios as a rectangular array, NaN where a trial lacks an arm.

    Parameters
    ----------
    idata
        A :class:`MultiTrial` fit (or its posterior dataset).

    Returns
    -------
    xarray.DataArray
        Dims ``(chain, draw, trial, arm)`` from the posterior ``log_rr_trial``.
    """
    post = _posterior(idata)
    trials = [str(t) for t in post["trial"].values]
    arms = [str(a) for a in post["arm"].values]
    theta = post["log_rr_trial"].transpose("chain", "draw", "trial_arm")
    cell_trial, cell_arm = _cell_indices(
        {"trial": trials, "arm": arms, "trial_arm": [str(c) for c in theta["trial_arm"].values]}
    )
    out = np.full((post.sizes["chain"], post.sizes["draw"], len(trials), len(arms)), np.nan)
    out[:, :, cell_trial, cell_arm] = theta.values
    return xr.DataArray(
        out,
        dims=("chain", "draw", "trial", "arm"),
        coords={"chain": post["chain"], "draw": post["draw"], "trial": trials, "arm": arms},
        name="log_rr_trial",
    )


def indirect_comparisons(idata: xr.DataTree | xr.Dataset, level: float = 0.95) -> pd.DataFrame:
    """Every pair of active arms compared through the pooled effects (network estimates).

    ``log_rr[first] - log_rr[second]`` draw by draw: the comparison combines direct evidence
    (trials with both arms) and indirect evidence through the control arm (consistency
    assumed, as in any contrast-based network model).

    Parameters
    ----------
    idata
        A :class:`MultiTrial` fit (or its posterior dataset).
    level
        Probability mass of the equal-tailed interval.

    Returns
    -------
    pandas.DataFrame
        One row per unordered pair (in arm order): ``first, second, rr_median, lower, upper``
        (rate ratio first / second), ``p_first_better`` (``P(rate ratio < 1)``: fewer cramps on
        the first arm) and ``direct`` (whether some trial randomised to both arms).
    """
    post = _posterior(idata)
    log_rr = post["log_rr"].transpose("chain", "draw", "arm")
    arms = [str(a) for a in log_rr["arm"].values]
    values = log_rr.values.reshape(-1, len(arms))
    together: set[frozenset[str]] = set()
    if "log_rr_trial" in post:
        effects = trial_effects(post).isel(chain=0, draw=0)
        has = effects.notnull().values  # (trial, arm)
        for row in has:
            arms_in = [a for a, h in zip(arms, row, strict=True) if h]
            together.update(frozenset(p) for p in itertools.combinations(arms_in, 2))
    tail = (1.0 - level) / 2.0
    rows = []
    for i, j in itertools.combinations(range(len(arms)), 2):
        diff = values[:, i] - values[:, j]
        q = np.quantile(diff, [0.5, tail, 1.0 - tail])
        rows.append(
            {
                "first": arms[i],
                "second": arms[j],
                "rr_median": float(np.exp(q[0])),
                "lower": float(np.exp(q[1])),
                "upper": float(np.exp(q[2])),
                "p_first_better": float((diff < 0).mean()),
                "direct": frozenset((arms[i], arms[j])) in together,
            }
        )
    out = pd.DataFrame(
        rows, columns=["first", "second", "rr_median", "lower", "upper", "p_first_better", "direct"]
    )
    out.attrs.update(level=level)
    return out


def predictive_log_rr(idata: xr.DataTree, seed: int = 0) -> xr.DataArray:
    """Log rate ratio of every active arm in a *new* trial (posterior predictive).

    ``log_rr[a] + tau * (sqrt(rho) u + sqrt(1 - rho) z_a)`` with fresh standard normal ``u``
    (one per draw) and ``z_a`` (one per draw and arm): what the next trial is expected to see,
    wider than the pooled mean ``log_rr`` by the between-trial heterogeneity.

    Parameters
    ----------
    idata
        A :class:`MultiTrial` fit (``rho`` is read from its stored model config).
    seed
        Seed of the normal draws.

    Returns
    -------
    xarray.DataArray
        Dims ``(chain, draw, arm)``, named ``log_rr_predictive``.
    """
    post = idata["posterior"]
    config = json.loads(post.attrs.get(f"{ATTR_PREFIX}model_config", "{}"))
    rho = float(config.get("re_correlation", MultiTrial.default_model_config["re_correlation"]))
    log_rr = post["log_rr"].transpose("chain", "draw", "arm")
    rng = np.random.default_rng(seed)
    n_chain, n_draw, n_arm = log_rr.shape
    u = rng.standard_normal((n_chain, n_draw, 1))
    z = rng.standard_normal((n_chain, n_draw, n_arm))
    tau = post["tau"].values[..., None]
    values = log_rr.values + tau * (np.sqrt(rho) * u + np.sqrt(1.0 - rho) * z)
    return xr.DataArray(values, dims=log_rr.dims, coords=log_rr.coords, name="log_rr_predictive")


# --------------------------------------------------------------------------------------------
# Frequentist twin
# --------------------------------------------------------------------------------------------
def inverse_variance_pool(estimates: np.ndarray, se: np.ndarray) -> dict[str, float]:
    """Fixed-effect and DerSimonian-Laird random-effects pooling of one set of estimates.

    Parameters
    ----------
    estimates, se
        Per-trial estimates and their standard errors.

    Returns
    -------
    dict
        ``fixed, se_fixed, random, se_random, tau`` (DL, NaN with one trial), ``q``
        (Cochran's Q), ``k_trials``.
    """
    y = np.asarray(estimates, dtype=float)
    v = np.asarray(se, dtype=float) ** 2
    w = 1.0 / v
    fixed = float(np.sum(w * y) / np.sum(w))
    q = float(np.sum(w * (y - fixed) ** 2))
    n = len(y)
    if n > 1:
        c = float(np.sum(w) - np.sum(w**2) / np.sum(w))
        tau2 = max(0.0, (q - (n - 1)) / c)
        tau = float(np.sqrt(tau2))
    else:
        tau2, tau = 0.0, float("nan")  # not estimable from one trial
    w_re = 1.0 / (v + tau2)
    return {
        "fixed": fixed,
        "se_fixed": float(np.sqrt(1.0 / np.sum(w))),
        "random": float(np.sum(w_re * y) / np.sum(w_re)),
        "se_random": float(np.sqrt(1.0 / np.sum(w_re))),
        "tau": tau,
        "q": q,
        "k_trials": n,
    }


def hartung_knapp(
    estimates: np.ndarray, se: np.ndarray, tau2: float, level: float = 0.95, modified: bool = False
) -> dict[str, float]:
    """Random-effects pooled estimate with the Hartung-Knapp(-Sidik-Jonkman) interval.

    With weights ``w_i = 1 / (se_i^2 + tau2)``, ``mu = sum w_i y_i / sum w_i`` and ::

        q = sum w_i (y_i - mu)^2 / (k - 1),     var_HK = q / sum w_i,
        mu +- t_{k-1, (1+level)/2} sqrt(var_HK)

    (Hartung & Knapp 2001, Stat Med 20:3875; Sidik & Jonkman 2002, Stat Med 21:3153). The
    t quantile and the rescaled variance keep the coverage near nominal with few trials, where
    the Wald interval of DerSimonian-Laird is too narrow (IntHout et al. 2014, BMC Med Res
    Methodol 14:25). ``modified=True`` uses ``max(1, q)`` (Röver et al. 2015, BMC Med Res
    Methodol 15:99), never narrower than the Wald interval's variance ``1 / sum w_i``. It equals
    the intercept of a weighted least-squares regression of ``y`` on 1 with weights ``w`` (its
    residual variance is ``q``), which is how the reference values in tests/references/ were
    computed with R's ``lm``.

    Parameters
    ----------
    estimates, se
        Per-trial estimates and standard errors (``k >= 2``).
    tau2
        Between-trial variance (e.g. DerSimonian-Laird's, :func:`inverse_variance_pool`).
    level
        Mass of the interval.
    modified
        Use ``max(1, q)``.

    Returns
    -------
    dict
        ``estimate, se, lower, upper, q, df``; NaN interval with one trial.
    """
    y = np.asarray(estimates, dtype=float)
    w = 1.0 / (np.asarray(se, dtype=float) ** 2 + float(tau2))
    mu = float(np.sum(w * y) / np.sum(w))
    k = len(y)
    if k < 2:
        nan = float("nan")
        return {"estimate": mu, "se": nan, "lower": nan, "upper": nan, "q": nan, "df": 0.0}
    q = float(np.sum(w * (y - mu) ** 2) / (k - 1))
    if modified:
        q = max(1.0, q)
    se_hk = float(np.sqrt(q / np.sum(w)))
    t = float(stats.t.ppf(0.5 + level / 2.0, k - 1))
    return {
        "estimate": mu,
        "se": se_hk,
        "lower": mu - t * se_hk,
        "upper": mu + t * se_hk,
        "q": q,
        "df": float(k - 1),
    }


def prediction_interval(
    estimate: float, se: float, tau2: float, k: int, level: float = 0.95
) -> tuple[float, float]:
    """Interval for the effect in a new trial: ``mu +- t_{k-2} sqrt(tau2 + se^2)``.

    Higgins, Thompson & Spiegelhalter 2009 (J R Stat Soc A 172:137); needs ``k >= 3`` trials
    (NaN otherwise).
    """
    if k < 3:
        return float("nan"), float("nan")
    half = float(stats.t.ppf(0.5 + level / 2.0, k - 2)) * float(np.sqrt(tau2 + se**2))
    return estimate - half, estimate + half


def trial_nb_glm(
    periods: pd.DataFrame,
    control_arm: str = "placebo",
    covariates: list[str] | None = None,
    period: str | None = "treatment",
    missing_baseline: str = "error",
    random_intercepts: list[str] | None = None,
    covariate_missing: str = "error",
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """One trial's NB2 GLM as :func:`~crampstats.models.nb_totals.nb_glm_twin`, with covariance.

    The same rows, design and statsmodels fit as ``nb_glm_twin`` (a test checks that estimates
    and standard errors agree), but returning the covariance of the arm coefficients, which
    the network pooling needs: the log rate ratios of two arms of one trial share its control
    group and are correlated.

    Parameters
    ----------
    periods
        One trial's subjects.
    control_arm, covariates, period, missing_baseline, random_intercepts, covariate_missing
        As for ``nb_glm_twin``.

    Returns
    -------
    arms : list of str
        Active arms of the trial.
    log_rr : numpy.ndarray
        Their log rate ratios.
    cov : numpy.ndarray
        Their covariance matrix.
    """
    model = NBTotals(
        {
            "control_arm": control_arm,
            "covariates": list(covariates or []),
            "period": period,
            "missing_baseline": missing_baseline,
            "random_intercepts": list(random_intercepts or []),
            "covariate_missing": covariate_missing,
        }
    )
    prepared = model.prepare(periods)
    data = prepared.data
    active = list(prepared.coords["arm"])
    arm_cols = (data["arm_idx"][:, None] == np.arange(1, len(active) + 1)).astype(float)
    blocks = [np.ones((len(data["y"]), 1)), arm_cols, data["x_baseline"][:, None]]
    blocks += twin_columns(data.get("X_cov"), data.get("group_idx"), prepared.coords)[0]
    result = sm.NegativeBinomial(
        data["y"], np.column_stack(blocks), offset=data["log_exposure"], loglike_method="nb2"
    ).fit(disp=0, maxiter=200)
    sl = slice(1, 1 + len(active))
    return active, np.asarray(result.params)[sl], np.asarray(result.cov_params())[sl, sl]


def network_fixed_effect(
    estimates: list[tuple[list[str], np.ndarray, np.ndarray]], arms: list[str]
) -> tuple[np.ndarray, np.ndarray]:
    """Two-stage fixed-effect network meta-analysis by generalised least squares.

    Each trial contributes its vector of log rate ratios against control ``y_t`` with
    covariance ``V_t``; with ``X_t`` selecting the trial's arms among ``arms``, the pooled
    effects are ``(sum X_t' V_t^-1 X_t)^-1 sum X_t' V_t^-1 y_t`` with that inverse as their
    covariance (the two-stage counterpart of the one-stage model with ``tau = 0``).

    Parameters
    ----------
    estimates
        Per trial: ``(arms, log_rr, cov)`` as returned by :func:`trial_nb_glm`.
    arms
        Arms to estimate; each must occur in some trial.

    Returns
    -------
    log_rr, cov : numpy.ndarray
        Pooled log rate ratios (in the order of ``arms``) and their covariance.
    """
    index = {a: i for i, a in enumerate(arms)}
    info = np.zeros((len(arms), len(arms)))
    score = np.zeros(len(arms))
    for trial_arms, y, cov in estimates:
        X = np.zeros((len(trial_arms), len(arms)))
        X[np.arange(len(trial_arms)), [index[a] for a in trial_arms]] = 1.0
        w = np.linalg.inv(cov)
        info += X.T @ w @ X
        score += X.T @ w @ y
    pooled_cov = np.linalg.inv(info)
    return pooled_cov @ score, pooled_cov


def multi_trial_twin(
    periods: pd.DataFrame,
    control_arm: str = "placebo",
    arms: list[str] | None = None,
    trials: list[str] | None = None,
    covariates: list[str] | None = None,
    period: str | None = "treatment",
    missing_baseline: str = "error",
    method: Literal["random", "fixed", "network_fixed"] = "random",
    random_intercepts: list[str] | None = None,
    covariate_missing: str = "error",
) -> pd.DataFrame:
    """Frequentist twin of :class:`MultiTrial`: per-trial NB2 GLMs, then inverse-variance pooling.

    Stage 1 fits :func:`crampstats.models.nb_totals.nb_glm_twin` to each trial (its own
    intercept, run-in coefficient on the within-trial centred log run-in rate, dispersion,
    covariate effects and, for random-intercept groupings, fixed effects of the trial's
    levels). Stage 2 pools each active arm's log rate ratio over the trials that have it:

    - ``"random"``: DerSimonian-Laird random effects, one ``tau`` per arm;
    - ``"fixed"``: inverse-variance fixed effect, arm by arm;
    - ``"network_fixed"``: fixed effect for all arms jointly by generalised least squares
      with each trial's covariance of its arms' estimates (:func:`network_fixed_effect`).
      Arm-by-arm pooling ignores that, within a multi-arm trial, an arm estimated precisely
      elsewhere sharpens the trial's control rate and so its other contrasts; the one-stage
      model uses that information, so this is its closest fixed-effect counterpart.

    Parameters
    ----------
    periods
        One row per subject and trial, as for :class:`MultiTrial`.
    control_arm, arms, trials, covariates, period, missing_baseline
        As in :attr:`MultiTrial.default_model_config`.
    method
        ``"random"``, ``"fixed"`` or ``"network_fixed"`` (above).
    random_intercepts, covariate_missing
        As in :attr:`MultiTrial.default_model_config`.

    Returns
    -------
    pandas.DataFrame
        One row per active arm present in some trial: ``arm, log_rr, se, lower, upper``
        (Wald 95 %), ``rate_ratio``, ``tau`` (DL between-trial SD of this arm's log rate ratio,
        whatever the method; NaN when one trial has the arm), ``q`` (Cochran's Q),
        ``k_trials``. With ``method="random"``, ``hk_lower, hk_upper``: the
        Hartung-Knapp 95 % interval of the log rate ratio (:func:`hartung_knapp`, t with
        ``k_trials - 1`` degrees of freedom; NaN with one trial or another method).
        ``attrs`` hold ``method``, ``per_trial`` (records ``trial, arm, log_rr,
        se``), ``converged``, ``k`` (per trial), and ``beta`` and ``beta_se``: the model's
        shared covariate coefficients, as the inverse-variance (fixed-effect) pool of the
        trials' coefficients put on the model's scale (numeric covariates per SD over all
        trials; a category's coefficient from the trials whose reference level is the
        model's).

    Raises
    ------
    ModelDataError
        If a trial lacks the control arm.
    """
    if method not in ("random", "fixed", "network_fixed"):
        raise ValueError(f"method must be 'random', 'fixed' or 'network_fixed', got {method!r}")
    model = MultiTrial(
        {
            "control_arm": control_arm,
            "arms": arms,
            "trials": trials,
            "covariates": list(covariates or []),
            "period": period,
            "missing_baseline": missing_baseline,
            "random_intercepts": list(random_intercepts or []),
            "covariate_missing": covariate_missing,
        }
    )
    frame = model.select(periods)
    coding = arm_coding(frame["arm"], control_arm, arms)
    trial_order, trial_idx = _trial_coding(frame["trial_id"], trials)
    _check_trials(frame, trial_order, trial_idx, coding.control)
    glm = {"control_arm": coding.control, "covariates": covariates, "period": period}
    glm["missing_baseline"] = missing_baseline
    if random_intercepts or covariate_missing != "error":
        glm.update(random_intercepts=random_intercepts, covariate_missing=covariate_missing)
    pooled_design = CovariateDesign.from_frame(frame, covariates or [], covariate_missing)
    per_trial, converged, k, network, betas = [], {}, {}, [], []
    for t, trial in enumerate(trial_order):
        sub = frame.iloc[np.flatnonzero(trial_idx == t)]
        if sub.empty or set(sub["arm"].astype(str)) == {coding.control}:
            continue
        fit = nb_glm_twin(sub, **glm)
        converged[trial], k[trial] = fit.attrs["converged"], fit.attrs["k"]
        if covariates:
            own = CovariateDesign.from_frame(sub, covariates, covariate_missing)
            betas.append(_on_pooled_scale(fit.attrs, own, pooled_design))
        per_trial.extend(
            {"trial": trial, "arm": r.arm, "log_rr": r.log_rr, "se": r.se} for r in fit.itertuples()
        )
        if method == "network_fixed":
            network.append(trial_nb_glm(sub, **glm))
    table = pd.DataFrame(per_trial, columns=["trial", "arm", "log_rr", "se"])
    estimated = [a for a in coding.active if (table["arm"] == a).any()]
    if method == "network_fixed":
        gls, gls_cov = network_fixed_effect(network, estimated)
    rows = []
    for i, arm in enumerate(estimated):
        sel = table[table["arm"] == arm]
        pooled = inverse_variance_pool(sel["log_rr"].to_numpy(), sel["se"].to_numpy())
        if method == "random":
            est, se = pooled["random"], pooled["se_random"]
        elif method == "fixed":
            est, se = pooled["fixed"], pooled["se_fixed"]
        else:
            est, se = float(gls[i]), float(np.sqrt(gls_cov[i, i]))
        hk = {"lower": np.nan, "upper": np.nan}
        if method == "random":
            hk = hartung_knapp(
                sel["log_rr"].to_numpy(), sel["se"].to_numpy(), np.nan_to_num(pooled["tau"]) ** 2
            )
        rows.append(
            {
                "arm": arm,
                "log_rr": est,
                "se": se,
                "tau": pooled["tau"],
                "q": pooled["q"],
                "k_trials": pooled["k_trials"],
                "hk_lower": hk["lower"],
                "hk_upper": hk["upper"],
            }
        )
    columns = ["arm", "log_rr", "se", "tau", "q", "k_trials", "hk_lower", "hk_upper"]
    out = pd.DataFrame(rows, columns=columns)
    out["lower"] = out["log_rr"] - _Z975 * out["se"]
    out["upper"] = out["log_rr"] + _Z975 * out["se"]
    out["rate_ratio"] = np.exp(out["log_rr"])
    out = out[["arm", "log_rr", "se", "lower", "upper", "rate_ratio", *columns[3:]]]
    out.attrs.update(
        method=method,
        per_trial=table.to_dict("records"),
        converged=converged,
        k=k,
        **_pool_coefficients(betas, pooled_design.columns),
    )
    return out


def _on_pooled_scale(
    attrs: dict[str, Any], own: CovariateDesign, pooled: CovariateDesign
) -> dict[str, tuple[float, float]]:
    """One trial's covariate coefficients (estimate, SE) expressed on the pooled design's scale.

    A numeric covariate's coefficient is per SD of the trial; times ``SD_pooled / SD_trial`` it
    is per SD over all trials (centring moves only the intercept). A category's coefficient
    compares it with the trial's reference level, so it is kept only when that is the pooled
    design's reference too.
    """
    out: dict[str, tuple[float, float]] = {}
    for column, estimate in attrs.get("beta", {}).items():
        se = attrs["beta_se"][column]
        name = column.split("[", 1)[0] if column not in own.spec else column
        rule, pooled_rule = own.spec.get(name), pooled.spec.get(name)
        if rule is None or pooled_rule is None or column not in pooled.columns:
            continue
        if rule[0] == "numeric" and column == name:
            factor = pooled_rule[2] / rule[2]
            out[column] = (estimate * factor, se * factor)
        elif rule[0] == "numeric" or rule[1][0] == pooled_rule[1][0]:
            out[column] = (estimate, se)
    return out


def _pool_coefficients(
    per_trial: list[dict[str, tuple[float, float]]], columns: tuple[str, ...]
) -> dict[str, dict[str, float]]:
    """Inverse-variance (fixed-effect) pool of each covariate column over the trials with it."""
    beta: dict[str, float] = {}
    beta_se: dict[str, float] = {}
    for column in columns:
        pairs = [t[column] for t in per_trial if column in t and np.isfinite(t[column][1])]
        if not pairs:
            beta[column], beta_se[column] = float("nan"), float("nan")
            continue
        estimates, se = np.array(pairs).T
        w = 1.0 / se**2
        beta[column] = float(np.sum(w * estimates) / np.sum(w))
        beta_se[column] = float(np.sqrt(1.0 / np.sum(w)))
    return {"beta": beta, "beta_se": beta_se}
