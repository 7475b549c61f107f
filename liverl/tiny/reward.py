"""Rule-based reward for the tiny copy task (verl loads it: reward.custom_reward_function.path=pkg://liverl.tiny.reward,
verl/utils/import_utils.py:170 imports a `pkg://` path as a module; name=compute_score).

The task asks the model to repeat one word. A random-weight model almost never does, so the score also gives
partial credit for the word's letters that appear in the answer: a random model earns a small, varying reward
(so GRPO groups have a non-zero spread), and a model that learns the task earns up to 1.0.
"""

from __future__ import annotations

from typing import Any

EXACT_WEIGHT = 0.5


def letter_credit(answer: str, word: str) -> float:
    """Share of the word's distinct letters that occur in the answer (case-insensitive)."""
    letters = set(word.lower())
    if not letters:
        return 0.0
    return len(letters & set(answer.lower())) / len(letters)


def compute_score(
    data_source: str, solution_str: str, ground_truth: str, extra_info: dict[str, Any] | None = None, **_: Any
) -> dict[str, float]:
    """verl's custom reward signature (experimental/reward_loop/reward_manager/naive.py: data_source, solution_str,
    ground_truth, extra_info). Returns verl's dict form: `score` is the reward, the rest become reward_extra_info."""
    exact = 1.0 if ground_truth.lower() in solution_str.lower().split() else 0.0
    partial = letter_credit(solution_str, ground_truth)
    return {"score": EXACT_WEIGHT * exact + (1 - EXACT_WEIGHT) * partial, "exact": exact, "letters": partial}
