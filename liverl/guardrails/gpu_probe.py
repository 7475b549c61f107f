"""The GPU x kernel stack of this machine, judged where the trainer runs (rule gdn-triton-hopper)."""

from __future__ import annotations

import re
from importlib import metadata, util

from omegaconf import DictConfig

from liverl.errors import Problem


def version_tuple(text: str) -> tuple[int, ...]:
    """The first three numbers of a version string: "0.10.1rc1" -> (0, 10, 1)."""
    return tuple(int(x) for x in re.findall(r"\d+", text)[:3])


def gdn_kernel_problem(
    capability: tuple[int, int] | None, triton: str | None, fla: str | None, tilelang: bool
) -> str | None:
    """Why Qwen3.5's GatedDeltaNet backward will refuse to run on this GPU stack, or None when it will run."""

    if capability is None or capability[0] != 9 or not triton or not fla or tilelang:
        return None
    if version_tuple(fla) == (0, 5, 2) and (3, 4, 0) <= version_tuple(triton) < (3, 7, 1):
        return (
            f"flash-linear-attention {fla} refuses Triton {triton} on Hopper without tilelang: 'Triton >= 3.4.0 "
            "and < 3.7.1 on Hopper GPUs produces incorrect results for gated chunk_bwd_dqkwg' at the first backward"
        )
    return None


def local_kernel_facts() -> tuple[tuple[int, int] | None, str | None, str | None, bool]:
    """(GPU compute capability, triton, flash-linear-attention, tilelang installed) of this machine."""
    def dist(name: str) -> str | None:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return None

    capability = None
    if dist("torch"):
        import torch

        if torch.cuda.is_available():
            capability = torch.cuda.get_device_capability(0)
    return capability, dist("triton"), dist("flash-linear-attention"), util.find_spec("tilelang") is not None


def check_kernels_here(cfg: DictConfig) -> Problem | None:
    """Rule gdn-triton-hopper, run where the trainer runs (the launchers call it before training starts)."""
    if not cfg.model.linear_attention:
        return None
    problem = gdn_kernel_problem(*local_kernel_facts())
    if problem:
        return Problem(
            key="training image",
            message=problem,
            fix="install tilelang in the training image, or use Triton >= 3.7.1 (or < 3.4)",
            rule="gdn-triton-hopper",
        )
    return None


# Run in a fresh interpreter: it sees every GPU of the node whatever CUDA_VISIBLE_DEVICES the caller has (a Ray
# task without GPUs gets none), and its CUDA context is gone when it exits.
_TORCH_GPUS = ("import json, torch\n"
               "n = torch.cuda.device_count() if torch.cuda.is_available() else 0\n"
               "print(json.dumps([[torch.cuda.get_device_name(i), torch.cuda.get_device_properties(i).total_memory]"
               " for i in range(n)]))")
NVSMI_RESERVED_MIB = 600  # nvidia-smi's memory.total exceeds torch's total_memory by ~0.55-0.6 GiB (driver reserve)


def gpus_here(timeout: float = 60) -> list[tuple[str, int]]:
    """(device name, bytes torch can use) of each GPU of this machine: torch's total_memory, else nvidia-smi's
    memory.total less the driver's reserve; [] when neither sees a GPU."""
    import json
    import os
    import shutil
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "CUDA_VISIBLE_DEVICES"}
    try:
        out = subprocess.run([sys.executable, "-c", _TORCH_GPUS], capture_output=True, text=True, timeout=timeout,
                             env=env)
        if out.returncode == 0 and out.stdout.strip():
            gpus = [(str(n), int(b)) for n, b in json.loads(out.stdout.strip().splitlines()[-1])]
            if gpus:
                return gpus
    except (OSError, subprocess.SubprocessError, ValueError):
        pass
    if not shutil.which("nvidia-smi"):
        return []
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total", "--format=csv,noheader,nounits"],
                             capture_output=True, text=True, timeout=timeout, env=env)
    except (OSError, subprocess.SubprocessError):
        return []
    rows = [line.rsplit(",", 1) for line in out.stdout.splitlines() if "," in line]
    return [(n.strip(), (int(m) - NVSMI_RESERVED_MIB) * 2**20) for n, m in rows if m.strip().isdigit()]


def host_memory_here() -> int | None:
    """This machine's physical memory in bytes (what the kernel's OOM killer judges against)."""
    import os

    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return None
