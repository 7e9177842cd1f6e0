"""Posterior of the log rate ratios of one simulated trial: full MCMC, or Laplace + PSIS.

Modes (``analysis.mode`` of ``config/power.yaml``; every decisions row records the mode that
produced it in its ``mode`` column)
---------------------------------------------------------------------------------------------
- ``mcmc``: the analysis model sampled by NUTS with the compile-once engine
  (:meth:`crampstats.engine.BayesModel.fit`), checked by :func:`crampstats.engine.diagnose`.
- ``laplace``: for ``nb_totals`` without covariates or random intercepts. The posterior of
  ``theta = (alpha, log_rr[arm], b, log k)`` is approximated at its mode with the inverse
  Hessian as scale (Laplace); ``proposal_draws`` draws of a multivariate t with that centre and
  scale are importance-weighted towards the exact posterior, the weights Pareto-smoothed (PSIS,
  Vehtari et al. 2024, :func:`arviz_stats.base.array_stats.psislw`) and resampled
  systematically to ``draws`` equally weighted draws, so that every later step -
  probabilities, quantiles, the decision rule of :mod:`crampstats.decisions` - is the code the
  MCMC path runs. When the Pareto ``k-hat`` exceeds ``khat_max`` (default 0.7: the importance
  weights' variance is then not trustworthy) or the mode cannot be found, the replicate is
  re-analysed by MCMC and its mode is
  ``laplace->mcmc``.

The log posterior is the model's (:mod:`crampstats.models.nb_totals`: same priors, the same
centred run-in covariate, NB2 likelihood), written in NumPy with its exact gradient and Hessian
(tested against finite differences and against MCMC). ``log k`` is the free parameter; its
LogNormal prior on ``k`` is a Normal prior on ``log k`` once the Jacobian is included.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from arviz_stats.base import array_stats
from scipy import optimize, special

from crampstats.config import ConfigError
from crampstats.engine import PreparedData, diagnose

__all__ = [
    "MODES",
    "LogRRPosterior",
    "NBTotalsLogPosterior",
    "check_mode",
    "laplace_log_rr",
    "posterior_log_rr",
]

#: Analysis modes of a power run.
MODES = ("mcmc", "laplace")

#: Degrees of freedom of the multivariate t importance proposal.
PROPOSAL_DF = 6.0

#: Default settings of the Laplace mode (``analysis.laplace`` in the power config).
LAPLACE_DEFAULTS: dict[str, float] = {"proposal_draws": 4000, "draws": 4000, "khat_max": 0.7}


@dataclass(frozen=True)
class LogRRPosterior:
    """Equally weighted posterior draws of the log rate ratios, with how they were obtained.

    Attributes
    ----------
    arms : list of str
        Active arms (columns of ``draws``).
    draws : numpy.ndarray
        ``(S, len(arms))`` draws of log RR versus control.
    diagnostics : dict
        ``rhat_max, ess_bulk_min, ess_tail_min, divergences, status`` (``ok`` / ``failed``) and
        ``reasons``; for the Laplace mode R-hat and divergences are NaN / 0 and both ESS are the
        PSIS effective sample size.
    mode : str
        ``mcmc``, ``laplace`` or ``laplace->mcmc`` (fallback).
    khat : float
        Pareto k-hat of the importance weights (NaN for ``mcmc``).
    """

    arms: list[str]
    draws: np.ndarray
    diagnostics: dict[str, Any]
    mode: str
    khat: float = math.nan
    extra: dict[str, Any] = field(default_factory=dict)


def check_mode(model: Any, mode: str) -> None:
    """Refuse a mode the analysis model does not support (a :class:`ConfigError`)."""
    if mode not in MODES:
        raise ConfigError(f"power config: key analysis.mode: {mode!r} is not one of {MODES}")
    if mode == "laplace":
        cfg = model.model_config
        if model.name != "nb_totals" or cfg.get("covariates") or cfg.get("random_intercepts"):
            raise ConfigError(
                "power config: key analysis.mode: laplace supports nb_totals without covariates "
                f"or random intercepts (model {model.name!r}); use mode: mcmc"
            )


def posterior_log_rr(
    model: Any,
    periods: Any,
    seed: int,
    *,
    mode: str = "mcmc",
    cores: int | None = None,
    thresholds: dict[str, float] | None = None,
    laplace: dict[str, float] | None = None,
) -> LogRRPosterior:
    """Posterior draws of the log rate ratios of one data set, by MCMC or Laplace + PSIS.

    Parameters
    ----------
    model
        The analysis model (a :class:`crampstats.engine.BayesModel` with a ``log_rr`` variable).
    periods
        Its analysis data.
    seed
        Integer seed (of the MCMC run, or of the proposal draws and the resampling).
    mode
        ``"mcmc"`` or ``"laplace"`` (module docstring).
    cores
        Chains in parallel (MCMC).
    thresholds
        Convergence gate of :func:`crampstats.engine.diagnose` (MCMC).
    laplace
        Overrides of :data:`LAPLACE_DEFAULTS`.

    Returns
    -------
    LogRRPosterior
    """
    check_mode(model, mode)
    if mode == "laplace":
        settings = {**LAPLACE_DEFAULTS, **(laplace or {})}
        prepared = model.prepare(periods)
        fast = laplace_log_rr(
            prepared,
            model.model_config,
            seed,
            proposal_draws=int(settings["proposal_draws"]),
            draws=int(settings["draws"]),
        )
        if fast is not None and fast.khat <= float(settings["khat_max"]):
            return fast
        mcmc = _mcmc(model, prepared, seed, cores, thresholds)
        khat = math.nan if fast is None else fast.khat
        return LogRRPosterior(mcmc.arms, mcmc.draws, mcmc.diagnostics, "laplace->mcmc", khat)
    return _mcmc(model, periods, seed, cores, thresholds)


def _mcmc(
    model: Any, data: Any, seed: int, cores: int | None, thresholds: dict[str, float] | None
) -> LogRRPosterior:
    idata = model.fit(data, seed=seed, cores=cores)
    log_rr = idata["posterior"]["log_rr"].transpose("chain", "draw", "arm")
    arms = [str(a) for a in log_rr["arm"].values]
    draws = log_rr.values.reshape(-1, len(arms))
    return LogRRPosterior(arms, draws, diagnose(idata, thresholds), "mcmc")


# --------------------------------------------------------------------------------------------
# Laplace + PSIS for nb_totals
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class NBTotalsLogPosterior:
    """Log posterior of nb_totals (no covariates) in ``theta = (alpha, log_rr..., b, log k)``."""

    y: np.ndarray
    offset: np.ndarray
    arm_idx: np.ndarray
    x: np.ndarray
    lgamma_y1: np.ndarray
    n_active: int
    prior_mu: np.ndarray
    prior_sd: np.ndarray

    @classmethod
    def from_prepared(cls, prepared: PreparedData, cfg: dict[str, Any]) -> NBTotalsLogPosterior:
        """Build from ``NBTotals.prepare(...)`` and the model config (its priors)."""
        d = prepared.data
        n_active = len(prepared.coords["arm"])
        mu = [cfg["prior_alpha_mu"], *[0.0] * n_active, cfg["prior_b_mu"], cfg["prior_k_mu"]]
        sd = [cfg["prior_alpha_sd"], *[cfg["prior_log_rr_sd"]] * n_active]
        sd += [cfg["prior_b_sd"], cfg["prior_k_sd"]]
        return cls(
            y=np.asarray(d["y"], float),
            offset=np.asarray(d["log_exposure"], float),
            arm_idx=np.asarray(d["arm_idx"], int),
            x=np.asarray(d["x_baseline"], float),
            lgamma_y1=np.asarray(d["lgamma_y1"], float),
            n_active=n_active,
            prior_mu=np.asarray(mu, float),
            prior_sd=np.asarray(sd, float),
        )

    @property
    def dim(self) -> int:
        """Number of parameters: alpha, one log RR per active arm, b, log k."""
        return self.n_active + 3

    def _eta(self, theta: np.ndarray) -> np.ndarray:
        """Linear predictor, shape ``theta.shape[:-1] + (n,)``."""
        effect = np.concatenate([np.zeros((*theta.shape[:-1], 1)), theta[..., 1:-2]], axis=-1)
        arm = np.take(effect, self.arm_idx, axis=-1)
        return self.offset + theta[..., :1] + arm + theta[..., -2:-1] * self.x

    def logp(self, theta: np.ndarray) -> np.ndarray:
        """Log posterior density (up to a constant) at ``theta`` (any leading axes)."""
        theta = np.asarray(theta, float)
        eta = self._eta(theta)
        k = np.exp(theta[..., -1:])
        per_row = (
            special.gammaln(self.y + k)
            - self.lgamma_y1
            + self.y * eta
            - (k + self.y) * np.log(k + np.exp(eta))
        )
        n = self.y.size
        k0 = k[..., 0]
        loglik = per_row.sum(axis=-1) + n * (k0 * np.log(k0) - special.gammaln(k0))
        z = (theta - self.prior_mu) / self.prior_sd
        return loglik - 0.5 * (z * z).sum(axis=-1)

    def grad_hess(self, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Exact gradient and Hessian of :meth:`logp` at one ``theta``."""
        eta = self._eta(theta)
        k = math.exp(theta[-1])
        mu = np.exp(eta)
        y = self.y
        d_eta = y - (k + y) * mu / (k + mu)
        h_eta = -(k + y) * mu * k / (k + mu) ** 2
        d_k = np.sum(
            special.digamma(y + k) - special.digamma(k) + math.log(k) + 1.0
            - np.log(k + mu) - (k + y) / (k + mu)
        )  # fmt: skip
        h_kk = np.sum(
            special.polygamma(1, y + k) - special.polygamma(1, k) + 1.0 / k - 1.0 / (k + mu)
            - (mu - y) / (k + mu) ** 2
        )  # fmt: skip
        h_eta_k = mu * (y - mu) / (k + mu) ** 2
        # d eta / d (alpha, log_rr[j], b) as columns
        p = self.dim
        jac = np.zeros((y.size, p - 1))
        jac[:, 0] = 1.0
        for j in range(self.n_active):
            jac[:, 1 + j] = self.arm_idx == j + 1
        jac[:, -1] = self.x
        grad = np.empty(p)
        grad[:-1] = jac.T @ d_eta
        grad[-1] = k * d_k
        hess = np.empty((p, p))
        hess[:-1, :-1] = (jac * h_eta[:, None]).T @ jac
        cross = k * (jac.T @ h_eta_k)
        hess[:-1, -1] = cross
        hess[-1, :-1] = cross
        hess[-1, -1] = k * k * h_kk + k * d_k
        grad -= (theta - self.prior_mu) / self.prior_sd**2
        hess -= np.diag(1.0 / self.prior_sd**2)
        return grad, hess

    def start(self) -> np.ndarray:
        """Moment-based starting point: control log rate, log ratios of arm means, b 0, k 3."""
        rate = self.y / np.exp(self.offset)
        base = rate[self.arm_idx == 0].mean() if np.any(self.arm_idx == 0) else rate.mean()
        theta = np.zeros(self.dim)
        theta[0] = math.log(max(base, 1e-3))
        for j in range(self.n_active):
            sel = self.arm_idx == j + 1
            if sel.any():
                theta[1 + j] = math.log(max(rate[sel].mean(), 1e-3)) - theta[0]
        theta[-1] = math.log(3.0)
        return theta


def laplace_log_rr(
    prepared: PreparedData,
    model_config: dict[str, Any],
    seed: int,
    *,
    proposal_draws: int = 4000,
    draws: int = 4000,
) -> LogRRPosterior | None:
    """Laplace approximation of nb_totals' posterior, corrected by PSIS (module docstring).

    Parameters
    ----------
    prepared
        ``NBTotals.prepare(periods)`` (no covariates, no random intercepts).
    model_config
        The model's config (priors).
    seed
        Seed of the proposal draws and of the resampling.
    proposal_draws, draws
        Draws from the normal proposal, and equally weighted draws kept after resampling.

    Returns
    -------
    LogRRPosterior or None
        ``None`` when the mode is not found or the Hessian is not negative definite.
    """
    post = NBTotalsLogPosterior.from_prepared(prepared, model_config)
    res = optimize.minimize(
        lambda t: -post.logp(t),
        post.start(),
        jac=lambda t: -post.grad_hess(t)[0],
        hess=lambda t: -post.grad_hess(t)[1],
        method="trust-exact",
        options={"gtol": 1e-8, "maxiter": 200},
    )
    grad, hess = post.grad_hess(res.x)
    try:
        chol_prec = np.linalg.cholesky(-hess)
    except np.linalg.LinAlgError:
        return None
    # the trust region may stop at floating-point precision of a log density in the thousands
    # ("failure to predict improvement"): accept the mode when the remaining Newton step is
    # below 1 % of every posterior SD (the importance weights correct the rest)
    step = np.linalg.solve(-hess, grad)
    sd = np.sqrt(np.diag(np.linalg.inv(-hess)))
    if not np.all(np.isfinite(step)) or np.max(np.abs(step) / sd) > 0.01:
        return None
    mode = res.x + step
    rng = np.random.default_rng(int(seed))
    z = rng.standard_normal((proposal_draws, post.dim))
    # multivariate t proposal (PROPOSAL_DF degrees of freedom) centred at the mode with scale
    # (-H)^-1: heavier tails than the normal keep the importance weights bounded where the
    # posterior of log k is skewed (small trials); theta = mode + L^-T z sqrt(df / chi2_df)
    scale = np.sqrt(PROPOSAL_DF / rng.chisquare(PROPOSAL_DF, proposal_draws))[:, None]
    theta = mode + np.linalg.solve(chol_prec.T, (z * scale).T).T
    zz = (z * z).sum(axis=1) * scale[:, 0] ** 2
    log_q = -0.5 * (PROPOSAL_DF + post.dim) * np.log1p(zz / PROPOSAL_DF)
    log_ratio = post.logp(theta) - log_q
    # psislw smooths exp(-input) (the LOO convention, ratios 1 / p(y_i | theta)): pass minus
    log_w, khat = array_stats.psislw(-log_ratio)
    w = np.exp(log_w - log_w.max())
    w /= w.sum()
    ess = float(1.0 / np.sum(w * w))
    # systematic resampling: equally weighted draws for the shared summary and decision code
    u = (rng.random() + np.arange(draws)) / draws
    idx = np.minimum(np.searchsorted(np.cumsum(w), u), proposal_draws - 1)
    kept = theta[idx, 1 : 1 + post.n_active]
    khat = float(khat)
    diagnostics = {
        "rhat_max": math.nan,
        "ess_bulk_min": ess,
        "ess_tail_min": ess,
        "divergences": 0,
        "status": "ok",
        "reasons": [],
    }
    arms = [str(a) for a in prepared.coords["arm"]]
    return LogRRPosterior(arms, kept, diagnostics, "laplace", khat, {"mode_theta": mode})
