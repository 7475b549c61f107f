"""The GPU x kernel stack of a machine: GatedDeltaNet's backward where the trainer runs (rule gdn-triton-hopper) and
its prefill where vLLM runs (rule gdn-prefill-flashinfer, on every node through liverl.launch.node_probe)."""

from __future__ import annotations

import re
from importlib import metadata, util

from omegaconf import DictConfig, OmegaConf

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


# vLLM 0.24.0 resolves GatedDeltaNet's prefill backend "auto" to FlashInfer on every SM 9.x GPU without asking
# whether flashinfer is installed (model_executor/layers/mamba/gdn/qwen_gdn_linear_attn.py:150-210), and imports
# flashinfer.gdn_prefill at the first prefill (line 252): seen on an H100 (docs/gpu-smoke.md, fifteenth session)
VLLM_GDN_FLASHINFER = (0, 24, 0)
GDN_BACKEND_KEY = "actor_rollout_ref.rollout.engine_kwargs.vllm.gdn_prefill_backend"  # vLLM's --gdn-prefill-backend


def gdn_prefill_problem(
    capability: tuple[int, int] | None, vllm: str | None, flashinfer: str | None, backend: str | None
) -> str | None:
    """Why vLLM's GatedDeltaNet prefill will die on this GPU stack (flashinfer picked, not installed), or None."""
    if capability is None or capability[0] != 9 or not vllm or flashinfer:
        return None
    if version_tuple(vllm) < VLLM_GDN_FLASHINFER or str(backend or "auto").lower() not in ("auto", "flashinfer"):
        return None
    return (
        f"vLLM {vllm} runs GatedDeltaNet's prefill with FlashInfer on this SM {capability[0]}.{capability[1]} GPU "
        f"(gdn_prefill_backend={backend or 'auto'}) and flashinfer is not installed: every rollout dies at its first "
        "prefill (ModuleNotFoundError: No module named 'flashinfer'), after the model is loaded"
    )


GDN_PREFILL_FIX = (
    "install requirements-gpu.lock's flashinfer-python and flashinfer-cubin pins (make install, without "
    "WITHOUT=optional), or run the prefill on Triton: verl.actor_rollout_ref.rollout.engine_kwargs.vllm."
    "gdn_prefill_backend=triton"
)


def gdn_prefill_finding(where: str, problem: str, backend: str | None) -> Problem:
    return Problem(key="rollout image", got=f"{where}: flashinfer not installed, gdn_prefill_backend="
                   f"{backend or 'auto'}", message=f"{where}: {problem}", fix=GDN_PREFILL_FIX,
                   rule="gdn-prefill-flashinfer")


def check_rollout_kernels_here(cfg: DictConfig, verl_cfg: DictConfig) -> Problem | None:
    """Rule gdn-prefill-flashinfer for this machine (a run on one machine: its vLLM runs here)."""
    if not cfg.model.linear_attention:
        return None
    backend = OmegaConf.select(verl_cfg, GDN_BACKEND_KEY, default=None)
    capability = local_kernel_facts()[0]
    problem = gdn_prefill_problem(capability, _dist("vllm"), _dist("flashinfer-python"), backend)
    return gdn_prefill_finding("this machine", problem, backend) if problem else None


def _dist(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def local_kernel_facts() -> tuple[tuple[int, int] | None, str | None, str | None, bool]:
    """(GPU compute capability, triton, flash-linear-attention, tilelang installed) of this machine."""
    capability = None
    if _dist("torch"):
        import torch

        if torch.cuda.is_available():
            capability = torch.cuda.get_device_capability(0)
    return capability, _dist("triton"), _dist("flash-linear-attention"), util.find_spec("tilelang") is not None


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
               "print(json.dumps([[torch.cuda.get_device_name(i), torch.cuda.get_device_properties(i).total_memory,"
               " '%d.%d' % torch.cuda.get_device_capability(i)] for i in range(n)]))")
NVSMI_RESERVED_MIB = 600  # nvidia-smi's memory.total exceeds torch's total_memory by ~0.55-0.6 GiB (driver reserve)


def gpu_rows_here(timeout: float = 60) -> list[tuple[str, int, str | None]]:
    """(device name, bytes torch can use, compute capability "9.0") of each GPU of this machine: torch's, else
    nvidia-smi's memory.total less the driver's reserve and its compute_cap; [] when neither sees a GPU."""
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
            gpus = [(str(n), int(b), str(c)) for n, b, c in json.loads(out.stdout.strip().splitlines()[-1])]
            if gpus:
                return gpus
    except (OSError, subprocess.SubprocessError, ValueError):
        pass
    if not shutil.which("nvidia-smi"):
        return []
    try:
        query = ["nvidia-smi", "--query-gpu=name,memory.total,compute_cap", "--format=csv,noheader,nounits"]
        out = subprocess.run(query, capture_output=True, text=True, timeout=timeout, env=env)
    except (OSError, subprocess.SubprocessError):
        return []
    rows = [[f.strip() for f in line.split(",")] for line in out.stdout.splitlines() if line.count(",") == 2]
    return [(n, (int(m) - NVSMI_RESERVED_MIB) * 2**20, c if re.fullmatch(r"\d+\.\d+", c) else None)
            for n, m, c in rows if m.isdigit()]


def gpus_here(timeout: float = 60) -> list[tuple[str, int]]:
    """(device name, bytes torch can use) of each GPU of this machine (gpu_rows_here without the capability)."""
    return [(name, size) for name, size, _ in gpu_rows_here(timeout)]


def capability_of(text: str | None) -> tuple[int, int] | None:
    """"9.0" -> (9, 0); None for what is no capability."""
    m = re.fullmatch(r"(\d+)\.(\d+)", text or "")
    return (int(m[1]), int(m[2])) if m else None


def host_memory_here() -> int | None:
    """This machine's physical memory in bytes (what the kernel's OOM killer judges against)."""
    import os

    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return None
