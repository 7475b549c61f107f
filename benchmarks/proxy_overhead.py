"""What an agent waits for per turn beyond generation, through LiveRL's proxy (target at 64 sessions on 2 cores:
p95 overhead <= 5 ms per turn, no event-loop stall over 10 ms).

The proxy runs as it does in a verl agent-loop worker: its own process and event loop (got with get_proxy, as the
agent loop gets it), sessions opened there, the policy behind verl's server-manager interface. The agents are HTTP
clients in another process (as agents in sandboxes are): each session speaks OpenAI chat completions or Anthropic
messages, both streamed, and each turn sends the whole history (the policy answers with a tool call; the agent
runs it and asks again).

  client-observed  from the request's bytes being sent to the last byte of the streamed reply, at the client
                   (the agent's own JSON encoding and reply parsing are outside: they are not the proxy's)
  overhead         client-observed minus that turn's generation (the policy sleeps a planned time, as an engine
                   would take, and reports how long it really slept), so parsing, conversion, rendering,
                   tokenising, the reply, the stream and every event-loop wait count; mean and p95 per wire format,
                   the p95 of the turns after each session's first ("later") and of the first requests ("open":
                   the whole history is rendered and tokenised)
  stall            the longest the proxy's event loop was held (a 1 ms ticker on that loop: lateness beyond 1 ms)
  cpu              the proxy process's CPU time per turn, all threads (one worker's proxy serves at most ~1/cpu
                   turns a second)

Cadences, each at 1 and 64 sessions (seeded: every run replays the same plan):
  steady  what a run sees: agents start within the first second (environments start up at different times),
          each generation takes --generate-ms +-50% (default 500 ms: a 100-token tool call at 200 tokens/s, faster
          than one sequence of a full vLLM batch decodes) and each tool call 0..--tool-ms. The target is judged here.
  burst   a stress case: every session starts at once, every generation takes exactly --generate-ms and no tool
          runs, so the 64 requests of a turn reach the proxy in the same millisecond and queue on its one event
          loop: the last waits for the other 63 (about 63 x cpu). Printed, not judged.

Histories: short (a few hundred tokens); claude-code's shape (~30k tokens from the first request on: a system prompt
and tool definitions every session shares, then the session's own task; claude-code's own first request is ~9.5k
tokens with this vocabulary, 98% of it its system message and tools); and the same with a system message that
differs per group of 8 sessions and was never seen before ("8 cold": each group's first opening tokenises its whole
~30k tokens, ~70 ms with this tokenizer). Each tool call prints 20 lines.
(A turn that appends a long tool output also pays its tokenisation, ~0.3 us a character with this tokenizer, ~2 ms
for a 6 KB file read, as verl's own tool loop does.) The tokenizer has a Qwen-size vocabulary (~151k byte-level BPE
tokens, trained here on this venv's Python sources: no hub download; cached under --tokenizer-dir) with the tests'
Qwen-style chat template. The policy's reply is fixed (its cost is not the proxy's). Figures from one run; not a
unit test.

Usage: python benchmarks/proxy_overhead.py [--turns N] [--long-turns N] [--generate-ms MS] [--tool-ms MS]
                                           [--tokenizer-dir DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import multiprocessing as mp
import os
import random
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "scaffold")]
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from policy_double import tool_call  # noqa: E402
from tokenizer_fixture import ADDED, CHAT_TEMPLATE, SPECIAL  # noqa: E402

VOCAB = 151_000  # Qwen2.5/Qwen3: 151,643 regular tokens
COMMAND = "ls -la && cat README.md"
REPLY = "Running it.\n" + tool_call("bash", command=COMMAND)  # what the policy samples each turn
TOOL_OUT = "file1\n" * 20
TOOLS_OAI = [{"type": "function", "function": {"name": "bash", "description": "run a command",
                                               "parameters": {"type": "object"}}}]
TOOLS_ANT = [{"name": "bash", "description": "run a command", "input_schema": {"type": "object"}}]
SYSTEM = "You are a coding agent. Use the tools to inspect and change the repository."


# ---------------------------------------------------------------- the tokenizer
def qwen_size_tokenizer(directory: Path):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    if not (directory / "tokenizer.json").exists():
        print(f"training a {VOCAB}-token byte-level BPE on this venv's sources (about a minute, once) ...", flush=True)
        sources = sorted(Path(sys.prefix).glob("lib/python3*/site-packages/**/*.py"))

        def corpus(limit: int = 40_000_000):
            size = 0
            for path in sources:
                text = path.read_text(errors="replace")
                size += len(text)
                yield text
                if size > limit:
                    return

        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        tok.train_from_iterator(corpus(), trainers.BpeTrainer(
            vocab_size=VOCAB, special_tokens=SPECIAL + ADDED, show_progress=False,
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
        fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                       additional_special_tokens=ADDED)
        fast.chat_template = CHAT_TEMPLATE
        fast.save_pretrained(directory)
    return PreTrainedTokenizerFast.from_pretrained(directory)


# ---------------------------------------------------------------- the proxy's process
def proxy_process(conn, tok_dir: str) -> None:
    asyncio.run(_serve(conn, tok_dir))


async def _serve(conn, tok_dir: str) -> None:
    from verl.workers.rollout.replica import TokenOutput

    from liverl.scaffold.proxy import get_proxy
    from liverl.scaffold.session import Limits, Session

    tokenizer = qwen_size_tokenizer(Path(tok_dir))
    reply = [*tokenizer.encode(REPLY, add_special_tokens=False), tokenizer.eos_token_id]
    plan: dict[str, list[float]] = {}  # session id -> its generations' planned seconds, in order
    took: dict[str, list[float]] = {}  # session id -> how long each really took (a sleep overshoots by ~0.5 ms)

    async def generate(request_id, *, prompt_ids, sampling_params, **kwargs):
        t = time.perf_counter()
        await asyncio.sleep(plan[request_id].pop(0))
        took[request_id].append(time.perf_counter() - t)
        return TokenOutput(token_ids=reply, log_probs=[-0.1] * len(reply), stop_reason="completed", extra_fields={})

    proxy = await get_proxy()  # as the agent loop gets it (the first one of a process freezes the heap before it)
    stall = {"max": 0.0}

    async def ticker() -> None:
        while True:
            t = time.perf_counter()
            await asyncio.sleep(0.001)
            stall["max"] = max(stall["max"], time.perf_counter() - t - 0.001)

    tick = asyncio.create_task(ticker())
    loop = asyncio.get_running_loop()
    opened: list = []
    cpu = 0.0
    while True:
        cmd, arg = await loop.run_in_executor(None, conn.recv)
        if cmd == "open":  # arg: per session, its generations' seconds
            for old in opened:
                proxy.close_session(old)
            opened = [proxy.open(Session(tokenizer=tokenizer, generate=generate, sampling_params={},
                                         limits=Limits(10**7, 10**7, 10**6), parser="qwen3_coder"))
                      for _ in arg]
            plan = {s.id: list(gens) for s, gens in zip(opened, arg, strict=True)}
            took = {s.id: [] for s in opened}
            await asyncio.sleep(0.01)  # the ticker's lateness over opening 64 sessions at once is not a turn's
            stall["max"], cpu = 0.0, time.process_time()
            conn.send([proxy.base_url(s) for s in opened])
        elif cmd == "stall":  # the CPU seconds spent, the most chains a session opened, each generation's seconds
            conn.send((stall["max"], time.process_time() - cpu, max(len(s.chains) for s in opened),
                       [took[s.id] for s in opened]))
        else:
            tick.cancel()
            await proxy.close()
            conn.send("bye")
            return


# ---------------------------------------------------------------- the agents
def system_prompt(tokenizer, target_tokens: int) -> str:
    """A system prompt (the same for every session) that takes the first request to about target tokens, tools
    and task included: the shape of claude-code's first request (nearly all of it the shared system message)."""
    from liverl.scaffold import chat

    text = SYSTEM
    for path in [*sorted((ROOT / "liverl").rglob("*.py")),
                 *sorted(Path(sys.prefix).glob("lib/python3*/site-packages/aiohttp/*.py"))]:
        body = {"messages": openai_history(text, 0, []), "tools": TOOLS_OAI}
        rendered = tokenizer.apply_chat_template(chat.openai_messages(body), tools=TOOLS_OAI,
                                                 add_generation_prompt=True, tokenize=False)
        if target_tokens <= 0 or len(tokenizer.encode(rendered, add_special_tokens=False)) >= target_tokens:
            break
        text += f"\n\n# Reference: {path.name}\n" + path.read_text()[:8_000]
    return text


def tool_output(session: int, turn: int) -> str:
    """What a tool call prints: 20 short lines, different for each session and turn."""
    return f"[session {session} turn {turn}]\n" + TOOL_OUT


def task(session: int) -> str:
    return f"Fix the failing test (task {session}): tests/test_{session}.py fails with an import error."


def openai_history(system: str, session: int, outputs: list[str]) -> list[dict]:
    out = [{"role": "system", "content": system}, {"role": "user", "content": task(session)}]
    for i, output in enumerate(outputs):
        call = {"id": f"call_{i}", "type": "function", "function": {"name": "bash",
                                                                    "arguments": json.dumps({"command": COMMAND})}}
        out += [{"role": "assistant", "content": "Running it.", "tool_calls": [call]},
                {"role": "tool", "tool_call_id": f"call_{i}", "content": output}]
    return out


def sse_events(raw: bytes) -> list[dict]:
    return [json.loads(line[6:]) for line in raw.decode().splitlines()
            if line.startswith("data: ") and line != "data: [DONE]"]


class Agent:
    """One session's plan (seeded by its index): when it starts, each generation's and tool call's seconds."""

    def __init__(self, index: int, fmt: str, system: str, turns: int, cadence: str, gen_ms: float,
                 tool_ms: float):
        rng = random.Random(f"proxy-overhead:{cadence}:{index}")
        steady = cadence == "steady"
        self.index, self.fmt, self.system = index, fmt, system
        self.start = rng.uniform(0, 1.0) if steady else 0.0
        self.gens = [gen_ms / 1e3 * (rng.uniform(0.5, 1.5) if steady else 1.0) for _ in range(turns)]
        self.tools = [rng.uniform(0, tool_ms / 1e3) if steady else 0.0 for _ in range(turns)]
        self.out: list[float] = []  # client-observed seconds per turn; then (measure) minus its generation


async def timed_post(http, url: str, body: dict) -> tuple[float, bytes]:
    import orjson

    data = orjson.dumps(body)  # the agent's own encoding: before the clock starts
    t = time.perf_counter()
    async with http.post(url, data=data, headers={"Content-Type": "application/json"}) as r:
        raw = await r.read()
    return time.perf_counter() - t, raw


async def openai_agent(http, url: str, a: Agent) -> None:
    messages = openai_history(a.system, a.index, [])
    for k in range(len(a.gens)):
        await asyncio.sleep(a.tools[k] if k else a.start)
        seconds, raw = await timed_post(http, f"{url}/v1/chat/completions",
                                        {"messages": messages, "tools": TOOLS_OAI, "stream": True})
        a.out.append(seconds)
        delta = sse_events(raw)[0]["choices"][0]["delta"]
        call = {key: delta["tool_calls"][0][key] for key in ("id", "type", "function")}
        messages += [{"role": "assistant", "content": delta.get("content"), "tool_calls": [call]},
                     {"role": "tool", "tool_call_id": call["id"], "content": tool_output(a.index, k)}]


async def anthropic_agent(http, url: str, a: Agent) -> None:
    messages: list[dict] = [{"role": "user", "content": task(a.index)}]
    for k in range(len(a.gens)):
        await asyncio.sleep(a.tools[k] if k else a.start)
        body = {"system": a.system, "messages": messages, "tools": TOOLS_ANT, "stream": True, "max_tokens": 4096}
        seconds, raw = await timed_post(http, f"{url}/v1/messages", body)
        a.out.append(seconds)
        starts = [e["content_block"] for e in sse_events(raw) if e["type"] == "content_block_start"]
        use = next(b for b in starts if b["type"] == "tool_use")
        messages += [{"role": "assistant", "content": [{"type": "text", "text": "Running it."},
                                                       dict(use, input={"command": COMMAND})]},
                     {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use["id"],
                                                   "content": tool_output(a.index, k)}]}]


AGENTS = {"openai": openai_agent, "anthropic": anthropic_agent}
FORMATS = ["openai", "anthropic"]


async def measure(conn, agents: list[Agent]) -> dict:
    """Every agent at once, each on its own session."""
    import aiohttp

    conn.send(("open", [a.gens for a in agents]))
    urls = conn.recv()
    t0 = time.perf_counter()
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0),
                                     timeout=aiohttp.ClientTimeout(total=3600)) as http:
        await asyncio.gather(*(AGENTS[a.fmt](http, url, a) for a, url in zip(agents, urls, strict=True)))
    elapsed = time.perf_counter() - t0
    conn.send(("stall", None))
    stall, cpu, chains, took = conn.recv()
    for a, gens in zip(agents, took, strict=True):
        a.out = [seen - gen for seen, gen in zip(a.out, gens, strict=True)]
    turns = sum(len(a.out) for a in agents)
    return {"stall": stall, "cpu": cpu / turns, "chains": chains, "rate": turns / elapsed}


def p95(values: list[float]) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(0.95 * len(values)))]


def report(name: str, cadence: str, agents: list[Agent], m: dict) -> None:
    for fmt in FORMATS:
        mine = [a for a in agents if a.fmt == fmt]
        if not mine:
            continue
        values = [v * 1e3 for a in mine for v in a.out]
        verdict = ""
        if len(agents) == 64:
            ok = p95(values) <= 5.0 and m["stall"] * 1e3 <= 10.0
            verdict = ("ok" if ok else "OVER TARGET") if cadence == "steady" else "stress (not judged)"
        print(f"{name:>12} {cadence:>7} {len(agents):>8} {fmt:>9} {len(values):>5} {statistics.mean(values):7.2f} "
              f"{p95(values):7.2f} {p95([v * 1e3 for a in mine for v in a.out[1:]]):9.2f} "
              f"{p95([a.out[0] * 1e3 for a in mine]):8.2f} {m['stall'] * 1e3:8.2f} "
              f"{m['cpu'] * 1e3:6.2f} {m['rate']:5.0f} {m['chains']:>6}  {verdict}", flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--turns", type=int, default=10, help="turns per session, short history")
    p.add_argument("--long-turns", type=int, default=6, help="turns per session, claude-code-shaped history")
    p.add_argument("--long-tokens", type=int, default=30_000, help="tokens in the long case's first request")
    p.add_argument("--generate-ms", type=float, default=500.0)
    p.add_argument("--tool-ms", type=float, default=200.0, help="steady cadence: a tool call takes 0..this")
    p.add_argument("--tokenizer-dir", type=Path, default=Path("/tmp/liverl-bench-tokenizer-151k"))
    args = p.parse_args()
    tokenizer = qwen_size_tokenizer(args.tokenizer_dir)
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=proxy_process, args=(child, str(args.tokenizer_dir)), daemon=True)
    proc.start()
    print(f"overhead = client-observed - the turn's generation (~{args.generate_ms:.0f} ms); tool calls "
          f"0..{args.tool_ms:.0f} ms (steady); vocabulary {len(tokenizer)}; streamed replies; proxy in its own "
          f"process ({os.cpu_count()} CPUs)")
    print(f"{'history':>12} {'cadence':>7} {'sessions':>8} {'format':>9} {'turns':>5} {'mean ms':>7} {'p95 ms':>7} "
          f"{'later p95':>9} {'open p95':>8} {'stall ms':>8} {'cpu ms':>6} {'req/s':>5} {'chains':>6}  verdict")
    long = system_prompt(tokenizer, args.long_tokens)
    k = args.long_tokens // 1000
    cases = (("short", lambda r, i: SYSTEM, args.turns),
             (f"~{k}k shared", lambda r, i: long, args.long_turns),
             # a system message that differs per task group (say its working directory), never seen before: each
             # group's first opening tokenises its whole ~30k tokens
             (f"~{k}k 8 cold", lambda r, i: f"Working directory: /tasks/{r}/{i // 8}\n{long}", args.long_turns))
    rounds = itertools.count()
    try:
        warm = [Agent(i, fmt, SYSTEM, 2, "burst", 50, 0) for i, fmt in enumerate(FORMATS)]
        asyncio.run(measure(parent, warm))  # warm-up: template compiled, imports done
        for name, system_of, turns in cases:
            for cadence in ("steady", "burst"):
                for formats in [[fmt] for fmt in FORMATS] + [FORMATS * 32]:  # 1 session of each; then 64 at once
                    r = next(rounds)
                    agents = [Agent(i, fmt, system_of(r, i), turns, cadence, args.generate_ms, args.tool_ms)
                              for i, fmt in enumerate(formats)]
                    report(name, cadence, agents, asyncio.run(measure(parent, agents)))
    finally:
        parent.send(("quit", None))
        parent.recv()
        proc.join(10)


if __name__ == "__main__":
    main()
