"""Proxy overhead per turn, measured in one run, at 1 and 64 concurrent sessions (target: < 5 ms at 64 on 2 cores).

Each session is an agent conversation over real HTTP (aiohttp client -> LiveRL's proxy on 127.0.0.1): half speak
OpenAI chat completions, half Anthropic messages (streamed); each turn the policy answers with a tool call, the
"agent" appends the tool output and asks again. The policy is the tests' scripted double (real token ids of the
tests' trained tokenizer) with a fixed generation time. Printed per concurrency:
  proxy    the proxy's own time per turn (request in -> generate call out, and back), generation excluded
  client   the agent-observed round trip minus the generation time (adds HTTP and client parsing)
  generate the scripted generation time, for scale

Usage: python benchmarks/proxy_overhead.py [--turns N] [--generate-ms MS]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "scaffold"))

from policy_double import ScriptedPolicy, tool_call  # noqa: E402
from tokenizer_fixture import build_tokenizer  # noqa: E402

from liverl.scaffold.proxy import Proxy  # noqa: E402
from liverl.scaffold.session import Limits, Session  # noqa: E402

TOOLS_OAI = [{"type": "function", "function": {"name": "bash", "description": "run a command",
                                               "parameters": {"type": "object"}}}]
TOOLS_ANT = [{"name": "bash", "description": "run a command", "input_schema": {"type": "object"}}]


def script(prompt: str) -> str:
    return "Running it.\n" + tool_call("bash", command="ls -la && cat README.md")


async def openai_session(http, url: str, turns: int, rtt: list[float]) -> None:
    messages = [{"role": "system", "content": "You are a coding agent."}, {"role": "user", "content": "Fix it."}]
    for _ in range(turns):
        t = time.perf_counter()
        async with http.post(f"{url}/v1/chat/completions", json={"messages": messages, "tools": TOOLS_OAI}) as r:
            msg = (await r.json())["choices"][0]["message"]
        rtt.append(time.perf_counter() - t)
        messages += [msg, {"role": "tool", "tool_call_id": msg["tool_calls"][0]["id"], "content": "file1\n" * 20}]


async def anthropic_session(http, url: str, turns: int, rtt: list[float]) -> None:
    messages = [{"role": "user", "content": "Fix it."}]
    for _ in range(turns):
        t = time.perf_counter()
        body = {"system": "You are a coding agent.", "messages": messages, "tools": TOOLS_ANT, "stream": True}
        async with http.post(f"{url}/v1/messages", json=body) as r:
            await r.read()
        rtt.append(time.perf_counter() - t)
        use = {"type": "tool_use", "id": "toolu_1", "name": "bash", "input": {"command": "ls -la && cat README.md"}}
        messages += [{"role": "assistant", "content": [{"type": "text", "text": "Running it."}, use]},
                     {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1",
                                                   "content": "file1\n" * 20}]}]


async def measure(tokenizer, sessions: int, turns: int, gen_ms: float) -> dict[str, float]:
    proxy = Proxy()
    await proxy.start()
    policy = ScriptedPolicy(tokenizer, script, delay_sec=gen_ms / 1000)
    rtt: list[float] = []
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
        jobs = []
        for i in range(sessions):
            s = proxy.open(Session(tokenizer=tokenizer, generate=policy.generate, sampling_params={},
                                   limits=Limits(10**6, 10**6, 10**6), parser="qwen3_coder"))
            run = openai_session if i % 2 == 0 else anthropic_session
            jobs.append(run(http, proxy.base_url(s), turns, rtt))
        await asyncio.gather(*jobs)
    await proxy.close()
    gen = gen_ms / 1000
    return {"proxy": statistics.mean(proxy.overhead) * 1e3, "proxy_p95": sorted(proxy.overhead)[int(0.95 * len(
        proxy.overhead))] * 1e3, "client": (statistics.mean(rtt) - gen) * 1e3, "generate": gen_ms}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--turns", type=int, default=20)
    parser.add_argument("--generate-ms", type=float, default=50.0)
    args = parser.parse_args()
    tokenizer = build_tokenizer(Path(tempfile.mkdtemp(prefix="liverl-bench-tok-")))
    print(f"proxy overhead per turn ({args.turns} turns per session, scripted generation {args.generate_ms} ms)")
    for sessions in (1, 64):
        m = asyncio.run(measure(tokenizer, sessions, args.turns, args.generate_ms))
        verdict = "ok" if sessions != 64 or m["proxy"] < 5.0 else "OVER TARGET"
        print(f"  {sessions:3d} sessions: proxy {m['proxy']:6.2f} ms (p95 {m['proxy_p95']:6.2f})  client-observed "
              f"{m['client']:6.2f} ms  generate {m['generate']:.0f} ms  ratio proxy/generate "
              f"{m['proxy'] / m['generate']:.3f}  {verdict if sessions == 64 else ''}")


if __name__ == "__main__":
    main()
