#!/usr/bin/env bash
# `make wheelhouse DIR=...`: on a machine with the package registry (and npm), every wheel that an offline
# `make install WHEELHOUSE=DIR` takes: requirements-gpu.lock and requirements-harbor.lock for CPython 3.12 on
# manylinux x86-64 (glibc 2.35 or newer), the wheels built from the pins that have none (tagged sdist), and the pinned
# claude-code CLI (npm pack: the package and its linux-x64 binary). DIR/SHA256SUMS lists them.
#   scripts/wheelhouse.sh DIR [WITHOUT] [SCAFFOLD] [HAVE] [KEEP]
# WITHOUT: lock groups to leave out ("torch": for a host whose Python has the pinned torch; "optional": vLLM's
# optional kernels). SCAFFOLD=0: no Harbor wheels, no claude-code (nodes that never run the scaffold's trials).
# HAVE: the host's `python3.12 -m pip list --format=freeze` (with WITHOUT=torch): leave out the GPU lock's pins the
# host has at the same release (its venv sees them).
# KEEP: optional pins to keep in a WITHOUT=optional wheelhouse, with the optional pins their wheels require
# (KEEP=tilelang: z3-solver, ml_dtypes, torch_c_dlpack_ext; what Qwen3.5's training needs on Hopper, rule
# gdn-triton-hopper).
# Environment: GPU_PYTHON (a CPython 3.12 with pip; default python3.12), CLAUDE_CODE_VERSION.
set -euo pipefail
DIR=${1:?DIR}
WITHOUT=${2:-}
SCAFFOLD=${3:-1}
HAVE=${4:-}
KEEP=${5:-}
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PY=${GPU_PYTHON:-python3.12}
CLAUDE=${CLAUDE_CODE_VERSION:?CLAUDE_CODE_VERSION}
mkdir -p "$DIR"
DIR=$(cd "$DIR" && pwd)
start=$SECONDS
# shellcheck source=scripts/lib/manylinux.sh
source "$REPO/scripts/lib/manylinux.sh"
locks=("$REPO/requirements-gpu.lock")
((SCAFFOLD)) && locks+=("$REPO/requirements-harbor.lock")
pins=$(mktemp)
trap 'rm -f "$pins"' EXIT
read -ra without <<<"$WITHOUT"
for lock in "${locks[@]}"; do
  have=()
  [[ -z $HAVE || $lock != *gpu.lock ]] || have=(--have "$HAVE")
  "$PY" "$REPO/scripts/gpu_env.py" pins "$lock" --binary --without "${without[@]}" "${have[@]}" >"$pins"
  "$PY" -m pip download --quiet --no-deps "${PIP_TARGET_312[@]}" -d "$DIR" -r "$pins"
  "$PY" "$REPO/scripts/gpu_env.py" pins "$lock" --sdist >"$pins"
  [[ ! -s $pins ]] || "$PY" -m pip wheel --quiet --no-deps -w "$DIR" -r "$pins"
done
# the kept optional pins: fetch what they need, read the fetched wheels' requirements, until nothing is missing
read -ra keep <<<"$KEEP"
fetched=
while ((${#keep[@]})); do
  need=$("$PY" "$REPO/scripts/gpu_env.py" needs "$REPO/requirements-gpu.lock" --dir "$DIR" "${keep[@]}")
  [[ -n $need ]] || break
  [[ $need != "$fetched" ]] || { echo "wheelhouse.sh: fetched but not found in $DIR: $need" >&2; exit 1; }
  fetched=$need
  echo "$need" >"$pins"
  "$PY" -m pip download --quiet --no-deps "${PIP_TARGET_312[@]}" -d "$DIR" -r "$pins"
done
# pip itself, for a Python without ensurepip (scripts/mkvenv.sh): the one this Python has
"$PY" -m pip download --quiet --no-deps --only-binary=:all: -d "$DIR" "pip==$("$PY" -m pip --version | cut -d' ' -f2)"
if ((SCAFFOLD)); then
  npm pack --silent --pack-destination "$DIR" "@anthropic-ai/claude-code@$CLAUDE" \
    "@anthropic-ai/claude-code-linux-x64@$CLAUDE" >/dev/null
fi
(cd "$DIR" && rm -f SHA256SUMS && sha256sum -- * >SHA256SUMS.tmp && mv SHA256SUMS.tmp SHA256SUMS)
echo "wheelhouse.sh: $DIR: $(find "$DIR" -name '*.whl' | wc -l) wheels, $(du -sh "$DIR" | cut -f1) in $((SECONDS - start)) s" \
  "(without: ${WITHOUT:-nothing}${KEEP:+ but $KEEP}; scaffold: $SCAFFOLD)"
