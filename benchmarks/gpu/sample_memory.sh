#!/usr/bin/env bash
# On a GPU host set up with `make install` (offline: make install WHEELHOUSE=DIR, benchmarks/gpu/wheelhouse_parts.sh):
# LiveRL's real smoke with its GPU memory sampled.
#   bash benchmarks/gpu/sample_memory.sh smoke [ARGS...]     # python -m liverl.tiny.smoke ARGS, GPU memory sampled
# Several smokes at once, detached (they outlive the call; the host's 10-minute call limit does not stop them):
#   bash benchmarks/gpu/sample_memory.sh start NAME [ARGS...]  # smoke in its own session, log in $RUNS/NAME.log
#   bash benchmarks/gpu/sample_memory.sh agentic NAME SCAFFOLD [OVERRIDES...]  # make smoke SCAFFOLD=...'s command, detached
#                                                              # (LIVERL_TINY_AGENTIC_DIR: the cached model, tasks, warm start)
#   bash benchmarks/gpu/sample_memory.sh wait SECONDS          # until every started smoke has exited (or SECONDS)
#   bash benchmarks/gpu/sample_memory.sh bundle NAME...        # each run's metrics, run.json, log -> $OUT/NAME.tgz
#   bash benchmarks/gpu/sample_memory.sh points MODE [ARGS...]  # benchmarks/memory/verl_points.py MODE ARGS, detached
#                                                              # (`wait` reports it; verl_points.json -> $OUT)
#   bash benchmarks/gpu/sample_memory.sh conform-engine [MODEL_DIR]  # vLLM vs trainer log-probs via LiveRL's session
# Concurrent smokes share the GPUs: give each vLLM a fixed KV cache
# (verl.actor_rollout_ref.rollout.engine_kwargs.vllm.kv_cache_memory_bytes=...), which skips vLLM's start-up
# profiling, whose check fails when another process on the GPU frees memory meanwhile (vllm/v1/worker/gpu_worker.py:480).
# OUT (default /tmp/liverl-out) receives the log, the GPU memory samples and the metrics files. PY: the GPU
# environment's Python (default: the repository's .venv).
set -euo pipefail
OUT="${OUT:-/tmp/liverl-out}"
RUNS="${RUNS:-/tmp/liverl-runs}"
REPO="$(cd "$(dirname "$0")/../.." && pwd)"
export PY="${PY:-$REPO/.venv/bin/python}"
mkdir -p "$OUT"

gpu_env() {
  # without the lock's optional kernels (no flashinfer) vLLM's engine core fails at start unless (gpu-host-notes.md)
  "$PY" -c 'import flashinfer' 2>/dev/null || export VLLM_USE_FLASHINFER_SAMPLER=0
  # only vLLM's offline LLM class reads this (vllm/v1/engine/llm_engine.py:157); verl's AsyncLLM server always runs
  # its engine core in a subprocess (vllm/v1/engine/async_llm.py:146)
  export VLLM_ENABLE_V1_MULTIPROCESSING=0
  # NVLink multicast stays off on shared hosts
  export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
  export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 WANDB_MODE=disabled PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
  export LIVERL_SMOKE_LEDGER="${LIVERL_SMOKE_LEDGER:-/tmp/liverl-smoke-ledger.json}"
}

gpu_peaks() {
  # gpu_peaks CSV: the highest memory.used (MiB) per GPU in "time, gpu, MiB" samples
  awk -F', ' '{if ($3 > m[$2]) m[$2] = $3} END {for (g in m) print "  gpu " g ": " m[g]}' "$1" 2>/dev/null || true  # none sampled yet
}

detach() {
  # detach NAME CMD...: CMD in a new session (setsid: it outlives the call), tagged LIVERL_GPU_TAG=NAME for the memory
  # sampler, log in $RUNS/NAME.log, "exit-code seconds" in $RUNS/NAME.rc and $RUNS/NAME.started (what `wait` reads:
  # only what was started here, so another log in $RUNS never keeps it waiting). One sampler per host:
  # a second one doubled every sample (seen when RUNS was cleared while one ran)
  local name=$1; shift
  mkdir -p "$RUNS"
  touch "$RUNS/$name.started"
  pgrep -f "sample_memory.sh sample" > /dev/null || setsid bash "$0" sample > /dev/null 2>&1 < /dev/null &
  LIVERL_GPU_TAG="$name" LIVERL_SMOKE_LEDGER="$RUNS/$name.ledger.json" setsid bash -c \
    'start=$(date +%s); "${@:2}" > "$1.log" 2>&1; echo "$? $(( $(date +%s) - start ))" > "$1.rc"' \
    _ "$RUNS/$name" "$@" < /dev/null &
}

case "${1:-}" in
  conform-engine)
    # the conformance gate's engine side (vLLM through LiveRL's session, trainer log-probs, their agreement)
    shift
    gpu_env
    "$PY" "$REPO/benchmarks/gpu/conform_engine.py" "$@" 2>&1 | tee "$OUT/conform_engine.log"
    exit "${PIPESTATUS[0]}" ;;
  points)
    # points run|host [ARGS...]: the memory model against verl (benchmarks/memory/verl_points.py) in its own session,
    # log in $RUNS/points-MODE.log; the points JSON, each run's log and host mode's timelines go to $OUT when it ends
    shift
    gpu_env
    mkdir -p "$RUNS"
    touch "$RUNS/points-${1:?run|host}.started"
    OUT="$OUT" setsid bash -c 'start=$(date +%s); "$PY" "$0/benchmarks/memory/verl_points.py" "${@:3}" \
        --work "$1/points" > "$1/points-$2.log" 2>&1; echo "$? $(( $(date +%s) - start ))" > "$1/points-$2.rc";
      cp "$0/benchmarks/memory/verl_points.json" "$1"/points/*.log "$1"/points/*.host.jsonl "$OUT"/ 2>/dev/null' \
      "$REPO" "$RUNS" "${1:?run|host}" "$@" < /dev/null &
    echo "started verl_points $*" ;;
  smoke)
    shift
    gpu_env
    nvidia-smi --query-gpu=timestamp,index,memory.used --format=csv,noheader,nounits -lms 1000 > "$OUT/gpu_mem.csv" &
    smi=$!
    start=$(date +%s)
    set +e
    "$PY" -m liverl.tiny.smoke "$@"
    code=$?
    set -e
    kill "$smi" 2>/dev/null || true
    echo "smoke exit $code in $(( $(date +%s) - start )) s; peak GPU memory (MiB) per GPU:"
    gpu_peaks "$OUT/gpu_mem.csv"
    exit "$code" ;;
  start)
    # start NAME ARGS: one smoke (python -m liverl.tiny.smoke) detached
    name="${2:?NAME}"; shift 2
    gpu_env
    mkdir -p "$RUNS"
    export LIVERL_TINY_DIR="${LIVERL_TINY_DIR:-/tmp/tiny}"
    [ -f "$LIVERL_TINY_DIR/tiny.json" ] || "$PY" -m liverl.tiny.generate "$LIVERL_TINY_DIR" > "$RUNS/generate.log" 2>&1
    detach "$name" "$PY" -m liverl.tiny.smoke --tiny-dir "$LIVERL_TINY_DIR" --run-dir "$RUNS/$name" "$@"
    echo "started $name: $*" ;;
  agentic)
    # agentic NAME SCAFFOLD [OVERRIDES...]: python -m liverl.smoke scaffold=SCAFFOLD (what make smoke SCAFFOLD=... runs)
    # detached; its run directory is $LIVERL_TINY_AGENTIC_DIR/smoke_agentic_SCAFFOLD
    name="${2:?NAME}" scaffold="${3:?SCAFFOLD}"; shift 3
    gpu_env
    cd "$REPO"
    detach "$name" "$PY" -m liverl.smoke scaffold="$scaffold" "$@"
    echo "started $name: scaffold=$scaffold $*" ;;
  sample)
    # every 2 s: each GPU's memory, and each GPU process's memory with the smoke (LIVERL_GPU_TAG) it belongs to
    set +e +o pipefail
    while true; do
      ts=$(date +%s)
      nvidia-smi --query-gpu=index,memory.used --format=csv,noheader,nounits | sed "s/^/$ts, /" >> "$RUNS/gpu_mem.csv"
      nvidia-smi --query-compute-apps=pid,gpu_bus_id,used_memory --format=csv,noheader,nounits |
        while IFS=', ' read -r pid bus mem; do
          tag=$(tr '\0' '\n' < "/proc/$pid/environ" 2>/dev/null | sed -n 's/^LIVERL_GPU_TAG=//p')
          echo "$ts, $pid, $bus, $mem, ${tag:-unknown}"
        done >> "$RUNS/gpu_apps.csv"
      sleep 2
    done ;;
  wait)
    # wait SECONDS: until every started smoke (NAME.started) wrote NAME.rc, looking every 5 s (device time is spent
    # while this waits); a progress line a minute; then the peaks
    deadline=$(( $(date +%s) + ${2:?SECONDS} ))
    next=0
    while :; do
      pending=0 now=$(date +%s) lines=""
      for started in "$RUNS"/*.started; do
        [ -e "$started" ] || continue
        n="${started%.started}"; log="$n.log"
        if [ -f "$n.rc" ]; then lines+="$(basename "$n"): exit $(cat "$n.rc") (code, seconds)"$'\n'; else pending=1
          # `|| true`: a log with no such line yet (a smoke still starting) must not end `wait` under set -e
          lines+="$(basename "$n"): $(grep -aoE 'step:[0-9]+ -|LiveRL smoke: .*total_training_steps=[0-9]+|Error[A-Za-z]*: .{0,160}' "$log" 2>/dev/null | tail -1 || true)"$'\n'
        fi
      done
      if [ "$pending" = 0 ] || [ "$now" -ge "$deadline" ]; then printf '%s' "$lines"; break; fi
      if [ "$now" -ge "$next" ]; then printf '%s' "$lines"; echo "--- $(date +%T)"; next=$(( now + 60 )); fi
      sleep $(( deadline - now < 5 ? deadline - now : 5 ))
    done
    echo "peak MiB per GPU (all smokes):"
    gpu_peaks "$RUNS/gpu_mem.csv"
    echo "peak MiB per smoke and GPU (sum of its processes at one sample; pids as nvidia-smi reports them):"
    awk -F', ' '!seen[$1 FS $2]++ {s[$1 FS $5 FS $3] += $4} END {for (k in s) {split(k, a, FS); key = a[2] " on " a[3];
      if (s[k] > m[key]) m[key] = s[k]} for (k in m) print "  " k ": " m[k]}' "$RUNS/gpu_apps.csv" 2>/dev/null | sort || true ;;
  bundle)
    # bundle NAME...: metrics files, run.json, the smoke log and checkpoint listing of each run -> $OUT/NAME.tgz
    shift
    for name in "$@"; do
      run="$RUNS/$name"
      find "$run/checkpoints" -maxdepth 2 2>/dev/null | sort > "$run/checkpoints.txt" || true
      cp "$RUNS/$name.log" "$RUNS/$name.rc" "$run/" 2>/dev/null || true
      tar -czf "$OUT/$name.tgz" -C "$RUNS" --exclude="$name/checkpoints" "$name" "$(basename "$RUNS/gpu_mem.csv")" \
        "$(basename "$RUNS/gpu_apps.csv")" 2>/dev/null || true
    done
    ls -la "$OUT" ;;
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
    echo "usage: $0 smoke [ARGS...] | start NAME [ARGS...] | wait SECONDS | bundle NAME... | collect RUN_DIR NAME" >&2; exit 2 ;;
esac
