"""benchmarks/gpu/wheelhouse_parts.sh: a wheelhouse cut into parts here, stashed part by part and unpacked there,
arrives whole and checked; a missing part is refused, not half unpacked."""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "gpu" / "wheelhouse_parts.sh"


def parts(*args: str, stash: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, check=False,
                          env={**os.environ, "STASH": str(stash)})


def wheelhouse(tmp_path: Path) -> Path:
    house = tmp_path / "wh"
    house.mkdir()
    for i in range(3):
        (house / f"pkg{i}-1.0-py3-none-any.whl").write_bytes(os.urandom(40_000))
    sums = "".join(f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {p.name}\n" for p in sorted(house.iterdir()))
    (house / "SHA256SUMS").write_text(sums)
    return house


def test_parts_stashed_one_call_at_a_time_unpack_to_the_checked_wheelhouse(tmp_path: Path) -> None:
    packed, stash = tmp_path / "parts", tmp_path / "stash"
    assert parts("pack", str(wheelhouse(tmp_path)), str(packed), "50K", stash=stash).returncode == 0
    pieces = sorted(packed.glob("wheelhouse.tar.part-*"))
    assert len(pieces) >= 3
    for piece in pieces:  # each call carries one part (and the sum) in a folder of its own
        carried = tmp_path / f"call-{piece.name}"
        carried.mkdir()
        (carried / piece.name).write_bytes(piece.read_bytes())
        (carried / "wheelhouse.sha256").write_text((packed / "wheelhouse.sha256").read_text())
        assert parts("stash", str(carried), stash=stash).returncode == 0
    out = parts("unpack", str(tmp_path / "there"), stash=stash)
    assert out.returncode == 0, out.stderr
    got = {p.name: p.read_bytes() for p in (tmp_path / "there").iterdir()}
    want = {p.name: p.read_bytes() for p in (tmp_path / "wh").iterdir()}
    assert got == want
    assert not list(stash.glob("wheelhouse.tar")) and not list(tmp_path.glob("there/wheelhouse.tar"))


def test_a_missing_part_is_refused_before_anything_is_unpacked(tmp_path: Path) -> None:
    packed, stash = tmp_path / "parts", tmp_path / "stash"
    parts("pack", str(wheelhouse(tmp_path)), str(packed), "50K", stash=stash)
    stash.mkdir()
    (stash / "wheelhouse.sha256").write_text((packed / "wheelhouse.sha256").read_text())
    for piece in sorted(packed.glob("wheelhouse.tar.part-*"))[1:]:  # the first part never arrived
        (stash / piece.name).write_bytes(piece.read_bytes())
    out = parts("unpack", str(tmp_path / "there"), stash=stash)
    assert out.returncode == 2 and "a part is missing or damaged" in out.stderr
    assert not any((tmp_path / "there").iterdir())
