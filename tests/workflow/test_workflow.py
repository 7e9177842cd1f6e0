"""The Snakemake workflow: lint, config validation, and end-to-end reliability on a small config.

The end-to-end tests run ``snakemake`` in a temporary working directory with the `.test/` config
(fewer draws, the example trial), so nothing is written into the repository. They are slow (each
run is a whole workflow: every job a process that imports and compiles its models) and run in
CI's slow step.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml
from helpers import ROOT

SNAKEFILE = ROOT / "workflow" / "Snakefile"
BIN = Path(sys.executable).parent
TABLES = ["course", "diagnostics", "effects", "frequentist", "loo", "patients", "ppc", "rankings"]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    return env


def _snakemake(workdir: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    cmd = [str(BIN / "snakemake"), "-s", str(SNAKEFILE), "--directory", str(workdir), *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=_env(), cwd=ROOT)
    if check and proc.returncode != 0:
        tail = f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        raise AssertionError(f"{' '.join(cmd)} failed:\n{tail}")
    return proc


def _workdir(tmp: Path, **analysis) -> Path:
    cfg = yaml.safe_load((ROOT / ".test" / "config" / "config.yaml").read_text())
    for entry in cfg["trials"].values():
        entry["data"] = str((ROOT / ".test" / entry["data"]).resolve())
    cfg["analysis"].update(analysis)
    (tmp / "config").mkdir(parents=True)
    (tmp / "config" / "config.yaml").write_text(yaml.safe_dump(cfg))
    return tmp


def _tables(workdir: Path) -> dict[str, bytes]:
    folder = workdir / "results" / "example" / "tables"
    return {name: (folder / f"{name}.csv").read_bytes() for name in TABLES}


def test_lint_is_clean():
    proc = _snakemake(ROOT, "--lint")
    assert "Congratulations" in proc.stdout + proc.stderr


def test_every_rule_that_runs_a_command_is_benchmarked():
    """Each job's wall, CPU and memory go to a ``benchmark:`` file (benchmarks/ reads them)."""
    rules = {}
    for path in sorted((ROOT / "workflow" / "rules").glob("*.smk")):
        blocks = re.split(r"^rule (\w+):\n", path.read_text(), flags=re.MULTILINE)
        rules.update(zip(blocks[1::2], blocks[2::2], strict=True))
    commands = {name for name, body in rules.items() if "    shell:" in body}
    assert {"validate", "fit", "secondary", "power_shard", "calibration_shard"} <= commands
    assert [name for name in sorted(commands) if "    benchmark:" not in rules[name]] == []


def test_wrong_config_stops_at_start_naming_the_key(tmp_path):
    workdir = _workdir(tmp_path)
    cfg = yaml.safe_load((workdir / "config" / "config.yaml").read_text())
    cfg["analysis"]["sampler"]["chanis"] = 3
    (workdir / "config" / "config.yaml").write_text(yaml.safe_dump(cfg))
    proc = _snakemake(workdir, "-n", check=False)
    assert proc.returncode != 0
    assert "chanis" in proc.stdout + proc.stderr
    cfg["analysis"]["sampler"].pop("chanis")
    cfg["trials"]["example"].pop("design")
    (workdir / "config" / "config.yaml").write_text(yaml.safe_dump(cfg))
    proc = _snakemake(workdir, "-n", check=False)
    assert proc.returncode != 0
    assert "design" in proc.stdout + proc.stderr


def test_dry_run_without_power_config(tmp_path):
    # Trials but no config/power.yaml: the analysis is planned, power_all is absent.
    workdir = _workdir(tmp_path)
    proc = _snakemake(workdir, "-n")
    assert "compare" in proc.stdout
    assert "power_shard" not in proc.stdout
    missing = _snakemake(workdir, "-n", "power_all", check=False)
    assert missing.returncode != 0
    assert "power_all" in missing.stdout + missing.stderr


@pytest.fixture(scope="module")
def clean_run(tmp_path_factory):
    workdir = _workdir(tmp_path_factory.mktemp("wf-a"))
    _snakemake(workdir, "-c", "2")
    return workdir


@pytest.mark.slow
def test_run_writes_tables_report_and_is_a_noop_on_rerun(clean_run):
    results = clean_run / "results" / "example"
    assert set(_tables(clean_run)) == set(TABLES)
    assert (results / "report.html").is_file()
    assert (results / "provenance.json").is_file()
    for model in ("nb_totals", "frailty_weekly"):
        assert (results / "fits" / f"cramp_frequency__{model}.nc").is_file()
        assert (clean_run / "logs" / "example" / f"fit_{model}.log").is_file()
    # secondary endpoints: one job per trial, a folder and a timed log line each, gathered by
    # compare into the trial's tables
    secondary = pd.read_csv(results / "tables" / "effects_secondary.csv")
    assert set(secondary["model"]) == {
        "ctf", "ctf_twin", "intensity", "intensity_twin", "safety", "safety_twin",
    }  # fmt: skip
    assert (results / "tables" / "locations.csv").is_file()
    log = (clean_run / "logs" / "example" / "secondary.log").read_text(encoding="utf-8")
    for endpoint in ("ctf", "intensity", "safety", "location"):
        assert (results / "secondary" / endpoint).is_dir() and f"{endpoint}: " in log
    html = (results / "report.html").read_text(encoding="utf-8")
    assert "EMG endpoints" in html and "Safety" in html
    record = json.loads((results / "provenance.json").read_text(encoding="utf-8"))
    assert record["secondary_endpoints"] == ["ctf", "intensity", "safety", "location"]
    assert set(record["secondary_endpoints"]) <= set(record["seeds"])
    proc = _snakemake(clean_run, "-n", "-c", "2")
    assert "Nothing to be done" in proc.stdout + proc.stderr


@pytest.mark.slow
def test_killed_run_resumes_with_identical_tables(clean_run, tmp_path):
    workdir = _workdir(tmp_path / "wf-b")
    cmd = [str(BIN / "snakemake"), "-s", str(SNAKEFILE), "--directory", str(workdir), "-c", "2"]
    proc = subprocess.Popen(
        cmd, env=_env(), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    log = workdir / "logs" / "example" / "fit_nb_totals.log"
    deadline = time.monotonic() + 300
    while not (log.is_file() and "fitting" in log.read_text()) and time.monotonic() < deadline:
        assert proc.poll() is None, "workflow finished before it could be interrupted"
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)  # the whole job tree, mid-fit
    proc.wait()
    # (that an interrupted write leaves no partial fit is tested with injected failures in
    # tests/test_outputs.py: here the job is killed before any fit file could exist)
    _snakemake(workdir, "--unlock")  # a killed Snakemake leaves its lock behind
    _snakemake(workdir, "-c", "2", "--rerun-incomplete")
    assert _tables(workdir) == _tables(clean_run)  # also: two clean runs, same seed, same bytes
    shutil.rmtree(workdir / "results", ignore_errors=True)


@pytest.mark.slow
def test_explore_results_notebook_runs_on_the_workflow_output(clean_run, monkeypatch):
    import nbclient
    import nbformat

    monkeypatch.setenv("CRAMPSTATS_RESULTS", str(clean_run / "results" / "example"))
    # the kernel's inline backend shows the figures; a non-interactive MPLBACKEND would not
    monkeypatch.delenv("MPLBACKEND", raising=False)
    nb = nbformat.read(ROOT / "notebooks" / "explore_results.ipynb", as_version=4)
    client = nbclient.NotebookClient(
        nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(ROOT)}}
    )
    client.execute()
    outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) >= 4  # the notebook draws five figures
