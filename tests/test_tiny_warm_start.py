"""The warm start (liverl.tiny.warm_start) of the tiny agentic model: real tokenizer, real Qwen2 model, plain torch.

A tiny config (1 layer, hidden 64) so a few CPU steps take about a second.
"""

from __future__ import annotations

import json
import platform
import subprocess
import sys
from pathlib import Path

import pytest

from liverl.scaffold.render import Renderer
from liverl.scaffold.toolcalls import parse
from liverl.tiny import transcripts, warm_start


@pytest.fixture
def tiny(tiny_agentic_model: Path) -> Path:
    return tiny_agentic_model


@pytest.fixture
def tokenizer(agentic_tokenizer):
    return agentic_tokenizer


def test_vocabulary_equals_tokenizer(tiny: Path, tokenizer) -> None:
    assert json.loads((tiny / "config.json").read_text())["vocab_size"] == len(tokenizer)


def test_trained_tokens_are_the_assistant_turns_and_parse_as_the_scaffold_reads_them(tokenizer) -> None:
    for example in transcripts.transcripts(4, seed=1, noise=0.0):
        ids, mask = warm_start.encode(tokenizer, example)
        assert tokenizer.decode(ids) == tokenizer.apply_chat_template(example["messages"], tools=example["tools"],
                                                                      tokenize=False)  # the whole transcript
        trained = tokenizer.decode([t for t, m in zip(ids, mask, strict=True) if m])
        user = example["messages"][1]["content"]
        assert user not in trained and transcripts.SYSTEM not in trained  # prompt text is never trained
        assert not trained.endswith("\n") and trained.endswith("<|im_end|>")  # generation stops at <|im_end|>
        parsed = parse(trained, "hermes", example["tools"])
        assert parsed.failures == 0 and parsed.tool_calls
        tool = example["tools"][0]["function"]["name"]
        assert {c.name for c in parsed.tool_calls} == {tool} and tool in ("Bash", "terminal")
        first = parsed.tool_calls[0].arguments["command"]
        assert first == example["messages"][2]["tool_calls"][0]["function"]["arguments"]["command"]


def test_template_renders_appended_tool_results_as_the_proxy_needs(tokenizer) -> None:
    example = transcripts.transcripts(1)[0]
    renderer = Renderer(tokenizer)
    prompt = renderer.prompt(example["messages"][:2], example["tools"])
    assert b"<tools>" in tokenizer.decode(prompt).encode()
    tail = renderer.appended(renderer.im_end, [{"role": "tool", "content": "ok"}], example["tools"])
    assert tokenizer.decode(tail) == "\n<|im_start|>tool\nok<|im_end|>\n<|im_start|>assistant\n"


def test_a_few_steps_lower_the_loss_and_save_a_loadable_model(tiny: Path, tmp_path: Path) -> None:
    report = warm_start.warm_start(tiny, tmp_path / "ws", steps=4, lr=3e-3, batch_size=4, examples=8)
    assert report["last_loss"] < report["first_loss"]
    saved = json.loads((tmp_path / "ws" / "warm_start.json").read_text())
    assert saved["steps"] == 4 and len(saved["losses"]) == 4
    config = json.loads((tmp_path / "ws" / "config.json").read_text())
    assert config["vocab_size"] == json.loads((tiny / "config.json").read_text())["vocab_size"]
    assert (tmp_path / "ws" / "tokenizer.json").is_file() and (tmp_path / "ws" / "generation_config.json").is_file()


def test_cli_rejects_a_folder_without_a_model(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "liverl.tiny.warm_start", str(tmp_path), str(tmp_path / "o")],
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 2 and proc.stderr.startswith("model:") and "Traceback" not in proc.stderr


CAPTURED = {"ohsdk": {  # the shape liverl.conform's conform.capture writes (synthetic text, not a harness's prose)
    "instruction": "Write the number 42 into answer.txt.",
    "messages": [{"role": "system", "content": "Harness rules."},
                 {"role": "user", "content": "<ctx>\nWrite the number 42 into answer.txt.\n</ctx>"}],
    "tools": [transcripts.shell_tool("terminal"),
              {"type": "function", "function": {"name": "finish", "description": "end", "parameters": {}}}]}}


def test_a_captured_harness_prompt_carries_the_toy_instruction(tokenizer) -> None:
    example = transcripts.transcripts(2, harness=CAPTURED, scaffolds=("ohsdk",))[1]
    prompt = example["messages"][:2]
    assert prompt[0]["content"] == "Harness rules." and example["tools"] == CAPTURED["ohsdk"]["tools"]
    assert "42" not in prompt[1]["content"] and prompt[1]["content"].startswith("<ctx>\n")
    assert any(word in prompt[1]["content"] for word in ("Create the file", "Make this one-line test pass"))
    ids, mask = warm_start.encode(tokenizer, example)
    trained = tokenizer.decode([t for t, m in zip(ids, mask, strict=True) if m])
    assert next(c.name for c in parse(trained, "hermes", example["tools"]).tool_calls) == "terminal"
    stale = {"ohsdk": dict(CAPTURED["ohsdk"], instruction="Another task.")}
    with pytest.raises(ValueError, match=r"^harness\.ohsdk\.instruction: not in the captured messages"):
        transcripts.transcripts(1, harness=stale, scaffolds=("ohsdk",))


def test_a_fresh_trials_directory_name_replaces_the_captured_one_everywhere() -> None:
    import random
    import re

    import liverl

    # the name LiveRL's local environment gives each trial (claude-code writes it into its prompt three times); the
    # module imports Harbor (its own Python), so its source is read
    source = (Path(liverl.__file__).parent / "scaffold" / "local_env.py").read_text()
    assert f'mkdtemp(prefix="{transcripts.WORKDIR_PREFIX}")' in source
    old = "liverl-localenv-vrsed_xx"
    captured = {"claude_code": {
        "instruction": "Write 42.", "tools": [transcripts.shell_tool("Bash")],
        "messages": [{"role": "system", "content": f"memory at /tmp/{old}/logs (-tmp-{old.replace('_', '-')}-app)"},
                     {"role": "user", "content": "Write 42."},
                     {"role": "system", "content": f"Primary working directory: /tmp/{old}/app"}]}}
    task = transcripts.make_task("file", random.Random(0))
    same = transcripts.first_request(task, "claude_code", captured)[0]
    assert sum(old in m["content"] for m in same) == 2  # training keeps the captured prompt (its prefix is shared)
    messages, tools = transcripts.first_request(task, "claude_code", captured, workdir=random.Random(1))
    text = json.dumps(messages)
    names = set(re.findall(r"liverl-localenv-[a-z0-9]{8}", text))
    assert "vrsed" not in text and len(names) == 1 and text.count(names.pop()) == 3
    assert messages[1]["content"] == task.instruction and tools == captured["claude_code"]["tools"]


@pytest.mark.parametrize(("reply", "command"), [
    ('Writing.\n<tool_call>{"name": "Bash", "arguments": {"command": "echo hi > a.txt"}}</tool_call><|im_end|>',
     "echo hi > a.txt"),
    ('<tool_call>{"name": "terminal", "arguments": {"command": "ls"}}</tool_call>', None),  # another harness's tool
    ('<tool_call>{"name": "Bash", "arguments": {"command": "ls"</tool_call>', None),  # broken JSON
    ('<tool_call>{"name": "Bash", "arguments": {"command": 42}}</tool_call>', None),  # not a string
    ("Done.<|im_end|>", None),
    # a broken block is skipped and the next one read; arguments as a JSON string (both as the hermes parser does)
    ('<tool_call>{oops</tool_call><tool_call>{"name": "Bash", "arguments": "{\\"command\\": \\"ls\\"}"}</tool_call>',
     "ls"),
])
def test_the_first_turn_score_reads_a_shell_call_as_the_hermes_parser_would(reply: str, command: str | None) -> None:
    assert warm_start._shell_command(reply, "Bash") == command
    # the twin it must agree with: what the scaffold's parser hands the harness
    calls = [c for c in parse(reply, "hermes").tool_calls
             if c.name == "Bash" and isinstance(c.arguments.get("command"), str)]
    assert (calls[0].arguments["command"] if calls else None) == command


def test_the_warm_start_reports_its_first_turn_behaviour_on_fresh_tasks(tiny: Path, tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    judged = []
    evaluate = warm_start.evaluate
    monkeypatch.setattr(warm_start, "evaluate", lambda model, *a, **k: judged.append(
        {p.dtype for p in model.parameters()} == {torch.bfloat16}) or evaluate(model, *a, **k))
    report = warm_start.warm_start(tiny, tmp_path / "ws", steps=2, lr=3e-3, batch_size=2, examples=4, eval_tasks=4)
    turn = json.loads((tmp_path / "ws" / "warm_start.json").read_text())["first_turn"]
    assert turn == report["first_turn"] and turn["tasks"] == 4
    assert 0.0 <= turn["solved_rate"] <= turn["tool_call_rate"] <= 1.0
    # judged as vLLM serves the model (bf16 weights, bf16 compute), not on the fp32 weights training ends with
    assert judged == [True] and turn["weights"] == "bf16"


@pytest.mark.parametrize("per_forward", [4, 3, 1])  # tails per forward (MASK_BUDGET): all, 3 + 1, one by one
def test_the_shared_prompt_runs_once_per_step_with_the_full_forwards_loss_and_gradient(
        tiny: Path, tokenizer, per_forward: int, monkeypatch: pytest.MonkeyPatch) -> None:
    # a harness's system prompt and tools (~20-24k tokens) are the same in every example: the step runs them once
    import torch
    from transformers import AutoModelForCausalLM

    long_rules = dict(CAPTURED["ohsdk"], messages=[{"role": "system", "content": "Harness rules, at length. " * 120},
                                                   CAPTURED["ohsdk"]["messages"][1]])
    shared, stream = warm_start.batches(tokenizer, 8, 4, 0, 0.2, {"ohsdk": long_rules}, ("ohsdk",))
    batch = next(stream)
    assert shared >= warm_start.MIN_SHARED
    assert all(torch.equal(ids[:shared], batch[0][0][:shared]) for ids, _ in batch)
    assert all(bool((labels[: shared + 1] == -100).all()) for _, labels in batch)  # nothing trained in the prefix
    assert len({len(ids) for ids, _ in batch}) > 1  # tails of different lengths: padded in a forward
    width = max(len(ids) for ids, _ in batch) - shared
    monkeypatch.setattr(warm_start, "MASK_BUDGET", per_forward * width * (shared + width))
    model = AutoModelForCausalLM.from_pretrained(tiny, dtype=torch.float32)
    whole = warm_start.step_loss(model, batch, "cpu")
    grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    assert abs(warm_start.step_loss(model, batch, "cpu", shared) - whole) < 1e-4 * whole
    # and the same gradient: the examples' gradients on the prefix's keys and values go back through it
    for before, p in zip(grads, model.parameters(), strict=True):
        assert torch.allclose(p.grad, before, rtol=1e-3, atol=1e-6)
    # the stand-in prompt shares too little to be worth a separate pass
    assert warm_start.batches(tokenizer, 8, 4, 0, 0.2)[0] == 0


def test_the_learning_rate_warms_up_then_decays_to_its_floor() -> None:
    steps = 1000
    factors = [warm_start.lr_factor(s, steps) for s in range(steps)]
    peak = factors.index(max(factors))
    assert factors[0] < 0.05 and max(factors) == 1.0 and peak == steps // 20 - 1
    assert all(a >= b for a, b in zip(factors[peak:], factors[peak + 1:], strict=False))  # never rises again
    assert factors[-1] == pytest.approx(warm_start.LR_FLOOR)


def test_the_served_forward_trains_a_bf16_copy_and_steps_the_fp32_weights(tiny: Path, tokenizer,
                                                                           tmp_path: Path) -> None:
    # forward="bf16": the loss and gradient come from the weights as vLLM serves them (bf16), the update lands on the
    # fp32 weights; the gradient is the fp32 one up to bf16 rounding, not another function's
    import torch
    from transformers import AutoModelForCausalLM

    batch = next(warm_start.batches(tokenizer, 4, 2, 0, 0.2)[1])
    model = AutoModelForCausalLM.from_pretrained(tiny, dtype=torch.float32)
    exact = warm_start.step_loss(model, batch, "cpu")
    grads = torch.cat([p.grad.flatten() for p in model.parameters()])
    model.zero_grad()
    served = warm_start.served_copy(model)
    # RoPE's frequencies stay fp32, as vLLM and a model loaded in bf16 hold them: rounded to bf16 (what
    # model.to(torch.bfloat16) does) the policy trained on the GPU host served 0-2% tool calls where it judged 40%
    assert served.model.rotary_emb.inv_freq.dtype == torch.float32
    assert torch.equal(served.model.rotary_emb.inv_freq, model.model.rotary_emb.inv_freq)
    with torch.no_grad():
        next(served.parameters()).add_(1.0)  # stale: step_served refreshes the copy from the fp32 weights first
    value = warm_start.step_served(model, served, batch, "cpu")
    assert {p.dtype for p in served.parameters()} == {torch.bfloat16}
    assert {p.grad.dtype for p in model.parameters()} == {torch.float32}
    assert abs(value - exact) < 0.02 * exact
    mixed = torch.cat([p.grad.flatten() for p in model.parameters()])
    assert torch.nn.functional.cosine_similarity(mixed, grads, dim=0) > 0.99
    report = warm_start.warm_start(tiny, tmp_path / "ws", steps=3, lr=3e-3, batch_size=2, examples=4,
                                   forward="bf16")
    assert report["forward"] == "bf16" and report["last_loss"] < report["first_loss"]
    with pytest.raises(ValueError, match="forward: unknown"):
        warm_start.warm_start(tiny, tmp_path / "ws2", steps=1, forward="fp8")


def test_the_judged_policy_is_the_one_vllm_loads(tiny: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # the warm start's score is worth what the served model does: the model it judges gives the same logits as the
    # saved one loaded in bf16 (as verl and vLLM load it), RoPE frequencies included, on a ~30k-token position
    import torch
    from transformers import AutoModelForCausalLM

    ids = torch.randint(3, 500, (1, 64))
    positions = torch.arange(29_000, 29_064)[None]
    judged = []
    evaluate = warm_start.evaluate

    def logits(model):  # on the model's device: the warm start trains and judges on the GPU where there is one
        device = next(model.parameters()).device
        with torch.no_grad():
            return model(input_ids=ids.to(device), position_ids=positions.to(device)).logits.float()

    def record(model, *a, **k):
        judged.append((next(model.parameters()).device, logits(model)))
        return evaluate(model, *a, **k)

    monkeypatch.setattr(warm_start, "evaluate", record)
    for forward in warm_start.FORWARDS:
        judged.clear()
        warm_start.warm_start(tiny, tmp_path / forward, steps=2, lr=3e-3, batch_size=2, examples=4, eval_tasks=1,
                              forward=forward)
        device, expected = judged[0]
        served = AutoModelForCausalLM.from_pretrained(tmp_path / forward, dtype=torch.bfloat16).to(device)
        assert torch.equal(logits(served), expected), forward


def test_the_requests_name_this_host_as_a_trials_would() -> None:
    # what a harness writes about the machine and the moment (claude-code's environment turn, the SDK's system
    # prompt): the capture's values, replaced by this host's; nothing else changes
    env = ("# Environment\n - Primary working directory: /tmp/liverl-localenv-abcdefgh/app\n - Platform: linux\n"
           " - OS Version: Linux 6.18.44-fc-v1252\n - Shell: bash\nToday's date is 2026-12-06.")
    sdk = "<CURRENT_DATETIME>\nThe current date and time is: 2026-12-06T00:08\n</CURRENT_DATETIME>"
    captured = {"claude_code": {"instruction": "x", "tools": [], "messages": [
        {"role": "user", "content": "x"}, {"role": "system", "content": env}]},
        "ohsdk": {"instruction": "x", "tools": [], "messages": [{"role": "system", "content": sdk}]}}
    host = {"os_release": "5.15.0-105-generic", "date": "2027-01-31", "datetime": "2027-01-31T23:59"}
    out = transcripts.as_host(captured, host)
    assert out["claude_code"]["messages"][1]["content"] == env.replace("6.18.44-fc-v1252", "5.15.0-105-generic") \
        .replace("2026-12-06", "2027-01-31")
    assert out["ohsdk"]["messages"][0]["content"] == sdk.replace("2026-12-06T00:08", "2027-01-31T23:59")
    assert out["claude_code"]["messages"][0] == captured["claude_code"]["messages"][0]
    assert transcripts.as_host(None, host) is None
    mine = transcripts.this_host()
    assert set(mine) == set(transcripts.HOST_FIELDS) and mine["os_release"] == platform.release()
