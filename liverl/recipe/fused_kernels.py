"""`use_fused_kernels: auto` (engine=fsdp): verl's fused log-prob kernels where they run, off where they crash.

Why it depends on the model: with untied embeddings verl's FSDP2 wraps `lm_head` as its own FSDP unit
(verl/utils/fsdp_utils.py:558-569, `_wrap_by_name = {"embed_tokens", "lm_head"}` unless tie_word_embeddings), and
the fused forward reads `self.lm_head.weight` without calling the module (verl/models/transformers/dense_common.py:123
and :191 for the triton backend, qwen3_5.py:587/645, qwen3_vl.py:369), so FSDP2's pre-forward hook never
all-gathers it: the first log-prob pass dies with "aten.mm.default got mixed torch.Tensor and DTensor". verl 0.9.1
has no setting that keeps lm_head inside the root unit under FSDP2 (the wrap targets depend on tie_word_embeddings
only; `wrap_policy` names layer classes), so for an untied model the fused path is turned off: the HF LM head is
called as a module (materialising the micro-batch's bf16 logits) and the old-log-prob entropy is chunked
(conf/engine/fsdp.yaml sets entropy_from_logits_with_chunking). With tied embeddings nothing is wrapped apart and
the fused path runs (the GPU smoke's tiny Qwen2 ties them). The memory model follows the verl config this writes
(liverl.guardrails.memory_inputs.logits_path).
"""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig

from liverl.guardrails.memory_inputs import FUSED_KEY, STRATEGY_KEY, tied_embeddings


def decide(strategy: str, tied: bool | None) -> tuple[bool, str]:
    """(use_fused_kernels, the plan note saying why)."""
    if strategy != "fsdp2":
        return True, f"fused log-prob kernels: on ({strategy} keeps lm_head in the root unit)"
    if tied:
        return True, "fused log-prob kernels: on (tied embeddings: FSDP2 keeps lm_head in the root unit)"
    why = "untied embeddings" if tied is False else "embeddings not known to be tied (no config.json read)"
    return False, (f"fused log-prob kernels: off ({why}: FSDP2 wraps lm_head apart and verl's fused forward reads "
                   "its unassembled shard, verl/utils/fsdp_utils.py:558-559, models/transformers/dense_common.py:123)"
                   "; bf16 logits with chunked entropy instead")


def resolve_fused_kernels(cfg: DictConfig, values: dict[str, Any], structure_only: bool, notes: list[str]) -> None:
    """Replace `use_fused_kernels: auto` in the verl overrides by the decision, and note it."""
    if values.get(FUSED_KEY) != "auto":
        return
    on, note = decide(str(values.get(STRATEGY_KEY, "fsdp2")), tied_embeddings(cfg, structure_only))
    values[FUSED_KEY] = on
    notes.append(note)

