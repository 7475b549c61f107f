"""What a node's probe reads of its GPUs when torch cannot say: nvidia-smi's sizes and compute capability.

Test double: a fake `nvidia-smi` first on PATH, in the driver's CSV format (this machine has no GPU driver)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from liverl.guardrails import gpu_probe

# a driver older than the compute_cap field refuses the whole query
OLD_DRIVER = 'case "$1" in *compute_cap*) echo "Field is not a valid field to query." >&2; exit 2;; esac\n'


def fake_smi(tmp_path: Path, rows: str, old: bool = False) -> str:
    smi = tmp_path / "nvidia-smi"
    smi.write_text("#!/bin/sh\n" + (OLD_DRIVER if old else "") + f"printf '{rows}'\n")
    smi.chmod(smi.stat().st_mode | stat.S_IEXEC)
    return f"{tmp_path}{os.pathsep}{os.environ['PATH']}"


@pytest.fixture
def no_torch_gpus(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gpu_probe, "_TORCH_GPUS", "raise SystemExit(1)")  # torch's answer fails: nvidia-smi's is read


def test_nvidia_smi_gives_sizes_and_capability(tmp_path, monkeypatch, no_torch_gpus) -> None:
    monkeypatch.setenv("PATH", fake_smi(tmp_path, "NVIDIA H100 80GB HBM3, 81559, 9.0\\nNVIDIA B200, 183359, [N/A]\\n"))
    assert gpu_probe.gpu_rows_here() == [("NVIDIA H100 80GB HBM3", (81559 - 600) * 2**20, "9.0"),
                                         ("NVIDIA B200", (183359 - 600) * 2**20, None)]
    assert gpu_probe.gpus_here() == [("NVIDIA H100 80GB HBM3", (81559 - 600) * 2**20),
                                     ("NVIDIA B200", (183359 - 600) * 2**20)]


def test_a_driver_without_compute_cap_still_gives_sizes(tmp_path, monkeypatch, no_torch_gpus) -> None:
    monkeypatch.setenv("PATH", fake_smi(tmp_path, "NVIDIA A100-SXM4-80GB, 81920\\n", old=True))
    assert gpu_probe.gpu_rows_here() == [("NVIDIA A100-SXM4-80GB", (81920 - 600) * 2**20, None)]


@pytest.mark.parametrize("text,expected", [("9.0", (9, 0)), ("10.0", (10, 0)), ("[N/A]", None), (None, None)])
def test_capability_of(text, expected) -> None:
    assert gpu_probe.capability_of(text) == expected
