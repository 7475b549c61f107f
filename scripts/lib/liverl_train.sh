#!/usr/bin/env bash
# Shared body of the documented launch scripts: map the documented environment variables onto
# LiveRL overrides, then exec `python -m liverl.train experiment=<preset> ...`.
# Usage (from a wrapper): liverl_train.sh PRESET [--dry-run] [override ...]
#   Every extra argument is forwarded as a Hydra override, after the ones from the environment
#   (so the command line wins); an override LiveRL does not know exits 2, nothing is dropped.
# Environment: TRAIN_BSZ N_RESP MODEL_PATH TRAIN_FILES VAL_FILES TRAJ_FILTER_ENABLE
#   TRAJ_FILTER_DROP_REASONS HARBOR_AGENT_NAME HARBOR_AGENT_IMPORT_PATH (read here);
#   USE_NEW_VERL NEW_VERL_DIR RAY_ADDRESS WANDB_* (read by LiveRL itself).
set -euo pipefail
preset="$1"; shift
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
py="${LIVERL_PYTHON:-$repo/.venv/bin/python}"
[ -x "$py" ] || py=python3

lower() { tr '[:upper:]' '[:lower:]' <<<"$1"; }
args=("experiment=$preset")
[ -n "${TRAIN_BSZ:-}" ] && args+=("train_bsz=$TRAIN_BSZ")
[ -n "${N_RESP:-}" ] && args+=("n_resp_per_prompt=$N_RESP")
[ -n "${MODEL_PATH:-}" ] && args+=("model.path=$MODEL_PATH")
[ -n "${TRAIN_FILES:-}" ] && args+=("train_files=$TRAIN_FILES")
[ -n "${VAL_FILES:-}" ] && args+=("val_files=$VAL_FILES")
[ -n "${TRAJ_FILTER_ENABLE:-}" ] && args+=("trajectory_filter.enable=$(lower "$TRAJ_FILTER_ENABLE")")
[ -n "${TRAJ_FILTER_DROP_REASONS:-}" ] && args+=("trajectory_filter.drop_reasons=[$TRAJ_FILTER_DROP_REASONS]")
[ -n "${HARBOR_AGENT_NAME+set}" ] && args+=("scaffold.harbor.agent_name=$HARBOR_AGENT_NAME")
[ -n "${HARBOR_AGENT_IMPORT_PATH:-}" ] && args+=("scaffold.harbor.agent_import_path=$HARBOR_AGENT_IMPORT_PATH")
for a in "$@"; do
  if [ "$a" = "--dry-run" ]; then args+=("launcher=dryrun"); else args+=("$a"); fi
done
cd "$repo"
exec "$py" -m liverl.train "${args[@]}"
