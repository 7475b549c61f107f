"""Training-mode entrypoints: the only LiveRL code that calls verl's trainer entrypoints.

Each recipe runs a plan (a run directory written by `python -m liverl.train`):
    python -m recipes.sync_ppo RUN_DIR
    python -m recipes.fully_async RUN_DIR
"""
