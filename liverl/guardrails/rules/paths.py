"""Paths: the checkpoint and the data exist where the run starts."""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

from omegaconf import OmegaConf

from liverl.errors import Problem
from liverl.guardrails.framework import FATAL, SKIP, WARN, Ctx, finding, rule


def _looks_like_hub_id(path: str) -> bool:
    return bool(re.fullmatch(r"[\w.-]+/[\w.-]+", path)) and not Path(path).exists()


@rule("paths-exist", "checkpoint and data exist")
def _paths(c: Ctx) -> Iterable[Problem]:
    entries = [("model.path", str(c.cfg.model.path))]
    for key in ("train_files", "val_files"):
        value = c.cfg[key]
        entries += [
            (key, str(p)) for p in (value if isinstance(value, (list, tuple)) or OmegaConf.is_list(value) else [value])
        ]
    for key, path in entries:
        if c.structure_only:
            yield finding(
                SKIP,
                key,
                path,
                "structure-only mode: paths on this disk are not checked",
                "run `python -m liverl.check` on the machine that launches",
            )
        elif key == "model.path" and _looks_like_hub_id(path):
            yield finding(
                WARN,
                key,
                path,
                "not a local checkpoint: the trainer and every vLLM replica download it from the Hub at start",
                "point model.path (MODEL_PATH) at a local or shared-disk checkpoint",
            )
        elif not Path(path).expanduser().exists():
            yield finding(
                FATAL if c.launching else WARN,
                key,
                path,
                "does not exist: the run would fail at start (data loading or checkpoint load)",
                f"fix {key} (or its environment variable)",
            )
