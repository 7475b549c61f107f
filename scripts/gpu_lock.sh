#!/usr/bin/env bash
# requirements-gpu.lock against the package registry (needs it; CPython 3.12 with pip: GPU_PYTHON, default python3.12).
#   scripts/gpu_lock.sh check   # `make lock-check`: pip resolves the lock (veomni aside, scripts/gpu_env.py
#                               # NO_DEPS_PINS) for CPython 3.12 manylinux x86-64 from wheels only, and gets the lock
#                               # back: complete (nothing missing), consistent, every pin a wheel (sdist pins: built)
#   scripts/gpu_lock.sh lock    # `make lock`: resolve requirements-gpu.in the same way, the locked versions as
#                               # constraints, and rewrite the lock (its head kept); then run check
# Neither downloads more than metadata, but for wheels the registry gives no separate metadata for (torch: ~0.5 GB,
# kept in pip's cache).
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PY=${GPU_PYTHON:-python3.12}
LOCK=$REPO/requirements-gpu.lock
# shellcheck source=scripts/lib/manylinux.sh
source "$REPO/scripts/lib/manylinux.sh"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$PY" "$REPO/scripts/gpu_env.py" pins "$LOCK" --sdist >"$work/sdist.txt"
"$PY" -m pip wheel --quiet --no-deps -w "$work/sdist" -r "$work/sdist.txt"
resolve() { # resolve REPORT ARGS...: what pip would install into an empty CPython 3.12 on manylinux x86-64
  local report=$1
  shift
  "$PY" -m pip install --quiet --dry-run --ignore-installed "${PIP_TARGET_312[@]}" --target "$work/target" \
    --find-links "$work/sdist" --report "$report" "$@"
}
case ${1:-} in
  check)
    "$PY" "$REPO/scripts/gpu_env.py" pins "$LOCK" --resolved >"$work/pins.txt"
    resolve "$work/report.json" -r "$work/pins.txt"
    "$PY" "$REPO/scripts/gpu_env.py" check "$LOCK" --report "$work/report.json" ;;
  lock)
    "$PY" "$REPO/scripts/gpu_env.py" pins "$LOCK" --resolved >"$work/constraints.txt"
    resolve "$work/report.json" -r "$REPO/requirements-gpu.in" -c "$work/constraints.txt"
    { sed -n '/^#/!q;p' "$LOCK"; "$PY" "$REPO/scripts/gpu_env.py" compile "$work/report.json" --built "$work/sdist"; } >"$work/lock"
    mv "$work/lock" "$LOCK"
    exec "$0" check ;;
  *) echo "usage: $0 check|lock" >&2; exit 2 ;;
esac
