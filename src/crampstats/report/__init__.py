"""The reviewer's report: one self-contained, script-free HTML file per trial.

``build_report(results_dir)`` reads a results folder of ``crampstats analyze`` and returns the
page; ``write_report(results_dir, out_path)`` writes it atomically. See
:mod:`crampstats.report.build` for what the page holds and how it is kept safe and
deterministic.
"""

from __future__ import annotations

from crampstats.report.build import build_report, report_context, write_report

__all__ = ["build_report", "report_context", "write_report"]
