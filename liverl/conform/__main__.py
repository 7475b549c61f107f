"""python -m liverl.conform [OVERRIDES...]: does the scaffold's harness train what the policy samples?

  python -m liverl.conform scaffold=claude_code conform.policy=double conform.chat_template=PATH conform.tasks=4
  python -m liverl.conform scaffold=ohsdk conform.policy=engine model.path=/ckpt/Qwen3.5 conform.task_dir=TASKS

The overrides are liverl.train's (scaffold=, model=, verl.*) plus conform.* (conf/conform/default.yaml). Prints the
figures per trial set, records them in the conformance ledger ($LIVERL_CONFORM_LEDGER), and ends with one JSON line
(scaffold, trials, turns, chains_per_trial, trained_turn_fraction, trained_token_fraction, parse_failures,
history_rewrites, waste_s, ...). Exit 0: passes the thresholds; 1: misses one; 2: bad configuration.
"""

from __future__ import annotations

import json
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from liverl.conform import capture
from liverl.conform.figures import summarise, verdict
from liverl.conform.run import Policy, run_trials
from liverl.conform.settings import conform_names, settings
from liverl.errors import CONFIG_ERROR_EXIT, ConfigError
from liverl.guardrails import conform_ledger
from liverl.recipe.compose import compose_liverl


def main(argv: Sequence[str]) -> int:
    if any(a in ("-h", "--help") for a in argv):
        print(__doc__)
        return 0
    workdir = Path(tempfile.mkdtemp(prefix="liverl-conform-"))
    try:
        cfg = compose_liverl([*argv, "+conform=default"], run_dir=workdir)
        s = settings(cfg)
        policy = Policy(cfg, s, workdir)
    except ConfigError as e:
        print(conform_names(e), file=sys.stderr)
        return CONFIG_ERROR_EXIT
    sha = conform_ledger.template_sha256(policy.template)
    print(f"liverl.conform: scaffold={s.scaffold} policy={s.policy} tasks={s.tasks} chat template "
          f"{policy.template_source} (sha256 {sha[:12]}); trials in {workdir / 'trials'}", flush=True)
    try:
        trials = run_trials(cfg, s, policy, workdir)
        figures = summarise(s.scaffold, trials, policy.tokenizer, s.parser)
        if policy.engine is not None:
            figures["logprob_agreement"] = policy.engine.agreement(trials)
    finally:
        if policy.engine is not None:
            policy.engine.shutdown()
    if s.capture is not None:
        captured = capture.first_request(trials)
        if captured is None:
            print(f"conform.capture: no trial's session received a request, nothing recorded in {s.capture}",
                  file=sys.stderr)
        else:
            capture.record(s.capture, s.scaffold, captured)
            print(f"captured {s.scaffold}'s first request ({len(captured['messages'])} messages, "
                  f"{len(captured['tools'])} tools) in {s.capture}", flush=True)
    missed = verdict(figures, s.thresholds)
    conform_ledger.record({"scaffold": s.scaffold, "chat_template_sha256": sha,
                           "chat_template": policy.template_source, "policy": s.policy, "passed": not missed,
                           "missed": missed, "figures": figures})
    for key, value in figures.items():
        print(f"  {key:24} {value}")
    print("PASS" if not missed else "FAIL: " + "; ".join(missed))
    print(f"recorded in {conform_ledger.ledger_path()}")
    print(json.dumps(dict(figures, passed=not missed, chat_template_sha256=sha), sort_keys=False), flush=True)
    return 0 if not missed else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
