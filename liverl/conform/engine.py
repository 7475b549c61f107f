"""conform.policy=engine: a served model as the gate's policy, and the engine-vs-trainer log-prob agreement.

`VLLMPolicy` is verl's server-manager interface on vLLM's AsyncLLM, token-in/token-out with the sampled tokens'
log-probs, the way verl's vLLM server calls it (workers/rollout/vllm_rollout/vllm_async_server.py:617-722: a
TokensPrompt, `logprobs=0` for the sampled token's log-prob, max_tokens clamped to the model length, finish
reason "abort" -> stop reason "aborted"). vLLM runs on a GPU host only; it is imported when the engine starts, so
this module imports anywhere. `trainer_logprobs` is the trainer's side: a transformers forward pass over the
same tokens, whose log-probs the actor would compute for them (the policy loss's old/current log-probs).
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from liverl.errors import ConfigError, Problem

SPAWN_ENV = "VLLM_WORKER_MULTIPROC_METHOD"  # vllm/envs.py: how vLLM starts its worker processes


def trainer_logprobs(model: Any, prompt_ids: list[int], response_ids: list[int], chunk: int = 1024) -> list[float]:
    """log p(response token | everything before it) from one forward pass (the full-vocabulary softmax in chunks)."""
    import torch

    if not response_ids:
        return []
    device = next(model.parameters()).device
    ids = torch.tensor([list(prompt_ids) + list(response_ids)], device=device)
    with torch.no_grad():
        try:  # only the positions that predict response tokens (transformers' logits_to_keep)
            logits = model(input_ids=ids, logits_to_keep=len(response_ids) + 1).logits[0, :-1]
        except TypeError:
            logits = model(input_ids=ids).logits[0, len(prompt_ids) - 1 : -1]
        target = torch.tensor(list(response_ids), device=device)
        out: list[float] = []
        for i in range(0, len(response_ids), chunk):
            lp = torch.log_softmax(logits[i : i + chunk].float(), dim=-1)
            out += lp.gather(-1, target[i : i + chunk, None])[:, 0].tolist()
    return out


def agreement(engine_lp: list[float], trainer_lp: list[float], mask: list[int]) -> dict[str, Any]:
    """Engine vs trainer log-probs over the trained (mask-1) tokens."""
    diffs = [e - t for e, t, m in zip(engine_lp, trainer_lp, mask, strict=True) if m == 1]
    if not diffs:
        return {"tokens": 0, "abs_diff_mean": None, "abs_diff_max": None, "diff_mean": None}
    return {"tokens": len(diffs), "abs_diff_mean": round(sum(abs(d) for d in diffs) / len(diffs), 6),
            "abs_diff_max": round(max(abs(d) for d in diffs), 6), "diff_mean": round(sum(diffs) / len(diffs), 6)}


def _missing(key: str, message: str, got: Any, fix: str) -> ConfigError:
    return ConfigError([Problem(key=key, message=message, got=got, fix=fix)])


class VLLMPolicy:
    """vLLM's AsyncLLM on a checkpoint; `engine` holds conform.engine's settings (conf/conform/default.yaml)."""

    def __init__(self, model_path: str, *, max_model_len: int, engine: dict[str, Any],
                 tokenizer_path: str | None = None):
        try:
            from vllm.engine.arg_utils import AsyncEngineArgs
            from vllm.v1.engine.async_llm import AsyncLLM
        except ImportError as e:
            raise _missing("conform.policy", f"the engine needs vLLM, which this host lacks ({e})", "engine",
                           "run it on a GPU host with the GPU closure (docs/gpu-smoke.md), or conform.policy=double"
                           ) from None
        from transformers import AutoTokenizer

        self.path = str(Path(model_path).expanduser())
        if not Path(self.path).is_dir():
            raise _missing("model.path", "no checkpoint there on this host", model_path,
                           "model.path=/path/to/checkpoint (a folder with config.json and the tokenizer)")
        tok_path = tokenizer_path or self.path
        self.tokenizer = AutoTokenizer.from_pretrained(tok_path)
        self.settings = dict(engine)
        # vLLM forks its engine core by default; this process may have touched CUDA already (the GPU host: "Cannot
        # re-initialize CUDA in forked subprocess" and no engine), so the engine core is spawned (`python -m
        # liverl.conform` is import-safe); a value the user set stays
        os.environ.setdefault(SPAWN_ENV, "spawn")
        self.max_model_len = int(max_model_len)
        self.engine = AsyncLLM.from_engine_args(AsyncEngineArgs(
            model=self.path, tokenizer=tok_path, tensor_parallel_size=int(engine["tensor_parallel_size"]),
            gpu_memory_utilization=float(engine["gpu_memory_utilization"]), max_model_len=self.max_model_len,
            dtype=str(engine["dtype"]), seed=int(engine["seed"]), enable_prefix_caching=True,
            **({"kv_cache_memory_bytes": int(engine["kv_cache_memory_bytes"])}
               if engine.get("kv_cache_memory_bytes") else {})))

    @classmethod
    def from_plan(cls, cfg: DictConfig, s: Any) -> VLLMPolicy:
        window = (s.prompt_length or cfg.window.prompt) + (s.response_length or cfg.window.response)
        return cls(str(cfg.model.path), max_model_len=int(s.engine["max_model_len"] or window), engine=s.engine,
                   tokenizer_path=OmegaConf.select(cfg, "verl.actor_rollout_ref.model.tokenizer_path"))

    async def generate(self, request_id, *, prompt_ids, sampling_params, **kwargs):
        from verl.workers.rollout.replica import TokenOutput
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        p = dict(sampling_params)
        room = self.max_model_len - len(prompt_ids)
        max_tokens = max(1, min(int(p.pop("max_tokens", room)), room))
        logprobs = 0 if p.pop("logprobs", False) else None
        params = SamplingParams(max_tokens=max_tokens, logprobs=logprobs,
                                **{k: p[k] for k in ("temperature", "top_p", "top_k", "repetition_penalty") if k in p})
        final = None
        # one vLLM request id per generation: the session reuses its own id for every turn
        async for out in self.engine.generate(prompt=TokensPrompt(prompt_token_ids=list(prompt_ids)),
                                              sampling_params=params, request_id=f"{request_id}-{uuid.uuid4().hex}"):
            final = out
        if final is None or not final.outputs:
            return TokenOutput(token_ids=[], log_probs=None, stop_reason="aborted", extra_fields={})
        c = final.outputs[0]
        ids = list(c.token_ids)
        lps = [c.logprobs[i][t].logprob for i, t in enumerate(ids)] if logprobs is not None else None
        stop = "aborted" if c.finish_reason == "abort" else "completed"
        return TokenOutput(token_ids=ids, log_probs=lps, stop_reason=stop, extra_fields={})

    def trainer(self) -> Any:
        """The checkpoint in transformers, as the trainer would compute log-probs (conform.engine.trainer_*)."""
        import torch
        from transformers import AutoModelForCausalLM

        dtype = getattr(torch, str(self.settings["trainer_dtype"]))
        return AutoModelForCausalLM.from_pretrained(self.path, dtype=dtype).to(self.settings["trainer_device"]).eval()

    def agreement(self, trials: list[Any]) -> dict[str, Any]:
        """Engine vs trainer log-probs of every trained token of the trials' outputs (after the trials)."""
        model = self.trainer()
        engine_lp, trainer_lp, mask = [], [], []
        for t in trials:
            out = t.output
            if out is None or not out.response_logprobs or not any(out.response_mask):
                continue
            engine_lp += list(out.response_logprobs)
            trainer_lp += trainer_logprobs(model, list(out.prompt_ids), list(out.response_ids))
            mask += list(out.response_mask)
        del model
        return agreement(engine_lp, trainer_lp, mask)

    def shutdown(self) -> None:
        self.engine.shutdown()
