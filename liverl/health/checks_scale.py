"""Health checks for the page's "When to scale" signals, with the same levers liverl.advise gives (remedies.py):
a synchronous run waiting on rollouts, an MoE that does not co-fit its GPUs, a run that ran out of GPU memory,
responses hitting the window, and R3's routing coverage under multi-turn replay."""

from __future__ import annotations

import numpy as np

from liverl.health import remedies
from liverl.health.catalogue import CLIP, GEN_TIME, STEP_TIME
from liverl.health.findings import Finding, RunView
from liverl.health.run_end import GPU_KEYS_READ, out_of_memory, plan_gpu_memory
from liverl.health.signals import fmt, sustained
from liverl.health.streams import Stream

RECENT = 20  # steps a "current" reading is taken over (as liverl.advise)


def sync_gen_share(stream: Stream, min_settled: int) -> float | None:
    """Median share of a synchronous step spent generating (timing_s/gen / timing_s/step) over the recent settled
    steps (each attempt's warm-up step left out); None with fewer than ``min_settled`` of them."""
    gen_key, step_key = stream.first(*GEN_TIME), stream.first(*STEP_TIME)
    if gen_key is None or step_key is None:
        return None
    gen, step = stream.settled(gen_key)[1], stream.settled(step_key)[1]
    if min(len(gen), len(step)) < min_settled:
        return None
    return float(np.median(gen[-RECENT:]) / np.median(step[-RECENT:]))


def check_sync_rollout_bound(ctx: RunView, key: str) -> list[Finding]:
    """A synchronous run whose steps are mostly rollout generation: the page's idle-trainer signal on the sync path."""
    if ctx.get("topology.mode", ctx.get("mode.name")) != "sync":
        return []
    share = sync_gen_share(ctx.stream, ctx.cfg.advise.min_settled_steps)
    if share is None or share <= ctx.cfg.advise.gen_share_high:
        return []
    steps = ctx.stream.settled(key)[0]
    lever = remedies.fully_async(ctx.get)
    return [Finding("rollout_bound", "WARN", f"{GEN_TIME[0]} / {STEP_TIME[0]}", int(steps[0]), share,
                    f"The synchronous loop spends {share:.0%} of each step generating rollouts (> "
                    f"{ctx.cfg.advise.gen_share_high}, settled steps): the trainer waits on rollouts.", lever.fix())]


def check_memory_cofit(ctx: RunView, key: str) -> list[Finding]:
    """An MoE whose trainer and vLLM share the GPUs, peaking near the GPU's memory (from the plan, never assumed)."""
    if not ctx.get("model.moe") or (ctx.get("engine.name") == "veomni" and (ctx.get("topology.rollout_nnodes") or 0)):
        return []
    gpu = plan_gpu_memory(ctx.run_dir, ctx.run_config, ctx.cfg) if ctx.run_dir else None
    steps, v = ctx.stream.series(key)
    if gpu is None:
        return [Finding("moe_cofit", "INFO", key, int(steps[0]), float(v.max()),
                        f"MoE peak {fmt(float(v.max()))} GB per GPU, but the GPU's memory is unknown: the plan records "
                        f"none ({GPU_KEYS_READ}).", "Pass --set advise.gpu_memory_gb=N (80 for an H100).")]
    limit = ctx.cfg.advise.fit_share * gpu[0]
    lever = remedies.moe_cofit(ctx.get)
    return sustained(steps, v >= limit, None, 1, lambda sev, first, when: Finding(
        "moe_cofit", "WARN", key, first, float(v.max()),
        f"MoE peak {fmt(float(v.max()))} GB of {gpu[0]:.0f} GB per GPU ({gpu[1]}; {when}): trainer and vLLM do not "
        "co-fit.", lever.fix()))


def check_out_of_memory(ctx: RunView) -> list[Finding]:
    """The run ended in CUDA out of memory (run.json / traceback.txt): it did not fit."""
    where = out_of_memory(ctx.run_dir) if ctx.run_dir else None
    if where is None:
        return []
    return [Finding("did_not_fit", "CRIT", where.split(":", 1)[0], None, None,
                    f"The run ended in CUDA out of memory ({where}).",
                    remedies.did_not_fit(ctx.get, None).fix() + " (python -m liverl.advise RUN_DIR gives the command)")]


def check_clipped(ctx: RunView, key: str) -> list[Finding]:
    """Responses hitting the window for several steps (not on smoke batches: a smoke validates plumbing, and the
    offline tiny smoke's window is a few dozen tokens by design)."""
    if ctx.is_smoke:
        return []
    steps, v = ctx.stream.series(key)
    high = ctx.cfg.advise.clip_ratio_high
    trainers = ctx.get("topology.trainer_nnodes")
    lever = (remedies.longer_window(ctx.get, ctx.cfg.advise.get("one_node_window"))
             if not (isinstance(trainers, int) and trainers >= 2) else
             remedies.Remedy([], "Raise window.response within what the trainer nodes hold (python -m liverl.memory)"))

    def make(sev: str, first: int, when: str) -> Finding:
        return Finding("responses_clipped", sev, key, first, float(v[-1]),
                       f"Responses hit the window: {CLIP[0]} above {high} ({when}).", lever.fix())

    return sustained(steps, v > high, None, ctx.cfg.idle_ratio.min_steps, make)


def check_routing_coverage(ctx: RunView, key: str) -> list[Finding]:
    """R3 replays the rollout's routing: an interval whose rollouts returned no routed experts has nothing to replay.

    verl 0.9.1 logs rollout/moe/routed_experts_found (1.0 when the rollout returned routing, else 0.0) in its v1 (sync)
    trainer when rollout.moe_load_balance_metrics_interval > 0 (trainer/ppo/metric_utils.py:311-331,
    v1/trainer_base.py:1882); engine=veomni turns the interval on for R3. The fully-async trainer logs nothing of the
    kind: the check is skipped there, naming the metric."""
    steps, v = ctx.stream.series(key)
    replay = ctx.get("router_replay")

    def make(sev: str, first: int, when: str) -> Finding:
        return Finding("routing_coverage", sev, key, first, float(v[-1]),
                       f"The rollout returned no routed experts ({key} = 0, {when}; healthy 1.0)"
                       + (": R3 has nothing to replay, so training re-routes every token the rollout routed "
                          "(routing coverage collapses)." if replay == "R3" else "."),
                       "Check that vLLM records the routing (enable_rollout_routing_replay=true, vLLM >= 0.22 on "
                       "every rollout node) and that the verl that runs has the new verl's R3 wiring "
                       "(USE_NEW_VERL=1 NEW_VERL_DIR=...; liverl.check names what a checkout lacks).")

    crit = v < 0.5 if replay == "R3" else None
    return sustained(steps, v < 0.5, crit, 1, make)

