"""The trajectory filter on the public verl 0.9.1: the loop's output through verl's own post-processing, then
verl's advantage computation and loss aggregation with LiveRL's registered estimator, and the metrics through
verl's file logger."""

from __future__ import annotations

import asyncio
import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from verl import DataProto
from verl.experimental.agent_loop.agent_loop import AgentLoopMetrics, AgentLoopOutput, AgentLoopWorker
from verl.trainer.ppo import core_algos
from verl.trainer.ppo.ray_trainer import compute_advantage
from verl.utils.tracking import Tracking

from liverl.scaffold.traj_filter import ESTIMATOR, METRIC_INVALID, METRIC_REASON, filter_metrics

# 2 groups x 3 trajectories; row 1 (group a) and row 5 (group b) are dropped (mask all zero)
REWARDS = [1.0, 0.0, 0.0, 1.0, 0.0, 1.0]
UIDS = np.array(["a", "a", "a", "b", "b", "b"], dtype=object)
DROPPED = [1, 5]


def batch(dropped: list[int] = DROPPED) -> DataProto:
    mask = torch.ones(6, 4, dtype=torch.int64)
    mask[list(dropped)] = 0
    rewards = torch.zeros(6, 4)
    rewards[:, -1] = torch.tensor(REWARDS)
    return DataProto.from_dict(tensors={"token_level_rewards": rewards, "response_mask": mask},
                               non_tensors={"uid": UIDS})


def test_dropped_trajectories_are_outside_the_group_baseline() -> None:
    config = OmegaConf.create({"norm_adv_by_std_in_grpo": True})
    data = compute_advantage(batch(), adv_estimator=ESTIMATOR, config=config)
    adv = data.batch["advantages"]
    assert torch.all(adv[DROPPED] == 0)
    # group a keeps rewards [1, 0] -> verl's GRPO on exactly those two
    kept = [0, 2, 3, 4]
    b = batch().batch
    ref, _ = core_algos.compute_grpo_outcome_advantage(
        token_level_rewards=b["token_level_rewards"][kept], response_mask=b["response_mask"][kept],
        index=UIDS[kept], norm_adv_by_std_in_grpo=True)
    assert torch.allclose(adv[kept], ref)
    # had the dropped row (reward 0) stayed in group a's baseline, row 0's advantage would differ
    plain = compute_advantage(batch(), adv_estimator="grpo", config=config).batch["advantages"]
    assert not torch.isclose(plain[0, 0], adv[0, 0])


@pytest.mark.parametrize("mode", ["token-mean", "seq-mean-token-sum", "seq-mean-token-mean"])
def test_dropped_trajectories_contribute_nothing_to_the_policy_loss(mode: str) -> None:
    data = compute_advantage(batch(), adv_estimator=ESTIMATOR, config=OmegaConf.create({}))
    log_prob = torch.full((6, 4), -1.0, requires_grad=True)
    loss_mat = -data.batch["advantages"] * torch.exp(log_prob)
    loss = core_algos.agg_loss(loss_mat=loss_mat, loss_mask=data.batch["response_mask"], loss_agg_mode=mode)
    loss.backward()
    assert torch.all(log_prob.grad[DROPPED] == 0)
    assert torch.any(log_prob.grad[[0, 2]] != 0)


def _postprocessor(tokenizer) -> AgentLoopWorker:
    """verl's AgentLoopWorker post-processing without its Ray/config construction (attributes it reads)."""
    worker = object.__new__(AgentLoopWorker)
    worker.rollout_config = SimpleNamespace(prompt_length=16, response_length=16)
    worker.tokenizer, worker.processor = tokenizer, None
    worker.reward_loop_worker_handles, worker.distillation_enabled, worker.mm_processor_kwargs = None, False, {}
    return worker


def test_loop_output_goes_through_verls_postprocessing(tokenizer) -> None:
    outputs = []
    for reason, drop, reward in (("agent_completed", False, 1.0), ("timeout", True, 0.0)):
        outputs.append(AgentLoopOutput(
            prompt_ids=[5, 6, 7], response_ids=[8, 9, 10], response_mask=[0, 0, 0] if drop else [1, 0, 1],
            response_logprobs=[-0.1, 0.0, -0.2], reward_score=reward, num_turns=3, metrics=AgentLoopMetrics(),
            extra_fields={"termination_reason": reason, "trajectory_filter_drop": drop}))
    worker = _postprocessor(tokenizer)
    internal = [asyncio.run(worker._agent_loop_postprocess(o, False, raw_prompt=[])) for o in outputs]
    data = worker._postprocess(internal)
    assert data.batch["response_mask"][0, :3].tolist() == [1, 0, 1] and data.batch["response_mask"][1].sum() == 0
    assert data.batch["rm_scores"][0, 2] == 1.0 and data.batch["rollout_log_probs"][0, 2] == pytest.approx(-0.2)
    assert list(data.non_tensor_batch["termination_reason"]) == ["agent_completed", "timeout"]
    # the v1 (TransferQueue) path stores as_dict(): loss_mask = response_mask, extra_fields kept whole
    assert outputs[1].as_dict()["response_mask"].sum() == 0
    assert outputs[1].as_dict()["extra_fields"]["termination_reason"] == "timeout"


def test_filter_metrics_reach_verls_file_logger(tmp_path, monkeypatch) -> None:
    path = tmp_path / "metrics.jsonl"
    monkeypatch.setenv("VERL_FILE_LOGGER_PATH", str(path))
    fields = [{"termination_reason": r, "trajectory_filter_drop": r in ("timeout", "env_setup_failed")}
              for r in ("agent_completed", "agent_completed", "timeout", "env_setup_failed", "overlong")]
    metrics = filter_metrics(fields)
    assert metrics[METRIC_INVALID] == pytest.approx(0.4)
    logger = Tracking(project_name="p", experiment_name="e", default_backend=["file"], config={})
    logger.log(data=metrics, step=7)
    del logger
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    logged = rows[-1]["data"]
    assert logged[METRIC_INVALID] == pytest.approx(0.4) and rows[-1]["step"] == 7
    assert logged[METRIC_REASON + "agent_completed"] == 2 and logged[METRIC_REASON + "timeout"] == 1
    assert logged[METRIC_REASON + "max_turns_reached"] == 0
