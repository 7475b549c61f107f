"""A tiny, offline smoke workload: a random-weight model built from a real architecture's config, a BPE tokenizer
trained on the spot (saved with a chat template), a generated single-turn dataset and its rule-based reward.

Used by `make smoke` on a GPU host (no checkpoint can be downloaded there) and by the CPU tests at smaller sizes.
"""
