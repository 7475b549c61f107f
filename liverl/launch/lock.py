"""One live launch per run directory and per checkpoint directory.

A launch holds `.liverl.lock` in the run directory and in verl's checkpoint directory
(`trainer.default_local_dir`). The lock names its holder: a process (host, pid) or a Ray job (job id,
dashboard address). A holder that is gone (a dead pid on this host, a Ray job that finished) is a stale
lock: it is reported and taken over. A live holder, or one that cannot be checked from here, refuses the
launch with what holds it and the fix.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path

from liverl.atomic import write_atomic
from liverl.launch.jobs import job_status

LOCK_NAME = ".liverl.lock"
JOB_ID_ENV = "LIVERL_JOB_ID"  # set in a Ray job's environment by launcher=ray_job: the job adopts its lock


class LockHeld(Exception):
    """Another live launch holds the run or checkpoint directory; nothing was launched."""


@dataclass
class Holder:
    run_dir: str
    host: str = field(default_factory=socket.gethostname)
    pid: int = field(default_factory=os.getpid)
    since: str = field(default_factory=lambda: time.strftime("%Y-%m-%dT%H:%M:%S%z"))
    token: str = field(default_factory=lambda: uuid.uuid4().hex)
    job_id: str | None = None
    address: str | None = None

    def describe(self) -> str:
        who = f"Ray job {self.job_id} at {self.address}" if self.job_id else f"pid {self.pid} on {self.host}"
        return f"{who} (run {self.run_dir}, since {self.since})"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def liveness(holder: Holder) -> bool | None:
    """True: the holder is live; False: it is gone (stale lock); None: it cannot be checked from here."""
    if holder.job_id:
        status = job_status(holder.address or "", holder.job_id)
        return None if status is None else not status.is_terminal()
    if holder.host != socket.gethostname():
        return None
    return _pid_alive(holder.pid)


def read_holder(path: Path) -> Holder | None:
    try:
        return Holder(**json.loads(path.read_text()))
    except FileNotFoundError:
        return None
    except (ValueError, TypeError):
        return Holder(run_dir="?", host="?", pid=-1, since="?", token="unreadable")


class RunLock:
    """The locks of one launch: the run directory's, and the checkpoint directory's when it has one."""

    def __init__(self, run_dir: Path, checkpoint_dir: str | os.PathLike | None = None):
        self.paths = [Path(run_dir) / LOCK_NAME]
        if checkpoint_dir:
            self.paths.append(Path(checkpoint_dir) / LOCK_NAME)
        self.holder = Holder(run_dir=str(Path(run_dir).resolve()))
        self.held: list[Path] = []
        self.notes: list[str] = []  # stale locks that were taken over

    def acquire(self) -> bool:
        """Take every lock. False when this process already holds them (the caller must not release). Raises
        LockHeld, holding nothing, when a live or uncheckable holder has one."""
        mine = [read_holder(p) for p in self.paths]
        if all(h and h.host == self.holder.host and h.pid == self.holder.pid for h in mine):
            return False
        try:
            for path in self.paths:
                self._acquire(path)
        except BaseException:
            self.release()
            raise
        return True

    def add(self, checkpoint_dir: str | os.PathLike) -> None:
        """Also lock verl's checkpoint directory (known once the plan is built)."""
        path = Path(checkpoint_dir) / LOCK_NAME
        self.paths.append(path)
        self._acquire(path)

    def _acquire(self, path: Path) -> None:
        current = read_holder(path)
        job_id = os.environ.get(JOB_ID_ENV)
        if current and job_id and current.job_id == job_id:
            # a Ray job adopts the lock its submitter took for it
            self.holder.job_id, self.holder.address = current.job_id, current.address
            self._write(path)
        else:
            if current:
                self._take_over(path, current)
            self._create(path)
        self.held.append(path)

    def _take_over(self, path: Path, current: Holder) -> None:
        alive = liveness(current)
        what = "run directory" if path.parent == Path(self.holder.run_dir) else "checkpoint directory"
        if alive is None:
            raise LockHeld(
                f"{path}: the {what} is locked by {current.describe()}, which cannot be checked from "
                f"{self.holder.host}. Nothing was launched.\n    fix: if that launch is over, delete {path}; "
                "otherwise stop it (python -m liverl.stop RUN_DIR) or use another hydra.run.dir"
            )
        if alive:
            raise LockHeld(
                f"{path}: the {what} is in use by a live launch, {current.describe()}. Nothing was launched.\n"
                "    fix: wait for it to finish, stop it (python -m liverl.stop RUN_DIR), or launch into another "
                "hydra.run.dir (a separate checkpoint directory)"
            )
        # atomic take-over: move the stale lock aside under a name of our own, then check that what moved is the
        # holder judged stale (two launches taking over at once: only one moves it; the other gets nothing, or moves
        # the winner's fresh lock, puts it back and is refused)
        raced = LockHeld(f"{path}: another launch took over the stale lock at the same moment. Nothing was launched.")
        aside = path.with_name(f"{LOCK_NAME}.stale.{self.holder.token}")
        try:
            os.rename(path, aside)
        except FileNotFoundError:
            raise raced from None
        moved = read_holder(aside)
        if moved is None or moved.token != current.token:
            with contextlib.suppress(FileExistsError):
                os.link(aside, path)  # put the winner's lock back (never over a newer one)
            aside.unlink(missing_ok=True)
            raise raced
        aside.unlink(missing_ok=True)
        self.notes.append(f"stale lock {path} from {current.describe()}, which is gone: taken over")

    def _create(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            raise LockHeld(f"{path}: another launch took the lock at the same moment. Nothing was launched.") from None
        with os.fdopen(fd, "w") as f:
            f.write(json.dumps(asdict(self.holder)) + "\n")

    def _write(self, path: Path) -> None:
        write_atomic(path, json.dumps(asdict(self.holder)) + "\n")

    def hand_to_job(self, job_id: str, address: str) -> None:
        """The locks name a Ray job about to be submitted: it adopts them, and they stay until it ends."""
        self.holder.job_id, self.holder.address = job_id, address
        for path in self.held:
            self._write(path)

    def detach(self) -> None:
        """This process no longer releases the locks (the submitted job holds them)."""
        self.held = []

    def release(self) -> None:
        """Remove the locks this launch holds (never another holder's)."""
        for path in self.held:
            current = read_holder(path)
            if current and current.token == self.holder.token:
                path.unlink(missing_ok=True)
        self.held = []
