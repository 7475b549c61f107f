"""The node's used memory while a point runs, and who holds it.

Every TICK seconds the sampler reads the node's used memory (psutil's Linux `used`: total - MemAvailable, so it
includes shared memory, /dev/shm and Ray's object store among it, and the kernel's unreclaimable memory, and leaves
out the reclaimable page cache). Its highest reading less the baseline is the row's `node_used_delta_bytes`.
Beside the readings, a second thread takes snapshots of who holds the node: one every EVERY seconds (longer where a
snapshot itself takes long: at most a fifth of the time goes to them), and one whenever the used memory has risen
JUMP above the last snapshot, so the peak has a snapshot near it. The readings never wait for a snapshot.

A snapshot holds:
- the kernel's split of the node's memory (/proc/meminfo: anonymous pages, shared memory, locked pages, ...);
- every process's memory grouped by role. Ray names its workers' processes `ray::Class.method`, so the role is
  `ray::Class` (the trainer's WorkerDict, the vLLM server, the agent-loop workers, the TaskRunner). A python process
  is its module or script; any other process is its name.
- Each role's resident set and proportional set (PSS). PSS splits shared pages (Ray's object store, pinned memory a
  driver maps twice) among their processes, so the roles' PSS add up to about the processes' share of the node.
Reading PSS walks each process's memory map (smaps_rollup): about 10 ms per GiB resident, so a second or more on a
node with hundreds of GiB offloaded; hence the snapshots' own thread and their interval's floor.

The row keeps the baseline snapshot and the snapshot with the highest used memory (`at_peak`: the one nearest the
peak, within JUMP or one interval of it). Every snapshot, the baseline's first, goes to a JSON-lines timeline beside
the run (rewritten at each start), so a step's end can be matched to the metrics' times.

Why it is kept: the FSDP2-offload point on an H100 (moe30b_fsdp_16k_fsdp2off, 2026-12-08) peaked 10.34 GiB above the
host model, and the node-wide total could not say which process held the excess (liverl/memory/host.py).
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
from pathlib import Path

# /proc/meminfo fields a snapshot keeps (kB there, bytes here)
MEMINFO = ("MemTotal", "MemAvailable", "AnonPages", "Shmem", "Mlocked", "Unevictable", "Cached", "Buffers",
           "SUnreclaim", "PageTables")


# python's own flags that take a value (`-W ignore`, `-X dev`): not the script
PYTHON_VALUE_FLAGS = ("-W", "-X", "-Q")


def role(cmdline: list[str], name: str) -> str:
    """A process's role: `ray::Class` for a Ray worker (its title `ray::Class.method`), `python -m module` or
    `python script.py` for a python process, else its name."""
    head = cmdline[0] if cmdline else ""
    if head.startswith("ray::"):
        return head.split()[0].split(".")[0]
    if os.path.basename(head).startswith("python"):
        rest = iter(cmdline[1:])
        for arg in rest:
            if arg == "-m":
                return f"python -m {next(rest, '')}".rstrip()
            if arg == "-c":  # multiprocessing's children by their entry (spawn_main, resource_tracker, ...)
                code = next(rest, "")
                entry = re.search(r"multiprocessing\.(\w+) import (\w+)", code)
                return f"python -c {entry.group(1)}.{entry.group(2)}" if entry else "python -c"
            if arg in PYTHON_VALUE_FLAGS:
                next(rest, None)
            elif not arg.startswith("-"):  # a package's __main__.py by its folder (torch's compile_worker)
                parent, base = os.path.split(arg)
                return f"python {os.path.basename(parent)}/{base}" if base == "__main__.py" else f"python {base}"
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
    """Reads the node from construction (the baseline) until `finish`; `timeline`: a JSON-lines file of every
    snapshot, rewritten here."""

    TICK, EVERY, JUMP, SHARE = 0.5, 10.0, 2**28, 0.2

    def __init__(self, timeline: Path | None = None, every: float | None = None) -> None:
        super().__init__(daemon=True)
        import psutil

        self.psutil, self.stop, self.timeline = psutil, threading.Event(), timeline
        self.every = self.EVERY if every is None else every
        self.wanted, self.lock = threading.Event(), threading.Lock()
        if timeline:
            timeline.write_text("")
        self.at_baseline = self._take()
        self.baseline = self.peak = self.at_baseline["used"]
        self.at_peak, self.last = self.at_baseline, self.baseline  # last: the used memory of the latest snapshot
        self.snapper = threading.Thread(target=self._snap, daemon=True)

    def _take(self) -> dict:
        start = time.monotonic()
        snap = snapshot(self.psutil)
        snap["took_s"] = round(time.monotonic() - start, 3)
        if self.timeline:
            with open(self.timeline, "a") as f:
                f.write(json.dumps(snap) + "\n")
        return snap

    def _snap(self) -> None:
        """The snapshot thread: one every `every` seconds (SHARE of the time at most), and one when the reader asks."""
        took = self.at_baseline["took_s"]  # the baseline is the first snapshot
        while True:
            asked = self.wanted.wait(max(self.every, took / self.SHARE))
            self.wanted.clear()
            if asked:  # while the memory climbs: a snapshot at most every other moment
                self.stop.wait(took)
            if self.stop.is_set():
                return
            snap = self._take()
            took = snap["took_s"]
            with self.lock:
                self.peak = max(self.peak, snap["used"])
                if snap["used"] >= self.at_peak["used"]:
                    self.at_peak = snap
                self.last = snap["used"]

    def run(self) -> None:
        self.snapper.start()
        while not self.stop.wait(self.TICK):
            used = self.psutil.virtual_memory().used
            with self.lock:
                self.peak = max(self.peak, used)
                if used - self.last >= self.JUMP:
                    self.last = used  # one request per rise
                    self.wanted.set()

    def finish(self) -> dict:
        """Stop, and the row's `host` entry: the highest reading's rise over the baseline, and who held the node at
        the baseline and at the highest snapshot."""
        self.stop.set()
        self.wanted.set()
        for thread in (self, self.snapper):
            if thread.is_alive():
                thread.join(timeout=60)
        return {"node_used_delta_bytes": self.peak - self.baseline, "baseline_bytes": self.baseline,
                "at_baseline": self.at_baseline, "at_peak": self.at_peak}
