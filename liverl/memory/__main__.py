"""python -m liverl.memory: will each GPU hold its share?

  python -m liverl.memory [OVERRIDES...]          a plan: the same overrides as liverl.train (or --run-dir RUN_DIR)
  python -m liverl.memory step --hf-config CONFIG_JSON --num-layers N --tokens T --shards K
      --param-dtype bf16|fp32 --optim-dtype bf16|fp32 --master-weights|--no-master-weights
      --grad-ckpt layer|none --lm-head-chunk C [--linear-impl fla|torch] [--text-only] --json

`step` answers for a bare training step (one sequence, steady-state AdamW); with --json its last line is
{"peak_bytes": ..., "breakdown": {...}}. Exit 0: fits (plan) or answered (step); 1: a plan GPU is over its memory;
2: bad input.

This module is the command (it composes and builds a plan: .importlinter lists its imports of liverl.recipe and
liverl.guardrails as the command layer's); the rest of liverl.memory is the library, which takes plain numbers.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from omegaconf import OmegaConf

from liverl.errors import ConfigError
from liverl.guardrails.memory_inputs import predict
from liverl.memory import arch as archmod
from liverl.memory import terms
from liverl.memory.rollout import kv_budget
from liverl.memory.terms import GIB, gib
from liverl.recipe.build import build
from liverl.recipe.compose import compose_liverl
from liverl.rundir import LIVERL_YAML, VERL_YAML

WIDTH = {"bf16": 2, "fp32": 4}


class UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # exit 2 with a one-line message, never a traceback
        raise UsageError(message)


def step_parser() -> argparse.ArgumentParser:
    ap = _Parser(prog="python -m liverl.memory step", description="peak memory of one bare training step")
    ap.add_argument("--hf-config", required=True, help="a config.json (or its directory)")
    ap.add_argument("--num-layers", type=int, help="override the config's depth")
    ap.add_argument("--tokens", type=int, required=True)
    ap.add_argument("--shards", type=int, default=1,
                    help="GPUs that parameters, gradients and optimizer states are sharded over")
    ap.add_argument("--param-dtype", choices=WIDTH, default="fp32")
    ap.add_argument("--optim-dtype", choices=WIDTH, default="fp32")
    ap.add_argument("--master-weights", action=argparse.BooleanOptionalAction, default=True)
    ap.add_argument("--grad-ckpt", choices=("layer", "none"), default="layer")
    ap.add_argument("--lm-head-chunk", type=int, default=0, help="tokens per LM-head chunk (0: whole sequence)")
    ap.add_argument("--linear-impl", choices=("fla", "torch"), default="fla")
    ap.add_argument("--optimizer-offload", action="store_true")
    ap.add_argument("--text-only", action="store_true", help="leave a multimodal config's vision tower out")
    ap.add_argument("--json", action="store_true")
    return ap


def _positive(name: str, value: int | None, allow_zero: bool = False) -> None:
    if value is not None and (value < 0 or (value == 0 and not allow_zero)):
        raise UsageError(f"--{name}: must be {'>= 0' if allow_zero else '> 0'} (got: {value})")


def run_step(argv: Sequence[str]) -> int:
    ns = step_parser().parse_args(argv)
    _positive("tokens", ns.tokens)
    _positive("shards", ns.shards)
    _positive("num-layers", ns.num_layers)
    _positive("lm-head-chunk", ns.lm_head_chunk, allow_zero=True)
    a = archmod.load(ns.hf_config)
    if ns.text_only:
        a = a.text_only()
    if ns.num_layers:
        a = a.with_layers(ns.num_layers)
    spec = terms.StepSpec(arch=a, tokens=ns.tokens, shards=ns.shards, param_bytes=WIDTH[ns.param_dtype],
                          optim_bytes=WIDTH[ns.optim_dtype], master_weights=ns.master_weights,
                          grad_ckpt=ns.grad_ckpt, lm_head_chunk=ns.lm_head_chunk, linear_impl=ns.linear_impl,
                          optimizer_offload=ns.optimizer_offload, reduce_fp32=ns.param_dtype == "fp32")
    out = terms.breakdown(spec)
    if not ns.json:
        print(f"peak {out['peak_bytes'] / GIB:.2f} GiB in the {out['peak_phase']} phase "
              f"({a.total_params() / 1e9:.3f}B parameters, {a.layers} layers, {ns.tokens} tokens, {ns.shards} shards)")
        for k, v in out["breakdown"].items():
            print(f"  {k:28s} {v / GIB:9.2f} GiB" if isinstance(v, int) and k != "lm_head_chunk" else f"  {k:28s} {v}")
    print(json.dumps({"peak_bytes": out["peak_bytes"], "breakdown": out["breakdown"], "phases": out["phases"],
                      "peak_phase": out["peak_phase"]}))
    return 0


def render(p: dict) -> str:
    t, r = p["trainer"], p["rollout"]
    lines = [f"model {Path(p['model']).name}: {p['params_total'] / 1e9:.2f}B parameters, GPU {p['gpu']} "
             f"{gib(p['gpu_bytes'])}",
             f"trainer GPU: peak {gib(t['peak_bytes'])} allocated ({t['peak_phase']}) "
             f"{'fits' if t['fits'] else 'OVER'} {gib(t['budget_bytes'])} (the GPU less "
             f"{t['reserved_headroom']:.0%} allocator headroom); "
             f"{t['tokens_per_gpu']} tokens/GPU, {t['shards']} shards, optimizer offload {t['optimizer_offload']}, "
             f"FSDP2 CPU offload {t['fsdp2_cpu_offload']}, gradient accumulation {t['accumulation']}, "
             f"lm-head chunk {t['lm_head_chunk'] or 'none (whole micro-batch logits)'}",
             "  biggest: " + ", ".join(f"{k} {gib(v)}" for k, v in t["biggest"])]
    if t["fix"]:
        lines.append(f"  cheapest fix: {t['fix']}")
    b = r["breakdown"]
    lines += [f"rollout GPU: TP {r['tp']}, weights/rank {gib(b['weights_per_rank'])}, KV {gib(b['kv_cache'])} at "
              f"{kv_budget(r)}: {r['full_window_sequences']} full-window "
              f"({r['window']}-token) sequences per replica ({b['kv_bytes_per_token']} B/token KV, "
              f"{b['linear_state_per_sequence'] / 2**20:.1f} MiB linear-attention state per sequence) "
              f"{'fits' if r['fits'] else 'OVER'}"]
    if r["fix"]:
        lines.append(f"  fix: {r['fix']}")
    return "\n".join(lines)


def run_plan(argv: Sequence[str]) -> int:
    args = list(argv)
    as_json = "--json" in args
    args = [x for x in args if x != "--json"]
    if args[:1] == ["--run-dir"]:
        if len(args) < 2 or not (Path(args[1]) / VERL_YAML).is_file():
            raise UsageError(f"--run-dir: not a plan directory with {VERL_YAML} and {LIVERL_YAML} (got: {args[1:2]})")
        cfg, verl = OmegaConf.load(Path(args[1]) / LIVERL_YAML), OmegaConf.load(Path(args[1]) / VERL_YAML)
    else:
        cfg = compose_liverl(args)
        if "memory-fit" not in cfg.liverl.allow:  # this command answers the memory-fit question itself, in full
            cfg.liverl.allow = [*cfg.liverl.allow, "memory-fit"]
        verl = build(cfg, structure_only=True).verl
    p = predict(cfg, verl)
    print(json.dumps(p, default=str) if as_json else render(p))
    return 0 if p["trainer"]["fits"] and p["rollout"]["fits"] else 1


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        return run_step(argv[1:]) if argv[:1] == ["step"] else run_plan(argv)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    except (UsageError, archmod.ArchError) as exc:
        print(f"liverl.memory: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
