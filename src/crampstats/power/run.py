"""Run one shard of a power simulation: simulate, fit by full MCMC, keep the decisions.

Every replicate is simulated at each patients-per-arm value of the design (same seeds: common
random numbers), fitted with the compile-once engine (:meth:`crampstats.engine.BayesModel.fit`
re-samples the model compiled at the first fit, so a worker compiles once) and reduced at once to
one row per arm: posterior median and 95 % interval of the rate ratio, the posterior probability
of each rule, the decisions and the convergence diagnostics. Posteriors are dropped as soon as
they are summarised, so memory does not grow with the number of replicates.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import rich.console
import rich.progress

from crampstats.catalogue import count_entry
from crampstats.config import ConfigError
from crampstats.decisions import probability_below, rule_met
from crampstats.engine import diagnose
from crampstats.errors import CrampstatsError
from crampstats.power.config import (
    PowerDesign,
    config_digest,
    resolve_design,
    rule_log_thresholds,
)
from crampstats.power.generate import draw_effects, mcmc_seed, simulate_periods

#: ``progress(done, total, elapsed_seconds)``, called after every replicate.
Progress = Callable[[int, int, float], None]

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


def analysis_model(config: dict[str, Any], design: PowerDesign) -> Any:
    """Build the analysis model with the design's arms fixed (its compiled structure is fixed).

    ``missing_baseline`` defaults to ``"mean"``: a simulated patient without run-in diary days
    (possible only with selection switched off) must not stop a sweep.
    """
    analysis = config["analysis"]
    model_config = {
        "missing_baseline": "mean",
        **analysis["model_config"],
        "arms": list(design.arms),
        "control_arm": design.control,
    }
    try:
        return count_entry(analysis["model"]).model(model_config, dict(analysis["sampler"]))
    except ValueError as exc:
        raise ConfigError(f"power config: key analysis.model_config: {exc}") from None


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
        (``ok``, ``diagnostics_failed`` or ``error``), ``error`` and ``seed``. Rows depend only on
        the configuration and the replicate indices, never on the sharding.
    """
    replicates = int(config["replicates"] if replicates is None else replicates)
    design = resolve_design(config, design_name)
    reps = shard_replicates(replicates, shards, shard)
    model = analysis_model(config, design)
    cores = config["analysis"]["cores"] if cores is None else cores
    rules = rule_log_thresholds(config)
    thresholds = dict(config["analysis"]["diagnostics"])

    rows: list[dict[str, Any]] = []
    start = time.perf_counter()
    for done, r in enumerate(reps, start=1):
        rr = draw_effects(design, config["seed"], r)
        seed = mcmc_seed(config["seed"], r)
        for n in design.n_values:
            periods = simulate_periods(design, n, rr, config["seed"], r)
            rows.extend(_fit_rows(model, periods, design, rr, rules, thresholds, seed, cores, r, n))
        if progress is not None:
            progress(done, len(reps), time.perf_counter() - start)
    elapsed = time.perf_counter() - start

    frame = pd.DataFrame(rows, columns=_columns(rules))
    meta = {
        "design": design_name,
        "digest": config_digest(config, design_name),
        "replicates": replicates,
        "shards": shards,
        "shard": shard,
        "replicate_range": [reps.start, reps.stop],
        "n_values": list(design.n_values),
        "effects": {arm: design.effects[arm].label for arm in design.active},
        "rules": config["rules"],
        "target_power": config["target_power"],
        "model": config["analysis"]["model"],
        "sampler": config["analysis"]["sampler"],
        "seed": config["seed"],
        "elapsed_seconds": round(elapsed, 3),
    }
    return write_decisions(frame, decisions_path(out_dir, shards, shard), meta)


def _columns(rules: list[tuple[str, float, float]]) -> list[str]:
    cols = [
        "design", "replicate", "n_per_arm", "arm", "effect", "true_rr", "n_randomised",
        "n_analysed", "rr_median", "rr_lower", "rr_upper", "p_rr_below_1",
    ]  # fmt: skip
    for name, _, _ in rules:
        cols += [f"p_rr_below_threshold[{name}]", f"decision[{name}]"]
    return [
        *cols,
        "rhat_max",
        "ess_bulk_min",
        "ess_tail_min",
        "divergences",
        "status",
        "error",
        "seed",
    ]


def _fit_rows(
    model: Any,
    periods: pd.DataFrame,
    design: PowerDesign,
    rr: dict[str, float],
    rules: list[tuple[str, float, float]],
    thresholds: dict[str, float],
    seed: int,
    cores: int | None,
    replicate: int,
    n: int,
) -> list[dict[str, Any]]:
    """Fit one simulated trial and reduce the posterior to one row per active arm."""
    analysed = periods.loc[periods["exposure_days"] > 0, "arm"].value_counts()
    base = {
        arm: {
            "design": design.name,
            "replicate": replicate,
            "n_per_arm": n,
            "arm": arm,
            "effect": design.effects[arm].label,
            "true_rr": float(rr[arm]),
            "n_randomised": int((periods["arm"] == arm).sum()),
            "n_analysed": int(analysed.get(arm, 0)),
            "seed": seed,
        }
        for arm in design.active
    }
    try:
        idata = model.fit(periods, seed=seed, cores=cores)
    except (CrampstatsError, RuntimeError) as exc:
        # a trial the model cannot analyse (e.g. an arm left without treatment data) is a
        # failure to show efficacy: every decision is False and the row says why
        out = []
        for arm in design.active:
            row = {**base[arm], "status": "error", "error": f"{type(exc).__name__}: {exc}"}
            for name, _, _ in rules:
                row[f"p_rr_below_threshold[{name}]"] = np.nan
                row[f"decision[{name}]"] = False
            out.append(row)
        return out
    log_rr = idata["posterior"]["log_rr"].transpose("chain", "draw", "arm")
    arm_names = [str(a) for a in log_rr["arm"].values]
    draws = log_rr.values.reshape(-1, len(arm_names))
    diag = diagnose(idata, thresholds)
    del idata  # keep summaries only
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
            "error": "; ".join(diag["reasons"]),
        }
        for name, log_threshold, probability in rules:
            # the analysis' rule (crampstats.decisions), so power and analysis decide alike
            p = float(probability_below(x, log_threshold))
            row[f"p_rr_below_threshold[{name}]"] = p
            row[f"decision[{name}]"] = bool(rule_met(p, probability))
        out.append(row)
    return out


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


def terminal_progress(
    label: str, stream: TextIO | None = None, min_interval: float = 2.0
) -> Progress:
    """Return a callback driving a progress bar: replicates done, rate, elapsed, time left.

    The bar is rich's: live in a terminal; written once, when the shard ends, to a file or a
    CI log, so logs stay short.

    Parameters
    ----------
    label
        The bar's description (e.g. the design and shard).
    stream
        Where to draw; default standard error.
    min_interval
        Seconds between redraws in a terminal.

    Returns
    -------
    callable
        ``progress(done, total, elapsed_seconds)``.
    """
    bar = rich.progress.Progress(
        rich.progress.TextColumn("{task.description}"),
        rich.progress.BarColumn(),
        rich.progress.MofNCompleteColumn(),
        rich.progress.TextColumn("replicates"),
        rich.progress.TimeElapsedColumn(),
        rich.progress.TextColumn("elapsed,"),
        rich.progress.TimeRemainingColumn(),
        rich.progress.TextColumn("left"),
        console=rich.console.Console(file=stream or sys.stderr),
        refresh_per_second=1 / max(min_interval, 0.1),
    )
    tasks: list[rich.progress.TaskID] = []

    def progress(done: int, total: int, elapsed: float) -> None:
        if not tasks:
            bar.start()
            tasks.append(bar.add_task(label, total=total))
        bar.update(tasks[0], completed=done)
        if done >= total:
            bar.stop()

    return progress


