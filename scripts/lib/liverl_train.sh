#!/usr/bin/env bash
# Shared body of the documented launch scripts: a single exec of `python -m liverl.train experiment=<preset> ...`.
# Usage (from a wrapper): liverl_train.sh PRESET [--dry-run] [override ...]
#   LiveRL itself (liverl/recipe/environ.py) maps the documented environment onto overrides, the same for every entry
#   point: TRAIN_BSZ N_RESP MODEL_PATH TRAIN_FILES VAL_FILES TRAJ_FILTER_ENABLE TRAJ_FILTER_DROP_REASONS
#   HARBOR_AGENT_NAME HARBOR_AGENT_IMPORT_PATH (and USE_NEW_VERL NEW_VERL_DIR RAY_ADDRESS WANDB_*). The command
#   line wins; --dry-run is launcher=dryrun; an override LiveRL does not know exits 2, nothing is dropped.
set -euo pipefail
preset="$1"; shift
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
py="${LIVERL_PYTHON:-$repo/.venv/bin/python}"
[ -x "$py" ] || py=python3
cd "$repo"
exec "$py" -m liverl.train "experiment=$preset" "$@"
