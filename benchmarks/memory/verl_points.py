"""The memory model against verl itself: real `python -m liverl.train` runs (sync, colocated: topology=gpu1, one GPU;
two for the _2gpu points)
on reduced-depth random-weight checkpoints, verl's logged trainer peak vs `python -m liverl.memory --run-dir RUN`.

Each point: a checkpoint of a supported architecture at its real width (hidden, MLP, every expert) and its real
vocabulary, with 2 layers and random weights (std 0.02), and a tokenizer trained on the tiny workload's text and
padded with filler tokens to that vocabulary (so vLLM can detokenize every id a random policy samples). The random
policy never stops early, so every response fills the window: every micro-batch is one full-window sequence
(ppo_max_token_len_per_gpu = the window). Two training steps; the measured peak is the largest
`actor/perf/max_memory_allocated_gb` verl logs (max_memory_allocated / 1024**3 since the worker started:
verl/workers/engine_workers.py:219, so GiB, over every phase: old-log-prob pass, training, weight sync), beside
`max_memory_reserved_gb` (what runs out). Host mode (`host`): a point run alone with the node's used memory sampled
every 0.5 s and who holds it (host_sampler.py), against the host model (liverl.memory.host): optimizer + parameter
offload by default, or a named point.

On the GPU host (the GPU environment of `make install`; `bash benchmarks/gpu/sample_memory.sh points MODE ...`
runs it detached):
  python benchmarks/memory/verl_points.py run --parallel 2 [--points dense7b_fsdp_16k,moe30b_fsdp_16k,...]
      [--allow memory-fit]   # on a GPU the plan does not fit: measure whether verl runs out
  python benchmarks/memory/verl_points.py host [--points moe30b_fsdp_16k_fsdp2off]   # the node's memory sampled too
  python benchmarks/memory/verl_points.py collect --points NAME --work DIR   # on any machine: a point whose run
      # finished after the harness stopped (the device time ran out), from DIR/runs/NAME sent back from the host
Both merge their points into benchmarks/memory/verl_points.json (--out), which tests/test_memory_verl.py reads.
On a CPU machine: `python benchmarks/memory/verl_points.py plan --work DIR` writes the configs (no weights) and
plans every point with launcher=dryrun: the overrides are checked without a GPU.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

# this folder: sys.path[0] when run as a script, the tests put it there
from host_sampler import Sampler
from point_checkpoints import SHAPES, checkpoint

ROOT = Path(__file__).resolve().parents[2]
OUT = Path(__file__).resolve().parent / "verl_points.json"
# name: (shape, window, engine, extra overrides); the default set first
POINTS = {
    "dense7b_fsdp_16k": ("dense7b", 16384, "fsdp", ()),
    "moe30b_fsdp_16k": ("moe30b", 16384, "fsdp", ()),
    "moe35b_fsdp_16k": ("moe35b", 16384, "fsdp", ()),
    # the Qwen3.5 shape where an H100 can try it (16k: 88 GiB predicted): memory-fit refuses both there (6k: 58.6 GiB,
    # the optimizer step; 8k: 61.7, the log-prob pass) against 56.5 with the allocator headroom: run with --allow
    "moe35b_fsdp_8k": ("moe35b", 8192, "fsdp", ()),
    "moe35b_fsdp_6k": ("moe35b", 6144, "fsdp", ()),
    "dense7b_fsdp_32k": ("dense7b", 32768, "fsdp", ()),
    # an MoE window past 16k: 85.9 GiB predicted (the log-prob pass's logits), an H200's (99.9 budget)
    "moe30b_fsdp_32k": ("moe30b", 32768, "fsdp", ()),
    # VeOmni's router replay needs remove-padding, which needs flash-attn (not on the GPU host): replay off. One
    # trainer GPU: VeOmni's MoE kernel needs the model in bf16 (rule veomni-one-gpu-moe), so this point trains in pure
    # bf16 (weights, gradients, AdamW states: 2 bytes each, which the memory model follows)
    "moe30b_veomni_16k": ("moe30b", 16384, "veomni", ("router_replay=disabled",
                                                       "verl.actor_rollout_ref.actor.veomni.mixed_precision=false")),
    "dense7b_fsdp_16k_fused_off": ("dense7b", 16384, "fsdp",
                                   ("verl.actor_rollout_ref.actor.entropy_from_logits_with_chunking=false",)),
    # optimizer offload as the user's page sets it (parameters stay): verl loads the states back for the whole update
    # (verl/workers/engine/base.py:322-332), so the update's peak holds them, and from the second micro-batch every
    # sharded gradient. The Qwen3.5 shape (2 layers, 1 GPU: AdamW states 23.4 GiB, gradients 11.7): at 16k a model
    # without them peaks in the log-prob pass (64.8 GiB), this one in the update's forward (77.6); 8k and 10k are an
    # H100's (58.6, the optimizer step, vs 62.3 and 66.1: run with --allow memory-fit)
    "moe35b_fsdp_16k_optoff": ("moe35b", 16384, "fsdp", ("topology.optimizer_offload=true",)),
    "moe35b_fsdp_10k_optoff": ("moe35b", 10240, "fsdp", ("topology.optimizer_offload=true",)),
    "moe35b_fsdp_8k_optoff": ("moe35b", 8192, "fsdp", ("topology.optimizer_offload=true",)),
    # the same question on the Qwen3-30B-A3B shape (no GatedDeltaNet, no vision tower, no TileLang compile: 492 s on
    # an H100, 2026-12-07, against 962 s for Qwen3.5's 6k point): 39.5 GiB (the log-prob pass) without the states and
    # gradients, 46.9 with them in the update's forward; verl logged 39.26 in step 1 and 46.73 in step 2
    "moe30b_fsdp_16k_optoff": ("moe30b", 16384, "fsdp", ("topology.optimizer_offload=true",)),
    # FSDP2's CPU offload (topology.fsdp2_cpu_offload: what the 1node/2node/3node presets run): the sharded fp32
    # parameters, their gradients and the AdamW states live on the host, the optimizer step runs on the CPU, and the
    # GPU holds one layer's unsharded weights at a time: 32.5 GiB predicted at 16k (the log-prob logits), 53.4 without.
    # Run in host mode (the node's memory too). The FSDP engine only: on one trainer GPU VeOmni's offload does nothing
    # (liverl.guardrails.verl_keys.fsdp2_wraps)
    "moe30b_fsdp_16k_fsdp2off": ("moe30b", 16384, "fsdp", ("topology.fsdp2_cpu_offload=true",)),
    # the presets' shape at their window: 53.1 GiB predicted (88.2 without), within an H100's 56.5 budget
    "moe35b_fsdp_16k_fsdp2off": ("moe35b", 16384, "fsdp", ("topology.fsdp2_cpu_offload=true",)),
    # VeOmni's FSDP2 offload, what the presets run: VeOmni wraps in FSDP2 only on two or more trainer GPUs
    # (verl_keys.fsdp2_wraps), so these two need a 2-GPU host (sync, both GPUs colocated: a trainer world of 2, two
    # vLLM replicas); the pair gives what offload takes off VeOmni's peak. Router replay off as moe30b_veomni_16k
    "moe30b_veomni_16k_2gpu": ("moe30b", 16384, "veomni", ("router_replay=disabled", "topology.gpus_per_node=2")),
    "moe30b_veomni_16k_2gpu_fsdp2off": ("moe30b", 16384, "veomni", ("router_replay=disabled",
                                                                     "topology.gpus_per_node=2",
                                                                     "topology.fsdp2_cpu_offload=true")),
}
DEFAULT = ("moe35b_fsdp_16k", "moe30b_fsdp_16k", "dense7b_fsdp_16k")  # --parallel 3 on an H200: ~114 GiB if peaks meet
# host mode: the node's used memory beside the GPU peak. The first is the optimizer + parameter offload point; a POINTS
# name runs that point with the sampler and is stored in both lists (FSDP2 offload: parameters and gradients pinned,
# AdamW states on the host unpinned)
HOST_POINTS = {"host_dense7b_offload_16k": ("dense7b", 16384, "fsdp", ("topology.optimizer_offload=true",
                                                                        "topology.param_offload=true"))}
HOST_DEFAULT = "host_dense7b_offload_16k"
KV_CACHE = 4 * 2**30  # each vLLM gets a fixed KV cache (no start-up profiling, several runs may share the GPU)
PROMPT = 128


TRAIN = "points_train.parquet"  # in the tiny workload's data folder (train_data)
TRAIN_ROWS = 16


def train_data(tiny: Path) -> Path:
    """The points' training prompts: the tiny workload's first TRAIN_ROWS, the i-th with its word said i more times,
    so no two prompts (and, every response filling the window, no two sequences of a step) have the same length.
    verl 0.9.1 cannot take a step whose sequences are all equally long on a model with 4-row (M-RoPE) position ids,
    Qwen3.5's: left_right_2_no_padding builds them with torch.nested.as_nested_tensor, which then makes the 4 rows the
    ragged dimension (verl/workers/utils/padding.py:67); maybe_fix_3d_position_ids sets _ragged_idx=2 anyway
    (verl/utils/tensordict_utils.py:910-915) and the first micro-batch's index_select fails: "split_with_sizes expects
    split_sizes to sum exactly to 6033 ..., but got split_sizes=[4, 4, 4, 4]" (moe35b_fsdp_6k, an H100, 2026-12-07:
    the tiny prompts were all 17 tokens)."""
    import pandas as pd

    out = tiny / "data" / TRAIN
    rows = pd.read_parquet(tiny / "data" / "train.parquet").head(TRAIN_ROWS).copy()
    rows["prompt"] = [[{**msgs[0], "content": msgs[0]["content"] + f" {reward['ground_truth']}" * i}]
                      for i, (msgs, reward) in enumerate(zip(rows["prompt"], rows["reward_model"], strict=True))]
    part = out.with_suffix(".part")
    rows.to_parquet(part)
    part.replace(out)  # whole or not there: a run never reads half of it
    return out


def overrides(name: str, point: tuple, ckpt: Path, tiny: Path, run_dir: Path, launcher: str,
              allow: tuple[str, ...] = ()) -> list[str]:
    from liverl.guardrails.gpu_probe import FLASHINFER, dist_version

    shape, window, engine, extra = point
    group = SHAPES[shape][1]
    moe = shape.startswith("moe")
    return [
        "topology=gpu1", f"engine={engine}", "scaffold=single_turn", "batch=smoke", f"model={group}",
        f"model.path={ckpt}", "model.rollout_tp=1", "+model.tool_call_parser.single_turn=null",
        "+model.attn_implementation=sdpa",
        f"train_files={tiny}/data/{TRAIN}", f"val_files={tiny}/data/val.parquet",
        f"window.prompt={PROMPT}", f"window.response={window - PROMPT}", "train_bsz=2", "n_resp_per_prompt=2",
        "total_training_steps=2", "verl.trainer.save_freq=-1", "verl.trainer.test_freq=-1",
        "verl.trainer.val_before_train=false", "verl.trainer.logger=[console,file]",
        # no flash-attn on the GPU host: SDPA without remove-padding (what the tiny smoke runs)
        "verl.actor_rollout_ref.model.use_remove_padding=false",
        "+verl.actor_rollout_ref.model.override_config.attn_implementation=sdpa",
        # CUDA graphs on (verl's default): a 2-layer model decodes its 16k-token responses ~3x faster than eager
        "verl.actor_rollout_ref.rollout.enforce_eager=false",
        "verl.actor_rollout_ref.rollout.gpu_memory_utilization=0.2",
        f"verl.actor_rollout_ref.rollout.engine_kwargs.vllm.kv_cache_memory_bytes={KV_CACHE}",
        # gdn-triton-hopper is not waived: flash-linear-attention (the lock) refuses Qwen3.5's backward on Hopper with
        # Triton 3.6 unless tilelang and an nvcc are there, and the launch says so before the 10-minute rollout
        "liverl.allow=[" + ",".join(["checkpoint-save", *(["moe-new-verl"] if moe else []),
                                     *allow]) + "]",
        f"experiment_name=verl_points_{name}", f"launcher={launcher}", f"hydra.run.dir={run_dir}",
        # vLLM 0.24 runs GatedDeltaNet's prefill with FlashInfer on Hopper, which the GPU host's image lacks
        # (rule gdn-prefill-flashinfer): its fix, where flashinfer is missing
        *([GDN_TRITON] if gated_delta_net(shape) and dist_version(FLASHINFER) is None else []), *extra,
    ]


GDN_TRITON = "verl.actor_rollout_ref.rollout.engine_kwargs.vllm.gdn_prefill_backend=triton"


def gated_delta_net(shape: str) -> bool:
    from liverl.memory.arch import bundled, load

    return load(bundled(SHAPES[shape][0])).linear_layers > 0


def read_peaks(run_dir: Path) -> dict:
    rows = []
    for path in sorted(run_dir.glob("metrics*.jsonl")):
        for line in path.read_text().splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(row.get("data"), dict):
                rows.append(row)
    out = {"steps": [r["step"] for r in rows]}
    for key in ("max_memory_allocated_gb", "max_memory_reserved_gb", "cpu_memory_used_gb"):
        vals = [r["data"][f"actor/perf/{key}"] for r in rows if f"actor/perf/{key}" in r["data"]]
        out[key] = max(vals) if vals else None
        out[f"{key}_per_step"] = vals
    return out


def predicted(run_dir: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    proc = subprocess.run([sys.executable, "-m", "liverl.memory", "--run-dir", str(run_dir), "--json"],
                          capture_output=True, text=True, cwd=ROOT, env=env)
    p = json.loads(proc.stdout.strip().splitlines()[-1])
    t = p["trainer"]
    return {"peak_bytes": t["peak_bytes"], "peak_phase": t["peak_phase"], "phases": t["phases"],
            "budget_bytes": t["budget_bytes"], "gpu": p["gpu"], "logits": t["breakdown"].get("logits_forward")}


def _run_state(run_dir: Path) -> dict:
    from liverl.rundir import RUN_JSON

    return json.loads((run_dir / RUN_JSON).read_text()) if (run_dir / RUN_JSON).is_file() else {}


WARNING = re.compile(r"\bWARNING\b")


def failure(run_dir: Path, log: str) -> str | None:
    """Why a point's run failed: the refusal the launcher recorded in run.json (liverl.launch.refusal.refuse: which
    rule, the numbers, the fix), else the first error line of its log (an out-of-memory, say): what follows it is
    mostly the shutdown (the VeOmni point's AssertionError was followed by "DataLoader worker ... killed"). A warning's
    traceback is no error: vLLM logs a failed kernel warm-up's ModuleNotFoundError at WARNING and goes on."""
    state = _run_state(run_dir)
    if state.get("status") == "refused":
        return state.get("reason")
    errors = [line.strip() for line in log.splitlines() if "Error:" in line and not WARNING.search(line)]
    return errors[0] if errors else None


def workload(work: Path, fresh: bool = False) -> Path:
    """WORK/tiny: the tiny workload and the points' prompts (train_data; `fresh`: rewritten, which main does once
    before its threads start, so an older WORK never keeps stale prompts and no run reads a file being written)."""
    tiny = work / "tiny"
    if not (tiny / "tiny.json").is_file():
        from liverl.tiny.generate import generate

        generate(tiny)
    if fresh or not (tiny / "data" / TRAIN).is_file():
        train_data(tiny)
    return tiny


def run_point(name: str, point: tuple, work: Path, launcher: str = "local", sample_host: bool = False,
              allow: tuple[str, ...] = ()) -> dict:
    shape = point[0]
    ckpt = checkpoint(shape, work / "ckpt" / shape, weights=launcher == "local")
    tiny = workload(work)
    run_dir = work / "runs" / name
    args = overrides(name, point, ckpt, tiny, run_dir, launcher, allow)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    sampler = Sampler(timeline=work / f"{name}.host.jsonl") if sample_host else None
    if sampler:
        sampler.start()
    start = time.monotonic()
    with open(work / f"{name}.log", "w") as log:
        code = subprocess.call([sys.executable, "-m", "liverl.train", *args], cwd=ROOT, env=env, stdout=log,
                               stderr=subprocess.STDOUT)
    wall = round(time.monotonic() - start, 1)
    row = _row(name, args, ckpt, code, wall)
    if code != 0:
        row["reason"] = failure(run_dir, (work / f"{name}.log").read_text(errors="replace"))
    if launcher != "local":
        return row
    _measure(row, run_dir)
    if sampler:
        row["host"] = sampler.finish()
    print(json.dumps({k: row.get(k) for k in ("name", "exit", "wall_s", "error")}), flush=True)
    return row


def _row(name: str, args: list[str], ckpt: Path, code: int, wall: float | None) -> dict:
    cfg = json.loads((ckpt / "config.json").read_text())
    row = {"name": name, "overrides": [a for a in args if not a.startswith(("hydra.run.dir", "launcher="))],
           "hf_config": cfg, "exit": code, "wall_s": wall}
    if (ckpt / "params.json").is_file():
        row["checkpoint_params"] = json.loads((ckpt / "params.json").read_text())
    return row


def _measure(row: dict, run_dir: Path) -> None:
    row["measured"] = read_peaks(run_dir)
    if (run_dir / "verl.yaml").is_file():
        row["predicted"] = predicted(run_dir)
        gib = row["measured"]["max_memory_allocated_gb"]
        if gib:
            row["error"] = round(row["predicted"]["peak_bytes"] / (gib * 2**30) - 1, 4)


def collect(name: str, work: Path) -> dict:
    """A point whose run finished on the GPU host after the harness could record it (a session's device time ran
    out first): its row from the run directory the host sent back (WORK/runs/NAME: run.json, metrics.jsonl,
    verl.yaml), the checkpoint's config rebuilt here (no weights), the GPU from run.json (what the node probe found)."""
    from liverl.rundir import recorded_gpu

    shape = POINTS[name][0]
    run_dir = work / "runs" / name
    state = _run_state(run_dir)
    if state.get("status") != "succeeded":
        raise SystemExit(f"collect {name}: {run_dir}/run.json says {state.get('status')!r}, not 'succeeded'")
    ckpt = checkpoint(shape, work / "ckpt" / shape, weights=False)
    args = overrides(name, POINTS[name], ckpt, work / "tiny", run_dir, "local")
    times = {h["status"]: h["time"] for h in state.get("history", [])}
    row = _row(name, args, ckpt, 0, None)
    row["collected"] = {"from": "run directory", "running": times.get("running"), "succeeded": times.get("succeeded")}
    row["gpu"] = (recorded_gpu(run_dir) or {}).get("device")
    _measure(row, run_dir)
    print(json.dumps({k: row.get(k) for k in ("name", "exit", "gpu", "error")}), flush=True)
    return row


def environment() -> dict:
    from liverl.guardrails.gpu_probe import dist_version

    env = {"python": sys.version.split()[0], **{d: dist_version(d) for d in ("verl", "vllm", "torch", "transformers",
                                                                               "ray")}}
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=30).stdout.strip().splitlines()
        env["gpu"] = out[0] if out else None
    except (OSError, subprocess.SubprocessError):
        env["gpu"] = None
    return env


def _device(gpu: str | None) -> str | None:
    return gpu.split(",")[0].strip() if gpu else None


def merge(out: Path, key: str, rows: list[dict], here: bool = True, also: dict[str, list[dict]] | None = None) -> None:
    """Rows into OUT's `key`, and `also`'s rows into their keys, in one write; `here`: measured on this machine
    (env.gpu names its GPU), else each row names its own (collect) and env is left as the last measuring invocation
    wrote it."""
    data = json.loads(out.read_text()) if out.is_file() else {"points": [], "host_points": []}
    env = environment() if here else {}
    for k, more in {key: rows, **(also or {})}.items():
        _merge_rows(data, k, [{**r, "gpu": r.get("gpu") or env.get("gpu")} for r in more])
    if here:
        data.setdefault("env", {}).update(env)
    out.write_text(json.dumps(data, indent=1) + "\n")


def _merge_rows(data: dict, key: str, rows: list[dict]) -> None:
    names = {x["name"] for x in rows}
    keep = [r for r in data.get(key, []) if r["name"] not in names]
    # each point records the GPU it was measured on (env.gpu is the latest invocation's)
    data[key] = keep + [r for r in rows if r.get("exit") == 0 and r.get("measured", {}).get("max_memory_allocated_gb")]
    # a failure stays until its point runs again on the same GPU (an H100's refusal is still true after an H200 run);
    # the GPU by its device name (nvidia-smi adds the memory, run.json does not). A point itself is one row per name
    ran = {(r["name"], _device(r["gpu"])) for r in rows}
    data["failed"] = [f for f in data.get("failed", []) if (f["name"], _device(f.get("gpu"))) not in ran] + [
        {"name": r["name"], "exit": r["exit"], "reason": r.get("reason"), "gpu": r["gpu"]} for r in rows
        if r.get("exit") != 0]


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="verl_points.py", description=__doc__.splitlines()[0])
    ap.add_argument("mode", choices=("run", "host", "plan", "collect"))
    ap.add_argument("--points", default="", help=f"comma-separated, of: {', '.join(POINTS)} (default: "
                    f"{','.join(DEFAULT)}; host mode: {HOST_DEFAULT}, or any of these)")
    ap.add_argument("--parallel", type=int, default=1, help="runs at once on the GPU (each vLLM has a fixed cache)")
    ap.add_argument("--work", type=Path, default=Path("/tmp/liverl-verl-points"))
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--allow", default="", help="rules to waive, comma-separated (liverl.allow): e.g. memory-fit, to "
                    "measure on a smaller GPU a point its plan refuses there (whether verl runs out is the datum)")
    a = ap.parse_args(argv)
    a.work.mkdir(parents=True, exist_ok=True)
    names = [n for n in (a.points or (HOST_DEFAULT if a.mode == "host" else ",".join(DEFAULT))).split(",") if n]
    allow = tuple(r for r in a.allow.split(",") if r)
    known = {**POINTS, **HOST_POINTS} if a.mode == "host" else POINTS
    unknown = [n for n in names if n not in known]
    if unknown:
        print(f"--points: unknown {unknown} (known: {', '.join(known)})", file=sys.stderr)
        return 2
    if a.mode == "host":  # one at a time: the sampler reads the whole node
        workload(a.work, fresh=True)
        rows = [run_point(n, known[n], a.work, sample_host=True, allow=allow) for n in names]
        merge(a.out, "host_points", rows, also={"points": [r for r in rows if r["name"] in POINTS]})
        return 0 if all(r["exit"] == 0 for r in rows) else 1
    if a.mode == "collect":
        merge(a.out, "points", [collect(n, a.work) for n in names], here=False)
        return 0
    workload(a.work, fresh=True)
    for shape in {POINTS[n][0] for n in names}:  # checkpoints first, one at a time
        checkpoint(shape, a.work / "ckpt" / shape, weights=a.mode == "run")
    launcher = "local" if a.mode == "run" else "dryrun"
    with ThreadPoolExecutor(max_workers=max(1, a.parallel)) as pool:
        rows = list(pool.map(lambda n: run_point(n, POINTS[n], a.work, launcher, allow=allow), names))
    if a.mode == "run":
        merge(a.out, "points", rows)
    else:
        print(json.dumps([{k: r[k] for k in ("name", "exit")} for r in rows]))
    return 0 if all(r["exit"] == 0 for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
