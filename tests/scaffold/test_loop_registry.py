"""The plan's agent-loop entry survives verl's worker: every sample, not only the first, gets the harbor settings.

verl's AgentLoopWorker registers each entry of the plan's agent_loop.yaml in its registry when it starts
(verl/experimental/agent_loop/agent_loop.py:534-539) and, per sample, looks the entry up and instantiates it
(agent_loop.py:682-692); instantiating imports the `_target_` module first. A class decorated with verl's
`@register(name)` re-registers itself at that import as a bare {"_target_"} (agent_loop.py:470-476): the first sample
had the plan's settings, every later one none. On the GPU host that was KeyError 'agent_timeout_sec' on 24 of 32
trials of the first step. The sequence runs in a fresh interpreter, as a worker is, where LiveRL's loop module has not
been imported yet.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from liverl.recipe.build import build
from liverl.recipe.compose import compose_liverl
from liverl.recipe.render import agent_loop_config

WORKER = """
import json, sys
import hydra
from omegaconf import OmegaConf
from verl.experimental.agent_loop.agent_loop import _agent_loop_registry

for entry in OmegaConf.load(sys.argv[1]):          # AgentLoopWorker.__init__, agent_loop.py:534-539
    _agent_loop_registry[entry.name] = entry
name, seen = sys.argv[2], []
assert "liverl.scaffold.agent_loop" not in sys.modules
for sample in range(2):                             # per sample, agent_loop.py:682-684
    config = _agent_loop_registry[name]
    hydra.utils.get_class(config["_target_"])       # what instantiate does first: locate (import) the target
    harbor = config.get("harbor") or {}
    seen.append({"target": config["_target_"], "agent_timeout_sec": harbor.get("agent_timeout_sec"),
                 "environment_import_path": harbor.get("environment_import_path")})
print(json.dumps(seen))
"""


@pytest.mark.parametrize("scaffold", ["claude_code", "ohsdk"])
def test_every_sample_on_a_worker_gets_the_plans_harbor_settings(scaffold: str, tmp_path: Path) -> None:
    b = build(compose_liverl([f"scaffold={scaffold}", "scaffold.harbor.agent_timeout_sec=777",
                              "scaffold.harbor.environment_type=null",
                              "scaffold.harbor.environment_import_path=liverl.scaffold.local_env:LocalEnvironment"]))
    entries = agent_loop_config(b.liverl, b.verl)
    path = tmp_path / "agent_loop.yaml"
    OmegaConf.save(OmegaConf.create(entries), path)
    proc = subprocess.run([sys.executable, "-c", WORKER, str(path), entries[0]["name"]], capture_output=True,
                          text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    first, second = json.loads(proc.stdout.strip().splitlines()[-1])
    assert first == second == {"target": "liverl.scaffold.agent_loop.HarborAgentLoop", "agent_timeout_sec": 777,
                               "environment_import_path": "liverl.scaffold.local_env:LocalEnvironment"}
