"""Where LiveRL's own files are: the checkout (or installed tree) and its `conf/` groups."""

from __future__ import annotations

from pathlib import Path

LIVERL_ROOT = Path(__file__).resolve().parent.parent
CONF_DIR = LIVERL_ROOT / "conf"
