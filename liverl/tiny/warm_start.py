"""`python -m liverl.tiny.warm_start MODEL_DIR OUT_DIR --steps N`: a short supervised run that teaches the tiny
model (`python -m liverl.tiny.generate DIR --agentic`) to call the shell tool on the toy agentic tasks.

Plain torch: AdamW on generated transcripts (liverl.tiny.transcripts), rendered with the tokenizer's own chat
template, loss on the assistant turns' tokens only (their text, tool calls and closing `<|im_end|>`; never the
`<|im_start|>assistant\\n` header the prompt renders). OUT_DIR gets the model (same architecture, vocabulary equal
to the tokenizer's), the tokenizer and OUT_DIR/warm_start.json (first and last loss). CUDA when present, else CPU.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import random
import re
import shutil
import sys
import time
from pathlib import Path

from liverl.tiny.agentic import KINDS, make_task
from liverl.tiny.transcripts import SHELL, as_host, first_request, this_host, transcripts

HEADER = "<|im_start|>assistant\n"
MIN_SHARED = 256  # shared prefix tokens below which every example runs whole
IM_END = "<|im_end|>"
LR_FLOOR = 0.1  # the learning rate's last share of its peak (lr_factor)
# attention-mask elements one forward of tails may build against the shared prefix (step_loss): ~0.75 GB as bool;
# four of claude-code's ~6k-token tails against its ~30k-token prompt
MASK_BUDGET = 7.5e8
FORWARDS = ("autocast", "bf16")  # warm_start(forward=...)


def encode(tokenizer, example: dict) -> tuple[list[int], list[int]]:
    """(token ids, loss mask) of one transcript: each message's render is the suffix it adds to the previous
    messages' render (a ChatML template extends its prefix); an assistant message is trained after its header."""
    ids: list[int] = []
    mask: list[int] = []
    msgs, tools = example["messages"], example["tools"]
    before = ""
    for i, msg in enumerate(msgs):
        text = tokenizer.apply_chat_template(msgs[: i + 1], tools=tools, tokenize=False)
        if not text.startswith(before):
            raise ValueError("chat_template: the render of a longer conversation does not extend the shorter one "
                             "(got: a template that rewrites earlier turns); use liverl.tiny.transcripts' template")
        piece, before = text[len(before):], text
        if msg["role"] == "assistant":
            if not piece.startswith(HEADER):
                raise ValueError(f"chat_template: an assistant turn must start with {HEADER!r} (got: {piece[:30]!r})")
            # trained: the text, the tool calls and <|im_end|> (where generation stops); not the header, nor the
            # "\n" after <|im_end|> that the next turn's render adds (mask 0 in liverl/scaffold/render.py)
            body = piece[len(HEADER):]
            tail = "\n" if body.endswith(IM_END + "\n") else ""
            head = tokenizer.encode(HEADER, add_special_tokens=False)
            sampled = tokenizer.encode(body[: len(body) - len(tail)], add_special_tokens=False)
            after = tokenizer.encode(tail, add_special_tokens=False) if tail else []
            ids += head + sampled + after
            mask += [0] * len(head) + [1] * len(sampled) + [0] * len(after)
        else:
            part = tokenizer.encode(piece, add_special_tokens=False)
            ids += part
            mask += [0] * len(part)
    return ids, mask


def batches(tokenizer, n_examples: int, batch_size: int, seed: int, noise: float, harness: dict | None = None,
            scaffolds: tuple[str, ...] | None = None):
    """(shared, endless batches): lists of (input ids, labels with -100 outside the assistant tokens), one tensor
    pair per example, unpadded, and the length of the prefix every example shares (`shared_prefix`). Each example
    runs alone: no attention mask, so a harness's ~30k-token prompt never materialises a batch x length x length
    mask (transformers builds one for a padded batch)."""
    import torch

    data = [(torch.tensor(ids), torch.tensor([t if m else -100 for t, m in zip(ids, mask, strict=True)]))
            for ids, mask in (encode(tokenizer, t) for t in transcripts(n_examples, seed, noise, harness, scaffolds))]

    def stream():
        gen = torch.Generator().manual_seed(seed)
        while True:
            order = torch.randperm(len(data), generator=gen).tolist()
            for start in range(0, len(order) - batch_size + 1, batch_size):
                yield [data[i] for i in order[start: start + batch_size]]

    return shared_prefix(data), stream()


def shared_prefix(data: list) -> int:
    """Tokens every example starts with, up to (not including) the first trained token of any: a harness's system
    prompt and tool list, ~20-24k of its ~20-30k tokens. 0 when that is under MIN_SHARED tokens."""
    import torch

    shortest = min(len(ids) for ids, _ in data)
    heads = torch.stack([ids[:shortest] for ids, _ in data])
    same = (heads == heads[0]).all(0)
    common = int(same.long().argmin()) if not bool(same.all()) else shortest
    first_trained = min(int((labels != -100).nonzero()[0]) for _, labels in data)
    common = min(common, first_trained - 1, shortest - 1)
    return common if common >= MIN_SHARED else 0


def step_loss(model, batch, device: str, shared: int = 0, autocast: bool | None = None):
    """Mean next-token cross-entropy over the batch's trained tokens, its gradient accumulated; returns the loss
    value. On CUDA the forward runs under bf16 autocast unless `autocast` is False (a bf16 model: `forward="bf16"`):
    a harness's ~30k-token prompt then takes the flash-attention kernel instead of fp32 attention.

    With `shared` > 0 the prefix every example shares runs once per step, and the examples' tails run as one batch
    (right-padded: under causal attention no real token sees the padding, which no label reads) against that
    prefix's keys and values (detached leaves, expanded over the batch, whose gradients go back through the prefix
    once at the end): the same loss and gradient as running every example whole (no trained token lies in the
    prefix). A claude-code example then costs its last ~6k tokens instead of ~30k, an OpenHands SDK one ~100 tokens
    instead of ~20k, and a step a few forwards instead of one per example (a tiny model's step is launch-bound on a
    GPU; MASK_BUDGET bounds each forward's attention mask).
    Without it each example runs whole, alone: no attention mask, no padding."""
    import torch

    cast = device == "cuda" if autocast is None else autocast
    total = sum(int((labels[1:] != -100).sum()) for _, labels in batch)
    if not shared:
        value = 0.0
        for ids, labels in batch:
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=cast):
                logits = model(input_ids=ids[None].to(device)).logits[0, :-1]
            loss = torch.nn.functional.cross_entropy(logits.float(), labels[1:].to(device), ignore_index=-100,
                                                     reduction="sum") / total
            loss.backward()
            value += float(loss.detach())
        return value
    with torch.autocast("cuda", dtype=torch.bfloat16, enabled=cast):
        cache = model(input_ids=batch[0][0][None, :shared].to(device), use_cache=True,
                      logits_to_keep=1).past_key_values
    kv = [t for layer in cache.layers for t in (layer.keys, layer.values)]
    leaves = [t.detach().requires_grad_() for t in kv]
    width = max(len(ids) for ids, _ in batch) - shared
    tails = torch.zeros(len(batch), width, dtype=torch.long)
    targets = torch.full((len(batch), width - 1), -100, dtype=torch.long)
    for i, (ids, labels) in enumerate(batch):
        tails[i, : len(ids) - shared] = ids[shared:]
        targets[i, : len(ids) - shared - 1] = labels[shared + 1:]
    # as many tails per forward as keep its attention mask (tails x width x (prefix + width)) within MASK_BUDGET:
    # the SDK's ~100-token tails all at once, claude-code's ~6k-token ones a few at a time
    per = max(1, int(MASK_BUDGET // (width * (shared + width))))
    value = 0.0
    for at in range(0, len(batch), per):
        rows = slice(at, at + per)
        n = len(tails[rows])
        for i, layer in enumerate(cache.layers):  # the prefix for each tail (views: their gradients sum on the leaves)
            layer.keys, layer.values = (t.expand(n, *t.shape[1:]) for t in leaves[2 * i: 2 * i + 2])
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=cast):
            logits = model(input_ids=tails[rows].to(device), past_key_values=cache, use_cache=True).logits[:, :-1]
        loss = torch.nn.functional.cross_entropy(logits.float().reshape(-1, logits.shape[-1]),
                                                 targets[rows].reshape(-1).to(device), ignore_index=-100,
                                                 reduction="sum") / total
        loss.backward()
        value += float(loss.detach())
    torch.autograd.backward(kv, [leaf.grad if leaf.grad is not None else torch.zeros_like(leaf) for leaf in leaves])
    return value


def to_bf16(model):
    """The model's parameters in bf16, its buffers as they are: `model.to(torch.bfloat16)` would also round RoPE's
    `inv_freq` (fp32 in a model loaded in bf16, and in vLLM), and a policy trained or judged on rounded frequencies
    is not the one served (the GPU host: 40% tool calls judged so, 0-2% loaded as vLLM loads it)."""
    import torch

    for param in model.parameters():
        param.data = param.data.to(torch.bfloat16)
    return model


def served_copy(model):
    """A bf16 copy of `model` as vLLM serves it (to_bf16: fp32 buffers), for step_served."""
    return to_bf16(copy.deepcopy(model))


def step_served(model, served, batch, device: str, shared: int = 0) -> float:
    """step_loss on `served`, a bf16 copy of `model` refreshed from its fp32 weights, the copy's gradient handed to
    the fp32 weights (what AdamW steps): the policy is trained in the numbers vLLM serves it in, not only judged in
    them. Parameters pair up in order (deepcopy keeps tied embeddings tied)."""
    import torch

    with torch.no_grad():
        for copy_, weight in zip(served.parameters(), model.parameters(), strict=True):
            copy_.copy_(weight)
    served.zero_grad(set_to_none=True)
    value = step_loss(served, batch, device, shared, autocast=False)
    for copy_, weight in zip(served.parameters(), model.parameters(), strict=True):
        weight.grad = None if copy_.grad is None else copy_.grad.float()
    return value


def lr_factor(step: int, steps: int) -> float:
    """The learning rate's share at `step`: a linear warm-up over the first 5% of steps, then a cosine decay to
    LR_FLOOR: the last steps settle the weights instead of leaving them where a constant rate's noise put them (the
    GPU host's claude-code warm start, constant 1e-3: loss flat at ~0.20 from step 200 to 1000)."""
    warmup = max(1, steps // 20)
    if step < warmup:
        return (step + 1) / warmup
    done = (step - warmup) / max(1, steps - warmup - 1)  # the last step at the floor
    return LR_FLOOR + (1 - LR_FLOOR) * 0.5 * (1 + math.cos(math.pi * min(1.0, done)))


def evaluate(model, tokenizer, device: str, n: int, seed: int, harness: dict | None = None,
             scaffolds: tuple[str, ...] | None = None, max_new_tokens: int = 160) -> dict:
    """The warm-started policy's first turn on n fresh toy tasks (another seed than training), each with a fresh
    trial directory name as a trial's prompt has it, sampled at temperature 1 as the rollout samples, computed in the
    model's own dtype (no autocast: a bf16 model runs as vLLM and verl's trainer run it): the share of
    replies holding a hermes call of the scaffold's shell tool with a string command (`tool_call_rate`: what RL needs
    to see at all), and the share whose command is the task's own solution (`solved_rate`)."""
    import torch

    rng = random.Random(f"eval-{seed}")
    scaffolds = tuple(scaffolds or sorted(SHELL))
    calls = solved = 0
    model.eval()
    for i in range(n):
        scaffold = scaffolds[i % len(scaffolds)]
        task = make_task(KINDS[i % len(KINDS)], rng)
        messages, tools = first_request(task, scaffold, harness, workdir=rng)  # a fresh trial's directory name
        text = tokenizer.apply_chat_template(messages, tools=tools, add_generation_prompt=True, tokenize=False)
        ids = torch.tensor([tokenizer.encode(text, add_special_tokens=False)], device=device)
        with torch.no_grad():
            out = model.generate(input_ids=ids, max_new_tokens=max_new_tokens, do_sample=True, temperature=1.0,
                                 top_k=0, top_p=1.0, pad_token_id=tokenizer.pad_token_id)
        reply = tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=False)
        command = _shell_command(reply, SHELL[scaffold])
        calls += command is not None
        solved += command == task.solve_command
    return {"tasks": n, "tool_call_rate": calls / n if n else None, "solved_rate": solved / n if n else None}


def _shell_command(reply: str, tool: str) -> str | None:
    """The command of the first call of `tool` in a reply, read block by block as LiveRL's `hermes` parser reads
    them (liverl/scaffold/toolcalls.py: a block that does not parse is skipped, `arguments` may be a JSON string;
    tests/test_tiny_warm_start.py holds the two to the same answers); None without such a call."""
    for body in re.findall(r"<tool_call>(.*?)</tool_call>", reply, re.S):
        try:
            call = json.loads(body.strip())
            args = call.get("arguments", {}) if isinstance(call, dict) else None
            args = json.loads(args) if isinstance(args, str) else args
        except ValueError:
            continue
        if isinstance(call, dict) and call.get("name") == tool and isinstance(args, dict) \
                and isinstance(args.get("command"), str):
            return args["command"]
    return None


def warm_start(model_dir: Path, out: Path, steps: int = 300, lr: float = 1e-3, batch_size: int = 16,
               examples: int = 512, seed: int = 0, noise: float = 0.2, harness: dict | None = None,
               scaffolds: tuple[str, ...] | None = None, eval_tasks: int = 0, forward: str = "autocast") -> dict:
    """`forward`: "autocast" runs the fp32 weights under bf16 autocast (CUDA; fp32 on CPU); "bf16" runs a bf16 copy
    of them as vLLM serves the model (bf16 residual stream and norms too), its gradient applied to the fp32 weights
    and AdamW states (step_served). Which one acts better when served differs by harness on the GPU host
    (liverl.tiny.agentic_smoke FORWARD). The captured requests are rewritten as this machine sends them (as_host)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if forward not in FORWARDS:
        raise ValueError(f"forward: unknown (got: {forward}); one of {list(FORWARDS)}")
    host = this_host()  # trained and judged on the requests as this machine's trials will send them
    harness = as_host(harness, host)

    torch.manual_seed(seed)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).to(device)
    if model.config.vocab_size != len(tokenizer):
        raise ValueError(f"model.vocab_size: must equal the tokenizer's vocabulary (got: {model.config.vocab_size} "
                         f"vs {len(tokenizer)}); regenerate with python -m liverl.tiny.generate DIR --agentic")
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, steps))
    model.train()
    losses: list[float] = []
    started = time.monotonic()
    shared, stream = batches(tokenizer, examples, batch_size, seed, noise, harness, scaffolds)
    served = served_copy(model) if forward == "bf16" else None
    for step in range(steps):
        opt.zero_grad()
        batch = next(stream)
        losses.append(step_loss(model, batch, device, shared) if served is None
                      else step_served(model, served, batch, device, shared))
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        if step % 25 == 0 or step == steps - 1:  # progress, for a run watched from another shell
            print(f"warm_start: step {step + 1}/{steps} loss {losses[-1]:.4f} "
                  f"{time.monotonic() - started:.0f} s", file=sys.stderr, flush=True)
    seconds = round(time.monotonic() - started, 1)
    # judged as vLLM serves it: bf16 weights and compute, RoPE's frequencies in fp32 (to_bf16), on this host's
    # requests. The GPU host's claude-code policy, judged on fp32 weights and the capture's kernel name, scored 59%
    # and then called its tool in about 10% of its trials' first turns; judged so, the next one scored 56% and its
    # trials called in 54% (docs/gpu-smoke.md, sixth session)
    to_bf16(model)
    scores = evaluate(model, tokenizer, device, eval_tasks, seed, harness, scaffolds) if eval_tasks else None
    if scores:
        scores["weights"] = "bf16"
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    if (model_dir / "generation_config.json").is_file():
        shutil.copy(model_dir / "generation_config.json", out / "generation_config.json")
    report = {"steps": steps, "forward": forward, "first_loss": losses[0] if losses else None,
              "last_loss": losses[-1] if losses else None,
              "losses": losses, "device": device, "seconds": seconds, "shared_prefix": shared, "first_turn": scores,
              "host": host}
    (out / "warm_start.json").write_text(json.dumps(report, indent=2) + "\n")
    return report


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m liverl.tiny.warm_start", description=__doc__.splitlines()[0])
    p.add_argument("model", type=Path, help="the tiny model (python -m liverl.tiny.generate DIR --agentic: DIR/model)")
    p.add_argument("out", type=Path, help="where the warm-started model and tokenizer are written")
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--examples", type=int, default=512)
    p.add_argument("--noise", type=float, default=0.2, help="share of transcripts that write a wrong content")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--forward", choices=FORWARDS, default="autocast",
                   help="autocast: the fp32 weights under bf16 autocast; bf16: train a bf16 copy of the weights, as "
                   "vLLM serves them (fp32 weights and optimizer)")
    p.add_argument("--harness", type=Path, default=None,
                   help="captured harness requests (liverl.conform conform.capture=FILE): the real prompts")
    p.add_argument("--scaffold", action="append", default=None, help="only these scaffolds' transcripts")
    p.add_argument("--eval", type=int, default=32, help="fresh tasks whose first turn is sampled after training "
                   "(warm_start.json first_turn: tool_call_rate, solved_rate); 0: none")
    a = p.parse_args(argv)
    if a.steps < 1:
        print(f"steps: must be at least 1 (got: {a.steps})", file=sys.stderr)
        return 2
    if not (a.model / "config.json").is_file():
        print(f"model: no config.json in the model folder (got: {a.model}); run python -m liverl.tiny.generate "
              "DIR --agentic and pass DIR/model", file=sys.stderr)
        return 2
    harness = json.loads(a.harness.read_text()) if a.harness else None
    try:
        report = warm_start(a.model, a.out, a.steps, a.lr, a.batch, a.examples, a.seed, a.noise, harness,
                            tuple(a.scaffold) if a.scaffold else None, a.eval, a.forward)
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 2
    print(json.dumps({k: v for k, v in report.items() if k != "losses"}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
