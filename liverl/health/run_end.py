"""What a run directory says besides its metrics: the GPU it was planned for, and whether it ran out of GPU memory."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from liverl.rundir import RUN_JSON, recorded_gpu

# where the plan may record its GPU, read in this order (GB = 10^9 bytes, GiB = 2^30); the `gpu` config group
# (conf/gpu/*.yaml, another issue) is expected to write gpu.memory_* into liverl.yaml and run.json. Nothing found
# means unknown: advice never assumes a GPU (an H200 was assumed before).
LIVERL_GPU_KEYS = ("gpu.memory_gb", "gpu.memory_gib", "gpu.memory_bytes", "topology.gpu_memory_gb")
RUN_JSON_GPU_KEYS = ("gpu.memory_gb", "gpu.memory_gib", "gpu.memory_bytes", "gpus.memory_gb", "gpus.memory_bytes")
GPU_KEYS_READ = ("read liverl.yaml " + ", ".join(LIVERL_GPU_KEYS) + "; run.json " + ", ".join(RUN_JSON_GPU_KEYS))
_TO_GB = {"memory_gb": 1.0, "gb": 1.0, "memory_gib": 2**30 / 1e9, "memory_bytes": 1e-9}
# how CUDA / PyTorch say a process ran out of GPU memory
OOM = re.compile(r"CUDA out of memory|OutOfMemoryError|CUDA error: out of memory|cudaErrorMemoryAllocation")
END_FILES = ("traceback.txt", "errors.txt")


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _gb(value: Any, key: str) -> float | None:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or value <= 0:
        return None
    unit = key.rsplit(".", 1)[-1]
    return float(value) * _TO_GB.get(unit, 1.0)


def plan_gpu_memory(run: Path, config: DictConfig, thresholds: DictConfig) -> tuple[float, str] | None:
    """(GB per GPU, where it was read): --set advise.gpu_memory_gb first, then the GPU the launch probed, then the
    plan; None when nothing says."""
    asked = OmegaConf.select(thresholds, "advise.gpu_memory_gb", default=None)
    if asked:
        return float(asked), "advise.gpu_memory_gb"
    probed = recorded_gpu(run)  # what the node probe found at launch (run.json gpu, source "probe") beats the plan's
    if probed and probed.get("source") == "probe":
        return probed["memory_bytes"] / 1e9, f"run.json gpu (probed at launch: {probed.get('name', '?')})"
    for key in LIVERL_GPU_KEYS:
        gb = _gb(OmegaConf.select(config, key, default=None, throw_on_resolution_failure=False), key)
        if gb:
            return gb, f"liverl.yaml {key}"
    run_json = _read_json(run / RUN_JSON)
    for key in RUN_JSON_GPU_KEYS:
        node: Any = run_json
        for part in key.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        gb = _gb(node, key)
        if gb:
            return gb, f"run.json {key}"
    return None


def out_of_memory(run: Path) -> str | None:
    """Where the run says it ran out of GPU memory (file: the line), or None."""
    run_json = run / RUN_JSON
    texts = [(RUN_JSON, json.dumps(_read_json(run_json)))] if run_json.is_file() else []
    texts += [(name, (run / name).read_text(errors="replace")) for name in END_FILES if (run / name).is_file()]
    for name, text in texts:
        for line in text.splitlines():
            if OOM.search(line):
                return f"{name}: {line.strip()[:200]}"
    return None
