#!/usr/bin/env bash
# The main job on the bundled example trials: validate each against the data contract, then derive
# its analysis datasets. Writes results/<trial>/{validated,derived}/ atomically; safe to rerun.
set -euo pipefail
cd "$(dirname "$0")/.."
cs=.venv/bin/crampstats

for trial in example example_adam example_crossover example_nof1; do
  echo "[run] $trial: validating data/$trial against the contract (config/config.yaml)"
  "$cs" validate "data/$trial" --config config/config.yaml --out "results/$trial/validated"
  echo "[run] $trial: deriving analysis datasets"
  "$cs" derive "results/$trial/validated" --out "results/$trial/derived"
done
echo "[run] done: results are in results/example*/ (see results/README.md)"
