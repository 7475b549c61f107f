"""Files other processes may read while they are written: write whole, then move into place."""

from __future__ import annotations

import os
import threading
from pathlib import Path


def write_atomic(path: Path, text: str) -> None:
    """Write `text` to `path` so a reader sees the old file or the new one, never a part of it.

    The temporary file is named after this process and thread, so concurrent writers (a launcher and a Ray job on a
    shared disk, two smokes sharing a ledger) never write into each other's; the last one moved in wins.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
