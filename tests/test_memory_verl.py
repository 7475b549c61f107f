"""The memory model against verl itself: the points benchmarks/memory/verl_points.py stored from real
`python -m liverl.train` runs on a GPU host (benchmarks/memory/verl_points.json). Each stored point is re-predicted
with today's model from its own overrides and checkpoint config and must be within 10% of verl's logged peak, with
the allocator's reserved peak within memory-fit's headroom; once the file holds points it must hold at least
MIN_POINTS. The script's overrides themselves are checked here on CPU: each point plans (launcher=dryrun)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from liverl.errors import ConfigError
from liverl.guardrails import memory_inputs
from liverl.guardrails.gpu_probe import dist_version
from liverl.health.streams import read_run
from liverl.memory import host, plan, terms
from liverl.memory.plan import RESERVED_HEADROOM
from liverl.recipe.build import build
from liverl.recipe.compose import compose_liverl
from liverl.rundir import set_status

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks" / "memory"))
import point_checkpoints  # noqa: E402
import verl_points  # noqa: E402

DATA = json.loads((ROOT / "benchmarks/memory/verl_points.json").read_text())
POINTS, HOST = DATA["points"], DATA["host_points"]
MIN_POINTS = 8  # dense 7B width at 16k (entropy chunking on and off) and 32k, Qwen3-30B-A3B at 16k on FSDP and on
# VeOmni, Qwen3.5-35B-A3B's width (GatedDeltaNet, 256 experts, untied 248k vocabulary) at 6k on an H100 (2026-12-07),
# and Qwen3-30B-A3B at 16k with optimizer offload (2026-12-07) and with FSDP2 CPU offload (2026-12-08), on H100s
TOLERANCE = 0.10


def _plan(overrides: list[str], hf_config: dict, ckpt: Path):
    ckpt.mkdir(parents=True, exist_ok=True)
    (ckpt / "config.json").write_text(json.dumps(hf_config))
    args = [f"model.path={ckpt}" if o.startswith("model.path=") else o for o in overrides]
    cfg = compose_liverl([*args, "launcher=dryrun"])
    b = build(cfg)  # the checkpoint's config.json is read from model.path, as on the GPU host
    return b.liverl, b.verl


def test_enough_points_stored():
    assert len(POINTS) >= MIN_POINTS, f"only {len(POINTS)} verl points stored; need {MIN_POINTS}: {DATA['failed']}"
    assert {p["name"] for p in HOST} >= {verl_points.HOST_DEFAULT, "moe30b_fsdp_16k_fsdp2off"}, (
        "a host-memory point (benchmarks/memory/verl_points.py host: H200 2026-12-07, H100 2026-12-08) is gone")
    assert len(OFFLOADED) == 2, "moe30b_fsdp_16k_optoff (the offload point at MoE width, H100 2026-12-07) is gone"


@pytest.mark.parametrize("point", POINTS, ids=[p["name"] for p in POINTS])
def test_stored_point_within_10_percent_of_verl(point, tmp_path):
    cfg, verl = _plan(point["overrides"], point["hf_config"], tmp_path / "ckpt")
    pred = memory_inputs.predict(cfg, verl)["trainer"]["peak_bytes"]
    measured = point["measured"]["max_memory_allocated_gb"] * 2**30  # verl's "GB" is 1024**3 bytes
    err = pred / measured - 1
    assert abs(err) <= TOLERANCE, (
        f"{point['name']}: predicted {pred / 2**30:.2f} GiB vs verl's max_memory_allocated "
        f"{measured / 2**30:.2f} GiB ({err:+.1%}, limit ±{TOLERANCE:.0%})")
    reserved = point["measured"]["max_memory_reserved_gb"] * 2**30
    assert reserved <= measured * (1 + RESERVED_HEADROOM), (
        f"{point['name']}: reserved {reserved / 2**30:.2f} GiB is {reserved / measured - 1:+.1%} over allocated; "
        f"memory-fit keeps {RESERVED_HEADROOM:.0%} (liverl/memory/plan.py RESERVED_HEADROOM)")


@pytest.mark.parametrize("point", HOST, ids=[p["name"] for p in HOST])
def test_stored_host_point_is_not_overpredicted_and_the_verdict_covers_it(point, tmp_path):
    # the prediction is never more than 10% over what the node used, and host-memory-fit's verdict (the prediction
    # plus host.PROCESS_HEADROOM) is never under it: the dense prediction is 0.8% under its reading, the FSDP2-offload
    # point's (MoE shape) 10.34 GiB under, which is where the headroom comes from (host.py): a re-run or a new point
    # above it fails
    cfg, verl = _plan(point["overrides"], point["hf_config"], tmp_path / "ckpt")
    h = memory_inputs.host_prediction(cfg, verl)
    pred, used = h["peak_bytes"], point["host"]["node_used_delta_bytes"]
    assert pred <= used * (1 + TOLERANCE), (
        f"{point['name']}: the node's used memory rose {used / 2**30:.1f} GiB, the host model predicts "
        f"{pred / 2**30:.1f} GiB")
    assert used <= pred + h["headroom_bytes"], (used / 2**30, pred / 2**30, h["headroom_bytes"] / 2**30)


def test_fsdp2_offload_adds_the_pinned_parameters_and_gradients_and_the_states(tmp_path):
    # FSDP2's CPUOffloadPolicy(pin_memory=True): the fp32 parameter and gradient shards pinned (powers of two), the
    # AdamW states made on the host (zeros_like of a CPU tensor: pageable). What offload added on the node: the point's
    # step-end reading less the same shape's run without offload on the same kind of host (both H100s, both after
    # step 2; each reading holds its idle host's used memory, 1.35 GiB sampled on this point's and not recorded on
    # the other's, assumed equal)
    point = {p["name"]: p for p in HOST}["moe30b_fsdp_16k_fsdp2off"]
    plain = {p["name"]: p for p in POINTS}["moe30b_fsdp_16k"]
    assert plain["gpu"].split(",")[0] == point["gpu"].split(",")[0]
    cfg, verl = _plan(point["overrides"], point["hf_config"], tmp_path / "ckpt")
    b = memory_inputs.host_prediction(cfg, verl)["breakdown"]
    state = b["parameters"] + b["gradients"] + b["optimizer_states"]
    added = point["measured"]["cpu_memory_used_gb_per_step"][-1] - plain["measured"]["cpu_memory_used_gb_per_step"][-1]
    assert abs(state / (added * 2**30) - 1) <= TOLERANCE, (state / 2**30, added)
    # structural (the model's terms, not the data): gradients pinned like the parameters, the states pageable
    assert b["gradients"] == b["parameters"] and b["optimizer_states"] < 2 * b["parameters"]


def _host_parts(tmp_path):
    """The host point's pinned terms (the model) and the node's used memory per step (verl's
    actor/perf/cpu_memory_used_gb: psutil's used, engine_workers.py:221), less the sampler's pre-launch baseline."""
    point = {p["name"]: p for p in HOST}[verl_points.HOST_DEFAULT]
    cfg, verl = _plan(point["overrides"], point["hf_config"], tmp_path / "ckpt")
    h = memory_inputs.host_prediction(cfg, verl)
    base = point["host"]["baseline_bytes"]
    steps = [g * 2**30 - base for g in point["measured"]["cpu_memory_used_gb_per_step"]]
    return point, h, steps


def test_pinned_offload_state_is_rounded_to_powers_of_two(tmp_path):
    # verl logs the node's used memory after each step's update, with the parameters and states on the GPU. The
    # optimizer states are created in step 1's update and first offloaded after it: step 2's reading is step 1's
    # plus their pinned blocks, which PyTorch's caching host allocator keeps (CachingHostAllocator.h PowerOf2Ceil)
    point, h, steps = _host_parts(tmp_path)
    a = memory_inputs.arch(_plan(point["overrides"], point["hf_config"], tmp_path / "c2")[0])
    growth, states = steps[1] - steps[0], h["breakdown"]["optimizer_states"]
    assert abs(states / growth - 1) <= TOLERANCE, (growth / 2**30, states / 2**30)
    unrounded = 2 * 4 * a.total_params()  # what the model said before: 11.6 GiB, half the growth
    assert growth > 1.5 * unrounded, (growth / 2**30, unrounded / 2**30)


OFFLOADED = [p for p in [*HOST, *POINTS] if p["name"] in (verl_points.HOST_DEFAULT, "moe30b_fsdp_16k_optoff")]


@pytest.mark.parametrize("point", OFFLOADED, ids=[p["name"] for p in OFFLOADED])
def test_offloaded_optimizer_states_come_back_for_the_update_from_step_2(point, tmp_path):
    # the host point (dense 7B width, optimizer + parameter offload, an H200) logged 38.06 GiB in step 1 and 42.33 in
    # step 2; moe30b_fsdp_16k_optoff (Qwen3-30B-A3B shape, optimizer offload, an H100, 2026-12-07) 39.26 and 46.73.
    # verl's train context loads the offloaded AdamW states back before the update's first forward
    # (verl/workers/engine/base.py:322-332, fsdp/transformer_impl.py:861-862), but step 1's are created only inside
    # its step(): step 1 peaks in the old-log-prob pass (states on the CPU); from step 2 the update's forward holds
    # the states and, from its second micro-batch, every sharded gradient. A model that kept the states off the GPU
    # there said -9.5% and -15.5% (the second point's stored "error", predicted before this model)
    cfg, verl = _plan(point["overrides"], point["hf_config"], tmp_path / "ckpt")
    pred = memory_inputs.predict(cfg, verl)["trainer"]
    step1, step2 = (g * 2**30 for g in point["measured"]["max_memory_allocated_gb_per_step"])
    assert pred["peak_phase"] == "forward"
    assert abs(pred["peak_bytes"] / step2 - 1) <= 0.02, (pred["peak_bytes"] / 2**30, step2 / 2**30)
    assert abs(pred["phases"]["log_prob"] / step1 - 1) <= 0.02, (pred["phases"]["log_prob"] / 2**30, step1 / 2**30)
    states = pred["breakdown"]["optimizer_states"]
    assert pred["phases"]["forward"] - states < step1  # step 1's update, without states, stayed under its log-prob


@pytest.mark.parametrize(("overrides", "expected"), [
    (["train_bsz=1", "n_resp_per_prompt=1"], False),
    (["train_bsz=1", "n_resp_per_prompt=2"], True),
])
def test_accumulation_is_read_from_the_mini_batch_per_gpu(overrides, expected, tmp_path):
    # one GPU, dynamic batches of one full window: a mini-batch of one sequence is one micro-batch; two are two
    point = POINTS[0]
    base = [o for o in point["overrides"] if not o.startswith(("train_bsz=", "n_resp_per_prompt="))]
    cfg, verl = _plan([*base, *overrides], point["hf_config"], tmp_path / "ckpt")
    spec, gpus = memory_inputs.trainer_spec(cfg, verl, memory_inputs.arch(cfg))
    assert gpus == 1 and spec.accumulation is expected


def test_the_nodes_processes_measured_without_offload_explain_the_rest(tmp_path):
    # the same GPU host, the same session: a run without offload (dense7b_fsdp_32k) shows what the node's processes
    # use (trainer, vLLM server, agent-loop workers, task runner, Ray); with offload, step 1 adds the parameters'
    # pinned blocks (offloaded at init) to it. host.NODE_PROCESSES is that measurement, a constant calibrated on this
    # one host: the host point's total (test above) leans on it; the pinned part is checked on its own here
    point, h, steps = _host_parts(tmp_path)
    plain = {p["name"]: p for p in POINTS}["dense7b_fsdp_32k"]
    assert plain["gpu"].split(",")[0] == point["gpu"].split(",")[0]  # one machine, so one baseline
    processes = plain["measured"]["cpu_memory_used_gb_per_step"][-1] * 2**30 - point["host"]["baseline_bytes"]
    assert abs(host.NODE_PROCESSES / processes - 1) <= 0.02, (host.NODE_PROCESSES / 2**30, processes / 2**30)
    step1 = processes + h["breakdown"]["parameters"]
    assert abs(step1 / steps[0] - 1) <= TOLERANCE, (step1 / 2**30, steps[0] / 2**30)
    # and what offload added to the node in all (its peak less the processes) is the pinned state the model predicts
    pinned = point["host"]["node_used_delta_bytes"] - processes
    assert abs(h["pinned_bytes"] / pinned - 1) <= TOLERANCE, (h["pinned_bytes"] / 2**30, pinned / 2**30)


@pytest.mark.parametrize("name", [*verl_points.DEFAULT, "moe30b_veomni_16k", "moe35b_fsdp_6k",
                                  "moe30b_fsdp_16k_fsdp2off", "moe35b_fsdp_16k_fsdp2off", "moe30b_veomni_16k_2gpu",
                                  "moe30b_veomni_16k_2gpu_fsdp2off", "moe30b_fsdp_32k"])
def test_the_scripts_points_plan(name, tmp_path):
    shape, window, engine, _ = point = verl_points.POINTS[name]
    arch = json.loads((point_checkpoints.ARCHS / f"{point_checkpoints.SHAPES[shape][0]}.json").read_text())
    vocab = arch.get("text_config", arch)["vocab_size"]
    hf = point_checkpoints.text_config(shape, vocab)
    args = verl_points.overrides(name, point, tmp_path / "ckpt", tmp_path / "tiny", tmp_path / "run", "dryrun")
    cfg, verl = _plan([a for a in args if not a.startswith(("launcher=", "hydra."))], hf, tmp_path / "ckpt")
    assert verl.actor_rollout_ref.actor.ppo_max_token_len_per_gpu == window
    gpus = 2 if "topology.gpus_per_node=2" in point[3] else 1
    assert verl.trainer.n_gpus_per_node == gpus and cfg.engine.name == engine
    a = memory_inputs.arch(cfg)
    assert a.layers == point_checkpoints.LAYERS and a.vocab == vocab and (a.experts > 0) == shape.startswith("moe")
    # VeOmni with mixed_precision=false loads bf16 (veomni/transformer_impl.py:343): 2-byte weights and states
    pure_bf16 = "verl.actor_rollout_ref.actor.veomni.mixed_precision=false" in point[3]
    assert memory_inputs.plan_inputs(cfg, verl).trainer.param_bytes == (2 if pure_bf16 else 4)
    # Qwen3.5's GatedDeltaNet prefill runs on Triton where flashinfer is missing (rule gdn-prefill-flashinfer)
    gdn = verl.actor_rollout_ref.rollout.engine_kwargs.vllm.get("gdn_prefill_backend")
    missing = dist_version("flashinfer-python") is None
    assert gdn == ("triton" if cfg.model.linear_attention and missing else None), gdn
    # the FSDP2-offload points plan what the presets set: the engine's offload policy on, its own offload flags off
    fsdp2 = "topology.fsdp2_cpu_offload=true" in point[3]
    spec = memory_inputs.trainer_spec(cfg, verl, a)[0]
    assert spec.offload_policy is fsdp2 and not (fsdp2 and spec.optimizer_offload)
    assert spec.shards == gpus  # VeOmni on two trainer GPUs wraps in FSDP2: its offload applies (fsdp2_wraps)


def test_a_refused_point_says_why_and_can_be_measured_with_the_waiver(tmp_path):
    # the stored refusal: moe35b_fsdp_16k on an H100 (2026-12-06), the memory-fit line of that launch's log
    refused = next(f for f in DATA["failed"] if f["name"] == "moe35b_fsdp_16k" and f["gpu"].startswith("NVIDIA H100"))
    assert refused["exit"] == 2 and refused["reason"].startswith("[memory-fit] trainer GPU memory")
    # verl_points.failure reads the refusal the launcher records (run.json, written as liverl.launch.refusal does)
    run_dir = tmp_path / "refused"
    run_dir.mkdir()
    reason = f"{refused['reason']}\n    fix: FSDP2 CPU offload (offload_policy=true)\nNothing was launched."
    set_status(run_dir, "refused", reason=reason)
    assert verl_points.failure(run_dir, "LiveRL: refusing to launch: ...\n") == reason
    # a run that started and failed: its log's first error line, not the shutdown's that follow it
    failed = tmp_path / "failed"
    failed.mkdir()
    set_status(failed, "failed")
    oom = "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB"
    shutdown = "(TaskRunnerV1 pid=2) RuntimeError: DataLoader worker (pid 3) is killed by signal: Killed."
    assert verl_points.failure(failed, f"(WorkerDict pid=1) {oom}\n{shutdown}\n") == f"(WorkerDict pid=1) {oom}"
    # a warning's traceback is not the error: vLLM logs its GDN warm-up's failed import at WARNING and goes on
    # (the moe35b_fsdp_6k log, 2026-12-07); the error is the same import where the first prefill dies
    warmup = "(Worker pid=9) WARNING 12-07 08:55:09 [qwen_gdn_linear_attn.py:1165] ModuleNotFoundError: No module named"
    died = "(Worker pid=9) ERROR 12-07 08:59:21 [multiproc_executor.py:1000] ModuleNotFoundError: No module named"
    assert verl_points.failure(failed, f"{warmup} 'flashinfer'\n{died} 'flashinfer'\n") == f"{died} 'flashinfer'"
    # planned for an H100 it is refused as at that launch; --allow memory-fit waives the verdict, so the point runs
    # and verl says whether it runs out
    name = "moe35b_fsdp_16k"
    vocab = json.loads((point_checkpoints.ARCHS / "qwen35_35b_a3b.json").read_text())["text_config"]["vocab_size"]
    hf = point_checkpoints.text_config("moe35b", vocab)

    def plan_h100(*allow: str):
        args = verl_points.overrides(name, verl_points.POINTS[name], tmp_path / "ckpt", tmp_path / "tiny",
                                     tmp_path / "run", "dryrun", allow=allow)
        return _plan([*(a for a in args if not a.startswith(("launcher=", "hydra."))), "gpu=h100"], hf,
                     tmp_path / "ckpt")

    with pytest.raises(ConfigError) as refusal:
        plan_h100()
    assert [p.rule for p in refusal.value.problems] == ["memory-fit"]
    cfg, _ = plan_h100("memory-fit")
    assert "memory-fit" in cfg.liverl.allow


# --- what verl's non-fused path materialises (liverl/memory/terms.py), read on the stored points' own plans

def _dense(tmp_path, *extra: str):
    point = next(p for p in POINTS if p["name"] == "dense7b_fsdp_16k")
    cfg, verl = _plan([*point["overrides"], *extra], point["hf_config"], tmp_path / "ckpt")
    return cfg, verl, memory_inputs.plan_inputs(cfg, verl).trainer


def test_without_remove_padding_verl_never_chunks_the_entropy(tmp_path):
    # fsdp/transformer_impl.py:1489-1492 calls entropy_from_logits on the whole micro-batch; the chunking key
    # (set by the fsdp engine for untied models) is read only on the remove-padding branch (:1397-1405)
    _, verl, spec = _dense(tmp_path)
    assert verl.actor_rollout_ref.actor.fsdp_config.entropy_from_logits_with_chunking is True
    assert memory_inputs.logits_path(verl)["logprob_entropy"] == "eager" and not spec.remove_padding
    t, v = spec.logprob_tokens or spec.tokens, spec.arch.vocab
    assert terms.logprob_logits(spec) == 14 * t * v  # bf16 logits + fp32 softmax + logsumexp's fp32 copy and temp
    _, rmpad, _ = _dense(tmp_path, "verl.actor_rollout_ref.model.use_remove_padding=true")
    assert memory_inputs.logits_path(rmpad)["logprob_entropy"] == "chunked"
    # so the fix that helps names remove-padding: chunking alone would change nothing on this plan
    fixes = [text for text, _ in plan.fix_candidates(spec, plan.H200_BYTES)]
    assert any("use_remove_padding=true" in f for f in fixes) and not any(f.startswith("chunk the") for f in fixes)
    # and verl agreed: the same shape with the key false peaked as with it true (H100, 2026-12-06)
    by_name = {p["name"]: p["measured"] for p in POINTS}
    on, off = by_name["dense7b_fsdp_16k"], by_name["dense7b_fsdp_16k_fused_off"]
    for key in ("max_memory_allocated_gb", "max_memory_reserved_gb"):
        assert abs(off[key] / on[key] - 1) < 1e-3, (key, on[key], off[key])


def test_an_sdpa_plan_has_no_flash_attn_cross_entropy(tmp_path):
    # sdpa: no flash-attn, so logprobs_from_logits_v2 keeps an fp32 log-softmax row per token for backward
    _, _, spec = _dense(tmp_path)
    elems = spec.tokens * spec.arch.vocab
    assert not spec.flash_ce and terms.breakdown(spec)["breakdown"]["logits_forward"] == (2 + 4 + 2) * elems
    flash = [o for o in POINTS[0]["overrides"] if "attn_implementation" not in o]  # verl's default flash_attention_2
    cfg, verl = _plan(flash, POINTS[0]["hf_config"], tmp_path / "ckpt2")
    spec = memory_inputs.plan_inputs(cfg, verl).trainer
    assert spec.flash_ce and terms.breakdown(spec)["breakdown"]["logits_forward"] == (2 + 2) * elems


def test_untied_fsdp2_keeps_no_lm_head_gathered_in_the_log_prob_pass(tmp_path):
    # verl/utils/fsdp_utils.py:549-571: untied embed_tokens and lm_head are their own FSDP2 units, resharded after
    # their forward: the old-log-prob pass holds params, AdamW states, workspace, the final norm and its logits only
    _, _, spec = _dense(tmp_path)
    a, b = spec.arch, terms.breakdown(spec)
    assert spec.lm_head_unit and a.tied is False
    resident = a.total_params() * (4 + 8) + terms.COEF["const"] + 2 * a.hidden
    assert b["phases"]["log_prob"] == int(resident + terms.logprob_logits(spec))


def test_a_small_models_verl_peak_is_the_weight_syncs_bucket(tmp_path):
    """The agentic smoke's tiny model on one H100 (tests/fixtures/gpu_agentic_claude_code_5steps): verl logged 2.08 GiB
    allocated on every step, with training's own terms a few MiB. The 2 GiB is the weight sync's bucket
    (checkpoint_engine.update_weights_bucket_megabytes: 2048), which verl's never-reset peak counter keeps in every
    step's reading. Before the weight-sync phase the model predicted 0.5 GiB (the run's summary.txt)."""
    run = ROOT / "tests/fixtures/gpu_agentic_claude_code_5steps"
    cfg, verl = OmegaConf.load(run / "liverl.yaml"), OmegaConf.load(run / "verl.yaml")
    cfg.model.path = str(run / "model")  # the run's checkpoint config (hidden 256, 2 layers, vocab 771, tied)
    pred = memory_inputs.predict(cfg, verl)["trainer"]
    steps, peaks = read_run(run).series("actor/perf/max_memory_allocated_gb")
    assert list(steps) == [1, 2, 3, 4, 5]  # both attempts' streams
    measured = float(peaks.max()) * 2**30
    assert pred["peak_phase"] == "weight_sync"
    assert abs(pred["peak_bytes"] / measured - 1) <= TOLERANCE, (pred["peak_bytes"] / 2**30, measured / 2**30)
    assert "predicted trainer GPU peak 0.5 of" in (run / "summary.txt").read_text()  # what it said before


def test_the_weight_sync_never_sets_the_peak_of_the_stored_large_points(tmp_path):
    # the sync phase's guessed terms (the sender's bucket and one whole gathered tensor) cannot decide a large point:
    # even with them doubled the phase stays the model's tolerance under what verl logged. Qwen3.5's 6k point is the
    # closest: its fp32 parameters and Adam states stay resident through the sync, and its 6k window keeps the
    # activation and logit phases small
    for point in POINTS:
        cfg, verl = _plan(point["overrides"], point["hf_config"], tmp_path / point["name"])
        inputs = memory_inputs.plan_inputs(cfg, verl)
        pred = memory_inputs.predict_from(cfg, inputs)["trainer"]
        phases, b = pred["phases"], pred["breakdown"]
        states = 0 if inputs.trainer.optimizer_offload else b["optimizer_states"]  # offloaded: on the CPU in the sync
        guessed = phases["weight_sync"] - b["parameters"] - b["master_weights"] - states - terms.COEF["const"]
        assert guessed >= b["weight_sync_buffers"] > 0, point["name"]
        measured = point["measured"]["max_memory_allocated_gb"] * 2**30
        assert pred["peak_phase"] != "weight_sync", point["name"]
        assert phases["weight_sync"] + guessed < (1 - TOLERANCE) * measured, (point["name"], phases, measured)


def test_merge_keeps_other_points_failures_and_records_each_points_gpu(tmp_path):
    # one point per invocation (so a cut-off session keeps what finished): a later invocation must not drop an
    # earlier invocation's failure of another point, and a point run again replaces its own entries
    out = tmp_path / "points.json"
    ok = {"name": "a", "exit": 0, "measured": {"max_memory_allocated_gb": 1.5}}
    verl_points.merge(out, "points", [{"name": "b", "exit": 2, "reason": "[memory-fit] ..."}])
    verl_points.merge(out, "points", [ok])
    data = json.loads(out.read_text())
    assert [f["name"] for f in data["failed"]] == ["b"] and [p["name"] for p in data["points"]] == ["a"]
    assert "gpu" in data["points"][0] and "gpu" in data["failed"][0]
    verl_points.merge(out, "points", [{**ok, "name": "b"}])
    data = json.loads(out.read_text())
    assert data["failed"] == [] and sorted(p["name"] for p in data["points"]) == ["a", "b"]


def test_a_failure_stays_until_its_point_runs_again_on_the_same_gpu(tmp_path):
    # moe35b_fsdp_16k: refused on an H100 (memory-fit), failed on an H200 for another reason: both stay true
    out = tmp_path / "points.json"
    h100, h200 = "NVIDIA H100 80GB HBM3, 81559 MiB", "NVIDIA H200, 143771 MiB"
    verl_points.merge(out, "points", [{"name": "p", "exit": 2, "reason": "[memory-fit] ...", "gpu": h100}], here=False)
    verl_points.merge(out, "points", [{"name": "p", "exit": 1, "reason": "OSError", "gpu": h200}], here=False)
    assert [(f["gpu"], f["exit"]) for f in json.loads(out.read_text())["failed"]] == [(h100, 2), (h200, 1)]
    ok = {"name": "p", "exit": 0, "measured": {"max_memory_allocated_gb": 88.0}, "gpu": "NVIDIA H200"}  # run.json's
    verl_points.merge(out, "points", [ok], here=False)
    data = json.loads(out.read_text())
    assert [f["gpu"] for f in data["failed"]] == [h100] and [p["gpu"] for p in data["points"]] == ["NVIDIA H200"]
    assert "env" not in data  # rows collected elsewhere do not claim this machine's environment


def test_a_host_run_merges_into_both_lists_in_one_write(tmp_path):
    # host mode stores a GPU point's row in host_points and points; its failure is listed once
    out = tmp_path / "points.json"
    ok = {"name": "a", "exit": 0, "measured": {"max_memory_allocated_gb": 1.5}, "gpu": "NVIDIA H100"}
    bad = {"name": "b", "exit": 1, "reason": "OSError", "gpu": "NVIDIA H100"}
    verl_points.merge(out, "host_points", [ok, bad], here=False, also={"points": [ok, bad]})
    data = json.loads(out.read_text())
    assert [p["name"] for p in data["host_points"]] == ["a"] == [p["name"] for p in data["points"]]
    assert [f["name"] for f in data["failed"]] == ["b"]


def test_the_multimodal_points_checkpoint_has_what_vllm_loads(tmp_path):
    # the GPU host's moe35b point (2026-12-07): vLLM 0.24.0 builds Qwen3VLProcessor at start for a Qwen3.5
    # *ForConditionalGeneration (model_executor/models/qwen3_vl.py get_hf_processor) and its profile pass matches the
    # tokenizer's vision placeholders against the config's ids; the checkpoint had neither: "Can't load image processor"
    import transformers

    out = verl_points.checkpoint("moe35b", tmp_path / "moe35b", weights=False)
    cfg = json.loads((out / "config.json").read_text())
    for name in ("preprocessor_config.json", "video_preprocessor_config.json"):
        saved = json.loads((out / name).read_text())
        assert saved["patch_size"] == cfg["vision_config"]["patch_size"]
        assert saved["merge_size"] == cfg["vision_config"]["spatial_merge_size"]
    tok = transformers.AutoTokenizer.from_pretrained(out)
    assert len(tok) == cfg["text_config"]["vocab_size"]  # the vision tokens replace fillers: same vocabulary
    for key, token in point_checkpoints.VISION_TOKENS.items():
        assert tok.convert_tokens_to_ids(token) == cfg[key], (key, token)
    # a checkpoint from before (config, no processor) is rebuilt, not reused
    (out / "preprocessor_config.json").unlink()
    assert (verl_points.checkpoint("moe35b", out, weights=False) / "preprocessor_config.json").is_file()


# --- Qwen3.5's 4-row (M-RoPE) position ids through verl 0.9.1's own padding code (real verl and torch, on CPU)

def _mrope_batch(lengths: list[int], width: int = 12, response: int = 6):
    """A left-padded batch as verl's agent loop returns it: each sequence's full response, (4, width) position ids."""
    import torch
    from tensordict import TensorDict

    mask = torch.zeros(len(lengths), width, dtype=torch.long)
    for i, n in enumerate(lengths):
        mask[i, width - n:] = 1
    pos = torch.zeros(len(lengths), 4, width, dtype=torch.long)
    for i in range(len(lengths)):
        pos[i, :, mask[i].bool()] = torch.arange(lengths[i])
    return TensorDict({"input_ids": torch.randint(0, 100, (len(lengths), width)), "attention_mask": mask,
                       "response_mask": mask[:, -response:], "position_ids": pos}, batch_size=len(lengths))


def test_verl_cannot_split_a_step_whose_mrope_sequences_are_all_equally_long():
    # why verl_points.train_data gives every prompt its own length: the moe35b_fsdp_6k failure of 2026-12-07, here
    from verl.utils.tensordict_utils import index_select_tensor_dict, maybe_fix_3d_position_ids
    from verl.workers.utils.padding import left_right_2_no_padding

    def select(lengths):
        td = left_right_2_no_padding(_mrope_batch(lengths))
        maybe_fix_3d_position_ids(td)  # what infer_batch / train_batch do first (verl/workers/engine/base.py:124,145)
        return [tuple(t.shape) for t in index_select_tensor_dict(td, [1, 0])["position_ids"].unbind()]

    with pytest.raises(RuntimeError):
        select([10, 10, 10, 10])
    assert select([10, 9, 10, 8]) == [(4, 9), (4, 10)]


def test_the_points_prompts_all_differ_in_length(tmp_path):
    from transformers import AutoTokenizer

    from liverl.tiny.generate import generate

    generate(tmp_path, train=verl_points.TRAIN_ROWS, val=2)
    rows = __import__("pandas").read_parquet(verl_points.train_data(tmp_path))
    tok = AutoTokenizer.from_pretrained(tmp_path / "model")
    texts = [tok.apply_chat_template(list(p), add_generation_prompt=True, tokenize=False) for p in rows["prompt"]]
    lengths = [len(tok(t, add_special_tokens=False)["input_ids"]) for t in texts]
    assert len(lengths) == verl_points.TRAIN_ROWS and len(set(lengths)) == len(lengths), lengths
    assert max(lengths) <= verl_points.PROMPT, lengths
    words = [r["ground_truth"] for r in rows["reward_model"]]
    # each still asks for its own word
    assert all(p[0]["content"].endswith(w) for p, w in zip(rows["prompt"], words, strict=True))
