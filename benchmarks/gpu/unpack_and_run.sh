#!/usr/bin/env bash
# On the offline GPU host: bring the closure packed by pack_closure.sh into place and run LiveRL's real smoke.
# Launch (each step may be a separate call; the host keeps /tmp between calls while it is held):
#   bash benchmarks/gpu/unpack_and_run.sh stash PARTS_DIR      # copy the parts found there to $STASH
#   bash benchmarks/gpu/unpack_and_run.sh unpack               # join, check the sha256, unpack into $SITE
#   bash benchmarks/gpu/unpack_and_run.sh smoke [ARGS...]      # python -m liverl.tiny.smoke ARGS, GPU memory sampled
# OUT (default /tmp/liverl-out) receives the log, the GPU memory samples and the metrics files.
set -euo pipefail
STASH="${STASH:-/tmp/liverl-parts}"
SITE="${SITE:-/tmp/liverl-site}"
OUT="${OUT:-/tmp/liverl-out}"
REPO="$(cd "$(dirname "$0")/../.." && pwd)"
mkdir -p "$STASH" "$OUT"

gpu_env() {
  export PYTHONPATH="$SITE:$REPO${PYTHONPATH:+:$PYTHONPATH}"
  # no flashinfer in the closure: vLLM's engine core fails at start without this (gpu-host-notes.md)
  export VLLM_USE_FLASHINFER_SAMPLER=0
  # only vLLM's offline LLM class reads this (vllm/v1/engine/llm_engine.py:157); verl's AsyncLLM server always runs
  # its engine core in a subprocess (vllm/v1/engine/async_llm.py:146)
  export VLLM_ENABLE_V1_MULTIPROCESSING=0
  # NVLink multicast stays off on shared hosts
  export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
  export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 WANDB_MODE=disabled PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
  export LIVERL_SMOKE_LEDGER="${LIVERL_SMOKE_LEDGER:-/tmp/liverl-smoke-ledger.json}"
}

case "${1:-}" in
  stash)
    cp "${2:?PARTS_DIR}"/closure.* "$STASH"/ && ls -la "$STASH" ;;
  unpack)
    start=$(date +%s)
    (cd "$STASH" && cat closure.tar.xz.part-* > /tmp/closure.tar.xz)
    (cd /tmp && sha256sum -c "$STASH/closure.sha256")
    rm -rf "$SITE" && mkdir -p "$SITE"
    xz -dc -T0 /tmp/closure.tar.xz | tar -x -C "$SITE"
    rm -f /tmp/closure.tar.xz
    echo "unpacked in $(( $(date +%s) - start )) s: $(du -sh "$SITE" | cut -f1)"
    gpu_env
    python3 -c "import vllm, verl, ray, hydra, transfer_queue, torch; print('vllm', vllm.__version__, 'verl', \
verl.__version__, 'ray', ray.__version__, 'torch', torch.__version__, 'gpus', torch.cuda.device_count())" ;;
  smoke)
    shift
    gpu_env
    nvidia-smi --query-gpu=timestamp,index,memory.used --format=csv,noheader,nounits -lms 1000 > "$OUT/gpu_mem.csv" &
    smi=$!
    start=$(date +%s)
    set +e
    python3 -m liverl.tiny.smoke "$@"
    code=$?
    set -e
    kill "$smi" 2>/dev/null || true
    echo "smoke exit $code in $(( $(date +%s) - start )) s; peak GPU memory (MiB) per GPU:"
    awk -F', ' '{if ($3 > m[$2]) m[$2] = $3} END {for (g in m) print "  gpu " g ": " m[g]}' "$OUT/gpu_mem.csv"
    exit "$code" ;;
  collect)
    # collect RUN_DIR NAME: metrics files, run.json and a small archive of the plan, checkpoint listing and Ray logs
    run="${2:?RUN_DIR}"; name="${3:?NAME}"
    for f in "$run"/metrics*.jsonl; do [ -f "$f" ] && cp "$f" "$OUT/${name}_$(basename "$f")"; done
    [ -f "$run/run.json" ] && cp "$run/run.json" "$OUT/${name}_run.json"
    (find "$run" -maxdepth 3 -path '*checkpoints*' | sort > "$run/checkpoints.txt") || true
    tar -czf "$OUT/${name}_extra.tgz" --exclude='checkpoints/global_step_*' -C "$(dirname "$run")" "$(basename "$run")" \
      $( [ -d /tmp/ray/session_latest/logs ] && echo -C /tmp/ray/session_latest logs ) 2>/dev/null || true
    ls -la "$OUT" ;;
  *)
    echo "usage: $0 stash PARTS_DIR | unpack | smoke [ARGS...] | collect RUN_DIR NAME" >&2; exit 2 ;;
esac
