"""The verl that will run: the installed package or a checkout ($NEW_VERL_DIR), and what it supports."""

from __future__ import annotations

import importlib.util
import os
import pickle
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig, OmegaConf

from liverl.errors import ConfigError, Problem


@dataclass(frozen=True)
class VerlSource:
    """Where verl's package lives (`package_dir` is the `verl/` directory) and how it was chosen."""

    package_dir: Path
    checkout: Path | None = None

    @classmethod
    def resolve(cls, source: str) -> VerlSource:
        """`installed`, a checkout path, or `auto` (USE_NEW_VERL=1 selects $NEW_VERL_DIR)."""
        if source == "auto":
            if os.environ.get("USE_NEW_VERL", "0").lower() in ("1", "true", "yes"):
                new_dir = os.environ.get("NEW_VERL_DIR")
                if not new_dir:
                    raise ConfigError(
                        [
                            Problem(
                                key="NEW_VERL_DIR",
                                rule="new-verl-dir",
                                message="USE_NEW_VERL=1 but NEW_VERL_DIR is not set: there is no new-verl checkout",
                                fix="export NEW_VERL_DIR=/path/to/checkout (the directory holding verl/), "
                                "or unset USE_NEW_VERL",
                            )
                        ]
                    )
                return cls.from_checkout(new_dir, key="NEW_VERL_DIR")
            source = "installed"
        if source == "installed":
            spec = importlib.util.find_spec("verl")
            if spec is None or not spec.submodule_search_locations:
                raise ConfigError(
                    [
                        Problem(
                            key="verl.source",
                            message="verl is not installed in this environment",
                            fix="run `make install`, or point verl.source at a verl checkout",
                        )
                    ]
                )
            return cls(Path(next(iter(spec.submodule_search_locations))))
        return cls.from_checkout(source, key="verl.source")

    @classmethod
    def from_checkout(cls, path: str, key: str) -> VerlSource:
        root = Path(path).expanduser().resolve()
        pkg = root / "verl"
        if not (pkg / "__init__.py").is_file() or not (pkg / "trainer" / "config" / "ppo_trainer.yaml").is_file():
            raise ConfigError(
                [
                    Problem(
                        key=key,
                        message="is not a verl checkout: expected verl/__init__.py and "
                        "verl/trainer/config/ppo_trainer.yaml under it",
                        got=str(root),
                        fix="point it at the directory that contains the verl/ package (a clone of the new verl)",
                        rule="new-verl-dir",
                    )
                ]
            )
        return cls(pkg, checkout=root)

    @property
    def label(self) -> str:
        return f"checkout {self.checkout}" if self.checkout else f"installed {self.package_dir}"

    @cached_property
    def version(self) -> str:
        vfile = self.package_dir / "version" / "version"
        return vfile.read_text().strip() if vfile.is_file() else "unknown"

    @cached_property
    def groups(self) -> frozenset[str]:
        """verl's own config groups (e.g. model_engine, actor): a top-level string override picks one."""
        base = self.package_dir / "trainer" / "config"
        return frozenset(p.name for p in base.iterdir() if p.is_dir() and not p.name.startswith("_"))

    def compose(self, config_dir: str, config_name: str, group_choices: dict[str, str]) -> DictConfig:
        """Compose verl's own config from this verl's files (a separate Hydra step from LiveRL's).

        Returns a fresh struct-mode copy; the composition itself is cached per process (multirun, validate-all).
        """
        key = (self.package_dir, config_dir, config_name, tuple(sorted(group_choices.items())))
        if key not in _COMPOSED:  # pickled: loading is ~3x faster than deep-copying a DictConfig
            _COMPOSED[key] = pickle.dumps(self._compose(config_dir, config_name, group_choices))
        return pickle.loads(_COMPOSED[key])

    def _compose(self, config_dir: str, config_name: str, group_choices: dict[str, str]) -> DictConfig:
        overrides = [f"{k}={v}" for k, v in group_choices.items()]
        # fully_async_ppo_trainer pulls ppo_trainer through pkg://verl.trainer.config; point it at
        # this verl's files so a checkout is composed from itself, not from the installed package.
        overrides.append(f"hydra.searchpath=[file://{self.package_dir / 'trainer' / 'config'}]")
        with (
            _own_global_hydra(),
            initialize_config_dir(config_dir=str(self.package_dir / config_dir), version_base=None),
        ):
            cfg = compose(config_name=config_name, overrides=overrides)
        OmegaConf.set_struct(cfg, True)
        return cfg

    @cached_property
    def _veomni_engine(self) -> DictConfig:
        return OmegaConf.load(self.package_dir / "trainer" / "config" / "engine" / "veomni.yaml")

    def features(self, cfg: DictConfig) -> dict[str, bool]:
        """Which optional features this verl has: probed on its schema files, its code and the composed config."""
        return {
            # the schema key actor.veomni.router_replay.mode (trainer/config/engine/veomni.yaml:112 in 0.9.1)
            "veomni_router_replay": _has(self._veomni_engine, "router_replay.mode"),
            **{name: self._code_has(path, *needles) for name, (path, needles) in CODE_CAPABILITIES.items()},
            "trajectory_filter": _has(cfg, "algorithm.trajectory_filter"),
        }

    def _code_has(self, relpath: str, *needles: str) -> bool:
        path = self.package_dir / relpath
        text = path.read_text(errors="replace") if path.is_file() else ""
        return all(n in text for n in needles)

    def pythonpath(self) -> str | None:
        """What must come first on PYTHONPATH for this verl to be the one imported (None when installed)."""
        return str(self.checkout) if self.checkout else None


# code paths the new verl's MoE support lives in: {feature: (file under verl/, text it must contain)}. Both are in
# verl 0.9.1: the engine worker reads actor.veomni.router_replay.mode to enable replay (workers/engine_workers.py:
# 496-505), and the partial-rollout resume loop keeps the earlier segments' routing and appends only the new tokens'
# (workers/rollout/llm_server.py:306-314, np.concatenate of routed_experts).
CODE_CAPABILITIES = {
    "veomni_r3_worker": ("workers/engine_workers.py", ("actor.veomni.router_replay.mode",)),
    "async_routed_experts_concat": (
        "workers/rollout/llm_server.py", ("final_output.routed_experts", "np.concatenate", "routed_experts[-len(")),
}
_ABSENT = object()
_COMPOSED: dict[tuple, bytes] = {}


@contextmanager
def _own_global_hydra() -> Iterator[None]:
    """Compose in a Hydra of our own, leaving the caller's (LiveRL's @hydra.main, multirun) untouched."""
    gh = GlobalHydra.instance()
    saved = gh.hydra if gh.is_initialized() else None
    gh.clear()
    try:
        yield
    finally:
        gh.clear()
        if saved is not None:
            gh.initialize(saved)


def _has(cfg: DictConfig, key: str) -> bool:
    return OmegaConf.select(cfg, key, default=_ABSENT) is not _ABSENT
