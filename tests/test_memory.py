"""The memory model (liverl.memory) against the H200 measurements stored in benchmarks/memory/, its plan-level
prediction on the presets, and its CLI's bad-input handling. CPU only, no GPU: the measurements were taken by
benchmarks/memory/measure.py on an H200 and are read from results_h200.json."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from liverl.errors import ConfigError
from liverl.guardrails import memory_inputs
from liverl.memory import arch, plan, rollout, terms
from liverl.recipe.build import build
from liverl.recipe.compose import compose_liverl

ROOT = Path(__file__).resolve().parents[1]
RESULTS = json.loads((ROOT / "benchmarks/memory/results_h200.json").read_text())
OK = [r for r in RESULTS["steps"] if r["status"] == "ok"]
_spec = importlib.util.spec_from_file_location("memory_fit", ROOT / "benchmarks/memory/fit.py")
assert _spec and _spec.loader
FIT = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(FIT)
spec_for = FIT.spec_for
TRAIN, HELD_OUT = FIT.split(OK)


def within_10_percent(rows: list[dict]) -> None:
    for row in rows:
        pred = terms.breakdown(spec_for(row))["peak_bytes"]
        assert abs(pred / row["peak_bytes"] - 1) <= 0.10, (row["arch"], row["tokens"], pred, row["peak_bytes"])


def test_every_training_point_within_10_percent():
    assert len(OK) >= 30 and RESULTS["env"]["gpu"] == "NVIDIA H200"
    within_10_percent(TRAIN)


def test_a_held_out_share_of_the_points_is_never_given_to_a_fit():
    ids = {FIT.point_id(r) for r in HELD_OUT}
    assert len(HELD_OUT) == len(FIT.HELD_OUT) >= len(OK) // 6  # every listed point was measured
    assert not ids & {FIT.point_id(r) for r in TRAIN} and len(TRAIN) + len(HELD_OUT) == len(OK)
    assert {r["arch"] for r in HELD_OUT} == {r["arch"] for r in OK}
    # each fitted term is tested on a point that decides it (>= 65536 tokens of the MoE / linear-attention model)
    assert {r["arch"] for r in HELD_OUT if r["tokens"] >= 65536} >= {"qwen3_30b_a3b", "qwen35_35b_a3b"}
    with pytest.raises(AssertionError, match="held-out"):
        FIT.refit(OK)


def test_the_model_fitted_without_the_held_out_points_predicts_them():
    saved = dict(terms.COEF)
    try:
        fitted = FIT.refit(TRAIN)
        # the shipped coefficients are the training-only fit: they never saw a held-out point
        assert fitted == {k: saved[k] for k in fitted}
        within_10_percent(HELD_OUT)
    finally:
        terms.COEF.clear()
        terms.COEF.update(saved)


def test_the_memory_fit_message_says_which_term_is_not_measured():
    # FLA's linear-attention coefficient is nominal: the H200 points ran transformers' torch fallback
    assert RESULTS["env"]["fla"] is False and all(spec_for(r).linear_impl == "torch" for r in OK)
    with pytest.raises(ConfigError) as gdn:
        build(compose_liverl(["model=qwen35", "fsdp_size=2", "topology.fsdp2_cpu_offload=false"]))
    with pytest.raises(ConfigError) as moe:
        build(compose_liverl(["model=qwen3_30b_a3b", "fsdp_size=1", "topology.fsdp2_cpu_offload=false"]))
    (g,), (m,) = gdn.value.problems, moe.value.problems
    assert g.rule == m.rule == "memory-fit"
    assert "linear-attention term is FLA's nominal size, not measured" in g.message
    assert "not measured" not in m.message  # no linear attention: every term it uses was measured


def test_parameter_counts_match_the_built_models_exactly():
    for row in OK:
        assert spec_for(row).arch.total_params() == row["params"]


def test_kv_cache_bytes_match_the_measured_cache_tensors():
    for row in RESULTS["kv_cache"]:
        a = arch.load(arch.bundled(row["arch"])).text_only().with_layers(row["layers"])
        kept = rollout.kv_bytes_per_token(a) * row["tokens"] + rollout.linear_state_bytes(a)
        assert kept == row["cache_tensor_bytes"]


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "liverl.memory", *args], capture_output=True, text=True, cwd=ROOT)


@pytest.mark.parametrize("row", [OK[4], OK[19], OK[-1]], ids=lambda r: f"{r['arch']}-{r['tokens']}")
def test_step_cli_reproduces_points(row):
    w = "fp32" if row["setting"] == "fp32_master" else "bf16"
    proc = _cli("step", "--hf-config", str(arch.bundled(row["arch"])), "--num-layers", str(row["layers"]),
                "--tokens", str(row["tokens"]), "--shards", "1", "--param-dtype", w, "--optim-dtype", w,
                "--master-weights" if w == "fp32" else "--no-master-weights", "--grad-ckpt", "layer",
                "--lm-head-chunk", str(row["lm_head_chunk"]), "--linear-impl", "torch", "--text-only", "--json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert set(out) >= {"peak_bytes", "breakdown"}
    assert abs(out["peak_bytes"] / row["peak_bytes"] - 1) <= 0.10


@pytest.mark.parametrize(("args", "needle"), [
    (["--hf-config", "/nonexistent/config.json", "--tokens", "8"], "no such file"),
    (["--hf-config", str(arch.bundled("qwen25_0p5b")), "--tokens", "0"], "--tokens: must be > 0"),
    (["--hf-config", str(arch.bundled("qwen25_0p5b")), "--tokens", "8", "--param-dtype", "fp8"], "invalid choice"),
])
def test_step_cli_bad_input_exits_2(args, needle):
    proc = _cli("step", *args)
    assert proc.returncode == 2 and needle in proc.stderr and "Traceback" not in proc.stderr


def test_offload_and_sharding_move_the_right_terms():
    a = arch.load(arch.bundled("qwen35_35b_a3b"))
    base = terms.StepSpec(arch=a, tokens=32768, shards=8, lm_head_chunk=4096, logprob_entropy="chunked",
                          sync_bucket_bytes=2**31)
    on = terms.breakdown(base)
    off = terms.breakdown(replace(base, optimizer_offload=True))
    b0 = on["breakdown"]
    states = b0["optimizer_states"]
    assert states == pytest.approx(2 * 4 * a.total_params() / 8)
    # verl's train context loads offloaded states back before the update's first forward (engine/base.py:322-332):
    # the update's phases keep them; its exit offloads them: the log-prob pass and the weight sync lose exactly them
    for phase in ("forward", "backward", "optimizer"):
        assert off["phases"][phase] == on["phases"][phase], phase
    for phase in ("log_prob", "weight_sync"):
        assert on["phases"][phase] - off["phases"][phase] == pytest.approx(states), phase
    policy = terms.breakdown(replace(base, offload_policy=True))  # FSDP2's CPUOffloadPolicy: the step runs on the CPU
    assert policy["breakdown"]["optimizer_states"] == 0 and policy["phases"]["forward"] < on["phases"]["forward"]
    assert off["breakdown"]["parameters"] == b0["parameters"]
    b16 = terms.breakdown(replace(base, shards=16))["breakdown"]
    assert b16["parameters"] * 2 == pytest.approx(b0["parameters"], rel=1e-6)
    assert b16["activations_checkpointed"] == b0["activations_checkpointed"]  # activations do not shard
    more = terms.breakdown(replace(base, tokens=65536))
    assert more["breakdown"]["activations_checkpointed"] > b0["activations_checkpointed"]


def test_optimizer_offload_is_no_fix_for_a_peak_in_the_update():
    # verl loads offloaded states back before the update's first forward (engine/base.py:322-332): offload lowers the
    # log-prob pass and the weight sync only, so a plan whose peak is the update's must get another fix
    a = arch.load(arch.bundled("qwen3_30b_a3b"))
    spec = terms.StepSpec(arch=a, tokens=65536, shards=8, lm_head_chunk=4096)  # no log-prob phase: the update peaks
    on = terms.breakdown(spec)["peak_bytes"]
    off = terms.breakdown(replace(spec, optimizer_offload=True))["peak_bytes"]
    assert off == on  # the model's update phases keep the states
    gpu = 0.95 * on
    assert "optimizer_offload=true" not in plan.cheapest_fix(spec, gpu)
    lp = replace(spec, logprob_entropy="eager", logits="materialised")  # the old-log-prob pass peaks: offload helps
    b = terms.breakdown(lp)
    assert b["peak_phase"] == "log_prob"
    upd = max(v for k, v in b["phases"].items() if k not in ("log_prob", "weight_sync"))
    gpu = b["peak_bytes"] - b["breakdown"]["optimizer_states"] / 2  # the pass without the states fits; the update too
    assert upd < gpu and plan.cheapest_fix(lp, gpu).startswith("offload the optimizer")


def test_gradient_accumulation_holds_every_sharded_gradient_through_forward_and_backward():
    # verl reduce-scatters each micro-batch into the sharded gradients (use_no_sync_for_gradient_accumulation:
    # false) and zeroes them only per update: from the second micro-batch on they are all resident
    a = arch.load(arch.bundled("qwen3_30b_a3b"))
    one = terms.StepSpec(arch=a, tokens=16384, shards=8)
    many = replace(one, accumulation=True)
    b1, bn = terms.breakdown(one), terms.breakdown(many)
    grads = b1["breakdown"]["gradients"]
    assert grads == pytest.approx(4 * a.total_params() / 8)
    assert bn["phases"]["forward"] - b1["phases"]["forward"] == pytest.approx(grads)
    assert bn["phases"]["optimizer"] == b1["phases"]["optimizer"]  # the step held them already
    # backward: the first micro-batch's gradients grow layer by layer; later ones start with all of them
    assert b1["phases"]["backward"] < bn["phases"]["backward"] <= b1["phases"]["backward"] + grads
    # use_no_sync_for_gradient_accumulation=true keeps the unsharded gradients until the last micro-batch: 8x here
    nosync = terms.breakdown(replace(many, unsharded_grads=True))
    assert nosync["phases"]["forward"] - b1["phases"]["forward"] == pytest.approx(8 * grads)
    assert terms.breakdown(replace(one, unsharded_grads=True))["phases"] == b1["phases"]  # one micro-batch: no skip


def test_no_sync_gradient_accumulation_is_read_from_fsdps_engine():
    # verl's FSDP engine defers the reduce-scatter under the key (fsdp/transformer_impl.py:691-722; VeOmni's engine
    # has no such key or context). The 2-node preset's trainer on FSDP (8 GPUs, 64x8 official batch) accumulates
    key = "verl.actor_rollout_ref.actor.fsdp_config.use_no_sync_for_gradient_accumulation"
    base = ("experiment=fully_async_2nodes_qwen35_cc_clean", "engine=fsdp", "batch=official",
            "topology.fsdp2_cpu_offload=false", "liverl.allow=[memory-fit]")
    specs = []
    for value in ("false", "true"):
        cfg, verl = _built(*base, f"{key}={value}")
        specs.append(memory_inputs.trainer_spec(cfg, verl, memory_inputs.arch(cfg, structure_only=True))[0])
    assert all(s.accumulation for s in specs) and [s.unsharded_grads for s in specs] == [False, True]
    fwd = [terms.breakdown(s)["phases"]["forward"] for s in specs]
    assert fwd[1] - fwd[0] == pytest.approx(7 / 8 * 4 * specs[0].arch.total_params())  # a whole fp32 copy, less a shard


def test_hybrid_kv_cache_only_on_full_attention_layers():
    a = arch.load(arch.bundled("qwen35_35b_a3b"))
    assert a.full_layers == 10 and a.linear_layers == 30
    assert rollout.kv_bytes_per_token(a, tp=1) == 10 * 2 * 2 * 256 * 2
    assert rollout.linear_state_bytes(a, tp=1) > 0


def test_a_fixed_kv_cache_replaces_the_utilization_budget():
    # vLLM's kv_cache_memory_bytes sizes the cache itself (vllm/v1/worker/gpu_worker.py:412-430); on an H200 a 2 GiB
    # cache for the tiny smoke model showed 6349 MiB in nvidia-smi (docs/gpu-smoke.md)
    a = arch.load(arch.bundled("qwen25_0p5b"))
    shared = rollout.rollout(a, 1, 4096, plan.H200_BYTES, 0.2, kv_cache_bytes=2 * 2**30)
    assert shared["breakdown"]["kv_cache"] == 2 * 2**30
    assert shared["peak_bytes"] == int(a.total_params() * 2 + rollout.RESERVE + 2 * 2**30)
    assert shared["full_window_sequences"] == 2 * 2**30 // (4096 * rollout.kv_bytes_per_token(a))
    by_share = rollout.rollout(a, 1, 4096, plan.H200_BYTES, 0.2)
    assert by_share["peak_bytes"] == int(plan.H200_BYTES * 0.2) != shared["peak_bytes"]
    too_small = rollout.rollout(a, 1, 4096, plan.H200_BYTES, 0.2, kv_cache_bytes=2**20)
    assert not too_small["fits"]
    assert rollout.kv_budget({"kv_cache_bytes": 2**20}) == "a fixed 1 MiB KV cache (kv_cache_memory_bytes)"
    cfg = compose_liverl(["model=qwen25_0p5b", "topology=2node",
                          "verl.actor_rollout_ref.rollout.engine_kwargs.vllm.kv_cache_memory_bytes=1048576"])
    with pytest.raises(ConfigError) as err:
        build(cfg)
    text = str(err.value)
    assert "[memory-fit] rollout GPU memory" in text and "at a fixed 1 MiB KV cache (kv_cache_memory_bytes)" in text
    assert "fix: a larger KV cache (verl.actor_rollout_ref.rollout.engine_kwargs.vllm.kv_cache_memory_bytes)" in text


def test_plan_prediction_for_the_3node_preset():
    proc = _cli("experiment=fully_async_3nodes_qwen35_cc_clean", "--json")
    assert proc.returncode in (0, 1), proc.stderr
    p = json.loads(proc.stdout.strip().splitlines()[-1])
    assert p["trainer"]["shards"] == 16 and p["trainer"]["tokens_per_gpu"] == 131072
    assert p["rollout"]["tp"] == 4 and p["rollout"]["full_window_sequences"] >= 1
    assert (proc.returncode == 0) == (p["trainer"]["fits"] and p["rollout"]["fits"])


def test_max_tokens_per_gpu_is_the_fit_boundary():
    a = arch.load(arch.bundled("qwen3_30b_a3b"))
    spec = terms.StepSpec(arch=a, tokens=1, shards=16, lm_head_chunk=4096, optimizer_offload=True)
    n = plan.max_tokens_per_gpu(spec)
    assert n > 0
    assert terms.breakdown(replace(spec, tokens=n))["peak_bytes"] <= plan.H200_BYTES
    assert terms.breakdown(replace(spec, tokens=n + 2048))["peak_bytes"] > plan.H200_BYTES


def _built(*overrides: str):
    cfg = compose_liverl(list(overrides))
    return cfg, build(cfg, structure_only=True).verl


def test_logits_term_follows_verls_path_per_engine():

    # engine=fsdp turns verl's fused kernels on for a tied model (tests/test_fused_kernels.py: off for untied ones)
    _, fsdp = _built("experiment=sync_1node_cc", "engine=fsdp", "model=qwen25_0p5b")
    assert memory_inputs.logits_path(fsdp) == {"logits": "fp32", "lm_head_chunk": 512, "logprob_entropy": "fused"}
    _, plain = _built("experiment=sync_1node_cc", "engine=fsdp", "verl.actor_rollout_ref.model.use_fused_kernels=false",
                      "liverl.allow=[memory-fit]")  # whole-micro-batch logits, unchunked entropy: predicted over
    assert memory_inputs.logits_path(plain)["logits"] == "materialised"
    three = "experiment=fully_async_3nodes_qwen35_cc_clean"
    unfused = "verl.actor_rollout_ref.model.use_fused_kernels=false"
    cfg, vo = _built(three)  # the preset: VeOmni, materialised logits, chunked entropy
    assert memory_inputs.logits_path(vo) == {"logits": "materialised", "lm_head_chunk": 0, "logprob_entropy": "chunked"}
    chunked = memory_inputs.predict(cfg, vo, structure_only=True)["trainer"]
    cfg, full = _built(three, unfused, "verl.actor_rollout_ref.actor.veomni.entropy_from_logits_with_chunking=false",
                       "liverl.allow=[memory-fit]")
    unchunked = memory_inputs.predict(cfg, full, structure_only=True)["trainer"]
    # 131072 tokens x 248320 vocab: bf16 logits are 60.6 GiB; the preset's VeOmni engine has use_torch_compile off
    # (verl/workers/engine/veomni/transformer_impl.py:203-206), so unchunked entropy runs eagerly under autocast:
    # + the fp32 softmax, logsumexp's fp32 input and its temporary (14 bytes per element in all)
    assert chunked["breakdown"]["logits_forward"] == 2 * 131072 * 248320
    assert unchunked["breakdown"]["logits_log_prob_pass"] == 7 * chunked["breakdown"]["logits_forward"]
    assert chunked["fits"] and not unchunked["fits"] and unchunked["peak_phase"] == "log_prob"


@pytest.mark.parametrize(("engine", "key"), [("fsdp", "fsdp_config.offload_policy"),
                                             ("veomni", "veomni.enable_fsdp_offload")])
def test_fsdp2_cpu_offload_is_read_from_each_engines_own_key(engine, key):
    # FSDP2's CPUOffloadPolicy: verl's FSDP engine reads offload_policy, VeOmni's engine enable_fsdp_offload
    # (veomni/transformer_impl.py:361; VeOmni's config has no offload_policy). FSDP's engine clears its optimizer
    # offload under it (fsdp/transformer_impl.py:459-463); VeOmni's keeps it and loads the states back for the update
    # (veomni/transformer_impl.py:182, 528-532), so there it counts only with topology.optimizer_offload=false
    allow = "memory-fit,veomni-fsdp-offload-flags" if engine == "veomni" else "memory-fit"
    # topology.fsdp2_cpu_offload sets the same key (conf/engine/{fsdp,veomni}.yaml): on in 3node, off here
    cfg, verl = _built("model=qwen3_30b_a3b", f"engine={engine}", "topology=3node")
    assert OmegaConf.select(verl.actor_rollout_ref.actor, key) is True
    base = ("model=qwen3_30b_a3b", f"engine={engine}", "topology=3node", f"liverl.allow=[{allow}]",
            "topology.fsdp2_cpu_offload=false", "topology.optimizer_offload=true")
    on = f"verl.actor_rollout_ref.actor.{key}=true"
    for extra, expected in (((), False), ((on,), engine == "fsdp"), ((on, "topology.optimizer_offload=false"), True)):
        cfg, verl = _built(*base, *extra)
        spec, _ = memory_inputs.trainer_spec(cfg, verl, memory_inputs.arch(cfg, structure_only=True))
        assert spec.offload_policy is expected, (engine, extra)


@pytest.mark.parametrize(("topology", "expected"), [("gpu1", False), ("1node", True)])
def test_veomni_offloads_only_where_it_wraps_the_model_in_fsdp2(topology, expected):
    # VeOmni applies FSDP2's offload only on two or more trainer GPUs, verl's FSDP engine on one too
    # (verl_keys.fsdp2_wraps): on one the VeOmni prediction is the one without offload
    base = ("model=qwen25_0p5b", "engine=veomni", f"topology={topology}", "model.rollout_tp=1")
    preds = {}
    for on in (False, True):
        cfg, verl = _built(*base, f"topology.fsdp2_cpu_offload={str(on).lower()}")
        assert OmegaConf.select(verl.actor_rollout_ref.actor, "veomni.enable_fsdp_offload") is on
        spec, _ = memory_inputs.trainer_spec(cfg, verl, memory_inputs.arch(cfg, structure_only=True))
        assert spec.offload_policy is (on and expected)
        preds[on] = memory_inputs.predict(cfg, verl, structure_only=True)["trainer"]["peak_bytes"]
    assert (preds[True] < preds[False]) is expected, preds
    cfg, verl = _built("model=qwen25_0p5b", "engine=fsdp", f"topology={topology}", "model.rollout_tp=1",
                       "topology.fsdp2_cpu_offload=true")
    assert memory_inputs.trainer_spec(cfg, verl, memory_inputs.arch(cfg, structure_only=True))[0].offload_policy


@pytest.mark.parametrize(("engine", "offered"), [("veomni", False), ("fsdp", True)])
def test_memory_fit_offers_fsdp2_offload_only_where_it_would_apply(engine, offered):
    # one trainer GPU, the full Qwen3-30B-A3B: over any budget either way; VeOmni's FSDP2 offload would do nothing
    # there (rule veomni-one-gpu-fsdp-offload), FSDP's would
    cfg, verl = _built("model=qwen3_30b_a3b", f"engine={engine}", "topology=gpu1", "model.rollout_tp=1",
                       "window.response=16256", "gpu=h100", "liverl.allow=[memory-fit,veomni-one-gpu-moe]")
    spec, _ = memory_inputs.trainer_spec(cfg, verl, memory_inputs.arch(cfg, structure_only=True))
    assert not spec.offload_policy
    fixes = [text for text, _ in plan.fix_candidates(spec, plan.H200_BYTES)]
    assert any("FSDP2 CPU offload" in t for t in fixes) is offered, fixes
