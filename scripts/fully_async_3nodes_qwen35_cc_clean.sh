#!/usr/bin/env bash
# Fully async on 3 nodes (2 trainer nodes, 16-GPU FSDP + 1 rollout node), Qwen3.5, claude-code, 40k+91k window.
# Thin wrapper over: python -m liverl.train experiment=fully_async_3nodes_qwen35_cc_clean
# Usage: bash scripts/fully_async_3nodes_qwen35_cc_clean.sh [--dry-run] [override ...]   e.g. TRAIN_BSZ=8 N_RESP=4 bash scripts/fully_async_3nodes_qwen35_cc_clean.sh --dry-run
# Environment variables and forwarding: scripts/lib/liverl_train.sh.
exec "$(dirname "$0")/lib/liverl_train.sh" fully_async_3nodes_qwen35_cc_clean "$@"
