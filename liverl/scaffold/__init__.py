"""LiveRL's Harbor scaffold: the verl agent loop, its token-faithful proxy and the trajectory filter.

Layout (each module imports only what it needs; nothing here imports Harbor, which lives in the
separate Python 3.12 environment `.venv-harbor` and is driven through `trial_runner.py`):

- `agent_loop`     HarborAgentLoop: one Harbor trial per sample, returns verl's AgentLoopOutput
- `proxy`          in-process HTTP proxy (Anthropic messages, OpenAI chat completions) -> server_manager.generate
- `session`        one trial's token record: sampled tokens (mask 1), observations (mask 0), rewrites
- `render`         the chat template as verl's loop uses it: a whole first prompt, then only appended messages
- `chat`           message normalisation between the two APIs and the policy's chat template
- `toolcalls`      tool-call parsers (`qwen3_coder` XML, `hermes` JSON)
- `termination`    Harbor's TrialResult -> termination reason (verl's names: liverl/guardrails/verl_keys.py)
- `traj_filter`    the trajectory filter's v1 replay buffer (sync: its metrics with verl's)
- `filter_algos`   what verl imports in every process for the filter (estimator, NaN-safe loss, fully-async metrics)
- `loop_metrics`   per-trial figures (extra_fields.scaffold) and their per-step `scaffold/*` aggregates
- `reach`          where the proxy binds and the address the agent (inside its sandbox) is given
- `trial_runner`   run by .venv-harbor's Python: JSON spec on stdin -> Harbor Trial -> TrialResult JSON
- `harbor_agents`  Harbor agent classes for the scaffolds (import Harbor; only in .venv-harbor)
- `local_env`      a Harbor environment on this host, no isolation (trusted tasks; import Harbor; .venv-harbor)

The top layer of LiveRL's import graph: nothing imports this package (verl loads it by config strings). What the plan
decides about it lives below: which filter runs (liverl/recipe/filter_plan.py), the plan-time import check
(`scaffold-imports`, liverl/guardrails/rules/scaffold_imports.py), Harbor's interpreter (liverl/paths.py).
"""
