"""Before training starts, one tiny Ray task per alive node proves the node sees the run directory (it reads a token
the launcher wrote, and writes one the launcher reads back) and reports what the run needs from its image: the vLLM
version (R3 needs >= 0.22), the trainer's imports, and its GPU's compute capability with flashinfer (a GatedDeltaNet
model's prefill: rule gdn-prefill-flashinfer) and with triton, flash-linear-attention, tilelang and nvcc (its backward:
rule gdn-triton-hopper), and what makes it the same as the launcher (LiveRL's version
and commit, vLLM's version, and where the scaffold runs trials, Harbor's Python and the agent's CLI:
liverl.launch.node_facts); a node that differs is refused by IP and id (exit 3). verl places agent-loop workers on
every node with CPUs (experimental/agent_loop/agent_loop.py:1212-1222), each reading agent_loop_config_path from
its own disk (534-537), and every trainer rank writes checkpoint shards under RUN_DIR/checkpoints. `check_nodes`
refuses a launch naming the node (liverl.launch.local runs it after ray_preflight). Each node also reports its GPUs
and physical memory: memory-fit and host-memory-fit are judged again against them
(liverl.guardrails.memory_at_launch), and run.json's `gpu` records the GPU found (an embedded Ray, "local", is this
machine: judged without a Ray task).
"""

from __future__ import annotations

import secrets
import shutil
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from liverl.errors import CONFIG_ERROR_EXIT, Problem
from liverl.guardrails.framework import Ctx, apply_waivers
from liverl.guardrails.gpu_probe import (
    GDN_BACKEND_KEY,
    capability_of,
    gdn_kernel_finding,
    gdn_kernel_problem,
    gdn_prefill_finding,
    gdn_prefill_problem,
    gpu_rows_here,
    gpus_here,
    host_memory_here,
    plan_env,
    training_kernel_facts,
    version_tuple,
)
from liverl.guardrails.memory_at_launch import NodeMemory, memory_problems, probed_gpu
from liverl.guardrails.verl_keys import IMPORT_REASONS, ROLLOUT_REPLAY_KEY, VLLM_R3_MIN, trainer_imports
from liverl.launch.node_facts import differences, node_facts, scaffold_runs_trials
from liverl.launch.ray_auth import attached
from liverl.launch.refusal import EXIT_NO_RESOURCES, LaunchRefused
from liverl.rundir import LIVERL_YAML, VERL_YAML, Plan, update_run

PROBE_DIR = ".liverl_node_probe"
PROBE_TIMEOUT_S = 120
NODE_RULES = ("shared-run-dir", "node-mismatch")  # a node, not the plan, is wrong: exit 3


@dataclass
class NodeReport:
    node_id: str
    ip: str
    saw_token: bool
    wrote: bool
    error: str | None = None
    vllm: str | None = None
    flashinfer: str | None = None
    cutlass_cu13: str | None = None
    capability: str | None = None  # the first GPU's compute capability ("9.0")
    triton: str | None = None  # triton, fla, tilelang, nvcc: the trainer's GatedDeltaNet backward (gdn-triton-hopper)
    fla: str | None = None
    tilelang: bool = False
    tilelang_off: str | None = None
    nvcc: bool = False
    missing: list[str] = field(default_factory=list)
    gpus: list[tuple[str, int]] = field(default_factory=list)  # (device name, bytes torch can use)
    host_bytes: int | None = None
    liverl: str | None = None
    commit: str | None = None
    harbor: str | None = None
    cli: str | None = None

    @property
    def where(self) -> str:
        return f"node {self.ip} ({self.node_id[:12]})"


def probe_here(
    probe_dir: str, token: str, node_id: str, ip: str, modules: tuple[str, ...], harbor: dict | None = None
) -> dict[str, Any]:
    """What runs on each node: read the launcher's token, write this node's, report the image's facts."""
    out = facts_here(probe_dir, token, node_id, ip, modules, harbor)
    directory = Path(probe_dir)
    try:
        out["saw_token"] = (directory / "launcher.token").read_text() == token
        (directory / f"node-{node_id}.token").write_text(token + node_id)
        out["wrote"] = True
    except OSError as exc:
        out["error"] = f"{type(exc).__name__}: {exc}"
    return out


def facts_here(
    probe_dir: str, token: str, node_id: str, ip: str, modules: tuple[str, ...], harbor: dict | None = None
) -> dict[str, Any]:
    """The probe without the run directory's token exchange: the image's facts, its GatedDeltaNet backward's kernel
    stack (the launcher compares none of it), GPUs and host memory (the cluster check, which has no shared run
    directory to test)."""
    out: dict[str, Any] = {"node_id": node_id, "ip": ip, "saw_token": False, "wrote": False}
    out.update(node_facts(modules, harbor))
    out.update(training_kernel_facts())  # in the task's runtime env: the plan's, as verl's workers get it
    rows = gpu_rows_here()
    out["gpus"], out["host_bytes"] = [(name, size) for name, size, _ in rows], host_memory_here()
    out["capability"] = rows[0][2] if rows else None
    return out


def probe_nodes(
    address: str, run_dir: Path, modules: tuple[str, ...], task: Callable | None = None, harbor: dict | None = None,
    env: dict[str, str] | None = None,
) -> list[NodeReport]:
    """Run the probe on every alive node with CPUs (where verl places agent-loop workers) of the cluster at
    `address`, in `env` (the plan's runtime env, which verl's workers get: gpu_probe.plan_env); `task` replaces
    probe_here (tests: a node with its own disk). Ray is shut down afterwards, so verl's own ray.init applies its
    runtime environment."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    directory = run_dir.resolve() / PROBE_DIR
    directory.mkdir(parents=True, exist_ok=True)
    token = secrets.token_hex(16)
    (directory / "launcher.token").write_text(token)
    remote = ray.remote(num_cpus=0)(task or probe_here)
    in_env = {"runtime_env": {"env_vars": env}} if env else {}
    with attached(address):
        nodes = [n for n in ray.nodes() if n.get("Alive") and n["Resources"].get("CPU", 0) > 0]
        refs = [
            remote.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False),
                           **in_env).remote(
                str(directory), token, n["NodeID"], n["NodeManagerAddress"], modules, harbor
            )
            for n in nodes
        ]
        raw = ray.get(refs, timeout=PROBE_TIMEOUT_S)
    reports = [NodeReport(**r) for r in raw]
    for r in reports:  # the launcher reads what each node wrote
        node_file = directory / f"node-{r.node_id}.token"
        r.wrote = r.wrote and node_file.is_file() and node_file.read_text() == token + r.node_id
    shutil.rmtree(directory, ignore_errors=True)
    return reports


def _disk_problem(r: NodeReport, where: str, run_dir: Path) -> Problem:
    seen = "cannot read the token the launcher wrote" if not r.saw_token else "wrote a token the launcher cannot read"
    return Problem(
        key="run_dir",
        got=str(run_dir),
        rule="shared-run-dir",
        message=f"{where} does not share the run directory: it {seen}{f' ({r.error})' if r.error else ''}; its "
        "agent-loop workers would not find agent_loop.yaml and its trainer ranks would write checkpoint shards "
        "nobody else sees",
        fix="put the run directory on a disk every node mounts at the same path (hydra.run.dir=/shared/...)",
    )


def _vllm_problem(r: NodeReport, where: str) -> Problem:
    need = ".".join(map(str, VLLM_R3_MIN))
    return Problem(
        key="rollout image",
        got=r.vllm or "not installed",
        rule="vllm-r3-version",
        message=f"{where}: R3 router replay needs vLLM >= {need} where the rollout runs; verl raises after the "
        "nodes are allocated (workers/rollout/vllm_rollout/vllm_async_server.py:437-450)",
        fix="install vllm>=0.22 in the image (verl 0.9.1's vllm extra pins 0.24.0), or router_replay=disabled",
    )


def _imports_problem(r: NodeReport, where: str) -> Problem:
    return Problem(
        key="training image",
        got=",".join(r.missing),
        rule="trainer-imports",
        message=f"{where}: the trainer imports {', '.join(r.missing)}: "
                + "; ".join(IMPORT_REASONS.get(m, ("an import of the plan",))[0] for m in r.missing),
        fix="; ".join(IMPORT_REASONS[m][1] for m in r.missing if m in IMPORT_REASONS) or "make install on every node",
    )


def _mismatch_problem(r: NodeReport, where: str, diffs: list[str]) -> Problem:
    return Problem(
        key="cluster node",
        got="; ".join(diffs),
        rule="node-mismatch",
        message=f"{where} differs from the launcher: it would run other code or tools than the ones checked here",
        fix="bring the node to the launcher's commit and environment (git checkout + make install on it, or one "
        "shared checkout), or remove it from the cluster (ray stop on it)",
    )


def reference(launcher: dict[str, Any], reports: list[NodeReport]) -> dict[str, Any]:
    """The facts every node must have: the launcher's; for what the launcher lacks (no vLLM on a CPU login node, no
    .venv-harbor where no trial runs), what most nodes have."""
    ref = dict(launcher)
    for key in ("vllm", "harbor", "cli"):
        if ref.get(key) is None:
            seen = Counter(getattr(r, key) for r in reports if getattr(r, key) is not None)
            ref[key] = seen.most_common(1)[0][0] if seen else None
    return ref


def judge(
    reports: list[NodeReport], verl_cfg: DictConfig, run_dir: Path, launcher: dict[str, Any] | None = None,
    trials: bool = False, linear_attention: bool = False,
) -> list[Problem]:
    """FATAL problems naming each node that cannot host its part of the run (launcher: this process's facts,
    liverl.launch.node_facts; None compares nothing; linear_attention: the model has GatedDeltaNet layers, whose
    prefill each node's vLLM runs and whose backward the trainer's nodes run)."""
    problems = []
    r3 = bool(OmegaConf.select(verl_cfg, ROLLOUT_REPLAY_KEY, default=False))
    backend = OmegaConf.select(verl_cfg, GDN_BACKEND_KEY, default=None)
    ref = reference(launcher, reports) if launcher is not None else None
    for r in reports:
        where = r.where
        diffs = differences(vars(r), ref, trials) if ref is not None else []
        if diffs:
            problems.append(_mismatch_problem(r, where, diffs))
        if not (r.saw_token and r.wrote):
            problems.append(_disk_problem(r, where, run_dir))
        if r3 and (r.vllm is None or version_tuple(r.vllm) < VLLM_R3_MIN):
            problems.append(_vllm_problem(r, where))
        if r.missing:
            problems.append(_imports_problem(r, where))
        capability = capability_of(r.capability)
        gdn = linear_attention and gdn_prefill_problem(capability, r.vllm, r.flashinfer, backend, r.cutlass_cu13)
        if gdn:
            problems.append(gdn_prefill_finding(where, gdn, backend))
        # every node: verl places the trainer's workers on any GPU node of the cluster
        backward = linear_attention and gdn_kernel_problem(capability, r.triton, r.fla, r.tilelang, r.nvcc,
                                                           r.tilelang_off)
        if backward:
            problems.append(gdn_kernel_finding(where, backward))
    return problems


def node_memory(reports: list[NodeReport]) -> list[NodeMemory]:
    return [NodeMemory(r.where, [tuple(g) for g in r.gpus], r.host_bytes) for r in reports]


def node_blockers(
    run_dir: Path, address: str, mode: str, task: Callable | None = None, harbor: dict | None = None
) -> list[Problem]:
    """Probe the cluster a plan launches on and judge it; an embedded Ray ("local") is this machine alone, whose
    GPUs and memory are read here. run.json's `gpu` becomes the probed GPU."""
    cfg, verl_cfg = OmegaConf.load(run_dir / LIVERL_YAML), OmegaConf.load(run_dir / VERL_YAML)
    if address == "local":
        problems, nodes = [], [NodeMemory("this machine", gpus_here(), host_memory_here())]
    else:
        modules = trainer_imports(verl_cfg, mode)
        launcher = node_facts(modules, harbor)  # before Ray starts: nothing between the probe and verl's ray.init
        reports = probe_nodes(address, run_dir, modules, task, harbor, plan_env(verl_cfg))
        gdn = Ctx(cfg, verl_cfg, {}, "").linear_attention  # the checkpoint's layers when it is on this disk
        problems = judge(reports, verl_cfg, run_dir, launcher, scaffold_runs_trials(harbor), gdn)
        nodes = node_memory(reports)
    gpu = probed_gpu(nodes, cfg)
    if gpu:
        update_run(run_dir, gpu=gpu)
    return problems + memory_problems(cfg, verl_cfg, nodes)


def check_nodes(plan: Plan, address: str) -> None:
    """Every node sees the run directory, has what the run imports, is the same as the launcher and has GPUs and
    memory the plan fits; refuse naming the node (exit 3 when a node cannot share the run directory or differs, 2
    otherwise)."""
    cfg = OmegaConf.load(plan.run_dir / LIVERL_YAML)
    harbor = OmegaConf.to_container(cfg.scaffold.harbor, resolve=True) if "harbor" in cfg.scaffold else None
    blocking, _ = apply_waivers(node_blockers(plan.run_dir, address, cfg.mode.name, harbor=harbor), cfg.liverl.allow)
    if blocking:
        code = EXIT_NO_RESOURCES if any(p.rule in NODE_RULES for p in blocking) else CONFIG_ERROR_EXIT
        raise LaunchRefused("\n".join(str(p) for p in blocking) + "\nNothing was launched.", code)


# what `python -m liverl.cluster check` asks of every node without a plan: verl and the sync trainer's imports
CLUSTER_MODULES = ("verl", "transfer_queue")


def cluster_mismatches(address: str, harbor: dict | None = None) -> list[str]:
    """Each node of the cluster that differs from this one (scripts/ray_cluster.sh, as a node joins), one line each
    naming its IP and id; [] when all are the same."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="liverl-cluster-check-") as tmp:  # no run directory here: facts only
        reports = probe_nodes(address, Path(tmp), CLUSTER_MODULES, task=facts_here, harbor=harbor)
    ref = reference(node_facts(CLUSTER_MODULES, harbor), reports)
    lines = []
    for r in reports:
        diffs = differences(vars(r), ref, scaffold_runs_trials(harbor), who="this node")
        if diffs:
            lines.append(f"{r.where}: " + "; ".join(diffs))
    return lines
