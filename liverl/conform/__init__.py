"""The harness conformance gate: `python -m liverl.conform scaffold=... conform.policy=double|engine ...`.

It runs K tasks through Harbor, the scaffold's real agent and LiveRL's proxy with a policy and a chat template,
and reports how much of what the policy sampled the run would train (docs/scaffold.md, "Conformance gate"):

- `settings`  conform.* (conf/conform/default.yaml) checked: exit 2 with `key: message (got: value)`
- `run`       the trials: LiveRL's HarborAgentLoop per task, as verl's worker runs it, with the policy
- `observe`   the loop's session and Harbor result per trial, and the policy's generations (wall times)
- `figures`   the figures (trained-turn and -token fractions, chains, rewrites, parse failures, waste) and verdict
- `engine`    conform.policy=engine: vLLM's AsyncLLM serving model.path (GPU host) and the trainer-side log-probs
              (transformers) for the engine-vs-trainer agreement
- `__main__`  the command: prints the figures, records them in the conformance ledger
              (liverl/guardrails/conform_ledger.py, read by the guardrail `harness-conformance`), last line JSON

The top of LiveRL's import graph (.importlinter): it drives liverl.scaffold, which nothing else imports.
"""
