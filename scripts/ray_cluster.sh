#!/usr/bin/env bash
# Bring up (or stop) one node of the Ray cluster LiveRL runs on: by hand on each machine, or from
# the sbatch script that launcher=slurm writes.
#
#   scripts/ray_cluster.sh head   (--topology 3node | --nodes N [--gpus-per-node G]) [options]
#   scripts/ray_cluster.sh worker --address HEAD_IP:PORT [options] [--block]
#   scripts/ray_cluster.sh stop   [--state-dir DIR]
#
# head    cleans what an earlier bring-up left on this node, starts the Ray head (GCS on --port, the
#         dashboard that launcher=ray_job submits to on --dashboard-port), then waits up to --timeout
#         seconds until N nodes with >= G GPUs have joined. Otherwise it names what is missing, stops the
#         head and exits 1. Then every node must be the same as the head (`python -m liverl.cluster check`:
#         LiveRL's version and commit, vLLM, verl's imports; with --scaffold, .venv-harbor and the agent's
#         CLI): else it names each node that differs by IP and id, stops the head and exits 3.
# worker  cleans, waits (bounded) for the head's port, and joins it, then runs the same check (a node that
#         differs leaves the cluster again, exit 3); --block stays in the foreground (for srun).
# Ray token authentication (Ray >= 2.60): with RAY_AUTH_MODE unset and a token found (RAY_AUTH_TOKEN, the
#   file RAY_AUTH_TOKEN_PATH, or ~/.ray/auth_token) every node runs in token mode; a worker whose head wants
#   a token it lacks exits 3 naming the variables (liverl.launch.ray_auth).
# stop    stops the Ray this script started on this node and removes stale shared-memory files.
#
# options: --port P (6379)  --dashboard-port P (8265)  --num-gpus G (default: Ray detects them)
#   --node-ip IP (first of `hostname -I`)  --timeout S (300)  --state-dir DIR (/tmp/liverl-ray)
#   --force-clean (also `ray stop --force`: every Ray of this user on the node; for dedicated nodes)
#   --scaffold NAME (conf/scaffold/NAME.yaml: its trials run on every node; default $LIVERL_SCAFFOLD)
# environment: LIVERL_PYTHON (a python with Ray and LiveRL; default python3),
#   LIVERL_RAY_START_ARGS (more `ray start` flags), LIVERL_NODE_IP, LIVERL_RAY_PORT,
#   LIVERL_RAY_DASHBOARD_PORT
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PY=${LIVERL_PYTHON:-python3}
RAY=$(dirname "$(command -v "$PY" || echo "$PY")")/ray
[[ -x $RAY ]] || RAY=ray
export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}" RAY_USAGE_STATS_ENABLED=0

die() {
  echo "ray_cluster.sh: $*" >&2
  exit 1
}
say() { echo "ray_cluster.sh: $*"; }

ROLE=${1:-}
[[ $ROLE =~ ^(head|worker|stop)$ ]] || die "usage: $0 head|worker|stop [options] (see the header of $0)"
shift
NODES="" GPUS_PER_NODE=0 ADDRESS="" NUM_GPUS="" BLOCK=0 FORCE_CLEAN=0 TIMEOUT=300
PORT=${LIVERL_RAY_PORT:-6379}
DASHBOARD_PORT=${LIVERL_RAY_DASHBOARD_PORT:-8265}
NODE_IP=${LIVERL_NODE_IP:-}
STATE_DIR=/tmp/liverl-ray
SCAFFOLD=${LIVERL_SCAFFOLD:-}
while (($#)); do
  case $1 in
    --topology)
      topo="$REPO/conf/topology/$2.yaml"
      [[ -f $topo ]] || die "--topology $2: there is no $topo (the options are conf/topology/*.yaml)"
      read -r NODES GPUS_PER_NODE < <("$PY" -c "from omegaconf import OmegaConf as O; t = O.load('$topo').topology; print(t.nnodes, t.gpus_per_node)")
      shift 2 ;;
    --nodes) NODES=$2; shift 2 ;;
    --gpus-per-node) GPUS_PER_NODE=$2; shift 2 ;;
    --address) ADDRESS=$2; shift 2 ;;
    --port) PORT=$2; shift 2 ;;
    --dashboard-port) DASHBOARD_PORT=$2; shift 2 ;;
    --num-gpus) NUM_GPUS=$2; shift 2 ;;
    --node-ip) NODE_IP=$2; shift 2 ;;
    --timeout) TIMEOUT=$2; shift 2 ;;
    --state-dir) STATE_DIR=$2; shift 2 ;;
    --block) BLOCK=1; shift ;;
    --force-clean) FORCE_CLEAN=1; shift ;;
    --scaffold) SCAFFOLD=$2; shift 2 ;;
    *) die "unknown option $1 (see the header of $0)" ;;
  esac
done
PGID_FILE="$STATE_DIR/ray.pgid"
read -ra EXTRA <<<"${LIVERL_RAY_START_ARGS:-}"

in_use() { # is the file open or mapped by any process?
  grep -qsF -- "$1" /proc/[0-9]*/maps && return 0
  find /proc/[0-9]*/fd -lname "$1" 2>/dev/null | grep -q .
}

clean_shm() {
  # shared memory that Ray, vLLM, NCCL and torch leave behind, once no process has it open or mapped
  # (the processes go first: removing a file a live vLLM maps makes it SIGBUS)
  local f removed=0
  for f in /dev/shm/plasma* /dev/shm/vllm* /dev/shm/psm_* /dev/shm/nccl-* /dev/shm/torch_* /dev/shm/cuda.shm.*; do
    [[ -O $f ]] || continue
    in_use "$f" || { rm -f -- "$f" && removed=$((removed + 1)); }
  done
  ((removed == 0)) || say "removed $removed stale shared-memory file(s) from /dev/shm"
}

group_alive() { # does process group $1 have a process that is not a zombie?
  ps -e -o pgid=,stat= | awk -v g="$1" '$1 == g && $2 !~ /^Z/ { found = 1 } END { exit !found }'
}

stop_started() { # the Ray this script started on this node (its process group), bounded
  [[ -f $PGID_FILE ]] || return 0
  local pgid
  pgid=$(<"$PGID_FILE")
  if group_alive "$pgid"; then
    say "stopping the Ray started here by ray_cluster.sh (process group $pgid)"
    kill -TERM -- "-$pgid" 2>/dev/null || true
    for _ in $(seq 10); do
      group_alive "$pgid" || break
      sleep 0.5
    done
    kill -KILL -- "-$pgid" 2>/dev/null || true
    for _ in $(seq 20); do
      group_alive "$pgid" || break
      sleep 0.5
    done
    ! group_alive "$pgid" || say "process group $pgid outlived SIGKILL for 10s: see ps -g $pgid"
  else
    say "stale state: the Ray recorded in $PGID_FILE (process group $pgid) is gone; cleaning up after it"
  fi
  rm -f "$PGID_FILE"
}

clean() {
  stop_started
  if ((FORCE_CLEAN)); then
    say "--force-clean: ray stop --force (every Ray of $(id -un) on this node)"
    "$RAY" stop --force >/dev/null 2>&1 || true
  fi
  clean_shm
}

start_ray() { # ray start --block in a process group of its own, recorded for stop
  mkdir -p "$STATE_DIR"
  setsid "$RAY" start --block --disable-usage-stats "$@" "${EXTRA[@]}" >"$STATE_DIR/ray-$ROLE.log" 2>&1 </dev/null &
  echo $! >"$PGID_FILE"
}

wait_port() { # host port seconds: until the port answers, or fail naming it
  local deadline=$((SECONDS + $3))
  until (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; do
    ((SECONDS < deadline)) || return 1
    if [[ $ROLE == head ]] && ! kill -0 "$(<"$PGID_FILE")" 2>/dev/null; then
      die "the Ray head exited before listening on $1:$2; its log: $STATE_DIR/ray-head.log"$'\n'"$(tail -n 5 "$STATE_DIR/ray-head.log")"
    fi
    sleep 1
  done
}

auth_mode() { # [--address A]: token mode where a token is found, for ray start and LiveRL alike; exit 3 when
  # the head wants a token this node lacks
  local mode
  mode=$("$PY" -m liverl.cluster auth "$@") || exit $?
  if [[ $mode == token ]]; then export RAY_AUTH_MODE=token; fi
}

same_nodes() { # address: every node is the same as this one, else exit 3 after undoing what this script started
  local rc=0
  "$PY" -m liverl.cluster check --address "$1" ${SCAFFOLD:+--scaffold "$SCAFFOLD"} || rc=$?
  ((rc == 0)) && return 0
  stop_started
  echo "ray_cluster.sh: the nodes differ (see above); the Ray this script started here was stopped" >&2
  exit "$rc"
}

node_ip() {
  [[ -n $NODE_IP ]] || NODE_IP=$(hostname -I 2>/dev/null | awk '{print $1}')
  [[ -n $NODE_IP ]] || die "cannot tell this node's IP (hostname -I printed none): pass --node-ip IP"
}

case $ROLE in
  stop)
    stop_started
    clean_shm ;;
  head)
    [[ -n $NODES ]] || die "head: how many nodes to wait for? pass --topology NAME or --nodes N"
    node_ip
    clean
    auth_mode
    args=(--head --node-ip-address="$NODE_IP" --port="$PORT" --include-dashboard=true --dashboard-host=0.0.0.0
      --dashboard-port="$DASHBOARD_PORT")
    [[ -z $NUM_GPUS ]] || args+=(--num-gpus="$NUM_GPUS")
    start_ray "${args[@]}"
    wait_port "$NODE_IP" "$PORT" 60 || { stop_started; die "the Ray head did not listen on $NODE_IP:$PORT within 60s"; }
    say "head up at $NODE_IP:$PORT (dashboard http://$NODE_IP:$DASHBOARD_PORT); waiting up to ${TIMEOUT}s for $NODES node(s) with >= $GPUS_PER_NODE GPUs"
    if ! "$PY" -m liverl.cluster wait --address "$NODE_IP:$PORT" --nodes "$NODES" --gpus-per-node "$GPUS_PER_NODE" --timeout "$TIMEOUT"; then
      stop_started
      die "the cluster did not reach $NODES node(s) with >= $GPUS_PER_NODE GPUs; the head was stopped (see above for who is missing)"
    fi
    same_nodes "$NODE_IP:$PORT"
    say "ready: RAY_ADDRESS=$NODE_IP:$PORT, launcher=ray_job launcher.address=http://$NODE_IP:$DASHBOARD_PORT" ;;
  worker)
    [[ -n $ADDRESS ]] || die "worker: which head? pass --address HEAD_IP:PORT"
    node_ip
    clean
    wait_port "${ADDRESS%:*}" "${ADDRESS##*:}" "$TIMEOUT" ||
      die "the head $ADDRESS did not answer within ${TIMEOUT}s: start it first (ray_cluster.sh head), or check --address and the firewall"
    auth_mode --address "$ADDRESS"
    args=(--address="$ADDRESS" --node-ip-address="$NODE_IP")
    [[ -z $NUM_GPUS ]] || args+=(--num-gpus="$NUM_GPUS")
    start_ray "${args[@]}"
    pid=$(<"$PGID_FILE")
    sleep 3
    kill -0 "$pid" 2>/dev/null || die "ray start --address=$ADDRESS exited; its log: $STATE_DIR/ray-worker.log"
    say "worker joined $ADDRESS from $NODE_IP"
    same_nodes "$ADDRESS"
    if ((BLOCK)); then wait "$pid"; fi ;;
esac
