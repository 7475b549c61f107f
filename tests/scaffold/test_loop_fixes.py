"""The Harbor loop's fixes that need no Harbor trial: the filter's sampler on TransferQueue's own column type (F1),
a trial with no model call through verl's fully-async batch statistics (F4), the fallback prompt cap (F13), the
qwen3_coder parser against the tool schema (F7), and the per-trial figures (scaffold/*)."""

from __future__ import annotations

import asyncio
import json
from types import SimpleNamespace

import pytest
from harness import make_loop
from omegaconf import OmegaConf
from policy_double import ScriptedPolicy
from tensordict import TensorDict
from transfer_queue import KVBatchMeta
from transfer_queue.storage.managers.simple_storage_manager import AsyncSimpleStorageManager
from verl.experimental.agent_loop.agent_loop import AgentLoopWorker
from verl.experimental.fully_async_policy.detach_utils import RolloutSample, assemble_batch_from_rollout_samples
from verl.trainer.ppo.v1.replay_buffer import ReplayBuffer

from liverl.scaffold import traj_filter
from liverl.scaffold.agent_loop import HarborAgentLoop, trial_cap
from liverl.scaffold.loop_metrics import KEPT_SCORE, batch_metrics, trial_figures
from liverl.scaffold.toolcalls import parse
from liverl.scaffold.traj_filter import METRIC_INVALID, TrajectoryFilterReplayBuffer

ROWS = [
    {"termination_reason": "agent_completed", "trajectory_filter_drop": False, "verifier_reward": 1.0,
     "reward_missing": False, "scaffold": {"turns": 4.0, "chains": 1.0, "trained_turn_fraction": 1.0}},
    {"termination_reason": "timeout", "trajectory_filter_drop": True, "verifier_reward": 0.0,
     "reward_missing": False, "scaffold": {"turns": 9.0, "chains": 2.0, "trained_turn_fraction": 0.5}},
    {"termination_reason": "env_setup_failed", "trajectory_filter_drop": True, "verifier_reward": None,
     "reward_missing": True, "scaffold": {"turns": 0.0, "chains": 0.0, "trained_turn_fraction": None}},
    {"termination_reason": "agent_completed", "trajectory_filter_drop": False, "verifier_reward": 0.0,
     "reward_missing": False, "scaffold": {"turns": 2.0, "chains": 1.0, "trained_turn_fraction": 1.0}},
]


def test_sampler_reads_the_column_transfer_queue_returns(monkeypatch) -> None:
    """The TensorDict is packed by TransferQueue's own storage manager, as its get_data does
    (simple_storage_manager.py:649-651): a NonTensorStack, whose items tensordict 0.10 returns as a LinkedList."""
    keys = [f"uid{i}_0_0" for i in range(len(ROWS))]
    packed = TensorDict({"extra_fields": AsyncSimpleStorageManager._pack_field_values(list(ROWS))},
                        batch_size=len(ROWS))
    # doubles of the two TransferQueue round trips (its Ray storage actors are not started here)
    monkeypatch.setattr(ReplayBuffer, "sample", lambda self, **kw: (KVBatchMeta(partition_id="train", keys=keys,
                                                                                tags=[{}] * len(keys)), {}))
    monkeypatch.setattr(traj_filter.tq, "kv_batch_get", lambda keys, partition_id, select_fields: packed)
    buffer = TrajectoryFilterReplayBuffer(trainer_mode="sync", trainer_config=OmegaConf.create({}),
                                          max_off_policy_threshold=None, max_off_policy_strategy="drop",
                                          sampler_kwargs={"train_batch_size": 2})
    _, metrics = buffer.sample(global_steps=1, partition_id="train", batch_size=len(ROWS))
    assert metrics[METRIC_INVALID] == pytest.approx(0.5)
    # the kept rows' verifier reward: rows 0 and 3 (1.0, 0.0); verl's critic/score/mean would average all four
    assert metrics[KEPT_SCORE] == pytest.approx(0.5)
    assert metrics["trajectory_filter/reward_missing"] == 1
    assert metrics["scaffold/turns/mean"] == pytest.approx(15 / 4)
    assert metrics["scaffold/multi_turn_fraction"] == pytest.approx(3 / 4)  # 4, 9 and 2 turns; not the 0
    assert metrics["scaffold/trained_turn_fraction/mean"] == pytest.approx(2.5 / 3)  # the None row is left out


def test_metrics_of_a_batch_with_nothing_kept_have_no_nan() -> None:
    rows = [dict(r, trajectory_filter_drop=True) for r in ROWS]
    metrics = batch_metrics(rows)
    assert KEPT_SCORE not in metrics
    assert all(v == v for v in metrics.values())  # no NaN


def _postprocessor(tokenizer, prompt_length: int = 64) -> AgentLoopWorker:
    """verl's AgentLoopWorker post-processing without its Ray/config construction (attributes it reads)."""
    worker = object.__new__(AgentLoopWorker)
    worker.rollout_config = SimpleNamespace(prompt_length=prompt_length, response_length=16)
    worker.tokenizer, worker.processor = tokenizer, None
    worker.reward_loop_worker_handles, worker.distillation_enabled, worker.mm_processor_kwargs = None, False, {}
    return worker


def _no_call_output(tokenizer, **sample):
    """A real HarborAgentLoop sample that makes no model call (no task path: nothing reaches Harbor)."""
    loop = make_loop(tokenizer, ScriptedPolicy(tokenizer, lambda p: "unused"), {"max_retries": 0},
                     prompt_length=64, response_length=16)
    return asyncio.run(loop.run({"temperature": 1.0}, **sample))


def test_a_trial_with_no_model_call_passes_verls_fully_async_statistics(tokenizer) -> None:
    """Fully async hands the loop dataset columns only (no global_steps, agent_loop.py:645); verl then takes
    abs(max - min) over every row (detach_utils.py:151-153)."""
    out = _no_call_output(tokenizer, raw_prompt=[{"role": "user", "content": "task"}])
    assert out.extra_fields["model_calls"] == 0 and out.extra_fields["termination_reason"] == "env_setup_failed"
    worker = _postprocessor(tokenizer)
    internal = asyncio.run(worker._agent_loop_postprocess(out, False, raw_prompt=[]))
    data = worker._postprocess([internal])
    batch = assemble_batch_from_rollout_samples(
        [RolloutSample(full_batch=data, sample_id="s0", epoch=0, rollout_status={})], tokenizer, config=None)
    assert batch.meta_info["fully_async/partial/max_partial_span"] == 0


def test_the_fallback_prompt_is_capped_to_prompt_length(tokenizer) -> None:
    long = " ".join(f"word{i}" for i in range(400))
    out = _no_call_output(tokenizer, raw_prompt=[{"role": "user", "content": long}])
    assert len(out.prompt_ids) == 64
    # verl left-truncates (agent_loop.py:437-446): the prompt ends like the full render
    full = tokenizer.apply_chat_template([{"role": "user", "content": long}], add_generation_prompt=True,
                                         tokenize=False)
    assert out.prompt_ids == tokenizer.encode(full, add_special_tokens=False)[-64:]


BASH = {"type": "function", "function": {"name": "Bash", "parameters": {"type": "object", "properties": {
    "command": {"type": "string"}, "timeout": {"type": "number"}, "run_in_background": {"type": "boolean"}}}}}
WRITE = {"type": "function", "function": {"name": "Write", "parameters": {"type": "object", "properties": {
    "file_path": {"type": "string"}, "content": {"type": "string"}, "lines": {"type": ["integer", "null"]},
    "meta": {"type": "object"}}}}}


def _xml(name: str, **params: str) -> str:
    body = "".join(f"<parameter={k}>\n{v}\n</parameter>\n" for k, v in params.items())
    return f"<tool_call>\n<function={name}>\n{body}</function>\n</tool_call>"


def test_qwen3_coder_keeps_string_parameters_as_written() -> None:
    text = _xml("Bash", command="true", timeout="30", run_in_background="false") + _xml(
        "Write", file_path="/app/x.json", content='{"a": 1}\n\n', lines="42", meta='{"k": [1, 2]}')
    calls = parse(text, "qwen3_coder", [BASH, WRITE]).tool_calls
    assert calls[0].arguments == {"command": "true", "timeout": 30, "run_in_background": False}
    # one leading and one trailing newline are the format's; the file's own trailing blank line stays
    assert calls[1].arguments == {"file_path": "/app/x.json", "content": '{"a": 1}\n\n', "lines": 42,
                                  "meta": {"k": [1, 2]}}


def test_qwen3_coder_without_a_schema_keeps_every_value_a_string() -> None:
    calls = parse(_xml("Edit", old_string="42", new_string="null-ish"), "qwen3_coder").tool_calls
    assert calls[0].arguments == {"old_string": "42", "new_string": "null-ish"}


@pytest.mark.parametrize("parser,text,failures", [
    ("qwen3_coder", _xml("Bash", command="ls") + "<tool_call>\nno function here\n</tool_call>", 1),
    ("hermes", '<tool_call>{"name": "a", "arguments": {}}</tool_call><tool_call>{broken</tool_call>', 1),
    ("hermes", '<tool_call>{"name": "a", "arguments": {}}</tool_call> and then <tool_call>{"name": "b"', 1),
    ("qwen3_coder", _xml("Bash", command="ls"), 0),
])
def test_parse_failures_count_blocks_that_did_not_become_calls(parser, text, failures) -> None:
    parsed = parse(text, parser, [BASH])
    assert parsed.failures == failures and len(parsed.tool_calls) == 1


def test_trial_figures_read_the_session() -> None:
    chain = SimpleNamespace(turns=3, mask=[1, 1, 0, 1, 0, 1], ended_at=100.0)
    other = SimpleNamespace(turns=1, mask=[1, 1])
    session = SimpleNamespace(chains=[other, chain], rewrites=1, parse_failures=2, sampled_tokens=6)
    figures = trial_figures(session, chain, trial_s=50.0, now=112.5)
    assert figures["turns"] == 4 and figures["chains"] == 2 and figures["trained_turn_fraction"] == 0.75
    assert figures["trained_token_fraction"] == pytest.approx(4 / 6)
    assert figures["parse_failures"] == 2 and figures["waste_s"] == pytest.approx(12.5)
    json.dumps(figures)  # travels in extra_fields through TransferQueue and verl's non-tensor batch


def test_trials_per_worker_are_capped(tokenizer, monkeypatch) -> None:
    """At most `max_concurrent_trials` samples of one worker (one event loop) are inside a trial at once."""
    loop = make_loop(tokenizer, ScriptedPolicy(tokenizer, lambda p: "unused"),
                     {"max_retries": 0, "max_concurrent_trials": 2}, prompt_length=64, response_length=16)
    inside, peak, original = [0], [0], HarborAgentLoop._run

    async def counted(self, sampling_params, **kwargs):  # instruments the loop's own trial section
        inside[0] += 1
        peak[0] = max(peak[0], inside[0])
        await asyncio.sleep(0.2)
        try:
            return await original(self, sampling_params, **kwargs)
        finally:
            inside[0] -= 1

    monkeypatch.setattr(HarborAgentLoop, "_run", counted)

    async def five() -> list:
        return await asyncio.gather(*(loop.run({"temperature": 1.0}, raw_prompt=[{"role": "user", "content": "t"}])
                                      for _ in range(5)))

    assert len(asyncio.run(five())) == 5 and peak[0] == 2


@pytest.mark.parametrize("overrides,expected", [
    # sync: one step's batch (train_bsz x n) over the 8 agent-loop workers: no throttling
    (("batch=official",), lambda v: v.data.train_batch_size * v.actor_rollout_ref.rollout.n // 8),
    # fully async: verl's in-flight samples (concurrent_samples_per_replica x replicas) over the workers
    (("topology=2node", "batch=official"), lambda v: -(-v.async_training.concurrent_samples_per_replica * (
        v.rollout.nnodes * v.rollout.n_gpus_per_node // v.actor_rollout_ref.rollout.tensor_model_parallel_size)
        // v.actor_rollout_ref.rollout.agent.num_workers)),
])
def test_the_trial_cap_is_the_workers_share_of_the_rollout(overrides, expected) -> None:
    from liverl.recipe.build import build
    from liverl.recipe.compose import compose_liverl

    verl = build(compose_liverl(list(overrides))).verl
    assert verl.actor_rollout_ref.rollout.agent.num_workers == 8
    assert trial_cap(verl) == expected(verl) > 1


def test_a_batch_whose_every_trajectory_was_dropped_stops_saying_why() -> None:
    # on the GPU host every OpenHands SDK trial failed its runtime check and verl stopped in its rollout correction
    # ("response_mask must contain at least one valid token"), far from the cause
    dropped = [ROWS[1], ROWS[2], ROWS[2]]
    with pytest.raises(RuntimeError, match=r"step 3: the trajectory filter dropped all 3 trajectories of the batch "
                                           r"\(env_setup_failed: 2, timeout: 1\)"):
        traj_filter.nothing_left(3, dropped)
    traj_filter.nothing_left(3, [*dropped, ROWS[0]])  # one kept trajectory is enough to train on
    traj_filter.nothing_left(3, [])
    traj_filter.nothing_left(3, [*dropped, {"other_loop": True}])  # a row the filter does not judge
