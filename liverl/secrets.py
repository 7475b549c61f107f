"""LiveRL's one secret policy, for every file it writes (the plan, `.hydra/`, logs, tracebacks, run.json,
provenance, the sbatch script, the Ray job's runtime env).

A value is secret when
- its name says so (`WANDB_API_KEY`, `PGPASSWORD`, `GITHUB_PAT`, `NPM_AUTHTOKEN`, `...engine_kwargs.vllm.api-key`;
  decided by the name's last parts, so `RAY_AUTH_MODE`, `TOKENIZERS_PARALLELISM` and `data.prompt_key` are not);
- its shape says so, whatever its name: the token shapes of detect-secrets' plugins (AWS, GitHub, Slack, npm, PyPI,
  Stripe, JWT, private keys, ...) plus the shapes they lack (Anthropic/OpenAI `sk-`, Hugging Face `hf_`, GitHub
  `github_pat_`, Google `AIza`);
- it is the password of a URL (`postgres://user:PASSWORD@host`): only the password is secret;
- it is a high-entropy string in a secret-looking place (a name with KEY, AUTH, SIG, SESSION, COOKIE, CERT, PRIVATE
  or CREDENTIAL in it; detect-secrets' Shannon-entropy limits), so `RAY_AUTH_MODE=disabled` is not.

Redaction replaces whole values and whole tokens (never a substring of a longer word), so a redacted value never
blanks an unrelated word.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from detect_secrets.core.plugins.util import get_mapping_from_secret_type_to_class
from detect_secrets.plugins.base import RegexBasedDetector
from detect_secrets.plugins.basic_auth import BasicAuthDetector
from detect_secrets.plugins.high_entropy_strings import Base64HighEntropyString, HexHighEntropyString
from detect_secrets.plugins.ip_public import IPPublicDetector

REDACTED = "<redacted>"

# --- by name: the last part(s) of the name (split on _ . -), upper-cased
_STRONG_LAST = {"PASSWORD", "PASSWD", "SECRET", "TOKEN", "PAT", "APIKEY", "CREDENTIALS", "CREDENTIAL", "PASSPHRASE"}
# <X>_KEY is secret for these X (prompt_key, image_key ... are not)
_KEY_PREFIX = {"API", "ACCESS", "SECRET", "PRIVATE", "AUTH", "SIGNING", "ENCRYPTION", "MASTER", "ACCOUNT", "CLIENT"}
# glued spellings inside the last part: PGPASSWORD, NPM_AUTHTOKEN, MYSECRET, GITHUBTOKEN
_GLUED = re.compile(r"(PASSWORD|PASSWD|SECRET|TOKEN|APIKEY|ACCESSKEY)$")
# a name where a high-entropy value is taken for a secret
_HINT = re.compile(r"KEY|AUTH|SIG|SESSION|COOKIE|CERT|PRIVATE|CREDENTIAL|BEARER", re.IGNORECASE)
# names that look secret but are not (the shell's working directory)
_NOT_SECRET_NAMES = {"PWD", "OLDPWD"}

# --- by value: shapes detect-secrets 1.5.0 lacks
_EXTRA_SHAPES = (
    re.compile(r"sk-ant-[A-Za-z0-9_\-]{20,}"),  # Anthropic
    re.compile(r"sk-(?:proj-|svcacct-)?[A-Za-z0-9_\-]{32,}"),  # OpenAI-style project/service keys
    re.compile(r"hf_[A-Za-z0-9]{30,}"),  # Hugging Face
    re.compile(r"github_pat_[A-Za-z0-9_]{40,}"),  # GitHub fine-grained PAT
    re.compile(r"AIza[0-9A-Za-z_\-]{35}"),  # Google API key
    re.compile(r"xapp-\d-[A-Za-z0-9\-]{20,}"),  # Slack app-level token
)
_URL_PASSWORD = BasicAuthDetector.denylist[0]
_SKIP_PLUGINS = (BasicAuthDetector, IPPublicDetector)  # URL passwords are handled alone; an IP is not a secret
_SHAPES: tuple[re.Pattern[str], ...] = (
    *(
        rx
        for cls in get_mapping_from_secret_type_to_class().values()
        if issubclass(cls, RegexBasedDetector) and not issubclass(cls, _SKIP_PLUGINS)
        for rx in cls().denylist
    ),
    *_EXTRA_SHAPES,
)
_B64, _HEX = Base64HighEntropyString(), HexHighEntropyString()
# values too plain to scrub from free text even under a secret name (they would blank ordinary words)
_PLAIN = {"true", "false", "null", "none", "yes", "no", "on", "off", "disabled", "enabled", "offline", "online"}
_MIN_SCRUB = 6  # shorter secret values are redacted where they are stored, not hunted in free text
_WORD = r"A-Za-z0-9_\-"


def _parts(name: str) -> list[str]:
    return [p for p in re.split(r"[_.\-\s]+", name.upper()) if p]


def is_secret_name(name: str) -> bool:
    """Whether a variable or key name says its value is a secret (decided by its last parts)."""
    if name.upper() in _NOT_SECRET_NAMES:
        return False
    parts = _parts(name)
    if not parts:
        return False
    last = parts[-1]
    if last in _STRONG_LAST or _GLUED.search(last):
        return True
    return last == "KEY" and len(parts) > 1 and parts[-2] in _KEY_PREFIX


def entropy(text: str) -> float:
    """Shannon entropy in bits per character."""
    if not text:
        return 0.0
    counts = {c: text.count(c) for c in set(text)}
    return -sum(n / len(text) * math.log2(n / len(text)) for n in counts.values())


def _high_entropy(value: str) -> bool:
    if len(value) < 16:
        return False
    if all(c in _HEX.charset for c in value) and any(c.isdigit() for c in value):
        return _HEX.calculate_shannon_entropy(value) > _HEX.entropy_limit
    if all(c in _B64.charset for c in value):
        return entropy(value) > _B64.entropy_limit
    return False


def shaped_secrets(text: str) -> list[str]:
    """Every substring of text shaped like a credential: token shapes and URL passwords."""
    found = [m.group(0) for rx in _SHAPES for m in rx.finditer(text)]
    found += [m.group(1) for m in _URL_PASSWORD.finditer(text)]
    return [f for f in found if f]


def secrets_in(name: str, value: Any) -> list[str]:
    """The secret strings inside one named value (the whole value, a token in it, or a URL's password)."""
    if value is None or isinstance(value, bool):
        return []
    if isinstance(value, (list, tuple)):
        return [s for v in value for s in secrets_in(name, v)]
    if isinstance(value, Mapping):
        return [s for k, v in value.items() for s in secrets_in(f"{name}.{k}", v)]
    text = str(value)
    if is_secret_name(name) or (_HINT.search(name) and _high_entropy(text)):
        return [text] if text else []
    return shaped_secrets(text)


def is_secret(name: str, value: Any) -> bool:
    return bool(secrets_in(name, value))


def redact_value(name: str, value: Any) -> Any:
    """The value with its secrets replaced (a whole secret value becomes REDACTED; a URL keeps all but its
    password); lists and maps are redacted item by item."""
    if isinstance(value, (list, tuple)):
        return [redact_value(name, v) for v in value]
    if isinstance(value, Mapping):
        return {k: redact_value(f"{name}.{k}", v) for k, v in value.items()}
    found = secrets_in(name, value)
    if not found:
        return value
    text = str(value)
    if text in found:
        return REDACTED
    return Scrubber(found).scrub(text)


def redact(env: Mapping[str, Any]) -> dict[str, Any]:
    """A mapping (an environment, overrides) with every secret value replaced."""
    return {k: redact_value(k, v) for k, v in env.items()}


class Scrubber:
    """Removes known secret values and credential-shaped tokens from free text, whole tokens only."""

    def __init__(self, values: Iterable[str] = ()) -> None:
        keep = {v for v in values if len(v) >= _MIN_SCRUB and v.lower() not in _PLAIN and v != REDACTED}
        self.values = sorted(keep, key=len, reverse=True)
        alternatives = "|".join(re.escape(v) for v in self.values)
        self._known = re.compile(f"(?<![{_WORD}])(?:{alternatives})(?![{_WORD}])") if alternatives else None

    @classmethod
    def from_sources(cls, *sources: Mapping[str, Any]) -> Scrubber:
        """A scrubber for every secret in these name -> value maps (an environment, overrides)."""
        return cls(s for src in sources for k, v in src.items() for s in secrets_in(k, v))

    def scrub(self, text: str) -> str:
        if self._known is not None:
            text = self._known.sub(REDACTED, text)
        for secret in sorted(set(shaped_secrets(text)), key=len, reverse=True):
            text = re.sub(f"(?<![{_WORD}]){re.escape(secret)}(?![{_WORD}])", REDACTED, text)
        return text


# --- provenance: variables that describe the run are recorded with their (redacted) values; the rest by name only
PROVENANCE_ALLOW = re.compile(
    r"(CUDA_.*|NCCL_.*|NVIDIA_.*|TORCH_.*|PYTORCH_.*|VLLM_.*|RAY_.*|HYDRA_.*|LIVERL_.*|WANDB_(MODE|PROJECT|ENTITY|DIR)"
    r"|HF_(HOME|HUB_OFFLINE|HUB_CACHE|DATASETS_OFFLINE)|TRANSFORMERS_.*|TOKENIZERS_PARALLELISM|OMP_NUM_THREADS"
    r"|USE_NEW_VERL|NEW_VERL_DIR|PYTHONPATH|PYTHONHASHSEED|VIRTUAL_ENV|PATH|LD_LIBRARY_PATH|SLURM_JOB_.*"
    r"|TRAIN_BSZ|N_RESP|MODEL_PATH|TRAIN_FILES|VAL_FILES|TRAJ_FILTER_.*|HARBOR_.*|LANG|LC_ALL|TZ)"
)


def provenance_environ(env: Mapping[str, str]) -> dict[str, Any]:
    """What provenance/environ.json records: allowlisted variables (values redacted) and the other names."""
    return {
        "variables": redact({k: v for k, v in sorted(env.items()) if PROVENANCE_ALLOW.fullmatch(k)}),
        "other_names": sorted(k for k in env if not PROVENANCE_ALLOW.fullmatch(k)),
    }


def env_scrubber(environ: Mapping[str, str] | None = None) -> Scrubber:
    """A scrubber for every secret in an environment (default: this process's, read now)."""
    return Scrubber.from_sources(os.environ if environ is None else environ)


def override_map(args: Iterable[str]) -> dict[str, str]:
    """Command-line overrides as {key: value} (for Scrubber.from_sources)."""
    return {a.lstrip("+~").partition("=")[0]: a.partition("=")[2] for a in args if "=" in a}


# what a sweep of the run directory rewrites: LiveRL's own text files (not checkpoints or the trainer's metrics)
_SWEPT = {".yaml", ".yml", ".json", ".txt", ".sh", ".log", ".sbatch", ".diff", ".env"}
_SWEEP_LIMIT = 8 << 20


def scrub_tree(root: Path, scrubber: Scrubber) -> list[Path]:
    """Scrub every text file LiveRL writes under root in place (.hydra/ included); returns the files changed."""
    changed = []
    for path in sorted(root.rglob("*")):
        if "checkpoints" in path.relative_to(root).parts or not path.is_file() or path.is_symlink():
            continue
        if path.suffix not in _SWEPT or path.stat().st_size > _SWEEP_LIMIT:
            continue
        try:
            text = path.read_text()
        except (OSError, UnicodeDecodeError):
            continue
        clean = scrubber.scrub(text)
        if clean != text:
            path.write_text(clean)
            changed.append(path)
    return changed


def scrub(text: str, scrubber: Scrubber | None = None) -> str:
    """The text with every secret replaced, whole tokens only (this environment's secrets, read now, and credential
    shapes and URL passwords wherever they appear)."""
    return (scrubber or env_scrubber()).scrub(text)


def redacted_argv(argv: list[str]) -> list[str]:
    """The command line with the secrets of every `key=value` argument replaced (by its name or its shape)."""
    out = []
    for arg in argv:
        key, eq, value = arg.partition("=")
        out.append(f"{key}={redact_value(key.lstrip('+~'), value)}" if eq else str(redact_value("argv", arg)))
    return out
