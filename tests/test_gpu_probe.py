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


def fake_toolkit(tmp_path: Path) -> tuple[Path, Path]:
    """Test double: a CUDA toolkit folder whose bin/nvcc is an empty executable, and an empty folder."""
    toolkit, empty = tmp_path / "toolkit", tmp_path / "empty"
    (toolkit / "bin").mkdir(parents=True)
    (toolkit / "bin" / "nvcc").write_text("#!/bin/sh\n")
    (toolkit / "bin" / "nvcc").chmod(0o755)  # PATH finds executables only
    empty.mkdir()
    return toolkit, empty


def test_nvcc_is_looked_for_where_flash_linear_attention_looks(tmp_path, monkeypatch) -> None:
    # rule gdn-triton-hopper: tilelang without an nvcc is Triton's path, which FLA 0.5.2 refuses on Hopper. Where FLA
    # is installed (the GPU host) its own answer must agree in every case
    try:
        from fla.utils._compat import has_usable_nvcc
    except ImportError:
        has_usable_nvcc = None
    toolkit, empty = fake_toolkit(tmp_path)
    for var in ("CUDA_HOME", "CUDA_PATH"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(gpu_probe, "CUDA_DEFAULT", empty)  # this machine may have /usr/local/cuda

    def same(expected: bool) -> None:
        assert gpu_probe.usable_nvcc() is expected
        # FLA also looks in the real /usr/local/cuda, which only LiveRL's side can be pointed away from
        if has_usable_nvcc is not None and (expected or not Path("/usr/local/cuda/bin/nvcc").exists()):
            has_usable_nvcc.cache_clear()  # FLA caches its answer (functools.cache)
            assert has_usable_nvcc() is expected

    monkeypatch.setenv("PATH", str(empty))
    if not gpu_probe.dist_version("nvidia-cuda-nvcc"):
        same(False)  # no toolkit, none on PATH, no wheel
    monkeypatch.setenv("CUDA_HOME", str(toolkit))
    same(True)
    monkeypatch.delenv("CUDA_HOME")
    monkeypatch.setenv("CUDA_PATH", str(toolkit))
    same(True)
    monkeypatch.delenv("CUDA_PATH")
    monkeypatch.setenv("PATH", str(toolkit / "bin"))
    same(True)
    monkeypatch.setattr(gpu_probe, "CUDA_DEFAULT", toolkit)
    monkeypatch.setenv("PATH", str(empty))
    assert gpu_probe.usable_nvcc()


def test_the_plans_environment_is_laid_over_this_ones(tmp_path, monkeypatch) -> None:
    # verl's workers get the plan's runtime env: what turns FLA's tilelang backward off, or finds its nvcc, there
    for var, _ in gpu_probe.FLA_OFF:
        monkeypatch.delenv(var, raising=False)
    assert gpu_probe.training_kernel_facts()["tilelang_off"] is None
    assert gpu_probe.training_kernel_facts({"FLA_TILELANG": "0"})["tilelang_off"] == "FLA_TILELANG=0"
    assert gpu_probe.training_kernel_facts({"FLA_TILELANG": "1"})["tilelang_off"] is None
    off = gpu_probe.training_kernel_facts({"FLA_DISABLE_BACKEND_DISPATCH": "1"})["tilelang_off"]
    assert off == "FLA_DISABLE_BACKEND_DISPATCH=1"
    toolkit, empty = fake_toolkit(tmp_path)
    monkeypatch.setattr(gpu_probe, "CUDA_DEFAULT", empty)
    monkeypatch.setenv("PATH", str(empty))
    for var in ("CUDA_HOME", "CUDA_PATH"):
        monkeypatch.delenv(var, raising=False)
    if not gpu_probe.dist_version("nvidia-cuda-nvcc"):
        assert gpu_probe.training_kernel_facts()["nvcc"] is False
    assert gpu_probe.training_kernel_facts({"CUDA_HOME": str(toolkit)})["nvcc"] is True
    # read from a written plan's verl config, as the launch and the node probe do
    from omegaconf import OmegaConf

    env_vars = {"FLA_TILELANG": "0", "PATH": "${PATH}:" + str(toolkit / "bin"), "CUDA_HOME": None}
    verl = OmegaConf.create({"ray_kwargs": {"ray_init": {"runtime_env": {"env_vars": env_vars}}}})
    saved = tmp_path / "verl.yaml"
    OmegaConf.save(verl, saved, resolve=False)  # a written plan, read back: ${PATH} is Ray's to expand, not OmegaConf's
    env = gpu_probe.plan_env(OmegaConf.load(saved))
    assert env == {"FLA_TILELANG": "0", "PATH": "${PATH}:" + str(toolkit / "bin")}  # null: no variable
    assert gpu_probe.plan_env(OmegaConf.create({})) == {}
    facts = gpu_probe.training_kernel_facts(env)  # PATH expanded over this one's, as Ray does: the toolkit is found
    assert facts["tilelang_off"] == "FLA_TILELANG=0" and facts["nvcc"] is True
    assert gpu_probe.with_env({"PATH": "/a"}, {"PATH": "${PATH}:/b", "X": "${NOPE}y", "Y": "$NOPE"}) == {
        "PATH": "/a:/b", "X": "y", "Y": "$NOPE"}
