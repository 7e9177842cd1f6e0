"""``intensity``: mean 0-10 cramp intensity over the treatment period (parallel designs).

The diary rates each cramp day 0-10 (``intensity``; missing on days without a cramp or without a
rating). :func:`intensity_frame` summarises each subject's ratings: the mean over the rated
treatment-period records (``intensity_mean``), the mean over the rated run-in records
(``runin_intensity_mean``) and how many records were rated (``n_rated_days``,
``runin_rated_days``: days in a daily diary).

Subjects without post-baseline cramps: a declared strategy
----------------------------------------------------------
A cramp is rated only when it happens, so a subject whose treatment-period diary holds no cramp
has no rating. Leaving such subjects out (``strategy="while_on_cramps"``, the earlier behaviour)
compares only the subjects who still have cramps on each arm; a treatment that stops cramps
altogether in some subjects changes who is compared, so that is not a randomised comparison
(ICH E9(R1): it conditions on a post-randomisation outcome), and the report says so. The default,
``strategy="composite"`` (config ``analysis.secondary.intensity_strategy``), gives a subject
with at least a week (``min_cramp_free_days`` = 7 diarised treatment days, the diary's reporting
unit) of treatment-period diary and no cramp a mean intensity of 0, no cramp pain: subjects are
compared as randomised, and the endpoint is the mean intensity of the cramps experienced, 0 for
none (a composite of occurrence and severity). Fewer cramp-free days (typically an early
withdrawal) say little about cramps on treatment and leave the outcome missing, as does a
subject with cramps but no rating or without treatment diary (counted in ``attrs``). A
hypothetical strategy (the intensity had cramps continued) would need a model of the
unobservable ratings and is not offered.

Weighting by the days rated
---------------------------
A subject's mean of ``n_i`` ratings varies around their true mean by the within-subject spread
over ``n_i``: ``Var(mean_i) = s_b^2 + s_w^2 / n_i``. A mean of one rated day must not weigh as
much as one of forty. The beta precision therefore depends on the days (``weight_days``: the
rated days, or the diarised days of a composite 0)::

    log phi_i = log phi + g * (log weight_days_i - mean log weight_days)

``g = 0``: days do not matter (between-subject spread dominates); ``g = 1``: precision
proportional to days (within-subject noise dominates); the variance-components form above lies
between, so ``g`` is estimated, with its prior centred half-way. This keeps one row per subject
(a per-subject mean with precision by days) rather than weights in the likelihood, whose scale
would have to be fixed outside the model.

Why a bounded model of the subject mean
---------------------------------------
The subject mean of ten to forty ratings recorded to one decimal is practically continuous and
lies in ``[0, 10]``; its spread shrinks near the ends of the scale. A beta regression of
``mean / 10`` respects both, needs one row per subject and has no parameter per subject. The
alternative, an ordinal model of rounded daily ratings with subject effects, models the ratings
themselves but needs a random effect per subject; the engine compiles a model once and re-uses
it for trials of any size, which allows no free parameter with a subject dimension
(:mod:`crampstats.engine`), and the treatment comparison of interest is of subject means anyway.

Model
-----
With ``n`` analysed subjects, the Smithson-Verkuilen transform (Smithson & Verkuilen 2006,
Psychol Methods 11:54) squeezes the proportions into the open interval the beta density needs::

    y_i = (intensity_mean_i / 10 * (n - 1) + 0.5) / n
    y_i ~ Beta(mu_i * phi_i, (1 - mu_i) * phi_i)
    logit(mu_i) = alpha + beta[arm_i] + b * (x_i - mean x)
    log phi_i = log phi + g * d_i

``x_i`` is the logit of the run-in mean, squeezed the same way (a subject whose ratings carry
over keeps its logit, so ``b`` near 1 means full tracking); ``alpha`` the control arm's logit
mean at the trial's mean run-in; ``beta`` 0 for control; ``phi`` the precision at the mean log
days rated (``Var y = mu (1 - mu) / (1 + phi)``), ``d_i`` the centred log days (above). A
missing run-in mean (no rated run-in day) is refused (``missing_baseline="error"``, default)
or set to the mean (``"mean"``; White & Thompson 2005, Stat Med 24:993). The likelihood is a
``pm.Potential`` on ``log y`` and ``log(1 - y)``.

Effect measure
--------------
``difference_in_mean_intensity``: the difference in expected mean intensity on the 0-10 scale
had every analysed subject been given the arm rather than the control, averaged over the trial's
subjects (standardisation over their run-in means)::

    diff[arm] = mean_i (E[intensity_i | arm] - E[intensity_i | control])
              = 10 n / (n - 1) * mean_i (expit(alpha + beta[arm] + b x_i) - expit(alpha + b x_i))

(undoing the squeeze: ``E[mean / 10] = (n E[y] - 0.5) / (n - 1)``), per posterior draw. A lower
intensity is *benefit*: ``p_benefit = P(diff < 0 | data)``.

Priors (weakly informative)
---------------------------
docs/calibration.md has no intensity row (no trial reports a distribution of 0-10 cramp ratings,
docs/calibration.md "Gaps"); the centres follow the simulator's uncalibrated defaults
(``schemas/design.schema.yaml``, ``intensity``: mean 5.5, between-subject SD 1.5):

- ``alpha ~ Normal(logit 0.55, 1)``: control mean 5.5; 95 % of the mass on 1.5-9.0.
- ``beta ~ Normal(0, 0.5)``: centred on no effect; near a mean of 5.5 one logit unit is about
  2.5 rating points, so 95 % of the mass lies within about +-2.5 points.
- ``b ~ Normal(0, 1)``: run-in slope on the logit scale, from none (0) to full tracking (1).
- ``phi ~ LogNormal(log 30, 1.5)``: 95 % of the mass on 1.6-570. ``phi = 30`` is a residual SD
  of 0.9 points at a mean of 5.5; the example trial (simulator defaults: run-in-adjusted means
  of dozens of ratings) gives about 90, a real trial with change over time less.
- ``g ~ Normal(0.5, 0.5)``: precision slope on log days; centred half-way between "days do not
  matter" (0) and "precision proportional to days" (1), 95 % of the mass on -0.5 to 1.5.

Twin: :func:`intensity_twin`, statsmodels ``BetaModel`` (logit mean, log precision with the
centred log days as precision covariate) on the same rows and design; the standardised
difference is the average of the fitted values at the maximum-likelihood estimate, its standard
error by the delta method (analytic gradient of that average with respect to the mean
coefficients).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import pandas as pd
import xarray as xr
from scipy import special, stats
from statsmodels.othermod.betareg import BetaModel

from crampstats.engine import ATTR_PREFIX, BayesModel, PreparedData
from crampstats.models._common import (
    ModelDataError,
    arm_coding,
    arm_effect,
    as_float,
    require_columns,
    subject_keys,
)
from crampstats.numerics import centre_covariate, interval_bounds

if TYPE_CHECKING:
    import pymc as pm

__all__ = [
    "IntensityModel",
    "beta_loglik",
    "intensity_effects",
    "intensity_frame",
    "intensity_twin",
    "squeeze",
    "standardised_difference",
]

REQUIRED = ("subject_id", "arm", "intensity_mean", "runin_intensity_mean")
FRAME_COLUMNS = (
    "trial_id",
    "subject_id",
    "arm",
    "intensity_mean",
    "n_rated_days",
    "runin_intensity_mean",
    "runin_rated_days",
    "no_cramps",
    "weight_days",
)
#: Strategies for subjects without post-baseline cramps (module docstring).
STRATEGIES = ("composite", "while_on_cramps")
MEASURE = "difference_in_mean_intensity"
EFFECT_COLUMNS = ["arm", "comparator", "measure", "estimate_median", "lower", "upper", "p_benefit"]
#: Top of the rating scale.
SCALE = 10.0
#: Diary periods of a parallel design: the run-in (baseline) and the treatment (outcome).
RUN_IN, TREATMENT = "run-in", "treatment"
#: schemas/design.schema.yaml, ``intensity``: mean rating 5.5 (uncertain, not calibrated).
INTENSITY_MEAN = 5.5


def squeeze(proportion: Any, n: int) -> np.ndarray:
    """Smithson-Verkuilen transform ``(p (n - 1) + 0.5) / n`` into the open unit interval."""
    return (np.asarray(proportion, dtype=float) * (n - 1) + 0.5) / n


def beta_loglik(y: Any, mu: Any, phi: Any) -> np.ndarray:
    """Beta log-density of ``y`` with mean ``mu`` and precision ``phi`` (broadcasting)."""
    a, b = mu * phi, (1.0 - mu) * phi
    return (
        special.gammaln(phi)
        - special.gammaln(a)
        - special.gammaln(b)
        + (a - 1.0) * np.log(y)
        + (b - 1.0) * np.log1p(-y)
    )


# --------------------------------------------------------------------------------------------
# Analysis frame
# --------------------------------------------------------------------------------------------
def _arms(periods: pd.DataFrame | None) -> pd.DataFrame:
    """One row per randomised subject with its arm, from the derived ``periods``."""
    if periods is None or periods.empty:
        raise ModelDataError(
            "the intensity endpoint needs the derived `periods` dataset (subjects' arms)"
        )
    require_columns(periods, ["subject_id", "arm"], "periods data")
    if "period" in periods.columns:
        labels = sorted(set(periods["period"].astype(str)) - {TREATMENT})
        if labels:
            raise ModelDataError(
                f"the intensity endpoint compares arms of a parallel design; periods {labels} "
                "(crossover or N-of-1) are not supported"
            )
    cols = [c for c in ("trial_id", "subject_id", "arm") if c in periods.columns]
    arms = periods[cols].drop_duplicates().reset_index(drop=True)
    # Diary records carry subject_id only, so it must identify a subject on its own.
    ids = arms["subject_id"].astype(str)
    if ids.duplicated().any():
        raise ModelDataError(
            f"subject(s) {sorted(set(ids[ids.duplicated()]))[:5]} have more than one arm (or "
            "trial) in the periods data"
        )
    return arms


def intensity_frame(
    derived: Mapping[str, pd.DataFrame],
    min_rated_days: int = 1,
    strategy: str = "composite",
    min_cramp_free_days: int = 7,
) -> pd.DataFrame:
    """Build the model's input: each subject's mean treatment and run-in intensity.

    Parameters
    ----------
    derived
        Derived datasets (:func:`crampstats.derive.derive_all`); uses ``diary`` (completed
        diary records with ``subject_id, period, intensity``) and ``periods`` (the arms).
    min_rated_days
        Fewest rated treatment-period records a subject with cramps needs to be analysed.
    strategy
        ``"composite"`` (default): a subject with at least ``min_cramp_free_days`` diarised
        treatment-period records and no cramp has mean intensity 0; ``"while_on_cramps"``: such
        subjects are left out (module docstring).
    min_cramp_free_days
        Fewest diarised treatment-period records without a cramp that make a composite 0.

    Returns
    -------
    pandas.DataFrame
        ``trial_id`` (when present), ``subject_id, arm, intensity_mean, n_rated_days,
        runin_intensity_mean, runin_rated_days, no_cramps, weight_days``; one row per subject
        with at least ``min_rated_days`` rated treatment records, and under ``"composite"`` one
        per subject without treatment-period cramps (``no_cramps``, mean 0, ``weight_days`` their
        diarised treatment records; for the others ``weight_days = n_rated_days``). The run-in
        mean is NaN without rated run-in records. ``attrs``: ``strategy``, ``n_no_cramps``
        (subjects without treatment-period cramps: analysed as 0 or left out),
        ``n_without_ratings`` (randomised subjects left out for any reason).

    Raises
    ------
    ModelDataError
        No diary or periods data, no ``intensity`` column, diary periods other than ``run-in``
        and ``treatment``, ratings outside 0-10, diary subjects without an arm, or no rated
        treatment record at all.
    """
    if min_rated_days < 1:
        raise ValueError(f"min_rated_days must be >= 1, got {min_rated_days}")
    if strategy not in STRATEGIES:
        raise ValueError(f"intensity strategy must be one of {STRATEGIES}, got {strategy!r}")
    diary = derived.get("diary")
    if diary is None or diary.empty:
        raise ModelDataError(
            "the intensity endpoint needs the diary records (`diary` dataset); the trial has none"
        )
    if "intensity" not in diary.columns:
        raise ModelDataError(
            "the diary has no `intensity` column: the trial did not record 0-10 cramp ratings"
        )
    require_columns(diary, ["subject_id", "period", "intensity"], "diary data")
    arms = _arms(derived.get("periods"))
    periods = diary["period"].astype(str)
    other = sorted(set(periods) - {RUN_IN, TREATMENT})
    if other:
        raise ModelDataError(
            f"diary periods {other} are neither {RUN_IN!r} nor {TREATMENT!r}; the intensity "
            "endpoint compares arms of a parallel design"
        )
    unknown = sorted(set(diary["subject_id"].astype(str)) - set(arms["subject_id"].astype(str)))
    if unknown:
        raise ModelDataError(
            f"diary subject(s) {unknown[:5]} have no arm in the periods data (not randomised?)"
        )
    rating = as_float(diary["intensity"])
    rated = ~np.isnan(rating)
    if ((rating[rated] < 0) | (rating[rated] > SCALE)).any():
        raise ModelDataError("intensity ratings must lie in 0-10")
    ratings = pd.DataFrame(
        {"subject_id": diary["subject_id"].astype(str), "period": periods, "intensity": rating}
    ).loc[rated]
    if not (ratings["period"] == TREATMENT).any():
        raise ModelDataError(
            "no treatment-period diary record has an intensity rating: there is no outcome "
            "to analyse"
        )
    summary = ratings.groupby(["subject_id", "period"])["intensity"].agg(["mean", "size"])
    treat = summary.xs(TREATMENT, level="period")
    runin = (
        summary.xs(RUN_IN, level="period")
        if RUN_IN in summary.index.get_level_values("period")
        else summary.iloc[:0].droplevel("period")
    )
    out = arms.assign(subject_id=arms["subject_id"].astype(str))
    out = out.join(
        treat.rename(columns={"mean": "intensity_mean", "size": "n_rated_days"}), on="subject_id"
    )
    out = out.join(
        runin.rename(columns={"mean": "runin_intensity_mean", "size": "runin_rated_days"}),
        on="subject_id",
    )
    out[["n_rated_days", "runin_rated_days"]] = (
        out[["n_rated_days", "runin_rated_days"]].fillna(0).astype("int64")
    )
    no_cramps = _without_cramps(diary, periods, out["subject_id"]) & (out["n_rated_days"] == 0)
    out["no_cramps"] = no_cramps.to_numpy()
    diarised = (periods == TREATMENT).groupby(diary["subject_id"].astype(str)).sum()
    out["weight_days"] = np.where(
        out["no_cramps"],
        out["subject_id"].map(diarised).fillna(0).to_numpy(),
        out["n_rated_days"].to_numpy(),
    ).astype("int64")
    keep = out["n_rated_days"] >= min_rated_days
    if strategy == "composite":
        zero = out["no_cramps"] & (out["weight_days"] >= min_cramp_free_days)
        out.loc[zero, "intensity_mean"] = 0.0
        keep = keep | zero
    out = out.loc[keep, [c for c in FRAME_COLUMNS if c in out.columns]]
    out = out.sort_values("subject_id").reset_index(drop=True)
    out.attrs.update(
        strategy=strategy,
        n_no_cramps=int(no_cramps.sum()),
        n_without_ratings=int((~keep).sum()),
    )
    return out


def _without_cramps(diary: pd.DataFrame, periods: pd.Series, subjects: pd.Series) -> pd.Series:
    """Whether each subject has diarised treatment-period records and none with a cramp."""
    if "cramp_count" not in diary.columns:
        return pd.Series(False, index=subjects.index)
    treated = periods == TREATMENT
    counts = as_float(diary["cramp_count"])
    ids = diary["subject_id"].astype(str)
    records = treated.groupby(ids).sum()
    cramps = pd.Series(np.where(treated, counts > 0, False), index=diary.index).groupby(ids).sum()
    return subjects.map((records > 0) & (cramps == 0)).fillna(False).astype(bool)


# --------------------------------------------------------------------------------------------
# Bayesian model
# --------------------------------------------------------------------------------------------
class IntensityModel(BayesModel):
    """Beta regression of the subject's mean treatment-period intensity, run-in adjusted.

    Parameters
    ----------
    model_config
        Overrides of :attr:`default_model_config`: ``control_arm`` (``"placebo"``), ``arms``
        (all arms, or ``None`` for those in the data), ``missing_baseline`` (``"error"`` or
        ``"mean"``) and the priors ``prior_alpha_mu``, ``prior_alpha_sd``, ``prior_beta_sd``,
        ``prior_b_mu``, ``prior_b_sd``, ``prior_phi_mu`` (of log phi), ``prior_phi_sd``,
        ``prior_g_mu``, ``prior_g_sd`` (precision slope on the centred log days rated).
    sampler_config
        Overrides of the sampler defaults (:class:`crampstats.engine.BayesModel`).

    Examples
    --------
    >>> idata = IntensityModel().fit(intensity_frame(derived), seed=1)  # doctest: +SKIP
    >>> intensity_effects(idata)  # doctest: +SKIP
    """

    name: ClassVar[str] = "intensity"
    default_model_config: ClassVar[dict[str, Any]] = {
        "control_arm": "placebo",
        "arms": None,
        "missing_baseline": "error",
        "prior_alpha_mu": float(special.logit(INTENSITY_MEAN / SCALE)),
        "prior_alpha_sd": 1.0,
        "prior_beta_sd": 0.5,
        "prior_b_mu": 0.0,
        "prior_b_sd": 1.0,
        "prior_phi_mu": math.log(30.0),
        "prior_phi_sd": 1.5,
        "prior_g_mu": 0.5,
        "prior_g_sd": 0.5,
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

    # ---- data -------------------------------------------------------------------------------
    def prepare(self, data: pd.DataFrame) -> PreparedData:
        """Turn an :func:`intensity_frame` into model arrays (one row per subject).

        Raises
        ------
        ModelDataError
            Missing columns, no rows, duplicated subjects, a mean that is missing or outside
            0-10, a missing run-in mean with ``missing_baseline="error"``, or no subject in
            the control arm.
        """
        require_columns(data, REQUIRED, "intensity data")
        if data.empty:
            raise ModelDataError(
                "intensity data have no rows: no subject has a rated treatment-period day"
            )
        keys = subject_keys(data)
        if keys.duplicated().any():
            raise ModelDataError(
                f"intensity data need one row per subject; duplicated: "
                f"{sorted(set(keys[keys.duplicated()]))[:5]}"
            )
        cfg = self.model_config
        arms = arm_coding(data["arm"], cfg["control_arm"], cfg["arms"])
        arm_idx = arms.index(data["arm"])
        if not (arm_idx == 0).any():
            raise ModelDataError(
                f"no subject of the control arm {arms.control!r} has a rated treatment-period "
                "day; the difference against it cannot be estimated"
            )
        mean = as_float(data["intensity_mean"])
        bad = np.isnan(mean) | (mean < 0) | (mean > SCALE)
        if bad.any():
            raise ModelDataError(
                f"intensity_mean must lie in 0-10; {int(bad.sum())} subject(s) break this, "
                f"e.g. {list(data['subject_id'].astype(str)[bad][:5])}"
            )
        n = len(data)
        y = squeeze(mean / SCALE, n)
        x_c, centre, n_imputed = _baseline(data, n, cfg["missing_baseline"])
        d_c, days_centre = _log_days(data)
        subject_data = xr.Dataset(
            {
                "arm": ("subject", data["arm"].astype(str).to_numpy()),
                "y": ("subject", y),
                "x_baseline": ("subject", x_c),
                "log_days": ("subject", d_c),
            },
            coords={"subject": keys.to_numpy()},
        )
        return PreparedData(
            data={
                "log_y": np.log(y),
                "log1m_y": np.log1p(-y),
                "arm_idx": arm_idx,
                "x_baseline": x_c,
                "log_days": d_c,
            },
            coords={"arm": list(arms.active)},
            constants={
                "n_squeeze": n,
                "runin_logit_centre": centre,
                "log_days_centre": days_centre,
                "n_baseline_imputed": n_imputed,
                "control_arm": arms.control,
            },
            subject_data=subject_data,
        )

    # ---- model ------------------------------------------------------------------------------
    def _build(self, prepared: PreparedData) -> pm.Model:
        import pymc as pm
        import pytensor.tensor as pt

        # float64 scalars: PyTensor would store a Python float that float32 represents exactly
        # (0.5, 1.5) as float32, and the priors' precision terms would be computed in float32.
        cfg = {k: np.float64(v) for k, v in self.model_config.items() if k.startswith("prior_")}
        coords = {k: v for k, v in prepared.coords.items() if v}
        with pm.Model(coords=coords) as model:
            log_y = pm.Data("log_y", prepared.data["log_y"])
            log1m_y = pm.Data("log1m_y", prepared.data["log1m_y"])
            arm_idx = pm.Data("arm_idx", prepared.data["arm_idx"])
            x = pm.Data("x_baseline", prepared.data["x_baseline"])
            log_days = pm.Data("log_days", prepared.data["log_days"])

            alpha = pm.Normal("alpha", cfg["prior_alpha_mu"], cfg["prior_alpha_sd"])
            beta = pm.Normal("beta", 0.0, cfg["prior_beta_sd"], dims="arm")
            b = pm.Normal("b", cfg["prior_b_mu"], cfg["prior_b_sd"])
            phi = pm.LogNormal("phi", cfg["prior_phi_mu"], cfg["prior_phi_sd"])
            g = pm.Normal("g", cfg["prior_g_mu"], cfg["prior_g_sd"])

            mu = pt.sigmoid(alpha + pt.concatenate([pt.zeros(1), beta])[arm_idx] + b * x)
            phi_i = phi * pt.exp(g * log_days)  # precision grows with the days rated
            a, c = mu * phi_i, (1.0 - mu) * phi_i
            per_row = (
                pt.gammaln(phi_i)
                - pt.gammaln(a)
                - pt.gammaln(c)
                + (a - 1.0) * log_y
                + (c - 1.0) * log1m_y
            )
            pm.Potential("intensity_loglik", pt.sum(per_row))
        return model

    # ---- post-processing --------------------------------------------------------------------
    def pointwise_log_likelihood(self, idata: xr.DataTree, prepared: PreparedData) -> xr.DataArray:
        """Beta log-density of each subject's squeezed mean, per draw (chain, draw, subject)."""
        sd = prepared.subject_data
        post = idata["posterior"]
        eta = post["alpha"] + arm_effect(post["beta"], prepared.data["arm_idx"], sd)
        eta = (eta + post["b"] * sd["x_baseline"]).transpose("chain", "draw", "subject")
        phi = post["phi"] * np.exp(post["g"] * sd["log_days"])
        phi = phi.transpose("chain", "draw", "subject").values
        values = beta_loglik(sd["y"].values, special.expit(eta.values), phi)
        return xr.DataArray(values, coords=eta.coords, dims=eta.dims, name="y")


def _log_days(data: pd.DataFrame) -> tuple[np.ndarray, float]:
    """Centred log of the days behind each subject's mean, and the centre.

    ``weight_days`` (from :func:`intensity_frame`) or, in frames without it, ``n_rated_days``.
    """
    column = "weight_days" if "weight_days" in data.columns else "n_rated_days"
    require_columns(data, [column], "intensity data")
    days = as_float(data[column])
    if np.isnan(days).any() or (days < 1).any():
        raise ModelDataError(
            f"{column} must be >= 1 for every subject (the days behind the subject's mean)"
        )
    log_days = np.log(days)
    centre = float(log_days.mean())
    return log_days - centre, centre


def _baseline(data: pd.DataFrame, n: int, missing: str) -> tuple[np.ndarray, float, int]:
    """Centred logit of the squeezed run-in mean, its centre and the number imputed."""
    runin = as_float(data["runin_intensity_mean"])
    absent = np.isnan(runin)
    if ((runin[~absent] < 0) | (runin[~absent] > SCALE)).any():
        raise ModelDataError("runin_intensity_mean must lie in 0-10")
    if absent.any() and missing != "mean":
        raise ModelDataError(
            f"runin_intensity_mean is missing for {int(absent.sum())} subject(s) "
            f"(e.g. {list(data['subject_id'].astype(str)[absent][:5])}: no rated run-in day); "
            "the intensity model adjusts for the run-in mean: set model config "
            "missing_baseline='mean' to impute it"
        )
    if absent.all():
        raise ModelDataError("runin_intensity_mean is missing for every subject")
    x = special.logit(squeeze(np.where(absent, 0.5, runin / SCALE), n))
    return centre_covariate(x, absent)


# --------------------------------------------------------------------------------------------
# Effects
# --------------------------------------------------------------------------------------------
def standardised_difference(
    alpha: Any, beta: Any, b: Any, x: np.ndarray, n_squeeze: int
) -> np.ndarray:
    """Mean over subjects of E[intensity | arm] - E[intensity | control] on the 0-10 scale.

    Parameters
    ----------
    alpha, beta, b
        Intercept, the arm's coefficient and the run-in slope (arrays broadcasting together,
        e.g. one value per draw).
    x
        Centred run-in covariate of the subjects standardised over, ``(n_subjects,)``.
    n_squeeze
        ``n`` of the Smithson-Verkuilen transform applied to the data (undone here).

    Returns
    -------
    numpy.ndarray
        The difference, shape of the broadcast parameters.
    """
    base = np.asarray(alpha)[..., None] + np.asarray(b)[..., None] * x
    diff = special.expit(base + np.asarray(beta)[..., None]) - special.expit(base)
    return SCALE * n_squeeze / (n_squeeze - 1) * diff.mean(axis=-1)


def difference_draws(idata: xr.DataTree) -> xr.DataArray:
    """Posterior draws of the standardised difference in mean intensity of every active arm.

    Parameters
    ----------
    idata
        An :class:`IntensityModel` fit (its ``constant_data`` holds the subjects' run-in
        covariate, standardised over).

    Returns
    -------
    xarray.DataArray
        ``(arm, sample)``: per active arm and draw (chains concatenated) the difference versus
        control on the 0-10 scale (:func:`standardised_difference`); negative is benefit. The
        decisions of an intensity primary endpoint read these draws.
    """
    post = idata["posterior"]
    constants = json.loads(post.attrs[f"{ATTR_PREFIX}constants"])
    x = idata["constant_data"]["x_baseline"].values
    alpha, b = np.ravel(post["alpha"].values), np.ravel(post["b"].values)
    arms = [str(a) for a in post["beta"]["arm"].values]
    values = [
        standardised_difference(
            alpha, np.ravel(post["beta"].sel(arm=arm).values), b, x, constants["n_squeeze"]
        )
        for arm in arms
    ]
    return xr.DataArray(np.stack(values), dims=("arm", "sample"), coords={"arm": arms})


def intensity_effects(idata: xr.DataTree, level: float = 0.95) -> pd.DataFrame:
    """Standardised difference in mean intensity, every active arm against control.

    Parameters
    ----------
    idata
        An :class:`IntensityModel` fit (its ``constant_data`` holds the subjects' run-in
        covariate, standardised over).
    level
        Probability of the equal-tailed credible interval.

    Returns
    -------
    pandas.DataFrame
        ``arm, comparator, measure, estimate_median, lower, upper, p_benefit``; ``measure`` is
        ``difference_in_mean_intensity`` (0-10 scale) and ``p_benefit = P(difference < 0)``
        (lower intensity).
    """
    lo, hi = interval_bounds(level)
    draws = difference_draws(idata)
    control = json.loads(idata["posterior"].attrs[f"{ATTR_PREFIX}constants"])["control_arm"]
    rows = []
    for arm in draws["arm"].values:
        diff = draws.sel(arm=arm).values
        q = np.quantile(diff, [0.5, lo, hi])
        rows.append(
            {
                "arm": str(arm),
                "comparator": control,
                "measure": MEASURE,
                "estimate_median": float(q[0]),
                "lower": float(q[1]),
                "upper": float(q[2]),
                "p_benefit": float(np.mean(diff < 0.0)),
            }
        )
    return pd.DataFrame(rows, columns=EFFECT_COLUMNS)


# --------------------------------------------------------------------------------------------
# Frequentist twin
# --------------------------------------------------------------------------------------------
def intensity_twin(
    frame: pd.DataFrame,
    control_arm: str = "placebo",
    level: float = 0.95,
    arms: Sequence[str] | None = None,
    missing_baseline: str = "error",
) -> pd.DataFrame:
    """Frequentist twin of :class:`IntensityModel`: statsmodels ``BetaModel``.

    The same rows, squeezed outcome, arm coding and centred logit run-in covariate; logit link
    for the mean, log link for a constant precision. The standardised difference is the average
    over the analysed subjects of the fitted means under the arm minus under control (at the
    maximum-likelihood estimate, squeeze undone as in :func:`standardised_difference`); its
    standard error is the delta method's, ``sqrt(g' V g)`` with ``V`` the covariance of the mean
    coefficients and ``g`` the analytic gradient of the average,
    ``10 n/(n-1) mean_i [mu1_i (1 - mu1_i) x1_i - mu0_i (1 - mu0_i) x0_i]`` (``x1_i``, ``x0_i``
    the design rows with the arm's indicator set and cleared).

    Parameters
    ----------
    frame
        One row per subject (:func:`intensity_frame`).
    control_arm, arms, missing_baseline
        As in :attr:`IntensityModel.default_model_config`.
    level
        Confidence level of the Wald interval.

    Returns
    -------
    pandas.DataFrame
        ``arm, comparator, measure, estimate_median, lower, upper, p_benefit`` (``p_benefit``
        NaN: a frequentist fit gives no posterior probability), one row per active arm with
        data. ``attrs``: ``se`` (of the differences), ``beta`` (logit coefficients), ``b``,
        ``phi`` (precision at the mean log days), ``g`` (precision slope on the centred log
        days; 0 when the days do not vary), ``converged``.
    """
    _, hi = interval_bounds(level)
    model = IntensityModel(
        {
            "control_arm": control_arm,
            "arms": None if arms is None else list(arms),
            "missing_baseline": missing_baseline,
        }
    )
    prepared = model.prepare(frame)
    data, sd = prepared.data, prepared.subject_data
    present = [
        (i, arm)
        for i, arm in enumerate(prepared.coords["arm"], start=1)
        if (data["arm_idx"] == i).any()
    ]
    n, n_arm = len(data["arm_idx"]), len(present)
    arm_cols = [(data["arm_idx"] == i).astype(float) for i, _ in present]
    X = np.column_stack([np.ones(n), *arm_cols, data["x_baseline"]])
    names = ["alpha", *(f"beta[{arm}]" for _, arm in present), "b"]
    # precision: intercept and the centred log days (dropped when every subject has the same
    # days, where the slope is not identified)
    log_days = np.asarray(data["log_days"], dtype=float)
    varies = bool(np.ptp(log_days) > 1e-12)
    Z = np.column_stack([np.ones(n), log_days]) if varies else np.ones((n, 1))
    # Newton with BetaModel's analytic Hessian converges in a handful of steps (BFGS with a
    # tight gradient tolerance stalls on the flat precision direction).
    result = BetaModel(
        sd["y"].values,
        pd.DataFrame(X, columns=names),
        exog_precision=pd.DataFrame(Z, columns=["log phi", "g"][: Z.shape[1]]),
    ).fit(method="newton", maxiter=100, disp=False)
    k = X.shape[1]
    coef = np.asarray(result.params)[:k]
    cov = np.asarray(result.cov_params())[:k, :k]
    scale = SCALE * prepared.constants["n_squeeze"] / (prepared.constants["n_squeeze"] - 1)
    x0 = X.copy()
    x0[:, 1 : 1 + n_arm] = 0.0
    mu0 = special.expit(x0 @ coef)
    est, se = np.empty(n_arm), np.empty(n_arm)
    for j in range(n_arm):
        x1 = x0.copy()
        x1[:, 1 + j] = 1.0
        mu1 = special.expit(x1 @ coef)
        est[j] = scale * np.mean(mu1 - mu0)
        grad = scale * ((mu1 * (1 - mu1))[:, None] * x1 - (mu0 * (1 - mu0))[:, None] * x0).mean(0)
        se[j] = math.sqrt(float(grad @ cov @ grad))
    crit = stats.norm.ppf(hi)
    out = pd.DataFrame(
        {
            "arm": [arm for _, arm in present],
            "comparator": model.model_config["control_arm"],
            "measure": MEASURE,
            "estimate_median": est,
            "lower": est - crit * se,
            "upper": est + crit * se,
            "p_benefit": np.nan,
        },
        columns=EFFECT_COLUMNS,
    )
    # attrs hold plain Python values: pandas compares attrs when concatenating tables.
    out.attrs.update(
        se=[float(v) for v in se],
        beta=[float(v) for v in coef[1 : 1 + n_arm]],
        b=float(coef[1 + n_arm]),
        phi=float(np.exp(np.asarray(result.params)[k])),
        g=float(np.asarray(result.params)[k + 1]) if varies else 0.0,
        converged=bool(result.mle_retvals["converged"]),
    )
    return out
