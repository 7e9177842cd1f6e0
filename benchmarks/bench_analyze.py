"""Benchmark: cold ``crampstats analyze data/example`` (goal <= 60 s on 2 cores).

Run as ``.venv/bin/python benchmarks/bench_analyze.py``. "Cold" means a fresh process and an empty
PyTensor compile directory, so every model is compiled from scratch, as on a first run on a new
machine; "warm" reruns with the compile directory kept (PyTensor's on-disk cache).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from crampstats.engine import pytensor_compiledir_env

ROOT = Path(__file__).resolve().parents[1]
GOAL_S = 60.0


def _run(compiledir: Path, out: Path) -> float:
    cmd = [
        str(Path(sys.executable).parent / "crampstats"), "analyze", str(ROOT / "data" / "example"),
        "--config", str(ROOT / "config" / "config.yaml"), "--out", str(out),
    ]  # fmt: skip
    start = time.perf_counter()
    subprocess.run(cmd, check=True, env=pytensor_compiledir_env(compiledir), capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    argparse.ArgumentParser(description=__doc__).parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        cold = _run(tmp_path / "compiledir", tmp_path / "cold")
        warm = _run(tmp_path / "compiledir", tmp_path / "warm")
    print(
        f"crampstats analyze data/example (nb_totals + frailty_weekly, twins, LOO, rootograms; "
        f"4 chains x 1000 draws): cold {cold:.1f} s (goal <= {GOAL_S:.0f} s), "
        f"warm compile cache {warm:.1f} s"
    )


if __name__ == "__main__":
    main()
