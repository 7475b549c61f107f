"""Fixtures of the scaffold tests: a real tokenizer trained once per session."""

from __future__ import annotations

import pytest
from tokenizer_fixture import build_tokenizer


@pytest.fixture(scope="session")
def tokenizer(tmp_path_factory):
    return build_tokenizer(tmp_path_factory.mktemp("tokenizer"))
