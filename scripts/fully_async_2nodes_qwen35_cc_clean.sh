#!/usr/bin/env bash
# Fully async on 2 nodes (1 trainer + 1 rollout), Qwen3.5, claude-code.
# Thin wrapper over: python -m liverl.train experiment=fully_async_2nodes_qwen35_cc_clean
# Usage: bash scripts/fully_async_2nodes_qwen35_cc_clean.sh [--dry-run] [override ...]   e.g. TRAIN_BSZ=8 N_RESP=4 bash scripts/fully_async_2nodes_qwen35_cc_clean.sh --dry-run
# Environment variables and forwarding: scripts/lib/liverl_train.sh.
exec "$(dirname "$0")/lib/liverl_train.sh" fully_async_2nodes_qwen35_cc_clean "$@"
