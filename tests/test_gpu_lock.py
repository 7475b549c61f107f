"""requirements-gpu.lock carries what LiveRL itself imports: the offline GPU host gets nothing else.

Seen on the host (2026-11-30): a closure packed before liverl.secrets started importing detect-secrets failed every
launch at `import detect_secrets`. This test reads every module-level import of liverl/ and recipes/ (the code that
runs on a GPU node), maps it to its distribution in this environment, and asks that each one is pinned in
requirements-gpu.lock. The lock is the whole GPU environment now (make install on a GPU host): nothing is taken
from the host but, where a wheelhouse lacks them, a system torch's CUDA binaries (scripts/gpu_env.py plan, below).
"""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import re
import subprocess
import sys
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LOCK = ROOT / "requirements-gpu.lock"
_spec = importlib.util.spec_from_file_location("gpu_env", ROOT / "scripts" / "gpu_env.py")
gpu_env = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(gpu_env)
# run by .venv-harbor's Python 3.12, never on a GPU node's trainer interpreter (liverl/scaffold/trial.py)
HARBOR_SIDE = {"liverl/scaffold/trial_runner.py", "liverl/scaffold/harbor_agents.py", "liverl/scaffold/local_env.py"}


def norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def module_level_imports(path: Path) -> set[str]:
    """Top-level names imported outside functions (lazy imports inside functions load only on their path)."""
    names: set[str] = set()
    for node in ast.parse(path.read_text()).body:
        for sub in ast.walk(node) if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) else ():
            if isinstance(sub, (ast.FunctionDef, ast.AsyncFunctionDef)):
                break
            if isinstance(sub, ast.Import):
                names |= {a.name.split(".")[0] for a in sub.names}
            elif isinstance(sub, ast.ImportFrom) and sub.module and not sub.level:
                names.add(sub.module.split(".")[0])
    return names


def test_every_distribution_liverl_imports_is_in_the_gpu_lock_or_on_the_host() -> None:
    locked = {norm(line.split("==")[0]) for line in (ROOT / "requirements-gpu.lock").read_text().splitlines()
              if "==" in line and not line.startswith("#")}
    dists = packages_distributions()
    missing: dict[str, set[str]] = {}
    for path in sorted([*ROOT.joinpath("liverl").rglob("*.py"), *ROOT.joinpath("recipes").rglob("*.py")]):
        rel = path.relative_to(ROOT).as_posix()
        if rel in HARBOR_SIDE:
            continue
        for top in module_level_imports(path) - set(sys.stdlib_module_names) - {"liverl", "recipes", "__future__"}:
            wanted = {norm(d) for d in dists.get(top, [top])}
            if not wanted & locked:
                missing.setdefault(", ".join(sorted(wanted)), set()).add(rel)
    assert not missing, f"add to requirements-gpu.lock (and repack the closure): {missing}"
    assert "detect-secrets" in locked


def test_every_top_level_requirement_is_pinned() -> None:
    """requirements-gpu.in (what the lock is resolved from) and veomni, pinned beside the resolution."""
    locked = {norm(n) for n, _, _ in gpu_env.read_lock(LOCK)}
    wanted = {norm(re.split(r"[<>=\[ ]", line)[0]) for line in (ROOT / "requirements-gpu.in").read_text().splitlines()
              if line.strip() and not line.startswith("#")}
    assert wanted - locked == set() and "veomni" in locked
    pins = {norm(n): v for n, v, _ in gpu_env.read_lock(LOCK)}
    assert (pins["torch"], pins["vllm"], pins["verl"], pins["ray"]) == ("2.11.0", "0.24.0", "0.9.1", "2.60.0")


def fake_wheelhouse(tmp_path: Path, without: tuple[str, ...]) -> Path:
    """Empty files named as `make wheelhouse WITHOUT=...` would name them (plan reads names only)."""
    house = tmp_path / "wheelhouse"
    house.mkdir()
    for name, version, tag in gpu_env.read_lock(LOCK):
        if tag not in without:
            (house / f"{name.replace('-', '_')}-{version}-py3-none-any.whl").touch()
    return house


def test_an_offline_install_takes_torch_and_its_cuda_stack_from_a_system_torch_of_the_pinned_release(
    tmp_path: Path,
) -> None:
    house = fake_wheelhouse(tmp_path, ("torch", "optional"))
    out = gpu_env.plan(LOCK, house, {"torch": "2.11.0+cu130", "nvidia-cublas": "13.1.0.3"})
    tagged = {n for n, _, t in gpu_env.read_lock(LOCK) if t == "torch"}
    assert out["system_torch"] and out["missing"] == []
    assert {norm(p.split("==")[0]) for p in out["from_system"]} == {norm(n) for n in tagged}
    assert "torch==2.11.0+cu130" in out["from_system"] and "nvidia-cublas==13.1.0.3" in out["from_system"]
    assert {p.split("==")[0] for p in out["left_out"]} >= {"flashinfer-python", "flashinfer-cubin"}
    assert not any(p.split("==")[0] in tagged for p in out["install"])


def test_an_offline_install_without_torch_anywhere_stops_naming_what_is_missing(tmp_path: Path) -> None:
    house = fake_wheelhouse(tmp_path, ("torch",))
    for system in ({}, {"torch": "2.10.0+cu130"}):  # no torch, or not the pinned release
        out = gpu_env.plan(LOCK, house, system)
        assert not out["system_torch"] and "torch==2.11.0" in out["missing"]
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "gpu_env.py"), "plan", str(LOCK), "--wheelhouse",
                           str(house), "--requirements", str(tmp_path / "req.txt")],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 2 and "torch==2.11.0" in proc.stderr and "make wheelhouse" in proc.stderr


def test_a_full_wheelhouse_installs_every_pin_from_itself(tmp_path: Path) -> None:
    out = gpu_env.plan(LOCK, fake_wheelhouse(tmp_path, ()), {"torch": "2.11.0+cu130"})
    assert not out["system_torch"] and len(out["install"]) == len(gpu_env.read_lock(LOCK))


@pytest.mark.parametrize(("line", "accepted"), [
    ("veomni 0.1.12 has requirement datasets<=2.21.0,>=2.20.0, but you have datasets 5.2.0.", True),
    ("vllm 0.24.0 requires flashinfer-python, which is not installed.", True),  # optional: a wheelhouse may lack it
    ("vllm 0.24.0 requires xgrammar, which is not installed.", False),
    ("verl 0.9.1 has requirement transformers<5.11, but you have transformers 5.17.0.", False),
])
def test_pip_check_accepts_only_the_veomni_datasets_pin_and_missing_optional_kernels(tmp_path: Path, line: str,
                                                                                   accepted: bool) -> None:
    assert (pip_check(tmp_path, [line]).returncode == 0) == accepted


def pip_check(tmp_path: Path, lines: list[str]) -> subprocess.CompletedProcess:
    """`gpu_env.py pip-check` on a stand-in for the venv's python whose `-m pip check` prints `lines` and exits 1, as
    pip does for any complaint."""
    python = tmp_path / "python"
    python.write_text("#!/bin/sh\nprintf '%s\\n' " + " ".join(f"'{ln}'" for ln in lines) + "\nexit 1\n")
    python.chmod(0o755)
    return subprocess.run([sys.executable, str(ROOT / "scripts" / "gpu_env.py"), "pip-check", str(python)],
                          capture_output=True, text=True, check=False)


XGRAMMAR = "vllm 0.24.0 requires xgrammar, which is not installed."


@pytest.mark.parametrize(("lines", "bad"), [
    (["veomni 0.1.12 has requirement datasets<=2.21.0,>=2.20.0, but you have datasets 5.2.0."], []),
    (["vllm 0.24.0 requires flashinfer-python, which is not installed.", XGRAMMAR], [XGRAMMAR]),
])
def test_install_judges_pip_check_by_its_lines_not_its_exit_code(tmp_path: Path, lines: list[str],
                                                                 bad: list[str]) -> None:
    # the GPU host (2026-12-06): pip check exits 1 for the accepted veomni/datasets complaint, and install_gpu.sh's
    # pipeline (under pipefail) took that exit code: an empty "pip check reports:"
    proc = pip_check(tmp_path, lines)
    assert (proc.returncode, proc.stdout.split("\n")[:-1] if bad else proc.stdout.strip()) == (
        (1, bad) if bad else (0, ""))
    assert "gpu_env.py\" pip-check \"$VENV/bin/python\"" in (ROOT / "scripts" / "install_gpu.sh").read_text()


def test_a_host_freeze_leaves_its_releases_out_of_the_wheelhouse_and_the_install_takes_them_there(
    tmp_path: Path,
) -> None:
    pins = {norm(n): v for n, v, _ in gpu_env.read_lock(LOCK)}
    freeze = tmp_path / "host-freeze.txt"
    freeze.write_text(f"numpy=={pins['numpy']}\ntransformers=5.17.0\ntransformers==5.17.0\ntorch==2.11.0+cu130\n")
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "gpu_env.py"), "pins", str(LOCK), "--binary",
                           "--without", "torch", "optional", "--have", str(freeze)],
                          capture_output=True, text=True, check=True)
    taken = {norm(line.split("==")[0]) for line in proc.stdout.splitlines()}
    assert "numpy" not in taken and "transformers" in taken and "vllm" in taken  # 5.17.0 is not the lock's 5.9.0
    house = fake_wheelhouse(tmp_path, ("torch", "optional"))
    (house / f"numpy-{pins['numpy']}-py3-none-any.whl").unlink()
    out = gpu_env.plan(LOCK, house, {"torch": "2.11.0+cu130", "numpy": pins["numpy"]})
    assert f"numpy=={pins['numpy']}" in out["from_system"] and out["missing"] == []
    assert gpu_env.plan(LOCK, house, {"torch": "2.11.0+cu130", "numpy": "2.5.2"})["missing"] == [
        f"numpy=={pins['numpy']}"]


def _package_tgz(path: Path, files: dict[str, str]) -> None:
    """An npm package tarball as `npm pack` writes it: everything under package/."""
    import io
    import tarfile

    with tarfile.open(path, "w:gz") as tar:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(f"package/{name}")
            info.size, info.mode = len(data), 0o755
            tar.addfile(info, io.BytesIO(data))


def _path_without_npm(tmp_path: Path) -> str:
    """A PATH with the tools the script uses and no npm (a host without Node.js)."""
    import shutil

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("bash", "tar", "gzip", "uname", "rm", "mkdir", "ln"):
        (bin_dir / tool).symlink_to(shutil.which(tool))
    return str(bin_dir)


def test_without_npm_the_claude_cli_is_unpacked_from_the_wheelhouse_and_runs(tmp_path: Path) -> None:
    # an offline GPU host may have Python 3.12 and no Node.js (the device image lists none); the CLI's linux-x64
    # package holds a native binary
    wh = tmp_path / "wh"
    wh.mkdir()
    _package_tgz(wh / "anthropic-ai-claude-code-9.9.9.tgz", {"bin/claude.exe": "placeholder", "package.json": "{}"})
    _package_tgz(wh / "anthropic-ai-claude-code-linux-x64-9.9.9.tgz",
                 {"claude": "#!/bin/bash\necho '9.9.9 (Claude Code)'\n", "package.json": "{}"})
    prefix = tmp_path / "prefix"
    env = {"PATH": _path_without_npm(tmp_path)}
    out = subprocess.run(["bash", str(ROOT / "scripts" / "install_claude.sh"), str(prefix), "9.9.9", str(wh)],
                         capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().endswith("9.9.9 (Claude Code)")
    claude = prefix / "node_modules" / ".bin" / "claude"
    assert claude.resolve() == (prefix / "node_modules/@anthropic-ai/claude-code/bin/claude.exe").resolve()
    # the wrapper's bin is the platform binary (npm's postinstall links it the same way), not the placeholder
    assert "9.9.9 (Claude Code)" in claude.read_text()


def test_without_npm_or_a_wheelhouse_the_cli_install_stops_naming_both_ways(tmp_path: Path) -> None:
    out = subprocess.run(["bash", str(ROOT / "scripts" / "install_claude.sh"), str(tmp_path / "p"), "9.9.9"],
                         capture_output=True, text=True, env={"PATH": _path_without_npm(tmp_path)})
    assert out.returncode == 2
    assert "npm (Node.js >= 22)" in out.stderr and "WHEELHOUSE=DIR" in out.stderr


def test_a_venv_made_from_a_venv_python_sees_that_pythons_packages(tmp_path: Path) -> None:
    # the GPU host's python3.12 is /opt/torch/.venv/bin/python3 (torch lives in that venv, KINDS.md): a venv made
    # from it with --system-site-packages reached the base interpreter's packages only, so no torch
    outer = tmp_path / "outer"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(outer)], check=True)
    purelib = "import sysconfig; print(sysconfig.get_path('purelib'))"
    site_dir = subprocess.run([str(outer / "bin" / "python"), "-c", purelib], capture_output=True, text=True,
                              check=True).stdout.strip()
    (Path(site_dir) / "system_torch_stand_in.py").write_text("WHERE = 'outer venv'\n")
    inner = tmp_path / "inner"
    out = subprocess.run(["bash", str(ROOT / "scripts" / "mkvenv.sh"), str(outer / "bin" / "python"), str(inner), "",
                          "--without-pip", "--system-site-packages"], capture_output=True, text=True, check=True)
    assert "sees its packages" in out.stdout
    seen = subprocess.run([str(inner / "bin" / "python"), "-c", "import system_torch_stand_in as m; print(m.WHERE)"],
                          capture_output=True, text=True, check=False)
    assert seen.returncode == 0 and seen.stdout.strip() == "outer venv", seen.stderr
    # without --system-site-packages the new venv stays isolated
    alone = tmp_path / "alone"
    subprocess.run(["bash", str(ROOT / "scripts" / "mkvenv.sh"), str(outer / "bin" / "python"), str(alone), "",
                    "--without-pip"], check=True)
    assert subprocess.run([str(alone / "bin" / "python"), "-c", "import system_torch_stand_in"],
                          capture_output=True, check=False).returncode != 0


def test_make_lock_tags_only_the_pins_it_built_from_source_as_sdist(tmp_path: Path) -> None:
    # the development machine's registry is a file:// mirror: every wheel's URL is file://, so the tag cannot come
    # from the scheme (the first `make lock` with pytest-xdist tagged dozens of registry wheels sdist, lost antlr4's)
    built = tmp_path / "work" / "sdist"

    def pin(name: str, url: str, requested: bool = True) -> dict:
        return {"metadata": {"name": name, "version": "1.0", "requires_dist": []}, "requested": requested,
                "download_info": {"url": url}}

    report = tmp_path / "report.json"
    report.write_text(json.dumps({"install": [
        pin("torch", "https://files.example/torch-1.0-cp312-cp312-manylinux_2_28_x86_64.whl"),
        pin("antlr4-python3-runtime", (built / "antlr4_python3_runtime-1.0-py3-none-any.whl").as_uri()),
        pin("pytest-xdist", "file:///opt/pypi/simple/pytest-xdist/pytest_xdist-1.0-py3-none-any.whl"),
        pin("func-timeout", "https://files.example/func_timeout-1.0.tar.gz"),
    ]}))
    tags = {line.split("==")[0]: line.partition("#")[2].strip()
            for line in gpu_env.compile_lock(report, built).splitlines() if "==" in line}
    assert tags["antlr4-python3-runtime"] == "sdist" and tags["func-timeout"] == "sdist"
    assert tags["pytest-xdist"] == "" and tags["torch"] == "torch"


@pytest.mark.parametrize(("gpus", "cores", "workers"), [(1, 16, 8), (8, 128, 64), (1, 2, None), (0, 16, None)])
def test_make_test_spreads_the_suite_over_workers_only_on_a_gpu_host(tmp_path: Path, gpus: int, cores: int,
                                                                     workers: int | None) -> None:
    # the GPU host's serial suite ran 197 of 867 tests in 9.6 minutes: longer than a session's device time allows.
    # There `make test` runs it with pytest-xdist (in the GPU lock), each file on one worker; CI (no GPU) as before
    from test_tiny_smoke import fake_nvidia_smi

    fake_nvidia_smi(tmp_path, gpus)
    (tmp_path / "nproc").write_text(f"#!/bin/sh\necho {cores}\n")
    (tmp_path / "nproc").chmod(0o755)
    env = {**os.environ, "PATH": f"{tmp_path}{os.pathsep}{os.environ['PATH']}"}
    env.pop("GPU", None)
    env.pop("TEST_WORKERS", None)
    out = subprocess.run(["make", "-n", "test"], cwd=ROOT, env=env, capture_output=True, text=True, check=True).stdout
    pytest_line = next(line for line in out.splitlines() if "-m pytest" in line).split()
    assert pytest_line[pytest_line.index("pytest"):] == (
        ["pytest", "-q", "-n", str(workers), "--dist", "loadfile"] if workers else ["pytest", "-q"])
    if workers:
        assert {"pytest-xdist", "execnet"} <= {norm(n) for n, _, _ in gpu_env.read_lock(LOCK)}


def _wheel(house: Path, name: str, version: str, requires: list[str]) -> None:
    """A wheel as pip writes it, as far as `gpu_env.py needs` reads one: its METADATA's Requires-Dist lines."""
    import zipfile

    meta = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
    meta += "".join(f"Requires-Dist: {r}\n" for r in requires)
    with zipfile.ZipFile(house / f"{name.replace('-', '_')}-{version}-py3-none-any.whl", "w") as z:
        z.writestr(f"{name.replace('-', '_')}-{version}.dist-info/METADATA", meta)


def test_keep_fetches_a_left_out_optional_pin_with_the_optional_pins_its_wheel_requires(tmp_path: Path) -> None:
    # make wheelhouse WITHOUT="torch optional" KEEP=tilelang: Qwen3.5's training on Hopper needs tilelang
    # (rule gdn-triton-hopper); scripts/wheelhouse.sh asks `needs` again after each fetch until it answers nothing
    pins = {norm(n): (n, v, t) for n, v, t in gpu_env.read_lock(LOCK)}
    assert all(pins[n][2] == "optional" for n in ("tilelang", "z3-solver", "ml-dtypes", "torch-c-dlpack-ext"))
    pin = {n: f"{pins[n][0]}=={pins[n][1]}" for n in pins}
    house = tmp_path / "house"
    house.mkdir()
    assert gpu_env.needs(LOCK, house, ["tilelang"]) == [pin["tilelang"]]
    _wheel(house, "tilelang", pins["tilelang"][1], [  # spelled as the real wheel spells them, not as the lock does
        "z3-solver>=4.13", "ml-dtypes", "torch", "numpy>=1.23",  # torch: the host's (WITHOUT=torch); numpy: main group
        "flashinfer-python; python_version < '3.10'",  # optional, but not for the GPU host's Python 3.12
        "nvidia-cuda-nvcc; extra == 'nvcc'",  # an extra nobody asked for
    ])
    assert gpu_env.needs(LOCK, house, ["tilelang"]) == sorted([pin["z3-solver"], pin["ml-dtypes"]])
    _wheel(house, "z3-solver", pins["z3-solver"][1], [])
    _wheel(house, "ml_dtypes", "0.0.1", [])  # not the pinned release: still needed
    assert gpu_env.needs(LOCK, house, ["tilelang"]) == [pin["ml-dtypes"]]
    _wheel(house, "ml_dtypes", pins["ml-dtypes"][1], ["Torch.C_DLPack-Ext; python_version < '3.14'"])
    assert gpu_env.needs(LOCK, house, ["tilelang"]) == [pin["torch-c-dlpack-ext"]]
    _wheel(house, "torch_c_dlpack_ext", pins["torch-c-dlpack-ext"][1], ["tilelang"])  # a cycle ends
    assert gpu_env.needs(LOCK, house, ["tilelang"]) == []
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "gpu_env.py"), "needs", str(LOCK), "--dir",
                           str(house), "tilelang"], capture_output=True, text=True, check=True)
    assert proc.stdout == ""  # nothing, not an empty line: scripts/wheelhouse.sh stops on an empty answer


def test_keep_refuses_a_name_that_is_not_an_optional_pin(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "gpu_env.py"), "needs", str(LOCK), "--dir",
                           str(tmp_path), "tilelang", "numpy", "tilelangg"], capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stdout == ""
    assert "KEEP: not an optional pin of requirements-gpu.lock: numpy, tilelangg" in proc.stderr
    assert "fix:" in proc.stderr and "KEEP=tilelang" in proc.stderr
