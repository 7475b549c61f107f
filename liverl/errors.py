"""Configuration errors: every problem names the key, why it is wrong and the fix."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from difflib import get_close_matches
from typing import Any

CONFIG_ERROR_EXIT = 2


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a configuration, printed as `key: message (got: value)` plus the fix."""

    key: str
    message: str
    fix: str
    got: Any = None
    rule: str = "config"
    # FATAL blocks the launch; WARN, SKIP and WAIVED (a FATAL the user allowed) are reported (liverl.check)
    severity: str = "FATAL"

    def __str__(self) -> str:
        got = "" if self.got is None else f" (got: {self.got})"
        return f"[{self.rule}] {self.key}: {self.message}{got}\n    fix: {self.fix}"


@dataclass
class ConfigError(Exception):
    """Raised when a configuration cannot run; carries every problem found, not only the first."""

    problems: list[Problem] = field(default_factory=list)
    # what else the guardrails found (WARN, SKIP, WAIVED), reported alongside
    findings: list[Problem] = field(default_factory=list)

    def __str__(self) -> str:
        n = len(self.problems)
        head = f"LiveRL configuration error ({n} problem{'s' if n != 1 else ''}); nothing was launched:"
        rest = [f"  {f.severity} {f}" for f in self.findings if f.severity != "SKIP"]
        return "\n".join([head, *(f"  {p}" for p in self.problems), *(["  also:", *rest] if rest else [])])


def nearest(name: str, candidates: Iterable[str], n: int = 3) -> list[str]:
    """The closest valid names to a misspelt one (empty when nothing is close)."""
    pool = sorted(set(candidates))
    close = get_close_matches(name, pool, n=n, cutoff=0.6)
    if not close:
        leaf = name.rsplit(".", 1)[-1]
        close = [
            c
            for c in pool
            if c.rsplit(".", 1)[-1] in get_close_matches(leaf, [p.rsplit(".", 1)[-1] for p in pool], n=n, cutoff=0.6)
        ][:n]
    return close


def did_you_mean(name: str, candidates: Iterable[str]) -> str:
    """A `did you mean` phrase, or a pointer to the valid names when none is close."""
    close = nearest(name, candidates)
    return f"did you mean {', '.join(close)}?" if close else "no valid name is close to it"
