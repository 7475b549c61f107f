"""The conformance gate without trials: its configuration errors, the engine's trainer side on a tiny model, the
ledger and the guardrail `harness-conformance` that reads it (the ledger is a temporary file: tests/conftest.py)."""

from __future__ import annotations

import importlib.util
import json

import pytest

from liverl.conform.__main__ import main
from liverl.conform.engine import agreement, trainer_logprobs
from liverl.errors import ConfigError
from liverl.guardrails import conform_ledger
from liverl.guardrails.conform_ledger import checkpoint_chat_template, ledger_path, template_sha256
from liverl.recipe.build import build
from liverl.recipe.compose import compose_liverl

CUSTOM = "verl.actor_rollout_ref.model.custom_chat_template"


@pytest.mark.parametrize("overrides,key", [
    (["conform.policy=vllm"], "conform.policy"),
    (["conform.tasks=0"], "conform.tasks"),
    (["conform.concurrency=two"], "conform.concurrency"),
    (["conform.chat_template=/nonexistent/template.jinja"], "conform.chat_template"),
    (["conform.environment=docker"], "conform.environment"),
    (["conform.thresholds.trained_turn_fraction=95"], "conform.thresholds.trained_turn_fraction"),
    (["conform.task_dir=/tmp"], "conform.task_dir"),
    (["scaffold=single_turn"], "scaffold"),
    (["conform.policy=double", "conform.double=tests/scaffold/missing.py"], "conform.double"),
    (["conform.tasks_count=4"], "conform.tasks_count"),  # not a key: Hydra's struct error, translated
    # policy=engine: without vLLM (CI) the policy is refused; with it (a GPU host's make test) the missing checkpoint
    (["conform.policy=engine", "model.path=/nonexistent/ckpt"],
     "model.path" if importlib.util.find_spec("vllm") else "conform.policy"),
])
def test_bad_configuration_exits_2_naming_the_key(capsys, overrides, key) -> None:
    assert main(overrides) == 2
    err = capsys.readouterr().err
    assert f"{key}:" in err and "fix:" in err and "Traceback" not in err, err
    assert not ledger_path().exists() or key not in ledger_path().read_text()  # nothing recorded


def test_a_misspelt_conform_key_names_the_nearest_ones(capsys) -> None:
    assert main(["conform.task=4"]) == 2
    assert "conform.task: not a conform setting; did you mean conform.tasks" in capsys.readouterr().err


def test_trainer_logprobs_agree_with_incremental_decoding_on_a_tiny_model() -> None:
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(0)
    model = Qwen2ForCausalLM(Qwen2Config(vocab_size=97, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                         num_attention_heads=4, num_key_value_heads=2)).eval()
    prompt = [5, 17, 42, 8, 3]
    # the engine's side, another code path: token-by-token sampling with a KV cache, log-prob of each sampled token
    gen = model.generate(torch.tensor([prompt]), do_sample=True, max_new_tokens=12, min_new_tokens=12,
                         output_logits=True, return_dict_in_generate=True, pad_token_id=0)
    response = gen.sequences[0, len(prompt):].tolist()
    engine = [torch.log_softmax(step[0].float(), -1)[t].item() for step, t in zip(gen.logits, response, strict=True)]
    trainer = trainer_logprobs(model, prompt, response, chunk=5)  # chunked over the response
    assert len(trainer) == len(response) == 12
    assert max(abs(a - b) for a, b in zip(engine, trainer, strict=True)) < 1e-4
    # a one-position shift (the classic off-by-one) is far off: the check can tell
    shifted = trainer_logprobs(model, prompt[:-1], [prompt[-1], *response])[:-1]
    assert max(abs(a - b) for a, b in zip(engine, shifted, strict=True)) > 1e-2


def test_agreement_reads_only_trained_tokens() -> None:
    got = agreement([-1.0, -2.0, -0.5, -3.0], [-1.1, -9.0, -0.5, -2.0], [1, 0, 1, 1])
    assert got["tokens"] == 3 and got["abs_diff_max"] == 1.0  # the mask-0 position (diff 7) is not read
    assert got["abs_diff_mean"] == pytest.approx((0.1 + 0 + 1.0) / 3, abs=1e-6)
    assert agreement([], [], [])["tokens"] == 0


def test_the_checkpoints_chat_template_is_read_from_either_file(tmp_path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "chat_template.jinja").write_text("{{ jinja }}")
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "tokenizer_config.json").write_text(json.dumps(
        {"chat_template": [{"name": "tool_use", "template": "T"}, {"name": "default", "template": "D"}]}))
    assert checkpoint_chat_template(tmp_path / "a") == "{{ jinja }}"
    assert checkpoint_chat_template(tmp_path / "b") == "D"
    assert checkpoint_chat_template(tmp_path / "missing") is None


def conformance(*overrides: str, launching: bool = False, structure_only: bool = False) -> list:
    try:
        found = build(compose_liverl(["model=qwen25_0p5b", *overrides]), launching=launching,
                      structure_only=structure_only).findings
    except ConfigError as e:
        found = [*e.problems, *e.findings]
    return [f for f in found if f.rule == "harness-conformance"]


def test_the_rule_reads_the_last_record_for_the_plans_scaffold_and_template(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("LIVERL_CONFORM_LEDGER", str(tmp_path / "ledger.jsonl"))
    plan = (f"{CUSTOM}=my-template",)
    official = ("batch=official", "launcher=local", *plan)
    assert [f.severity for f in conformance(*plan)] == ["WARN"]  # never run
    assert [f.severity for f in conformance(*official, launching=True)] == ["FATAL"]
    assert "liverl.allow=[harness-conformance]" in conformance(*official, launching=True)[0].fix
    sha = template_sha256("my-template")
    conform_ledger.record({"scaffold": "claude_code", "chat_template_sha256": sha, "passed": True, "figures": {}})
    conform_ledger.record({"scaffold": "ohsdk", "chat_template_sha256": sha, "passed": False, "figures": {}})
    assert conformance(*plan) == [] and conformance(*official, launching=True) == []
    assert [f.severity for f in conformance("scaffold=ohsdk", *plan)] == ["WARN"]  # another scaffold's record
    assert [f.severity for f in conformance(f"{CUSTOM}=other-template")] == ["WARN"]  # another template
    with ledger_path().open("a") as f:
        f.write('{"torn line\n')
    conform_ledger.record({"scaffold": "claude_code", "chat_template_sha256": sha, "passed": False,
                           "figures": {"trained_turn_fraction": 0.5}})
    got = conformance(*plan)  # the last record decides: a later failure undoes the pass
    assert [f.severity for f in got] == ["WARN"] and "failed" in got[0].message and "0.5" in got[0].message


def test_the_rule_reads_the_checkpoints_template_and_skips_what_it_cannot_read(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("LIVERL_CONFORM_LEDGER", str(tmp_path / "ledger.jsonl"))
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    (ckpt / "chat_template.jinja").write_text("ckpt-template")
    conform_ledger.record({"scaffold": "claude_code", "chat_template_sha256": template_sha256("ckpt-template"),
                           "passed": True, "figures": {}})
    assert conformance(f"model.path={ckpt}") == []
    assert [f.severity for f in conformance(f"model.path={tmp_path}")] == ["SKIP"]  # no template there
    assert [f.severity for f in conformance(f"model.path={ckpt}", structure_only=True)] == ["SKIP"]
    assert conformance("scaffold=single_turn", f"model.path={tmp_path}") == []  # no harness, nothing to check


@pytest.mark.parametrize("preset, expected", [(None, "spawn"), ("fork", "fork")])
def test_the_engine_core_is_spawned_unless_the_user_chose(tiny_agentic_model, monkeypatch, preset, expected) -> None:
    # On the GPU host the forked engine core died ("Cannot re-initialize CUDA in forked subprocess"). vLLM cannot run
    # here: a double of its two engine classes records the start method it would read when the engine starts.
    import sys
    import types

    from liverl.conform.engine import SPAWN_ENV, VLLMPolicy

    seen = {}

    class AsyncLLMDouble:
        @classmethod
        def from_engine_args(cls, args):
            seen["method"] = __import__("os").environ.get(SPAWN_ENV)
            seen["model"] = args["model"]
            return cls()

    modules = {"vllm": types.ModuleType("vllm"), "vllm.engine": types.ModuleType("vllm.engine"),
               "vllm.engine.arg_utils": types.SimpleNamespace(AsyncEngineArgs=lambda **kw: kw),
               "vllm.v1": types.ModuleType("vllm.v1"), "vllm.v1.engine": types.ModuleType("vllm.v1.engine"),
               "vllm.v1.engine.async_llm": types.SimpleNamespace(AsyncLLM=AsyncLLMDouble)}
    for name, module in modules.items():
        monkeypatch.setitem(sys.modules, name, module)
    monkeypatch.setenv(SPAWN_ENV, preset or "unset")  # recorded, so the engine's setdefault is undone after the test
    if preset is None:
        monkeypatch.delenv(SPAWN_ENV)
    engine = {"tensor_parallel_size": 1, "gpu_memory_utilization": 0.5, "dtype": "bfloat16", "seed": 0}
    VLLMPolicy(str(tiny_agentic_model), max_model_len=1024, engine=engine)
    assert seen == {"method": expected, "model": str(tiny_agentic_model)}
