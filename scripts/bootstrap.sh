#!/usr/bin/env bash
# Create .venv with a Python >= 3.12 and install crampstats pinned by constraints.txt.
# Idempotent: reinstalls only when pyproject.toml or constraints.txt changed.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '[setup] %s\n' "$*"; }

is_ok_python() {
  "$1" -c 'import sys, venv; sys.exit(0 if sys.version_info >= (3, 12) else 1)' >/dev/null 2>&1
}

find_python() {
  local c
  for c in "${CRAMPSTATS_PYTHON:-}" python3.13 python3.12 python3; do
    [ -n "$c" ] && command -v "$c" >/dev/null 2>&1 && is_ok_python "$c" && { command -v "$c"; return; }
  done
  # pyenv shims fail unless a version is selected, so look in its versions folder directly.
  if command -v pyenv >/dev/null 2>&1; then
    for c in $(ls -d "$(pyenv root)"/versions/3.1[2-9]*/bin/python3 2>/dev/null | sort -rV); do
      is_ok_python "$c" && { echo "$c"; return; }
    done
  fi
  for c in /usr/bin/python3.1[2-9] /usr/local/bin/python3.1[2-9]; do
    [ -x "$c" ] && is_ok_python "$c" && { echo "$c"; return; }
  done
  return 1
}

if [ -x .venv/bin/python ] && is_ok_python .venv/bin/python; then
  say "using existing .venv ($(.venv/bin/python --version))"
else
  if ! py=$(find_python); then
    cat >&2 <<'MSG'
[setup] error: crampstats needs Python 3.12 or newer and none was found.
[setup] Install one, for example:
[setup]   Debian/Ubuntu:  sudo apt-get install python3.12 python3.12-venv
[setup]   pyenv:          pyenv install 3.12
[setup]   conda:          conda env create -f environment.yml && conda activate crampstats
[setup] or point CRAMPSTATS_PYTHON at an interpreter: CRAMPSTATS_PYTHON=/path/to/python3.12 make run
MSG
    exit 1
  fi
  say "creating .venv with $py ($("$py" --version))"
  rm -rf .venv
  "$py" -m venv .venv
fi

stamp=.venv/.crampstats-installed
want=$(cat pyproject.toml constraints.txt | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  say "dependencies up to date (constraints.txt unchanged)"
else
  say "installing crampstats and pinned dependencies from constraints.txt (takes a minute or two)"
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet -c constraints.txt -e ".[dev]"
  echo "$want" > "$stamp"
  say "installed: $(.venv/bin/crampstats --version)"
fi
