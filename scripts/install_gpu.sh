#!/usr/bin/env bash
# `make install` on a GPU host: VENV (Python 3.12) from requirements-gpu.lock, LiveRL editable in it.
#   scripts/install_gpu.sh VENV PYTHON3.12 [WHEELHOUSE]
# Online: every pin from the registry (--no-deps: the lock is the closure). With WHEELHOUSE (a folder from
# `make wheelhouse`): no network (--no-index --find-links); where the wheelhouse has no torch and PYTHON already has the
# pinned torch (an image with its CUDA stack), the venv sees PYTHON's packages (--system-site-packages) and takes the
# lock's torch group from there; optional kernels the wheelhouse lacks are left out (scripts/gpu_env.py says which).
set -euo pipefail
VENV=$1 PY=$2 WH=${3:-}
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
LOCK=$REPO/requirements-gpu.lock
say() { echo "install_gpu.sh: $*"; }
die() { echo "install_gpu.sh: $*" >&2; exit 2; }
"$PY" -c 'import sys; assert sys.version_info[:2] == (3, 12)' 2>/dev/null ||
  die "GPU_PYTHON: the GPU environment is CPython 3.12 (requirements-gpu.lock), got $PY ($("$PY" --version 2>&1 || true)); set GPU_PYTHON=/path/to/python3.12"
start=$SECONDS
if [[ -n $WH ]]; then
  [[ -d $WH ]] || die "WHEELHOUSE: no such folder (got: $WH); build one with \`make wheelhouse DIR=...\`"
  req=$(mktemp)
  trap 'rm -f "$req"' EXIT
  kind=$("$PY" "$REPO/scripts/gpu_env.py" plan "$LOCK" --wheelhouse "$WH" --system-python "$PY" --requirements "$req")
  site=()
  [[ $kind == system ]] && site=(--system-site-packages)
  "$REPO/scripts/mkvenv.sh" "$PY" "$VENV" "$WH" --clear "${site[@]}"
  from=(--no-index --find-links "$WH")
  "$VENV/bin/python" -m pip install --quiet --no-deps "${from[@]}" -r "$req"
else
  kind=isolated from=()
  "$REPO/scripts/mkvenv.sh" "$PY" "$VENV" "" --clear
  "$VENV/bin/python" -m pip install --quiet --no-deps -r "$LOCK"
fi
"$VENV/bin/python" -m pip install --quiet --no-deps --no-build-isolation "${from[@]}" -e "$REPO"
# pip check, but for what the lock accepts (scripts/gpu_env.py ACCEPTED); a venv that sees the system's packages also
# sees whatever the system's own packages want, which this install does not own: reported, not fatal (judged on pip
# check's lines: it exits 1 on accepted complaints too)
if ! bad=$("$PY" "$REPO/scripts/gpu_env.py" pip-check "$VENV/bin/python"); then
  if [[ $kind == system ]]; then
    say "pip check (packages of the system Python included) reports:"$'\n'"$bad"
  else
    die "pip check: $bad"
  fi
fi
VLLM_USE_FLASHINFER_SAMPLER=0 "$VENV/bin/python" -c '
import torch, vllm, verl, ray, hydra, veomni, transfer_queue, liverl
print(f"install_gpu.sh: torch {torch.__version__} (CUDA {torch.version.cuda}, {torch.cuda.device_count()} GPU(s) seen), "
      f"vLLM {vllm.__version__}, verl {verl.__version__}, Ray {ray.__version__}, LiveRL from {liverl.__file__}")'
say "$VENV ready in $((SECONDS - start)) s ($kind venv)"
