"""What the memory model judges a plan against: the `gpu` group (conf/gpu/*, h200 by default, recorded in run.json),
the GPUs and host memory a launch finds (re-judged: a plan for H200 launched on H100s is refused), the allocator's
headroom over the predicted allocated peak, host memory under offload (rule host-memory-fit), and the rollout KV
cache against the sequences kept in flight (rule rollout-kv-demand). Real Hydra composition and verl's config."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from liverl.errors import ConfigError
from liverl.guardrails import memory_inputs
from liverl.guardrails.memory_at_launch import NodeMemory, gpu_group, memory_problems, probed_gpu
from liverl.launch.dispatch import plan_and_launch
from liverl.memory import arch, host, plan, terms
from liverl.recipe.build import build
from liverl.recipe.compose import compose_liverl
from liverl.rundir import recorded_gpu, recorded_gpu_memory_gb

SYNC = "experiment=sync_1node_cc"  # Qwen3.5-35B-A3B, 8 GPUs, FSDP2 CPU offload
H100 = ("NVIDIA H100 80GB HBM3", 84_942_979_072)
H200 = ("NVIDIA H200", 150_109_880_320)


def _built(*overrides: str):
    cfg = compose_liverl(list(overrides))
    return build(cfg, structure_only=True)


def _refusal(*overrides: str) -> str:
    with pytest.raises(ConfigError) as err:
        _built(*overrides)
    return str(err.value)


# --- the gpu group


@pytest.mark.parametrize(("group", "gib"), [("h200", 139.8), ("h100", 79.1), ("a100_80gb", 79.1), ("b200", 178.3)])
def test_gpu_group_sets_the_memory_judged_against(group, gib):
    b = _built("model=qwen25_0p5b", f"gpu={group}")
    p = memory_inputs.predict(b.liverl, b.verl, structure_only=True)
    assert p["gpu"] == group and round(p["gpu_bytes"] / 2**30, 1) == gib


def test_the_preset_fits_an_h200_and_is_refused_on_an_h100():
    _built(SYNC)  # fits the default h200
    text = _refusal(SYNC, "gpu=h100")
    assert "[memory-fit] trainer GPU memory" in text and "(h100 79.1 GiB less 40% allocator headroom)" in text


TWICE = "shard over twice the trainer GPUs"  # memory-fit's cheapest fix where 16 shards fit


@pytest.mark.parametrize(("preset", "update", "fsdp2", "fix"), [
    ("sync_1node_cc", "122.2", "56.8", TWICE), ("fully_async_2nodes_qwen35_cc_clean", "122.2", "56.8", TWICE),
    ("fully_async_3nodes_qwen35_cc_clean", "116.5", "83.8", plan.FSDP2_OFFLOAD)])
def test_the_presets_keep_the_optimizer_on_the_cpu_with_fsdp2_offload(preset, update, fsdp2, fix):
    # verl loads offloaded AdamW states back before the update's first forward (engine/base.py:322-332) and the
    # update holds every sharded gradient from its second micro-batch (measured: the host point and
    # moe30b_fsdp_16k_optoff, tests/test_memory_verl.py), so the user's page's optimizer offload leaves the update
    # over an H200's budget; the topologies run FSDP2's CPU offload instead, on VeOmni's own key
    b = _built(f"experiment={preset}")
    assert not [f for f in b.findings if f.rule == "memory-fit"]
    actor = b.verl.actor_rollout_ref.actor.veomni
    assert (actor.enable_fsdp_offload, actor.param_offload, actor.optimizer_offload) == (True, False, False)
    t = memory_inputs.predict(b.liverl, b.verl, structure_only=True)["trainer"]
    assert terms.gib(t["peak_bytes"]) == f"{fsdp2} GiB"
    # optimizer (and, on 1node, parameter) offload as the user's scripts set it: refused, the fix is the presets'
    params = "true" if preset == "sync_1node_cc" else "false"
    page = ("topology.fsdp2_cpu_offload=false", "topology.optimizer_offload=true", f"topology.param_offload={params}")
    text = _refusal(f"experiment={preset}", *page)
    assert f"peak at {update} GiB allocated in the forward phase" in text and fix in text.split("fix: ")[1]
    # FSDP2 offload with optimizer offload left on is refused (rule veomni-fsdp-offload-flags)
    with pytest.raises(ConfigError) as err:
        _built(f"experiment={preset}", "topology.optimizer_offload=true")
    (half,) = [p for p in err.value.problems if p.rule == "veomni-fsdp-offload-flags"]
    assert "topology.optimizer_offload=false" in half.fix
    text = _refusal(f"experiment={preset}", "gpu=h100")  # an H100 holds none of them
    assert "[memory-fit] trainer GPU memory" in text


def test_optimizer_offload_lowers_only_the_log_prob_pass_and_the_weight_sync():
    # the 3-node preset without FSDP2 offload, with and without optimizer offload: the same update peak (the states
    # come back for it), a lower log-prob pass and weight sync (the states are on the CPU there)
    base = ("experiment=fully_async_3nodes_qwen35_cc_clean", "topology.fsdp2_cpu_offload=false",
            "liverl.allow=[memory-fit]")
    on, off = (memory_inputs.predict(b.liverl, b.verl, structure_only=True)["trainer"]["phases"]
               for b in (_built(*base, "topology.optimizer_offload=true"), _built(*base)))
    assert on["forward"] == off["forward"] and on["backward"] == off["backward"]
    assert on["log_prob"] < off["log_prob"] and on["weight_sync"] < off["weight_sync"]


def test_on_an_h100_no_fix_proposes_a_token_budget_below_the_window():
    # 131,072 tokens/GPU is one full window: verl asserts every sequence fits its micro-batch
    text = _refusal("experiment=fully_async_3nodes_qwen35_cc_clean", "gpu=h100")
    assert "[memory-fit] trainer GPU memory" in text and "a per-GPU token budget of at most" not in text


def test_plan_records_the_gpu_and_a_dry_run_says_h200_is_the_default(tmp_path: Path):
    run = tmp_path / "run"
    assert plan_and_launch(compose_liverl(["model=qwen25_0p5b", "launcher=dryrun"], run_dir=run), run) == 0
    assert recorded_gpu(run) == {"name": "h200", "device": "H200", "memory_bytes": 150_109_880_320, "source": "plan"}
    assert recorded_gpu_memory_gb(run) == pytest.approx(139.8, abs=0.05)
    summary = (run / "summary.txt").read_text()
    assert "GPU: h200 (139.8 GiB each, the default: gpu=h100|a100_80gb|b200 for another)" in summary
    other = tmp_path / "h100"
    assert plan_and_launch(compose_liverl(["model=qwen25_0p5b", "gpu=h100", "launcher=dryrun"], run_dir=other),
                           other) == 0
    assert recorded_gpu(other)["name"] == "h100" and "the default" not in (other / "summary.txt").read_text()
    assert recorded_gpu(tmp_path / "nowhere") is None


# --- launch: the GPUs and hosts the probe found


def test_a_plan_for_h200_launched_on_h100s_is_refused():
    b = _built(SYNC)
    on_h100 = [NodeMemory("node 10.0.0.7 (a1b2c3)", [H100] * 8, 2 * 2**40)]
    (problem,) = memory_problems(b.liverl, b.verl, on_h100)
    assert problem.rule == "memory-fit" and problem.severity == "FATAL"
    assert "judged for h200" in problem.message and "node 10.0.0.7" in problem.message and "H100" in problem.message
    assert memory_problems(b.liverl, b.verl, [NodeMemory("n", [H200] * 8, 2 * 2**40)]) == []
    gpu = probed_gpu(on_h100, b.liverl)
    assert gpu["name"] == "h100" and gpu["source"] == "probe" and gpu["planned"] == "h200"
    assert gpu_group("NVIDIA B200") == "b200" and gpu_group("Tesla T4") is None


def test_mixed_nodes_are_judged_on_the_smallest_gpu_and_host():
    b = _built(SYNC)
    nodes = [NodeMemory("node a", [H200] * 8, 2 * 2**40), NodeMemory("node b", [H100] * 8, 200 * 2**30),
             NodeMemory("cpu head", [], 16 * 2**30)]  # no GPUs: holds no trainer rank
    got = {p.rule: p for p in memory_problems(b.liverl, b.verl, nodes)}
    assert set(got) == {"memory-fit", "host-memory-fit"}
    assert "node b" in got["host-memory-fit"].message and "cpu head" not in got["host-memory-fit"].message


# --- allocator headroom


def test_trainer_fits_only_with_the_allocator_headroom():
    a = arch.load(arch.bundled("qwen25_0p5b"))
    spec = terms.StepSpec(arch=a, tokens=16384, lm_head_chunk=512)
    peak = terms.breakdown(spec)["peak_bytes"]
    base = {"trainer": spec, "trainer_gpus": 1, "rollout_tp": 1, "gpu_memory_utilization": 0.5, "window": 4096,
            "colocated": True}
    # 40%: verl's reserved peak over its allocated peak on the stored verl points (benchmarks/memory/verl_points.json)
    assert not plan.predict(plan.PlanInputs(**base, gpu_bytes=peak * 1.38))["trainer"]["fits"]  # < 40% over
    assert plan.predict(plan.PlanInputs(**base, gpu_bytes=peak * 1.41))["trainer"]["fits"]


# --- host memory


def test_host_memory_terms():
    one = ((1, 1000, 1000),)  # one 1000 x 1000 matrix: each of 8 ranks holds 125 rows, 500,000 bytes in fp32
    spec = dict(tensors=one, shards=8, ranks_per_node=8)
    off = host.host(host.HostSpec(**spec, optimizer_offload=True))
    # two fp32 AdamW states per rank, each pinned in the next power of two (2**19 = 524,288 bytes)
    assert off["breakdown"]["optimizer_states"] == 8 * 2 * 2**19
    assert off["breakdown"]["parameters"] == 0 and off["pinned_bytes"] == 8 * 2 * 2**19
    both = host.host(host.HostSpec(**spec, optimizer_offload=True, param_offload=True))
    assert both["pinned_bytes"] == 8 * 3 * 2**19
    policy = host.host(host.HostSpec(**spec, offload_policy=True))  # parameters and gradients pinned, states not
    assert policy["pinned_bytes"] == 8 * 2 * 2**19 and policy["breakdown"]["optimizer_states"] == 8 * 2 * 500_000
    untied, tied = host.host(host.HostSpec(**spec)), host.host(host.HostSpec(**spec, tied=True))
    assert untied["breakdown"]["model_load"] == 4 * 10**6 and tied["breakdown"]["model_load"] == 8 * 4 * 10**6
    assert untied["peak_phase"] == "load"
    assert untied["breakdown"]["processes"] == host.NODE_PROCESSES + 7 * host.PER_RANK_BASE
    assert untied["peak_bytes"] == untied["breakdown"]["processes"] + 4 * 10**6
    # uneven rows: FSDP2's Shard(0) gives rank 0 ceil(dim0 / shards) rows (torch.chunk), at least one
    assert host.shard_bytes(((1, 1001, 1000),), 8, 4, pinned=False) == 126 * 1000 * 4
    assert host.shard_bytes(((1, 3, 1000),), 8, 4, pinned=True) == 4096  # one 4,000-byte row, pinned in 2**12


@pytest.mark.parametrize("name", ["qwen25_0p5b", "qwen3_30b_a3b", "qwen35_35b_a3b"])
def test_host_tensors_are_the_models_parameters(name):
    a = arch.load(arch.bundled(name))
    ts = a.tensors()
    assert sum(c * d * r for c, d, r in ts) == a.total_params()
    # the largest tensor the allocator rounds is the embedding (or the fused experts), as the weight sync sees it
    assert max(d * r for _, d, r in ts) == a.largest_tensor_params()


def test_rule_host_memory_fit():
    text = _refusal(SYNC, "cluster.host_memory_gib=100")
    assert "[host-memory-fit] host memory" in text and "pinned by offload" in text
    b = _built(SYNC, "cluster.host_memory_gib=100", "liverl.allow=[host-memory-fit]")  # waivable
    assert any(f.rule == "host-memory-fit" and f.severity == "WAIVED" for f in b.findings)
    b = _built(SYNC)  # no knob: not judged until launch
    assert [f.severity for f in b.findings if f.rule == "host-memory-fit"] == ["SKIP"]
    assert not [f for f in _built(SYNC, "cluster.host_memory_gib=2000").findings if f.rule == "host-memory-fit"]
    # 590 GiB holds the prediction (582.5) but not the verdict's headroom for the node's processes (+10.5)
    text = _refusal(SYNC, "cluster.host_memory_gib=590")
    assert "[host-memory-fit] host memory" in text and "kept for the node's processes" in text


# --- rollout KV demand


def test_rollout_kv_demand_warns_when_vllm_would_preempt():
    b = _built("experiment=fully_async_3nodes_qwen35_cc_clean")
    (w,) = [f for f in b.findings if f.rule == "rollout-kv-demand"]
    # 2 replicas (8 rollout GPUs / TP 4), 128 prompts in flight x 8 responses -> 512 sequences per replica
    assert w.severity == "WARN" and "keeps up to 512 sequences in flight" in w.message
    assert "at the full 131072-token window" in w.message and "rollout replicas" in w.fix
    assert not [f for f in _built().findings if f.rule == "rollout-kv-demand"]  # smoke batch: 8 x 4 sequences


def test_rollout_kv_demand_offers_a_concurrency_that_keeps_one_step_in_flight():
    # a 32k window: a replica's cache holds a few hundred full windows, fewer than the 512 kept in flight, but enough
    # for the 32 prompts x 8 responses per replica that one trainer step (64 prompts over 2 replicas) needs
    b = _built("experiment=fully_async_3nodes_qwen35_cc_clean", "window.prompt=16384", "window.response=16384")
    (w,) = [f for f in b.findings if f.rule == "rollout-kv-demand"]
    held = int(re.search(r"holds (\d+) at the full", w.message).group(1))
    per_replica = int(re.search(r"concurrent_samples_per_replica=(\d+)", w.fix).group(1))
    assert 256 <= held < 512 and per_replica * 8 <= held and per_replica >= 32


def test_run_json_gpu_key_is_json():
    assert json.loads(json.dumps({"gpu": probed_gpu([NodeMemory("n", [H100])], _built().liverl)}))


def test_advise_predicts_against_the_gpu_a_launch_found(tmp_path: Path):
    from liverl import advise
    from liverl.health.analysis import load_thresholds
    from liverl.rundir import update_run

    run = tmp_path / "run"
    assert plan_and_launch(compose_liverl([SYNC, "launcher=dryrun"], run_dir=run), run) == 0
    thresholds = load_thresholds()
    ctx = advise.run_context(run, thresholds)
    assert ctx.memory["trainer"]["fits"] and ctx.gpu[1] == "liverl.yaml gpu.memory_bytes"  # planned for the h200
    update_run(run, gpu=probed_gpu([NodeMemory("node x", [H100] * 8)], compose_liverl([SYNC])))
    ctx = advise.run_context(run, thresholds)
    assert ctx.gpu[1].startswith("run.json gpu (probed at launch")
    p = ctx.memory
    assert p["gpu_bytes"] == H100[1] and not p["trainer"]["fits"]
