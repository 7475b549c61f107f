"""GPU host: the conformance gate's engine side without Harbor (the host has no agents yet): vLLM's AsyncLLM through
LiveRL's proxy session for a few turns, then the trainer's log-probs of the trained tokens and their agreement.

  python3 benchmarks/gpu/conform_engine.py [MODEL_DIR] [--turns N] [--max-tokens N]
  (bash benchmarks/gpu/sample_memory.sh conform-engine [...] sets the host's environment first)

MODEL_DIR defaults to a tiny random Qwen2 generated here (`python -m liverl.tiny.generate`). The session is the one
the proxy opens per trial (liverl/scaffold/session.py): each turn extends the chain with the next user message, so
the trained chain holds every sampled turn. Prints the turns, the chain's shape and, last, one JSON line:
{"turns", "chains", "trained_tokens", "logprob_agreement": {"tokens", "abs_diff_mean", "abs_diff_max", "diff_mean"}}.
Engine (vLLM, bf16) and trainer (transformers, bf16) log-probs of the same tokens differ by kernel numerics only;
an off-by-one or a re-tokenised turn shows as a mean difference of whole nats.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
from pathlib import Path

from omegaconf import OmegaConf

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from liverl.conform.engine import VLLMPolicy, agreement, trainer_logprobs  # noqa: E402
from liverl.paths import CONF_DIR  # noqa: E402
from liverl.scaffold.session import Limits, Session  # noqa: E402


async def converse(policy: VLLMPolicy, turns: int, max_tokens: int) -> Session:
    session = Session(tokenizer=policy.tokenizer, generate=policy.generate, limits=Limits(2048, 2048, turns),
                      sampling_params={"temperature": 1.0, "top_p": 1.0, "top_k": -1, "repetition_penalty": 1.0,
                                       "logprobs": True}, parser="hermes")
    messages = [{"role": "system", "content": "You are a helpful assistant."},
                {"role": "user", "content": "Repeat the word: apple"}]
    for i in range(turns):
        turn = await session.turn(messages, [], max_tokens)
        print(f"turn {i + 1}: {turn.usage[1]} tokens sampled ({turn.finish})", flush=True)
        messages += [{"role": "assistant", "content": turn.parsed.content},
                     {"role": "user", "content": f"Again, turn {i + 2}."}]
    return session


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model_dir", nargs="?")
    p.add_argument("--turns", type=int, default=3)
    p.add_argument("--max-tokens", type=int, default=64)
    args = p.parse_args()
    model_dir = args.model_dir
    if model_dir is None:
        from liverl.tiny.generate import generate

        model_dir = generate(Path(tempfile.mkdtemp(prefix="liverl-conform-tiny-")))["model"]
    engine = OmegaConf.to_container(OmegaConf.load(CONF_DIR / "conform" / "default.yaml").conform.engine)
    policy = VLLMPolicy(model_dir, max_model_len=4096, engine=engine)
    try:
        session = asyncio.run(converse(policy, args.turns, args.max_tokens))
    finally:
        policy.shutdown()
    chain = session.trained_chain()
    model = policy.trainer()
    figures = {"turns": session.calls, "chains": len(session.chains), "trained_tokens": sum(chain.mask),
               "logprob_agreement": agreement(chain.logprobs, trainer_logprobs(model, chain.prompt_ids, chain.tokens),
                                              chain.mask)}
    print(json.dumps(figures), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
