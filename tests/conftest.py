"""Shared fixtures: composing LiveRL + verl configs in-process, running the CLI, a new-verl fixture checkout."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from liverl.health.streams import attempt_files
from liverl.recipe.build import Build, build
from liverl.recipe.compose import compose_liverl

REPO = Path(__file__).resolve().parent.parent
# Ray >= 2.5x turns on token auth for new local clusters and writes ~/.ray/auth_token, which later heads then
# require: keep the tests' Ray clusters (and every LiveRL process they start) hermetic
os.environ["RAY_AUTH_MODE"] = "disabled"
# the smoke ledger (guardrail smoke-before-official) of the tests lives in a temporary file, never in ~/.liverl
os.environ["LIVERL_SMOKE_LEDGER"] = str(Path(tempfile.mkdtemp(prefix="liverl-ledger-")) / "smoke_ledger.json")
# so does the conformance ledger (python -m liverl.conform, guardrail harness-conformance)
os.environ["LIVERL_CONFORM_LEDGER"] = str(Path(tempfile.mkdtemp(prefix="liverl-ledger-")) / "conform_ledger.jsonl")
_BUILDS: dict[tuple[str, ...], Build] = {}
# data files that exist (a launch refuses missing ones): placeholders, nothing reads them before the trainer
_DATA_DIR = Path(tempfile.mkdtemp(prefix="liverl-data-"))
DATA = []
for _name in ("train", "val"):
    (_DATA_DIR / f"{_name}.parquet").write_bytes(b"PAR1")
    DATA.append(f"{_name}_files={_DATA_DIR / f'{_name}.parquet'}")


def pytest_configure(config: pytest.Config) -> None:
    from goldens import update_refusal

    refusal = update_refusal(os.environ)  # CI compares the goldens, it never rewrites them (tests/goldens.py)
    if refusal:
        raise pytest.UsageError(refusal)


def gpu_count() -> int:
    """The GPUs nvidia-smi lists here (0 without nvidia-smi)."""
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=60, check=False).stdout
    except (OSError, subprocess.SubprocessError):
        return 0
    return sum(line.startswith("GPU ") for line in out.splitlines())


def gpu_present() -> bool:
    """nvidia-smi lists a GPU here (the Makefile's test for a GPU host)."""
    return gpu_count() > 0


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked gpu run only where a GPU is present (make test on a GPU host); elsewhere (CI) they are skipped."""
    gpu_tests = [item for item in items if "gpu" in item.keywords]
    if gpu_tests and not gpu_present():
        skip = pytest.mark.skip(reason="no GPU here (nvidia-smi lists none): run on a GPU host after make install")
        for item in gpu_tests:
            item.add_marker(skip)


def metric_rows(run: Path) -> list[dict]:
    """Each logged step's metrics (verl's FileLogger rows' `data`) of a run directory, over its attempts in order."""
    return [json.loads(line)["data"] for path in attempt_files(run) for line in path.read_text().splitlines()
            if line.strip()]


def built(*overrides: str) -> Build:
    """compose + build for these overrides (cached: builds are read-only in tests)."""
    if overrides not in _BUILDS:
        _BUILDS[overrides] = build(compose_liverl(list(overrides)))
    return _BUILDS[overrides]


def run_cli(
    args: list[str], cwd: Path, env: dict[str, str] | None = None, module: str = "liverl.train"
) -> subprocess.CompletedProcess:
    """Run a LiveRL command line in a subprocess, the way a user does."""
    full_env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def run_dirs(root: Path) -> list[Path]:
    """Every run directory (one holding run.json) under root."""
    return sorted(p.parent for p in root.rglob("run.json"))


@pytest.fixture
def restore_environ():
    """run_plan sets the plan's environment in this process, as a launch does; undo it after the test."""
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)


TRAJ_FILTER_YAML = """
  # [fixture] new-verl schema addition: drop trajectories by termination reason before the update
  trajectory_filter:
    enable: false
    drop_reasons: []
    filter_overlong: false
"""


@pytest.fixture(scope="session")
def new_verl_checkout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A verl checkout made from the installed verl plus the new-verl schema keys (algorithm.trajectory_filter)."""
    import verl

    root = tmp_path_factory.mktemp("new_verl")
    pkg = root / "verl"
    shutil.copytree(Path(verl.__file__).parent, pkg, ignore=shutil.ignore_patterns("__pycache__"))
    yaml = pkg / "trainer" / "config" / "ppo_trainer.yaml"
    text = yaml.read_text()
    anchor = "\nalgorithm:\n"
    assert anchor in text, "verl's ppo_trainer.yaml changed shape; update the fixture"
    yaml.write_text(text.replace(anchor, anchor + TRAJ_FILTER_YAML, 1))
    algo = pkg / "trainer" / "config" / "algorithm.py"
    src = algo.read_text()
    marker = "    kl_ctrl: KLControlConfig = field(default_factory=KLControlConfig)\n"
    assert marker in src, "verl's AlgoConfig changed shape; update the fixture"
    algo.write_text(src.replace(marker, marker + "    trajectory_filter: Optional[dict] = None\n", 1))
    (pkg / "version" / "version").write_text("0.9.1+new-verl-fixture\n")
    return root


def _drop_yaml_block(text: str, key: str) -> str:
    """A top-level YAML block (key: and its indented lines) taken out."""
    lines, out, skipping = text.splitlines(keepends=True), [], False
    for line in lines:
        if line.startswith(f"{key}:"):
            skipping = True
            continue
        if skipping and line.strip() and not line[0].isspace() and not line.startswith("#"):
            skipping = False
        if not skipping:
            out.append(line)
    return "".join(out)


# how each new-verl capability is taken out of a fixture checkout (liverl.recipe.verl_source probes for it)
WITHOUT = {
    # the schema key actor.veomni.router_replay.mode
    "veomni_router_replay": ("trainer/config/engine/veomni.yaml", lambda t: _drop_yaml_block(t, "router_replay")),
    # the engine worker's VeOmni branch: replay never enabled for veomni (as verl did for FSDP)
    "veomni_r3_worker": (
        "workers/engine_workers.py",
        lambda t: t.replace("rr_mode = self.config.actor.veomni.router_replay.mode", 'rr_mode = "disabled"'),
    ),
    # the resume loop overwrites the routing instead of appending the new tokens' (the bug the fix removed)
    "async_routed_experts_concat": (
        "workers/rollout/llm_server.py",
        lambda t: t.replace(
            "np.concatenate(\n                        [final_output.routed_experts, "
            "output.routed_experts[-len(output.token_ids) :]]\n                    )",
            "output.routed_experts",
        ),
    ),
}


@pytest.fixture(scope="session")
def new_verl_without(new_verl_checkout: Path, tmp_path_factory: pytest.TempPathFactory):
    """A new-verl fixture checkout lacking one capability (a key of WITHOUT): a copy with that code or schema out."""
    made: dict[str, Path] = {}

    def make(capability: str) -> Path:
        if capability not in made:
            root = tmp_path_factory.mktemp(f"new_verl_without_{capability}")
            shutil.copytree(new_verl_checkout / "verl", root / "verl", ignore=shutil.ignore_patterns("__pycache__"))
            rel, edit = WITHOUT[capability]
            path = root / "verl" / rel
            before = path.read_text()
            after = edit(before)
            assert after != before, f"verl's {rel} changed shape; update the fixture ({capability})"
            path.write_text(after)
            made[capability] = root
        return made[capability]

    return make


def tiny_dataset(root: Path) -> list[str]:
    """train_files/val_files overrides naming two real parquet files (a launch refuses data paths that do not exist)."""
    import pandas as pd

    out = []
    for split in ("train", "val"):
        path = root / f"{split}.parquet"
        if not path.exists():
            pd.DataFrame({"prompt": [[{"role": "user", "content": "fix the failing test"}]]}).to_parquet(path)
        out.append(f"{split}_files={path}")
    return out


@pytest.fixture(scope="session")
def tokenizer(tmp_path_factory):
    """A real BPE tokenizer with a Qwen-style chat template, trained once per session (the scaffold tests).

    It lives here, not in a tests/scaffold/conftest.py: a second module named `conftest` would shadow this one for
    every `from conftest import ...` in a whole-suite run. transformers loads only for the tests that ask."""
    from scaffold.tokenizer_fixture import build_tokenizer

    return build_tokenizer(tmp_path_factory.mktemp("tokenizer"))


@pytest.fixture(scope="session")
def tiny_agentic_model(tmp_path_factory) -> Path:
    """The tiny agentic model (liverl.tiny.generate --agentic) at a CPU size (1 layer, hidden 64): its folder, with the
    agentic tokenizer and chat template. Built once per session for the warm-start and harness tests."""
    from liverl.tiny.generate import generate

    out = tmp_path_factory.mktemp("tiny_agentic")
    return Path(generate(out, layers=1, hidden=64, heads=2, vocab=600, train=2, val=1, agentic=True)["model"])


@pytest.fixture(scope="session")
def agentic_tokenizer(tiny_agentic_model: Path):
    """The tiny agentic model's tokenizer (transformers' AutoTokenizer)."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_agentic_model)
