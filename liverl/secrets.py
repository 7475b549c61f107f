"""The secret policy for every file LiveRL writes: which names are secrets, and how values are kept out.

A secret-looking variable name (WANDB_API_KEY, HF_TOKEN, AWS_SECRET_ACCESS_KEY, DB_PASSWORD; not TOKENIZERS_...)
has its value replaced by REDACTED in env.json, command.sh, the Ray runtime env and provenance/environ.json;
`scrub` replaces secret values wherever they appear in text (a URL, a diff, a log tail, a command line).
"""

from __future__ import annotations

import os
import re

REDACTED = "<redacted>"
# a secret-looking name part: WANDB_API_KEY, HF_TOKEN, AWS_SECRET_ACCESS_KEY, DB_PASSWORD (not TOKENIZERS_...)
_SECRET = re.compile(r"(^|_)(API_?KEY|KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIALS?|AUTH)(_|$)", re.IGNORECASE)


def is_secret(name: str) -> bool:
    return bool(_SECRET.search(name))


def redact(env: dict[str, str]) -> dict[str, str]:
    """The environment with every secret-looking variable's value replaced."""
    return {k: (REDACTED if is_secret(k) else v) for k, v in env.items()}


def secret_values(env: dict[str, str] | None = None) -> list[str]:
    """The values of secret-named variables (longest first), to scrub wherever they appear."""
    env = os.environ if env is None else env
    return sorted({v for k, v in env.items() if is_secret(k) and len(v) >= 4}, key=len, reverse=True)


def scrub(text: str, secrets: list[str] | None = None) -> str:
    """The text with every secret value replaced (a token inside a URL, a diff, a command line)."""
    for value in secret_values() if secrets is None else secrets:
        text = text.replace(value, REDACTED)
    return text


def redacted_argv(argv: list[str]) -> list[str]:
    """The command line with the value of any secret-named `key=value` argument replaced."""
    out = []
    for arg in argv:
        key, eq, _ = arg.partition("=")
        out.append(f"{key}={REDACTED}" if eq and is_secret(key.rsplit(".", 1)[-1]) else arg)
    return out
