"""What the proxy does to its worker's garbage collector (liverl/scaffold/proxy.py, session.py): the heap built
before the first proxy is frozen once per process, and a new chain's long token list goes to the old generation at
once, so young collections do not walk it again."""

from __future__ import annotations

import asyncio
import gc

from harness import new_session
from policy_double import ScriptedPolicy

from liverl.scaffold import proxy as proxy_mod
from liverl.scaffold.proxy import get_proxy
from liverl.scaffold.session import OLD_AT_ONCE


def test_the_first_proxy_of_a_process_freezes_the_heap_once(monkeypatch) -> None:
    freezes = []
    monkeypatch.setattr(proxy_mod, "_FROZEN", [])
    monkeypatch.setattr(proxy_mod.gc, "freeze", lambda: freezes.append(gc.get_count()))

    async def one_loop():
        p = await get_proxy()
        await p.close()

    asyncio.run(one_loop())
    monkeypatch.setattr(proxy_mod, "_PROXIES", type(proxy_mod._PROXIES)())  # that loop's proxy is gone
    asyncio.run(one_loop())  # a later event loop gets its own proxy, and no second freeze
    assert len(freezes) == 1


def test_samples_asking_at_once_share_the_first_proxy() -> None:
    async def at_once():
        proxies = await asyncio.gather(*(get_proxy() for _ in range(8)))
        for p in set(proxies):
            await p.close()
        return proxies

    proxies = asyncio.run(at_once())
    assert len(set(map(id, proxies))) == 1 and proxies[0].port


def test_a_long_new_chain_goes_to_the_old_generation_at_once(tokenizer) -> None:
    words = " ".join(f"w{i}" for i in range(OLD_AT_ONCE))
    messages = [{"role": "system", "content": words}, {"role": "user", "content": "go"}]
    session = new_session(tokenizer, ScriptedPolicy(tokenizer, lambda p: "ok"), prompt_length=10**6)
    gc.disable()  # no automatic collection moves the lists meanwhile (the explicit one in the session still runs)
    try:
        chain, _ = session._chain_for(None, messages, [])
        short, _ = session._chain_for(None, [{"role": "user", "content": "go"}], [])
        assert len(chain.sequence) >= OLD_AT_ONCE > len(short.sequence)
        assert any(o is chain.sequence for o in gc.get_objects(generation=2))
        assert any(o is short.sequence for o in gc.get_objects(generation=0))
    finally:
        gc.enable()
