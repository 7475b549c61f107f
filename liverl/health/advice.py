"""When to scale: the "When to scale" table of the user's "Scaling Up" page applied to one run's config and metrics."""

from __future__ import annotations

import shlex
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig, OmegaConf

from liverl.health import remedies
from liverl.health.analysis import load_run_config, load_thresholds
from liverl.health.catalogue import CLIP, ENV_SETUP, GEN_TIME, IDLE, MEMORY, STEP_TIME, wanted_keys
from liverl.health.checks_scale import sync_gen_share
from liverl.health.remedies import Remedy
from liverl.health.run_end import GPU_KEYS_READ, out_of_memory, plan_gpu_memory
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
    verdict: str  # scale | stay | already | cannot judge | did not fit | fix first
    evidence: str
    overrides: list[str] = field(default_factory=list)
    command: str | None = None
    # the smoke run to do first, when the command's scaffold x topology x engine has no smoke pass on record
    smoke_command: str | None = None


@dataclass
class RunContext:
    """What liverl.advise learned about the run besides its config and metrics (the CLI fills it)."""

    # the memory model's prediction for the plan on the run's GPU (None: no plan, or the GPU is unknown)
    memory: dict | None = None
    # (GB per GPU, where it was read) from the plan, or None: never assumed
    gpu: tuple[float, str] | None = None
    # why the run ended, when it ran out of GPU memory (run.json / traceback.txt), else None
    oom: str | None = None
    # the run's own overrides beyond its group choices (model.path, data, window, verl.*), carried into commands
    carried: list[str] = field(default_factory=list)
    # the environment the run's commands need, e.g. {"USE_NEW_VERL": "1", "NEW_VERL_DIR": "/the/run's/checkout"}
    env: dict[str, str] = field(default_factory=dict)
    # whether a smoke pass is on record for {"scaffold": .., "topology": .., "engine": ..} (None: not known)
    smoke_passed: Callable[[dict[str, str]], bool] | None = None


class _Run:
    """The run's config and recent metric readings, read defensively."""

    def __init__(self, config: DictConfig, stream: Stream, cfg: DictConfig, ctx: RunContext | None = None) -> None:
        self.config, self.stream, self.cfg = config, stream, cfg
        self.ctx = ctx or RunContext()
        self.memory = self.ctx.memory

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

    def command(self, overrides: list[str]) -> str:
        """The launch line as it runs: the environment it needs, this run's group choices and own overrides, with
        ``overrides`` applied."""
        return self._line(self._args(overrides))

    def smoke_first(self, overrides: list[str]) -> str | None:
        """The smoke command to run before ``command(overrides)``, when its target has no smoke pass on record."""
        args = self._args(overrides)
        chosen = dict(a.split("=", 1) for a in args if a.split("=", 1)[0] in GROUPS)
        if chosen.get("batch") != "official" or self.ctx.smoke_passed is None:
            return None
        if self.ctx.smoke_passed({g: chosen.get(g, "") for g in ("scaffold", "topology", "engine")}):
            return None
        smoke = [a for a in args if a.split("=", 1)[0] not in ("batch", "total_training_steps")] + ["batch=smoke"]
        return self._line(smoke)

    def _args(self, overrides: list[str]) -> list[str]:
        chosen = {g: self.get(f"{g}.name") for g in GROUPS}
        args = [f"{g}={v}" for g, v in chosen.items() if v is not None] + list(self.ctx.carried)
        replaced = {o.split("=", 1)[0] for o in overrides}
        return [a for a in args if a.split("=", 1)[0] not in replaced] + overrides

    def _line(self, args: list[str]) -> str:
        env = "".join(f"{k}={shlex.quote(v)} " for k, v in self.ctx.env.items())
        return f"{env}python -m liverl.train {' '.join(shlex.quote(a) for a in args)}"

    def advice(self, row: tuple[str, str, str], verdict: str, evidence: str, remedy: Remedy | None = None) -> Advice:
        """A row with the remedy's overrides, its command as it runs and the smoke command to run first."""
        if remedy is None or not remedy.overrides:
            return Advice(*row, verdict, evidence)
        o = remedy.overrides
        return Advice(*row, verdict, evidence, list(o), self.command(o), self.smoke_first(o))

    def gpu_text(self) -> str:
        gb, source = self.ctx.gpu or (None, "")
        return f"{gb:.0f} GB per GPU ({source})" if gb else "unknown"


def advise_moe(run: _Run) -> Advice:
    """Large MoE whose trainer + vLLM do not co-fit -> VeOmni engine + a dedicated rollout node."""
    row = ("moe_cofit", "Policy is a large MoE and trainer + vLLM won't co-fit",
           "veomni engine + a dedicated rollout node")
    moe, engine, rollout_nodes = run.get("model.moe"), run.get("engine.name"), run.get("topology.rollout_nnodes")
    lever = remedies.moe_cofit(run.get)
    if run.ctx.oom:
        lever = remedies.did_not_fit(run.get, _memory_fix(run.memory))
        return run.advice(row, "did not fit", f"the run ended in CUDA out of memory ({run.ctx.oom}). {lever.text}",
                          lever)
    if moe is None:
        return run.advice(row, "cannot judge", "model.moe unknown (no liverl.yaml)", lever)
    if moe is False:
        return Advice(*row, "stay", f"dense policy ({run.get('model.name')}): the MoE co-fit question does not arise")
    if engine == "veomni" and isinstance(rollout_nodes, int) and rollout_nodes >= 1:
        return Advice(*row, "already", f"MoE on engine=veomni with {rollout_nodes} rollout node(s)")
    peak, predicted = run.recent(MEMORY, reduce="max"), _predicted(run.memory)
    budget = run.ctx.gpu[0] if run.ctx.gpu else None
    if budget is None:
        return run.advice(row, "cannot judge", f"MoE on engine={engine} without a rollout node, but the GPU's memory "
                          f"is unknown: the plan records none ({GPU_KEYS_READ}); pass --set advise.gpu_memory_gb=N"
                          + (f" (peak {peak[0]} = {peak[1]:.0f} GB)" if peak else ""), lever)
    if peak is None and predicted is not None:
        fits, text = predicted
        if not fits:
            return run.advice(row, "scale", f"{text}: trainer + vLLM do not co-fit", lever)
        return Advice(*row, "stay", f"MoE predicted to fit: {text}")
    if peak is None:
        return run.advice(row, "cannot judge", f"MoE on engine={engine} without a rollout node, but no GPU memory "
                          f"metric ({MEMORY[0]}): scale if trainer + vLLM run out of memory", lever)
    key, gb = peak
    also = f" ({predicted[1]})" if predicted else ""
    if gb >= run.cfg.advise.fit_share * budget:
        return run.advice(row, "scale", f"MoE peak {key} = {gb:.0f} GB of {run.gpu_text()}: trainer + vLLM do not "
                          f"co-fit{also}", lever)
    return Advice(*row, "stay", f"MoE fits: peak {key} = {gb:.0f} GB of {run.gpu_text()}{also}")


def _memory_fix(memory: dict | None) -> str | None:
    """The memory model's cheapest fix for the plan (trainer first, then rollout), when it predicts one."""
    if not memory:
        return None
    t, r = memory["trainer"], memory["rollout"]
    return t.get("fix") if not t["fits"] else (r.get("fix") if not r["fits"] else None)


def _predicted(memory: dict | None) -> tuple[bool, str] | None:
    """(fits, evidence) from the memory model's prediction: trainer and vLLM share each GPU of a colocated run."""
    if not memory:
        return None
    t, r, gib = memory["trainer"], memory["rollout"], 2**30
    text = (f"predicted trainer GPU peak {t['peak_bytes'] / gib:.0f} of {memory['gpu_bytes'] / gib:.0f} GiB "
            f"({t['peak_phase']}), vLLM {r['full_window_sequences']} full-window sequences per replica")
    return bool(t["fits"] and r["fits"]), text


def advise_rollout_bound(run: _Run) -> Advice:
    """Trainer idle waiting on rollouts -> fully async (or, already async, more concurrency or rollout capacity)."""
    row = ("rollout_bound", "Trainer GPUs idle most of the step waiting on rollouts (idle_ratio high)",
           "Fully-async trainer/rollout decoupling")
    high = run.cfg.idle_ratio.high
    idle = run.recent(IDLE, settled=True)
    mode = run.get("topology.mode")
    if mode == "fully_async" or (mode is None and run.stream.first(*IDLE) is not None):
        if idle is None:
            logged = run.stream.first(*IDLE) is not None
            return Advice(*row, "cannot judge", f"fully async, but {IDLE[0]} is "
                          + (f"logged on too few steps{_short(run, IDLE)}" if logged else "not logged"))
        if idle[1] > high:
            lever = remedies.rollout_capacity(run.get)
            return run.advice(row, "scale", f"already fully async, and {IDLE[0]} = {idle[1]:.2f} > {high} over the "
                              f"last {RECENT} steps: still rollout-bound. {lever.fix()}", lever)
        return Advice(*row, "already", f"fully async; {IDLE[0]} = {idle[1]:.2f} (<= {high})")
    share = sync_gen_share(run.stream, run.cfg.advise.min_settled_steps)
    if share is None:
        return Advice(*row, "cannot judge", f"sync run without {GEN_TIME[0]} and {STEP_TIME[0]}"
                      f"{_short(run, GEN_TIME, STEP_TIME)}")
    if share > run.cfg.advise.gen_share_high:
        return run.advice(row, "scale", f"sync run spends {share:.0%} of each step generating rollouts "
                          f"({GEN_TIME[0]} / {STEP_TIME[0]}): the trainer waits on rollouts",
                          remedies.fully_async(run.get))
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
    """Window toward 131k -> multi-node FSDP (more trainer GPUs + FSDP2 CPU offload)."""
    row = ("long_window", "Context window must reach ~131k (40k prompt + 91k response)",
           "Multi-node FSDP (more trainer GPUs + CPU offload)")
    prompt, response = run.get("window.prompt"), run.get("window.response")
    trainers = run.get("topology.trainer_nnodes")
    if isinstance(trainers, int) and trainers >= 2:
        return Advice(*row, "already", f"{trainers} trainer nodes (topology={run.get('topology.name')})")
    window = prompt + response if isinstance(prompt, int) and isinstance(response, int) else None
    clip = run.recent(CLIP)
    clip_note = f"; {CLIP[0]} = {clip[1]:.2f}" if clip else ""
    if window is not None and window >= run.cfg.advise.long_window:
        return run.advice(row, "scale", f"window {prompt} + {response} = {window} tokens on "
                          f"{trainers if trainers is not None else '?'} trainer node(s){clip_note}",
                          Remedy(["topology=3node"], "the 3-node layout"))
    if clip is not None and clip[1] > run.cfg.advise.clip_ratio_high:
        lever = remedies.longer_window(run.get, run.cfg.advise.get("one_node_window"))
        short = lever.overrides[0].startswith("window.response=")
        return run.advice(row, "stay" if short else "scale", f"responses hit the window: {CLIP[0]} = {clip[1]:.2f} > "
                          f"{run.cfg.advise.clip_ratio_high}. {lever.text}", lever)
    if window is None and clip is None:
        return Advice(*row, "cannot judge", f"window unknown (no liverl.yaml) and {CLIP[0]} not logged")
    return Advice(*row, "stay", f"window {window if window is not None else 'unknown'}{clip_note}")


def advise_scaffold(run: _Run) -> Advice:
    """A different harness -> another scaffold through the agent import path; env-setup failures -> the install."""
    row = ("scaffold", "You need a different agent harness than claude-code",
           "A different scaffold via HARBOR_AGENT_IMPORT_PATH")
    scaffold = run.get("scaffold.name")
    key = run.stream.first(ENV_SETUP)
    share = None if key is None else recent_reason_share(run.stream, "env_setup_failed", RECENT)
    if share:
        lever = remedies.env_setup(run.get)
        said = f"env_setup_failed is {share:.0%} of trajectories on scaffold={scaffold or 'unknown'}: {lever.fix()}"
        if scaffold == "ohsdk":
            return Advice(*row, "already", said)
        return run.advice(row, "fix first", said, remedies.other_harness(run.get))
    howto = remedies.other_harness(run.get)
    evidence = (f"scaffold={scaffold or 'unknown'}; no metric asks for a change: the harness is your choice. "
                f"{howto.text}")
    if key is None:
        evidence += f" ({ENV_SETUP} not logged)"
    if scaffold != "claude_code":  # already another harness (or a loop with no agent harness at all)
        return Advice(*row, "stay", evidence)
    return run.advice(row, "stay", evidence, howto)


ROWS = (advise_moe, advise_rollout_bound, advise_window, advise_scaffold)


def advise_rows(run_dir: str | Path, cfg: DictConfig | None = None, ctx: RunContext | None = None) -> list[Advice]:
    """Judge every row of the table on this run (metrics may be absent: the config alone is used); ``ctx`` is what
    liverl.advise learned besides (the memory model's prediction on the run's GPU, how the run ended, its own
    overrides and environment, the smoke ledger)."""
    cfg = cfg or load_thresholds()
    path = Path(run_dir)
    reader = StreamReader(path, *wanted_keys(cfg))
    reader.poll()
    base = path if path.is_dir() else path.parent
    config = load_run_config(base)
    if not reader.files and not config:
        raise RunNotFoundError(f"{path}: neither liverl.yaml nor a metric stream (metrics.jsonl, "
                               "metrics.<N>.jsonl, train.log) found")
    ctx = ctx or RunContext()
    if ctx.gpu is None:
        ctx.gpu = plan_gpu_memory(base, config, cfg)
    if ctx.oom is None:
        ctx.oom = out_of_memory(base)
    return [row(_Run(config, reader.stream(), cfg, ctx)) for row in ROWS]
