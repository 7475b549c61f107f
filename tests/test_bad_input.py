"""Bad input on the command line: exit 2, the key and the nearest valid names, and no plan that looks successful."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import run_cli, run_dirs

CASES = [  # (overrides, key named, words the message must contain, a nearest name or fix it must offer)
    (["topology=4node"], "topology", "not an option of group 'topology'", "3node"),
    (["engine=fsdp3"], "engine", "not an option of group 'engine'", "fsdp"),
    (["staleness_treshold=1"], "staleness_treshold", "not a LiveRL setting", "staleness_threshold"),
    (["verl.trainer.nnode=2"], "verl.trainer.nnode", "has no key 'trainer.nnode'", "trainer.nnodes"),
    (
        ["verl.actor_rollout_ref.actor.optim.lrr=1e-6"],
        "verl.actor_rollout_ref.actor.optim.lrr",
        "has no key",
        "actor_rollout_ref.actor.optim.lr",
    ),
    (["verl.model_engine=veomnii"], "verl.model_engine", "not an option of verl's 'model_engine' group", "veomni"),
    (["staleness_threshold=2"], "staleness_threshold", "has no effect with topology=1node", "2node, 3node"),
    (["sp_size=2"], "sp_size", "GatedDeltaNet", "keep sp_size=1"),
    (["verl.data.train_batch_size=64"], "verl.data.train_batch_size", "not train_bsz=8", "train_bsz=N"),
    (
        ["trajectory_filter.enable=true", "topology=3node", "verl.algorithm.adv_estimator=rloo"],
        "trajectory_filter.enable",
        "LiveRL's filter keeps dropped rows out of GRPO baselines only",
        "USE_NEW_VERL=1",
    ),
    (["verl.actor_rollout_ref.rollout.mode=sync"], "verl", "Rollout mode 'sync' has been removed", "fix:"),
]


@pytest.mark.parametrize("overrides,key,words,hint", CASES, ids=[c[0][0] for c in CASES])
def test_bad_override_exits_2_and_names_the_key(tmp_path: Path, overrides, key, words, hint) -> None:
    proc = run_cli([*overrides, "launcher=dryrun", f"hydra.run.dir={tmp_path}/run"], cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert f"{key}:" in proc.stderr and words in proc.stderr and hint in proc.stderr, proc.stderr
    assert "nothing was launched" in proc.stderr
    for run_dir in run_dirs(tmp_path):  # a failed plan never looks runnable
        assert json.loads((run_dir / "run.json").read_text())["status"] == "config_error"
        assert not (run_dir / "verl.yaml").exists() and not (run_dir / "command.sh").exists()
        assert (run_dir / "errors.txt").read_text().count(key) >= 1


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    proc = run_cli(
        [
            "staleness_threshold=2",
            "verl.trainer.nnode=2",
            "verl.data.max_prompt_lenght=1",
            "launcher=dryrun",
            f"hydra.run.dir={tmp_path}/run",
        ],
        cwd=tmp_path,
    )
    assert proc.returncode == 2
    assert "3 problems" in proc.stderr
    for key in ("staleness_threshold:", "verl.trainer.nnode:", "verl.data.max_prompt_lenght:"):
        assert key in proc.stderr
