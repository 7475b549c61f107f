"""The house's layering (.importlinter, run by `make lint`) holds, and lint-imports fails on a new cycle or a layer
reaching up: a copy of the packages with one such import added is refused."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def lint_imports(root: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run([str(LINT_IMPORTS), "--config", str(root / ".importlinter"), "--no-cache"], cwd=root,
                          env=env, capture_output=True, text=True, check=False)


@pytest.fixture
def house(tmp_path: Path) -> Path:
    """A copy of liverl/, recipes/ and .importlinter to break."""
    for package in ("liverl", "recipes"):
        shutil.copytree(REPO / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / ".importlinter", tmp_path / ".importlinter")
    return tmp_path


def add_import(module: Path, statement: str) -> None:
    text = module.read_text()
    head, sep, rest = text.partition("from __future__ import annotations\n")
    module.write_text(head + sep + statement + "\n" + rest)


def test_the_house_keeps_its_contracts(house: Path) -> None:
    out = lint_imports(house)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "broken" in out.stdout and "0 broken" in out.stdout


def test_a_layer_reaching_up_is_refused(house: Path) -> None:
    # guardrails (below recipe) importing the recipe builder: the cycle issue 8 removed
    add_import(house / "liverl" / "guardrails" / "framework.py", "import liverl.recipe.build  # noqa")
    out = lint_imports(house)
    assert out.returncode == 1
    assert "Each step of the flow imports only the steps below it BROKEN" in out.stdout
    assert "liverl.guardrails.framework -> liverl.recipe.build" in out.stdout


def test_a_cycle_inside_a_step_is_refused(house: Path) -> None:
    # the lock asking the Ray-job launcher, which takes the lock: the other cycle issue 8 removed
    add_import(house / "liverl" / "launch" / "jobs.py", "import liverl.launch.ray_job  # noqa")
    out = lint_imports(house)
    assert out.returncode == 1
    assert "No import cycles between the modules of a step BROKEN" in out.stdout
