"""Real Harbor trials (Harbor 0.25 in .venv-harbor) of a tiny real task, driven through LiveRL's proxy.

The agent is a real harness (mini_agent.MiniAgent, OpenAI chat completions) in a local subprocess environment
(local_env.LocalEnvironment); the policy is the scripted double behind verl's server-manager interface, emitting
real token ids of a real tokenizer. Each test asserts the reward, the termination reason and token faithfulness:
the trained tokens with mask 1 are exactly the tokens the policy sampled.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from harness import harbor_settings, make_loop, run_sample
from policy_double import ScriptedPolicy, after_tool_output, tool_call
from tasks import write_task

pytestmark = pytest.mark.harbor




def solver(command: str = "echo 42 > answer.txt"):
    def script(prompt: str) -> str:
        if after_tool_output(prompt):
            return "The file is written. Done."
        return "I will write the file.\n" + tool_call("bash", command=command)

    return script


def sampled_tokens(out) -> list[int]:
    return [t for t, m in zip(out.response_ids, out.response_mask, strict=True) if m == 1]


def test_solved_task_gets_reward_1_and_completed(tokenizer, tmp_path: Path) -> None:
    policy = ScriptedPolicy(tokenizer, solver())
    out = run_sample(make_loop(tokenizer, policy, harbor_settings(tmp_path)), write_task(tmp_path))
    assert out.reward_score == 1.0
    assert out.extra_fields["termination_reason"] == "agent_completed"
    assert len(policy.calls) == 2 and out.extra_fields["model_calls"] == 2
    # token faithfulness: mask-1 tokens are the sampled ones, in order, with their log-probs
    assert sampled_tokens(out) == policy.calls[0].token_ids + policy.calls[1].token_ids
    logp = [lp for lp, m in zip(out.response_logprobs, out.response_mask, strict=True) if m == 1]
    assert logp == policy.calls[0].log_probs + policy.calls[1].log_probs
    # the second generation saw exactly the trained sequence up to that point
    seq = out.prompt_ids + out.response_ids
    assert policy.calls[1].prompt_ids == seq[: len(policy.calls[1].prompt_ids)]
    # the observation (tool output) is in the sequence with mask 0
    observed = tokenizer.decode([t for t, m in zip(out.response_ids, out.response_mask, strict=True) if m == 0])
    assert "<tool_response>" in observed and "exit code 0" in observed
    assert out.num_turns == 4  # user, assistant, tool, final assistant (verl counts no system message)


def test_wrong_answer_gets_reward_0(tokenizer, tmp_path: Path) -> None:
    policy = ScriptedPolicy(tokenizer, solver("echo 41 > answer.txt"))
    out = run_sample(make_loop(tokenizer, policy, harbor_settings(tmp_path)), write_task(tmp_path))
    assert out.reward_score == 0.0
    assert out.extra_fields["termination_reason"] == "agent_completed"
    assert not out.extra_fields["trajectory_filter_drop"] and sum(out.response_mask) > 0


def test_the_tasks_commands_do_not_get_the_runners_python_path(tokenizer, tmp_path: Path) -> None:
    # Harbor's runner has LiveRL on PYTHONPATH (liverl/paths.py harbor_env): a container would not hand it to the
    # task; on the GPU host the trainer's packages on it shadowed the OpenHands SDK runtime's own
    policy = ScriptedPolicy(tokenizer, solver('[ -z "${PYTHONPATH+set}" ] && echo 42 > answer.txt'))
    out = run_sample(make_loop(tokenizer, policy, harbor_settings(tmp_path)), write_task(tmp_path))
    assert out.reward_score == 1.0


def test_slow_agent_times_out_and_is_dropped(tokenizer, tmp_path: Path) -> None:
    policy = ScriptedPolicy(tokenizer, solver(), delay_sec=4.0)
    harbor = harbor_settings(tmp_path, agent_timeout_sec=2)
    out = run_sample(make_loop(tokenizer, policy, harbor), write_task(tmp_path))
    assert out.extra_fields["termination_reason"] == "timeout"
    assert out.extra_fields["trial_exception"] == "AgentTimeoutError"
    assert out.reward_score == 0.0  # Harbor still ran the verifier: nothing was written
    assert out.extra_fields["trajectory_filter_drop"] and sum(out.response_mask) == 0
    assert out.extra_fields["trial_attempts"] == 1  # a timeout is not retried


def test_validation_sample_uses_val_agent_timeout(tokenizer, tmp_path: Path) -> None:
    policy = ScriptedPolicy(tokenizer, solver(), delay_sec=3.0)
    harbor = harbor_settings(tmp_path, agent_timeout_sec=1, val_agent_timeout_sec=60)
    out = run_sample(make_loop(tokenizer, policy, harbor), write_task(tmp_path),
                     extra_info={"harbor_task_path": str(write_task(tmp_path)), "split": "val"})
    assert out.extra_fields["termination_reason"] == "agent_completed" and out.reward_score == 1.0


def test_environment_start_failure_is_env_setup_failed_after_bounded_retries(tokenizer, tmp_path: Path) -> None:
    policy = ScriptedPolicy(tokenizer, solver())
    harbor = harbor_settings(tmp_path, environment_kwargs={"fail_start": True}, max_retries=1)
    out = run_sample(make_loop(tokenizer, policy, harbor), write_task(tmp_path))
    assert out.extra_fields["termination_reason"] == "env_setup_failed"
    assert out.extra_fields["trial_attempts"] == 2 and out.extra_fields["reward_missing"]
    assert policy.calls == [] and sum(out.response_mask) == 0 and len(out.response_ids) == 1


def test_history_rewrite_trains_only_sampled_tokens(tokenizer, tmp_path: Path) -> None:
    turns = {"n": 0}

    def script(prompt: str) -> str:
        turns["n"] += 1
        if turns["n"] >= 4:
            return "Done."
        command = "echo 42 > answer.txt" if turns["n"] == 3 else f"echo step{turns['n']}"
        return f"Step {turns['n']}.\n" + tool_call("bash", command=command)

    policy = ScriptedPolicy(tokenizer, script)
    harbor = harbor_settings(tmp_path, agent_kwargs={"compact_after": 2})
    out = run_sample(make_loop(tokenizer, policy, harbor), write_task(tmp_path))
    assert out.reward_score == 1.0 and out.extra_fields["termination_reason"] == "agent_completed"
    assert out.extra_fields["history_rewrites"] == 1
    # chains: calls 1-2 (before the rewrite) and calls 3-4 (after it); the trained one is the later (tie on turns)
    assert sampled_tokens(out) == policy.calls[2].token_ids + policy.calls[3].token_ids
    # the rewritten history is prompt for the new chain: what call 3 saw is the trained prompt
    assert out.prompt_ids == policy.calls[2].prompt_ids
    seq = out.prompt_ids + out.response_ids
    assert policy.calls[3].prompt_ids == seq[: len(policy.calls[3].prompt_ids)]
