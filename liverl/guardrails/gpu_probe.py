"""The GPU x kernel stack of a machine: GatedDeltaNet's backward where the trainer runs (rule gdn-triton-hopper) and
its prefill where vLLM runs (rule gdn-prefill-flashinfer, on every node through liverl.launch.node_probe)."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Mapping
from importlib import metadata, util
from pathlib import Path

from omegaconf import OmegaConf

from liverl.errors import Problem
from liverl.guardrails.framework import Ctx
from liverl.rundir import RUNTIME_ENV_VARS


def version_tuple(text: str) -> tuple[int, ...]:
    """The first three numbers of a version string: "0.10.1rc1" -> (0, 10, 1)."""
    return tuple(int(x) for x in re.findall(r"\d+", text)[:3])


def gdn_kernel_problem(
    capability: tuple[int, int] | None, triton: str | None, fla: str | None, tilelang: bool, nvcc: bool = True,
    off: str | None = None,
) -> str | None:
    """Why Qwen3.5's GatedDeltaNet backward will refuse to run on this GPU stack, or None when it will run.
    flash-linear-attention 0.5.2 takes its tilelang backend for the gated chunk backward on Hopper only where tilelang
    is installed and an nvcc is found for tilelang's JIT (fla/utils/_compat.py has_usable_nvcc;
    fla/ops/common/backends/tilelang/__init__.py is_available) and nothing turns it off (`off`: FLA_TILELANG=0,
    is_enabled; FLA_DISABLE_BACKEND_DISPATCH=1, fla/ops/backends/__init__.py:28,163); else the Triton path raises
    (fla/ops/common/chunk_o.py:704-709)."""

    if capability is None or capability[0] != 9 or not triton or not fla or (tilelang and nvcc and not off):
        return None
    if version_tuple(fla) == (0, 5, 2) and (3, 4, 0) <= version_tuple(triton) < (3, 7, 1):
        why = "without tilelang"
        if tilelang and off:
            why = f"where {off} turns its tilelang backend off"
        elif tilelang:
            why = ("where its tilelang backend finds no nvcc for its JIT (CUDA_HOME or CUDA_PATH, PATH, the "
                   "nvidia-cuda-nvcc wheel, /usr/local/cuda) and falls back to Triton")
        return (
            f"flash-linear-attention {fla} refuses Triton {triton} on Hopper {why}: 'Triton >= 3.4.0 "
            "and < 3.7.1 on Hopper GPUs produces incorrect results for gated chunk_bwd_dqkwg' at the first backward"
        )
    return None


CUDA_DEFAULT = Path("/usr/local/cuda")


def usable_nvcc(env: Mapping[str, str] | None = None) -> bool:
    """Whether flash-linear-attention finds an nvcc for tilelang's JIT, where it looks (fla/utils/_compat.py
    has_usable_nvcc, 0.5.2): CUDA_HOME or CUDA_PATH's bin/nvcc, nvcc on PATH, the nvidia-cuda-nvcc wheel's nvcc (13.x
    ships it; the -cu12 wheel only ptxas), /usr/local/cuda/bin/nvcc."""
    env = os.environ if env is None else env
    home = env.get("CUDA_HOME") or env.get("CUDA_PATH")
    if home is not None and (Path(home) / "bin" / "nvcc").exists():
        return True
    if shutil.which("nvcc", path=env.get("PATH")) is not None:
        return True
    try:
        files = metadata.files("nvidia-cuda-nvcc") or []
    except metadata.PackageNotFoundError:
        files = []
    return any(f.name == "nvcc" for f in files) or (CUDA_DEFAULT / "bin" / "nvcc").exists()


# vLLM 0.24.0 resolves GatedDeltaNet's prefill backend (--gdn-prefill-backend, unset: "auto") to FlashInfer without
# asking whether flashinfer is installed (model_executor/layers/mamba/gdn/qwen_gdn_linear_attn.py:150-210): on an
# SM 9.0 GPU always; on SM 10.x where nvidia-cutlass-dsl-libs-cu13 is installed intact (and head_k_dim is 128 and
# CUDA >= 13: Qwen3.5's and the lock's). It imports flashinfer.gdn_prefill at the first prefill (line 252): seen on an
# H100 (docs/gpu-smoke.md, fifteenth session)
VLLM_GDN_FLASHINFER = (0, 24, 0)
GDN_BACKEND_KEY = "actor_rollout_ref.rollout.engine_kwargs.vllm.gdn_prefill_backend"
GDN_BACKENDS = ("flashinfer", "triton", "cutedsl")  # the flag's choices, case-sensitive (engine/arg_utils.py:1570)
FLASHINFER, CUTLASS_CU13 = "flashinfer-python", "nvidia-cutlass-dsl-libs-cu13"  # distributions (requirements-gpu.lock)


def gdn_prefill_problem(
    capability: tuple[int, int] | None, vllm: str | None, flashinfer: str | None, backend: str | None,
    cutlass_cu13: str | None = None,
) -> str | None:
    """Why vLLM's GatedDeltaNet prefill will die on a node's GPU stack (FlashInfer picked, flashinfer not installed),
    or None."""
    if capability is None or not vllm or flashinfer or version_tuple(vllm) < VLLM_GDN_FLASHINFER:
        return None
    picks = capability == (9, 0) or (capability[0] == 10 and cutlass_cu13 is not None)
    if not picks or backend not in (None, "flashinfer"):
        return None
    return (
        f"vLLM {vllm} runs GatedDeltaNet's prefill with FlashInfer on its SM {capability[0]}.{capability[1]} GPU "
        f"(gdn_prefill_backend={backend or 'unset'}) and flashinfer is not installed: every rollout dies at its first "
        "prefill (ModuleNotFoundError: No module named 'flashinfer'), after the model is loaded"
    )


GDN_PREFILL_FIX = (
    "run the prefill on Triton: verl.actor_rollout_ref.rollout.engine_kwargs.vllm.gdn_prefill_backend=triton; or "
    "install requirements-gpu.lock's optional group on every node (make install with the registry, or a wheelhouse "
    "built without WITHOUT=optional: flashinfer, and nvcc for its JIT-compiled kernels)"
)


def gdn_prefill_finding(where: str, problem: str, backend: str | None) -> Problem:
    return Problem(key="rollout image", got=f"flashinfer not installed, gdn_prefill_backend={backend or 'unset'}",
                   message=f"{where}: {problem}", fix=GDN_PREFILL_FIX, rule="gdn-prefill-flashinfer")


def check_rollout_kernels_here(ctx: Ctx) -> Problem | None:
    """Rule gdn-prefill-flashinfer for this machine (a run on one machine: its vLLM runs here)."""
    if not ctx.linear_attention:
        return None
    backend = ctx.v(GDN_BACKEND_KEY)
    problem = gdn_prefill_problem(local_capability(), dist_version("vllm"), dist_version(FLASHINFER), backend,
                                  dist_version(CUTLASS_CU13))
    return gdn_prefill_finding("this machine", problem, backend) if problem else None


def dist_version(name: str) -> str | None:
    """The installed version of distribution `name`, None when it is not installed."""
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


FLA_OFF = (("FLA_TILELANG", "0"), ("FLA_DISABLE_BACKEND_DISPATCH", "1"))  # what turns FLA's tilelang backward off


def training_kernel_facts(env: Mapping[str, str] | None = None) -> dict[str, object]:
    """What flash-linear-attention's GatedDeltaNet backward depends on here, besides the GPU: triton and
    flash-linear-attention (versions), tilelang (installed), tilelang_off (the variable that turns it off, or None),
    an nvcc for its JIT; `env` laid over this process's environment (the plan's runtime env, which verl's workers
    get). No torch import: the per-node probe runs it too (liverl.launch.node_facts)."""
    e = with_env(os.environ, env or {})
    off = next((f"{k}={v}" for k, v in FLA_OFF if e.get(k) == v), None)
    return {"triton": dist_version("triton"), "fla": dist_version("flash-linear-attention"),
            "tilelang": util.find_spec("tilelang") is not None, "tilelang_off": off, "nvcc": usable_nvcc(e)}


def local_capability() -> tuple[int, int] | None:
    """This machine's first GPU's compute capability (torch's), None without torch or a GPU."""
    if dist_version("torch"):
        import torch

        if torch.cuda.is_available():
            return torch.cuda.get_device_capability(0)
    return None


def local_kernel_facts(
    env: Mapping[str, str] | None = None,
) -> tuple[tuple[int, int] | None, str | None, str | None, bool, bool, str | None]:
    """(GPU compute capability, triton, flash-linear-attention, tilelang, nvcc, tilelang_off: training_kernel_facts)
    of this machine."""
    k = training_kernel_facts(env)
    return local_capability(), k["triton"], k["fla"], bool(k["tilelang"]), bool(k["nvcc"]), k["tilelang_off"]


GDN_KERNEL_FIX = ("install tilelang and an nvcc it finds (a CUDA toolkit on PATH, or the nvidia-cuda-nvcc wheel) in "
                  "the training image (requirements-gpu.lock's optional group has both), with neither FLA_TILELANG=0 "
                  "nor FLA_DISABLE_BACKEND_DISPATCH=1 in the nodes' environment or in "
                  "verl.ray_kwargs.ray_init.runtime_env.env_vars; or use Triton >= 3.7.1 (or < 3.4)")


def gdn_kernel_finding(where: str, problem: str) -> Problem:
    return Problem(key="training image", message=f"{where}: {problem}", fix=GDN_KERNEL_FIX, rule="gdn-triton-hopper")


def check_kernels_here(ctx: Ctx) -> Problem | None:
    """Rule gdn-triton-hopper for this machine (the launchers call it before training starts; a cluster's nodes are
    judged by the per-node probe)."""
    if not ctx.linear_attention:
        return None
    problem = gdn_kernel_problem(*local_kernel_facts(plan_env(ctx.verl)))
    return gdn_kernel_finding("this machine", problem) if problem else None


def plan_env(verl_cfg: object) -> dict[str, str]:
    """The environment a plan gives verl's Ray workers (verl's ray.init runtime env), unexpanded: a `${PATH}` in a
    value is Ray's to expand on the worker (with_env), not an OmegaConf interpolation; null values are left out."""
    env = OmegaConf.select(verl_cfg, RUNTIME_ENV_VARS, default=None) if verl_cfg is not None else None
    raw = OmegaConf.to_container(env, resolve=False) if env is not None else {}
    return {str(k): str(v) for k, v in raw.items() if v is not None}


_VAR = re.compile(r"\$(?:\{(\w+)\}|(\w+))")


def with_env(base: Mapping[str, str], env: Mapping[str, str]) -> dict[str, str]:
    """`env` laid over `base` as Ray lays a runtime env's env_vars over a worker's (ray/_private/utils.py
    update_envs): `$X` and `${X}` in a value are X's value in `base`; an unknown `${X}` is dropped, an unknown `$X`
    kept."""
    def expand(value: str) -> str:
        return _VAR.sub(lambda m: base.get(m[1] or m[2], "" if m[1] else m[0]), value)

    return {**base, **{k: expand(v) for k, v in env.items()}}


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
    for fields in ("name,memory.total,compute_cap", "name,memory.total"):  # drivers before compute_cap: sizes only
        try:
            out = subprocess.run(["nvidia-smi", f"--query-gpu={fields}", "--format=csv,noheader,nounits"],
                                 capture_output=True, text=True, timeout=timeout, env=env)
        except (OSError, subprocess.SubprocessError):
            return []
        if out.returncode == 0:
            break
    else:
        return []
    rows = [line.rsplit(",", fields.count(",")) for line in out.stdout.splitlines() if "," in line]
    return [(row[0].strip(), (int(row[1]) - NVSMI_RESERVED_MIB) * 2**20, capability_text(row[2:]))
            for row in rows if row[1].strip().isdigit()]


def capability_text(fields: list[str]) -> str | None:
    """nvidia-smi's compute_cap field ("9.0"), None where it is missing or not a capability ("[N/A]")."""
    return fields[0].strip() if fields and capability_of(fields[0].strip()) else None


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
