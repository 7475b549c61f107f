"""Property: every knob's valid values plan and reach the key that reads them; its invalid values are refused
(exit 2, never 0, never a traceback) by the check that owns them, naming the knob (tests/property_inputs.py).

Through the Python API (liverl.train.run, one process: verl is imported once). Hypothesis draws fresh examples
on every run (CI included: not derandomised); a failing example is kept in the example database
tests/hypothesis-db/, a directory of this repository (its README says how CI keeps it): commit what a failure adds
there, and every later run (CI's clean checkout too) replays it first. A failure also prints
`@reproduce_failure(...)` to paste onto the test. About 40 examples per property: ~20 s of one core.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import re
import tempfile
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st
from hypothesis.database import DirectoryBasedExampleDatabase
from omegaconf import OmegaConf
from property_inputs import CROSS, INVALID, VALID, hydra

from liverl.errors import ConfigError
from liverl.recipe.build import build
from liverl.recipe.compose import compose_liverl
from liverl.recipe.knobs import KNOBS
from liverl.train import run

EXAMPLES = 40  # per property: ~0.2 s an example on one core
DB = DirectoryBasedExampleDatabase(Path(__file__).parent / "hypothesis-db")
# no shrinking: at ~0.2 s an example hypothesis shrinks for its full 5 minutes; the inputs are one knob and a small
# value, readable as drawn (the failing example is stored in DB and replayed first by the next run)
SETTINGS = settings(max_examples=EXAMPLES, deadline=None, derandomize=False, database=DB, print_blob=True,
                    phases=(Phase.explicit, Phase.reuse, Phase.generate),
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
_ROOT = Path(tempfile.mkdtemp(prefix="liverl-property-"))
_COUNTER = itertools.count()
_PROBLEM = re.compile(r"^\s+\[([\w-]+)\] (.+?): ", re.M)


def run_quietly(overrides: list[str]) -> tuple[int, str, Path]:
    run_dir = _ROOT / str(next(_COUNTER))
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = run(overrides, run_dir, environ={})
    return code, err.getvalue(), run_dir


def settings_of(knob: str, value) -> list[str]:
    case = VALID[knob]
    pairs = case.render(value) if case.render else {knob: value}
    return [*case.groups, *(f"{k}={hydra(v)}" for k, v in pairs.items())]


def landed(knob: str, value) -> object:
    """Plan the valid value (exit 0) and read what the plan holds at the knob's key."""
    case = VALID[knob]
    overrides = settings_of(knob, value)
    if case.launcher in ("ray_job", "local"):  # these launchers launch: plan in-process, as their launch does first
        try:
            b = build(compose_liverl([*overrides, f"launcher={case.launcher}"]))
        except ConfigError as exc:
            pytest.fail(f"{overrides} launcher={case.launcher} was refused:\n{exc}")
        node = OmegaConf.select(b.liverl, case.key)
        return OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else node
    code, err, run_dir = run_quietly([*overrides, f"launcher={case.launcher or 'dryrun'}"])
    assert code == 0, (overrides, err)
    node = yaml.safe_load((run_dir / case.file).read_text())
    for part in case.key.split("."):
        node = node[int(part)] if isinstance(node, list) else node[part]
    return node


VALID_INPUTS = st.one_of(*(st.tuples(st.just(k), c.values) for k, c in VALID.items()))
INVALID_INPUTS = st.one_of(*(st.tuples(st.just(k), c.values) for k, c in INVALID.items()))


def check_valid(tried: list[str]) -> None:
    @SETTINGS
    @given(VALID_INPUTS)
    @example(("train_files", ["/d/a.parquet", "/d/b.parquet"]))  # found by this test: verl-type refused a list
    def valid_inputs_plan(case) -> None:
        knob, value = case
        tried.append(knob)
        assert landed(knob, value) == VALID[knob].expect(value), settings_of(knob, value)

    valid_inputs_plan()


def check_invalid(tried: list[str]) -> None:
    @SETTINGS
    @given(INVALID_INPUTS)
    def invalid_inputs_are_refused_by_their_check(case) -> None:
        knob, value = case
        tried.append(knob)
        c = INVALID[knob]
        overrides = [*c.groups, f"{knob}={hydra(value)}"]
        if not any(g.startswith("launcher=") for g in c.groups):
            overrides.append("launcher=dryrun")
        code, err, _ = run_quietly(overrides)
        assert code == 2, (overrides, code, err)
        assert "Traceback" not in err, (overrides, err)
        assert set(_PROBLEM.findall(err)) == {(c.rule, c.key or knob)}, (overrides, err)

    invalid_inputs_are_refused_by_their_check()


@pytest.mark.parametrize("check", [check_valid, check_invalid], ids=["valid-plans", "invalid-refused"])
def test_property(check) -> None:
    tried: list[str] = []
    check(tried)
    print(f"\nproperty {check.__name__}: {len(tried)} inputs over {len(set(tried))} knobs")
    assert len(tried) >= EXAMPLES // 2  # the property ran (in this test: no dependence on test order)
    assert len(set(tried)) >= 5  # and drew across knobs


def test_every_knob_has_valid_and_invalid_inputs() -> None:
    assert set(VALID) == set(INVALID) == {k.path for k in KNOBS}


@pytest.mark.parametrize("overrides,rule,key", CROSS, ids=[" ".join(c[0]) for c in CROSS])
def test_a_refusal_owned_by_another_check(overrides, rule, key) -> None:
    if not any(o.startswith("launcher=") for o in overrides):
        overrides = (*overrides, "launcher=dryrun")
    code, err, _ = run_quietly(list(overrides))
    assert code == 2, (overrides, err)
    assert (rule, key) in set(_PROBLEM.findall(err)), (overrides, err)
