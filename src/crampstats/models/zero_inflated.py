"""``zinb`` and ``hurdle``: excess zeros (complete responders) at the subject level.

Both models keep :mod:`crampstats.models.frailty_weekly`'s count model for a subject's
weekly treatment-period counts, the negative multinomial ``NM`` (Poisson with a mean-1 gamma
frailty of shape ``phi`` integrated out; same rows, terms, priors and per-subject sufficient
statistics), and add a zero component for a whole subject: a *complete responder* has no
cramp in any treatment week. The unit of the likelihood, of LOO and of the rootogram is the
subject, as for ``frailty_weekly`` (LOO-comparable subject by subject).

``zinb`` (zero-inflated; Lambert 1992, Technometrics 34:1)::

    P(y_i) = pi_i * 1[Y_i = 0] + (1 - pi_i) * NM(y_i)
    so  P(all weeks 0) = pi_i + (1 - pi_i) * NM(0),   NM(0) = (phi / (phi + M_i))^phi

``hurdle`` (Mullahy 1986, J Econometrics 33:341)::

    P(Y_i = 0) = pi0_i,    P(y_i) = (1 - pi0_i) * NM(y_i) / (1 - NM(0))  if Y_i > 0

with ``Y_i`` the subject's treatment total and ``M_i = sum_j mu_ij`` its expected total under
the count model. ``pi`` is *P(complete responder)* in ``zinb`` and *P(no cramp at all)* in
``hurdle``. By default it is common to all arms (config ``zero_by_arm: False``; ``True`` gives
each arm, control included, its own logit). ``log_rr`` (dim ``arm``, what the decision tables
read) is the rate ratio of the count component: among subjects who are not complete
responders (``zinb``) or who have any cramp (``hurdle``, before truncation).

Under the NM, a subject's total is ``NB(M_i, phi)`` and the split over weeks is multinomial
with probabilities that depend on the week trend and exposure only. Zero subjects have no
row terms, so the weekly rows still enter through the sufficient statistics of
``frailty_weekly`` (``Y_i``, ``sum lgamma(y + 1)``, exposure x week, ``sum y t``,
``sum y log e``). Every parameter is a scalar or has dim ``arm`` / ``zero_arm``; new data with
any number of subjects or weeks re-sample the compiled model without recompiling.

Priors
------
As ``frailty_weekly`` (docs/calibration.md rows cited there) plus, for the zero probability,
``logit(pi) ~ Normal(-3, 1.5)`` (config ``prior_logit_pi_mu``/``_sd``; ``hurdle``:
``prior_logit_pi0_mu``/``_sd``): complete responders are rare. Prior median 4.7 %, 95 % on
0.3-45 %. Under the count model alone a subject at 0.9 cramps/day with 8 diary weeks has
``NM(0) = (3 / (3 + 50))^3 ~ 2e-4``, so almost every observed all-zero subject is a
complete responder and ``pi`` is informed by their proportion. Calibration.md gives no
published frequency of complete response; the prior keeps ``pi`` away from 0 and 1 when no
or almost no subject is zero.

Outputs: :meth:`pointwise_log_likelihood` (per subject, full weekly likelihood);
:meth:`predictive_pmf` (units = subject treatment *totals*: ``NB(M_i, phi)`` mixed with the
zero component); :meth:`subject_log_rate` (control-arm mean cramps per day *including* the
zero component, see the method).

Frequentist twins on subject totals (statsmodels; the weekly split carries no information on
arm, baseline or ``phi``): :func:`zinb_twin` (``ZeroInflatedNegativeBinomialP``) and
:func:`hurdle_twin` (binomial zero part and ``TruncatedLFNegativeBinomialP``, the two parts
that ``HurdleCountModel`` fits, here with the exposure offset ``HurdleCountModel`` lacks).
The twins have no week trend: compare them with fits made with ``trend=False``, for which the
weekly likelihood is the totals' likelihood times a constant.
"""

from __future__ import annotations

from abc import abstractmethod
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import pandas as pd
import statsmodels.api as sm
import xarray as xr
from scipy import special
from statsmodels.discrete.truncated_model import TruncatedLFNegativeBinomialP

from crampstats.engine import PreparedData, thin_draws
from crampstats.models._common import SubjectTermsModel, twin_coefficients, twin_columns
from crampstats.models.frailty_weekly import FrailtyWeekly, rows_log_mu
from crampstats.numerics import log1mexp, segment_sum

if TYPE_CHECKING:
    import pymc as pm

__all__ = ["ZINB", "Hurdle", "hurdle_twin", "zinb_twin"]


_Z95 = 1.959963984540054


class _ZeroComponentModel(SubjectTermsModel):
    """Negative multinomial subject likelihood plus a subject-level zero component (base)."""

    #: Name of the zero probability in the posterior (``pi`` or ``pi0``); its logit is
    #: ``logit_<zero_name>`` and its prior ``prior_logit_<zero_name>_mu`` / ``_sd``.
    zero_name: ClassVar[str] = "pi"

    # ---- data -------------------------------------------------------------------------------
    def frailty(self) -> FrailtyWeekly:
        """Return the :class:`FrailtyWeekly` whose data preparation and count model are reused."""
        cfg, keys = self.model_config, FrailtyWeekly.default_model_config
        return FrailtyWeekly({key: cfg[key] for key in keys if key in cfg})

    def prepare(self, data: pd.DataFrame) -> PreparedData:
        """Turn a ``weekly`` frame into model arrays (:meth:`FrailtyWeekly.prepare`).

        Adds, for post-processing only, each subject's treatment exposure (total and by
        week) to the per-subject design and, with ``zero_by_arm``, the structural coordinate
        ``zero_arm`` (all arms, control first).
        """
        prepared = self.frailty().prepare(data)
        sd = prepared.subject_data
        sd["exposure_week"] = (("subject", "week"), prepared.data["exposure_week"])
        sd["exposure_days"] = ("subject", prepared.data["exposure_week"].sum(axis=1))
        if not self.model_config["trend"]:
            # no container for them in the model: nutpie's with_data accepts only the shared
            # variables the compiled density uses (an unused one raises KeyError)
            for name in ("week_t", "sum_y_t"):
                prepared.data.pop(name)
        if self.model_config["zero_by_arm"]:
            control = str(prepared.constants["control_arm"])
            prepared.coords["zero_arm"] = [control, *prepared.coords["arm"]]
        return prepared

    # ---- model ------------------------------------------------------------------------------
    @abstractmethod
    def _subject_graph(self, y0: Any, log_nm: Any, log_p0: Any, logit: Any) -> Any:
        """Per-subject log-likelihood (graph) from the NM terms and the zero logit."""

    @abstractmethod
    def _subject_numpy(
        self, y0: np.ndarray, log_nm: np.ndarray, log_p0: np.ndarray, logit: np.ndarray
    ) -> np.ndarray:
        """Per-subject log-likelihood (NumPy), the same function as :meth:`_subject_graph`."""

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
            sum_y_log_exposure = pm.Data("sum_y_log_exposure", d["sum_y_log_exposure"])

            alpha = pm.Normal("alpha", cfg["prior_alpha_mu"], cfg["prior_alpha_sd"])
            log_rr = pm.Normal("log_rr", 0.0, cfg["prior_log_rr_sd"], dims="arm")
            b = pm.Normal("b", cfg["prior_b_mu"], cfg["prior_b_sd"])
            phi = pm.LogNormal("phi", cfg["prior_phi_mu"], cfg["prior_phi_sd"])
            z = self.zero_name
            prior = (cfg[f"prior_logit_{z}_mu"], cfg[f"prior_logit_{z}_sd"])
            if cfg["zero_by_arm"]:
                logit_arm = pm.Normal(f"logit_{z}", *prior, dims="zero_arm")
                pm.Deterministic(z, pt.sigmoid(logit_arm), dims="zero_arm")
                logit = logit_arm[arm_idx]
            else:
                logit = pm.Normal(f"logit_{z}", *prior)
                pm.Deterministic(z, pt.sigmoid(logit))

            effect = pt.concatenate([pt.zeros(1), log_rr])
            eta = alpha + effect[arm_idx] + b * x
            if "covariate" in coords:
                X = pm.Data("X_cov", d["X_cov"])
                beta = pm.Normal("beta", 0.0, cfg["prior_beta_sd"], dims="covariate")
                eta = eta + pt.dot(X, beta)
            if "group_level" in coords:
                eta = eta + self.group_intercepts(prepared)
            # sufficient statistics as in frailty_weekly: M_i and the trend score
            if cfg["trend"]:
                week_t = pm.Data("week_t", d["week_t"])
                sum_y_t = pm.Data("sum_y_t", d["sum_y_t"])
                g = pm.Normal("trend", 0.0, cfg["prior_trend_sd"])
                m_subject = pt.exp(eta) * pt.dot(exposure_week, pt.exp(g * week_t))
                trend_term = g * sum_y_t
            else:
                m_subject = pt.exp(eta) * exposure_week.sum(axis=1)
                trend_term = 0.0
            # NM log-likelihood per subject without the row terms g sum y t + sum y log e
            # (zero for an all-zero subject, so they are added once, below); for Y_i = 0 it
            # equals log NM(0) = phi log(phi / (phi + M_i)).
            log_p0 = -phi * pt.log1p(m_subject / phi)
            log_nm = (
                pt.gammaln(phi + y_subject)
                - pt.gammaln(phi)
                - lgamma_y1
                + phi * pt.log(phi)
                - (phi + y_subject) * pt.log(phi + m_subject)
                + y_subject * eta
            )
            per_subject = self._subject_graph(pt.eq(y_subject, 0), log_nm, log_p0, logit)
            pm.Potential(
                f"{self.name}_loglik",
                pt.sum(per_subject) + trend_term + sum_y_log_exposure,
            )
        return model

    # ---- post-processing --------------------------------------------------------------------
    def _logit(self, post: xr.Dataset, arm_idx: np.ndarray) -> np.ndarray:
        """Zero logit per draw and subject, ``(chain, draw, subject)`` or broadcastable."""
        values = post[f"logit_{self.zero_name}"]
        if self.model_config["zero_by_arm"]:
            return values.transpose("chain", "draw", "zero_arm").values[..., arm_idx]
        return values.values[..., None]

    def _nm_terms(
        self, idata: xr.DataTree, prepared: PreparedData
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """NM log-likelihood, ``log NM(0)`` and ``M`` per (chain, draw, subject), from the rows.

        Written per row (as :meth:`FrailtyWeekly.pointwise_log_likelihood`), independently
        of the sufficient statistics the graph uses; a test checks the two agree.
        """
        d, rows = prepared.data, prepared.extra
        phi = idata["posterior"]["phi"].values[..., None]
        log_mu = rows_log_mu(self.frailty(), idata, prepared)
        n_sub, idx = len(d["y_subject"]), rows["subject_idx"]
        m = np.stack([segment_sum(np.exp(lm), idx, n_sub) for lm in log_mu])
        ylogmu = np.stack([segment_sum(rows["y"] * lm, idx, n_sub) for lm in log_mu])
        ys = d["y_subject"]
        log_p0 = -phi * np.log1p(m / phi)
        log_nm = (
            special.gammaln(phi + ys)
            - special.gammaln(phi)
            - d["lgamma_y1_subject"]
            + log_p0
            - ys * np.log(phi + m)
            + ylogmu
        )
        return log_nm, log_p0, m

    def pointwise_log_likelihood(self, idata: xr.DataTree, prepared: PreparedData) -> xr.DataArray:
        """Log-likelihood of each subject's weekly counts, per draw (dims chain, draw, subject)."""
        post = idata["posterior"]
        log_nm, log_p0, _ = self._nm_terms(idata, prepared)
        logit = self._logit(post, prepared.data["arm_idx"])
        value = self._subject_numpy(prepared.data["y_subject"] == 0, log_nm, log_p0, logit)
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

    @abstractmethod
    def _total_pmf(
        self, count: int, nb_pmf: np.ndarray, log_p0: np.ndarray, logit: np.ndarray
    ) -> np.ndarray:
        """P(total = count) per draw and subject from the NB pmf at ``count`` and the zeros."""

    def predictive_pmf(
        self, idata: xr.DataTree, prepared: PreparedData, max_count: int, n_draws: int = 200
    ) -> tuple[np.ndarray, np.ndarray]:
        """Subject treatment totals and their posterior predictive pmf (units = subject totals).

        Under the NM a subject's total is ``NB(M_i, phi)``; the zero component is mixed in
        (``zinb``) or the NB is truncated at 0 and rescaled (``hurdle``).

        Returns
        -------
        observed : numpy.ndarray
            ``(n_subjects,)`` treatment totals.
        pmf : numpy.ndarray
            ``(n_subjects, max_count + 1)``, last column ``P(Y >= max_count)``; rows sum to 1.
        """
        post = thin_draws(idata["posterior"].to_dataset(), n_draws)
        thinned = xr.DataTree.from_dict({"posterior": post})
        _, log_p0, m = self._nm_terms(thinned, prepared)
        phi = post["phi"].values[..., None]
        # NB(M, phi) log pmf = lgamma(c + phi) - lgamma(phi) - lgamma(c + 1) + log NB(0)
        #                      + c log(M / (phi + M)); the first three terms do not depend on
        # the subject, so the table costs one exp per count, draw and subject
        log_q = np.log(m) - np.log(phi + m)
        logit = np.broadcast_to(self._logit(post, prepared.data["arm_idx"]), m.shape)
        pmf = np.empty((m.shape[-1], max_count))
        for c in range(max_count):
            coef = special.gammaln(c + phi) - special.gammaln(phi) - special.gammaln(c + 1.0)
            nb_pmf = np.exp(coef + log_p0 + c * log_q)
            pmf[:, c] = self._total_pmf(c, nb_pmf, log_p0, logit).mean(axis=(0, 1))
        tail = np.clip(1.0 - pmf.sum(axis=1, keepdims=True), 0.0, None)  # P(Y >= max_count)
        table = np.concatenate([pmf, tail], axis=1)
        return prepared.data["y_subject"], table / table.sum(axis=1, keepdims=True)

    def _control_logit(self, post: xr.Dataset) -> xr.DataArray:
        """Zero logit of the control arm (first ``zero_arm``) or the common one, per draw."""
        logit = post[f"logit_{self.zero_name}"]
        return logit.isel(zero_arm=0, drop=True) if "zero_arm" in logit.dims else logit


class ZINB(_ZeroComponentModel):
    """Zero-inflated negative multinomial of weekly counts: complete responders (subject level).

    Parameters
    ----------
    model_config
        Overrides of :attr:`default_model_config`: those of :class:`FrailtyWeekly`
        (``control_arm``, ``arms``, ``covariates``, ``random_intercepts``,
        ``covariate_missing``, ``missing_baseline``, ``period``, ``trend`` and its priors),
        ``zero_by_arm`` (``False``: one ``pi`` for all arms) and
        ``prior_logit_pi_mu``, ``prior_logit_pi_sd`` (Normal prior of ``logit(pi)``).
    sampler_config
        Overrides of the sampler defaults (see :class:`crampstats.engine.BayesModel`).

    Notes
    -----
    Posterior: ``log_rr`` (count component), ``alpha``, ``b``, ``phi``, ``trend``, ``beta``,
    ``logit_pi`` and ``pi`` (scalar, or dim ``zero_arm`` with ``zero_by_arm``).
    """

    name: ClassVar[str] = "zinb"
    zero_name: ClassVar[str] = "pi"
    default_model_config: ClassVar[dict[str, Any]] = {
        **FrailtyWeekly.default_model_config,
        "zero_by_arm": False,
        "prior_logit_pi_mu": -3.0,  # complete responders are rare: prior median 4.7 %
        "prior_logit_pi_sd": 1.5,
    }

    def _subject_graph(self, y0: Any, log_nm: Any, log_p0: Any, logit: Any) -> Any:
        import pytensor.tensor as pt

        log_pi, log1m_pi = -pt.softplus(-logit), -pt.softplus(logit)
        return pt.switch(y0, pt.logaddexp(log_pi, log1m_pi + log_p0), log1m_pi + log_nm)

    def _subject_numpy(
        self, y0: np.ndarray, log_nm: np.ndarray, log_p0: np.ndarray, logit: np.ndarray
    ) -> np.ndarray:
        log_pi, log1m_pi = special.log_expit(logit), special.log_expit(-logit)
        return np.where(y0, np.logaddexp(log_pi, log1m_pi + log_p0), log1m_pi + log_nm)

    def _total_pmf(
        self, count: int, nb_pmf: np.ndarray, log_p0: np.ndarray, logit: np.ndarray
    ) -> np.ndarray:
        pi = special.expit(logit)
        return (1.0 - pi) * nb_pmf + (pi if count == 0 else 0.0)

    def subject_log_rate(self, idata: xr.DataTree) -> xr.DataArray:
        """Log mean cramps per day under control, zero component included, per subject and draw.

        ``log(1 - pi_control) + alpha + b x_i + beta' z_i + log(mean_w exp(g t_w))``: the
        count component's rate (week trend averaged as in ``frailty_weekly``) times the
        probability of not being a complete responder. With a common ``pi``
        (``zero_by_arm=False``) every arm's mean is this times its rate ratio, so the decision
        tables' absolute differences (control rate x (RR - 1)) are exact; with
        ``zero_by_arm=True`` they use the control arm's ``pi`` for all arms (i.e. they describe
        the count component's effect only).
        """
        post = idata["posterior"]
        logit = self._control_logit(post)
        return self.frailty().subject_log_rate(idata) + special.log_expit(-logit)


class Hurdle(_ZeroComponentModel):
    """Hurdle model of weekly counts: P(no cramp at all), else a zero-truncated NM.

    Parameters
    ----------
    model_config
        Overrides of :attr:`default_model_config`: those of :class:`FrailtyWeekly`,
        ``zero_by_arm`` (``False``: one ``pi0`` for all arms) and ``prior_logit_pi0_mu``,
        ``prior_logit_pi0_sd`` (Normal prior of ``logit(pi0)``).
    sampler_config
        Overrides of the sampler defaults (see :class:`crampstats.engine.BayesModel`).

    Notes
    -----
    Posterior: ``log_rr`` (count component before truncation), ``alpha``, ``b``, ``phi``,
    ``trend``, ``beta``, ``logit_pi0`` and ``pi0`` = P(treatment total = 0).
    """

    name: ClassVar[str] = "hurdle"
    zero_name: ClassVar[str] = "pi0"
    default_model_config: ClassVar[dict[str, Any]] = {
        **FrailtyWeekly.default_model_config,
        "zero_by_arm": False,
        "prior_logit_pi0_mu": -3.0,  # subjects without any cramp are rare: median 4.7 %
        "prior_logit_pi0_sd": 1.5,
    }

    def _subject_graph(self, y0: Any, log_nm: Any, log_p0: Any, logit: Any) -> Any:
        import pytensor.tensor as pt

        log_pi, log1m_pi = -pt.softplus(-logit), -pt.softplus(logit)
        return pt.switch(y0, log_pi, log1m_pi + log_nm - pt.log1mexp(log_p0))

    def _subject_numpy(
        self, y0: np.ndarray, log_nm: np.ndarray, log_p0: np.ndarray, logit: np.ndarray
    ) -> np.ndarray:
        log_pi, log1m_pi = special.log_expit(logit), special.log_expit(-logit)
        return np.where(y0, log_pi, log1m_pi + log_nm - log1mexp(log_p0))

    def _total_pmf(
        self, count: int, nb_pmf: np.ndarray, log_p0: np.ndarray, logit: np.ndarray
    ) -> np.ndarray:
        pi0 = special.expit(logit)
        if count == 0:
            return pi0
        return (1.0 - pi0) / -np.expm1(log_p0) * nb_pmf  # (1 - pi0) NB(c) / (1 - NB(0))

    def subject_log_rate(self, idata: xr.DataTree) -> xr.DataArray:
        """Log mean cramps per day under control, the hurdle included, per subject and draw.

        ``log(1 - pi0) - log(1 - NM_i(0)) + alpha + b x_i + beta' z_i + log(mean_w exp(g t_w))``:
        the mean of a zero-truncated NM times P(any cramp). ``NM_i(0) = (phi / (phi +
        M_i))^phi`` is evaluated at the subject's own diarised weeks under control (for 8
        weeks at 0.9 cramps/day it is ~2e-4, so the correction matters only for subjects with
        very few cramps or days). The decision tables' absolute difference (control rate x
        (RR - 1)) treats the hurdle mean as proportional to the count rate, which is exact
        when ``NM(0)`` is negligible under every arm and ``pi0`` is common to the arms.
        """
        post = idata["posterior"]
        sd = idata["constant_data"].to_dataset()
        log_rate = self.frailty().subject_log_rate(idata)
        # expected total under control over the subject's own diarised weeks
        eta = self.frailty()._subject_eta(idata, sd)
        weights = sd["exposure_week"]
        if "trend" in post:
            weights = weights * np.exp(post["trend"] * sd["week_t"])
        m = np.exp(eta) * weights.sum("week")
        log_p0 = -post["phi"] * np.log1p(m / post["phi"])
        logit = self._control_logit(post)
        value = log_rate + special.log_expit(-logit) - log1mexp(log_p0)
        return value.transpose("chain", "draw", "subject")


# --------------------------------------------------------------------------------------------
# Frequentist twins on subject totals
# --------------------------------------------------------------------------------------------
def _totals_design(
    weekly: pd.DataFrame,
    model_cls: type[_ZeroComponentModel],
    control_arm: str,
    arms: list[str] | None,
    covariates: list[str] | None,
    period: str,
    missing_baseline: str,
    random_intercepts: list[str] | None = None,
    covariate_missing: str = "error",
) -> tuple[PreparedData, np.ndarray, np.ndarray, np.ndarray]:
    """Return prepared data, totals, design (1, arms, x, covariates, groupings), log exposure.

    Groupings (random intercepts of the Bayesian model) enter as fixed effects.
    """
    model = model_cls(
        {
            "control_arm": control_arm,
            "arms": arms,
            "covariates": list(covariates or []),
            "trend": False,
            "period": period,
            "missing_baseline": missing_baseline,
            "random_intercepts": list(random_intercepts or []),
            "covariate_missing": covariate_missing,
        }
    )
    prepared = model.prepare(weekly)
    d = prepared.data
    n_active = len(prepared.coords["arm"])
    blocks = [
        np.ones((len(d["y_subject"]), 1)),
        (d["arm_idx"][:, None] == np.arange(1, n_active + 1)).astype(float),
        d["x_baseline"][:, None],
    ]
    blocks += twin_columns(d.get("X_cov"), d.get("group_idx"), prepared.coords)[0]
    log_exposure = np.log(d["exposure_week"].sum(axis=1))
    return prepared, d["y_subject"].astype(float), np.column_stack(blocks), log_exposure


def _arm_table(active: list[str], params: np.ndarray, bse: np.ndarray) -> pd.DataFrame:
    sl = slice(1, 1 + len(active))
    out = pd.DataFrame({"arm": active, "log_rr": params[sl], "se": bse[sl]})
    out["lower"] = out["log_rr"] - _Z95 * out["se"]
    out["upper"] = out["log_rr"] + _Z95 * out["se"]
    out["rate_ratio"] = np.exp(out["log_rr"])
    return out


def zinb_twin(
    weekly: pd.DataFrame,
    control_arm: str = "placebo",
    arms: list[str] | None = None,
    covariates: list[str] | None = None,
    period: str = "treatment",
    missing_baseline: str = "error",
    zero_by_arm: bool = False,
    random_intercepts: list[str] | None = None,
    covariate_missing: str = "error",
) -> pd.DataFrame:
    """Frequentist twin of :class:`ZINB`: zero-inflated NB2 on subject totals (statsmodels).

    ``ZeroInflatedNegativeBinomialP`` (``p=2``, logit inflation) on each subject's treatment
    total with ``offset = log(total diarised treatment days)``, count design = intercept, arm
    indicators, centred log run-in rate, covariates (exactly :class:`ZINB`'s coding), and an
    inflation design = a constant (or one indicator per arm with ``zero_by_arm``). There is no
    week trend: with ``trend=False`` the Bayesian model's likelihood is this one times a
    constant (module docstring).

    Parameters
    ----------
    weekly
        Weekly rows, as for :class:`ZINB`.
    control_arm, arms, covariates, period, missing_baseline, zero_by_arm
        As in :attr:`ZINB.default_model_config`.
    random_intercepts, covariate_missing
        As in :attr:`ZINB.default_model_config` (groupings enter as fixed effects).

    Returns
    -------
    pandas.DataFrame
        One row per active arm: ``arm, log_rr, se, lower, upper`` (Wald 95 %),
        ``rate_ratio`` (count component). ``attrs`` hold ``phi`` (= 1 / statsmodels'
        alpha), ``pi`` (inflation probability; a list by arm with ``zero_by_arm``), ``b``,
        ``converged``, ``beta`` and ``beta_se`` (covariate coefficients of the count part).
    """
    prepared, y, X, offset = _totals_design(
        weekly, ZINB, control_arm, arms, covariates, period, missing_baseline,
        random_intercepts, covariate_missing,
    )  # fmt: skip
    active = prepared.coords["arm"]
    arm_idx = prepared.data["arm_idx"]
    if zero_by_arm:
        exog_infl = (arm_idx[:, None] == np.arange(len(active) + 1)).astype(float)
    else:
        exog_infl = np.ones((len(y), 1))
    model = sm.ZeroInflatedNegativeBinomialP(
        y, X, exog_infl=exog_infl, offset=offset, inflation="logit", p=2
    )
    # Start as if every zero total were a complete responder: logit of the proportion of
    # zeros (per inflation column) and an NB2 fit to the positive totals. From the NB2 fit
    # to all totals (statsmodels' default) the gradient methods overflow and diverge.
    positive = y > 0
    share = (exog_infl.T @ ~positive) / exog_infl.sum(axis=0)
    share = np.clip(share, 0.01, 0.99)
    nb = sm.NegativeBinomial(
        y[positive], X[positive], offset=offset[positive], loglike_method="nb2"
    ).fit(disp=0, maxiter=200)
    start = np.r_[special.logit(share), nb.params]
    result = model.fit(start_params=start, method="bfgs", maxiter=2000, disp=0)
    if not result.mle_retvals["converged"]:
        result = model.fit(start_params=result.params, method="newton", maxiter=200, disp=0)
    params, bse = np.asarray(result.params), np.asarray(result.bse)
    k_infl = exog_infl.shape[1]
    out = _arm_table(active, params[k_infl:], bse[k_infl:])
    pi = special.expit(params[:k_infl])
    out.attrs.update(
        phi=float(1.0 / params[-1]),
        pi=[float(v) for v in pi] if zero_by_arm else float(pi[0]),
        b=float(params[k_infl + 1 + len(active)]),
        converged=bool(result.mle_retvals["converged"]),
        **twin_coefficients(prepared.coords["covariate"], params, bse, k_infl + 2 + len(active)),
    )
    return out


def hurdle_twin(
    weekly: pd.DataFrame,
    control_arm: str = "placebo",
    arms: list[str] | None = None,
    covariates: list[str] | None = None,
    period: str = "treatment",
    missing_baseline: str = "error",
    zero_by_arm: bool = False,
    random_intercepts: list[str] | None = None,
    covariate_missing: str = "error",
) -> pd.DataFrame:
    """Frequentist twin of :class:`Hurdle`: the two hurdle parts on subject totals.

    The hurdle likelihood factorises into a binary part (total 0 or not) and a zero-truncated
    count part with disjoint parameters, so its maximum likelihood estimate is the pair of
    separate estimates; statsmodels' ``HurdleCountModel`` fits exactly these two models
    one after the other, but refuses an offset (statsmodels 0.15: "Offset and exposure are
    not yet implemented"). Here the count part is statsmodels'
    ``TruncatedLFNegativeBinomialP`` (NB2, truncated at 0) on the subjects with a positive
    total, with ``offset = log(total diarised treatment days)`` and :class:`Hurdle`'s design
    (intercept, arm indicators, centred log run-in rate, covariates); the binary part has
    only a constant (or one indicator per arm), whose maximum likelihood estimate is the
    observed proportion of zero totals (per arm), with its binomial standard error.

    Parameters
    ----------
    weekly
        Weekly rows, as for :class:`Hurdle`.
    control_arm, arms, covariates, period, missing_baseline, zero_by_arm
        As in :attr:`Hurdle.default_model_config`.
    random_intercepts, covariate_missing
        As in :attr:`Hurdle.default_model_config` (groupings enter as fixed effects).

    Returns
    -------
    pandas.DataFrame
        One row per active arm: ``arm, log_rr, se, lower, upper`` (Wald 95 %), ``rate_ratio``
        (count part). ``attrs`` hold ``phi`` (= 1 / statsmodels' alpha), ``pi0`` (proportion
        of zero totals; a list by arm, control first, with ``zero_by_arm``), ``pi0_se``,
        ``b``, ``converged``, ``beta`` and ``beta_se`` (covariate coefficients of the count
        part).
    """
    prepared, y, X, offset = _totals_design(
        weekly, Hurdle, control_arm, arms, covariates, period, missing_baseline,
        random_intercepts, covariate_missing,
    )  # fmt: skip
    active = prepared.coords["arm"]
    zero = y == 0
    if zero_by_arm:
        groups = prepared.data["arm_idx"]
        n = np.bincount(groups, minlength=len(active) + 1)
        n_zero = np.bincount(groups, weights=zero, minlength=len(active) + 1)
    else:
        n, n_zero = np.array([len(y)]), np.array([zero.sum()])
    pi0 = n_zero / n
    pi0_se = np.sqrt(pi0 * (1.0 - pi0) / n)
    # the truncated model drops the zero totals itself (truncation=0 keeps y > 0)
    result = TruncatedLFNegativeBinomialP(y, X, offset=offset, p=2).fit(
        method="bfgs", maxiter=2000, disp=0
    )
    if not result.mle_retvals["converged"]:
        result = TruncatedLFNegativeBinomialP(y, X, offset=offset, p=2).fit(
            start_params=result.params, method="newton", maxiter=200, disp=0
        )
    params, bse = np.asarray(result.params), np.asarray(result.bse)
    out = _arm_table(active, params, bse)
    out.attrs.update(
        phi=float(1.0 / params[-1]),
        pi0=[float(v) for v in pi0] if zero_by_arm else float(pi0[0]),
        pi0_se=[float(v) for v in pi0_se] if zero_by_arm else float(pi0_se[0]),
        b=float(params[1 + len(active)]),
        converged=bool(result.mle_retvals["converged"]),
        **twin_coefficients(prepared.coords["covariate"], params, bse, 2 + len(active)),
    )
    return out
