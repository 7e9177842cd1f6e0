"""The calibration study: do the Bayesian models' intervals cover the truth as often as they say.

One job per module: :mod:`~crampstats.calibration.case` (what a case is, its code hash),
:mod:`~crampstats.calibration.registry` (every case), the cases by model family
(:mod:`~crampstats.calibration.parallel` and its siblings), :mod:`~crampstats.calibration.study`
(replicate seeds, shards, coverage against two-sided binomial bands),
:mod:`~crampstats.calibration.record` (docs/validation.md and docs/validation/) and
:mod:`~crampstats.calibration.cli` (``crampstats calibration run|summarize``, the workflow's
``calibration_*`` rules). Importing it does not import PyMC.
"""

from __future__ import annotations

from crampstats.calibration.case import CalibrationCase, Estimate, Replicate, code_hash
from crampstats.calibration.cli import (
    add_calibration_parser,
    load_calibration_config,
    selected_cases,
    shard_path,
)
from crampstats.calibration.record import read_record, record_study
from crampstats.calibration.registry import CASES, PENDING, case_named
from crampstats.calibration.study import (
    coverage_band,
    replicate_seed,
    run_shard,
    sbc_rank,
    shard_replicates,
    summarize,
)

__all__ = [
    "CASES",
    "PENDING",
    "CalibrationCase",
    "Estimate",
    "Replicate",
    "add_calibration_parser",
    "case_named",
    "code_hash",
    "coverage_band",
    "load_calibration_config",
    "read_record",
    "record_study",
    "replicate_seed",
    "run_shard",
    "sbc_rank",
    "selected_cases",
    "shard_path",
    "shard_replicates",
    "summarize",
]
