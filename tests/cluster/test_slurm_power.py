"""A small 3-shard power run through Snakemake on a real Slurm equals the same run locally.

Needs a running Slurm (``bash tests/cluster/start-slurm.sh`` as root) and
``CRAMPSTATS_SLURM=1``; skipped otherwise. The Slurm run uses the project's profile
(``workflow/profiles/slurm``: executor slurm) plus the options a cluster without an accounting
database needs: ``--slurm-no-account`` (no account to guess with ``sacct``) and
``--slurm-status-command squeue`` (``sacct`` answers "accounting storage is disabled"; the
cluster keeps finished jobs visible to ``squeue --states=all`` with ``MinJobAge=3600``).
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SMK = REPO / "workflow" / "rules" / "power.smk"
PROFILE = REPO / "workflow" / "profiles" / "slurm"
BIN = Path(sys.executable).parent

pytestmark = [
    pytest.mark.slow,
    pytest.mark.cluster,
    pytest.mark.skipif(
        os.environ.get("CRAMPSTATS_SLURM") != "1", reason="set CRAMPSTATS_SLURM=1 with Slurm up"
    ),
]

CONFIG = textwrap.dedent(
    """\
    seed: 5
    replicates: 6
    shards: 3
    results: results/power
    analysis:
      sampler: {chains: 2, draws: 200, tune: 200}
      cores: 1
      diagnostics: {ess_bulk_min: 100, ess_tail_min: 100}
    designs:
      tiny:
        arms: {placebo: {}, quinine: {rr: 0.75}}
        n_per_arm: [20, 30]
      # one group-sequential design (crampstats.power.sequential): two looks, O'Brien-Fleming
      tiny_sequential:
        arms: {placebo: {}, quinine: {rr: 0.75}}
        n_per_arm: 30
        sequential:
          looks: [0.5, 1.0]
          efficacy: {probability: obrien_fleming}
          futility: {probability: 0.2}
    """
)


def _env(tmp_path: Path) -> dict[str, str]:
    """PATH with this venv first; a `crampstats power` shim while the CLI lacks the command."""
    env = dict(os.environ)
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    probe = subprocess.run(
        ["crampstats", "power", "--help"], env=env, capture_output=True, text=True
    )
    if probe.returncode != 0:
        shim_dir = tmp_path / "bin"
        shim_dir.mkdir()
        shim = shim_dir / "crampstats"
        shim.write_text(
            "#!/bin/sh\n"
            'if [ "$1" = power ]; then shift; '
            f'exec "{sys.executable}" -m crampstats.power "$@"; fi\n'
            f'exec "{BIN / "crampstats"}" "$@"\n'
        )
        shim.chmod(shim.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
        env["PATH"] = f"{shim_dir}{os.pathsep}{env['PATH']}"
    return env


def _workdir(root: Path, name: str) -> Path:
    work = root / name
    (work / "config").mkdir(parents=True)
    (work / "config" / "power.yaml").write_text(CONFIG)
    return work


def _snakemake(work: Path, env: dict[str, str], *extra: str) -> subprocess.CompletedProcess:
    cmd = [str(BIN / "snakemake"), "-s", str(SMK), *extra, "power_all"]
    proc = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True, timeout=1800)
    if proc.returncode != 0:
        logs = "\n".join(
            f"--- {p}\n{p.read_text()}" for p in sorted(work.rglob("*.log")) if p.is_file()
        )
        pytest.fail(f"{' '.join(cmd)} failed:\n{proc.stdout}\n{proc.stderr}\n{logs}")
    return proc


def test_power_on_slurm_equals_local_run(tmp_path):
    assert shutil.which("sinfo"), "Slurm client tools missing (tests/cluster/start-slurm.sh)"
    state = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True)
    assert state.returncode == 0 and state.stdout.strip(), f"no Slurm: {state.stderr}"
    env = _env(tmp_path)

    local = _workdir(tmp_path, "local")
    _snakemake(local, env, "-c", "2")

    slurm = _workdir(tmp_path, "slurm")
    proc = _snakemake(
        slurm,
        env,
        "--profile",
        str(PROFILE),
        "--slurm-no-account",
        "--slurm-status-command",
        "squeue",
        "--slurm-init-seconds-before-status-checks",
        "5",
    )

    # the jobs really went through Slurm: 3 shards + 1 summary per design (fixed and
    # sequential), each COMPLETED by slurmctld
    job_ids = re.findall(r"SLURM jobid (\d+)", proc.stdout + proc.stderr)
    assert len(job_ids) == 8, proc.stderr
    queue = subprocess.run(
        ["squeue", "--states=all", "--noheader", "--format=%i|%T", "-j", ",".join(job_ids)],
        capture_output=True,
        text=True,
        check=True,
    )
    states = dict(line.split("|") for line in queue.stdout.split())
    assert states == dict.fromkeys(job_ids, "COMPLETED"), queue.stdout
    for design_dir in (local, slurm):
        assert sorted(p.name for p in (design_dir / "results/power/tiny").glob("decisions-*")) == [
            "decisions-1-of-3.parquet",
            "decisions-2-of-3.parquet",
            "decisions-3-of-3.parquet",
        ]
    got = (slurm / "results/power/tiny/power.csv").read_text()
    want = (local / "results/power/tiny/power.csv").read_text()
    assert got == want
    assert len(want.strip().splitlines()) == 1 + 2 * 2  # header + sizes x rules
    got = (slurm / "results/power/tiny_sequential/power.csv").read_text()
    want = (local / "results/power/tiny_sequential/power.csv").read_text()
    assert got == want and "p_efficacy[1]" in want
