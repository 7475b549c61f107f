"""One secret policy for every file LiveRL writes: a corpus of secrets is planted in the environment and in the
overrides, every path that writes files is driven, then every file under the run directories is scanned.

Paths: dryrun, a configuration error (a secret given as an override), a refused launch (an unreachable cluster),
a Slurm render (launcher=slurm launcher.submit=false) and, with a real Ray head, a local launch and a Ray job submit,
each running the recipe through verl's run_ppo with the task-runner double (tests/doubles.py).
"""

from __future__ import annotations

import json
import random
import string
from pathlib import Path

import pytest
from conftest import run_cli, run_dirs, tiny_dataset
from doubles import DOUBLE
from raytest import TESTS, ray_head, ray_job_head
from task_runner_double import TASK_RUNNER_DOUBLE_ENV

from liverl.paths import LIVERL_ROOT
from liverl.secrets import REDACTED, Scrubber, is_secret_name, provenance_environ, redact_value

_RNG = random.Random(11)


def _rand(n: int, alphabet: str = string.ascii_letters + string.digits) -> str:
    return "".join(_RNG.choice(alphabet) for _ in range(n))


PASSWORD = "pgPw-" + _rand(14)
DB_PASSWORD = "Db" + _rand(16)
# name -> value: key-shaped values under innocuous names, secret names, a URL credential, cloud/HF/W&B/Slack/GitHub
CORPUS = {
    "MY_CONFIG": "sk-ant-api03-" + _rand(48),
    "SOME_SETTING": "ghp_" + _rand(36),
    "PGPASSWORD": PASSWORD,
    "GITHUB_PAT": "github_pat_" + _rand(22) + "_" + _rand(59),
    "NPM_AUTHTOKEN": "npm_" + _rand(36),
    "DATABASE_URL": f"postgres://liverl:{DB_PASSWORD}@db.internal:5432/runs",
    "AWS_ACCESS_KEY_ID": "AKIA" + _rand(16, string.ascii_uppercase + string.digits),
    "AWS_SECRET_ACCESS_KEY": _rand(40, string.ascii_letters + string.digits + "/+"),
    "HF_TOKEN": "hf_" + _rand(34),
    "HUGGING_FACE_HUB_TOKEN": "hf_" + _rand(34),
    "WANDB_API_KEY": _rand(40, "0123456789abcdef"),
    "SLACK_BOT_TOKEN": f"xoxb-{_rand(11, string.digits)}-{_rand(12, string.digits)}-{_rand(24).lower()}",
    "OPENAI_API_KEY": "sk-proj-" + _rand(48),
    "ANTHROPIC_API_KEY": "sk-ant-api03-" + _rand(48),
    "GOOGLE_API_KEY": "AIza" + _rand(35),
}
# what must never appear: every value, and the password inside the URL
PLANTED = [v for k, v in CORPUS.items() if k != "DATABASE_URL"] + [DB_PASSWORD]
OVERRIDE_SECRET = "sk-" + _rand(40)
LOOP = "scaffold.agent_loop.target=verl.experimental.agent_loop.single_turn_agent_loop.SingleTurnAgentLoop"


def scan(root: Path) -> list[str]:
    """Every (file, planted value) pair found under root."""
    found = []
    for path in root.rglob("*"):
        if path.is_file():
            text = path.read_bytes().decode("utf-8", "replace")
            found += [f"{path.relative_to(root)}: {v[:12]}..." for v in [*PLANTED, OVERRIDE_SECRET] if v in text]
    return found


def train(root: Path, name: str, *args: str, env: dict[str, str] | None = None) -> tuple[int, Path, str]:
    run_dir = root / name
    env = {**CORPUS, "RAY_AUTH_MODE": "disabled", **(env or {})}
    proc = run_cli([*args, f"hydra.run.dir={run_dir}"], cwd=root, env=env)
    assert not set(PLANTED) & set(proc.stdout.split() + proc.stderr.split()), "a secret was printed"
    return proc.returncode, run_dir, proc.stderr


def test_every_file_of_every_path_is_free_of_the_planted_secrets(tmp_path: Path) -> None:
    data = tiny_dataset(tmp_path)
    code, dry, err = train(tmp_path, "dryrun", "topology=2node", *data, "launcher=dryrun")
    assert code == 0, err
    override = f"verl.actor_rollout_ref.rollout.engine_kwargs.vllm.api-key={OVERRIDE_SECRET}"
    code, bad, err = train(tmp_path, "config_error", override, "launcher=dryrun")
    assert code == 2 and "vllm.api-key: is a secret" in err and "secret-in-config" in err, err
    code, refused, err = train(tmp_path, "refused", *data, "model=qwen25_0p5b", "launcher=ray_job",
                               "launcher.address=http://127.0.0.1:9")
    assert code == 2 and json.loads((refused / "run.json").read_text())["status"] == "refused", err
    code, slurm, err = train(tmp_path, "slurm", *data, "topology=3node", "launcher=slurm", "launcher.submit=false")
    assert code == 0 and (slurm / "slurm.sbatch").is_file(), err
    assert (bad / ".hydra" / "overrides.yaml").is_file() and (dry / "provenance" / "environ.json").is_file()
    assert scan(tmp_path) == []
    environ = json.loads((dry / "provenance" / "environ.json").read_text())
    # provenance: the run's variables with their values, the rest by name only
    assert environ["variables"]["RAY_AUTH_MODE"] == "disabled"
    assert "PGPASSWORD" in environ["other_names"] and "PGPASSWORD" not in environ["variables"]


def test_the_policy_decides_by_name_and_by_value() -> None:
    for name, value in CORPUS.items():
        redacted = redact_value(name, value)
        assert redacted != value and REDACTED in redacted, name
    assert redact_value("DATABASE_URL", CORPUS["DATABASE_URL"]) == "postgres://liverl:<redacted>@db.internal:5432/runs"
    for name in ("RAY_AUTH_MODE", "TOKENIZERS_PARALLELISM", "data.prompt_key", "ppo_max_token_len_per_gpu", "PWD"):
        assert not is_secret_name(name), name
    for name in ("PGPASSWORD", "GITHUB_PAT", "NPM_AUTHTOKEN", "engine_kwargs.vllm.api-key", "AWS_SECRET_ACCESS_KEY"):
        assert is_secret_name(name), name
    assert redact_value("RAY_AUTH_MODE", "disabled") == "disabled"
    # high entropy counts only where the name looks like a secret's: a commit SHA stays
    assert redact_value("GIT_COMMIT", "904395c1f0e2d3c4b5a6978877665544332211aa").startswith("904395")
    assert redact_value("X_AUTH", _rand(32)) == REDACTED


def test_a_redacted_value_never_blanks_an_unrelated_word() -> None:
    scrubber = Scrubber(["abled-x", "hunter22", "disabled"])
    text = "RAY_AUTH_MODE=disabled; mode enabled; pw hunter22; hunter222 stays; disabled-abled-x"
    # 'disabled' is too plain to hunt in free text; a secret inside a longer token is left alone
    assert scrubber.scrub(text) == "RAY_AUTH_MODE=disabled; mode enabled; pw <redacted>; hunter222 stays; " \
        "disabled-abled-x"
    assert provenance_environ({"RAY_AUTH_MODE": "disabled", "PGPASSWORD": PASSWORD})["variables"] == {
        "RAY_AUTH_MODE": "disabled"
    }


@pytest.mark.ray
@pytest.mark.timeout(300)
def test_a_submitted_ray_job_writes_no_planted_secret(tmp_path: Path) -> None:
    env = {TASK_RUNNER_DOUBLE_ENV: DOUBLE, "PYTHONPATH": str(TESTS), **CORPUS}
    with ray_job_head(num_gpus=8, env=env) as head:
        code, run_dir, err = train(tmp_path, "ray_job", "topology=1node", "model=qwen25_0p5b", LOOP,
                                   *tiny_dataset(tmp_path), "launcher=ray_job", f"launcher.address={head}")
    assert code == 0, err
    assert run_dirs(tmp_path) and json.loads((run_dir / "run.json").read_text())["status"] == "succeeded"
    assert scan(tmp_path) == []


@pytest.mark.ray
@pytest.mark.timeout(300)
def test_a_local_launch_writes_no_planted_secret(tmp_path: Path) -> None:
    # the double's Ray actor runs on the head's workers, the driver is liverl.train itself: both find tests/
    pythonpath = f"{TESTS}:{LIVERL_ROOT}"
    with ray_head(num_gpus=8, env={"PYTHONPATH": pythonpath}) as address:
        code, run_dir, err = train(tmp_path, "local", "topology=1node", "model=qwen25_0p5b", LOOP,
                                   *tiny_dataset(tmp_path), "launcher=local", f"launcher.address={address}",
                                   env={TASK_RUNNER_DOUBLE_ENV: DOUBLE, "PYTHONPATH": pythonpath})
    assert code == 0, err
    run = json.loads((run_dir / "run.json").read_text())
    assert [h["status"] for h in run["history"]] == ["planned", "running", "succeeded"]
    assert json.loads((run_dir / "metrics.jsonl").read_text())["step"] == 1  # the double's step, logged by verl
    assert scan(tmp_path) == []
