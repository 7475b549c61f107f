"""Measure the peak GPU memory of real training steps, for the LiveRL memory model (liverl.memory).

One process, one GPU, FSDP2 over a world of one (as verl's FSDP engine wraps the model: every decoder layer and,
when untied, the input embedding are `fully_shard`ed, then the root), per-layer gradient checkpointing
(non-reentrant), one sequence of T tokens, log-probs of the next token computed over chunks of the LM head,
and a steady-state AdamW step (the optimizer states already exist, as in every step after the first).
Random weights built from the architecture files in liverl/memory/archs/ at reduced depth.

Settings: `fp32_master` keeps parameters, gradients and AdamW states in fp32 and computes in bf16
(MixedPrecisionPolicy(param_dtype=bf16, reduce_dtype=fp32), as verl's FSDP keeps them); `bf16` keeps all of
them in bf16. Peaks are torch.cuda.max_memory_allocated per phase (forward, backward, optimizer step).
It also measures the KV-cache / recurrent-state bytes a `use_cache=True` forward keeps.

Usage (on a GPU host):  python benchmarks/memory/measure.py --out results.json [--budget-s 330]
CPU smoke of the code paths (tiny shapes, gloo):  python benchmarks/memory/measure.py --tiny --out /tmp/m.json
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import time
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn.functional as F
import transformers
from torch import nn
from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard
from torch.utils.checkpoint import checkpoint

ARCHS = Path(__file__).resolve().parents[2] / "liverl" / "memory" / "archs"
TOKENS = [8192, 16384, 32768, 65536, 131072]
# (arch, layers, setting, [(lm_head_chunk, [tokens...]), ...]) in the order they run; cheap groups first.
PLAN = [
    ("qwen25_0p5b", 4, "fp32_master", [(8192, TOKENS), (0, [8192, 16384]), (2048, [32768])]),
    ("qwen25_0p5b", 4, "bf16", [(8192, TOKENS)]),
    ("qwen25_0p5b", 8, "fp32_master", [(8192, [32768, 131072])]),
    ("qwen3_30b_a3b", 2, "fp32_master", [(8192, TOKENS), (0, [8192])]),
    ("qwen3_30b_a3b", 2, "bf16", [(8192, TOKENS)]),
    ("qwen35_35b_a3b", 2, "fp32_master", [(8192, TOKENS)]),
    ("qwen35_35b_a3b", 2, "bf16", [(8192, TOKENS)]),
]
TINY = {"hidden_size": 64, "intermediate_size": 128, "moe_intermediate_size": 32, "shared_expert_intermediate_size": 32,
        "num_experts": 8, "num_experts_per_tok": 2, "vocab_size": 512, "num_attention_heads": 4,
        "num_key_value_heads": 2, "head_dim": 16, "linear_num_key_heads": 2, "linear_num_value_heads": 4,
        "linear_key_head_dim": 16, "linear_value_head_dim": 16}


def layer_types(full_types: list[str], layers: int) -> list[str]:
    """Reduced-depth layer mix: keep the full-attention share, at least one full layer (same rule as
    liverl.memory.arch.reduced_layer_types)."""
    frac = full_types.count("full_attention") / len(full_types)
    n_full = max(1, round(layers * frac)) if frac else 0
    return ["linear_attention"] * (layers - n_full) + ["full_attention"] * n_full


def make_config(arch: str, layers: int, tiny: bool):
    raw = json.loads((ARCHS / f"{arch}.json").read_text())
    text = dict(raw.get("text_config", raw))
    for key in ("torch_dtype", "dtype", "architectures", "auto_map"):
        text.pop(key, None)
    if "layer_types" in text:
        text["layer_types"] = layer_types(text["layer_types"], layers)
    text["num_hidden_layers"] = layers
    text["mtp_num_hidden_layers"] = 0
    if tiny:
        text.update({k: v for k, v in TINY.items() if k in text or k == "head_dim"})
    text["use_cache"] = False
    return transformers.AutoConfig.for_model(text.pop("model_type"), **text)


def chunk_logp(h: torch.Tensor, weight: torch.Tensor, labels: torch.Tensor):
    logits = F.linear(h, weight).float()
    logp = torch.log_softmax(logits, dim=-1)
    with torch.no_grad():  # verl reports entropy; with entropy_coeff=0 it takes no gradient
        entropy = -(logp.exp() * logp).sum(-1)
    return logp.gather(-1, labels[:, None])[:, 0], entropy


class Policy(nn.Module):
    """The causal LM plus a chunked next-token log-prob loss (chunk 0: the whole sequence's logits at once)."""

    def __init__(self, lm: nn.Module):
        super().__init__()
        self.lm = lm
        self.chunk = 0

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        h = self.lm.model(input_ids=ids, use_cache=False).last_hidden_state[0]
        labels = ids[0].roll(-1)
        weight = self.lm.lm_head.weight
        if not self.chunk:
            logp, _ = chunk_logp(h, weight, labels)
            return -logp.float().mean()
        total = h.new_zeros((), dtype=torch.float32)
        for s in range(0, h.shape[0], self.chunk):
            logp, _ = checkpoint(chunk_logp, h[s:s + self.chunk], weight, labels[s:s + self.chunk],
                                 use_reentrant=False)
            total = total + logp.sum()
        return -total / h.shape[0]


def build(arch: str, layers: int, setting: str, device: torch.device, tiny: bool):
    cfg = make_config(arch, layers, tiny)
    dtype = torch.float32 if setting == "fp32_master" else torch.bfloat16
    with torch.device(device):
        lm = transformers.AutoModelForCausalLM.from_config(cfg, dtype=dtype, attn_implementation="sdpa")
    lm.to(dtype)
    lm.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    lm.train()
    mp = MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32) if setting == "fp32_master" \
        else MixedPrecisionPolicy()
    tied = bool(getattr(cfg, "tie_word_embeddings", False))
    for layer in lm.model.layers:
        fully_shard(layer, mp_policy=mp, reshard_after_forward=True)
    if not tied:
        fully_shard(lm.model.embed_tokens, mp_policy=mp, reshard_after_forward=True)
    policy = Policy(lm)
    fully_shard(policy, mp_policy=mp, reshard_after_forward=True)
    opt = torch.optim.AdamW(policy.parameters(), lr=1e-6, weight_decay=0.01)
    info = {"params": sum(p.numel() for p in lm.parameters()),
            "experts_implementation": getattr(cfg, "_experts_implementation", None),
            "attn_implementation": getattr(cfg, "_attn_implementation", None),
            "layer_types": getattr(cfg, "layer_types", None)}
    return policy, opt, cfg, info


def mem(device: torch.device) -> dict:
    if device.type != "cuda":
        return {"allocated": 0, "peak": 0}
    torch.cuda.synchronize(device)
    return {"allocated": torch.cuda.memory_allocated(device), "peak": torch.cuda.max_memory_allocated(device)}


def reset(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)


def one_step(policy, opt, vocab: int, tokens: int, device: torch.device) -> dict:
    ids = torch.randint(0, vocab, (1, tokens), device=device)
    gc.collect()
    before = mem(device)["allocated"]
    reset(device)
    t0 = time.perf_counter()
    loss = policy(ids)
    fwd = mem(device)["peak"]
    reset(device)
    loss.backward()
    bwd = mem(device)["peak"]
    grads = mem(device)["allocated"]
    reset(device)
    opt.step()
    opt.zero_grad(set_to_none=True)
    step = mem(device)["peak"]
    return {"steady_bytes": before, "fwd_peak": fwd, "bwd_peak": bwd, "after_bwd": grads, "opt_peak": step,
            "peak_bytes": max(fwd, bwd, step), "seconds": round(time.perf_counter() - t0, 3),
            "loss": float(loss.detach())}


def run_group(entry, device, tiny, deadline, emit) -> None:
    arch, layers, setting, sweeps = entry
    base = {"arch": arch, "layers": layers, "setting": setting}
    if time.monotonic() > deadline:
        for chunk, toks in sweeps:
            for t in toks:
                emit({**base, "lm_head_chunk": chunk, "tokens": t, "status": "skipped: time budget"})
        return
    policy, opt, cfg, info = build(arch, layers, setting, device, tiny)
    scale = 64 if tiny else 1
    policy.chunk = 1024 // scale
    one_step(policy, opt, cfg.vocab_size, 1024 // scale, device)  # first step allocates AdamW's states
    failed = None
    for chunk, toks in sweeps:
        policy.chunk = chunk // scale
        for t in toks:
            row = {**base, "lm_head_chunk": chunk, "tokens": t, **info}
            if failed or time.monotonic() > deadline:
                emit({**row, "status": f"skipped: {failed or 'time budget'}"})
                continue
            try:
                emit({**row, "status": "ok", **one_step(policy, opt, cfg.vocab_size, t // scale, device)})
            except torch.OutOfMemoryError as exc:
                failed = f"OOM at {t} tokens"
                emit({**row, "status": "OOM", "error": str(exc).splitlines()[0][:300]})
    del policy, opt
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def tensors_bytes(obj, seen: set, depth: int = 0) -> int:
    """Bytes of every distinct tensor reachable from a cache object (lists, tuples, dicts, attributes)."""
    if depth > 6:
        return 0
    if isinstance(obj, torch.Tensor):
        key = (obj.untyped_storage().data_ptr(), obj.untyped_storage().nbytes())
        if key in seen or obj.device.type == "meta":
            return 0
        seen.add(key)
        return obj.untyped_storage().nbytes()
    if isinstance(obj, (list, tuple)):
        return sum(tensors_bytes(x, seen, depth + 1) for x in obj)
    if isinstance(obj, dict):
        return sum(tensors_bytes(x, seen, depth + 1) for x in obj.values())
    if hasattr(obj, "__dict__"):
        return sum(tensors_bytes(x, seen, depth + 1) for x in vars(obj).values())
    return 0


def kv_cache(arch: str, layers: int, device: torch.device, tiny: bool, tokens: list[int]) -> list[dict]:
    cfg = make_config(arch, layers, tiny)
    cfg.use_cache = True
    with torch.device(device):
        lm = transformers.AutoModelForCausalLM.from_config(cfg, dtype=torch.bfloat16, attn_implementation="sdpa")
    lm.to(torch.bfloat16).eval()
    rows = []
    for t in tokens:
        ids = torch.randint(0, cfg.vocab_size, (1, t), device=device)
        with torch.no_grad():
            before = mem(device)["allocated"]
            out = lm.model(input_ids=ids, use_cache=True)
            held = mem(device)["allocated"] - before - out.last_hidden_state.untyped_storage().nbytes()
            cache_bytes = tensors_bytes(out.past_key_values, set())
        rows.append({"arch": arch, "layers": layers, "tokens": t, "layer_types": getattr(cfg, "layer_types", None),
                     "cache_tensor_bytes": cache_bytes, "allocated_delta": held,
                     "cache_class": type(out.past_key_values).__name__})
        del out
    del lm
    gc.collect()
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--budget-s", type=float, default=330.0, help="stop starting new points after this many seconds")
    ap.add_argument("--tiny", action="store_true", help="tiny shapes on CPU (code-path check, no memory numbers)")
    args = ap.parse_args()
    start = time.monotonic()
    cuda = torch.cuda.is_available() and not args.tiny
    device = torch.device("cuda", 0) if cuda else torch.device("cpu")
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", "29533")
    dist.init_process_group("nccl" if cuda else "gloo", rank=0, world_size=1)
    if cuda:
        torch.cuda.set_device(device)
    result = {"env": {"torch": torch.__version__, "transformers": transformers.__version__,
                      "gpu": torch.cuda.get_device_name(device) if cuda else "cpu",
                      "gpu_total_bytes": torch.cuda.get_device_properties(device).total_memory if cuda else 0,
                      "python": platform.python_version(), "fla": _has("fla"), "tiny": args.tiny},
              "method": __doc__.split("\n\n")[1], "steps": [], "kv_cache": []}

    def emit(row: dict) -> None:
        result["steps"].append(row)
        print(json.dumps({k: v for k, v in row.items() if k != "layer_types"}), flush=True)
        Path(args.out).write_text(json.dumps(result, indent=1))

    for arch, layers in (("qwen25_0p5b", 4), ("qwen3_30b_a3b", 2), ("qwen35_35b_a3b", 2)):
        result["kv_cache"] += kv_cache(arch, layers, device, args.tiny, [256, 512] if args.tiny else [4096, 16384])
    deadline = start + args.budget_s
    for entry in PLAN:
        run_group(entry, device, args.tiny, deadline, emit)
    result["wall_s"] = round(time.monotonic() - start, 1)
    Path(args.out).write_text(json.dumps(result, indent=1))
    dist.destroy_process_group()


def _has(module: str) -> bool:
    try:
        __import__(module)
        return True
    except ImportError:
        return False


if __name__ == "__main__":
    main()
