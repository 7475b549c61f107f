"""Every metric name LiveRL's health checks read (liverl/health/catalogue.py, the watch config's nonfinite list) is
one a real verl 0.9.1 stream carries (tests/fixtures/gpu_*, recorded on a GPU), or is listed in
tests/metric_sources.py with the source line that emits it in a mode those runs do not cover."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import verl
from metric_sources import NOT_IN_FIXTURES
from omegaconf import OmegaConf

from liverl.health import catalogue
from liverl.paths import CONF_DIR

REPO = Path(__file__).resolve().parent.parent
FIXTURES = sorted((Path(__file__).parent / "fixtures").glob("gpu_*"))


def fixture_names() -> set[str]:
    names: set[str] = set()
    for run in FIXTURES:
        for path in run.glob("metrics*.jsonl"):
            for line in path.read_text().splitlines():
                names |= set(json.loads(line)["data"])
    return names


def names_read() -> set[str]:
    groups = [v for k, v in vars(catalogue).items() if k.isupper() and isinstance(v, tuple)
              and all(isinstance(n, str) for n in v)]
    watch = OmegaConf.load(CONF_DIR / "watch" / "default.yaml")
    return {n for g in groups for n in g} | set(watch.nonfinite.metrics) | {catalogue.REASON_PREFIX}


def test_the_fixtures_are_real_streams() -> None:
    assert len(FIXTURES) >= 5 and len(fixture_names()) > 90


@pytest.mark.parametrize("name", sorted(names_read()))
def test_every_name_a_check_reads_is_emitted(name: str) -> None:
    emitted = any(n == name or (name.endswith("/") and n.startswith(name)) for n in fixture_names())  # a prefix
    assert emitted or name in NOT_IN_FIXTURES, (
        f"{name}: no real stream carries it and tests/metric_sources.py cites no source line for it")


@pytest.mark.parametrize("name", sorted(NOT_IN_FIXTURES))
def test_each_listed_name_cites_the_line_that_emits_it(name: str) -> None:
    where, words, mode = NOT_IN_FIXTURES[name]
    assert not any(n == name or n.startswith(name) for n in fixture_names()), f"{name} is in a real stream: unlist it"
    assert name in names_read(), f"{name}: no check reads it any more: unlist it"
    path, line = where.rsplit(":", 1)
    root = Path(verl.__file__).parent.parent if path.startswith("verl/") else REPO
    assert words in (root / path).read_text().splitlines()[int(line) - 1], (where, words)
    assert mode


def test_a_fault_stream_refuses_a_name_verl_does_not_log(tmp_path: Path) -> None:
    from watch_streams import write_jsonl

    write_jsonl(tmp_path / "ok.jsonl", range(1, 3), {"memory_full": 1})
    with pytest.raises(ValueError, match="perf/max_memory_reserved_gb"):
        write_jsonl(tmp_path / "bad.jsonl", range(1, 3), {"memory_full": 1},
                    rename={"actor/perf/max_memory_reserved_gb": "perf/max_memory_reserved_gb"})
