"""What the gate records per trial: the agent loop as verl runs it, with the proxy session and the policy's calls.

`ObservedLoop` is LiveRL's HarborAgentLoop unchanged except that it keeps the session and Harbor's result it
builds its AgentLoopOutput from (`_output` is where the loop hands both over). `Recorder` wraps the policy (the
server manager) and notes each generation's sampled tokens and the wall time it returned: the gate's own record,
independent of the session's bookkeeping.
"""

from __future__ import annotations

import inspect
import time
from dataclasses import dataclass, field
from typing import Any

from liverl.scaffold.agent_loop import HarborAgentLoop
from liverl.scaffold.session import Session


@dataclass
class Generated:
    request_id: str
    token_ids: list[int]
    log_probs: list[float] | None
    ended: float  # wall time (time.time()) the generation returned


class Recorder:
    """verl's server-manager interface (`generate(request_id, *, prompt_ids, sampling_params)`) around a policy."""

    def __init__(self, policy: Any):
        self.policy = policy
        self.calls: list[Generated] = []

    async def generate(self, request_id, *, prompt_ids, sampling_params, **kwargs):
        out = await self.policy.generate(request_id, prompt_ids=prompt_ids, sampling_params=sampling_params, **kwargs)
        self.calls.append(Generated(str(request_id), list(out.token_ids),
                                    list(out.log_probs) if out.log_probs else None, time.time()))
        return out


@dataclass
class Trial:
    task: str
    started: float  # wall time the sample started
    ended: float = 0.0  # wall time the loop returned (teardown included)
    output: Any = None  # verl's AgentLoopOutput
    session: Session | None = None  # the session of the last attempt (the one the output is built from)
    result: dict = field(default_factory=dict)  # Harbor's TrialResult (JSON)
    calls: list[Generated] = field(default_factory=list)  # the policy's generations for this trial
    error: str | None = None  # the loop raised (a LiveRL or verl bug): "Type: message"


class ObservedLoop(HarborAgentLoop):
    """HarborAgentLoop that keeps what `_output` is given (by parameter name, so a reordering cannot mislead it)."""

    observed: dict[str, Any]

    def _output(self, *args, **kwargs):
        bound = inspect.signature(super()._output).bind(*args, **kwargs).arguments
        session = bound.get("session")
        if not isinstance(session, Session):  # a renamed parameter: the one Session among the arguments
            session = next((a for a in bound.values() if isinstance(a, Session)), None)
        result = bound.get("result")
        self.observed = {"session": session, "result": result if isinstance(result, dict) else {}}
        return super()._output(*args, **kwargs)
