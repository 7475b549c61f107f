"""A launch proves every node sees the run directory (a token written and read through one Ray task per node) and
has the vLLM / trainer imports the run needs, on the real Ray head the tests start (one node here).

The refusal path uses a test double for a node with its own disk (this machine has one node, one disk)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from omegaconf import OmegaConf
from raytest import ray_head

from liverl.launch.node_probe import PROBE_DIR, judge, probe_here, probe_nodes

pytestmark = pytest.mark.ray


@pytest.fixture(scope="module")
def head() -> str:
    with ray_head(num_gpus=8) as address:
        yield address


def own_disk_node():
    """Test double: a node whose run directory is a private local directory, not the launcher's disk (a closure,
    so Ray ships it by value to its worker)."""

    def probe(probe_dir: str, token: str, node_id: str, ip: str, modules: tuple[str, ...], harbor=None) -> dict:
        private = Path(probe_dir).parent / f"private-{node_id}" / PROBE_DIR
        private.mkdir(parents=True, exist_ok=True)
        return probe_here(str(private), token, node_id, ip, modules, harbor)

    return probe


def cfg(r3: bool, gdn_backend: str | None = None):
    rollout = {"enable_rollout_routing_replay": r3, "engine_kwargs": {"vllm": {"gdn_prefill_backend": gdn_backend}}}
    return OmegaConf.create({"actor_rollout_ref": {"rollout": rollout}})


def test_every_node_sees_the_run_directory(head: str, tmp_path: Path) -> None:
    reports = probe_nodes(head, tmp_path, ("transfer_queue", "no_such_module_liverl"))
    (node,) = reports
    assert node.saw_token and node.wrote and node.error is None
    assert node.missing == ["no_such_module_liverl"]
    assert not (tmp_path / PROBE_DIR).exists()  # the probe cleans up after itself
    problems = judge(reports, cfg(False), tmp_path)
    assert [p.rule for p in problems] == ["trainer-imports"] and node.ip in problems[0].message


def test_a_node_that_does_not_see_the_run_directory_is_named(head: str, tmp_path: Path) -> None:
    reports = probe_nodes(head, tmp_path, (), task=own_disk_node())
    (node,) = reports
    assert not node.saw_token
    (problem,) = judge(reports, cfg(False), tmp_path)
    assert problem.rule == "shared-run-dir" and node.ip in problem.message and node.node_id[:12] in problem.message
    assert "cannot read the token" in problem.message and "hydra.run.dir=/shared" in problem.fix


def test_r3_needs_vllm_022_on_every_node(head: str, tmp_path: Path) -> None:
    reports = probe_nodes(head, tmp_path, ())
    if reports[0].vllm is None:  # no vLLM on this CPU machine: an R3 rollout could not start here
        assert [p.rule for p in judge(reports, cfg(True), tmp_path)] == ["vllm-r3-version"]
    reports[0].vllm = "0.21.1"
    (problem,) = judge(reports, cfg(True), tmp_path)
    assert problem.rule == "vllm-r3-version" and problem.got == "0.21.1"
    reports[0].vllm = "0.24.0"
    assert judge(reports, cfg(True), tmp_path) == []
    assert judge(reports, cfg(False), tmp_path) == []


def test_a_node_with_other_code_is_refused_by_ip_and_id(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two real nodes on 127.0.0.1: the second runs LiveRL from another copy (its PYTHONPATH), whose commit differs.
    The probe's task on it imports that copy and reports its commit: judge names that node, and only it, and
    `python -m liverl.cluster check` (scripts/ray_cluster.sh, as a node joins) exits 3 naming it. (Ray puts the
    driver's working directory first on its workers' path: the driver runs outside the checkout, as on a cluster
    where the launcher's directory is not on the other nodes.)"""
    import subprocess
    import sys

    import ray
    from raytest import ray_worker

    from liverl.launch.node_facts import COMMIT_FILE, node_facts
    from liverl.launch.node_probe import NODE_RULES
    from liverl.paths import LIVERL_ROOT

    other = tmp_path / "other-checkout"
    for part in ("liverl", "conf"):  # a checkout: the package and its config groups
        shutil.copytree(LIVERL_ROOT / part, other / part, ignore=shutil.ignore_patterns("__pycache__"))
    (other / "liverl" / COMMIT_FILE).write_text("0" * 40 + "\n")
    monkeypatch.chdir(tmp_path)
    with ray_head(num_gpus=0) as address, ray_worker(address, {"PYTHONPATH": str(other)}):
        ray.init(address=address, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
        try:
            head_id = next(n["NodeID"] for n in ray.nodes() if n["Resources"].get("node:__internal_head__"))
        finally:
            ray.shutdown()
        reports = probe_nodes(address, tmp_path / "run", ())
        assert len(reports) == 2
        problems = judge(reports, cfg(False), tmp_path / "run", launcher=node_facts((), None))
        (problem,) = problems
        (odd,) = [r for r in reports if r.node_id != head_id]
        assert problem.rule == "node-mismatch" and problem.rule in NODE_RULES  # exit 3 at launch
        assert odd.commit == "0" * 40 and f"node {odd.ip} ({odd.node_id[:12]})" in problem.message
        assert "commit: " + "0" * 40 in problem.got
        proc = subprocess.run([sys.executable, "-m", "liverl.cluster", "check", "--address", address],
                              capture_output=True, text=True, timeout=300, check=False, cwd=tmp_path)
        assert proc.returncode == 3, proc.stderr
        assert odd.node_id[:12] in proc.stderr and head_id[:12] not in proc.stderr and "0" * 40 in proc.stderr


def test_a_gdn_model_needs_flashinfer_or_triton_prefill_on_every_hopper_node(head: str, tmp_path: Path) -> None:
    import torch

    reports = probe_nodes(head, tmp_path, ())
    (node,) = reports
    # the real probe: this machine's first GPU's capability (none on a CPU machine)
    from liverl.guardrails.gpu_probe import dist_version

    major, minor = torch.cuda.get_device_capability(0) if torch.cuda.is_available() else (None, None)
    assert node.capability == (f"{major}.{minor}" if major is not None else None)
    assert node.flashinfer == dist_version("flashinfer-python") and node.vllm == dist_version("vllm")
    node.capability, node.vllm, node.flashinfer = "9.0", "0.24.0", None  # the fifteenth GPU session's H100 image
    (problem,) = judge(reports, cfg(False), tmp_path, linear_attention=True)
    assert problem.rule == "gdn-prefill-flashinfer" and node.ip in problem.message
    assert "gdn_prefill_backend=triton" in problem.fix and "optional group" in problem.fix
    assert judge(reports, cfg(False), tmp_path, linear_attention=False) == []  # no GatedDeltaNet layer
    assert judge(reports, cfg(False, gdn_backend="triton"), tmp_path, linear_attention=True) == []
    node.flashinfer = "0.6.12"
    assert judge(reports, cfg(False), tmp_path, linear_attention=True) == []
    node.capability, node.flashinfer, node.cutlass_cu13 = "10.0", None, "4.3.1"  # Blackwell with cutlass-dsl's cu13
    assert [p.rule for p in judge(reports, cfg(False), tmp_path, linear_attention=True)] == ["gdn-prefill-flashinfer"]


def test_a_gdn_model_needs_a_backward_flash_linear_attention_runs_on_every_hopper_node(head: str,
                                                                                        tmp_path: Path) -> None:
    from liverl.guardrails.gpu_probe import training_kernel_facts

    reports = probe_nodes(head, tmp_path, ())
    (node,) = reports
    here = training_kernel_facts()  # the real probe reports this machine's stack
    assert (node.triton, node.fla, node.tilelang, node.nvcc) == (here["triton"], here["fla"], here["tilelang"],
                                                                  here["nvcc"])
    # the GPU host's image once requirements-gpu.lock has flash-linear-attention and the wheelhouse no optional group
    node.capability, node.vllm, node.flashinfer = "9.0", "0.24.0", "0.6.12"
    node.triton, node.fla, node.tilelang, node.nvcc = "3.6.0", "0.5.2", False, True
    (problem,) = judge(reports, cfg(False), tmp_path, linear_attention=True)
    assert problem.rule == "gdn-triton-hopper" and node.ip in problem.message and "tilelang" in problem.fix
    node.tilelang, node.nvcc = True, False  # tilelang without an nvcc: FLA falls back to Triton
    (problem,) = judge(reports, cfg(False), tmp_path, linear_attention=True)
    assert problem.rule == "gdn-triton-hopper" and "no nvcc" in problem.message
    node.nvcc = True
    assert judge(reports, cfg(False), tmp_path, linear_attention=True) == []
    node.tilelang_off = "FLA_TILELANG=0"  # tilelang and an nvcc, but turned off where the workers run
    (problem,) = judge(reports, cfg(False), tmp_path, linear_attention=True)
    assert "FLA_TILELANG=0 turns its tilelang backend off" in problem.message
    node.tilelang_off = None
    node.tilelang, node.triton = False, "3.7.1"  # FLA's own fix
    assert judge(reports, cfg(False), tmp_path, linear_attention=True) == []
    node.triton = "3.6.0"
    assert judge(reports, cfg(False), tmp_path, linear_attention=False) == []  # no GatedDeltaNet layer


def test_each_node_is_probed_in_the_plans_runtime_env(head: str, tmp_path: Path) -> None:
    # verl's workers get the plan's env vars (verl.ray_kwargs.ray_init.runtime_env.env_vars): so does the probe
    (node,) = probe_nodes(head, tmp_path, (), env={"FLA_TILELANG": "0"})
    assert node.tilelang_off == "FLA_TILELANG=0"
    (plain,) = probe_nodes(head, tmp_path, ())
    assert plain.tilelang_off is None
