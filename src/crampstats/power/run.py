"""Run one shard of a power simulation: simulate, fit by full MCMC, keep the decisions.

Every replicate simulates one pool of patients at the largest patients-per-arm value and
analyses the nested trial of every value of the sweep (:mod:`crampstats.power.generate`: common
random numbers), each with the design's analysis model (``nb_totals``, ``frailty_weekly`` or
``crossover``) fitted by the compile-once engine (:meth:`crampstats.engine.BayesModel.fit`
re-samples the model compiled at the first fit; the crossover model compiles once per number of
analysed patients). Each fit is reduced at once to one row per arm: posterior median and 95 %
interval of the rate ratio, the posterior probability of each rule, the decisions
(:func:`crampstats.power.decide.arm_decisions`), the convergence diagnostics and, for the
crossover model, how many patients were declared to benefit among those who truly do (and do
not). Posteriors are dropped as soon as they are summarised, so memory does not grow with the
number of replicates.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from crampstats.catalogue import count_entry
from crampstats.config import ConfigError
from crampstats.decisions import nb_parameters, probability_below
from crampstats.engine import diagnose
from crampstats.errors import CrampstatsError
from crampstats.outputs import Progress
from crampstats.power.config import (
    PowerDesign,
    config_digest,
    resolve_design,
    rule_log_thresholds,
)
from crampstats.power.decide import (
    arm_decisions,
    calibrated_threshold,
    decision_column,
    exchangeable_threshold,
)
from crampstats.power.fast import LogRRPosterior, check_mode, posterior_log_rr
from crampstats.power.generate import Pool, draw_effects, mcmc_seed, pool_trial, simulate_pool

#: Parquet schema-metadata key holding the run's description (JSON).
META_KEY = b"crampstats_power"


def shard_replicates(replicates: int, shards: int, shard: int) -> range:
    """Replicate indices of shard ``shard`` (1-based) of ``shards``: a contiguous block.

    Blocks differ in size by at most one and together cover ``0 .. replicates - 1`` once.

    Examples
    --------
    >>> [list(shard_replicates(7, 3, i)) for i in (1, 2, 3)]
    [[0, 1, 2], [3, 4], [5, 6]]
    """
    if shards < 1 or not 1 <= shard <= shards:
        raise ValueError(f"shard must be in 1..{shards}, got {shard}")
    if replicates < 1:
        raise ValueError(f"replicates must be >= 1, got {replicates}")
    base, extra = divmod(replicates, shards)
    start = (shard - 1) * base + min(shard - 1, extra)
    return range(start, start + base + (1 if shard <= extra else 0))


def decisions_path(out_dir: str | Path, shards: int, shard: int) -> Path:
    """``out_dir/decisions-I-of-K.parquet``."""
    return Path(out_dir) / f"decisions-{shard}-of-{shards}.parquet"


def analysis_model(config: dict[str, Any], design: PowerDesign, **overrides: Any) -> Any:
    """Build the analysis model with the design's arms fixed (its compiled structure is fixed).

    ``missing_baseline`` defaults to ``"mean"``: a simulated patient without run-in diary days
    (possible only with selection switched off) must not stop a sweep. ``overrides`` are model
    config keys set last (the exchangeable prior, :func:`exchangeable_model`).
    """
    analysis = config["analysis"]
    model_config = {
        "missing_baseline": "mean",
        **analysis["model_config"],
        "arms": list(design.arms),
        "control_arm": design.control,
        **overrides,
    }
    try:
        return count_entry(design.model).model(model_config, dict(analysis["sampler"]))
    except ValueError as exc:
        raise ConfigError(f"power config: key analysis.model_config: {exc}") from None


def exchangeable_model(config: dict[str, Any], design: PowerDesign) -> Any:
    """Build the analysis model with the exchangeable prior over the active arms' effects.

    As :func:`crampstats.fit.fitting` builds the primary ``nb_totals`` model when the analysis
    plan's strategy is ``exchangeable``, with the scales of ``multiplicity``.
    """
    multiplicity = config.get("multiplicity") or {}
    return analysis_model(
        config,
        design,
        log_rr_prior="exchangeable",
        prior_log_rr_mu_sd=float(multiplicity.get("prior_mu_sd", 1.0)),
        prior_log_rr_tau_sd=float(multiplicity.get("prior_tau_sd", 0.5)),
    )


def exchangeable_applies(design: PowerDesign) -> bool:
    """Whether the design can be analysed under ``exchangeable``: nb_totals, parallel, 2+ actives.

    The plan check refuses the strategy otherwise (:func:`crampstats.plan.check_plan`).
    """
    return design.model == "nb_totals" and design.layout == "parallel" and len(design.active) > 1


def run_shard(
    config: dict[str, Any],
    design_name: str,
    replicates: int | None = None,
    shards: int = 1,
    shard: int = 1,
    out_dir: str | Path = ".",
    progress: Progress | None = None,
    cores: int | None = None,
) -> Path:
    """Simulate and analyse shard ``shard`` of ``shards`` of a design's replicates.

    Parameters
    ----------
    config
        Validated power configuration (:func:`crampstats.power.load_power_config`).
    design_name
        Key under ``designs:``.
    replicates
        Total replicates over all shards; default the config's ``replicates``.
    shards, shard
        Number of shards and this shard's number (1-based).
    out_dir
        Folder for ``decisions-I-of-K.parquet`` (created).
    progress
        Called as ``progress(done, total, elapsed_seconds)`` after each replicate, e.g.
        :func:`terminal_progress`.
    cores
        Chains sampled in parallel; default the config's ``analysis.cores`` (``None`` = as many
        as chains, capped at the CPUs available).

    Returns
    -------
    pathlib.Path
        The decisions file: one row per replicate x patients-per-arm value x active arm with
        ``design, replicate, n_per_arm, arm, effect, true_rr, n_randomised, n_analysed,
        rr_median, rr_lower, rr_upper, p_rr_below_1``, per rule ``p_rr_below_threshold[<rule>]``
        and ``decision[<rule>]``, ``rhat_max, ess_bulk_min, ess_tail_min, divergences, status``
        (``ok``, ``diagnostics_failed`` or ``error``), ``error``, ``seed``, ``mode``, ``khat``
        and, for the crossover model, ``patients_benefit`` (patients whose true own rate ratio
        is below 1), ``patients_benefit_declared`` (of them, declared to benefit: posterior
        P(own RR < 1) > ``patient_benefit_probability``), ``patients_no_benefit``,
        ``patients_no_benefit_declared`` and ``p_own_benefit_mean``. Rows depend only on the
        configuration and the replicate indices, never on the sharding.
    """
    replicates = int(config["replicates"] if replicates is None else replicates)
    design = resolve_design(config, design_name)
    reps = shard_replicates(replicates, shards, shard)
    model = analysis_model(config, design)
    cores = config["analysis"]["cores"] if cores is None else cores
    rules = rule_log_thresholds(config)
    thresholds = dict(config["analysis"]["diagnostics"])
    check_mode(model, config["analysis"].get("mode", "mcmc"))
    multiplicity = dict(config.get("multiplicity") or {})
    strategies = ["none", *(s for s in multiplicity.get("strategies", []) if s != "none")]
    if design.layout != "parallel":  # the calibration assumes arms sharing a parallel control
        strategies = [s for s in strategies if s != "calibrated"]
    if not exchangeable_applies(design):
        strategies = [s for s in strategies if s != "exchangeable"]
    exchangeable = exchangeable_model(config, design) if "exchangeable" in strategies else None
    analysis = {
        **config["analysis"],
        "patient_benefit_probability": float(config.get("patient_benefit_probability", 0.8)),
        "strategies": strategies,
        "multiplicity": multiplicity,
        # fixed_sequence: the configured order restricted to this design's arms, the rest after
        "order": [a for a in multiplicity.get("order", []) if a in design.active]
        + [a for a in design.active if a not in multiplicity.get("order", [])],
        # the calibrated threshold depends on the arm sizes only: once per sweep value
        "calibrated": {
            n: calibrated_threshold([design.arm_sizes(n)[a] for a in design.arms], multiplicity)
            for n in design.n_values
        }
        if "calibrated" in strategies
        else {},
    }

    rows: list[dict[str, Any]] = []
    start = time.perf_counter()
    for done, r in enumerate(reps, start=1):
        rr = draw_effects(design, config["seed"], r)
        seed = mcmc_seed(config["seed"], r)
        pool = simulate_pool(design, rr, config["seed"], r)
        for n in design.n_values:
            trial = Trial(pool, design, n, pool_trial(pool, design, n))
            rows.extend(
                _fit_rows(model, trial, rr, rules, thresholds, seed, cores, r, analysis=analysis,
                          exchangeable=exchangeable)
            )
        if progress is not None:
            progress(done, len(reps), time.perf_counter() - start)
    elapsed = time.perf_counter() - start

    frame = pd.DataFrame(rows, columns=_columns(rules, strategies))
    meta = {
        "design": design_name,
        "digest": config_digest(config, design_name),
        "replicates": replicates,
        "shards": shards,
        "shard": shard,
        "replicate_range": [reps.start, reps.stop],
        "n_values": list(design.n_values),
        "effects": {arm: design.effects[arm].label for arm in design.active},
        "family": design.family,
        "scenario": design.scenario,
        "layout": design.layout,
        "allocation": design.allocation,
        "arm_sizes": {str(n): design.arm_sizes(n) for n in design.n_values},
        "interval": config.get("interval", "clopper_pearson"),
        "multiplicity": {**multiplicity, "strategies": strategies},
        "calibrated_thresholds": {str(n): p for n, p in analysis["calibrated"].items()},
        "patient_benefit_probability": analysis["patient_benefit_probability"],
        "rules": config["rules"],
        "target_power": config["target_power"],
        "model": design.model,
        "mode": config["analysis"].get("mode", "mcmc"),
        "sampler": config["analysis"]["sampler"],
        "seed": config["seed"],
        "elapsed_seconds": round(elapsed, 3),
    }
    return write_decisions(frame, decisions_path(out_dir, shards, shard), meta)


def _columns(rules: list[tuple[str, float, float]], strategies: list[str]) -> list[str]:
    cols = [
        "design", "replicate", "n_per_arm", "arm", "effect", "true_rr", "n_randomised",
        "n_analysed", "rr_median", "rr_lower", "rr_upper", "p_rr_below_1",
    ]  # fmt: skip
    for name, _, _ in rules:
        cols += [f"p_rr_below_threshold[{name}]", f"decision[{name}]"]
        cols += [decision_column(name, s) for s in strategies if s != "none"]
    return [
        *cols,
        "rhat_max",
        "ess_bulk_min",
        "ess_tail_min",
        "divergences",
        "status",
        "error",
        "seed",
        "mode",
        "khat",
        *PATIENT_COLUMNS,
    ]


#: Per-patient operating characteristics of the crossover model (NaN for other models).
PATIENT_COLUMNS = (
    "patients_benefit", "patients_benefit_declared", "patients_no_benefit",
    "patients_no_benefit_declared", "p_own_benefit_mean",
)  # fmt: skip


class Trial:
    """One analysed trial: the pool it came from, the design, the sweep value and its data."""

    def __init__(self, pool: Pool, design: PowerDesign, n: int, data: pd.DataFrame) -> None:
        self.pool, self.design, self.n, self.data = pool, design, n, data

    def counts(self) -> dict[str, tuple[int, int]]:
        """Arm -> (patients randomised to it, patients with exposure on it)."""
        arm_col = "treatment" if "treatment" in self.data else "arm"
        exposed = self.data.loc[self.data["exposure_days"] > 0]
        analysed = exposed.groupby(arm_col, observed=True)["subject_id"].nunique()
        sizes = self.design.arm_sizes(self.n)
        return {arm: (sizes[arm], int(analysed.get(arm, 0))) for arm in self.design.active}


def patient_counts(effects: pd.DataFrame, own_log_rr: dict, q: float) -> dict[str, dict]:
    """Per arm: patients truly benefiting or not, and how many of each the rule declares.

    Parameters
    ----------
    effects
        :meth:`crampstats.models.Crossover.patient_effects` of one fit (``subject_id, arm,
        p_own_benefit``).
    own_log_rr
        Subject -> arm -> true own log rate ratio (:attr:`crampstats.power.generate.Pool.
        own_log_rr`).
    q
        A patient is declared to benefit when ``p_own_benefit > q``.

    Returns
    -------
    dict
        Arm -> the :data:`PATIENT_COLUMNS` values.
    """
    out = {}
    for arm, sub in effects.groupby("arm", sort=False):
        truth = np.array([own_log_rr.get(str(s), {}).get(arm, np.nan) for s in sub["subject_id"]])
        known = np.isfinite(truth)
        benefit = known & (truth < 0)
        declared = sub["p_own_benefit"].to_numpy() > q
        out[str(arm)] = {
            "patients_benefit": int(benefit.sum()),
            "patients_benefit_declared": int((declared & benefit).sum()),
            "patients_no_benefit": int((known & ~benefit).sum()),
            "patients_no_benefit_declared": int((declared & known & ~benefit).sum()),
            "p_own_benefit_mean": float(sub["p_own_benefit"].mean()),
        }
    return out


def _crossover_posterior(
    model: Any, trial: Trial, seed: int, cores: int | None, thresholds: dict[str, float], q: float
) -> LogRRPosterior:
    """MCMC fit of the crossover model; ``extra["patients"]`` holds :func:`patient_counts`."""
    idata = model.fit(trial.data, seed=seed, cores=cores)
    log_rr = idata["posterior"]["log_rr"].transpose("chain", "draw", "arm")
    arms = [str(a) for a in log_rr["arm"].values]
    draws = log_rr.values.reshape(-1, len(arms))
    patients = patient_counts(model.patient_effects(idata), trial.pool.own_log_rr, q)
    return LogRRPosterior(
        arms, draws, diagnose(idata, thresholds), "mcmc", extra={"patients": patients}
    )


def _fit_rows(
    model: Any,
    trial: Trial,
    rr: dict[str, float],
    rules: list[tuple[str, float, float]],
    thresholds: dict[str, float],
    seed: int,
    cores: int | None,
    replicate: int,
    analysis: dict[str, Any] | None = None,
    exchangeable: Any | None = None,
) -> list[dict[str, Any]]:
    """Fit one simulated trial and reduce the posterior to one row per active arm.

    ``analysis`` (the config's) picks the mode (:mod:`crampstats.power.fast`: ``mcmc`` or
    ``laplace`` with MCMC fallback); every row records the mode that produced it. The
    crossover model is always sampled by MCMC (its per-patient effects need the posterior).
    ``exchangeable`` (:func:`exchangeable_model`) is fitted too, by MCMC, when the strategies
    include ``exchangeable``: its decisions use its own draws and threshold
    (:func:`_exchangeable_decisions`), as the analysis does.
    """
    analysis = analysis or {}
    mode = analysis.get("mode", "mcmc")
    design, n = trial.design, trial.n
    counts = trial.counts()
    base = {
        arm: {
            "design": design.name,
            "replicate": replicate,
            "n_per_arm": n,
            "arm": arm,
            "effect": design.effects[arm].label,
            "true_rr": float(rr[arm]),
            "n_randomised": counts[arm][0],
            "n_analysed": counts[arm][1],
            "seed": seed,
            "mode": mode,
        }
        for arm in design.active
    }
    try:
        if design.model == "crossover":
            q = float(analysis.get("patient_benefit_probability", 0.8))
            fitted = _crossover_posterior(model, trial, seed, cores, thresholds, q)
        else:
            fitted = posterior_log_rr(
                model, trial.data, seed, mode=mode, cores=cores, thresholds=thresholds,
                laplace=analysis.get("laplace"),
            )  # fmt: skip
    except (CrampstatsError, RuntimeError) as exc:
        # a trial the model cannot analyse (e.g. an arm left without treatment data) is a
        # failure to show efficacy: every decision is False and the row says why
        out = []
        for arm in design.active:
            row = {**base[arm], "status": "error", "error": f"{type(exc).__name__}: {exc}"}
            for name, _, _ in rules:
                row[f"p_rr_below_threshold[{name}]"] = np.nan
                for strategy in analysis.get("strategies", ["none"]):
                    row[decision_column(name, strategy)] = False
            out.append(row)
        return out
    arm_names, draws, diag = fitted.arms, fitted.draws, fitted.diagnostics
    patients = fitted.extra.get("patients", {})
    probabilities = {
        name: {
            arm: float(probability_below(draws[:, arm_names.index(arm)], log_threshold))
            for arm in design.active
        }
        for name, log_threshold, _ in rules
    }
    # the analysis' rule (crampstats.decisions, through power.decide), so power and analysis
    # decide alike; all arms of a trial at once, under every family-wise strategy
    active = list(design.active)
    columns = [arm_names.index(arm) for arm in active]
    decisions = {
        decision_column(name, strategy): arm_decisions(
            draws[:, columns],
            active,
            {"threshold_rr": float(np.exp(log_threshold)), "probability": probability},
            strategy,
            analysis.get("order", ()),
            analysis.get("calibrated", {}).get(n),
        )
        for name, log_threshold, probability in rules
        for strategy in analysis.get("strategies", ["none"])
        if strategy != "exchangeable"
    }
    notes = []
    if exchangeable is not None:
        decided, note = _exchangeable_decisions(
            exchangeable, trial, rules, thresholds, seed, cores, analysis.get("multiplicity", {})
        )
        decisions.update(decided)
        notes += [note] if note else []
    out = []
    for arm in design.active:
        x = draws[:, arm_names.index(arm)]
        lower, median, upper = np.quantile(x, [0.025, 0.5, 0.975])
        row = {
            **base[arm],
            "rr_median": float(np.exp(median)),
            "rr_lower": float(np.exp(lower)),
            "rr_upper": float(np.exp(upper)),
            "p_rr_below_1": float(probability_below(x, 0.0)),
            "rhat_max": diag["rhat_max"],
            "ess_bulk_min": diag["ess_bulk_min"],
            "ess_tail_min": diag["ess_tail_min"],
            "divergences": diag["divergences"],
            "status": "ok" if diag["status"] == "ok" else "diagnostics_failed",
            "error": "; ".join([*diag["reasons"], *notes]),
            "mode": fitted.mode,
            "khat": fitted.khat,
            **patients.get(arm, {}),
        }
        for name, _, _ in rules:
            row[f"p_rr_below_threshold[{name}]"] = probabilities[name][arm]
        for column, decided in decisions.items():
            row[column] = decided[arm]
        out.append(row)
    return out


def _exchangeable_decisions(
    model: Any,
    trial: Trial,
    rules: list[tuple[str, float, float]],
    thresholds: dict[str, float],
    seed: int,
    cores: int | None,
    multiplicity: dict[str, Any],
) -> tuple[dict[str, dict[str, bool]], str]:
    """Decisions of every rule under ``exchangeable``, from the hierarchical-prior fit.

    The common P(RR < 1) threshold is calibrated at this fit's control rate, dispersion and
    exposure and at the analysed subjects per arm, as the analysis's compare step does. Returns
    the decision columns and a note for the row's ``error`` (the fit's failed diagnostics, or
    why it could not be fitted: every ``exchangeable`` decision is then False).
    """
    active = list(trial.design.active)
    columns = [decision_column(name, "exchangeable") for name, _, _ in rules]
    try:
        idata = model.fit(trial.data, seed=seed, cores=cores)
        prepared = model.prepare(trial.data)
    except (CrampstatsError, RuntimeError) as exc:
        return {c: dict.fromkeys(active, False) for c in columns}, (
            f"exchangeable fit: {type(exc).__name__}: {exc}"
        )
    log_rr = idata["posterior"]["log_rr"].transpose("chain", "draw", "arm")
    arm_names = [str(a) for a in log_rr["arm"].values]
    draws = log_rr.values.reshape(-1, len(arm_names))[:, [arm_names.index(a) for a in active]]
    subjects = pd.Series(prepared.subject_data["arm"].values).astype(str)
    sizes = [int((subjects == a).sum()) for a in trial.design.arms]
    exposure = prepared.subject_data["exposure_days"].values
    threshold = exchangeable_threshold(
        sizes, nb_parameters(model, idata, exposure), multiplicity
    )
    decided = {
        column: arm_decisions(
            draws,
            active,
            {"threshold_rr": float(np.exp(log_t)), "probability": p},
            "exchangeable",
            (),
            threshold,
        )
        for column, (_, log_t, p) in zip(columns, rules, strict=True)
    }
    diag = diagnose(idata, thresholds)
    note = "" if diag["status"] == "ok" else "exchangeable fit: " + "; ".join(diag["reasons"])
    return decided, note


def write_decisions(frame: pd.DataFrame, path: str | Path, meta: dict[str, Any]) -> Path:
    """Write a decisions frame to Parquet atomically, ``meta`` as JSON schema metadata."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    table = pa.Table.from_pandas(frame.reset_index(drop=True), preserve_index=False)
    metadata = {**(table.schema.metadata or {}), META_KEY: json.dumps(meta, sort_keys=True)}
    table = table.replace_schema_metadata(metadata)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        pq.write_table(table, tmp)
        os.chmod(tmp, 0o644)  # mkstemp makes it private; results are for reading by others
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def read_decisions(path: str | Path) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Read a decisions file and the run description stored with it."""
    table = pq.read_table(path)
    raw = (table.schema.metadata or {}).get(META_KEY)
    if raw is None:
        raise CrampstatsError(f"{path}: not a crampstats power decisions file (no run metadata)")
    return table.to_pandas(), json.loads(raw)


