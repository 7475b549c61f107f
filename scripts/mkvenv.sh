#!/usr/bin/env bash
# A venv with pip, also where the system Python has no ensurepip (Debian/Ubuntu without python3.X-venv): then the venv
# is made --without-pip and pip comes from the wheelhouse's pip wheel (make wheelhouse puts one there).
#   scripts/mkvenv.sh PYTHON VENV [WHEELHOUSE] [venv options...]
set -euo pipefail
PY=$1 VENV=$2 WH=${3:-}
shift 3 || shift $#
if "$PY" -m venv "$@" "$VENV" 2>/dev/null; then
  exit 0
fi
pipwhl=$(find "${WH:-/nonexistent}" -maxdepth 1 -name 'pip-*.whl' 2>/dev/null | sort | tail -n 1)
[[ -n $pipwhl ]] || {
  echo "mkvenv.sh: $PY -m venv failed (no ensurepip: install the OS package python3.12-venv), and there is no pip wheel in WHEELHOUSE (got: ${WH:-none})" >&2
  exit 2
}
"$PY" -m venv --without-pip "$@" "$VENV"
"$VENV/bin/python" "$pipwhl/pip" install --quiet --no-index --find-links "$WH" pip
echo "mkvenv.sh: $VENV made without ensurepip; pip from $(basename "$pipwhl")"
