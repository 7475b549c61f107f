"""When to scale: the "When to scale" table (scaling-up.md) applied to one run's config and metrics."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig, OmegaConf

from liverl.derive import concurrency_per_replica
from liverl.health.analysis import load_run_config, load_thresholds
from liverl.health.catalogue import CLIP, ENV_SETUP, GEN_TIME, IDLE, MEMORY, STEP_TIME, wanted_keys
from liverl.health.signals import recent_reason_share
from liverl.health.streams import RunNotFoundError, Stream, StreamReader

GROUPS = ("model", "engine", "topology", "scaffold", "batch")
RECENT = 20  # steps a "current" reading is taken over


@dataclass
class Advice:
    """One row of the "When to scale" table, judged on this run."""

    id: str
    signal: str
    lever: str
    verdict: str  # scale | stay | already | cannot judge
    evidence: str
    overrides: list[str] = field(default_factory=list)
    command: str | None = None


class _Run:
    """The run's config and recent metric readings, read defensively."""

    def __init__(self, config: DictConfig, stream: Stream, cfg: DictConfig, memory: dict | None = None) -> None:
        self.config, self.stream, self.cfg = config, stream, cfg
        self.memory = memory  # the memory model's prediction for this plan (liverl.advise passes it), or None

    def get(self, dotted: str) -> Any:
        return OmegaConf.select(self.config, dotted, default=None, throw_on_resolution_failure=False)

    def recent(self, keys: Sequence[str], reduce: str = "median", settled: bool = False) -> tuple[str, float] | None:
        """(key, median or max over the last steps) of the first of ``keys`` that was logged; ``settled`` leaves out
        each attempt's warm-up step (Stream.settled), for readings of time."""
        key = self.stream.first(*keys)
        if key is None:
            return None
        values = (self.stream.settled(key) if settled else self.stream.series(key))[1]
        if settled and len(values) < self.cfg.advise.min_settled_steps:
            return None
        return key, float(np.max(values) if reduce == "max" else np.median(values[-RECENT:]))

    def command(self, overrides: list[str], env: str = "") -> str:
        """The launch line: this run's group choices with ``overrides`` applied."""
        chosen = {g: self.get(f"{g}.name") for g in GROUPS}
        args = [f"{g}={v}" for g, v in chosen.items() if v is not None]
        replaced = {o.split("=", 1)[0] for o in overrides}
        args = [a for a in args if a.split("=", 1)[0] not in replaced] + overrides
        return f"{env}python -m liverl.train {' '.join(args)}"


def advise_moe(run: _Run) -> Advice:
    """Large MoE whose trainer + vLLM do not co-fit -> VeOmni engine + a dedicated rollout node."""
    row = ("moe_cofit", "Policy is a large MoE and trainer + vLLM won't co-fit",
           "veomni engine + a dedicated rollout node")
    moe, engine, rollout_nodes = run.get("model.moe"), run.get("engine.name"), run.get("topology.rollout_nnodes")
    overrides = ["engine=veomni", "topology=2node"]
    command = run.command(overrides, env="USE_NEW_VERL=1 ")
    if moe is None:
        return Advice(*row, "cannot judge", "model.moe unknown (no liverl.yaml)", overrides, command)
    if moe is False:
        return Advice(*row, "stay", f"dense policy ({run.get('model.name')}): FSDP serves it")
    if engine == "veomni" and isinstance(rollout_nodes, int) and rollout_nodes >= 1:
        return Advice(*row, "already", f"MoE on engine=veomni with {rollout_nodes} rollout node(s)")
    peak, predicted = run.recent(MEMORY, reduce="max"), _predicted(run.memory)
    budget = run.cfg.advise.gpu_memory_gb
    if peak is None and predicted is not None:
        fits, text = predicted
        if not fits:
            return Advice(*row, "scale", f"{text}: trainer + vLLM do not co-fit", overrides, command)
        return Advice(*row, "stay", f"MoE predicted to fit: {text}")
    if peak is None:
        return Advice(*row, "cannot judge", f"MoE on engine={engine} without a rollout node, but no GPU memory "
                      f"metric ({MEMORY[0]}): scale if trainer + vLLM run out of memory", overrides, command)
    key, gb = peak
    also = f" ({predicted[1]})" if predicted else ""
    if gb >= run.cfg.advise.fit_share * budget:
        return Advice(*row, "scale", f"MoE peak {key} = {gb:.0f} GB of {budget:.0f} GB per GPU: trainer + vLLM "
                      f"do not co-fit{also}", overrides, command)
    return Advice(*row, "stay", f"MoE fits: peak {key} = {gb:.0f} GB of {budget:.0f} GB per GPU{also}")


def _predicted(memory: dict | None) -> tuple[bool, str] | None:
    """(fits, evidence) from the memory model's prediction: trainer and vLLM share each GPU of a colocated run."""
    if not memory:
        return None
    t, r, gib = memory["trainer"], memory["rollout"], 2**30
    text = (f"predicted trainer GPU peak {t['peak_bytes'] / gib:.0f} of {memory['gpu_bytes'] / gib:.0f} GiB "
            f"({t['peak_phase']}), vLLM {r['full_window_sequences']} full-window sequences per replica")
    return bool(t["fits"] and r["fits"]), text


def concurrency_lever(run: _Run) -> tuple[list[str], str]:
    """The override that lifts verl's in-flight cap, min(replicas x concurrent_samples_per_replica,
    prompts x (staleness + 1) x sync steps) (fully_async_rollouter.py:494-506, 970); agent.num_workers does not."""
    per_replica = run.get("verl.async_training.concurrent_samples_per_replica")
    staleness = run.get("staleness_threshold") or 0
    try:
        derived = concurrency_per_replica(
            run.get("train_bsz"), staleness, run.get("trigger_parameter_sync_step") or 1,
            run.get("topology.rollout_nnodes") * run.get("topology.gpus_per_node"), run.get("model.rollout_tp") or 1)
    except (TypeError, ValueError):
        derived = None
    if isinstance(per_replica, int) and derived and per_replica < derived:
        return ([f"verl.async_training.concurrent_samples_per_replica={derived}"],
                f"concurrent_samples_per_replica={per_replica} keeps fewer prompts in flight than the queue admits")
    overrides = [f"staleness_threshold={staleness + 1}"]
    return overrides, ("the queue is the cap: one more step of staleness admits another batch of prompts in flight "
                       "(the concurrency follows), or add rollout nodes (topology.rollout_nnodes)")


def advise_rollout_bound(run: _Run) -> Advice:
    """Trainer idle waiting on rollouts -> fully async (or, already async, more rollout capacity)."""
    row = ("rollout_bound", "Trainer GPUs idle most of the step waiting on rollouts (idle_ratio high)",
           "Fully-async trainer/rollout decoupling")
    high = run.cfg.idle_ratio.high
    idle = run.recent(IDLE, settled=True)
    mode = run.get("topology.mode")
    if mode == "fully_async" or (mode is None and idle is not None):
        if idle is None:
            return Advice(*row, "cannot judge", f"fully async, but {IDLE[0]} is not logged{_short(run, IDLE)}")
        overrides, lever = concurrency_lever(run)
        if idle[1] > high:
            return Advice(*row, "scale", f"already fully async, and {IDLE[0]} = {idle[1]:.2f} > {high} over the "
                          f"last {RECENT} steps: still rollout-bound; {lever}", overrides, run.command(overrides))
        return Advice(*row, "already", f"fully async; {IDLE[0]} = {idle[1]:.2f} (<= {high})")
    gen, step = run.recent(GEN_TIME, settled=True), run.recent(STEP_TIME, settled=True)
    if gen is None or step is None:
        return Advice(*row, "cannot judge", f"sync run without {GEN_TIME[0]} and {STEP_TIME[0]}"
                      f"{_short(run, GEN_TIME, STEP_TIME)}")
    share = gen[1] / step[1]
    if share > run.cfg.advise.gen_share_high:
        overrides = ["topology=2node"]
        return Advice(*row, "scale", f"sync run spends {share:.0%} of each step generating rollouts "
                      f"({GEN_TIME[0]} / {step[0]}): the trainer waits on rollouts", overrides, run.command(overrides))
    return Advice(*row, "stay", f"sync run spends {share:.0%} of each step generating rollouts")


def _short(run: _Run, *names: Sequence[str]) -> str:
    """Why a logged time metric still gives no verdict: too few steps besides the warm-up ones."""
    need = run.cfg.advise.min_settled_steps
    counts = [len(run.stream.settled(k)[1]) for keys in names if (k := run.stream.first(*keys))]
    if not counts:
        return ""
    return (f" over at least {need} steps besides each attempt's first (warm-up) step (logged: {min(counts)}; "
            f"threshold advise.min_settled_steps)")


def advise_window(run: _Run) -> Advice:
    """Window toward 131k -> multi-node FSDP (more trainer GPUs + CPU optimizer offload)."""
    row = ("long_window", "Context window must reach ~131k (40k prompt + 91k response)",
           "Multi-node FSDP (more trainer GPUs + CPU offload)")
    prompt, response = run.get("window.prompt"), run.get("window.response")
    trainers = run.get("topology.trainer_nnodes")
    overrides = ["topology=3node"]
    if isinstance(trainers, int) and trainers >= 2:
        return Advice(*row, "already", f"{trainers} trainer nodes (topology={run.get('topology.name')})")
    window = prompt + response if isinstance(prompt, int) and isinstance(response, int) else None
    clip = run.recent(CLIP)
    clip_note = f"; {CLIP[0]} = {clip[1]:.2f}" if clip else ""
    if window is not None and window >= run.cfg.advise.long_window:
        return Advice(*row, "scale", f"window {prompt} + {response} = {window} tokens on "
                      f"{trainers if trainers is not None else '?'} trainer node(s){clip_note}",
                      overrides, run.command(overrides))
    short = _short_window(run, row, window, clip)
    if short is not None:
        return short
    if clip is not None and clip[1] > run.cfg.advise.clip_ratio_high:
        extend = [*overrides, "window.prompt=40000", "window.response=91072"]
        return Advice(*row, "scale", f"responses hit the window: {CLIP[0]} = {clip[1]:.2f} > "
                      f"{run.cfg.advise.clip_ratio_high}; a longer window needs more trainer GPUs",
                      extend, run.command(extend))
    if window is None and clip is None:
        return Advice(*row, "cannot judge", f"window unknown (no liverl.yaml) and {CLIP[0]} not logged")
    return Advice(*row, "stay", f"window {window if window is not None else 'unknown'}{clip_note}")


def _short_window(run: _Run, row: tuple[str, str, str], window: int | None,
                  clip: tuple[str, float] | None) -> Advice | None:
    """Responses hit a short (smoke-size) window: lengthen it on this topology before adding trainer nodes."""
    small = run.cfg.advise.get("one_node_window")
    if clip is None or clip[1] <= run.cfg.advise.clip_ratio_high or window is None or not small or window >= small:
        return None
    prompt, response = run.get("window.prompt"), run.get("window.response")
    longer = [f"window.response={min(2 * response, small - prompt)}"]
    return Advice(*row, "stay", f"responses hit a short window ({window} tokens): {CLIP[0]} = {clip[1]:.2f}; "
                  f"lengthen it on this topology first (one trainer node holds up to {small})",
                  longer, run.command(longer))


def advise_scaffold(run: _Run) -> Advice:
    """A different harness -> another scaffold through the agent import path."""
    row = ("scaffold", "You need a different agent harness than claude-code",
           "A different scaffold via HARBOR_AGENT_IMPORT_PATH")
    scaffold = run.get("scaffold.name")
    key = run.stream.first(ENV_SETUP)
    share = None if key is None else recent_reason_share(run.stream, "env_setup_failed", RECENT)
    if share and scaffold == "ohsdk":
        return Advice(*row, "already", f"on scaffold=ohsdk yet env_setup_failed is {share:.0%} of trajectories: "
                      "keep the agent name null so harbor loads the image-mounted runtime")
    if share:
        overrides = ["scaffold=ohsdk"]
        return Advice(*row, "scale", f"env_setup_failed is {share:.0%} of trajectories on "
                      f"scaffold={scaffold or 'unknown'}: the in-pod agent install fails (no egress?); the "
                      "OpenHands-SDK scaffold mounts its runtime from the image", overrides, run.command(overrides))
    evidence = f"scaffold={scaffold or 'unknown'}; the harness is your choice, no metric asks for a change"
    if key is None:
        evidence += f" ({ENV_SETUP} not logged)"
    return Advice(*row, "stay", evidence)


ROWS = (advise_moe, advise_rollout_bound, advise_window, advise_scaffold)


def advise(run_dir: str | Path, cfg: DictConfig | None = None, memory: dict | None = None) -> list[Advice]:
    """Judge every row of the table on this run (metrics may be absent: the config alone is used); `memory` is the
    memory model's prediction for its plan (python -m liverl.memory --json), when the caller has one."""
    cfg = cfg or load_thresholds()
    path = Path(run_dir)
    reader = StreamReader(path, *wanted_keys(cfg))
    reader.poll()
    base = path if path.is_dir() else path.parent
    config = load_run_config(base)
    if not reader.files and not config:
        raise RunNotFoundError(f"{path}: neither liverl.yaml nor a metric stream (metrics.jsonl, "
                               "metrics.<N>.jsonl, train.log) found")
    return [row(_Run(config, reader.stream(), cfg, memory)) for row in ROWS]
