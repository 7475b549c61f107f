"""On a GPU host after `make install` (offline: make install WHEELHOUSE=DIR): the GPU environment is the lock, vLLM
and verl import and see the GPU, and the per-node probe on a real Ray head with the host's GPUs finds this node the
same as its launcher. Marked gpu: skipped where nvidia-smi lists no GPU (CI), run by `make test` on a GPU host."""

from __future__ import annotations

import importlib.util
import re
import sys
from importlib import metadata
from pathlib import Path

import pytest
from raytest import ray_head

pytestmark = pytest.mark.gpu
ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("gpu_env", ROOT / "scripts" / "gpu_env.py")
gpu_env = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(gpu_env)


def installed(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def in_venv(name: str) -> bool:
    """Installed in this venv, not seen through it from the system Python (a GPU host whose Python has torch: the
    venv sees the system's packages, mkvenv.sh)."""
    where = Path(str(metadata.distribution(name).locate_file(""))).resolve()
    return where.is_relative_to(Path(sys.prefix).resolve())


def test_the_gpu_environment_is_the_lock() -> None:
    wrong = []
    for name, version, tag in gpu_env.read_lock(ROOT / "requirements-gpu.lock"):
        have = installed(name)
        if tag == "torch":  # a system torch of the pinned release brings its own CUDA stack
            ok = name != "torch" or gpu_env.same_release(have or "", version)
        elif tag == "optional":  # left out where the wheelhouse had none: absent, or the system Python's own
            ok = have in (None, version) or not in_venv(name)
        else:
            ok = have == version
        if not ok:
            wrong.append(f"{name}: locked {version}, installed {have}")
    assert not wrong, wrong


def test_vllm_verl_and_torch_see_the_gpu() -> None:
    import torch
    import verl
    import vllm

    assert torch.cuda.is_available() and torch.cuda.device_count() >= 1
    assert re.match(r"13\.", torch.version.cuda or ""), torch.version.cuda  # vLLM 0.24.0 links libcudart.so.13
    assert (vllm.__version__, verl.__version__) == ("0.24.0", "0.9.1")
    import transfer_queue  # noqa: F401  (verl's v1 sync trainer imports it)
    import veomni  # noqa: F401


def test_the_node_probe_finds_this_gpu_node_the_same_as_its_launcher(tmp_path: Path) -> None:
    import torch
    from omegaconf import OmegaConf

    from liverl.launch.node_facts import node_facts
    from liverl.launch.node_probe import judge, probe_nodes

    with ray_head(num_gpus=torch.cuda.device_count()) as address:
        (node,) = probe_nodes(address, tmp_path, ("transfer_queue",))
    assert node.vllm == "0.24.0" and node.missing == [] and node.commit
    cfg = OmegaConf.create({"actor_rollout_ref": {"rollout": {"enable_rollout_routing_replay": True}}})
    assert judge([node], cfg, tmp_path, launcher=node_facts(("transfer_queue",), None)) == []
