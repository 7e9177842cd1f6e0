#!/usr/bin/env bash
# The main job: run the Snakemake workflow on the bundled example trials (config/config.yaml) with the
# local profile (workflow/profiles/default: all cores). Validates, derives, fits, compares and writes one
# self-contained report per trial under results/<trial>/. Safe to rerun: a finished run is a no-op.
# Extra arguments go to snakemake (e.g. `-c 2`, `--dry-run`).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"

snakemake -s workflow/Snakefile --profile workflow/profiles/default "$@"

echo "[run] reports:"
python - <<'PY'
from pathlib import Path

import yaml

for trial in yaml.safe_load(Path("config/config.yaml").read_text())["trials"]:
    print(f"  {Path('results', trial, 'report.html').resolve()}")
PY
