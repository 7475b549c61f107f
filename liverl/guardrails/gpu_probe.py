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
