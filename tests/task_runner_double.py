"""Swap verl's TaskRunner for a test double in a launched plan (installed by sitecustomize.py, tests only).

A finder on sys.meta_path waits for `verl.trainer.main_ppo` to load, then wraps its `run_ppo` so that the
task_runner_class every recipe passes is replaced by the class LIVERL_TASK_RUNNER_DOUBLE names (module:Class).
verl is not imported here: the hook costs nothing in processes that never start a trainer (Ray's workers).
"""

from __future__ import annotations

import functools
import importlib
import importlib.abc
import importlib.util
import os
import sys

TASK_RUNNER_DOUBLE_ENV = "LIVERL_TASK_RUNNER_DOUBLE"
TARGET = "verl.trainer.main_ppo"


def double() -> type:
    module, _, name = os.environ[TASK_RUNNER_DOUBLE_ENV].partition(":")
    return getattr(importlib.import_module(module), name)


def _patch(module) -> None:
    real = module.run_ppo

    @functools.wraps(real)
    def run_ppo(config, task_runner_class=None) -> None:
        return real(config, task_runner_class=double())

    module.run_ppo = run_ppo


class _PatchOnLoad(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name != TARGET:
            return None
        sys.meta_path.remove(self)  # find the real spec without finding ourselves; one patch per process
        spec = importlib.util.find_spec(name)
        loader_exec = spec.loader.exec_module

        def exec_module(module) -> None:
            loader_exec(module)
            _patch(module)

        spec.loader.exec_module = exec_module
        return spec


def install() -> None:
    if not any(isinstance(f, _PatchOnLoad) for f in sys.meta_path):
        sys.meta_path.insert(0, _PatchOnLoad())
