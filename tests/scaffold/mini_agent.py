"""MiniAgent: a small real harness for the tests (Harbor BaseAgent, OpenAI chat completions, one `bash` tool).

Selected like any other harness by import path (HARBOR_AGENT_IMPORT_PATH / scaffold.harbor.agent_import_path).
It runs in .venv-harbor under Harbor: asks the model (the proxy, at base_url), runs each `bash` call in the task
environment, sends the output back as a tool message, and stops on a reply without tool calls. Kwarg
`compact_after` (int): after that many turns it rewrites its history to [system, user, summary], the way
agents compact long contexts, so the next prompt no longer extends the recorded tokens. Kwarg `linger_sec`
(float): seconds it keeps running after the model's final reply (sandbox time spent after the last sampled token).
"""

from __future__ import annotations

import asyncio
import json
import urllib.request

from harbor.agents.base import BaseAgent

TOOLS = [{"type": "function", "function": {"name": "bash", "description": "Run a shell command in the task",
                                           "parameters": {"type": "object",
                                                          "properties": {"command": {"type": "string"}}}}}]


class MiniAgent(BaseAgent):
    def __init__(self, *args, compact_after: int = 0, max_steps: int = 8, base_url: str | None = None,
                 model_api_format=None, model_api_key_name=None, linger_sec: float = 0.0, **kwargs):
        # Harbor refuses connection overrides for agents without a MODEL_CONNECTION spec; this one reads them itself
        super().__init__(*args, **kwargs)
        self._base_url = base_url
        self.compact_after, self.max_steps, self.linger_sec = int(compact_after), int(max_steps), float(linger_sec)

    @staticmethod
    def name() -> str:
        return "liverl-mini-agent"

    def version(self) -> str:
        return "1"

    async def setup(self, environment) -> None:
        return None

    def _ask(self, messages: list[dict]) -> dict:
        body = json.dumps({"model": "policy", "messages": messages, "tools": TOOLS, "max_tokens": 512}).encode()
        req = urllib.request.Request(f"{self._base_url}/chat/completions", data=body,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=3600) as resp:
            return json.loads(resp.read())["choices"][0]["message"]

    async def run(self, instruction: str, environment, context) -> None:
        messages = [{"role": "system", "content": "You are a coding agent. Use the tools."},
                    {"role": "user", "content": instruction}]
        for step in range(1, self.max_steps + 1):
            reply = await asyncio.to_thread(self._ask, messages)
            messages.append({"role": "assistant", "content": reply.get("content") or "",
                             **({"tool_calls": reply["tool_calls"]} if reply.get("tool_calls") else {})})
            if not reply.get("tool_calls"):
                await asyncio.sleep(self.linger_sec)
                return
            for call in reply["tool_calls"]:
                command = json.loads(call["function"]["arguments"]).get("command", "")
                result = await environment.exec(command=command)
                out = f"exit code {result.return_code}\n{result.stdout or ''}{result.stderr or ''}"
                messages.append({"role": "tool", "tool_call_id": call["id"], "content": out})
            if self.compact_after and step == self.compact_after:
                messages = [*messages[:2], {"role": "user", "content": f"Summary: {step} commands ran. Go on."}]
