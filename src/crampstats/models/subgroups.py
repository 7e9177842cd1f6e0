"""``subgroups``: arm-by-subgroup rate ratios with hierarchically shrunk interactions (exploratory).

One row per subject ``i`` (the ``periods`` frame, treatment period, ``exposure_days > 0``) and
one subject column (``cramp_origin``, ``etiology`` or a configured ``analysis.subgroups``
column) whose level ``l_i`` is the subgroup::

    y_i ~ NegBin(mu_i, k)                                     (variance mu + mu^2 / k)
    log mu_i = log exposure_i + alpha[trial_i] + b * x_i + gamma[l_i] + theta[a_i, l_i]
    theta[control, l] = 0
    theta[a, l] = log_rr[a] + delta[a, l]                     (log_rr_subgroup)
    delta[a, l] = tau * z[a, l],   z ~ Normal(0, 1)           (non-centred)

``theta[a, l]`` is arm ``a``'s log rate ratio against control within subgroup ``l``;
``log_rr[a]`` is the centre of the subgroup effects and ``delta[a, l]`` (``interaction``) the
departure of subgroup ``l`` from it. ``tau`` is the SD of the interactions: the data decide how
far the subgroup effects are pooled towards their centre (Jones et al. 2011, Clin Trials 8:129;
Henderson et al. 2016, Stat Med 35:2427, hierarchical shrinkage of subgroup effects). A small
subgroup whose estimate is extreme is pulled in; that is the point, because unshrunk subgroup
estimates from a trial powered for the overall effect are mostly noise.

Priors: ``alpha``, ``b``, ``k`` and ``log_rr`` as :mod:`~crampstats.models.nb_totals` (one
``alpha`` per trial when the data hold several); ``gamma[l] ~ Normal(0, 1)`` for each level but
the first (a subgroup's control rate differing by up to a factor ~7); ``tau ~ HalfNormal(0.5)``
(config ``prior_tau_sd``): the scale of :mod:`~crampstats.models.multi_trial`'s between-trial SD
of the same log rate ratios, median 0.34. Config ``fixed_tau`` replaces the prior by a fixed
value (the interactions then ``Normal(0, fixed_tau)``, sampled centred): with a large value the
subgroup effects are unpooled, the Bayesian counterpart of the twin (tested).

Sampling: the interactions are non-centred (``z``) and sheared as in multi_trial (each arm's
mean over levels is sampled flat, ``log_rr`` recovered from it with its prior as a potential;
``_build`` says why). Measured on two levels of 120 subjects a cell (true interaction log 2):
4 divergences of 4,000 draws at ``target_accept = 0.9``, none at 0.95 (the default), bulk ESS
above 1,100 for every parameter.

Reported interaction (:func:`subgroup_effects`): a subgroup's log rate ratio minus the mean of
the other subgroups' (with two levels, the log of the ratio of the two rate ratios), and
``p_interaction`` the posterior probability of its sign.

The twin :func:`subgroup_twin` is the same model by maximum likelihood without shrinkage:
statsmodels' NB2 GLM with arm, level and arm x level terms; a subgroup's log rate ratio is
``beta_arm + beta_arm:level`` with its variance from the coefficients' covariance.

Which levels are analysed (:func:`subgroup_frame`): a subject without a value is left out;
levels with fewer than ``min_per_arm`` subjects in some arm (control included) are pooled into
``other``, and if ``other`` is still too small its subjects are left out (recorded). With fewer
than two levels left the variable is not analysed, with the reason.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import pandas as pd
import statsmodels.api as sm
import xarray as xr
from scipy import special, stats

from crampstats.engine import ATTR_PREFIX, BayesModel, PreparedData
from crampstats.models._common import (
    COMMON_MODEL_CONFIG,
    ModelDataError,
    arm_coding,
    as_float,
    baseline_covariate,
    check_counts,
    drop_zero_exposure,
    require_columns,
    subject_keys,
)
from crampstats.numerics import interval_bounds, nb_logpmf

if TYPE_CHECKING:
    import pymc as pm

__all__ = [
    "DEFAULT_VARIABLES",
    "EFFECT_COLUMNS",
    "OTHER",
    "SubgroupFrame",
    "Subgroups",
    "interaction_draws",
    "plan_label",
    "subgroup_effects",
    "subgroup_frame",
    "subgroup_twin",
]

#: Contract columns analysed by default (docs/data-contract.md, subjects).
DEFAULT_VARIABLES = ("cramp_origin", "etiology")
#: Label of the pooled small levels.
OTHER = "other"
REQUIRED = ("subject_id", "arm", "count", "exposure_days", "log_baseline_rate", "subgroup")
EFFECT_COLUMNS = [
    "arm", "level", "n", "n_control", "rr_median", "rr_lower", "rr_upper", "p_rr_below_1",
    "interaction_median", "interaction_lower", "interaction_upper", "p_interaction", "tau_median",
]  # fmt: skip
TWIN_COLUMNS = ["arm", "level", "log_rr", "se", "rr", "rr_lower", "rr_upper", "converged"]


class Subgroups(BayesModel):
    """NB model of treatment totals with arm x subgroup interactions shrunk towards 0.

    Parameters
    ----------
    model_config
        Overrides of :attr:`default_model_config`: ``control_arm``, ``arms``, ``period``,
        ``missing_baseline`` and the priors of :mod:`~crampstats.models.nb_totals`;
        ``levels`` (subgroup labels in model order, ``None``: sorted labels of the data),
        ``prior_level_sd`` (1), ``prior_tau_sd`` (0.5), ``fixed_tau`` (``None``: ``tau``
        sampled; a number: interactions ``Normal(0, fixed_tau)``), ``prior_k_mu``,
        ``prior_k_sd``.
    sampler_config
        Overrides of the sampler defaults (:class:`crampstats.engine.BayesModel`).

    Examples
    --------
    >>> sub = subgroup_frame(periods, "cramp_origin", "placebo")  # doctest: +SKIP
    >>> idata = Subgroups({"levels": sub.levels}).fit(sub.frame, seed=1)  # doctest: +SKIP
    >>> subgroup_effects(idata)  # doctest: +SKIP
    """

    name: ClassVar[str] = "subgroups"
    default_model_config: ClassVar[dict[str, Any]] = {
        **{k: COMMON_MODEL_CONFIG[k] for k in ("control_arm", "arms", "missing_baseline")},
        **{k: v for k, v in COMMON_MODEL_CONFIG.items() if k.startswith("prior_")},
        "period": "treatment",
        "levels": None,
        "prior_level_sd": 1.0,
        "prior_tau_sd": 0.5,  # as multi_trial's between-trial SD (module docstring)
        "fixed_tau": None,
        "prior_k_mu": float(np.log(3.0)),  # docs/calibration.md: overdispersion k = 3
        "prior_k_sd": 1.0,
    }
    default_sampler_config: ClassVar[dict[str, Any]] = {
        **BayesModel.default_sampler_config,
        "target_accept": 0.95,  # non-centred interactions, few levels: module docstring
    }

    # ---- data -------------------------------------------------------------------------------
    def select(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Rows analysed: the configured period (if a ``period`` column exists), exposure > 0."""
        require_columns(frame, REQUIRED, "subgroup data")
        period = self.model_config["period"]
        if "period" in frame.columns and period is not None:
            frame = frame.loc[frame["period"].astype(str) == str(period)]
        frame = frame.loc[frame["subgroup"].notna()]
        return drop_zero_exposure(frame)

    def prepare(self, data: pd.DataFrame) -> PreparedData:
        """Turn a :func:`subgroup_frame` frame into model arrays (one row per subject)."""
        frame = self.select(data)
        cfg = self.model_config
        arms = arm_coding(frame["arm"], cfg["control_arm"], cfg["arms"])
        labels = frame["subgroup"].astype(str)
        levels = [str(v) for v in cfg["levels"]] if cfg["levels"] else sorted(set(labels))
        unknown = sorted(set(labels) - set(levels))
        if unknown:
            raise ModelDataError(f"subgroup level(s) {unknown} are not among {levels}")
        if len(levels) < 2:
            raise ModelDataError(f"a subgroup analysis needs two levels or more, got {levels}")
        trials = (
            frame["trial_id"].astype(str) if "trial_id" in frame else pd.Series("", frame.index)
        )
        trial_levels = sorted(set(trials))
        x_c = np.zeros(len(frame))
        for trial in trial_levels:  # run-in rate centred within trial, as multi_trial
            rows = np.flatnonzero((trials == trial).to_numpy())
            x_c[rows] = baseline_covariate(frame.iloc[rows], cfg["missing_baseline"])[0]
        y = check_counts(frame)
        arrays = {
            "y": y,
            "log_exposure": np.log(as_float(frame["exposure_days"])),
            "arm_idx": arms.index(frame["arm"]),
            "level_idx": labels.map({v: i for i, v in enumerate(levels)}).to_numpy(np.int64),
            "trial_idx": trials.map({t: i for i, t in enumerate(trial_levels)}).to_numpy(np.int64),
            "x_baseline": x_c,
            "lgamma_y1": special.gammaln(y + 1.0),
        }
        subject_data = xr.Dataset(
            {
                "arm": ("subject", frame["arm"].astype(str).to_numpy()),
                "subgroup": ("subject", labels.to_numpy()),
                "count": ("subject", y),
                "exposure_days": ("subject", as_float(frame["exposure_days"])),
            },
            coords={"subject": subject_keys(frame).to_numpy()},
        )
        return PreparedData(
            data=arrays,
            coords={"arm": list(arms.active), "level": levels, "trial": trial_levels},
            constants={"control_arm": arms.control},
            subject_data=subject_data,
        )

    # ---- model ------------------------------------------------------------------------------
    def _build(self, prepared: PreparedData) -> pm.Model:
        import pymc as pm
        import pytensor.tensor as pt

        cfg = self.model_config
        d = prepared.data
        n_level = len(prepared.coords["level"])
        coords = {**prepared.coords, "level_effect": prepared.coords["level"][1:]}
        with pm.Model(coords=coords) as model:
            y = pm.Data("y", d["y"])
            log_exposure = pm.Data("log_exposure", d["log_exposure"])
            arm_idx = pm.Data("arm_idx", d["arm_idx"])
            level_idx = pm.Data("level_idx", d["level_idx"])
            trial_idx = pm.Data("trial_idx", d["trial_idx"])
            x = pm.Data("x_baseline", d["x_baseline"])
            lgamma_y1 = pm.Data("lgamma_y1", d["lgamma_y1"])

            alpha = pm.Normal("alpha", cfg["prior_alpha_mu"], cfg["prior_alpha_sd"], dims="trial")
            b = pm.Normal("b", cfg["prior_b_mu"], cfg["prior_b_sd"])
            k = pm.LogNormal("k", cfg["prior_k_mu"], cfg["prior_k_sd"])
            gamma = pm.Normal("gamma", 0.0, cfg["prior_level_sd"], dims="level_effect")
            if cfg["fixed_tau"] is None:
                # Non-centred, and sheared as multi_trial's trial effects: the likelihood sees
                # each arm's mean over levels (flat here) apart from the deviations, and
                # log_rr = mean - tau * mean(z) gets its Normal prior as a potential (the map
                # from (log_rr, z) has unit Jacobian). Written plainly, theta = log_rr + tau * z,
                # log_rr and mean(z) trade off along a ridge: bulk ESS < 400 of 4,000 draws with
                # two levels of 120 subjects a cell.
                tau = pm.HalfNormal("tau", cfg["prior_tau_sd"])
                z = pm.Normal("z_interaction", 0.0, 1.0, dims=("arm", "level"))
                z_mean = z.mean(axis=1)
                level_mean = pm.Flat("log_rr_subgroup_mean", dims="arm")
                log_rr = pm.Deterministic("log_rr", level_mean - tau * z_mean, dims="arm")
                pm.Potential(
                    "log_rr_prior",
                    pm.logp(pm.Normal.dist(0.0, cfg["prior_log_rr_sd"]), log_rr).sum(),
                )
                delta = pm.Deterministic("interaction", tau * z, dims=("arm", "level"))
                theta = pm.Deterministic(
                    "log_rr_subgroup",
                    level_mean[:, None] + tau * (z - z_mean[:, None]),
                    dims=("arm", "level"),
                )
            else:  # unpooled limit: centred, the fixed scale leaves no funnel
                log_rr = pm.Normal("log_rr", 0.0, cfg["prior_log_rr_sd"], dims="arm")
                scale = float(cfg["fixed_tau"])
                delta = pm.Normal("interaction", 0.0, scale, dims=("arm", "level"))
                theta = pm.Deterministic(
                    "log_rr_subgroup", log_rr[:, None] + delta, dims=("arm", "level")
                )
            effect = pt.concatenate([pt.zeros((1, n_level)), theta], axis=0)
            level_effect = pt.concatenate([pt.zeros(1), gamma])
            eta = (
                log_exposure
                + alpha[trial_idx]
                + b * x
                + level_effect[level_idx]
                + effect[arm_idx, level_idx]
            )
            # NB2 log pmf written out as in nb_totals (one gammaln per row)
            per_row = pt.gammaln(y + k) - lgamma_y1 + y * eta - (k + y) * pt.log(k + pt.exp(eta))
            n = y.shape[0]
            pm.Potential("nb_loglik", pt.sum(per_row) + n * (k * pt.log(k) - pt.gammaln(k)))
        return model

    def pointwise_log_likelihood(self, idata: xr.DataTree, prepared: PreparedData) -> xr.DataArray:
        """NB log-probability of each subject's total, per draw (dims chain, draw, subject)."""
        post = idata["posterior"]
        d = prepared.data
        alpha = post["alpha"].transpose("chain", "draw", "trial").values
        theta = post["log_rr_subgroup"].transpose("chain", "draw", "arm", "level").values
        gamma = post["gamma"].transpose("chain", "draw", "level_effect").values
        shape = theta.shape[:2]
        effect = np.concatenate([np.zeros((*shape, 1, theta.shape[-1])), theta], axis=2)
        level = np.concatenate([np.zeros((*shape, 1)), gamma], axis=-1)
        eta = (
            d["log_exposure"]
            + alpha[..., d["trial_idx"]]
            + post["b"].values[..., None] * d["x_baseline"]
            + level[..., d["level_idx"]]
            + effect[:, :, d["arm_idx"], d["level_idx"]]
        )
        value = nb_logpmf(d["y"], np.exp(eta), post["k"].values[..., None])
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


# --------------------------------------------------------------------------------------------
# Analysis frame
# --------------------------------------------------------------------------------------------
@dataclass
class SubgroupFrame:
    """The rows of one subgroup analysis.

    Attributes
    ----------
    variable : str
        The subject column.
    frame : pandas.DataFrame
        ``periods`` rows (treatment period) with a ``subgroup`` column (levels after pooling).
    levels : list of str
        Levels analysed, in model order (largest first, ``other`` last).
    notes : list of str
        What was pooled or left out, and why.
    """

    variable: str
    frame: pd.DataFrame
    levels: list[str]
    notes: list[str] = field(default_factory=list)


def subgroup_frame(
    periods: pd.DataFrame,
    variable: str,
    control_arm: str = "placebo",
    min_per_arm: int = 3,
    period: str | None = "treatment",
) -> SubgroupFrame:
    """Rows and levels of the subgroup analysis of ``variable`` (a subject column).

    Parameters
    ----------
    periods
        Derived ``periods`` (one row per subject and period).
    variable
        Subject column defining the subgroups.
    control_arm
        The control arm (every level needs subjects on it).
    min_per_arm
        Fewest subjects a level needs in every arm; smaller levels are pooled into
        :data:`OTHER` (left out if the pool is still too small).
    period
        Rows of ``periods`` analysed.

    Returns
    -------
    SubgroupFrame

    Raises
    ------
    ModelDataError
        If the column is absent or holds no value, or fewer than two levels are left; the
        message is the reason recorded with the table.
    """
    if variable not in periods.columns or periods[variable].isna().all():
        raise ModelDataError(f"subject column {variable!r} is absent or holds no value")
    frame = periods
    if "period" in frame.columns and period is not None:
        frame = frame.loc[frame["period"].astype(str) == str(period)]
    frame = frame.loc[as_float(frame["exposure_days"]) > 0]
    notes = []
    missing = frame[variable].isna()
    if missing.any():
        notes.append(f"{int(missing.sum())} subject(s) without a {variable} value left out")
        frame = frame.loc[~missing]
    labels = frame[variable].astype(str)
    arms = sorted(set(frame["arm"].astype(str)))
    if control_arm not in arms:
        raise ModelDataError(f"no subject of the control arm {control_arm!r} has a {variable}")
    counts = pd.crosstab(labels, frame["arm"].astype(str)).reindex(columns=arms, fill_value=0)
    big = counts.index[(counts >= min_per_arm).all(axis=1)]
    small = [str(v) for v in counts.index if v not in big]
    levels = sorted((str(v) for v in big), key=lambda v: (-int(counts.loc[v].sum()), v))
    if small:
        pooled = counts.loc[small].sum()
        labels = labels.where(labels.isin(levels), OTHER)
        if bool((pooled >= min_per_arm).all()) and OTHER not in levels:
            levels.append(OTHER)
            notes.append(f"levels {', '.join(small)} pooled into {OTHER!r} (< {min_per_arm} a arm)")
        else:
            keep = labels != OTHER
            notes.append(
                f"levels {', '.join(small)} left out ({int((~keep).sum())} subjects; fewer than "
                f"{min_per_arm} subjects in some arm even when pooled)"
            )
            frame, labels = frame.loc[keep.to_numpy()], labels[keep]
    if len(levels) < 2:
        raise ModelDataError(
            f"{variable}: fewer than two levels with at least {min_per_arm} subjects in every "
            f"arm ({', '.join(f'{v}: {int(n)}' for v, n in counts.sum(axis=1).items())})"
        )
    out = frame.assign(subgroup=labels.to_numpy()).reset_index(drop=True)
    return SubgroupFrame(variable, out, levels, notes)


# --------------------------------------------------------------------------------------------
# Summaries
# --------------------------------------------------------------------------------------------
def subgroup_effects(idata: xr.DataTree, level: float = 0.95) -> pd.DataFrame:
    """Rate ratio of every active arm against control within every subgroup, and interactions.

    Parameters
    ----------
    idata
        A :class:`Subgroups` fit (with ``constant_data``).
    level
        Mass of the equal-tailed intervals.

    Returns
    -------
    pandas.DataFrame
        :data:`EFFECT_COLUMNS`: per arm and level ``n`` (subjects on the arm in the level),
        ``n_control``; the subgroup rate ratio ``exp(theta)`` (median, interval) and
        ``P(RR < 1)``; the interaction as a ratio of rate ratios, the subgroup's rate ratio
        over the geometric mean of the other subgroups', ``exp(c)`` with ``c = theta[a, l] -
        mean_{l' != l} theta[a, l']`` (with two levels, the ratio of the two rate ratios);
        ``p_interaction``, the posterior probability of the interaction's more probable sign,
        ``max(P(c > 0), P(c < 0))`` (0.5: no indication that the subgroup's effect differs;
        near 1: it is larger, or smaller, than the others' with that probability); and the
        posterior median of ``tau`` (NaN with ``fixed_tau``). The contrast with the other
        subgroups is used rather than ``delta`` itself because the centre ``log_rr`` is
        identified only through the prior when there are few levels.
    """
    post = idata["posterior"].to_dataset()
    sd = idata["constant_data"].to_dataset()
    lo, hi = interval_bounds(level)
    theta = post["log_rr_subgroup"].stack(sample=("chain", "draw")).transpose("arm", "level", ...)
    delta = _versus_the_rest(theta.values)
    config = json.loads(post.attrs.get(f"{ATTR_PREFIX}constants", "{}"))
    control = str(config.get("control_arm", "placebo"))
    counts = pd.crosstab(sd["subgroup"].values.astype(str), sd["arm"].values.astype(str))
    tau = float(post["tau"].median()) if "tau" in post else float("nan")
    rows = []
    for i, arm in enumerate(str(a) for a in theta["arm"].values):
        for j, lvl in enumerate(str(v) for v in theta["level"].values):
            t, dl = theta.values[i, j], delta[i, j]
            qt, qd = np.quantile(t, [0.5, lo, hi]), np.quantile(dl, [0.5, lo, hi])
            rows.append(
                {
                    "arm": arm,
                    "level": lvl,
                    "n": int(counts.at[lvl, arm]) if arm in counts and lvl in counts.index else 0,
                    "n_control": int(counts.at[lvl, control])
                    if control in counts and lvl in counts.index
                    else 0,
                    "rr_median": float(np.exp(qt[0])),
                    "rr_lower": float(np.exp(qt[1])),
                    "rr_upper": float(np.exp(qt[2])),
                    "p_rr_below_1": float((t < 0).mean()),
                    "interaction_median": float(np.exp(qd[0])),
                    "interaction_lower": float(np.exp(qd[1])),
                    "interaction_upper": float(np.exp(qd[2])),
                    "p_interaction": float(max((dl > 0).mean(), (dl < 0).mean())),
                    "tau_median": tau,
                }
            )
    return pd.DataFrame(rows, columns=EFFECT_COLUMNS)


def _versus_the_rest(theta: np.ndarray) -> np.ndarray:
    """``theta[a, l] - mean_{l' != l} theta[a, l']`` for ``theta`` of shape (arm, level, sample)."""
    n_level = theta.shape[1]
    rest = (theta.sum(axis=1, keepdims=True) - theta) / (n_level - 1)
    return theta - rest


def _design(
    frame: pd.DataFrame, control_arm: str, arms: Sequence[str] | None, levels: Sequence[str]
) -> tuple[np.ndarray, list[str], dict[tuple[str, str], np.ndarray], np.ndarray, np.ndarray]:
    """Twin design: intercept, trials, arms, levels, arm x level, run-in rate."""
    model = Subgroups({"control_arm": control_arm, "arms": arms, "levels": list(levels)})
    prepared = model.prepare(frame)
    d = prepared.data
    active = list(prepared.coords["arm"])
    n_trial, n_level = len(prepared.coords["trial"]), len(levels)
    cols = [np.ones(len(d["y"]))]
    cols += [(d["trial_idx"] == t).astype(float) for t in range(1, n_trial)]
    arm_cols = [(d["arm_idx"] == a + 1).astype(float) for a in range(len(active))]
    level_cols = [(d["level_idx"] == j).astype(float) for j in range(1, n_level)]
    first_arm = len(cols)
    cols += arm_cols + level_cols
    contrasts: dict[tuple[str, str], np.ndarray] = {}
    n_main = len(cols)
    inter = []
    for a in range(len(active)):
        inter += [arm_cols[a] * level_cols[j - 1] for j in range(1, n_level)]
    cols += [*inter, d["x_baseline"]]
    n_par = len(cols) + 1  # + NB dispersion
    for a, arm in enumerate(active):
        for j, lvl in enumerate(levels):
            c = np.zeros(n_par)
            c[first_arm + a] = 1.0
            if j:
                c[n_main + a * (n_level - 1) + (j - 1)] = 1.0
            contrasts[(arm, str(lvl))] = c
    return np.column_stack(cols), active, contrasts, d["y"], d["log_exposure"]


def subgroup_twin(
    frame: pd.DataFrame,
    levels: Sequence[str],
    control_arm: str = "placebo",
    arms: Sequence[str] | None = None,
    level: float = 0.95,
) -> pd.DataFrame:
    """Frequentist twin of :class:`Subgroups`: NB2 GLM with arm x subgroup interactions, unshrunk.

    Parameters
    ----------
    frame
        :attr:`SubgroupFrame.frame`.
    levels
        Levels in model order (the first is the reference of the level and interaction terms).
    control_arm, arms
        As for the model.
    level
        Mass of the Wald intervals.

    Returns
    -------
    pandas.DataFrame
        :data:`TWIN_COLUMNS`, one row per active arm and level: ``log_rr = c' beta`` with ``c``
        picking the arm's main effect plus its interaction with the level, ``se =
        sqrt(c' V c)``. ``attrs["interaction"]`` holds the interaction coefficients (versus the
        first level) with their standard errors, ``attrs["converged"]``.
    """
    X, _, contrasts, y, offset = _design(frame, control_arm, arms, levels)
    result = sm.NegativeBinomial(y, X, offset=offset, loglike_method="nb2").fit(disp=0, maxiter=500)
    params, cov = np.asarray(result.params), np.asarray(result.cov_params())
    z = float(stats.norm.ppf(0.5 + level / 2.0))
    converged = bool(result.mle_retvals["converged"])
    rows, inter = [], {}
    for (arm, lvl), c in contrasts.items():
        est, se = float(c @ params), float(np.sqrt(c @ cov @ c))
        rows.append(
            {
                "arm": arm,
                "level": lvl,
                "log_rr": est,
                "se": se,
                "rr": np.exp(est),
                "rr_lower": np.exp(est - z * se),
                "rr_upper": np.exp(est + z * se),
                "converged": converged,
            }
        )
        if lvl != str(levels[0]):
            i = int(np.flatnonzero(c)[-1])
            inter[(arm, lvl)] = (float(params[i]), float(np.sqrt(cov[i, i])))
    out = pd.DataFrame(rows, columns=TWIN_COLUMNS)
    out.attrs.update(interaction=inter, converged=converged)
    return out


def interaction_draws(idata: xr.DataTree, reference: str | None = None) -> xr.DataArray:
    """Interaction of every level with a reference level: ``theta[a, l] - theta[a, ref]``.

    The twin's interaction coefficients measure the same contrast (first level the reference).

    Parameters
    ----------
    idata
        A :class:`Subgroups` fit.
    reference
        Reference level (default the first).

    Returns
    -------
    xarray.DataArray
        Dims ``(chain, draw, arm, level)``; zero at the reference.
    """
    theta = idata["posterior"]["log_rr_subgroup"]
    ref = str(theta["level"].values[0]) if reference is None else reference
    return theta - theta.sel(level=ref)


def plan_label(variable: str, config: Mapping[str, Any]) -> str:
    """``prespecified`` when the analysis plan names ``variable`` among its subgroups.

    Reads ``analysis.plan.subgroups`` (a list of subject columns) when a plan is configured;
    every other subgroup analysis is ``exploratory``.
    """
    plan = (config.get("analysis") or {}).get("plan") or {}
    named = plan.get("subgroups") if isinstance(plan, Mapping) else None
    return "prespecified" if named and variable in list(named) else "exploratory"
