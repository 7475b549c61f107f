"""liverl.atomic.write_atomic: readers see the old file or the new one; writers in parallel leave no debris."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from liverl.atomic import write_atomic


def test_replaces_whole_and_leaves_only_the_file(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "run.json"
    write_atomic(path, "old\n")
    write_atomic(path, "new\n")
    assert path.read_text() == "new\n"
    assert [p.name for p in path.parent.iterdir()] == ["run.json"]


def test_a_failed_write_keeps_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    path = tmp_path / "ledger.json"
    write_atomic(path, "kept\n")
    with pytest.raises(UnicodeEncodeError):
        write_atomic(path, "\udcff")  # a lone surrogate cannot be encoded: the write fails midway
    assert path.read_text() == "kept\n"
    assert [p.name for p in tmp_path.iterdir()] == ["ledger.json"]


def test_concurrent_writers_never_leave_a_torn_file(tmp_path: Path) -> None:
    path = tmp_path / "shared.json"
    bodies = [json.dumps({"writer": i, "pad": "x" * 200_000}) for i in range(8)]
    torn: list[str] = []
    failed: list[BaseException] = []

    def write(body: str) -> None:
        try:
            for _ in range(20):
                write_atomic(path, body)
        except BaseException as e:  # a writer that lost its temporary to another: the old shared-name pattern
            failed.append(e)

    def read() -> None:
        for _ in range(200):
            if path.is_file() and path.read_text() not in bodies:
                torn.append("torn")

    threads = [threading.Thread(target=write, args=(b,)) for b in bodies] + [threading.Thread(target=read)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not torn and not failed
    assert path.read_text() in bodies
    assert [p.name for p in tmp_path.iterdir()] == ["shared.json"]
