"""What the agentic warm start teaches works through the real harnesses: the tiny agentic tokenizer and template
(liverl.tiny.generate --agentic), a toy task (liverl.tiny.agentic) in a real Harbor trial with the real claude-code
CLI / OpenHands SDK, LiveRL's proxy with the `hermes` parser (conf/model/tiny_qwen2.yaml), and a policy that writes
exactly the warm-start transcript's assistant turns (the scripted double: no model is served here).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from harness import make_loop, run_sample
from policy_double import ScriptedPolicy
from test_real_agents import claude_code, openhands

from liverl.tiny import agentic, transcripts, warm_start

pytestmark = pytest.mark.harbor


def assistant_turns(tokenizer, example: dict) -> list[str]:
    """The transcript's trained text, turn by turn, without the closing <|im_end|> (the policy's stop token)."""
    ids, mask = warm_start.encode(tokenizer, example)
    turns, current = [], []
    for token, trained in zip(ids, mask, strict=True):
        if trained:
            current.append(token)
        elif current:
            turns.append(current)
            current = []
    return [tokenizer.decode(t).removesuffix("<|im_end|>") for t in turns]


@pytest.mark.parametrize("scaffold", ["claude_code", "ohsdk"])
def test_the_warm_start_transcript_solves_the_toy_task_through_the_real_harness(agentic_tokenizer, tmp_path: Path,
                                                                                 scaffold: str) -> None:
    example = transcripts.transcripts(1, seed=5, noise=0.0, scaffolds=(scaffold,))[0]
    turns = assistant_turns(agentic_tokenizer, example)
    assert len(turns) in (2, 3) and "<tool_call>" in turns[0]
    task = agentic.write_task(tmp_path / "tasks", "t0", example["task"])
    answers = iter(turns)
    policy = ScriptedPolicy(agentic_tokenizer, lambda prompt: next(answers, "Done."), stop_token="<|im_end|>")
    settings = claude_code(tmp_path) if scaffold == "claude_code" else openhands(tmp_path)
    loop = make_loop(agentic_tokenizer, policy, settings, parser="hermes", prompt_length=400_000,
                     response_length=400_000)
    out = run_sample(loop, task)
    assert out.reward_score == 1.0, out.extra_fields
    assert out.extra_fields["termination_reason"] == "agent_completed"
    figures = out.extra_fields["scaffold"]  # liverl/scaffold/loop_metrics.py trial_figures
    assert figures["parse_failures"] == 0.0 and figures["turns"] >= 2 and figures["trained_turn_fraction"] == 1.0
