"""LiveRL's trajectory filter against verl 0.9.1's real code paths (F10): group baselines with too few kept rows,
the v1 loss aggregation (global token count and global_batch_size), a mini-batch dropped whole through verl's
`ppo_loss`, and the fully-async plan with its metrics file read by liverl.watch."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from tensordict import TensorDict
from test_traj_filter import UIDS
from test_traj_filter import batch as traj_batch
from verl import DataProto
from verl.trainer.ppo import core_algos
from verl.trainer.ppo.ray_trainer import compute_advantage
from verl.utils import tensordict_utils as tu
from verl.workers.config import ActorConfig, PolicyLossConfig
from verl.workers.utils.losses import ppo_loss

from liverl.errors import ConfigError
from liverl.guardrails.verl_keys import FILTER_BYPASS_LOSS, FILTER_POLICY_LOSS
from liverl.health.streams import read_run
from liverl.scaffold import filter_algos
from liverl.scaffold.filter_algos import ESTIMATOR, METRIC_INVALID, METRICS_ENV

DROPPED = [1, 2]  # group a (rows 0-2) keeps one row; group b (rows 3-5) keeps all three


def batch(dropped: list[int] = DROPPED) -> DataProto:
    return traj_batch(dropped)


def test_a_lone_survivor_gets_no_advantage() -> None:
    config = OmegaConf.create({"norm_adv_by_std_in_grpo": True})
    adv = compute_advantage(batch(), adv_estimator=ESTIMATOR, config=config).batch["advantages"]
    # verl's GRPO gives a group of one mean 0 and std 1 (core_algos.py:316-317): its raw reward, +1 here
    assert torch.all(adv[0] == 0) and torch.all(adv[DROPPED] == 0)
    b = batch().batch
    ref, _ = core_algos.compute_grpo_outcome_advantage(
        token_level_rewards=b["token_level_rewards"][3:], response_mask=b["response_mask"][3:], index=UIDS[3:],
        norm_adv_by_std_in_grpo=True)
    assert torch.allclose(adv[3:], ref) and torch.any(adv[3:] != 0)


def _v1_loss(mode: str, data: DataProto, keep_rows: list[int] | None = None) -> torch.Tensor:
    """agg_loss as verl's v1 trainer calls it: global token count = sum of the loss mask (workers/engine/fsdp/
    transformer_impl.py:730-734), global_batch_size = ppo_mini_batch_size x n (trainer_base.py:1851)."""
    mask, adv = data.batch["response_mask"], data.batch["advantages"]
    rows = list(range(len(mask))) if keep_rows is None else keep_rows
    mask, adv = mask[rows], adv[rows]
    log_prob = -1.0 - 0.1 * torch.tensor(rows, dtype=torch.float32)[:, None].expand(adv.shape)  # per-row values
    loss_mat = -adv * torch.exp(log_prob)
    return core_algos.agg_loss(loss_mat=loss_mat, loss_mask=mask, loss_agg_mode=mode, dp_size=1,
                               batch_num_tokens=int(mask.sum()), global_batch_size=len(rows))


def test_token_mean_on_verls_v1_path_ignores_dropped_rows() -> None:
    data = compute_advantage(batch(), adv_estimator=ESTIMATOR, config=OmegaConf.create({}))
    kept = [i for i in range(6) if i not in DROPPED]
    assert _v1_loss("token-mean", data) == pytest.approx(float(_v1_loss("token-mean", data, kept)))


def test_seq_mean_on_verls_v1_path_counts_dropped_rows_so_the_plan_refuses_it() -> None:
    from liverl.recipe.build import build
    from liverl.recipe.compose import compose_liverl

    data = compute_advantage(batch([1, 4]), adv_estimator=ESTIMATOR, config=OmegaConf.create({}))
    kept = [0, 2, 3, 5]
    # the dropped rows stay in global_batch_size: the loss (and the step) shrinks with the drop rate
    assert _v1_loss("seq-mean-token-sum", data) != pytest.approx(float(_v1_loss("seq-mean-token-sum", data, kept)))
    with pytest.raises(ConfigError) as refused:
        build(compose_liverl(["verl.actor_rollout_ref.actor.loss_agg_mode=seq-mean-token-mean"]))
    assert [p.rule for p in refused.value.problems] == ["filter-seq-mean"]


def _wholly_dropped_ppo_loss(loss_mode: str, rollout_correction: dict | None = None) -> dict:
    """verl's ppo_loss (workers/utils/losses.py) on a micro-batch whose every row the filter dropped."""
    policy_loss = PolicyLossConfig(loss_mode=loss_mode, rollout_correction=rollout_correction)
    config = ActorConfig(strategy="fsdp", ppo_mini_batch_size=2, ppo_micro_batch_size_per_gpu=1,
                         use_dynamic_bsz=False, rollout_n=1, policy_loss=policy_loss)
    prompts, responses = torch.ones(2, 2, dtype=torch.int64), torch.ones(2, 3, dtype=torch.int64)
    data = TensorDict({"prompts": prompts, "responses": responses,
                       "attention_mask": torch.ones(2, 5, dtype=torch.int64),
                       "response_mask": torch.zeros(2, 3, dtype=torch.int64),
                       "old_log_probs": torch.full((2, 3), -1.0), "advantages": torch.zeros(2, 3)}, batch_size=2)
    # the engine's figures for this mini-batch: the loss-mask sum is 0 (transformer_impl.py:730-734)
    tu.assign_non_tensor(data, dp_size=1, batch_num_tokens=0, global_batch_size=2)
    output = {"log_probs": torch.full((10,), -1.0, requires_grad=True), "entropy": torch.full((10,), 0.5)}
    loss, metrics = ppo_loss(config, output, data)
    values = {k: float(m.aggregate()) for k, m in metrics.items() if k.startswith("actor/")}
    return {"loss": float(loss), **values}


def test_a_wholly_dropped_mini_batch_gives_no_nan() -> None:
    assert np.isnan(_wholly_dropped_ppo_loss("vanilla")["loss"])  # verl's own loss: 0/0
    got = _wholly_dropped_ppo_loss(FILTER_POLICY_LOSS)
    assert got["loss"] == 0.0 and got["actor/pg_loss"] == 0.0 and got["actor/entropy_loss"] == 0.0


def test_a_wholly_dropped_mini_batch_under_the_bypass_loss_gives_no_nan() -> None:
    # fully async without R3 trains with verl's bypass-mode loss (so verl logs rollout_corr/*); its guard is LiveRL's
    rc = {"bypass_mode": True, "loss_type": "ppo_clip", "rollout_is": None, "rollout_rs": None}
    with pytest.raises(ValueError, match="at least one valid token"):  # verl: rollout_corr_helper.py:838
        _wholly_dropped_ppo_loss("bypass_mode", rc)
    got = _wholly_dropped_ppo_loss(FILTER_BYPASS_LOSS, rc)
    assert got["loss"] == 0.0 and got["actor/pg_loss"] == 0.0 and got["actor/entropy_loss"] == 0.0


def test_a_dense_fully_async_plan_filters_with_the_bypass_loss() -> None:
    from liverl.recipe.build import build
    from liverl.recipe.compose import compose_liverl

    b = build(compose_liverl(["topology=2node", "model=qwen25_0p5b"]))  # FSDP, no R3: bypass mode
    assert b.verl.actor_rollout_ref.actor.policy_loss.loss_mode == FILTER_BYPASS_LOSS
    assert b.verl.algorithm.adv_estimator == ESTIMATOR


def test_fully_async_runs_the_filter_and_watch_reads_its_metrics(tmp_path, monkeypatch) -> None:
    from liverl.recipe.build import build
    from liverl.recipe.compose import compose_liverl
    from liverl.recipe.filter_plan import filter_env
    from liverl.recipe.render import agent_loop_config

    b = build(compose_liverl(["topology=2node"]))
    assert b.verl.algorithm.adv_estimator == ESTIMATOR
    assert b.verl.actor_rollout_ref.actor.policy_loss.loss_mode == FILTER_POLICY_LOSS
    assert agent_loop_config(b.liverl, b.verl)[0]["trajectory_filter"]["filter"] == "liverl"
    env = filter_env(b.liverl, b.verl, tmp_path)
    assert env["VERL_USE_EXTERNAL_MODULES"] == "liverl.scaffold.filter_algos"
    # verl's fully-async trainer computes advantages with the registered estimator (separation/ray_trainer.py:621)
    monkeypatch.setenv(METRICS_ENV, env[METRICS_ENV])
    monkeypatch.setattr(filter_algos, "_CALLS", {"n": 0})
    (tmp_path / "metrics.jsonl").write_text(json.dumps({"step": 1, "data": {"critic/score/mean": 0.5}}) + "\n")
    compute_advantage(batch(), adv_estimator=ESTIMATOR, config=OmegaConf.create({}))
    stream = read_run(tmp_path)
    steps, invalid = stream.series(METRIC_INVALID)
    assert list(steps) == [1] and invalid[0] == pytest.approx(2 / 6)
    # kept rows 0, 3, 4, 5 (rewards 1, 1, 0, 1); verl's critic/score/mean averages all six
    assert stream.series("trajectory_filter/score/kept_mean")[1][0] == pytest.approx(3 / 4)
    assert stream.series("critic/score/mean")[1][0] == 0.5  # verl's own rows are still read
