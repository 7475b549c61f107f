"""The page's fidelity metric rollout_corr/kl is computed in both modes with LiveRL's defaults, and the settings that
make it so leave the loss unchanged. Drives verl 0.9.1's own functions on the planned configs (CPU tensors)."""

from __future__ import annotations

import pytest
import torch
from conftest import built
from verl.trainer.ppo.core_algos import get_policy_loss_fn
from verl.utils.config import omega_conf_to_dataclass

import liverl.scaffold.filter_algos  # noqa: F401  (registers LiveRL's filter losses, as verl's workers import it)
from liverl.guardrails.verl_keys import FILTER_BYPASS_LOSS, FILTER_POLICY_LOSS

# with LiveRL's trajectory filter on (the Harbor scaffolds' default), each verl loss runs inside LiveRL's guard for a
# wholly dropped mini-batch (liverl/scaffold/filter_algos.py): the same loss otherwise
VERL_LOSS = {FILTER_BYPASS_LOSS: "bypass_mode", FILTER_POLICY_LOSS: "vanilla"}


def _tensors(seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    bsz, length = 4, 12
    rollout = -torch.rand(bsz, length, generator=g) * 3  # the rollout's log-probs (bypass: old = rollout)
    current = rollout + 0.05 * torch.randn(bsz, length, generator=g)  # what the trainer computes now
    mask = torch.ones(bsz, length)
    mask[:, 9:] = 0  # padding
    mask[1, 5:] = 0
    return {"rollout": rollout, "current": current, "mask": mask,
            "adv": torch.randn(bsz, 1, generator=g).expand(bsz, length).contiguous()}


def _loss(actor_config, loss_mode: str, t: dict[str, torch.Tensor]):
    """verl's policy-loss call as its engine worker makes it (workers/utils/losses.py:101-112)."""
    return get_policy_loss_fn(loss_mode)(
        old_log_prob=t["rollout"], log_prob=t["current"], advantages=t["adv"], response_mask=t["mask"].bool(),
        loss_agg_mode=actor_config.loss_agg_mode, config=actor_config, rollout_is_weights=None)


@pytest.mark.parametrize("topology", ["2node", "3node"])
def test_fully_async_bypass_logs_rollout_corr_kl_with_the_same_loss(topology: str) -> None:
    b = built(f"topology={topology}", "engine=fsdp")  # no R3: verl's fully-async default, bypass mode
    assert b.verl.algorithm.rollout_correction.bypass_mode is True
    actor = omega_conf_to_dataclass(b.verl.actor_rollout_ref.actor)  # what verl's worker builds
    assert VERL_LOSS.get(actor.policy_loss.loss_mode) == "bypass_mode"
    t = _tensors()
    loss, metrics = _loss(actor, actor.policy_loss.loss_mode, t)
    vanilla_loss, vanilla_metrics = _loss(actor, "vanilla", t)
    # the loss the workers optimise is the one verl's vanilla PPO-clip gives on the same tensors
    assert torch.equal(loss, vanilla_loss)
    assert "rollout_corr/kl" not in vanilla_metrics  # what the old default (vanilla on the workers) logged
    m = t["mask"].bool()
    expected_kl = (t["rollout"][m] - t["current"][m]).mean().item()  # verl: mean(rollout_logp - train_logp)
    assert metrics["rollout_corr/kl"] == pytest.approx(expected_kl, rel=1e-5)
    # no IS correction or rejection rides along: the knob rollout_is=null is what the loss sees
    assert not any(k.startswith("rollout_corr/rollout_is") or k.startswith("rollout_corr/rollout_rs") for k in metrics)


def _decoupled_metrics(b):
    """The driver's decoupled path (trainer/ppo/ray_trainer.py:1650-1660, experimental/separation/ray_trainer.py:
    602-614): its conditions on the planned config, then verl's compute_rollout_correction_and_add_to_batch."""
    from verl import DataProto
    from verl.trainer.ppo.rollout_corr_helper import compute_rollout_correction_and_add_to_batch

    rc = b.verl.algorithm.rollout_correction
    assert rc is not None and not rc.bypass_mode and b.verl.actor_rollout_ref.rollout.calculate_log_probs
    t = _tensors(1)
    batch = DataProto.from_dict({"old_log_probs": t["current"], "rollout_log_probs": t["rollout"],
                                 "response_mask": t["mask"].clone()})
    out, metrics = compute_rollout_correction_and_add_to_batch(batch, rc)
    assert torch.equal(out.batch["response_mask"], t["mask"])  # nothing rejected: the loss sees the same tokens
    assert "rollout_is_weights" not in out.batch  # no IS weights applied
    return metrics


def test_sync_logs_rollout_corr_kl_through_verls_driver_path() -> None:
    b = built("topology=1node", "engine=fsdp")
    assert "rollout_corr/kl" in _decoupled_metrics(b)
    assert VERL_LOSS.get(b.verl.actor_rollout_ref.actor.policy_loss.loss_mode) == "vanilla"


def test_fully_async_with_r3_logs_it_through_the_driver() -> None:
    b = built("topology=3node")  # qwen35 -> veomni with R3: bypass off, old log-probs recomputed
    assert b.verl.actor_rollout_ref.actor.veomni.router_replay.mode == "R3"
    assert "rollout_corr/kl" in _decoupled_metrics(b)
    assert VERL_LOSS.get(b.verl.actor_rollout_ref.actor.policy_loss.loss_mode) == "vanilla"
