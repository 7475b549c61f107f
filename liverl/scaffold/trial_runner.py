"""Run one Harbor trial: a TrialConfig as JSON on stdin -> the TrialResult as JSON on stdout's last line.

Run by `.venv-harbor`'s Python 3.12 by file path (never as `-m liverl...`, so nothing of LiveRL's 3.11 side is
imported): `.venv-harbor/bin/python liverl/scaffold/trial_runner.py < spec.json`. It imports only Harbor and the
standard library. Harbor records trial failures in the result (harbor/trial/trial.py:601) rather than raising;
a failure before the trial exists (a bad config, an import path that does not load) is reported as a result
with `exception_info` and no verifier result, so the caller always gets one JSON line.

SIGTERM (the agent loop stops the runner's process group at its deadline or when cancelled: trial.py) cancels
the trial, so Harbor's `Trial.run` records the cancellation and its `finally` stops the environment
(harbor/trial/trial.py:608-630,660-664) before the runner exits.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import traceback

MARKER = "LIVERL_TRIAL_RESULT "


async def _run(spec: dict) -> dict:
    from harbor.models.trial.config import TrialConfig
    from harbor.trial.trial import Trial

    config = TrialConfig.model_validate(spec)
    trial = await Trial.create(config)
    result = await trial.run()
    return json.loads(result.model_dump_json())


async def _cancellable(spec: dict) -> dict:
    task = asyncio.current_task()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    return await _run(spec)


def main() -> int:
    spec = json.loads(sys.stdin.read())
    try:
        result = asyncio.run(_cancellable(spec))
    except (Exception, asyncio.CancelledError) as e:
        result = {"exception_info": {"exception_type": type(e).__name__, "exception_message": str(e),
                                     "exception_traceback": traceback.format_exc()}, "verifier_result": None}
    sys.stdout.write("\n" + MARKER + json.dumps(result) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
