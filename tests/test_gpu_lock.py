"""requirements-gpu.lock carries what LiveRL itself imports: the offline GPU host gets nothing else.

Seen on the host (2026-11-30): a closure packed before liverl.secrets started importing detect-secrets failed every
launch at `import detect_secrets`. This test reads every module-level import of liverl/ and recipes/ (the code that
runs on a GPU node), maps it to its distribution in this environment, and asks that each one is pinned in
requirements-gpu.lock or is on the host already (gpu-host-notes.md, and what the real runs there imported).
"""

from __future__ import annotations

import ast
import re
import sys
from importlib.metadata import packages_distributions
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Python 3.12 on the host ships these (torch 2.11.0+cu130 and friends); yaml/requests/rich: imported there by the
# real runs (hydra, vLLM, the plan printer) without being packed
HOST = {"torch", "transformers", "tokenizers", "numpy", "pyarrow", "pandas", "aiohttp", "pyyaml", "requests", "rich"}
# run by .venv-harbor's Python 3.12, never on a GPU node's trainer interpreter (liverl/scaffold/trial.py)
HARBOR_SIDE = {"liverl/scaffold/trial_runner.py", "liverl/scaffold/harbor_agents.py", "liverl/scaffold/local_env.py"}


def norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def module_level_imports(path: Path) -> set[str]:
    """Top-level names imported outside functions (lazy imports inside functions load only on their path)."""
    names: set[str] = set()
    for node in ast.parse(path.read_text()).body:
        for sub in ast.walk(node) if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) else ():
            if isinstance(sub, (ast.FunctionDef, ast.AsyncFunctionDef)):
                break
            if isinstance(sub, ast.Import):
                names |= {a.name.split(".")[0] for a in sub.names}
            elif isinstance(sub, ast.ImportFrom) and sub.module and not sub.level:
                names.add(sub.module.split(".")[0])
    return names


def test_every_distribution_liverl_imports_is_in_the_gpu_lock_or_on_the_host() -> None:
    locked = {norm(line.split("==")[0]) for line in (ROOT / "requirements-gpu.lock").read_text().splitlines()
              if "==" in line and not line.startswith("#")}
    dists = packages_distributions()
    missing: dict[str, set[str]] = {}
    for path in sorted([*ROOT.joinpath("liverl").rglob("*.py"), *ROOT.joinpath("recipes").rglob("*.py")]):
        rel = path.relative_to(ROOT).as_posix()
        if rel in HARBOR_SIDE:
            continue
        for top in module_level_imports(path) - set(sys.stdlib_module_names) - {"liverl", "recipes", "__future__"}:
            wanted = {norm(d) for d in dists.get(top, [top])}
            if not wanted & (locked | HOST):
                missing.setdefault(", ".join(sorted(wanted)), set()).add(rel)
    assert not missing, f"add to requirements-gpu.lock (and repack the closure): {missing}"
    assert "detect-secrets" in locked
