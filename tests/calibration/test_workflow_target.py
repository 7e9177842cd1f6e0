"""The workflow's calibration target: one job per case and shard, one summary job."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))


def test_calibration_all_plans_one_job_per_case_and_shard(tmp_path):
    config = tmp_path / "calibration.yaml"
    config.write_text(
        f"results: {tmp_path / 'results'}\ndocs: {tmp_path / 'docs'}\n"
        "replicates: 200\nshards: 3\ncases: [nb_totals, frailty_weekly]\n"
    )
    done = subprocess.run(
        [SNAKEMAKE, "-s", str(ROOT / "workflow" / "Snakefile"), "-n", "-p", "-c", "1",
         "calibration_all", "--config", f"calibration_config={config}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"},  # noqa: E501
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    runs = re.findall(
        r"crampstats calibration run --config \S+ --case (\w+) --shard (\d+)", done.stdout
    )
    assert sorted(runs) == sorted(
        (case, str(i)) for case in ("nb_totals", "frailty_weekly") for i in (1, 2, 3)
    )
    assert done.stdout.count("crampstats calibration summarize") == 1
