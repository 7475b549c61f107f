"""Run health: read a run's metric streams and say what is wrong, since when, and what to change.

`streams` (metrics.jsonl / train.log, every attempt), `catalogue` (the verl metric keys read), `findings` (what a
check sees and says), `signals` (series helpers), `checks_rollout` / `checks_training` (the checks), `analysis`
(run them all; thresholds; follow), `render` and `plot` (output), `advice` (the "When to scale" table).
"""
