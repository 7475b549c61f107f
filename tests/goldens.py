"""Golden resolved verl configs (tests/golden/): compared, never rewritten by a run that can pass.

`make goldens` (LIVERL_UPDATE_GOLDEN=1 pytest tests/test_matrix.py) rewrites them and FAILS every test that wrote
one, so a regeneration can never be a green run; review `git diff tests/golden` and commit the goldens alone, saying
why each changed. Under CI (CI=true, as CI services set it) the variable is refused: nothing is written.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import pytest
from omegaconf import OmegaConf

GOLDEN = Path(__file__).parent / "golden"
UPDATE = "LIVERL_UPDATE_GOLDEN"


def under_ci(environ: Mapping[str, str]) -> bool:
    return environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def update_refusal(environ: Mapping[str, str]) -> str | None:
    """Why LIVERL_UPDATE_GOLDEN may not be used here (None: it may, or it is unset)."""
    if environ.get(UPDATE) and under_ci(environ):
        return f"{UPDATE}: refused under CI (got: {UPDATE}={environ[UPDATE]}, CI={environ['CI']}); CI compares the " \
            "goldens, it never writes them: run `make goldens` on a workstation, review and commit them alone"
    return None


def check_golden(verl_cfg, name: str, golden_dir: Path = GOLDEN, environ: Mapping[str, str] = os.environ) -> None:
    """The resolved verl config equals tests/golden/<name>.yaml; with LIVERL_UPDATE_GOLDEN, rewrite it and fail."""
    refusal = update_refusal(environ)
    if refusal:
        pytest.fail(refusal)
    path = golden_dir / f"{name}.yaml"
    text = OmegaConf.to_yaml(verl_cfg, resolve=True)
    if environ.get(UPDATE):
        old = path.read_text() if path.is_file() else None
        golden_dir.mkdir(exist_ok=True)
        path.write_text(text)
        what = "unchanged" if old == text else "written" if old is None else "REWRITTEN"
        pytest.fail(f"golden {path.name} {what} ({UPDATE} is set, so this run fails by design): review "
                    "`git diff tests/golden`, commit the goldens alone saying why each changed, rerun without it")
    assert path.is_file(), f"no golden config {path}; run `make goldens` and review the diff"
    assert text == path.read_text(), f"the resolved verl config for {name} changed; review, then `make goldens`"
