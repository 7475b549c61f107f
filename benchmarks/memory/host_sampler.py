"""The node's used memory while a point runs, and who holds it.

Every TICK seconds the sampler reads the node's used memory (psutil's `virtual_memory().used`: what the OS counts
in use, page cache and buffers excluded). Every EVERY seconds it also takes a snapshot of who holds it. A snapshot is
also taken whenever the used memory has risen JUMP above the last snapshot, so the peak has one near it.

A snapshot holds:
- the kernel's split of the node's memory (/proc/meminfo: anonymous pages, shared memory, locked pages, ...);
- every process's memory grouped by role. Ray names its workers' processes `ray::Class.method`, so the role is
  `ray::Class` (the trainer's WorkerDict, the vLLM server, the agent-loop workers, the TaskRunner). A python process
  is its module or script; any other process is its name.
- Each role's resident set and proportional set (PSS). PSS splits shared pages (Ray's object store, pinned memory a
  driver maps twice) among their processes, so the roles' PSS add up to about the processes' share of the node.

The snapshot with the highest used memory is the row's `at_peak`. All snapshots go to a JSON-lines timeline beside
the run, so a step's end can be matched to the metrics' times.

Why it is kept: the FSDP2-offload point on an H100 (moe30b_fsdp_16k_fsdp2off, 2026-12-08) peaked 10.34 GiB above the
host model, and the node-wide total could not say which process held the excess (liverl/memory/host.py).
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

# /proc/meminfo fields a snapshot keeps (kB there, bytes here)
MEMINFO = ("MemTotal", "MemAvailable", "AnonPages", "Shmem", "Mlocked", "Unevictable", "Cached", "Buffers",
           "SUnreclaim", "PageTables")


def role(cmdline: list[str], name: str) -> str:
    """A process's role: `ray::Class` for a Ray worker (its title `ray::Class.method`), `python -m module` or
    `python script.py` for a python process, else its name."""
    head = cmdline[0] if cmdline else ""
    if head.startswith("ray::"):
        return head.split()[0].split(".")[0]
    if os.path.basename(head).startswith("python"):
        rest = cmdline[1:]
        for i, arg in enumerate(rest):
            if arg == "-m" and i + 1 < len(rest):
                return f"python -m {rest[i + 1]}"
            if arg == "-c":
                return "python -c"
            if not arg.startswith("-"):
                return f"python {os.path.basename(arg)}"
        return "python"
    return name or os.path.basename(head) or "?"


def meminfo(path: Path = Path("/proc/meminfo")) -> dict[str, int]:
    out = {}
    for line in path.read_text().splitlines():
        key, _, value = line.partition(":")
        if key in MEMINFO:
            out[key] = int(value.split()[0]) * 1024
    return out


def snapshot(psutil) -> dict:
    """The node's used memory, meminfo's split, and every readable process's memory by role (rss, pss, count);
    a process this user cannot read, one gone in between, or a kernel thread (nothing resident) is left out."""
    roles: dict[str, dict[str, int]] = {}
    for proc in psutil.process_iter(["cmdline", "name"]):
        try:
            mem = proc.memory_full_info()
            key = role(proc.info["cmdline"] or [], proc.info["name"] or "")
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
        if not mem.rss:  # a kernel thread
            continue
        r = roles.setdefault(key, {"n": 0, "rss": 0, "pss": 0})
        r["n"] += 1
        r["rss"] += mem.rss
        r["pss"] += getattr(mem, "pss", mem.rss)
    return {"t": round(time.time(), 1), "used": psutil.virtual_memory().used, "meminfo": meminfo(),
            "roles": dict(sorted(roles.items(), key=lambda kv: -kv[1]["pss"]))}


class Sampler(threading.Thread):
    """Samples the node from construction (the baseline) until `stop` is set; `timeline`: a JSON-lines file of
    every snapshot."""

    TICK, EVERY, JUMP = 0.5, 10.0, 2**28

    def __init__(self, timeline: Path | None = None, every: float | None = None) -> None:
        super().__init__(daemon=True)
        import psutil

        self.psutil, self.stop, self.timeline = psutil, threading.Event(), timeline
        self.every = self.EVERY if every is None else every
        self.at_baseline = snapshot(psutil)
        self.baseline = self.at_baseline["used"]
        self.peak, self.at_peak = self.baseline, self.at_baseline

    def _take(self) -> dict:
        snap = snapshot(self.psutil)
        if snap["used"] >= self.at_peak["used"]:
            self.at_peak = snap
        if self.timeline:
            with open(self.timeline, "a") as f:
                f.write(json.dumps(snap) + "\n")
        return snap

    def run(self) -> None:
        last = self._take()
        taken = time.monotonic()
        while not self.stop.wait(self.TICK):
            used = self.psutil.virtual_memory().used
            self.peak = max(self.peak, used)
            if time.monotonic() - taken >= self.every or used - last["used"] >= self.JUMP:
                last, taken = self._take(), time.monotonic()

    def finish(self) -> dict:
        """Stop, and the row's `host` entry: the peak's rise over the baseline, and who held the node at the
        baseline and at the highest snapshot."""
        self.stop.set()
        self.join(timeout=30)
        return {"node_used_delta_bytes": self.peak - self.baseline, "baseline_bytes": self.baseline,
                "at_baseline": self.at_baseline, "at_peak": self.at_peak}
