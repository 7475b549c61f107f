"""Every guardrail rule, one file per topic; importing this package registers them all.

The topic files named in ORDER are imported first, in that order (the order findings are reported in); any
other file dropped into this folder is registered too, after them, in name order.
"""

from __future__ import annotations

import importlib
import pkgutil

ORDER = (
    "parallelism",
    "async_mode",
    "batch",
    "new_verl",
    "router_replay",
    "veomni",
    "scaffold",
    "algorithm",
    "memory",
    "smoke_first",
    "paths",
    "validation",
    "kernels",
)
TOPICS = (*ORDER, *sorted({m.name for m in pkgutil.iter_modules(__path__)} - set(ORDER)))

for _topic in TOPICS:
    importlib.import_module(f"{__name__}.{_topic}")
