"""LiveRL mirrors two tiny predicates of verl's main_ppo (to skip importing verl.trainer.ppo.utils at plan time);
they must agree with verl's own on every shape LiveRL produces and on the cases that flip them."""

from __future__ import annotations

import itertools
import warnings

import pytest
from conftest import built
from omegaconf import OmegaConf
from verl.trainer.ppo.utils import need_critic, need_reference_policy

from liverl.recipe.build import uses_critic, uses_reference_policy

SHAPES = [(f"engine={e}", f"topology={t}") for e, t in itertools.product(["fsdp", "veomni"], ["1node", "3node"])]
FLIPS = [
    {},
    {"actor_rollout_ref.actor.use_kl_loss": True},
    {"algorithm.use_kl_in_reward": True},
    {"algorithm.adv_estimator": "gae"},
    {"critic.enable": False, "algorithm.adv_estimator": "gae"},
    {"critic.enable": True},
]


@pytest.mark.parametrize("shape", SHAPES, ids=[" ".join(s) for s in SHAPES])
@pytest.mark.parametrize("flip", FLIPS, ids=[",".join(f) or "as-built" for f in FLIPS])
def test_predicates_match_verls(shape, flip) -> None:
    cfg = built(*shape).verl.copy()
    for key, value in flip.items():
        OmegaConf.update(cfg, key, value)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # need_critic warns when it disables the critic
        assert uses_reference_policy(cfg) == need_reference_policy(cfg)
        assert uses_critic(cfg) == need_critic(cfg)
    assert uses_critic(cfg) == flip.get("critic.enable", flip.get("algorithm.adv_estimator") == "gae")
