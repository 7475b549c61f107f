#!/usr/bin/env bash
# The recommended single-node run: 1 node x 8 GPUs, synchronous, claude-code.
# Thin wrapper over: python -m liverl.train experiment=sync_1node_cc
# Usage: bash scripts/sync_1node_cc.sh [--dry-run] [override ...]   e.g. TRAIN_BSZ=8 N_RESP=4 bash scripts/sync_1node_cc.sh --dry-run
# Environment variables and forwarding: scripts/lib/liverl_train.sh.
exec "$(dirname "$0")/lib/liverl_train.sh" sync_1node_cc "$@"
