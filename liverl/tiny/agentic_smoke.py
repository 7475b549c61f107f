"""`python -m liverl.tiny.agentic_smoke --scaffold claude_code|ohsdk [--dry-run] [override ...]`: the agentic GPU
smoke (`make smoke SCAFFOLD=...`): the tiny model warm-started to call the shell tool, trained on the toy Harbor
tasks through a real harness, in the local environment (no docker on the GPU host).

Cached under --dir (default runs/tiny_agentic): the tiny model with the agentic tokenizer and chat template
(liverl.tiny.generate --agentic), the tasks and datasets (liverl.tiny.agentic), the warm-started model
(liverl.tiny.warm_start; skipped with --dry-run, which plans with the un-warmed model). Then `python -m liverl.train
experiment=smoke_tiny scaffold=S topology=gpu1 batch=smoke launcher=local` for --steps steps, and a relaunch into the
same run directory for --resume-steps more (verl resumes from the checkpoint), as liverl.tiny.smoke does; with
--dry-run one launcher=dryrun plan instead.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from liverl.tiny import agentic
from liverl.tiny.agentic import LOCAL_ENV
from liverl.tiny.generate import generate
from liverl.tiny.smoke import finish, run_then_resume
from liverl.tiny.transcripts import this_host

ROOT = Path(__file__).resolve().parents[2]
# the pinned claude CLI (make install-scaffold) and the OpenHands SDK runtime, as conf/conform/default.yaml finds them:
AGENT_BIN = ROOT / ".npm-claude" / "node_modules" / ".bin"
AGENT_RUNTIME = ROOT / ".venv-harbor"
RUNTIME_MOUNT = "/opt/liverl-agent-runtime/openhands-sdk"  # conf/scaffold/ohsdk.yaml agent_kwargs.runtime_root
SCAFFOLDS = ("claude_code", "ohsdk")
# a harness's own system prompt and tool list come first in every request (claude-code's and the SDK's run to
# thousands of words): a long prompt window, a model whose positions cover it (vLLM refuses a max_model_len above
# max_position_embeddings). Measured on CPU with this tokenizer (liverl.conform conform.capture=, the pinned CLIs):
# claude-code's first request 29.6k tokens, the OpenHands SDK's 19.7k.
WINDOW = {"prompt": 36864, "response": 2048}
MAX_POSITIONS = 40960
# how each harness's warm start trains (liverl.tiny.warm_start forward=...), as its served policy acted best in real
# trials on the GPU host (docs/gpu-smoke.md): the SDK's under autocast (97-100% of trials with two or more model
# calls; a bf16-trained one 44-62%), claude-code's in bf16 (38-56%, on this host's requests; under autocast 6-19%,
# on the capture's kernel name). The stand-in prompt (no captured harness) trains under autocast.
FORWARD = {"claude_code": "bf16", "ohsdk": "autocast"}
# the capture's vLLM gets a fixed KV cache (no start-up profiling): 2 GiB hold ~2M tokens of the tiny model (1 KiB
# a token), 53 full 38,912-token windows
CAPTURE_KV = 2 << 30
# the same capture where no GPU serves a model: the tests' scripted policy drives the harness (a LiveRL checkout)
CAPTURE_CPU = ("python", "-m", "liverl.conform", "conform.policy=double", "conform.tasks=1")
# a cached warm start is done again when these differ from this host's (the request names them: HOST_FIELDS)
HOST_KEYS = ("os_release", "date")


def capture_command(scaffold: str, model: Path, task_dir: Path, out: Path) -> list[str]:
    """The harness's first request captured from one real trial with `model` served by vLLM (the gate's engine
    policy, liverl/conform/capture.py): the prompt the warm start trains on, as this host's trials send it."""
    return [sys.executable, "-m", "liverl.conform", f"scaffold={scaffold}", "conform.policy=engine",
            "experiment=smoke_tiny", f"model.path={model}", f"conform.task_dir={task_dir}", "conform.tasks=1",
            "conform.concurrency=1", f"window.prompt={WINDOW['prompt']}", f"window.response={WINDOW['response']}",
            f"conform.engine.kv_cache_memory_bytes={CAPTURE_KV}", f"conform.capture={out}"]


def capture(base: Path, scaffold: str, model: Path, out: Path) -> dict | None:
    """Run capture_command (log: DIR/capture_SCAFFOLD.log); the harnesses' captures after it, or None."""
    log = base / f"capture_{scaffold}.log"
    print(f"agentic smoke: capturing {scaffold}'s first request with the served model (log: {log})", flush=True)
    with open(log, "w") as f:
        code = subprocess.call(capture_command(scaffold, model, base / "tasks", out), stdout=f,
                               stderr=subprocess.STDOUT, cwd=ROOT)
    held = json.loads(out.read_text()) if out.is_file() else {}
    if scaffold not in held:
        print(f"agentic smoke: the capture of {scaffold}'s first request failed (exit {code}; {log})",
              file=sys.stderr)
        return None
    return held


def prepare(base: Path, tasks: int, warm_steps: int, dry_run: bool, scaffold: str) -> dict[str, str]:
    """Build what is missing (cached): tiny model, tasks, harness prompt, warm start. Returns {model, train, val}.
    The warm start trains on the scaffold's real first request (DIR/harness.json, captured once with the served
    untrained model: `capture`) in DIR/warm_SCAFFOLD; where no capture can be had, on a short stand-in (DIR/warm)."""
    tiny = base / "tiny"
    if not (tiny / "tiny.json").is_file():
        generate(tiny, vocab=1024, train=2, val=1, agentic=True, max_positions=MAX_POSITIONS)
    if not (base / "agentic.json").is_file():
        agentic.generate(base, tasks)
    paths = json.loads((base / "agentic.json").read_text())
    model = tiny / "model"
    if not dry_run:
        captured = base / "harness.json"
        harness = json.loads(captured.read_text()) if captured.is_file() else None
        if scaffold not in (harness or {}):
            harness = capture(base, scaffold, model, captured)
        if harness is None:  # no capture to be had: the stand-in prompt (warm, autocast)
            print(f"agentic smoke: no captured first request of {scaffold} in {captured}: the warm start trains on a "
                  f"short stand-in prompt, and the policy meets {scaffold}'s own (~20-30k tokens) only in RL. Capture "
                  f"it on a CPU machine with the harness installed: {' '.join(CAPTURE_CPU)} scaffold={scaffold} "
                  f"conform.capture={captured} (docs/gpu-smoke.md)", file=sys.stderr)
        warm = base / (f"warm_{scaffold}" if harness else "warm")
        forward = FORWARD[scaffold] if harness else "autocast"
        done = warm / "warm_start.json"  # one of another length, forward or host is done again
        report = json.loads(done.read_text()) if done.is_file() else {}
        host = this_host()
        if (report.get("steps"), report.get("forward", "autocast")) != (warm_steps, forward) or \
                any((report.get("host") or {}).get(k) != host[k] for k in HOST_KEYS):
            from liverl.tiny.warm_start import warm_start

            warm_start(model, warm, steps=warm_steps, harness=harness, scaffolds=(scaffold,) if harness else None,
                       eval_tasks=32, forward=forward)
        model = warm
    return {"model": str(model), "train": paths["train"], "val": paths["val"]}


def harbor_overrides(scaffold: str) -> list[str]:
    """The local environment instead of docker, and the harness's binaries where the trial reaches them."""
    out = ["scaffold.harbor.environment_type=null", f"scaffold.harbor.environment_import_path={LOCAL_ENV}"]
    if scaffold == "claude_code":  # claude on the trial's PATH (liverl/paths.py harbor_env)
        out.append(f"+scaffold.harbor.agent_path_prepend={AGENT_BIN}")
    else:  # the SDK runtime linked at its mount path (local_env.py `links`, harbor_agents.MountedOpenHandsSDK)
        out.append(f"+scaffold.harbor.environment_kwargs.links={{{RUNTIME_MOUNT}:{AGENT_RUNTIME}}}")
    return out


def command(scaffold: str, files: dict[str, str], run_dir: Path, steps: int, launcher: str,
            overrides: list[str]) -> list[str]:
    return [sys.executable, "-m", "liverl.train", "experiment=smoke_tiny", f"scaffold={scaffold}", "topology=gpu1",
            "batch=smoke", f"launcher={launcher}", f"model.path={files['model']}", f"train_files={files['train']}",
            f"val_files={files['val']}", f"total_training_steps={steps}", f"hydra.run.dir={run_dir}",
            f"window.prompt={WINDOW['prompt']}", f"window.response={WINDOW['response']}",
            *harbor_overrides(scaffold), *overrides]


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m liverl.tiny.agentic_smoke", description=__doc__.splitlines()[0])
    p.add_argument("--scaffold", required=True)
    p.add_argument("--dry-run", action="store_true", help="plan only (launcher=dryrun); no warm start")
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--resume-steps", type=int, default=1)
    p.add_argument("--tasks", type=int, default=64)
    # 300 steps on the harnesses' prompts (GPU host, 2026-12-06): loss 6.7 -> 0.17-0.21, tool calls in 47% (claude-code)
    # and 97% (OpenHands SDK) of first turns, none solving its task; the shared-prefix pass makes steps 3-24x cheaper
    p.add_argument("--warm-steps", type=int, default=1000)
    p.add_argument("--dir", type=Path, default=Path(os.environ.get("LIVERL_TINY_AGENTIC_DIR", "runs/tiny_agentic")))
    p.add_argument("--run-dir", type=Path, default=None, help="default: DIR/smoke_agentic_SCAFFOLD")
    p.add_argument("overrides", nargs="*", help="more liverl.train overrides")
    a = p.parse_args(argv)
    if a.scaffold not in SCAFFOLDS:
        print(f"scaffold: the agentic smoke runs a Harbor harness (got: {a.scaffold}); use one of "
              f"{', '.join(SCAFFOLDS)}", file=sys.stderr)
        return 2
    files = prepare(a.dir.resolve(), a.tasks, a.warm_steps, a.dry_run, a.scaffold)
    run_dir = (a.run_dir or a.dir / f"smoke_agentic_{a.scaffold}").resolve()
    if a.dry_run:
        return subprocess.call(command(a.scaffold, files, run_dir, a.steps, "dryrun", a.overrides))
    code, result = run_then_resume(lambda steps: command(a.scaffold, files, run_dir, steps, "local", a.overrides),
                                   a.steps, a.resume_steps, run_dir)
    # what the policy brought to RL: its first turns on fresh tasks after the warm start (tool calls, solved)
    done = Path(files["model"]) / "warm_start.json"
    result["warm_start"] = json.loads(done.read_text()).get("first_turn") if done.is_file() else None
    return finish("LiveRL agentic smoke", code, result, a.resume_steps)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
