"""Read a run's metric stream: verl ``FileLogger`` JSONL attempts or verl console log lines.

A run directory holds ``metrics.jsonl`` (first attempt) and ``metrics.<N>.jsonl`` (resumed
attempts, in N order). When none exists, ``train.log`` (verl's console format
``step:N - key:value - ...``) is read instead. A single file may also be given directly.

Reading is incremental (``StreamReader.poll``) so ``--follow`` only parses new bytes; only
complete lines are consumed, so a partially written last line is picked up once finished.
Values that are null, NaN or inf are recorded as non-finite; keys a line lacks are missing.
When a later attempt starts at step S, earlier attempts' steps >= S are superseded.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import orjson

_MISSING = object()
_NUMERIC = (float, int, bool)
_CHUNK = 1 << 22  # bytes read at a time: memory stays flat on long runs
_ATTEMPT_RE = re.compile(r"^metrics(?:\.(\d+))?\.jsonl$")
# what LiveRL writes itself beside verl's metrics (liverl/scaffold/filter_algos.py: the fully-async filter figures)
LIVERL_METRICS = "liverl_metrics.jsonl"
# where LiveRL's own per-step figures go when verl's logger cannot take them (liverl/scaffold/filter_algos.py);
# the plan sets it to RUN_DIR/LIVERL_METRICS (liverl/recipe/filter_plan.py)
LIVERL_METRICS_ENV = "LIVERL_METRICS_PATH"
_ANSI_RE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_STEP_RE = re.compile(r"(?:^|[\s)\]])step:(\d+) - ")
_WRAPPED_RE = re.compile(r"^[A-Za-z_][\w.]*\((.*)\)$")


class RunNotFoundError(Exception):
    """The run path does not exist or holds no metric stream."""


def _parse_jsonl_line(line: bytes) -> tuple[int, dict] | None:
    """Parse one FileLogger line; tolerates NaN/Infinity literals; None if unusable."""
    try:
        record = orjson.loads(line)
    except orjson.JSONDecodeError:
        try:
            record = json.loads(line)
        except ValueError:
            return None
    try:
        step, data = int(record["step"]), record["data"]
    except (KeyError, TypeError, ValueError):
        return None
    return (step, data) if isinstance(data, dict) else None


def _console_number(text: str) -> object:
    """A console value (``0.5``, ``nan``, ``np.float64(0.5)``, ``tensor(3)``) as float."""
    text = text.strip()
    wrapped = _WRAPPED_RE.match(text)
    if wrapped:
        text = wrapped.group(1).split(",")[0].strip()
    try:
        return float(text)
    except ValueError:
        return _MISSING


def parse_console_line(line: str) -> tuple[int, dict[str, float]] | None:
    """Parse one verl console-logger line; None when it is not a metrics line."""
    line = _ANSI_RE.sub("", line)
    match = _STEP_RE.search(line)
    if match is None:
        return None
    data: dict[str, float] = {}
    for item in line[match.end():].rstrip("\r\n").split(" - "):
        key, sep, raw = item.rpartition(":")
        if not sep or not key:
            continue
        value = _console_number(raw)
        if value is not _MISSING:
            data[key.strip()] = value  # type: ignore[assignment]
    return int(match.group(1)), data


def attempt_files(run: Path) -> list[Path]:
    """The run's metric sources in attempt order (JSONL attempts, else console logs)."""
    if run.is_file():
        return [run]
    attempts = []
    for path in run.glob("metrics*.jsonl"):
        match = _ATTEMPT_RE.match(path.name)
        if match:
            attempts.append((int(match.group(1) or 0), path))
    if attempts:
        return [path for _, path in sorted(attempts)]
    log = run / "train.log"
    return [log] if log.is_file() else []


@dataclass
class Stream:
    """Column view of a run's metrics: one row per step, NaN where absent or non-finite."""

    steps: np.ndarray
    columns: dict[str, np.ndarray]
    present: dict[str, np.ndarray]
    sources: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    last_write: float | None = None
    # the attempt (0: metrics.jsonl, N: metrics.<N>.jsonl) each row came from; None when unknown
    attempts: np.ndarray | None = None

    def has(self, key: str) -> bool:
        """Whether ``key`` has at least one finite value."""
        col = self.columns.get(key)
        return col is not None and bool(np.isfinite(col).any())

    def first(self, *keys: str) -> str | None:
        """The first of ``keys`` that has finite values."""
        return next((k for k in keys if self.has(k)), None)

    def series(self, key: str) -> tuple[np.ndarray, np.ndarray]:
        """Steps and values of ``key`` where it is finite."""
        col = self.columns.get(key)
        if col is None:
            return np.empty(0, dtype=np.int64), np.empty(0)
        ok = np.isfinite(col)
        return self.steps[ok], col[ok]

    def settled(self, key: str) -> tuple[np.ndarray, np.ndarray]:
        """``series(key)`` without each attempt's first value: the first step after a (re)start also pays for warm-up
        (vLLM's first generations, kernel JIT, the first weight sync) and reads several times slower. Without attempt
        information (a console log), only the first value is dropped."""
        steps, values = self.series(key)
        if not len(values):
            return steps, values
        col = self.columns[key]
        attempts = self.attempts[np.isfinite(col)] if self.attempts is not None else np.zeros(len(values), int)
        first = np.r_[True, attempts[1:] != attempts[:-1]]
        return steps[~first], values[~first]

    def nonfinite_steps(self, key: str) -> np.ndarray:
        """Steps where ``key`` was logged as null, NaN or inf."""
        col = self.columns.get(key)
        if col is None:
            return np.empty(0, dtype=np.int64)
        return self.steps[self.present[key] & ~np.isfinite(col)]

    def keys_with_prefix(self, prefix: str) -> list[str]:
        """Stored keys starting with ``prefix``, sorted."""
        return sorted(k for k in self.columns if k.startswith(prefix))


class StreamReader:
    """Incrementally read a run's metric files, keeping only the wanted keys.

    ``keys``/``prefixes`` select what is stored (None keeps every key); rows are kept as
    per-key lists so a 400-metric line costs one parse plus a lookup per wanted key.
    """

    def __init__(self, run: str | os.PathLike[str], keys: Iterable[str] | None = None,
                 prefixes: Iterable[str] = ()) -> None:
        self.run = Path(run)
        if not self.run.exists():
            raise RunNotFoundError(
                f"{self.run}: no such run directory or log file (expected a directory holding "
                "metrics.jsonl / metrics.<N>.jsonl or train.log, or one such file)")
        self._keep_all = keys is None
        self._exact = set(keys or ())
        self._prefixes = tuple(prefixes)
        self._wanted: list[str] = []
        self._seen: set[str] = set()
        self._cols: dict[str, list[object]] = {}
        self._rows: dict[tuple[int, int], int] = {}
        self._attempt_start: dict[int, int] = {}
        self._offsets: dict[Path, int] = {}
        self._bad_lines: dict[str, int] = {}
        self._pending: dict[str, bool] = {}
        self.files: list[Path] = []
        self._stream: Stream | None = None

    def poll(self) -> bool:
        """Read newly written complete lines from every source; True if any row changed."""
        self.files = attempt_files(self.run)
        changed = False
        for attempt, path in enumerate(self.files):
            jsonl = path.suffix == ".jsonl"
            for line in self._new_lines(path):
                changed |= self._ingest(attempt, line, jsonl, path.name)
        liverl = self.run / LIVERL_METRICS if self.run.is_dir() else None
        if liverl is not None and liverl.is_file():  # LiveRL's own rows (fully async filter), merged by step
            for line in self._new_lines(liverl):
                changed |= self._ingest(max(0, len(self.files) - 1), line, True, liverl.name)
        if changed:
            self._stream = None
        return changed

    def _new_lines(self, path: Path) -> Iterator[bytes]:
        """Complete lines appended to ``path`` since the last poll, read in bounded chunks."""
        offset = self._offsets.get(path, 0)
        try:
            size = path.stat().st_size
        except OSError:
            return
        if size < offset:  # rewritten from scratch: read it again
            offset = 0
        tail = b""
        with path.open("rb") as fh:
            fh.seek(offset)
            while offset < size:
                chunk = tail + fh.read(min(_CHUNK, size - offset))
                offset += len(chunk) - len(tail)
                end = chunk.rfind(b"\n") + 1
                tail = chunk[end:]
                self._offsets[path] = offset - len(tail)
                yield from chunk[:end].splitlines()
        self._pending[path.name] = bool(tail.strip())

    def _ingest(self, attempt: int, line: bytes, jsonl: bool, name: str) -> bool:
        if not line.strip():
            return False
        parsed = _parse_jsonl_line(line) if jsonl else parse_console_line(line.decode("utf-8", "replace"))
        if parsed is None:
            if jsonl:
                self._bad_lines[name] = self._bad_lines.get(name, 0) + 1
            return False
        step, data = parsed
        if not self._seen.issuperset(data):
            self._note_keys(data)
        row = self._row_for(attempt, step)
        get = data.get
        for key in self._wanted:
            value = get(key, _MISSING)
            if value is not _MISSING:
                self._cols[key][row] = value
        return True

    def _note_keys(self, data: dict) -> None:
        for key in data.keys() - self._seen:
            self._seen.add(key)
            if self._keep_all or key in self._exact or key.startswith(self._prefixes):
                self._wanted.append(key)
                self._cols[key] = [_MISSING] * len(self._rows)

    def _row_for(self, attempt: int, step: int) -> int:
        """Row of (attempt, step); lines of one attempt at the same step are merged."""
        row = self._rows.get((attempt, step))
        if row is None:
            row = self._rows[(attempt, step)] = len(self._rows)
            for col in self._cols.values():
                col.append(_MISSING)
            start = self._attempt_start.get(attempt)
            self._attempt_start[attempt] = step if start is None else min(start, step)
        return row

    def stream(self) -> Stream:
        """The current rows as sorted columns (later attempts supersede from their first step)."""
        if self._stream is not None:
            return self._stream
        cutoff: dict[int, float] = {}
        bound = math.inf
        for attempt in sorted(self._attempt_start, reverse=True):
            cutoff[attempt] = bound
            bound = min(bound, self._attempt_start[attempt])
        rows = sorted((step, row, attempt) for (attempt, step), row in self._rows.items() if step < cutoff[attempt])
        steps = np.fromiter((s for s, _, _ in rows), dtype=np.int64, count=len(rows))
        attempts = np.fromiter((a for _, _, a in rows), dtype=np.int64, count=len(rows))
        order = [r for _, r, _ in rows]
        columns: dict[str, np.ndarray] = {}
        present: dict[str, np.ndarray] = {}
        for key, values in self._cols.items():
            picked = [values[r] for r in order]
            present[key] = np.array([v is None or type(v) in _NUMERIC for v in picked], dtype=bool)
            columns[key] = np.array([v if type(v) in _NUMERIC else math.nan for v in picked],
                                    dtype=np.float64)
        notes = [f"{name}: {n} unparsable line(s) skipped" for name, n in self._bad_lines.items()]
        notes += [f"{name}: partially written last line ignored (read once complete)"
                  for name, pending in self._pending.items() if pending]
        mtimes = [p.stat().st_mtime for p in self.files if p.exists()]
        self._stream = Stream(steps, columns, present, [str(p) for p in self.files], notes,
                              max(mtimes, default=None), attempts)
        return self._stream


def read_run(run: str | os.PathLike[str], keys: Iterable[str] | None = None,
             prefixes: Iterable[str] = ()) -> Stream:
    """Read a run directory or a single metrics/log file in one pass."""
    reader = StreamReader(run, keys, prefixes)
    reader.poll()
    if not reader.files:
        raise RunNotFoundError(
            f"{reader.run}: no metric stream found (expected metrics.jsonl, metrics.<N>.jsonl "
            "or train.log in the run directory)")
    return reader.stream()
