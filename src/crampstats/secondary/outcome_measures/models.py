"""Bayesian random-intercept models of test-retest reliability (run-in counts, baseline CTF).

:class:`RunInReliability` (weekly run-in counts, NB2 with a log-normal subject effect) and
:class:`CTFReliability` (two interval-censored baseline log CTFs per subject). Their models,
priors and the reliability properties derived from them are described in
:mod:`crampstats.secondary.outcome_measures.reliability`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import pandas as pd
import xarray as xr

from crampstats.engine import BayesModel, PreparedData
from crampstats.models.nb_glmm import marginal_log_likelihood
from crampstats.numerics import interval_logprob_pt
from crampstats.secondary.outcome_measures.data import ctf_baseline_pairs, runin_weeks
from crampstats.secondary.outcome_measures.likelihood import (
    ctf_marginal_loglik,
    finite_log_bounds,
)

if TYPE_CHECKING:
    import pymc as pm

__all__ = ["CTFReliability", "RunInReliability"]


class _RandomInterceptModel(BayesModel):
    """Shared pieces of the two reliability models (subject dimension in the compiled model)."""

    default_sampler_config: ClassVar[dict[str, Any]] = {
        "chains": 4,
        "draws": 1000,
        "tune": 1000,
        "cores": None,
        "target_accept": 0.9,
    }

    def structure_key(self, prepared: PreparedData) -> str:
        """Compile-cache key: model id and the number of subjects (``z`` has one per subject)."""
        return f"{super().structure_key(prepared)}-n{prepared.n_subjects}"

    @staticmethod
    def _subject_index(rows: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        labels, idx = np.unique(rows["subject"].to_numpy(dtype=str), return_inverse=True)
        return labels, idx.astype(np.int64)

    def _per_subject(
        self, values: np.ndarray, idata: xr.DataTree, prepared: PreparedData
    ) -> xr.DataArray:
        post = idata["posterior"]
        return xr.DataArray(
            values.reshape(post.sizes["chain"], post.sizes["draw"], prepared.n_subjects),
            dims=("chain", "draw", "subject"),
            coords={
                "chain": post["chain"],
                "draw": post["draw"],
                "subject": prepared.subject_data["subject"],
            },
            name="y",
        )


class RunInReliability(_RandomInterceptModel):
    """Weekly run-in counts, NB2 with a log-normal subject effect (:mod:`.reliability`).

    Parameters
    ----------
    model_config
        Overrides of :attr:`default_model_config`: ``min_exposure_days`` (4), priors
        ``prior_alpha_mu``, ``prior_alpha_sd``, ``prior_sigma_sd``, ``prior_k_mu`` (of log k),
        ``prior_k_sd`` and ``quadrature_nodes`` of the marginal log-likelihood (25). The model
        has no arms: the run-in precedes randomisation.
    sampler_config
        Overrides of the sampler defaults (target_accept 0.9).
    """

    name: ClassVar[str] = "runin_reliability"
    default_model_config: ClassVar[dict[str, Any]] = {
        "min_exposure_days": 4,
        "prior_alpha_mu": float(np.log(0.9)),  # docs/calibration.md: baseline rate, NLC
        "prior_alpha_sd": 1.0,
        "prior_sigma_sd": 1.0,  # docs/calibration.md: k = 3 <=> log-scale SD 0.63
        "prior_k_mu": float(np.log(10.0)),  # within-subject: above the between-subject k = 3
        "prior_k_sd": 1.0,
        "quadrature_nodes": 25,
    }

    def prepare(self, data: pd.DataFrame) -> PreparedData:
        """Select the usable run-in weeks of a ``weekly`` frame (:func:`runin_weeks`)."""
        rows, info = runin_weeks(data, int(self.model_config["min_exposure_days"]))
        labels, idx = self._subject_index(rows)
        y = rows["count"].to_numpy(np.int64)
        exposure = rows["exposure_days"].to_numpy(float)
        subject_data = xr.Dataset(
            {
                "n_weeks": ("subject", np.bincount(idx, minlength=len(labels))),
                "count": ("subject", np.bincount(idx, weights=y, minlength=len(labels))),
                "exposure_days": (
                    "subject",
                    np.bincount(idx, weights=exposure, minlength=len(labels)),
                ),
            },
            coords={"subject": labels},
        )
        return PreparedData(
            data={"y": y, "log_exposure": np.log(exposure), "subject_idx": idx},
            coords={},
            constants={key: float(v) for key, v in info.items()},
            subject_data=subject_data,
            extra={"rate_per_week": rows["rate_per_week"].to_numpy(float)},
        )

    def _build(self, prepared: PreparedData) -> pm.Model:
        # PyMC / PyTensor are heavy: imported only when a model is built
        import pymc as pm
        import pytensor.tensor as pt

        cfg = self.model_config
        d = prepared.data
        with pm.Model(coords={"subject": list(range(prepared.n_subjects))}) as model:
            y = pm.Data("y", d["y"])
            log_exposure = pm.Data("log_exposure", d["log_exposure"])
            subject_idx = pm.Data("subject_idx", d["subject_idx"])
            alpha = pm.Normal("alpha", cfg["prior_alpha_mu"], cfg["prior_alpha_sd"])
            sigma = pm.HalfNormal("sigma", cfg["prior_sigma_sd"])
            k = pm.LogNormal("k", cfg["prior_k_mu"], cfg["prior_k_sd"])
            z = pm.Normal("z", 0.0, 1.0, dims="subject")
            eta = log_exposure + alpha + sigma * z[subject_idx]
            # NB2 log pmf written out (nb_totals); lgamma(y + 1) is constant and left out
            per_row = (
                pt.gammaln(y + k)
                - pt.gammaln(k)
                + k * pt.log(k)
                + y * eta
                - (k + y) * pt.logaddexp(pt.log(k), eta)
            )
            pm.Potential("nb_loglik", pt.sum(per_row))
        return model

    def pointwise_log_likelihood(self, idata: xr.DataTree, prepared: PreparedData) -> xr.DataArray:
        """Marginal log-likelihood of each subject's run-in weeks (``u`` integrated out)."""
        post = idata["posterior"]
        alpha, sigma, k = (post[v].values.reshape(-1) for v in ("alpha", "sigma", "k"))
        d = prepared.data
        value = marginal_log_likelihood(
            alpha[:, None] + d["log_exposure"][None, :],
            d["y"],
            d["subject_idx"],
            prepared.n_subjects,
            k,
            sigma,
            n_nodes=int(self.model_config["quadrature_nodes"]),
        )
        return self._per_subject(value, idata, prepared)


class CTFReliability(_RandomInterceptModel):
    """Two baseline log CTFs per subject, interval-censored normal random intercept.

    Parameters
    ----------
    model_config
        Overrides of :attr:`default_model_config`: ``prior_m_mu``, ``prior_m_sd``,
        ``prior_sb_sd``, ``prior_se_sd`` (HalfNormal scales) and ``quadrature_nodes`` (30).
    sampler_config
        Overrides of the sampler defaults (target_accept 0.9).
    """

    name: ClassVar[str] = "ctf_reliability"
    default_model_config: ClassVar[dict[str, Any]] = {
        "prior_m_mu": float(np.log(16.0)),  # docs/calibration.md: CTF cramp-prone, median 16 Hz
        "prior_m_sd": 0.5,
        "prior_sb_sd": 0.5,  # docs/calibration.md: SD 4.5 Hz on 16 Hz, total log SD 0.28
        "prior_se_sd": 0.5,
        "quadrature_nodes": 30,
    }

    def prepare(self, data: pd.DataFrame) -> PreparedData:
        """Select the two baseline CTFs of each subject (:func:`ctf_baseline_pairs`)."""
        rows, info = ctf_baseline_pairs(data)
        labels, idx = self._subject_index(rows)
        lower, upper = finite_log_bounds(rows)
        subject_data = xr.Dataset(
            {
                "n_censored": (
                    "subject",
                    np.bincount(idx, weights=rows["censored"].astype(float), minlength=len(labels)),
                )
            },
            coords={"subject": labels},
        )
        return PreparedData(
            data={"log_lower": lower, "log_upper": upper, "subject_idx": idx},
            coords={},
            constants={key: float(v) for key, v in info.items()},
            subject_data=subject_data,
        )

    def _build(self, prepared: PreparedData) -> pm.Model:
        # PyMC / PyTensor are heavy: imported only when a model is built
        import pymc as pm
        import pytensor.tensor as pt
        from pymc.distributions.dist_math import normal_lcdf

        cfg = self.model_config
        d = prepared.data
        with pm.Model(coords={"subject": list(range(prepared.n_subjects))}) as model:
            log_lower = pm.Data("log_lower", d["log_lower"])
            log_upper = pm.Data("log_upper", d["log_upper"])
            subject_idx = pm.Data("subject_idx", d["subject_idx"])
            m = pm.Normal("m", cfg["prior_m_mu"], cfg["prior_m_sd"])
            s_b = pm.HalfNormal("s_b", cfg["prior_sb_sd"])
            s_e = pm.HalfNormal("s_e", cfg["prior_se_sd"])
            z = pm.Normal("z", 0.0, 1.0, dims="subject")
            mean = m + s_b * z[subject_idx]
            # PyMC's normal_lcdf (float32 sqrt(2) inside), as since the model was written: the
            # fitted numbers stay as they were (crampstats.numerics.interval_logprob_pt)
            logp = interval_logprob_pt(
                (log_lower - mean) / s_e,
                (log_upper - mean) / s_e,
                log_ndtr=lambda z: normal_lcdf(0.0, 1.0, z),
            )
            pm.Potential("interval_loglik", pt.sum(logp))
        return model

    def pointwise_log_likelihood(self, idata: xr.DataTree, prepared: PreparedData) -> xr.DataArray:
        """Marginal log-likelihood of each subject's two baseline CTFs (``b`` integrated out)."""
        post = idata["posterior"]
        m, s_b, s_e = (post[v].values.reshape(-1) for v in ("m", "s_b", "s_e"))
        d = prepared.data
        value = ctf_marginal_loglik(
            d["log_lower"],
            d["log_upper"],
            d["subject_idx"],
            prepared.n_subjects,
            m,
            s_b,
            s_e,
            n_nodes=int(self.model_config["quadrature_nodes"]),
        )
        return self._per_subject(value, idata, prepared)
