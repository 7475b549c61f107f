"""Property: no input makes `liverl.train launcher=dryrun` raise. Through the Python API (liverl.train.run, one
process: verl is imported once), hypothesis sets one or two knobs to values across 0, negatives, huge numbers,
wrong types, empty, null and unicode; every run exits 0 or 2, and an exit 2 names a knob it was given."""

from __future__ import annotations

import itertools
import math
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from liverl.recipe.environ import quote
from liverl.recipe.knobs import KNOBS
from liverl.train import run

MAX_EXAMPLES = 100
TRIED: list[int] = []
_COUNTER = itertools.count()
_ROOT = Path(tempfile.mkdtemp(prefix="liverl-property-"))
PATHS = [k.path for k in KNOBS if not k.path.startswith("launcher.")] + ["launcher.wait", "launcher.address"]

scalars = st.one_of(
    st.sampled_from([0, -1, 1, 2, 3, 8, 64, 2**31, 10**30, -(10**30), 0.5, 1e-6, True, False, None, "", " ", "auto",
                     "token", "R3", "abc", "ünïcödé", "日本語", "null", "1e9999", "${train_bsz}", "a:b"]),
    st.integers(min_value=-(10**6), max_value=10**6),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
)
values = st.one_of(scalars, st.lists(st.one_of(st.integers(-3, 70), st.text(max_size=6)), max_size=3))


def hydra(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf") if math.isinf(value) else repr(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, list):
        return "[" + ",".join(hydra(v) for v in value) + "]"
    return quote(value)


@settings(max_examples=MAX_EXAMPLES, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(
    topology=st.sampled_from(["1node", "2node"]),
    knobs=st.dictionaries(st.sampled_from(PATHS), values, min_size=1, max_size=2),
)
def test_no_input_raises_and_every_refusal_names_a_knob(capsys, topology, knobs) -> None:
    TRIED.append(1)
    overrides = [f"topology={topology}", *(f"{k}={hydra(v)}" for k, v in knobs.items()), "launcher=dryrun"]
    code = run(overrides, _ROOT / str(next(_COUNTER)), environ={})
    err = capsys.readouterr().err
    assert code in (0, 2), (overrides, err)
    if code == 2:
        assert any(f"{k}" in err for k in knobs), (overrides, err)


def test_zz_the_property_ran() -> None:
    print(f"\nproperty test: {len(TRIED)} inputs tried")
    assert len(TRIED) >= MAX_EXAMPLES // 2
