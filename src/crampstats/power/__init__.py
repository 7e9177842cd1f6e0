"""Bayesian power, assurance and type I error of cramp-trial designs by simulation.

One job per module: :mod:`~crampstats.power.config` (``config/power.yaml``, schema
``schemas/power.schema.yaml``, scenario grids), :mod:`~crampstats.power.generate` (seeds, true
effects, nested pools of patients), :mod:`~crampstats.power.run` (a shard of replicates fitted by
full MCMC, decisions kept), :mod:`~crampstats.power.decide` (per-arm decisions under each
family-wise strategy, family-wise rates), :mod:`~crampstats.power.intervals` (Clopper-Pearson and
Wilson intervals), :mod:`~crampstats.power.curve` (monotone power curve, sample size for a
target), :mod:`~crampstats.power.summary` (power table and curves) and
:mod:`~crampstats.power.cli` (``crampstats power ...``). The closed-form power and sample size
of a count endpoint (Zhu and Lakkis 2014) live on the ground floor, :mod:`crampstats.closed_form`,
and are re-exported here.

Importing this package does not import PyMC or PyTensor (the compile directory can still be
chosen), nor matplotlib.
"""

from __future__ import annotations

from crampstats.closed_form import zhu_lakkis_n, zhu_lakkis_power
from crampstats.outputs import terminal_progress
from crampstats.power.config import (
    Effect,
    PowerDesign,
    check_power_config,
    expand_grid,
    load_power_config,
    resolve_design,
    simulator_design,
)
from crampstats.power.curve import PowerCurve, fit_power_curve
from crampstats.power.decide import arm_decisions, family_table
from crampstats.power.generate import (
    Pool,
    draw_effects,
    mcmc_seed,
    periods_from_tables,
    pool_trial,
    replicate_seed,
    simulate_periods,
    simulate_pool,
)
from crampstats.power.intervals import rate_interval
from crampstats.power.run import (
    decisions_path,
    read_decisions,
    run_shard,
    shard_replicates,
)
from crampstats.power.summary import collect_decisions, power_figure, power_table, summarize

__all__ = [
    "Effect",
    "Pool",
    "PowerCurve",
    "PowerDesign",
    "arm_decisions",
    "check_power_config",
    "collect_decisions",
    "decisions_path",
    "draw_effects",
    "expand_grid",
    "family_table",
    "fit_power_curve",
    "load_power_config",
    "mcmc_seed",
    "periods_from_tables",
    "pool_trial",
    "power_figure",
    "power_table",
    "rate_interval",
    "read_decisions",
    "replicate_seed",
    "resolve_design",
    "run_shard",
    "shard_replicates",
    "simulate_periods",
    "simulate_pool",
    "simulator_design",
    "summarize",
    "terminal_progress",
    "zhu_lakkis_n",
    "zhu_lakkis_power",
]
