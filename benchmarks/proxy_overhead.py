"""What an agent waits for per turn beyond generation, through LiveRL's proxy (target at 64 sessions on 2 cores:
p95 overhead <= 5 ms per turn, no event-loop stall over 10 ms).

The proxy runs as it does in a verl agent-loop worker: its own process and event loop, sessions opened there, the
policy behind verl's server-manager interface. The agents are HTTP clients in another process (as agents in
sandboxes are): each session speaks OpenAI chat completions or Anthropic messages, both streamed, and each turn
sends the whole history (the policy answers with a tool call; the agent appends the tool output and asks again).

  client-observed  from the request being sent to the last byte of the streamed reply, at the client
  overhead         client-observed minus the generation time (the policy sleeps exactly --generate-ms: what an
                   engine would take), so parsing, conversion, rendering, tokenising, the reply, the stream and
                   every event-loop wait count as overhead; mean and p95 per wire format
  stall            the longest the proxy's event loop was held (a 1 ms ticker on that loop: lateness beyond 1 ms)

Cases: a short history (a few hundred tokens) and a ~30k-token history (a coding agent that has read some files),
at 1 and 64 concurrent sessions. The tokenizer has a Qwen-size vocabulary (~151k byte-level BPE tokens, trained
here on this venv's Python sources: no hub download; cached under --tokenizer-dir) with the tests' Qwen-style chat
template. The policy is a fixed reply (its cost is not the proxy's). Figures from one run; not a unit test.

Usage: python benchmarks/proxy_overhead.py [--turns N] [--long-turns N] [--generate-ms MS] [--tokenizer-dir DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
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
def proxy_process(conn, tok_dir: str, gen_ms: float) -> None:
    asyncio.run(_serve(conn, tok_dir, gen_ms))


async def _serve(conn, tok_dir: str, gen_ms: float) -> None:
    from verl.workers.rollout.replica import TokenOutput

    from liverl.scaffold.proxy import Proxy
    from liverl.scaffold.session import Limits, Session

    tokenizer = qwen_size_tokenizer(Path(tok_dir))
    reply = [*tokenizer.encode(REPLY, add_special_tokens=False), tokenizer.eos_token_id]

    async def generate(request_id, *, prompt_ids, sampling_params, **kwargs):
        await asyncio.sleep(gen_ms / 1000)
        return TokenOutput(token_ids=reply, log_probs=[-0.1] * len(reply), stop_reason="completed", extra_fields={})

    proxy = Proxy()
    await proxy.start()
    stall = {"max": 0.0}

    async def ticker() -> None:
        while True:
            t = time.perf_counter()
            await asyncio.sleep(0.001)
            stall["max"] = max(stall["max"], time.perf_counter() - t - 0.001)

    tick = asyncio.create_task(ticker())
    loop = asyncio.get_running_loop()
    opened: list = []
    while True:
        cmd, arg = await loop.run_in_executor(None, conn.recv)
        if cmd == "open":
            for old in opened:
                proxy.close_session(old)
            opened = [proxy.open(Session(tokenizer=tokenizer, generate=generate, sampling_params={},
                                         limits=Limits(10**7, 10**7, 10**6), parser="qwen3_coder"))
                      for _ in range(arg)]
            stall["max"] = 0.0
            conn.send([proxy.base_url(s) for s in opened])
        elif cmd == "stall":  # and the most chains a session of this round opened (1: every turn extended)
            conn.send((stall["max"], max(len(s.chains) for s in opened)))
        else:
            tick.cancel()
            await proxy.close()
            conn.send("bye")
            return


# ---------------------------------------------------------------- the agents
def history(tokenizer, target_tokens: int) -> list[tuple[str, str]]:
    """(command, output) steps of an agent that has read files, until the rendered prompt holds target tokens."""
    from liverl.scaffold import chat

    files = [*sorted((ROOT / "liverl").rglob("*.py")),
             *sorted(Path(sys.prefix).glob("lib/python3*/site-packages/aiohttp/*.py"))]
    steps: list[tuple[str, str]] = []
    for path in files:
        if target_tokens <= 0:
            break
        steps.append((f"cat {path.name}", path.read_text()[:12_000]))
        body = {"messages": openai_history(steps), "tools": TOOLS_OAI}
        text = tokenizer.apply_chat_template(chat.openai_messages(body), tools=TOOLS_OAI, add_generation_prompt=True,
                                             tokenize=False)
        if len(tokenizer.encode(text, add_special_tokens=False)) >= target_tokens:
            break
    return steps if target_tokens > 0 else []


def openai_history(steps) -> list[dict]:
    out = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "Fix the failing test."}]
    for i, (command, output) in enumerate(steps):
        call = {"id": f"call_{i}", "type": "function", "function": {"name": "bash",
                                                                    "arguments": json.dumps({"command": command})}}
        out += [{"role": "assistant", "content": "Reading it.", "tool_calls": [call]},
                {"role": "tool", "tool_call_id": f"call_{i}", "content": output}]
    return out


def anthropic_history(steps) -> list[dict]:
    out: list[dict] = [{"role": "user", "content": "Fix the failing test."}]
    for i, (command, output) in enumerate(steps):
        out += [{"role": "assistant", "content": [{"type": "text", "text": "Reading it."},
                                                  {"type": "tool_use", "id": f"toolu_{i}", "name": "bash",
                                                   "input": {"command": command}}]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": f"toolu_{i}", "content": output}]}]
    return out


def sse_events(raw: bytes) -> list[dict]:
    return [json.loads(line[6:]) for line in raw.decode().splitlines()
            if line.startswith("data: ") and line != "data: [DONE]"]


async def openai_agent(http, url: str, steps, turns: int, out: list[float]) -> None:
    messages = openai_history(steps)
    for _ in range(turns):
        t = time.perf_counter()
        async with http.post(f"{url}/v1/chat/completions",
                             json={"messages": messages, "tools": TOOLS_OAI, "stream": True}) as r:
            raw = await r.read()
        out.append(time.perf_counter() - t)
        delta = sse_events(raw)[0]["choices"][0]["delta"]
        call = {k: delta["tool_calls"][0][k] for k in ("id", "type", "function")}
        messages += [{"role": "assistant", "content": delta.get("content"), "tool_calls": [call]},
                     {"role": "tool", "tool_call_id": call["id"], "content": TOOL_OUT}]


async def anthropic_agent(http, url: str, steps, turns: int, out: list[float]) -> None:
    messages = anthropic_history(steps)
    for _ in range(turns):
        t = time.perf_counter()
        body = {"system": SYSTEM, "messages": messages, "tools": TOOLS_ANT, "stream": True, "max_tokens": 4096}
        async with http.post(f"{url}/v1/messages", json=body) as r:
            raw = await r.read()
        out.append(time.perf_counter() - t)
        starts = [e["content_block"] for e in sse_events(raw) if e["type"] == "content_block_start"]
        use = next(b for b in starts if b["type"] == "tool_use")
        messages += [{"role": "assistant", "content": [{"type": "text", "text": "Running it."},
                                                       dict(use, input={"command": COMMAND})]},
                     {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use["id"],
                                                   "content": TOOL_OUT}]}]


AGENTS = {"openai": openai_agent, "anthropic": anthropic_agent}


async def measure(conn, formats: list[str], steps, turns: int) -> dict:
    """One session per entry of `formats`, all at once."""
    import aiohttp

    conn.send(("open", len(formats)))
    urls = conn.recv()
    rtt: dict[str, list[float]] = {fmt: [] for fmt in formats}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0),
                                     timeout=aiohttp.ClientTimeout(total=3600)) as http:
        await asyncio.gather(*(AGENTS[fmt](http, url, steps, turns, rtt[fmt])
                               for fmt, url in zip(formats, urls, strict=True)))
    conn.send(("stall", None))
    stall, chains = conn.recv()
    return {"rtt": rtt, "stall": stall, "chains": chains}


def stats(values: list[float], gen: float) -> tuple[float, float]:
    over = sorted((v - gen) * 1e3 for v in values)
    return statistics.mean(over), over[min(len(over) - 1, int(0.95 * len(over)))]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--turns", type=int, default=10, help="turns per session, short history")
    p.add_argument("--long-turns", type=int, default=3, help="turns per session, ~30k-token history")
    p.add_argument("--long-tokens", type=int, default=30_000)
    p.add_argument("--generate-ms", type=float, default=50.0)
    p.add_argument("--tokenizer-dir", type=Path, default=Path("/tmp/liverl-bench-tokenizer-151k"))
    args = p.parse_args()
    tokenizer = qwen_size_tokenizer(args.tokenizer_dir)
    long_steps = history(tokenizer, args.long_tokens)
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=proxy_process, args=(child, str(args.tokenizer_dir), args.generate_ms), daemon=True)
    proc.start()
    gen = args.generate_ms / 1000
    print(f"per-turn overhead = client-observed - {args.generate_ms:.0f} ms generation; vocabulary "
          f"{len(tokenizer)}; streamed replies; proxy in its own process ({os.cpu_count()} CPUs)")
    print(f"{'history':>16} {'sessions':>8} {'format':>9} {'turns':>6} {'mean ms':>8} {'p95 ms':>8} "
          f"{'stall ms':>9} {'chains':>6}  verdict")
    cases = (("short", [], args.turns), (f"~{args.long_tokens // 1000}k tokens", long_steps, args.long_turns))
    try:
        asyncio.run(measure(parent, ["openai", "anthropic"], [], 2))  # warm-up: template compiled, imports done
        for name, steps, turns in cases:
            runs = [["openai"], ["anthropic"], ["openai", "anthropic"] * 32]  # 1 session each; then 64 at once
            for formats in runs:
                m = asyncio.run(measure(parent, formats, steps, turns))
                for fmt, values in m["rtt"].items():
                    mean, p95 = stats(values, gen)
                    ok = p95 <= 5.0 and m["stall"] * 1e3 <= 10.0
                    verdict = ("ok" if ok else "OVER TARGET") if len(formats) == 64 else ""
                    print(f"{name:>16} {len(formats):>8} {fmt:>9} {len(values):>6} {mean:8.2f} {p95:8.2f} "
                          f"{m['stall'] * 1e3:9.2f} {m['chains']:>6}  {verdict}", flush=True)
    finally:
        parent.send(("quit", None))
        parent.recv()
        proc.join(10)


if __name__ == "__main__":
    main()
