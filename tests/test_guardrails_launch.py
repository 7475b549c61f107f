"""Guardrails that act at launch: the kernel check where the trainer runs, and the smoke ledger."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import ray
from conftest import DATA, run_cli
from omegaconf import OmegaConf
from raytest import ray_head
from test_launch_local import recording_task_runner

from liverl.guardrails.framework import Ctx
from liverl.guardrails.ledger import ledger_path
from liverl.launch.local import run_plan
from liverl.recipe.build import build
from liverl.recipe.compose import compose_liverl


def plan(tmp_path: Path, *overrides: str) -> Path:
    tmp_path.mkdir(parents=True, exist_ok=True)
    run_dir = tmp_path / "run"
    proc = run_cli([*DATA, *overrides, "launcher=dryrun", f"hydra.run.dir={run_dir}"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    return run_dir


def ctx(*overrides: str, verl=None) -> Ctx:
    """A rule context of the model groups' word (no checkpoint on this disk) and a verl config."""
    return Ctx(compose_liverl(list(overrides)), verl if verl is not None else OmegaConf.create({}), {}, "")


def test_affected_kernel_stack_is_refused_before_training(tmp_path: Path, monkeypatch) -> None:
    run_dir = plan(tmp_path, "model=qwen35")
    # test double for the GPU: this machine has none, so report an H200 with torch 2.11's Triton 3.6 stack
    facts = ((9, 0), "3.6.0", "0.5.2", False, True)
    monkeypatch.setattr("liverl.guardrails.gpu_probe.local_kernel_facts", lambda env=None: facts)
    assert run_plan(run_dir, address="127.0.0.1:1") == 2  # refused before Ray is even contacted
    run = json.loads((run_dir / "run.json").read_text())
    assert run["status"] == "refused" and "[gdn-triton-hopper]" in run["reason"] and "tilelang" in run["reason"]


def test_gdn_prefill_without_flashinfer_is_refused_at_launch(tmp_path: Path, monkeypatch) -> None:
    from liverl.guardrails.at_launch import launch_blockers

    # test double for the GPU image: an H100 with vLLM 0.24.0 and no flashinfer (the fifteenth GPU session's host)
    monkeypatch.setattr("liverl.guardrails.gpu_probe.local_capability", lambda: (9, 0))
    monkeypatch.setattr("liverl.guardrails.gpu_probe.dist_version", {"vllm": "0.24.0"}.get)
    auto = plan(tmp_path / "auto", "model=qwen35")
    assert "gdn-prefill-flashinfer" in [p.rule for p in launch_blockers(auto, "local")]
    # on a cluster each node is judged by the per-node probe (tests/test_node_probe.py), which names it
    assert "gdn-prefill-flashinfer" not in [p.rule for p in launch_blockers(auto, "10.0.0.1:6379")]
    triton = plan(tmp_path / "triton", "model=qwen35",
                  "verl.actor_rollout_ref.rollout.engine_kwargs.vllm.gdn_prefill_backend=triton")
    assert "gdn-prefill-flashinfer" not in [p.rule for p in launch_blockers(triton, "local")]  # the fix builds, holds
    moe = plan(tmp_path / "moe", "model=qwen3_30b_a3b")  # no GatedDeltaNet layer
    assert "gdn-prefill-flashinfer" not in [p.rule for p in launch_blockers(moe, "local")]


def _version(text: str | None) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", text or "")[:3])


def test_the_real_kernel_check_answers_for_this_machine() -> None:
    # holds on a CPU host (no capability, nothing refused) and on a GPU host (the device's capability; refused
    # exactly on the stack flash-linear-attention 0.5.2 itself refuses: Hopper, Triton in [3.4.0, 3.7.1), no tilelang)
    import torch

    from liverl.guardrails.gpu_probe import check_kernels_here, local_kernel_facts

    capability, triton, fla, tilelang, nvcc, off = local_kernel_facts()
    assert capability == (tuple(torch.cuda.get_device_capability(0)) if torch.cuda.is_available() else None)
    affected = (capability is not None and capability[0] == 9 and _version(fla) == (0, 5, 2)
                and (3, 4, 0) <= _version(triton) < (3, 7, 1) and not (tilelang and nvcc and not off))
    problem = check_kernels_here(ctx("model=qwen35"))
    assert (problem is not None) == affected, (capability, triton, fla, tilelang, problem)
    assert problem is None or problem.rule == "gdn-triton-hopper"
    assert check_kernels_here(ctx("model=qwen3_30b_a3b")) is None  # no linear attention: no GDN kernel


def test_the_real_prefill_check_answers_for_this_machine() -> None:
    # the known outcomes: no GPU (this CPU machine), nothing refused; the GPU host (an H100 or H200 with vLLM 0.24.0
    # and no flashinfer: the wheelhouse leaves vLLM's optional kernels out), a Qwen3.5 plan refused
    import torch

    from liverl.guardrails.gpu_probe import check_rollout_kernels_here, dist_version

    problem = check_rollout_kernels_here(ctx("model=qwen35"))
    if not torch.cuda.is_available():
        assert problem is None
    elif torch.cuda.get_device_capability(0) == (9, 0) and dist_version("vllm") == "0.24.0" and not dist_version(
            "flashinfer-python"):
        assert problem is not None and problem.rule == "gdn-prefill-flashinfer", problem
        triton = OmegaConf.create({"actor_rollout_ref": {"rollout": {"engine_kwargs": {"vllm": {
            "gdn_prefill_backend": "triton"}}}}})
        assert check_rollout_kernels_here(ctx("model=qwen35", verl=triton)) is None


@pytest.mark.ray
def test_a_passing_smoke_run_unlocks_the_official_batch(tmp_path: Path, restore_environ) -> None:
    ledger_path().unlink(missing_ok=True)
    with ray_head(num_gpus=8) as address:
        official = compose_liverl(
            [*DATA, "model=qwen25_0p5b", "batch=official", "launcher=local", f"launcher.address={address}"]
        )
        with pytest.raises(Exception) as refused:
            build(official, launching=True)
        assert "[smoke-before-official]" in str(refused.value)
        official_plan = plan(tmp_path / "official", "model=qwen25_0p5b", "batch=official")  # a dryrun plan...
        assert run_plan(official_plan, address=address) == 2  # ...is still judged as a launch when it runs
        assert "[smoke-before-official]" in json.loads((official_plan / "run.json").read_text())["reason"]
        run_dir = plan(tmp_path, "model=qwen25_0p5b", "batch=smoke")
        try:
            assert run_plan(run_dir, address=address, task_runner_class=recording_task_runner(tmp_path / "s.json")) == 0
        finally:
            ray.shutdown()
        ledger = json.loads(ledger_path().read_text())
        assert ledger[f"claude_code|1node|fsdp|{address}"]["run_dir"] == str(run_dir)
        b = build(official, launching=True)
        assert not [f for f in b.findings if f.rule == "smoke-before-official"]
        # the ledger key holds the engine: an FSDP smoke does not unlock a VeOmni official run
        other_engine = compose_liverl([*DATA, "model=qwen25_0p5b", "batch=official", "engine=veomni",
                                       "launcher=local", f"launcher.address={address}"])
        with pytest.raises(Exception) as still_refused:
            build(other_engine, launching=True)
        assert "[smoke-before-official]" in str(still_refused.value) and "|veomni|" in str(still_refused.value)
