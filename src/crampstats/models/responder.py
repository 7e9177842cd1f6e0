"""``responder``: proportion of patients whose cramp rate at least halves (parallel designs).

Definition (prespecified)
-------------------------
A patient's *rate reduction* compares their treatment-period cramp rate with their run-in
rate::

    reduction_i = 1 - (count_i / exposure_days_i) / (runin_count_i / runin_days_i)

and the patient is a *responder* when ``reduction_i >= threshold`` (default 0.5: at least a
50 % reduction; trial config ``analysis.secondary.responder_threshold``). Counts and days are
those of the derived ``periods`` dataset (:func:`crampstats.derive.subject_periods`): missing
diary days reduce exposure and never count as zero cramps. Withdrawal is handled by a
declared strategy (below).

Withdrawal (intercurrent event, ICH E9(R1))
--------------------------------------------
A withdrawn patient (``withdrawn`` in ``periods``) is a non-responder by default
(``withdrawal="composite"``; config ``responder_withdrawal``): the composite strategy, in
which stopping the trial is itself an unfavourable outcome. Judging a withdrawn patient on the
few days diarised (``withdrawal="observed"``, the earlier behaviour) credits short, noisy diaries
with responses: in a simulation with no true effect (4,000 patients an arm, dropout 8 % and
32 %; ``tests/models/test_responder.py``), 26 % of withdrawn patients against 18 % of completers
came out as responders, and the arm with more dropout showed 21 % responders against 18 %. Under
the composite strategy an arm's responder proportion is ``P(completes and responds)``; with no
true effect the arms then differ only by their completion rates, never by the length of the
withdrawn patients' diaries (tested).

A patient without a treatment-period diary (``exposure_days == 0``) has no rate to judge.
With ``missing="nonresponder"`` (default; config ``responder_missing``) they count as
non-responders: the conservative intention-to-treat rule (every randomised patient stays in
the denominator, and nobody is credited with a response that was not seen). With
``missing="exclude"`` they are left out (a complete-case analysis). The same rule applies to
a patient whose run-in rate is undefined (no run-in days) or zero (no run-in cramps, so no
reduction is possible); the inclusion threshold (docs/calibration.md, "inclusion threshold" row,
>= 4 cramps per 2 weeks) normally keeps such patients out of the trial.
:func:`responder_frame` records how many patients each rule touched.

Model
-----
``responder_i ~ Bernoulli(p_i)`` with ::

    logit p_i = alpha + log_or[arm_i] (+ b * x_i)

``alpha`` the control arm's log odds of response, ``log_or`` the log odds ratio of each other
arm against control (0 for control). With ``adjust_baseline=True`` the standardised run-in log
rate ``x_i`` (``log_baseline_rate``, mean 0 and SD 1 over the analysed patients; a patient
without one gets 0, the mean, White & Thompson 2005, Stat Med 24:993) enters too; the effect
measures are then *standardised* over the analysed patients (g-computation: each patient's
probability of response under each arm, averaged over all patients), so they stay marginal,
population-average risk differences, comparable with the unadjusted analysis.
The default is unadjusted, the same comparison as the twin.

The likelihood is a ``pm.Potential`` holding the Bernoulli log-likelihood written out,
``sum_i y_i * eta_i - log(1 + exp(eta_i))``; the pointwise log-likelihood of
:meth:`ResponderModel.pointwise_log_likelihood` sums to it exactly (tested).

Effect measures (one pair of rows per active arm)
-------------------------------------------------
- ``risk_difference``: ``P(responder | arm) - P(responder | control)``;
- ``risk_ratio``: ``P(responder | arm) / P(responder | control)``.

More responders is better: ``p_benefit = P(risk_difference > 0 | data)`` on both rows (the
same event as ``risk_ratio > 1``).

Priors (weakly informative; docs/calibration.md rows cited)
------------------------------------------------------
- ``alpha ~ Normal(logit 0.25, 1.5)``: "placebo response" row: the control arm's rate falls by
  about 25-29 % against run-in on average and the between-patient spread ("overdispersion"
  row, k = 3) puts roughly a quarter of control patients past a 50 % reduction. SD 1.5 gives
  95 % prior mass on 2-86 % responders.
- ``log_or ~ Normal(0, 2.5)``: centred on no effect; scale 2.5, the default weakly informative
  scale for logistic regression coefficients (Gelman et al. 2008, Ann Appl Stat 2:1360). A
  narrower prior would pull real effects towards 0: with 40 patients an arm the standard error
  of a log odds ratio is about 0.5, and a prior SD of 1 would shrink the estimate by about
  20 %, SD 2.5 by about 4 %. The largest published effect (mexiletine 900 mg, "Therapy
  effects" rows, RR ~0.16 on cramp frequency) turns most patients into responders, an odds
  ratio of 10-30, 0.9-1.4 prior SDs out.
- ``b ~ Normal(0, 1)`` (adjusted model only): log odds ratio per SD of the run-in log rate.

Twin: :func:`responder_twin`, per active arm the two-sample comparison of proportions with
statsmodels ``confint_proportions_2indep``: Newcombe's hybrid score interval for the risk
difference and the log-adjusted (Gart-Nam) interval for the risk ratio, both well-behaved with
zero cells (Fagerland et al. 2015, Stat Methods Med Res 24:224).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import pandas as pd
import xarray as xr
from scipy import special
from statsmodels.stats.proportion import confint_proportions_2indep

from crampstats.engine import ATTR_PREFIX, BayesModel, PreparedData
from crampstats.models._common import (
    ModelDataError,
    arm_coding,
    arm_effect,
    as_float,
    interval_bounds,
    require_columns,
    subject_keys,
)

if TYPE_CHECKING:
    import pymc as pm

__all__ = [
    "EFFECT_COLUMNS",
    "ResponderModel",
    "responder_effects",
    "responder_frame",
    "responder_twin",
    "response_probabilities",
    "two_proportion_rows",
]

EFFECT_COLUMNS = ["arm", "comparator", "measure", "estimate_median", "lower", "upper", "p_benefit"]
MEASURES = ("risk_difference", "risk_ratio")
MISSING_RULES = ("nonresponder", "exclude")
#: Strategies for withdrawal: ``composite`` (non-response, default) or ``observed`` (judged on
#: the days diarised before withdrawal).
WITHDRAWAL_RULES = ("composite", "observed")
#: Columns of ``periods`` the responder definition needs.
PERIODS_REQUIRED = ("subject_id", "arm", "count", "exposure_days", "runin_count", "runin_days")
#: Columns of the model's input frame (:func:`responder_frame`) the model needs.
REQUIRED = ("subject_id", "arm", "responder")
#: Reductions within this of the threshold count as reaching it (floating-point rounding).
_ROUNDING = 1e-9
#: docs/calibration.md, "placebo response" row: about a quarter of control patients halve
#: their rate.
CONTROL_RESPONSE = 0.25


# --------------------------------------------------------------------------------------------
# Analysis frame
# --------------------------------------------------------------------------------------------
def responder_frame(
    derived: Mapping[str, pd.DataFrame],
    threshold: float = 0.5,
    missing: str = "nonresponder",
    withdrawal: str = "composite",
) -> pd.DataFrame:
    """Build the model's input: one row per randomised patient with their responder status.

    Parameters
    ----------
    derived
        Derived datasets (:func:`crampstats.derive.derive_all`); uses ``periods`` (the
        ``treatment`` row of each patient of a parallel design).
    threshold
        Relative reduction from the run-in rate that makes a responder, in ``(0, 1]``.
    missing
        ``"nonresponder"`` (default): a patient without a treatment diary, or without a positive
        run-in rate, is a non-responder; ``"exclude"``: such patients are left out.
    withdrawal
        ``"composite"`` (default): a withdrawn patient (``withdrawn`` true) is a non-responder
        and stays in the analysis whatever their diary; ``"observed"``: a withdrawn patient is
        judged on the treatment days diarised before withdrawal, like a completer. Without a
        ``withdrawn`` column nobody is withdrawn.

    Returns
    -------
    pandas.DataFrame
        ``trial_id`` (when present), ``subject_id, arm, count, exposure_days, runin_count,
        runin_days``, ``log_baseline_rate`` and ``withdrawn`` (when present), ``rate_reduction``
        (NaN when undefined), ``evaluable`` (both rates defined) and ``responder`` (0/1).
        ``attrs``: ``threshold``, ``missing``, ``withdrawal``, ``n_no_treatment_diary``,
        ``n_no_runin_rate``, ``n_excluded``, ``n_withdrawn`` (withdrawn patients analysed) and
        ``n_withdrawn_nonresponder`` (withdrawn patients who would have counted as responders on
        their diarised days but are non-responders under the composite strategy).

    Raises
    ------
    ModelDataError
        No ``periods`` data, columns missing, not a parallel design, or a patient with two
        treatment rows.
    ValueError
        If ``threshold`` or ``missing`` is not allowed.
    """
    if not 0.0 < float(threshold) <= 1.0:
        raise ValueError(f"responder threshold must be in (0, 1], got {threshold}")
    if missing not in MISSING_RULES:
        raise ValueError(f"responder missing rule must be one of {MISSING_RULES}, got {missing!r}")
    if withdrawal not in WITHDRAWAL_RULES:
        raise ValueError(
            f"responder withdrawal strategy must be one of {WITHDRAWAL_RULES}, got {withdrawal!r}"
        )
    periods = derived.get("periods")
    if periods is None or periods.empty:
        raise ModelDataError(
            "the responder endpoint needs the derived `periods` dataset; the trial has none"
        )
    require_columns(periods, PERIODS_REQUIRED, "periods data")
    if "period" in periods.columns:
        labels = set(periods["period"].astype(str))
        if labels != {"treatment"}:
            raise ModelDataError(
                f"the responder endpoint compares arms of a parallel design (one `treatment` "
                f"row per patient); periods data have periods {sorted(labels)} (crossover and "
                "N-of-1 designs are not supported)"
            )
    keys = subject_keys(periods)
    if keys.duplicated().any():
        raise ModelDataError(
            f"periods data have more than one treatment row for patient(s) "
            f"{sorted(set(keys[keys.duplicated()]))[:5]}"
        )
    count, exposure = as_float(periods["count"]), as_float(periods["exposure_days"])
    runin_count, runin_days = as_float(periods["runin_count"]), as_float(periods["runin_days"])
    values = np.column_stack([count, exposure, runin_count, runin_days])
    if np.isnan(values).any() or (values < 0).any():
        raise ModelDataError(
            "count, exposure_days, runin_count and runin_days must be >= 0 and not missing"
        )
    treated = exposure > 0
    has_rate = (runin_days > 0) & (runin_count > 0)
    evaluable = treated & has_rate
    with np.errstate(divide="ignore", invalid="ignore"):
        reduction = 1.0 - (count / exposure) / (runin_count / runin_days)
    reduction = np.where(evaluable, reduction, np.nan)
    responder = evaluable & (reduction >= float(threshold) - _ROUNDING)
    withdrawn = (
        periods["withdrawn"].fillna(False).astype(bool).to_numpy()
        if "withdrawn" in periods.columns
        else np.zeros(len(periods), dtype=bool)
    )
    composite = withdrawal == "composite"
    n_overridden = int((responder & withdrawn).sum()) if composite else 0
    if composite:
        responder = responder & ~withdrawn

    cols = [
        c
        for c in ("trial_id", *PERIODS_REQUIRED, "log_baseline_rate", "withdrawn")
        if c in periods.columns
    ]
    out = periods[cols].copy()
    out["rate_reduction"] = reduction
    out["evaluable"] = evaluable
    out["responder"] = responder.astype(np.int64)
    # the composite strategy judges every withdrawn patient (a non-responder), evaluable or not
    kept = evaluable | withdrawn if composite else evaluable
    if missing == "exclude":
        out = out.loc[kept]
    out = out.reset_index(drop=True)
    # attrs hold plain Python values: pandas compares attrs when concatenating tables.
    out.attrs.update(
        threshold=float(threshold),
        missing=missing,
        withdrawal=withdrawal,
        n_no_treatment_diary=int((~treated).sum()),
        n_no_runin_rate=int((treated & ~has_rate).sum()),
        n_excluded=int((~kept).sum()) if missing == "exclude" else 0,
        n_withdrawn=int((withdrawn & kept).sum() if missing == "exclude" else withdrawn.sum()),
        n_withdrawn_nonresponder=n_overridden,
    )
    return out


def _responders(frame: pd.DataFrame) -> np.ndarray:
    """Return the ``responder`` column as int64, refusing anything but 0/1."""
    values = as_float(frame["responder"])
    bad = ~np.isin(values, (0.0, 1.0))
    if bad.any():
        raise ModelDataError(
            f"responder must be 0 or 1; {int(bad.sum())} row(s) break this "
            f"(e.g. {list(frame['subject_id'].astype(str)[bad][:5])})"
        )
    return values.astype(np.int64)


# --------------------------------------------------------------------------------------------
# Bayesian model
# --------------------------------------------------------------------------------------------
class ResponderModel(BayesModel):
    """Logistic model of responder status by arm (optionally adjusted for the run-in rate).

    Parameters
    ----------
    model_config
        Overrides of :attr:`default_model_config`: ``control_arm`` (``"placebo"``), ``arms``
        (all arms, or ``None`` for those in the data), ``adjust_baseline`` (``False``; module
        docstring) and the priors ``prior_alpha_mu``, ``prior_alpha_sd``,
        ``prior_log_or_sd``, ``prior_b_sd``.
    sampler_config
        Overrides of the sampler defaults (:class:`crampstats.engine.BayesModel`).

    Examples
    --------
    >>> frame = responder_frame(derived, threshold=0.5)  # doctest: +SKIP
    >>> idata = ResponderModel().fit(frame, seed=1, cores=2)  # doctest: +SKIP
    >>> responder_effects(idata)  # doctest: +SKIP
    """

    name: ClassVar[str] = "responder"
    default_model_config: ClassVar[dict[str, Any]] = {
        "control_arm": "placebo",
        "arms": None,
        "adjust_baseline": False,
        "prior_alpha_mu": float(special.logit(CONTROL_RESPONSE)),
        "prior_alpha_sd": 1.5,
        "prior_log_or_sd": 2.5,
        "prior_b_sd": 1.0,
    }

    def __init__(
        self,
        model_config: Mapping[str, Any] | None = None,
        sampler_config: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(model_config, sampler_config)
        if not isinstance(self.model_config["adjust_baseline"], bool):
            raise ValueError(
                f"adjust_baseline must be true or false, "
                f"got {self.model_config['adjust_baseline']!r}"
            )

    @property
    def adjusted(self) -> bool:
        """Whether the run-in log rate enters the linear predictor."""
        return bool(self.model_config["adjust_baseline"])

    # ---- data -------------------------------------------------------------------------------
    def prepare(self, data: pd.DataFrame) -> PreparedData:
        """Turn a :func:`responder_frame` into model arrays (one row per patient)."""
        if data.empty:
            raise ModelDataError("the responder data have no patients")
        require_columns(data, REQUIRED, "responder data (build it with responder_frame)")
        cfg = self.model_config
        arms = arm_coding(data["arm"], cfg["control_arm"], cfg["arms"])
        arm_idx = arms.index(data["arm"])
        if not (arm_idx == 0).any():
            raise ModelDataError(
                f"the control arm {arms.control!r} has no patients in the responder data"
            )
        arrays = {"y": _responders(data), "arm_idx": arm_idx}
        x, centre, scale, n_imputed = np.zeros(len(data)), 0.0, 1.0, 0
        if self.adjusted:
            require_columns(data, ["log_baseline_rate"], "responder data")
            x, centre, scale, n_imputed = _standardised_baseline(data)
            arrays["x_baseline"] = x
        subject_data = xr.Dataset(
            {
                "arm": ("subject", data["arm"].astype(str).to_numpy()),
                "responder": ("subject", arrays["y"]),
                "x_baseline": ("subject", x),
            },
            coords={"subject": subject_keys(data).to_numpy()},
        )
        return PreparedData(
            data=arrays,
            coords={"arm": list(arms.active)},
            constants={
                "control_arm": arms.control,
                "log_baseline_rate_centre": centre,
                "log_baseline_rate_scale": scale,
                "n_baseline_imputed": n_imputed,
            },
            subject_data=subject_data,
        )

    # ---- model ------------------------------------------------------------------------------
    def _build(self, prepared: PreparedData) -> pm.Model:
        import pymc as pm
        import pytensor.tensor as pt

        # float64 scalars, so that the priors' terms are not computed in float32
        cfg = {k: np.float64(v) for k, v in self.model_config.items() if k.startswith("prior_")}
        coords = {k: v for k, v in prepared.coords.items() if v}
        with pm.Model(coords=coords) as model:
            y = pm.Data("y", prepared.data["y"])
            arm_idx = pm.Data("arm_idx", prepared.data["arm_idx"])
            alpha = pm.Normal("alpha", cfg["prior_alpha_mu"], cfg["prior_alpha_sd"])
            log_or = pm.Normal("log_or", 0.0, cfg["prior_log_or_sd"], dims="arm")
            eta = alpha + pt.concatenate([pt.zeros(1), log_or])[arm_idx]
            if self.adjusted:
                x = pm.Data("x_baseline", prepared.data["x_baseline"])
                b = pm.Normal("b", 0.0, cfg["prior_b_sd"])
                eta = eta + b * x
            # Bernoulli log-likelihood with a logit link: y * eta - log(1 + exp(eta))
            pm.Potential("responder_loglik", pt.sum(y * eta - pt.softplus(eta)))
        return model

    # ---- post-processing --------------------------------------------------------------------
    def pointwise_log_likelihood(self, idata: xr.DataTree, prepared: PreparedData) -> xr.DataArray:
        """Bernoulli log-probability of each patient's status, per draw (chain, draw, subject)."""
        sd = prepared.subject_data
        post = idata["posterior"]
        eta = post["alpha"] + arm_effect(post["log_or"], prepared.data["arm_idx"], sd)
        if "b" in post:
            eta = eta + post["b"] * sd["x_baseline"]
        eta = eta.transpose("chain", "draw", "subject")
        loglik = sd["responder"] * eta - np.logaddexp(0.0, eta)
        return loglik.transpose("chain", "draw", "subject").rename("y")


def _standardised_baseline(data: pd.DataFrame) -> tuple[np.ndarray, float, float, int]:
    """Run-in log rate standardised over the patients, missing values at the mean (0)."""
    values = as_float(data["log_baseline_rate"])
    bad = ~np.isfinite(values)
    if bad.all():
        raise ModelDataError(
            "log_baseline_rate is missing for every patient; set adjust_baseline to false"
        )
    centre = float(values[~bad].mean())
    scale = float(values[~bad].std()) or 1.0
    return np.where(bad, 0.0, (values - centre) / scale), centre, scale, int(bad.sum())


# --------------------------------------------------------------------------------------------
# Effects
# --------------------------------------------------------------------------------------------
def response_probabilities(idata: xr.DataTree) -> xr.DataArray:
    """Posterior probability of response under each arm, control first.

    Parameters
    ----------
    idata
        A :class:`ResponderModel` fit.

    Returns
    -------
    xarray.DataArray
        Dims ``(chain, draw, arm)`` with the control arm first. An adjusted fit's probabilities
        are standardised: each patient's probability under the arm, averaged over all analysed
        patients (the fit's ``constant_data``).
    """
    post = idata["posterior"]
    constants = json.loads(post.attrs[f"{ATTR_PREFIX}constants"])
    log_or = post["log_or"].transpose("chain", "draw", "arm")
    zero = xr.zeros_like(log_or.isel(arm=0, drop=True)).expand_dims(arm=[constants["control_arm"]])
    effect = xr.concat([zero, log_or], dim="arm")
    eta = post["alpha"] + effect
    if "b" in post:
        x = idata["constant_data"]["x_baseline"]
        return special.expit(eta + post["b"] * x).mean("subject").transpose("chain", "draw", "arm")
    return special.expit(eta).transpose("chain", "draw", "arm")


def responder_effects(idata: xr.DataTree, level: float = 0.95) -> pd.DataFrame:
    """Risk difference and risk ratio of response, every active arm against control.

    Parameters
    ----------
    idata
        A :class:`ResponderModel` fit.
    level
        Probability of the equal-tailed credible interval.

    Returns
    -------
    pandas.DataFrame
        ``arm, comparator, measure, estimate_median, lower, upper, p_benefit``: two rows per
        active arm, ``risk_difference`` and ``risk_ratio`` (posterior median and interval);
        more responders is better, ``p_benefit = P(risk_difference > 0)`` on both rows.
    """
    lo, hi = interval_bounds(level)
    probs = response_probabilities(idata)
    control = str(probs["arm"].values[0])
    p0 = np.ravel(probs.isel(arm=0).values)
    rows = []
    for arm in probs["arm"].values[1:]:
        p = np.ravel(probs.sel(arm=arm).values)
        rd = p - p0
        p_benefit = float(np.mean(rd > 0.0))
        for measure, draws in zip(MEASURES, (rd, p / p0), strict=True):
            q = np.quantile(draws, [0.5, lo, hi])
            rows.append(
                {
                    "arm": str(arm),
                    "comparator": control,
                    "measure": measure,
                    "estimate_median": float(q[0]),
                    "lower": float(q[1]),
                    "upper": float(q[2]),
                    "p_benefit": p_benefit,
                }
            )
    return pd.DataFrame(rows, columns=EFFECT_COLUMNS)


# --------------------------------------------------------------------------------------------
# Frequentist twin
# --------------------------------------------------------------------------------------------
def two_proportion_rows(
    arm: str,
    control: str,
    y1: int,
    n1: int,
    y0: int,
    n0: int,
    level: float,
    suffix: str = "",
    rd_method: str = "newcomb",
    rr_method: str = "log-adjusted",
) -> list[dict[str, Any]]:
    """Risk difference and risk ratio rows of ``y1/n1`` (arm) against ``y0/n0`` (control).

    Intervals from statsmodels ``confint_proportions_2indep`` (``rd_method`` for the
    difference, ``rr_method`` for the ratio). The estimates are the maximum-likelihood ones,
    ``y1/n1 - y0/n0`` and ``(y1/n1) / (y0/n0)``; the ratio is NaN when the control arm has no
    event (the maximum-likelihood ratio does not exist; its interval still does).

    Parameters
    ----------
    arm, control
        Labels of the compared arms.
    y1, n1, y0, n0
        Events and patients in the arm and in the control arm (``n1, n0 > 0``).
    level
        Confidence level.
    suffix
        Appended to the measure names (``":<category>"`` for safety).
    rd_method, rr_method
        ``method`` of ``confint_proportions_2indep`` for ``compare="diff"`` and ``"ratio"``.

    Returns
    -------
    list of dict
        Two rows with the :data:`EFFECT_COLUMNS` (``p_benefit`` NaN).
    """
    alpha = 1.0 - level
    p1, p0 = y1 / n1, y0 / n0
    with np.errstate(divide="ignore", invalid="ignore"):
        rd_ci = confint_proportions_2indep(
            y1, n1, y0, n0, method=rd_method, compare="diff", alpha=alpha
        )
        rr_ci = confint_proportions_2indep(
            y1, n1, y0, n0, method=rr_method, compare="ratio", alpha=alpha
        )
    estimates = (p1 - p0, p1 / p0 if y0 > 0 else np.nan)
    return [
        {
            "arm": arm,
            "comparator": control,
            "measure": f"{measure}{suffix}",
            "estimate_median": float(est),
            "lower": float(ci[0]),
            "upper": float(ci[1]),
            "p_benefit": np.nan,
        }
        for measure, est, ci in zip(MEASURES, estimates, (rd_ci, rr_ci), strict=True)
    ]


def responder_twin(
    frame: pd.DataFrame,
    control_arm: str = "placebo",
    level: float = 0.95,
    arms: Sequence[str] | None = None,
    rd_method: str = "newcomb",
    rr_method: str = "log-adjusted",
) -> pd.DataFrame:
    """Frequentist twin of :class:`ResponderModel`: two-sample comparisons of proportions.

    The same patients and responder status as the Bayesian model; per active arm with patients,
    the proportion of responders against the control arm's, with statsmodels
    ``confint_proportions_2indep``: Newcombe's hybrid score interval for the risk difference
    (``rd_method="newcomb"``) and the log-adjusted interval for the risk ratio
    (``rr_method="log-adjusted"``; Fagerland et al. 2015 recommend both). Always unadjusted
    (the adjusted Bayesian model's standardised effects estimate the same quantities).

    Parameters
    ----------
    frame
        One row per patient (:func:`responder_frame`).
    control_arm, arms
        As in :attr:`ResponderModel.default_model_config`.
    level
        Confidence level.
    rd_method, rr_method
        Other methods of ``confint_proportions_2indep`` (e.g. ``"score"``: Miettinen-Nurminen,
        which fails on some zero cells).

    Returns
    -------
    pandas.DataFrame
        ``arm, comparator, measure, estimate_median, lower, upper, p_benefit`` (``p_benefit``
        NaN: a frequentist fit gives no posterior probability); ``estimate_median`` is the
        maximum-likelihood estimate. ``attrs``: ``converged`` (True: closed form),
        ``rd_method``, ``rr_method``.
    """
    interval_bounds(level)
    model = ResponderModel({"control_arm": control_arm, "arms": None if arms is None else arms})
    prepared = model.prepare(frame)
    y, arm_idx = prepared.data["y"], prepared.data["arm_idx"]
    control = prepared.constants["control_arm"]
    y0, n0 = int(y[arm_idx == 0].sum()), int((arm_idx == 0).sum())
    rows: list[dict[str, Any]] = []
    for i, arm in enumerate(prepared.coords["arm"], start=1):
        n1 = int((arm_idx == i).sum())
        if n1:
            y1 = int(y[arm_idx == i].sum())
            rows += two_proportion_rows(
                arm, control, y1, n1, y0, n0, level, rd_method=rd_method, rr_method=rr_method
            )
    out = pd.DataFrame(rows, columns=EFFECT_COLUMNS)
    out.attrs.update(converged=True, rd_method=rd_method, rr_method=rr_method)
    return out
