"""Provenance of a run: what code, packages and environment produced it (RUN_DIR/provenance/).

git.json + git.diff (LiveRL's commit and uncommitted changes; the verl checkout's commit under new verl),
pip-freeze.txt (every installed distribution, pip freeze's format), versions.json (Python, verl, Ray, torch,
host, command line) and environ.json (the variables that describe the run, values redacted, and only the names
of the rest: liverl.secrets.provenance_environ). The resolved configs are the
plan's liverl.yaml and verl.yaml; Hydra's own record is .hydra/. Secret values never reach these files.
"""

from __future__ import annotations

import functools
import json
import os
import platform
import socket
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

from liverl.guardrails.gpu_probe import dist_version
from liverl.paths import LIVERL_ROOT
from liverl.recipe.verl_source import VerlSource
from liverl.secrets import env_scrubber, provenance_environ, redacted_argv

PROVENANCE_DIR = "provenance"


def _git(repo: Path, *args: str) -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, timeout=30, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout


def git_state(repo: Path) -> dict[str, object]:
    """Commit, branch and dirtiness of the git checkout holding repo (None fields outside a checkout)."""
    sha = _git(repo, "rev-parse", "HEAD")
    if sha is None:
        return {"repo": str(repo), "sha": None, "note": "not a git checkout"}
    status = _git(repo, "status", "--porcelain") or ""
    return {
        "repo": str(repo),
        "sha": sha.strip(),
        "branch": (_git(repo, "rev-parse", "--abbrev-ref", "HEAD") or "").strip(),
        "dirty": bool(status.strip()),
        "status": status.splitlines(),
    }


@functools.cache
def pip_freeze() -> str:
    """Installed distributions (read once per process) as `name==version` (or `name @ url` for editable/URL
    installs), sorted."""
    lines = set()
    for dist in metadata.distributions():
        name = dist.metadata["Name"]
        if not name:
            continue
        direct = dist.read_text("direct_url.json")
        url = json.loads(direct).get("url") if direct else None
        lines.add(f"{name} @ {url}" if url else f"{name}=={dist.version}")
    return "\n".join(sorted(lines, key=str.lower)) + "\n"


def write_provenance(run_dir: Path, source: VerlSource | None) -> None:
    """Write RUN_DIR/provenance/ (every text scrubbed of secret values); source None: the config did not build."""
    out = run_dir / PROVENANCE_DIR
    out.mkdir(parents=True, exist_ok=True)
    scrubber = env_scrubber()
    git = {"liverl": git_state(LIVERL_ROOT)}
    if source is not None and source.checkout is not None:
        git["verl"] = git_state(Path(source.checkout))
    diff = _git(LIVERL_ROOT, "diff", "HEAD") if git["liverl"].get("dirty") else ""
    versions = {
        "python": sys.version.split()[0],
        "python_executable": sys.executable,
        "platform": platform.platform(),
        "host": socket.gethostname(),
        "verl": source.version if source else dist_version("verl"),
        "verl_source": source.label if source else None,
        **{name: dist_version(name) for name in ("liverl", "ray", "torch", "vllm", "hydra-core", "omegaconf")},
        "argv": redacted_argv(sys.argv),
        "cwd": os.getcwd(),
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    files = {
        "git.json": json.dumps(git, indent=2) + "\n",
        "git.diff": diff or "",
        "pip-freeze.txt": pip_freeze(),
        "versions.json": json.dumps(versions, indent=2) + "\n",
        "environ.json": json.dumps(provenance_environ(os.environ), indent=2) + "\n",
    }
    for name, text in files.items():
        (out / name).write_text(scrubber.scrub(text))
