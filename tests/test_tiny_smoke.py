"""The offline GPU smoke's pieces, on CPU: the generated tiny model/tokenizer/data load with the real libraries,
the rule-based reward loads through verl's own loader, and experiment=smoke_tiny plans for one-host topologies
(gpu1: sync colocated; gpu2: fully async, 1 trainer GPU + 1 rollout GPU; engine=veomni)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pandas as pd
import pytest
from conftest import built

from liverl.launch.cluster import pool_slots
from liverl.tiny import reward
from liverl.tiny.generate import WORDS, generate


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return generate(tmp_path_factory.mktemp("tiny"), layers=1, hidden=64, heads=2, vocab=320, train=16, val=4)


def plan_overrides(tiny: dict[str, str], topology: str, engine: str = "fsdp") -> tuple[str, ...]:
    return (
        "experiment=smoke_tiny", f"topology={topology}", f"engine={engine}", f"model.path={tiny['model']}",
        f"train_files={tiny['train']}", f"val_files={tiny['val']}", "total_training_steps=3",
    )


def test_generated_model_tokenizer_and_data_load(tiny: dict[str, str]) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny["model"])
    data = pd.read_parquet(tiny["train"])
    assert len(data) == 16 and set(data.columns) >= {"prompt", "data_source", "reward_model", "extra_info"}
    row = data.iloc[0]
    assert row.reward_model["ground_truth"] in WORDS and row.reward_model["ground_truth"] in row.prompt[0]["content"]
    ids = tok.apply_chat_template(list(row.prompt), add_generation_prompt=True, tokenize=True)
    ids = ids["input_ids"] if isinstance(ids, dict) or hasattr(ids, "keys") else ids
    text = tok.decode(ids)
    assert text.startswith("<|im_start|>user\n") and text.endswith("<|im_start|>assistant\n")
    assert tok.eos_token == "<|im_end|>" and tok.pad_token == "<|endoftext|>"
    model = AutoModelForCausalLM.from_pretrained(tiny["model"])
    assert model.config.model_type == "qwen2" and model.config.vocab_size == len(tok)
    out = model.generate(torch.tensor([ids]), max_new_tokens=4, do_sample=True)
    assert out.shape[1] == len(ids) + 4 or int(out[0, -1]) == tok.eos_token_id


def test_reward_gives_partial_credit_and_full_marks() -> None:
    assert reward.compute_score("s", "castle", "castle")["score"] == 1.0
    partial = reward.compute_score("s", "the cat", "castle")
    assert 0 < partial["score"] < 0.5 and partial["exact"] == 0.0
    assert reward.compute_score("s", "", "castle")["score"] == 0.0
    # a random answer earns a spread of rewards, which GRPO needs for non-zero advantages
    scores = {reward.compute_score("s", answer, "planet")["score"] for answer in ("xyz", "pen", "plane", "planet")}
    assert len(scores) == 4


def test_verl_loads_the_scaffold_reward(tiny: dict[str, str]) -> None:
    from verl.trainer.ppo.reward import get_custom_reward_fn

    b = built(*plan_overrides(tiny, "gpu1"))
    assert b.verl.reward.custom_reward_function.path == "pkg://liverl.tiny.reward"
    fn = get_custom_reward_fn(b.verl)
    assert fn(data_source="x", solution_str="river", ground_truth="river", extra_info={})["score"] == 1.0


def test_gpu1_plans_sync_colocated_single_turn(tiny: dict[str, str]) -> None:
    b = built(*plan_overrides(tiny, "gpu1"))
    v = b.verl
    assert b.liverl.mode.name == "sync" and (v.trainer.nnodes, v.trainer.n_gpus_per_node) == (1, 1)
    assert v.actor_rollout_ref.hybrid_engine is True and v.data.train_batch_size == 8
    assert v.actor_rollout_ref.rollout.agent.default_agent_loop == "single_turn_agent"
    vllm_kwargs = v.actor_rollout_ref.rollout.engine_kwargs.vllm
    assert vllm_kwargs["tool-call-parser"] is None and vllm_kwargs["enable-auto-tool-choice"] is None
    assert v.actor_rollout_ref.model.override_config.attn_implementation == "sdpa"
    assert v.actor_rollout_ref.model.use_remove_padding is False
    assert v.trainer.save_freq == 1 and list(v.trainer.logger) == ["console", "file"]
    assert not [f for f in b.findings if f.severity == "FATAL"]


@pytest.mark.parametrize("engine", ["fsdp", "veomni"])
def test_gpu2_plans_fully_async_on_one_host(tiny: dict[str, str], engine: str) -> None:
    b = built(*plan_overrides(tiny, "gpu2", engine))
    v = b.verl
    assert b.liverl.mode.name == "fully_async"
    assert (v.trainer.nnodes, v.trainer.n_gpus_per_node, v.rollout.nnodes, v.rollout.n_gpus_per_node) == (1, 1, 1, 1)
    assert v.actor_rollout_ref.actor.ppo_mini_batch_size == 8 and v.rollout.total_rollout_steps == 24
    assert v.model_engine == ("veomni" if engine == "veomni" else "dp")


@pytest.mark.parametrize("topology", ["gpu1", "gpu2"])
def test_veomni_on_one_trainer_gpu_builds_on_the_gpu_with_the_models_attention(tiny: dict[str, str],
                                                                               topology: str) -> None:
    # seen on the GPU host: VeOmni refuses meta init without FSDP (a 1-GPU trainer world), and its default
    # flash_attention_2 needs flash-attn, which the host lacks; the tiny model names sdpa (model.attn_implementation)
    v = built(*plan_overrides(tiny, topology, "veomni")).verl
    for role in (v.actor_rollout_ref.actor.veomni, v.actor_rollout_ref.ref.veomni):
        assert (role.init_device, role.attn_implementation) == ("cuda", "sdpa")
    assert v.actor_rollout_ref.model.override_config.attn_implementation == "sdpa"


def test_veomni_on_a_trainer_node_keeps_meta_init_and_flash_attention() -> None:
    actor = built("engine=veomni", "topology=2node", "model=qwen25_0p5b").verl.actor_rollout_ref.actor.veomni
    assert (actor.init_device, actor.attn_implementation) == ("meta", "flash_attention_2")


def test_pools_share_a_host() -> None:
    # gpu2's two 1-GPU pools fit one 2-GPU host; an 8-GPU pool does not fit two 4-GPU hosts
    assert pool_slots([("10.0.0.1", 2)], 1) == 2
    assert pool_slots([("10.0.0.1", 4), ("10.0.0.2", 4)], 8) == 0
    assert pool_slots([("10.0.0.1", 8), ("10.0.0.2", 8)], 8) == 2


def test_tiny_json_names_the_files(tiny: dict[str, str]) -> None:
    root = Path(tiny["model"]).parent
    assert json.loads((root / "tiny.json").read_text()) == tiny


def fake_nvidia_smi(bin_dir: Path, gpus: int) -> None:
    """A double of the driver's CLI: `nvidia-smi -L` lists `gpus` GPUs, in the driver's line format."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    lines = "".join(f"GPU {i}: NVIDIA H100 80GB HBM3 (UUID: GPU-{i:08d}-0000-0000-0000-000000000000)\\n"
                    for i in range(gpus))
    smi = bin_dir / "nvidia-smi"
    smi.write_text(f"#!/bin/sh\n[ \"$1\" = -L ] && printf '{lines}'\nexit 0\n")
    smi.chmod(0o755)


def test_make_smoke_runs_the_tiny_smoke_on_a_gpu_host(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # what this machine lacks is stood in for where LiveRL looks for it: a fake `nvidia-smi` first on PATH (the
    # driver's CLI) and an importable stub `vllm` package (has_vllm asks importlib for the module); the commands
    # smoke hands to subprocess are recorded, not run
    from liverl import smoke

    stub = tmp_path / "site" / "vllm"
    stub.mkdir(parents=True)
    (stub / "__init__.py").write_text('"""A double of vLLM: only its presence is read (liverl.smoke.has_vllm)."""\n')
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    calls: list[list[str]] = []
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.setattr(smoke.subprocess, "call", lambda cmd, **_: calls.append(cmd) or 0)
    for gpus, argv, expect in ((2, [], "--topology=gpu2"), (1, [], "--topology=gpu1"),
                               (2, ["topology=gpu1"], "--topology=gpu1")):
        fake_nvidia_smi(tmp_path / f"bin{gpus}", gpus)
        monkeypatch.setenv("PATH", f"{tmp_path / f'bin{gpus}'}{os.pathsep}{os.environ['PATH']}")
        assert smoke.local_gpus() == gpus and smoke.has_vllm()
        assert smoke.main(argv) == 0
        assert calls[-1][1:4] == ["-m", "liverl.tiny.smoke", expect]
    # a model named: the plain smoke batch of that model, no tiny workload
    smoke.main(["model=qwen25_0p5b"])
    assert calls[-1][1:3] == ["-m", "liverl.train"] and "batch=smoke" in calls[-1]
    # no GPU (the driver lists none): plans every topology (as before)
    fake_nvidia_smi(tmp_path / "bin0", 0)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin0'}{os.pathsep}{os.environ['PATH']}")
    assert smoke.local_gpus() == 0
    smoke.main([])
    assert "launcher=dryrun" in calls[-1] and "topology=1node,2node,3node" in calls[-1]


@pytest.mark.parametrize(("first_code", "resume_steps", "launched"), [(0, 2, [3, 5]), (1, 2, [3]), (0, 0, [3])])
def test_run_then_resume_relaunches_for_the_further_steps_only_after_a_good_first_launch(
    tmp_path: Path, first_code: int, resume_steps: int, launched: list[int]
) -> None:
    from liverl.tiny.smoke import run_then_resume

    log = tmp_path / "launches.txt"

    def command(steps: int) -> list[str]:  # a launch that records its step count and exits like a failed/ok run
        code = first_code if steps == 3 else 0
        return [sys.executable, "-c", f"open({str(log)!r}, 'a').write('{steps}\\n'); raise SystemExit({code})"]

    code, result = run_then_resume(command, 3, resume_steps, tmp_path / "run")
    assert [int(x) for x in log.read_text().split()] == launched
    assert code == first_code and result["attempts"] == [] and result["resumed_from"] is None
