"""The host sampler of the memory points (benchmarks/memory/host_sampler.py): who holds the node's memory, read from
real processes (a real Ray head and actor, as verl's workers are), so the next GPU point can attribute the host
model's unexplained excess."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest
from raytest import ray_head

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks" / "memory"))
import host_sampler  # noqa: E402

MIB = 2**20


@pytest.mark.parametrize(("cmdline", "name", "expected"), [
    (["ray::WorkerDict.actor_rollout_compute_log_prob"], "ray::WorkerDict", "ray::WorkerDict"),
    (["ray::vLLMHttpServer"], "ray::vLLMHttpSe", "ray::vLLMHttpServer"),
    (["ray::IDLE"], "ray::IDLE", "ray::IDLE"),
    (["/x/.venv/bin/python3.11", "-m", "liverl.train", "topology=gpu1"], "python3.11", "python -m liverl.train"),
    (["/usr/bin/python3", "-u", "/r/ray/dashboard/dashboard.py", "--x=1"], "python3", "python dashboard.py"),
    (["python", "-c", "print(1)"], "python", "python -c"),
    (["/v/bin/python3", "-c", "from multiprocessing.spawn import spawn_main; spawn_main(tracker_fd=5, pipe_handle=7)",
      "--multiprocessing-fork"], "python3", "python -c spawn.spawn_main"),
    (["/v/bin/python3", "/v/lib/torch/_inductor/compile_worker/__main__.py", "--workers=16", "--parent=7"], "python3",
     "python compile_worker/__main__.py"),
    (["/usr/bin/python3", "-W", "ignore", "-X", "dev", "/a/run.py"], "python3", "python run.py"),
    (["/r/ray/core/src/ray/raylet/raylet", "--node_ip_address=127.0.0.1"], "raylet", "raylet"),
    ([], "kworker/0:1", "kworker/0:1"),
])
def test_role(cmdline, name, expected) -> None:
    assert host_sampler.role(cmdline, name) == expected


def test_meminfo_reads_the_kernels_split() -> None:
    info = host_sampler.meminfo()
    assert set(info) >= {"MemTotal", "MemAvailable", "AnonPages", "Shmem"}
    assert 0 < info["AnonPages"] < info["MemTotal"]


def test_sampler_attributes_a_ray_actors_memory_to_its_class(tmp_path) -> None:
    import ray

    timeline = tmp_path / "host.jsonl"
    with ray_head(num_gpus=0) as address:
        ray.init(address=address, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
        timeline.write_text("a stale run's line\n")  # each start rewrites the timeline
        sampler = host_sampler.Sampler(timeline=timeline, every=0.5)
        sampler.start()
        try:

            @ray.remote(num_cpus=0)
            class Hog:
                def hold(self, mib: int) -> int:
                    self.block = b"\x01" * (mib * MIB)  # written: resident, not a lazily mapped zero page
                    return len(self.block)

            hog = Hog.remote()
            assert ray.get(hog.hold.remote(300), timeout=120) == 300 * MIB
            time.sleep(2.0)
        finally:
            host = sampler.finish()
            ray.shutdown()
    assert not sampler.is_alive() and not sampler.snapper.is_alive()
    snaps = [json.loads(line) for line in timeline.read_text().splitlines()]
    assert snaps[0] == host["at_baseline"]  # the baseline first, the stale line gone
    held = [s["roles"]["ray::Hog"] for s in snaps if "ray::Hog" in s["roles"]]
    assert held and max(r["pss"] for r in held) >= 290 * MIB, [s["roles"].get("ray::Hog") for s in snaps]
    assert all(r["n"] == 1 for r in held)
    assert "ray::Hog" not in host["at_baseline"]["roles"]
    # the 300 MiB rise (above JUMP) asked for a snapshot: the highest one holds the actor, and the readings'
    # peak is never below a snapshot's
    assert host["at_peak"]["roles"]["ray::Hog"]["pss"] >= 290 * MIB
    assert host["baseline_bytes"] + host["node_used_delta_bytes"] >= max(s["used"] for s in snaps)
    assert host["at_peak"]["meminfo"]["MemTotal"] == host_sampler.meminfo()["MemTotal"]
    json.dumps(host)  # the row's entry is stored in verl_points.json
