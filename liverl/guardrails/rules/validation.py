"""Validation: it runs, and its tasks have their own (longer) timeout."""

from __future__ import annotations

from collections.abc import Iterable

from liverl.errors import Problem
from liverl.guardrails.framework import WARN, Ctx, finding, rule


@rule("val-timeout", "validation tasks have their own (longer) timeout")
def _val_timeout(c: Ctx) -> Iterable[Problem]:
    h = c.cfg.scaffold.harbor
    validating = (c.v("trainer.test_freq", -1) or -1) > 0 or c.v("trainer.val_before_train")
    # the Harbor loop gives validation samples val_agent_timeout_sec (liverl/scaffold/agent_loop.py); the knob schema
    # already refuses a missing one, so what can still go wrong is a validation budget no longer than training's
    val, train = h.get("val_agent_timeout_sec"), h.get("agent_timeout_sec")
    if validating and val is not None and train is not None and val <= train:
        yield finding(
            WARN,
            "scaffold.harbor.val_agent_timeout_sec",
            val,
            f"validation tasks run longer than training ones; with no more time than training (agent_timeout_sec="
            f"{train}) most of them are cut off (~170 of 500 scored)",
            f"scaffold.harbor.val_agent_timeout_sec={2 * train}",
        )


@rule("validation-cadence", "validation runs, so its timeout and sampling settings guard something")
def _validation(c: Ctx) -> Iterable[Problem]:
    t = c.verl.trainer
    if (t.test_freq is None or t.test_freq <= 0) and not t.val_before_train:
        yield finding(
            WARN,
            "verl.trainer.test_freq",
            t.test_freq,
            "validation never runs (test_freq <= 0 and val_before_train=false): scaffold.harbor.val_agent_timeout_sec"
            ", val_kwargs and rule val-timeout guard nothing, and no held-out score is ever logged",
            "keep the batch's cadence (batch.test_freq, batch.val_before_train)",
        )
