"""Guardrails for runs that must survive at scale (issue 10): checkpoints, validation, rollout concurrency, the
per-GPU token budget, MoE on a verl without the R3 fixes, the vLLM and trainer imports where the run runs.

Registered on import (liverl.build imports this module) with the framework of liverl.check. `plan_notes` says in
the plan what the derived defaults chose.
"""

from __future__ import annotations

from collections.abc import Iterable
from importlib import util

from omegaconf import DictConfig, OmegaConf

from liverl.check import FATAL, ROLLOUT_REPLAY_KEY, SKIP, WARN, Ctx, batch_shape, finding, rule
from liverl.derive import logits_gib, rollout_replicas, tokens_per_gpu
from liverl.errors import Problem

# above this many GiB of full-vocabulary logits per micro-batch the log-prob path is a memory risk
LOGITS_WARN_GIB = 16.0
# vLLM that records routed experts correctly for hybrid-attention MoE (vllm_async_server.py:437-450)
VLLM_R3_MIN = (0, 22, 0)
NEW_VERL_FIX = "USE_NEW_VERL=1 NEW_VERL_DIR=/path/to/new-verl (the user's document: MoE policies run on the new verl)"


def trainer_imports(verl_cfg: DictConfig, mode: str) -> tuple[str, ...]:
    """Modules the chosen trainer imports at run time beyond verl itself: the synchronous entry's v1 task runner
    (trainer.use_v1, default true) imports transfer_queue (verl trainer/main_ppo.py:137, package TransferQueue,
    verl's verl-core extra)."""
    if mode == "sync" and OmegaConf.select(verl_cfg, "trainer.use_v1", default=True):
        return ("transfer_queue",)
    return ()


def rollout_gpus(verl_cfg: DictConfig) -> int:
    r = verl_cfg.actor_rollout_ref.rollout
    return int(r.nnodes) * int(r.n_gpus_per_node)


def in_flight_cap(verl_cfg: DictConfig) -> tuple[int, int, int]:
    """(replicas, prompts verl keeps in flight, prompts one trainer step needs) for a fully-async config:
    min(replicas x concurrent_samples_per_replica, required x (staleness + 1) x sync steps)
    (fully_async_rollouter.py:425, 494-506, 970)."""
    r, a = verl_cfg.actor_rollout_ref.rollout, verl_cfg.async_training
    replicas = rollout_replicas(rollout_gpus(verl_cfg), r.tensor_model_parallel_size, r.data_parallel_size)
    required, _ = batch_shape(verl_cfg, "fully_async")
    queue = int(required * (a.staleness_threshold + 1) * a.trigger_parameter_sync_step)
    return replicas, min(replicas * a.get("concurrent_samples_per_replica", 16), queue), required


def window(verl_cfg: DictConfig) -> int:
    return int(verl_cfg.data.max_prompt_length + verl_cfg.data.max_response_length)


def chunked_log_probs(verl_cfg: DictConfig) -> bool:
    """Whether the engine computes log-probs without materialising full-vocabulary logits: use_fused_kernels on
    FSDP (workers/engine/fsdp/transformer_impl.py:1158-1165) and on VeOmni (its chunk_logprobs path,
    workers/engine/veomni/transformer_impl.py:842-853)."""
    return bool(verl_cfg.actor_rollout_ref.model.get("use_fused_kernels", False))


@rule("checkpoint-save", "the run writes checkpoints (and a relaunch can resume from them), boundedly")
def _checkpoint(c: Ctx) -> Iterable[Problem]:
    t = c.verl.trainer
    if t.save_freq is None or t.save_freq <= 0:
        yield finding(
            FATAL,
            "verl.trainer.save_freq",
            t.save_freq,
            "the run never writes a checkpoint: verl gates every save, the final forced one included, on "
            "save_freq > 0 (fully_async_trainer.py:890-897, trainer/ppo/v1/trainer_base.py:481-485); the weights "
            "are lost at the end and a relaunch can never resume",
            "keep the batch's cadence (batch.save_freq), or liverl.allow=[checkpoint-save] for a throwaway run",
        )
    if t.get("resume_mode") == "resume_path" and "global_step_" not in str(t.get("resume_from_path") or ""):
        yield finding(
            FATAL,
            "verl.trainer.resume_from_path",
            t.get("resume_from_path"),
            "resume_mode=resume_path needs a path to a global_step_N directory; verl asserts it at start "
            "(trainer/ppo/v1/trainer_base.py:867)",
            "point it at RUN_DIR/checkpoints/global_step_N, or resume_mode=auto",
        )
    keep = t.get("max_actor_ckpt_to_keep")
    if t.save_freq and t.save_freq > 0 and (keep is None or keep <= 0):
        yield finding(
            WARN,
            "verl.trainer.max_actor_ckpt_to_keep",
            keep,
            "every checkpoint is kept: with optimizer state a 35B-class checkpoint is ~0.5 TB, so the shared disk "
            "fills mid-run",
            "batch.keep_checkpoints=2",
        )


@rule("validation-cadence", "validation runs, so its timeout and sampling settings guard something")
def _validation(c: Ctx) -> Iterable[Problem]:
    t = c.verl.trainer
    if (t.test_freq is None or t.test_freq <= 0) and not t.val_before_train:
        yield finding(
            WARN,
            "verl.trainer.test_freq",
            t.test_freq,
            "validation never runs (test_freq <= 0 and val_before_train=false): scaffold.harbor.val_agent_timeout_sec"
            ", val_kwargs and rule val-timeout guard nothing, and no held-out score is ever logged",
            "keep the batch's cadence (batch.test_freq, batch.val_before_train)",
        )


@rule("rollout-concurrency", "the rollout pool can keep at least one trainer step of prompts in flight")
def _concurrency(c: Ctx) -> Iterable[Problem]:
    if c.mode != "fully_async":
        return
    replicas, cap, required = in_flight_cap(c.verl)
    if cap < required:
        yield finding(
            FATAL,
            "verl.async_training.concurrent_samples_per_replica",
            c.verl.async_training.get("concurrent_samples_per_replica"),
            f"{replicas} vLLM replica(s) x this keep at most {cap} prompts in flight (fully_async_rollouter.py:"
            f"503-506, 970) while a trainer step needs {required}: every step waits for a second wave of agent "
            "episodes (up to scaffold.harbor.agent_timeout_sec each) and the trainer idles",
            f"leave it derived (liverl.derive.concurrency_per_replica), or at least {-(-required // max(replicas, 1))}",
        )


@rule("token-budget", "a full-window sequence fits the per-GPU token budget and its logits are chunked")
def _token_budget(c: Ctx) -> Iterable[Problem]:
    a = c.verl.actor_rollout_ref.actor
    need = tokens_per_gpu(window(c.verl), c.sp)
    keys = {
        "actor_rollout_ref.actor.ppo_max_token_len_per_gpu": a.ppo_max_token_len_per_gpu,
        "actor_rollout_ref.rollout.log_prob_max_token_len_per_gpu": c.v(
            "actor_rollout_ref.rollout.log_prob_max_token_len_per_gpu"
        ),
    }
    for key, value in keys.items():
        if a.use_dynamic_bsz and value is not None and value < need:
            yield finding(
                FATAL,
                f"verl.{key}",
                value,
                f"a full-window sequence ({window(c.verl)} tokens / SP {c.sp}) does not fit: verl asserts every "
                "sequence fits a micro-batch (utils/seqlen_balancing.py:384)",
                f"leave it derived ({need}), or a smaller window",
            )
    vocab = c.cfg.model.get("vocab_size")
    if vocab and not chunked_log_probs(c.verl):
        gib = logits_gib(a.ppo_max_token_len_per_gpu, vocab)
        if gib > LOGITS_WARN_GIB:
            yield finding(
                WARN,
                "verl.actor_rollout_ref.model.use_fused_kernels",
                False,
                f"log-probs materialise full-vocabulary logits: {a.ppo_max_token_len_per_gpu} tokens x {vocab} vocab "
                f"~ {gib:.0f} GiB (bf16 + fp32 upcast) per micro-batch before weights and activations; a "
                "full-window micro-batch can OOM",
                "a chunked log-prob path (engine=fsdp turns on verl's fused kernels; VeOmni's sits behind "
                "use_fused_kernels, kept off by rule veomni-fused-offload), or a smaller window",
            )


@rule("moe-new-verl", "MoE policies run on the new verl (the R3 fixes), as the user's document says")
def _moe_new_verl(c: Ctx) -> Iterable[Problem]:
    if not c.is_moe or "checkout" in c.verl_label:
        return
    yield finding(
        FATAL if c.launching else WARN,
        "verl.source",
        c.verl_label or "installed",
        f"{c.cfg.model.name} is MoE and the verl that runs has no engine-worker R3 wiring nor the async-rollouter "
        "routed_experts fixes: rollout and training routing diverge"
        + (" (FSDP: no replay at all, workers/engine_workers.py:496-505)" if c.cfg.engine.name == "fsdp" else "")
        + ". A launch refuses this unless waived"
        + ("" if c.launching else " (planning only: WARN)"),
        f"{NEW_VERL_FIX}, or liverl.allow=[moe-new-verl] to run anyway (recorded as WAIVED with this reason)",
    )


@rule("vllm-r3-version", "R3 router replay has vLLM >= 0.22 where the rollout runs")
def _vllm_r3(c: Ctx) -> Iterable[Problem]:
    if c.v(ROLLOUT_REPLAY_KEY):
        yield finding(
            SKIP,
            "rollout image",
            f"vllm >= {'.'.join(map(str, VLLM_R3_MIN))}",
            "verl raises after the nodes are allocated when vLLM < 0.22 records routes for R3 (workers/rollout/"
            "vllm_rollout/vllm_async_server.py:437-450); checked on every node before training starts",
            "nothing to do here; a launch refuses with the fix if a node's vLLM is older",
        )


@rule("trainer-imports", "the chosen trainer's imports resolve where it runs")
def _trainer_imports(c: Ctx) -> Iterable[Problem]:
    for module in trainer_imports(c.verl, c.mode):
        if c.structure_only:
            continue
        if util.find_spec(module) is None:
            yield finding(
                FATAL if c.launching else WARN,
                "training image",
                module,
                f"verl's {c.mode} trainer imports {module} at start (trainer/main_ppo.py:137) and it is not installed "
                "here: the run would fail after the cluster is up",
                "make install (requirements.lock pins TransferQueue), or verl.trainer.use_v1=false",
            )


def plan_notes(cfg: DictConfig, verl_cfg: DictConfig) -> list[str]:
    """What the derived defaults chose, for the plan's summary."""
    t, a = verl_cfg.trainer, verl_cfg.actor_rollout_ref.actor
    notes = [
        f"checkpoints: every {t.save_freq} step(s) and at the end, keep {t.max_actor_ckpt_to_keep}, under "
        f"{t.default_local_dir}",
        f"validation: every {t.test_freq} step(s){', and before training' if t.val_before_train else ''}, "
        f"{'all' if verl_cfg.data.val_max_samples < 0 else verl_cfg.data.val_max_samples} task(s), temperature "
        f"{verl_cfg.actor_rollout_ref.rollout.val_kwargs.temperature}",
    ]
    if cfg.mode.name == "fully_async":
        replicas, cap, required = in_flight_cap(verl_cfg)
        notes.append(
            f"rollout concurrency: {replicas} replica(s) x {verl_cfg.async_training.concurrent_samples_per_replica} "
            f"= up to {cap} prompts in flight ({required} per trainer step)"
        )
    tokens, vocab = a.ppo_max_token_len_per_gpu, cfg.model.get("vocab_size")
    path = (
        "log-probs chunked (fused kernels): no full-vocabulary logits"
        if chunked_log_probs(verl_cfg)
        else f"log-probs materialise logits ~ {logits_gib(tokens, vocab):.0f} GiB per micro-batch"
        if vocab
        else "log-probs materialise full-vocabulary logits"
    )
    notes.append(f"tokens/GPU: {tokens} (one full window / SP, utils/seqlen_balancing.py:384); {path}")
    return notes
