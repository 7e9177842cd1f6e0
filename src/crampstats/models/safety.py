"""``safety``: adverse-event incidence by arm and category, and the descriptive safety tables.

Data
----
The derived ``ae_incidence`` dataset (:func:`crampstats.derive.ae_incidence`): one row per
randomised patient and adverse-event category seen in the trial, with ``any_event`` (the
patient had at least one event of the category), ``any_serious`` and ``n_events``. Every
randomised patient appears under every category, so the denominators are the randomised
patients of each arm (intention to treat, whatever their exposure).

Model
-----
For arm ``a`` with ``n_a`` patients and category ``c``, the number of patients with an event
is binomial::

    y[a, c] ~ Binomial(n_a, p[a, c])
    logit p[control, c] = mu_c
    logit p[a, c]       = mu_c + delta[a, c]                 (active arms)
    delta[a, c]         = d_a + sigma_a * z[a, c],  z ~ Normal(0, 1)

``mu_c`` is the control arm's log odds of an event of category ``c``; ``delta[a, c]`` the arm's
log odds ratio for that category, partially pooled across categories around the arm's typical
log odds ratio ``d_a`` with spread ``sigma_a`` (non-centred: most cells hold zero to a few
events, where the centred form has a funnel). Pooling lets a category with one or two events
borrow from the arm's other categories instead of swinging to an extreme odds ratio. ``mu_c``
is shared by all arms, so the control arm's incidence of a category borrows from the active
arms too: with no control events but events on several active arms, the control incidence is
estimated above zero. Both pull risk differences of sparse cells towards 0, unlike the
unpooled twin.

The likelihood is a ``pm.Potential`` holding the binomial kernel
``y * eta - n * log(1 + exp(eta))`` summed over arms and categories (the binomial coefficient
is a constant and left out), which is exactly the sum over patients of their Bernoulli
log-likelihoods: :meth:`SafetyModel.pointwise_log_likelihood` (per patient, summed over
categories) adds up to it (tested). The model samples on the ``(arm, category)`` counts, so
its compiled form does not depend on the number of patients.

Effect measures (one pair of rows per active arm and category)
--------------------------------------------------------------
``risk_difference:<category>`` (``p[a, c] - p[control, c]``) and ``risk_ratio:<category>``
(``p[a, c] / p[control, c]``). Fewer events is better: ``p_benefit = P(risk_difference < 0 |
data)`` on both rows (the same event as ``risk_ratio < 1``).

Priors (weakly informative; docs/calibration.md, "Therapy effects", quinine harms row)
---------------------------------------------------------------------------------
Most cells are rare events with many zero counts, where a flat prior would let a logit run off
to minus infinity; every prior here is proper, so every logit stays finite.

- ``mu_c ~ Normal(logit 0.03, 2)``: minor adverse events on placebo are 94 per 1,000 patients
  in total, split over several categories (a few per cent each; the rare harms thrombocytopenia
  and QT prolongation a few per 1,000). 95 % prior mass on 0.06-60 % per category.
- ``d_a ~ Normal(0, 1)``: the arm's typical log odds ratio, centred on no difference; minor AEs
  94 -> 127 per 1,000 on quinine is a log odds ratio of 0.34; 95 % prior mass on odds ratios
  0.14-7.1.
- ``sigma_a ~ HalfNormal(2)``: how much categories differ within an arm. A drug's signature
  harm differs far more from placebo than its other categories do: mexiletine's
  gastrointestinal intolerance behind its 32 % dropout ("dropout" row) is an odds ratio near
  14 (log 2.6) if 30 % against 3 %, quinine's cinchonism has next to no placebo counterpart.
  Scale 2 (prior median 1.3, 95 % below 3.9) lets such a category stand out; with scale 1 the
  example trial's mexiletine gastrointestinal risk difference (7/40 against 0/40) was pulled
  from 0.175 to 0.10 (0.12 with scale 2), understating a harm. Pooling still damps
  categories with one or two events.

Twin: :func:`safety_twin`, per active arm and category the two-sample comparison of
proportions with statsmodels ``confint_proportions_2indep``: Newcombe's hybrid score interval
for the risk difference and the log-adjusted (Gart-Nam; 0.5 added to each count) interval for
the risk ratio, both defined with zero cells (Fagerland et al. 2015, Stat Methods Med Res
24:224). The twin does not pool across categories.

Descriptive tables (pure functions)
-----------------------------------
:func:`safety_table` (incidence by arm and category), :func:`quinine_signals` (thrombocytopenia,
QT prolongation and cinchonism listed by arm and flagged from a single event: docs/calibration.md,
quinine harms row, FDA warning) and :func:`serious_events` (every serious event).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import pandas as pd
import xarray as xr
from scipy import special

from crampstats.engine import ATTR_PREFIX, BayesModel, PreparedData
from crampstats.models._common import (
    ModelDataError,
    arm_coding,
    as_float,
    interval_bounds,
    require_columns,
    subject_keys,
)
from crampstats.models.responder import EFFECT_COLUMNS, MEASURES, two_proportion_rows

if TYPE_CHECKING:
    import pymc as pm

__all__ = [
    "QUININE_SIGNAL_CATEGORIES",
    "SafetyModel",
    "incidence_probabilities",
    "quinine_signals",
    "safety_effects",
    "safety_frame",
    "safety_table",
    "safety_twin",
    "serious_events",
]

#: Columns of ``ae_incidence`` the model needs.
REQUIRED = ("subject_id", "arm", "category", "any_event")
#: Columns of ``ae_incidence`` the descriptive tables need.
TABLE_REQUIRED = (*REQUIRED, "n_events", "any_serious")
#: Categories flagged from a single event (docs/calibration.md, Therapy effects: quinine harms,
#: thrombocytopenia and QT prolongation; cinchonism is quinine's own toxicity).
QUININE_SIGNAL_CATEGORIES = ("thrombocytopenia", "qt_prolongation", "cinchonism")
SERIOUS_COLUMNS = ["subject_id", "arm", "term", "category", "study_day"]
#: docs/calibration.md, quinine harms row: minor AEs 94 per 1,000 on placebo, over several
#: categories.
CONTROL_INCIDENCE = 0.03


def _category_key(values: pd.Series) -> pd.Series:
    """Return category names as compared: lower case, spaces and hyphens as underscores."""
    return values.astype(str).str.strip().str.lower().str.replace(r"[\s\-]+", "_", regex=True)


def _flags(values: pd.Series) -> np.ndarray:
    """Return boolean flags from a bool, 0/1 or text column; a missing value is False."""
    if pd.api.types.is_bool_dtype(values) or pd.api.types.is_numeric_dtype(values):
        return values.fillna(False).astype(bool).to_numpy()
    text = values.astype("string").str.strip().str.lower()
    return text.isin(["true", "1", "yes", "y"]).fillna(False).to_numpy(dtype=bool)


# --------------------------------------------------------------------------------------------
# Analysis frame
# --------------------------------------------------------------------------------------------
def safety_frame(derived: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """Build the model's input: one row per patient and category, with ``any_event`` as 0/1.

    Parameters
    ----------
    derived
        Derived datasets (:func:`crampstats.derive.derive_all`); uses ``ae_incidence``.

    Returns
    -------
    pandas.DataFrame
        ``trial_id`` (when present), ``subject_id, arm, category, any_event`` (0/1), and
        ``any_serious, n_events`` when present.

    Raises
    ------
    ModelDataError
        No ``ae_incidence`` data, no ``arm`` column (not a parallel design), columns missing,
        or a patient missing under some category (the denominators would be wrong).
    """
    ae = derived.get("ae_incidence")
    if ae is None or ae.empty:
        raise ModelDataError(
            "the safety endpoint needs the derived `ae_incidence` dataset; the trial has none "
            "(no adverse_events table, or no events)"
        )
    if "arm" not in ae.columns:
        raise ModelDataError(
            "the safety endpoint compares arms of a parallel design; the ae_incidence data have "
            "no `arm` column"
        )
    require_columns(ae, REQUIRED, "ae_incidence data")
    cols = [c for c in ("trial_id", *REQUIRED, "any_serious", "n_events") if c in ae.columns]
    out = ae[cols].copy()
    out["any_event"] = _flags(out["any_event"]).astype(np.int64)
    _check_grid(out)
    return out.reset_index(drop=True)


def _check_grid(frame: pd.DataFrame) -> None:
    """Refuse unless every patient has exactly one row under every category, and one arm."""
    keys = subject_keys(frame)
    cells = pd.DataFrame({"subject": keys, "category": frame["category"].astype(str)})
    if cells.duplicated().any():
        dup = cells[cells.duplicated()].iloc[0]
        raise ModelDataError(
            f"ae_incidence has more than one row for patient {dup['subject']} and category "
            f"{dup['category']!r}"
        )
    n_categories = cells["category"].nunique()
    per_subject = cells.groupby("subject").size()
    short = per_subject[per_subject < n_categories]
    if len(short):
        raise ModelDataError(
            f"ae_incidence must list every patient under every category ({n_categories}); "
            f"{len(short)} patient(s) lack some, e.g. {list(short.index[:5])}"
        )
    arms = pd.DataFrame({"subject": keys, "arm": frame["arm"].astype(str)}).drop_duplicates()
    if arms["subject"].duplicated().any():
        raise ModelDataError(
            f"patient(s) {list(arms['subject'][arms['subject'].duplicated()][:5])} appear in "
            "more than one arm of ae_incidence"
        )


# --------------------------------------------------------------------------------------------
# Bayesian model
# --------------------------------------------------------------------------------------------
class SafetyModel(BayesModel):
    """Hierarchical binomial model of adverse-event incidence by arm and category.

    Parameters
    ----------
    model_config
        Overrides of :attr:`default_model_config`: ``control_arm`` (``"placebo"``), ``arms``
        (all arms, or ``None`` for those in the data), ``categories`` (all categories, or
        ``None`` for those in the data; a listed category without rows has no events) and the
        priors ``prior_mu_mu``, ``prior_mu_sd`` (control log odds per category),
        ``prior_d_sd`` (arm's typical log odds ratio), ``prior_sigma_sd`` (half-normal scale
        of the spread across categories).
    sampler_config
        Overrides of the sampler defaults (:class:`crampstats.engine.BayesModel`);
        ``target_accept`` defaults to 0.95 (a hierarchy over a handful of categories).

    Examples
    --------
    >>> idata = SafetyModel().fit(safety_frame(derived), seed=1, cores=2)  # doctest: +SKIP
    >>> safety_effects(idata)  # doctest: +SKIP
    """

    name: ClassVar[str] = "safety"
    default_model_config: ClassVar[dict[str, Any]] = {
        "control_arm": "placebo",
        "arms": None,
        "categories": None,
        "prior_mu_mu": float(special.logit(CONTROL_INCIDENCE)),
        "prior_mu_sd": 2.0,
        "prior_d_sd": 1.0,
        "prior_sigma_sd": 2.0,
    }
    default_sampler_config: ClassVar[dict[str, Any]] = {
        **BayesModel.default_sampler_config,
        "target_accept": 0.95,
    }

    # ---- data -------------------------------------------------------------------------------
    def prepare(self, data: pd.DataFrame) -> PreparedData:
        """Turn a :func:`safety_frame` into ``(arm, category)`` counts and per-patient events."""
        if data.empty:
            raise ModelDataError("the safety data have no patients")
        require_columns(data, REQUIRED, "safety data (build it with safety_frame)")
        _check_grid(data)
        cfg = self.model_config
        arms = arm_coding(data["arm"], cfg["control_arm"], cfg["arms"])
        if not arms.active:
            raise ModelDataError(
                f"the safety data have only the control arm {arms.control!r}; nothing to compare"
            )
        present = sorted(set(data["category"].astype(str)))
        categories = present if cfg["categories"] is None else [str(c) for c in cfg["categories"]]
        unknown = sorted(set(present) - set(categories))
        if unknown:
            raise ModelDataError(
                f"categories {unknown} are not among the model's categories {categories}; "
                "list every category in the model config `categories`"
            )
        events = _flags(data["any_event"])
        wide = (
            pd.DataFrame(
                {
                    "subject": subject_keys(data).to_numpy(),
                    "category": data["category"].astype(str).to_numpy(),
                    "event": events.astype(np.int64),
                }
            )
            .pivot(index="subject", columns="category", values="event")
            .reindex(columns=categories, fill_value=0)
        )
        subject_arm = (
            pd.Series(data["arm"].astype(str).to_numpy(), index=subject_keys(data).to_numpy())
            .groupby(level=0)
            .first()
            .reindex(wide.index)
        )
        arm_idx = arms.index(subject_arm)
        n_arms = len(arms.all)
        n_subjects = np.bincount(arm_idx, minlength=n_arms).astype(np.int64)
        if n_subjects[0] == 0:
            raise ModelDataError(
                f"the control arm {arms.control!r} has no patients in the safety data"
            )
        counts = np.zeros((n_arms, len(categories)), dtype=np.int64)
        np.add.at(counts, arm_idx, wide.to_numpy(dtype=np.int64))
        subject_data = xr.Dataset(
            {
                "arm": ("subject", subject_arm.to_numpy()),
                "arm_idx": ("subject", arm_idx),
                "event": (("subject", "category"), wide.to_numpy(dtype=np.int64)),
            },
            coords={"subject": wide.index.to_numpy(), "category": categories},
        )
        return PreparedData(
            data={"n_subjects": n_subjects, "events": counts},
            coords={"arm": list(arms.active), "category": categories},
            constants={"control_arm": arms.control},
            subject_data=subject_data,
        )

    # ---- model ------------------------------------------------------------------------------
    def _build(self, prepared: PreparedData) -> pm.Model:
        import pymc as pm
        import pytensor.tensor as pt

        # float64 scalars, so that the priors' terms are not computed in float32
        cfg = {k: np.float64(v) for k, v in self.model_config.items() if k.startswith("prior_")}
        with pm.Model(coords=prepared.coords) as model:
            n = pm.Data("n_subjects", prepared.data["n_subjects"])
            y = pm.Data("events", prepared.data["events"])
            mu = pm.Normal("mu", cfg["prior_mu_mu"], cfg["prior_mu_sd"], dims="category")
            d = pm.Normal("d", 0.0, cfg["prior_d_sd"], dims="arm")
            sigma = pm.HalfNormal("sigma", cfg["prior_sigma_sd"], dims="arm")
            z = pm.Normal("z", 0.0, 1.0, dims=("arm", "category"))
            delta = pm.Deterministic(
                "delta", d[:, None] + sigma[:, None] * z, dims=("arm", "category")
            )
            zeros = pt.zeros((1, len(prepared.coords["category"])))
            eta = mu[None, :] + pt.concatenate([zeros, delta], axis=0)
            # binomial kernel: y * eta - n * log(1 + exp(eta)) per (arm, category) cell
            pm.Potential("safety_loglik", pt.sum(y * eta - n[:, None] * pt.softplus(eta)))
        return model

    # ---- post-processing --------------------------------------------------------------------
    def pointwise_log_likelihood(self, idata: xr.DataTree, prepared: PreparedData) -> xr.DataArray:
        """Log-likelihood per patient: Bernoulli, summed over categories (chain, draw, subject)."""
        sd = prepared.subject_data
        eta = _logits(idata)
        per_subject = eta.values[:, :, sd["arm_idx"].values, :]  # chain, draw, subject, category
        event = sd["event"].values[None, None]
        loglik = (event * per_subject - np.logaddexp(0.0, per_subject)).sum(axis=-1)
        coords = {k: eta.coords[k] for k in ("chain", "draw") if k in eta.coords}
        return xr.DataArray(
            loglik,
            dims=("chain", "draw", "subject"),
            coords={**coords, "subject": sd["subject"].values},
            name="y",
        )


def _logits(idata: xr.DataTree) -> xr.DataArray:
    """Log odds of an event per arm (control first) and category, per draw."""
    post = idata["posterior"]
    constants = json.loads(post.attrs[f"{ATTR_PREFIX}constants"])
    delta = post["d"] + post["sigma"] * post["z"]
    zero = xr.zeros_like(delta.isel(arm=0, drop=True)).expand_dims(arm=[constants["control_arm"]])
    return (post["mu"] + xr.concat([zero, delta], dim="arm")).transpose(
        "chain", "draw", "arm", "category"
    )


# --------------------------------------------------------------------------------------------
# Effects
# --------------------------------------------------------------------------------------------
def incidence_probabilities(idata: xr.DataTree) -> xr.DataArray:
    """Posterior probability of an event per arm (control first) and category.

    Parameters
    ----------
    idata
        A :class:`SafetyModel` fit.

    Returns
    -------
    xarray.DataArray
        Dims ``(chain, draw, arm, category)``.
    """
    return special.expit(_logits(idata))


def safety_effects(idata: xr.DataTree, level: float = 0.95) -> pd.DataFrame:
    """Risk difference and risk ratio of every category, every active arm against control.

    Parameters
    ----------
    idata
        A :class:`SafetyModel` fit.
    level
        Probability of the equal-tailed credible interval.

    Returns
    -------
    pandas.DataFrame
        ``arm, comparator, measure, estimate_median, lower, upper, p_benefit``; per active arm
        and category two rows, ``risk_difference:<category>`` and ``risk_ratio:<category>``.
        Fewer events is better: ``p_benefit = P(risk_difference < 0)`` on both rows.
    """
    lo, hi = interval_bounds(level)
    probs = incidence_probabilities(idata)
    control = str(probs["arm"].values[0])
    rows = []
    for arm in probs["arm"].values[1:]:
        for category in probs["category"].values:
            p0 = np.ravel(probs.sel(arm=control, category=category).values)
            p = np.ravel(probs.sel(arm=arm, category=category).values)
            rd = p - p0
            p_benefit = float(np.mean(rd < 0.0))
            for measure, draws in zip(MEASURES, (rd, p / p0), strict=True):
                q = np.quantile(draws, [0.5, lo, hi])
                rows.append(
                    {
                        "arm": str(arm),
                        "comparator": control,
                        "measure": f"{measure}:{category}",
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
def safety_twin(
    frame: pd.DataFrame,
    control_arm: str = "placebo",
    level: float = 0.95,
    arms: Sequence[str] | None = None,
    categories: Sequence[str] | None = None,
    rd_method: str = "newcomb",
    rr_method: str = "log-adjusted",
) -> pd.DataFrame:
    """Frequentist twin of :class:`SafetyModel`: per-category comparisons of proportions.

    The same patients, arms and categories as the Bayesian model; for every active arm with
    patients and every category, the proportion of patients with an event against the control
    arm's, with statsmodels ``confint_proportions_2indep``: Newcombe's hybrid score interval
    for the risk difference and the log-adjusted interval for the risk ratio (module
    docstring). No pooling across categories.

    Parameters
    ----------
    frame
        One row per patient and category (:func:`safety_frame`).
    control_arm, arms, categories
        As in :attr:`SafetyModel.default_model_config`.
    level
        Confidence level.
    rd_method, rr_method
        Other methods of ``confint_proportions_2indep`` (e.g. ``"score"``).

    Returns
    -------
    pandas.DataFrame
        ``arm, comparator, measure, estimate_median, lower, upper, p_benefit`` (``p_benefit``
        NaN); ``estimate_median`` is the maximum-likelihood estimate, and the risk ratio's is
        NaN when the control arm has no event of the category (its interval is still given).
        ``attrs``: ``converged`` (True: closed form), ``rd_method``, ``rr_method``.
    """
    interval_bounds(level)
    model = SafetyModel(
        {
            "control_arm": control_arm,
            "arms": None if arms is None else list(arms),
            "categories": None if categories is None else list(categories),
        }
    )
    prepared = model.prepare(frame)
    n, y = prepared.data["n_subjects"], prepared.data["events"]
    control = prepared.constants["control_arm"]
    rows: list[dict[str, Any]] = []
    for i, arm in enumerate(prepared.coords["arm"], start=1):
        if n[i] == 0:
            continue
        for j, category in enumerate(prepared.coords["category"]):
            rows += two_proportion_rows(
                arm,
                control,
                int(y[i, j]),
                int(n[i]),
                int(y[0, j]),
                int(n[0]),
                level,
                suffix=f":{category}",
                rd_method=rd_method,
                rr_method=rr_method,
            )
    out = pd.DataFrame(rows, columns=EFFECT_COLUMNS)
    out.attrs.update(converged=True, rd_method=rd_method, rr_method=rr_method)
    return out


# --------------------------------------------------------------------------------------------
# Descriptive tables
# --------------------------------------------------------------------------------------------
def _incidence_counts(ae_incidence: pd.DataFrame) -> pd.DataFrame:
    """Count patients, events and serious events per arm and category of ``ae_incidence``."""
    if "arm" not in ae_incidence.columns:
        raise ModelDataError("ae_incidence has no `arm` column (not a parallel design)")
    require_columns(ae_incidence, TABLE_REQUIRED, "ae_incidence data")
    work = pd.DataFrame(
        {
            "subject": subject_keys(ae_incidence).to_numpy(),
            "arm": ae_incidence["arm"].astype(str).to_numpy(),
            "category": ae_incidence["category"].astype(str).to_numpy(),
            "event": _flags(ae_incidence["any_event"]),
            "serious": _flags(ae_incidence["any_serious"]),
            "n_events": as_float(ae_incidence["n_events"]),
        }
    )
    g = work.groupby(["arm", "category"], sort=True)
    out = g.agg(
        n_subjects=("subject", "nunique"),
        n_with_event=("event", "sum"),
        n_events=("n_events", "sum"),
        n_serious=("serious", "sum"),
    ).reset_index()
    for col in ("n_subjects", "n_with_event", "n_events", "n_serious"):
        out[col] = out[col].astype(np.int64)
    return out


def safety_table(ae_incidence: pd.DataFrame) -> pd.DataFrame:
    """Adverse-event incidence by arm and category.

    Parameters
    ----------
    ae_incidence
        The derived dataset (:func:`crampstats.derive.ae_incidence`).

    Returns
    -------
    pandas.DataFrame
        ``arm, category, n_subjects`` (randomised patients of the arm), ``n_with_event``
        (patients with at least one event of the category), ``incidence``
        (``n_with_event / n_subjects``), ``n_events`` (events), ``n_serious`` (patients with a
        serious event of the category); sorted by arm and category.
    """
    out = _incidence_counts(ae_incidence)
    out["incidence"] = out["n_with_event"] / out["n_subjects"]
    cols = ["arm", "category", "n_subjects", "n_with_event", "incidence", "n_events", "n_serious"]
    return out[cols]


def _events_with_arm(adverse_events: pd.DataFrame, subjects: pd.DataFrame | None) -> pd.DataFrame:
    """Adverse events with the patient's arm: their own column, else looked up in ``subjects``."""
    require_columns(adverse_events, ["subject_id", "category"], "adverse_events data")
    if "arm" in adverse_events.columns:
        return adverse_events.copy()
    if subjects is None or "arm" not in subjects.columns:
        raise ModelDataError(
            "adverse_events have no `arm` column; pass the randomised subjects (with `arm`)"
        )
    keys = ["subject_id"]
    if "trial_id" in subjects.columns and "trial_id" in adverse_events.columns:
        keys.insert(0, "trial_id")
    lookup = subjects[[*keys, "arm"]].drop_duplicates()
    out = adverse_events.merge(lookup, on=keys, how="left", validate="many_to_one")
    unknown = out["arm"].isna()
    if unknown.any():
        raise ModelDataError(
            f"adverse events of patients who were not randomised: "
            f"{sorted(set(out.loc[unknown, 'subject_id'].astype(str)))[:5]}"
        )
    return out


def quinine_signals(
    ae_incidence: pd.DataFrame, adverse_events: pd.DataFrame | None = None
) -> pd.DataFrame:
    """Quinine's warning categories by arm, flagged from a single event in any arm.

    Thrombocytopenia and QT prolongation (docs/calibration.md, quinine harms row; the FDA warns
    against quinine for cramps) and cinchonism are listed for every arm, with zero counts where
    no event occurred, so a reader sees that they were looked for.

    Parameters
    ----------
    ae_incidence
        The derived dataset (:func:`crampstats.derive.ae_incidence`). Category names are
        matched case-blind, spaces and hyphens read as underscores (``QT prolongation`` is
        ``qt_prolongation``).
    adverse_events
        Optional event listing (validated ``adverse_events``, or the derived listing with
        ``arm``): adds the reported ``terms`` and the ``first_study_day`` of each arm and
        category.

    Returns
    -------
    pandas.DataFrame
        One row per arm and signal category: ``arm, category, n_subjects, n_with_event,
        n_events, n_serious, any_serious`` (bool), ``flagged`` (this arm had an event),
        ``signal`` (some arm had an event of the category), and ``terms,
        first_study_day`` with ``adverse_events``.
    """
    counts = _incidence_counts(ae_incidence)
    counts["key"] = _category_key(counts["category"])
    arms = sorted(counts["arm"].unique())
    n_subjects = counts.groupby("arm")["n_subjects"].max()
    grid = pd.MultiIndex.from_product(
        [arms, QUININE_SIGNAL_CATEGORIES], names=["arm", "key"]
    ).to_frame(index=False)
    summed = counts.groupby(["arm", "key"])[["n_with_event", "n_events", "n_serious"]].sum()
    out = grid.merge(summed.reset_index(), on=["arm", "key"], how="left")
    out = out.rename(columns={"key": "category"})
    for col in ("n_with_event", "n_events", "n_serious"):
        out[col] = out[col].fillna(0).astype(np.int64)
    out.insert(2, "n_subjects", out["arm"].map(n_subjects).astype(np.int64))
    out["any_serious"] = out["n_serious"] > 0
    out["flagged"] = out["n_with_event"] > 0
    out["signal"] = out.groupby("category")["flagged"].transform("any")
    if adverse_events is not None:
        require_columns(adverse_events, ["term", "study_day"], "adverse_events data")
        events = _events_with_arm(adverse_events, ae_incidence)
        events = events.assign(
            arm=events["arm"].astype(str),
            category=_category_key(events["category"]),
            term=events["term"].astype(str),
        )
        g = events.groupby(["arm", "category"])
        extra = pd.DataFrame(
            {
                "terms": g["term"].agg(lambda t: "; ".join(sorted(set(t)))),
                "first_study_day": g["study_day"].min(),
            }
        ).reset_index()
        out = out.merge(extra, on=["arm", "category"], how="left")
        out["terms"] = out["terms"].fillna("")
        out["first_study_day"] = out["first_study_day"].astype("Int64")
    rank = out["category"].map({c: i for i, c in enumerate(QUININE_SIGNAL_CATEGORIES)})
    out = out.assign(_rank=rank).sort_values(["_rank", "arm"]).drop(columns="_rank")
    return out.reset_index(drop=True)


def serious_events(
    adverse_events: pd.DataFrame, subjects: pd.DataFrame | None = None
) -> pd.DataFrame:
    """Every serious adverse event, with the patient's arm.

    Parameters
    ----------
    adverse_events
        Validated ``adverse_events`` (``subject_id, term, category, serious, study_day``), or
        the derived listing that already carries ``arm``.
    subjects
        Any table with one arm per patient (``subjects``, or ``ae_incidence``); needed when
        ``adverse_events`` has no ``arm`` column.

    Returns
    -------
    pandas.DataFrame
        ``subject_id, arm, term, category, study_day``, one row per serious event (a missing
        ``serious`` flag is not serious), sorted by study day, patient and category.

    Raises
    ------
    ModelDataError
        If ``serious`` is absent, or a patient's arm cannot be found.
    """
    require_columns(adverse_events, ["subject_id", "term", "category", "serious"], "adverse_events")
    events = adverse_events.loc[_flags(adverse_events["serious"])]
    events = _events_with_arm(events, subjects)
    if "study_day" not in events.columns:
        events = events.assign(study_day=pd.NA)
    out = events[SERIOUS_COLUMNS].sort_values(["study_day", "subject_id", "category"])
    return out.reset_index(drop=True)
