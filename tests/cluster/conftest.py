"""Cluster tests: register the ``cluster`` marker (pytest runs with ``--strict-markers``)."""

from __future__ import annotations


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "cluster: needs a running Slurm (tests/cluster/start-slurm.sh, CRAMPSTATS_SLURM=1)",
    )
