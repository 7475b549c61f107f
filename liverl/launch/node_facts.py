"""What one node of a cluster runs a plan with, as the per-node probe reports it (liverl.launch.node_probe) and
`python -m liverl.cluster check` (scripts/ray_cluster.sh) compares: LiveRL's version and commit, vLLM's version, the
trainer's imports, and, where the scaffold runs trials, Harbor's Python (.venv-harbor) and the agent's CLI.

Every node runs verl's agent-loop workers (verl experimental/agent_loop/agent_loop.py:1212-1222), and with them the
scaffold's trials (liverl/scaffold/trial.py): a node that differs runs other code than the launcher checked.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from importlib import util
from pathlib import Path
from typing import Any

from liverl.guardrails.gpu_probe import CUTLASS_CU13, FLASHINFER, dist_version
from liverl.paths import LIVERL_ROOT, harbor_env, harbor_python

# the CLI each Harbor agent runs inside the trial's environment: Harbor's ClaudeCode agent runs `claude`
# (harbor agents/installed/claude_code.py); agents that are Python classes (OpenHands SDK) need none
AGENT_CLI = {"claude-code": "claude"}
# a copy of LiveRL shipped with a Ray job (launcher=ray_job, py_modules) is no git checkout: the commit travels in it
COMMIT_FILE = "LIVERL_COMMIT"


def _run(args: list[str], **kw: Any) -> str | None:
    try:
        out = subprocess.run(args, capture_output=True, text=True, timeout=60, check=True, **kw)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip()


def liverl_commit() -> str | None:
    """LiveRL's commit, `+dirty.<digest of the diff>` when the checkout has uncommitted changes; the commit a staged
    copy carries; None where neither is known."""
    staged = LIVERL_ROOT / "liverl" / COMMIT_FILE
    if staged.is_file():
        return staged.read_text().strip() or None
    sha = _run(["git", "-C", str(LIVERL_ROOT), "rev-parse", "HEAD"])
    if not sha:
        return None
    diff = _run(["git", "-C", str(LIVERL_ROOT), "diff", "HEAD"]) or ""
    return sha + (f"+dirty.{hashlib.sha256(diff.encode()).hexdigest()[:12]}" if diff else "")


def scaffold_runs_trials(harbor: dict[str, Any] | None) -> bool:
    return bool(harbor and (harbor.get("agent_name") or harbor.get("agent_import_path")))


def harbor_facts(harbor: dict[str, Any]) -> tuple[str | None, str | None]:
    """(Harbor's version in the trial interpreter, the agent CLI's `--version`), None for what is missing; the CLI
    is looked up on the PATH the trials get (scaffold.harbor.agent_path_prepend first: liverl.paths.harbor_env)."""
    python = harbor_python(harbor.get("python"))
    version = _run([python, "-c", "import importlib.metadata as m; print(m.version('harbor'))"]) if Path(
        python).exists() else None
    cli = AGENT_CLI.get(str(harbor.get("agent_name")))
    if cli is None:
        return version, "none needed"
    found = shutil.which(cli, path=harbor_env(harbor).get("PATH"))
    return version, (_run([found, "--version"]) or f"{found} (no --version)") if found else None


def node_facts(modules: tuple[str, ...], harbor: dict[str, Any] | None) -> dict[str, Any]:
    """This node's facts: liverl, commit, vllm, flashinfer and cutlass_cu13 (vLLM's GatedDeltaNet prefill), missing
    (imports), harbor and cli (None where the scaffold runs no trials)."""
    facts: dict[str, Any] = {
        "liverl": dist_version("liverl"),
        "commit": liverl_commit(),
        "vllm": dist_version("vllm"),
        # what vLLM's GatedDeltaNet prefill needs and picks it by (rule gdn-prefill-flashinfer)
        "flashinfer": dist_version(FLASHINFER),
        "cutlass_cu13": dist_version(CUTLASS_CU13),
        "missing": [m for m in modules if util.find_spec(m) is None],
        "harbor": None,
        "cli": None,
    }
    if scaffold_runs_trials(harbor):
        facts["harbor"], facts["cli"] = harbor_facts(harbor or {})
    return facts


def differences(node: dict[str, Any], reference: dict[str, Any], trials: bool, who: str = "launcher") -> list[str]:
    """How a node's facts differ from the reference's (`who`'s: the launcher's, or this node's in a cluster check),
    one `what: node X, launcher Y` each; Harbor's Python and the agent's CLI only where the scaffold runs trials. What
    every node and the reference lack alike is no difference (no node is the odd one out)."""
    out = []
    for key in ("liverl", "commit", "vllm"):
        if node.get(key) != reference.get(key):
            out.append(f"{key}: {node.get(key) or 'none'} ({who}: {reference.get(key) or 'none'})")
    extra = sorted(set(node.get("missing") or []) - set(reference.get("missing") or []))
    if extra:
        out.append(f"imports: cannot import {', '.join(extra)} (the {who} can)")
    if trials:
        for key, what in (("harbor", "Harbor (.venv-harbor)"), ("cli", "the agent's CLI")):
            if node.get(key) != reference.get(key):
                out.append(f"{what}: {node.get(key) or 'missing'} ({who}: {reference.get(key) or 'missing'})")
    return out
