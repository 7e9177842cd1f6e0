"""``ctf``: cramp threshold frequency at the end-of-treatment EMG visit (parallel designs).

One row per subject with an end-of-treatment CTF (the derived ``emg`` dataset,
:func:`crampstats.derive.emg_visits`, visit ``end``; :func:`ctf_frame`). The latent threshold
``CTF*_i`` (Hz) is log-normal::

    log CTF*_i ~ Normal(alpha + log_ratio[arm_i] + b * (x_i - mean x) + c * d_i, sigma)
    observed:    log CTF*_i in (log ctf_lower_i, log ctf_upper_i]

``x_i`` is the log of the subject's baseline CTF (geometric mean of the baseline visits),
``d_i`` is 1 when that baseline is censored (see below), ``alpha`` the control arm's median log
CTF at the trial's mean baseline, ``log_ratio`` the log ratio of every other arm's median CTF to
the control arm's (0 for control; the effect is a shift on the log scale, so it is the same
ratio at every baseline).

Censoring
---------
The stimulation protocol raises the frequency in steps (4 Hz start, 2 Hz steps, 40 Hz
maximum: docs/calibration.md, "CTF protocol" row), so a CTF recorded at step ``s`` says only
that the threshold lies in ``(s - step, s]`` (``(0, s]`` at the first step) and a subject
with no cramp at the maximum is right-censored: ``(max, inf)``. The likelihood uses these
bounds exactly::

    interval  (0 < lower < upper < inf):  log(Phi(z_hi) - Phi(z_lo))
    first step (lower = 0):               log Phi(z_hi)
    right-censored (upper = inf):         log(1 - Phi(z_lo)) = log Phi(-z_lo)

with ``z = (log bound - mu) / sigma``. The interval term is computed from log CDFs as
``log Phi(z_hi) + log1mexp(log Phi(z_lo) - log Phi(z_hi))`` when the lower bound is at or
below the mean (``z_lo <= 0``) and from the upper tail, ``log Phi(-z_lo) + log1mexp(log
Phi(-z_hi) - log Phi(-z_lo))``, when it is above, so neither form subtracts two numbers close
to 1; ``log Phi`` uses the scaled complementary error function in the lower tail (as SciPy's
``log_ndtr`` and PyMC's ``normal_lcdf``): :func:`crampstats.numerics.censored_logprob` and
its graph twin. ``pm.Censored`` cannot express an interval, hence a ``pm.Potential``.
Recording the step value as if exact (and the maximum for a censored subject) shrinks the
effect of an arm that raises the CTF towards 1, because more of its subjects hit the maximum;
:func:`ctf_naive_twin` does exactly that, for comparison.

Baseline
--------
``x_i = log ctf_baseline_hz``. A censored baseline visit enters the geometric mean at the
protocol maximum (what derive records), so ``x_i`` understates that subject's baseline; with
``baseline_censored="indicator"`` (default) the indicator ``d_i`` and its coefficient ``c`` are
added, the missing-indicator adjustment, which leaves the randomised comparison unbiased and
lets censored subjects have their own mean (White & Thompson 2005, Stat Med 24:993).
``baseline_censored="value"`` uses the recorded value alone. The term is in the model
whichever data are fitted (the compiled structure must not depend on the data); when no
baseline is censored ``c`` is informed by its prior only and changes nothing else. A subject
without a baseline CTF is refused (``missing_baseline="error"``, default) or given the mean
(``"mean"``, 0 after centring; White & Thompson 2005 as above), as in
:class:`crampstats.models.nb_totals.NBTotals`. Subjects without an end-of-treatment CTF
(dropouts) are not in the analysis: a complete-case comparison, valid when missingness does
not depend on the unobserved CTF given arm and baseline.

Effect measure
--------------
``ratio_of_medians = exp(log_ratio[arm])``: the arm's median CTF divided by the control arm's.
A higher threshold means cramps are harder to induce, so *benefit* is a ratio above 1:
``p_benefit = P(ratio_of_medians > 1 | data)``.

Priors (weakly informative; docs/calibration.md, "EMG endpoints" table)
------------------------------------------------------------------
- ``alpha ~ Normal(log 16, 0.5)``: "CTF, cramp-prone" row, median 16 Hz; 95 % prior mass on
  6-43 Hz, which covers the healthy row (median 21 Hz) too.
- ``log_ratio ~ Normal(0, 0.5)``: "effect of therapy on CTF" row (no consensus; default +10 %),
  centred on no effect; 95 % of the mass on ratios 0.38-2.7, so +10 % is 0.19 prior SDs.
- ``b ~ Normal(0, 1)``: baseline slope, from none (0) to proportional (1).
- ``c ~ Normal(0, 0.5)``: shift of subjects with a censored baseline (their true baseline is
  above the recorded one, so ``c`` is expected positive; the prior does not assume it).
- ``sigma ~ LogNormal(log 0.27, 0.75)``: residual SD of log CTF. The "CTF, cramp-prone" row's
  SD 4.5 Hz on a median of 16 Hz is a total log-scale SD of 0.27
  (:func:`crampstats.simulate.design.lognormal_sigma`); adjustment for baseline lowers it. 95 %
  prior mass on 0.062-1.2.

Twin: :func:`ctf_twin`, the same interval-censored log-normal likelihood and design maximised
with statsmodels ``GenericLikelihoodModel``, Wald interval on the log scale.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import pandas as pd
import statsmodels.api as sm
import xarray as xr
from scipy import stats
from statsmodels.base.model import GenericLikelihoodModel
from statsmodels.tools.numdiff import approx_fprime

from crampstats.engine import ATTR_PREFIX, BayesModel, PreparedData
from crampstats.models._common import (
    ModelDataError,
    arm_coding,
    arm_effect,
    as_float,
    require_columns,
    subject_keys,
)
from crampstats.numerics import (
    censored_logprob,
    censored_logprob_pt,
    centre_covariate,
    interval_bounds,
)

if TYPE_CHECKING:
    import pymc as pm

__all__ = [
    "CTFModel",
    "ctf_effects",
    "ctf_frame",
    "ctf_naive_twin",
    "ctf_twin",
    "interval_loglik",
]

#: Columns of the model's input frame (:func:`ctf_frame`).
REQUIRED = (
    "subject_id",
    "arm",
    "ctf_lower",
    "ctf_upper",
    "ctf_baseline_hz",
    "ctf_baseline_censored",
)
FRAME_COLUMNS = (
    "trial_id",
    "subject_id",
    "arm",
    "ctf_hz",
    "ctf_censored",
    "ctf_lower",
    "ctf_upper",
    "ctf_baseline_hz",
    "ctf_baseline_censored",
)
MEASURE = "ratio_of_medians"
EFFECT_COLUMNS = ["arm", "comparator", "measure", "estimate_median", "lower", "upper", "p_benefit"]

#: docs/calibration.md, "CTF, cramp-prone" row: median 16 Hz, SD 4.5 Hz (log-scale SD 0.27).
CTF_MEDIAN_HZ = 16.0
CTF_SIGMA_LOG = 0.27

#: log1mexp's argument is capped at -_GAP. A branch that a switch (np.where) does not take may
#: see a difference of exactly 0 (two log CDFs both 0): log1mexp(0) = -inf has an infinite
#: derivative, and 0 * inf puts NaN into the gradient unless PyTensor happens to rewrite the
#: product into the switch (local_mul_switch_sink); the cap makes the graph safe without it. A
#: taken branch reaches the cap only for an interval 1e-12 sigma wide.
_GAP = 1e-12
#: Distance (log Hz) of the stand-in for an absent bound from the present one: keeps every
#: branch finite; the stand-in is never used in a taken branch.
_STAND_IN = 1.0


# --------------------------------------------------------------------------------------------
# Log-likelihood (NumPy; the graph's twin is CTFModel._build)
# --------------------------------------------------------------------------------------------
def interval_loglik(log_lower: Any, log_upper: Any, mu: Any, sigma: Any) -> np.ndarray:
    """Log-probability that ``Normal(mu, sigma)`` lies in ``(log_lower, log_upper]``.

    Parameters
    ----------
    log_lower, log_upper
        Bounds on the log scale (broadcasting); ``-inf`` for a CTF at the first protocol step,
        ``+inf`` for a right-censored one (not both).
    mu, sigma
        Mean and SD (broadcasting against the bounds).

    Returns
    -------
    numpy.ndarray
        ``log(Phi(z_hi) - Phi(z_lo))``, stable in both tails (module docstring).
    """
    log_lower, log_upper, mu, sigma = np.broadcast_arrays(
        *(np.asarray(v, dtype=float) for v in (log_lower, log_upper, mu, sigma))
    )
    has_lo, has_hi = np.isfinite(log_lower), np.isfinite(log_upper)
    lo = np.where(has_lo, log_lower, log_upper - _STAND_IN)
    hi = np.where(has_hi, log_upper, log_lower + _STAND_IN)
    z_lo, z_hi = (lo - mu) / sigma, (hi - mu) / sigma
    return censored_logprob(z_lo, z_hi, has_lo, has_hi, gap=_GAP)


def _interval_loglik_grad(
    log_lower: np.ndarray, log_upper: np.ndarray, mu: np.ndarray, sigma: float
) -> tuple[np.ndarray, np.ndarray]:
    """Return the derivatives of :func:`interval_loglik` in ``mu`` and ``log sigma``.

    With ``P = Phi(z_hi) - Phi(z_lo)`` and ``r = phi(z) / P`` (0 for an absent bound):
    ``d log P / d mu = (r_lo - r_hi) / sigma`` and ``d log P / d log sigma = z_lo r_lo -
    z_hi r_hi``; ``r`` is formed on the log scale so that it stays finite in the tails.
    """
    log_p = interval_loglik(log_lower, log_upper, mu, sigma)
    has_lo, has_hi = np.isfinite(log_lower), np.isfinite(log_upper)
    z_lo = (np.where(has_lo, log_lower, log_upper - _STAND_IN) - mu) / sigma
    z_hi = (np.where(has_hi, log_upper, log_lower + _STAND_IN) - mu) / sigma
    with np.errstate(over="ignore"):  # only at absurd parameters, where inf is the answer
        r_lo = np.where(has_lo, np.exp(stats.norm.logpdf(z_lo) - log_p), 0.0)
        r_hi = np.where(has_hi, np.exp(stats.norm.logpdf(z_hi) - log_p), 0.0)
    return (r_lo - r_hi) / sigma, z_lo * r_lo - z_hi * r_hi


# --------------------------------------------------------------------------------------------
# Analysis frame
# --------------------------------------------------------------------------------------------
def ctf_frame(derived: Mapping[str, pd.DataFrame], end_visit: str = "end") -> pd.DataFrame:
    """Build the model's input: one row per subject with a CTF at the end-of-treatment visit.

    Parameters
    ----------
    derived
        Derived datasets (:func:`crampstats.derive.derive_all`); uses ``emg``.
    end_visit
        Name of the end-of-treatment visit (``end`` in parallel designs).

    Returns
    -------
    pandas.DataFrame
        ``trial_id`` (when present), ``subject_id, arm, ctf_hz, ctf_censored, ctf_lower,
        ctf_upper, ctf_baseline_hz, ctf_baseline_censored``. ``attrs["n_missing_ctf"]`` counts
        end-visit rows without a CTF, which are dropped.

    Raises
    ------
    ModelDataError
        No ``emg`` data, no ``arm`` column (not a parallel design), no ``end_visit`` rows, or a
        subject with two end-visit rows.
    """
    emg = derived.get("emg")
    if emg is None or emg.empty:
        raise ModelDataError("the ctf endpoint needs the derived `emg` dataset; the trial has none")
    if "arm" not in emg.columns:
        raise ModelDataError(
            "the ctf endpoint compares arms of a parallel design; the emg data have no `arm` "
            "column (crossover and N-of-1 designs are not supported)"
        )
    require_columns(emg, [c for c in FRAME_COLUMNS if c != "trial_id"] + ["visit"], "emg data")
    end = emg.loc[emg["visit"].astype(str) == end_visit]
    if end.empty:
        visits = sorted(set(emg["visit"].astype(str)))
        raise ModelDataError(
            f"emg data have no {end_visit!r} visit (visits: {visits}); the ctf endpoint compares "
            "arms at the end-of-treatment visit"
        )
    keys = subject_keys(end)
    if keys.duplicated().any():
        raise ModelDataError(
            f"emg data have more than one {end_visit!r} row for subject(s) "
            f"{sorted(set(keys[keys.duplicated()]))[:5]}"
        )
    missing = end["ctf_lower"].isna() | end["ctf_upper"].isna()
    out = end.loc[~missing, [c for c in FRAME_COLUMNS if c in end.columns]]
    out = out.reset_index(drop=True)
    out.attrs["n_missing_ctf"] = int(missing.sum())
    return out


# --------------------------------------------------------------------------------------------
# Bayesian model
# --------------------------------------------------------------------------------------------
class CTFModel(BayesModel):
    """Interval-censored log-normal model of the end-of-treatment CTF, adjusted for baseline.

    Parameters
    ----------
    model_config
        Overrides of :attr:`default_model_config`: ``control_arm`` (``"placebo"``), ``arms``
        (all arms, or ``None`` for those in the data), ``missing_baseline`` (``"error"`` or
        ``"mean"``), ``baseline_censored`` (``"indicator"`` or ``"value"``, module docstring)
        and the priors ``prior_alpha_mu``, ``prior_alpha_sd``, ``prior_log_ratio_sd``,
        ``prior_b_mu``, ``prior_b_sd``, ``prior_c_sd``, ``prior_sigma_mu`` (of log sigma),
        ``prior_sigma_sd``.
    sampler_config
        Overrides of the sampler defaults (:class:`crampstats.engine.BayesModel`).

    Examples
    --------
    >>> idata = CTFModel().fit(ctf_frame(derived), seed=1, cores=2)  # doctest: +SKIP
    >>> ctf_effects(idata)  # doctest: +SKIP
    """

    name: ClassVar[str] = "ctf"
    default_model_config: ClassVar[dict[str, Any]] = {
        "control_arm": "placebo",
        "arms": None,
        "missing_baseline": "error",
        "baseline_censored": "indicator",
        "prior_alpha_mu": math.log(CTF_MEDIAN_HZ),
        "prior_alpha_sd": 0.5,
        "prior_log_ratio_sd": 0.5,
        "prior_b_mu": 0.0,
        "prior_b_sd": 1.0,
        "prior_c_sd": 0.5,
        "prior_sigma_mu": math.log(CTF_SIGMA_LOG),
        "prior_sigma_sd": 0.75,
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
        if self.model_config["baseline_censored"] not in ("indicator", "value"):
            raise ValueError(
                f"baseline_censored must be 'indicator' or 'value', "
                f"got {self.model_config['baseline_censored']!r}"
            )

    @property
    def uses_indicator(self) -> bool:
        """Whether the censored-baseline indicator term ``c * d_i`` is in the model."""
        return self.model_config["baseline_censored"] == "indicator"

    # ---- data -------------------------------------------------------------------------------
    def prepare(self, data: pd.DataFrame) -> PreparedData:
        """Turn a :func:`ctf_frame` into model arrays (one row per subject).

        Raises
        ------
        ModelDataError
            Missing columns, no rows, duplicated subjects, bounds that are missing or not an
            interval ``0 <= lower < upper``, a non-positive baseline, a missing baseline with
            ``missing_baseline="error"``, or no subject in the control arm.
        """
        require_columns(data, REQUIRED, "ctf data")
        if data.empty:
            raise ModelDataError("ctf data have no rows: no subject has an end-of-treatment CTF")
        keys = subject_keys(data)
        if keys.duplicated().any():
            raise ModelDataError(
                f"ctf data need one row per subject; duplicated: "
                f"{sorted(set(keys[keys.duplicated()]))[:5]}"
            )
        cfg = self.model_config
        arms = arm_coding(data["arm"], cfg["control_arm"], cfg["arms"])
        arm_idx = arms.index(data["arm"])
        if not (arm_idx == 0).any():
            raise ModelDataError(
                f"no subject of the control arm {arms.control!r} has an end-of-treatment CTF; "
                "the ratio of medians against it cannot be estimated"
            )
        log_lower, log_upper = _log_bounds(data)
        x_c, centre, n_imputed = _baseline(data, cfg["missing_baseline"])
        cens = data["ctf_baseline_censored"].astype("boolean").fillna(False)
        d = cens.to_numpy(dtype=float)
        has_lo, has_hi = np.isfinite(log_lower), np.isfinite(log_upper)
        arrays = {
            "log_lower": np.where(has_lo, log_lower, log_upper - _STAND_IN),
            "log_upper": np.where(has_hi, log_upper, log_lower + _STAND_IN),
            "has_lower": has_lo.astype(float),
            "has_upper": has_hi.astype(float),
            "arm_idx": arm_idx,
            "x_baseline": x_c,
        }
        if self.uses_indicator:
            arrays["baseline_censored"] = d
        subject_data = xr.Dataset(
            {
                "arm": ("subject", data["arm"].astype(str).to_numpy()),
                "log_lower": ("subject", log_lower),
                "log_upper": ("subject", log_upper),
                "x_baseline": ("subject", x_c),
                "baseline_censored": ("subject", d),
            },
            coords={"subject": keys.to_numpy()},
        )
        return PreparedData(
            data=arrays,
            coords={"arm": list(arms.active)},
            constants={
                "log_baseline_ctf_centre": centre,
                "n_baseline_imputed": n_imputed,
                "n_baseline_censored": int(d.sum()),
                "n_right_censored": int((~has_hi).sum()),
                "control_arm": arms.control,
            },
            subject_data=subject_data,
        )

    # ---- model ------------------------------------------------------------------------------
    def _build(self, prepared: PreparedData) -> pm.Model:
        import pymc as pm
        import pytensor.tensor as pt

        # float64 scalars: PyTensor stores a Python float that float32 represents exactly (0.75)
        # as float32, and the priors' precision terms are then computed in float32.
        cfg = {k: np.float64(v) for k, v in self.model_config.items() if k.startswith("prior_")}
        coords = {k: v for k, v in prepared.coords.items() if v}
        with pm.Model(coords=coords) as model:
            log_lower = pm.Data("log_lower", prepared.data["log_lower"])
            log_upper = pm.Data("log_upper", prepared.data["log_upper"])
            has_lower = pm.Data("has_lower", prepared.data["has_lower"])
            has_upper = pm.Data("has_upper", prepared.data["has_upper"])
            arm_idx = pm.Data("arm_idx", prepared.data["arm_idx"])
            x = pm.Data("x_baseline", prepared.data["x_baseline"])

            alpha = pm.Normal("alpha", cfg["prior_alpha_mu"], cfg["prior_alpha_sd"])
            log_ratio = pm.Normal("log_ratio", 0.0, cfg["prior_log_ratio_sd"], dims="arm")
            b = pm.Normal("b", cfg["prior_b_mu"], cfg["prior_b_sd"])
            sigma = pm.LogNormal("sigma", cfg["prior_sigma_mu"], cfg["prior_sigma_sd"])

            effect = pt.concatenate([pt.zeros(1), log_ratio])
            mu = alpha + effect[arm_idx] + b * x
            if self.uses_indicator:
                d = pm.Data("baseline_censored", prepared.data["baseline_censored"])
                c = pm.Normal("c", 0.0, cfg["prior_c_sd"])
                mu = mu + c * d
            per_row = censored_logprob_pt(
                (log_lower - mu) / sigma,
                (log_upper - mu) / sigma,
                pt.gt(has_lower, 0.5),
                pt.gt(has_upper, 0.5),
                gap=_GAP,
            )
            pm.Potential("ctf_loglik", pt.sum(per_row))
        return model

    # ---- post-processing --------------------------------------------------------------------
    def _mu(self, idata: xr.DataTree, prepared: PreparedData) -> xr.DataArray:
        """Mean log CTF of every subject per draw (dims chain, draw, subject)."""
        sd = prepared.subject_data
        post = idata["posterior"]
        mu = (
            post["alpha"]
            + arm_effect(post["log_ratio"], prepared.data["arm_idx"], sd)
            + post["b"] * sd["x_baseline"]
        )
        if self.uses_indicator:
            mu = mu + post["c"] * sd["baseline_censored"]
        return mu.transpose("chain", "draw", "subject")

    def pointwise_log_likelihood(self, idata: xr.DataTree, prepared: PreparedData) -> xr.DataArray:
        """Interval log-probability of each subject's end CTF, per draw (chain, draw, subject)."""
        sd = prepared.subject_data
        mu = self._mu(idata, prepared)
        sigma = idata["posterior"]["sigma"].transpose("chain", "draw")
        values = interval_loglik(
            sd["log_lower"].values, sd["log_upper"].values, mu.values, sigma.values[..., None]
        )
        return xr.DataArray(values, coords=mu.coords, dims=mu.dims, name="y")


def _log_bounds(data: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Log of ``ctf_lower`` / ``ctf_upper`` (``-inf`` for a lower bound of 0), checked."""
    lower, upper = as_float(data["ctf_lower"]), as_float(data["ctf_upper"])
    bad = (
        np.isnan(lower)
        | np.isnan(upper)
        | (lower < 0)
        | ~(upper > lower)
        | np.isinf(lower)
        | ((lower == 0) & np.isinf(upper))
    )
    if bad.any():
        rows = list(data["subject_id"].astype(str)[bad][:5])
        raise ModelDataError(
            f"ctf_lower / ctf_upper must bound an interval 0 <= lower < upper (upper = inf when "
            f"right-censored, not both open); {int(bad.sum())} subject(s) break this, e.g. {rows}"
        )
    with np.errstate(divide="ignore"):
        return np.log(lower), np.log(upper)


def _baseline(data: pd.DataFrame, missing: str) -> tuple[np.ndarray, float, int]:
    """Centred log baseline CTF, its centre and the number imputed (``missing="mean"``)."""
    hz = as_float(data["ctf_baseline_hz"])
    absent = np.isnan(hz)
    if (hz[~absent] <= 0).any() or np.isinf(hz).any():
        raise ModelDataError("ctf_baseline_hz must be a positive, finite frequency")
    if absent.any() and missing != "mean":
        raise ModelDataError(
            f"ctf_baseline_hz is missing for {int(absent.sum())} subject(s) "
            f"(e.g. {list(data['subject_id'].astype(str)[absent][:5])}); the ctf model adjusts "
            "for the baseline CTF: supply it, or set model config missing_baseline='mean'"
        )
    if absent.all():
        raise ModelDataError("ctf_baseline_hz is missing for every subject")
    return centre_covariate(np.log(np.where(absent, 1.0, hz)), absent)


# --------------------------------------------------------------------------------------------
# Effects
# --------------------------------------------------------------------------------------------
def ctf_effects(idata: xr.DataTree, level: float = 0.95) -> pd.DataFrame:
    """Ratio of median CTF of every active arm to the control arm, from a :class:`CTFModel` fit.

    Parameters
    ----------
    idata
        The fit.
    level
        Probability of the equal-tailed credible interval.

    Returns
    -------
    pandas.DataFrame
        ``arm, comparator, measure, estimate_median, lower, upper, p_benefit``; ``measure`` is
        ``ratio_of_medians`` and ``p_benefit = P(ratio > 1)`` (a higher threshold: cramps
        harder to induce).
    """
    lo, hi = interval_bounds(level)
    post = idata["posterior"]
    constants = json.loads(post.attrs[f"{ATTR_PREFIX}constants"])
    log_ratio = post["log_ratio"]
    rows = []
    for arm in log_ratio["arm"].values:
        draws = np.ravel(log_ratio.sel(arm=arm).values)
        q = np.quantile(draws, [0.5, lo, hi])
        rows.append(
            {
                "arm": str(arm),
                "comparator": constants["control_arm"],
                "measure": MEASURE,
                "estimate_median": float(np.exp(q[0])),
                "lower": float(np.exp(q[1])),
                "upper": float(np.exp(q[2])),
                "p_benefit": float(np.mean(draws > 0.0)),
            }
        )
    return pd.DataFrame(rows, columns=EFFECT_COLUMNS)


# --------------------------------------------------------------------------------------------
# Frequentist twins
# --------------------------------------------------------------------------------------------
def _twin_design(
    frame: pd.DataFrame,
    control_arm: str,
    arms: Sequence[str] | None,
    missing_baseline: str,
    baseline_censored: str,
) -> tuple[CTFModel, PreparedData, np.ndarray, list[str], list[str]]:
    """Return the Bayesian model's rows and terms as a design matrix.

    Returns the model, its prepared data, ``X`` (intercept, arm indicators, centred baseline,
    censored-baseline indicator), the active arms with data (an arm without subjects has no
    estimable effect and no column) and the column names.
    """
    model = CTFModel(
        {
            "control_arm": control_arm,
            "arms": None if arms is None else list(arms),
            "missing_baseline": missing_baseline,
            "baseline_censored": baseline_censored,
        }
    )
    prepared = model.prepare(frame)
    data = prepared.data
    present = [
        (i, arm)
        for i, arm in enumerate(prepared.coords["arm"], start=1)
        if (data["arm_idx"] == i).any()
    ]
    blocks = [np.ones(len(data["arm_idx"]))]
    blocks += [(data["arm_idx"] == i).astype(float) for i, _ in present]
    blocks.append(data["x_baseline"])
    names = ["alpha", *(f"log_ratio[{arm}]" for _, arm in present), "b"]
    # The indicator is only estimable when some baseline is censored (and some is not).
    d = prepared.subject_data["baseline_censored"].values
    if model.uses_indicator and 0 < d.sum() < d.size:
        blocks.append(d)
        names.append("c")
    return model, prepared, np.column_stack(blocks), [a for _, a in present], names


def _effects_table(
    arms: list[str], control: str, log_ratio: np.ndarray, se: np.ndarray, crit: float
) -> pd.DataFrame:
    out = pd.DataFrame(
        {
            "arm": arms,
            "comparator": control,
            "measure": MEASURE,
            "estimate_median": np.exp(log_ratio),
            "lower": np.exp(log_ratio - crit * se),
            "upper": np.exp(log_ratio + crit * se),
            "p_benefit": np.nan,
        },
        columns=EFFECT_COLUMNS,
    )
    # attrs hold plain floats: pandas compares attrs when concatenating tables.
    out.attrs.update(
        log_ratio=[float(v) for v in log_ratio],
        se=[float(v) for v in se],
    )
    return out


def ctf_twin(
    frame: pd.DataFrame,
    control_arm: str = "placebo",
    level: float = 0.95,
    arms: Sequence[str] | None = None,
    missing_baseline: str = "error",
    baseline_censored: str = "indicator",
) -> pd.DataFrame:
    """Frequentist twin of :class:`CTFModel`: interval-censored log-normal maximum likelihood.

    The same rows, bounds, centred baseline and censored-baseline indicator as the Bayesian
    model (the indicator column only when some but not all baselines are censored), fitted with
    statsmodels ``GenericLikelihoodModel`` (parameters: the linear predictor's coefficients and
    ``log sigma``); standard errors from the numerical Hessian, Wald interval on the log scale.

    Parameters
    ----------
    frame
        One row per subject (:func:`ctf_frame`).
    control_arm, arms, missing_baseline, baseline_censored
        As in :attr:`CTFModel.default_model_config`.
    level
        Confidence level of the Wald interval.

    Returns
    -------
    pandas.DataFrame
        ``arm, comparator, measure, estimate_median, lower, upper, p_benefit`` (``p_benefit``
        NaN: a frequentist fit gives no posterior probability), one row per active arm with
        data. ``attrs``: ``log_ratio``, ``se`` (lists, log scale), ``sigma``, ``b``,
        ``converged``.
    """
    _, hi = interval_bounds(level)
    model, prepared, X, active, names = _twin_design(
        frame, control_arm, arms, missing_baseline, baseline_censored
    )
    sd = prepared.subject_data
    log_lower, log_upper = sd["log_lower"].values, sd["log_upper"].values

    class IntervalCensoredLogNormal(GenericLikelihoodModel):
        def loglikeobs(self, params: np.ndarray) -> np.ndarray:
            mu = self.exog @ params[:-1]
            return interval_loglik(log_lower, log_upper, mu, np.exp(params[-1]))

        def score_obs(self, params: np.ndarray) -> np.ndarray:
            mu = self.exog @ params[:-1]
            d_mu, d_log_sigma = _interval_loglik_grad(log_lower, log_upper, mu, np.exp(params[-1]))
            return np.column_stack([self.exog * d_mu[:, None], d_log_sigma])

        def score(self, params: np.ndarray) -> np.ndarray:
            return self.score_obs(params).sum(axis=0)

        def hessian(self, params: np.ndarray) -> np.ndarray:
            h = approx_fprime(params, self.score, centered=True)
            return (h + h.T) / 2.0

    # Analytic score: on numerical gradients BFGS stopped short ("precision loss") in 1 of 30
    # heavily censored simulated trials; with it, none of 150 (100 heavily censored, 50 on the
    # default protocol). gtol 1e-6 puts the log ratio within ~1e-9 of the optimum (gradient /
    # curvature, n / sigma^2 >= 1e3); tighter, the line search cannot see the loglik change.
    # Start from least squares on the interval midpoints (stand-ins for open ends).
    mid = (prepared.data["log_lower"] + prepared.data["log_upper"]) / 2.0
    beta0, *_ = np.linalg.lstsq(X, mid, rcond=None)
    resid_sd = float(np.std(mid - X @ beta0)) or CTF_SIGMA_LOG
    start = np.append(beta0, math.log(resid_sd))
    result = IntervalCensoredLogNormal(
        mid, pd.DataFrame(X, columns=names), extra_params_names=["log_sigma"]
    ).fit(start_params=start, method="bfgs", maxiter=1000, gtol=1e-6, disp=0)
    params, bse = np.asarray(result.params), np.asarray(result.bse)
    sl = slice(1, 1 + len(active))
    out = _effects_table(
        active, model.model_config["control_arm"], params[sl], bse[sl], stats.norm.ppf(hi)
    )
    out.attrs.update(
        sigma=float(np.exp(params[-1])),
        b=float(params[1 + len(active)]),
        converged=bool(result.mle_retvals["converged"]),
    )
    return out


def ctf_naive_twin(
    frame: pd.DataFrame,
    control_arm: str = "placebo",
    level: float = 0.95,
    arms: Sequence[str] | None = None,
    missing_baseline: str = "error",
    baseline_censored: str = "indicator",
) -> pd.DataFrame:
    """Analysis that ignores censoring: least squares on ``log ctf_hz`` as if it were exact.

    The recorded step value stands for the threshold and a right-censored subject counts at
    the protocol maximum; otherwise the rows and terms of :func:`ctf_twin`. Kept to show what
    the censored likelihood corrects (it attenuates an arm's ratio towards 1 when many of its
    subjects reach the maximum), not for reporting.

    Parameters
    ----------
    frame
        One row per subject (:func:`ctf_frame`), with ``ctf_hz``.
    control_arm, level, arms, missing_baseline, baseline_censored
        As in :func:`ctf_twin`.

    Returns
    -------
    pandas.DataFrame
        The columns of :func:`ctf_twin`; t-interval from statsmodels ``OLS``.
    """
    _, hi = interval_bounds(level)
    require_columns(frame, ["ctf_hz"], "ctf data")
    model, _, X, active, _ = _twin_design(
        frame, control_arm, arms, missing_baseline, baseline_censored
    )
    hz = as_float(frame["ctf_hz"])
    if np.isnan(hz).any() or (hz <= 0).any():
        raise ModelDataError("ctf_hz must be positive and present for the naive analysis")
    result = sm.OLS(np.log(hz), X).fit()
    params, bse = np.asarray(result.params), np.asarray(result.bse)
    sl = slice(1, 1 + len(active))
    crit = stats.t.ppf(hi, result.df_resid)
    out = _effects_table(active, model.model_config["control_arm"], params[sl], bse[sl], crit)
    out.attrs.update(sigma=float(np.sqrt(result.scale)), converged=True)
    return out
