"""The memory model against verl itself: the points benchmarks/memory/verl_points.py stored from real
`python -m liverl.train` runs on a GPU host (benchmarks/memory/verl_points.json). Each stored point is re-predicted
with today's model from its own overrides and checkpoint config and must be within 10% of verl's logged peak, with
the allocator's reserved peak within memory-fit's headroom; once the file holds points it must hold at least
MIN_POINTS. The script's overrides themselves are checked here on CPU: each point plans (launcher=dryrun)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from liverl.guardrails import memory_inputs
from liverl.memory.plan import RESERVED_HEADROOM
from liverl.recipe.build import build
from liverl.recipe.compose import compose_liverl

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks" / "memory"))
import verl_points  # noqa: E402

DATA = json.loads((ROOT / "benchmarks/memory/verl_points.json").read_text())
POINTS, HOST = DATA["points"], DATA["host_points"]
MIN_POINTS = 3  # dense 7B width, Qwen3-30B-A3B and Qwen3.5-35B-A3B shapes (verl_points.DEFAULT)
TOLERANCE = 0.10


def _plan(overrides: list[str], hf_config: dict, ckpt: Path):
    ckpt.mkdir(parents=True, exist_ok=True)
    (ckpt / "config.json").write_text(json.dumps(hf_config))
    args = [f"model.path={ckpt}" if o.startswith("model.path=") else o for o in overrides]
    cfg = compose_liverl([*args, "launcher=dryrun"])
    b = build(cfg)  # the checkpoint's config.json is read from model.path, as on the GPU host
    return b.liverl, b.verl


def test_enough_points_once_there_are_any():
    if not POINTS:
        pytest.skip("no verl points stored yet: run benchmarks/memory/verl_points.py run on a GPU host")
    assert len(POINTS) >= MIN_POINTS, f"only {len(POINTS)} verl points stored; need {MIN_POINTS}: {DATA['failed']}"


@pytest.mark.parametrize("point", POINTS, ids=[p["name"] for p in POINTS])
def test_stored_point_within_10_percent_of_verl(point, tmp_path):
    cfg, verl = _plan(point["overrides"], point["hf_config"], tmp_path / "ckpt")
    pred = memory_inputs.predict(cfg, verl)["trainer"]["peak_bytes"]
    measured = point["measured"]["max_memory_allocated_gb"] * 2**30  # verl's "GB" is 1024**3 bytes
    err = pred / measured - 1
    assert abs(err) <= TOLERANCE, (
        f"{point['name']}: predicted {pred / 2**30:.2f} GiB vs verl's max_memory_allocated "
        f"{measured / 2**30:.2f} GiB ({err:+.1%}, limit ±{TOLERANCE:.0%})")
    reserved = point["measured"]["max_memory_reserved_gb"] * 2**30
    assert reserved <= measured * (1 + RESERVED_HEADROOM), (
        f"{point['name']}: reserved {reserved / 2**30:.2f} GiB is {reserved / measured - 1:+.1%} over allocated; "
        f"memory-fit keeps {RESERVED_HEADROOM:.0%} (liverl/memory/plan.py RESERVED_HEADROOM)")


@pytest.mark.parametrize("point", HOST, ids=[p["name"] for p in HOST])
def test_stored_host_point_not_under_predicted(point, tmp_path):
    cfg, verl = _plan(point["overrides"], point["hf_config"], tmp_path / "ckpt")
    pred = memory_inputs.host_prediction(cfg, verl)["peak_bytes"]
    used = point["host"]["node_used_delta_bytes"]
    assert used <= pred * (1 + TOLERANCE), (
        f"{point['name']}: the node's used memory rose {used / 2**30:.1f} GiB, the host model predicts "
        f"{pred / 2**30:.1f} GiB")


@pytest.mark.parametrize("name", [*verl_points.DEFAULT, "moe30b_veomni_16k"])
def test_the_scripts_points_plan(name, tmp_path):
    shape, window, engine, _ = point = verl_points.POINTS[name]
    arch = json.loads((verl_points.ARCHS / f"{verl_points.SHAPES[shape][0]}.json").read_text())
    vocab = arch.get("text_config", arch)["vocab_size"]
    hf = verl_points.text_config(shape, vocab)
    args = verl_points.overrides(name, point, tmp_path / "ckpt", tmp_path / "tiny", tmp_path / "run", "dryrun")
    cfg, verl = _plan([a for a in args if not a.startswith(("launcher=", "hydra."))], hf, tmp_path / "ckpt")
    assert verl.actor_rollout_ref.actor.ppo_max_token_len_per_gpu == window
    assert verl.trainer.n_gpus_per_node == 1 and cfg.engine.name == engine
    a = memory_inputs.arch(cfg)
    assert a.layers == verl_points.LAYERS and a.vocab == vocab and (a.experts > 0) == shape.startswith("moe")
