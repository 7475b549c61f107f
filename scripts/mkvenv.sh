#!/usr/bin/env bash
# A venv with pip, also where the system Python has no ensurepip (Debian/Ubuntu without python3.X-venv): then the venv
# is made --without-pip and pip comes from the wheelhouse's pip wheel (make wheelhouse puts one there).
#   scripts/mkvenv.sh PYTHON VENV [WHEELHOUSE] [venv options...]
set -euo pipefail
PY=$1 VENV=$2 WH=${3:-}
shift 3 || shift $#
# PYTHON may itself be a venv (an image's /opt/.../.venv holding torch): --system-site-packages then reaches its base
# interpreter's packages, not PYTHON's; a .pth in VENV adds PYTHON's own site-packages (after VENV's, as system ones are)
see_python_site() {
  [[ " $* " == *" --system-site-packages "* ]] || return 0
  "$PY" -c 'import sys; sys.exit(sys.prefix == sys.base_prefix)' || return 0
  local pth
  pth="$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_path("purelib"))')/_system_python_site.pth"
  "$PY" -c 'import site; print("\n".join(site.getsitepackages()))' >"$pth"
  echo "mkvenv.sh: $PY is a venv itself: $VENV sees its packages ($pth)"
}
if "$PY" -m venv "$@" "$VENV" 2>/dev/null; then
  see_python_site "$@"
  exit 0
fi
pipwhl=$(find "${WH:-/nonexistent}" -maxdepth 1 -name 'pip-*.whl' 2>/dev/null | sort | tail -n 1)
[[ -n $pipwhl ]] || {
  echo "mkvenv.sh: $PY -m venv failed (no ensurepip: install the OS package python3.12-venv), and there is no pip wheel in WHEELHOUSE (got: ${WH:-none})" >&2
  exit 2
}
"$PY" -m venv --without-pip "$@" "$VENV"
"$VENV/bin/python" "$pipwhl/pip" install --quiet --no-index --find-links "$WH" pip
see_python_site "$@"
echo "mkvenv.sh: $VENV made without ensurepip; pip from $(basename "$pipwhl")"
