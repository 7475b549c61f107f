"""A bug in LiveRL is a traceback, never an exit 2 that blames a knob: the configuration-error paths catch only the
errors they mean (omegaconf's for a value that cannot be computed, Hydra's for verl's composition, what verl's
validators raise), so anything else propagates.

The doubles here are deliberate bugs (a RuntimeError where the code calls omegaconf, Hydra or verl)."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

import liverl.recipe.build as build_module
from liverl.errors import ConfigError
from liverl.recipe import compose as compose_module
from liverl.recipe import knobs
from liverl.recipe.build import build
from liverl.recipe.compose import compose_liverl
from liverl.recipe.verl_source import VerlSource


class Bug(RuntimeError):
    pass


def bug(*_a, **_k):
    raise Bug("a bug, not a configuration error")


@pytest.fixture(scope="module")
def cfg():
    return compose_liverl(["topology=2node", "launcher=dryrun"])


def test_the_paths_still_turn_a_bad_value_into_a_config_error(cfg) -> None:
    bad = cfg.copy()
    bad.train_bsz, bad.require_batches = 10, 4
    with pytest.raises(ConfigError) as err:
        build(bad)
    assert [p.rule for p in err.value.problems] == ["interpolation"]


def test_a_bug_while_reading_a_knob_propagates(cfg, monkeypatch) -> None:
    select = OmegaConf.select
    monkeypatch.setattr(knobs.OmegaConf, "select", lambda c, key, **kw: bug() if key == "train_bsz" else select(
        c, key, **kw))
    with pytest.raises(Bug):
        knobs.check_knobs(cfg)


def test_a_bug_while_finding_what_cannot_be_computed_propagates(cfg, monkeypatch) -> None:
    monkeypatch.setattr(knobs.OmegaConf, "select", bug)
    assert knobs._fails is not None
    with pytest.raises(Bug):
        knobs._fails(cfg, "train_bsz")
    with pytest.raises(Bug):
        knobs.resolution_problem(cfg, "verl.data.max_prompt_length", ValueError("x"))


def test_a_bug_while_resolving_propagates(cfg, monkeypatch) -> None:
    monkeypatch.setattr(compose_module.OmegaConf, "resolve", bug)
    with pytest.raises(Bug):
        compose_module.resolve(cfg.copy())


def test_a_bug_while_composing_verls_config_propagates(cfg, monkeypatch) -> None:
    monkeypatch.setattr(VerlSource, "compose", bug)
    with pytest.raises(Bug):
        build(cfg)


def test_a_bug_around_verls_validators_propagates(monkeypatch) -> None:
    import verl.utils.config

    verl_cfg = build(compose_liverl(["topology=1node", "launcher=dryrun"])).verl
    assert build_module._validate(verl_cfg.copy(), "sync") is None
    monkeypatch.setattr(verl.utils.config, "validate_config", bug)
    with pytest.raises(Bug):
        build_module._validate(verl_cfg.copy(), "sync")
